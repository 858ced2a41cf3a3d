//! styrlogg's trust layer, the two promises an outsider can check:
//! - the record was not rewritten: a Merkle tree over the log (RFC 9162),
//!   signed checkpoints (C2SP signed-note and tlog-checkpoint, ed25519),
//!   inclusion proofs for single events and consistency proofs between
//!   checkpoints ([`merkle`], [`note`], [`proof`]);
//! - personal data can be removed without rewriting the record: facts
//!   sealed with per-person keys kept outside the log ([`seal`]).
//!
//! It knows the engine's event types and nothing of workflows, reports or
//! where the log is stored: callers feed it events and key directories.

pub mod merkle;
pub mod note;
pub mod proof;
pub mod seal;

pub use merkle::{Frontier, ProofError, TreeBuilder, TreeHash};
pub use note::{Checkpoint, NoteError, Signer, Verifier};
pub use proof::{ConsistencyProof, InclusionProof, ProofFileError};
pub use seal::{KeyStore, PersonKey, SealError};

/// The Merkle leaf of an event: the leaf hash of its 32-byte chain hash.
pub fn event_leaf(e: &engine::RecordedEvent) -> TreeHash {
    merkle::leaf_hash(&e.hash.0)
}
