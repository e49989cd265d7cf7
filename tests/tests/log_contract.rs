//! The event-log contract, run against both backends: in memory, and JetStream on a
//! real nats-server.

use coord_domain::Office;
use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::memory::InMemoryLog;
use coord_log::{EventLog, EventPosition, ExpectedVersion, LogErrorKind};
use futures::StreamExt;
use std::time::Duration;
use tests::{NatsServer, contract};

#[tokio::test]
async fn in_memory_log_keeps_the_contract() {
    let log = InMemoryLog::new();
    assert_eq!(log.head().await.unwrap(), None);
    contract::run_all(&log).await;
}

#[tokio::test]
async fn jetstream_log_keeps_the_contract() {
    let server = NatsServer::start();
    let client = server.admin_client().await;
    let log = JetStreamLog::open(client, JetStreamConfig::default())
        .await
        .unwrap();
    assert_eq!(log.head().await.unwrap(), None);
    contract::run_all(&log).await;
}

#[tokio::test]
async fn jetstream_positions_are_commit_sequence_and_index() {
    let server = NatsServer::start();
    let client = server.admin_client().await;
    let log = JetStreamLog::open(client, JetStreamConfig::default())
        .await
        .unwrap();
    let s = contract::stream("inspection");
    let batch = vec![
        contract::event("A", 1),
        contract::event("B", 2),
        contract::event("C", 3),
    ];
    let out = log
        .append(&s, ExpectedVersion::NoStream, batch)
        .await
        .unwrap();
    let positions: Vec<_> = log
        .read_stream(&s)
        .await
        .unwrap()
        .iter()
        .map(|e| e.pos())
        .collect();
    let expected: Vec<_> = (0..3)
        .map(|index| EventPosition {
            commit: out.position.commit,
            index,
        })
        .collect();
    assert_eq!(positions, expected);
    assert_eq!(out.position, expected[0]);
    assert_eq!(log.head().await.unwrap(), Some(expected[2]));
}

/// The same contract on EventStoreDB / KurrentDB. No such server can be installed on
/// this project's machines, so it runs only where one is given.
#[tokio::test]
#[ignore = "needs a live EventStoreDB/KurrentDB, which cannot run here: set EVENTSTORE_URL=esdb://127.0.0.1:2113?tls=false and run with --ignored"]
async fn eventstore_log_keeps_the_contract() {
    let url = std::env::var("EVENTSTORE_URL").expect("EVENTSTORE_URL names a live server");
    let log = coord_log_eventstore::EventStoreLog::connect(&url).unwrap();
    contract::run_all(&log).await;
}

#[tokio::test]
async fn jetstream_log_survives_a_server_crash() {
    let mut server = NatsServer::start();
    let s = contract::stream("inspection");
    let out = {
        let client = server.admin_client().await;
        let log = JetStreamLog::open(client, JetStreamConfig::default())
            .await
            .unwrap();
        log.append(
            &s,
            ExpectedVersion::NoStream,
            vec![contract::event("A", 1), contract::event("B", 2)],
        )
        .await
        .unwrap()
    };
    server.restart();
    let client = server.admin_client().await;
    let log = JetStreamLog::open(client, JetStreamConfig::default())
        .await
        .unwrap();
    let read = log.read_stream(&s).await.unwrap();
    assert_eq!(
        read.len(),
        2,
        "acknowledged events survive a SIGKILL of the server"
    );
    assert_eq!(read[0].event_id, out.event_ids[0]);
}

#[tokio::test]
async fn jetstream_subscription_reports_a_corrupt_entry_and_goes_on() {
    let server = NatsServer::start();
    let client = server.admin_client().await;
    let log = JetStreamLog::open(client.clone(), JetStreamConfig::default())
        .await
        .unwrap();
    // Someone publishes garbage straight onto a log subject.
    let js = async_nats::jetstream::new(client);
    js.publish("coord.log.province.inspection.garbage", "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let s = contract::stream("inspection");
    log.append(&s, ExpectedVersion::NoStream, vec![contract::event("A", 1)])
        .await
        .unwrap();

    let mut sub = log.subscribe(None).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap();
    let err = first.unwrap_err();
    assert_eq!(err.kind(), LogErrorKind::Corrupt);
    let second = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.stream_id, s);
}

