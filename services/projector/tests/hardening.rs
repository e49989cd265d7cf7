//! The projector never skips an event: storage failures stall and resume, a replaced
//! log stops it, a failing rebuild keeps it running, queries neither wait behind writes
//! nor see a half-built model, and a dead letter can be re-driven. On a real SQLite file
//! and the in-memory log (the same against JetStream and real processes: tests/ at the
//! workspace root).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use coord_domain::province::AN_GIANG_TOML;
use coord_domain::{DomainEvent, Province};
use coord_log::memory::InMemoryLog;
use coord_log::{
    AppendOutcome, EventLog, EventPosition, ExpectedVersion, LogError, Metadata, NewEvent,
    RecordedEvent, StreamId, Subscription,
};
use futures::StreamExt;
use projector::store::Redrive;
use projector::{Batching, Projector};
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

const TERM: &str = "2020-2025";

fn province() -> Province {
    Province::from_toml_str(AN_GIANG_TOML).unwrap()
}

/// Appends one valid `InspectionScheduled`; returns the inspection's id.
async fn schedule(log: &dyn EventLog, n: usize) -> Uuid {
    use coord_domain::inspection::{
        Category, InspectionEvent, InspectionKind, InspectionScheduled,
    };
    let id = Uuid::now_v7();
    let unit = ["long-xuyen", "chau-doc", "tan-chau"][n % 3];
    let event = InspectionEvent::InspectionScheduled(InspectionScheduled {
        inspection_id: coord_domain::InspectionId::from_uuid(id),
        term: TERM.parse().unwrap(),
        unit: unit.parse().unwrap(),
        kind: InspectionKind::Inspection,
        category: Category::Regular,
        leading_body: coord_domain::Body::ProvincialInspectionCommission,
        coordinating_body: format!("district_standing_committee:{unit}")
            .parse()
            .unwrap(),
        target: format!("district_police:{unit}").parse().unwrap(),
        decision_ref: format!("{n}-QĐ").parse().unwrap(),
        decided_on: "2024-01-02".parse().unwrap(),
        planned_start: "2024-02-01".parse().unwrap(),
        planned_end: "2024-02-28".parse().unwrap(),
    });
    let (event_type, payload) = event.encode();
    let new = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.into(),
        schema_version: InspectionEvent::SCHEMA_VERSION,
        occurred_at: event.occurred_on(),
        payload,
        metadata: Metadata {
            role: None,
            office: "province".into(),
            actor: "test".into(),
            correlation_id: id,
            causation_id: id,
        },
    };
    log.append(
        &StreamId::new("inspection", id).unwrap(),
        ExpectedVersion::NoStream,
        vec![new],
    )
    .await
    .unwrap();
    id
}

/// The in-memory log behind a switch: it can be replaced by another log (with another
/// identity), which ends the subscriptions to the old one, as a deleted JetStream
/// stream does; and its subscriptions can be held back (a slow replay).
struct TestLog {
    current: Arc<Mutex<(InMemoryLog, String)>>,
    switched: watch::Sender<u64>,
    gate: watch::Sender<bool>,
    /// When the log is replaced, a subscription ends with an `Unavailable` error (as
    /// JetStream's does when its ordered consumer is created again, on the new stream),
    /// instead of just ending.
    fails_at_switch: bool,
}

impl TestLog {
    fn new() -> Arc<Self> {
        Self::with(false)
    }
    fn with(fails_at_switch: bool) -> Arc<Self> {
        Arc::new(Self {
            current: Arc::new(Mutex::new((InMemoryLog::new(), "log-a".into()))),
            switched: watch::channel(0).0,
            gate: watch::channel(true).0,
            fails_at_switch,
        })
    }
    fn log(&self) -> InMemoryLog {
        self.current.lock().unwrap().0.clone()
    }
    fn replace(&self, identity: &str) {
        *self.current.lock().unwrap() = (InMemoryLog::new(), identity.into());
        self.switched.send_modify(|n| *n += 1);
    }
    fn hold(&self, held: bool) {
        self.gate.send_replace(!held);
    }
}

