//! End to end: a real nats-server, the three command services as separate processes,
//! commands over NATS request/reply, and the events read back from the JetStream log.

use std::time::Duration;

use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::{EventLog, StreamId};
use coord_proto::{Accepted, CommandReply, ErrorKind, ErrorReply};
use serde_json::{Value, json};
use tests::{NatsServer, ServiceProcess, request, send_command, send_raw};
use uuid::Uuid;

struct System {
    nats: NatsServer,
    services: Vec<ServiceProcess>,
    client: async_nats::Client,
    log: JetStreamLog,
}

fn start_service(bin: &str, nats: &NatsServer) -> ServiceProcess {
    ServiceProcess::start_on(nats, bin, &[])
}

async fn start_system() -> System {
    let nats = NatsServer::start();
    let services = ["inspection", "exchange", "discipline"]
        .iter()
        .map(|s| start_service(s, &nats))
        .collect();
    let client = nats.admin_client().await;
    let log = JetStreamLog::open(client.clone(), JetStreamConfig::default())
        .await
        .unwrap();
    System {
        nats,
        services,
        client,
        log,
    }
}

fn ok(reply: CommandReply) -> Accepted {
    match reply {
        CommandReply::Accepted(a) => a,
        CommandReply::Error(e) => panic!("expected acceptance, got {e:?}"),
    }
}
fn err(reply: CommandReply) -> ErrorReply {
    match reply {
        CommandReply::Error(e) => e,
        CommandReply::Accepted(a) => panic!("expected an error, got {a:?}"),
    }
}

fn schedule(id: Uuid, unit: &str) -> Value {
    json!({
        "inspection_id": id, "term": "2020-2025", "unit": unit,
        "kind": "supervision", "category": "thematic",
        "leading_body": "provincial_standing_committee",
        "coordinating_body": format!("district_standing_committee:{unit}"),
        "target": format!("district_police:{unit}"),
        "decision_ref": "15-QĐ/ĐUCA (example)", "decided_on": "2022-06-20",
        "planned_start": "2022-07-01", "planned_end": "2022-07-30"
    })
}

