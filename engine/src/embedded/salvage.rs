//! Reading what can still be read of a damaged log, without opening the
//! store: `export --salvage`.
//!
//! An open checks the end of the log and refuses a store whose last frames
//! are damaged, and ordinary reads stop at the first damaged frame, so
//! neither can hand over the intact part of a damaged log. [`salvage`]
//! reads the segment files from the first frame on, checks every frame and
//! every event as `verify` and `import` do, and hands over events until the
//! first thing that does not check out. It writes nothing: not the index,
//! not the `CLEAN` mark, not a torn write (an open would zero that). It
//! holds a shared lock on the index, so no process serves the store while
//! it reads, and any process that tries is told the store is in use.

use super::{
    decode_frame, parse_segment_header, FrameHeader, Records, CLEAN_FILE, FRAME_HEADER_BYTES, INDEX_DIR, LOG_DIR,
    SEGMENT_HEADER_BYTES,
};
use crate::event::{Hash, RecordedEvent};
use crate::export::{ExportChecker, ExportError};
use crate::limits;
use crate::store::{Head, StoreError};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What [`salvage`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salvaged {
    /// The last event handed over: positions 1 to `head.position` were,
    /// each once, in order.
    pub head: Head,
    /// Segment files read, whole or in part.
    pub segments: u64,
    /// Where reading stopped, and why: the first position that could not
    /// be handed over. None when every byte of the log's files checked out
    /// to the end.
    pub stopped: Option<(u64, String)>,
    /// The head a clean close recorded in the `CLEAN` mark, when there is
    /// one: how far the log reached when it was last closed.
    pub closed_at: Option<Head>,
}

/// Reads the log's segment files in directory `path` (a store's `--data`)
/// and hands every event that checks out to `each`, in order, until the
/// first that does not. Fails only when it cannot start (no store there,
/// the store in use) or `each` fails; damage is what [`Salvaged::stopped`]
/// reports.
pub fn salvage(
    path: &Path,
    mut each: impl FnMut(&RecordedEvent) -> std::io::Result<()>,
) -> Result<Salvaged, StoreError> {
    let shown = path.display().to_string();
    match super::read_marker(path) {
        Ok(Ok(())) => {}
        Ok(Err(m)) => {
            return Err(StoreError::NotAStore { path: shown, why: format!("its marker says {m}, not this layout") })
        }
        Err(_) if !path.exists() => {
            return Err(StoreError::NotFound {
                path: shown,
                hint: "give --data the directory of the damaged store".into(),
            })
        }
        Err(_) => return Err(StoreError::NotAStore { path: shown, why: "it has no styrlogg marker".into() }),
    }
    let _lock = SharedLock::take(&path.join(INDEX_DIR).join("db"), &shown)?;
    let closed_at = std::fs::read_to_string(path.join(CLEAN_FILE)).ok().and_then(|t| super::parse_clean(&t));
    let mut walk = Walk { checker: ExportChecker::new(), next: 1, head: Hash::default(), each: &mut each };
    let mut segments = 0;
    let stopped = match segment_files(&path.join(LOG_DIR)) {
        Err(e) => Some((1, e)),
        Ok(files) => {
            let mut stopped = None;
            for (i, (first, file)) in files.iter().enumerate() {
                if *first != walk.next {
                    stopped = Some((walk.next, missing_segment(walk.next, *first, file)));
                    break;
                }
                segments += 1;
                if let Err(why) = walk.segment(file, i + 1 == files.len())? {
                    stopped = Some((walk.next, why));
                    break;
                }
            }
            stopped
        }
    };
    let head = Head { position: walk.next - 1, hash: walk.head };
    // Every byte checked out, but a clean close recorded another end: the
    // end of the log is missing (zeroed, or a last segment gone). No open
    // has happened since that close, or the mark would be gone.
    let stopped = stopped.or_else(|| match closed_at {
        Some(c) if c.position > head.position => Some((
            head.position + 1,
            "the log's files end there, though every byte of them checked out: the end of the log is missing"
                .to_string(),
        )),
        Some(c) if c != head => Some((
            head.position.min(c.position),
            format!(
                "the store was closed at position {} with hash {}, but the log's files end at position {} with hash {}",
                c.position, c.hash, head.position, head.hash
            ),
        )),
        _ => None,
    });
    Ok(Salvaged { head, segments, stopped, closed_at })
}

fn missing_segment(next: u64, first: u64, file: &Path) -> String {
    if next == 1 {
        format!("the first segment, {}, starts at position {first}", file.display())
    } else {
        format!("no segment holds position {next}: the next one, {}, starts at position {first}", file.display())
    }
}

/// The segment files (`NUMBER.seg`) in `dir`, by first position. Other
/// files are passed over: they are not the log.
fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(first) = name.strip_suffix(".seg").and_then(|n| n.parse::<u64>().ok()) {
            out.push((first, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

struct Walk<'a, F> {
    checker: ExportChecker,
    /// The next position to hand over.
    next: u64,
    /// The hash of the last event handed over.
    head: Hash,
    each: &'a mut F,
}

impl<F: FnMut(&RecordedEvent) -> std::io::Result<()>> Walk<'_, F> {
    /// Reads one segment's frames. The outer error is `each` failing; the
    /// inner one is damage, which ends the walk.
    fn segment(&mut self, path: &Path, last: bool) -> Result<Result<(), String>, StoreError> {
        let shown = path.display();
        // A FIFO would block the open, a directory fail the reads.
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Ok(Err(format!("segment {shown} is not a regular file"))),
            Err(e) => return Ok(Err(format!("cannot read segment {shown}: {e}"))),
        }
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return Ok(Err(format!("cannot open segment {shown}: {e}"))),
        };
        let size = match file.metadata() {
            Ok(m) => m.len(),
            Err(e) => return Ok(Err(format!("cannot read segment {shown}: {e}"))),
        };
        let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
        if file.read_exact_at(&mut header, 0).is_err() {
            return Ok(Err(format!("segment {shown} is too short for its header")));
        }
        let (first, capacity) = match parse_segment_header(path, &header) {
            Ok(h) => h,
            Err(e) => return Ok(Err(reason(e))),
        };
        if first != self.next {
            return Ok(Err(format!("segment {shown} says it starts at position {first}, its name {}", self.next)));
        }
        // A truncated segment is read as far as it goes.
        let end = capacity.min(size);
        let at = |o: u64| format!("{shown} offset {o}");
        let mut offset = SEGMENT_HEADER_BYTES;
        while offset + FRAME_HEADER_BYTES as u64 <= end {
            let mut hdr = [0u8; FRAME_HEADER_BYTES];
            if let Err(e) = file.read_exact_at(&mut hdr, offset) {
                return Ok(Err(format!("{}: cannot read: {e}", at(offset))));
            }
            let h = FrameHeader::parse(&hdr);
            if h.is_zero() {
                break;
            }
            let plausible = h.first_position == self.next
                && h.events > 0
                && h.events as usize <= limits::FRAME_EVENTS_MAX
                && h.total() <= end - offset;
            if !plausible {
                let past = h.total() > end - offset && h.first_position == self.next;
                return Ok(Err(if past && size < capacity {
                    format!("{}: the frame runs past the end of the file, which was truncated", at(offset))
                } else {
                    format!("{}: a frame header that does not fit the log", at(offset))
                }));
            }
            let mut bytes = vec![0u8; h.total() as usize];
            if let Err(e) = file.read_exact_at(&mut bytes, offset) {
                return Ok(Err(format!("{}: cannot read: {e}", at(offset))));
            }
            let events = match decode_frame(&bytes, &at(offset), Records::Checked) {
                Ok(events) => events,
                Err(e) => return Ok(Err(reason(e))),
            };
            // Whole frames only: a frame holds whole commands, and a file
            // that ended inside one would not import.
            for e in &events {
                if let Err(e) = self.checker.check(e.event.position, e) {
                    let why = match e {
                        ExportError::Chain { chain, .. } => chain.to_string(),
                        ExportError::Import { position, reason, .. } => format!("position {position}: {reason}"),
                        other => other.to_string(),
                    };
                    return Ok(Err(format!("{}: {why}", at(offset))));
                }
            }
            for e in &events {
                (self.each)(e).map_err(|e| StoreError::Io(format!("writing the salvaged events: {e}")))?;
            }
            let last_event = events.last().expect("a frame holds one event at least");
            self.next = last_event.event.position + 1;
            self.head = last_event.hash;
            offset += h.total();
        }
        if size < capacity {
            return Ok(Err(format!("segment {shown} is {size} bytes, its header says {capacity}: it was truncated")));
        }
        // Only zeros may follow the last frame: anything else may be frames
        // behind a damaged header, which cannot be found without it.
        let mut zero_from = offset;
        let mut buf = vec![0u8; limits::READ_AHEAD_BYTES];
        while zero_from < end {
            let n = (end - zero_from).min(buf.len() as u64) as usize;
            if let Err(e) = file.read_exact_at(&mut buf[..n], zero_from) {
                return Ok(Err(format!("{}: cannot read: {e}", at(zero_from))));
            }
            if let Some(i) = buf[..n].iter().position(|b| *b != 0) {
                let what = if last { "after the last frame that checks out" } else { "after the segment's last frame" };
                return Ok(Err(format!("{}: unexpected bytes {what}", at(zero_from + i as u64))));
            }
            zero_from += n as u64;
        }
        Ok(Ok(()))
    }
}

/// A store error's reason, without the advice an open adds to it.
fn reason(e: StoreError) -> String {
    match e {
        StoreError::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// A shared lock on sled's lock file: a process that opens the store needs
/// it exclusively, so neither can start while the other holds it.
/// The lock goes with the descriptor when it is dropped.
struct SharedLock(#[allow(dead_code)] Option<File>);

impl SharedLock {
    fn take(lock_file: &Path, shown: &str) -> Result<SharedLock, StoreError> {
        use std::os::fd::AsRawFd;
        // No index: no process has the store open (an open creates it).
        let Ok(file) = File::open(lock_file) else { return Ok(SharedLock(None)) };
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                return Err(StoreError::Locked { path: shown.to_string() });
            }
            return Err(StoreError::Io(format!("locking {}: {e}", lock_file.display())));
        }
        Ok(SharedLock(Some(file)))
    }
}

// The lock goes with the descriptor when the file is dropped.
impl Drop for SharedLock {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}
