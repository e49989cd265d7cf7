//! Analytics never stall projection (issue 19): while one `as_of` over 200,000 events
//! is running, commands keep reaching the read model. Each command is sent and then
//! read back through a status query that waits for its position; the test counts the
//! commands the read model showed *before the `as_of` answered*. On the projector's
//! writer connection the query would hold every batch back until it answered, and no
//! command sent after it could be seen during it (measured before issue 19: a command
//! waited 3.8 s behind one). No absolute time is asserted: only the order of events.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::Stack;

const EVENTS: usize = 200_000;
/// Most commands sent while the `as_of` runs.
const MAX_COMMANDS: usize = 200;
/// How many of them the read model must show before the `as_of` answers.
const SEEN_DURING: usize = 3;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_over_200_000_events_does_not_delay_projection() {
    let mut stack = Stack::start();
    // Started: a SIGTERM before a process has set up its handler would kill it outright.
    stack.wait_ready().await;
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
    let js = async_nats::jetstream::new(stack.nats.admin_client().await);
    tests::publish_inspections(&js, 0..EVENTS).await;
    eprintln!("{EVENTS} events published in {:?}", t.elapsed());
    let (http, base) = (stack.http(), stack.gateway_url.clone());
    let head = tests::log_head(&http, &base).await;
    // The projector bounds one wait: ask again until it has caught up (at most 10 min).
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let r = http
            .get(format!(
                "{base}/v1/status/province?min_position={head}&wait_ms=600000"
            ))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            break;
        }
        assert!(Instant::now() < deadline, "never caught up: {}", r.status());
    }
    eprintln!("projected in {:?}", t.elapsed());

    // Given one `as_of` over the whole log, running...
    let as_of = tokio::spawn({
        let (http, base) = (http.clone(), base.clone());
        async move {
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
            body["inspections"]["scheduled"].as_u64().unwrap()
        }
    });
    // ...when commands are sent one after another until it answers...
    let mut seen_during = Vec::new();
    for n in 0..MAX_COMMANDS {
        if as_of.is_finished() {
            break;
        }
        let delay = delay(&http, &base, n).await;
        if !as_of.is_finished() {
            seen_during.push(delay);
        }
    }
    let counted = as_of.await.unwrap();

    // ...then the read model showed several of them before the query answered, and the
    // query counted the whole log.
    eprintln!(
        "{} commands seen in the read model during one as_of: {seen_during:?}",
        seen_during.len()
    );
    assert!(
        seen_during.len() >= SEEN_DURING,
        "projection stood still behind as_of: {} commands seen during it",
        seen_during.len()
    );
    assert!(counted >= EVENTS as u64, "as_of counted {counted}");
}
