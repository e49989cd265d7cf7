//! Exports cut short (issue 19): `coordctl export events` sees the export as
//! incomplete, keeps what is complete, resumes after the last complete commit, and the
//! file holds every event of the log once, in log order. Two cuts:
//!
//! - the gateway killed mid-transfer (the chunked response ends without its final
//!   chunk, possibly inside a commit): coordctl drops the lines of the commit it may not
//!   have whole;
//! - the log failing under the gateway mid-export (nats-server killed): the gateway
//!   waits for the log up to its request deadline, then ends the body with an error
//!   record naming the last commit sent whole, and aborts the transfer; coordctl
//!   resumes after that commit once nats-server is back.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{Stack, workspace_bin};

const EVENTS: usize = 20_000;

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_cut_short_is_seen_as_incomplete_and_resumed_without_a_gap() {
    let mut stack = Stack::start();
    stack.wait_ready().await;
    stack.fill_inspections(EVENTS).await;
    let file = stack.data.path().join("events.ndjson");

    // Given coordctl exporting the whole log, paused once the first bytes arrived.
    let export = paused_export(&stack, &file);

    // When the gateway dies mid-transfer (the response ends without its final chunk,
    // possibly inside a commit) and is started again, then coordctl reads on.
    stack.process("gateway").kill();
    stack.processes.retain(|p| p.name != "gateway");
    let importer = stack.nats.creds_file("importer").display().to_string();
    let gateway = stack.spawn("gateway", &[("COORD_IMPORT_NATS_CREDS", &importer)]);
    stack.processes.push(gateway);
    stack.wait_ready().await;
    signal(export.id(), "-CONT");
    let out = tokio::task::spawn_blocking(move || export.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");

    // Then it was seen as cut, resumed, and the file has every event once, in order.
    assert!(stderr.contains("xuất bị cắt"), "never cut: {stderr}");
    assert_every_event_once(&file, &stderr);
}

/// The export file holds every one of the `EVENTS` events once, in log order, and no
/// error record.
fn assert_every_event_once(file: &std::path::Path, stderr: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut ids = HashSet::new();
    let mut last = (0u64, 0u64);
    for line in text.lines() {
        let ce: Value = serde_json::from_str(line).unwrap();
        assert!(
            ce.get("error").is_none(),
            "an error record was kept: {line}"
        );
        let (c, i) = ce["position"].as_str().unwrap().split_once(':').unwrap();
        let position = (c.parse().unwrap(), i.parse().unwrap());
        assert!(position > last, "{position:?} after {last:?}");
        last = position;
        assert!(ids.insert(ce["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(ids.len(), EVENTS, "{stderr}");
}

/// `coordctl export events` into `file`, started and paused (SIGSTOP) once the first
/// bytes arrived: the gateway is mid-export, held by the client.
fn paused_export(stack: &Stack, file: &std::path::Path) -> std::process::Child {
    let export = Command::new(workspace_bin("coordctl"))
        .args(["--gateway", &stack.gateway_url, "export", "events", "--out"])
        .arg(file)
        .env("COORD_TOKEN", stack.token("province"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(file).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "the export never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(export.id(), "-STOP");
    export
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_cut_by_a_log_error_is_seen_as_incomplete_and_resumed_without_a_gap() {
    let mut stack = Stack::start();
    stack.wait_ready().await;
    stack.fill_inspections(EVENTS).await;
    // A gateway that gives up on a silent log after 1.5 s (its request deadline).
    stack.process("gateway").kill();
    stack.processes.retain(|p| p.name != "gateway");
    let gateway = stack.spawn("gateway", &[("COORD_GATEWAY_TIMEOUT_MS", "1500")]);
    stack.processes.push(gateway);
    stack.wait_ready().await;
    let file = stack.data.path().join("events.ndjson");

    // Given coordctl mid-export, when nats-server dies under the gateway.
    let mut export = paused_export(&stack, &file);
    stack.nats.stop();
    signal(export.id(), "-CONT");

    // Then coordctl hears the gateway's error record; nats-server comes back once it has.
    let stderr = export.stderr.take().unwrap();
    let (cut_tx, cut_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap();
            if line.contains("xuất bị cắt") {
                let _ = cut_tx.send(());
            }
            text += &line;
            text.push('\n');
        }
        text
    });
    let heard = cut_rx.recv_timeout(Duration::from_secs(60));
    stack.nats.start_again();
    assert!(heard.is_ok(), "coordctl never saw the export cut");
    let pid = export.id();
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = export.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = export.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let stderr = reader.join().unwrap();
    let status = status.unwrap_or_else(|| panic!("coordctl {pid} never finished: {stderr}"));
    assert!(status.success(), "{stderr}");

    // The cut was the log's, said by the gateway's error record; the file has no gap.
    assert!(
        stderr.contains("the log gave nothing"),
        "not cut by the log error: {stderr}"
    );
    assert_every_event_once(&file, &stderr);
}

// Not a cut: a log whose last commit is unreadable (garbage an admin put on a log
// subject, with a header claiming three events) is exported whole. The events export
// skips it, as the projector does, and ends; the audit export lists it as unreadable
// and ends (both waited for the rest of that commit, or stopped as incomplete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_last_commit_is_unreadable_ends_complete() {
    let mut stack = Stack::start();
    let dir = stack.data.path().join("auditor").display().to_string();
    let auditor = stack.spawn("auditor", &[("COORD_AUDIT_DIR", dir.as_str())]);
    stack.processes.push(auditor);
    stack.wait_ready().await;
    stack.fill_inspections(30).await;
    let js = async_nats::jetstream::new(stack.nats.admin_client().await);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Coord-Event-Count", "3");
    js.publish_with_headers(
        format!("coord.log.province.inspection.{}", uuid::Uuid::now_v7()),
        headers,
        "not json".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let http = stack.http();
    // A 503 (the auditor not answering yet, on a busy machine) is asked again, as a
    // client would; anything else is the answer.
    let get = |path: &'static str| {
        let (http, url) = (http.clone(), format!("{}{path}", stack.gateway_url));
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let response = loop {
                let response = http.get(&url).send().await.unwrap();
                if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE
                    || Instant::now() > deadline
                {
                    break response;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            tokio::time::timeout(Duration::from_secs(30), response.text())
                .await
                .unwrap_or_else(|_| panic!("{path}: the export never ended"))
                .unwrap()
        }
    };

    let events = get("/v1/export/events").await;
    let lines: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().all(|l| l.get("error").is_none()), "{events}");
    assert_eq!(lines.len(), 30);

    let audit = get("/v1/audit/export").await;
    assert!(audit.lines().count() > 30, "{audit}");
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "unreadable", "{last}");
    assert_eq!(last["position"]["commit"], 31, "{last}");
    let events = audit
        .lines()
        .filter(|l| l.contains(r#""kind":"event""#))
        .count();
    assert_eq!(events, 30);
}
