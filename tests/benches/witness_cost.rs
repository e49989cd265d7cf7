//! What the hub's witness costs (issue 7):
//!
//! - round trip over NATS, measured at the office: from its auditor publishing a signed
//!   checkpoint to the hub's cosigned note arriving back (the hub asks the office for a
//!   consistency proof across the leaf link, checks it, stores, cosigns), one event per
//!   checkpoint, a hub and one office as `coordctl offices` sets them up, the auditors
//!   as processes;
//! - the witness's own check, in process: the office's signature, a consistency proof
//!   from 500,000 to 1,000,000 leaves, the cosignature.
//!
//! Run: `cargo bench --profile dev -p tests --bench witness_cost` (the auditor binary must be
//! built). Writes `tests/bench-results/witness_cost.json`.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::time::{Duration, Instant};

use coord_audit::cosign::{Cosigner, Witness};
use coord_audit::note::Note;
use coord_audit::wire;
use coord_audit::{Checkpoint, Signer, Tree};
use coordctl::offices;
use futures::StreamExt;
use serde_json::json;
use tests::ServiceProcess;
use tests::offices::{start, write};

const ROUND_TRIPS: usize = 100;

fn size_of(note: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(note);
    Checkpoint::parse(&Note::parse(&text).unwrap().text)
        .unwrap()
        .size
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn round_trips() -> serde_json::Value {
    let running = start(&["long-xuyen"]).await;
    let _auditors: Vec<ServiceProcess> = running
        .sites()
        .into_iter()
        .map(|site| {
            let mut env = offices::service_env(site, "auditor", 0, "").unwrap();
            env.push(("COORD_AUDIT_CHECKPOINT_EVENTS", "1".into()));
            env.push(("COORD_AUDIT_CHECKPOINT_MS", "60000".into()));
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            ServiceProcess::start("auditor", &[], &env)
        })
        .collect();
    let lx = &running.topology.offices[0];
    let client = tests::offices::client_as(lx, "auditor").await;
    let office = "district:long-xuyen";
    let mut published = client
        .subscribe(wire::published_subject(office))
        .await
        .unwrap();
    let mut cosigned = client
        .subscribe(wire::cosigned_subject(office, "province"))
        .await
        .unwrap();
    // Warm-up: the first checkpoint is cosigned once the hub's interest is in place.
    write(lx, 1).await;
    let warm = tokio::time::timeout(Duration::from_secs(60), cosigned.next()).await;
    assert!(warm.is_ok(), "the first checkpoint was never cosigned");
    let mut latencies = Vec::new();
    for i in 0..ROUND_TRIPS as u64 {
        let size = i + 2;
        write(lx, 1).await;
        let sent = loop {
            let m = published.next().await.unwrap();
            if size_of(&m.payload) == size {
                break Instant::now();
            }
        };
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), cosigned.next())
                .await
                .expect("cosigned within 30 s")
                .unwrap();
            if size_of(&m.payload) == size {
                break;
            }
        }
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
    println!(
        "round trip office → hub → office over {ROUND_TRIPS} checkpoints: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        latencies[latencies.len() - 1]
    );
    json!({
        "checkpoints": ROUND_TRIPS,
        "mean_ms": mean,
        "p50_ms": percentile(&latencies, 0.5),
        "p95_ms": percentile(&latencies, 0.95),
        "max_ms": latencies[latencies.len() - 1],
    })
}

fn check_cost() -> serde_json::Value {
    const LEAVES: u64 = 1_000_000;
    const CHECKS: u32 = 1_000;
    let tree =
        Tree::from_leaves((0..LEAVES).map(|i| coord_audit::tree::leaf_hash(&i.to_be_bytes())));
    let signer = Signer::from_seed("coord/bench/district:x", [3; 32]).unwrap();
    let note = |size: u64| {
        Checkpoint {
            origin: signer.name().into(),
            size,
            root: tree.root(size).unwrap(),
        }
        .sign(&signer)
    };
    let mut witness = Witness::new(Cosigner::from_seed("coord/bench/witness", [4; 32]).unwrap());
    witness.watch(signer.verifier().clone());
    witness.add(&note(LEAVES / 2), &[], 0).unwrap();
    let new = note(LEAVES);
    let proof = tree.consistency(LEAVES / 2, LEAVES).unwrap();
    let started = Instant::now();
    for _ in 0..CHECKS {
        let cp = witness.check(&new, &proof).unwrap();
        std::hint::black_box(witness.cosign(&new, &cp, 1));
    }
    let per_check_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(CHECKS);
    println!(
        "witness check + cosign, {} → {LEAVES} leaves ({} proof hashes): {per_check_us:.1} µs",
        LEAVES / 2,
        proof.len()
    );
    json!({
        "from_leaves": LEAVES / 2,
        "to_leaves": LEAVES,
        "proof_hashes": proof.len(),
        "check_and_cosign_us": per_check_us,
    })
}

#[tokio::main]
async fn main() {
    let round_trip = round_trips().await;
    let check = check_cost();
    let results = json!({
        "benchmark": "witness_cost",
        "topology": "hub + 1 office (leaf node, own JetStream domain), auditors as processes, one event per checkpoint",
        "profile": "dev (unoptimized auditors and client; nats-server release build)",
        "machine_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "round_trip_at_office": round_trip,
        "in_process_check": check,
    });
    let out = tests::workspace_root().join("tests/bench-results");
    std::fs::create_dir_all(&out).unwrap();
    let text = serde_json::to_string_pretty(&results).unwrap();
    std::fs::write(out.join("witness_cost.json"), text + "\n").unwrap();
}
