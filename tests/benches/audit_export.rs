//! The audit trail and the analytics feed at a million events (issue 19), with the real
//! processes (nats-server, projector, auditor, gateway, `coordctl`):
//!
//! - `coordctl audit verify` (online: the log, leaves and checkpoints downloaded from the
//!   gateway, every signature and consistency checked): events/s;
//! - `GET /v1/export/events?format=csv|parquet` read to its end: rows/s, and the
//!   gateway's peak RSS during each export (`VmHWM`, reset before each) at
//!   `BENCH_SMALL_EVENTS` and at `BENCH_EVENTS` events: the same peak at both sizes
//!   shows memory does not grow with the row count;
//! - `as_of` (`GET /v1/analytics/province?as_of=`) at moments with a tenth of
//!   `BENCH_SMALL_EVENTS` and with `BENCH_SMALL_EVENTS` events recorded before them:
//!   seconds, and the cost per event.
//!
//! Run (release, the services too):
//! `cargo build --release -p gateway -p projector -p auditor -p coordctl -p inspection -p exchange -p discipline && cargo bench -p tests --bench audit_export`.
//! Sizes: `BENCH_EVENTS` (default 1,000,000), `BENCH_SMALL_EVENTS` (100,000). Writes
//! `tests/bench-results/audit_export.json`.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tests::{ServiceProcess, Stack, peak_rss_kib, workspace_bin};

fn env_size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resets the peak RSS of `pid` (`VmHWM`) to its current RSS.
fn reset_peak_rss(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("clear_refs");
}

/// Waits until the projector has applied every commit up to `head`.
async fn wait_projected(stack: &Stack, head: u64) {
    let http = stack.http();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let p: Value = match http
            .get(format!("{}/v1/projector", stack.gateway_url))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if p["position"].as_u64().unwrap_or(0) >= head {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the projector never caught up: {p}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the auditor signed a checkpoint of `size` leaves.
async fn wait_signed(stack: &Stack, size: u64) {
    let http = stack.http();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while tests::checkpoint_size(&http, &stack.gateway_url).await < size {
        assert!(Instant::now() < deadline, "the auditor never signed {size}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One table export of the first `until` commits, read to its end: rows/s and the
/// gateway's peak RSS.
async fn export(stack: &mut Stack, format: &str, until: usize) -> Value {
    let pid = stack.process("gateway").pid();
    reset_peak_rss(pid);
    let before = peak_rss_kib(pid).unwrap_or(0);
    let start = Instant::now();
    let response = stack
        .http()
        .get(format!(
            "{}/v1/export/events?format={format}&until={until}",
            stack.gateway_url
        ))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let mut body = response.bytes_stream();
    let mut bytes = 0usize;
    let mut tail = bytes::Bytes::new();
    while let Some(chunk) = body.next().await {
        tail = chunk.expect("the export ends whole");
        bytes += tail.len();
    }
    let seconds = start.elapsed().as_secs_f64();
    if format == "parquet" {
        assert!(tail.ends_with(b"PAR1"), "a whole Parquet file");
    }
    let peak = peak_rss_kib(pid).unwrap_or(0);
    println!(
        "export {format} {until}: {:.0} rows/s, {} MiB, gateway peak RSS {} MiB",
        until as f64 / seconds,
        bytes >> 20,
        peak >> 10
    );
    json!({"rows": until, "bytes": bytes, "seconds": seconds,
        "rows_per_s": (until as f64 / seconds).round(),
        "gateway_rss_before_mib": before >> 10, "gateway_peak_rss_mib": peak >> 10})
}

/// `as_of` at `moment`, with `events` recorded before it.
async fn as_of(stack: &Stack, moment: &str, events: usize) -> Value {
    let start = Instant::now();
    let r = stack
        .http()
        .get(format!("{}/v1/analytics/province", stack.gateway_url))
        .query(&[("as_of", moment)])
        .send()
        .await
        .unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    println!("as_of over {events} events: {seconds:.2} s");
    json!({"events_before": events, "seconds": seconds,
        "us_per_event": seconds * 1e6 / events as f64})
}

/// `coordctl audit verify` over the whole log: events/s.
fn verify(stack: &Stack, events: usize) -> Value {
    let start = Instant::now();
    let out = std::process::Command::new(workspace_bin("coordctl"))
        .args(["--gateway", &stack.gateway_url, "audit", "verify"])
        .env("COORD_TOKEN", stack.token("province"))
        .env("COORD_AUDIT_TRUST", stack.data.path().join("trust.keys"))
        .output()
        .unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    println!(
        "audit verify {events}: {:.0} events/s",
        events as f64 / seconds
    );
    json!({"events": events, "seconds": seconds,
        "events_per_s": (events as f64 / seconds).round()})
}

#[tokio::main]
async fn main() {
    let big = env_size("BENCH_EVENTS", 1_000_000);
    let small = env_size("BENCH_SMALL_EVENTS", 100_000);
    let mut stack = Stack::start();
    let audit_dir = stack.data.path().join("auditor").display().to_string();
    let auditor: ServiceProcess =
        stack.spawn("auditor", &[("COORD_AUDIT_DIR", audit_dir.as_str())]);
    stack.processes.push(auditor);
    stack.wait_ready().await;

    // The log: a tenth of `small`, a moment, the rest of `small`, a moment, up to `big`.
    let js = async_nats::jetstream::new(stack.nats.admin_client().await);
    let fill = Instant::now();
    let mut moments = Vec::new();
    for (from, to) in [(0, small / 10), (small / 10, small), (small, big)] {
        tests::publish_inspections(&js, from..to).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        moments.push((chrono::Utc::now().to_rfc3339(), to));
    }
    println!(
        "{big} events published in {:.1} s",
        fill.elapsed().as_secs_f64()
    );
    wait_projected(&stack, big as u64).await;
    println!("projected after {:.1} s", fill.elapsed().as_secs_f64());

    let mut exports = serde_json::Map::new();
    for format in ["csv", "parquet"] {
        let at_small = export(&mut stack, format, small).await;
        let at_big = export(&mut stack, format, big).await;
        exports.insert(format.into(), json!({"small": at_small, "big": at_big}));
    }
    let as_of_small = as_of(&stack, &moments[0].0, moments[0].1).await;
    let as_of_big = as_of(&stack, &moments[1].0, moments[1].1).await;

    wait_signed(&stack, big as u64).await;
    println!("signed after {:.1} s", fill.elapsed().as_secs_f64());
    let verify = verify(&stack, big);

    let results = json!({
        "benchmark": "audit_export",
        "measured_at": chrono::Utc::now().to_rfc3339(),
        "profile": if cfg!(debug_assertions) { "dev (a quick run: `cargo test -p tests --bench audit_export`)" } else { "release (services, coordctl and the benchmark)" },
        "machine_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "machine_note": "2 cores shared with other builds; absolute figures move between machines",
        "events": big,
        "audit_verify_online": verify,
        "export": Value::Object(exports),
        "as_of": [as_of_small, as_of_big],
    });
    let out = tests::workspace_root().join("tests/bench-results");
    std::fs::create_dir_all(&out).unwrap();
    let text = serde_json::to_string_pretty(&results).unwrap();
    std::fs::write(out.join("audit_export.json"), text + "\n").unwrap();
}
