//! The command handler: parse the request, load the aggregate (from its cache or the
//! log), decide, bind the key, append, reply. Every failure path appends nothing.
//!
//! Round trips: a warm command (its aggregate in the [`AggregateCache`]) costs two, the
//! key's claim and the append at the cached revision; a new record one more (is its id
//! free?); a cold aggregate one read of its stream more.
//!
//! Idempotency: the command id becomes the causation id of every event it produces,
//! and each event's id is derived from the command id, the stream and the event's index
//! (`coord_proto::ids::event_id`), so a retry carries the same ids. Just before its
//! append, the command id is bound to a fingerprint of its request in a [`KeyStore`]:
//! the same id with another request (office, route, aggregate or body) is refused with
//! `idempotency_key_reused` and appends nothing. Before deciding, the handler looks for
//! the command among those already applied to the aggregate; if it is there (and asked
//! the same), the reply is the original outcome with `duplicate: true`. Two copies of
//! one command racing each other meet at the log: the second append carries the same
//! event ids and is answered as a duplicate (JetStream's `Nats-Msg-Id` window, or the
//! lookup by event id after a conflict); a lost race against another command reloads
//! and decides again.

use std::marker::PhantomData;
use std::sync::Arc;

use coord_domain::{
    Aggregate, Context, DomainEvent, Office, Province, Rejection, RejectionKind, Rulebook,
};
use coord_log::{
    EventLog, LogError, LogErrorKind, Metadata, NewEvent, RecordedEvent, StreamId, StreamRevision,
};
use coord_proto::{Accepted, CommandApi, CommandReply, CommandRequest, ErrorKind, ErrorReply};
use uuid::Uuid;

use crate::cache::{AggregateCache, Applied, Loaded};
use crate::idempotency::{Claim, Fingerprint, KeyStore, KeyStoreError};
use crate::references::Candidate;

/// Why a command was not decided: the domain refused it, or a check before it did.
enum Refused<R> {
    Domain(R),
    Reply(ErrorReply),
}

impl<R: Rejection> Refused<R> {
    fn into_reply(self) -> ErrorReply {
        match self {
            Refused::Domain(r) => rejected(&r),
            Refused::Reply(reply) => reply,
        }
    }
}

/// How many times a command is decided again after losing a race, when the caller
/// did not pin an expected version.
const MAX_ATTEMPTS: usize = 4;
const MAX_TEXT: usize = 64;

