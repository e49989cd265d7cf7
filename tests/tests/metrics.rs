//! `GET /metrics` scraped while the system works: command counters by endpoint and
//! outcome, the latency histogram, HTTP requests by route and status, open event
//! streams, and the projector's lag (held back by a locked read-model database, then
//! caught up) all move; and a command service's own metrics (its port) count the same
//! commands and time its appends.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tests::Stack;

async fn scrape(base: &str) -> HashMap<String, f64> {
    tests::scrape(base).await
}

fn value(m: &HashMap<String, f64>, series: &str) -> f64 {
    tests::metric(m, series)
}

fn schedule(n: usize) -> serde_json::Value {
    json!({"term": "2020-2025", "unit": "tri-ton", "kind": "inspection",
        "category": "compliance", "leading_body": "provincial_standing_committee",
        "coordinating_body": "district_standing_committee:tri-ton",
        "target": "district_police:tri-ton", "decision_ref": format!("QĐ {n} (giả định)"),
        "decided_on": "2024-06-01", "planned_start": "2024-06-10", "planned_end": "2024-06-20"})
}

/// Sends `n` new inspections, the first again (a duplicate), one malformed body and one
/// the domain refuses.
async fn load(stack: &Stack, from: usize, n: usize) {
    let http = stack.http();
    let url = format!("{}/v1/inspections", stack.gateway_url);
    let post = |key: String, body: String| {
        http.post(&url)
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for i in from..from + n {
        let r = post(format!("m-{i}"), schedule(i).to_string())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let again = post(format!("m-{from}"), schedule(from).to_string())
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let bad = post(format!("bad-{from}"), "{oops".into()).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let mut refused = schedule(from);
    refused["coordinating_body"] = json!("district_standing_committee:an-phu");
    let refused = post(format!("no-{from}"), refused.to_string())
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

const ACCEPTED: &str = r#"coord_commands_total{endpoint="inspection.schedule",outcome="accepted"}"#;
const DUPLICATE: &str =
    r#"coord_commands_total{endpoint="inspection.schedule",outcome="duplicate"}"#;
const MALFORMED: &str =
    r#"coord_commands_total{endpoint="inspection.schedule",outcome="malformed"}"#;
const REFUSED: &str =
    r#"coord_commands_total{endpoint="inspection.schedule",outcome="rule_violation"}"#;
const LATENCY_COUNT: &str =
    r#"coord_command_duration_seconds_count{endpoint="inspection.schedule"}"#;
const CREATED: &str =
    r#"coord_http_requests_total{route="/v1/inspections",method="POST",status="201"}"#;

/// Scrapes until `done` holds (at most 20 s).
async fn scrape_until(
    base: &str,
    what: &str,
    done: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape(base).await;
        if done(&m) {
            return m;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {m:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_under_load_and_show_the_projectors_lag() {
    let mut stack = Stack::start();
    // The inspection service serves its own metrics too (port 0: it picks one).
    stack.process("inspection").kill();
    let mut inspection = stack.spawn("inspection", &[("COORD_METRICS_ADDR", "127.0.0.1:0")]);
    let service = format!("http://127.0.0.1:{}", inspection.wait_listening());
    stack.processes.push(inspection);
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    let before = scrape(&base).await;
    let service_before = scrape(&service).await;
    assert_eq!(
        value(&before, r#"coord_component_up{component="inspection"}"#),
        1.0
    );

    // An event stream open during the load.
    let events = stack
        .http()
        .get(format!("{base}/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    load(&stack, 0, 20).await;
    let after = scrape(&base).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved(ACCEPTED), 20.0, "{after:?}");
    assert_eq!(moved(DUPLICATE), 1.0);
    assert_eq!(moved(MALFORMED), 1.0);
    assert_eq!(moved(REFUSED), 1.0);
    assert_eq!(moved(LATENCY_COUNT), 23.0);
    assert!(
        value(
            &after,
            r#"coord_command_duration_seconds_sum{endpoint="inspection.schedule"}"#
        ) > 0.0
    );
    assert_eq!(moved(CREATED), 20.0);
    // The same commands as the service counted them (the malformed body never left
    // the gateway), with its own latency and the appends' latency.
    let service_after = scrape(&service).await;
    let served = |series: &str| value(&service_after, series) - value(&service_before, series);
    assert_eq!(
        served(
            r#"coord_service_commands_total{endpoint="inspection.schedule",outcome="accepted"}"#
        ),
        20.0,
        "{service_after:?}"
    );
    assert_eq!(
        served(
            r#"coord_service_commands_total{endpoint="inspection.schedule",outcome="rule_violation"}"#
        ),
        1.0
    );
    assert!(
        served(r#"coord_service_command_duration_seconds_count{endpoint="inspection.schedule"}"#)
            >= 21.0
    );
    assert!(served("coord_service_append_duration_seconds_count") >= 20.0);
    assert!(served("coord_service_append_duration_seconds_sum") > 0.0);
    assert_eq!(value(&after, "coord_sse_streams_open"), 1.0);
    assert_eq!(value(&after, "coord_sse_streams_opened_total"), 1.0);
    drop(events);

    // The read-model database locked: the log moves on, the projector cannot.
    let caught_up = scrape_until(&base, "caught up", |m| {
        value(m, "coord_projector_lag_commits") == 0.0 && value(m, "coord_log_head") >= 20.0
    })
    .await;
    let db = stack.data.path().join("projector.sqlite");
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    load(&stack, 100, 5).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let behind = scrape(&base).await;
    assert_eq!(
        value(&behind, "coord_log_head") - value(&caught_up, "coord_log_head"),
        5.0
    );
    assert_eq!(
        value(&behind, "coord_projector_lag_commits"),
        5.0,
        "{behind:?}"
    );
    assert!(
        value(&behind, "coord_projector_lag_seconds") >= 1.0,
        "{behind:?}"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    let again = scrape_until(&base, "caught up again", |m| {
        value(m, "coord_projector_lag_commits") == 0.0
    })
    .await;
    assert_eq!(value(&again, "coord_projector_lag_seconds"), 0.0);
    assert_eq!(
        value(&again, "coord_projector_position"),
        value(&behind, "coord_log_head")
    );
    assert_eq!(value(&again, "coord_projector_dead_letters"), 0.0);
}
