//! The storage trait every backend implements, and its request, result and
//! error types. Backends: [`crate::MemoryStore`] (tests),
//! [`crate::EmbeddedStore`] (the embedded default), [`crate::JetStreamStore`]
//! (NATS JetStream, several machines).

use crate::event::{CommandId, Hash, InstanceId, InvalidField, NewEvent, RecordedEvent};
use crate::subscription::Subscription;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the caller believes the instance's version (its last sequence
/// number, 0 when it has no events) to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the version is.
    Any,
    /// The instance must have no events yet.
    NoStream,
    /// The instance's last sequence number must be exactly this.
    Exactly(u64),
}

impl ExpectedVersion {
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exactly(v) => v == actual,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no events yet"),
            ExpectedVersion::Exactly(v) => write!(f, "version {v}"),
        }
    }
}

/// One atomic append: all events are stored, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest {
    pub instance: InstanceId,
    pub expected: ExpectedVersion,
    pub command_id: CommandId,
    pub events: Vec<NewEvent>,
}

/// Where an append landed. Returned again, unchanged, for a repeated
/// command id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub instance: InstanceId,
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub first_position: u64,
    pub last_position: u64,
    /// Hash of the last event written by the command.
    pub last_hash: Hash,
    /// True when this command id had already been committed and nothing
    /// new was written. Stored as false.
    pub deduplicated: bool,
}

/// The end of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Head {
    /// Global position of the last event, 0 for an empty log.
    pub position: u64,
    /// Hash of the last event, zero for an empty log.
    pub hash: Hash,
}

/// Operating errors: the store could not do its job. Not the caller's fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("no store at {path}: {hint}")]
    NotFound { path: String, hint: String },
    #[error("{path} is not a styrlogg store: {why}")]
    NotAStore { path: String, why: String },
    #[error("the store at {path} is in use by another process (sled holds a lock on it)")]
    Locked { path: String },
    #[error("the store at {path} cannot be written ({what}: {why}). {hint}")]
    ReadOnly { path: String, what: String, why: String, hint: String },
    #[error("I/O error: {0}")]
    Io(String),
    #[error("the log is corrupt at position {position}: {reason}. Restore from an export or a replica; `styrlogg verify` shows the first bad position")]
    Corrupt { position: u64, reason: String },
    #[error("the store refused further writes after an earlier write failed ({0}); reopen it")]
    Poisoned(String),
    #[error("the store is closed")]
    Closed,
    #[error("the log's server is unavailable: {0}")]
    Unavailable(String),
}

/// Why an append was not done. Only `Store` is an operating error; the
/// others are the caller's to fix, and in every case nothing was written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    #[error(
        "conflict on instance {instance}: expected {expected}, but it is at version {actual}; reload and decide again"
    )]
    Conflict { instance: InstanceId, expected: ExpectedVersion, actual: u64 },
    #[error("command id {command_id} was already used for {what}; a retry must repeat the same command")]
    CommandIdReused { command_id: CommandId, what: String },
    #[error("invalid append: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<InvalidField> for AppendError {
    fn from(e: InvalidField) -> Self {
        AppendError::Invalid(e.to_string())
    }
}

/// An event log. Clones share one store.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Appends `req.events` to one instance atomically, once the expected
    /// version holds; acknowledged only when durable. Repeating a committed
    /// command id returns the first outcome with `deduplicated` set.
    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, AppendError>;

    /// Loads events exported from another store, keeping every hash. They
    /// must continue this log's chain exactly.
    async fn import(&self, events: Vec<RecordedEvent>) -> Result<Head, AppendError>;

    /// Events of one instance with sequence >= `from_sequence`, in order.
    async fn read_instance(&self, instance: &InstanceId, from_sequence: u64) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `max` events with position >= `from_position`, in order.
    async fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The same events as [`EventStore::read_all`], as a page whose events
    /// can be read as borrowed views ([`crate::EventRef`]): a fold that
    /// reads few fields of most events decodes only those. Backends that
    /// keep records as stored override it; the default decodes in full.
    async fn read_records(&self, from_position: u64, max: usize) -> Result<crate::RecordPage, StoreError> {
        Ok(crate::RecordPage::from_events(self.read_all(from_position, max).await?))
    }

    /// The last position and hash.
    async fn head(&self) -> Result<Head, StoreError>;

    /// The outcome of a command id committed on `instance`, if it was: lets
    /// a caller recognise a retry before deciding again.
    async fn command_outcome(
        &self,
        instance: &InstanceId,
        command_id: &CommandId,
    ) -> Result<Option<AppendOutcome>, StoreError>;

    /// Every event from `from_position` on: first those already stored,
    /// then new ones as they are committed.
    fn subscribe(&self, from_position: u64) -> Subscription;
}
