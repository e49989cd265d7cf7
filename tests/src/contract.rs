//! The contract every [`EventLog`] backend keeps. `tests/log_contract.rs` runs each
//! check against the in-memory log and against JetStream on a real nats-server.

use std::time::Duration;

use coord_log::{
    EventLog, EventPosition, ExpectedVersion, LogErrorKind, Metadata, NewEvent, StreamId,
};
use futures::StreamExt;
use uuid::Uuid;

pub fn stream(category: &str) -> StreamId {
    StreamId::new(category, Uuid::now_v7()).unwrap()
}

pub fn event(ty: &str, n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: ty.into(),
        schema_version: 1,
        occurred_at: "2022-06-15".parse().unwrap(),
        payload: serde_json::json!({ "n": n }),
        metadata: Metadata {
            role: None,
            office: "province".into(),
            actor: "contract-test".into(),
            correlation_id: Uuid::now_v7(),
            causation_id: Uuid::now_v7(),
        },
    }
}

/// Appends, reads back, and keeps the envelope intact.
pub async fn append_and_read_back(log: &impl EventLog) {
    let s = stream("inspection");
    assert!(
        log.read_stream(&s).await.unwrap().is_empty(),
        "a new stream is empty"
    );
    let first = event("InspectionScheduled", 1);
    let out = log
        .append(&s, ExpectedVersion::NoStream, vec![first.clone()])
        .await
        .unwrap();
    assert_eq!(out.stream_version, 1);
    assert!(!out.duplicate);
    assert_eq!(out.event_ids, vec![first.event_id]);
    let out2 = log
        .append(
            &s,
            ExpectedVersion::Exact(1),
            vec![event("InspectionStarted", 2)],
        )
        .await
        .unwrap();
    assert_eq!(out2.stream_version, 2);
    assert!(out2.position > out.position, "positions grow");
    let read = log.read_stream(&s).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].event_id, first.event_id);
    assert_eq!(read[0].stream_id, s);
    assert_eq!(read[0].stream_version, 1);
    assert_eq!(read[0].event_type, "InspectionScheduled");
    assert_eq!(read[0].payload, first.payload);
    assert_eq!(read[0].office, "province");
    assert_eq!(read[0].causation_id, first.metadata.causation_id);
    assert_eq!(read[0].pos().commit, out.position.commit);
    assert!(read[1].pos() > read[0].pos());
    assert_eq!(read[1].stream_version, 2);
    assert_eq!(
        log.head().await.unwrap().map(|p| p.commit),
        Some(out2.position.commit)
    );
}

/// Several events of one append are stored together, numbered without gaps.
pub async fn multi_event_append_is_one_commit(log: &impl EventLog) {
    let s = stream("discipline");
    let batch = vec![event("A", 1), event("B", 2), event("C", 3)];
    let out = log
        .append(&s, ExpectedVersion::NoStream, batch)
        .await
        .unwrap();
    assert_eq!(out.stream_version, 3);
    assert_eq!(out.event_ids.len(), 3);
    let read = log.read_stream(&s).await.unwrap();
    let versions: Vec<u64> = read.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert!(read.iter().all(|e| e.pos().commit == out.position.commit));
    assert!(
        read.windows(2).all(|w| w[0].pos() < w[1].pos()),
        "distinct, ordered positions"
    );
}

/// A stale expected version is a Conflict and writes nothing.
pub async fn stale_writer_gets_conflict(log: &impl EventLog) {
    let s = stream("exchange");
    log.append(&s, ExpectedVersion::NoStream, vec![event("A", 1)])
        .await
        .unwrap();
    let head = log.head().await.unwrap();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
    ] {
        let err = log
            .append(&s, expected, vec![event("B", 2)])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), LogErrorKind::Conflict, "{expected:?}: {err}");
    }
    assert_eq!(
        log.read_stream(&s).await.unwrap().len(),
        1,
        "nothing was written"
    );
    assert_eq!(log.head().await.unwrap(), head);
}

