//! Analytics never stall projection (issue 19): `as_of` over 200,000 events runs, back
//! to back, while commands keep being sent; the delay from a command's answer to the
//! read model showing it (a status query waiting on the command's position) is
//! measured before and during those queries, and its p99 during them stays within 2×
//! of its p99 before. Two measured distributions compared, no absolute time: an
//! `as_of` on the projector's writer connection makes every command sent during it
//! wait for the whole query (measured before issue 19: 3.8 s against ≤ 12 ms).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::Stack;

const EVENTS: usize = 200_000;
/// Delays measured in each phase.
const SAMPLES: usize = 60;
/// Long enough for an `as_of` over the whole log in a debug build.
const LONG_MS: &str = "600000";

fn restart(stack: &mut Stack, name: &str, extra: &[(&str, &str)]) {
    assert!(stack.process(name).terminate(), "{name} stops cleanly");
    stack.processes.retain(|p| p.name != name);
    let process = stack.spawn(name, extra);
    stack.processes.push(process);
}

/// Sends one command and returns how long after its answer the read model showed it.
async fn delay(http: &reqwest::Client, base: &str, n: usize) -> Duration {
    let body = json!({"term": "2020-2025", "unit": "an-phu", "kind": "inspection",
        "category": "compliance", "leading_body": "provincial_standing_committee",
        "coordinating_body": "district_standing_committee:an-phu",
        "target": "district_police:an-phu", "decision_ref": format!("{n}-QĐ (giả định)"),
        "decided_on": "2024-06-01", "planned_start": "2024-06-10", "planned_end": "2024-06-20"});
    let r = http
        .post(format!("{base}/v1/inspections"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let answered = Instant::now();
    let position = r.json::<Value>().await.unwrap()["position"]
        .as_u64()
        .unwrap();
    // The cheapest read of the model that waits for the command: its unit's timeline.
    let r = http
        .get(format!(
            "{base}/v1/districts/an-phu/timeline?limit=1&min_position={position}&wait_ms=600000"
        ))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let page: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{page}");
    assert_eq!(
        page["entries"][0]["position"],
        format!("{position}:0"),
        "{page}"
    );
    answered.elapsed()
}

async fn delays(http: &reqwest::Client, base: &str, from: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(SAMPLES);
    for n in from..from + SAMPLES {
        out.push(delay(http, base, n).await);
    }
    out.sort();
    out
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[((sorted.len() - 1) as f64 * 0.99).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_over_200_000_events_does_not_delay_projection() {
    let mut stack = Stack::start();
    restart(
        &mut stack,
        "projector",
        &[("COORD_REQUEST_DEADLINE_MS", LONG_MS)],
    );
    let importer = stack.nats.creds_file("importer").display().to_string();
    restart(
        &mut stack,
        "gateway",
        &[
            ("COORD_IMPORT_NATS_CREDS", &importer),
            ("COORD_GATEWAY_TIMEOUT_MS", LONG_MS),
        ],
    );
    let t = Instant::now();
    stack.fill_inspections(EVENTS).await;
    eprintln!("{EVENTS} events appended in {:?}", t.elapsed());
    let (http, base) = (stack.http(), stack.gateway_url.clone());
    let head = tests::log_head(&http, &base).await;
    let r = http
        .get(format!(
            "{base}/v1/status/province?min_position={head}&wait_ms=600000"
        ))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "never caught up");
    eprintln!("projected in {:?}", t.elapsed());

    // Given the delays of commands with no analytics running.
    let before = delays(&http, &base, 0).await;

    // When `as_of` queries over the whole log run back to back...
    let stop = Arc::new(AtomicBool::new(false));
    let queries = tokio::spawn({
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        async move {
            let mut counted = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let now = chrono::Utc::now().to_rfc3339();
                let r = http
                    .get(format!("{base}/v1/analytics/province"))
                    .query(&[("as_of", now)])
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body: Value = r.json().await.unwrap();
                assert!(status.is_success(), "{body}");
                counted.push(body["inspections"]["scheduled"].as_u64().unwrap());
            }
            counted
        }
    });
    // ...while the same commands are sent and measured (one query is always running).
    let mut during = Vec::with_capacity(SAMPLES);
    for n in SAMPLES..2 * SAMPLES {
        during.push(delay(&http, &base, n).await);
    }
    stop.store(true, Ordering::SeqCst);
    let counted = queries.await.unwrap();
    during.sort();

    // Then the queries counted the whole log, and projection kept its pace.
    assert!(
        counted.iter().all(|c| *c >= EVENTS as u64),
        "as_of counted {counted:?}"
    );
    let (p_before, p_during) = (p99(&before), p99(&during));
    eprintln!(
        "{} as_of queries; p99 command→read model: {p_before:?} before, {p_during:?} during",
        counted.len()
    );
    assert!(
        p_during <= p_before * 2,
        "p99 {p_during:?} during as_of against {p_before:?} before: {during:?}"
    );
}
