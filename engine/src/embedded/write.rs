//! The write path: requests are decided in the callers' tasks, one at a
//! time under the store's lock, and a single writer thread persists them.
//!
//! Deciding ([`Decider::decide`]) checks a request's expected version and
//! command id against what is stored and what is decided ahead of it
//! ([`Stager`]), numbers, chains and encodes its events, and queues it for
//! the writer, in that order. The writer takes everything decided since
//! its last sync, writes it after the last frame with one `pwrite` (one
//! frame, or a few for very large commits), `fdatasync`s, and hands it to
//! the lander thread, which puts its index entries in the overlay,
//! announces the new head and answers, while the writer goes on to the
//! next sync. So the sync is the only step every commit waits for in turn:
//! callers decide their next requests, and the lander answers the last
//! ones, while it runs.
//!
//! Under load the callers fall into cohorts by themselves: those answered
//! by one sync decide their next requests while the next sync runs, and
//! are written by the one after. (A writer thread that also decided could
//! not overlap the two; and one that waited for more requests before a
//! sync was no faster, see BENCHMARKS.md.)

use super::{
    command_hash, encode_frame, fault, io, Behind, EmbeddedStore, Faults, FrameHeader, FrameLoc, Inner, Segment,
    SEGMENT_HEADER_BYTES,
};
use crate::clock::Clock;
use crate::commit::{take_group, Checked, Index, Stage, Staged, Stager};
use crate::event::{CommandId, InstanceId, RecordedEvent};
use crate::limits;
use crate::store::{AppendError, AppendOutcome, Head, StoreError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit};

/// Why writes are refused, once a write or a sync failed or the indexer
/// stopped (what follows the last durable frame is not vouched for), or
/// a read found the log's frames damaged (what is written after the
/// damage could not be restored with what comes before it).
#[derive(Default)]
pub(super) struct Poison(OnceLock<StoreError>);

impl Poison {
    fn set(&self, e: &StoreError) {
        let _ = self.0.set(StoreError::Poisoned(e.to_string()));
    }

    /// The log's frames are damaged at `position`.
    pub fn damaged(&self, position: u64, reason: &str) {
        let reason = format!("{reason}; found by a read, and nothing more is written to a damaged log");
        let _ = self.0.set(StoreError::Corrupt { position, reason });
    }

    fn error(&self) -> Option<StoreError> {
        self.0.get().cloned()
    }

    /// No write failed: the end of the log is vouched for (damage found
    /// by a read does not change that).
    pub fn clean(&self) -> bool {
        !matches!(self.0.get(), Some(StoreError::Poisoned(_)))
    }

    /// Whether writes are refused because the log's frames are damaged.
    pub fn is_damaged(&self) -> bool {
        matches!(self.0.get(), Some(StoreError::Corrupt { .. }))
    }

    /// Where the log's frames were found damaged, and why.
    pub fn damage(&self) -> Option<(u64, String)> {
        match self.0.get() {
            Some(StoreError::Corrupt { position, reason }) => Some((*position, reason.clone())),
            _ => None,
        }
    }
}

/// A request as the store's caller hands it over.
pub(super) enum Request {
    Append(Checked, oneshot::Sender<Result<AppendOutcome, AppendError>>),
    Import(Vec<RecordedEvent>, oneshot::Sender<Result<Head, AppendError>>),
}

/// What deciding needs, behind the store's lock.
pub(super) struct Decider {
    stager: Stager,
    /// Versions of instances decided or looked up, exact (one decider).
    versions: HashMap<InstanceId, u64>,
    clock: Arc<dyn Clock>,
    /// To the writer, in the order decided; none once the store closes.
    writer: Option<std::sync::mpsc::Sender<Decided>>,
}

impl Decider {
    pub fn new(stager: Stager, clock: Arc<dyn Clock>, writer: std::sync::mpsc::Sender<Decided>) -> Decider {
        Decider { stager, versions: HashMap::new(), clock, writer: Some(writer) }
    }

    /// Takes no more requests: the writer answers what is decided, then
    /// stops.
    pub fn close(&mut self) {
        self.writer = None;
    }

