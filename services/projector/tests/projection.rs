//! The projection against the reference scenario, on the in-memory log: the article's
//! figures, rebuild equals incremental, redelivery counts nothing twice, poison events
//! are dead-lettered. (The same against JetStream and real processes: tests/ at the
//! workspace root.)

use std::sync::Arc;

use coord_domain::Province;
use coord_domain::appeal::Appeal;
use coord_domain::discipline::DisciplineCase;
use coord_domain::exchange::InformationExchange;
use coord_domain::inspection::Inspection;
use coord_domain::province::AN_GIANG_TOML;
use coord_domain::receipt::Receipt;
use coord_log::memory::InMemoryLog;
use coord_log::{EventLog, ExpectedVersion, Metadata, NewEvent, StreamId};
use coord_proto::{CommandReply, CommandRequest, ScriptedCommand};
use coord_service::{CommandHandler, InMemoryKeys};
use futures::StreamExt;
use projector::store::{Item, Store};
use uuid::Uuid;

const SCENARIO: &str = include_str!("../../../deploy/scenarios/an-giang-2020-2025.jsonl");

fn province() -> Arc<Province> {
    Arc::new(Province::from_toml_str(AN_GIANG_TOML).unwrap())
}

async fn load_scenario(log: &InMemoryLog) {
    let log: Arc<dyn EventLog> = Arc::new(log.clone());
    let inspection =
        CommandHandler::<Inspection>::new(log.clone(), Arc::new(InMemoryKeys::new()), province());
    let exchange = CommandHandler::<InformationExchange>::new(
        log.clone(),
        Arc::new(InMemoryKeys::new()),
        province(),
    );
    let receipt = CommandHandler::<Receipt>::sharing(&exchange);
    let discipline = CommandHandler::<DisciplineCase>::new(
        log.clone(),
        Arc::new(InMemoryKeys::new()),
        province(),
    );
    let appeal = CommandHandler::<Appeal>::sharing(&discipline);
    for line in SCENARIO.lines() {
        let cmd: ScriptedCommand = serde_json::from_str(line).unwrap();
        let route = coord_proto::route(&cmd.command).unwrap();
        let request = CommandRequest {
            role: None,
            command_id: cmd.command_id,
            correlation_id: None,
            office: cmd.office,
            actor: cmd.actor,
            expected_version: None,
            payload: cmd.payload,
        };
        let reply = match route.service {
            "inspection" => inspection.handle(route.endpoint, request).await,
            "exchange" if route.endpoint == "acknowledge" => {
                receipt.handle(route.endpoint, request).await
            }
            "exchange" => exchange.handle(route.endpoint, request).await,
            "discipline" if route.endpoint == "appeal" => {
                appeal.handle(route.endpoint, request).await
            }
            _ => discipline.handle(route.endpoint, request).await,
        };
        assert!(
            matches!(reply, CommandReply::Accepted(_)),
            "{}: {reply:?}",
            cmd.command
        );
    }
}

async fn all_items(log: &InMemoryLog) -> Vec<Item> {
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
    items
}

#[tokio::test]
async fn the_scenario_reproduces_the_articles_figures() {
    let log = InMemoryLog::new();
    load_scenario(&log).await;
    let mut store = Store::open_in_memory((*province()).clone()).unwrap();
    store.apply_batch(&all_items(&log).await).unwrap();
    let s = store
        .province_summary("2020-2025".parse().unwrap())
        .unwrap();
    assert_eq!(s.districts_total, 11);
    assert_eq!(s.districts_coordinated, 8);
    assert_eq!(s.districts_covered, 8);
    assert_eq!(s.districts_outstanding, ["an-phu", "thoai-son", "tri-ton"]);
    assert!(!s.target_met);
    assert_eq!(s.inspections.concluded, 9);
    assert_eq!(
        s.inspections.scheduled + s.inspections.in_progress + s.inspections.cancelled,
        0
    );
    assert_eq!(s.discipline.organizations.reprimand, 10);
    assert_eq!(
        s.discipline.organizations.warning + s.discipline.organizations.dissolution,
        0
    );
    assert_eq!(s.discipline.members.reprimand, 30);
    assert_eq!(s.discipline.members.warning, 15);
    assert_eq!(s.discipline.members.expulsion, 1);
    assert_eq!(s.discipline.members.removal_from_post, 0);
    assert_eq!(s.discipline.open_cases, 0);
    assert_eq!(s.exchanges.unacknowledged, 2);
    assert_eq!(s.dead_letters, 0);
    let lx = store
        .district_statuses("2020-2025".parse().unwrap())
        .unwrap()
        .remove(0);
    assert_eq!(lx.name, "Long Xuyên");
    assert_eq!(lx.inspections.concluded, 2);
    assert_eq!(lx.inspections_by_kind.supervision.concluded, 1);
    assert_eq!(lx.last_conclusion_on, Some("2024-05-03".parse().unwrap()));
}

#[tokio::test]
async fn a_rebuild_equals_the_incremental_model_and_redelivery_counts_nothing_twice() {
    let log = InMemoryLog::new();
    load_scenario(&log).await;
    let items = all_items(&log).await;

    // Incremental: small uneven batches, some delivered twice (as after a reconnect).
    let mut incremental = Store::open_in_memory((*province()).clone()).unwrap();
    let mut start = 0;
    for (i, size) in [1usize, 7, 3, 50, 2, 31].iter().cycle().enumerate() {
        if start >= items.len() {
            break;
        }
        let end = (start + size).min(items.len());
        incremental.apply_batch(&items[start..end]).unwrap();
        if i % 3 == 0 {
            let (applied, _) = incremental
                .apply_batch(&items[start.saturating_sub(5)..end])
                .unwrap();
            assert_eq!(applied, 0, "a redelivered batch applies nothing");
        }
        start = end;
    }

    // Rebuilt: drop everything and replay from the log in one go.
    let mut rebuilt = Store::open_in_memory((*province()).clone()).unwrap();
    rebuilt.apply_batch(&items[..10]).unwrap();
    projector::replay_into(&mut rebuilt, Arc::new(log.clone()), 64)
        .await
        .unwrap();

    let a = incremental.dump().unwrap();
    let b = rebuilt.dump().unwrap();
    assert!(
        a.len() > 300,
        "the dump covers the model ({} rows)",
        a.len()
    );
    assert_eq!(a, b);
}

