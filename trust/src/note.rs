//! Signed notes (C2SP signed-note) with ed25519 keys, and checkpoints in
//! the C2SP tlog-checkpoint text format: the same bytes Go's
//! `golang.org/x/mod/sumdb/note` and transparency-dev tools read.
//!
//! A note is text ending in a newline, a blank line, and signature lines
//! `— <key name> <base64(key id (4 bytes) || signature (64 bytes))>`. The
//! key id is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public
//! key). A verifier key is written `<name>+<key id hex>+<base64(0x01 ||
//! public key)>`; a signer key `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01
//! || seed)>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

const ALG_ED25519: u8 = 1;
const SIG_PREFIX: &str = "\u{2014} ";
/// Longest note we read, in bytes.
pub const NOTE_BYTES_MAX: usize = 64 * 1024;
/// Most signature lines we read on one note.
const SIGNATURES_MAX: usize = 100;

/// What is wrong with a key, a note or a checkpoint. Each says what was
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("not a verifier key (expected NAME+KEYID+BASE64, as `styrlogg key public` prints): {0}")]
    BadVerifierKey(String),
    #[error("not a signing key file (expected one line PRIVATE+KEY+NAME+KEYID+BASE64, as `styrlogg key generate` writes): {0}")]
    BadSignerKey(String),
    #[error("key name {0:?} is not allowed: it must be non-empty without spaces or '+'")]
    BadKeyName(String),
    #[error("not a signed note: {0}")]
    Malformed(String),
    #[error("the note is not signed by {wanted} (signed by: {found})")]
    NotSignedBy { wanted: String, found: String },
    #[error("the signature by {0} does not verify: the note was changed or the key is another one")]
    BadSignature(String),
    #[error("not a checkpoint: {0}")]
    BadCheckpoint(String),
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::BadKeyName(name.to_string()));
    }
    Ok(())
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A public key and its name: checks notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    pub key_id: [u8; 4],
    pub key: VerifyingKey,
}

impl Verifier {
    pub fn new(name: &str, public: [u8; 32]) -> Result<Verifier, NoteError> {
        check_name(name)?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|e| NoteError::BadVerifierKey(format!("not an ed25519 public key: {e}")))?;
        Ok(Verifier { name: name.to_string(), key_id: key_id(name, &public), key })
    }

    /// Parses `NAME+KEYID+BASE64`.
    pub fn parse(vkey: &str) -> Result<Verifier, NoteError> {
        let vkey = vkey.trim();
        let bad = |why: &str| NoteError::BadVerifierKey(why.to_string());
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("it has fewer than three '+'-separated parts"));
        };
        let data = B64.decode(data).map_err(|e| bad(&format!("the key data is not base64: {e}")))?;
        if data.len() != 33 || data[0] != ALG_ED25519 {
            return Err(bad("the key data is not an ed25519 key (0x01 and 32 bytes)"));
        }
        let mut public = [0u8; 32];
        public.copy_from_slice(&data[1..]);
        let v = Verifier::new(name, public)?;
        if id.len() != 8 || hex::encode(v.key_id) != id.to_lowercase() {
            return Err(bad(&format!("the key id {id:?} does not match the name and key")));
        }
        Ok(v)
    }

    /// `NAME+KEYID+BASE64`: what to publish.
    pub fn to_vkey(&self) -> String {
        let mut data = vec![ALG_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(self.key_id), B64.encode(data))
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
}

/// A private key and its name: signs notes.
pub struct Signer {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.name)
    }
}

impl Signer {
    /// A new key from the operating system's random source.
    pub fn generate(name: &str) -> Result<Signer, NoteError> {
        check_name(name)?;
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::getrandom(seed.as_mut()).map_err(|e| NoteError::BadSignerKey(format!("no randomness: {e}")))?;
        Ok(Signer { name: name.to_string(), key: SigningKey::from_bytes(&seed) })
    }

