//! End to end through HTTP: every process real (nats-server, three command services,
//! projector, gateway), the reference scenario loaded through the API, the article's
//! figures read back, error classes, idempotency, rebuild, timeline, event stream.

use std::time::Duration;

use coord_proto::read::{DistrictList, ProvinceSummary, TimelinePage};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::Stack;

const SCENARIO: &str = include_str!("../../deploy/scenarios/an-giang-2020-2025.jsonl");

async fn get<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: String) -> T {
    let r = http.get(&url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

async fn head(http: &reqwest::Client, base: &str) -> u64 {
    get::<Value>(http, format!("{base}/v1/projector")).await["head"]
        .as_u64()
        .unwrap()
}

/// POSTs and checks that the answer is a problem document of `status` and `code`.
async fn problem(
    http: &reqwest::Client,
    url: String,
    headers: &[(&str, &str)],
    body: &str,
    status: StatusCode,
    code: &str,
) {
    let mut req = http
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), status, "{url} {body}");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    assert_eq!(p["status"], status.as_u16());
    assert_eq!(p["type"], format!("urn:coord:problem:{code}"));
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_scenario_through_http_gives_the_articles_figures() {
    let mut stack = Stack::start();
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    let http = stack.http();
    let client = stack.client();

    // A poison entry in the log before anything else: the projector must go on.
    let nats = stack.nats.admin_client().await;
    let js = async_nats::jetstream::new(nats.clone());
    js.publish("coord.log.inspection.poison", "{not an envelope".into())
        .await
        .unwrap()
        .await
        .unwrap();

    // Load the scenario through the HTTP API.
    let report = coordctl::load(&client, SCENARIO, false).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.sent, SCENARIO.lines().count());
    assert_eq!(report.duplicates, 0);

    let s: ProvinceSummary = get(
        &http,
        format!(
            "{base}/v1/status/province?term=2020-2025&min_position={}",
            report.last_position
        ),
    )
    .await;
    assert_eq!(s.position, report.last_position);
    assert_eq!(
        (
            s.districts_total,
            s.districts_coordinated,
            s.districts_covered
        ),
        (11, 8, 8)
    );
    assert_eq!(s.districts_outstanding, ["an-phu", "thoai-son", "tri-ton"]);
    assert_eq!(s.inspections.concluded, 9);
    assert_eq!(
        s.inspections.scheduled + s.inspections.in_progress + s.inspections.cancelled,
        0
    );
    assert_eq!(s.discipline.organizations.reprimand, 10);
    assert_eq!(
        s.discipline.organizations.warning + s.discipline.organizations.dissolution,
        0
    );
    let m = s.discipline.members;
    assert_eq!(
        (m.reprimand, m.warning, m.removal_from_post, m.expulsion),
        (30, 15, 0, 1)
    );
    assert_eq!(
        s.discipline.members.reprimand
            + s.discipline.members.warning
            + s.discipline.members.expulsion,
        46
    );
    // People and decisions: in the scenario every one of the 46 members and 10
    // organizations is disciplined once, so both figures are the article's.
    let d = s.discipline;
    assert_eq!((d.members_disciplined, d.member_decisions), (46, 46));
    assert_eq!(
        (d.organizations_disciplined, d.organization_decisions),
        (10, 10)
    );
    assert_eq!(s.discipline.open_cases, 0);
    // Its acknowledgements are the districts' receipts, joined to the exchanges.
    let count = |command: &str| {
        SCENARIO
            .lines()
            .filter(|l| serde_json::from_str::<Value>(l).unwrap()["command"] == command)
            .count() as u64
    };
    assert_eq!(s.exchanges.sent, count("exchange.send"));
    assert_eq!(
        s.exchanges.unacknowledged,
        count("exchange.send") - count("exchange.acknowledge")
    );
    assert!(count("exchange.acknowledge") > 0);
    assert_eq!(s.dead_letters, 1, "the poison entry is dead-lettered");
    let raw: Value = get(&http, format!("{base}/v1/status/province?term=2020-2025")).await;
    for field in [
        "districts_total",
        "districts_coordinated",
        "districts_covered",
        "districts_outstanding",
        "inspections",
        "exchanges",
        "discipline",
    ] {
        assert!(raw.get(field).is_some(), "summary has `{field}`");
    }
    let letters: Vec<Value> = get(&http, format!("{base}/v1/dead-letters")).await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a valid envelope")
    );

    // An idempotent retry of the whole load appends nothing.
    let head_before = head(&http, &base).await;
    let again = coordctl::load(&client, SCENARIO, false).await.unwrap();
    assert_eq!(again.duplicates, again.sent);
    assert_eq!(head(&http, &base).await, head_before);

    // Error classes, each a problem document, each appending nothing.
    let insp = json!(
        SCENARIO
            .lines()
            .next()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["payload"]["inspection_id"].clone())
            .unwrap()
    );
    let insp = insp.as_str().unwrap();
    problem(
        &http,
        format!("{base}/v1/inspections"),
        &[],
        "{oops",
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    problem(
        &http,
        format!("{base}/v1/inspections/{insp}/start"),
        &[],
        r#"{"started_on": "not a date"}"#,
        StatusCode::BAD_REQUEST,
        "malformed_command",
    )
    .await;
    problem(
        &http,
        format!("{base}/v1/inspections/not-a-uuid/start"),
        &[],
        r#"{"started_on": "2022-07-01"}"#,
        StatusCode::BAD_REQUEST,
        "bad_id",
    )
    .await;
    problem(
        &http,
        format!("{base}/v1/inspections/0190a000-0000-7000-8000-00000000beef/start"),
        &[],
        r#"{"started_on": "2022-07-01"}"#,
        StatusCode::NOT_FOUND,
        "inspection_not_found",
    )
    .await;
    problem(
        &http,
        format!("{base}/v1/inspections/{insp}/start"),
        &[],
        r#"{"started_on": "2024-07-01"}"#,
        StatusCode::CONFLICT,
        "invalid_transition",
    )
    .await;
    problem(
        &http,
        format!("{base}/v1/inspections/{insp}/cancel"),
        &[("if-match", "\"1\"")],
        r#"{"cancelled_on": "2024-07-01", "reason": "x"}"#,
        StatusCode::CONFLICT,
        "concurrent_modification",
    )
    .await;
    problem(&http, format!("{base}/v1/inspections"), &[], &json!({
        "term": "2020-2025", "unit": "an-phu", "kind": "inspection", "category": "compliance",
        "leading_body": "provincial_standing_committee", "coordinating_body": "district_standing_committee:tri-ton",
        "target": "district_police:an-phu", "decision_ref": "x", "decided_on": "2024-06-01",
        "planned_start": "2024-06-10", "planned_end": "2024-06-20"}).to_string(),
        StatusCode::UNPROCESSABLE_ENTITY, "wrong_coordinating_body").await;
    // removal_from_post for a member without a post: open a case (appends), then decide (must not).
    let case = "0190a000-0000-7000-8000-0000000c0de1";
    let r = http.post(format!("{base}/v1/discipline-cases")).json(&json!({
        "case_id": case, "term": "2020-2025", "unit": "tri-ton",
        "subject": {"kind": "member", "member": "ĐV-9001", "membership": "full", "holds_post": false},
        "basis": {"kind": "central_conclusion", "body": "central_inspection_commission", "reference": "KL-9 (giả định)"},
        "violation": {"committed_on": "2023-11-01"}, "opened_on": "2024-06-01"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let h = head(&http, &base).await;
    problem(
        &http,
        format!("{base}/v1/discipline-cases/{case}/decision"),
        &[],
        &json!({
        "form": "removal_from_post", "deciding_body": "provincial_standing_committee",
        "decided_on": "2024-06-20", "decision_ref": "QĐ (giả định)"})
        .to_string(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "removal_from_post_requires_post",
    )
    .await;
    // 503: the discipline service is down.
    stack.process("discipline").terminate();
    problem(
        &http,
        format!("{base}/v1/discipline-cases/{case}/close"),
        &[],
        r#"{"closed_on": "2024-06-21", "reason": "x"}"#,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    assert_eq!(
        head(&http, &base).await,
        h,
        "no error path appended anything"
    );

    // Idempotency-Key on a single command: the second answer is the first, nothing new.
    let body = json!({"term": "2020-2025", "unit": "an-phu", "from": "provincial_standing_committee",
        "to": "district_standing_committee:an-phu", "topic": "plan", "subject": "Kế hoạch 2025", "sent_on": "2025-01-06"});
    let send = || {
        http.post(format!("{base}/v1/exchanges"))
            .header("idempotency-key", "plan-2025-an-phu")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let h = head(&http, &base).await;
    let second = send().await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["event_ids"], first["event_ids"]);
    assert_eq!(head(&http, &base).await, h);

    // Timeline, newest first, paged.
    let page: TimelinePage = get(
        &http,
        format!("{base}/v1/districts/long-xuyen/timeline?limit=5&min_position={h}"),
    )
    .await;
    assert_eq!(page.entries.len(), 5);
    let cursor = page.next_before.clone().unwrap();
    let older: TimelinePage = get(
        &http,
        format!("{base}/v1/districts/long-xuyen/timeline?limit=5&before={cursor}"),
    )
    .await;
    assert!(
        older
            .entries
            .iter()
            .all(|e| !page.entries.iter().any(|p| p.event_id == e.event_id))
    );
    assert!(
        page.entries
            .iter()
            .any(|e| e.summary_vi.contains("Long Xuyên"))
            || older
                .entries
                .iter()
                .any(|e| e.summary_vi.contains("Long Xuyên"))
    );

    // The live event stream replays from a position.
    let response = http
        .get(format!("{base}/v1/events?after={}", h - 2))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = client.events(Some(h - 2)).await.unwrap();
    let e1 = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e1["position"]["commit"], h - 1);
    drop(response);

    // A rebuild equals the incrementally built model.
    let districts_before: DistrictList = get(
        &http,
        format!("{base}/v1/status/districts?term=2020-2025&min_position={h}"),
    )
    .await;
    let summary_before: Value =
        get(&http, format!("{base}/v1/status/province?term=2020-2025")).await;
    let rebuilds_before = get::<Value>(&http, format!("{base}/v1/projector")).await["rebuilds"]
        .as_u64()
        .unwrap();
    let started = stack
        .admin_http()
        .post(format!("{base}/v1/admin/rebuild"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let p: Value = get(&http, format!("{base}/v1/projector")).await;
        if p["rebuilding"] == false && p["position"].as_u64() >= Some(h) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "rebuild finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The rebuild really ran: a new generation replayed the whole log from 0 to h.
    let p: Value = get(&http, format!("{base}/v1/projector")).await;
    assert_eq!(p["rebuilds"], rebuilds_before + 1, "{p}");
    let last = &p["last_rebuild"];
    assert_eq!(last["generation"], rebuilds_before + 1, "{p}");
    assert_eq!(last["target_position"], h, "{p}");
    assert_eq!(last["completed"], true, "{p}");
    assert!(
        last["replayed"].as_u64().unwrap() >= h,
        "every commit replayed: {p}"
    );
    let districts_after: DistrictList =
        get(&http, format!("{base}/v1/status/districts?term=2020-2025")).await;
    let summary_after: Value =
        get(&http, format!("{base}/v1/status/province?term=2020-2025")).await;
    assert_eq!(districts_after, districts_before);
    assert_eq!(summary_after, summary_before);

    // The OpenAPI document lists every command route.
    let doc: Value = get(&http, format!("{base}/v1/openapi.json")).await;
    for route in coord_proto::ROUTES {
        assert!(
            doc["paths"][route.path]["post"].is_object(),
            "{} documented",
            route.path
        );
    }
    assert!(doc["components"]["schemas"]["ProvinceSummary"].is_object());
    assert!(doc["components"]["schemas"]["DecideDiscipline"].is_object());
}
