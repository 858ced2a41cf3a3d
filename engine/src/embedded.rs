//! The embedded default backend: the log in append-only segment files,
//! which are the record, and an index in sled, which is derived from them;
//! a single writer thread group-commits, and only what is durable is
//! acknowledged.
//!
//! Files in the store's directory (layout 2):
//! - `STORE`: the marker, `styrlogg store layout 2`.
//! - `log/NNNNNNNNNNNNNNNNNNNN.seg`: segments, named by the position of
//!   their first event. A segment is zero-filled and synced when it is
//!   created, at its full capacity (1 MiB for the first, doubling up to
//!   [`limits::SEGMENT_BYTES_MAX`]), so a commit's `fdatasync` writes data
//!   only, never the file's size. Layout: a 64-byte header (magic, format,
//!   first position, capacity, and a BLAKE3 hash of those), then frames,
//!   then zeros.
//! - A frame is what one group commit writes: `[u32 body length][u32 event
//!   count][u64 first position]`, the body (`[u32 length][record]` per
//!   event, records as [`crate::codec`] encodes them), and a 32-byte BLAKE3
//!   hash of header and body. Every byte of a segment is covered by a hash,
//!   or must be zero.
//! - `index/`: a sled database (layout `styrlogg index 2`): per frame,
//!   where it is; per run of an instance's commands, each command's first
//!   position, event count and id hash ([`RunCommand`]); and the position
//!   it is complete up to. No entry per command id: the ids' hashes are
//!   kept in memory ([`behind`]) and told apart by reading the log. It is
//!   written behind the commit, many groups at a time, and flushed lazily,
//!   because it can be rebuilt: on open, frames after its position are
//!   indexed again, and an index of the older layout is built anew.
//!
//! Write path ([`write`], ARCHITECTURE.md): each request is decided in its
//! caller's task (shared [`Stager`]) and queued; the writer thread writes
//! everything decided since its last sync as one frame (or a few, for very
//! large groups) with one `pwrite` and `fdatasync`s the segment; the lander
//! thread puts the group's index entries in the in-memory overlay (sled
//! gets them later), announces the new head, and only then answers.
//!
//! Open: the marker, the segment headers and sizes are checked, frames the
//! index lacks are read, checked and indexed, and what follows the last
//! frame must be zeros. A frame at the very end whose bytes are partly
//! unwritten (whole zero sectors) is a write torn by a crash before it was
//! acknowledged: it is zeroed. Anything else that does not check out is
//! corruption, reported with its position, and the store is not served.

use crate::clock::Clock;
use crate::codec;
use crate::commit::{Checked, Stager};
use crate::event::{CommandId, InstanceId, RecordedEvent};
use crate::limits;
use crate::records::RecordPage;
use crate::store::{AppendError, AppendOutcome, AppendRequest, EventStore, Head, StoreError};
use crate::subscription::Subscription;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use tokio::sync::{oneshot, watch};

mod behind;
mod salvage;
mod write;
use behind::Behind;
pub use salvage::{salvage, Salvaged};

const MARKER_FILE: &str = "STORE";
/// Written by a clean close: the head it closed at.
const CLEAN_FILE: &str = "CLEAN";
/// Written when a read finds the log's frames damaged: `POSITION\nREASON`.
/// Every later open refuses writes; a `rebuild --index`, which reads and
/// checks the whole log, removes it when the log is whole.
const DAMAGED_FILE: &str = "DAMAGED";
const MARKER: &str = "styrlogg store layout 2\n";
const LOG_DIR: &str = "log";
const INDEX_DIR: &str = "index";

const SEGMENT_MAGIC: &[u8; 16] = b"styrlogg segment";
const SEGMENT_FORMAT: u32 = 1;
const SEGMENT_HEADER_BYTES: u64 = 64;
const FIRST_SEGMENT_BYTES: u64 = 1 << 20;
const FRAME_HEADER_BYTES: usize = 16;
const FRAME_HASH_BYTES: usize = 32;
const FRAME_CONTEXT: &str = "styrlogg frame v1";
const SEGMENT_CONTEXT: &str = "styrlogg segment v1";
/// A torn write leaves whole sectors unwritten.
const SECTOR_BYTES: usize = 512;

const INDEX_MARKER_KEY: &[u8] = b"M";
/// How long an open waits for a lock on the index that this or another
/// process is letting go of.
const INDEX_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// How often the index is flushed in the background.
const INDEX_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
const INDEX_MARKER: &[u8] = b"styrlogg index 2";
/// The layout before runs: one entry per command and one per command id.
/// Derived like any index, so it is built again from the log.
const INDEX_MARKER_PER_COMMAND: &[u8] = b"styrlogg index 1";
const INDEXED_KEY: &[u8] = b"X";

fn frame_key(first_position: u64) -> [u8; 9] {
    let mut k = [b'F'; 9];
    k[1..].copy_from_slice(&first_position.to_be_bytes());
    k
}

fn instance_prefix(instance: &InstanceId) -> Vec<u8> {
    let id = instance.as_str().as_bytes();
    let mut k = Vec::with_capacity(3 + id.len() + 8);
    k.push(b'S');
    k.extend_from_slice(&(id.len() as u16).to_be_bytes());
    k.extend_from_slice(id);
    k
}

/// The instance an instance key (`S`, length, id, first sequence) is for.
fn key_instance(k: &[u8]) -> Option<InstanceId> {
    let len = usize::from(u16::from_be_bytes(k.get(1..3)?.try_into().ok()?));
    (k.len() == 3 + len + 8).then_some(())?;
    InstanceId::new(std::str::from_utf8(&k[3..3 + len]).ok()?).ok()
}

fn instance_key(instance: &InstanceId, first_sequence: u64) -> Vec<u8> {
    let mut k = instance_prefix(instance);
    k.extend_from_slice(&first_sequence.to_be_bytes());
    k
}

/// A command id's 64-bit hash: what the index keeps of it (BLAKE3, so it
/// is the same in every build). Ids are told apart by reading the log.
fn command_hash(command: &CommandId) -> u64 {
    let h = blake3::hash(command.as_str().as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// One command of an instance's run entry (`S`): the entry's key holds
/// the first command's sequence, and each command continues the one
/// before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct RunCommand {
    first_position: u64,
    count: u32,
    /// [`command_hash`] of its id.
    id: u64,
}

impl RunCommand {
    fn of(id: u64, o: &AppendOutcome) -> RunCommand {
        RunCommand { first_position: o.first_position, count: CommandLoc::of(o).count, id }
    }
}

/// An instance's run entry: its commands from `first_sequence` on.
fn decode_run(k: &[u8], v: &[u8]) -> Result<(u64, Vec<RunCommand>), StoreError> {
    let first = k.len().checked_sub(8).and_then(|at| be_u64(&k[at..]));
    let first = first.ok_or_else(|| corrupt(0, "malformed instance index key"))?;
    let run: Vec<RunCommand> = postcard::from_bytes(v).map_err(|e| corrupt(0, format!("instance index entry: {e}")))?;
    if run.is_empty() || run.iter().any(|c| c.count == 0) {
        return Err(corrupt(0, "an empty instance index entry"));
    }
    Ok((first, run))
}

/// Each command of a run entry, by first sequence.
fn run_commands(first: u64, run: &[RunCommand]) -> impl Iterator<Item = (u64, RunCommand)> + '_ {
    run.iter().scan(first, |seq, c| {
        let at = *seq;
        *seq += u64::from(c.count);
        Some((at, *c))
    })
}

/// The head an index (perhaps damaged) says it holds, if it can be read at
/// all: what `rebuild --index` must find the log still holding.
fn old_index_head(dir: &Path) -> Option<Head> {
    if !dir.is_dir() {
        return None;
    }
    let opened = std::panic::catch_unwind(|| sled::Config::new().path(dir).open()).ok()?.ok()?;
    let head = opened.get(INDEXED_KEY).ok()?.and_then(|v| postcard::from_bytes::<Indexed>(&v).ok()).map(|i| i.head);
    drop(opened);
    head
}

/// What the `STORE` file of directory `dir` says: `Ok(Ok(()))` for this
/// layout; `Ok(Err(quote))` for anything else, with its first line quoted
/// (shortened: the file may be anything); an error when there is no such
/// regular file or it cannot be read. Reads at most 4 KiB.
pub(crate) fn read_marker(dir: &Path) -> std::io::Result<Result<(), String>> {
    let path = dir.join(MARKER_FILE);
    if !std::fs::metadata(&path)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let buf = read_small(&path)?;
    let text = String::from_utf8_lossy(&buf);
    // The same line with other line ends or spaces (an editor's CRLF) is
    // the same marker.
    if text.trim() == MARKER.trim() {
        return Ok(Ok(()));
    }
    let line = text.lines().next().unwrap_or("").trim();
    let quoted: String = line.chars().take(60).collect();
    let more = if quoted.len() < line.len() || text.trim_end().len() > line.len() { " ..." } else { "" };
    Ok(Err(format!("{quoted:?}{more}")))
}

/// At most the first 4 KiB of `path`: the store's marks are a line or
/// two, and a file put in their place may be anything.
fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    File::open(path)?.take(4096).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Removes the `DAMAGED` mark of the store at `dir`, if there is one
/// (anything by that name): whether there was.
fn lift_damage_mark(dir: &Path) -> Result<bool, StoreError> {
    let mark = dir.join(DAMAGED_FILE);
    match std::fs::remove_file(&mark) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::Io(format!("removing {}: {e}", mark.display()))),
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn corrupt(position: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt { position, reason: reason.into() }
}

