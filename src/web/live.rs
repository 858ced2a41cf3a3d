//! The log as it is now, kept in memory and followed live: folded once when
//! the server starts, then fed every event the store's subscription
//! delivers. Pages of the present read it; a watch channel tells waiting
//! writers and the live-update streams when its head moves.

use super::limits;
use anyhow::Result;
use engine::{AnyStore, EventStore};
use projections::LogView;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Live {
    view: Arc<RwLock<LogView>>,
    head: watch::Receiver<u64>,
}

impl Live {
    /// Folds the whole log and starts following it.
    pub async fn start(store: AnyStore) -> Result<Live> {
        let view = crate::reports::view_of(&store).await?;
        let (tx, head) = watch::channel(view.head_position);
        let view = Arc::new(RwLock::new(view));
        let follow = view.clone();
        tokio::spawn(async move {
            loop {
                let from = follow.read().expect("not poisoned").head_position + 1;
                let mut sub = store.subscribe(from);
                while let Some(next) = sub.next().await {
                    match next {
                        Ok(e) => {
                            let fed = follow.write().expect("not poisoned").feed(&e);
                            match fed {
                                Ok(_) => {
                                    let _ = tx.send(e.event.position);
                                }
                                Err(err) => {
                                    tracing::error!(position = e.event.position, "cannot fold the log: {err}");
                                    return;
                                }
                            }
                        }
                        Err(err) => {
                            tracing::warn!("following the log failed: {err}; following again in a second");
                            break;
                        }
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        Ok(Live { view, head })
    }

    /// Runs `f` on the current view.
    pub fn read<T>(&self, f: impl FnOnce(&LogView) -> T) -> T {
        f(&self.view.read().expect("not poisoned"))
    }

    /// Waits (briefly) until the view includes `position`, so a page shown
    /// right after a write shows that write.
    pub async fn caught_up(&self, position: u64) {
        let mut rx = self.head.clone();
        let _ = tokio::time::timeout(limits::READ_YOUR_WRITE_WAIT, rx.wait_for(|p| *p >= position)).await;
    }

    /// The head position now and as it moves.
    pub fn heads(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }
}