/// Two writers race on one version: exactly one wins; the loser reloads and succeeds,
/// so nothing is lost.
pub async fn concurrent_writers_exactly_one_wins(log: &(impl EventLog + Clone)) {
    for round in 0..5 {
        let s = stream("inspection");
        log.append(&s, ExpectedVersion::NoStream, vec![event("Base", 0)])
            .await
            .unwrap();
        let (a, b) = (event("Writer", 1), event("Writer", 2));
        let (ra, rb) = tokio::join!(
            log.append(&s, ExpectedVersion::Exact(1), vec![a.clone()]),
            log.append(&s, ExpectedVersion::Exact(1), vec![b.clone()]),
        );
        let wins = [ra.is_ok(), rb.is_ok()].iter().filter(|w| **w).count();
        assert_eq!(wins, 1, "round {round}: exactly one writer wins");
        let (loser, loser_result) = if ra.is_ok() { (b, rb) } else { (a, ra) };
        assert_eq!(loser_result.unwrap_err().kind(), LogErrorKind::Conflict);
        assert_eq!(log.read_stream(&s).await.unwrap().len(), 2);
        // The loser reloads and tries again at the new version.
        let out = log
            .append(&s, ExpectedVersion::Exact(2), vec![loser.clone()])
            .await
            .unwrap();
        assert_eq!(out.stream_version, 3);
        let ids: Vec<Uuid> = log
            .read_stream(&s)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event_id)
            .collect();
        assert!(ids.contains(&loser.event_id));
        assert_eq!(ids.len(), 3);
    }
}

/// Appending the same events again stores nothing new, even after the stream moved on.
pub async fn retried_append_is_stored_once(log: &impl EventLog) {
    let s = stream("inspection");
    let batch = vec![event("A", 1), event("B", 2)];
    let first = log
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    let head = log.head().await.unwrap();
    let again = log
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.position.commit, first.position.commit);
    assert_eq!(again.stream_version, first.stream_version);
    assert_eq!(again.event_ids, first.event_ids);
    assert_eq!(log.head().await.unwrap(), head, "a retry writes nothing");
    log.append(&s, ExpectedVersion::Exact(2), vec![event("C", 3)])
        .await
        .unwrap();
    let late = log
        .append(&s, ExpectedVersion::NoStream, batch)
        .await
        .unwrap();
    assert!(late.duplicate, "a late retry is still recognised");
    assert_eq!(late.position.commit, first.position.commit);
    assert_eq!(log.read_stream(&s).await.unwrap().len(), 3);
}

/// Bad appends are refused before anything is written.
pub async fn invalid_appends_write_nothing(log: &impl EventLog) {
    let s = stream("inspection");
    let err = log
        .append(&s, ExpectedVersion::Any, vec![])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), LogErrorKind::InvalidInput);
    let e = event("A", 1);
    let err = log
        .append(&s, ExpectedVersion::Any, vec![e.clone(), e])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), LogErrorKind::InvalidInput);
    let err = log
        .append(&s, ExpectedVersion::Any, vec![event("Not a name", 1)])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), LogErrorKind::InvalidInput);
    assert!(log.read_stream(&s).await.unwrap().is_empty());
}

/// `Any` appends whatever the version.
pub async fn any_version_appends(log: &impl EventLog) {
    let s = stream("exchange");
    assert_eq!(
        log.append(&s, ExpectedVersion::Any, vec![event("A", 1)])
            .await
            .unwrap()
            .stream_version,
        1
    );
    assert_eq!(
        log.append(&s, ExpectedVersion::Any, vec![event("B", 2)])
            .await
            .unwrap()
            .stream_version,
        2
    );
}