/// Injected storage failures, for tests: every storage operation of a
/// store opened with a plan is counted, and the one numbered `fail_at`
/// (from 1) fails with an I/O error. A plan that never fails counts the
/// operations of a workload, so a test can then fail each in turn.
#[derive(Debug, Default)]
pub struct FaultPlan {
    fail_at: std::sync::atomic::AtomicU64,
    full_from: std::sync::atomic::AtomicU64,
    seen: std::sync::atomic::AtomicU64,
    index_held: std::sync::atomic::AtomicBool,
}

impl FaultPlan {
    /// Counts operations and never fails.
    pub fn counting() -> Arc<FaultPlan> {
        Arc::new(FaultPlan::default())
    }

    /// Fails the `n`-th operation (from 1), once.
    pub fn fail_at(n: u64) -> Arc<FaultPlan> {
        let p = FaultPlan::default();
        p.fail_at.store(n, std::sync::atomic::Ordering::SeqCst);
        Arc::new(p)
    }

    /// The disk fills up: from the next operation on, every operation that
    /// writes fails as on a full disk (ENOSPC), until the store is reopened
    /// without the plan; reads still work.
    pub fn fill_disk(&self) {
        use std::sync::atomic::Ordering;
        self.full_from.store(self.seen.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
    }

    /// A slow index: while held, the indexer writes nothing to sled and
    /// the store answers from its overlay.
    pub fn hold_index(&self, held: bool) {
        self.index_held.store(held, std::sync::atomic::Ordering::SeqCst);
    }

    fn index_held(&self) -> bool {
        self.index_held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Operations seen so far.
    pub fn operations(&self) -> u64 {
        self.seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn check(&self, op: &str) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            return Err(StoreError::Io(format!("injected fault: {op} failed (operation {n})")));
        }
        let full_from = self.full_from.load(Ordering::SeqCst);
        let writes = ["creating", "syncing", "naming", "writing", "updating", "flushing", "indexing"];
        if full_from != 0 && n >= full_from && writes.iter().any(|w| op.starts_with(w)) {
            return Err(StoreError::Io(format!("{op}: {}", std::io::Error::from_raw_os_error(libc::ENOSPC))));
        }
        Ok(())
    }
}

type Faults = Option<Arc<FaultPlan>>;

/// Refuses, before anything is opened, a store (or the place a new one
/// would go) that this process may not write: a read-only directory or
/// file system, or files of another user. Without this, sled would fail
/// deep inside with a bare "permission denied".
fn writable(root: &Path, empty: bool, shown: &str) -> Result<(), StoreError> {
    let mut paths = Vec::new();
    if empty {
        // The nearest existing ancestor is where the store would be made.
        let mut p = root;
        while !p.exists() {
            match p.parent() {
                Some(up) if !up.as_os_str().is_empty() => p = up,
                _ => break,
            }
        }
        paths.push(p.to_path_buf());
    } else {
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            paths.push(dir.clone());
            for entry in std::fs::read_dir(&dir).map_err(io)? {
                let p = entry.map_err(io)?.path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    paths.push(p);
                }
            }
        }
    }
    for p in paths {
        let Ok(c) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())) else { continue };
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
            let err = std::io::Error::last_os_error();
            if matches!(err.raw_os_error(), Some(libc::EACCES | libc::EROFS | libc::EPERM)) {
                let what = match p.strip_prefix(root) {
                    Ok(rel) if rel.as_os_str().is_empty() => "its directory".to_string(),
                    Ok(rel) => rel.display().to_string(),
                    Err(_) => format!("{} where it would be made", p.display()),
                };
                let hint = if empty {
                    "Choose a --data directory this user may write to"
                } else {
                    "styrlogg writes to its store even to read it (the index is brought up to date on open): give this user write access, or copy the store to a writable place and use the copy"
                };
                return Err(StoreError::ReadOnly {
                    path: shown.to_string(),
                    what,
                    why: err.to_string(),
                    hint: hint.into(),
                });
            }
        }
    }
    Ok(())
}

fn fault(faults: &Faults, op: &str) -> Result<(), StoreError> {
    match faults {
        Some(p) => p.check(op),
        None => Ok(()),
    }
}

/// What [`EmbeddedStore::check_files`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesReport {
    pub segments: u64,
    pub frames: u64,
    pub events: u64,
    pub bytes: u64,
    /// The `DAMAGED` mark of an earlier read was there and is gone: every
    /// byte checked out (the damage was passing, or the files restored),
    /// so the next open takes writes again.
    pub mark_lifted: bool,
}

/// Where a frame is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct FrameLoc {
    segment: u64,
    offset: u64,
    events: u32,
    body_bytes: u32,
}

/// One command's events: contiguous sequences and positions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct CommandLoc {
    first_position: u64,
    count: u32,
}

impl CommandLoc {
    fn of(o: &AppendOutcome) -> CommandLoc {
        CommandLoc { first_position: o.first_position, count: (o.last_sequence - o.first_sequence + 1) as u32 }
    }
}

/// What the index covers.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Indexed {
    head: Head,
}

/// Whether [`EmbeddedStore::open`] may create a new store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the directory and the store when missing.
    CreateIfMissing,
    /// Fail when there is no store yet.
    MustExist,
}

/// A segment file readers can read from.
#[derive(Clone)]
struct Segment {
    first_position: u64,
    capacity: u64,
    file: Arc<File>,
    path: PathBuf,
}

/// What [`EmbeddedStore::rebuild_index`] did.
#[derive(Debug)]
pub struct Rebuilt {
    /// The log's head, as the new index has it.
    pub head: Head,
    /// Where the old index was moved (`index.old-DATE`), if there was one:
    /// kept for a look at what was wrong with it, and not read again.
    pub kept: Option<PathBuf>,
}

/// The embedded event log. Clones share one store.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    index: sled::Db,
    /// The index's newest entries, and the thread that writes them to sled.
    behind: Arc<Behind>,
    indexer: Mutex<Option<std::thread::JoinHandle<()>>>,
    path: PathBuf,
    faults: Faults,
    segments: RwLock<Vec<Segment>>,
    /// Decides requests in the callers' tasks, in turn, and queues them for
    /// the writer thread.
    decider: Mutex<write::Decider>,
    /// Requests decided and not yet answered, at most
    /// [`limits::WRITE_QUEUE_DEPTH`].
    room: Arc<tokio::sync::Semaphore>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Flushes the index now and then (it is derived, so this only shortens
    /// the catching up on the next open); ours, so that closing the store
    /// lets go of it at once.
    flusher: Mutex<Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    /// Set once a write failed: then the end of the log is not vouched for.
    poison: Arc<write::Poison>,
    heads: watch::Receiver<Head>,
    /// The head the open found, and whether any request reached the
    /// decider since: a store that wrote nothing leaves the end of the log
    /// vouched for however it is dropped (a refused command, an error).
    opened_at: Head,
    touched: std::sync::atomic::AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let untouched = !self.touched.load(std::sync::atomic::Ordering::SeqCst);
        if untouched && self.poison.clean() && *self.heads.borrow() == self.opened_at {
            let h = self.opened_at;
            let _ = std::fs::write(self.path.join(CLEAN_FILE), format!("{} {}\n", h.position, h.hash));
        }
    }
}

/// What sled's index holds (the overlay aside).
struct SledIndex<'a>(&'a sled::Db);

impl SledIndex<'_> {
    /// The instance's last sequence in sled, 0 when it has none.
    fn instance_version(&self, id: &InstanceId) -> Result<u64, StoreError> {
        match self.0.scan_prefix(instance_prefix(id)).next_back() {
            None => Ok(0),
            Some(kv) => {
                let (k, v) = kv.map_err(io)?;
                let (first, run) = decode_run(&k, &v)?;
                Ok(first + run.iter().map(|c| u64::from(c.count)).sum::<u64>() - 1)
            }
        }
    }
}

fn parse_clean(text: &str) -> Option<Head> {
    let (p, h) = text.trim().split_once(' ')?;
    Some(Head { position: p.parse().ok()?, hash: crate::event::Hash::from_hex(h).ok()? })
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

fn segment_name(first_position: u64) -> String {
    format!("{first_position:020}.seg")
}

fn segment_header(first_position: u64, capacity: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    debug_assert_eq!(capacity % (1 << 20), 0, "segments are whole MiB");
    let mut h = [0u8; SEGMENT_HEADER_BYTES as usize];
    h[..16].copy_from_slice(SEGMENT_MAGIC);
    h[16..20].copy_from_slice(&SEGMENT_FORMAT.to_le_bytes());
    h[20..28].copy_from_slice(&first_position.to_le_bytes());
    h[28..32].copy_from_slice(&((capacity >> 20) as u32).to_le_bytes());
    let hash = blake3::Hasher::new_derive_key(SEGMENT_CONTEXT).update(&h[..32]).finalize();
    h[32..].copy_from_slice(hash.as_bytes());
    h
}

/// Checks a segment header; returns (first position, capacity in bytes).
fn parse_segment_header(path: &Path, h: &[u8]) -> Result<(u64, u64), StoreError> {
    let bad = |why: &str| corrupt(0, format!("segment {}: {why}", path.display()));
    if h.len() < SEGMENT_HEADER_BYTES as usize || &h[..16] != SEGMENT_MAGIC {
        return Err(bad("not a styrlogg segment (bad magic)"));
    }
    let hash = blake3::Hasher::new_derive_key(SEGMENT_CONTEXT).update(&h[..32]).finalize();
    if hash.as_bytes() != &h[32..64] {
        return Err(bad("its header does not match its hash"));
    }
    if le_u32(&h[16..20]) != SEGMENT_FORMAT {
        return Err(bad("unknown segment format"));
    }
    Ok((le_u64(&h[20..28]), u64::from(le_u32(&h[28..32])) << 20))
}

fn frame_hash(header_and_body: &[u8]) -> [u8; 32] {
    *blake3::Hasher::new_derive_key(FRAME_CONTEXT).update(header_and_body).finalize().as_bytes()
}

/// Encodes decided commands as one frame.
fn encode_frame(commands: &[&write::Command]) -> Vec<u8> {
    let events: usize = commands.iter().map(|c| c.events as usize).sum();
    let body: usize = commands.iter().map(|c| c.body.len()).sum();
    let first = commands[0].first_position;
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + body + FRAME_HASH_BYTES);
    out.extend_from_slice(&(body as u32).to_le_bytes());
    out.extend_from_slice(&(events as u32).to_le_bytes());
    out.extend_from_slice(&first.to_le_bytes());
    for c in commands {
        out.extend_from_slice(&c.body);
    }
    let hash = frame_hash(&out);
    out.extend_from_slice(&hash);
    out
}

