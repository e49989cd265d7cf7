//! Log damage is an alarm (issue 19): one byte flipped in a stored message while the
//! servers are stopped makes nats-server drop that message; the auditor's scrub at its
//! next start finds the leaf it had applied gone and listed by
//! `GET /v1/audit/damage` with the event signed at that leaf; `coordctl audit verify`
//! names the same event (id, stream and version, type) as the one removed. The
//! restarted projector's scrub finds the event it had applied gone: `GET /v1/projector`
//! names it (`log_damage`, `alarms`), `/readyz` answers `projector_log_damaged`, the
//! metric counts it, and `coordctl rebuild` is refused (the figures stay) until asked
//! with `--accept-loss`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coord_audit::wire::{AuditPage, LogDamage};
use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::{EventLog, ExpectedVersion};
use tests::{ServiceProcess, Stack, workspace_bin};

const EVENTS: usize = 40;
/// The leaf whose message is damaged (commit 17: one event per commit).
const GONE: u64 = 16;

fn auditor(stack: &Stack, dir: &str) -> ServiceProcess {
    stack.spawn(
        "auditor",
        &[
            ("COORD_AUDIT_DIR", dir),
            ("COORD_AUDIT_CHECKPOINT_MS", "200"),
        ],
    )
}

/// Flips one byte of the stored message holding `needle` (in a `.blk` file of the log).
fn flip_a_byte_of(store: &Path, needle: &str) {
    let mut dirs = vec![store.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "blk") {
                let mut bytes = std::fs::read(&path).unwrap();
                let Some(at) = bytes
                    .windows(needle.len())
                    .position(|w| w == needle.as_bytes())
                else {
                    continue;
                };
                bytes[at + 4] ^= 0x01;
                std::fs::write(&path, bytes).unwrap();
                return;
            }
        }
    }
    panic!("no stored message holds {needle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_gone_from_the_log_is_an_alarm_at_the_auditor_and_named_by_verify() {
    let mut stack = Stack::start();
    let dir = stack.data.path().join("auditor").display().to_string();
    stack.processes.push(auditor(&stack, &dir));
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    let reader = stack.sign("province", "kiểm tra viên", coord_auth::Role::Reader);
    let http = stack.http_with(&reader);
    let nats = stack.nats.admin_client().await;
    let log = Arc::new(
        JetStreamLog::open(nats.clone(), JetStreamConfig::default())
            .await
            .unwrap(),
    );
    for i in 0..EVENTS {
        let (stream, event) = tests::inspection_scheduled(i);
        log.append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while tests::checkpoint_size(&http, &base).await < EVENTS as u64 {
        assert!(Instant::now() < deadline, "never signed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page: AuditPage = http
        .get(format!("{base}/v1/audit/events?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signed = page
        .events
        .iter()
        .find(|e| e.leaf_index == GONE)
        .unwrap()
        .clone();
    let damage: Vec<LogDamage> = http
        .get(format!("{base}/v1/audit/damage"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(damage.is_empty(), "{damage:?}");

    let admin = stack.admin_token();
    assert_eq!(scheduled(&http, &base).await, EVENTS as u64);

    // When one byte of that leaf's stored message is flipped while the servers are
    // stopped (nats-server then drops the message).
    for name in ["auditor", "projector"] {
        assert!(stack.process(name).terminate());
        stack.processes.retain(|p| p.name != name);
    }
    drop(log);
    stack.nats.stop();
    flip_a_byte_of(stack.nats.store_dir(), &signed.event_id.to_string());
    stack.nats.start_again();
    stack.processes.push(auditor(&stack, &dir));
    stack.processes.push(stack.spawn("projector", &[]));

    // Then the restarted auditor reports it, naming the event signed there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let damage = loop {
        let damage: Vec<LogDamage> = match http.get(format!("{base}/v1/audit/damage")).send().await
        {
            Ok(r) if r.status().is_success() => r.json().await.unwrap(),
            _ => Vec::new(),
        };
        if !damage.is_empty() {
            break damage;
        }
        assert!(Instant::now() < deadline, "no damage reported");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // (the server may drop more of the damaged block: the first is that leaf)
    let d = &damage[0];
    assert_eq!((d.leaf_index, d.event_id), (GONE, signed.event_id));
    assert_eq!(
        (d.stream_id.as_str(), d.event_type.as_str()),
        (signed.stream_id.as_str(), "InspectionScheduled")
    );

    // And the restarted projector says so, naming the event it had applied.
    projector_alarm(&http, &base, &signed.event_id.to_string()).await;
    rebuild_refused_then_accepted(&stack, &admin, &http, &base).await;

    // And verify names the same event as the one removed, not the one now in its place.
    let out = Command::new(workspace_bin("coordctl"))
        .args(["--gateway", &base, "audit", "verify"])
        .env("COORD_TOKEN", &reader)
        .env("COORD_AUDIT_TRUST", stack.data.path().join("trust.keys"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("lá (leaf) {GONE}"))
            && text.contains("Removed")
            && text.contains("đã ký tại đây")
            && text.contains(&signed.event_id.to_string())
            && text.contains("InspectionScheduled"),
        "{text}"
    );
}

async fn get(http: &reqwest::Client, url: String) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

async fn scheduled(http: &reqwest::Client, base: &str) -> u64 {
    let s = get(http, format!("{base}/v1/status/province")).await;
    s["inspections"]["scheduled"].as_u64().unwrap()
}

/// Waits (at most 30 s) for the projector to report the damage, first at `event_id`;
/// checks readiness and the metric.
async fn projector_alarm(http: &reqwest::Client, base: &str, event_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status: serde_json::Value = match http.get(format!("{base}/v1/projector")).send().await
        {
            Ok(r) if r.status().is_success() => r.json().await.unwrap(),
            _ => serde_json::Value::Null,
        };
        if status["log_damage"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
        {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no damage at the projector: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let first = &status["log_damage"][0];
    assert_eq!(first["event_id"], event_id, "{status}");
    assert_eq!(first["event_type"], "InspectionScheduled", "{status}");
    assert_eq!(first["kind"], "missing", "{status}");
    assert!(first["accepted_at"].is_null(), "{status}");
    let alarms = status["alarms"].as_array().unwrap();
    assert!(
        alarms
            .iter()
            .any(|a| a["code"] == "log_damage" && a["detail"].as_str().unwrap().contains(event_id)),
        "{status}"
    );
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert!(
        ready["down"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["code"] == "projector_log_damaged"),
        "{ready}"
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let damaged = status["log_damage"].as_array().unwrap().len();
    assert!(
        metrics.contains(&format!("coord_projector_log_damage {damaged}")),
        "{metrics}"
    );
}

/// The offline rebuild (`projector rebuild`, on a copy of the running projector's
/// database) is refused as the online one is, and rebuilds with `--accept-loss`.
fn offline_rebuild_refused_then_accepted(stack: &Stack) {
    let copy = stack.data.path().join("offline.sqlite");
    let live = rusqlite::Connection::open(stack.data.path().join("projector.sqlite")).unwrap();
    live.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    let rebuild = |extra: &[&str]| {
        let mut env = stack.env();
        env.extend(stack.nats.service_env("projector"));
        Command::new(workspace_bin("projector"))
            .arg("rebuild")
            .args(extra)
            .envs(env)
            .env("COORD_PROJECTOR_DB", &copy)
            .output()
            .unwrap()
    };
    let out = rebuild(&[]);
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("--accept-loss"), "{text}");
    let out = rebuild(&["--accept-loss"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `coordctl rebuild` is refused and changes nothing; with `--accept-loss` it rebuilds
/// without the lost events and the damage is accepted (ready again).
async fn rebuild_refused_then_accepted(
    stack: &Stack,
    admin: &str,
    http: &reqwest::Client,
    base: &str,
) {
    let rebuild = |extra: &[&str]| {
        Command::new(workspace_bin("coordctl"))
            .args(["--gateway", base, "rebuild"])
            .args(extra)
            .env("COORD_TOKEN", admin)
            .output()
            .unwrap()
    };
    offline_rebuild_refused_then_accepted(stack);
    let out = rebuild(&[]);
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("log_damaged"), "{text}");
    assert_eq!(
        scheduled(http, base).await,
        EVENTS as u64,
        "the figures stay"
    );

    let status = get(http, format!("{base}/v1/projector")).await;
    let lost = status["log_damage"].as_array().unwrap().len() as u64;
    let out = rebuild(&["--accept-loss"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(scheduled(http, base).await, EVENTS as u64 - lost);
    let status = get(http, format!("{base}/v1/projector")).await;
    assert!(
        status["log_damage"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["accepted_at"].is_string()),
        "{status}"
    );
    stack.wait_ready().await;
}
