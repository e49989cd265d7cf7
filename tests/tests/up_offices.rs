//! `coordctl up --offices long-xuyen,chau-doc,tan-chau`: the hub and three offices, each
//! with its own nats-server, command services, projector and gateway, as processes.
//! Each office sends its own commands through its own gateway with its own token; every
//! office's read model ends with the same province figures and the same event ids; a
//! district acting as the province is refused; the hub's witness cosigns every office's
//! own log.
//!
//! Cross-office work (issue 10, Ownership): the province sends information to Long
//! Xuyên at the hub; Long Xuyên acknowledges it at its own office, with its own token,
//! as its own receipt stream (it cannot write the province's exchange stream); every
//! office then shows it acknowledged (and the province's receipt of Tân Châu's report).
//! Acknowledging for another district (403), an exchange this office has not received
//! (422) or twice (409) appends nothing. A command
//! to a stream another office owns (a decision on the province's case, sent at the
//! district) is refused as such (403 `stream_of_another_office`), not as "not found".
//! The province decides a case of Long Xuyên at the hub; Long Xuyên appeals at its own
//! office, as its own appeal stream; the province resolves the appeal at the hub once it
//! has arrived (before, `appeal_not_found`, 422, nothing appended); every office shows
//! the case resolved with the appeal in its history. Appealing for another district's
//! case (403) or twice (409) appends nothing. A site refuses another office's token
//! (403 `office_not_hosted_here`), and `coordctl rebuild --site <office>` runs at each
//! site with the admin token `up` wrote for it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::up::Up;
use tests::{free_port, free_ports, log_head};
use uuid::Uuid;

const OFFICES: [&str; 4] = ["province", "long-xuyen", "chau-doc", "tan-chau"];

