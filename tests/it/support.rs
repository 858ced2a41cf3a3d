//! Shared helpers: building events and requests, and the backends the
//! conformance suite runs against.

use engine::{
    Actor, AppendRequest, ChainVerifier, CommandId, EmbeddedStore, EventStore, ExpectedVersion, InstanceId,
    ManualClock, MemoryStore, NewEvent, OpenMode, Payload, RecordedEvent,
};
use std::sync::Arc;

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new("2012-08-14T09:00:00Z".parse().unwrap()))
}

pub fn note(text: &str) -> NewEvent {
    NewEvent {
        occurred_on: jiff::civil::date(2012, 8, 14),
        actor: Actor::new("Lena Sandqvist", "sekreterare"),
        payload: Payload::NoteAdded { text: text.into() },
    }
}

pub fn instance(id: &str) -> InstanceId {
    InstanceId::new(id).unwrap()
}

pub fn req(inst: &str, expected: ExpectedVersion, cmd: &str, n: usize) -> AppendRequest {
    AppendRequest {
        instance: instance(inst),
        expected,
        command_id: CommandId::new(cmd).unwrap(),
        events: (0..n).map(|i| note(&format!("{cmd} #{i}"))).collect(),
    }
}

pub async fn all_events(store: &impl EventStore) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    loop {
        let page = store.read_all(out.len() as u64 + 1, 100).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Verifies the whole chain and returns the number of events.
pub async fn verify(store: &impl EventStore) -> u64 {
    let mut v = ChainVerifier::new();
    for e in all_events(store).await {
        v.check(&e).unwrap_or_else(|b| panic!("chain broken: {b}"));
    }
    let head = store.head().await.unwrap();
    assert_eq!(v.position(), head.position, "verified length equals head");
    assert_eq!(v.head(), head.hash, "verified hash equals head");
    v.finish().events
}

/// A backend under test: opens a store, and reopens it after close.
pub trait Backend: Send {
    type Store: EventStore + Clone + 'static;
    fn open(&mut self) -> Self::Store;
    fn close(&mut self, store: Self::Store);
    /// A second, independent, empty store of the same kind.
    fn fresh(&mut self) -> Self::Store;
}

pub struct Memory {
    store: MemoryStore,
    clock: Arc<ManualClock>,
}

impl Memory {
    pub fn new() -> Self {
        let clock = clock();
        Memory { store: MemoryStore::new(clock.clone()), clock }
    }
}

impl Backend for Memory {
    type Store = MemoryStore;
    fn open(&mut self) -> MemoryStore {
        self.store.clone()
    }
    fn close(&mut self, _store: MemoryStore) {}
    fn fresh(&mut self) -> MemoryStore {
        MemoryStore::new(self.clock.clone())
    }
}

pub struct Sled {
    dir: tempfile::TempDir,
    others: Vec<tempfile::TempDir>,
    clock: Arc<ManualClock>,
}

impl Sled {
    pub fn new() -> Self {
        Sled { dir: tempfile::tempdir().unwrap(), others: Vec::new(), clock: clock() }
    }
}

impl Backend for Sled {
    type Store = EmbeddedStore;
    fn open(&mut self) -> EmbeddedStore {
        EmbeddedStore::open(&self.dir.path().join("store"), OpenMode::CreateIfMissing, self.clock.clone()).unwrap()
    }
    fn close(&mut self, store: EmbeddedStore) {
        store.close().unwrap();
    }
    fn fresh(&mut self) -> EmbeddedStore {
        let dir = tempfile::tempdir().unwrap();
        let store =
            EmbeddedStore::open(&dir.path().join("store"), OpenMode::CreateIfMissing, self.clock.clone()).unwrap();
        self.others.push(dir);
        store
    }
}

impl Memory {
    pub fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }
}

impl Sled {
    pub fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }
}

/// The JetStream backend for the storage conformance suite: its own server,
/// and a stream (with its own subjects) per store.
pub struct Nats {
    pub server: crate::nats::NatsServer,
    clock: std::sync::Arc<engine::ManualClock>,
    stream: String,
    streams: u32,
}

impl Nats {
    pub fn new() -> Nats {
        Nats { server: crate::nats::NatsServer::start(), clock: clock(), stream: "T0".into(), streams: 0 }
    }

    pub fn options(&self, stream: &str) -> engine::JetStreamOptions {
        engine::JetStreamOptions {
            url: self.server.url.clone(),
            stream: stream.to_string(),
            subject_prefix: format!("{}.log", stream.to_lowercase()),
            ..Default::default()
        }
    }

    pub fn clock(&self) -> std::sync::Arc<engine::ManualClock> {
        self.clock.clone()
    }

    fn connect(&self, stream: &str) -> engine::JetStreamStore {
        let opts = self.options(stream);
        let clock = self.clock.clone();
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(engine::JetStreamStore::open(
                opts,
                engine::OpenMode::CreateIfMissing,
                clock,
            ))
        })
        .unwrap()
    }
}

impl Backend for Nats {
    type Store = engine::JetStreamStore;
    fn open(&mut self) -> engine::JetStreamStore {
        self.connect(&self.stream.clone())
    }
    fn close(&mut self, store: engine::JetStreamStore) {
        store.close().unwrap();
    }
    fn fresh(&mut self) -> engine::JetStreamStore {
        self.streams += 1;
        self.connect(&format!("T{}", self.streams))
    }
}
