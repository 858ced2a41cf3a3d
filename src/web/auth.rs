//! Who is asking: sessions (a random id in an HttpOnly, SameSite=Strict
//! cookie, with a CSRF token of their own), API tokens, password checks
//! with a cap on failed attempts, and the principal a request acts as.
//! The actor of every event comes from here, never from the request's
//! body.

use super::limits;
use super::users::{same_secret, token_hash, verify_password, Users};
use axum::http::HeaderMap;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "styrlogg_session";
/// The cookie that carries the login form's CSRF token before a session exists.
pub const LOGIN_CSRF_COOKIE: &str = "styrlogg_login";

/// Who a request acts as.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The login or token name.
    pub login: String,
    /// The name recorded as the actor.
    pub name: String,
    pub roles: Vec<String>,
    /// Organisations it may record for; empty: any.
    pub orgs: Vec<String>,
    /// How it proved itself.
    pub via: Via,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A session cookie; writes must carry this CSRF token.
    Session { id: String, csrf: String },
    /// `Authorization: Bearer`: not sent by browsers on their own, so no CSRF token.
    Token,
}

impl Principal {
    pub fn holds(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether it may record for `org` (case-insensitive).
    pub fn may_record_for(&self, org: &str) -> bool {
        self.orgs.is_empty() || self.orgs.iter().any(|o| workflows::same_organisation(o, org))
    }

    pub fn csrf(&self) -> Option<&str> {
        match &self.via {
            Via::Session { csrf, .. } => Some(csrf),
            Via::Token => None,
        }
    }

    /// Whether `given` is this session's CSRF token (always true for a token).
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        match &self.via {
            Via::Session { csrf, .. } => given.is_some_and(|g| same_secret(g, csrf)),
            Via::Token => true,
        }
    }
}

struct Session {
    login: String,
    csrf: String,
    /// The password hash the session was opened with.
    password: String,
    created: Instant,
    used: Instant,
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// Wrong login or password (never says which).
    Wrong,
    /// Too many failed attempts recently for this login or address; they
    /// may be tried again after `retry_after`.
    TooManyAttempts { retry_after: Duration },
    /// The server holds as many sessions as it may.
    TooManySessions,
}

/// The users file as the server follows it: looked at on every request
/// that needs a principal, and read again when it was replaced or changed,
/// so `styrlogg user remove`, a replaced password or token, and changed
/// roles take effect on a running server at once.
struct UsersFile {
    path: PathBuf,
    /// The file as last looked at (none when it is missing), and the users
    /// last read from it without error.
    current: Mutex<(Option<Stamp>, Arc<Users>)>,
}

/// What tells one version of the users file from another: `styrlogg user`
/// replaces the file (a new inode); an edit in place changes its time or
/// length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    modified: Option<std::time::SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> std::io::Result<Option<Stamp>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(Stamp { inode: m.ino(), modified: m.modified().ok(), len: m.len() })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl UsersFile {
    fn users(&self) -> Arc<Users> {
        let mut current = self.current.lock().expect("not poisoned");
        let now = match stamp(&self.path) {
            Ok(s) => s,
            Err(e) => {
                // Cannot even look: keep what was read, and say so.
                tracing::error!(
                    "cannot look at the users file {}: {e}; using the users read before",
                    self.path.display()
                );
                return current.1.clone();
            }
        };
        if now != current.0 {
            current.0 = now;
            match Users::load(&self.path) {
                Ok(users) if now.is_none() => {
                    tracing::warn!(
                        "the users file {} is gone: no one can log in until it is back (`styrlogg user add` makes it)",
                        self.path.display()
                    );
                    current.1 = Arc::new(users);
                }
                Ok(users) => {
                    tracing::info!(
                        users = users.users.len(),
                        tokens = users.tokens.len(),
                        "read the changed users file {}",
                        self.path.display()
                    );
                    current.1 = Arc::new(users);
                }
                // A file `styrlogg user` writes always reads; a hand edit
                // may not. Said once per change.
                Err(e) => tracing::error!("{e:#}; using the users read before until the file is fixed"),
            }
        }
        current.1.clone()
    }
}

/// Users, sessions and failed-login bookkeeping.
pub struct Auth {
    users: UsersFile,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    checks: tokio::sync::Semaphore,
}

impl Auth {
    /// `users` as just read from `path`, which is followed from here on.
    pub fn new(path: &Path, users: Users) -> Auth {
        let seen = stamp(path).ok().flatten();
        Auth {
            users: UsersFile { path: path.to_path_buf(), current: Mutex::new((seen, Arc::new(users))) },
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            checks: tokio::sync::Semaphore::new(limits::PASSWORD_CHECKS_CONCURRENT_MAX),
        }
    }

    pub fn has_users(&self) -> bool {
        let users = self.users.users();
        !users.users.is_empty() || !users.tokens.is_empty()
    }

