//! The projector as a real process, against a real nats-server and the gateway: a
//! database it cannot write under load, a log entry that is not a commit, and a log
//! deleted and created again. It never skips an event and always says why it stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::{EventLog, ExpectedVersion};
use reqwest::StatusCode;
use serde_json::Value;
use tests::Stack;

/// A stack whose projector waits at most 200 ms for a database lock.
async fn stack() -> (Stack, tests::ServiceProcess) {
    let mut stack = Stack::start();
    stack.process("projector").kill();
    let projector = stack.spawn("projector", &[("COORD_PROJECTOR_BUSY_TIMEOUT_MS", "200")]);
    stack.wait_ready().await;
    (stack, projector)
}

/// The log as the NATS admin sees it (the test sets it up and breaks it).
async fn log(stack: &Stack) -> Arc<JetStreamLog> {
    let nats = stack.nats.admin_client().await;
    Arc::new(
        JetStreamLog::open(nats, JetStreamConfig::default())
            .await
            .unwrap(),
    )
}

/// Appends `n` valid inspections from `from` on, by four writers at once.
async fn append(log: &Arc<JetStreamLog>, from: usize, n: usize) {
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in (from + w..from + n).step_by(4) {
                    let (stream, event) = tests::inspection_scheduled(i);
                    log.append(&stream, ExpectedVersion::NoStream, vec![event])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
}

async fn get(http: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let r = http.get(&url).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn post(http: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let r = http.post(&url).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

/// Polls the projector status until `done` holds (at most 30 s).
async fn projector_until(
    http: &reqwest::Client,
    base: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, p) = get(http, format!("{base}/v1/projector")).await;
        if status.is_success() && done(&p) {
            return p;
        }
        assert!(Instant::now() < deadline, "{what}: last status {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scheduled(http: &reqwest::Client, base: &str, min_position: u64) -> Value {
    let (status, s) = get(
        http,
        format!(
            "{base}/v1/status/province?term=2020-2025&min_position={min_position}&wait_ms=20000"
        ),
    )
    .await;
    assert!(status.is_success(), "{s}");
    s
}

/// How a test makes the read-model database unwritable, and undoes it.
enum Unwritable {
    /// Another process holds the write lock (`BEGIN IMMEDIATE`): SQLITE_BUSY.
    Locked(rusqlite::Connection),
    /// The files are made read-only with the immutable attribute (`chattr +i`), which
    /// binds root too and applies to files already open, unlike permission bits (the
    /// tests run as root). Writes fail with SQLITE_IOERR or SQLITE_READONLY.
    ReadOnly(Vec<std::path::PathBuf>),
}

fn chattr(flag: &str, files: &[std::path::PathBuf]) {
    let status = std::process::Command::new("chattr")
        .arg(flag)
        .args(files)
        .status()
        .expect("chattr (e2fsprogs) runs");
    assert!(
        status.success(),
        "chattr {flag} failed: this test needs a filesystem with the immutable attribute (ext4, xfs, btrfs) under the temporary directory"
    );
}

impl Unwritable {
    fn lock(db: &std::path::Path) -> Self {
        let blocker = rusqlite::Connection::open(db).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        Self::Locked(blocker)
    }

    fn read_only(db: &std::path::Path) -> Self {
        let files: Vec<_> = ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| std::path::PathBuf::from(format!("{}{suffix}", db.display())))
            .filter(|f| f.exists())
            .collect();
        chattr("+i", &files);
        Self::ReadOnly(files)
    }

    fn restore(self) {
        match &self {
            Self::Locked(blocker) => blocker.execute_batch("ROLLBACK").unwrap(),
            Self::ReadOnly(files) => chattr("-i", files),
        }
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        // A failed assertion must not leave undeletable files in the temporary folder.
        if let Self::ReadOnly(files) = self {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .args(files.iter())
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_whose_database_is_locked_under_load_is_not_ready_skips_nothing_and_catches_up_exactly()
 {
    unwritable_under_load(Unwritable::lock, "SQLITE_BUSY").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_whose_database_is_made_read_only_under_load_is_not_ready_skips_nothing_and_catches_up_exactly()
 {
    unwritable_under_load(Unwritable::read_only, "SQLITE_").await;
}

async fn unwritable_under_load(make: fn(&std::path::Path) -> Unwritable, names: &str) {
    // given a running stack, caught up with 200 events
    let (stack, _projector) = stack().await;
    let base = stack.gateway_url.clone();
    let http = stack.http();
    let log = log(&stack).await;
    append(&log, 0, 200).await;
    let caught_up = log.head().await.unwrap().unwrap().commit;
    projector_until(&http, &base, "caught up", |p| p["position"] == caught_up).await;

    // when the database becomes unwritable while 400 more arrive
    let db = stack.data.path().join("projector.sqlite");
    let unwritable = make(&db);
    let load = tokio::spawn({
        let log = log.clone();
        async move { append(&log, 200, 400).await }
    });

    // then the projector says why it stopped, where, and makes no dead letter
    let stalled = projector_until(&http, &base, "storage fault reported", |p| {
        p["fault"]["code"] == "storage_failed"
    })
    .await;
    assert!(
        stalled["fault"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(names)),
        "{stalled}"
    );
    let (status, problem) = get(&http, format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["code"], "projector_storage_failed", "{problem}");
    load.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, p) = get(&http, format!("{base}/v1/projector")).await;
    assert_eq!(
        p["position"], caught_up,
        "nothing applied while unwritable: {p}"
    );
    assert_eq!(p["dead_letters"], 0);
    assert!(p["lag"].as_u64().unwrap() > 0);

    // and once the database is writable again it catches up, each event once
    unwritable.restore();
    let head = log.head().await.unwrap().unwrap().commit;
    let s = scheduled(&http, &base, head).await;
    assert_eq!(s["position"], head);
    assert_eq!(
        s["inspections"]["scheduled"], 600,
        "every event exactly once"
    );
    assert_eq!(s["dead_letters"], 0);
    stack.wait_ready().await;
    let (_, p) = get(&http, format!("{base}/v1/projector")).await;
    assert!(p["fault"].is_null(), "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_is_not_a_commit_is_dead_lettered_with_its_position_and_cannot_be_redriven() {
    // given a stack, and two messages put on log subjects by something else
    let (stack, _projector) = stack().await;
    let base = stack.gateway_url.clone();
    let http = stack.http();
    let js = async_nats::jetstream::new(stack.nats.admin_client().await);
    let stream = uuid::Uuid::now_v7();
    let mut positions = Vec::new();
    for body in ["{not an envelope", r#"{"events":[]}"#] {
        let ack = js
            .publish(format!("coord.log.inspection.{stream}"), body.into())
            .await
            .unwrap()
            .await
            .unwrap();
        positions.push(format!("{}:0", ack.sequence));
    }
    // and a valid event after them
    let log = log(&stack).await;
    append(&log, 0, 1).await;
    let head = log.head().await.unwrap().unwrap().commit;

    // then the projector went on, and each bad entry is a dead letter at its position
    let s = scheduled(&http, &base, head).await;
    assert_eq!(s["inspections"]["scheduled"], 1);
    assert_eq!(s["dead_letters"], 2);
    let (_, letters) = get(&http, format!("{base}/v1/dead-letters")).await;
    for (position, why) in positions
        .iter()
        .zip(["not a valid envelope", "holds no events"])
    {
        let letter = letters
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["position"] == position.as_str())
            .unwrap_or_else(|| panic!("no dead letter at {position}: {letters}"));
        assert!(letter["reason"].as_str().unwrap().contains(why), "{letter}");
    }

    // and a reader may not re-drive it (an operation, like a rebuild)
    let reader = stack.sign("province", "thanh tra viên", coord_auth::Role::Reader);
    let (status, problem) = post(
        &stack.http_with(&reader),
        format!("{base}/v1/dead-letters/{}/redrive", positions[0]),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "role_cannot_operate");

    // nor may an operator: only an admin of the site's office
    let (status, problem) = post(
        &http,
        format!("{base}/v1/dead-letters/{}/redrive", positions[0]),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["code"], "role_cannot_operate");

    // and re-driving it says it still cannot be applied; an unknown one is 404
    let admin = stack.admin_http();
    let (status, problem) = post(
        &admin,
        format!("{base}/v1/dead-letters/{}/redrive", positions[0]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "dead_letter_still_failing");
    let cli = coordctl::Cli {
        gateway: base.clone(),
        token: None,
        credentials: stack.credentials_dir(),
        site: "province".into(),
        json: true,
        command: coordctl::Command::Redrive {
            position: positions[1].clone(),
        },
    };
    let err = coordctl::run(cli).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("still cannot be applied"),
        "coordctl redrive says why: {err:#}"
    );
    let (status, problem) = post(&admin, format!("{base}/v1/dead-letters/{head}:0/redrive")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(problem["code"], "unknown_dead_letter");
    let (status, problem) = post(&admin, format!("{base}/v1/dead-letters/x/redrive")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["code"], "invalid_cursor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_deleted_and_created_again_stops_the_projector_until_a_rebuild() {
    // given a stack caught up with 5 events
    let (stack, _projector) = stack().await;
    let base = stack.gateway_url.clone();
    let http = stack.http();
    let old = log(&stack).await;
    append(&old, 0, 5).await;
    let p = projector_until(&http, &base, "caught up", |p| p["position"] == 5).await;
    let identity = p["log_identity"].as_str().unwrap().to_owned();

    // when the log stream is deleted and created again, and 8 events are appended
    async_nats::jetstream::new(stack.nats.admin_client().await)
        .delete_stream("COORD_LOG")
        .await
        .unwrap();
    let new = log(&stack).await;
    append(&new, 100, 8).await;

    // then the projector stops where it was and says why; nothing of the new log counts
    let p = projector_until(&http, &base, "log_replaced reported", |p| {
        p["fault"]["code"] == "log_replaced"
    })
    .await;
    assert_eq!(p["position"], 5, "{p}");
    assert_eq!(p["log_identity"], identity.as_str());
    let (status, problem) = get(&http, format!("{base}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["code"], "projector_log_replaced", "{problem}");
    let s = scheduled(&http, &base, 0).await;
    assert_eq!(s["inspections"]["scheduled"], 5);

    // and a rebuild adopts the new log
    let (status, _) = post(&stack.admin_http(), format!("{base}/v1/admin/rebuild")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let p = projector_until(&http, &base, "rebuilt from the new log", |p| {
        p["position"] == 8 && p["rebuilding"] == false && p["fault"].is_null()
    })
    .await;
    assert_ne!(p["log_identity"], identity.as_str());
    assert_eq!(p["last_rebuild"]["replayed"], 8);
    let s = scheduled(&http, &base, 8).await;
    assert_eq!(s["inspections"]["scheduled"], 8);
}
