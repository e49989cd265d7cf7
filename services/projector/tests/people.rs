//! People, not only decisions: a member disciplined in two cases is one member and two
//! decisions, in a district and across the province; a unit's timeline shows each
//! event as recorded; and a read-model database of an older schema (before people
//! were counted, or whose timeline kept payloads only) is rebuilt rather than read
//! wrong.

use std::sync::Arc;

use coord_domain::Province;
use coord_domain::discipline::DisciplineCase;
use coord_domain::province::AN_GIANG_TOML;
use coord_log::EventLog;
use coord_log::memory::InMemoryLog;
use coord_proto::{CommandReply, CommandRequest};
use coord_service::{CommandHandler, InMemoryKeys};
use futures::StreamExt;
use projector::store::{Item, Store};
use serde_json::json;
use uuid::Uuid;

fn province() -> Province {
    Province::from_toml_str(AN_GIANG_TOML).unwrap()
}

async fn send(h: &CommandHandler<DisciplineCase>, endpoint: &str, payload: serde_json::Value) {
    let request = CommandRequest {
        role: None,
        command_id: Uuid::now_v7(),
        correlation_id: None,
        office: "province".into(),
        actor: "test".into(),
        expected_version: None,
        payload,
    };
    let reply = h.handle(endpoint, request).await;
    assert!(matches!(reply, CommandReply::Accepted(_)), "{reply:?}");
}

/// Opens a case on `subject` in `unit`, and decides `form` unless `None`.
async fn case(
    h: &CommandHandler<DisciplineCase>,
    unit: &str,
    subject: serde_json::Value,
    form: Option<&str>,
) {
    let id = Uuid::now_v7().to_string();
    send(h, "open", json!({"case_id": id, "term": "2020-2025", "unit": unit, "subject": subject,
        "basis": {"kind": "central_conclusion", "body": "central_inspection_commission", "reference": "KL-1 (giả định)"},
        "violation": {"committed_on": "2023-11-01"}, "opened_on": "2024-03-01"})).await;
    if let Some(form) = form {
        send(
            h,
            "decide",
            json!({"case_id": id, "form": form, "deciding_body": "provincial_standing_committee",
            "decided_on": "2024-03-22", "decision_ref": "QĐ-1 (giả định)"}),
        )
        .await;
    }
}

fn member(r: &str) -> serde_json::Value {
    json!({"kind": "member", "member": r, "membership": "full", "holds_post": false})
}

fn organization(name: &str) -> serde_json::Value {
    json!({"kind": "organization", "name": name})
}

fn handler(log: &InMemoryLog) -> CommandHandler<DisciplineCase> {
    CommandHandler::new(
        Arc::new(log.clone()),
        Arc::new(InMemoryKeys::new()),
        Arc::new(province()),
    )
}

async fn project(log: &InMemoryLog) -> Store {
    let head = log.head().await.unwrap().unwrap();
    let mut items = Vec::new();
    let mut sub = log.subscribe(None).await.unwrap();
    while let Some(e) = sub.next().await {
        let e = e.unwrap();
        let done = e.pos() >= head;
        items.push(Item::Event(e));
        if done {
            break;
        }
    }
    let mut store = Store::open_in_memory(province()).unwrap();
    store.apply_batch(&items).unwrap();
    store
}

