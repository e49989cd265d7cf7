//! The Party's rules end to end through HTTP (real nats-server, services, projector,
//! gateway): a conclusion after the term does not cover its unit; a decision by a body
//! without authority, an appeal resolved by a body that is not above the deciding one,
//! a decision past the time limit, a command dated after a unit ceased to exist, a case
//! on an inspection that is not in the log, and a malformed date are each refused with
//! their code and append nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::Stack;

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// The same gateway, with the operator token of office `slug` (each office acts
    /// only as itself: a district body's decision is sent by that district's office).
    fn as_office(&self, stack: &Stack, slug: &str) -> Api {
        Api {
            http: stack.http_with(&stack.token(slug)),
            base: self.base.clone(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    /// POSTs a command that must be accepted; returns its log position.
    async fn ok(&self, path: &str, body: Value) -> u64 {
        let (status, answer) = self.post(path, body).await;
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer["position"].as_u64().unwrap()
    }

    async fn head(&self) -> u64 {
        tests::log_head(&self.http, &self.base).await
    }

    /// POSTs a command that must be refused with `status` and `code`, appending nothing.
    async fn refused(&self, path: &str, body: Value, status: StatusCode, code: &str) -> Value {
        let before = self.head().await;
        let (got, problem) = self.post(path, body).await;
        assert_eq!(got, status, "{path}: {problem}");
        assert_eq!(problem["code"], code, "{problem}");
        assert_eq!(self.head().await, before, "{code}: nothing appended");
        problem
    }
}

fn case(id: &str, unit: &str, holds_post: bool, committed_on: &str, opened_on: &str) -> Value {
    json!({
        "case_id": id, "term": "2020-2025", "unit": unit,
        "subject": {"kind": "member", "member": "ĐV-8001", "membership": "full", "holds_post": holds_post},
        "basis": {"kind": "central_conclusion", "body": "central_inspection_commission", "reference": "KL-8 (giả định)"},
        "violation": {"committed_on": committed_on}, "opened_on": opened_on
    })
}

fn decision(form: &str, body: &str, on: &str) -> Value {
    json!({"form": form, "deciding_body": body, "decided_on": on, "decision_ref": "QĐ-8 (giả định)"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partys_rules_hold_through_http() {
    let stack = Stack::start();
    stack.wait_ready().await;
    let api = Api {
        http: stack.http(),
        base: stack.gateway_url.clone(),
    };

    // An inspection of An Phú started in the term and concluded in 2026: recorded, shown
    // as concluded after the term, and An Phú stays uncovered.
    let insp = "0190a000-0000-7000-8000-00000000e2e1";
    api.ok("/v1/inspections", json!({
        "inspection_id": insp, "term": "2020-2025", "unit": "an-phu", "kind": "inspection",
        "category": "compliance", "leading_body": "provincial_standing_committee",
        "coordinating_body": "district_standing_committee:an-phu", "target": "district_police:an-phu",
        "decision_ref": "QĐ-KT (giả định)", "decided_on": "2025-01-06",
        "planned_start": "2025-01-15", "planned_end": "2025-02-20"})).await;
    api.ok(
        &format!("/v1/inspections/{insp}/start"),
        json!({"started_on": "2025-01-15"}),
    )
    .await;
    // Issue 6: a date that does not exist is a 400 naming the field and the value.
    let problem = api
        .refused(
            &format!("/v1/inspections/{insp}/conclude"),
            json!({"concluded_on": "2023-02-30", "outcome": "shortcomings", "summary": "x", "conclusion_ref": "TB"}),
            StatusCode::BAD_REQUEST,
            "malformed_command",
        )
        .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("`concluded_on`: 2023-02-30 is not a valid date"),
        "{problem}"
    );
    let at = api
        .ok(
            &format!("/v1/inspections/{insp}/conclude"),
            json!({"concluded_on": "2026-01-10", "outcome": "shortcomings", "summary": "Kết luận muộn", "conclusion_ref": "TB-KT (giả định)"}),
        )
        .await;
    let district: Value = api
        .http
        .get(format!(
            "{}/v1/status/districts/an-phu?term=2020-2025&min_position={at}",
            api.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(district["covered"], false, "{district}");
    assert_eq!(district["concluded_after_term"], 1, "{district}");
    assert_eq!(district["inspections"]["concluded"], 1, "{district}");

    // Authority (Điều lệ Đảng art. 36, 38; Quy định 22-QĐ/TW art. 12): the provincial
    // inspection commission reprimands or warns an organization, it does not dissolve
    // one. (A district body's decision on a case the province opened is the province's
    // stream, which only the province appends to: `stream_of_another_office`.)
    let c0 = "0190a000-0000-7000-8000-00000000c0e0";
    let mut organization = case(c0, "tri-ton", false, "2023-10-01", "2024-06-01");
    organization["subject"] = json!({"kind": "organization", "name": "Chi bộ (giả định)"});
    api.ok("/v1/discipline-cases", organization).await;
    let problem = api
        .refused(
            &format!("/v1/discipline-cases/{c0}/decision"),
            decision(
                "dissolution",
                "provincial_inspection_commission",
                "2024-06-20",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "deciding_body_without_authority",
        )
        .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("art. 36"),
        "{problem}"
    );
    let c1 = "0190a000-0000-7000-8000-00000000c0e1";
    api.ok(
        "/v1/discipline-cases",
        case(c1, "tri-ton", true, "2023-10-01", "2024-06-01"),
    )
    .await;
    let tri_ton = api.as_office(&stack, "tri-ton");
    tri_ton
        .refused(
            &format!("/v1/discipline-cases/{c1}/decision"),
            decision(
                "expulsion",
                "district_standing_committee:tri-ton",
                "2024-06-20",
            ),
            StatusCode::FORBIDDEN,
            "stream_of_another_office",
        )
        .await;

    // Appeals go up (Quy định 22-QĐ/TW art. 22): the inspection commission does not
    // resolve an appeal against its standing committee's decision.
    api.ok(
        &format!("/v1/discipline-cases/{c1}/decision"),
        decision("warning", "provincial_standing_committee", "2024-06-20"),
    )
    .await;
    tri_ton
        .ok(
            &format!("/v1/discipline-cases/{c1}/appeal"),
            json!({"appealed_on": "2024-07-01", "grounds": "Đề nghị xem xét lại"}),
        )
        .await;
    let resolve = |body: &str| {
        json!({"resolution": {"outcome": "upheld"}, "resolving_body": body,
            "resolved_on": "2024-08-01", "reference": "GQ-8 (giả định)"})
    };
    api.refused(
        &format!("/v1/discipline-cases/{c1}/appeal-resolution"),
        resolve("provincial_inspection_commission"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "resolving_body_not_superior",
    )
    .await;
    api.ok(
        &format!("/v1/discipline-cases/{c1}/appeal-resolution"),
        resolve("central_public_security_standing_committee"),
    )
    .await;

    // Time limit (Quy định 69-QĐ/TW): a reprimand five years and more after the violation.
    let c2 = "0190a000-0000-7000-8000-00000000c0e2";
    api.ok(
        "/v1/discipline-cases",
        case(c2, "chau-phu", false, "2018-03-01", "2024-05-02"),
    )
    .await;
    let problem = api
        .refused(
            &format!("/v1/discipline-cases/{c2}/decision"),
            decision("reprimand", "provincial_standing_committee", "2024-06-03"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limitation_period_expired",
        )
        .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("2023-03-01"),
        "{problem}"
    );
    // A warning has ten years: in time.
    api.ok(
        &format!("/v1/discipline-cases/{c2}/decision"),
        decision("warning", "provincial_standing_committee", "2024-06-03"),
    )
    .await;

    // The 2025 reorganization: no inspection of a district police committee after
    // 2025-03-01, no exchange with a district committee after 2025-07-01.
    api.refused(
        "/v1/inspections",
        json!({
            "inspection_id": "0190a000-0000-7000-8000-00000000e2e2", "term": "2020-2025",
            "unit": "thoai-son", "kind": "supervision", "category": "thematic",
            "leading_body": "provincial_inspection_commission",
            "coordinating_body": "district_standing_committee:thoai-son",
            "target": "district_police:thoai-son", "decision_ref": "QĐ-GS (giả định)",
            "decided_on": "2025-03-05", "planned_start": "2025-03-10", "planned_end": "2025-04-10"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unit_not_in_existence",
    )
    .await;
    api.as_office(&stack, "thoai-son")
        .refused(
            "/v1/exchanges",
            json!({
            "exchange_id": "0190a000-0000-7000-8000-00000000e2e3", "term": "2020-2025",
            "unit": "thoai-son", "from": "district_standing_committee:thoai-son",
            "to": "provincial_standing_committee", "topic": "plan",
            "subject": "Kế hoạch kiểm tra, giám sát năm 2025", "sent_on": "2025-07-02"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unit_not_in_existence",
        )
        .await;

    // Cross-reference: a case based on an inspection that is not in the log.
    let mut on_missing = case(
        "0190a000-0000-7000-8000-00000000c0e3",
        "an-phu",
        false,
        "2024-01-01",
        "2024-06-01",
    );
    on_missing["basis"] =
        json!({"kind": "inspection", "inspection_id": "0190a000-0000-7000-8000-00000000dead"});
    api.refused(
        "/v1/discipline-cases",
        on_missing.clone(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "basis_inspection_not_found",
    )
    .await;
    // ... and on the An Phú inspection above, concluded in 2026, for a case opened after.
    on_missing["basis"]["inspection_id"] = json!(insp);
    on_missing["opened_on"] = json!("2026-01-12");
    api.refused(
        "/v1/discipline-cases",
        on_missing.clone(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "outside_term",
    )
    .await;
}
