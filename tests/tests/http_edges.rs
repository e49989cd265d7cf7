//! End to end through HTTP, every process real: the gateway's bounds (body limit,
//! wrong method, one timeout setting with no hidden NATS cap, capped event streams that
//! start at the head, resume from `Last-Event-ID` and never hold a shutdown back),
//! reading one record with its version as `ETag`, and people counted apart from
//! decisions.

use std::time::Duration;

use coord_proto::read::ProvinceSummary;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{ServiceProcess, Stack, free_port};

/// Waits (at most 30 s) until the gateway at `base` answers `/healthz` (no token).
async fn wait_healthy(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway at {base} did not start");
}

/// Checks that `r` is a problem document of `status` and `code`; returns it.
async fn expect_problem(r: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status(), status, "{}", r.url());
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    assert_eq!(p["status"], status.as_u16());
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
    p
}

fn inspection(unit: &str) -> Value {
    json!({
        "term": "2020-2025", "unit": unit, "kind": "supervision", "category": "thematic",
        "leading_body": "provincial_inspection_commission",
        "coordinating_body": format!("district_standing_committee:{unit}"),
        "target": format!("district_police:{unit}"), "decision_ref": "9-QĐ (giả định)",
        "decided_on": "2024-06-03", "planned_start": "2024-06-17", "planned_end": "2024-07-17"
    })
}

async fn post(http: &reqwest::Client, url: String, body: &Value) -> Value {
    let r = http.post(&url).json(body).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// One server-sent event: its `id` and its JSON data.
struct Sse {
    id: String,
    data: Value,
}

/// Reads the next event that carries data (keep-alive comments are skipped).
async fn next_event<B: AsRef<[u8]>>(
    bytes: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
    buffer: &mut String,
) -> Sse {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            };
            if let (Some(id), Some(data)) = (field("id:"), field("data:")) {
                return Sse {
                    id,
                    data: serde_json::from_str(&data).unwrap(),
                };
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), bytes.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream goes on")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(chunk.as_ref()).replace("\r\n", "\n"));
    }
}

