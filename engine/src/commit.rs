//! The decision part of a commit, shared by every local backend: checking
//! expected versions and command ids, numbering events, and chaining their
//! hashes. Backends only persist what this stages.

use crate::codec;
use crate::event::{CommandId, EventBody, EventId, InstanceId, RecordedEvent};
use crate::limits;
use crate::store::{AppendError, AppendOutcome, AppendRequest, Head, StoreError};
use jiff::Timestamp;
use std::collections::HashMap;

/// An append whose content has been checked against the limits: what the
/// stager takes. Checking needs nothing stored, so a backend can do it
/// before the request is decided (in the caller's task).
#[derive(Debug)]
pub(crate) struct Checked(AppendRequest);

impl Checked {
    /// Checks the events' number and every event's content.
    pub fn new(req: AppendRequest) -> Result<Checked, AppendError> {
        if req.events.is_empty() {
            return Err(AppendError::Invalid("an append needs at least one event".into()));
        }
        if req.events.len() > limits::EVENTS_PER_COMMIT_MAX {
            return Err(AppendError::Invalid(format!(
                "{} events in one append; the limit is {}",
                req.events.len(),
                limits::EVENTS_PER_COMMIT_MAX
            )));
        }
        for (i, e) in req.events.iter().enumerate() {
            e.validate().map_err(|err| AppendError::Invalid(format!("event {}: {err}", i + 1)))?;
        }
        Ok(Checked(req))
    }
}

/// What a backend has already stored.
pub(crate) trait Index {
    /// The instance's last sequence number, 0 when it has none.
    fn instance_version(&self, id: &InstanceId) -> Result<u64, StoreError>;
    /// The outcome stored for a committed command id.
    fn command(&self, id: &CommandId) -> Result<Option<AppendOutcome>, StoreError>;
}

/// One command's worth of events, ready to persist.
#[derive(Debug)]
pub(crate) struct Staged {
    /// Each event with its stored record bytes.
    pub records: Vec<(RecordedEvent, Vec<u8>)>,
    /// The outcome to store under the command id.
    pub outcome: AppendOutcome,
}

pub(crate) enum Stage {
    /// The command id was already committed; nothing to write.
    Duplicate(AppendOutcome),
    New(Staged),
}

/// The chain tip, plus what is staged and not yet stored (in this group,
/// and for a backend that decides ahead of its syncs, in groups before it),
/// so several requests can share one commit.
pub(crate) struct Stager {
    head: Head,
    last_recorded_at: Option<Timestamp>,
    /// Each instance's staged version, with the position of its last event.
    versions: HashMap<InstanceId, (u64, u64)>,
    commands: HashMap<CommandId, AppendOutcome>,
    /// The position [`Stager::stored_through`] last forgot up to.
    stored: u64,
}

impl Stager {
    pub fn new(head: Head, last_recorded_at: Option<Timestamp>) -> Self {
        Stager { head, last_recorded_at, versions: HashMap::new(), commands: HashMap::new(), stored: 0 }
    }

    pub fn head(&self) -> Head {
        self.head
    }

    /// Forgets everything staged, once it is stored (or refused).
    pub fn end_group(&mut self) {
        self.versions.clear();
        self.commands.clear();
    }

    /// Forgets what is staged up to `position`, now that the backend's
    /// index answers for it.
    pub fn stored_through(&mut self, position: u64) {
        if position == self.stored || (self.versions.is_empty() && self.commands.is_empty()) {
            return;
        }
        self.stored = position;
        self.versions.retain(|_, (_, last)| *last > position);
        self.commands.retain(|_, o| o.last_position > position);
    }

    fn version(&self, idx: &impl Index, id: &InstanceId) -> Result<u64, StoreError> {
        match self.versions.get(id) {
            Some((v, _)) => Ok(*v),
            None => idx.instance_version(id),
        }
    }