    /// Parses `PRIVATE+KEY+NAME+KEYID+BASE64`.
    pub fn parse(skey: &str) -> Result<Signer, NoteError> {
        let bad = |why: &str| NoteError::BadSignerKey(why.to_string());
        let rest =
            skey.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(|| bad("it does not start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("it has too few '+'-separated parts"));
        };
        check_name(name)?;
        let data = zeroize::Zeroizing::new(B64.decode(data).map_err(|_| bad("the key data is not base64"))?);
        if data.len() != 33 || data[0] != ALG_ED25519 {
            return Err(bad("the key data is not an ed25519 key"));
        }
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&data[1..]);
        let s = Signer { name: name.to_string(), key: SigningKey::from_bytes(&seed) };
        if hex::encode(s.verifier().key_id) != id.to_lowercase() {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(s)
    }

    /// `PRIVATE+KEY+NAME+KEYID+BASE64`: the key file's content.
    pub fn to_skey(&self) -> zeroize::Zeroizing<String> {
        let mut data = zeroize::Zeroizing::new(vec![ALG_ED25519]);
        data.extend_from_slice(self.key.as_bytes());
        zeroize::Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(self.verifier().key_id),
            B64.encode(&*data)
        ))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> Verifier {
        let public = self.key.verifying_key().to_bytes();
        Verifier { name: self.name.clone(), key_id: key_id(&self.name, &public), key: self.key.verifying_key() }
    }

    /// The signature line for `text`.
    fn signature_line(&self, text: &str) -> String {
        let sig = self.key.sign(text.as_bytes());
        let mut data = self.verifier().key_id.to_vec();
        data.extend_from_slice(&sig.to_bytes());
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(data))
    }

    /// Signs `text` (which must end in a newline and hold no blank line):
    /// the whole note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        Ok(format!("{text}\n{}", self.signature_line(text)))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text must end with a newline".into()));
    }
    if text.contains("\n\n") {
        return Err(NoteError::Malformed("the text must not contain a blank line".into()));
    }
    if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\n') {
        return Err(NoteError::Malformed(format!("the text contains the control character U+{:04X}", c as u32)));
    }
    Ok(())
}

/// A note's text and who signed it (the key names of every signature that
/// a given verifier checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub text: String,
    pub verified_by: Vec<String>,
}

/// A signature line: key name, key id, signature.
type SignatureLine = (String, [u8; 4], [u8; 64]);

/// Splits a note into its text and signature lines.
fn split_note(note: &str) -> Result<(&str, Vec<SignatureLine>), NoteError> {
    if note.len() > NOTE_BYTES_MAX {
        return Err(NoteError::Malformed(format!("{} bytes; the limit is {NOTE_BYTES_MAX}", note.len())));
    }
    let at = note
        .rfind("\n\n")
        .ok_or_else(|| NoteError::Malformed("no blank line between the text and the signatures".into()))?;
    let (text, sigs) = (&note[..at + 1], &note[at + 2..]);
    check_text(text)?;
    if !sigs.ends_with('\n') {
        return Err(NoteError::Malformed("the last signature line does not end with a newline".into()));
    }
    let mut out = Vec::new();
    for line in sigs.lines() {
        let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| {
            NoteError::Malformed(format!("signature line {line:?} does not start with an em dash and a space"))
        })?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| NoteError::Malformed(format!("signature line {line:?} has no signature")))?;
        check_name(name).map_err(|_| NoteError::Malformed(format!("bad key name in {line:?}")))?;
        let data = B64.decode(b64).map_err(|_| NoteError::Malformed(format!("signature of {name} is not base64")))?;
        if data.len() != 68 {
            return Err(NoteError::Malformed(format!("signature of {name} is not an ed25519 signature")));
        }
        let mut id = [0u8; 4];
        id.copy_from_slice(&data[..4]);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&data[4..]);
        out.push((name.to_string(), id, sig));
        if out.len() > SIGNATURES_MAX {
            return Err(NoteError::Malformed(format!("more than {SIGNATURES_MAX} signatures")));
        }
    }
    if out.is_empty() {
        return Err(NoteError::Malformed("no signature lines".into()));
    }
    Ok((text, out))
}

/// Checks a note against known keys: it must carry a valid signature by at
/// least one of them, and no invalid signature by any of them.
pub fn open(note: &str, verifiers: &[Verifier]) -> Result<Opened, NoteError> {
    let (text, sigs) = split_note(note)?;
    let mut verified_by = Vec::new();
    for (name, id, sig) in &sigs {
        if let Some(v) = verifiers.iter().find(|v| v.name == *name && v.key_id == *id) {
            let sig = ed25519_dalek::Signature::from_bytes(sig);
            v.key.verify_strict(text.as_bytes(), &sig).map_err(|_| NoteError::BadSignature(v.to_vkey()))?;
            verified_by.push(name.clone());
        }
    }
    if verified_by.is_empty() {
        return Err(NoteError::NotSignedBy {
            wanted: verifiers.iter().map(|v| v.to_vkey()).collect::<Vec<_>>().join(", "),
            found: sigs.iter().map(|(n, id, _)| format!("{n}+{}", hex::encode(id))).collect::<Vec<_>>().join(", "),
        });
    }
    Ok(Opened { text: text.to_string(), verified_by })
}

