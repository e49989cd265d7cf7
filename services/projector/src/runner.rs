//! Follows the log into the store: catch-up from the checkpoint, then live; batches what
//! is ready into one transaction; drops and replays the read models on request (rebuild).
//!
//! The projection never skips an event. What stops it is reported (in
//! [`Projector::health`], hence `/v1/projector` and `/readyz`) and retried, never
//! turned into a dead letter or a jump ahead:
//! - a storage failure (the database busy, read-only, full, failing) rolls the batch
//!   back; the writer connection is reopened and the batch tried again, with backoff;
//! - a log that is not the one the checkpoint refers to (deleted and recreated, or
//!   replaced) stops the projection until a rebuild adopts it;
//! - a rebuild that fails leaves the old read models in place and the process running.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coord_domain::Province;
use coord_log::{EventLog, EventPosition, LogError, LogErrorKind};
use coord_proto::read::{ProjectorFault, RebuildProgress};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::readers::Readers;
use crate::store::{Item, Redrive, Store, StoreError};

/// The longest pause between two attempts after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// How often an idle projector checks that the log is still the same one (a replaced
/// log with fewer entries would otherwise only look "caught up").
const IDENTITY_CHECK_EVERY: Duration = Duration::from_secs(2);
/// With nothing received for this long while the log's head is past the projection,
/// the subscription is taken for stalled and made again from the checkpoint. A
/// JetStream pull lost with its server (a cluster member dying) is otherwise noticed
/// only after two missed 15 s heartbeats (async-nats's ordered consumer).
const STALLED_AFTER: Duration = Duration::from_secs(5);

/// Fault codes, as reported in [`ProjectorFault::code`].
pub const STORAGE_FAILED: &str = "storage_failed";
pub const LOG_REPLACED: &str = "log_replaced";
pub const REBUILD_FAILED: &str = "rebuild_failed";
pub const LOG_UNAVAILABLE: &str = "log_unavailable";

/// A counter of rebuild attempts and whether one is replaying: queries compare it
/// before and after reading, so an answer never mixes the old model with a half-built
/// one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phase {
    pub generation: u64,
    pub rebuilding: bool,
}

/// What the projector reports about itself besides its position.
#[derive(Debug, Default, Clone)]
pub struct Health {
    pub fault: Option<ProjectorFault>,
    pub last_rebuild: Option<RebuildProgress>,
    pub log_identity: Option<String>,
}

/// Why a dead letter could not be re-driven.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("a rebuild is replaying the log; re-drive after it completes")]
    Rebuilding,
    #[error("the log is not the one the read models were built from")]
    LogReplaced,
    #[error("no entry at position {0} in the log")]
    NotInLog(EventPosition),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// A rebuild asked of the running projection, and where to answer.
pub(crate) struct RebuildReply {
    /// Go on although applied events are gone from the log ([`crate::damage`]).
    accept_loss: bool,
    answer: oneshot::Sender<Result<u64, RebuildError>>,
}

/// Why a rebuild did not start.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("the projection is not running")]
    NotRunning,
    #[error("{0}")]
    Failed(String),
    #[error(
        "the log no longer holds {} event(s) the read models applied (first: {}); a rebuild would silently count without them. \
         Restore the log, or rebuild with accept_loss to go on without them",
        .0.len(), .0.first().map(coord_proto::read::LogDamage::describe).unwrap_or_default()
    )]
    LogDamaged(Vec<coord_proto::read::LogDamage>),
}

/// The shared state of one projector: its store and how far it has got.
pub struct Projector {
    writer: Mutex<Store>,
    /// A read-only connection for queries (file databases); `None` for in-memory ones,
    /// whose queries use the writer.
    reader: Option<Mutex<Store>>,
    /// Read-only connections for the analytics queries (file databases; see
    /// [`crate::readers`]); `None` for in-memory ones, whose queries use the writer.
    analytics: Option<Readers>,
    /// Where the database is, to reopen the writer after a storage failure.
    db: Option<PathBuf>,
    busy_timeout: Duration,
    /// A copy of the store's reference data, to validate queries without the lock.
    pub(crate) province: Province,
    log: Arc<dyn EventLog>,
    position: watch::Sender<u64>,
    phase: watch::Sender<Phase>,
    health: Mutex<Health>,
    rebuild_tx: mpsc::Sender<RebuildReply>,
    rebuild_rx: tokio::sync::Mutex<mpsc::Receiver<RebuildReply>>,
    batching: Batching,
}

