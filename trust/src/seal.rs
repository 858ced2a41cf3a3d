//! Personal data that can be removed without rewriting the log
//! (crypto-shredding): a fact is sealed with its person's key
//! (XChaCha20-Poly1305) before it is appended; the key lives in a
//! [`KeyStore`] outside the log; destroying the key removes the data from
//! every reader while the chain, which hashes only the ciphertext, stays
//! intact.
//!
//! A person is a random [`PersonId`] with its own 256-bit key. The key
//! store remembers, next to the key, the name and organisation the person
//! was sealed under, so the same person gets the same key in every later
//! event; the log holds only the random id. Erasing destroys the key file
//! (overwritten, synced, deleted, directory synced): afterwards nothing
//! links the id in the log to a name, and the ciphertext cannot be opened.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use engine::{Bytes, FactValue, PersonId, SealNonce};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Domain separation of the associated data.
const AAD_CONTEXT: &[u8] = b"styrlogg sealed fact v1";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("no key for person {0}: it was erased, or this key store is not the one the data was sealed with")]
    NoKey(PersonId),
    #[error(
        "the sealed value of fact {0:?} does not open with its person's key (wrong key, or the bytes were changed)"
    )]
    Open(String),
    #[error("the value of fact {0:?} is already sealed")]
    AlreadySealed(String),
    #[error("the opened value of fact {0:?} does not decode: {1}")]
    Decode(String, String),
    #[error("key store {path}: {why}")]
    Store { path: String, why: String },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

fn random<const N: usize>() -> Result<[u8; N], SealError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| SealError::Random(e.to_string()))?;
    Ok(b)
}

/// One person's key and what the key store knows about them.
#[derive(Clone, Serialize, Deserialize)]
pub struct PersonKey {
    pub person: PersonId,
    #[serde(with = "hex_key")]
    key: Zeroizing<[u8; 32]>,
    /// The name the person was sealed under; None for data that belongs to
    /// no named person (it gets a key of its own).
    pub name: Option<String>,
    pub organisation: String,
    /// When the key was made (RFC 3339).
    pub created: String,
}

impl std::fmt::Debug for PersonKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PersonKey({}, {:?}, {:?})", self.person, self.name, self.organisation)
    }
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(k: &Zeroizing<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(hex::encode(&k[..])))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<[u8; 32]>, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        let mut k = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(&*s, &mut k[..]).map_err(|_| serde::de::Error::custom("a key is 64 hex digits"))?;
        Ok(k)
    }
}

fn aad(person: &PersonId, fact: &str) -> Vec<u8> {
    let mut a = AAD_CONTEXT.to_vec();
    a.extend_from_slice(&person.0);
    a.extend_from_slice(fact.as_bytes());
    a
}

impl PersonKey {
    /// A new person with a fresh random id and key.
    pub fn generate(name: Option<&str>, organisation: &str) -> Result<PersonKey, SealError> {
        Ok(PersonKey {
            person: PersonId(random()?),
            key: Zeroizing::new(random()?),
            name: name.map(String::from),
            organisation: organisation.to_string(),
            created: jiff::Timestamp::now().to_string(),
        })
    }

    /// Seals `value`, the value of fact `fact`.
    pub fn seal(&self, fact: &str, value: &FactValue) -> Result<FactValue, SealError> {
        if matches!(value, FactValue::Sealed { .. }) {
            return Err(SealError::AlreadySealed(fact.to_string()));
        }
        let plain =
            Zeroizing::new(postcard::to_stdvec(value).map_err(|e| SealError::Decode(fact.into(), e.to_string()))?);
        let nonce: [u8; 24] = random()?;
        let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&self.key[..]));
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad(&self.person, fact) })
            .map_err(|_| SealError::Open(fact.to_string()))?;
        Ok(FactValue::Sealed { person: self.person, nonce: SealNonce(nonce), ciphertext: Bytes(ciphertext) })
    }

    /// Opens a value sealed for this person.
    pub fn open(&self, fact: &str, value: &FactValue) -> Result<FactValue, SealError> {
        let FactValue::Sealed { person, nonce, ciphertext } = value else {
            return Ok(value.clone());
        };
        if *person != self.person {
            return Err(SealError::NoKey(*person));
        }
        let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&self.key[..]));
        let plain = Zeroizing::new(
            cipher
                .decrypt(XNonce::from_slice(&nonce.0), Payload { msg: &ciphertext.0, aad: &aad(person, fact) })
                .map_err(|_| SealError::Open(fact.to_string()))?,
        );
        let v: FactValue = postcard::from_bytes(&plain).map_err(|e| SealError::Decode(fact.into(), e.to_string()))?;
        if matches!(v, FactValue::Sealed { .. }) {
            return Err(SealError::Decode(fact.into(), "a sealed value inside a sealed value".into()));
        }
        Ok(v)
    }
}