/// A JetStream log over `client` (the stream created if missing).
async fn jetstream(client: async_nats::Client) -> std::sync::Arc<dyn EventLog> {
    std::sync::Arc::new(
        JetStreamLog::open(client, JetStreamConfig::default())
            .await
            .unwrap(),
    )
}

/// The subscription's next item, waited for at most 30 s.
async fn next(
    sub: &mut coord_log::Subscription,
) -> Option<Result<coord_log::RecordedEvent, coord_log::LogError>> {
    tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .expect("an item or the end within 30 s")
}

/// A subscription never passes to another log of the same name: when the stream is
/// deleted and created again, the ordered consumer is created again on the new stream
/// (from the next sequence, which there holds another log's commit); the subscription
/// ends with an error instead of yielding it, and the reader resubscribes, checking the
/// log's identity.
#[tokio::test]
async fn a_jetstream_subscription_ends_rather_than_follow_a_recreated_log() {
    let server = NatsServer::start();
    let client = server.admin_client().await;
    let old = jetstream(client.clone()).await;
    let s = contract::stream("inspection");
    old.append(&s, ExpectedVersion::NoStream, vec![contract::event("A", 1)])
        .await
        .unwrap();
    let mut sub = old.subscribe(None).await.unwrap();
    let first = next(&mut sub).await.unwrap().unwrap();
    assert_eq!(first.event_type, "A");

    async_nats::jetstream::new(client.clone())
        .delete_stream("COORD_LOG")
        .await
        .unwrap();
    let new = jetstream(client).await;
    for (i, kind) in ["B", "C", "D"].into_iter().enumerate() {
        let s = contract::stream("inspection");
        new.append(
            &s,
            ExpectedVersion::NoStream,
            vec![contract::event(kind, i as u64)],
        )
        .await
        .unwrap();
    }
    let ended = next(&mut sub).await.expect("an item, not the end");
    let err = ended.map(|e| e.event_type).unwrap_err();
    assert_eq!(err.kind(), LogErrorKind::Unavailable, "{err}");
    assert!(next(&mut sub).await.is_none(), "it ends there");
}