async fn post(url: String, token: &str, body: Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

fn report(unit: &str) -> Value {
    json!({"term": "2020-2025", "unit": unit, "from": format!("district_standing_committee:{unit}"),
        "to": "provincial_standing_committee", "topic": "other",
        "subject": "Báo cáo kết quả tự kiểm tra", "sent_on": "2024-03-01"})
}

async fn province_summary(url: &str, token: &str) -> Option<Value> {
    let r = reqwest::Client::new()
        .get(format!("{url}/v1/status/province"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    r.status().is_success().then_some(())?;
    let mut v: Value = r.json().await.ok()?;
    v.as_object_mut()?.remove("position"); // a local log position, not a figure
    Some(v)
}

/// An HTTP client that sends `token` with every request.
fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

fn acknowledgement(unit: &str) -> Value {
    json!({"by": format!("district_standing_committee:{unit}"), "acknowledged_on": "2024-03-05"})
}

/// `send`'s answer once what it refers to has reached the office it is sent at: until
/// then the answer is 422 `missing` (nothing appended) and it is sent again, for 30 s.
async fn once_arrived<F: Future<Output = (StatusCode, Value)>>(
    missing: &str,
    send: impl Fn() -> F,
) -> (StatusCode, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = send().await;
        if body["code"] != missing {
            return (status, body);
        }
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(Instant::now() < deadline, "never replicated: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `body` acknowledges `exchange` at the office at `url` as soon as the exchange has
/// reached it.
async fn acknowledge_once_replicated(url: &str, token: &str, exchange: &str, body: Value) -> Value {
    let path = format!("{url}/v1/exchanges/{exchange}/acknowledge");
    let (status, body) = once_arrived("exchange_not_found", || {
        post(path.clone(), token, body.clone())
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Asserts that `answer` is a refusal with `status` and problem `code`.
fn assert_refused(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
}

/// `GET url` with `token`, as JSON.
async fn get_json(url: String, token: &str) -> Value {
    client_with(token)
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The one-record read of discipline case `case` at the office at `url`.
async fn record(url: &str, token: &str, case: &Uuid) -> Value {
    get_json(format!("{url}/v1/discipline-cases/{case}"), token).await
}

/// Every office's log head, as each gateway reports it (to its own office's token).
async fn heads(urls: &[String], tokens: &[String]) -> Vec<u64> {
    let mut all = Vec::new();
    for (url, token) in urls.iter().zip(tokens) {
        all.push(log_head(&client_with(token), url).await);
    }
    all
}

/// The operator token of each site's own office, the hub's first (a site refuses the
/// tokens of offices it does not host).
fn site_tokens(credentials: &std::path::Path, offices: &[&str]) -> Vec<String> {
    offices
        .iter()
        .map(|o| std::fs::read_to_string(credentials.join(format!("{o}.token"))).unwrap())
        .collect()
}

async fn event_ids(
    url: &str,
    slug: &str,
    credentials: &std::path::Path,
    n: usize,
) -> BTreeSet<String> {
    let tokens = coordctl::tokens::TokenSet::load(None, credentials).for_slug(slug);
    let client = coordctl::client::Client::new(url)
        .unwrap()
        .with_tokens(tokens);
    // From the log's start (without `after` the stream gives new events only).
    let events = client.events(Some(0)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), events.take(n).collect::<Vec<_>>())
        .await
        .expect("the event stream replays")
        .into_iter()
        .map(|e| e.unwrap()["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// `coordctl up --offices <offices>` (three of them) in `data`, once it is ready; the
/// gateways' URLs, the hub's first.
fn start_offices(data: &std::path::Path, offices: &str, empty: bool) -> (Up, Vec<String>) {
    let (nats_port, http_port, leaf_port) = (free_ports(4), free_ports(4), free_port());
    let leaf = leaf_port.to_string();
    let mut args = vec!["--offices", offices, "--leaf-port", &leaf];
    if empty {
        args.push("--no-scenario");
    }
    let mut up = Up::start_with(data, nats_port, http_port, &args);
    tokio::task::block_in_place(|| up.wait_for("Nhấn Ctrl-C"));
    let urls = (0..4)
        .map(|i| format!("http://127.0.0.1:{}", http_port + i))
        .collect();
    (up, urls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_office_writes_its_own_and_all_show_the_same_province() {
    let data = tempfile::tempdir().unwrap();
    let (up, urls) = start_offices(data.path(), "long-xuyen,chau-doc,tan-chau", true);
    for (office, url) in OFFICES.iter().zip(&urls) {
        assert!(
            up.seen
                .iter()
                .any(|l| l == &format!("office {office} {url}")),
            "{office} at {url}: {:?}",
            up.seen
        );
    }
    let credentials = data.path().join("credentials");
    let token = |office: &str| {
        std::fs::read_to_string(credentials.join(format!("{office}.token"))).unwrap()
    };
    let tokens = site_tokens(&credentials, &OFFICES);

    // The province schedules; each district reports to the province from its own office.
    let schedule = json!({"term": "2020-2025", "unit": "an-phu", "kind": "inspection",
        "category": "compliance", "leading_body": "provincial_standing_committee",
        "coordinating_body": "district_standing_committee:an-phu", "target": "district_police:an-phu",
        "decision_ref": "QĐ (giả định)", "decided_on": "2024-06-01",
        "planned_start": "2024-06-10", "planned_end": "2024-06-20"});
    let (status, body) = post(
        format!("{}/v1/inspections", urls[0]),
        &token("province"),
        schedule.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut reports = Vec::new();
    for (i, unit) in OFFICES.iter().enumerate().skip(1) {
        let (status, body) = post(
            format!("{}/v1/exchanges", urls[i]),
            &token(unit),
            report(unit),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{unit}: {body}");
        reports.push(body["aggregate_id"].as_str().unwrap().to_owned());
    }
    // The province informs Long Xuyên at the hub; Long Xuyên acknowledges at its office.
    let exchange = Uuid::now_v7();
    let notice = json!({"exchange_id": exchange, "term": "2020-2025", "unit": "long-xuyen",
        "from": "provincial_standing_committee", "to": "district_standing_committee:long-xuyen",
        "topic": "plan", "subject": "Kế hoạch kiểm tra năm 2024", "sent_on": "2024-03-02"});
    let (status, body) = post(
        format!("{}/v1/exchanges", urls[0]),
        &token("province"),
        notice,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let receipt = acknowledge_once_replicated(
        &urls[1],
        &token("long-xuyen"),
        &exchange.to_string(),
        acknowledgement("long-xuyen"),
    )
    .await;
    assert!(
        receipt["stream_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("receipt-")),
        "{receipt}"
    );
    // And the province acknowledges Tân Châu's report at the hub.
    acknowledge_once_replicated(
        &urls[0],
        &token("province"),
        &reports[2],
        json!({"by": "provincial_standing_committee", "acknowledged_on": "2024-03-05"}),
    )
    .await;

    // A case the province opens and decides at the hub.
    let case = Uuid::now_v7();
    let open = json!({"case_id": case, "term": "2020-2025", "unit": "long-xuyen",
        "subject": {"kind": "member", "member": "ĐV-0042", "membership": "full", "holds_post": false},
        "basis": {"kind": "central_conclusion", "body": "central_inspection_commission", "reference": "KL-01 (giả định)"},
        "violation": {"committed_on": "2024-01-10"}, "opened_on": "2024-03-01"});
    let (status, body) = post(
        format!("{}/v1/discipline-cases", urls[0]),
        &token("province"),
        open,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = post(
        format!("{}/v1/discipline-cases/{case}/decision", urls[0]),
        &token("province"),
        json!({"form": "warning", "deciding_body": "provincial_standing_committee",
            "decided_on": "2024-03-05", "decision_ref": "QĐ-KL-01 (giả định)"}),
    )
    .await;
    assert!(status.is_success(), "{body}");
    // Nothing to resolve at the hub before an appeal has arrived: 422, nothing appended.
    let province_token = token("province");
    let resolve_at_hub = || {
        post(
            format!("{}/v1/discipline-cases/{case}/appeal-resolution", urls[0]),
            &province_token,
            json!({"resolution": {"outcome": "changed_to", "form": "reprimand"},
                "resolving_body": "central_public_security_standing_committee",
                "resolved_on": "2024-04-01", "reference": "GQ-KN-01 (giả định)"}),
        )
    };
    let hub_before = heads(&urls[..1], &tokens).await;
    let early = resolve_at_hub().await;
    assert_refused(&early, StatusCode::UNPROCESSABLE_ENTITY, "appeal_not_found");
    assert_eq!(heads(&urls[..1], &tokens).await, hub_before);

    // Long Xuyên cannot append to the province's case at its own office: told whose
    // stream it is once it has arrived (until then, not found).
    let long_xuyen = token("long-xuyen");
    let decide_at_office = once_arrived("case_not_found", || {
        post(
            format!("{}/v1/discipline-cases/{case}/decision", urls[1]),
            &long_xuyen,
            json!({"form": "reprimand", "deciding_body": "district_standing_committee:long-xuyen",
                "decided_on": "2024-03-06", "decision_ref": "QĐ (giả định)"}),
        )
    })
    .await;
    assert_refused(
        &decide_at_office,
        StatusCode::FORBIDDEN,
        "stream_of_another_office",
    );

    // Long Xuyên appeals at its own office, once the decision has reached it: its own
    // appeal stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    while record(&urls[1], &token("long-xuyen"), &case).await["status"] != "decided" {
        assert!(
            Instant::now() < deadline,
            "the decision never reached Long Xuyên"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let appeal_path = |url: &str| format!("{url}/v1/discipline-cases/{case}/appeal");
    let appeal = json!({"appealed_on": "2024-03-06", "grounds": "Không đồng ý"});
    let (status, body) = post(appeal_path(&urls[1]), &token("long-xuyen"), appeal.clone()).await;
    assert!(status.is_success(), "{body}");
    assert!(
        body["stream_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("appeal-")),
        "{body}"
    );
    // The province resolves it at the hub as soon as the appeal has arrived there.
    let (status, body) = once_arrived("appeal_not_found", resolve_at_hub).await;
    assert!(status.is_success(), "{body}");

    // A district scheduling as the province at its own office: refused.
    let (status, body) = post(
        format!("{}/v1/inspections", urls[1]),
        &token("long-xuyen"),
        schedule,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Every office converges to the same figures.
    let deadline = Instant::now() + Duration::from_secs(60);
    let summaries = loop {
        let mut all = Vec::new();
        for (url, token) in urls.iter().zip(&tokens) {
            all.push(province_summary(url, token).await);
        }
        let done = all.iter().all(|s| {
            s.as_ref().is_some_and(|s| {
                s["exchanges"]["to_province"] == 3
                    && s["exchanges"]["to_district"] == 1
                    && s["exchanges"]["unacknowledged"] == 2
                    && s["inspections"]["scheduled"] == 1
                    && s["discipline"]["open_cases"] == 0
                    && s["discipline"]["appeals_pending"] == 0
                    && s["discipline"]["members"]["reprimand"] == 1
            })
        });
        if done {
            break all;
        }
        assert!(Instant::now() < deadline, "no convergence in 60 s: {all:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(summaries.windows(2).all(|w| w[0] == w[1]), "{summaries:?}");
    let mut sets = Vec::new();
    for (url, slug) in urls.iter().zip(OFFICES) {
        sets.push(event_ids(url, slug, &credentials, 11).await);
    }
    assert_eq!(sets[0].len(), 11);
    assert!(sets.windows(2).all(|w| w[0] == w[1]), "{sets:?}");

    // Every office's one-record read shows the acknowledgement with the exchange.
    for (url, token) in urls.iter().zip(&tokens) {
        let record = get_json(format!("{url}/v1/exchanges/{exchange}"), token).await;
        assert_eq!(record["status"], "acknowledged", "{url}: {record}");
        assert_eq!(
            record["history"][1]["office"], "district:long-xuyen",
            "{record}"
        );
    }

    // Every office's one-record read shows the case resolved, with Long Xuyên's appeal.
    for (url, token) in urls.iter().zip(&tokens) {
        let case = record(url, token, &case).await;
        assert_eq!(case["status"], "appeal_resolved", "{url}: {case}");
        assert_eq!(
            case["fields"]["form_in_force"], "reprimand",
            "{url}: {case}"
        );
        let offices: Vec<&str> = case["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["office"].as_str().unwrap())
            .collect();
        assert_eq!(
            offices,
            // In the log's order: the appeal came between the decision and its
            // resolution.
            ["province", "province", "district:long-xuyen", "province"],
            "{case}"
        );
    }

    // Refusals append nothing anywhere: Châu Đốc appealing Long Xuyên's case (403),
    // Long Xuyên appealing again (409), Châu Đốc acknowledging for Long Xuyên (403),
    // Long Xuyên acknowledging what it never received (422) or again (409).
    let before = heads(&urls, &tokens).await;
    let ack_path = |url: &str, id: Uuid| format!("{url}/v1/exchanges/{id}/acknowledge");
    let refusals = [
        (appeal_path(&urls[2]), "chau-doc", appeal.clone()),
        (appeal_path(&urls[1]), "long-xuyen", appeal),
        (
            ack_path(&urls[2], exchange),
            "chau-doc",
            acknowledgement("long-xuyen"),
        ),
        (
            ack_path(&urls[1], Uuid::now_v7()),
            "long-xuyen",
            acknowledgement("long-xuyen"),
        ),
        (
            ack_path(&urls[1], exchange),
            "long-xuyen",
            acknowledgement("long-xuyen"),
        ),
    ];
    let expected = [
        (StatusCode::FORBIDDEN, "acting_for_another_office"),
        (StatusCode::CONFLICT, "invalid_transition"),
        (StatusCode::FORBIDDEN, "acting_for_another_office"),
        (StatusCode::UNPROCESSABLE_ENTITY, "exchange_not_found"),
        (StatusCode::CONFLICT, "already_acknowledged"),
    ];
    for ((url, office, body), (status, code)) in refusals.into_iter().zip(expected) {
        assert_refused(&post(url, &token(office), body).await, status, code);
    }
    assert_eq!(heads(&urls, &tokens).await, before, "nothing appended");

    // Each office's auditor signs its own log (Long Xuyên: its report, its receipt and
    // its appeal; the others their report); the hub's witness cosigns it, with no alarm.
    let own_events = |office: &str| {
        if office == "district:long-xuyen" {
            3
        } else {
            1
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = reqwest::Client::new()
            .get(format!("{}/v1/audit/witness", urls[0]))
            .bearer_auth(token("province"))
            .send()
            .await
            .unwrap();
        let w: Value = if r.status().is_success() {
            r.json().await.unwrap()
        } else {
            Value::Null
        };
        let offices = w["offices"].as_array().cloned().unwrap_or_default();
        if offices.len() == 3
            && offices
                .iter()
                .all(|o| o["size"] == own_events(o["office"].as_str().unwrap_or("")))
        {
            assert_eq!(w["alarms"], json!([]), "{w}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the witness never cosigned every office: {w}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The hub serves every office's verifier key (the offices' from the keys it was
    // given) and, for an office, the latest checkpoint it cosigned; an office serves
    // its own key and the province's.
    let keys = get_json(format!("{}/v1/audit/keys", urls[0]), &token("province")).await;
    let offices: BTreeSet<&str> = keys
        .as_array()
        .unwrap_or_else(|| panic!("{keys}"))
        .iter()
        .map(|k| k["office"].as_str().unwrap())
        .collect();
    assert_eq!(
        offices,
        BTreeSet::from([
            "district:chau-doc",
            "district:long-xuyen",
            "district:tan-chau",
            "province"
        ]),
        "{keys}"
    );
    let keys = get_json(format!("{}/v1/audit/keys", urls[1]), &token("long-xuyen")).await;
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    let note = client_with(&token("province"))
        .get(format!("{}/v1/audit/checkpoint?office=long-xuyen", urls[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(note.status(), StatusCode::OK);
    let note = note.text().await.unwrap();
    assert!(
        note.starts_with("coord/an-giang/district:long-xuyen\n3\n"),
        "{note}"
    );
    assert!(
        note.contains("\n— coord/an-giang/witness "),
        "cosigned by the hub: {note}"
    );

    // A site takes only the tokens of the offices it hosts, and each site has an admin
    // token of its own, which `coordctl rebuild --site <office>` sends by default.
    let foreign = client_with(&token("province"))
        .get(format!("{}/v1/units", urls[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let foreign: Value = foreign.json().await.unwrap();
    assert_eq!(foreign["code"], "office_not_hosted_here", "{foreign}");
    for (url, office) in urls.iter().zip(OFFICES) {
        let rebuild = |site: &str| coordctl::Cli {
            gateway: url.clone(),
            token: None,
            credentials: credentials.clone(),
            site: site.into(),
            json: true,
            command: coordctl::Command::Rebuild { accept_loss: false },
        };
        coordctl::run(rebuild(office))
            .await
            .unwrap_or_else(|e| panic!("rebuild at {office}: {e:#}"));
        let other = if office == "province" {
            "long-xuyen"
        } else {
            "province"
        };
        let err = coordctl::run(rebuild(other)).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("office_not_hosted_here"),
            "{other}'s admin at {office}: {err:#}"
        );
    }

    let out = tokio::task::block_in_place(|| up.interrupt()).join("\n");
    assert!(
        out.contains("đã dừng (stopped) nats-server-province"),
        "{out}"
    );
}

/// The event ids of everything `url`'s office holds, from its export.
async fn exported_ids(url: &str, token: &str) -> BTreeSet<String> {
    let text = client_with(token)
        .get(format!("{url}/v1/export/events"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// On empty logs `up --offices` loads the reference scenario, each command at the office
/// that sends it: Thoại Sơn appeals the province's decision at its own office, and Long
/// Xuyên and Châu Đốc acknowledge the province's information at theirs (the other units
/// through the hub). Every office ends with the article's figures and the same events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_scenario_loads_at_each_office_and_every_office_shows_the_article() {
    let data = tempfile::tempdir().unwrap();
    let (up, urls) = start_offices(data.path(), "long-xuyen,thoai-son,chau-doc", false);
    let printed = up.seen.join("\n");
    assert!(printed.contains("tại từng văn phòng"), "{printed}");
    assert!(printed.contains("8/11"), "coordinated 8 of 11:\n{printed}");
    assert!(printed.contains("30 / 15 / 0 / 1"), "members:\n{printed}");

    let credentials = data.path().join("credentials");
    let offices = ["province", "long-xuyen", "thoai-son", "chau-doc"];
    let tokens = site_tokens(&credentials, &offices);
    let token = &tokens[0];
    let mut summaries = Vec::new();
    for (url, token) in urls.iter().zip(&tokens) {
        summaries.push(province_summary(url, token).await.expect("a summary"));
    }
    assert!(summaries.windows(2).all(|w| w[0] == w[1]), "{summaries:?}");
    let s = &summaries[0];
    assert_eq!(s["districts_coordinated"], 8, "{s}");
    assert_eq!(s["dead_letters"], 0, "{s}");
    assert_eq!(s["exchanges"]["unacknowledged"], 2, "{s}");

    // The same events everywhere (each office's export of its whole log).
    let mut sets = Vec::new();
    for (url, token) in urls.iter().zip(&tokens) {
        sets.push(exported_ids(url, token).await);
    }
    assert!(sets[0].len() > 300, "{}", sets[0].len());
    assert!(
        sets.windows(2).all(|w| w[0] == w[1]),
        "the same events everywhere"
    );
    // The districts' own work went into their own offices' logs (Thoại Sơn's appeal and
    // receipts, the others' receipts and reports), which the hub sourced from them.
    for office in ["long-xuyen", "thoai-son", "chau-doc"] {
        let source = tests::offices::wait_link(&urls[0], token, office, true).await;
        assert!(
            source["last_position"].as_u64().is_some(),
            "the hub received {office}'s own events: {source}"
        );
    }
    hub_metrics_show_links_and_cosignatures(&urls[0], &["long-xuyen", "thoai-son", "chau-doc"])
        .await;
    let out = tokio::task::block_in_place(|| up.interrupt()).join("\n");
    assert!(
        out.contains("đã dừng (stopped) nats-server-province"),
        "{out}"
    );
}

/// The hub's `/metrics`: each office's link up, and a cosigned size for each office
/// (its witness cosigned their checkpoints), within 30 s.
async fn hub_metrics_show_links_and_cosignatures(hub: &str, offices: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = reqwest::get(format!("{hub}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let cosigned = |office: &str| {
            let series = format!("coord_witness_cosigned_size{{office=\"district:{office}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&series))
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|size| size > 0)
        };
        let linked =
            |office: &str| text.contains(&format!("coord_sync_link_up{{from=\"{office}\"}} 1"));
        if offices.iter().all(|o| linked(o) && cosigned(o)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hub metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `up --offices long-xuyen --cluster 3`: the hub runs as a JetStream cluster of three
/// nats-servers (its log and idempotency bucket at three replicas, a leader, current
/// followers), Long Xuyên's server is a leaf of the whole cluster (one remote with every
/// hub server's leaf port), the reference scenario loads at both and both show the
/// article's figures; a hub server killed, the office's link and the hub's log carry
/// on, and an office's new report reaches the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_run_as_a_three_server_cluster_keeps_its_log_replicated_and_its_offices_linked() {
    let data = tempfile::tempdir().unwrap();
    let (nats_port, http_port) = (free_ports(4), free_ports(2));
    let (leaf, routes, monitor) = (free_ports(3), free_ports(3), free_ports(3));
    let (leaf_arg, routes_arg, monitor_arg) =
        (leaf.to_string(), routes.to_string(), monitor.to_string());
    let args = [
        "--offices",
        "long-xuyen",
        "--leaf-port",
        &leaf_arg,
        "--cluster",
        "3",
        "--cluster-port",
        &routes_arg,
        "--monitor-port",
        &monitor_arg,
    ];
    let mut up = Up::start_with(data.path(), nats_port, http_port, &args);
    tokio::task::block_in_place(|| up.wait_for("Nhấn Ctrl-C"));
    let printed = up.seen.join("\n");
    assert!(printed.contains("8/11"), "coordinated 8 of 11:\n{printed}");

    let log = tests::jsz::replicated_with_leader(monitor, "COORD_LOG").await;
    assert!(log["state"]["messages"].as_u64().unwrap() > 300, "{log}");
    tests::jsz::replicated_with_leader(monitor, "KV_COORD_IDEMPOTENCY").await;
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(data.path().join("offices/long-xuyen/nats-server.conf")).unwrap(),
    )
    .unwrap();
    let urls = config["leafnodes"]["remotes"][0]["urls"]
        .as_array()
        .unwrap();
    assert_eq!(urls.len(), 3, "a remote to every hub server: {config}");

    // One hub server down (the office's leaf may have been on it): the office's next
    // report still reaches the hub, whose log has two servers of three.
    let killed = up
        .child_pid_with_arg("province/nats-server.conf")
        .expect("hub server 1");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &killed.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let credentials = data.path().join("credentials");
    let tokens = site_tokens(&credentials, &["province", "long-xuyen"]);
    let hub = format!("http://127.0.0.1:{http_port}");
    let office = format!("http://127.0.0.1:{}", http_port + 1);
    let before = exchanges_at(&hub, &tokens[0]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let sent = loop {
        let (status, body) = post(
            format!("{office}/v1/exchanges"),
            &tokens[1],
            report("long-xuyen"),
        )
        .await;
        if status == StatusCode::CREATED || status == StatusCode::OK {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the office never accepted a report: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while exchanges_at(&hub, &tokens[0]).await <= before {
        if Instant::now() > deadline {
            let projector = get_json(format!("{hub}/v1/projector"), &tokens[0]).await;
            panic!("{sent} never reached the hub's read model: {projector}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(tokio::task::block_in_place(|| up.interrupt()));
}

/// How many exchanges the province summary at `url` counts (0 while it cannot answer).
async fn exchanges_at(url: &str, token: &str) -> u64 {
    province_summary(url, token)
        .await
        .and_then(|s| s["exchanges"]["sent"].as_u64())
        .unwrap_or(0)
}