/// The text of a signed note without checking any signature (to show it,
/// or to find out which key to check it with).
pub fn text_of(note: &str) -> Result<String, NoteError> {
    split_note(note).map(|(t, _)| t.to_string())
}

/// A checkpoint in the C2SP tlog-checkpoint format: origin, tree size,
/// root hash, and extension lines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkpoint {
    /// The log's name (by convention the signing key's name).
    pub origin: String,
    pub size: u64,
    #[serde(serialize_with = "hex_root")]
    pub root: [u8; 32],
    /// Further lines, e.g. `styrlogg-time 2026-01-05T09:00:00Z`.
    pub extensions: Vec<String>,
}

fn hex_root<S: serde::Serializer>(r: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(r))
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n[extension\n]...`.
    pub fn to_text(&self) -> String {
        let mut s = format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root));
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses the note text of a checkpoint: lines end in `\n` only, and
    /// hold no control characters, so the text written back is the same.
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |why: String| NoteError::BadCheckpoint(why);
        let body = text.strip_suffix('\n').unwrap_or(text);
        if let Some(c) = body.chars().find(|c| c.is_control() && *c != '\n') {
            return Err(bad(format!("the text contains the control character U+{:04X}", c as u32)));
        }
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| bad("no origin line".into()))?;
        let size = lines.next().ok_or_else(|| bad("no tree size line".into()))?;
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || (size.len() > 1 && size.starts_with('0')) {
            return Err(bad(format!("tree size {size:?} is not a decimal number")));
        }
        let size: u64 = size.parse().map_err(|e| bad(format!("tree size {size:?}: {e}")))?;
        let root = lines.next().ok_or_else(|| bad("no root hash line".into()))?;
        let root_bytes = B64.decode(root).map_err(|_| bad(format!("root hash {root:?} is not base64")))?;
        let root: [u8; 32] =
            root_bytes.try_into().map_err(|_| bad("the root hash is not 32 bytes (SHA-256)".to_string()))?;
        let extensions: Vec<String> = lines.map(String::from).collect();
        if extensions.iter().any(|e| e.is_empty()) {
            return Err(bad("an empty extension line".into()));
        }
        Ok(Checkpoint { origin: origin.to_string(), size, root, extensions })
    }

    /// The value of extension line `key value`, if there is one.
    pub fn extension(&self, key: &str) -> Option<&str> {
        self.extensions.iter().find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example key and note of Go's golang.org/x/mod/sumdb/note.
    const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn interoperates_with_go_sumdb_note() {
        let signer = Signer::parse(SKEY).unwrap();
        assert_eq!(signer.verifier().to_vkey(), VKEY);
        assert_eq!(&*signer.to_skey(), SKEY);
        let note = signer.sign(TEXT).unwrap();
        assert_eq!(note, format!("{TEXT}\n{SIG}"));
        let v = Verifier::parse(VKEY).unwrap();
        assert_eq!(open(&note, &[v]).unwrap().text, TEXT);
    }

    #[test]
    fn tampering_and_strangers_are_refused() {
        let signer = Signer::generate("example.org/log").unwrap();
        let other = Signer::generate("example.org/log").unwrap();
        let note = signer.sign("example.org/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
        open(&note, &[signer.verifier()]).unwrap();
        assert!(matches!(open(&note, &[other.verifier()]), Err(NoteError::NotSignedBy { .. })));
        let changed = note.replace("\n5\n", "\n6\n");
        assert!(matches!(open(&changed, &[signer.verifier()]), Err(NoteError::BadSignature(_))));
        assert!(open("no blank line\n", &[signer.verifier()]).is_err());
    }

    #[test]
    fn checkpoints_round_trip() {
        let c = Checkpoint {
            origin: "example.org/log".into(),
            size: 12,
            root: [9; 32],
            extensions: vec!["styrlogg-time 2026-01-05T09:00:00Z".into()],
        };
        let back = Checkpoint::parse(&c.to_text()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.extension("styrlogg-time"), Some("2026-01-05T09:00:00Z"));
        assert!(Checkpoint::parse("o\n012\nAAAA\n").is_err());
        assert!(Checkpoint::parse("o\n12\nAAAA\n").is_err());
        // Found by fuzzing: `lines()` took "x\r\r\n" as the line "x\r", which
        // wrote back and read again as "x".
        let crlf = format!("{}styrlogg-time 2026\r\r\n", Checkpoint { extensions: Vec::new(), ..c.clone() }.to_text());
        assert!(matches!(Checkpoint::parse(&crlf), Err(NoteError::BadCheckpoint(_))));
    }
}
