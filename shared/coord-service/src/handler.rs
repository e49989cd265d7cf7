//! The command handler: parse the request, load the aggregate from the log, decide,
//! append, reply. Every failure path appends nothing.
//!
//! Idempotency: the command id becomes the causation id of every event it produces.
//! Before deciding, the handler looks for events caused by this command in the
//! aggregate's stream; if there are some, the command was already applied, and the
//! reply is the original outcome with `duplicate: true`. Two copies of one command
//! racing each other meet at the log's optimistic concurrency: one appends, the other
//! gets a conflict, reloads, and finds the first one's events.

use std::marker::PhantomData;
use std::sync::Arc;

use coord_domain::{Aggregate, Context, DomainEvent, Province, Rejection};
use coord_log::{
    EventLog, ExpectedVersion, LogError, LogErrorKind, Metadata, NewEvent, RecordedEvent, StreamId,
};
use coord_proto::{Accepted, CommandApi, CommandReply, CommandRequest, ErrorKind, ErrorReply};
use uuid::Uuid;

/// How many times a command is decided again after losing a race, when the caller
/// did not pin an expected version.
const MAX_ATTEMPTS: usize = 4;
const MAX_TEXT: usize = 64;

/// Handles the commands of aggregate `A` against a log.
pub struct CommandHandler<A: CommandApi> {
    log: Arc<dyn EventLog>,
    province: Arc<Province>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: CommandApi> Clone for CommandHandler<A> {
    fn clone(&self) -> Self {
        Self {
            log: self.log.clone(),
            province: self.province.clone(),
            _aggregate: PhantomData,
        }
    }
}

fn malformed(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorKind::Malformed, "malformed_command", message)
}

fn from_log(err: LogError) -> ErrorReply {
    match err.kind() {
        LogErrorKind::Conflict => ErrorReply::new(
            ErrorKind::Conflict,
            "concurrent_modification",
            err.to_string(),
        ),
        LogErrorKind::InvalidInput => {
            ErrorReply::new(ErrorKind::Internal, "invalid_append", err.to_string())
        }
        LogErrorKind::Unavailable => {
            ErrorReply::new(ErrorKind::Unavailable, "log_unavailable", err.to_string())
        }
        LogErrorKind::Corrupt => {
            ErrorReply::new(ErrorKind::Internal, "corrupt_stream", err.to_string())
        }
    }
}

fn check_label(what: &str, value: &str) -> Result<(), ErrorReply> {
    let ok = !value.trim().is_empty()
        && value.chars().count() <= MAX_TEXT
        && !value.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(malformed(format!(
            "`{what}` must be 1 to {MAX_TEXT} printable characters"
        )))
    }
}

impl<A: CommandApi> CommandHandler<A> {
    pub fn new(log: Arc<dyn EventLog>, province: Arc<Province>) -> Self {
        Self {
            log,
            province,
            _aggregate: PhantomData,
        }
    }

    /// Handles one raw request on `endpoint`.
    pub async fn handle_raw(&self, endpoint: &str, body: &[u8]) -> CommandReply {
        let request: CommandRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => {
                return CommandReply::Error(malformed(format!(
                    "request is not a valid command envelope: {e}"
                )));
            }
        };
        self.handle(endpoint, request).await
    }

    /// Handles one parsed request.
    pub async fn handle(&self, endpoint: &str, request: CommandRequest) -> CommandReply {
        match self.try_handle(endpoint, request).await {
            Ok(accepted) => CommandReply::Accepted(accepted),
            Err(error) => CommandReply::Error(error),
        }
    }

    async fn try_handle(
        &self,
        endpoint: &str,
        request: CommandRequest,
    ) -> Result<Accepted, ErrorReply> {
        check_label("office", &request.office)?;
        check_label("actor", &request.actor)?;
        if request.command_id.is_nil() {
            return Err(malformed("`command_id` must not be the nil UUID"));
        }
        let command = A::parse(endpoint, request.payload.clone())
            .map_err(|e| malformed(format!("{endpoint}: {e}")))?;
        let aggregate_id = A::aggregate_id(&command);
        let stream = StreamId::new(A::CATEGORY, aggregate_id)
            .map_err(|e| ErrorReply::new(ErrorKind::Internal, "bad_stream_id", e.to_string()))?;
        let ctx = Context {
            province: &self.province,
        };

        for attempt in 1..=MAX_ATTEMPTS {
            let history = self.log.read_stream(&stream).await.map_err(from_log)?;
            if let Some(previous) = already_applied(&history, request.command_id) {
                return Ok(accepted(&stream, aggregate_id, previous, true));
            }
            let version = history.last().map(|e| e.stream_version).unwrap_or(0);
            if let Some(expected) = request.expected_version
                && expected != version
            {
                return Err(ErrorReply::new(
                    ErrorKind::Conflict,
                    "concurrent_modification",
                    format!("expected version {expected}, the aggregate is at version {version}"),
                ));
            }
            let events = decode_history::<A>(&history)?;
            let state = A::from_history(&events);
            crate::acting::check_office(&state, &command, &request.office)?;
            let decided = state
                .handle(&command, &ctx)
                .map_err(|r| ErrorReply::new(ErrorKind::from(r.kind()), r.code(), r.to_string()))?;
            let new_events = to_new_events::<A>(&decided, &request);
            let expected = if version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(version)
            };
            match self.log.append(&stream, expected, new_events).await {
                Ok(outcome) => {
                    return Ok(Accepted {
                        stream_id: stream.to_string(),
                        aggregate_id,
                        stream_version: outcome.stream_version,
                        position: outcome.position.commit,
                        event_ids: outcome.event_ids,
                        duplicate: outcome.duplicate,
                    });
                }
                Err(e)
                    if e.kind() == LogErrorKind::Conflict && request.expected_version.is_none() =>
                {
                    tracing::debug!(%stream, attempt, "lost a race, deciding again");
                }
                Err(e) => return Err(from_log(e)),
            }
        }
        Err(ErrorReply::new(
            ErrorKind::Conflict,
            "concurrent_modification",
            format!("the aggregate kept changing; gave up after {MAX_ATTEMPTS} attempts"),
        ))
    }
}