/// The name as it is matched: trimmed, inner whitespace collapsed, lower case.
pub fn normalise_name(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// The directory of person keys: `DIR/persons/<person id>.key`, one JSON
/// file per person, mode 0600, the directories 0700. Outside the log.
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
    keys: BTreeMap<PersonId, PersonKey>,
}

fn store_err(path: &Path, why: impl std::fmt::Display) -> SealError {
    SealError::Store { path: path.display().to_string(), why: why.to_string() }
}

/// Creates a directory readable only by its owner.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Writes a file readable only by its owner, atomically and durably
/// (temporary file, fsync, rename, fsync of the directory). Refuses to
/// replace an existing file unless `replace`.
pub fn write_private_file(path: &Path, bytes: &[u8], replace: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !replace && path.exists() {
        return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the file exists"));
    }
    // A name of this writer's own: two processes creating the same file at
    // once must not write into one temporary file (one would truncate what
    // the other had already linked into place) or remove the other's.
    let mut unique = [0u8; 8];
    getrandom::getrandom(&mut unique).map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("tmp-{}-{}", std::process::id(), hex::encode(unique)));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let put = || -> std::io::Result<()> {
        let mut f = o.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        if !replace {
            // hard_link fails if the target appeared meanwhile: never replace.
            std::fs::hard_link(&tmp, path)?;
            std::fs::remove_file(&tmp)
        } else {
            std::fs::rename(&tmp, path)
        }
    };
    if let Err(e) = put() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