/// A frame's header, as read.
#[derive(Debug, Clone, Copy)]
struct FrameHeader {
    body_bytes: u32,
    events: u32,
    first_position: u64,
}

impl FrameHeader {
    fn parse(b: &[u8]) -> FrameHeader {
        FrameHeader { body_bytes: le_u32(&b[0..4]), events: le_u32(&b[4..8]), first_position: le_u64(&b[8..16]) }
    }
    fn is_zero(&self) -> bool {
        self.body_bytes == 0 && self.events == 0 && self.first_position == 0
    }
    fn total(&self) -> u64 {
        (FRAME_HEADER_BYTES + self.body_bytes as usize + FRAME_HASH_BYTES) as u64
    }
}

impl Segment {
    /// The headers of the segment's frames, each with its offset, from the
    /// first on: up to a zero header (where the frames end), a header whose
    /// frame would run past the segment, or a read that fails (the last
    /// item then). Only headers are read; no frame is checked.
    fn frame_headers(&self) -> impl Iterator<Item = std::io::Result<(u64, FrameHeader)>> + '_ {
        let mut offset = SEGMENT_HEADER_BYTES;
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed || self.capacity.saturating_sub(offset) < FRAME_HEADER_BYTES as u64 {
                return None;
            }
            let mut hdr = [0u8; FRAME_HEADER_BYTES];
            if let Err(e) = self.file.read_exact_at(&mut hdr, offset) {
                failed = true;
                return Some(Err(e));
            }
            let h = FrameHeader::parse(&hdr);
            if h.is_zero() || h.total() > self.capacity - offset {
                return None;
            }
            let at = offset;
            offset += h.total();
            Some(Ok((at, h)))
        })
    }
}

/// How much of a frame's records [`decode_frame`] checks beyond the
/// frame's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Records {
    /// Each record's own hash and canonical encoding too: `verify` and
    /// opening a store.
    Checked,
    /// Only the frame's hash, which covers every byte of every record:
    /// ordinary reads (see [`codec::decode_vouched`]).
    Vouched,
}

/// Checks a whole frame's length and hash and splits its body into
/// records: where each record lies in `bytes`, in position order from the
/// frame's first position. The record count is checked against the header.
fn frame_records(bytes: &[u8], at: &str) -> Result<Vec<std::ops::Range<usize>>, StoreError> {
    let h = FrameHeader::parse(bytes);
    let end = FRAME_HEADER_BYTES + h.body_bytes as usize;
    if bytes.len() != end + FRAME_HASH_BYTES {
        return Err(corrupt(h.first_position, format!("{at}: frame length does not match its header")));
    }
    if frame_hash(&bytes[..end]) != bytes[end..] {
        return Err(corrupt(h.first_position, format!("{at}: the frame's bytes do not match its hash")));
    }
    let mut out = Vec::with_capacity(h.events as usize);
    let mut i = FRAME_HEADER_BYTES;
    while i < end {
        let position = h.first_position + out.len() as u64;
        if end - i < 4 {
            return Err(corrupt(position, format!("{at}: malformed frame body")));
        }
        let len = le_u32(&bytes[i..]) as usize;
        if len > end - i - 4 {
            return Err(corrupt(position, format!("{at}: a record runs past its frame")));
        }
        out.push(i + 4..i + 4 + len);
        i += 4 + len;
    }
    if out.len() != h.events as usize {
        return Err(corrupt(
            h.first_position,
            format!("{at}: the frame holds {} events, its header says {}", out.len(), h.events),
        ));
    }
    Ok(out)
}

/// Decodes one record of a frame that [`frame_records`] checked, as
/// `records` says, and checks it holds the position it is at.
fn decode_record(record: &[u8], position: u64, at: &str, records: Records) -> Result<RecordedEvent, StoreError> {
    let e = match records {
        Records::Checked => codec::decode(record),
        Records::Vouched => codec::decode_vouched(record),
    }
    .map_err(|err| corrupt(position, format!("{at}: {err}")))?;
    if e.event.position != position {
        return Err(corrupt(position, format!("{at}: the record says it is position {}", e.event.position)));
    }
    Ok(e)
}

/// Decodes and checks a whole frame (header, body, hash): its events at
/// consecutive positions, each record checked as `records` says.
fn decode_frame(bytes: &[u8], at: &str, records: Records) -> Result<Vec<RecordedEvent>, StoreError> {
    let first = FrameHeader::parse(bytes).first_position;
    frame_records(bytes, at)?
        .into_iter()
        .enumerate()
        .map(|(i, r)| decode_record(&bytes[r], first + i as u64, at, records))
        .collect()
}

/// Records of a page, copied out of the log's files after their frames
/// were checked, to be decoded side by side.
#[derive(Default)]
struct PageRecords {
    bytes: Vec<u8>,
    /// Position, where in `bytes`, and which frame (for errors).
    records: Vec<(u64, std::ops::Range<usize>, usize)>,
    /// Where each frame was read from.
    frames: Vec<String>,
}

impl PageRecords {
    /// Decodes every record (vouched for by its frame's hash), on up to as
    /// many threads as there are cores when the page is large enough to
    /// be worth it.
    fn decode(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        let one = |part: &[(u64, std::ops::Range<usize>, usize)]| -> Result<Vec<RecordedEvent>, StoreError> {
            part.iter()
                .map(|(p, r, f)| decode_record(&self.bytes[r.clone()], *p, &self.frames[*f], Records::Vouched))
                .collect()
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(limits::DECODE_THREADS_MAX);
        if threads < 2 || self.records.len() < limits::DECODE_PARALLEL_MIN_EVENTS {
            return one(&self.records);
        }
        let per = self.records.len().div_ceil(threads);
        let parts: Vec<Result<Vec<RecordedEvent>, StoreError>> = std::thread::scope(|scope| {
            let mut chunks = self.records.chunks(per);
            let first = chunks.next().expect("non-empty");
            let others: Vec<_> = chunks.map(|c| scope.spawn(move || one(c))).collect();
            let mut parts = vec![one(first)];
            parts.extend(
                others
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(StoreError::Io("a decoding thread panicked".into())))),
            );
            parts
        });
        let mut parts = parts.into_iter();
        let mut out = parts.next().expect("one part at least")?;
        out.reserve(self.records.len() - out.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }
}

fn create_segment(dir: &Path, first_position: u64, capacity: u64, faults: &Faults) -> Result<Segment, StoreError> {
    fault(faults, "creating a segment")?;
    let path = dir.join(segment_name(first_position));
    let tmp = dir.join("next.tmp");
    let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&tmp).map_err(io)?;
    // Zero-filled, so that a commit's fdatasync never changes the file's size.
    let zeros = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < capacity {
        let n = (capacity - written).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], written).map_err(io)?;
        written += n as u64;
    }
    file.write_all_at(&segment_header(first_position, capacity), 0).map_err(io)?;
    fault(faults, "syncing a new segment")?;
    file.sync_all().map_err(io)?;
    fault(faults, "naming a new segment")?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(Segment { first_position, capacity, file: Arc::new(file), path })
}

impl EmbeddedStore {
    /// Opens (or creates) the store in directory `path`, indexes what the
    /// index lacks, and checks the end of the log.
    pub fn open(path: &Path, mode: OpenMode, clock: Arc<dyn Clock>) -> Result<EmbeddedStore, StoreError> {
        EmbeddedStore::open_with_faults(path, mode, clock, None)
    }

