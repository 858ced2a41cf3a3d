//! The in-memory backend: the reference implementation for tests and
//! simulations. Same decisions as every backend (shared `commit` module),
//! nothing persisted.

use crate::clock::Clock;
use crate::commit::{Checked, Index, Stage, Stager};
use crate::event::{CommandId, InstanceId, RecordedEvent};
use crate::store::{AppendError, AppendOutcome, AppendRequest, EventStore, Head, StoreError};
use crate::subscription::Subscription;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::watch;

/// An event log held in memory. Clones share one log.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    heads: watch::Sender<Head>,
}

struct State {
    events: Vec<RecordedEvent>,
    /// Positions of each instance's events, in sequence order.
    instances: HashMap<InstanceId, Vec<u64>>,
    commands: HashMap<CommandId, AppendOutcome>,
    stager: Stager,
}

struct View<'a> {
    instances: &'a HashMap<InstanceId, Vec<u64>>,
    commands: &'a HashMap<CommandId, AppendOutcome>,
}

impl Index for View<'_> {
    fn instance_version(&self, id: &InstanceId) -> Result<u64, StoreError> {
        Ok(self.instances.get(id).map_or(0, |p| p.len() as u64))
    }
    fn command(&self, id: &CommandId) -> Result<Option<AppendOutcome>, StoreError> {
        Ok(self.commands.get(id).cloned())
    }
}

impl State {
    fn store(&mut self, staged: crate::commit::Staged) {
        for (e, _) in staged.records {
            self.instances.entry(e.event.instance.clone()).or_default().push(e.event.position);
            self.events.push(e);
        }
        let cmd = self.events.last().expect("a staged command has events").event.command_id.clone();
        self.commands.insert(cmd, staged.outcome);
    }

    fn split(&mut self) -> (View<'_>, &mut Stager) {
        (View { instances: &self.instances, commands: &self.commands }, &mut self.stager)
    }
}

impl MemoryStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let (heads, _) = watch::channel(Head::default());
        MemoryStore {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    events: Vec::new(),
                    instances: HashMap::new(),
                    commands: HashMap::new(),
                    stager: Stager::new(Head::default(), None),
                }),
                clock,
                heads,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("memory store lock poisoned")
    }

    fn weak(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }
}

#[async_trait::async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, req: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        let (view, stager) = state.split();
        let stage = Checked::new(req).and_then(|r| stager.stage_append(&view, r, now));
        stager.end_group();
        match stage? {
            Stage::Duplicate(outcome) => Ok(outcome),
            Stage::New(staged) => {
                let outcome = staged.outcome.clone();
                state.store(staged);
                self.inner.heads.send_replace(Head { position: outcome.last_position, hash: outcome.last_hash });
                Ok(outcome)
            }
        }
    }

    async fn import(&self, events: Vec<RecordedEvent>) -> Result<Head, AppendError> {
        let mut state = self.lock();
        let (view, stager) = state.split();
        let staged = stager.stage_import(&view, events);
        stager.end_group();
        for s in staged? {
            state.store(s);
        }
        let head = state.stager.head();
        self.inner.heads.send_replace(head);
        Ok(head)
    }

    async fn read_instance(&self, instance: &InstanceId, from_sequence: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.lock();
        let Some(positions) = state.instances.get(instance) else {
            return Ok(Vec::new());
        };
        let skip = from_sequence.saturating_sub(1) as usize;
        Ok(positions.iter().skip(skip).map(|p| state.events[*p as usize - 1].clone()).collect())
    }

    async fn read_all(&self, from_position: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.lock();
        let start = from_position.saturating_sub(1) as usize;
        Ok(state.events.iter().skip(start).take(max).cloned().collect())
    }

    async fn head(&self) -> Result<Head, StoreError> {
        Ok(self.lock().stager.head())
    }

    async fn command_outcome(
        &self,
        instance: &InstanceId,
        command_id: &CommandId,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        Ok(self.lock().commands.get(command_id).filter(|o| o.instance == *instance).cloned())
    }

    fn subscribe(&self, from_position: u64) -> Subscription {
        let weak = self.weak();
        Subscription::spawn(
            move || weak.upgrade().map(|inner| MemoryStore { inner }),
            self.inner.heads.subscribe(),
            from_position,
        )
    }
}