impl KeyStore {
    /// Opens the key store in `dir`; creates it when `create`. Reads every
    /// key (a key store holds one small file per person).
    pub fn open(dir: &Path, create: bool) -> Result<KeyStore, SealError> {
        let persons = dir.join("persons");
        if !persons.is_dir() {
            if !create {
                return Err(store_err(dir, "there is no key store here (no persons/ directory)"));
            }
            create_private_dir(&persons).map_err(|e| store_err(dir, e))?;
        }
        let mut keys = BTreeMap::new();
        for entry in std::fs::read_dir(&persons).map_err(|e| store_err(&persons, e))? {
            let path = entry.map_err(|e| store_err(&persons, e))?.path();
            if path.extension().is_none_or(|x| x != "key") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| store_err(&path, e))?;
            let k: PersonKey =
                serde_json::from_slice(&bytes).map_err(|e| store_err(&path, format!("not a person key: {e}")))?;
            if path.file_stem().and_then(|s| s.to_str()) != Some(&k.person.to_hex()) {
                return Err(store_err(&path, "the file name does not match the person id inside"));
            }
            keys.insert(k.person, k);
        }
        Ok(KeyStore { dir: dir.to_path_buf(), keys })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, person: &PersonId) -> PathBuf {
        self.dir.join("persons").join(format!("{}.key", person.to_hex()))
    }

    pub fn get(&self, person: &PersonId) -> Option<&PersonKey> {
        self.keys.get(person)
    }

    /// Every key, by person id.
    pub fn all(&self) -> impl Iterator<Item = &PersonKey> {
        self.keys.values()
    }

    /// The named person of an organisation, if the store has them.
    pub fn find(&self, organisation: &str, name: &str) -> Option<&PersonKey> {
        let (o, n) = (normalise_name(organisation), normalise_name(name));
        self.keys
            .values()
            .find(|k| normalise_name(&k.organisation) == o && k.name.as_deref().map(normalise_name) == Some(n.clone()))
    }

    /// The key of a named person of an organisation, made and stored
    /// durably if there is none yet; data of no named person gets a new
    /// key every time.
    pub fn key_for(&mut self, organisation: &str, name: Option<&str>) -> Result<PersonKey, SealError> {
        if let Some(n) = name {
            if let Some(k) = self.find(organisation, n) {
                return Ok(k.clone());
            }
        }
        // Another process (several JetStream writers sharing the directory)
        // may be making the same person's key: decide under a file lock,
        // after reading the directory again.
        let lock_path = self.dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| store_err(&lock_path, e))?;
        lock.lock().map_err(|e| store_err(&lock_path, e))?;
        self.keys = KeyStore::open(&self.dir, false)?.keys;
        if let Some(n) = name {
            if let Some(k) = self.find(organisation, n) {
                return Ok(k.clone());
            }
        }
        let k = PersonKey::generate(name, organisation)?;
        let path = self.path_of(&k.person);
        let json = Zeroizing::new(serde_json::to_vec_pretty(&k).expect("a key serialises"));
        write_private_file(&path, &json, false).map_err(|e| store_err(&path, e))?;
        self.keys.insert(k.person, k.clone());
        Ok(k)
    }

    /// A secret of this key store (made on first use, never erased): keys
    /// the command ids of commands that carry personal data, so that a
    /// retry is still recognised while the id reveals nothing about the
    /// data.
    pub fn command_secret(&self) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let path = self.dir.join("command-ids.key");
        if !path.exists() {
            let fresh = Zeroizing::new(hex::encode(random::<32>()?));
            match write_private_file(&path, fresh.as_bytes(), false) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(store_err(&path, e)),
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| store_err(&path, e))?);
        let mut k = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut k[..]).map_err(|_| store_err(&path, "not 64 hex digits"))?;
        Ok(k)
    }

    /// Destroys a person's key: overwrites the file with zeros, syncs it,
    /// deletes it and syncs the directory. Returns false if there was none.
    pub fn destroy(&mut self, person: &PersonId) -> Result<bool, SealError> {
        let path = self.path_of(person);
        if !path.exists() {
            self.keys.remove(person);
            return Ok(false);
        }
        let len = std::fs::metadata(&path).map_err(|e| store_err(&path, e))?.len();
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| store_err(&path, e))?;
        f.write_all(&vec![0u8; len as usize]).map_err(|e| store_err(&path, e))?;
        f.sync_all().map_err(|e| store_err(&path, e))?;
        drop(f);
        std::fs::remove_file(&path).map_err(|e| store_err(&path, e))?;
        let dir = path.parent().expect("has a parent");
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| store_err(dir, e))?;
        self.keys.remove(person);
        Ok(true)
    }

    /// Opens a sealed value if its key is here.
    pub fn open_value(&self, fact: &str, value: &FactValue) -> Result<FactValue, SealError> {
        match value {
            FactValue::Sealed { person, .. } => self.get(person).ok_or(SealError::NoKey(*person))?.open(fact, value),
            v => Ok(v.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_erase() {
        let dir = tempfile::tempdir().unwrap();
        let mut ks = KeyStore::open(dir.path(), true).unwrap();
        let k = ks.key_for("Tyresö kommun", Some("Anita Brynje")).unwrap();
        assert_eq!(ks.key_for("tyresö  KOMMUN", Some(" anita brynje")).unwrap().person, k.person);
        let v = FactValue::Text("anita.brynje@tyreso.se".into());
        let sealed = k.seal("epost", &v).unwrap();
        let FactValue::Sealed { ciphertext, .. } = &sealed else { panic!() };
        assert!(!ciphertext.0.windows(5).any(|w| w == b"anita"));
        assert_eq!(ks.open_value("epost", &sealed).unwrap(), v);
        assert!(ks.open_value("telefon", &sealed).is_err(), "bound to the fact's name");
        // Another process sees the same key.
        let again = KeyStore::open(dir.path(), false).unwrap();
        assert_eq!(again.open_value("epost", &sealed).unwrap(), v);
        assert!(ks.destroy(&k.person).unwrap());
        assert!(matches!(ks.open_value("epost", &sealed), Err(SealError::NoKey(_))));
        let reopened = KeyStore::open(dir.path(), false).unwrap();
        assert!(reopened.get(&k.person).is_none());
        assert!(!ks.destroy(&k.person).unwrap());
    }
}