    /// [`EmbeddedStore::open`], with storage operations failing as `faults`
    /// says (tests of I/O failures).
    pub fn open_with_faults(
        path: &Path,
        mode: OpenMode,
        clock: Arc<dyn Clock>,
        faults: Faults,
    ) -> Result<EmbeddedStore, StoreError> {
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
        let marker = path.join(MARKER_FILE);
        if !empty {
            match read_marker(path) {
                Ok(Ok(())) => {}
                Ok(Err(m)) => return Err(not_a_store(&format!("its marker says {m}, not this layout"))),
                Err(_) if path.join("conf").is_file() && path.join("db").is_file() => {
                    return Err(not_a_store(
                        "it was written by an earlier styrlogg (layout 1, all in sled); export it with that version and import the export here",
                    ))
                }
                Err(_) => return Err(not_a_store("the directory holds other files and no styrlogg marker")),
            }
        }
        let log_dir = path.join(LOG_DIR);
        writable(path, empty, &shown)?;
        if empty {
            std::fs::create_dir_all(&log_dir).map_err(io)?;
            let mut f = File::create(&marker).map_err(io)?;
            std::io::Write::write_all(&mut f, MARKER.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            File::open(path).and_then(|d| d.sync_all()).map_err(io)?;
        }
        fault(&faults, "opening the index")?;
        // sled's lock also guards against a second process; a handle this
        // process just closed may hold it a moment longer (sled's own
        // threads), so wait briefly before calling it taken.
        let started = std::time::Instant::now();
        let index = loop {
            let opened = sled::Config::new()
                .path(path.join(INDEX_DIR))
                .mode(sled::Mode::HighThroughput)
                .flush_every_ms(None)
                .open();
            match opened {
                Ok(db) => break db,
                Err(e) if e.to_string().contains("lock") && started.elapsed() < INDEX_LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) if e.to_string().contains("lock") => return Err(StoreError::Locked { path: shown.clone() }),
                Err(e) => {
                    return Err(StoreError::Io(format!(
                        "opening the index at {shown}/index: {e}; the index can be rebuilt from the log: `styrlogg rebuild --index`"
                    )))
                }
            }
        };
        match index.get(INDEX_MARKER_KEY).map_err(io)? {
            Some(m) if m.as_ref() == INDEX_MARKER => {}
            Some(m) if m.as_ref() == INDEX_MARKER_PER_COMMAND => {
                tracing::info!("the index has the layout of an older version; building it again from the log");
                index.clear().map_err(io)?;
                index.insert(INDEX_MARKER_KEY, INDEX_MARKER).map_err(io)?;
            }
            Some(_) => return Err(not_a_store("its index has another layout")),
            None => {
                index.insert(INDEX_MARKER_KEY, INDEX_MARKER).map_err(io)?;
            }
        }
        fault(&faults, "listing the segments")?;
        let segments = load_segments(&log_dir)?;
        // A clean close left the head it closed at. The writer removes it
        // (durably) before its first write, so it vouches for the end of
        // the log until something is written: a command that only reads,
        // an open that fails, or a process stopped before it closes the
        // store leave it for `export --salvage` and the next open.
        let clean = std::fs::read_to_string(path.join(CLEAN_FILE)).ok().and_then(|t| parse_clean(&t));
        let mut recovery = Recovery { index: &index, segments, faults: &faults, clean };
        let (head, last_recorded_at) = recovery.catch_up()?;
        let segments = recovery.segments;
        index.flush().map_err(io)?;

        let (decided, to_write) = std::sync::mpsc::channel();
        let (heads_tx, heads) = watch::channel(head);
        let behind = Arc::new(Behind::new(index.clone(), faults.clone(), head));
        let indexing = behind.clone();
        let indexer =
            std::thread::Builder::new().name("styrlogg-indexer".into()).spawn(move || indexing.run()).map_err(io)?;
        let inner = Arc::new(Inner {
            index: index.clone(),
            behind: behind.clone(),
            indexer: Mutex::new(Some(indexer)),
            path: path.to_path_buf(),
            faults: faults.clone(),
            segments: RwLock::new(segments.clone()),
            decider: Mutex::new(write::Decider::new(Stager::new(head, last_recorded_at), clock, decided)),
            room: Arc::new(tokio::sync::Semaphore::new(limits::WRITE_QUEUE_DEPTH)),
            writer: Mutex::new(None),
            flusher: Mutex::new(None),
            poison: Default::default(),
            heads,
            opened_at: head,
            touched: Default::default(),
        });
        let writer = write::Writer::start(
            behind,
            log_dir,
            Arc::downgrade(&inner),
            heads_tx,
            inner.poison.clone(),
            &segments,
            faults,
            to_write,
        )?;
        *inner.writer.lock().expect("lock") = Some(writer);
        // Anything by that name is the mark, whatever it holds.
        let mark_path = path.join(DAMAGED_FILE);
        if std::fs::symlink_metadata(&mark_path).is_ok() {
            let mark = read_small(&mark_path).unwrap_or_default();
            let mark = String::from_utf8_lossy(&mark);
            let (position, reason) = mark.split_once('\n').unwrap_or((&mark, ""));
            let position = position.trim().parse().unwrap_or(0);
            let reason = match reason.trim() {
                "" => format!("{} marks the log as damaged", mark_path.display()),
                r => r.to_string(),
            };
            // Info, not a warning: whoever reads or writes gets the error
            // itself, and a command line shows it once.
            tracing::info!(position, reason, "the log was found damaged earlier: writes are refused");
            inner.poison.damaged(position, &reason);
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let flushed = inner.index.clone();
        let flusher = std::thread::Builder::new()
            .name("styrlogg-index-flush".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INDEX_FLUSH_EVERY) {
                    if let Err(e) = flushed.flush() {
                        tracing::warn!("flushing the index: {e}");
                    }
                }
            })
            .map_err(io)?;
        *inner.flusher.lock().expect("lock") = Some((stop, flusher));
        Ok(EmbeddedStore { inner })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops the writer after it has answered every queued request, and
    /// flushes the index. Other clones of this store get
    /// [`StoreError::Closed`].
    pub fn close(self) -> Result<(), StoreError> {
        self.inner.decider.lock().unwrap_or_else(std::sync::PoisonError::into_inner).close();
        self.inner.room.close();
        if let Some(h) = self.inner.writer.lock().expect("lock").take() {
            h.join().map_err(|_| StoreError::Io("the writer thread panicked".into()))?;
        }
        // The writer told the indexer it is done; it writes what is left.
        if let Some(h) = self.inner.indexer.lock().expect("lock").take() {
            h.join().map_err(|_| StoreError::Io("the indexer thread panicked".into()))?;
        }
        let unindexed = self.inner.behind.failed();
        if let Some((stop, h)) = self.inner.flusher.lock().expect("lock").take() {
            drop(stop);
            let _ = h.join();
        }
        fault(&self.inner.faults, "flushing the index")?;
        self.inner.index.flush().map_err(io)?;
        if let Some(e) = unindexed {
            // The log is whole; the next open indexes what sled lacks.
            return Err(e);
        }
        // Nothing was written after this head, and the end of the last
        // segment is zeros: the next open need not read it.
        if self.inner.poison.clean() {
            let head = *self.inner.heads.borrow();
            let _ = std::fs::write(self.inner.path.join(CLEAN_FILE), format!("{} {}\n", head.position, head.hash));
        }
        Ok(())
    }

    /// Moves the index aside and builds it again from the log: the remedy
    /// for a damaged index. The log itself is read and checked completely,
    /// first without writing anything: a log that no longer holds what the
    /// old index or the last clean close knew is refused, since an index
    /// built from it would cut the log there and let new events take the
    /// lost positions.
    pub fn rebuild_index(path: &Path) -> Result<Rebuilt, StoreError> {
        let marker = read_marker(path).map_err(|_| StoreError::NotAStore {
            path: path.display().to_string(),
            why: "no styrlogg marker".into(),
        })?;
        if let Err(m) = marker {
            let why = format!("its marker says {m}, not this layout");
            return Err(StoreError::NotAStore { path: path.display().to_string(), why });
        }
        let index_dir = path.join(INDEX_DIR);
        // (The walk first: it takes sled's lock file shared, which the
        // index just opened and dropped may hold a moment longer.)
        let found = salvage(path, |_| Ok(()))?;
        let indexed = old_index_head(&index_dir);
        let closed = found.closed_at.map_or(0, |c| c.position);
        let known = indexed.map_or(0, |h| h.position).max(closed);
        if let Some(c) = found.closed_at.filter(|c| c.position == found.head.position && c.hash != found.head.hash) {
            return Err(corrupt(
                c.position,
                format!(
                    "the log's files end with hash {}, but the store was closed there with hash {}: they are not the log that was closed. Nothing was changed",
                    found.head.hash, c.hash
                ),
            ));
        }
        if found.head.position < known {
            let (position, why) =
                found.stopped.unwrap_or((found.head.position + 1, "the log's files end there".into()));
            let by = if closed >= known { "the store was last closed at position" } else { "the index knew position" };
            return Err(corrupt(
                position,
                format!(
                    "{why}; {by} {known}, so an index rebuilt from these files would cut the log: log data was lost. Nothing was changed"
                ),
            ));
        }
        let mut kept = None;
        if index_dir.exists() {
            // Dated, and a name no earlier rebuild left behind.
            let when = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
            let aside = (0u32..)
                .map(|n| path.join(if n == 0 { format!("index.old-{when}") } else { format!("index.old-{when}-{n}") }))
                .find(|p| !p.exists())
                .expect("a free name");
            std::fs::rename(&index_dir, &aside).map_err(io)?;
            kept = Some(aside);
        }
        let store = EmbeddedStore::open(path, OpenMode::MustExist, Arc::new(crate::clock::SystemClock))?;
        let head = *store.inner.heads.borrow();
        store.close()?;
        // The open read and checked every frame: damage found earlier is
        // gone (it was in memory, or the files were restored).
        lift_damage_mark(path)?;
        Ok(Rebuilt { head, kept })
    }

