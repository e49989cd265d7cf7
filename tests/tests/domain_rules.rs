//! The Party's rules end to end through HTTP (real nats-server, services, projector,
//! gateway): a conclusion after the term does not cover its unit; a decision by a body
//! without authority, an appeal resolved by a body that is not above the deciding one,
//! a decision past the time limit, a command dated after a unit ceased to exist, a case
//! on an inspection that is not in the log, and a malformed date are each refused with
//! their code and append nothing. A new violation on another case of the same member
//! restarts a time limit (issue 16), and every refusal of the appeal routes is the one
//! the README lists.

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

fn member_case(id: &str, member: &str, committed_on: &str, opened_on: &str) -> Value {
    let mut c = case(id, "chau-doc", false, committed_on, opened_on);
    c["subject"]["member"] = json!(member);
    c
}

// Quy định 102-QĐ/TW art. 3.1.b (carried into 69-QĐ/TW), issue 16: a member's violation
// of 2018-06-10 on case A, and a new one of 2020-06-10 on case B, decided on 2023-05-10
// as a reprimand. Deciding case A on 2023-07-01: too late without case B (its five years
// ended on 2023-06-10), in time once case B is in the log (they count from 2020-06-10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_violation_restarts_the_time_limit_qd102_art3_1b() {
    let stack = Stack::start();
    stack.wait_ready().await;
    let api = Api {
        http: stack.http(),
        base: stack.gateway_url.clone(),
    };
    let (a, b) = (
        "0190a000-0000-7000-8000-0000000016a1",
        "0190a000-0000-7000-8000-0000000016b1",
    );
    let reprimand = || decision("reprimand", "provincial_standing_committee", "2023-07-01");
    api.ok(
        "/v1/discipline-cases",
        member_case(a, "ĐV-1601", "2018-06-10", "2023-01-10"),
    )
    .await;
    let problem = api
        .refused(
            &format!("/v1/discipline-cases/{a}/decision"),
            reprimand(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limitation_period_expired",
        )
        .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("ended on 2023-06-10"),
        "{problem}"
    );
    api.ok(
        "/v1/discipline-cases",
        member_case(b, "ĐV-1601", "2020-06-10", "2023-03-01"),
    )
    .await;
    api.ok(
        &format!("/v1/discipline-cases/{b}/decision"),
        decision("reprimand", "provincial_standing_committee", "2023-05-10"),
    )
    .await;
    let (status, answer) = api
        .post(&format!("/v1/discipline-cases/{a}/decision"), reprimand())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// The README's two tables of the appeal routes' refusals: every `NNN code` they list.
fn readme_appeal_refusals() -> Vec<String> {
    let readme = std::fs::read_to_string(tests::workspace_root().join("README.md")).unwrap();
    let section = readme
        .split("### Refusals of the appeal routes")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a section on the appeal routes' refusals");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| l.split('|').nth(1).unwrap_or("").split(", ").map(str::trim))
        .map(|cell| cell.trim_matches('`').to_owned())
        .collect()
}

