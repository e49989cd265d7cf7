//! Follows the log into the store and the in-memory tree (catch-up from the stored
//! position, then live), and signs a checkpoint every N leaves or T seconds when the
//! tree has grown, keeping every checkpoint it signs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coord_audit::wire::OfficeKey;
use coord_audit::{Checkpoint, Hash, Signer, Tree};
use coord_log::{EventLog, EventPosition, LogError};
use coord_service::lease::{Lease, LeaseError};
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
    /// Whether this instance signs: always without a lease, else while it holds it.
    active: watch::Sender<bool>,
    /// The single-active lease (`auditor.<office>`), when instances share the role.
    lease: std::sync::OnceLock<(Arc<Lease>, String)>,
    /// The latest checkpoint known to be published (signed here or by the instance
    /// that held the lease before): the next one must extend its tree.
    last: Mutex<Option<(u64, Hash)>>,
}

/// What the lease holds besides the lease itself: its holder and the latest checkpoint
/// it signed, written before the checkpoint is stored or published.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LeaseValue {
    pub holder: String,
    pub note: Option<String>,
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
        let latest = store.latest_checkpoint()?;
        let signed = latest.as_ref().map_or(0, |c| c.size);
        let last = latest
            .and_then(|c| {
                Checkpoint::open(&c.note, signer.name(), &[signer.verifier().clone()]).ok()
            })
            .map(|c| (c.size, c.root));
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
            active: watch::channel(true).0,
            lease: std::sync::OnceLock::new(),
            last: Mutex::new(last),
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

    /// Shares the role through `lease`: from now on this instance signs only while
    /// [`Auditor::set_active`] says it holds it.
    pub fn use_lease(&self, lease: Arc<Lease>, holder: String) {
        let _ = self.lease.set((lease, holder));
        self.active.send_replace(false);
    }

    /// Whether this instance signs now.
    pub fn is_active(&self) -> bool {
        *self.active.borrow()
    }

    pub fn set_active(&self, active: bool) {
        self.active.send_replace(active);
        crate::metrics::METRICS.active.set(i64::from(active));
    }

    /// Waits until this instance stops being active (a fenced signature found the
    /// lease lost).
    pub async fn wait_inactive(&self) {
        let mut rx = self.active.subscribe();
        let _ = rx.wait_for(|a| !*a).await;
    }

    /// The lease's value: this holder and the latest checkpoint known.
    pub fn lease_value(&self) -> bytes::Bytes {
        let holder = self.lease.get().map_or("", |(_, h)| h.as_str());
        let note = self
            .state
            .lock()
            .expect("state lock")
            .store
            .latest_checkpoint()
            .ok()
            .flatten()
            .map(|c| c.note);
        serde_json::to_vec(&LeaseValue {
            holder: holder.to_owned(),
            note,
        })
        .expect("lease values serialize")
        .into()
    }

    /// Takes note of a checkpoint another instance signed and published (read from
    /// the lease or its published subject): kept as signed, and the next checkpoint
    /// this instance signs must extend it. A note that does not verify with this
    /// office's key, or is not newer, is ignored.
    pub async fn observe(self: &Arc<Self>, note: &str) -> Result<(), StoreError> {
        let Ok(checkpoint) =
            Checkpoint::open(note, self.signer.name(), &[self.signer.verifier().clone()])
        else {
            return Ok(());
        };
        if self
            .last
            .lock()
            .expect("last lock")
            .is_some_and(|(size, _)| size >= checkpoint.size)
        {
            return Ok(());
        }
        let (size, note) = (checkpoint.size, note.to_owned());
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.with_state(move |s| s.store.add_checkpoint(size, &note, &at))
            .await?;
        *self.last.lock().expect("last lock") = Some((checkpoint.size, checkpoint.root));
        self.signed.send_replace(checkpoint.size);
        crate::metrics::METRICS
            .checkpoint_size
            .set(checkpoint.size as i64);
        Ok(())
    }

    /// Signs and stores a checkpoint of the current tree if it grew since the last one
    /// published, and only while active. The tree at the last published size must have
    /// that checkpoint's root (else nothing is signed: an error a person must look at).
    /// With a lease, the note is first written into the lease at the revision this
    /// instance holds: if that fails, another instance may be signing, and this one
    /// stops being active without storing or publishing anything.
    pub async fn sign_if_grown(self: &Arc<Self>) -> Result<Option<u64>, StoreError> {
        if !self.is_active() {
            return Ok(None);
        }
        let last = *self.last.lock().expect("last lock");
        let this = self.clone();
        let prepared = self
            .with_state(move |s| {
                let size = s.tree.len();
                if size <= last.map_or(0, |(k, _)| k) {
                    return Ok(None);
                }
                if let Some((k, root)) = last
                    && s.tree.root(k).ok() != Some(root)
                {
                    return Ok(Some(Err(k)));
                }
                let root = s.tree.root(size).expect("size is the tree's");
                let checkpoint = Checkpoint {
                    origin: this.signer.name().into(),
                    size,
                    root,
                };
                Ok(Some(Ok((size, root, checkpoint.sign(&this.signer)))))
            })
            .await?;
        let (size, root, note) = match prepared {
            None => return Ok(None),
            Some(Err(k)) => {
                crate::metrics::METRICS.refused.inc();
                tracing::error!(
                    size = k,
                    "this tree does not extend the last published checkpoint: not signing"
                );
                return Ok(None);
            }
            Some(Ok(p)) => p,
        };
        if let Some((lease, holder)) = self.lease.get() {
            let value = serde_json::to_vec(&LeaseValue {
                holder: holder.clone(),
                note: Some(note.clone()),
            })
            .expect("lease values serialize");
            match lease.renew(value.into()).await {
                Ok(()) => {}
                Err(e @ LeaseError::Lost(_)) => {
                    tracing::warn!(error = %e, size, "lease lost: not signing, standing by");
                    self.set_active(false);
                    return Ok(None);
                }
                Err(e) => {
                    tracing::warn!(error = %e, size, "lease not renewed: not signing now");
                    return Ok(None);
                }
            }
        }
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let stored = note.clone();
        self.with_state(move |s| s.store.add_checkpoint(size, &stored, &at))
            .await?;
        *self.last.lock().expect("last lock") = Some((size, root));
        self.signed.send_replace(size);
        crate::metrics::METRICS.signed.inc();
        crate::metrics::METRICS.checkpoint_size.set(size as i64);
        tracing::info!(size, "signed checkpoint");
        self.compact_if_due().await?;
        if let Some(client) = &self.client {
            let subject = coord_audit::wire::subject(Some(&self.office), "published");
            let _ = client.publish(subject, note.into_bytes().into()).await;
        }
        Ok(Some(size))
    }

    /// Adds `items` to the store and the tree; signs every N leaves, unless `catching_up`
    /// (a checkpoint on the way to the head is smaller than one a witness may already
    /// have cosigned, as after a restore, and would be refused as an alarm).
    async fn apply(
        self: &Arc<Self>,
        items: Vec<Item>,
        catching_up: bool,
    ) -> Result<(), StoreError> {
        let grown = self
            .with_state(move |s| {
                let hashes = s.store.apply_batch(&items, s.tree.len())?;
                for h in &hashes {
                    s.tree.push(*h);
                }
                Ok(s.tree.len())
            })
            .await?;
        crate::metrics::METRICS.leaves.set(grown as i64);
        if !catching_up && grown >= *self.signed.borrow() + self.every {
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
            let mut catch_up = CatchUp::new(self.log.head().await.ok().flatten(), after);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => {
                        if !catch_up.behind() {
                            self.sign_if_grown().await?;
                        }
                        return Ok(());
                    }
                    _ = ticker.tick() => {
                        if !catch_up.behind() {
                            self.sign_if_grown().await?;
                        }
                    }
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
                        if let Some(last) = items.last() {
                            catch_up.reached(last.position());
                        }
                        let catching_up = catch_up.behind();
                        self.apply(items, catching_up).await?;
                        catch_up.moved();
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

/// The log's head when a subscription began, until the tree reaches it: no checkpoint
/// is signed before (one of the tree on its way there is superseded at once, costs
/// every witness a round, and, smaller than what a witness cosigned before the store
/// was lost, is refused as an alarm), as long as the catch-up moves on: after
/// [`CatchUp::GRACE`] without a new entry short of that head, signing resumes.
struct CatchUp {
    head: Option<u64>,
    until: Instant,
}

impl CatchUp {
    const GRACE: Duration = Duration::from_secs(10);

    fn new(head: Option<EventPosition>, after: Option<EventPosition>) -> Self {
        let head = head
            .map(|h| h.commit)
            .filter(|h| after.is_none_or(|a| a.commit < *h));
        CatchUp {
            head,
            until: Instant::now() + Self::GRACE,
        }
    }

    fn reached(&mut self, position: EventPosition) {
        if self.head.is_some_and(|h| position.commit >= h) {
            self.head = None;
        }
        self.moved();
    }

    /// The catch-up made progress (entries were applied): the grace starts again.
    fn moved(&mut self) {
        self.until = Instant::now() + Self::GRACE;
    }

    /// Short of the head and still moving: a stall lets signing go on, and a catch-up
    /// that moves again holds it back again.
    fn behind(&self) -> bool {
        self.head.is_some() && Instant::now() < self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_log::memory::InMemoryLog;
    use coord_log::{ExpectedVersion, Metadata, NewEvent, StreamId};
    use uuid::Uuid;

    fn event() -> NewEvent {
        let causation_id = Uuid::now_v7();
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "InspectionScheduled".into(),
            schema_version: 1,
            occurred_at: "2022-06-15".parse().unwrap(),
            payload: serde_json::json!({}),
            metadata: Metadata {
                role: None,
                office: "province".into(),
                actor: "test".into(),
                correlation_id: causation_id,
                causation_id,
            },
        }
    }

    #[test]
    fn a_stalled_catch_up_lets_signing_go_on_and_one_that_moves_again_holds_it_back() {
        let at = |commit| EventPosition { commit, index: 0 };
        let mut c = CatchUp::new(Some(at(10)), None);
        assert!(c.behind());
        c.until = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
        assert!(!c.behind(), "stalled short of the head");
        c.reached(at(5));
        assert!(c.behind(), "moving again");
        c.reached(at(10));
        assert!(!c.behind(), "at the head");
        assert!(
            !CatchUp::new(Some(at(10)), Some(at(10))).behind(),
            "nothing to catch up"
        );
    }

    // A tree rebuilt from a log that already holds many leaves (a restored office):
    // its first checkpoint is of the whole log, none of a tree on its way there, which
    // a witness that cosigned the whole tree before would refuse as shrunk.
    #[tokio::test]
    async fn a_catch_up_signs_at_the_head_not_every_n_leaves_on_the_way() {
        let log = Arc::new(InMemoryLog::new());
        for _ in 0..250 {
            let stream = StreamId::new("inspection", Uuid::now_v7()).unwrap();
            log.append(&stream, ExpectedVersion::NoStream, vec![event()])
                .await
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("audit.sqlite")).unwrap();
        let signer = Signer::from_seed("coord/test/province", [7; 32]).unwrap();
        let auditor = Auditor::new("province".into(), signer, store, log, 100, 10, None).unwrap();
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(auditor.clone().run(Duration::from_millis(50), stopped));
        assert!(auditor.wait_signed(250, Duration::from_secs(20)).await);
        stop.send(true).unwrap();
        running.await.unwrap().unwrap();
        let sizes: Vec<u64> = auditor
            .with_state(|s| s.store.checkpoints_after(None, 100))
            .await
            .unwrap()
            .iter()
            .map(|c| c.size)
            .collect();
        assert_eq!(sizes, [250]);
    }
}