    /// Damage found in the log's frames (not the index's): nothing more is
    /// written to this log, by this process or, through the `DAMAGED`
    /// mark, by any that opens it later. Returns the error as it was.
    fn found_damage(&self, e: StoreError) -> StoreError {
        if let StoreError::Corrupt { position, reason } = &e {
            if !self.inner.poison.is_damaged() {
                // The caller gets `e` and says it (the web logs it as a
                // store error): info here, so it is not said twice.
                tracing::info!(position, reason, "the log is damaged: writes are refused from now on");
                let mark = self.inner.path.join(DAMAGED_FILE);
                let written = File::create(&mark).and_then(|mut f| {
                    std::io::Write::write_all(&mut f, format!("{position}\n{reason}\n").as_bytes())?;
                    f.sync_all()
                });
                if let Err(e) = written {
                    tracing::error!("cannot write {}: {e}; only this process refuses writes", mark.display());
                }
            }
            self.inner.poison.damaged(*position, reason);
        }
        e
    }

    /// [`Self::found_damage`] for a frame read where the index said one
    /// starts: only when the log's own frames lead there too. Otherwise
    /// the index pointed at the wrong place, which is no damage to the log.
    fn found_damage_at(&self, e: StoreError, seg: &Segment, offset: u64) -> StoreError {
        let reached = offset == SEGMENT_HEADER_BYTES
            || seg
                .frame_headers()
                .map_while(Result::ok)
                .map(|(at, h)| at + h.total())
                .take_while(|end| *end <= offset)
                .any(|end| end == offset);
        if reached {
            self.found_damage(e)
        } else {
            e
        }
    }

    /// Checks every byte of the log's files and every entry of the index:
    /// each segment's header and size, every frame's hash and records, that
    /// frames continue each other and the chain, that only zeros follow the
    /// last frame of each segment, and that the index holds exactly the
    /// entries the log implies. What `verify` runs besides walking the chain.
    pub fn check_files(&self) -> Result<FilesReport, StoreError> {
        let durable = self.durable_position();
        // Every entry up to `durable` is in sled from here on.
        self.inner.behind.settle()?;
        let segments = self.inner.segments.read().expect("lock").clone();
        let mut report = FilesReport::default();
        let mut next = 1u64;
        let mut prev_hash = crate::event::Hash::default();
        let mut frames_expected = 0usize;
        // Each command the log holds, by instance and first sequence.
        let mut commands: std::collections::HashMap<(InstanceId, u64), RunCommand> = Default::default();
        let index = &self.inner.index;
        for seg in &segments {
            let at = |o: u64| format!("{} offset {o}", seg.path.display());
            let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
            seg.file.read_exact_at(&mut header, 0).map_err(io)?;
            let (first, capacity) = parse_segment_header(&seg.path, &header)?;
            let size = seg.file.metadata().map_err(io)?.len();
            if first != seg.first_position || capacity != seg.capacity || size != capacity {
                let why = format!("segment {}: its header, name or size changed", seg.path.display());
                return Err(self.found_damage(corrupt(next, why)));
            }
            if first != next {
                return Err(corrupt(
                    next,
                    format!("segment {} starts at {first}, expected {next}", seg.path.display()),
                ));
            }
            report.segments += 1;
            let mut reader = ChunkReader::new(seg.clone(), None);
            let mut offset = SEGMENT_HEADER_BYTES;
            loop {
                let h = reader.bytes(offset, FRAME_HEADER_BYTES)?.map(FrameHeader::parse);
                let Some(h) = h.filter(|h| !h.is_zero()) else { break };
                if h.first_position != next || h.first_position > durable {
                    return Err(corrupt(next, format!("{}: expected a frame starting at position {next}", at(offset))));
                }
                let bytes = reader
                    .bytes(offset, h.total() as usize)?
                    .ok_or_else(|| corrupt(next, format!("{}: a frame runs past its segment", at(offset))))?;
                let events = decode_frame(bytes, &at(offset), Records::Checked).map_err(|e| self.found_damage(e))?;
                if events[0].event.prev_hash != prev_hash {
                    let why = format!("{}: the frame does not continue the chain", at(offset));
                    return Err(self.found_damage(corrupt(next, why)));
                }
                // The index holds this frame and its commands, exactly.
                let want = FrameLoc { segment: seg.first_position, offset, events: h.events, body_bytes: h.body_bytes };
                let (key, value) = frame_entry(next, &want)?;
                if index.get(key).map_err(io)?.as_deref() != Some(&value[..]) {
                    return Err(corrupt(next, "the index's entry for this frame is missing or wrong; rebuild it with `styrlogg rebuild --index`"));
                }
                frames_expected += 1;
                for (o, command) in frame_commands(&events) {
                    commands.insert((o.instance.clone(), o.first_sequence), RunCommand::of(command_hash(command), &o));
                }
                let last = events.last().expect("non-empty");
                prev_hash = last.hash;
                next = last.event.position + 1;
                report.frames += 1;
                report.events += events.len() as u64;
                offset += h.total();
            }
            // Only zeros after the last frame.
            let mut at_zero = offset;
            while at_zero < seg.capacity {
                let n = (seg.capacity - at_zero).min(limits::READ_AHEAD_BYTES as u64) as usize;
                let b = reader.bytes(at_zero, n)?.expect("within the segment");
                if let Some(i) = b.iter().position(|b| *b != 0) {
                    let why = format!("{}: unexpected bytes after the last frame", at(at_zero + i as u64));
                    return Err(self.found_damage(corrupt(next, why)));
                }
                at_zero += n as u64;
            }
            report.bytes += seg.capacity;
        }
        if next - 1 != durable {
            return Err(corrupt(
                next,
                format!("the log's files end at position {} but the store's head is {durable}", next - 1),
            ));
        }
        // The instances' runs hold exactly the log's commands.
        let wrong = |why: String| corrupt(durable, format!("{why}; rebuild it with `styrlogg rebuild --index`"));
        let expected = commands.len();
        for kv in index.scan_prefix(b"S") {
            let (k, v) = kv.map_err(io)?;
            let (first, run) = decode_run(&k, &v)?;
            let instance = key_instance(&k).ok_or_else(|| wrong("malformed instance index key".into()))?;
            for (sequence, c) in run_commands(first, &run) {
                if commands.remove(&(instance.clone(), sequence)) != Some(c) {
                    return Err(wrong(format!(
                        "the index's entry for command {sequence} of instance {instance} is not in the log or differs"
                    )));
                }
            }
        }
        if let Some(((instance, sequence), _)) = commands.iter().next() {
            return Err(wrong(format!(
                "the index lacks {} of the log's {expected} commands, among them {sequence} of instance {instance}",
                commands.len()
            )));
        }
        // No entries beyond those the log implies.
        let frames = index.scan_prefix(b"F").count();
        let other = index
            .iter()
            .keys()
            .filter(|k| k.as_ref().is_ok_and(|k| !matches!(k.first(), Some(b'F' | b'S' | b'X' | b'M'))))
            .count();
        if frames != frames_expected || other > 0 {
            return Err(wrong(format!(
                "the index has {frames} frame entries and {other} unknown ones; the log implies {frames_expected} frames and nothing else"
            )));
        }
        report.mark_lifted = lift_damage_mark(&self.inner.path)?;
        Ok(report)
    }

    /// Where the log was found damaged, by a read of this process or (its
    /// `DAMAGED` mark) an earlier one, and why; none when it was not.
    /// Writes are refused while it is.
    pub fn damage(&self) -> Option<(u64, String)> {
        self.inner.poison.damage()
    }

    /// Events durable in the log that sled's index does not hold yet
    /// (the overlay answers for them meanwhile).
    pub fn index_backlog(&self) -> u64 {
        self.durable_position().saturating_sub(self.inner.behind.indexed().position)
    }

    /// Whether every stored command id is in memory (as a hash, with where
    /// its command starts). The first lookup of an id after an open reads
    /// them from the index's run entries; commits add theirs.
    pub fn knows_every_command_id(&self) -> bool {
        self.inner.behind.knows_every_id()
    }

    /// A stored command's outcome: the positions the index knows for its
    /// id's hash, each read from the log until one holds this id.
    fn find_command(&self, id: &CommandId) -> Result<Option<AppendOutcome>, StoreError> {
        for position in self.inner.behind.command_positions(command_hash(id))? {
            let (first, loc) = self.frame_at(position)?;
            let events = self.read_frame(first, loc)?;
            let from = events.get((position - first) as usize..).filter(|f| !f.is_empty());
            let from = from.ok_or_else(|| corrupt(position, "the index points a command id past its frame"))?;
            if from[0].event.command_id != *id {
                continue;
            }
            let (outcome, _) = frame_commands(from).next().expect("one event at least");
            return Ok(Some(outcome));
        }
        Ok(None)
    }