/// A reader without a checkpoint of its own (an export, a scrub, an offline rebuild)
/// reads on through a server restart, each entry once, with `coord_log::resuming`; and
/// ends with an error rather than read a recreated log.
#[tokio::test]
async fn a_resuming_subscription_reads_on_through_a_restart_but_never_into_another_log() {
    let mut server = NatsServer::start();
    let log = jetstream(server.admin_client().await).await;
    // (retried while the client reconnects to a restarted server, at most 30 s)
    let append = |log: std::sync::Arc<dyn EventLog>, kind: &'static str| async move {
        let s = contract::stream("inspection");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Err(e) = log
            .append(
                &s,
                ExpectedVersion::NoStream,
                vec![contract::event(kind, 1)],
            )
            .await
        {
            assert!(std::time::Instant::now() < deadline, "{e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    append(log.clone(), "A").await;
    append(log.clone(), "B").await;
    let mut sub = coord_log::resuming(log.clone(), None).await.unwrap();
    let kind = |e: Option<Result<coord_log::RecordedEvent, coord_log::LogError>>| {
        e.expect("an item").expect("an event").event_type
    };
    assert_eq!(kind(next(&mut sub).await), "A");
    assert_eq!(kind(next(&mut sub).await), "B");

    // The server restarts (same store and port): the ordered consumer, kept in memory,
    // is gone; the client reconnects and the subscription reads on.
    server.restart();
    append(log.clone(), "C").await;
    assert_eq!(kind(next(&mut sub).await), "C", "each entry once, in order");

    // The stream is deleted and created again: the subscription ends with an error.
    async_nats::jetstream::new(server.admin_client().await)
        .delete_stream("COORD_LOG")
        .await
        .unwrap();
    let other = jetstream(server.admin_client().await).await;
    for kind in ["X", "Y", "Z", "W"] {
        append(other.clone(), kind).await;
    }
    let err = next(&mut sub)
        .await
        .expect("an item")
        .map(|e| e.event_type)
        .unwrap_err();
    assert_eq!(err.kind(), LogErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("replaced"), "{err}");
    assert!(next(&mut sub).await.is_none(), "it ends there");
}

// Ownership: a command's references are read wherever the referenced stream was
// written, while the aggregate itself is loaded only under its office's subjects. One
// stream holds two offices' subjects, as an office's log holds its own and what it
// sourced from the hub.
#[tokio::test]
async fn a_reference_is_read_under_any_offices_subjects_and_an_aggregate_only_under_its_own() {
    let server = NatsServer::start();
    let client = server.admin_client().await;
    // given the province's exchange, written in two commits with another office's
    // commit in between
    let log = JetStreamLog::open(client.clone(), JetStreamConfig::default())
        .await
        .unwrap();
    let district = log.for_office(&"district:long-xuyen".parse().unwrap());
    let (exchange, written) = exchange_between_receipts(&log, 2).await;
    // when the district reads it as a reference, then it finds both commits in order
    let seen = district.read_reference(&exchange).await.unwrap();
    let types: Vec<_> = seen.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["E1", "E2"]);
    assert_eq!(seen[0].pos(), written[0].position);
    // and as its own aggregate it finds nothing: it is not the district's to write
    assert!(district.read_stream(&exchange).await.unwrap().is_empty());
    // and the events are on the province's subjects
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("COORD_LOG").await.unwrap();
    let raw = stream
        .get_last_raw_message_by_subject(&format!("coord.log.province.exchange.{}", exchange.id()))
        .await
        .unwrap();
    assert_eq!(raw.sequence, 3);
    // and a stream written nowhere is empty, not an error
    let nowhere = contract::stream("exchange");
    assert!(district.read_reference(&nowhere).await.unwrap().is_empty());
}

// A record is (office, id) end to end: a commit whose body names another office (or
// another stream) than the subject it was stored on is never handed out as an event.
// A district's server, whose admin the district holds, can put anything on its own
// subjects; no reader takes the body's word for whose record it is.
#[tokio::test]
async fn a_commit_that_is_not_what_its_subject_says_is_never_an_event() {
    let server = NatsServer::start();
    let client = server.admin_client().await;
    let log = JetStreamLog::open(client.clone(), JetStreamConfig::default())
        .await
        .unwrap();
    let province = log.for_office(&Office::Province);
    let case = contract::stream("discipline");
    province
        .append(
            &case,
            ExpectedVersion::NoStream,
            vec![contract::event("A", 1)],
        )
        .await
        .unwrap();
    // given a commit naming the province's case, published on a district's subjects
    let forged = serde_json::json!({"events": [{
        "event_id": uuid::Uuid::now_v7(), "stream_id": case.to_string(), "stream_version": 2,
        "event_type": "DisciplineDecided", "schema_version": 1, "occurred_at": "2022-06-15",
        "recorded_at": "2022-06-15T00:00:00Z", "office": "province", "actor": "x",
        "correlation_id": uuid::Uuid::now_v7(), "causation_id": uuid::Uuid::now_v7(),
        "payload": {}
    }]});
    let subject = format!("coord.log.long-xuyen.discipline.{}", case.id());
    let js = async_nats::jetstream::new(client);
    js.publish(subject.clone(), forged.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    // then a reader of the whole log gets a subject mismatch for it, not an event
    let mut sub = log.subscribe(None).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.event_type, "A");
    let second = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(second.kind(), LogErrorKind::SubjectMismatch, "{second}");
    assert!(second.to_string().contains(&subject), "{second}");
    // and a reference read leaves it out: the province's case has its one event
    let seen = province.read_reference(&case).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].office, "province");
    // and the district cannot load it as its own aggregate either
    let lx = log.for_office(&"district:long-xuyen".parse().unwrap());
    assert_eq!(
        lx.read_stream(&case).await.unwrap_err().kind(),
        LogErrorKind::SubjectMismatch
    );
}

/// An append at a revision (the writer's last read, no head read of its own) goes
/// through at the stream's revision, is refused with nothing stored at a stale one, and
/// a retry of a stored commit answers the original outcome.
#[tokio::test]
async fn jetstream_appends_at_a_revision() {
    use coord_log::StreamRevision;
    let server = NatsServer::start();
    let client = server.admin_client().await;
    let log = JetStreamLog::open(client, JetStreamConfig::default())
        .await
        .unwrap();
    let s = contract::stream("inspection");
    let first = log
        .append_at(&s, StreamRevision::default(), vec![contract::event("A", 1)])
        .await
        .unwrap();
    let at = StreamRevision::of(&log.read_stream(&s).await.unwrap());
    assert_eq!(
        at,
        StreamRevision {
            commit: first.position.commit,
            version: 1
        }
    );

    // At a stale revision (the stream has moved on): a conflict, nothing stored.
    let stale = log
        .append_at(&s, StreamRevision::default(), vec![contract::event("B", 2)])
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), LogErrorKind::Conflict);
    assert_eq!(log.head().await.unwrap(), Some(first.position));

    // At its revision: stored, version 2; the same commit again is its retry.
    let c = contract::event("C", 2);
    let second = log.append_at(&s, at, vec![c.clone()]).await.unwrap();
    assert_eq!(second.stream_version, 2);
    let retry = log.append_at(&s, at, vec![c]).await.unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.position, second.position);
    assert_eq!(log.read_stream(&s).await.unwrap().len(), 2);
}

