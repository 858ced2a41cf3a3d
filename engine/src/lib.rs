//! styrlogg's event log: the event envelope, its versioned binary codec, the
//! tamper-evident hash chain, and the storage backends behind one trait.
//!
//! The engine knows events, instances, sequence numbers and hashes. It knows
//! nothing of which steps a workflow has or what a municipality must do:
//! that lives in workflow definitions, read by crates above this one.

pub mod any;
pub mod chain;
pub mod clock;
pub mod codec;
pub mod embedded;
pub mod event;
pub mod export;
pub mod jetstream;
pub mod limits;
pub mod memory;
pub mod records;
pub use compact_str::CompactString;
pub use embedded::{EmbeddedStore, OpenMode};
pub mod store;

mod commit;
pub use commit::import_chunks;
mod subscription;

pub use any::AnyStore;
pub use chain::{ChainVerifier, VerifyReport};
pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use event::{
    Actor, Bytes, CommandId, DeadlineChange, EventBody, EventId, Fact, FactValue, Hash, InstanceId, Lateness, NewEvent,
    Payload, PersonId, PersonKind, PublicKey, RecordedEvent, SealNonce, SYSTEM_INSTANCE,
};
pub use jetstream::{JetStreamOptions, JetStreamStore};
pub use memory::MemoryStore;
pub use records::{EventRef, RecordPage, StepRef};
pub use store::{AppendError, AppendOutcome, AppendRequest, EventStore, ExpectedVersion, Head, StoreError};
pub use subscription::Subscription;
