//! The projector killed (SIGKILL) in the middle of a replay resumes from its checkpoint
//! without counting anything twice or skipping anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::{EventLog, ExpectedVersion};
use coord_proto::read::{
    ProjectorPosition, ProvinceSummary, QueryReply, QueryRequest, query_subject,
};
use tests::Stack;

const EVENTS: usize = 4000;
async fn ask<T: serde::de::DeserializeOwned>(
    nats: &async_nats::Client,
    endpoint: &str,
    q: &QueryRequest,
) -> Option<T> {
    let body = serde_json::to_vec(q).unwrap();
    let msg = tokio::time::timeout(
        Duration::from_secs(15),
        nats.request(query_subject(endpoint), body.into()),
    )
    .await
    .ok()?
    .ok()?;
    match serde_json::from_slice::<QueryReply<T>>(&msg.payload).ok()? {
        QueryReply::Ok(v) => Some(v),
        QueryReply::Error(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_replay_resumes_without_double_counting() {
    let mut stack = Stack::start();
    // Only NATS is needed from the stack; stop its projector to control our own.
    stack.process("projector").kill();
    let nats = stack.nats.admin_client().await;
    let log = Arc::new(
        JetStreamLog::open(nats.clone(), JetStreamConfig::default())
            .await
            .unwrap(),
    );

    // Fill the log: EVENTS commits, appended by 16 writers at once.
    let mut writers = Vec::new();
    for w in 0..16 {
        let log = log.clone();
        writers.push(tokio::spawn(async move {
            for n in (w..EVENTS).step_by(16) {
                let (stream, event) = tests::inspection_scheduled(n);
                log.append(&stream, ExpectedVersion::NoStream, vec![event])
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let head = log.head().await.unwrap().unwrap().commit;

    // A fresh projector replays one event per transaction; kill it half-way.
    let mut projector = stack.spawn("projector", &[("COORD_PROJECTOR_BATCH", "1")]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed_at = loop {
        assert!(Instant::now() < deadline, "the projector never got going");
        if let Some(p) = ask::<ProjectorPosition>(&nats, "position", &QueryRequest::default()).await
            && p.position > 0
        {
            projector.kill();
            break p.position;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert!(
        killed_at < head,
        "killed mid-replay ({killed_at} of {head})"
    );

    // Restart: it resumes from its checkpoint.
    let _projector = stack.spawn("projector", &[]);
    let q = QueryRequest {
        min_position: Some(head),
        wait_ms: Some(10_000),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let summary = loop {
        if let Some(s) = ask::<ProvinceSummary>(&nats, "province_summary", &q).await {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted projector caught up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(summary.position, head);
    assert_eq!(
        summary.inspections.scheduled, EVENTS as u64,
        "every event counted exactly once"
    );
    assert_eq!(summary.districts_coordinated, 11);
    assert_eq!(summary.dead_letters, 0);
}