    /// The principal of a request: a bearer token, else a live session cookie.
    pub fn principal(&self, headers: &HeaderMap) -> Option<Principal> {
        if let Some(token) = bearer(headers) {
            let hash = token_hash(token);
            let users = self.users.users();
            let (name, t) = users.tokens.iter().find(|(_, t)| same_secret(&t.hash, &hash))?;
            return Some(Principal {
                login: name.clone(),
                name: name.clone(),
                roles: t.roles.clone(),
                orgs: t.orgs.clone(),
                via: Via::Token,
            });
        }
        let id = cookie(headers, SESSION_COOKIE)?;
        let mut sessions = self.sessions.lock().expect("not poisoned");
        let now = Instant::now();
        let s = sessions.get_mut(id)?;
        if now.duration_since(s.used) > limits::SESSION_IDLE || now.duration_since(s.created) > limits::SESSION_LIFETIME
        {
            sessions.remove(id);
            return None;
        }
        // A user removed, or given a new password, since the login: the
        // session ends.
        let users = self.users.users();
        let Some(u) = users.users.get(&s.login).filter(|u| u.password == s.password) else {
            sessions.remove(id);
            return None;
        };
        s.used = now;
        Some(Principal {
            login: s.login.clone(),
            name: u.name.clone(),
            roles: u.roles.clone(),
            orgs: u.orgs.clone(),
            via: Via::Session { id: id.to_string(), csrf: s.csrf.clone() },
        })
    }

    /// Checks a password and opens a session: `(session id, principal)`.
    pub async fn login(&self, login: &str, password: &str, from: IpAddr) -> Result<(String, Principal), LoginRefused> {
        let name_key = format!("login:{}", login.to_lowercase());
        let addr_key = format!("addr:{from}");
        let blocked = [
            self.blocked(&name_key, limits::LOGIN_FAILURES_PER_NAME_MAX),
            self.blocked(&addr_key, limits::LOGIN_FAILURES_PER_ADDRESS_MAX),
        ];
        if let Some(retry_after) = blocked.into_iter().flatten().max() {
            return Err(LoginRefused::TooManyAttempts { retry_after });
        }
        let users = self.users.users();
        let user = users.users.get(login);
        let ok = {
            let _permit = self.checks.acquire().await.expect("never closed");
            let phc = user.map(|u| u.password.clone()).unwrap_or_else(|| super::users::decoy_hash().to_string());
            let password = password.to_string();
            let verified = tokio::task::spawn_blocking(move || verify_password(&password, &phc)).await.unwrap_or(false);
            verified && user.is_some()
        };
        if !ok {
            if !self.fail(&name_key) || !self.fail(&addr_key) {
                // When this ends is not known: until old failures expire.
                return Err(LoginRefused::TooManyAttempts { retry_after: limits::LOGIN_WINDOW });
            }
            return Err(LoginRefused::Wrong);
        }
        let user = user.expect("checked");
        let id = super::users::random_id();
        let csrf = super::users::random_id();
        let now = Instant::now();
        {
            let mut sessions = self.sessions.lock().expect("not poisoned");
            sessions.retain(|_, s| {
                now.duration_since(s.used) <= limits::SESSION_IDLE
                    && now.duration_since(s.created) <= limits::SESSION_LIFETIME
            });
            let mut own: Vec<(String, Instant)> =
                sessions.iter().filter(|(_, s)| s.login == login).map(|(k, s)| (k.clone(), s.created)).collect();
            own.sort_by_key(|(_, c)| *c);
            while own.len() >= limits::SESSIONS_PER_USER_MAX {
                sessions.remove(&own.remove(0).0);
            }
            if sessions.len() >= limits::SESSIONS_MAX {
                return Err(LoginRefused::TooManySessions);
            }
            sessions.insert(
                id.clone(),
                Session {
                    login: login.to_string(),
                    csrf: csrf.clone(),
                    password: user.password.clone(),
                    created: now,
                    used: now,
                },
            );
        }
        let principal = Principal {
            login: login.to_string(),
            name: user.name.clone(),
            roles: user.roles.clone(),
            orgs: user.orgs.clone(),
            via: Via::Session { id: id.clone(), csrf },
        };
        Ok((id, principal))
    }

    pub fn logout(&self, p: &Principal) {
        if let Via::Session { id, .. } = &p.via {
            self.sessions.lock().expect("not poisoned").remove(id);
        }
    }

    /// How long `key` stays refused: `max` failures within the window
    /// refuse it until the oldest of the last `max` leaves the window (a
    /// refused attempt is not counted as a failure, so this does not move).
    fn blocked(&self, key: &str, max: usize) -> Option<Duration> {
        let mut failures = self.failures.lock().expect("not poisoned");
        let now = Instant::now();
        let q = failures.get_mut(key)?;
        while q.front().is_some_and(|t| now.duration_since(*t) > limits::LOGIN_WINDOW) {
            q.pop_front();
        }
        if q.is_empty() {
            failures.remove(key);
            return None;
        }
        let from = *q.get(q.len().checked_sub(max)?)?;
        Some(limits::LOGIN_WINDOW.saturating_sub(now.duration_since(from)))
    }

    /// Records a failure; false when no more keys can be tracked (then
    /// logins are refused: fail closed).
    fn fail(&self, key: &str) -> bool {
        let mut failures = self.failures.lock().expect("not poisoned");
        let now = Instant::now();
        if !failures.contains_key(key) && failures.len() >= limits::LOGIN_TRACKED_KEYS_MAX {
            failures.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= limits::LOGIN_WINDOW));
            if failures.len() >= limits::LOGIN_TRACKED_KEYS_MAX {
                return false;
            }
        }
        let q = failures.entry(key.to_string()).or_default();
        q.push_back(now);
        while q.len() > limits::LOGIN_FAILURES_PER_ADDRESS_MAX {
            q.pop_front();
        }
        true
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, and Secure
/// when the server is reached over HTTPS. `max_age_s` 0 removes it.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age_s: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(s) = max_age_s {
        c.push_str(&format!("; Max-Age={s}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}
