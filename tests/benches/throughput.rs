//! Throughput and latency of the real pieces, on loopback, bounded in count:
//! - log appends to JetStream (1 writer, 16 writers);
//! - commands through NATS to the inspection service (sequential latency, 32 in flight);
//! - a projector replaying the whole log from scratch (events/s, peak memory).
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p tests --bench throughput`.
//! Writes `tests/bench-results/throughput.json`.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::sync::Arc;
use std::time::{Duration, Instant};

use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::{EventLog, ExpectedVersion};
use coord_proto::{CommandReply, command_subject};
use serde_json::json;
use tests::{NatsServer, ServiceProcess, request};
use uuid::Uuid;

const APPENDS: usize = 5000;
const COMMANDS: usize = 2000;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn schedule(id: Uuid) -> serde_json::Value {
    tests::schedule_payload(id, "chau-doc")
}

async fn appends(log: Arc<JetStreamLog>, writers: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for n in (w..APPENDS).step_by(writers) {
                let (stream, event) = tests::inspection_scheduled(n);
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

#[tokio::main]
async fn main() {
    let nats = NatsServer::start();
    let client = nats.admin_client().await;
    let log = Arc::new(
        JetStreamLog::open(client.clone(), JetStreamConfig::default())
            .await
            .unwrap(),
    );

    let appends_1 = appends(log.clone(), 1).await;
    let appends_16 = appends(log.clone(), 16).await;

    let _service = ServiceProcess::start_on(&nats, "inspection", &[]);
    tests::send_command(
        &client,
        "inspection",
        "schedule",
        &request(schedule(Uuid::now_v7())),
    )
    .await;
    let mut latencies = Vec::with_capacity(COMMANDS);
    for _ in 0..COMMANDS / 2 {
        latencies.push(command(&client).await);
    }
    latencies.sort();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..(COMMANDS / 2) / 32 {
                command(&client).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let concurrent_rate = ((COMMANDS / 2) / 32 * 32) as f64 / start.elapsed().as_secs_f64();

    let head = log.head().await.unwrap().unwrap().commit;
    let db = tempfile::tempdir().unwrap();
    let db_path = db.path().join("bench.sqlite").display().to_string();
    let start = Instant::now();
    let projector =
        ServiceProcess::start_on(&nats, "projector", &[("COORD_PROJECTOR_DB", &db_path)]);
    let dead_letters = tests::projector_reached(&client, head, Duration::from_secs(120)).await;
    let replay = start.elapsed();
    let rss = tests::peak_rss_kib(projector.pid());

    let results = json!({
        "measured_at": chrono::Utc::now().to_rfc3339(),
        "machine": { "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "nats_server": String::from_utf8_lossy(&std::process::Command::new(tests::nats_server_bin()).arg("--version").output().unwrap().stdout).trim(),
        "log_append": { "events": APPENDS, "writers_1_per_s": appends_1.round(), "writers_16_per_s": appends_16.round() },
        "command_round_trip": {
            "sequential": { "commands": latencies.len(), "p50_ms": percentile(&latencies, 0.5), "p99_ms": percentile(&latencies, 0.99), "max_ms": percentile(&latencies, 1.0) },
            "concurrent_32": { "commands_per_s": concurrent_rate.round() }
        },
        "projector_replay": { "commits": head, "dead_letters": dead_letters, "seconds": replay.as_secs_f64(), "commits_per_s": (head as f64 / replay.as_secs_f64()).round(), "peak_rss_kib": rss }
    });
    let text = serde_json::to_string_pretty(&results).unwrap();
    println!("{text}");
    let out = tests::workspace_root().join("tests/bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("throughput.json"), text + "\n").unwrap();
}
