//! The cost of strict durability (`sync_interval: always`, an fsync before every
//! acknowledgement) against JetStream's default (an fsync every 2 minutes), measured in
//! one run, on one machine, modes interleaved (default, strict, default, strict) so
//! that a noisy neighbour hits both: raw log appends (1 and 16 writers) and commands
//! through NATS to the inspection service (sequential, and 32 in flight).
//!
//! Run: `cargo build --workspace --bins && cargo bench --profile dev -p tests --bench
//! durability` (or `--release` builds of both). Writes
//! `tests/bench-results/durability.json`. The store is in the system's temporary
//! folder: it must be on a real disk (not tmpfs) for the figures to mean anything.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::sync::Arc;
use std::time::{Duration, Instant};

use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::{EventLog, ExpectedVersion};
use coord_proto::{CommandReply, command_subject};
use coordctl::durability::Durability;
use serde_json::{Value, json};
use tests::{NatsServer, ServiceProcess, request};
use uuid::Uuid;

const APPENDS: usize = 2000;
const SEQUENTIAL: usize = 300;
const CONCURRENT: usize = 32;
const PER_TASK: usize = 30;
const ROUNDS: usize = 2;

fn schedule(id: Uuid) -> Value {
    tests::schedule_payload(id, "chau-doc")
}

/// Appends per second with `writers` concurrent writers, each event a new stream.
async fn appends(log: Arc<JetStreamLog>, writers: usize, offset: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for n in (w..APPENDS).step_by(writers) {
                let (stream, event) = tests::inspection_scheduled(offset + n);
                log.append(&stream, ExpectedVersion::NoStream, vec![event])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    APPENDS as f64 / start.elapsed().as_secs_f64()
}

/// One command, acknowledged; its round trip.
async fn command(client: &async_nats::Client) -> Duration {
    let body = serde_json::to_vec(&request(schedule(Uuid::now_v7()))).unwrap();
    let start = Instant::now();
    let msg = client
        .request(command_subject("inspection", "schedule"), body.into())
        .await
        .unwrap();
    let reply: CommandReply = serde_json::from_slice(&msg.payload).unwrap();
    assert!(matches!(reply, CommandReply::Accepted(_)), "{reply:?}");
    start.elapsed()
}

/// Commands per second: one at a time, then `CONCURRENT` in flight.
async fn commands(client: &async_nats::Client) -> (f64, f64, f64) {
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    let start = Instant::now();
    for _ in 0..SEQUENTIAL {
        latencies.push(command(client).await);
    }
    let sequential = SEQUENTIAL as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    let p50_ms = latencies[SEQUENTIAL / 2].as_secs_f64() * 1e3;
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..PER_TASK {
                    command(&client).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let concurrent = (CONCURRENT * PER_TASK) as f64 / start.elapsed().as_secs_f64();
    (sequential, p50_ms, concurrent)
}

/// One measurement of `durability` on a fresh server and store.
async fn measure(durability: Durability) -> Value {
    let nats = NatsServer::start_with(durability);
    let client = nats.admin_client().await;
    let log = Arc::new(
        JetStreamLog::open(client.clone(), JetStreamConfig::default())
            .await
            .unwrap(),
    );
    let appends_1 = appends(log.clone(), 1, 0).await;
    let appends_16 = appends(log.clone(), 16, APPENDS).await;
    let _service = ServiceProcess::start_on(&nats, "inspection", &[]);
    // Waits until the service answers (retrying while nothing does).
    tests::send_command(
        &client,
        "inspection",
        "schedule",
        &request(schedule(Uuid::now_v7())),
    )
    .await;
    let (sequential, p50_ms, concurrent) = commands(&client).await;
    json!({
        "mode": durability.name(),
        "appends_per_s": { "writers_1": appends_1.round(), "writers_16": appends_16.round() },
        "commands_per_s": { "sequential": sequential.round(), "concurrent_32": concurrent.round() },
        "command_p50_ms": (p50_ms * 1000.0).round() / 1000.0,
    })
}

/// The mean of `key` (a path of object keys) over the runs of one mode.
fn mean(runs: &[Value], mode: &str, path: &[&str]) -> f64 {
    let values: Vec<f64> = runs
        .iter()
        .filter(|r| r["mode"] == mode)
        .filter_map(|r| path.iter().fold(r, |v, k| &v[*k]).as_f64())
        .collect();
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

#[tokio::main]
async fn main() {
    let mut runs = Vec::new();
    for _ in 0..ROUNDS {
        for durability in [Durability::Standard, Durability::Strict] {
            let run = measure(durability).await;
            println!("{run}");
            runs.push(run);
        }
    }
    let ratio = |path: &[&str]| {
        let strict = mean(&runs, "strict", path);
        (strict / mean(&runs, "default", path) * 1000.0).round() / 1000.0
    };
    let results = json!({
        "measured_at": chrono::Utc::now().to_rfc3339(),
        "machine": { "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "nats_server": String::from_utf8_lossy(&std::process::Command::new(tests::nats_server_bin()).arg("--version").output().unwrap().stdout).trim(),
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
        "modes": { "default": "no sync_interval: JetStream fsyncs every 2 min", "strict": "sync_interval: always" },
        "runs": runs,
        "strict_over_default": {
            "appends_writers_1": ratio(&["appends_per_s", "writers_1"]),
            "appends_writers_16": ratio(&["appends_per_s", "writers_16"]),
            "commands_sequential": ratio(&["commands_per_s", "sequential"]),
            "commands_concurrent_32": ratio(&["commands_per_s", "concurrent_32"]),
        },
    });
    let text = serde_json::to_string_pretty(&results).unwrap();
    println!("{text}");
    let out = tests::workspace_root().join("tests/bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("durability.json"), text + "\n").unwrap();
}