    /// Decides a request in the caller's task, once there is room for it
    /// in the writer's queue.
    async fn decide(&self, request: write::Request) -> Result<(), StoreError> {
        self.inner.touched.store(true, std::sync::atomic::Ordering::SeqCst);
        let room = self.inner.room.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let behind = &self.inner.behind;
        if !behind.knows_every_id() {
            // The first duplicate check after an open reads every command
            // id from the index (seconds for a large store): not on the
            // runtime's threads, and not under the decider lock.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let behind = behind.clone();
                    rt.spawn_blocking(move || behind.load_known())
                        .await
                        .map_err(|_| StoreError::Io("reading the command ids panicked".into()))??
                }
                Err(_) => behind.load_known()?,
            }
        }
        // A panic while deciding may have left the stager half changed.
        let mut decider = self
            .inner
            .decider
            .lock()
            .map_err(|_| StoreError::Poisoned("a request panicked while it was decided".into()))?;
        let spent = decider.decide(self, request, room);
        drop(decider);
        spent.map(drop)
    }

    fn durable_position(&self) -> u64 {
        self.inner.heads.borrow().position
    }

    fn weak(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    fn frame_at(&self, position: u64) -> Result<(u64, FrameLoc), StoreError> {
        fault(&self.inner.faults, "looking up a frame")?;
        if let Some(found) = self.inner.behind.frame_at(position) {
            return Ok(found);
        }
        let found = self.inner.index.range(frame_key(0)..=frame_key(position)).next_back().transpose().map_err(io)?;
        let (k, v) = found.ok_or_else(|| corrupt(position, "the index has no frame for this position"))?;
        let first = be_u64(&k[1..]).ok_or_else(|| corrupt(position, "malformed frame index key"))?;
        let loc: FrameLoc =
            postcard::from_bytes(&v).map_err(|e| corrupt(position, format!("frame index entry: {e}")))?;
        if position >= first + u64::from(loc.events) {
            return Err(corrupt(position, "the index has no frame holding this position"));
        }
        Ok((first, loc))
    }

    fn segment(&self, first_position: u64) -> Result<Segment, StoreError> {
        let segs = self.inner.segments.read().expect("lock");
        segs.iter()
            .find(|s| s.first_position == first_position)
            .cloned()
            .ok_or_else(|| corrupt(first_position, format!("segment {} is missing", segment_name(first_position))))
    }

    /// Reads and checks the frame starting at `first`.
    fn read_frame(&self, first: u64, loc: FrameLoc) -> Result<Vec<RecordedEvent>, StoreError> {
        fault(&self.inner.faults, "reading a frame")?;
        let seg = self.segment(loc.segment)?;
        let len = FRAME_HEADER_BYTES + loc.body_bytes as usize + FRAME_HASH_BYTES;
        let mut buf = vec![0u8; len];
        seg.file
            .read_exact_at(&mut buf, loc.offset)
            .map_err(|e| corrupt(first, format!("reading {} at offset {}: {e}", seg.path.display(), loc.offset)))?;
        // A header that is not the frame the index describes: the index
        // is what is wrong (or that header, which `verify` then finds).
        let h = FrameHeader::parse(&buf);
        if (h.first_position, h.events, h.body_bytes) != (first, loc.events, loc.body_bytes) {
            return Err(corrupt(
                first,
                format!(
                    "the index's entry for the frame at {} offset {} does not match the frame there; rebuild it with `styrlogg rebuild --index`",
                    seg.path.display(),
                    loc.offset
                ),
            ));
        }
        let events = decode_frame(&buf, &format!("{} offset {}", seg.path.display(), loc.offset), Records::Vouched)
            .map_err(|e| self.found_damage_at(e, &seg, loc.offset))?;
        if events.first().map(|e| e.event.position) != Some(first) || events.len() != loc.events as usize {
            return Err(corrupt(first, "the frame found does not hold the positions the index says"));
        }
        Ok(events)
    }
}

/// Reads a segment in large chunks, for reading frames in order.
struct ChunkReader {
    segment: Segment,
    buf: Vec<u8>,
    start: u64,
    faults: Faults,
}

impl ChunkReader {
    fn new(segment: Segment, faults: Faults) -> ChunkReader {
        ChunkReader { segment, buf: Vec::new(), start: 0, faults }
    }

    /// `len` bytes at `offset`, or None past the segment's end.
    fn bytes(&mut self, offset: u64, len: usize) -> Result<Option<&[u8]>, StoreError> {
        let cap = self.segment.capacity;
        if offset + len as u64 > cap {
            return Ok(None);
        }
        let end = self.start + self.buf.len() as u64;
        if offset < self.start || offset + len as u64 > end {
            fault(&self.faults, "reading the log")?;
            let want = len.max(limits::READ_AHEAD_BYTES).min((cap - offset) as usize);
            self.buf.resize(want, 0);
            self.segment
                .file
                .read_exact_at(&mut self.buf, offset)
                .map_err(|e| corrupt(0, format!("reading {} at offset {offset}: {e}", self.segment.path.display())))?;
            self.start = offset;
        }
        let i = (offset - self.start) as usize;
        Ok(Some(&self.buf[i..i + len]))
    }
}

fn load_segments(dir: &Path) -> Result<Vec<Segment>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name == "next.tmp" {
            // A segment being prepared when the process stopped.
            std::fs::remove_file(entry.path()).map_err(io)?;
            continue;
        }
        let Some(first) = name.strip_suffix(".seg").and_then(|n| n.parse::<u64>().ok()) else {
            // Not damage: a file someone put there. Nothing is read or
            // written until it is moved out.
            return Err(StoreError::Io(format!(
                "{} is in the log's directory but is no segment file (NUMBER.seg); the log keeps nothing else there: move it elsewhere",
                entry.path().display()
            )));
        };
        let path = entry.path();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(io)?;
        let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| corrupt(first, format!("segment {} is truncated", path.display())))?;
        let (named, capacity) = parse_segment_header(&path, &header)?;
        if named != first {
            return Err(corrupt(first, format!("segment {} says it starts at position {named}", path.display())));
        }
        let size = file.metadata().map_err(io)?.len();
        if size != capacity {
            return Err(corrupt(
                first,
                format!(
                    "segment {} is {size} bytes, its header says {capacity}: it was truncated or extended",
                    path.display()
                ),
            ));
        }
        out.push(Segment { first_position: first, capacity, file: Arc::new(file), path });
    }
    out.sort_by_key(|s| s.first_position);
    Ok(out)
}

/// Brings the index up to the end of the log on open.
struct Recovery<'a> {
    index: &'a sled::Db,
    segments: Vec<Segment>,
    faults: &'a Faults,
    /// The head written by the last clean close, if it was clean.
    clean: Option<Head>,
}

