//! The index behind the commit. A group is answered once its frames are
//! durable; its index entries go first into an in-memory overlay, and an
//! indexer thread writes them to sled later, many groups in one batch, then
//! takes them out of the overlay. Every lookup asks the overlay first, then
//! sled: an entry is put in the overlay before its group's head is
//! published and taken out only after sled holds it, so a reader that
//! misses it in the overlay finds it in sled.
//!
//! The index is derived from the log: what the indexer had not written
//! when the process stopped is indexed again on the next open, from the
//! index's own head (written in the same sled batch as the entries).
//!
//! If sled refuses a write, the indexer stops: the entries stay in the
//! overlay (reads stay right), the writer refuses further writes, and
//! closing reports the failure. Reopening indexes what is missing.

use super::{command_entries, fault, frame_entry, write_index, CommandLoc, Faults, FrameLoc, SledIndex};
use crate::commit::Index;
use crate::event::{CommandId, InstanceId};
use crate::limits;
use crate::store::{AppendOutcome, Head, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex, RwLock};

/// One durable group's index entries.
pub(super) struct Job {
    pub head: Head,
    /// Each frame's first position and place.
    pub frames: Vec<(u64, FrameLoc)>,
    /// Each command's id and outcome.
    pub commands: Vec<(CommandId, AppendOutcome)>,
}

impl Job {
    fn events(&self) -> usize {
        self.frames.iter().map(|(_, f)| f.events as usize).sum()
    }
}

/// Entries durable in the log and not yet in sled.
#[derive(Default)]
struct Overlay {
    frames: BTreeMap<u64, FrameLoc>,
    commands: HashMap<CommandId, AppendOutcome>,
    /// Per instance: first sequence of each command to where it is.
    instances: HashMap<InstanceId, BTreeMap<u64, CommandLoc>>,
}

#[derive(Default)]
struct State {
    queue: Vec<Job>,
    queued_events: usize,
    /// The indexer is writing a batch.
    busy: bool,
    /// Callers waiting for the queue to empty: the indexer does not linger.
    settling: usize,
    closing: bool,
    failed: Option<StoreError>,
    /// What sled holds.
    indexed: Head,
}

/// Which command ids the store holds, as 64-bit hashes, so the writer
/// need not ask sled about an id it has surely never seen. Complete once
/// the ids in sled when the writer started have been read (a thread does
/// this after the first append); until then, and if it grows past
/// [`limits::KNOWN_COMMANDS_MAX`], every id is looked up.
#[derive(Default)]
struct Known {
    ids: std::collections::HashSet<u64>,
    scan: Scan,
}

#[derive(Default, PartialEq, Eq)]
enum Scan {
    #[default]
    NotStarted,
    Running,
    Complete,
    /// Too many ids, or sled could not be read: look every id up.
    Abandoned,
}

fn id_hash(id: &[u8]) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

/// The overlay, the queue to the indexer thread, and sled.
pub(super) struct Behind {
    db: sled::Db,
    faults: Faults,
    overlay: RwLock<Overlay>,
    state: Mutex<State>,
    changed: Condvar,
    known: Mutex<Known>,
}

impl Behind {
    /// `indexed`: the head sled's index is complete up to.
    pub fn new(db: sled::Db, faults: Faults, indexed: Head) -> Behind {
        let state = Mutex::new(State { indexed, ..State::default() });
        Behind { db, faults, overlay: Default::default(), state, changed: Condvar::new(), known: Default::default() }
    }

    /// The head sled's index is complete up to.
    pub fn indexed(&self) -> Head {
        self.state().indexed
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("index queue lock")
    }

