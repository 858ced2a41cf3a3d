//! Proof files: what `styrlogg prove` writes and `styrlogg check-proof`
//! reads, as plain text a person can read and any RFC 9162 verifier can
//! use.
//!
//! Inclusion proof (one event in the tree a checkpoint names):
//! ```text
//! styrlogg inclusion proof v1
//! origin <the checkpoint's origin>
//! tree-size <leaves in the tree the proof is for>
//! leaf-index <event position - 1>
//! event <the event as one JSON line, as `styrlogg export` writes it>
//! hash <base64 SHA-256>          (one line per proof hash, RFC 9162 order)
//! ```
//! Consistency proof (the tree of a later checkpoint extends an earlier one):
//! ```text
//! styrlogg consistency proof v1
//! origin <origin>
//! old-size <m>
//! new-size <n>
//! hash <base64 SHA-256>          (RFC 9162 §2.1.4 order)
//! ```

use crate::merkle::{self, ProofError, TreeHash};
use crate::note::Checkpoint;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use engine::{codec, RecordedEvent};

const INCLUSION_HEADER: &str = "styrlogg inclusion proof v1";
const CONSISTENCY_HEADER: &str = "styrlogg consistency proof v1";
/// Largest proof file we read, in bytes (an event is at most 64 KiB; its
/// JSON somewhat more; a proof has at most 128 hashes).
pub const PROOF_BYTES_MAX: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProofFileError {
    #[error("not a styrlogg proof: {0}")]
    Malformed(String),
    #[error("the event in the proof does not match its own hash: {0}")]
    Event(String),
    #[error("the proof is for a tree of {proof} events, the checkpoint for {checkpoint}: use the checkpoint the proof was made for (`styrlogg prove EVENT --checkpoint FILE`)")]
    SizeMismatch { proof: u64, checkpoint: u64 },
    #[error("the proof is for log {proof:?}, the checkpoint is of log {checkpoint:?}")]
    OriginMismatch { proof: String, checkpoint: String },
    #[error("the event at position {position} cannot be leaf {index}")]
    PositionMismatch { position: u64, index: u64 },
    #[error("the proof does not hold: {0}")]
    Proof(#[from] ProofError),
}

fn malformed(why: impl Into<String>) -> ProofFileError {
    ProofFileError::Malformed(why.into())
}

/// Reads `key value` lines in a fixed order.
struct Lines<'a> {
    it: std::str::Lines<'a>,
    n: usize,
}

impl<'a> Lines<'a> {
    fn field(&mut self, key: &str) -> Result<&'a str, ProofFileError> {
        self.n += 1;
        let line = self.it.next().ok_or_else(|| malformed(format!("line {}: missing `{key} ...`", self.n)))?;
        line.strip_prefix(key)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| malformed(format!("line {}: expected `{key} ...`, found {:?}", self.n, short(line))))
    }

    fn number(&mut self, key: &str) -> Result<u64, ProofFileError> {
        let v = self.field(key)?;
        v.parse().map_err(|_| malformed(format!("line {}: {key} {v:?} is not a number", self.n)))
    }

    fn hashes(&mut self) -> Result<Vec<TreeHash>, ProofFileError> {
        let mut out = Vec::new();
        for line in self.it.by_ref() {
            self.n += 1;
            if line.is_empty() {
                continue;
            }
            let v = line.strip_prefix("hash ").ok_or_else(|| {
                malformed(format!("line {}: expected `hash BASE64`, found {:?}", self.n, short(line)))
            })?;
            let b = B64.decode(v).map_err(|_| malformed(format!("line {}: the hash is not base64", self.n)))?;
            out.push(b.try_into().map_err(|_| malformed(format!("line {}: a hash is 32 bytes", self.n)))?);
            if out.len() > 128 {
                return Err(malformed("more than 128 hashes"));
            }
        }
        Ok(out)
    }
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

fn start<'a>(text: &'a str, header: &str) -> Result<Lines<'a>, ProofFileError> {
    if text.len() > PROOF_BYTES_MAX {
        return Err(malformed(format!("{} bytes; the limit is {PROOF_BYTES_MAX}", text.len())));
    }
    let mut it = text.lines();
    match it.next() {
        Some(h) if h == header => Ok(Lines { it, n: 1 }),
        Some(h) => Err(malformed(format!("the first line is {:?}, not {header:?}", short(h)))),
        None => Err(malformed("the file is empty")),
    }
}