#[tokio::test]
async fn given_a_member_disciplined_twice_then_one_member_and_two_decisions() {
    let log = InMemoryLog::new();
    let h = handler(&log);
    // Given: ĐV-1 disciplined in Long Xuyên and in Châu Đốc, ĐV-2 in Long Xuyên, ĐV-3's
    // case open; the same organization name in two districts (two organizations), one
    // of them disciplined twice.
    case(&h, "long-xuyen", member("ĐV-1"), Some("reprimand")).await;
    case(&h, "chau-doc", member("ĐV-1"), Some("warning")).await;
    case(&h, "long-xuyen", member("ĐV-2"), Some("reprimand")).await;
    case(&h, "long-xuyen", member("ĐV-3"), None).await;
    case(
        &h,
        "long-xuyen",
        organization("Chi bộ 1"),
        Some("reprimand"),
    )
    .await;
    case(&h, "long-xuyen", organization("Chi bộ 1"), Some("warning")).await;
    case(&h, "chau-doc", organization("Chi bộ 1"), Some("reprimand")).await;

    // When projected.
    let store = project(&log).await;
    let term = "2020-2025".parse().unwrap();

    // Then, for the province:
    let d = store.province_summary(term).unwrap().discipline;
    assert_eq!((d.members_disciplined, d.member_decisions), (2, 3));
    assert_eq!(
        (d.organizations_disciplined, d.organization_decisions),
        (2, 3)
    );
    assert_eq!(
        d.members.reprimand + d.members.warning,
        3,
        "by form: decisions"
    );
    // and for each district:
    let districts = store.district_statuses(term).unwrap();
    let of = |unit: &str| {
        districts
            .iter()
            .find(|x| x.unit == unit)
            .unwrap()
            .discipline
    };
    let lx = of("long-xuyen");
    assert_eq!((lx.members_disciplined, lx.member_decisions), (2, 2));
    assert_eq!(
        (lx.organizations_disciplined, lx.organization_decisions),
        (1, 2)
    );
    let cd = of("chau-doc");
    assert_eq!((cd.members_disciplined, cd.member_decisions), (1, 1));
    assert_eq!(
        (cd.organizations_disciplined, cd.organization_decisions),
        (1, 1)
    );
}

#[test]
fn a_database_from_before_people_were_counted_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let store = reopened_after(
        &dir.path().join("old.sqlite"),
        "CREATE TABLE checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), commit_pos INTEGER NOT NULL, idx INTEGER NOT NULL);
             INSERT INTO checkpoint VALUES (1, 42, 0);
             CREATE TABLE discipline_cases (case_id TEXT PRIMARY KEY, term TEXT NOT NULL, unit TEXT NOT NULL,
                 subject_kind TEXT NOT NULL, status TEXT NOT NULL, form_in_force TEXT, decided_on TEXT);
             INSERT INTO discipline_cases VALUES ('c', '2020-2025', 'long-xuyen', 'member', 'decided', 'reprimand', '2024-01-01');",
    );
    let d = store
        .province_summary("2020-2025".parse().unwrap())
        .unwrap()
        .discipline;
    assert_eq!(d.member_decisions, 0);
}

#[tokio::test]
async fn the_timeline_shows_each_event_with_its_payload_as_recorded() {
    let log = InMemoryLog::new();
    let h = handler(&log);
    case(&h, "long-xuyen", member("ĐV-1"), Some("reprimand")).await;
    let store = project(&log).await;

    let page = store
        .timeline(&"long-xuyen".parse().unwrap(), 10, None)
        .unwrap();
    let mut recorded = Vec::new();
    let mut sub = log.subscribe(None).await.unwrap();
    while recorded.len() < page.entries.len() {
        recorded.push(sub.next().await.unwrap().unwrap());
    }
    recorded.reverse(); // the timeline is newest first
    assert_eq!(page.entries.len(), 2, "opened and decided");
    for (entry, event) in page.entries.iter().zip(&recorded) {
        assert_eq!(entry.event_id, event.event_id.to_string());
        assert_eq!(entry.payload, event.payload, "{}", entry.event_type);
    }
}

#[test]
fn a_database_whose_timeline_kept_payloads_only_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    drop(Store::open(&path, province()).unwrap());
    let store = reopened_after(
        &path,
        "INSERT INTO checkpoint VALUES (1, 42, 0);
             DROP TABLE timeline;
             CREATE TABLE timeline (commit_pos INTEGER NOT NULL, idx INTEGER NOT NULL, unit TEXT NOT NULL,
                 event_id TEXT NOT NULL, event_type TEXT NOT NULL, stream_id TEXT NOT NULL,
                 occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL, office TEXT NOT NULL, actor TEXT NOT NULL,
                 summary_vi TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (commit_pos, idx));",
    );
    assert!(
        store
            .timeline(&"long-xuyen".parse().unwrap(), 10, None)
            .unwrap()
            .entries
            .is_empty()
    );
}

/// Opens the database at `path` once `old` (SQL) gave it an older schema, with a
/// checkpoint: the old rows are dropped, for the log to be replayed from the start.
fn reopened_after(path: &std::path::Path, old: &str) -> Store {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(old)
        .unwrap();
    let store = Store::open(path, province()).unwrap();
    assert_eq!(
        store.checkpoint().unwrap(),
        None,
        "the old rows are dropped and the log replayed from the start"
    );
    store
}