fn stream(category: &str, id: Uuid) -> StreamId {
    StreamId::new(category, id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_flow_through_all_three_services_into_the_log() {
    let sys = start_system().await;
    let c = &sys.client;

    // Inspection: scheduled → started → concluded.
    let insp = Uuid::now_v7();
    let scheduled = ok(send_command(
        c,
        "inspection",
        "schedule",
        &request(schedule(insp, "cho-moi")),
    )
    .await);
    assert_eq!(scheduled.stream_version, 1);
    ok(send_command(
        c,
        "inspection",
        "start",
        &request(json!({"inspection_id": insp, "started_on": "2022-07-01"})),
    )
    .await);
    let concluded = ok(send_command(c, "inspection", "conclude", &request(json!({
        "inspection_id": insp, "concluded_on": "2022-08-05", "outcome": "shortcomings",
        "summary": "Cần khắc phục hạn chế trong công tác kiểm tra", "conclusion_ref": "20-TB/ĐUCA (example)"
    }))).await);
    assert_eq!(concluded.stream_version, 3);
    assert!(concluded.position > scheduled.position);

    // Exchange: the conclusion notice, acknowledged by the district.
    let exch = Uuid::now_v7();
    ok(send_command(c, "exchange", "send", &request(json!({
        "exchange_id": exch, "term": "2020-2025", "unit": "cho-moi",
        "from": "provincial_standing_committee", "to": "district_standing_committee:cho-moi",
        "topic": "conclusion", "subject": "Thông báo kết luận giám sát", "sent_on": "2022-08-06",
        "link": {"kind": "inspection", "id": insp}
    }))).await);
    let mut ack = request(
        json!({"exchange_id": exch, "by": "district_standing_committee:cho-moi", "acknowledged_on": "2022-08-08"}),
    );
    ack.office = "district:cho-moi".into();
    ok(send_command(c, "exchange", "acknowledge", &ack).await);

    // Discipline: a case on a central conclusion, decided.
    let case = Uuid::now_v7();
    ok(send_command(c, "discipline", "open", &request(json!({
        "case_id": case, "term": "2020-2025", "unit": "cho-moi",
        "subject": {"kind": "member", "member": "DV-0042", "membership": "full", "holds_post": true},
        "basis": {"kind": "central_conclusion", "body": "central_inspection_commission", "reference": "KL-01 (example)"},
        "violation": {"committed_on": "2022-03-01"}, "opened_on": "2022-09-01"
    }))).await);
    let decided = ok(send_command(c, "discipline", "decide", &request(json!({
        "case_id": case, "form": "removal_from_post", "deciding_body": "provincial_standing_committee",
        "decided_on": "2022-09-20", "decision_ref": "QĐ-99 (example)"
    }))).await);

    // Read everything back from JetStream.
    let types = |events: Vec<coord_log::RecordedEvent>| {
        events.into_iter().map(|e| e.event_type).collect::<Vec<_>>()
    };
    assert_eq!(
        types(
            sys.log
                .read_stream(&stream("inspection", insp))
                .await
                .unwrap()
        ),
        [
            "InspectionScheduled",
            "InspectionStarted",
            "InspectionConcluded"
        ]
    );
    let exchange_events = sys
        .log
        .read_stream(&stream("exchange", exch))
        .await
        .unwrap();
    assert_eq!(types(exchange_events), ["InformationExchanged"]);
    // The acknowledgement is the district's own stream, one per exchange.
    let receipt = coord_proto::ids::receipt_id(exch);
    let receipt_events = sys
        .log
        .read_stream(&stream("receipt", receipt))
        .await
        .unwrap();
    assert_eq!(types(receipt_events.clone()), ["InformationAcknowledged"]);
    assert_eq!(receipt_events[0].office, "district:cho-moi");
    assert_eq!(receipt_events[0].payload["unit"], "cho-moi");
    let discipline_events = sys
        .log
        .read_stream(&stream("discipline", case))
        .await
        .unwrap();
    assert_eq!(
        types(discipline_events.clone()),
        ["DisciplineCaseOpened", "DisciplineDecided"]
    );
    assert_eq!(discipline_events[1].payload["form"], "removal_from_post");
    assert_eq!(discipline_events[1].event_id, decided.event_ids[0]);
    assert_eq!(
        sys.log.head().await.unwrap().unwrap().commit,
        decided.position
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_rejected_commands_get_typed_errors_and_append_nothing() {
    let sys = start_system().await;
    let c = &sys.client;
    // Make sure the services are up and the log exists.
    let case = Uuid::now_v7();
    ok(send_command(c, "discipline", "open", &request(json!({
        "case_id": case, "term": "2020-2025", "unit": "an-phu",
        "subject": {"kind": "member", "member": "DV-7", "membership": "full", "holds_post": false},
        "basis": {"kind": "central_conclusion", "body": "central_public_security_standing_committee", "reference": "KL-7 (example)"},
        "violation": {"committed_on": "2022-06-01"}, "opened_on": "2023-01-05"
    }))).await);
    let head = sys.log.head().await.unwrap();

    let e = err(send_raw(c, "coord.cmd.inspection.schedule", b"{not json".to_vec()).await);
    assert_eq!(e.kind, ErrorKind::Malformed);
    let e = err(send_raw(
        c,
        "coord.cmd.exchange.send",
        br#"{"command_id": "0190a000-0000-7000-8000-000000000001"}"#.to_vec(),
    )
    .await);
    assert_eq!(e.kind, ErrorKind::Malformed);
    let mut bad_date = schedule(Uuid::now_v7(), "an-phu");
    bad_date["decided_on"] = json!("2022-13-45");
    let e = err(send_command(c, "inspection", "schedule", &request(bad_date)).await);
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(
        e.message.contains("decided_on") || e.message.contains("input"),
        "{}",
        e.message
    );

    let e = err(send_command(c, "discipline", "decide", &request(json!({
        "case_id": case, "form": "removal_from_post", "deciding_body": "provincial_standing_committee",
        "decided_on": "2023-02-01", "decision_ref": "QĐ-1 (example)"
    }))).await);
    assert_eq!(e.kind, ErrorKind::RuleViolation);
    assert_eq!(e.code, "removal_from_post_requires_post");
    assert_eq!(
        e.message,
        "removal_from_post requires a member holding a post"
    );

    let e = err(send_command(
        c,
        "inspection",
        "start",
        &request(json!({"inspection_id": Uuid::now_v7(), "started_on": "2022-07-01"})),
    )
    .await);
    assert_eq!(e.kind, ErrorKind::NotFound);

    assert_eq!(
        sys.log.head().await.unwrap(),
        head,
        "no error path appended anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_command_is_stored_once() {
    let sys = start_system().await;
    let c = &sys.client;
    let insp = Uuid::now_v7();
    let req = request(schedule(insp, "tri-ton"));
    let first = ok(send_command(c, "inspection", "schedule", &req).await);
    let retry = ok(send_command(c, "inspection", "schedule", &req).await);
    assert!(!first.duplicate);
    assert!(retry.duplicate);
    assert_eq!(retry.event_ids, first.event_ids);
    assert_eq!(retry.position, first.position);
    assert_eq!(
        sys.log
            .read_stream(&stream("inspection", insp))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_across_instances_exactly_one_wins() {
    let mut sys = start_system().await;
    // A second inspection instance in the same queue group.
    sys.services.push(start_service("inspection", &sys.nats));
    let c = sys.client.clone();
    let insp = Uuid::now_v7();
    ok(send_command(
        &c,
        "inspection",
        "schedule",
        &request(schedule(insp, "chau-phu")),
    )
    .await);

    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = request(
                json!({"inspection_id": insp, "started_on": format!("2022-07-0{}", i + 1)}),
            );
            req.expected_version = Some(1);
            send_command(&c, "inspection", "start", &req).await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            CommandReply::Accepted(_) => accepted += 1,
            CommandReply::Error(e) => assert_eq!(e.kind, ErrorKind::Conflict, "{e:?}"),
        }
    }
    assert_eq!(accepted, 1, "exactly one writer wins");
    let events = sys
        .log
        .read_stream(&stream("inspection", insp))
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_restart_loses_nothing_that_was_acknowledged() {
    let mut sys = start_system().await;
    let c = sys.client.clone();

    // A burst of commands; stop the service gracefully in the middle of it.
    let ids: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    let mut tasks = Vec::new();
    for &id in &ids {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let subject = coord_proto::command_subject("inspection", "schedule");
            let body = serde_json::to_vec(&request(schedule(id, "thoai-son"))).unwrap();
            // One attempt, bounded: a request that finds no service is simply not acknowledged.
            match tokio::time::timeout(Duration::from_secs(10), c.request(subject, body.into()))
                .await
            {
                Ok(Ok(msg)) => Some((
                    id,
                    serde_json::from_slice::<CommandReply>(&msg.payload).unwrap(),
                )),
                _ => None,
            }
        }));
    }
    // Let the first ones through, then SIGTERM the inspection service.
    let before = Uuid::now_v7();
    let before_reply = ok(send_command(
        &c,
        "inspection",
        "schedule",
        &request(schedule(before, "thoai-son")),
    )
    .await);
    let inspection = &mut sys.services[0];
    assert_eq!(inspection.name, "inspection");
    assert!(
        inspection.terminate(),
        "the service exits cleanly on SIGTERM"
    );

    let mut acknowledged = vec![(before, before_reply)];
    for t in tasks {
        if let Some((id, CommandReply::Accepted(a))) = t.await.unwrap() {
            acknowledged.push((id, a));
        }
    }

    // Crash the NATS server too, then bring everything back.
    sys.nats.restart();
    sys.services[0] = start_service("inspection", &sys.nats);
    let client = sys.nats.admin_client().await;
    let log = JetStreamLog::open(client.clone(), JetStreamConfig::default())
        .await
        .unwrap();
    for (id, a) in &acknowledged {
        let events = log.read_stream(&stream("inspection", *id)).await.unwrap();
        assert_eq!(
            events.len(),
            1,
            "acknowledged command for {id} is in the log"
        );
        assert_eq!(events[0].event_id, a.event_ids[0]);
    }
    // And the restarted service carries on from the log.
    let a = ok(send_command(
        &client,
        "inspection",
        "start",
        &request(json!({"inspection_id": before, "started_on": "2022-07-01"})),
    )
    .await);
    assert_eq!(a.stream_version, 2);
    // Every command id either landed exactly once or not at all.
    for id in &ids {
        let n = log
            .read_stream(&stream("inspection", *id))
            .await
            .unwrap()
            .len();
        assert!(n <= 1, "{id}: {n} events");
    }
}