/// How the projector groups events into transactions.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Events read in one chunk at most; a batch joins up to [`COALESCE`] chunks.
    pub size: usize,
    /// While the log is busy ([`busy`]), a batch smaller than `size` waits this long for
    /// more: one transaction for more events under heavy traffic, while a command after
    /// a quiet spell or at a moderate rate is applied at once. Zero: never wait.
    pub linger: Duration,
}

impl Batching {
    /// Up to `size` events, applied as soon as they are read.
    pub fn eager(size: usize) -> Self {
        Self {
            size,
            linger: Duration::ZERO,
        }
    }
}

/// The connections of a projector over a database file, besides its writer.
struct Files {
    reader: Store,
    readers: Readers,
    db: PathBuf,
}

/// What the follow loop does next.
enum Flow {
    Shutdown,
    /// Something failed: wait (backoff), then subscribe again from the checkpoint.
    Retry,
    /// Subscribe again at once (after a rebuild reset the checkpoint).
    Again,
}

impl Projector {
    /// A projector over `store` alone (queries share the writer; no reopening).
    pub fn new(
        store: Store,
        log: Arc<dyn EventLog>,
        batch_size: usize,
    ) -> Result<Arc<Self>, StoreError> {
        let busy = crate::store::DEFAULT_BUSY_TIMEOUT;
        Self::build(store, None, busy, log, Batching::eager(batch_size))
    }

    /// A projector over the database file `db`: one writer connection, one read-only
    /// connection for queries (WAL), writes waiting at most `busy_timeout` for a lock.
    pub fn open(
        db: &Path,
        province: Province,
        log: Arc<dyn EventLog>,
        batching: Batching,
        busy_timeout: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        let writer = Store::open(db, province.clone())?;
        writer.set_busy_timeout(busy_timeout)?;
        let reader = Store::open_reader(db, province.clone())?;
        let readers = Readers::new(db.to_owned(), province);
        let files = Files {
            reader,
            readers,
            db: db.to_owned(),
        };
        Self::build(writer, Some(files), busy_timeout, log, batching)
    }

    fn build(
        writer: Store,
        files: Option<Files>,
        busy_timeout: Duration,
        log: Arc<dyn EventLog>,
        batching: Batching,
    ) -> Result<Arc<Self>, StoreError> {
        let province = writer.province().clone();
        let start = writer.checkpoint()?.map(|p| p.commit).unwrap_or(0);
        let log_identity = writer.log_identity()?;
        // A rebuild interrupted by a restart is still running: the model is partial.
        let latest = writer.latest_rebuild()?;
        let phase = Phase {
            generation: latest.map(|l| l.0).unwrap_or(0),
            rebuilding: latest.is_some_and(|l| !l.3),
        };
        let last_rebuild =
            latest.map(
                |(generation, target_position, replayed, completed)| RebuildProgress {
                    generation,
                    target_position,
                    replayed,
                    completed,
                },
            );
        let (rebuild_tx, rebuild_rx) = mpsc::channel(4);
        let (reader, analytics, db) = match files {
            Some(f) => (Some(f.reader), Some(f.readers), Some(f.db)),
            None => (None, None, None),
        };
        Ok(Arc::new(Self {
            writer: Mutex::new(writer),
            reader: reader.map(Mutex::new),
            analytics,
            db,
            busy_timeout,
            province,
            log,
            position: watch::channel(start).0,
            phase: watch::channel(phase).0,
            health: Mutex::new(Health {
                log_identity,
                last_rebuild,
                fault: None,
            }),
            rebuild_tx,
            rebuild_rx: tokio::sync::Mutex::new(rebuild_rx),
            batching: Batching {
                size: batching.size.max(1),
                ..batching
            },
        }))
    }

