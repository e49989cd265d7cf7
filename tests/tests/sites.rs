//! A site knows whom it hosts (issue 14), end to end with real nats-servers and every
//! service as a process. A hub and two offices: a district's token is refused at the
//! hub's gateway and at another office's (403 `office_not_hosted_here`, naming the site
//! that hosts it), and so is the province's at an office; the command services refuse a
//! request for an office their site does not host even when it reaches them over NATS;
//! every `/v1/admin` route and the redrive need an admin token of the site's own office
//! (a hub-hosted district's operator or admin, the province's operator: 403); the
//! hub refuses to import another site's events. No refusal appends anything at any
//! office; the site's own admin is accepted.
//!
//! Import (single server): only an admin of the site's office may, and only what the
//! domain decides again exactly (a conclusion before the inspection started, a decision
//! by a body without authority, an event sent as another office: refused, the whole
//! request, nothing appended); what it decides is appended, once.

use std::time::Duration;

use coord_auth::{Role, TokenSigner};
use coord_log::{EventPosition, RecordedEvent};
use coordctl::offices::Site;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::offices::{OfficeStack, converge, office_stack, start};
use tests::{Stack, log_head};
use uuid::Uuid;

/// A token of `office` with `role`, signed by `signer`.
fn token(signer: &TokenSigner, office: &str, role: Role) -> String {
    let claims = TokenSigner::claims_now(office.parse().unwrap(), "cán bộ", role);
    signer.sign(&claims).unwrap()
}

