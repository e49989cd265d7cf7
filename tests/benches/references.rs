//! What reading a cross-reference under every office's subjects costs (issue 10,
//! Ownership): `read_reference` with the wildcard prefix `coord.log.*` (batched direct
//! gets `next_by_subj` on a wildcard subject, forward until none is left) against
//! `read_stream` on the exact subject (the last message by subject bounds the read), for
//! a referenced stream of one commit in a log of 10,000 and 100,000 other streams.
//! A command that refers to another stream pays this once per reference.
//!
//! Run: `cargo bench --profile dev -p tests --bench references`.
//! Writes `tests/bench-results/references.json`.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::sync::Arc;
use std::time::{Duration, Instant};

use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::{EventLog, ExpectedVersion, StreamId};
use serde_json::json;
use tests::NatsServer;

const SIZES: [usize; 2] = [10_000, 100_000];
const READS: usize = 200;

fn ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Appends streams `from..to` (one event each) under the log's own subjects.
async fn fill(log: Arc<JetStreamLog>, from: usize, to: usize) {
    let writers = 32;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for n in (from + w..to).step_by(writers) {
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
}

/// `READS` timed calls of `read`, latencies sorted.
async fn time_reads<F, Fut>(read: F) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: Future<Output = usize>,
{
    let mut all = Vec::with_capacity(READS);
    for _ in 0..READS {
        let start = Instant::now();
        assert_eq!(read().await, 1, "the referenced stream has one event");
        all.push(start.elapsed());
    }
    all.sort();
    all
}

fn figures(sorted: &[Duration]) -> serde_json::Value {
    json!({"p50_ms": ms(sorted, 0.5), "p99_ms": ms(sorted, 0.99), "max_ms": ms(sorted, 1.0)})
}

#[tokio::main]
async fn main() {
    let server = NatsServer::start();
    let client = server.admin_client().await;
    let log = JetStreamLog::open(client.clone(), JetStreamConfig::default())
        .await
        .unwrap();
    // The province writes; reading its stream exactly is the province's scoped read,
    // reading it as a reference is the wildcard read under every office.
    let province = Arc::new(log.clone());
    let exact_reader = log.for_office(&coord_domain::Office::Province);
    let district = log;
    // The referenced stream is written first: the wildcard read finds it at once and
    // then looks for a next message on its subject through the whole log (worst case).
    let (exchange, event) = tests::inspection_scheduled(0);
    let exchange = StreamId::new("exchange", exchange.id()).unwrap();
    province
        .append(&exchange, ExpectedVersion::NoStream, vec![event])
        .await
        .unwrap();

    let mut results = serde_json::Map::new();
    let mut written = 1;
    for size in SIZES {
        fill(province.clone(), written, size).await;
        written = size;
        let exact =
            time_reads(|| async { exact_reader.read_stream(&exchange).await.unwrap().len() }).await;
        let wildcard =
            time_reads(|| async { district.read_reference(&exchange).await.unwrap().len() }).await;
        println!(
            "{size} streams: exact p50 {:.2} ms p99 {:.2} ms; wildcard reference p50 {:.2} ms p99 {:.2} ms",
            ms(&exact, 0.5),
            ms(&exact, 0.99),
            ms(&wildcard, 0.5),
            ms(&wildcard, 0.99)
        );
        results.insert(
            format!("streams_{size}"),
            json!({"read_stream_exact": figures(&exact), "read_reference_wildcard": figures(&wildcard)}),
        );
    }
    let out = json!({
        "what": "Latency of reading a one-commit referenced stream: read_stream on its exact subject vs read_reference under coord.log.* (batched direct gets next_by_subj on the wildcard subject, up to 256 commits a request, until the end of the batch says none is left; read_stream: the last message by subject, then one batched direct get), in one JetStream stream holding N other streams; one nats-server on loopback, dev profile, 2-core machine shared with other builds.",
        "measured_at": chrono::Utc::now().to_rfc3339(),
        "reads_per_figure": READS,
        "results": results,
    });
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results/references.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap() + "\n").unwrap();
    println!("wrote {}", path.display());
}
