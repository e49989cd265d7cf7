//! No service answers anywhere but an inbox. nats-server lets a responder publish once
//! to the reply subject of any request it received, even a subject its own deny list
//! forbids (`allow_responses`), so a request naming a log subject as its reply would
//! have the command service, the projector or the auditor write into the log (a
//! district's leaf user may ask the hub's auditor for consistency proofs, so it could
//! put anything on the province's subjects that way). Here a user that may send
//! requests to each service names log subjects and the idempotency bucket as reply
//! subjects: nothing is stored there, the command is not even handled, and the same
//! requests with an inbox are answered (what was not answered was refused, not lost).

use std::time::Duration;

use async_nats::jetstream;
use coord_proto::command_subject;
use futures::StreamExt;
use tests::{Stack, request, schedule_payload};
use uuid::Uuid;

/// Messages stored on `subject` (a wildcard too) in `stream`.
async fn stored(js: &jetstream::Context, stream: &str, subject: &str) -> u64 {
    let stream = js.get_stream(stream).await.unwrap();
    let mut subjects = stream.info_with_subjects(subject).await.unwrap();
    let mut total = 0;
    while let Some(s) = subjects.next().await {
        total += s.unwrap().1 as u64;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_answers_on_a_log_subject_or_a_key_named_as_the_reply() {
    let mut stack = Stack::start();
    let dir = stack.data.path().join("auditor").display().to_string();
    let auditor = stack.spawn("auditor", &[("COORD_AUDIT_DIR", dir.as_str())]);
    stack.processes.push(auditor);
    stack.wait_ready().await;
    let admin = jetstream::new(stack.nats.admin_client().await);
    // The gateway's user may send commands, queries and audit requests.
    let gateway = stack.nats.client_as("gateway").await;
    // The auditor answers (wait_ready covers the command services and the projector):
    // what it then leaves unanswered is refused, not missed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while gateway
        .request("coord.audit.province.key", "{}".into())
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the auditor never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let inspection = Uuid::now_v7();
    let command = serde_json::to_vec(&request(schedule_payload(inspection, "chau-doc"))).unwrap();
    let requests = [
        (command_subject("inspection", "schedule"), command.clone()),
        ("coord.query.position".to_owned(), b"{}".to_vec()),
        ("coord.audit.province.key".to_owned(), b"{}".to_vec()),
        (
            "coord.audit.province.consistency".to_owned(),
            br#"{"from":0,"to":0}"#.to_vec(),
        ),
    ];
    let target = format!("coord.log.province.discipline.{}", Uuid::now_v7());
    let key = format!("$KV.COORD_IDEMPOTENCY.{}", Uuid::now_v7());

    // When each is sent with a log subject or a key as its reply subject
    for (subject, body) in &requests {
        for reply in [&target, &key] {
            gateway
                .publish_with_reply(subject.clone(), reply.clone(), body.clone().into())
                .await
                .unwrap();
        }
    }
    gateway.flush().await.unwrap();
    // and then with an inbox: each is answered (the command as a new inspection's).
    let answered = Uuid::now_v7();
    let mut requests = requests;
    requests[0].1 = serde_json::to_vec(&request(schedule_payload(answered, "chau-doc"))).unwrap();
    for (subject, body) in &requests {
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            gateway.request(subject.clone(), body.clone().into()),
        )
        .await
        .unwrap_or_else(|_| panic!("{subject} answers no one"))
        .unwrap();
        assert!(!answer.payload.is_empty(), "{subject}");
    }

    // Then, once any answer still on its way had time to land (a negative check),
    // nothing was written where the replies were pointed
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        stored(&admin, "COORD_LOG", &target).await,
        0,
        "an answer in the log"
    );
    assert_eq!(
        stored(&admin, "KV_COORD_IDEMPOTENCY", &key).await,
        0,
        "an answer in the idempotency bucket"
    );
    // and the commands that could not be answered were not handled: only the one
    // that could was applied.
    let subject = |id: Uuid| format!("coord.log.province.inspection.{id}");
    assert_eq!(stored(&admin, "COORD_LOG", &subject(inspection)).await, 0);
    assert_eq!(stored(&admin, "COORD_LOG", &subject(answered)).await, 1);
}
