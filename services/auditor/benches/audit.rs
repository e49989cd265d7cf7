//! Transparency-log benchmark (release build: `cargo bench -p auditor --bench audit`).
//!
//! 1. Verification speed: a synthetic log of `AUDIT_BENCH_EVENTS` events (default
//!    1,000,000) signed every 10,000 events is verified in process by the same code
//!    as `coordctl audit verify` (canonical JSON, leaf hashes, tree, every checkpoint
//!    signature, every consistency proof, the structural walk, and the comparison with
//!    the recorded leaves); reports events per second.
//! 2. Proof serving: an auditor store of `AUDIT_BENCH_SERVE_EVENTS` events (default
//!    1,000,000) answers inclusion and consistency queries through its query handler
//!    (SQLite lookup + tree + JSON), as it does for a NATS request; reports latency
//!    percentiles over 2,000 queries of each kind.
//!
//! Writes `tests/bench-results/audit.json`.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use auditor::store::{Item, Store};
use chrono::{NaiveDate, TimeZone, Utc};
use coord_audit::export::{Entry, OfficeLog};
use coord_audit::verify::{Trust, verify_office};
use coord_audit::{Checkpoint, Signer, Tree, leaf_data, leaf_hash_of};
use coord_log::{EventPosition, RecordedEvent};
use serde_json::json;
use uuid::Uuid;