#[async_trait]
impl EventLog for TestLog {
    fn for_office(&self, office: &coord_domain::Office) -> Arc<dyn EventLog> {
        self.log().for_office(office)
    }
    async fn read_reference(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
        self.log().read_reference(stream).await
    }
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        self.log().append(stream, expected, events).await
    }
    async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
        self.log().read_stream(stream).await
    }
    async fn subscribe(&self, after: Option<EventPosition>) -> Result<Subscription, LogError> {
        let mut gate = self.gate.subscribe();
        let _ = gate.wait_for(|open| *open).await;
        let mut switched = self.switched.subscribe();
        let inner = self.log().subscribe(after).await?;
        let ended = async move {
            let _ = switched.changed().await;
        };
        let old = inner.take_until(Box::pin(ended));
        if !self.fails_at_switch {
            return Ok(Box::pin(old));
        }
        let failed = futures::stream::once(async {
            Err(LogError::Unavailable(
                "the log's delivery started over".into(),
            ))
        });
        Ok(Box::pin(old.chain(failed)))
    }
    async fn head(&self) -> Result<Option<EventPosition>, LogError> {
        self.log().head().await
    }
    async fn identity(&self) -> Result<Option<String>, LogError> {
        Ok(Some(self.current.lock().unwrap().1.clone()))
    }
}

struct Running {
    projector: Arc<Projector>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
}

impl Running {
    async fn start(log: Arc<dyn EventLog>, busy: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("projector.sqlite");
        Self::start_at(log, db, dir, busy).await
    }

    async fn start_at(
        log: Arc<dyn EventLog>,
        db: std::path::PathBuf,
        dir: tempfile::TempDir,
        busy: Duration,
    ) -> Self {
        Self::start_batching(log, db, dir, busy, Batching::eager(64)).await
    }

    async fn start_batching(
        log: Arc<dyn EventLog>,
        db: std::path::PathBuf,
        dir: tempfile::TempDir,
        busy: Duration,
        batching: Batching,
    ) -> Self {
        let projector = Projector::open(&db, province(), log, batching, busy).unwrap();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(projector.clone().run(rx));
        Self {
            projector,
            task,
            stop,
            _dir: dir,
            db,
        }
    }

    /// Another connection to the projector's database, as another process would have.
    fn side_connection(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).unwrap()
    }

    async fn ask(&self, endpoint: &str, body: Value) -> Value {
        let body = serde_json::to_vec(&body).unwrap();
        let answer = projector::queries::answer(
            &self.projector,
            endpoint,
            &body,
            Duration::from_millis(300),
        )
        .await;
        serde_json::from_slice(&answer).unwrap()
    }

    async fn status(&self) -> Value {
        self.ask("position", json!({})).await["ok"].clone()
    }

    async fn scheduled(&self) -> u64 {
        let s = self.ask("province_summary", json!({ "term": TERM })).await;
        s["ok"]["inspections"]["scheduled"]
            .as_u64()
            .unwrap_or_else(|| panic!("a summary: {s}"))
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        self.task.await.unwrap().unwrap();
    }
}

/// Polls `check` every 20 ms for at most `within`.
async fn eventually<F: Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A projector database created in a new folder, and another connection to it.
fn created_db() -> (tempfile::TempDir, std::path::PathBuf, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("projector.sqlite");
    drop(projector::Store::open(&db, province()).unwrap());
    let side = rusqlite::Connection::open(&db).unwrap();
    (dir, db, side)
}

