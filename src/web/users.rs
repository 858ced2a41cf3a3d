//! The users file: who may log in to the web interface, in which roles and
//! for which organisations, with their passwords as argon2id hashes; and
//! API tokens for machines, kept as BLAKE3 hashes. `styrlogg user` writes
//! it; `styrlogg serve` reads it when it starts.

use super::limits;
use anyhow::{bail, Context, Result};
use argon2::password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A person who logs in with a password.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The name recorded as the actor of the events the user records.
    pub name: String,
    /// The roles the user may act in; one is chosen for each write.
    pub roles: Vec<String>,
    /// The organisations the user may record for; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<String>,
    /// An argon2id PHC string.
    pub password: String,
}

/// A machine that calls the API with `Authorization: Bearer TOKEN`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<String>,
    /// `blake3:` and the hex BLAKE3 hash (derive-key context
    /// `styrlogg api token v1`) of the token.
    pub hash: String,
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Users {
    #[serde(default)]
    pub users: BTreeMap<String, User>,
    #[serde(default)]
    pub tokens: BTreeMap<String, Token>,
}

const TOKEN_CONTEXT: &str = "styrlogg api token v1";

/// A login or token name: 1-64 letters, digits, `.`, `_`, `-`.
pub fn check_login(login: &str) -> Result<(), String> {
    if !login.is_empty()
        && login.len() <= 64
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(format!("{login:?} is not a login name: use 1-64 letters, digits, '.', '_' and '-'"))
    }
}

fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    engine::event::check_text(what, s, engine::limits::NAME_BYTES_MAX, false).map_err(|e| e.to_string())
}

impl Users {
    /// Reads the file; a missing file is no users (the web interface is
    /// then read-only).
    pub fn load(path: &Path) -> Result<Users> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read the users file {}", path.display())),
        };
        let users: Users =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        users.check().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(users)
    }

    fn check(&self) -> Result<(), String> {
        if self.users.len() + self.tokens.len() > limits::USERS_MAX {
            return Err(format!("more than {} users and tokens", limits::USERS_MAX));
        }
        for (login, u) in &self.users {
            check_login(login)?;
            if u.roles.is_empty() {
                return Err(format!("user {login} has no roles"));
            }
            PasswordHash::new(&u.password)
                .map_err(|e| format!("user {login}: the password is not an argon2 PHC string: {e}"))?;
            check_name(&format!("user {login}'s name"), &u.name)?;
            for r in u.roles.iter().chain(&u.orgs) {
                check_name(&format!("user {login}'s role or organisation"), r)?;
            }
        }
        for (name, t) in &self.tokens {
            check_login(name)?;
            if t.roles.is_empty() {
                return Err(format!("token {name} has no roles"));
            }
            for r in t.roles.iter().chain(&t.orgs) {
                check_name(&format!("token {name}'s role or organisation"), r)?;
            }
            if !t.hash.starts_with("blake3:") {
                return Err(format!("token {name}: the hash must start with blake3:"));
            }
            if self.users.contains_key(name) {
                return Err(format!("{name} is both a user and a token"));
            }
        }
        Ok(())
    }

    /// Writes the file atomically, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.check().map_err(|e| anyhow::anyhow!("{e}"))?;
        let text = format!(
            "# styrlogg web users and API tokens, written by `styrlogg user`.\n\
             # Passwords are argon2id hashes; tokens BLAKE3 hashes. Keep this file private.\n\n{}",
            toml::to_string(self)?
        );
        // A symbolic link is followed: the file it names is the one replaced.
        let path = &crate::output::through_links(path);
        // A temporary file of this command's own (mode 0600), removed if
        // anything fails before it is renamed into place.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp =
            tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| anyhow::anyhow!("cannot replace {}: {}", path.display(), e.error))?;
        Ok(())
    }
}

/// Hashes a password for the file (argon2id, the crate's default
/// parameters, a random salt).
pub fn hash_password(password: &str) -> Result<String> {
    match Argon2::default().hash_password(password.as_bytes()) {
        Ok(h) => Ok(h.to_string()),
        Err(e) => bail!("cannot hash the password: {e}"),
    }
}

/// Whether `password` matches the stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// A fixed hash checked against when the login is unknown, so that an
/// unknown login costs as much time as a known one.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("styrlogg decoy password").expect("hashing works"))
}

/// A new random token for `name`: `stl_NAME_` and 64 hex digits.
pub fn new_token(name: &str) -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!("stl_{name}_{}", hex(&bytes)))
}

/// What the file keeps of a token.
pub fn token_hash(token: &str) -> String {
    format!(
        "blake3:{}",
        blake3::derive_key(TOKEN_CONTEXT, token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random identifier: 32 bytes as hex (session ids, CSRF tokens).
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    hex(&bytes)
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
