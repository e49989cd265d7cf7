//! An office acts only as itself, end to end with real processes: HTTP requests need a
//! signed token whose office and actor are the ones recorded; a token acting for
//! another office, a reader's token, a missing or foreign token are refused with
//! problem documents; NATS admits no anonymous client and a process's own user can
//! neither delete nor purge the log nor write where it may not. Nothing is appended or
//! removed by any refusal.

use std::time::Duration;

use coord_auth::Role;
use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::{EventLog, StreamId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{NatsServer, Stack};

async fn log_head(nats: &NatsServer) -> u64 {
    let log = JetStreamLog::open(nats.admin_client().await, JetStreamConfig::default())
        .await
        .unwrap();
    log.head().await.unwrap().map_or(0, |p| p.commit)
}

/// Sends `body` to `path` with `token` (if any) and returns status and JSON body.
async fn post(
    base: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn assert_problem(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert_eq!(answer.1["status"], status.as_u16());
}

fn schedule(unit: &str) -> Value {
    json!({
        "term": "2020-2025", "unit": unit, "kind": "inspection", "category": "compliance",
        "leading_body": "provincial_standing_committee",
        "coordinating_body": format!("district_standing_committee:{unit}"),
        "target": format!("district_police:{unit}"), "decision_ref": "QĐ (giả định)",
        "decided_on": "2024-06-01", "planned_start": "2024-06-10", "planned_end": "2024-06-20"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_callers_act_only_as_their_token_says_and_refusals_append_nothing() {
    let stack = Stack::start();
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    let (province, long_xuyen, chau_doc) = (
        stack.token("province"),
        stack.token("long-xuyen"),
        stack.token("chau-doc"),
    );

    // The province informs Châu Đốc (accepted: this is what the refusals must not touch).
    let exchange = "0190a000-0000-7000-8000-00000000e001";
    let sent = post(
        &base,
        "/v1/exchanges",
        Some(&province),
        &[],
        json!({
        "exchange_id": exchange, "term": "2020-2025", "unit": "chau-doc",
        "from": "provincial_standing_committee", "to": "district_standing_committee:chau-doc",
        "topic": "plan", "subject": "Kế hoạch 2025", "sent_on": "2025-01-06"}),
    )
    .await;
    assert_eq!(sent.0, StatusCode::CREATED, "{}", sent.1);
    let head = log_head(&stack.nats).await;

    // No token, a malformed header, a token from another key: 401.
    let missing = post(&base, "/v1/inspections", None, &[], schedule("an-phu")).await;
    assert_problem(&missing, StatusCode::UNAUTHORIZED, "missing_token");
    let r = reqwest::get(format!("{base}/v1/status/province"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let basic = reqwest::Client::new()
        .get(format!("{base}/v1/units"))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let foreign = coord_auth::TokenSigner::generate()
        .sign(&coord_auth::TokenSigner::claims_now(
            coord_domain::Office::Province,
            "kẻ mạo danh",
            Role::Operator,
        ))
        .unwrap();
    let forged = post(
        &base,
        "/v1/inspections",
        Some(&foreign),
        &[],
        schedule("an-phu"),
    )
    .await;
    assert_problem(&forged, StatusCode::UNAUTHORIZED, "invalid_token");
    // The stack's own key, but expired a second ago: 401 token_expired.
    let signer = coordctl::tokens::signer(&stack.credentials_dir()).unwrap();
    let mut claims = coord_auth::TokenSigner::claims_now(
        coord_domain::Office::Province,
        "hết hạn",
        Role::Operator,
    );
    claims.iat -= 3601;
    let expired = signer
        .sign(&claims.valid_for(Duration::from_secs(3600)))
        .unwrap();
    let late = post(
        &base,
        "/v1/inspections",
        Some(&expired),
        &[],
        schedule("an-phu"),
    )
    .await;
    assert_problem(&late, StatusCode::UNAUTHORIZED, "token_expired");

    // A district scheduling as the provincial standing committee: 403.
    let as_province = post(
        &base,
        "/v1/inspections",
        Some(&long_xuyen),
        &[("x-office", "province")],
        schedule("long-xuyen"),
    )
    .await;
    assert_problem(
        &as_province,
        StatusCode::FORBIDDEN,
        "acting_for_another_office",
    );

    // Long Xuyên acknowledging for Châu Đốc: 403.
    let ack =
        json!({"by": "district_standing_committee:chau-doc", "acknowledged_on": "2025-01-08"});
    let path = format!("/v1/exchanges/{exchange}/acknowledge");
    let for_other = post(&base, &path, Some(&long_xuyen), &[], ack.clone()).await;
    assert_problem(
        &for_other,
        StatusCode::FORBIDDEN,
        "acting_for_another_office",
    );

    // A reader sends nothing, but reads.
    let reader = stack.sign("district:chau-doc", "thanh tra viên", Role::Reader);
    let by_reader = post(&base, &path, Some(&reader), &[], ack.clone()).await;
    assert_problem(
        &by_reader,
        StatusCode::FORBIDDEN,
        "role_cannot_send_commands",
    );
    let read = stack
        .http_with(&reader)
        .get(format!("{base}/v1/units"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let rebuild = post(&base, "/v1/admin/rebuild", Some(&reader), &[], json!({})).await;
    assert_problem(&rebuild, StatusCode::FORBIDDEN, "role_cannot_operate");
    let redrive = post(
        &base,
        &format!("/v1/dead-letters/{head}:0/redrive"),
        Some(&reader),
        &[],
        json!({}),
    )
    .await;
    assert_problem(&redrive, StatusCode::FORBIDDEN, "role_cannot_operate");

    // Health stays open.
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    assert_eq!(
        log_head(&stack.nats).await,
        head,
        "no refusal appended anything"
    );

    // Châu Đốc acknowledges as itself; headers claiming otherwise change nothing.
    let own = post(
        &base,
        &path,
        Some(&chau_doc),
        &[("x-office", "province"), ("x-actor", "someone else")],
        ack,
    )
    .await;
    assert_eq!(own.0, StatusCode::OK, "{}", own.1);
    let log = JetStreamLog::open(stack.nats.admin_client().await, JetStreamConfig::default())
        .await
        .unwrap();
    let events = log
        .read_stream(&StreamId::new("exchange", exchange).unwrap())
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "the province's stream has one writer");
    assert_eq!(events[0].office, "province");
    let receipt = coord_proto::ids::receipt_id(exchange.parse().unwrap());
    let receipts = log
        .read_stream(&StreamId::new("receipt", receipt).unwrap())
        .await
        .unwrap();
    let last = receipts.last().unwrap();
    assert_eq!(last.event_type, "InformationAcknowledged");
    assert_eq!(last.office, "district:chau-doc");
    assert_eq!(last.actor, "văn phòng cấp ủy Châu Đốc");
}

#[tokio::test]
async fn nats_admits_no_anonymous_client_and_no_process_user_can_remove_or_forge_the_log() {
    let nats = NatsServer::start();
    let admin = nats.admin_client().await;
    let log = JetStreamLog::open(admin.clone(), JetStreamConfig::default())
        .await
        .unwrap();
    let (stream, event) = tests::inspection_scheduled(0);
    log.append(&stream, coord_log::ExpectedVersion::NoStream, vec![event])
        .await
        .unwrap();
    let head = log.head().await.unwrap().unwrap().commit;

    // Anonymous: refused at connect.
    let anonymous = async_nats::ConnectOptions::new()
        .max_reconnects(Some(1))
        .connect(nats.url())
        .await;
    assert!(anonymous.is_err(), "an anonymous client connected");

    // A command service's user: no delete, no purge of the log.
    let js = async_nats::jetstream::new(nats.client_as("inspection").await);
    assert!(
        js.delete_stream("COORD_LOG").await.is_err(),
        "deleted the log"
    );
    let stream_handle = js.get_stream("COORD_LOG").await.unwrap();
    assert!(stream_handle.purge().await.is_err(), "purged the log");
    assert!(
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "OTHER".into(),
            subjects: vec!["other.>".into()],
            ..Default::default()
        })
        .await
        .is_err(),
        "created a stream"
    );

    // The gateway's and the reader's users cannot write the log.
    for user in ["gateway", "reader", "projector"] {
        let js = async_nats::jetstream::new(nats.client_as(user).await);
        let forged = tokio::time::timeout(Duration::from_secs(3), async {
            js.publish("coord.log.inspection.forged", "{}".into())
                .await?
                .await
        })
        .await;
        assert!(
            !matches!(forged, Ok(Ok(_))),
            "{user} appended to the log: {forged:?}"
        );
    }

    assert_eq!(
        log.head().await.unwrap().unwrap().commit,
        head,
        "the log kept exactly what it had"
    );
    let commits = tests::log_commits(&async_nats::jetstream::new(admin), "COORD_LOG").await;
    assert_eq!(commits, 1);
}
