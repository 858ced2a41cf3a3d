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

use super::{decode_run, fault, run_commands, write_index, CommandLoc, Faults, FrameLoc, IndexBatch, SledIndex};
use crate::event::InstanceId;
use crate::limits;
use crate::store::{AppendOutcome, Head, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
use std::sync::{Condvar, Mutex, RwLock};

/// One durable group's index entries.
pub(super) struct Job {
    pub head: Head,
    /// Each frame's first position and place.
    pub frames: Vec<(u64, FrameLoc)>,
    /// Each command's id (its [`super::command_hash`]) and outcome.
    pub commands: Vec<(u64, AppendOutcome)>,
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

/// Where every stored command starts, by the 64-bit hash of its id: how
/// a command id is found (sled keeps no entry per id). Filled from sled's
/// run entries on the first lookup after an open, and by every commit;
/// about 16 bytes per command (plus the hash table's slack).
#[derive(Default)]
struct Known {
    first: HashMap<u64, u64, BuildHasherDefault<HashIsKey>>,
    /// Further positions of a hash already in `first` (two ids, one hash).
    more: Vec<(u64, u64)>,
}

impl Known {
    fn add(&mut self, id: u64, position: u64) {
        match self.first.entry(id) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(position);
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                if *o.get() != position && !self.more.contains(&(id, position)) {
                    self.more.push((id, position));
                }
            }
        }
    }
}

/// The keys are hashes already: used as they are.
#[derive(Default)]
struct HashIsKey(u64);

impl std::hash::Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Marks the indexer failed if its thread unwinds, so that no one waits
/// for it for ever (a writer held back by the backlog, `settle`, `close`).
struct FailOnPanic<'a>(&'a Behind);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut s = self.0.state();
            s.failed = Some(StoreError::Io("the indexer thread panicked".into()));
            s.busy = false;
            self.0.changed.notify_all();
        }
    }
}

/// The overlay, the queue to the indexer thread, and sled.
pub(super) struct Behind {
    db: sled::Db,
    faults: Faults,
    overlay: RwLock<Overlay>,
    state: Mutex<State>,
    changed: Condvar,
    known: Mutex<Known>,
    /// Sled's ids have been read into `known` (set under its lock, read
    /// without it).
    known_loaded: std::sync::atomic::AtomicBool,
}

impl Behind {
    /// `indexed`: the head sled's index is complete up to.
    pub fn new(db: sled::Db, faults: Faults, indexed: Head) -> Behind {
        let state = Mutex::new(State { indexed, ..State::default() });
        Behind {
            db,
            faults,
            overlay: Default::default(),
            state,
            changed: Condvar::new(),
            known: Default::default(),
            known_loaded: Default::default(),
        }
    }

    /// The head sled's index is complete up to.
    pub fn indexed(&self) -> Head {
        self.state().indexed
    }

    /// The queue's state; a thread that panicked holding it leaves it
    /// usable (a panicked indexer has marked itself failed).
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
            for (_, outcome) in &job.commands {
                o.instances
                    .entry(outcome.instance.clone())
                    .or_default()
                    .insert(outcome.first_sequence, CommandLoc::of(outcome));
            }
        }
        {
            let mut k = self.known.lock().expect("known ids lock");
            for (id, outcome) in &job.commands {
                k.add(*id, outcome.first_position);
            }
        }
        let mut s = self.state();
        if s.failed.is_some() {
            return;
        }
        let first = s.queue.is_empty();
        s.queued_events += job.events();
        s.queue.push(job);
        // The indexer waits for a first job, then for a batch's worth (or
        // a while): it is woken only when one of those comes.
        if first || s.queued_events >= limits::INDEX_BATCH_EVENTS {
            self.changed.notify_all();
        }
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
        let _unwinding = FailOnPanic(self);
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
        let mut batch = IndexBatch::default();
        for job in jobs {
            for (first, loc) in &job.frames {
                batch.frame(*first, *loc);
            }
            for (id, outcome) in &job.commands {
                batch.command(*id, outcome);
            }
        }
        write_index(&self.db, batch.entries()?, jobs.last().expect("at least one job").head)?;
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
            for (_, outcome) in &job.commands {
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

    /// Where the commands whose id has this hash start (usually one
    /// position, or none).
    pub fn command_positions(&self, id: u64) -> Result<Vec<u64>, StoreError> {
        let mut k = self.known.lock().expect("known ids lock");
        self.load_known_into(&mut k)?;
        let mut out: Vec<u64> = k.first.get(&id).copied().into_iter().collect();
        out.extend(k.more.iter().filter(|(h, _)| *h == id).map(|(_, p)| *p));
        Ok(out)
    }

    /// Whether every stored command id is in memory.
    pub fn knows_every_id(&self) -> bool {
        self.known_loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Reads every stored command id into memory, unless that is done.
    pub fn load_known(&self) -> Result<(), StoreError> {
        self.load_known_into(&mut self.known.lock().expect("known ids lock"))
    }

    /// The first call after an open reads every run entry of sled; what was
    /// committed since is added by [`Behind::push`] meanwhile, and
    /// everything committed before is in sled (an open indexes the whole
    /// log before the writer starts).
    fn load_known_into(&self, k: &mut Known) -> Result<(), StoreError> {
        if self.knows_every_id() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        for kv in self.db.scan_prefix(b"S") {
            let (key, v) = kv.map_err(super::io)?;
            let (first, run) = decode_run(&key, &v)?;
            for (_, c) in run_commands(first, &run) {
                k.add(c.id, c.first_position);
            }
        }
        self.known_loaded.store(true, std::sync::atomic::Ordering::Release);
        tracing::debug!(ids = k.first.len(), ms = started.elapsed().as_millis() as u64, "command ids known");
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::Known;

    #[test]
    fn two_ids_with_one_hash_keep_both_positions() {
        let mut k = Known::default();
        k.add(7, 100);
        k.add(7, 100);
        k.add(7, 250);
        k.add(8, 300);
        k.add(7, 250);
        assert_eq!(k.first.get(&7), Some(&100));
        assert_eq!(k.more, vec![(7, 250)]);
        assert_eq!(k.first.get(&8), Some(&300));
    }
}
