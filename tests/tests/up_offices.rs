//! `coordctl up --offices long-xuyen,chau-doc,tan-chau`: the hub and three offices, each
//! with its own nats-server, command services, projector and gateway, as processes.
//! Each office sends its own commands through its own gateway with its own token; every
//! office's read model ends with the same province figures and the same event ids; a
//! district acting as the province is refused; the hub's witness cosigns every office's
//! own log.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::up::Up;
use tests::{free_port, free_ports};

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

async fn event_ids(url: &str, credentials: &std::path::Path, n: usize) -> BTreeSet<String> {
    let client = coordctl::client::Client::new(url)
        .unwrap()
        .with_tokens(coordctl::tokens::TokenSet::load(None, credentials));
    // From the log's start (without `after` the stream gives new events only).
    let events = client.events(Some(0)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), events.take(n).collect::<Vec<_>>())
        .await
        .expect("the event stream replays")
        .into_iter()
        .map(|e| e.unwrap()["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_office_writes_its_own_and_all_show_the_same_province() {
    let data = tempfile::tempdir().unwrap();
    let (nats_port, http_port, leaf_port) = (free_ports(4), free_ports(4), free_port());
    let leaf = leaf_port.to_string();
    let mut up = Up::start_with(
        data.path(),
        nats_port,
        http_port,
        &[
            "--offices",
            "long-xuyen,chau-doc,tan-chau",
            "--leaf-port",
            &leaf,
        ],
    );
    tokio::task::block_in_place(|| up.wait_for("Nhấn Ctrl-C"));
    let urls: Vec<String> = (0..4)
        .map(|i| format!("http://127.0.0.1:{}", http_port + i))
        .collect();
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
    for (i, unit) in OFFICES.iter().enumerate().skip(1) {
        let (status, body) = post(
            format!("{}/v1/exchanges", urls[i]),
            &token(unit),
            report(unit),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{unit}: {body}");
    }
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
        for url in &urls {
            all.push(province_summary(url, &token("province")).await);
        }
        let done = all.iter().all(|s| {
            s.as_ref().is_some_and(|s| {
                s["exchanges"]["to_province"] == 3 && s["inspections"]["scheduled"] == 1
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
    for url in &urls {
        sets.push(event_ids(url, &credentials, 4).await);
    }
    assert_eq!(sets[0].len(), 4);
    assert!(sets.windows(2).all(|w| w[0] == w[1]), "{sets:?}");

    // Each office's auditor signs its own log (one event each); the hub's witness
    // cosigns it, with no alarm.
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
        if offices.len() == 3 && offices.iter().all(|o| o["size"] == 1) {
            assert_eq!(w["alarms"], json!([]), "{w}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the witness never cosigned every office: {w}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let out = tokio::task::block_in_place(|| up.interrupt()).join("\n");
    assert!(
        out.contains("đã dừng (stopped) nats-server-province"),
        "{out}"
    );
}