    /// Takes a durable group's entries: into the overlay at once, to sled
    /// later. Called by the writer before it publishes the group's head;
    /// waits while the indexer is [`limits::INDEX_BEHIND_EVENTS_MAX`]
    /// events behind.
    pub fn push(&self, job: Job) {
        {
            let mut o = self.overlay.write().expect("overlay lock");
            for (first, loc) in &job.frames {
                o.frames.insert(*first, *loc);
            }
            for (id, outcome) in &job.commands {
                o.instances
                    .entry(outcome.instance.clone())
                    .or_default()
                    .insert(outcome.first_sequence, CommandLoc::of(outcome));
                o.commands.insert(id.clone(), outcome.clone());
            }
        }
        {
            let mut k = self.known.lock().expect("known ids lock");
            if k.scan != Scan::Abandoned {
                k.ids.extend(job.commands.iter().map(|(id, _)| id_hash(id.as_str().as_bytes())));
                if k.ids.len() > limits::KNOWN_COMMANDS_MAX {
                    *k = Known { ids: Default::default(), scan: Scan::Abandoned };
                }
            }
        }
        let mut s = self.state();
        if s.failed.is_some() {
            return;
        }
        s.queued_events += job.events();
        s.queue.push(job);
        self.changed.notify_all();
        let _waited = self
            .changed
            .wait_while(s, |s| s.queued_events > limits::INDEX_BEHIND_EVENTS_MAX && s.failed.is_none())
            .expect("index queue lock");
    }

    /// Why the indexer stopped, if it did.
    pub fn failed(&self) -> Option<StoreError> {
        self.state().failed.clone()
    }

    /// Waits until sled holds every entry pushed so far.
    pub fn settle(&self) -> Result<(), StoreError> {
        let mut s = self.state();
        s.settling += 1;
        self.changed.notify_all();
        let mut s = self
            .changed
            .wait_while(s, |s| (!s.queue.is_empty() || s.busy) && s.failed.is_none())
            .expect("index queue lock");
        s.settling -= 1;
        match &s.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// No more jobs will come: the indexer writes what is queued and stops.
    pub fn close(&self) {
        self.state().closing = true;
        self.changed.notify_all();
    }

    /// The indexer thread.
    pub fn run(&self) {
        loop {
            let jobs = {
                let s = self.state();
                let s = self.changed.wait_while(s, |s| s.queue.is_empty() && !s.closing).expect("index queue lock");
                // Let a batch fill a little, unless someone waits for it.
                let (mut s, _) = self
                    .changed
                    .wait_timeout_while(s, limits::INDEX_BEHIND_LINGER, |s| {
                        s.queued_events < limits::INDEX_BATCH_EVENTS && s.settling == 0 && !s.closing
                    })
                    .expect("index queue lock");
                if self.faults.as_ref().is_some_and(|f| f.index_held()) && !s.closing {
                    drop(self.changed.wait_timeout(s, limits::INDEX_BEHIND_LINGER).expect("index queue lock"));
                    continue;
                }
                if s.queue.is_empty() {
                    break;
                }
                s.busy = true;
                s.queued_events = 0;
                let jobs = std::mem::take(&mut s.queue);
                self.changed.notify_all();
                jobs
            };
            let result = self.apply(&jobs);
            if result.is_ok() {
                self.forget(&jobs);
            }
            let mut s = self.state();
            s.busy = false;
            match result {
                Ok(()) => s.indexed = jobs.last().expect("at least one job").head,
                Err(e) => {
                    tracing::error!(error = %e, "updating the index failed; the store refuses further writes until reopened");
                    s.failed = Some(e);
                    s.queue.clear();
                    s.queued_events = 0;
                }
            }
            self.changed.notify_all();
            if s.failed.is_some() {
                break;
            }
        }
        tracing::debug!("indexer stopped");
    }

    /// Writes the jobs' entries to sled, then the index's new head
    /// ([`write_index`]).
    fn apply(&self, jobs: &[Job]) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        fault(&self.faults, "updating the index")?;
        let mut entries = Vec::new();
        for job in jobs {
            for (first, loc) in &job.frames {
                entries.push(frame_entry(*first, loc)?);
            }
            for (id, outcome) in &job.commands {
                entries.extend(command_entries(outcome, id)?);
            }
        }
        write_index(&self.db, entries, jobs.last().expect("at least one job").head)?;
        let events: usize = jobs.iter().map(Job::events).sum();
        tracing::trace!(groups = jobs.len(), events, index_us = started.elapsed().as_micros() as u64, "index written");
        Ok(())
    }

    /// Takes entries sled now holds out of the overlay.
    fn forget(&self, jobs: &[Job]) {
        let mut o = self.overlay.write().expect("overlay lock");
        for job in jobs {
            for (first, _) in &job.frames {
                o.frames.remove(first);
            }
            for (id, outcome) in &job.commands {
                o.commands.remove(id);
                if let Some(seqs) = o.instances.get_mut(&outcome.instance) {
                    seqs.remove(&outcome.first_sequence);
                    if seqs.is_empty() {
                        o.instances.remove(&outcome.instance);
                    }
                }
            }
        }
    }

