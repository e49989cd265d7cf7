//! Follows the log into the store and the in-memory tree (catch-up from the stored
//! position, then live), and signs a checkpoint every N leaves or T seconds when the
//! tree has grown, keeping every checkpoint it signs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coord_audit::wire::OfficeKey;
use coord_audit::{Checkpoint, Signer, Tree};
use coord_log::{EventLog, LogError};
use futures::StreamExt;
use tokio::sync::watch;

use crate::store::{Item, Store, StoreError};

/// The store and the tree, which always hold the same leaves.
pub struct State {
    pub store: Store,
    pub tree: Tree,
}

/// One office's auditor.
pub struct Auditor {
    pub office: String,
    pub signer: Signer,
    pub state: Mutex<State>,
    log: Arc<dyn EventLog>,
    every: u64,
    batch_size: usize,
    /// The size of the latest signed checkpoint.
    signed: watch::Sender<u64>,
    client: Option<async_nats::Client>,
    /// Checkpoints younger than this are all kept (the retention rule, see
    /// [`Store::compact_checkpoints`]); in seconds.
    keep_all_secs: AtomicU64,
    /// When the store was last compacted.
    compacted: Mutex<Option<Instant>>,
}

/// How often the retention rule runs at most.
const COMPACT_EVERY: Duration = Duration::from_secs(600);

impl Auditor {
    pub fn new(
        office: String,
        signer: Signer,
        store: Store,
        log: Arc<dyn EventLog>,
        every: u64,
        batch_size: usize,
        client: Option<async_nats::Client>,
    ) -> Result<Arc<Self>, StoreError> {
        let tree = Tree::from_leaves(store.leaf_hashes()?);
        let signed = store.latest_checkpoint()?.map_or(0, |c| c.size);
        Ok(Arc::new(Self {
            office,
            signer,
            state: Mutex::new(State { store, tree }),
            log,
            every: every.max(1),
            batch_size: batch_size.max(1),
            signed: watch::channel(signed).0,
            client,
            keep_all_secs: AtomicU64::new(24 * 3600),
            compacted: Mutex::new(None),
        }))
    }

    pub fn key(&self) -> OfficeKey {
        OfficeKey {
            office: self.office.clone(),
            origin: self.signer.name().into(),
            key: self.signer.verifier().to_string(),
        }
    }

    /// Runs `f` on the state on a blocking thread.
    pub async fn with_state<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut State) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&mut this.state.lock().expect("state lock")))
            .await
            .expect("store task does not panic")
    }

    /// Keeps every checkpoint younger than `age`; older ones as the retention rule says.
    pub fn keep_all_for(&self, age: Duration) {
        self.keep_all_secs.store(age.as_secs(), Ordering::Relaxed);
    }

    /// Applies the retention rule if it has not run for [`COMPACT_EVERY`].
    async fn compact_if_due(self: &Arc<Self>) -> Result<(), StoreError> {
        {
            let mut last = self.compacted.lock().expect("compaction lock");
            if last.is_some_and(|t| t.elapsed() < COMPACT_EVERY) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let age = chrono::Duration::seconds(self.keep_all_secs.load(Ordering::Relaxed) as i64);
        let before =
            (chrono::Utc::now() - age).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let removed = self
            .with_state(move |s| s.store.compact_checkpoints(&before))
            .await?;
        if removed > 0 {
            tracing::info!(removed, "old checkpoints compacted (retention rule)");
        }
        Ok(())
    }

    /// The log this auditor follows.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The number of leaves.
    pub fn leaf_count(&self) -> u64 {
        self.state.lock().expect("state lock").tree.len()
    }

    /// Waits until a checkpoint covers at least `size` leaves (or `timeout`).
    pub async fn wait_signed(&self, size: u64, timeout: Duration) -> bool {
        let mut rx = self.signed.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s >= size))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Signs and stores a checkpoint of the current tree if it grew since the last one.
    pub async fn sign_if_grown(self: &Arc<Self>) -> Result<Option<u64>, StoreError> {
        let last = *self.signed.borrow();
        let this = self.clone();
        let signed = self
            .with_state(move |s| {
                let size = s.tree.len();
                if size <= last {
                    return Ok(None);
                }
                let checkpoint = Checkpoint {
                    origin: this.signer.name().into(),
                    size,
                    root: s.tree.root(size).expect("size is the tree's"),
                };
                let note = checkpoint.sign(&this.signer);
                let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                s.store.add_checkpoint(size, &note, &at)?;
                Ok(Some((size, note)))
            })
            .await?;
        let Some((size, note)) = signed else {
            return Ok(None);
        };
        self.signed.send_replace(size);
        tracing::info!(size, "signed checkpoint");
        self.compact_if_due().await?;
        if let Some(client) = &self.client {
            let subject = coord_audit::wire::subject(Some(&self.office), "published");
            let _ = client.publish(subject, note.into_bytes().into()).await;
        }
        Ok(Some(size))
    }

    async fn apply(self: &Arc<Self>, items: Vec<Item>) -> Result<(), StoreError> {
        let grown = self
            .with_state(move |s| {
                let hashes = s.store.apply_batch(&items, s.tree.len())?;
                for h in &hashes {
                    s.tree.push(*h);
                }
                Ok(s.tree.len())
            })
            .await?;
        if grown >= *self.signed.borrow() + self.every {
            self.sign_if_grown().await?;
        }
        Ok(())
    }

    /// Follows the log and signs on schedule until `shutdown` flips to true.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(50)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::from_millis(100);
        self.compact_if_due().await?;
        'subscribe: loop {
            let after = self.with_state(|s| s.store.position()).await?;
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
            let mut chunks = subscription.ready_chunks(self.batch_size);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => {
                        self.sign_if_grown().await?;
                        return Ok(());
                    }
                    _ = ticker.tick() => { self.sign_if_grown().await?; }
                    chunk = chunks.next() => {
                        let Some(chunk) = chunk else { continue 'subscribe };
                        backoff = Duration::from_millis(100);
                        let mut items = Vec::with_capacity(chunk.len());
                        let mut failure = None;
                        for entry in chunk {
                            match entry {
                                Ok(e) => items.push(Item::Event(e)),
                                Err(LogError::Corrupt { position, reason }) => items.push(Item::Unreadable { position, reason }),
                                // Never a leaf: the office's key does not vouch for what
                                // names another office's or another stream.
                                Err(LogError::SubjectMismatch { position, subject, reason }) => items.push(Item::Unreadable {
                                    position,
                                    reason: format!("subject_mismatch: on `{subject}`: {reason}"),
                                }),
                                Err(e) => { failure = Some(e); break; }
                            }
                        }
                        self.apply(items).await?;
                        if let Some(e) = failure {
                            tracing::warn!(error = %e, "log subscription failed; resubscribing");
                            tokio::time::sleep(backoff).await;
                            continue 'subscribe;
                        }
                    }
                }
            }
        }
    }
}