fn event(i: u64) -> RecordedEvent {
    let stream = i / 4;
    let units = &coord_domain::province::an_giang().units;
    RecordedEvent {
        role: None,
        event_id: Uuid::from_u64_pair(0x0190_0000_0000_7000, i),
        stream_id: format!("inspection-{}", Uuid::from_u64_pair(7, stream))
            .parse()
            .unwrap(),
        stream_version: i % 4 + 1,
        event_type: "InspectionScheduled".into(),
        schema_version: 1,
        occurred_at: NaiveDate::from_ymd_opt(2023, 5, 6).unwrap(),
        recorded_at: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
            + chrono::Duration::milliseconds(i as i64),
        office: "province".into(),
        actor: "văn phòng Đảng ủy Công an tỉnh".into(),
        correlation_id: Uuid::from_u64_pair(9, stream),
        causation_id: Uuid::from_u64_pair(10, i),
        payload: json!({
            "unit": units[stream as usize % units.len()].id.as_str(),
            "term": "2020-2025",
            "decision_ref": format!("{i}-QĐ/ĐUCA"),
            "decided_on": "2023-05-06",
        }),
        position: Some(EventPosition {
            commit: i + 1,
            index: 0,
        }),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn verification(n: u64, signer: &Signer) -> serde_json::Value {
    let entries: Vec<Entry> = (0..n).map(|i| Entry::Event(event(i))).collect();
    let t = Instant::now();
    let tree = Tree::from_leaves(entries.iter().map(|e| match e {
        Entry::Event(e) => leaf_hash_of(e),
        Entry::Unreadable { .. } => unreachable!(),
    }));
    let build = t.elapsed().as_secs_f64();
    let checkpoints: Vec<String> = (1..=n / 10_000)
        .map(|k| k * 10_000)
        .chain((!n.is_multiple_of(10_000)).then_some(n))
        .map(|size| {
            Checkpoint {
                origin: signer.name().into(),
                size,
                root: tree.root(size).unwrap(),
            }
            .sign(signer)
        })
        .collect();
    let log = OfficeLog {
        entries,
        checkpoints,
        leaves: tree.leaves().to_vec(),
        leaf_events: Vec::new(),
    };
    drop(tree);
    let verifiers = [signer.verifier().clone()];
    let t = Instant::now();
    let report = verify_office(
        "province",
        &log,
        &Trust {
            verifiers: &verifiers,
            known: None,
            witnessed: None,
        },
    );
    let secs = t.elapsed().as_secs_f64();
    assert!(report.is_intact(), "{report:?}");
    let avg_leaf = (0..1000).map(|i| leaf_data(&event(i)).len()).sum::<usize>() / 1000;
    let offline = offline_from_file(&log, signer, 100_000);
    println!(
        "verify {n} events: {secs:.2} s, {:.0} events/s ({} checkpoints, {} consistency proofs)",
        n as f64 / secs,
        report.checkpoints,
        report.consistency_checks
    );
    json!({
        "events": n,
        "checkpoints": report.checkpoints,
        "consistency_checks": report.consistency_checks,
        "average_leaf_bytes": avg_leaf,
        "verify_seconds": secs,
        "verify_events_per_second": n as f64 / secs,
        "leaf_hash_and_tree_events_per_second": n as f64 / build,
        "offline_from_ndjson": offline,
    })
}

/// `coordctl audit verify --file`: reading the NDJSON export and verifying it, on the
/// first `m` events (the file for a million events is ~600 MB; the rate is per event).
fn offline_from_file(log: &OfficeLog, signer: &Signer, m: usize) -> serde_json::Value {
    let entries = log.entries[..m.min(log.entries.len())].to_vec();
    let tree = Tree::from_leaves(entries.iter().map(|e| match e {
        Entry::Event(e) => leaf_hash_of(e),
        Entry::Unreadable { .. } => unreachable!(),
    }));
    let size = tree.len();
    let note = Checkpoint {
        origin: signer.name().into(),
        size,
        root: tree.root(size).unwrap(),
    }
    .sign(signer);
    let mut export = coord_audit::export::Export::default();
    export.offices.insert(
        "province".into(),
        OfficeLog {
            entries,
            checkpoints: vec![note],
            leaves: tree.leaves().to_vec(),
            leaf_events: Vec::new(),
        },
    );
    let mut bytes = Vec::new();
    export.write(&mut bytes).unwrap();
    let verifiers = [signer.verifier().clone()];
    let t = Instant::now();
    let read = coord_audit::export::Export::read(bytes.as_slice()).unwrap();
    let reports =
        coord_audit::verify::verify_all(&read.offices, &verifiers, None, &Default::default());
    let secs = t.elapsed().as_secs_f64();
    assert!(reports[0].is_intact());
    println!(
        "offline (parse + verify) {size} events: {:.0} events/s",
        size as f64 / secs
    );
    json!({ "events": size, "file_bytes": bytes.len(), "seconds": secs, "events_per_second": size as f64 / secs })
}

async fn serving(n: u64, signer: Signer) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("audit.sqlite")).unwrap();
    let t = Instant::now();
    let mut next = 0u64;
    while next < n {
        let items: Vec<Item> = (next..(next + 10_000).min(n))
            .map(|i| Item::Event(event(i)))
            .collect();
        next += store.apply_batch(&items, next).unwrap().len() as u64;
    }
    let fill = t.elapsed().as_secs_f64();
    let log: Arc<dyn coord_log::EventLog> = Arc::new(coord_log::memory::InMemoryLog::new());
    let t = Instant::now();
    let auditor =
        auditor::Auditor::new("province".into(), signer, store, log, 1000, 512, None).unwrap();
    let load = t.elapsed().as_secs_f64();
    auditor.sign_if_grown().await.unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut random = move |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    let mut measure = |kind: &str| {
        let mut out = Vec::new();
        for _ in 0..2000 {
            let body = if kind == "inclusion" {
                json!({ "event_id": event(random(n)).event_id })
            } else {
                let from = random(n - 1) + 1;
                json!({ "from": from, "to": from + random(n - from + 1) })
            };
            out.push((kind.to_owned(), serde_json::to_vec(&body).unwrap()));
        }
        out
    };
    let mut results = serde_json::Map::new();
    for kind in ["inclusion", "consistency"] {
        let queries = measure(kind);
        let mut micros = Vec::with_capacity(queries.len());
        for (endpoint, body) in &queries {
            let t = Instant::now();
            let answer = auditor::queries::answer(&auditor, endpoint, body).await;
            micros.push(t.elapsed().as_secs_f64() * 1e6);
            assert!(
                answer.starts_with(b"{\"ok\""),
                "{}",
                String::from_utf8_lossy(&answer)
            );
        }
        micros.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{kind} proof over {n} leaves: p50 {:.0} µs, p99 {:.0} µs",
            percentile(&micros, 0.5),
            percentile(&micros, 0.99)
        );
        results.insert(
            kind.into(),
            json!({
                "queries": micros.len(),
                "p50_us": percentile(&micros, 0.5),
                "p90_us": percentile(&micros, 0.9),
                "p99_us": percentile(&micros, 0.99),
                "max_us": micros.last(),
            }),
        );
    }
    results.insert("leaves".into(), json!(n));
    results.insert("store_fill_seconds".into(), json!(fill));
    results.insert("startup_tree_load_seconds".into(), json!(load));
    serde_json::Value::Object(results)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let signer = Signer::from_seed("coord/bench/province", [5; 32]).unwrap();
    let verify = verification(env("AUDIT_BENCH_EVENTS", 1_000_000), &signer);
    let serve = serving(env("AUDIT_BENCH_SERVE_EVENTS", 1_000_000), signer).await;
    let results = json!({
        "benchmark": "audit",
        "measured_at": Utc::now().to_rfc3339(),
        "machine_note": "2 shared cores; absolute figures move between machines",
        "verification": verify,
        "proof_serving": serve,
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("audit.json"),
        serde_json::to_string_pretty(&results).unwrap() + "\n",
    )
    .unwrap();
}