/// The events a command already produced, if it was applied before.
fn already_applied(history: &[RecordedEvent], command_id: Uuid) -> Option<Vec<&RecordedEvent>> {
    let caused: Vec<&RecordedEvent> = history
        .iter()
        .filter(|e| e.causation_id == command_id)
        .collect();
    (!caused.is_empty()).then_some(caused)
}

fn accepted(
    stream: &StreamId,
    aggregate_id: Uuid,
    events: Vec<&RecordedEvent>,
    duplicate: bool,
) -> Accepted {
    let last = events.last().expect("at least one event");
    Accepted {
        stream_id: stream.to_string(),
        aggregate_id,
        stream_version: last.stream_version,
        position: last.pos().commit,
        event_ids: events.iter().map(|e| e.event_id).collect(),
        duplicate,
    }
}

fn decode_history<A: Aggregate>(history: &[RecordedEvent]) -> Result<Vec<A::Event>, ErrorReply> {
    history
        .iter()
        .map(|e| {
            A::Event::decode(&e.event_type, e.schema_version, e.payload.clone()).map_err(|err| {
                ErrorReply::new(
                    ErrorKind::Internal,
                    "undecodable_history",
                    format!(
                        "event {} of {} cannot be read: {err}",
                        e.stream_version, e.stream_id
                    ),
                )
            })
        })
        .collect()
}

