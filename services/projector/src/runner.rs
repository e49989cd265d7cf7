//! Follows the log into the store: catch-up from the checkpoint, then live; batches what
//! is ready into one transaction; resubscribes after a failure; drops and replays the
//! read models on request (rebuild).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coord_domain::Province;
use coord_log::{EventLog, EventPosition, LogError, LogErrorKind};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::store::{Item, Store, StoreError};

/// The shared state of one projector: its store and how far it has got.
pub struct Projector {
    pub(crate) store: Mutex<Store>,
    /// A copy of the store's reference data, to validate queries without the lock.
    pub(crate) province: Province,
    log: Arc<dyn EventLog>,
    position: watch::Sender<u64>,
    rebuilding: AtomicBool,
    rebuild_tx: mpsc::Sender<oneshot::Sender<u64>>,
    rebuild_rx: tokio::sync::Mutex<mpsc::Receiver<oneshot::Sender<u64>>>,
    batch_size: usize,
}

impl Projector {
    pub fn new(
        store: Store,
        log: Arc<dyn EventLog>,
        batch_size: usize,
    ) -> Result<Arc<Self>, StoreError> {
        let province = store.province().clone();
        let start = store.checkpoint()?.map(|p| p.commit).unwrap_or(0);
        let (rebuild_tx, rebuild_rx) = mpsc::channel(4);
        Ok(Arc::new(Self {
            store: Mutex::new(store),
            province,
            log,
            position: watch::channel(start).0,
            rebuilding: AtomicBool::new(false),
            rebuild_tx,
            rebuild_rx: tokio::sync::Mutex::new(rebuild_rx),
            batch_size: batch_size.max(1),
        }))
    }

    /// The last log commit applied.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    pub fn is_rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::SeqCst)
    }

    /// Waits until the read model reflects `min` (or `timeout` passes). True if reached.
    pub async fn wait_for(&self, min: u64, timeout: Duration) -> bool {
        let mut rx = self.position.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|p| *p >= min))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Runs a closure on the store on a blocking thread.
    pub async fn with_store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = this.store.lock().expect("store lock");
            f(&mut store)
        })
        .await
        .expect("store task does not panic")
    }

    /// Asks the running projection to drop its read models and replay the log. Returns
    /// the log head the replay must reach.
    pub async fn request_rebuild(&self) -> anyhow::Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.rebuild_tx
            .send(tx)
            .await
            .map_err(|_| anyhow::anyhow!("the projection is not running"))?;
        Ok(rx.await?)
    }

    async fn reset(self: &Arc<Self>) -> Result<u64, anyhow::Error> {
        self.rebuilding.store(true, Ordering::SeqCst);
        let head = self.log.head().await?.map(|p| p.commit).unwrap_or(0);
        self.with_store(|s| s.reset()).await?;
        self.position.send_replace(0);
        tracing::info!(head, "read models dropped; replaying the log");
        if head == 0 {
            self.rebuilding.store(false, Ordering::SeqCst);
        }
        Ok(head)
    }

    /// Applies one batch and publishes the new position.
    async fn apply(
        self: &Arc<Self>,
        items: Vec<Item>,
        rebuild_target: &mut Option<u64>,
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let (applied, dead, checkpoint) = self
            .with_store(move |s| {
                let (a, d) = s.apply_batch(&items)?;
                Ok((a, d, s.checkpoint()?))
            })
            .await?;
        let commit = checkpoint.map(|p| p.commit).unwrap_or(0);
        tracing::debug!(applied, dead, position = commit, "batch applied");
        self.position.send_replace(commit);
        if let Some(target) = *rebuild_target
            && commit >= target
        {
            self.rebuilding.store(false, Ordering::SeqCst);
            *rebuild_target = None;
            tracing::info!(position = commit, "rebuild complete");
        }
        Ok(())
    }

    /// Follows the log until `shutdown` flips to true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut rebuild_rx = self.rebuild_rx.lock().await;
        let mut rebuild_target: Option<u64> = None;
        let mut backoff = Duration::from_millis(100);
        'subscribe: loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let after: Option<EventPosition> = self.with_store(|s| s.checkpoint()).await?;
            let subscription = match self.log.subscribe(after).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to the log; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            tracing::info!(after = ?after, "following the log");
            let mut chunks = subscription.ready_chunks(self.batch_size);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => return Ok(()),
                    Some(reply) = rebuild_rx.recv() => {
                        let head = self.reset().await?;
                        rebuild_target = (head > 0).then_some(head);
                        let _ = reply.send(head);
                        continue 'subscribe;
                    }
                    chunk = chunks.next() => {
                        let Some(chunk) = chunk else {
                            tracing::warn!("log subscription ended; resubscribing");
                            continue 'subscribe;
                        };
                        backoff = Duration::from_millis(100);
                        let mut items = Vec::with_capacity(chunk.len());
                        let mut failure: Option<LogError> = None;
                        for entry in chunk {
                            match entry {
                                Ok(event) => items.push(Item::Event(event)),
                                Err(LogError::Corrupt { position, reason }) => items.push(Item::Unreadable { position, reason }),
                                Err(e) => {
                                    debug_assert_ne!(e.kind(), LogErrorKind::Corrupt);
                                    failure = Some(e);
                                    break;
                                }
                            }
                        }
                        self.apply(items, &mut rebuild_target).await?;
                        if let Some(e) = failure {
                            tracing::warn!(error = %e, "log subscription failed; resubscribing from the checkpoint");
                            tokio::time::sleep(backoff).await;
                            continue 'subscribe;
                        }
                    }
                }
            }
        }
    }
}