fn raw_event(event_type: &str, schema_version: u32, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.into(),
        schema_version,
        occurred_at: "2023-01-01".parse().unwrap(),
        payload,
        metadata: Metadata {
            role: None,
            office: "province".into(),
            actor: "someone".into(),
            correlation_id: Uuid::now_v7(),
            causation_id: Uuid::now_v7(),
        },
    }
}

#[tokio::test]
async fn poison_events_are_dead_lettered_and_the_projection_goes_on() {
    let log = InMemoryLog::new();
    let poison = [
        (
            "inspection",
            raw_event("InspectionTeleported", 1, serde_json::json!({})),
        ),
        (
            "inspection",
            raw_event("InspectionStarted", 7, serde_json::json!({})),
        ),
        (
            "inspection",
            raw_event(
                "InspectionStarted",
                1,
                serde_json::json!({"inspection_id": 5}),
            ),
        ),
        ("weather", raw_event("RainFell", 1, serde_json::json!({}))),
        // Valid shape, but for an inspection the model has never seen.
        (
            "inspection",
            raw_event(
                "InspectionStarted",
                1,
                serde_json::json!({
            "inspection_id": "0190a000-0000-7000-8000-00000000dead", "started_on": "2023-01-01"}),
            ),
        ),
    ];
    for (category, event) in poison {
        log.append(
            &StreamId::new(category, Uuid::now_v7()).unwrap(),
            ExpectedVersion::Any,
            vec![event],
        )
        .await
        .unwrap();
    }
    load_scenario(&log).await;
    let mut store = Store::open_in_memory((*province()).clone()).unwrap();
    let mut items = all_items(&log).await;
    items.insert(
        0,
        Item::Unreadable {
            position: coord_log::EventPosition {
                commit: 0,
                index: 0,
            },
            reason: "bad json".into(),
        },
    );
    let (_, dead) = store.apply_batch(&items).unwrap();
    assert_eq!(dead, 6);
    assert_eq!(store.dead_letter_count().unwrap(), 6);
    let letters = store.dead_letters(10).unwrap();
    assert!(letters.iter().any(|l| {
        l.reason
            .contains("unknown event type `InspectionTeleported`")
    }));
    assert!(
        letters
            .iter()
            .any(|l| l.reason.contains("schema version 7"))
    );
    assert!(
        letters
            .iter()
            .any(|l| l.reason.contains("unknown stream category `weather`"))
    );
    assert!(
        letters
            .iter()
            .any(|l| l.reason.contains("not in the read model"))
    );
    let s = store
        .province_summary("2020-2025".parse().unwrap())
        .unwrap();
    assert_eq!(
        s.inspections.concluded, 9,
        "the projection went on after the poison"
    );
    assert_eq!(s.dead_letters, 6);
}

/// The in-memory log, but its fifth entry read as a commit that is not what its
/// subject says (as JetStream reports one stored on another office's subjects).
struct FifthMismatched(InMemoryLog);

#[async_trait::async_trait]
impl EventLog for FifthMismatched {
    fn for_office(&self, office: &coord_domain::Office) -> Arc<dyn EventLog> {
        self.0.for_office(office)
    }
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<coord_log::AppendOutcome, coord_log::LogError> {
        self.0.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
    ) -> Result<Vec<coord_log::RecordedEvent>, coord_log::LogError> {
        self.0.read_stream(stream).await
    }
    async fn read_reference(
        &self,
        stream: &StreamId,
    ) -> Result<Vec<coord_log::RecordedEvent>, coord_log::LogError> {
        self.0.read_reference(stream).await
    }
    async fn subscribe(
        &self,
        after: Option<coord_log::EventPosition>,
    ) -> Result<coord_log::Subscription, coord_log::LogError> {
        let inner = self.0.subscribe(after).await?;
        Ok(Box::pin(inner.enumerate().map(|(i, entry)| match entry {
            Ok(e) if i == 4 => Err(coord_log::LogError::SubjectMismatch {
                position: e.pos(),
                subject: "coord.log.district:x.inspection.y".into(),
                reason: "the commit names another office".into(),
            }),
            other => other,
        })))
    }
    async fn head(&self) -> Result<Option<coord_log::EventPosition>, coord_log::LogError> {
        self.0.head().await
    }
}

// The offline rebuild reads a commit that is not what its subject says as the running
// projector does (recorded, left out), instead of failing with the read models dropped.
#[tokio::test]
async fn a_rebuild_leaves_out_a_commit_that_is_not_what_its_subject_says() {
    let log = InMemoryLog::new();
    load_scenario(&log).await;
    let head = log.head().await.unwrap().unwrap();
    let mut rebuilt = Store::open_in_memory((*province()).clone()).unwrap();
    projector::replay_into(&mut rebuilt, Arc::new(FifthMismatched(log)), 64)
        .await
        .unwrap();
    assert_eq!(rebuilt.checkpoint().unwrap(), Some(head));
}