// Issue 16: README and the problem documents agree on every refusal of the appeal
// routes. Each refusal is produced through HTTP (nothing appended) and must be listed in
// the README with its status and code; each one the README lists is produced here,
// except those that need several offices or a probationary member (tested elsewhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_appeal_routes_refuse_as_the_readme_says() {
    let stack = Stack::start();
    stack.wait_ready().await;
    let province = Api {
        http: stack.http(),
        base: stack.gateway_url.clone(),
    };
    let an_phu = province.as_office(&stack, "an-phu");
    let tri_ton = province.as_office(&stack, "tri-ton");
    let mut seen: Vec<String> = Vec::new();
    let (p, q, o) = (
        "0190a000-0000-7000-8000-0000000016c1",
        "0190a000-0000-7000-8000-0000000016c2",
        "0190a000-0000-7000-8000-0000000016c3",
    );
    let unknown = "0190a000-0000-7000-8000-00000000dead";
    let appeal = |id: &str| format!("/v1/discipline-cases/{id}/appeal");
    let resolution = |id: &str| format!("/v1/discipline-cases/{id}/appeal-resolution");
    let lodge = |on: &str| json!({"appealed_on": on, "grounds": "Đề nghị xem xét lại"});
    let resolve = |outcome: Value, body: &str, on: &str| json!({"resolution": outcome, "resolving_body": body, "resolved_on": on, "reference": "GQ-16 (giả định)"});
    let upheld = || json!({"outcome": "upheld"});
    let changed = |form: &str| json!({"outcome": "changed_to", "form": form});
    let cps = "central_public_security_standing_committee";

    // Case P: a member's violation of 2018-03-01 (a reprimand would be out of time by
    // 2023-03-01, a warning is not); case Q closed without discipline; case O, an
    // organization reprimanded by the district.
    let mut p_case = case(p, "an-phu", false, "2018-03-01", "2024-01-10");
    p_case["subject"]["member"] = json!("ĐV-1603");
    province.ok("/v1/discipline-cases", p_case).await;
    let mut q_case = case(q, "an-phu", false, "2023-05-01", "2024-01-10");
    q_case["subject"]["member"] = json!("ĐV-1604");
    province.ok("/v1/discipline-cases", q_case).await;
    province
        .ok(
            &format!("/v1/discipline-cases/{q}/close"),
            json!({"closed_on": "2024-01-20", "reason": "Không đủ căn cứ"}),
        )
        .await;
    let mut o_case = case(o, "an-phu", false, "2023-05-01", "2024-01-10");
    o_case["subject"] = json!({"kind": "organization", "name": "Chi bộ Đội Cảnh sát 16"});
    province.ok("/v1/discipline-cases", o_case).await;

    let mut refuse =
        async |api: &Api, path: String, body: Value, status: StatusCode, code: &str| {
            api.refused(&path, body, status, code).await;
            seen.push(format!("{} {code}", status.as_u16()));
        };
    use StatusCode as S;
    // Nothing decided yet: an appeal or a resolution is an invalid transition.
    refuse(
        &an_phu,
        appeal(p),
        lodge("2024-01-15"),
        S::CONFLICT,
        "invalid_transition",
    )
    .await;
    for id in [p, q] {
        refuse(
            &province,
            resolution(id),
            resolve(upheld(), cps, "2024-03-15"),
            S::CONFLICT,
            "invalid_transition",
        )
        .await;
    }
    refuse(
        &province,
        resolution(unknown),
        resolve(upheld(), cps, "2024-03-15"),
        S::NOT_FOUND,
        "case_not_found",
    )
    .await;
    refuse(
        &an_phu,
        appeal(unknown),
        lodge("2024-02-10"),
        S::UNPROCESSABLE_ENTITY,
        "case_not_found",
    )
    .await;

    province
        .ok(
            &format!("/v1/discipline-cases/{p}/decision"),
            decision("warning", "provincial_standing_committee", "2024-02-01"),
        )
        .await;
    // Decided, not appealed yet.
    refuse(
        &province,
        resolution(p),
        resolve(upheld(), cps, "2024-03-15"),
        S::UNPROCESSABLE_ENTITY,
        "appeal_not_found",
    )
    .await;
    refuse(
        &tri_ton,
        appeal(p),
        lodge("2024-02-10"),
        S::FORBIDDEN,
        "acting_for_another_office",
    )
    .await;
    refuse(
        &an_phu,
        appeal(p),
        lodge("2024-01-20"),
        S::UNPROCESSABLE_ENTITY,
        "dates_out_of_order",
    )
    .await;
    refuse(
        &an_phu,
        appeal(p),
        lodge("2024-03-05"),
        S::UNPROCESSABLE_ENTITY,
        "appeal_out_of_time",
    )
    .await;
    an_phu.ok(&appeal(p), lodge("2024-02-10")).await;
    refuse(
        &an_phu,
        appeal(p),
        lodge("2024-02-11"),
        S::CONFLICT,
        "invalid_transition",
    )
    .await;

    // Appealed: the resolution's own checks.
    let resolutions = [
        (
            &an_phu,
            resolve(upheld(), cps, "2024-03-15"),
            S::FORBIDDEN,
            "acting_for_another_office",
        ),
        (
            &province,
            resolve(upheld(), "provincial_standing_committee", "2024-03-15"),
            S::UNPROCESSABLE_ENTITY,
            "resolved_by_deciding_body",
        ),
        (
            &province,
            resolve(upheld(), "provincial_inspection_commission", "2024-03-15"),
            S::UNPROCESSABLE_ENTITY,
            "resolving_body_not_superior",
        ),
        (
            &province,
            resolve(upheld(), "secretariat", "2024-03-15"),
            S::UNPROCESSABLE_ENTITY,
            "resolving_body_not_superior",
        ),
        (
            &province,
            resolve(changed("warning"), cps, "2024-03-15"),
            S::UNPROCESSABLE_ENTITY,
            "changed_to_same_form",
        ),
        (
            &province,
            resolve(changed("removal_from_post"), cps, "2024-03-15"),
            S::UNPROCESSABLE_ENTITY,
            "removal_from_post_requires_post",
        ),
        (
            &province,
            resolve(changed("dissolution"), cps, "2024-03-15"),
            S::UNPROCESSABLE_ENTITY,
            "dissolution_only_for_organizations",
        ),
        (
            &province,
            resolve(changed("reprimand"), cps, "2024-03-15"),
            S::UNPROCESSABLE_ENTITY,
            "limitation_period_expired",
        ),
        (
            &province,
            resolve(upheld(), cps, "2024-02-05"),
            S::UNPROCESSABLE_ENTITY,
            "dates_out_of_order",
        ),
    ];
    for (api, body, status, code) in resolutions {
        refuse(api, resolution(p), body, status, code).await;
    }
    province
        .ok(&resolution(p), resolve(upheld(), cps, "2024-03-15"))
        .await;
    refuse(
        &province,
        resolution(p),
        resolve(upheld(), cps, "2024-03-16"),
        S::CONFLICT,
        "invalid_transition",
    )
    .await;

    // The organization: its forms, and the authority of the body that resolves. (The
    // case is the province's stream: a decision on it is recorded by the province, a
    // district office appending to it is `stream_of_another_office`.)
    refuse(
        &an_phu,
        format!("/v1/discipline-cases/{o}/decision"),
        decision(
            "reprimand",
            "district_standing_committee:an-phu",
            "2024-02-01",
        ),
        S::FORBIDDEN,
        "stream_of_another_office",
    )
    .await;
    province
        .ok(
            &format!("/v1/discipline-cases/{o}/decision"),
            decision(
                "reprimand",
                "provincial_inspection_commission",
                "2024-02-01",
            ),
        )
        .await;
    an_phu.ok(&appeal(o), lodge("2024-02-10")).await;
    let commission = "central_inspection_commission";
    refuse(
        &province,
        resolution(o),
        resolve(changed("expulsion"), commission, "2024-03-15"),
        S::UNPROCESSABLE_ENTITY,
        "form_not_for_organizations",
    )
    .await;
    refuse(
        &province,
        resolution(o),
        resolve(changed("dissolution"), commission, "2024-03-15"),
        S::UNPROCESSABLE_ENTITY,
        "deciding_body_without_authority",
    )
    .await;

    let documented = readme_appeal_refusals();
    for refusal in &seen {
        assert!(
            documented.contains(refusal),
            "README does not list `{refusal}`: {documented:?}"
        );
    }
    let elsewhere = [
        "422 form_not_for_probationary_members", // coord-domain discipline tests
    ];
    for listed in &documented {
        assert!(
            seen.contains(listed) || elsewhere.contains(&listed.as_str()),
            "README lists `{listed}`, which no request here produced"
        );
    }
}