/// One event and the hashes that lead from it to a checkpoint's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub origin: String,
    pub tree_size: u64,
    pub leaf_index: u64,
    pub event: RecordedEvent,
    pub hashes: Vec<TreeHash>,
}

impl InclusionProof {
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{INCLUSION_HEADER}\norigin {}\ntree-size {}\nleaf-index {}\nevent {}\n",
            self.origin,
            self.tree_size,
            self.leaf_index,
            serde_json::to_string(&self.event).expect("events serialise")
        );
        for h in &self.hashes {
            s.push_str(&format!("hash {}\n", B64.encode(h)));
        }
        s
    }

    pub fn parse(text: &str) -> Result<InclusionProof, ProofFileError> {
        let mut l = start(text, INCLUSION_HEADER)?;
        let origin = l.field("origin")?.to_string();
        let tree_size = l.number("tree-size")?;
        let leaf_index = l.number("leaf-index")?;
        let event = l.field("event")?;
        let event: RecordedEvent = serde_json::from_str(event)
            .map_err(|e| malformed(format!("line 5: the event is not an exported event: {e}")))?;
        let hashes = l.hashes()?;
        Ok(InclusionProof { origin, tree_size, leaf_index, event, hashes })
    }

    /// Checks the proof against a checkpoint whose signature the caller has
    /// checked: the event re-encodes to its hash, sits at the leaf the
    /// proof names, and the hashes lead to the checkpoint's root.
    pub fn check(&self, checkpoint: &Checkpoint) -> Result<(), ProofFileError> {
        if self.origin != checkpoint.origin {
            return Err(ProofFileError::OriginMismatch {
                proof: self.origin.clone(),
                checkpoint: checkpoint.origin.clone(),
            });
        }
        if self.tree_size != checkpoint.size {
            return Err(ProofFileError::SizeMismatch { proof: self.tree_size, checkpoint: checkpoint.size });
        }
        codec::reseal(&self.event).map_err(|e| ProofFileError::Event(e.to_string()))?;
        if self.event.event.position != self.leaf_index + 1 {
            return Err(ProofFileError::PositionMismatch {
                position: self.event.event.position,
                index: self.leaf_index,
            });
        }
        let leaf = crate::event_leaf(&self.event);
        merkle::verify_inclusion(self.leaf_index, self.tree_size, &leaf, &self.hashes, &checkpoint.root)?;
        Ok(())
    }
}

/// The hashes that show a later tree extends an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub origin: String,
    pub old_size: u64,
    pub new_size: u64,
    pub hashes: Vec<TreeHash>,
}

impl ConsistencyProof {
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{CONSISTENCY_HEADER}\norigin {}\nold-size {}\nnew-size {}\n",
            self.origin, self.old_size, self.new_size
        );
        for h in &self.hashes {
            s.push_str(&format!("hash {}\n", B64.encode(h)));
        }
        s
    }

    pub fn parse(text: &str) -> Result<ConsistencyProof, ProofFileError> {
        let mut l = start(text, CONSISTENCY_HEADER)?;
        let origin = l.field("origin")?.to_string();
        let old_size = l.number("old-size")?;
        let new_size = l.number("new-size")?;
        let hashes = l.hashes()?;
        Ok(ConsistencyProof { origin, old_size, new_size, hashes })
    }

    /// Checks the proof between two checkpoints whose signatures the caller
    /// has checked.
    pub fn check(&self, old: &Checkpoint, new: &Checkpoint) -> Result<(), ProofFileError> {
        for c in [old, new] {
            if self.origin != c.origin {
                return Err(ProofFileError::OriginMismatch {
                    proof: self.origin.clone(),
                    checkpoint: c.origin.clone(),
                });
            }
        }
        if self.old_size != old.size {
            return Err(ProofFileError::SizeMismatch { proof: self.old_size, checkpoint: old.size });
        }
        if self.new_size != new.size {
            return Err(ProofFileError::SizeMismatch { proof: self.new_size, checkpoint: new.size });
        }
        merkle::verify_consistency(old.size, new.size, &self.hashes, &old.root, &new.root)?;
        Ok(())
    }
}

/// Which kind of proof a file holds, by its first line.
pub fn kind_of(text: &str) -> Option<&'static str> {
    match text.lines().next() {
        Some(INCLUSION_HEADER) => Some("inclusion"),
        Some(CONSISTENCY_HEADER) => Some("consistency"),
        _ => None,
    }
}