    fn command(&self, idx: &impl Index, id: &CommandId) -> Result<Option<AppendOutcome>, StoreError> {
        match self.commands.get(id) {
            Some(o) => Ok(Some(o.clone())),
            None => idx.command(id),
        }
    }

    /// Decides one append against the stored state and the overlay. On
    /// error the stager is unchanged.
    pub fn stage_append(&mut self, idx: &impl Index, req: Checked, now: Timestamp) -> Result<Stage, AppendError> {
        let Checked(req) = req;
        if let Some(prev) = self.command(idx, &req.command_id)? {
            let count = prev.last_sequence - prev.first_sequence + 1;
            if prev.instance != req.instance || count != req.events.len() as u64 {
                return Err(AppendError::CommandIdReused {
                    command_id: req.command_id,
                    what: format!("{count} event(s) on instance {}", prev.instance),
                });
            }
            return Ok(Stage::Duplicate(AppendOutcome { deduplicated: true, ..prev }));
        }
        let actual = self.version(idx, &req.instance)?;
        if !req.expected.admits(actual) {
            return Err(AppendError::Conflict { instance: req.instance, expected: req.expected, actual });
        }
        // recorded_at never goes backwards along the log, so "as known on
        // date X" is a prefix of the log.
        let now = crate::clock::to_micros(now);
        let recorded_at = match self.last_recorded_at {
            Some(last) if last > now => last,
            _ => now,
        };
        let mut head = self.head;
        let mut records = Vec::with_capacity(req.events.len());
        for (i, e) in req.events.into_iter().enumerate() {
            let body = EventBody {
                event_id: EventId::derive(&req.command_id, i as u32),
                instance: req.instance.clone(),
                sequence: actual + 1 + i as u64,
                position: head.position + 1,
                occurred_on: e.occurred_on,
                recorded_at,
                actor: e.actor,
                command_id: req.command_id.clone(),
                payload: e.payload,
                prev_hash: head.hash,
            };
            let (event, bytes) =
                codec::seal(body).map_err(|err| AppendError::Invalid(format!("event {}: {err}", i + 1)))?;
            head = Head { position: event.event.position, hash: event.hash };
            records.push((event, bytes));
        }
        let first = &records[0].0.event;
        let outcome = AppendOutcome {
            instance: req.instance.clone(),
            first_sequence: first.sequence,
            last_sequence: actual + records.len() as u64,
            first_position: first.position,
            last_position: head.position,
            last_hash: head.hash,
            deduplicated: false,
        };
        self.head = head;
        self.last_recorded_at = Some(recorded_at);
        self.versions.insert(req.instance, (outcome.last_sequence, outcome.last_position));
        self.commands.insert(req.command_id, outcome.clone());
        Ok(Stage::New(Staged { records, outcome }))
    }

    /// Checks exported events that must continue the chain exactly, and
    /// stages them command by command. A command must not be split across
    /// two calls. On error the stager is unchanged.
    pub fn stage_import(&mut self, idx: &impl Index, events: Vec<RecordedEvent>) -> Result<Vec<Staged>, AppendError> {
        let saved = (self.head, self.last_recorded_at, self.versions.clone(), self.commands.clone());
        let result = self.stage_import_inner(idx, events);
        if result.is_err() {
            (self.head, self.last_recorded_at, self.versions, self.commands) = saved;
        }
        result
    }

