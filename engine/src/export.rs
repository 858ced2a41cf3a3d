//! Reading an export back: JSON Lines of [`RecordedEvent`]s, each line
//! checked as it is read, so that a file that passes [`read_export`] is
//! one a store's `import` accepts whole. Nothing here does IO beyond the
//! reader it is handed; every bound comes from [`limits`].
//!
//! What is checked, each with the line it failed on:
//! - a line is at most [`limits::EXPORT_LINE_BYTES_MAX`] bytes of UTF-8;
//!   the file at most [`limits::EXPORT_BYTES_MAX`] bytes and
//!   [`limits::EXPORT_EVENTS_MAX`] events;
//! - each line is one exported event (the JSON `styrlogg export` writes);
//! - the events form a chain ([`ChainVerifier`]): positions 1, 2, 3, ...,
//!   each linked to the hash before it, each re-encoding to its own hash,
//!   each instance's sequences contiguous;
//! - what a store's import checks as well, so that no chunk of an import
//!   can be refused after an earlier one was written: `recorded_at` never
//!   goes back, a command's events are contiguous, in one instance and at
//!   most [`limits::EVENTS_PER_COMMIT_MAX`], and a command id is never
//!   used again later in the log.

use crate::chain::{ChainBreak, ChainVerifier};
use crate::event::{CommandId, InstanceId, RecordedEvent};
use crate::limits;
use jiff::Timestamp;
use std::collections::HashSet;
use std::io::BufRead;

/// Why an export cannot be imported. Every variant but [`ExportError::Io`]
/// is a problem with the file (the user's to fix); `Io` is the system's.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("line {line}: longer than {max} bytes; no exported event is that long", max = limits::EXPORT_LINE_BYTES_MAX)]
    LineTooLong { line: u64 },
    #[error("line {line}: not UTF-8 text")]
    NotUtf8 { line: u64 },
    #[error("line {line}: not an exported event: {reason}")]
    NotAnEvent { line: u64, reason: String },
    #[error("line {line}: {chain}")]
    Chain { line: u64, chain: ChainBreak },
    #[error("line {line}: position {position}: {reason}")]
    Import { line: u64, position: u64, reason: String },
    #[error("more than {max} events; import at most that many at once", max = limits::EXPORT_EVENTS_MAX)]
    TooManyEvents,
    #[error("more than {max} bytes; import at most that much at once", max = limits::EXPORT_BYTES_MAX)]
    TooLarge,
    #[error("no events to import")]
    Empty,
    #[error("reading line {line}: {source}")]
    Io { line: u64, source: std::io::Error },
}

impl ExportError {
    /// Whether the failure is the system's (reading failed) rather than
    /// the file's.
    pub fn is_io(&self) -> bool {
        matches!(self, ExportError::Io { .. })
    }
}

/// Parses one line of an export (without its line end) into an event.
/// Checks only that it is an event; [`ExportChecker`] checks the chain.
pub fn parse_line(line: &str) -> Result<RecordedEvent, String> {
    if line.len() > limits::EXPORT_LINE_BYTES_MAX {
        return Err(format!("longer than {} bytes", limits::EXPORT_LINE_BYTES_MAX));
    }
    serde_json::from_str(line).map_err(|e| e.to_string())
}

/// Checks events one at a time, in the order of the file, as
/// [`read_export`] does: the chain, and what a store's import refuses.
#[derive(Debug, Default)]
pub struct ExportChecker {
    chain: ChainVerifier,
    last_recorded_at: Option<Timestamp>,
    /// The command being read: its id, instance and events so far.
    command: Option<(CommandId, InstanceId, usize)>,
    /// Every command id whose events have ended.
    done: HashSet<CommandId>,
    events: u64,
}

impl ExportChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next event, read from line `line`.
    pub fn check(&mut self, line: u64, e: &RecordedEvent) -> Result<(), ExportError> {
        self.chain.check(e).map_err(|chain| ExportError::Chain { line, chain })?;
        let b = &e.event;
        let fail = |reason: String| Err(ExportError::Import { line, position: b.position, reason });
        if let Some(last) = self.last_recorded_at {
            if b.recorded_at < last {
                return fail(format!("recorded_at {} goes back before {last}", b.recorded_at));
            }
        }
        self.last_recorded_at = Some(b.recorded_at);
        match &mut self.command {
            Some((id, instance, n)) if *id == b.command_id => {
                if *instance != b.instance {
                    return fail(format!(
                        "command {id} continues in instance {}, but began in {instance}; one command writes to one instance",
                        b.instance
                    ));
                }
                *n += 1;
                if *n > limits::EVENTS_PER_COMMIT_MAX {
                    return fail(format!(
                        "command {id} has more than {} events, more than one append may hold",
                        limits::EVENTS_PER_COMMIT_MAX
                    ));
                }
            }
            _ => {
                if self.done.contains(&b.command_id) {
                    return fail(format!("command id {} was already used earlier in the log", b.command_id));
                }
                if let Some((id, _, _)) = self.command.replace((b.command_id.clone(), b.instance.clone(), 1)) {
                    self.done.insert(id);
                }
            }
        }
        self.events += 1;
        Ok(())
    }

    /// Events checked so far.
    pub fn events(&self) -> u64 {
        self.events
    }
}

/// Reads a whole export and checks it (see the module's documentation).
/// Blank lines are skipped; a line may end in `\n` or `\r\n`.
pub fn read_export(mut reader: impl BufRead) -> Result<Vec<RecordedEvent>, ExportError> {
    let mut events = Vec::new();
    let mut checker = ExportChecker::new();
    let mut buf = Vec::new();
    let mut total: u64 = 0;
    let mut line: u64 = 0;
    loop {
        line += 1;
        buf.clear();
        // At most a line and its line end, and one byte more, so that an
        // overlong line is told apart from one that just fits, and never
        // held whole.
        let cap = (limits::EXPORT_LINE_BYTES_MAX + 3) as u64;
        let n = std::io::Read::take(&mut reader, cap)
            .read_until(b'\n', &mut buf)
            .map_err(|source| ExportError::Io { line, source })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limits::EXPORT_BYTES_MAX {
            return Err(ExportError::TooLarge);
        }
        let ended = buf.last() == Some(&b'\n');
        if ended {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if buf.len() > limits::EXPORT_LINE_BYTES_MAX {
            return Err(ExportError::LineTooLong { line });
        }
        let text = std::str::from_utf8(&buf).map_err(|_| ExportError::NotUtf8 { line })?;
        if text.trim().is_empty() {
            continue;
        }
        let e = parse_line(text).map_err(|reason| ExportError::NotAnEvent { line, reason })?;
        if checker.events() >= limits::EXPORT_EVENTS_MAX {
            return Err(ExportError::TooManyEvents);
        }
        checker.check(line, &e)?;
        events.push(e);
    }
    if events.is_empty() {
        return Err(ExportError::Empty);
    }
    Ok(events)
}