/// Handles the commands of aggregate `A` against a log.
pub struct CommandHandler<A: CommandApi> {
    log: Arc<dyn EventLog>,
    keys: Arc<dyn KeyStore>,
    province: Arc<Province>,
    cache: Arc<AggregateCache<A>>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: CommandApi> Clone for CommandHandler<A> {
    fn clone(&self) -> Self {
        Self {
            log: self.log.clone(),
            keys: self.keys.clone(),
            province: self.province.clone(),
            cache: self.cache.clone(),
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
        LogErrorKind::SubjectMismatch => ErrorReply::new(
            ErrorKind::Internal,
            "subject_mismatch",
            format!(
                "the aggregate's stream holds an entry that is not what its subject says ({err}); \
                 the aggregate cannot be written until an operator deals with it"
            ),
        ),
        LogErrorKind::Corrupt => ErrorReply::new(
            ErrorKind::Internal,
            "corrupt_stream",
            match &err {
                LogError::Corrupt { position, reason } => format!(
                    "the aggregate's stream holds an entry that is not a valid commit, at log \
                     position {} (on JetStream, the stream sequence), event {}: {reason}; the aggregate \
                     cannot be written until an operator deals with it (README, \"Log integrity\")",
                    position.commit, position.index
                ),
                other => other.to_string(),
            },
        ),
    }
}

fn from_keys(err: KeyStoreError) -> ErrorReply {
    match err {
        KeyStoreError::Unavailable(_) => ErrorReply::new(
            ErrorKind::Unavailable,
            "idempotency_store_unavailable",
            err.to_string(),
        ),
        KeyStoreError::Corrupt { .. } => ErrorReply::new(
            ErrorKind::Internal,
            "corrupt_idempotency_record",
            err.to_string(),
        ),
    }
}

/// The reply to a domain rejection.
fn rejected<R: Rejection>(r: &R) -> ErrorReply {
    ErrorReply::new(ErrorKind::from(r.kind()), r.code(), r.to_string())
}

/// Refuses a command id already bound to another request.
fn check_same(
    command_id: Uuid,
    asked: &Fingerprint,
    bound: Option<&Fingerprint>,
) -> Result<(), ErrorReply> {
    let what = match bound {
        Some(bound) if bound.office != asked.office => {
            // Nothing of another office's request is told: not its route, aggregate
            // or body, which a guessed key would otherwise probe.
            "it was used by another office".to_owned()
        }
        Some(bound) if bound != asked => {
            format!("its {} differ", bound.differences(asked).join(", "))
        }
        _ => return Ok(()),
    };
    Err(ErrorReply::new(
        ErrorKind::RuleViolation,
        "idempotency_key_reused",
        format!(
            "idempotency key (command id {command_id}) was already used for another \
             request: {what}; use a new key for a new request"
        ),
    ))
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
    pub fn new(log: Arc<dyn EventLog>, keys: Arc<dyn KeyStore>, province: Arc<Province>) -> Self {
        Self {
            log,
            keys,
            province,
            cache: Arc::default(),
            _aggregate: PhantomData,
        }
    }

    /// A handler of another aggregate on the same log, key store and province.
    pub fn sharing<B: CommandApi>(other: &CommandHandler<B>) -> Self {
        Self::new(
            other.log.clone(),
            other.keys.clone(),
            other.province.clone(),
        )
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
        let office: Office =
            request.office.trim().parse().map_err(|e| {
                ErrorReply::new(ErrorKind::Forbidden, "unknown_office", format!("{e}"))
            })?;
        let command = A::parse(endpoint, request.payload.clone())
            .map_err(|e| malformed(format!("{endpoint}: {e}")))?;
        let aggregate_id = A::aggregate_id(&command);
        let stream = StreamId::new(A::CATEGORY, aggregate_id)
            .map_err(|e| ErrorReply::new(ErrorKind::Internal, "bad_stream_id", e.to_string()))?;
        let candidates =
            crate::references::load::<A>(self.log.as_ref(), &command, from_log).await?;
        let fingerprint = Fingerprint::of(
            request.office.trim(),
            &format!("{}.{endpoint}", A::SERVICE),
            stream.as_str(),
            &request.payload,
        );
        // The office's own streams: a record is (office, id).
        let log = self.log.for_office(&office);
        let mut fresh = false;

        for attempt in 1..=MAX_ATTEMPTS {
            let loaded = match self.cache.get(&office, &stream).filter(|_| !fresh) {
                Some(cached) => cached,
                None => {
                    fresh = true;
                    self.load(log.as_ref(), &stream, aggregate_id).await?
                }
            };
            if let Some(applied) = loaded.applied(request.command_id) {
                // A replay, if it asks what the first request asked.
                match &applied.fingerprint {
                    Some(bound) => check_same(request.command_id, &fingerprint, Some(bound))?,
                    None => self.check_key(request.command_id, &fingerprint).await?,
                }
                return Ok(Accepted {
                    duplicate: true,
                    ..applied.accepted.clone()
                });
            }
            let version = loaded.at.version;
            if let Some(expected) = request.expected_version
                && expected != version
            {
                if !fresh {
                    fresh = true;
                    continue;
                }
                let reply = ErrorReply::new(
                    ErrorKind::Conflict,
                    "concurrent_modification",
                    format!("expected version {expected}, the aggregate is at version {version}"),
                );
                return Err(self.refusal(request.command_id, &fingerprint, reply).await);
            }
            let decided = match self.decide(&loaded.state, &command, &candidates, &request.office) {
                Ok(decided) => decided,
                // A refusal is answered on what the log holds now, not on a cached copy.
                Err(_) if !fresh => {
                    fresh = true;
                    continue;
                }
                Err(Refused::Domain(r)) if r.kind() == RejectionKind::NotFound && version == 0 => {
                    let reply = self.owned_elsewhere(&stream, &r).await;
                    return Err(self.refusal(request.command_id, &fingerprint, reply).await);
                }
                Err(refused) => {
                    let reply = refused.into_reply();
                    return Err(self.refusal(request.command_id, &fingerprint, reply).await);
                }
            };
            if version == 0
                && let Err(reply) = self.check_id_free(&stream, &office).await
            {
                return Err(self.refusal(request.command_id, &fingerprint, reply).await);
            }
            let new_events = to_new_events::<A>(&decided, &request, &stream);
            // Bound before the append: another request under this key is refused and
            // appends nothing; this one again (a concurrent copy) goes on to the log.
            self.claim(request.command_id, &fingerprint).await?;
            let appending = std::time::Instant::now();
            let appended = log.append_at(&stream, loaded.at, new_events).await;
            crate::metrics::COMMANDS.append(appending);
            match appended {
                Ok(outcome) => {
                    let accepted = Accepted {
                        stream_id: stream.to_string(),
                        aggregate_id,
                        stream_version: outcome.stream_version,
                        position: outcome.position.commit,
                        event_ids: outcome.event_ids,
                        duplicate: outcome.duplicate,
                    };
                    if outcome.duplicate {
                        self.cache.forget(&office, &stream);
                    } else {
                        let after =
                            loaded.after(&decided, request.command_id, &fingerprint, &accepted);
                        self.cache.put(&office, &stream, after);
                    }
                    return Ok(accepted);
                }
                Err(e) if e.kind() == LogErrorKind::Conflict => {
                    self.cache.forget(&office, &stream);
                    if request.expected_version.is_some() {
                        return Err(from_log(e));
                    }
                    tracing::debug!(%stream, attempt, "lost a race, deciding again");
                    fresh = true;
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

    /// Reads `stream` for deciding on it: its state, where it was read up to, and the
    /// commands already applied to it.
    async fn load(
        &self,
        log: &dyn EventLog,
        stream: &StreamId,
        aggregate_id: Uuid,
    ) -> Result<Loaded<A>, ErrorReply> {
        let history = log.read_stream(stream).await.map_err(from_log)?;
        let events = decode_history::<A>(&history)?;
        let mut applied: Vec<Applied> = Vec::new();
        for event in &history {
            if applied.iter().any(|a| a.command_id == event.causation_id) {
                continue;
            }
            if let Some(caused) = already_applied(&history, event.causation_id) {
                applied.push(Applied {
                    command_id: event.causation_id,
                    fingerprint: None,
                    accepted: accepted(stream, aggregate_id, caused, false),
                });
            }
        }
        Ok(Loaded {
            state: A::from_history(&events),
            at: StreamRevision::of(&history),
            applied,
        })
    }

    /// Decides `command` on `state` with each way of reading what it refers to
    /// (usually one): the one the domain accepts is kept. With none, the first
    /// candidate's refusal; with several (two offices' records of one id both fit),
    /// `ambiguous_reference`.
    fn decide(
        &self,
        state: &A,
        command: &A::Command,
        candidates: &[Candidate],
        office: &str,
    ) -> Result<Vec<A::Event>, Refused<A::Rejection>> {
        let mut first_refusal = None;
        let mut accepted: Vec<(&Candidate, Vec<A::Event>)> = Vec::new();
        for candidate in candidates {
            let ctx = Context {
                province: &self.province,
                rules: Rulebook::standard(),
                references: &candidate.references,
            };
            let decided =
                crate::acting::check_office(state, command, &candidate.references, office)
                    .map_err(Refused::Reply)
                    .and_then(|()| state.handle(command, &ctx).map_err(Refused::Domain));
            match decided {
                Ok(events) => accepted.push((candidate, events)),
                Err(refused) => {
                    first_refusal.get_or_insert(refused);
                }
            }
        }
        match accepted.len() {
            1 => Ok(accepted.pop().expect("one").1),
            0 => Err(first_refusal.expect("at least one candidate")),
            _ => Err(Refused::Reply(ErrorReply::new(
                ErrorKind::Conflict,
                "ambiguous_reference",
                format!(
                    "the command fits records of several offices: {}",
                    accepted
                        .iter()
                        .map(|(c, _)| c
                            .offices
                            .iter()
                            .map(|(stream, office)| format!("{stream} of {office}"))
                            .collect::<Vec<_>>()
                            .join(" and "))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ))),
        }
    }

    /// Refuses to create `stream` for `office` when another office's record of that id
    /// is already here: 409 `id_in_use`, nothing appended. (Two offices cut off from
    /// each other can still pick one id: both records are kept, each its office's.)
    async fn check_id_free(&self, stream: &StreamId, office: &Office) -> Result<(), ErrorReply> {
        let known = self.log.read_reference(stream).await.map_err(from_log)?;
        let other = known
            .iter()
            .find(|e| e.office.parse::<Office>().as_ref() != Ok(office));
        match other {
            Some(e) => Err(ErrorReply::new(
                ErrorKind::Conflict,
                "id_in_use",
                format!(
                    "{stream} is already a record of office {}; choose another id",
                    e.office
                ),
            )),
            None => Ok(()),
        }
    }

    /// The answer to a command that found no aggregate of this office: "not found",
    /// unless another office's stream of that id is here (sourced into this log): then
    /// it is that office's to append to (ARCHITECTURE.md, Ownership), and the caller is
    /// told so (403 `stream_of_another_office`) rather than that it does not exist.
    async fn owned_elsewhere(&self, stream: &StreamId, rejection: &A::Rejection) -> ErrorReply {
        let not_found = rejected(rejection);
        match self.log.read_reference(stream).await {
            Ok(elsewhere) => match elsewhere.first() {
                Some(first) => ErrorReply::new(
                    ErrorKind::Forbidden,
                    "stream_of_another_office",
                    format!(
                        "{stream} was written by office {}; only that office appends to it",
                        first.office
                    ),
                ),
                None => not_found,
            },
            Err(_) => not_found,
        }
    }

    /// The answer to a refused request: if the key is bound to another request, that
    /// is what the caller is told (`idempotency_key_reused`, whatever else is wrong with
    /// this one); if it is bound to this one (claimed before the aggregate moved on and
    /// this request was decided again), `reply` says the key stays bound; else `reply`.
    /// A lookup only on this path: an accepted command learns it from its claim.
    async fn refusal(
        &self,
        command_id: Uuid,
        fingerprint: &Fingerprint,
        mut reply: ErrorReply,
    ) -> ErrorReply {
        match self.keys.lookup(command_id).await {
            Ok(Some(bound)) => match check_same(command_id, fingerprint, Some(&bound)) {
                Err(reused) => reused,
                Ok(()) => {
                    reply.message.push_str(
                        " (the idempotency key stays bound to this request: it was claimed before \
                         another write moved the aggregate on; send a corrected request under a new key)",
                    );
                    reply
                }
            },
            _ => reply,
        }
    }

    /// Refuses a command id the key store has bound to another request.
    async fn check_key(
        &self,
        command_id: Uuid,
        fingerprint: &Fingerprint,
    ) -> Result<(), ErrorReply> {
        let bound = self.keys.lookup(command_id).await.map_err(from_keys)?;
        check_same(command_id, fingerprint, bound.as_ref())
    }

    /// Binds the command id to this request just before the append; a concurrent copy
    /// with the same request may have bound it first, another request may not.
    async fn claim(&self, command_id: Uuid, fingerprint: &Fingerprint) -> Result<(), ErrorReply> {
        match self
            .keys
            .claim(command_id, fingerprint)
            .await
            .map_err(from_keys)?
        {
            Claim::New => Ok(()),
            Claim::Existing(bound) => check_same(command_id, fingerprint, Some(&bound)),
        }
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
            A::Event::decode_ref(&e.event_type, e.schema_version, &e.payload).map_err(|err| {
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

fn to_new_events<A: Aggregate>(
    events: &[A::Event],
    request: &CommandRequest,
    stream: &StreamId,
) -> Vec<NewEvent> {
    let metadata = Metadata {
        office: request.office.trim().to_owned(),
        actor: request.actor.trim().to_owned(),
        correlation_id: request.correlation_id.unwrap_or(request.command_id),
        causation_id: request.command_id,
        role: Some(request.role.clone().unwrap_or_else(|| "operator".into())),
    };
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let (event_type, payload) = event.encode();
            NewEvent {
                event_id: coord_proto::ids::event_id(
                    request.command_id,
                    &metadata.office,
                    stream.as_str(),
                    index,
                ),
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
    use crate::idempotency::InMemoryKeys;
    use async_trait::async_trait;
    use coord_domain::inspection::Inspection;
    use coord_domain::province::AN_GIANG_TOML;
    use coord_log::memory::InMemoryLog;
    use coord_log::{AppendOutcome, EventPosition, ExpectedVersion, Subscription};
    use serde_json::json;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn handler() -> (CommandHandler<Inspection>, InMemoryLog) {
        let log = InMemoryLog::new();
        (on(Arc::new(log.clone())), log)
    }

    fn on(log: Arc<dyn EventLog>) -> CommandHandler<Inspection> {
        let province = Arc::new(Province::from_toml_str(AN_GIANG_TOML).unwrap());
        CommandHandler::new(log, Arc::new(InMemoryKeys::new()), province)
    }

    /// A log wrapper for races: counts appends, can run a competing command just before
    /// the first append reaches the log (after the handler has read and decided), and
    /// can hide history as a stale replica would.
    #[derive(Clone)]
    struct Racing {
        inner: InMemoryLog,
        appends: Arc<AtomicUsize>,
        competitor: Arc<Competitor>,
        stale_reads: bool,
    }

    type Competitor = Mutex<Option<(CommandHandler<Inspection>, &'static str, CommandRequest)>>;

    impl Racing {
        fn new(inner: &InMemoryLog) -> Self {
            Self {
                inner: inner.clone(),
                appends: Arc::default(),
                competitor: Arc::default(),
                stale_reads: false,
            }
        }
    }

    #[async_trait]
    impl EventLog for Racing {
        fn for_office(&self, _office: &Office) -> Arc<dyn EventLog> {
            // One office writes in these tests; the counters are shared.
            Arc::new(self.clone())
        }
        async fn read_reference(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
            self.inner.read_reference(stream).await
        }
        async fn append(
            &self,
            stream: &StreamId,
            expected: ExpectedVersion,
            events: Vec<NewEvent>,
        ) -> Result<AppendOutcome, LogError> {
            self.appends.fetch_add(1, Ordering::SeqCst);
            let competitor = self.competitor.lock().unwrap().take();
            if let Some((h, endpoint, request)) = competitor {
                accepted(h.handle(endpoint, request).await);
            }
            self.inner.append(stream, expected, events).await
        }
        async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
            if self.stale_reads {
                return Ok(Vec::new());
            }
            self.inner.read_stream(stream).await
        }
        async fn subscribe(&self, after: Option<EventPosition>) -> Result<Subscription, LogError> {
            self.inner.subscribe(after).await
        }
        async fn head(&self) -> Result<Option<EventPosition>, LogError> {
            self.inner.head().await
        }
    }

    /// The log of an office into which another office's streams were sourced: they are
    /// not under this office's subjects (`read_stream` finds nothing) but can be read as
    /// references.
    struct Elsewhere(InMemoryLog);

    #[async_trait]
    impl EventLog for Elsewhere {
        fn for_office(&self, _office: &Office) -> Arc<dyn EventLog> {
            Arc::new(Elsewhere(self.0.clone()))
        }
        async fn append(
            &self,
            stream: &StreamId,
            expected: ExpectedVersion,
            events: Vec<NewEvent>,
        ) -> Result<AppendOutcome, LogError> {
            self.0.append(stream, expected, events).await
        }
        async fn read_stream(&self, _stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
            Ok(Vec::new())
        }
        async fn read_reference(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
            self.0.read_stream(stream).await
        }
        async fn subscribe(&self, after: Option<EventPosition>) -> Result<Subscription, LogError> {
            self.0.subscribe(after).await
        }
        async fn head(&self) -> Result<Option<EventPosition>, LogError> {
            self.0.head().await
        }
    }

    #[tokio::test]
    async fn a_command_to_a_stream_another_office_wrote_is_refused_as_such() {
        // given an inspection the province wrote, seen here only as sourced from it
        let log = InMemoryLog::new();
        accepted(
            on(Arc::new(log.clone()))
                .handle("schedule", schedule(Uuid::now_v7()))
                .await,
        );
        let here = on(Arc::new(Elsewhere(log.clone())));
        // when this office sends a command to it
        let start = CommandRequest {
            payload: json!({"inspection_id": ID, "started_on": "2022-07-01"}),
            ..schedule(Uuid::now_v7())
        };
        let e = error(here.handle("start", start).await);
        // then it is told whose stream it is, not that it does not exist; nothing appended
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Forbidden, "stream_of_another_office"),
            "{e:?}"
        );
        assert!(e.message.contains("office province"), "{}", e.message);
        assert_eq!(log.head().await.unwrap().unwrap().commit, 1);
        // and a stream that exists nowhere is still not found
        let other = CommandRequest {
            payload: json!({"inspection_id": "0190a000-0000-7000-8000-000000000009", "started_on": "2022-07-01"}),
            ..schedule(Uuid::now_v7())
        };
        assert_eq!(
            error(here.handle("start", other).await).kind,
            ErrorKind::NotFound
        );
    }

    const ID: &str = "0190a000-0000-7000-8000-000000000001";

    fn schedule(command_id: Uuid) -> CommandRequest {
        CommandRequest {
            role: None,
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
        assert_eq!(
            events[0].event_id,
            coord_proto::ids::event_id(cmd, "province", stream.as_str(), 0),
            "event ids derive from the command id"
        );
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
        let log = InMemoryLog::new();
        let racing = Arc::new(Racing::new(&log));
        let h = on(racing.clone());
        let cmd = Uuid::now_v7();
        let (a, b) = tokio::join!(
            h.handle("schedule", schedule(cmd)),
            h.handle("schedule", schedule(cmd))
        );
        let (a, b) = (accepted(a), accepted(b));
        assert_eq!(
            racing.appends.load(Ordering::SeqCst),
            2,
            "both copies read before either appended: they really interleaved"
        );
        assert_eq!(a.event_ids, b.event_ids);
        assert_ne!(
            a.duplicate, b.duplicate,
            "one applied, one answered as a duplicate"
        );
        assert_eq!(log.head().await.unwrap().unwrap().commit, 1);
    }

    #[tokio::test]
    async fn a_command_that_loses_a_race_reloads_and_decides_again() {
        let log = InMemoryLog::new();
        let racing = Arc::new(Racing::new(&log));
        let h = on(racing.clone());
        accepted(h.handle("schedule", schedule(Uuid::now_v7())).await);
        // Between our read (scheduled) and our append, another office starts it.
        let start = CommandRequest {
            payload: json!({"inspection_id": ID, "started_on": "2022-07-01"}),
            ..schedule(Uuid::now_v7())
        };
        *racing.competitor.lock().unwrap() = Some((on(Arc::new(log.clone())), "start", start));
        let cancel = CommandRequest {
            payload: json!({"inspection_id": ID, "cancelled_on": "2022-07-02", "reason": "x"}),
            ..schedule(Uuid::now_v7())
        };
        let a = accepted(h.handle("cancel", cancel).await);
        assert_eq!(
            a.stream_version, 3,
            "decided again on top of the competitor"
        );
        let stream = StreamId::new("inspection", ID).unwrap();
        let types: Vec<String> = log
            .read_stream(&stream)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(
            types,
            [
                "InspectionScheduled",
                "InspectionStarted",
                "InspectionCancelled"
            ]
        );
    }

    /// A request refused after its key was claimed (it lost a race: the aggregate moved
    /// on between its decision and its append, and the domain refuses it on the fresh
    /// read) keeps its key bound, and its refusal says so: the same key with a
    /// corrected body is refused as reused, not applied.
    #[tokio::test]
    async fn a_refusal_after_a_lost_race_says_the_key_stays_bound() {
        let log = InMemoryLog::new();
        let racing = Arc::new(Racing::new(&log));
        let h = on(racing.clone());
        accepted(h.handle("schedule", schedule(Uuid::now_v7())).await);
        let cancel = CommandRequest {
            payload: json!({"inspection_id": ID, "cancelled_on": "2022-07-02", "reason": "x"}),
            ..schedule(Uuid::now_v7())
        };
        *racing.competitor.lock().unwrap() = Some((on(Arc::new(log.clone())), "cancel", cancel));
        let start = CommandRequest {
            payload: json!({"inspection_id": ID, "started_on": "2022-07-01"}),
            ..schedule(Uuid::now_v7())
        };
        let refused = error(h.handle("start", start.clone()).await);
        assert!(refused.message.contains("stays bound"), "{refused:?}");
        let corrected = CommandRequest {
            payload: json!({"inspection_id": ID, "started_on": "2022-07-03"}),
            ..start
        };
        let again = error(h.handle("start", corrected).await);
        assert_eq!(again.code, "idempotency_key_reused", "{again:?}");
    }

    /// Two instances of a service on one log, each with its own aggregate cache: the
    /// one whose copy is stale decides on what the log holds, for an acceptance (its
    /// append at the cached version is refused, it reads again) and for a refusal (a
    /// refusal on a cached copy is checked on a fresh read before it is answered).
    #[tokio::test]
    async fn an_instance_with_a_stale_cache_decides_on_the_log() {
        let log = InMemoryLog::new();
        let (a, b) = (on(Arc::new(log.clone())), on(Arc::new(log.clone())));
        let with = |payload| CommandRequest {
            payload,
            ..schedule(Uuid::now_v7())
        };
        accepted(a.handle("schedule", schedule(Uuid::now_v7())).await);
        accepted(
            b.handle(
                "start",
                with(json!({"inspection_id": ID, "started_on": "2022-07-01"})),
            )
            .await,
        );
        // `a` holds it as scheduled, where a conclusion is refused; the log says started.
        let concluded = accepted(
            a.handle(
                "conclude",
                with(json!({"inspection_id": ID, "concluded_on": "2022-07-20",
                    "outcome": "no_violation", "summary": "x", "conclusion_ref": "KL"})),
            )
            .await,
        );
        assert_eq!(concluded.stream_version, 3);
        // `b` holds it as started, where a cancellation is accepted; the log says
        // concluded: refused, nothing appended.
        let cancel = b
            .handle(
                "cancel",
                with(json!({"inspection_id": ID, "cancelled_on": "2022-07-21", "reason": "x"})),
            )
            .await;
        assert!(matches!(cancel, CommandReply::Error(_)), "{cancel:?}");
        assert_eq!(log.head().await.unwrap().unwrap().commit, 3);
    }

    #[tokio::test]
    async fn a_retry_that_misses_the_history_is_recognised_by_its_event_ids() {
        let log = InMemoryLog::new();
        let cmd = Uuid::now_v7();
        let first = accepted(
            on(Arc::new(log.clone()))
                .handle("schedule", schedule(cmd))
                .await,
        );
        // A replica that has not seen the first append yet: the retry decides again and
        // reaches the log, which knows the (derived) event ids.
        let stale = Arc::new(Racing {
            stale_reads: true,
            ..Racing::new(&log)
        });
        let again = accepted(on(stale).handle("schedule", schedule(cmd)).await);
        assert!(again.duplicate);
        assert_eq!(again.event_ids, first.event_ids);
        assert_eq!(log.head().await.unwrap().unwrap().commit, 1);
    }

    #[tokio::test]
    async fn a_key_reused_for_another_request_is_refused_and_appends_nothing() {
        let (h, log) = handler();
        let cmd = Uuid::now_v7();
        accepted(h.handle("schedule", schedule(cmd)).await);
        let mut other_body = schedule(cmd);
        other_body.payload["decision_ref"] = json!("02-QĐ (example)");
        let other_aggregate = CommandRequest {
            payload: {
                let mut p = schedule(cmd).payload;
                p["inspection_id"] = json!("0190a000-0000-7000-8000-000000000002");
                p
            },
            ..schedule(cmd)
        };
        let other_route = CommandRequest {
            payload: json!({"inspection_id": ID, "started_on": "2022-07-01"}),
            ..schedule(cmd)
        };
        let other_office = CommandRequest {
            office: "district:chau-doc".into(),
            ..schedule(cmd)
        };
        for (endpoint, request, what) in [
            ("schedule", other_body, "body"),
            ("schedule", other_aggregate, "aggregate"),
            ("start", other_route, "route"),
            ("schedule", other_office, "office"),
        ] {
            let e = error(h.handle(endpoint, request).await);
            assert_eq!(e.code, "idempotency_key_reused", "{what}: {e:?}");
            assert_eq!(e.kind.http_status(), 422);
            assert!(e.message.contains(what), "{what}: {}", e.message);
        }
        assert_eq!(
            log.head().await.unwrap().unwrap().commit,
            1,
            "nothing appended"
        );
        // The same request again is still answered once.
        assert!(accepted(h.handle("schedule", schedule(cmd)).await).duplicate);
    }

    #[tokio::test]
    async fn a_refused_command_does_not_use_up_its_key() {
        let (h, log) = handler();
        let cmd = Uuid::now_v7();
        let mut wrong = schedule(cmd);
        wrong.payload["coordinating_body"] = json!("district_standing_committee:tri-ton");
        assert_eq!(
            error(h.handle("schedule", wrong).await).code,
            "wrong_coordinating_body"
        );
        let fixed = accepted(h.handle("schedule", schedule(cmd)).await);
        assert!(!fixed.duplicate);
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