fn to_new_events<A: Aggregate>(events: &[A::Event], request: &CommandRequest) -> Vec<NewEvent> {
    let metadata = Metadata {
        office: request.office.trim().to_owned(),
        actor: request.actor.trim().to_owned(),
        correlation_id: request.correlation_id.unwrap_or(request.command_id),
        causation_id: request.command_id,
    };
    events
        .iter()
        .map(|event| {
            let (event_type, payload) = event.encode();
            NewEvent {
                event_id: Uuid::now_v7(),
                event_type: event_type.to_owned(),
                schema_version: A::Event::SCHEMA_VERSION,
                occurred_at: event.occurred_on(),
                payload,
                metadata: metadata.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_domain::inspection::Inspection;
    use coord_domain::province::AN_GIANG_TOML;
    use coord_log::memory::InMemoryLog;
    use serde_json::json;

    fn handler() -> (CommandHandler<Inspection>, InMemoryLog) {
        let log = InMemoryLog::new();
        let province = Arc::new(Province::from_toml_str(AN_GIANG_TOML).unwrap());
        (CommandHandler::new(Arc::new(log.clone()), province), log)
    }

    const ID: &str = "0190a000-0000-7000-8000-000000000001";

    fn schedule(command_id: Uuid) -> CommandRequest {
        CommandRequest {
            command_id,
            correlation_id: None,
            office: "province".into(),
            actor: "tester".into(),
            expected_version: None,
            payload: json!({
                "inspection_id": ID, "term": "2020-2025", "unit": "chau-doc",
                "kind": "inspection", "category": "compliance",
                "leading_body": "provincial_standing_committee",
                "coordinating_body": "district_standing_committee:chau-doc",
                "target": "district_police:chau-doc",
                "decision_ref": "01-QĐ (example)", "decided_on": "2022-06-15",
                "planned_start": "2022-07-01", "planned_end": "2022-07-31"
            }),
        }
    }

    fn accepted(reply: CommandReply) -> Accepted {
        match reply {
            CommandReply::Accepted(a) => a,
            CommandReply::Error(e) => panic!("expected acceptance, got {e:?}"),
        }
    }
    fn error(reply: CommandReply) -> ErrorReply {
        match reply {
            CommandReply::Error(e) => e,
            CommandReply::Accepted(a) => panic!("expected an error, got {a:?}"),
        }
    }

    #[tokio::test]
    async fn a_command_appends_its_events_with_metadata() {
        let (h, log) = handler();
        let cmd = Uuid::now_v7();
        let a = accepted(h.handle("schedule", schedule(cmd)).await);
        assert_eq!(a.stream_version, 1);
        assert!(!a.duplicate);
        let stream = StreamId::new("inspection", ID).unwrap();
        let events = log.read_stream(&stream).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, "InspectionScheduled");
        assert_eq!(events[0].causation_id, cmd);
        assert_eq!(events[0].correlation_id, cmd);
        assert_eq!(events[0].office, "province");
        assert_eq!(events[0].occurred_at, "2022-06-15".parse().unwrap());
        assert_eq!(events[0].event_id.get_version_num(), 7);
    }

    #[tokio::test]
    async fn a_retried_command_is_applied_once() {
        let (h, log) = handler();
        let cmd = Uuid::now_v7();
        let first = accepted(h.handle("schedule", schedule(cmd)).await);
        let again = accepted(h.handle("schedule", schedule(cmd)).await);
        assert!(again.duplicate);
        assert_eq!(again.event_ids, first.event_ids);
        assert_eq!(again.position, first.position);
        assert_eq!(
            log.head().await.unwrap().unwrap().commit,
            1,
            "one commit only"
        );
        // A different command id with the same content is a new command: refused.
        let other = error(h.handle("schedule", schedule(Uuid::now_v7())).await);
        assert_eq!(other.kind, ErrorKind::Conflict);
        assert_eq!(other.code, "already_scheduled");
    }

    #[tokio::test]
    async fn concurrent_copies_of_one_command_append_once() {
        let (h, log) = handler();
        let cmd = Uuid::now_v7();
        let (a, b) = tokio::join!(
            h.handle("schedule", schedule(cmd)),
            h.handle("schedule", schedule(cmd))
        );
        let (a, b) = (accepted(a), accepted(b));
        assert_eq!(a.event_ids, b.event_ids);
        assert_eq!(log.head().await.unwrap().unwrap().commit, 1);
    }

    #[tokio::test]
    async fn malformed_requests_are_typed_and_append_nothing() {
        let (h, log) = handler();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("schedule", b"not json".to_vec()),
            ("schedule", br#"{"command_id":"x"}"#.to_vec()),
            (
                "schedule",
                serde_json::to_vec(&CommandRequest {
                    payload: json!({"inspection_id": ID}),
                    ..schedule(Uuid::now_v7())
                })
                .unwrap(),
            ),
            (
                "schedule",
                serde_json::to_vec(&CommandRequest {
                    office: " ".into(),
                    ..schedule(Uuid::now_v7())
                })
                .unwrap(),
            ),
            (
                "teleport",
                serde_json::to_vec(&schedule(Uuid::now_v7())).unwrap(),
            ),
        ];
        for (endpoint, body) in cases {
            let e = error(h.handle_raw(endpoint, &body).await);
            assert_eq!(e.kind, ErrorKind::Malformed, "{e:?}");
            assert_eq!(e.code, "malformed_command");
        }
        assert_eq!(log.head().await.unwrap(), None);
    }

    #[tokio::test]
    async fn rejections_carry_the_rule_and_append_nothing() {
        let (h, log) = handler();
        let mut req = schedule(Uuid::now_v7());
        req.payload["coordinating_body"] = json!("district_standing_committee:tri-ton");
        let e = error(h.handle("schedule", req).await);
        assert_eq!(e.kind, ErrorKind::RuleViolation);
        assert_eq!(e.code, "wrong_coordinating_body");
        let start = CommandRequest {
            payload: json!({"inspection_id": ID, "started_on": "2022-07-01"}),
            ..schedule(Uuid::now_v7())
        };
        assert_eq!(
            error(h.handle("start", start).await).kind,
            ErrorKind::NotFound
        );
        assert_eq!(log.head().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_pinned_expected_version_is_honoured() {
        let (h, _log) = handler();
        accepted(h.handle("schedule", schedule(Uuid::now_v7())).await);
        let start = |v| CommandRequest {
            expected_version: Some(v),
            payload: json!({"inspection_id": ID, "started_on": "2022-07-01"}),
            ..schedule(Uuid::now_v7())
        };
        let e = error(h.handle("start", start(0)).await);
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert_eq!(
            accepted(h.handle("start", start(1)).await).stream_version,
            2
        );
    }
}
