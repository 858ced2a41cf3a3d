//! Either backend behind one type, chosen at run time: the embedded sled
//! store by default, or a JetStream stream shared by several machines.

use crate::embedded::EmbeddedStore;
use crate::event::{CommandId, InstanceId, RecordedEvent};
use crate::jetstream::JetStreamStore;
use crate::store::{AppendError, AppendOutcome, AppendRequest, EventStore, Head, StoreError};
use crate::subscription::Subscription;

/// The log a command works on. Clones share one store.
#[derive(Clone)]
pub enum AnyStore {
    Embedded(EmbeddedStore),
    JetStream(JetStreamStore),
}

impl AnyStore {
    /// Lets go of the store: the sled writer finishes and flushes; a
    /// JetStream connection is dropped.
    pub fn close(self) -> Result<(), StoreError> {
        match self {
            AnyStore::Embedded(s) => s.close(),
            AnyStore::JetStream(s) => s.close(),
        }
    }

    /// Where the log is, for messages: a directory, or a server and stream.
    pub fn describe(&self) -> String {
        match self {
            AnyStore::Embedded(s) => s.path().display().to_string(),
            AnyStore::JetStream(s) => format!("{} stream {}", s.options().url, s.options().stream),
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Embedded($s) => $e,
            AnyStore::JetStream($s) => $e,
        }
    };
}

#[async_trait::async_trait]
impl EventStore for AnyStore {
    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, AppendError> {
        each!(self, s => s.append(req).await)
    }
    async fn import(&self, events: Vec<RecordedEvent>) -> Result<Head, AppendError> {
        each!(self, s => s.import(events).await)
    }
    async fn read_instance(&self, instance: &InstanceId, from_sequence: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        each!(self, s => s.read_instance(instance, from_sequence).await)
    }
    async fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        each!(self, s => s.read_all(from_position, max).await)
    }
    async fn read_records(&self, from_position: u64, max: usize) -> Result<crate::RecordPage, StoreError> {
        each!(self, s => s.read_records(from_position, max).await)
    }
    async fn head(&self) -> Result<Head, StoreError> {
        each!(self, s => s.head().await)
    }
    async fn command_outcome(
        &self,
        instance: &InstanceId,
        command_id: &CommandId,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        each!(self, s => s.command_outcome(instance, command_id).await)
    }
    fn subscribe(&self, from_position: u64) -> Subscription {
        each!(self, s => s.subscribe(from_position))
    }
}