    /// Decides one request against what is stored and what is decided
    /// ahead of it, and queues it for the writer. Its answer waits until
    /// it, and everything decided before it, is durable; only a request
    /// refused because writes are refused is answered at once.
    ///
    /// Returns the decided events, spent once queued as bytes, for the
    /// caller to drop after it lets go of the lock.
    pub fn decide(
        &mut self,
        store: &EmbeddedStore,
        r: Request,
        room: OwnedSemaphorePermit,
    ) -> Result<Spent, StoreError> {
        let writer = self.writer.as_ref().ok_or(StoreError::Closed)?;
        let inner = &store.inner;
        if let Some(e) = inner.behind.failed() {
            inner.poison.set(&e);
        }
        if let Some(e) = inner.poison.error() {
            r.refuse(e);
            return Ok(Spent::default());
        }
        self.stager.stored_through(store.durable_position());
        let idx = WriterIndex { store, versions: &self.versions };
        let (staged, pending) = match r {
            Request::Append(req, tx) => match self.stager.stage_append(&idx, req, self.clock.now()) {
                Ok(Stage::Duplicate(o)) => (Vec::new(), Pending::Append(tx, Ok(o))),
                Ok(Stage::New(s)) => {
                    let answer = Pending::Append(tx, Ok(s.outcome.clone()));
                    (vec![s], answer)
                }
                Err(e) => (Vec::new(), Pending::Append(tx, Err(e))),
            },
            Request::Import(events, tx) => match self.stager.stage_import(&idx, events) {
                Ok(s) => (s, Pending::Import(tx, Ok(self.stager.head()))),
                Err(e) => (Vec::new(), Pending::Import(tx, Err(e))),
            },
        };
        // Ahead of the log, which is right for the next decisions: if this
        // never becomes durable, writes are refused from then on.
        if self.versions.len() > limits::WRITER_CACHED_INSTANCES_MAX {
            // What is decided and not durable stays in the stager's overlay.
            self.versions.clear();
        }
        for s in &staged {
            self.versions.insert(s.outcome.instance.clone(), s.outcome.last_sequence);
        }
        let mut spent = Spent::default();
        let staged = staged.into_iter().map(|s| Command::of(s, &mut spent)).collect();
        let decided = Decided { staged, pending, head: self.stager.head(), _room: room };
        writer.send(decided).map(|()| spent).map_err(|_| {
            // Decided, and never to be written: nothing may be decided on it.
            let e = StoreError::Io("the writer thread stopped".into());
            inner.poison.set(&e);
            e
        })
    }
}

/// The decider's view of what is stored: instance versions it has seen,
/// then the overlay and sled; command ids through the store's lookup.
struct WriterIndex<'a> {
    store: &'a EmbeddedStore,
    versions: &'a HashMap<InstanceId, u64>,
}

impl Index for WriterIndex<'_> {
    fn instance_version(&self, id: &InstanceId) -> Result<u64, StoreError> {
        match self.versions.get(id) {
            Some(v) => Ok(*v),
            None => self.store.inner.behind.instance_version(id),
        }
    }

    fn command(&self, id: &CommandId) -> Result<Option<AppendOutcome>, StoreError> {
        // A new id (nearly every one) is settled by the map alone.
        self.store.find_command(id)
    }
}

/// The single writer: owns the current segment and every write to the log.
pub(super) struct Writer {
    log_dir: PathBuf,
    store: Weak<Inner>,
    poison: Arc<Poison>,
    current: Option<Segment>,
    /// Offset in `current` where the next frame goes.
    end: u64,
    faults: Faults,
    /// The store's `CLEAN` mark, until the first write removes it: it
    /// vouches for the end of the log only while nothing is written, so
    /// a command that only reads (and is stopped before it closes the
    /// store) leaves it as it was.
    clean_mark: Option<PathBuf>,
}