/// The province's exchange written in `commits` commits (events `E1`, `E2`, …), each
/// followed by a district's commit of its own: one stream holds two offices' subjects,
/// as an office's log holds its own and what it sourced from the hub.
async fn exchange_between_receipts(
    log: &JetStreamLog,
    commits: u64,
) -> (coord_log::StreamId, Vec<coord_log::AppendOutcome>) {
    let province = log.for_office(&Office::Province);
    let district = log.for_office(&"district:long-xuyen".parse().unwrap());
    let exchange = contract::stream("exchange");
    let mut written = Vec::new();
    for n in 0..commits {
        let event = contract::event(&format!("E{}", n + 1), n + 1);
        let appended = province.append(&exchange, ExpectedVersion::Exact(n), vec![event]);
        written.push(appended.await.unwrap());
        district
            .append(
                &contract::stream("receipt"),
                ExpectedVersion::NoStream,
                vec![contract::event_of("district:long-xuyen", "R", 1)],
            )
            .await
            .unwrap();
    }
    (exchange, written)
}

/// Direct-get requests `client` sent to the log stream since `monitor` subscribed:
/// counted up to a marker `client` sends after them (one publisher's messages reach a
/// subscriber in order).
async fn direct_gets(client: &async_nats::Client, monitor: &mut async_nats::Subscriber) -> usize {
    client
        .publish("$JS.API.DIRECT.GET.MARKER", "".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut count = 0;
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(10), monitor.next())
        .await
        .unwrap()
    {
        if msg.subject.as_str() == "$JS.API.DIRECT.GET.MARKER" {
            return count;
        }
        count += 1;
    }
    panic!("the monitor's subscription ended")
}

// A stream is read forward in batched direct gets (nats-server 2.11+): a cold load or
// a reference of seven commits is one request, pages of `read_batch` commits follow
// each other without losing or repeating one, and `read_batch = 0` reads one commit a
// request, as a server without batches answers.
#[tokio::test]
async fn a_stream_is_read_in_batches_of_commits_each_once_in_order() {
    let server = NatsServer::start();
    let client = server.admin_client().await;
    let log = JetStreamLog::open(client.clone(), JetStreamConfig::default())
        .await
        .unwrap();
    // given the province's exchange in seven commits, a district's commit after each
    let (exchange, _) = exchange_between_receipts(&log, 7).await;
    let types: Vec<String> = (1..=7).map(|n| format!("E{n}")).collect();
    let mut monitor = client.subscribe("$JS.API.DIRECT.GET.>").await.unwrap();
    client.flush().await.unwrap();

    // (read_batch, requests for the own stream's load, requests for the reference)
    for (read_batch, own, reference) in [(256, 1, 1), (3, 3, 3), (0, 7, 8)] {
        let log = JetStreamLog::open(
            client.clone(),
            JetStreamConfig {
                read_batch,
                ..JetStreamConfig::default()
            },
        )
        .await
        .unwrap();
        // when the province loads it and the district reads it as a reference
        let loaded = log
            .for_office(&Office::Province)
            .read_stream(&exchange)
            .await
            .unwrap();
        let loads = direct_gets(&client, &mut monitor).await;
        let referenced = log.read_reference(&exchange).await.unwrap();
        let references = direct_gets(&client, &mut monitor).await;
        // then both hold the seven events in order, each once
        for seen in [&loaded, &referenced] {
            let seen: Vec<_> = seen.iter().map(|e| e.event_type.clone()).collect();
            assert_eq!(seen, types, "read_batch {read_batch}");
        }
        assert_eq!(
            (loads, references),
            (own, reference),
            "read_batch {read_batch}"
        );
    }
}
