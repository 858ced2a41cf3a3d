//! The embedded default backend on sled, with one writer thread that
//! group-commits and makes every acknowledgement durable.
//!
//! Write path (see ARCHITECTURE.md): requests queue (bounded) in front of
//! the writer thread; it drains up to a group's worth, decides each against
//! the stored state plus what the group already staged, puts all accepted
//! events, index entries and the new head in one `sled::Batch` (atomic),
//! applies it, calls `Db::flush` (sled writes its log with
//! `sync_file_range`, which does not empty the drive's write cache), then
//! `fdatasync`s sled's data file, and only then answers the callers and
//! announces the new head to readers. Readers never see past the last
//! durable head.
//!
//! Key layout in sled's default tree (one tree, so one batch is atomic):
//! - `m` → store marker and layout version
//! - `h` → postcard([`Head`]) of the last durable commit
//! - `e` + position (u64 BE) → stored record (see [`crate::codec`])
//! - `s` + len (u16 BE) + instance id + sequence (u64 BE) → position (u64 BE)
//! - `c` + command id → postcard([`AppendOutcome`])

use crate::clock::Clock;
use crate::codec;
use crate::commit::{Index, Stage, Staged, Stager};
use crate::event::{CommandId, InstanceId, RecordedEvent};
use crate::limits;
use crate::store::{AppendError, AppendOutcome, AppendRequest, EventStore, Head, StoreError};
use crate::subscription::Subscription;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{mpsc, oneshot, watch};

const MARKER_KEY: &[u8] = b"m";
const MARKER: &[u8] = b"styrlogg store layout 1";
const HEAD_KEY: &[u8] = b"h";

fn event_key(position: u64) -> [u8; 9] {
    let mut k = [b'e'; 9];
    k[1..].copy_from_slice(&position.to_be_bytes());
    k
}

fn stream_prefix(instance: &InstanceId) -> Vec<u8> {
    let id = instance.as_str().as_bytes();
    let mut k = Vec::with_capacity(3 + id.len() + 8);
    k.push(b's');
    k.extend_from_slice(&(id.len() as u16).to_be_bytes());
    k.extend_from_slice(id);
    k
}

fn stream_key(instance: &InstanceId, sequence: u64) -> Vec<u8> {
    let mut k = stream_prefix(instance);
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

fn command_key(command: &CommandId) -> Vec<u8> {
    let mut k = vec![b'c'];
    k.extend_from_slice(command.as_str().as_bytes());
    k
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

enum Request {
    Append(AppendRequest, oneshot::Sender<Result<AppendOutcome, AppendError>>),
    Import(Vec<RecordedEvent>, oneshot::Sender<Result<Head, AppendError>>),
}

impl Request {
    fn events(&self) -> usize {
        match self {
            Request::Append(r, _) => r.events.len(),
            Request::Import(e, _) => e.len(),
        }
    }
}

/// Whether [`SledStore::open`] may create a new store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the directory and the store when missing.
    CreateIfMissing,
    /// Fail when there is no store yet.
    MustExist,
}

/// The sled-backed event log. Clones share one store.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    path: PathBuf,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    heads: watch::Receiver<Head>,
}

struct SledIndex<'a>(&'a sled::Db);

impl Index for SledIndex<'_> {
    fn instance_version(&self, id: &InstanceId) -> Result<u64, StoreError> {
        match self.0.scan_prefix(stream_prefix(id)).next_back() {
            None => Ok(0),
            Some(kv) => {
                let (k, _) = kv.map_err(io)?;
                be_u64(&k[k.len() - 8..])
                    .ok_or_else(|| StoreError::Corrupt { position: 0, reason: "malformed stream index key".into() })
            }
        }
    }

    fn command(&self, id: &CommandId) -> Result<Option<AppendOutcome>, StoreError> {
        match self.0.get(command_key(id)).map_err(io)? {
            None => Ok(None),
            Some(v) => postcard::from_bytes(&v).map(Some).map_err(|e| StoreError::Corrupt {
                position: 0,
                reason: format!("command index entry for {id} does not decode: {e}"),
            }),
        }
    }
}