impl Writer {
    /// Starts the writer thread, to write after the last frame of
    /// `segments`, and its lander; they stop once every sender of
    /// `decided` is gone and everything is answered.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        behind: Arc<Behind>,
        log_dir: PathBuf,
        store: Weak<Inner>,
        heads: watch::Sender<Head>,
        poison: Arc<Poison>,
        segments: &[Segment],
        faults: Faults,
        decided: std::sync::mpsc::Receiver<Decided>,
    ) -> Result<std::thread::JoinHandle<()>, StoreError> {
        // Made first: if anything below fails, dropping it lets the
        // indexer stop.
        let lander = Lander { behind, heads };
        let clean_mark = log_dir.parent().map(|d| d.join(super::CLEAN_FILE));
        let mut w = Writer { log_dir, store, poison, current: segments.last().cloned(), end: 0, faults, clean_mark };
        w.end = w.segment_end()?;
        let (landings, to_land) = std::sync::mpsc::channel();
        let landing = std::thread::Builder::new().name("styrlogg-lander".into()).spawn(move || lander.run(to_land));
        let landing = landing.map_err(io)?;
        std::thread::Builder::new()
            .name("styrlogg-writer".into())
            .spawn(move || w.run(decided, landings, landing))
            .map_err(io)
    }

    /// Where the last segment's frames end.
    fn segment_end(&self) -> Result<u64, StoreError> {
        let Some(seg) = &self.current else { return Ok(0) };
        let mut end = SEGMENT_HEADER_BYTES;
        for header in seg.frame_headers() {
            let (offset, h) = header.map_err(io)?;
            end = offset + h.total();
        }
        Ok(end)
    }

    /// Commits everything decided since the last sync, together (up to the
    /// group limits), and hands it to the lander.
    fn run(
        mut self,
        rx: std::sync::mpsc::Receiver<Decided>,
        landings: std::sync::mpsc::Sender<Landing>,
        landing: std::thread::JoinHandle<()>,
    ) {
        while let Ok(first) = rx.recv() {
            let batch = take_group(first, Decided::events, || rx.try_recv().ok());
            let landing = self.commit(batch);
            if landings.send(landing).is_err() {
                break;
            }
        }
        drop(landings);
        if let Err(panic) = landing.join() {
            std::panic::resume_unwind(panic);
        }
        tracing::debug!("writer stopped");
    }

    /// Writes the batch's frames and makes them durable.
    fn commit(&mut self, batch: Vec<Decided>) -> Landing {
        if let Some(e) = self.poison.error() {
            return Landing { batch, durable: Err(e) };
        }
        let staged: Vec<&Command> = batch.iter().flat_map(|d| &d.staged).collect();
        if staged.is_empty() {
            return Landing { batch, durable: Ok(None) };
        }
        let head = batch.last().expect("one request at least").head;
        let started = Instant::now();
        let durable = self.write_frames(&staged, head).and_then(|(job, touched)| {
            let written = Instant::now();
            for seg in &touched {
                fault(&self.faults, "syncing the log")?;
                seg.file.sync_data().map_err(io)?;
            }
            Ok((job, written))
        });
        match durable {
            Ok((job, written)) => {
                let synced = Instant::now();
                tracing::trace!(
                    head = head.position,
                    requests = batch.len(),
                    commands = staged.len(),
                    write_us = (written - started).as_micros() as u64,
                    sync_us = (synced - written).as_micros() as u64,
                    "group persisted"
                );
                Landing { batch, durable: Ok(Some(job)) }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; refusing further writes");
                self.poison.set(&e);
                Landing { batch, durable: Err(e) }
            }
        }
    }

    /// A segment with room for `bytes` more, rolling to a new one if need be.
    fn segment_for(&mut self, first_position: u64, bytes: u64) -> Result<Segment, StoreError> {
        if let Some(seg) = &self.current {
            if self.end + bytes <= seg.capacity {
                return Ok(seg.clone());
            }
        }
        let mut capacity = match &self.current {
            None => super::FIRST_SEGMENT_BYTES,
            Some(s) => (s.capacity * 2).min(limits::SEGMENT_BYTES_MAX),
        };
        while capacity < SEGMENT_HEADER_BYTES + bytes {
            capacity *= 2;
        }
        let seg = super::create_segment(&self.log_dir, first_position, capacity, &self.faults)?;
        if let Some(inner) = self.store.upgrade() {
            inner.segments.write().expect("lock").push(seg.clone());
        }
        self.current = Some(seg.clone());
        self.end = SEGMENT_HEADER_BYTES;
        Ok(seg)
    }

    /// Writes the staged commands as frames, not yet durable; returns the
    /// index entries they will have and the segments written to.
    fn write_frames(
        &mut self,
        staged: &[&Command],
        head: Head,
    ) -> Result<(super::behind::Job, Vec<Segment>), StoreError> {
        use std::os::unix::fs::FileExt;
        if let Some(mark) = self.clean_mark.take() {
            // Gone for good before the log changes.
            match std::fs::remove_file(&mark) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
            if let Some(dir) = mark.parent() {
                std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        let frames = frames_of(staged);
        let mut job = super::behind::Job {
            head,
            frames: Vec::with_capacity(frames.len()),
            commands: Vec::with_capacity(staged.len()),
        };
        let mut touched: Vec<Segment> = Vec::new();
        for f in frames {
            let bytes = encode_frame(f);
            let first = f[0].first_position;
            let seg = self.segment_for(first, bytes.len() as u64)?;
            fault(&self.faults, "writing a frame")?;
            seg.file.write_all_at(&bytes, self.end).map_err(io)?;
            let h = FrameHeader::parse(&bytes);
            let loc =
                FrameLoc { segment: seg.first_position, offset: self.end, events: h.events, body_bytes: h.body_bytes };
            job.frames.push((first, loc));
            for s in f {
                job.commands.push((s.command, s.outcome.clone()));
            }
            self.end += bytes.len() as u64;
            if touched.last().is_none_or(|t| t.first_position != seg.first_position) {
                touched.push(seg);
            }
        }
        Ok((job, touched))
    }
}

/// Splits staged commands into frames of whole commands, each with at most
/// [`limits::FRAME_EVENTS_MAX`] events and [`limits::FRAME_BODY_BYTES_MAX`]
/// body bytes (a single command always fits).
fn frames_of<'a>(staged: &'a [&'a Command]) -> Vec<&'a [&'a Command]> {
    let sizes = staged.iter().map(|s| (s.events as usize, s.body.len()));
    frame_ends(sizes, limits::FRAME_EVENTS_MAX, limits::FRAME_BODY_BYTES_MAX)
        .into_iter()
        .scan(0, |start, end| {
            let frame = &staged[*start..end];
            *start = end;
            Some(frame)
        })
        .collect()
}

/// Where each frame ends, for commands of these (events, body bytes):
/// a frame takes commands while both stay within the limits, and at least
/// one.
fn frame_ends(sizes: impl Iterator<Item = (usize, usize)>, max_events: usize, max_bytes: usize) -> Vec<usize> {
    let mut ends = Vec::new();
    let (mut start, mut events, mut bytes, mut n) = (0, 0, 0, 0);
    for (i, (e, b)) in sizes.enumerate() {
        if i > start && (events + e > max_events || bytes + b > max_bytes) {
            ends.push(i);
            (start, events, bytes) = (i, 0, 0);
        }
        events += e;
        bytes += b;
        n = i + 1;
    }
    if n > start {
        ends.push(n);
    }
    ends
}

/// Announces what the writer made durable, and answers, in order, in a
/// thread of its own: the writer goes on to its next sync meanwhile.
struct Lander {
    behind: Arc<Behind>,
    heads: watch::Sender<Head>,
}

impl Lander {
    fn run(self, rx: std::sync::mpsc::Receiver<Landing>) {
        for Landing { batch, durable } in rx {
            match durable {
                Err(e) => batch.into_iter().for_each(|d| d.pending.fail(&e)),
                // Nothing written: everything before it is durable by now.
                Ok(None) => batch.into_iter().for_each(|d| d.pending.answer()),
                Ok(Some(job)) => {
                    let head = job.head;
                    // Readers find it through the overlay from here on.
                    self.behind.push(job);
                    self.heads.send_replace(head);
                    batch.into_iter().for_each(|d| d.pending.answer());
                }
            }
        }
    }
}

impl Drop for Lander {
    /// The writer is done (or the lander failed): the indexer writes what
    /// is left and stops.
    fn drop(&mut self) {
        self.behind.close();
    }
}

/// A batch the writer is done with.
struct Landing {
    batch: Vec<Decided>,
    /// Its index entries once durable; none if it wrote nothing.
    durable: Result<Option<super::behind::Job>, StoreError>,
}

/// A decided command as the writer needs it: its records laid out as in
/// a frame's body, each record's length and then its bytes. The events
/// themselves are dropped where they were made, in the caller's task
/// (after the decider lock: [`Spent`]), so the threads that write and
/// answer only copy bytes and free a buffer.
pub(super) struct Command {
    pub first_position: u64,
    pub events: u32,
    /// The command id's [`command_hash`].
    command: u64,
    pub body: Vec<u8>,
    outcome: AppendOutcome,
}

/// Decided events whose bytes are queued: dropped by the caller outside
/// the decider lock, so every other caller waits for less.
#[derive(Default)]
pub(super) struct Spent(Vec<Vec<(RecordedEvent, Vec<u8>)>>);

impl Command {
    fn of(s: Staged, spent: &mut Spent) -> Command {
        let first_position = s.outcome.first_position;
        let command = command_hash(&s.records[0].0.event.command_id);
        let mut body = Vec::with_capacity(s.records.iter().map(|(_, r)| r.len() + 4).sum());
        for (_, r) in &s.records {
            body.extend_from_slice(&(r.len() as u32).to_le_bytes());
            body.extend_from_slice(r);
        }
        let events = s.records.len() as u32;
        spent.0.push(s.records);
        Command { first_position, events, command, body, outcome: s.outcome }
    }
}

/// A decided request, on its way to the writer.
pub(super) struct Decided {
    /// What it writes: nothing for a duplicate or a refusal.
    staged: Vec<Command>,
    pending: Pending,
    /// The head after it.
    head: Head,
    /// Its place in the bounded queue, given up once it is answered.
    _room: OwnedSemaphorePermit,
}

impl Decided {
    fn events(&self) -> usize {
        self.staged.iter().map(|s| s.events as usize).sum()
    }
}

/// A decided request's answer, sent once its group (and every group before
/// it) is durable.
enum Pending {
    Append(oneshot::Sender<Result<AppendOutcome, AppendError>>, Result<AppendOutcome, AppendError>),
    Import(oneshot::Sender<Result<Head, AppendError>>, Result<Head, AppendError>),
}

impl Request {
    /// Answers with an error without deciding.
    fn refuse(self, e: StoreError) {
        match self {
            Request::Append(_, tx) => drop(tx.send(Err(e.into()))),
            Request::Import(_, tx) => drop(tx.send(Err(e.into()))),
        }
    }
}

impl Pending {
    /// Sends the answer decided when the request was staged.
    fn answer(self) {
        match self {
            Pending::Append(tx, r) => drop(tx.send(r)),
            Pending::Import(tx, r) => drop(tx.send(r)),
        }
    }

    /// Sends `e` instead: the decision rested on a group that never became
    /// durable.
    fn fail(self, e: &StoreError) {
        match self {
            Pending::Append(tx, _) => drop(tx.send(Err(e.clone().into()))),
            Pending::Import(tx, _) => drop(tx.send(Err(e.clone().into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::frame_ends;

    #[test]
    fn frames_keep_commands_whole_within_both_limits() {
        let ends = |sizes: &[(usize, usize)]| frame_ends(sizes.iter().copied(), 10, 100);
        assert_eq!(ends(&[]), Vec::<usize>::new());
        assert_eq!(ends(&[(3, 10), (3, 10), (4, 10)]), vec![3], "exactly at the event limit: one frame");
        assert_eq!(ends(&[(3, 10), (3, 10), (5, 10)]), vec![2, 3], "one event over: the command starts a frame");
        assert_eq!(ends(&[(1, 60), (1, 40), (1, 1)]), vec![2, 3], "the byte limit splits too");
        assert_eq!(ends(&[(12, 10), (1, 10)]), vec![1, 2], "a command over a limit has a frame of its own");
        assert_eq!(ends(&[(1, 10), (12, 10), (1, 10)]), vec![1, 2, 3]);
    }
}