/// POSTs `body` (JSON, or NDJSON text) to `url` with `token`: status and problem.
async fn post(url: &str, token: &str, body: Body) -> (StatusCode, Value) {
    let request = reqwest::Client::new().post(url).bearer_auth(token);
    let request = match body {
        Body::Json(v) => request.json(&v),
        Body::Text(t) => request.body(t),
    };
    let r = request.send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

enum Body {
    Json(Value),
    Text(String),
}

fn assert_refused(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
}

fn report(unit: &str) -> Value {
    json!({"term": "2020-2025", "unit": unit, "from": format!("district_standing_committee:{unit}"),
        "to": "provincial_standing_committee", "topic": "other",
        "subject": "Báo cáo quý I", "sent_on": "2024-03-01"})
}

fn schedule(id: Uuid, unit: &str) -> Value {
    json!({"inspection_id": id, "term": "2020-2025", "unit": unit, "kind": "inspection",
        "category": "compliance", "leading_body": "provincial_standing_committee",
        "coordinating_body": format!("district_standing_committee:{unit}"),
        "target": format!("district_police:{unit}"), "decision_ref": "QĐ (giả định)",
        "decided_on": "2024-06-01", "planned_start": "2024-06-10", "planned_end": "2024-06-20"})
}

/// One exported event as an import line: the only event of commit `commit`, at
/// `version` of `stream`, recorded for `office`.
fn line(stream: &str, version: u64, commit: u64, office: &str, ty: &str, data: Value) -> String {
    let on = [
        "decided_on",
        "started_on",
        "concluded_on",
        "opened_on",
        "sent_on",
    ]
    .iter()
    .find_map(|k| data[k].as_str())
    .expect("a business date");
    let cause = Uuid::now_v7();
    let event = RecordedEvent {
        event_id: Uuid::now_v7(),
        stream_id: stream.parse().unwrap(),
        stream_version: version,
        event_type: ty.into(),
        schema_version: 1,
        occurred_at: on.parse().unwrap(),
        recorded_at: chrono::Utc::now(),
        office: office.into(),
        actor: "nhập dữ liệu".into(),
        correlation_id: cause,
        causation_id: cause,
        role: Some("operator".into()),
        payload: data,
        position: Some(EventPosition { commit, index: 0 }),
    };
    let ce = coord_feed::CloudEvent::from_recorded(&event, "http://127.0.0.1").unwrap();
    serde_json::to_string(&ce).unwrap() + "\n"
}

/// An inspection's scheduling, as an import line.
fn scheduled(id: Uuid, commit: u64, office: &str) -> String {
    let stream = format!("inspection-{id}");
    let data = schedule(id, "an-phu");
    line(&stream, 1, commit, office, "InspectionScheduled", data)
}

/// Every office's log head, each read at its own gateway with its own token.
async fn heads(stacks: &[&OfficeStack]) -> Vec<u64> {
    let mut all = Vec::new();
    for s in stacks {
        all.push(log_head(&tests::offices::http_with(&s.token), &s.url).await);
    }
    all
}

/// The routes under `/v1/admin` the gateway's OpenAPI document lists, and the redrive.
async fn operations(hub: &OfficeStack) -> Vec<String> {
    let doc: Value = tests::offices::http_with(&hub.token)
        .get(format!("{}/v1/openapi.json", hub.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.starts_with("/v1/admin/"))
        .cloned()
        .collect();
    assert!(routes.len() >= 2, "{routes:?}");
    routes.push("/v1/dead-letters/1:0/redrive".into());
    routes
}

/// A command request for `office` straight to the command services of `site`, as its
/// gateway's NATS user: the second line of defence.
async fn command_over_nats(
    site: &Site,
    office: &str,
    mut payload: Value,
) -> coord_proto::CommandReply {
    payload["exchange_id"] = json!(Uuid::now_v7());
    let client = tests::offices::client_as(site, "gateway").await;
    let mut request = tests::request(payload);
    request.office = office.into();
    tests::send_command(&client, "exchange", "send", &request).await
}

fn refusal_code(reply: &coord_proto::CommandReply) -> &str {
    match reply {
        coord_proto::CommandReply::Error(e) => &e.code,
        coord_proto::CommandReply::Accepted(a) => panic!("accepted: {a:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_takes_only_the_offices_it_hosts_and_only_its_own_admin_changes_it() {
    let running = start(&["long-xuyen", "chau-doc"]).await;
    let signer = TokenSigner::generate();
    let mut stacks = Vec::new();
    for site in running.sites() {
        stacks.push(office_stack(site, &signer).await);
    }
    let (hub, lx, cd) = (&stacks[0], &stacks[1], &stacks[2]);
    let (hub_site, lx_site) = (&running.topology.hub, &running.topology.offices[0]);
    // Something to keep: one record of the province and one of Long Xuyên, everywhere.
    let at = |s: &OfficeStack, path: &str| format!("{}{path}", s.url);
    let sent = post(
        &at(hub, "/v1/inspections"),
        &hub.token,
        Body::Json(schedule(Uuid::now_v7(), "an-phu")),
    )
    .await;
    assert_eq!(sent.0, StatusCode::CREATED, "{}", sent.1);
    let sent = post(
        &at(lx, "/v1/exchanges"),
        &lx.token,
        Body::Json(report("long-xuyen")),
    )
    .await;
    assert_eq!(sent.0, StatusCode::CREATED, "{}", sent.1);
    converge(&running, 2, Duration::from_secs(60)).await;
    let before = heads(&[hub, lx, cd]).await;

    // A district's token at the hub and at another office, the province's at an office.
    let lx_operator = token(&signer, "district:long-xuyen", Role::Operator);
    let report_lx = || Body::Json(report("long-xuyen"));
    for url in [at(hub, "/v1/exchanges"), at(cd, "/v1/exchanges")] {
        let refused = post(&url, &lx_operator, report_lx()).await;
        assert_refused(&refused, StatusCode::FORBIDDEN, "office_not_hosted_here");
        let detail = refused.1["detail"].as_str().unwrap();
        assert!(
            detail.contains("hosted at the site of office district:long-xuyen"),
            "{detail}"
        );
    }
    // Reads too: a site serves only the offices it hosts.
    let read = tests::offices::http_with(&lx_operator)
        .get(at(hub, "/v1/status/province"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::FORBIDDEN);
    // The audit trail of an office another site hosts is exported there: this site's
    // events beside that office's tree would not match.
    let export = tests::offices::http_with(&lx.token)
        .get(at(lx, "/v1/audit/export?office=province"))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::FORBIDDEN);
    let problem: Value = export.json().await.unwrap();
    assert_eq!(problem["code"], "office_not_hosted_here", "{problem}");
    let province = token(&signer, "province", Role::Operator);
    let body = Body::Json(schedule(Uuid::now_v7(), "an-phu"));
    let refused = post(&at(lx, "/v1/inspections"), &province, body).await;
    assert_refused(&refused, StatusCode::FORBIDDEN, "office_not_hosted_here");
    assert!(
        refused.1["detail"]
            .as_str()
            .unwrap()
            .contains("site of office province")
    );

    // Over NATS, past the gateway: each site's command services refuse the same.
    let at_hub = command_over_nats(hub_site, "district:long-xuyen", report("long-xuyen")).await;
    assert_eq!(refusal_code(&at_hub), "office_not_hosted_here");
    let notice = json!({"term": "2020-2025", "unit": "long-xuyen",
        "from": "provincial_standing_committee", "to": "district_standing_committee:long-xuyen",
        "topic": "plan", "subject": "Kế hoạch", "sent_on": "2024-03-02"});
    let at_office = command_over_nats(lx_site, "province", notice).await;
    assert_eq!(refusal_code(&at_office), "office_not_hosted_here");

    // Every operation at the hub: a hub-hosted district's operator and admin, the
    // province's operator, another site's admin: refused.
    let refusals = [
        (
            token(&signer, "district:an-phu", Role::Operator),
            "role_cannot_operate",
        ),
        (
            token(&signer, "district:an-phu", Role::Admin),
            "admin_of_another_office",
        ),
        (province.clone(), "role_cannot_operate"),
        (lx.admin.clone(), "office_not_hosted_here"),
    ];
    let routes = operations(hub).await;
    for route in &routes {
        for (token, code) in &refusals {
            let refused = post(&at(hub, route), token, Body::Text(String::new())).await;
            assert_refused(&refused, StatusCode::FORBIDDEN, code);
        }
    }
    // The hub's admin importing Long Xuyên's own report: not the hub's to append.
    let exchange = Uuid::now_v7();
    let mut data = report("long-xuyen");
    data["exchange_id"] = json!(exchange);
    let stream = format!("exchange-{exchange}");
    let theirs = line(
        &stream,
        1,
        1,
        "district:long-xuyen",
        "InformationExchanged",
        data,
    );
    let refused = post(&at(hub, "/v1/admin/import"), &hub.admin, Body::Text(theirs)).await;
    assert_refused(&refused, StatusCode::FORBIDDEN, "office_not_hosted_here");
    tokio::time::sleep(Duration::from_millis(500)).await; // anything would have replicated
    assert_eq!(
        heads(&[hub, lx, cd]).await,
        before,
        "no refusal appended anything"
    );

    // The site's own admin: accepted, on every route.
    for route in &routes {
        let answer = post(&at(hub, route), &hub.admin, Body::Text(String::new())).await;
        assert!(
            ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&answer.0),
            "{route}: {answer:?}"
        );
    }
    let ours = scheduled(Uuid::now_v7(), 1, "province");
    let imported = post(&at(hub, "/v1/admin/import"), &hub.admin, Body::Text(ours)).await;
    assert_eq!(imported.0, StatusCode::OK, "{}", imported.1);
    assert_eq!(imported.1["commits"], 1, "{}", imported.1);

    // Châu Đốc's site holds what it sourced, nothing of its own (as one restored from
    // the hub): the first request of an import (`fresh`) is taken; once it has its
    // own events, refused.
    let own = |commit: u64| {
        let exchange = Uuid::now_v7();
        let mut data = report("chau-doc");
        data["exchange_id"] = json!(exchange);
        let stream = format!("exchange-{exchange}");
        line(
            &stream,
            1,
            commit,
            "district:chau-doc",
            "InformationExchanged",
            data,
        )
    };
    let fresh = format!("{}?fresh=true", at(cd, "/v1/admin/import"));
    let first = post(&fresh, &cd.admin, Body::Text(own(1))).await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    let again = post(&fresh, &cd.admin, Body::Text(own(2))).await;
    assert_refused(&again, StatusCode::CONFLICT, "log_not_empty");
    let rebuilt = post(
        &at(lx, "/v1/admin/rebuild"),
        &lx.admin,
        Body::Text(String::new()),
    )
    .await;
    assert_eq!(rebuilt.0, StatusCode::ACCEPTED, "{}", rebuilt.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_appends_only_what_the_domain_decides_for_the_offices_this_site_hosts() {
    let stack = Stack::start();
    stack.wait_ready().await;
    let import = format!("{}/v1/admin/import", stack.gateway_url);
    let admin = stack.admin_token();
    let head = || async { log_head(&stack.admin_http(), &stack.gateway_url).await };
    let inspection = Uuid::now_v7();
    let stream = format!("inspection-{inspection}");
    let started = json!({"inspection_id": inspection, "started_on": "2024-06-10"});
    let concluded = json!({"inspection_id": inspection, "concluded_on": "2024-07-01",
        "outcome": "no_violation", "summary": "Không vi phạm", "conclusion_ref": "TB (giả định)"});
    let good = [
        scheduled(inspection, 1, "province"),
        line(&stream, 2, 2, "province", "InspectionStarted", started),
        line(
            &stream,
            3,
            3,
            "province",
            "InspectionConcluded",
            concluded.clone(),
        ),
    ]
    .concat();

    // An operator of another office, and its admin: refused.
    for (office, role, code) in [
        ("district:long-xuyen", Role::Operator, "role_cannot_operate"),
        (
            "district:long-xuyen",
            Role::Admin,
            "admin_of_another_office",
        ),
        ("province", Role::Operator, "role_cannot_operate"),
    ] {
        let token = stack.sign(office, "cán bộ", role);
        let refused = post(&import, &token, Body::Text(good.clone())).await;
        assert_refused(&refused, StatusCode::FORBIDDEN, code);
    }

    // A conclusion before the inspection was started (after a valid scheduling: the
    // whole request is refused).
    let early = [
        scheduled(inspection, 1, "province"),
        line(&stream, 2, 2, "province", "InspectionConcluded", concluded),
    ]
    .concat();
    let refused = post(&import, &admin, Body::Text(early)).await;
    assert_refused(&refused, StatusCode::CONFLICT, "invalid_transition");

    // The provincial inspection commission dissolving an organization, which it may
    // not decide (it reprimands or warns organizations).
    let case = Uuid::now_v7();
    let case_stream = format!("discipline-{case}");
    let opened = json!({"case_id": case, "term": "2020-2025", "unit": "tri-ton",
        "subject": {"kind": "organization", "name": "Chi bộ (giả định)"},
        "basis": {"kind": "central_conclusion", "body": "central_inspection_commission", "reference": "KL-8 (giả định)"},
        "violation": {"committed_on": "2023-10-01"}, "opened_on": "2024-06-01"});
    let decided = json!({"case_id": case, "form": "dissolution",
        "deciding_body": "provincial_inspection_commission", "decided_on": "2024-06-20",
        "decision_ref": "QĐ-8 (giả định)"});
    let unauthorized = [
        line(
            &case_stream,
            1,
            4,
            "province",
            "DisciplineCaseOpened",
            opened,
        ),
        line(&case_stream, 2, 5, "province", "DisciplineDecided", decided),
    ]
    .concat();
    let refused = post(&import, &admin, Body::Text(unauthorized)).await;
    assert_refused(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "deciding_body_without_authority",
    );

    // The province's scheduling recorded as Long Xuyên's.
    let as_other = scheduled(inspection, 1, "district:long-xuyen");
    let refused = post(&import, &admin, Body::Text(as_other)).await;
    assert_refused(&refused, StatusCode::FORBIDDEN, "acting_for_another_office");
    assert_eq!(head().await, 0, "no refusal appended anything");

    // What the domain decides is appended, once.
    let imported = post(&import, &admin, Body::Text(good.clone())).await;
    assert_eq!(imported.0, StatusCode::OK, "{}", imported.1);
    assert_eq!(
        (
            imported.1["commits"].as_u64(),
            imported.1["duplicates"].as_u64()
        ),
        (Some(3), Some(0))
    );
    let again = post(&import, &admin, Body::Text(good)).await;
    assert_eq!(again.1["duplicates"], 3, "{}", again.1);
    assert_eq!(head().await, 3);
}