    /// The last log commit applied.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    pub fn is_rebuilding(&self) -> bool {
        self.phase.borrow().rebuilding
    }

    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// What the projector reports about itself: fault, latest rebuild, log identity.
    pub fn health(&self) -> Health {
        self.health.lock().expect("health lock").clone()
    }

    /// Waits until the read model reflects `min` (or `timeout` passes). True if reached.
    pub async fn wait_for(&self, min: u64, timeout: Duration) -> bool {
        let mut rx = self.position.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|p| *p >= min))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits (at most `timeout`) until no rebuild is replaying; the phase then, if so.
    pub async fn wait_settled(&self, timeout: Duration) -> Option<Phase> {
        let mut rx = self.phase.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|p| !p.rebuilding))
            .await
            .ok()?
            .ok()
            .map(|p| *p)
    }

    /// Runs a closure on the writer connection on a blocking thread.
    pub async fn with_store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = this.writer.lock().expect("store lock");
            f(&mut store)
        })
        .await
        .expect("store task does not panic")
    }

    /// Runs a read-only closure on the query connection, in one read transaction, on a
    /// blocking thread: it does not wait for a projection batch being written.
    pub async fn with_reader<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let store = match &this.reader {
                Some(reader) => reader.lock().expect("reader lock"),
                None => this.writer.lock().expect("store lock"),
            };
            store.snapshot(f)
        })
        .await
        .expect("store task does not panic")
    }

    /// Runs a read-only analytics closure on a read connection of its own, on a
    /// low-priority thread (see [`crate::readers`]); in-memory stores use the reader
    /// path.
    pub async fn with_analytics<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.analytics {
            Some(readers) => readers.read(f).await,
            None => self.with_reader(f).await,
        }
    }

    /// Asks the running projection to drop its read models and replay the log. Returns
    /// the log head the replay must reach.
    pub async fn request_rebuild(&self) -> Result<u64, RebuildError> {
        self.request_rebuild_with(false).await
    }

    /// [`Projector::request_rebuild`], going on despite log damage if `accept_loss`.
    pub async fn request_rebuild_with(&self, accept_loss: bool) -> Result<u64, RebuildError> {
        let (answer, rx) = oneshot::channel();
        self.rebuild_tx
            .send(RebuildReply {
                accept_loss,
                answer,
            })
            .await
            .map_err(|_| RebuildError::NotRunning)?;
        rx.await.map_err(|_| RebuildError::NotRunning)?
    }

    /// The log followed.
    pub(crate) fn log(&self) -> &dyn EventLog {
        self.log.as_ref()
    }

    /// Whether the log is the one the read models were built from (or none is
    /// recorded yet).
    pub(crate) async fn follows_recorded_log(&self) -> bool {
        let recorded = self.health().log_identity;
        match (recorded, self.log.identity().await) {
            (Some(r), Ok(Some(current))) => r == current,
            (_, Err(_)) => false,
            _ => true,
        }
    }

    fn set_fault(&self, code: &str, detail: String) {
        let mut health = self.health.lock().expect("health lock");
        if health.fault.as_ref().is_some_and(|f| f.code == code) {
            if let Some(f) = health.fault.as_mut() {
                f.detail = detail;
            }
            return;
        }
        tracing::warn!(code, %detail, "projection stalled");
        health.fault = Some(ProjectorFault {
            code: code.into(),
            detail,
            since: chrono::Utc::now().to_rfc3339(),
        });
    }

    fn clear_fault(&self, codes: &[&str]) {
        let mut health = self.health.lock().expect("health lock");
        if health
            .fault
            .as_ref()
            .is_some_and(|f| codes.contains(&f.code.as_str()))
        {
            tracing::info!("projection resumed");
            health.fault = None;
        }
    }

    /// Reports a storage failure and, unless it is only a lock held elsewhere, reopens
    /// the writer connection (the file may have been fixed, replaced or remounted).
    async fn storage_failed(self: &Arc<Self>, e: &StoreError) {
        let code = e.sqlite_code().unwrap_or("SQLITE_ERROR");
        self.set_fault(
            STORAGE_FAILED,
            format!(
                "the read-model database cannot be written ({code}): {e}; the batch was rolled back, \
                 the checkpoint stays at {} and the projector retries",
                self.position()
            ),
        );
        if matches!(code, "SQLITE_BUSY" | "SQLITE_LOCKED") {
            return;
        }
        let Some(db) = self.db.clone() else {
            return;
        };
        let (province, busy) = (self.province.clone(), self.busy_timeout);
        let this = self.clone();
        let reopened = tokio::task::spawn_blocking(move || {
            let store = Store::open(&db, province)?;
            store.set_busy_timeout(busy)?;
            *this.writer.lock().expect("store lock") = store;
            Ok::<_, StoreError>(())
        })
        .await
        .expect("store task does not panic");
        if let Err(e) = reopened {
            tracing::warn!(error = %e, "cannot reopen the read-model database yet");
        }
    }

    /// Checks that the log is the one the checkpoint refers to; records it for a store
    /// that has none yet. `Err` stops the projection (reported).
    async fn check_identity(self: &Arc<Self>) -> Result<(), ()> {
        let current = match self.log.identity().await {
            Ok(Some(id)) => id,
            Ok(None) => return Ok(()),
            Err(e) => {
                self.set_fault(
                    LOG_UNAVAILABLE,
                    format!("cannot tell which log this is ({e}); retrying"),
                );
                return Err(());
            }
        };
        self.clear_fault(&[LOG_UNAVAILABLE]);
        let recorded = self
            .health
            .lock()
            .expect("health lock")
            .log_identity
            .clone();
        match recorded {
            Some(r) if r == current => {
                self.clear_fault(&[LOG_REPLACED]);
                Ok(())
            }
            Some(r) => {
                self.set_fault(
                    LOG_REPLACED,
                    format!(
                        "the log is now `{current}` but the read models were built from `{r}`: \
                         its positions mean nothing here, so the projector stopped at {}. \
                         Restore the log, or rebuild (POST /v1/admin/rebuild) to adopt the new one",
                        self.position()
                    ),
                );
                Err(())
            }
            None => {
                let id = current.clone();
                if let Err(e) = self.with_store(move |s| s.set_log_identity(&id)).await {
                    self.storage_failed(&e).await;
                    return Err(());
                }
                tracing::info!(identity = %current, "following this log");
                self.health.lock().expect("health lock").log_identity = Some(current);
                Ok(())
            }
        }
    }

    /// Drops the read models for a replay. On failure nothing was dropped.
    async fn reset(self: &Arc<Self>) -> anyhow::Result<u64> {
        let head = self.log.head().await?.map(|p| p.commit).unwrap_or(0);
        // Announce before the tables go, so no query reads a half-built model.
        let epoch = self.phase().generation + 1;
        self.phase.send_replace(Phase {
            generation: epoch,
            rebuilding: true,
        });
        let generation = match self.with_store(move |s| s.start_rebuild(head)).await {
            Ok(generation) => generation,
            Err(e) => {
                self.phase.send_replace(Phase {
                    generation: epoch,
                    rebuilding: false,
                });
                return Err(e.into());
            }
        };
        {
            let mut health = self.health.lock().expect("health lock");
            health.log_identity = None;
            health.last_rebuild = Some(RebuildProgress {
                generation,
                target_position: head,
                replayed: 0,
                completed: head == 0,
            });
        }
        self.position.send_replace(0);
        crate::metrics::METRICS.rebuilds.inc();
        crate::metrics::METRICS.position.set(0);
        tracing::info!(head, generation, "read models dropped; replaying the log");
        if head == 0 {
            self.phase.send_replace(Phase {
                generation: epoch,
                rebuilding: false,
            });
        }
        Ok(head)
    }

    /// Serves one rebuild request. A failure is reported and answered; it never ends
    /// the projection.
    async fn rebuild(self: &Arc<Self>, reply: RebuildReply) {
        if let Err(e) = self.check_damage(reply.accept_loss).await {
            tracing::warn!(error = %e, "rebuild refused");
            let _ = reply.answer.send(Err(e));
            return;
        }
        match self.reset().await {
            Ok(head) => {
                self.clear_fault(&[REBUILD_FAILED, LOG_REPLACED]);
                let _ = reply.answer.send(Ok(head));
            }
            Err(e) => {
                let detail = format!("the rebuild failed, the read models are unchanged: {e}");
                self.set_fault(REBUILD_FAILED, detail.clone());
                let _ = reply.answer.send(Err(RebuildError::Failed(detail)));
            }
        }
    }

    /// Applies one batch and publishes the new position.
    async fn apply(self: &Arc<Self>, items: Vec<Item>) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let (applied, dead, checkpoint) = self
            .with_store(move |s| {
                let (a, d) = s.apply_batch(&items)?;
                Ok((a, d, s.checkpoint()?))
            })
            .await?;
        let commit = checkpoint.map(|p| p.commit).unwrap_or(0);
        crate::metrics::METRICS.batch(started, applied as u64, dead as u64, commit);
        tracing::debug!(applied, dead, position = commit, "batch applied");
        // Advancing again: a storage failure or a failed rebuild (whose old read models
        // stood) is over; said before the new position, which a waiter may act on.
        self.clear_fault(&[STORAGE_FAILED, REBUILD_FAILED]);
        self.position.send_replace(commit);
        if self.is_rebuilding()
            && let Some(r) = self
                .health
                .lock()
                .expect("health lock")
                .last_rebuild
                .as_mut()
        {
            r.replayed += (applied + dead) as u64;
        }
        self.settle_rebuild(commit).await
    }

    /// Marks the running rebuild complete (in the store too) once `commit` reached
    /// its target.
    async fn settle_rebuild(self: &Arc<Self>, commit: u64) -> Result<(), StoreError> {
        let phase = self.phase();
        let done = {
            let health = self.health.lock().expect("health lock");
            health
                .last_rebuild
                .as_ref()
                .filter(|r| phase.rebuilding && !r.completed && commit >= r.target_position)
                .map(|r| (r.generation, r.replayed))
        };
        let Some((generation, replayed)) = done else {
            return Ok(());
        };
        self.with_store(move |s| s.finish_rebuild(generation, replayed))
            .await?;
        if let Some(r) = self
            .health
            .lock()
            .expect("health lock")
            .last_rebuild
            .as_mut()
        {
            r.completed = true;
        }
        self.phase.send_replace(Phase {
            rebuilding: false,
            ..phase
        });
        tracing::info!(position = commit, replayed, generation, "rebuild complete");
        Ok(())
    }

    /// Follows the log until `shutdown` flips to true. Returns only then.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut rebuild_rx = self.rebuild_rx.lock().await;
        tokio::spawn(self.clone().scrub_at_start());
        let mut backoff = FIRST_BACKOFF;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            match self
                .follow(&mut rebuild_rx, &mut shutdown, &mut backoff)
                .await
            {
                Flow::Shutdown => return Ok(()),
                Flow::Again => {}
                Flow::Retry => {
                    tokio::select! {
                        biased;
                        _ = shutdown.changed() => return Ok(()),
                        Some(reply) = rebuild_rx.recv() => self.rebuild(reply).await,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One subscription: from the checkpoint until something fails or a rebuild.
    async fn follow(
        self: &Arc<Self>,
        rebuild_rx: &mut mpsc::Receiver<RebuildReply>,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Duration,
    ) -> Flow {
        if self.check_identity().await.is_err() {
            return Flow::Retry;
        }
        let after = match self.with_store(|s| s.checkpoint()).await {
            Ok(after) => after,
            Err(e) => {
                self.storage_failed(&e).await;
                return Flow::Retry;
            }
        };
        if let Err(e) = self
            .settle_rebuild(after.map(|p| p.commit).unwrap_or(0))
            .await
        {
            self.storage_failed(&e).await;
            return Flow::Retry;
        }
        if let Err(e) = self.plan_catch_up().await {
            self.storage_failed(&e).await;
            return Flow::Retry;
        }
        let subscription = match self.log.subscribe(after).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to the log; retrying");
                return Flow::Retry;
            }
        };
        tracing::info!(after = ?after, "following the log");
        let mut chunks = self.read_ahead(subscription);
        let mut identity_check = tokio::time::interval(IDENTITY_CHECK_EVERY);
        identity_check.reset();
        let mut last_received = tokio::time::Instant::now();
        // How many events the last batch held (applied at `last_received`).
        let mut last_batch = 0;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Flow::Shutdown,
                Some(reply) = rebuild_rx.recv() => {
                    self.rebuild(reply).await;
                    return Flow::Again;
                }
                _ = identity_check.tick() => {
                    if self.check_identity().await.is_err() || self.stalled(last_received).await {
                        return Flow::Retry;
                    }
                    // Quiet before the head seen at the start was reached (it may hold
                    // what this projector does not read): caught up all the same.
                    if last_received.elapsed() >= IDENTITY_CHECK_EVERY
                        && let Err(e) = self.build_deferred_indexes().await
                    {
                        self.storage_failed(&e).await;
                        return Flow::Retry;
                    }
                }
                read = chunks.recv() => {
                    let Some(mut chunk) = read else {
                        tracing::warn!("log subscription ended or the log is not the one checked; resubscribing");
                        return Flow::Retry;
                    };
                    // What else was read and checked meanwhile joins this batch: one
                    // transaction for it.
                    while chunk.len() < self.batching.size * COALESCE
                        && let Ok(more) = chunks.try_recv()
                    {
                        chunk.extend(more);
                    }
                    if busy(last_batch, last_received, self.batching.linger)
                        && chunk.iter().all(Result::is_ok)
                    {
                        self.linger(&mut chunk, &mut chunks).await;
                    }
                    let (items, failure) = split(chunk);
                    last_batch = items.len();
                    if let Err(e) = self.apply(items).await {
                        self.storage_failed(&e).await;
                        return Flow::Retry;
                    }
                    // A long batch is not a quiet subscription.
                    last_received = tokio::time::Instant::now();
                    *backoff = FIRST_BACKOFF;
                    if let Some(e) = failure {
                        tracing::warn!(error = %e, "log subscription failed; resubscribing from the checkpoint");
                        return Flow::Retry;
                    }
                }
            }
        }
    }

    /// Waits up to the linger for more chunks to join `chunk`, until it holds a batch.
    /// A subscription that ends meanwhile is seen at the next read.
    async fn linger(&self, chunk: &mut Chunk, chunks: &mut mpsc::Receiver<Chunk>) {
        let deadline = tokio::time::Instant::now() + self.batching.linger;
        while chunk.len() < self.batching.size {
            match tokio::time::timeout_at(deadline, chunks.recv()).await {
                Ok(Some(more)) => chunk.extend(more),
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Empty read models about to be filled: where the log's head is now, at which
    /// their query indexes are built ([`Store::catch_up_to`]).
    async fn plan_catch_up(self: &Arc<Self>) -> Result<(), StoreError> {
        if !self.with_store(|s| Ok(s.indexes_deferred())).await? {
            return Ok(());
        }
        let head = self.log.head().await.ok().flatten().map(|p| p.commit);
        self.with_store(move |s| s.catch_up_to(head)).await
    }

    /// Builds the query indexes of read models filled from empty, if not yet built.
    async fn build_deferred_indexes(self: &Arc<Self>) -> Result<(), StoreError> {
        self.with_store(|s| {
            if s.indexes_deferred() {
                s.build_indexes()?;
            }
            Ok(())
        })
        .await
    }

    /// Whether the subscription received nothing for [`STALLED_AFTER`] while the log's
    /// head is past the projection.
    async fn stalled(&self, last_received: tokio::time::Instant) -> bool {
        if last_received.elapsed() < STALLED_AFTER {
            return false;
        }
        let behind = matches!(self.log.head().await, Ok(Some(h)) if h.commit > self.position());
        if behind {
            tracing::warn!(
                position = self.position(),
                "the log subscription stalled; resubscribing"
            );
        }
        behind
    }

    /// Applies again the event of the dead letter at `position` (read again from the
    /// log), once its cause is fixed. The projection's checkpoint does not move.
    pub async fn redrive(
        self: &Arc<Self>,
        position: EventPosition,
    ) -> Result<Redrive, RedriveError> {
        if self.is_rebuilding() {
            return Err(RedriveError::Rebuilding);
        }
        if self.health().fault.is_some_and(|f| f.code == LOG_REPLACED) {
            return Err(RedriveError::LogReplaced);
        }
        let known = self
            .with_reader(move |s| Ok(s.dead_letter(position)?.is_some()))
            .await?;
        if !known {
            return Ok(Redrive::NotDeadLetter);
        }
        let item = self.read_entry(position).await?;
        Ok(self.with_store(move |s| s.redrive(&item)).await?)
    }

    /// The log entry at `position` (an event, or what made it unreadable).
    async fn read_entry(&self, position: EventPosition) -> Result<Item, RedriveError> {
        let after = match position.index {
            0 => EventPosition {
                commit: position.commit.saturating_sub(1),
                index: u64::MAX,
            },
            i => EventPosition {
                commit: position.commit,
                index: i - 1,
            },
        };
        let mut entries = self.log.subscribe(Some(after)).await?;
        let read = async {
            while let Some(entry) = entries.next().await {
                let item = Item::from_log(entry).map_err(RedriveError::Log)?;
                if item.position() >= position {
                    return Ok(Some(item).filter(|i| i.position() == position));
                }
            }
            Ok(None)
        };
        match tokio::time::timeout(Duration::from_secs(5), read).await {
            Ok(Ok(Some(item))) => Ok(item),
            Ok(Ok(None)) | Err(_) => Err(RedriveError::NotInLog(position)),
            Ok(Err(e)) => Err(e),
        }
    }
}

/// Chunks read ahead of the one being applied, and how many of them one batch may join.
const READ_AHEAD: usize = 4;
const COALESCE: usize = 4;

/// What one read of the subscription gives: the entries that were ready.
type Chunk = Vec<Result<coord_log::RecordedEvent, LogError>>;

impl Projector {
    /// Reads and decodes the subscription on a task of its own, in chunks of what is
    /// ready (at most the batch size), up to [`READ_AHEAD`] chunks ahead of the caller:
    /// the log is read and decoded while the previous batch is being applied. The first
    /// chunk is handed on only after an identity check that began once it had arrived;
    /// every later one is from that same log (a subscription ends rather than pass to
    /// another storage of the log, `EventLog::subscribe`), so a chunk from a log
    /// replaced meanwhile is never applied.
    /// The task ends (the receiver then sees the channel end) with the subscription, at
    /// a failed identity check (reported as the projector's fault), or when the receiver
    /// is dropped.
    fn read_ahead(
        self: &Arc<Self>,
        subscription: coord_log::Subscription,
    ) -> mpsc::Receiver<Chunk> {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let this = self.clone();
        let cap = self.batching.size;
        let mut subscription = subscription.peekable();
        tokio::spawn(async move {
            let mut checked = false;
            loop {
                let chunk: Chunk = tokio::select! {
                    chunk = next_chunk(&mut subscription, cap) => match chunk {
                        Some(chunk) => chunk,
                        None => return,
                    },
                    () = tx.closed() => return,
                };
                if !checked && this.check_identity().await.is_err() {
                    return;
                }
                checked = true;
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}

/// A batch waits for more only after one of at least this many events.
const LINGER_AFTER: usize = 8;

/// Whether the log is busy enough for a batch to wait for more: the last batch held at
/// least [`LINGER_AFTER`] events (a backlog: events came much faster than batches were
/// applied) and was applied less than ten lingers ago. A lingering batch that gathers
/// fewer ends the lingering: with the default 2 ms it goes on only above about 3,000
/// events/s. A command after a quiet spell, or at a moderate rate, is applied at once.
fn busy(last_batch: usize, applied_at: tokio::time::Instant, linger: Duration) -> bool {
    last_batch >= LINGER_AFTER && applied_at.elapsed() < linger * 10
}

/// What of the subscription is ready now, after waiting for one entry: at most `cap`
/// entries, and then the rest of the last entry's commit if it is ready too (a commit
/// decoded from one message is), so that a batch does not end inside a commit whose
/// position the projector then tells as applied.
async fn next_chunk(
    subscription: &mut futures::stream::Peekable<coord_log::Subscription>,
    cap: usize,
) -> Option<Chunk> {
    use futures::FutureExt;
    let mut chunk = vec![subscription.next().await?];
    while chunk.len() < cap {
        match subscription.next().now_or_never() {
            Some(Some(entry)) => chunk.push(entry),
            // The subscription ended, or nothing more is ready.
            _ => return Some(chunk),
        }
    }
    // Full: the rest of its last commit, as far as it is ready.
    let commit = chunk
        .last()
        .and_then(|e| e.as_ref().ok())
        .map(|e| e.pos().commit);
    while let Some(Some(Ok(next))) = std::pin::Pin::new(&mut *subscription).peek().now_or_never() {
        if Some(next.pos().commit) != commit {
            break;
        }
        match subscription.next().now_or_never() {
            Some(Some(entry)) => chunk.push(entry),
            _ => break,
        }
    }
    Some(chunk)
}

/// A chunk of the subscription as items to apply, and the failure that ended it, if
/// one did (everything before the failure is applied).
fn split(chunk: Chunk) -> (Vec<Item>, Option<LogError>) {
    let mut items = Vec::with_capacity(chunk.len());
    for entry in chunk {
        match Item::from_log(entry) {
            Ok(item) => items.push(item),
            Err(e) => {
                debug_assert_ne!(e.kind(), LogErrorKind::Corrupt);
                return (items, Some(e));
            }
        }
    }
    (items, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_log::memory::InMemoryLog;
    use coord_log::{ExpectedVersion, Metadata, NewEvent, StreamId};
    use uuid::Uuid;

    fn event(causation_id: Uuid) -> NewEvent {
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

    /// Commits of `sizes` events each, in one log.
    async fn log_of(sizes: &[usize]) -> InMemoryLog {
        let log = InMemoryLog::new();
        for &n in sizes {
            let stream = StreamId::new("inspection", Uuid::now_v7()).unwrap();
            let command = Uuid::now_v7();
            let events = (0..n).map(|_| event(command)).collect();
            log.append(&stream, ExpectedVersion::NoStream, events)
                .await
                .unwrap();
        }
        log
    }

    #[test]
    fn a_batch_waits_only_while_batches_hold_several_events_and_come_often() {
        let linger = Duration::from_secs(1);
        let now = tokio::time::Instant::now();
        let long_ago = now.checked_sub(linger * 10).unwrap();
        assert!(!busy(0, now, linger), "nothing applied yet");
        assert!(busy(LINGER_AFTER, now, linger));
        assert!(!busy(LINGER_AFTER - 1, now, linger), "a moderate rate");
        assert!(!busy(200, long_ago, linger), "after a quiet spell");
        assert!(!busy(200, now, Duration::ZERO), "no linger");
    }

    // A chunk full before its last commit ends takes the rest of that commit (ready,
    // as one message's events are), and no more: a batch never ends inside a commit.
    #[tokio::test]
    async fn a_chunk_ends_at_a_commit_boundary() {
        let log = log_of(&[1, 3, 1, 1]).await;
        let mut subscription = log.subscribe(None).await.unwrap().peekable();
        let mut chunks: Vec<Vec<u64>> = Vec::new();
        while chunks.iter().map(Vec::len).sum::<usize>() < 6 {
            let chunk = next_chunk(&mut subscription, 2).await.unwrap();
            chunks.push(
                chunk
                    .iter()
                    .map(|e| e.as_ref().unwrap().pos().index)
                    .collect(),
            );
        }
        // Event indexes within their commits: the 3-event commit is in one chunk.
        assert_eq!(chunks, [vec![0, 0, 1, 2], vec![0, 0]]);
    }
}