/// A subscription replays what is stored in global order, then delivers new events.
pub async fn subscription_catches_up_then_follows(log: &impl EventLog) {
    let s1 = stream("inspection");
    let s2 = stream("exchange");
    log.append(
        &s1,
        ExpectedVersion::NoStream,
        vec![event("A", 1), event("B", 2)],
    )
    .await
    .unwrap();
    log.append(&s2, ExpectedVersion::NoStream, vec![event("C", 3)])
        .await
        .unwrap();

    let mut sub = log.subscribe(None).await.unwrap();
    let mut seen = Vec::new();
    let mut last: Option<EventPosition> = None;
    // Read until we have seen our three events (other tests may share the log).
    while seen.len() < 3 {
        let e = next(&mut sub).await;
        if let Some(l) = last {
            assert!(e.pos() > l, "global order");
        }
        last = Some(e.pos());
        if e.stream_id == s1 || e.stream_id == s2 {
            seen.push(e.event_type.clone());
        }
    }
    assert_eq!(seen, ["A", "B", "C"]);

    // Live: an append after subscribing arrives.
    let live = log
        .append(&s2, ExpectedVersion::Exact(1), vec![event("D", 4)])
        .await
        .unwrap();
    loop {
        let e = next(&mut sub).await;
        if e.stream_id == s2 && e.event_type == "D" {
            assert_eq!(e.pos().commit, live.position.commit);
            break;
        }
    }

    // From a position: only what comes after it, including the rest of a commit.
    let a = log.read_stream(&s1).await.unwrap()[0].pos();
    let mut from = log.subscribe(Some(a)).await.unwrap();
    let first = next(&mut from).await;
    assert_eq!(first.event_type, "B");
    assert!(first.pos() > a);
}

async fn next(sub: &mut coord_log::Subscription) -> coord_log::RecordedEvent {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("an event within 10 s")
        .expect("the subscription is open")
        .expect("a readable event")
}

/// Runs every check against one log.
/// An event of `office` (written canonically).
pub fn event_of(office: &str, ty: &str, n: u64) -> NewEvent {
    let mut e = event(ty, n);
    e.metadata.office = office.into();
    e
}

/// A record is (office, id): two offices' streams of one id are two streams, each
/// loaded and appended by its own office only, both found as references.
pub async fn offices_keep_their_own_streams(log: &impl EventLog) {
    let province = log.for_office(&coord_domain::Office::Province);
    let lx = log.for_office(&"district:long-xuyen".parse().unwrap());
    let s = stream("exchange");
    province
        .append(&s, ExpectedVersion::NoStream, vec![event("P", 1)])
        .await
        .unwrap();
    // the other office creates its own stream of that id: version 0 there
    lx.append(
        &s,
        ExpectedVersion::NoStream,
        vec![event_of("district:long-xuyen", "L", 1)],
    )
    .await
    .unwrap();
    province
        .append(&s, ExpectedVersion::Exact(1), vec![event("P", 2)])
        .await
        .unwrap();
    let own: Vec<_> = province.read_stream(&s).await.unwrap();
    assert_eq!(
        own.iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["P", "P"]
    );
    assert_eq!(own[1].stream_version, 2);
    let theirs = lx.read_stream(&s).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].office, "district:long-xuyen");
    // as a reference, both offices' records, each under its office
    let both = lx.read_reference(&s).await.unwrap();
    assert_eq!(both.len(), 3);
    assert_eq!(
        both.iter().filter(|e| e.office == "province").count(),
        2,
        "{both:?}"
    );
    // an office's view never appends another office's events
    let wrong = province
        .append(
            &s,
            ExpectedVersion::Any,
            vec![event_of("district:long-xuyen", "X", 9)],
        )
        .await
        .unwrap_err();
    assert_eq!(wrong.kind(), LogErrorKind::InvalidInput);
    assert_eq!(lx.read_stream(&s).await.unwrap().len(), 1);
}

pub async fn run_all(log: &(impl EventLog + Clone)) {
    offices_keep_their_own_streams(log).await;
    append_and_read_back(log).await;
    multi_event_append_is_one_commit(log).await;
    stale_writer_gets_conflict(log).await;
    concurrent_writers_exactly_one_wins(log).await;
    retried_append_is_stored_once(log).await;
    invalid_appends_write_nothing(log).await;
    any_version_appends(log).await;
    subscription_catches_up_then_follows(log).await;
}