async fn open_stream(
    http: &reqwest::Client,
    base: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = http.get(format!("{base}/v1/events"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_bounds_bodies_methods_waits_and_streams() {
    let mut stack = Stack::start();
    stack.wait_ready().await;
    // The gateway again, with small bounds: a 2 KiB body, one event stream, and a
    // timeout above the NATS client's default of 10 s.
    stack.process("gateway").terminate();
    let limits = [
        ("COORD_GATEWAY_MAX_BODY_BYTES", "2048"),
        ("COORD_GATEWAY_MAX_STREAMS", "1"),
        ("COORD_GATEWAY_TIMEOUT_MS", "12000"),
    ];
    let mut gateway = stack.spawn("gateway", &limits);
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    let http = stack.http();

    let first = post(
        &http,
        format!("{base}/v1/inspections"),
        &inspection("an-phu"),
    )
    .await;
    let id = first["aggregate_id"].as_str().unwrap().to_owned();
    let h = tests::log_head(&http, &base).await;

    // A body over the limit: 413, a problem, nothing appended.
    let mut big = inspection("tri-ton");
    big["decision_ref"] = json!("x".repeat(4096));
    let r = http
        .post(format!("{base}/v1/inspections"))
        .json(&big)
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert!(p["detail"].as_str().unwrap().contains("2048"), "{p}");
    assert_eq!(
        tests::log_head(&http, &base).await,
        h,
        "a refused body appends nothing"
    );

    // Wrong methods: 405, a problem, and `Allow` naming the right one.
    for (method, path, allowed) in [
        (
            reqwest::Method::DELETE,
            "/v1/inspections".to_owned(),
            "POST",
        ),
        (reqwest::Method::GET, "/v1/inspections".to_owned(), "POST"),
        (
            reqwest::Method::POST,
            format!("/v1/inspections/{id}"),
            "GET",
        ),
        (
            reqwest::Method::PUT,
            "/v1/status/province".to_owned(),
            "GET",
        ),
    ] {
        let r = http
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        let allow = r
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            allow.as_deref().is_some_and(|a| a.contains(allowed)),
            "{method} {path}: Allow {allow:?}"
        );
        expect_problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    }

    // The event stream starts at the head: the first event it gives is one appended
    // after it opened, not the log's first.
    let stream = open_stream(&http, &base, None).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let mut bytes = stream.bytes_stream();
    let mut buffer = String::new();
    // Only one stream is allowed: another is a 503 problem.
    expect_problem(
        open_stream(&http, &base, None).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_streams",
    )
    .await;
    let started = post(
        &http,
        format!("{base}/v1/inspections/{id}/start"),
        &json!({"started_on": "2024-06-17"}),
    )
    .await;
    let live = next_event(&mut bytes, &mut buffer).await;
    assert_eq!(live.data["position"]["commit"], started["position"]);
    assert_eq!(live.data["event_type"], "InspectionStarted");
    drop(bytes);

    // Resuming from `Last-Event-ID` gives exactly the events after it. The dropped
    // stream's permit comes back once the gateway sees the client gone.
    let first_id = format!("{}:0", first["position"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let resumed = loop {
        let r = open_stream(&http, &base, Some(&first_id)).await;
        if r.status() == StatusCode::OK {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed stream's permit never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut bytes = resumed.bytes_stream();
    let mut buffer = String::new();
    let after = next_event(&mut bytes, &mut buffer).await;
    assert!(
        after.data["position"]["commit"].as_u64() > first["position"].as_u64(),
        "resumed after {first_id}, got {}",
        after.id
    );
    expect_problem(
        http.get(format!("{base}/v1/events"))
            .header("last-event-id", "yesterday")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "bad_last_event_id",
    )
    .await;

    // An open stream does not hold a graceful shutdown back.
    assert!(
        gateway.terminate(),
        "the gateway did not stop cleanly with an event stream open"
    );
    drop(bytes);

    // One timeout setting governs: an answer after 10.5 s (beyond the NATS client's
    // default) still arrives when the setting is 12 s.
    let mut gateway = stack.spawn("gateway", &limits);
    stack.process("projector").terminate();
    // Standing in for the projector, as its NATS user.
    let nats = stack.nats.client_as("projector").await;
    let mut slow = nats.subscribe("coord.query.position").await.unwrap();
    let slow_nats = nats.clone();
    tokio::spawn(async move {
        while let Some(m) = slow.next().await {
            tokio::time::sleep(Duration::from_millis(10_500)).await;
            let answer = json!({"ok": {"position": 7, "dead_letters": 0, "rebuilding": false}});
            if let Some(reply) = m.reply {
                let _ = slow_nats.publish(reply, answer.to_string().into()).await;
            }
        }
    });
    // Something that never answers.
    let _silent = nats.subscribe("coord.query.districts").await.unwrap();
    nats.flush().await.unwrap();
    wait_healthy(&base).await;
    let r = http
        .get(format!("{base}/v1/projector"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "cut short by a hidden cap");
    assert_eq!(r.json::<Value>().await.unwrap()["position"], 7);

    // A wait that times out is a problem document (504), on a gateway with a short one.
    let port = free_port();
    let short = format!("http://127.0.0.1:{port}");
    let addr = format!("127.0.0.1:{port}");
    let _short_gateway: ServiceProcess = stack.spawn(
        "gateway",
        &[
            ("COORD_GATEWAY_ADDR", addr.as_str()),
            ("COORD_GATEWAY_TIMEOUT_MS", "500"),
        ],
    );
    wait_healthy(&short).await;
    let r = http
        .get(format!("{short}/v1/status/districts"))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::GATEWAY_TIMEOUT, "upstream_timeout").await;
    assert!(gateway.terminate());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_record_reads_with_its_version_as_etag_and_takes_it_back_as_if_match() {
    let stack = Stack::start();
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    let http = stack.http();
    let accepted = post(
        &http,
        format!("{base}/v1/inspections"),
        &inspection("an-phu"),
    )
    .await;
    let id = accepted["aggregate_id"].as_str().unwrap().to_owned();
    let url = format!("{base}/v1/inspections/{id}");

    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "\"1\"");
    let record: Value = r.json().await.unwrap();
    assert_eq!(
        (&record["kind"], &record["version"], &record["status"]),
        (&json!("inspection"), &json!(1), &json!("scheduled"))
    );
    assert_eq!(record["status_vi"], "đã quyết định");
    assert_eq!(record["fields"]["unit"], "an-phu");
    assert_eq!(record["position"], accepted["position"]);

    // The ETag goes back as If-Match; the next read is at the next version.
    let started = http
        .post(format!("{url}/start"))
        .header("if-match", "\"1\"")
        .json(&json!({"started_on": "2024-06-17"}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::OK);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["etag"], "\"2\"");
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["status"], "in_progress");
    assert_eq!(record["fields"]["started_on"], "2024-06-17");
    assert_eq!(record["history"].as_array().unwrap().len(), 2);
    // A stale ETag is refused.
    let stale = http
        .post(format!("{url}/cancel"))
        .header("if-match", "\"1\"")
        .json(&json!({"cancelled_on": "2024-06-20", "reason": "x"}))
        .send()
        .await
        .unwrap();
    expect_problem(stale, StatusCode::CONFLICT, "concurrent_modification").await;

    // Exchanges and discipline cases read the same way.
    let sent = post(
        &http,
        format!("{base}/v1/exchanges"),
        &json!({
        "term": "2020-2025", "unit": "an-phu", "from": "provincial_standing_committee",
        "to": "district_standing_committee:an-phu", "topic": "plan", "subject": "Kế hoạch 2025",
        "sent_on": "2025-01-06"}),
    )
    .await;
    let r = http
        .get(format!(
            "{base}/v1/exchanges/{}",
            sent["aggregate_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["etag"], "\"1\"");
    let record: Value = r.json().await.unwrap();
    assert_eq!(
        (&record["kind"], &record["status"]),
        (&json!("exchange"), &json!("sent"))
    );
    let case = open_case(&http, &base, "an-phu", "ĐV-77").await;
    decide(&http, &base, &case, "warning").await;
    let record: Value = http
        .get(format!("{base}/v1/discipline-cases/{case}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&record["status"], &record["version"]),
        (&json!("decided"), &json!(2))
    );
    assert_eq!(record["fields"]["form_in_force"], "warning");
    assert_eq!(record["fields"]["subject"]["member"], "ĐV-77");

    // Unknown and malformed ids.
    let unknown = "0190a000-0000-7000-8000-00000000beef";
    for (path, code) in [
        ("inspections", "inspection_not_found"),
        ("exchanges", "exchange_not_found"),
        ("discipline-cases", "case_not_found"),
    ] {
        let r = http
            .get(format!("{base}/v1/{path}/{unknown}"))
            .send()
            .await
            .unwrap();
        expect_problem(r, StatusCode::NOT_FOUND, code).await;
    }
    let r = http
        .get(format!("{base}/v1/inspections/nope"))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::BAD_REQUEST, "bad_id").await;

    // The OpenAPI document lists the record routes.
    let doc: Value = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in ["inspections", "exchanges", "discipline-cases"] {
        assert!(
            doc["paths"][format!("/v1/{path}/{{id}}")]["get"].is_object(),
            "{path}"
        );
    }
    assert!(doc["components"]["schemas"]["RecordView"].is_object());

    // `coordctl show` prints it with Vietnamese labels.
    let client = stack.client();
    let record = client
        .record(coordctl::client::RecordKind::Inspection, &id)
        .await
        .unwrap();
    let table = coordctl::render::record(&record);
    assert!(table.contains("Trạng thái (status)"), "{table}");
    assert!(table.contains("đang tiến hành (in_progress)"), "{table}");
    assert!(table.contains("Ngày bắt đầu (started_on)"), "{table}");
    // Values as the offices write them, the labels the web console uses.
    assert!(table.contains("An Phú"), "{table}");
    assert!(table.contains("Ban Thường vụ Huyện ủy An Phú"), "{table}");
    let history = coordctl::render::record_history(&record);
    assert!(
        history.contains("Quyết định kiểm tra, giám sát (InspectionScheduled)"),
        "{history}"
    );
}

async fn open_case(http: &reqwest::Client, base: &str, unit: &str, member: &str) -> String {
    let case = uuid::Uuid::now_v7().to_string();
    post(http, format!("{base}/v1/discipline-cases"), &json!({
        "case_id": case, "term": "2020-2025", "unit": unit,
        "subject": {"kind": "member", "member": member, "membership": "full", "holds_post": false},
        "basis": {"kind": "central_conclusion", "body": "central_inspection_commission", "reference": "KL-9 (giả định)"},
        "violation": {"committed_on": "2023-11-01"}, "opened_on": "2024-06-01"})).await;
    case
}

async fn decide(http: &reqwest::Client, base: &str, case: &str, form: &str) -> u64 {
    let a = post(
        http,
        format!("{base}/v1/discipline-cases/{case}/decision"),
        &json!({
        "form": form, "deciding_body": "provincial_standing_committee",
        "decided_on": "2024-06-20", "decision_ref": "QĐ-9 (giả định)"}),
    )
    .await;
    a["position"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_disciplined_in_two_cases_is_one_person_and_two_decisions() {
    let stack = Stack::start();
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    let http = stack.http();

    // Given ĐV-7 disciplined in Long Xuyên and in Châu Đốc, ĐV-8 in Long Xuyên, and
    // ĐV-9's case still open.
    let twice_a = open_case(&http, &base, "long-xuyen", "ĐV-7").await;
    let twice_b = open_case(&http, &base, "chau-doc", "ĐV-7").await;
    let once = open_case(&http, &base, "long-xuyen", "ĐV-8").await;
    open_case(&http, &base, "long-xuyen", "ĐV-9").await;
    decide(&http, &base, &twice_a, "reprimand").await;
    decide(&http, &base, &twice_b, "warning").await;
    let last = decide(&http, &base, &once, "reprimand").await;

    // Then the province counts two members and three decisions.
    let s: ProvinceSummary = http
        .get(format!(
            "{base}/v1/status/province?term=2020-2025&min_position={last}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = s.discipline;
    assert_eq!((d.members_disciplined, d.member_decisions), (2, 3));
    assert_eq!(d.members.reprimand + d.members.warning, 3);
    assert_eq!(d.open_cases, 1);
    // And each district its own people.
    let district: Value = http
        .get(format!("{base}/v1/status/districts/long-xuyen"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(district["discipline"]["members_disciplined"], 2);
    assert_eq!(district["discipline"]["member_decisions"], 2);

    // coordctl shows both figures.
    let client = stack.client();
    let districts = client.districts(Some("2020-2025")).await.unwrap();
    let table = coordctl::render::summary(&s, &districts.districts);
    let row = |label: &str| {
        table
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no `{label}` row in\n{table}"))
            .to_owned()
    };
    assert!(row("Bị kỷ luật").contains("0 / 2"), "{table}");
    assert!(
        row("Quyết định kỷ luật: tổ chức").contains("0 / 3"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_past_the_services_deadline_is_a_timeout_problem_and_appends_nothing() {
    let mut stack = Stack::start();
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    let http = stack.http();
    let h = tests::log_head(&http, &base).await;
    // An inspection service whose deadline has passed before the log can even answer.
    stack.process("inspection").terminate();
    let _inspection = stack.spawn("inspection", &[("COORD_REQUEST_DEADLINE_MS", "0")]);
    stack.wait_ready().await;
    let r = http
        .post(format!("{base}/v1/inspections"))
        .json(&inspection("an-phu"))
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, StatusCode::GATEWAY_TIMEOUT, "command_timeout").await;
    assert_eq!(p["kind"], "timeout");
    assert_eq!(tests::log_head(&http, &base).await, h, "nothing appended");
}
