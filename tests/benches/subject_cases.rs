//! What finding a subject's other discipline cases costs (issue 16: a new violation
//! restarts the time limit of an earlier one). The discipline service cannot name those
//! cases, so before a decision (or a resolution that changes the form) it reads the
//! whole log once, up to its head, and keeps the `discipline-*` streams
//! (`coord_service::references::scan`). This measures that read on a JetStream log of
//! 1,000, 10,000 and 100,000 commits, one in six a discipline case (about the reference
//! scenario's share: 56 cases in 339 commits).
//!
//! Run: `cargo bench --profile dev -p tests --bench subject_cases`.
//! Writes `tests/bench-results/subject_cases.json`.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::sync::Arc;
use std::time::{Duration, Instant};

use coord_domain::discipline::{
    Basis, DisciplineCaseOpened, DisciplineEvent, Membership, Subject, Violation, ViolationCategory,
};
use coord_domain::{Body, CaseId, DomainEvent, References};
use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::{EventLog, ExpectedVersion, NewEvent, StreamId};
use serde_json::json;
use tests::NatsServer;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const SCANS: usize = 5;

/// A case opened about member `n`.
fn case_opened(n: usize) -> (StreamId, NewEvent) {
    let id = uuid::Uuid::now_v7();
    let event = DisciplineEvent::DisciplineCaseOpened(DisciplineCaseOpened {
        case_id: CaseId::from_uuid(id),
        term: "2020-2025".parse().unwrap(),
        unit: "an-phu".parse().unwrap(),
        subject: Subject::Member {
            member: format!("ĐV-{n}").parse().unwrap(),
            membership: Membership::Full,
            holds_post: false,
        },
        basis: Basis::CentralConclusion {
            body: Body::CentralInspectionCommission,
            reference: "KL (giả định)".parse().unwrap(),
        },
        violation: Some(Violation {
            committed_on: "2022-05-01".parse().unwrap(),
            ended_on: None,
            category: ViolationCategory::Ordinary,
        }),
        opened_on: "2023-01-10".parse().unwrap(),
    });
    let (event_type, payload) = event.encode();
    let (_, mut new) = tests::inspection_scheduled(n);
    new.event_type = event_type.into();
    new.schema_version = DisciplineEvent::SCHEMA_VERSION;
    new.occurred_at = event.occurred_on();
    new.payload = payload;
    (StreamId::new("discipline", id).unwrap(), new)
}

/// Appends commits `from..to`, one stream each, every sixth a discipline case.
async fn fill(log: Arc<JetStreamLog>, from: usize, to: usize) {
    let writers = 32;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for n in (from + w..to).step_by(writers) {
                let (stream, event) = match n % 6 {
                    0 => case_opened(n),
                    _ => tests::inspection_scheduled(n),
                };
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let server = NatsServer::start();
    let client = server.admin_client().await;
    let log = Arc::new(
        JetStreamLog::open(client, JetStreamConfig::default())
            .await
            .unwrap(),
    );
    let mut results = serde_json::Map::new();
    let mut written = 0;
    for size in SIZES {
        fill(log.clone(), written, size).await;
        written = size;
        let mut all = Vec::with_capacity(SCANS);
        for _ in 0..SCANS {
            let mut references = References::default();
            let start = Instant::now();
            coord_service::references::scan(log.as_ref(), "discipline", &mut references)
                .await
                .unwrap();
            all.push(start.elapsed());
            assert_eq!(references.discipline_cases().count(), size.div_ceil(6));
        }
        all.sort();
        let (median, max) = (all[SCANS / 2], all[SCANS - 1]);
        println!(
            "{size} commits: scan median {:.1} ms, max {:.1} ms",
            ms(median),
            ms(max)
        );
        results.insert(
            format!("commits_{size}"),
            json!({"median_ms": ms(median), "max_ms": ms(max), "cases": size.div_ceil(6)}),
        );
    }
    let out = json!({
        "what": "Latency of coord_service::references::scan(\"discipline\"): one ordered-consumer pass over a JetStream log of N commits (one in six a discipline case), folding every case; what a discipline decision pays before deciding. One nats-server on loopback, dev profile, 2-core machine shared with other builds.",
        "measured_at": chrono::Utc::now().to_rfc3339(),
        "scans_per_figure": SCANS,
        "results": results,
    });
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results/subject_cases.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap() + "\n").unwrap();
    println!("wrote {}", path.display());
}
