//! A record is (office, id) end to end (issue 14), with real nats-servers (a hub and two
//! district offices as leaf nodes) and every office's services as processes:
//!
//! - an id another office already holds here is refused as a new record's id (409
//!   `id_in_use`, nothing appended anywhere);
//! - the same id created at two offices while they are cut off from each other: after
//!   the link is back every office keeps both records, each under its office, with no
//!   dead letter, equal figures that count both, and the same events; an unqualified
//!   read of the id is `409 ambiguous_id`, `?office=` reads each; the original
//!   recipient still acknowledges the province's record;
//! - a commit published with the district server's admin credentials on the district's
//!   own subjects, naming a province case: no projector, records view or audit tree
//!   applies it; every office shows a `subject_mismatch` alarm, and `coordctl audit
//!   verify` at the district names it.

use std::time::{Duration, Instant};

use coordctl::offices::{self, Site};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::offices::{OfficeStack, office_stack, start};
use tests::{ConfiguredNats, ServiceProcess};
use uuid::Uuid;

async fn send(stack: &OfficeStack, path: &str, body: Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", stack.url))
        .bearer_auth(&stack.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(stack: &OfficeStack, path: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", stack.url))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls `GET path` at `stack` (at most 60 s) until `done` holds of the answer.
async fn wait_for(
    stack: &OfficeStack,
    path: &str,
    what: &str,
    done: impl Fn(StatusCode, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(stack, path).await;
        if done(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{} {path}: never {what}: {status} {body}",
            stack.url
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The log head of every site, as each one's admin sees its stream.
async fn heads(sites: &[&Site]) -> Vec<u64> {
    let mut out = Vec::new();
    for site in sites {
        out.push(tests::offices::count(site).await);
    }
    out
}

fn exchange(id: Uuid, from: &str, to: &str, unit: &str, subject: &str) -> Value {
    json!({"exchange_id": id, "term": "2020-2025", "unit": unit, "from": from, "to": to,
        "topic": "plan", "subject": subject, "sent_on": "2024-03-02"})
}

/// The province's notice to Châu Đốc.
fn notice(id: Uuid) -> Value {
    exchange(
        id,
        "provincial_standing_committee",
        "district_standing_committee:chau-doc",
        "chau-doc",
        "Kế hoạch kiểm tra",
    )
}

/// Long Xuyên's report to the province.
fn report(id: Uuid) -> Value {
    exchange(
        id,
        "district_standing_committee:long-xuyen",
        "provincial_standing_committee",
        "long-xuyen",
        "Báo cáo quý",
    )
}

/// The province's figures at `stack`, its local position left out.
async fn summary(stack: &OfficeStack) -> Value {
    let (status, mut v) = get(stack, "/v1/status/province").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v.as_object_mut().unwrap().remove("position");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_is_one_offices_and_two_offices_cut_off_keep_both_records() {
    let mut running = start(&["long-xuyen", "chau-doc"]).await;
    let signer = coord_auth::TokenSigner::generate();
    let mut stacks = Vec::new();
    for site in running.sites() {
        stacks.push(office_stack(site, &signer).await);
    }
    let (hub, lx, cd) = (&stacks[0], &stacks[1], &stacks[2]);
    let sites: Vec<Site> = running.sites().into_iter().cloned().collect();
    let all: Vec<&Site> = sites.iter().collect();

    // An id the province already used, once it has arrived at Long Xuyên, is refused
    // there as the id of Long Xuyên's new record; nothing is appended anywhere.
    let x = Uuid::now_v7();
    let (status, body) = send(hub, "/v1/exchanges", notice(x)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wait_for(lx, &format!("/v1/exchanges/{x}"), "the notice", |s, _| {
        s == StatusCode::OK
    })
    .await;
    let before = heads(&all).await;
    let (status, body) = send(lx, "/v1/exchanges", report(x)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "id_in_use", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("province"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(heads(&all).await, before, "nothing appended at any office");

    // Cut Long Xuyên off; the province and Long Xuyên each create a record of one id.
    let site = running.topology.offices[0].clone();
    running.servers[1].stop();
    running.servers[1] = ConfiguredNats::start(&site.isolated_config_file(), site.port);
    let y = Uuid::now_v7();
    let (status, body) = send(hub, "/v1/exchanges", notice(y)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Long Xuyên's gateway may take a moment to reconnect to its restarted server.
        let (status, body) = send(lx, "/v1/exchanges", report(y)).await;
        if status == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Restore the link: every office ends with both records, each its office's.
    running.servers[1].stop();
    running.servers[1] = ConfiguredNats::start(&site.config_file(), site.port);
    for stack in &stacks {
        let path = format!("/v1/exchanges/{y}");
        let body = wait_for(stack, &path, "both records", |s, b| {
            s == StatusCode::CONFLICT && b["code"] == "ambiguous_id"
        })
        .await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("district:long-xuyen"),
            "{body}"
        );
        let (status, ours) = get(stack, &format!("{path}?office=province")).await;
        assert_eq!(status, StatusCode::OK, "{ours}");
        assert_eq!(ours["office"], "province");
        assert_eq!(ours["fields"]["to"], "district_standing_committee:chau-doc");
        let (status, theirs) = get(stack, &format!("{path}?office=district:long-xuyen")).await;
        assert_eq!(status, StatusCode::OK, "{theirs}");
        assert_eq!(theirs["fields"]["to"], "provincial_standing_committee");
    }
    // The original recipient acknowledges the province's record: the domain picks the
    // one sent to it.
    let ack =
        json!({"by": "district_standing_committee:chau-doc", "acknowledged_on": "2024-03-05"});
    let (status, body) = send(cd, &format!("/v1/exchanges/{y}/acknowledge"), ack).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for stack in &stacks {
        let path = format!("/v1/exchanges/{y}?office=province");
        wait_for(stack, &path, "acknowledged", |_, b| {
            b["status"] == "acknowledged"
        })
        .await;
        let (_, theirs) = get(
            stack,
            &format!("/v1/exchanges/{y}?office=district:long-xuyen"),
        )
        .await;
        assert_eq!(theirs["status"], "sent", "{theirs}");
    }
    // Equal figures everywhere, counting both records, and no dead letter.
    let mut figures = Vec::new();
    for stack in &stacks {
        let s = wait_for(
            stack,
            "/v1/status/province",
            "both records counted",
            |_, b| b["exchanges"]["to_province"] == 1 && b["exchanges"]["to_district"] == 2,
        )
        .await;
        assert_eq!(s["dead_letters"], 0, "{s}");
        figures.push(summary(stack).await);
    }
    assert!(figures.windows(2).all(|w| w[0] == w[1]), "{figures:?}");
    let events = tests::offices::converge(&running, 4, Duration::from_secs(60)).await;
    eprintln!("converged {events:?} after the restore");
    let _ = hub;
}

/// The auditor of `site`, signing every 200 ms.
fn auditor(site: &Site) -> ServiceProcess {
    let mut env = offices::service_env(site, "auditor", 0, "").unwrap();
    env.push(("COORD_AUDIT_CHECKPOINT_MS", "200".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ServiceProcess::start("auditor", &[], &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_a_districts_subjects_naming_a_province_case_is_applied_nowhere() {
    let running = start(&["long-xuyen", "chau-doc"]).await;
    let signer = coord_auth::TokenSigner::generate();
    let mut stacks = Vec::new();
    for site in running.sites() {
        stacks.push(office_stack(site, &signer).await);
    }
    let lx_site = running.topology.offices[0].clone();
    let _auditor = auditor(&lx_site);
    let (hub, lx) = (&stacks[0], &stacks[1]);

    // The province opens a case about a Long Xuyên member; it reaches every office.
    let case = Uuid::now_v7();
    let open = json!({"case_id": case, "term": "2020-2025", "unit": "long-xuyen",
        "subject": {"kind": "member", "member": "ĐV-9", "membership": "full", "holds_post": false},
        "basis": {"kind": "central_conclusion", "body": "central_inspection_commission", "reference": "KL-01"},
        "violation": {"committed_on": "2024-01-10"}, "opened_on": "2024-03-01"});
    let (status, body) = send(hub, "/v1/discipline-cases", open).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for stack in &stacks {
        wait_for(
            stack,
            &format!("/v1/discipline-cases/{case}"),
            "the case",
            |s, _| s == StatusCode::OK,
        )
        .await;
    }

    // Long Xuyên's server admin puts a decision on that case on Long Xuyên's own
    // subjects, in the province's name.
    let forged = json!({"events": [{
        "event_id": Uuid::now_v7(), "stream_id": format!("discipline-{case}"), "stream_version": 2,
        "event_type": "DisciplineDecided", "schema_version": 1, "occurred_at": "2024-03-05",
        "recorded_at": "2024-03-05T00:00:00Z", "office": "province", "actor": "giả mạo",
        "correlation_id": Uuid::now_v7(), "causation_id": Uuid::now_v7(), "role": "operator",
        "payload": {"case_id": case, "form": "reprimand",
            "deciding_body": "provincial_standing_committee", "decided_on": "2024-03-05",
            "decision_ref": "QĐ-giả"}
    }]});
    let admin = offices::admin_client(&lx_site).await.unwrap();
    async_nats::jetstream::new(admin)
        .publish(
            format!("coord.log.long-xuyen.discipline.{case}"),
            forged.to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    // Every office (the hub and Châu Đốc receive it by sourcing) raises the alarm and
    // applies nothing: the case stays open, one event, no decision counted.
    for stack in &stacks {
        let p = wait_for(
            stack,
            "/v1/projector",
            "a subject_mismatch alarm",
            |_, b| {
                b["alarms"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["code"] == "subject_mismatch"))
            },
        )
        .await;
        let alarm = &p["alarms"][0];
        assert_eq!(
            alarm["subject"],
            format!("coord.log.long-xuyen.discipline.{case}"),
            "{p}"
        );
        assert!(
            alarm["detail"].as_str().unwrap().contains("province"),
            "{p}"
        );
        let (_, record) = get(stack, &format!("/v1/discipline-cases/{case}")).await;
        assert_eq!(
            (record["status"].as_str(), record["version"].as_u64()),
            (Some("open"), Some(1)),
            "{}: {record}",
            stack.url
        );
        let s = summary(stack).await;
        assert_eq!(s["discipline"]["member_decisions"], 0, "{s}");
    }

    // The district's audit tree has no leaf for it, and verification names it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let out = std::process::Command::new(tests::workspace_bin("coordctl"))
            .args(["--gateway", &lx.url, "audit", "verify"])
            .env("COORD_TOKEN", &lx.token)
            .env(
                "COORD_AUDIT_TRUST",
                running.topology.offices[0].dir.join("pinned-trust.keys"),
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if text.contains("subject_mismatch") {
            assert!(!out.status.success(), "{text}");
            break text;
        }
        assert!(Instant::now() < deadline, "verify never named it: {text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        text.contains(&format!("coord.log.long-xuyen.discipline.{case}")),
        "{text}"
    );
}