impl Recovery<'_> {
    /// Indexes every frame after the index's head, checks that the rest of
    /// the log is zeros (zeroing a torn last write), and returns the head.
    fn catch_up(&mut self) -> Result<(Head, Option<jiff::Timestamp>), StoreError> {
        fault(self.faults, "reading the end of the log")?;
        let indexed: Indexed = match self.index.get(INDEXED_KEY).map_err(io)? {
            None => Indexed::default(),
            Some(v) => {
                postcard::from_bytes(&v).map_err(|e| corrupt(0, format!("the index's head does not decode: {e}")))?
            }
        };
        // Where to read from: the frame holding the index's head, or the start.
        let (mut seg_i, mut offset, mut expect_first) = if indexed.head.position == 0 {
            (0usize, SEGMENT_HEADER_BYTES, 1u64)
        } else {
            let (k, v) = self
                .index
                .range(frame_key(0)..=frame_key(indexed.head.position))
                .next_back()
                .transpose()
                .map_err(io)?
                .ok_or_else(|| corrupt(indexed.head.position, "the index has no frame for its own head"))?;
            let first = be_u64(&k[1..]).unwrap_or(0);
            let loc: FrameLoc =
                postcard::from_bytes(&v).map_err(|e| corrupt(first, format!("frame index entry: {e}")))?;
            let Some(i) = self.segments.iter().position(|s| s.first_position == loc.segment) else {
                let end = self.frames_end();
                return Err(corrupt(
                    end + 1,
                    format!(
                        "segment {} holding indexed events is missing: log data was lost (the log's files end at position {end}, its index knows position {})",
                        segment_name(loc.segment),
                        indexed.head.position
                    ),
                ));
            };
            (i, loc.offset, first)
        };
        let mut head = Head::default();
        let mut last_recorded_at = None;
        if self.segments.is_empty() {
            if indexed.head.position > 0 {
                return Err(corrupt(1, "the log has no segments but its index knows events: log data was lost"));
            }
            if let Some(c) = self.clean.filter(|c| c.position > 0) {
                return Err(corrupt(
                    1,
                    format!(
                        "the log has no segments but the store was closed at position {}: log data was lost",
                        c.position
                    ),
                ));
            }
            return Ok((head, None));
        }
        if self.segments[0].first_position != 1 {
            return Err(corrupt(
                1,
                format!("the first segment starts at position {}", self.segments[0].first_position),
            ));
        }
        let mut batch = IndexBatch::default();
        loop {
            let seg = self.segments[seg_i].clone();
            let at = |o: u64| format!("{} offset {o}", seg.path.display());
            let mut hdr = [0u8; FRAME_HEADER_BYTES];
            let room = seg.capacity.saturating_sub(offset);
            let h = if room >= FRAME_HEADER_BYTES as u64 {
                seg.file.read_exact_at(&mut hdr, offset).map_err(io)?;
                FrameHeader::parse(&hdr)
            } else {
                FrameHeader { body_bytes: 0, events: 0, first_position: 0 }
            };
            if h.is_zero() {
                // The end of this segment's frames. In the last segment, a
                // crash may have left part of an unacknowledged write here;
                // anywhere else, only zeros may follow.
                if seg_i + 1 == self.segments.len() {
                    // After a clean close the end is known to be zeros; after
                    // a crash it is read to the end of the segment.
                    if self.clean != Some(head) {
                        self.tail(&seg, offset, expect_first)?;
                    }
                    break;
                }
                self.check_zeros(&seg, offset, expect_first)?;
                if self.segments[seg_i + 1].first_position != expect_first {
                    return Err(corrupt(
                        expect_first,
                        format!(
                            "segment {} follows a segment that ends before position {expect_first}",
                            self.segments[seg_i + 1].path.display()
                        ),
                    ));
                }
                seg_i += 1;
                offset = SEGMENT_HEADER_BYTES;
                continue;
            }
            // A header is written with its sector, whole or not at all: one
            // that does not fit the log was damaged.
            let plausible = h.first_position == expect_first
                && h.events as usize <= limits::FRAME_EVENTS_MAX
                && h.events > 0
                && h.total() <= room;
            if !plausible {
                return Err(corrupt(expect_first, format!("{}: a frame header that does not fit the log", at(offset))));
            }
            let mut bytes = vec![0u8; h.total() as usize];
            seg.file.read_exact_at(&mut bytes, offset).map_err(io)?;
            let events = match decode_frame(&bytes, &at(offset), Records::Checked) {
                Ok(events) => events,
                Err(err) => {
                    // The last write, cut short by a crash before it was
                    // acknowledged: some of its sectors never reached the disk.
                    let after = offset + h.total();
                    // Never a frame the index or a clean close knew: that
                    // one was acknowledged.
                    let known = indexed.head.position.max(self.clean.map_or(0, |c| c.position));
                    if seg_i + 1 == self.segments.len()
                        && h.first_position > known
                        && has_unwritten_sector(&bytes, offset)
                        && self.zeros_from(&seg, after)?
                    {
                        tracing::warn!(
                            position = expect_first,
                            "discarding a write cut short by a crash before it was acknowledged"
                        );
                        seg.file.write_all_at(&vec![0u8; bytes.len()], offset).map_err(io)?;
                        seg.file.sync_data().map_err(io)?;
                        break;
                    }
                    return Err(err);
                }
            };
            let last = events.last().expect("frames hold events");
            // Continues the chain?
            if let Some(first) = events.first() {
                if first.event.prev_hash != head.hash && first.event.position != 1 && head.position != 0 {
                    return Err(corrupt(first.event.position, format!("{}: does not continue the chain", at(offset))));
                }
            }
            let already = h.first_position <= indexed.head.position;
            if already {
                if indexed.head.position > last.event.position {
                    // Fine: a later frame holds the index's head.
                } else if indexed.head.position == last.event.position && indexed.head.hash != last.hash {
                    return Err(corrupt(
                        last.event.position,
                        "the log and its index disagree on this event's hash; when the index is what is wrong, `styrlogg rebuild --index` builds it again (it refuses when the log lost events)",
                    ));
                }
            } else {
                batch.frame_events(seg.first_position, offset, h, &events);
            }
            head = Head { position: last.event.position, hash: last.hash };
            last_recorded_at = Some(last.event.recorded_at);
            expect_first = last.event.position + 1;
            offset += h.total();
            if batch.events >= limits::INDEX_BATCH_EVENTS {
                self.apply(std::mem::take(&mut batch), head)?;
            }
        }
        if indexed.head.position > head.position {
            let why = format!("its index knows position {}", indexed.head.position);
            return Err(self.lost_end(head, &why, "a truncated or deleted segment"));
        }
        if let Some(c) = self.clean.filter(|c| c.position == head.position && c.hash != head.hash) {
            return Err(corrupt(
                head.position,
                format!(
                    "the log ends at position {} with hash {}, but the store was closed there with hash {}: the log is not the one closed",
                    head.position, head.hash, c.hash
                ),
            ));
        }
        if let Some(c) = self.clean.filter(|c| c.position > head.position) {
            let why = format!("the store was closed at position {}", c.position);
            return Err(self.lost_end(head, &why, "a truncated or deleted segment, or a zeroed end"));
        }
        if batch.events > 0 || indexed.head.position < head.position {
            self.apply(batch, head)?;
        }
        Ok((head, last_recorded_at))
    }

    /// The error for a log that ends at `head`, before what `knew` says it
    /// held. The walk began at the frame holding the index's head; when
    /// that frame is gone (`head` is still zero), where the log ends is
    /// found from the start.
    fn lost_end(&self, head: Head, knew: &str, how: &str) -> StoreError {
        let end = if head.position == 0 { self.frames_end() } else { head.position };
        corrupt(end + 1, format!("the log ends at position {end} but {knew}: log data was lost ({how})"))
    }

    /// The last position of the whole frames the log's files hold, from
    /// the first segment on, up to the first frame whose bytes do not
    /// match its hash: where an error says the log ends when its end is
    /// lost. Reads only.
    fn frames_end(&self) -> u64 {
        let mut expect = 1u64;
        for seg in &self.segments {
            if seg.first_position != expect {
                break;
            }
            for header in seg.frame_headers() {
                let Ok((offset, h)) = header else { return expect - 1 };
                let fits = h.first_position == expect && h.events > 0 && h.events as usize <= limits::FRAME_EVENTS_MAX;
                let mut bytes = vec![0u8; if fits { h.total() as usize } else { 0 }];
                let whole = fits
                    && seg.file.read_exact_at(&mut bytes, offset).is_ok()
                    && decode_frame(&bytes, "", Records::Vouched).is_ok();
                if !whole {
                    return expect - 1;
                }
                expect += u64::from(h.events);
            }
        }
        expect - 1
    }

    fn apply(&self, batch: IndexBatch, head: Head) -> Result<(), StoreError> {
        fault(self.faults, "indexing frames found on open")?;
        write_index(self.index, batch.entries()?, head)
    }

    fn zeros_from(&self, seg: &Segment, from: u64) -> Result<bool, StoreError> {
        let mut buf = vec![0u8; 1 << 20];
        let mut at = from;
        while at < seg.capacity {
            let n = (seg.capacity - at).min(buf.len() as u64) as usize;
            seg.file.read_exact_at(&mut buf[..n], at).map_err(io)?;
            if buf[..n].iter().any(|b| *b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }

    /// After the last frame of the last segment: zeros, or what a crash can
    /// leave of an unacknowledged write whose header sector was not written
    /// (whole sectors of data within one frame's reach), which is zeroed. A
    /// sector with a few stray bits is damage.
    fn tail(&self, seg: &Segment, from: u64, position: u64) -> Result<(), StoreError> {
        // Find the last non-zero byte, reading backwards a chunk at a time.
        let mut end = seg.capacity;
        let mut chunk = vec![0u8; 1 << 20];
        let last_abs = loop {
            if end <= from {
                return Ok(());
            }
            let start = end.saturating_sub(chunk.len() as u64).max(from);
            let n = (end - start) as usize;
            seg.file.read_exact_at(&mut chunk[..n], start).map_err(io)?;
            if let Some(i) = chunk[..n].iter().rposition(|b| *b != 0) {
                break start + i as u64;
            }
            end = start;
        };
        let reach = (FRAME_HEADER_BYTES + limits::FRAME_BODY_BYTES_MAX + FRAME_HASH_BYTES) as u64;
        if last_abs - from >= reach {
            return Err(corrupt(
                position,
                format!("{}: unexpected bytes after the last frame (offset {last_abs})", seg.path.display()),
            ));
        }
        let mut buf = vec![0u8; (last_abs - from + 1) as usize];
        seg.file.read_exact_at(&mut buf, from).map_err(io)?;
        // Within one frame's reach (checked above): data-like if no sector
        // holds just a few stray bits.
        let last = buf.len() - 1;
        let mut i = 0usize;
        let mut data_like = true;
        while data_like && i <= last {
            let abs = from + i as u64;
            let sector_end = (abs / SECTOR_BYTES as u64 + 1) * SECTOR_BYTES as u64;
            let n = ((sector_end - abs) as usize).min(buf.len() - i);
            let nonzero = buf[i..i + n].iter().filter(|b| **b != 0).count();
            if nonzero > 0 && nonzero < 16.min(n) {
                data_like = false;
            }
            i += n;
        }
        if !data_like {
            return Err(corrupt(
                position,
                format!(
                    "{}: unexpected bytes after the last frame (offset {})",
                    seg.path.display(),
                    from + last as u64
                ),
            ));
        }
        tracing::warn!(position, "discarding part of a write cut short by a crash before it was acknowledged");
        seg.file.write_all_at(&vec![0u8; last + 1], from).map_err(io)?;
        seg.file.sync_data().map_err(io)?;
        Ok(())
    }

    fn check_zeros(&self, seg: &Segment, from: u64, position: u64) -> Result<(), StoreError> {
        if self.zeros_from(seg, from)? {
            Ok(())
        } else {
            Err(corrupt(
                position,
                format!("{}: unexpected bytes after the last frame at offset {from}", seg.path.display()),
            ))
        }
    }
}

/// Whether a frame read at file offset `at` has a sector (the part of a
/// 512-byte disk sector inside the frame, if at least 8 bytes) that is all
/// zeros: a sector the disk never wrote. Every written part of a frame holds
/// lengths, text and hashes, never 8 zero bytes in a row at a sector's edge.
fn has_unwritten_sector(frame: &[u8], at: u64) -> bool {
    let mut i = 0usize;
    while i < frame.len() {
        let abs = at + i as u64;
        let sector_end = (abs / SECTOR_BYTES as u64 + 1) * SECTOR_BYTES as u64;
        let n = ((sector_end - abs) as usize).min(frame.len() - i);
        if n >= 8 && frame[i..i + n].iter().all(|b| *b == 0) {
            return true;
        }
        i += n;
    }
    false
}

/// The commands of one frame's events, in order, with the outcome each was
/// acknowledged with (a command's events are contiguous: it is appended
/// whole).
fn frame_commands(events: &[RecordedEvent]) -> impl Iterator<Item = (AppendOutcome, &CommandId)> {
    events.chunk_by(|a, b| a.event.command_id == b.event.command_id && a.event.instance == b.event.instance).map(
        |command| {
            let (first, last) = (&command[0].event, &command[command.len() - 1]);
            let outcome = AppendOutcome {
                instance: first.instance.clone(),
                first_sequence: first.sequence,
                last_sequence: last.event.sequence,
                first_position: first.position,
                last_position: last.event.position,
                last_hash: last.hash,
                deduplicated: false,
            };
            (outcome, &first.command_id)
        },
    )
}

/// An index entry: key and value.
type IndexEntry = (Vec<u8>, Vec<u8>);

/// Index entries for a stretch of the log: one per frame, and one per run
/// of an instance's commands (not one per command: sled's cost is per
/// key, and a busy instance has many commands in a stretch).
#[derive(Default)]
struct IndexBatch {
    frames: Vec<(u64, FrameLoc)>,
    /// Per instance, in order of first appearance: first sequence, commands.
    runs: Vec<(InstanceId, u64, Vec<RunCommand>)>,
    /// Each instance's open run: where it is in `runs`, and the sequence
    /// that continues it.
    open: std::collections::HashMap<InstanceId, (usize, u64)>,
    events: usize,
}

impl IndexBatch {
    fn frame(&mut self, first_position: u64, loc: FrameLoc) {
        self.events += loc.events as usize;
        self.frames.push((first_position, loc));
    }

    /// A command, after every command of its instance added before it.
    fn command(&mut self, id: u64, o: &AppendOutcome) {
        let c = RunCommand::of(id, o);
        if let Some((i, next)) = self.open.get_mut(&o.instance) {
            if *next == o.first_sequence {
                self.runs[*i].2.push(c);
                *next = o.last_sequence + 1;
                return;
            }
        }
        self.open.insert(o.instance.clone(), (self.runs.len(), o.last_sequence + 1));
        self.runs.push((o.instance.clone(), o.first_sequence, vec![c]));
    }

    /// A frame read from the log, with its commands.
    fn frame_events(&mut self, segment: u64, offset: u64, h: FrameHeader, events: &[RecordedEvent]) {
        self.frame(h.first_position, FrameLoc { segment, offset, events: h.events, body_bytes: h.body_bytes });
        for (outcome, command) in frame_commands(events) {
            self.command(command_hash(command), &outcome);
        }
    }

    fn entries(self) -> Result<Vec<IndexEntry>, StoreError> {
        let mut out = Vec::with_capacity(self.frames.len() + self.runs.len());
        for (first, loc) in &self.frames {
            out.push(frame_entry(*first, loc)?);
        }
        for (instance, first, run) in &self.runs {
            out.push((instance_key(instance, *first), postcard::to_stdvec(run).map_err(io)?));
        }
        Ok(out)
    }
}

/// A frame's index entry: its first position to where it is.
fn frame_entry(first_position: u64, loc: &FrameLoc) -> Result<IndexEntry, StoreError> {
    Ok((frame_key(first_position).to_vec(), postcard::to_stdvec(loc).map_err(io)?))
}

/// Writes index entries, then the head they complete the index up to.
/// Key by key, not as one sled batch: a batch holds a lock that every read
/// of sled waits for, for as long as the batch takes. Entries written
/// without the head that covers them are harmless: an open indexes again
/// from the head, and writes the same entries.
fn write_index(db: &sled::Db, entries: Vec<IndexEntry>, head: Head) -> Result<(), StoreError> {
    for (k, v) in entries {
        db.insert(k, v).map_err(io)?;
    }
    db.insert(INDEXED_KEY, postcard::to_stdvec(&Indexed { head }).map_err(io)?).map_err(io)?;
    Ok(())
}

impl EmbeddedStore {
    /// Up to `max` durable records from `from_position`, their frames
    /// checked, not yet decoded.
    fn page_records(&self, from_position: u64, max: usize) -> Result<PageRecords, StoreError> {
        let mut page = PageRecords::default();
        let durable = self.durable_position();
        let from = from_position.max(1);
        if from > durable || max == 0 {
            return Ok(page);
        }
        // Find the first frame through the index, then follow the files:
        // frames are contiguous, and only durable frames are ever read.
        let (_, loc) = self.frame_at(from)?;
        let mut reader = ChunkReader::new(self.segment(loc.segment)?, self.inner.faults.clone());
        let mut offset = loc.offset;
        let mut next = from;
        while page.records.len() < max && next <= durable {
            let header = reader.bytes(offset, FRAME_HEADER_BYTES)?;
            let h = header.map(FrameHeader::parse).filter(|h| !h.is_zero());
            let Some(h) = h else {
                reader = ChunkReader::new(self.segment(next)?, self.inner.faults.clone());
                offset = SEGMENT_HEADER_BYTES;
                continue;
            };
            let at = format!("{} offset {offset}", reader.segment.path.display());
            if h.first_position > next || h.first_position + u64::from(h.events) <= next {
                return Err(corrupt(next, format!("{at}: expected the frame holding position {next}")));
            }
            let bytes = reader
                .bytes(offset, h.total() as usize)?
                .ok_or_else(|| corrupt(next, format!("{at}: a frame runs past its segment")))?;
            let records = match frame_records(bytes, &at) {
                Ok(r) => r,
                Err(e) => return Err(self.found_damage_at(e, &reader.segment.clone(), offset)),
            };
            let base = page.bytes.len();
            page.bytes.extend_from_slice(bytes);
            let frame = page.frames.len();
            page.frames.push(at);
            for (i, r) in records.into_iter().enumerate() {
                let position = h.first_position + i as u64;
                if position < next {
                    continue;
                }
                if page.records.len() == max || position > durable {
                    break;
                }
                next = position + 1;
                page.records.push((position, base + r.start..base + r.end, frame));
            }
            offset += h.total();
        }
        Ok(page)
    }
}

#[async_trait::async_trait]
impl EventStore for EmbeddedStore {
    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let req = Checked::new(req)?;
        let (tx, rx) = oneshot::channel();
        self.decide(write::Request::Append(req, tx)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn import(&self, events: Vec<RecordedEvent>) -> Result<Head, AppendError> {
        crate::commit::check_import_chunk(&events)?;
        let (tx, rx) = oneshot::channel();
        self.decide(write::Request::Import(events, tx)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_instance(&self, instance: &InstanceId, from_sequence: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let durable = self.durable_position();
        let mut out = Vec::new();
        let mut cached: Option<(u64, Vec<RecordedEvent>)> = None;
        let mut expected = 1u64;
        fault(&self.inner.faults, "reading an instance's index")?;
        // The overlay first: an entry that leaves it is in sled by then.
        let mut entries: std::collections::BTreeMap<u64, CommandLoc> =
            self.inner.behind.instance_entries(instance).into_iter().collect();
        for kv in self.inner.index.scan_prefix(instance_prefix(instance)) {
            let (k, v) = kv.map_err(io)?;
            let (first, run) = decode_run(&k, &v)?;
            for (sequence, c) in run_commands(first, &run) {
                entries.insert(sequence, CommandLoc { first_position: c.first_position, count: c.count });
            }
        }
        for (first_sequence, loc) in entries {
            if loc.first_position > durable {
                break;
            }
            if first_sequence != expected {
                return Err(corrupt(
                    loc.first_position,
                    format!("instance {instance} jumps to sequence {first_sequence}"),
                ));
            }
            expected += u64::from(loc.count);
            if first_sequence + u64::from(loc.count) <= from_sequence {
                continue;
            }
            for p in loc.first_position..loc.first_position + u64::from(loc.count) {
                let hit = cached.as_ref().is_some_and(|(f, evs)| p >= *f && p < *f + evs.len() as u64);
                if !hit {
                    let (first, floc) = self.frame_at(p)?;
                    cached = Some((first, self.read_frame(first, floc)?));
                }
                let (f, evs) = cached.as_ref().expect("read above");
                let e = &evs[(p - f) as usize];
                if e.event.instance != *instance {
                    return Err(corrupt(
                        p,
                        format!("the index of instance {instance} points to another instance's event"),
                    ));
                }
                if e.event.sequence >= from_sequence {
                    out.push(e.clone());
                }
            }
        }
        Ok(out)
    }

    async fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.page_records(from_position, max)?.decode()
    }

    async fn read_records(&self, from_position: u64, max: usize) -> Result<RecordPage, StoreError> {
        let page = self.page_records(from_position, max)?;
        RecordPage::stored(page.bytes, page.records, page.frames)
    }

    async fn head(&self) -> Result<Head, StoreError> {
        Ok(*self.inner.heads.borrow())
    }

    async fn command_outcome(
        &self,
        instance: &InstanceId,
        command_id: &CommandId,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        fault(&self.inner.faults, "looking up a command")?;
        let outcome = self.find_command(command_id)?;
        Ok(outcome.filter(|o| o.instance == *instance && o.last_position <= self.durable_position()))
    }

    fn subscribe(&self, from_position: u64) -> Subscription {
        let weak = self.weak();
        Subscription::spawn(
            move || weak.upgrade().map(|inner| EmbeddedStore { inner }),
            self.inner.heads.clone(),
            from_position,
        )
    }
}