async fn head(log: &dyn EventLog) -> u64 {
    log.head().await.unwrap().map(|p| p.commit).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_by_another_process_stalls_the_projection_which_resumes_exactly() {
    // given a log and a database another connection holds the write lock on
    let log = Arc::new(InMemoryLog::new());
    for n in 0..40 {
        schedule(log.as_ref(), n).await;
    }
    let (dir, db, side) = created_db();
    side.execute_batch("BEGIN IMMEDIATE").unwrap();
    let p = Running::start_at(log.clone(), db, dir, Duration::from_millis(100)).await;

    // when the projector tries to write, while more events arrive
    eventually(
        Duration::from_secs(10),
        "storage fault reported",
        || async { p.status().await["fault"]["code"] == "storage_failed" },
    )
    .await;
    for n in 40..60 {
        schedule(log.as_ref(), n).await;
    }

    // then it says why, skips nothing, makes no dead letter, and keeps running
    let status = p.status().await;
    assert!(
        status["fault"]["detail"]
            .as_str()
            .unwrap()
            .contains("SQLITE_BUSY"),
        "{status}"
    );
    assert_eq!(status["position"], 0);
    assert_eq!(status["dead_letters"], 0);
    assert!(!p.task.is_finished(), "the projection keeps retrying");

    // and once the database is writable again it catches up exactly
    side.execute_batch("ROLLBACK").unwrap();
    let h = head(log.as_ref()).await;
    assert!(p.projector.wait_for(h, Duration::from_secs(10)).await);
    assert_eq!(p.scheduled().await, 60);
    let status = p.status().await;
    assert_eq!(status["dead_letters"], 0);
    assert!(status["fault"].is_null(), "{status}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_do_not_wait_behind_a_blocked_projection_write() {
    // given a caught-up projector whose writer is held by a write blocked on a lock
    // another connection holds, with the next batch waiting behind it
    let log = Arc::new(InMemoryLog::new());
    for n in 0..10 {
        schedule(log.as_ref(), n).await;
    }
    let p = Running::start(log.clone(), Duration::from_secs(3600)).await;
    assert!(p.projector.wait_for(10, Duration::from_secs(10)).await);
    let side = p.side_connection();
    side.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (writing, is_writing) = std::sync::mpsc::channel();
    let projector = p.projector.clone();
    let blocked = tokio::spawn(async move {
        projector
            .with_store(move |s| {
                writing.send(()).unwrap();
                // A write of what is there (waits for the side connection's lock).
                let same = s.log_identity()?.unwrap_or_default();
                s.set_log_identity(&same)
            })
            .await
    });
    tokio::task::spawn_blocking(move || is_writing.recv().unwrap())
        .await
        .unwrap();
    schedule(log.as_ref(), 10).await;

    // when a query comes, then it answers from the committed model while the write is
    // still blocked (a query on the writer would wait for it, and the lock is released
    // only after the answer: the bound below is only a failure detector)
    let answered = tokio::time::timeout(Duration::from_secs(60), p.scheduled()).await;
    assert_eq!(answered.expect("the query waited for the writer"), 10);
    assert!(!blocked.is_finished(), "the write was still blocked");
    side.execute_batch("ROLLBACK").unwrap();
    blocked.await.unwrap().unwrap();
    assert!(p.projector.wait_for(11, Duration::from_secs(10)).await);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_rebuild_keeps_the_process_and_the_old_model() {
    // given a caught-up projector and a database locked by someone else
    let log = Arc::new(InMemoryLog::new());
    for n in 0..12 {
        schedule(log.as_ref(), n).await;
    }
    let p = Running::start(log.clone(), Duration::from_millis(100)).await;
    assert!(p.projector.wait_for(12, Duration::from_secs(10)).await);
    let side = p.side_connection();
    side.execute_batch("BEGIN IMMEDIATE").unwrap();

    // when a rebuild is asked for
    let err = p.projector.request_rebuild().await.unwrap_err();

    // then it fails, says so, and the process and the old figures stay
    assert!(err.to_string().contains("rebuild failed"), "{err}");
    let status = p.status().await;
    assert_eq!(status["fault"]["code"], "rebuild_failed", "{status}");
    assert_eq!(status["rebuilding"], false);
    assert_eq!(status["position"], 12);
    assert_eq!(p.scheduled().await, 12);
    assert!(!p.task.is_finished(), "the projection is still running");

    // and once the database is free the rebuild can be asked again and completes
    side.execute_batch("ROLLBACK").unwrap();
    assert_eq!(p.projector.request_rebuild().await.unwrap(), 12);
    eventually(Duration::from_secs(10), "rebuild complete", || async {
        p.status().await["last_rebuild"]["completed"] == true
    })
    .await;
    let status = p.status().await;
    assert!(status["fault"].is_null(), "{status}");
    assert_eq!(status["last_rebuild"]["replayed"], 12);
    assert_eq!(p.scheduled().await, 12);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rebuild_queries_wait_or_say_rebuilding_never_partial_figures() {
    // given a caught-up projector whose replay will be held back
    let log = TestLog::new();
    for n in 0..20 {
        schedule(log.as_ref(), n).await;
    }
    let p = Running::start(log.clone(), Duration::from_millis(100)).await;
    assert!(p.projector.wait_for(20, Duration::from_secs(10)).await);
    assert_eq!(p.status().await["rebuilds"], 0);
    log.hold(true);

    // when a rebuild drops the read models and has not replayed yet
    assert_eq!(p.projector.request_rebuild().await.unwrap(), 20);

    // then a query answers `rebuilding`, not empty figures, and the status says so
    let s = p.ask("province_summary", json!({ "term": TERM })).await;
    assert_eq!(s["error"]["code"], "rebuilding", "{s}");
    let t = p.ask("timeline", json!({ "unit": "long-xuyen" })).await;
    assert_eq!(t["error"]["code"], "rebuilding", "{t}");
    let status = p.status().await;
    assert_eq!(status["rebuilding"], true);
    assert_eq!(status["rebuilds"], 1);
    assert_eq!(status["position"], 0, "the read models were dropped");

    // and once the replay runs, the same query answers the whole figures
    log.hold(false);
    eventually(Duration::from_secs(10), "rebuild complete", || async {
        p.status().await["rebuilding"] == false
    })
    .await;
    assert_eq!(p.scheduled().await, 20);
    let status = p.status().await;
    assert_eq!(status["last_rebuild"]["generation"], 1);
    assert_eq!(status["last_rebuild"]["replayed"], 20);
    assert_eq!(status["position"], 20);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_log_stops_the_projection_until_a_rebuild_adopts_it() {
    let log = TestLog::new();
    let p = stopped_by_a_replaced_log(&log).await;
    let r = p.ask("redrive", json!({ "position": "1:0" })).await;
    assert_eq!(r["error"]["code"], "log_replaced", "{r}");

    // and a rebuild adopts the new log
    assert_eq!(p.projector.request_rebuild().await.unwrap(), 8);
    eventually(Duration::from_secs(10), "rebuilt from B", || async {
        let s = p.status().await;
        s["rebuilding"] == false && s["position"] == 8 && s["fault"].is_null()
    })
    .await;
    assert_eq!(p.status().await["log_identity"], "log-b");
    assert_eq!(p.scheduled().await, 8);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_redriven_once_its_cause_is_fixed() {
    // given a read model someone broke: a row in the way of the log's first event
    let log = Arc::new(InMemoryLog::new());
    let id = schedule(log.as_ref(), 0).await;
    schedule(log.as_ref(), 1).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("projector.sqlite");
    drop(projector::Store::open(&db, province()).unwrap());
    let side = rusqlite::Connection::open(&db).unwrap();
    side.execute(
        "INSERT INTO inspections (office, inspection_id, term, unit, kind, category, coordinating_body, status, decided_on)
         VALUES ('province', ?1, '2015-2020', 'tri-ton', 'inspection', 'regular', 'x', 'scheduled', '2016-01-01')",
        [id.to_string()],
    )
    .unwrap();
    let p = Running::start_at(log.clone(), db, dir, Duration::from_millis(100)).await;
    assert!(p.projector.wait_for(2, Duration::from_secs(10)).await);
    let status = p.status().await;
    assert_eq!(status["dead_letters"], 1, "{status}");

    // when it is re-driven before the cause is fixed, then it still fails, with why
    assert!(matches!(
        p.projector.redrive(EventPosition { commit: 1, index: 0 }).await.unwrap(),
        Redrive::StillFailing(reason) if reason.contains("cannot be inserted")
    ));

    // when the cause is fixed and it is re-driven
    side.execute("DELETE FROM inspections WHERE term = '2015-2020'", [])
        .unwrap();
    let answer = p.ask("redrive", json!({ "position": "1:0" })).await;

    // then the event is applied, the dead letter is gone, the checkpoint did not move
    assert_eq!(answer["ok"]["applied"], true, "{answer}");
    assert_eq!(p.scheduled().await, 2);
    let status = p.status().await;
    assert_eq!(status["dead_letters"], 0);
    assert_eq!(status["position"], 2);
    let again = p.ask("redrive", json!({ "position": "1:0" })).await;
    assert_eq!(again["error"]["code"], "unknown_dead_letter", "{again}");
    let bad = p.ask("redrive", json!({ "position": "one" })).await;
    assert_eq!(bad["error"]["code"], "invalid_cursor", "{bad}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_interrupted_by_a_restart_is_still_reported_until_it_completes() {
    // given a rebuild whose replay is held back, and the projector stopped meanwhile
    let log = TestLog::new();
    for n in 0..15 {
        schedule(log.as_ref(), n).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("projector.sqlite");
    let first = tempfile::tempdir().unwrap();
    let p = Running::start_at(log.clone(), db.clone(), first, Duration::from_millis(100)).await;
    assert!(p.projector.wait_for(15, Duration::from_secs(10)).await);
    log.hold(true);
    assert_eq!(p.projector.request_rebuild().await.unwrap(), 15);
    p.stop.send_replace(true);
    p.task.abort();

    // when a projector starts again on that database
    let p = Running::start_at(log.clone(), db, dir, Duration::from_millis(100)).await;

    // then it still says the model is being rebuilt, and queries do not take it as whole
    let status = p.status().await;
    assert_eq!(status["rebuilding"], true, "{status}");
    assert_eq!(status["rebuilds"], 1);
    let s = p.ask("province_summary", json!({ "term": TERM })).await;
    assert_eq!(s["error"]["code"], "rebuilding", "{s}");

    // and once the replay runs it completes, and stays complete
    log.hold(false);
    eventually(Duration::from_secs(10), "rebuild complete", || async {
        p.status().await["last_rebuild"]["completed"] == true
    })
    .await;
    assert_eq!(p.scheduled().await, 15);
    let status = p.status().await;
    assert_eq!(status["rebuilding"], false);
    assert_eq!(status["last_rebuild"]["replayed"], 15);
    p.stop().await;
}

/// The query indexes of the projector's database.
fn indexes(conn: &rusqlite::Connection) -> Vec<String> {
    let mut names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names.sort();
    names
}

const QUERY_INDEXES: [&str; 7] = [
    "analytics_events_date",
    "analytics_events_recorded",
    "analytics_events_term",
    "discipline_term_unit",
    "exchanges_term_unit",
    "inspections_term_unit",
    "timeline_unit",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_read_models_get_their_query_indexes_once_caught_up_and_a_rebuild_again() {
    // given a log of 300 events and a projector on a new database
    let log = Arc::new(InMemoryLog::new());
    for n in 0..300 {
        schedule(log.as_ref(), n).await;
    }
    let (dir, db, side) = created_db();
    assert_eq!(indexes(&side), Vec::<String>::new(), "empty: none yet");
    let p = Running::start_at(log.clone(), db, dir, Duration::from_secs(30)).await;

    // when it has caught up
    assert!(p.projector.wait_for(300, Duration::from_secs(10)).await);

    // then every query index is there by the time it says so, and the figures agree
    assert_eq!(indexes(&side), QUERY_INDEXES);
    assert_eq!(p.scheduled().await, 300);

    // and a rebuild, which empties the read models, ends with them again
    assert_eq!(p.projector.request_rebuild().await.unwrap(), 300);
    eventually(Duration::from_secs(10), "rebuild complete", || async {
        p.status().await["last_rebuild"]["completed"] == true
    })
    .await;
    assert_eq!(indexes(&side), QUERY_INDEXES);
    assert_eq!(p.scheduled().await, 300);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_that_fails_when_its_log_is_replaced_applies_nothing_of_the_new_log() {
    // (the subscription ends with an error at the switch, as JetStream's does when its
    // ordered consumer is created again on the new stream: the projector subscribes
    // again, and checks the log's identity first)
    let p = stopped_by_a_replaced_log(&TestLog::with(true)).await;
    p.stop().await;
}

/// Given a projector caught up with log A (5 entries), when A is replaced by a log B
/// with more entries (8), then it stops where it was and says why: nothing of B is
/// applied.
async fn stopped_by_a_replaced_log(log: &Arc<TestLog>) -> Running {
    for n in 0..5 {
        schedule(log.as_ref(), n).await;
    }
    let p = Running::start(log.clone(), Duration::from_millis(100)).await;
    assert!(p.projector.wait_for(5, Duration::from_secs(10)).await);
    assert_eq!(p.status().await["log_identity"], "log-a");

    log.replace("log-b");
    for n in 0..8 {
        schedule(log.as_ref(), n).await;
    }

    eventually(Duration::from_secs(10), "log_replaced reported", || async {
        p.status().await["fault"]["code"] == "log_replaced"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = p.status().await;
    assert_eq!(status["position"], 5, "{status}");
    assert_eq!(p.scheduled().await, 5);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_heavy_traffic_a_batch_waits_for_more_and_the_first_does_not() {
    // given a backlog of eight events, and a projector that lingers a minute for
    // batches of eight after a batch of eight or more (its threshold)
    let log = Arc::new(InMemoryLog::new());
    for n in 0..8 {
        schedule(log.as_ref(), n).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("projector.sqlite");
    let batching = Batching {
        size: 8,
        linger: Duration::from_secs(60),
    };
    let p = Running::start_batching(log.clone(), db, dir, Duration::from_secs(5), batching).await;
    let projector = p.projector.clone();
    let (seen_tx, seen) = std::sync::mpsc::channel();
    let watcher = tokio::spawn(async move {
        let mut last = 0;
        while last < 16 {
            let now = projector.position();
            if now != last {
                seen_tx.send(now).unwrap();
                last = now;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });

    // when it starts, then the first batch (the eight events) is applied without the
    // linger
    assert!(
        p.projector.wait_for(8, Duration::from_secs(20)).await,
        "the first batch waited for the linger"
    );

    // when eight more events follow, 20 ms apart, then they are applied as one batch,
    // the first of them waiting for the others
    for n in 8..16 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        schedule(log.as_ref(), n).await;
    }
    assert!(p.projector.wait_for(16, Duration::from_secs(20)).await);
    watcher.await.unwrap();
    let positions: Vec<u64> = seen.try_iter().collect();
    assert_eq!(positions, [8, 16], "positions the projector told, in order");
    assert_eq!(p.scheduled().await, 16);
    p.stop().await;
}