    /// The frame holding `position`, if the overlay has it.
    pub fn frame_at(&self, position: u64) -> Option<(u64, FrameLoc)> {
        let o = self.overlay.read().expect("overlay lock");
        let (first, loc) = o.frames.range(..=position).next_back()?;
        (position < first + u64::from(loc.events)).then_some((*first, *loc))
    }

    /// Whether the store surely does not hold this command id. The first
    /// call starts reading the ids sled holds; false until that is done.
    pub fn surely_new(self: &std::sync::Arc<Self>, id: &CommandId) -> bool {
        let mut k = self.known.lock().expect("known ids lock");
        match k.scan {
            Scan::Complete => !k.ids.contains(&id_hash(id.as_str().as_bytes())),
            Scan::NotStarted => {
                k.scan = Scan::Running;
                let behind = self.clone();
                let started =
                    std::thread::Builder::new().name("styrlogg-known-ids".into()).spawn(move || behind.read_known());
                if started.is_err() {
                    k.scan = Scan::Abandoned;
                }
                false
            }
            Scan::Running | Scan::Abandoned => false,
        }
    }

    /// Whether the set of known ids is complete.
    pub fn knows_every_id(&self) -> bool {
        self.known.lock().expect("known ids lock").scan == Scan::Complete
    }

    /// Reads every command id sled holds into [`Known`]. Ids committed
    /// since the writer started are added by [`Behind::push`] meanwhile;
    /// every id committed before is in sled (an open indexes the whole
    /// log before the writer starts).
    fn read_known(&self) {
        let started = std::time::Instant::now();
        let mut ids = std::collections::HashSet::new();
        for kv in self.db.scan_prefix(b"C") {
            match kv {
                Ok((k, _)) => {
                    ids.insert(id_hash(&k[1..]));
                }
                Err(e) => {
                    tracing::warn!("reading the command ids of the index: {e}; every id is looked up");
                    self.known.lock().expect("known ids lock").scan = Scan::Abandoned;
                    return;
                }
            }
            if ids.len() > limits::KNOWN_COMMANDS_MAX {
                break;
            }
            // A closing store lets go of sled at once (a reopen waits for its lock).
            if ids.len() % 4096 == 0 && self.state().closing {
                return;
            }
        }
        let mut k = self.known.lock().expect("known ids lock");
        if k.scan != Scan::Running {
            return;
        }
        ids.extend(k.ids.drain());
        if ids.len() > limits::KNOWN_COMMANDS_MAX {
            *k = Known { ids: Default::default(), scan: Scan::Abandoned };
            return;
        }
        k.ids = ids;
        k.scan = Scan::Complete;
        tracing::debug!(ids = k.ids.len(), ms = started.elapsed().as_millis() as u64, "command ids known");
    }

    /// A command's outcome: the overlay, then sled.
    pub fn command(&self, id: &CommandId) -> Result<Option<AppendOutcome>, StoreError> {
        if let Some(o) = self.overlay.read().expect("overlay lock").commands.get(id) {
            return Ok(Some(o.clone()));
        }
        SledIndex(&self.db).command(id)
    }

    /// An instance's last sequence: the overlay, then sled.
    pub fn instance_version(&self, id: &InstanceId) -> Result<u64, StoreError> {
        let newest = self.overlay.read().expect("overlay lock").instances.get(id).and_then(|s| {
            let (first, loc) = s.last_key_value()?;
            Some(first + u64::from(loc.count) - 1)
        });
        match newest {
            Some(v) => Ok(v),
            None => SledIndex(&self.db).instance_version(id),
        }
    }

    /// The overlay's commands of an instance, by first sequence. Read this
    /// before sled: what leaves the overlay is in sled by then.
    pub fn instance_entries(&self, id: &InstanceId) -> Vec<(u64, CommandLoc)> {
        let o = self.overlay.read().expect("overlay lock");
        o.instances.get(id).map(|s| s.iter().map(|(k, v)| (*k, *v)).collect()).unwrap_or_default()
    }
}
