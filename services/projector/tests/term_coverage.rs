//! The term target counts only what was done in the term: an inspection concluded after
//! the term's last day is recorded (counted among `concluded` and shown as
//! `concluded_after_term`) but does not cover its unit for that term.

use std::sync::Arc;

use coord_domain::Province;
use coord_domain::inspection::Inspection;
use coord_domain::province::AN_GIANG_TOML;
use coord_log::EventLog;
use coord_log::memory::InMemoryLog;
use coord_proto::{CommandReply, CommandRequest};
use coord_service::{CommandHandler, InMemoryKeys};
use futures::StreamExt;
use projector::store::{Item, Store};
use serde_json::json;
use uuid::Uuid;

const ID: &str = "0190a000-0000-7000-8000-00000000a001";

fn request(payload: serde_json::Value) -> CommandRequest {
    CommandRequest {
        role: None,
        command_id: Uuid::now_v7(),
        correlation_id: None,
        office: "province".into(),
        actor: "tester".into(),
        expected_version: None,
        payload,
    }
}

async fn inspect_an_phu(concluded_on: &str) -> Store {
    let log = InMemoryLog::new();
    let province = Province::from_toml_str(AN_GIANG_TOML).unwrap();
    let handler = CommandHandler::<Inspection>::new(
        Arc::new(log.clone()),
        Arc::new(InMemoryKeys::new()),
        Arc::new(province.clone()),
    );
    let steps = [
        (
            "schedule",
            json!({
            "inspection_id": ID, "term": "2020-2025", "unit": "an-phu",
            "kind": "inspection", "category": "compliance",
            "leading_body": "provincial_standing_committee",
            "coordinating_body": "district_standing_committee:an-phu",
            "target": "district_police:an-phu", "decision_ref": "QĐ (example)",
            "decided_on": "2025-01-06", "planned_start": "2025-01-15", "planned_end": "2025-02-20"}),
        ),
        (
            "start",
            json!({"inspection_id": ID, "started_on": "2025-01-15"}),
        ),
        (
            "conclude",
            json!({"inspection_id": ID, "concluded_on": concluded_on,
            "outcome": "shortcomings", "summary": "x", "conclusion_ref": "TB (example)"}),
        ),
    ];
    for (endpoint, payload) in steps {
        let reply = handler.handle(endpoint, request(payload)).await;
        assert!(matches!(reply, CommandReply::Accepted(_)), "{reply:?}");
    }
    let head = log.head().await.unwrap().unwrap();
    let mut sub = log.subscribe(None).await.unwrap();
    let mut items = Vec::new();
    while let Some(e) = sub.next().await {
        let e = e.unwrap();
        let done = e.pos() >= head;
        items.push(Item::Event(e));
        if done {
            break;
        }
    }
    let mut store = Store::open_in_memory(province).unwrap();
    store.apply_batch(&items).unwrap();
    store
}

#[tokio::test]
async fn a_conclusion_after_the_term_is_recorded_but_does_not_cover() {
    let store = inspect_an_phu("2026-01-10").await;
    let term = "2020-2025".parse().unwrap();
    let an_phu = store
        .district_statuses(term)
        .unwrap()
        .into_iter()
        .find(|d| d.unit == "an-phu")
        .unwrap();
    assert!(!an_phu.covered);
    assert_eq!(an_phu.inspections.concluded, 1);
    assert_eq!(an_phu.concluded_after_term, 1);
    assert_eq!(
        an_phu.last_conclusion_on,
        Some("2026-01-10".parse().unwrap())
    );
    let s = store.province_summary(term).unwrap();
    assert_eq!(s.districts_covered, 0);
    assert!(s.districts_outstanding.contains(&"an-phu".to_owned()));
}

#[tokio::test]
async fn a_conclusion_on_the_terms_last_day_covers() {
    let store = inspect_an_phu("2025-12-31").await;
    let term = "2020-2025".parse().unwrap();
    let an_phu = store
        .district_statuses(term)
        .unwrap()
        .into_iter()
        .find(|d| d.unit == "an-phu")
        .unwrap();
    assert!(an_phu.covered);
    assert_eq!(an_phu.concluded_after_term, 0);
    assert_eq!(store.province_summary(term).unwrap().districts_covered, 1);
}