fn decode_at(position: u64, bytes: &[u8]) -> Result<RecordedEvent, StoreError> {
    let e = codec::decode(bytes).map_err(|e| StoreError::Corrupt { position, reason: e.to_string() })?;
    if e.event.position != position {
        return Err(StoreError::Corrupt {
            position,
            reason: format!("record stored at position {position} says it is position {}", e.event.position),
        });
    }
    Ok(e)
}

impl SledStore {
    /// Opens (or creates) the store in directory `path`.
    pub fn open(path: &Path, mode: OpenMode, clock: Arc<dyn Clock>) -> Result<SledStore, StoreError> {
        let shown = path.display().to_string();
        let not_a_store = |why: &str| StoreError::NotAStore { path: shown.clone(), why: why.into() };
        if path.exists() && !path.is_dir() {
            return Err(not_a_store("it is a file, not a directory"));
        }
        let empty = !path.exists() || std::fs::read_dir(path).map_err(io)?.next().is_none();
        if empty && mode == OpenMode::MustExist {
            return Err(StoreError::NotFound {
                path: shown,
                hint: "give --data the directory of an existing store, or import or record something first".into(),
            });
        }
        let has_sled_files = path.join("conf").is_file() && path.join("db").is_file();
        if !empty && !has_sled_files {
            return Err(not_a_store("the directory holds other files and no sled database"));
        }
        std::fs::create_dir_all(path).map_err(io)?;
        let db = sled::Config::new().path(path).open().map_err(|e| {
            let text = e.to_string();
            if text.contains("lock") {
                StoreError::Locked { path: shown.clone() }
            } else {
                StoreError::Io(format!("opening sled at {shown}: {text}"))
            }
        })?;
        match db.get(MARKER_KEY).map_err(io)? {
            Some(m) if m.as_ref() == MARKER => {}
            Some(_) => return Err(not_a_store("its marker names another layout version")),
            None if db.iter().next().is_none() => {
                db.insert(MARKER_KEY, MARKER).map_err(io)?;
                db.flush().map_err(io)?;
                File::open(path.join("db")).and_then(|f| f.sync_all()).map_err(io)?;
                File::open(path).and_then(|d| d.sync_all()).map_err(io)?;
            }
            None => return Err(not_a_store("it is a sled database without a styrlogg marker")),
        }
        let (head, last_recorded_at) = Self::load_head(&db)?;
        let data_file = std::fs::OpenOptions::new().write(true).open(path.join("db")).map_err(io)?;
        let (requests, rx) = mpsc::channel(limits::WRITE_QUEUE_DEPTH);
        let (heads_tx, heads) = watch::channel(head);
        let writer = Writer {
            db: db.clone(),
            data_file,
            clock,
            stager: Stager::new(head, last_recorded_at),
            heads: heads_tx,
            poisoned: None,
        };
        let handle =
            std::thread::Builder::new().name("styrlogg-writer".into()).spawn(move || writer.run(rx)).map_err(io)?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                db,
                path: path.to_path_buf(),
                requests: Mutex::new(Some(requests)),
                writer: Mutex::new(Some(handle)),
                heads,
            }),
        })
    }

    /// The head as recorded, cross-checked with the last stored event.
    fn load_head(db: &sled::Db) -> Result<(Head, Option<jiff::Timestamp>), StoreError> {
        let recorded: Head = match db.get(HEAD_KEY).map_err(io)? {
            None => Head::default(),
            Some(v) => postcard::from_bytes(&v).map_err(|e| StoreError::Corrupt {
                position: 0,
                reason: format!("the head record does not decode: {e}"),
            })?,
        };
        let last = db.range(event_key(0)..=event_key(u64::MAX)).next_back().transpose().map_err(io)?;
        let (actual, recorded_at) = match last {
            None => (Head::default(), None),
            Some((k, v)) => {
                let position = be_u64(&k[1..]).unwrap_or(0);
                let e = decode_at(position, &v)?;
                (Head { position, hash: e.hash }, Some(e.event.recorded_at))
            }
        };
        if actual != recorded {
            return Err(StoreError::Corrupt {
                position: actual.position.max(recorded.position),
                reason: format!(
                    "the head record says position {} but the last stored event is at {}",
                    recorded.position, actual.position
                ),
            });
        }
        Ok((actual, recorded_at))
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops the writer after it has answered every queued request, and
    /// flushes. Other clones of this store get [`StoreError::Closed`].
    pub fn close(self) -> Result<(), StoreError> {
        drop(self.inner.requests.lock().expect("lock").take());
        if let Some(h) = self.inner.writer.lock().expect("lock").take() {
            h.join().map_err(|_| StoreError::Io("the writer thread panicked".into()))?;
        }
        self.inner.db.flush().map_err(io)?;
        Ok(())
    }

    fn sender(&self) -> Result<mpsc::Sender<Request>, StoreError> {
        self.inner.requests.lock().expect("lock").clone().ok_or(StoreError::Closed)
    }

    fn durable_position(&self) -> u64 {
        self.inner.heads.borrow().position
    }

    fn weak(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }
}

