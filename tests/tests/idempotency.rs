//! Idempotency keys and log integrity end to end: real nats-server, command services,
//! projector and gateway, driven over HTTP; the JetStream stream itself is the witness
//! that nothing extra was appended.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::Stack;

/// The log's head, read from JetStream itself (not from any service).
async fn log_head(js: &async_nats::jetstream::Context) -> u64 {
    let mut stream = js.get_stream("COORD_LOG").await.unwrap();
    stream.info().await.unwrap().state.last_sequence
}

fn exchange(subject: &str) -> Value {
    json!({"term": "2020-2025", "unit": "an-phu", "from": "provincial_standing_committee",
        "to": "district_standing_committee:an-phu", "topic": "plan", "subject": subject,
        "sent_on": "2025-01-06"})
}

/// POSTs with an idempotency key; `http` carries the token of the office sending.
async fn post(http: &reqwest::Client, url: String, key: &str, body: &Value) -> (StatusCode, Value) {
    let r = http
        .post(url)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

fn assert_problem(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert_eq!(answer.1["type"], format!("urn:coord:problem:{code}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_key_is_refused_a_replay_answers_once_and_a_corrupt_entry_is_named() {
    let stack = Stack::start();
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    // The office comes from the token: the province's and An Phú's operators.
    let http = stack.http();
    let an_phu = stack.http_with(&stack.token("an-phu"));
    let nats = stack.nats.admin_client().await;
    let js = async_nats::jetstream::new(nats);

    // The first request under a key is applied.
    let first = post(
        &http,
        format!("{base}/v1/exchanges"),
        "plan-2025",
        &exchange("Kế hoạch 2025"),
    )
    .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    assert_eq!(first.1["duplicate"], false);
    let head = log_head(&js).await;
    assert_eq!(head, first.1["position"].as_u64().unwrap());

    // The same request again answers the first outcome, marked duplicate, with 200.
    let again = post(
        &http,
        format!("{base}/v1/exchanges"),
        "plan-2025",
        &exchange("Kế hoạch 2025"),
    )
    .await;
    assert_eq!(again.0, StatusCode::OK, "{}", again.1);
    assert_eq!(again.1["duplicate"], true);
    for field in ["event_ids", "position", "aggregate_id", "stream_version"] {
        assert_eq!(again.1[field], first.1[field], "{field}");
    }

    // The same key with a different body, another route, another aggregate: 422.
    let other_body = post(
        &http,
        format!("{base}/v1/exchanges"),
        "plan-2025",
        &exchange("Kế hoạch 2026"),
    )
    .await;
    assert_problem(
        &other_body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    assert!(other_body.1["detail"].as_str().unwrap().contains("body"));
    let other_route = post(
        &http,
        format!("{base}/v1/inspections"),
        "plan-2025",
        &json!({"term": "2020-2025", "unit": "an-phu", "kind": "inspection", "category": "compliance",
            "leading_body": "provincial_standing_committee", "coordinating_body": "district_standing_committee:an-phu",
            "target": "district_police:an-phu", "decision_ref": "x", "decided_on": "2024-06-01",
            "planned_start": "2024-06-10", "planned_end": "2024-06-20"}),
    )
    .await;
    assert_problem(
        &other_route,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let mut elsewhere = exchange("Kế hoạch 2025");
    elsewhere["exchange_id"] = json!("0190a000-0000-7000-8000-00000000e0e0");
    let other_aggregate = post(
        &http,
        format!("{base}/v1/exchanges"),
        "plan-2025",
        &elsewhere,
    )
    .await;
    assert_problem(
        &other_aggregate,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    assert_eq!(
        log_head(&js).await,
        head,
        "no refused request appended anything"
    );

    // Keys are scoped by office: another office's `plan-2025` is its own request (An
    // Phú sends as its own committee: an office acts only as itself).
    let mut from_an_phu = exchange("Kế hoạch 2025");
    from_an_phu["from"] = json!("district_standing_committee:an-phu");
    from_an_phu["to"] = json!("provincial_standing_committee");
    let district = post(
        &an_phu,
        format!("{base}/v1/exchanges"),
        "plan-2025",
        &from_an_phu,
    )
    .await;
    assert_eq!(district.0, StatusCode::CREATED, "{}", district.1);
    assert_ne!(district.1["aggregate_id"], first.1["aggregate_id"]);
    let head = log_head(&js).await;
    assert_eq!(head, district.1["position"].as_u64().unwrap());
    // Another office sending the province's command id (derived from its key, which
    // anyone can compute) as its own key is refused, and told nothing of the
    // province's request.
    let provinces = coord_proto::ids::command_id_from_key("province", "plan-2025");
    let probing = post(
        &an_phu,
        format!("{base}/v1/exchanges"),
        &provinces.to_string(),
        &from_an_phu,
    )
    .await;
    assert_problem(
        &probing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let detail = probing.1["detail"].as_str().unwrap();
    assert!(
        detail.contains("another office") && !detail.contains("body"),
        "{detail}"
    );
    assert_eq!(log_head(&js).await, head);

    // Something that is not a commit lands on the exchange's subject (published by the
    // NATS admin: no service user may write garbage there): the next command
    // on it is refused with `corrupt_stream`, naming the position, and appends nothing.
    let id = first.1["aggregate_id"].as_str().unwrap().to_owned();
    let poison = js
        .publish(
            format!("coord.log.province.exchange.{id}"),
            "{not a commit".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let ack = post(
        &an_phu,
        format!("{base}/v1/exchanges/{id}/acknowledge"),
        "ack-plan-2025",
        &json!({"by": "district_standing_committee:an-phu", "acknowledged_on": "2025-01-07"}),
    )
    .await;
    assert_problem(&ack, StatusCode::INTERNAL_SERVER_ERROR, "corrupt_stream");
    let detail = ack.1["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("log position {poison} ")),
        "the position is named: {detail}"
    );
    assert_eq!(
        log_head(&js).await,
        poison,
        "nothing appended after the poison"
    );
}