    fn stage_import_inner(&mut self, idx: &impl Index, events: Vec<RecordedEvent>) -> Result<Vec<Staged>, AppendError> {
        let mut out: Vec<Staged> = Vec::new();
        for e in events {
            let b = &e.event;
            let at = |why: String| AppendError::Invalid(format!("imported event at position {}: {why}", b.position));
            if b.position != self.head.position + 1 {
                return Err(at(match b.position {
                    1 => format!(
                        "the log is no longer empty: it holds {} event(s) now (another writer got in first); nothing of this import was stored",
                        self.head.position
                    ),
                    _ => format!("expected position {}", self.head.position + 1),
                }));
            }
            if b.prev_hash != self.head.hash {
                return Err(at(format!(
                    "previous hash {} does not continue the chain at {}",
                    b.prev_hash, self.head.hash
                )));
            }
            let bytes = codec::reseal(&e).map_err(|err| at(err.to_string()))?;
            if let Some(last) = self.last_recorded_at {
                if b.recorded_at < last {
                    return Err(at(format!("recorded_at {} goes back before {last}", b.recorded_at)));
                }
            }
            let version = self.version(idx, &b.instance)?;
            if b.sequence != version + 1 {
                return Err(at(format!("instance {} sequence {} does not follow {version}", b.instance, b.sequence)));
            }
            let continues = out
                .last()
                .is_some_and(|s| s.records[0].0.event.command_id == b.command_id && s.outcome.instance == b.instance);
            if continues {
                let staged = out.last_mut().expect("checked above");
                staged.outcome.last_sequence = b.sequence;
                staged.outcome.last_position = b.position;
                staged.outcome.last_hash = e.hash;
                if staged.records.len() >= limits::EVENTS_PER_COMMIT_MAX {
                    return Err(at("command has more events than one append may hold".into()));
                }
            } else {
                if self.command(idx, &b.command_id)?.is_some() {
                    return Err(at(format!("command id {} was already used earlier in the log", b.command_id)));
                }
                out.push(Staged {
                    records: Vec::new(),
                    outcome: AppendOutcome {
                        instance: b.instance.clone(),
                        first_sequence: b.sequence,
                        last_sequence: b.sequence,
                        first_position: b.position,
                        last_position: b.position,
                        last_hash: e.hash,
                        deduplicated: false,
                    },
                });
            }
            self.head = Head { position: b.position, hash: e.hash };
            self.last_recorded_at = Some(b.recorded_at);
            self.versions.insert(b.instance.clone(), (b.sequence, b.position));
            let staged = out.last_mut().expect("pushed above");
            self.commands.insert(b.command_id.clone(), staged.outcome.clone());
            staged.records.push((e, bytes));
        }
        Ok(out)
    }
}

/// A group commit's requests: `first`, then whatever `next` has ready, up
/// to [`limits::GROUP_REQUESTS_MAX`] requests or about
/// [`limits::GROUP_EVENTS_MAX`] events (the last request may pass it).
pub(crate) fn take_group<T>(first: T, events: impl Fn(&T) -> usize, mut next: impl FnMut() -> Option<T>) -> Vec<T> {
    let mut n = events(&first);
    let mut group = vec![first];
    while group.len() < limits::GROUP_REQUESTS_MAX && n < limits::GROUP_EVENTS_MAX {
        let Some(r) = next() else { break };
        n += events(&r);
        group.push(r);
    }
    group
}

/// Refuses an import call larger than [`import_chunks`] makes.
pub fn check_import_chunk(events: &[RecordedEvent]) -> Result<(), AppendError> {
    if events.len() > limits::IMPORT_CHUNK_EVENTS + limits::EVENTS_PER_COMMIT_MAX {
        return Err(AppendError::Invalid(format!(
            "{} events in one import call; split with import_chunks",
            events.len()
        )));
    }
    Ok(())
}

/// Splits exported events into chunks of about
/// [`limits::IMPORT_CHUNK_EVENTS`] that never split a command.
pub fn import_chunks(events: Vec<RecordedEvent>) -> Vec<Vec<RecordedEvent>> {
    let mut chunks = Vec::new();
    let mut current: Vec<RecordedEvent> = Vec::new();
    for e in events {
        let boundary = current.last().is_none_or(|l| l.event.command_id != e.event.command_id);
        if boundary && current.len() >= limits::IMPORT_CHUNK_EVENTS {
            chunks.push(std::mem::take(&mut current));
        }
        current.push(e);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}
