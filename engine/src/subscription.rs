//! Catch-up-then-live subscriptions for the local backends: a task reads
//! pages from the store until it reaches the head, then waits for the
//! writer to announce a new head, and hands events over a bounded channel.

use crate::event::RecordedEvent;
use crate::limits;
use crate::store::{EventStore, StoreError};
use tokio::sync::{mpsc, watch};

/// A stream of events in position order, with no gaps and no repeats.
/// Ends when the store closes; an error is the last item.
pub struct Subscription {
    rx: mpsc::Receiver<Result<RecordedEvent, StoreError>>,
}

impl Subscription {
    /// The next event, waiting for one to be committed if need be.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        self.rx.recv().await
    }

    /// A subscription fed by a backend's own task.
    pub(crate) fn from_channel(rx: mpsc::Receiver<Result<RecordedEvent, StoreError>>) -> Self {
        Subscription { rx }
    }

    /// A subscription that only yields `err`.
    pub fn failed(err: StoreError) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Err(err));
        Subscription { rx }
    }

    /// Spawns the reading task on the current tokio runtime. `store` is
    /// upgraded only while reading, so a subscription never keeps a closed
    /// store alive.
    pub(crate) fn spawn<S, F>(upgrade: F, mut heads: watch::Receiver<crate::store::Head>, from_position: u64) -> Self
    where
        S: EventStore + 'static,
        F: Fn() -> Option<S> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(limits::SUBSCRIPTION_BUFFER_EVENTS);
        tokio::spawn(async move {
            let mut next = from_position.max(1);
            loop {
                // Read until caught up with the head last announced.
                loop {
                    let target = heads.borrow_and_update().position;
                    if next > target {
                        break;
                    }
                    let Some(store) = upgrade() else { return };
                    let page = store.read_all(next, limits::READ_PAGE_EVENTS).await;
                    drop(store);
                    match page {
                        Ok(events) if events.is_empty() => break,
                        Ok(events) => {
                            for e in events {
                                next = e.event.position + 1;
                                if tx.send(Ok(e)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(err) => {
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                    }
                }
                tokio::select! {
                    changed = heads.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Subscription { rx }
    }
}