#[async_trait::async_trait]
impl EventStore for SledStore {
    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let (tx, rx) = oneshot::channel();
        self.sender()?.send(Request::Append(req, tx)).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn import(&self, events: Vec<RecordedEvent>) -> Result<Head, AppendError> {
        if events.len() > limits::IMPORT_CHUNK_EVENTS + limits::EVENTS_PER_COMMIT_MAX {
            return Err(AppendError::Invalid(format!(
                "{} events in one import call; split with import_chunks",
                events.len()
            )));
        }
        let (tx, rx) = oneshot::channel();
        self.sender()?.send(Request::Import(events, tx)).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_instance(&self, instance: &InstanceId, from_sequence: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let durable = self.durable_position();
        let db = &self.inner.db;
        let mut out = Vec::new();
        let range = stream_key(instance, from_sequence.max(1))..=stream_key(instance, u64::MAX);
        for kv in db.range(range) {
            let (_, v) = kv.map_err(io)?;
            let position = be_u64(&v)
                .ok_or_else(|| StoreError::Corrupt { position: 0, reason: "malformed stream index value".into() })?;
            if position > durable {
                break;
            }
            let bytes = db.get(event_key(position)).map_err(io)?.ok_or_else(|| StoreError::Corrupt {
                position,
                reason: format!("the index of instance {instance} points to a missing event"),
            })?;
            out.push(decode_at(position, &bytes)?);
        }
        Ok(out)
    }

    async fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let durable = self.durable_position();
        let from = from_position.max(1);
        if from > durable {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(max.min((durable - from + 1) as usize));
        let mut expected = from;
        for kv in self.inner.db.range(event_key(from)..=event_key(durable)).take(max) {
            let (k, v) = kv.map_err(io)?;
            let position = be_u64(&k[1..]).unwrap_or(0);
            if position != expected {
                return Err(StoreError::Corrupt {
                    position: expected,
                    reason: format!("event missing; the next stored position is {position}"),
                });
            }
            out.push(decode_at(position, &v)?);
            expected += 1;
        }
        if out.len() < max && expected <= durable {
            return Err(StoreError::Corrupt {
                position: expected,
                reason: "event missing at the end of the log".into(),
            });
        }
        Ok(out)
    }

    async fn head(&self) -> Result<Head, StoreError> {
        Ok(*self.inner.heads.borrow())
    }

    async fn command_outcome(
        &self,
        instance: &InstanceId,
        command_id: &CommandId,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let outcome = SledIndex(&self.inner.db).command(command_id)?;
        // Only what is durable counts.
        Ok(outcome.filter(|o| o.instance == *instance && o.last_position <= self.durable_position()))
    }

    fn subscribe(&self, from_position: u64) -> Subscription {
        let weak = self.weak();
        Subscription::spawn(
            move || weak.upgrade().map(|inner| SledStore { inner }),
            self.inner.heads.clone(),
            from_position,
        )
    }
}

/// The single writer: owns the chain tip and every write to sled.
struct Writer {
    db: sled::Db,
    data_file: File,
    clock: Arc<dyn Clock>,
    stager: Stager,
    heads: watch::Sender<Head>,
    poisoned: Option<String>,
}

enum Pending {
    Append(oneshot::Sender<Result<AppendOutcome, AppendError>>, AppendOutcome),
    Import(oneshot::Sender<Result<Head, AppendError>>, Head),
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            let mut events = first.events();
            let mut group = vec![first];
            while group.len() < limits::GROUP_REQUESTS_MAX && events < limits::GROUP_EVENTS_MAX {
                match rx.try_recv() {
                    Ok(r) => {
                        events += r.events();
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
        tracing::debug!("writer stopped");
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        if let Some(why) = &self.poisoned {
            for r in group {
                let err = StoreError::Poisoned(why.clone());
                match r {
                    Request::Append(_, tx) => drop(tx.send(Err(err.into()))),
                    Request::Import(_, tx) => drop(tx.send(Err(err.into()))),
                }
            }
            return;
        }
        let now = self.clock.now();
        let mut batch = sled::Batch::default();
        let mut pending = Vec::with_capacity(group.len());
        let mut writes = 0usize;
        for r in group {
            let idx = SledIndex(&self.db);
            match r {
                Request::Append(req, tx) => match self.stager.stage_append(&idx, req, now) {
                    Ok(Stage::Duplicate(o)) => pending.push(Pending::Append(tx, o)),
                    Ok(Stage::New(staged)) => {
                        let outcome = staged.outcome.clone();
                        writes += put(&mut batch, staged);
                        pending.push(Pending::Append(tx, outcome));
                    }
                    Err(e) => drop(tx.send(Err(e))),
                },
                Request::Import(events, tx) => match self.stager.stage_import(&idx, events) {
                    Ok(staged) => {
                        for s in staged {
                            writes += put(&mut batch, s);
                        }
                        pending.push(Pending::Import(tx, self.stager.head()));
                    }
                    Err(e) => drop(tx.send(Err(e))),
                },
            }
        }
        let head = self.stager.head();
        let result = if writes == 0 { Ok(()) } else { self.persist(batch, head) };
        self.stager.end_group();
        match result {
            Ok(()) => {
                if writes > 0 {
                    self.heads.send_replace(head);
                }
                for p in pending {
                    match p {
                        Pending::Append(tx, o) => drop(tx.send(Ok(o))),
                        Pending::Import(tx, h) => drop(tx.send(Ok(h))),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; refusing further writes");
                self.poisoned = Some(e.to_string());
                for p in pending {
                    match p {
                        Pending::Append(tx, _) => drop(tx.send(Err(e.clone().into()))),
                        Pending::Import(tx, _) => drop(tx.send(Err(e.clone().into()))),
                    }
                }
            }
        }
    }

    /// Applies the batch atomically and makes it durable.
    fn persist(&mut self, mut batch: sled::Batch, head: Head) -> Result<(), StoreError> {
        let head_bytes = postcard::to_stdvec(&head).map_err(io)?;
        batch.insert(HEAD_KEY, head_bytes);
        let t0 = std::time::Instant::now();
        self.db.apply_batch(batch).map_err(io)?;
        let t1 = std::time::Instant::now();
        self.db.flush().map_err(io)?;
        let t2 = std::time::Instant::now();
        self.data_file.sync_data().map_err(io)?;
        tracing::trace!(
            head = head.position,
            apply_us = (t1 - t0).as_micros() as u64,
            flush_us = (t2 - t1).as_micros() as u64,
            sync_us = t2.elapsed().as_micros() as u64,
            "group persisted"
        );
        Ok(())
    }
}

/// Adds one staged command to the batch; returns the number of events.
fn put(batch: &mut sled::Batch, staged: Staged) -> usize {
    let n = staged.records.len();
    let mut command = None;
    for (e, bytes) in staged.records {
        let b = &e.event;
        batch.insert(&event_key(b.position)[..], bytes);
        batch.insert(stream_key(&b.instance, b.sequence), &b.position.to_be_bytes()[..]);
        command.get_or_insert_with(|| b.command_id.clone());
    }
    let command = command.expect("a staged command has events");
    let outcome = postcard::to_stdvec(&staged.outcome).expect("outcome encodes");
    batch.insert(command_key(&command), outcome);
    n
}
