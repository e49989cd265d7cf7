//! The NATS JetStream backend.
//!
//! Layout: one JetStream stream holds the whole log (default `COORD_LOG`, subjects
//! `coord.log.>`); each aggregate stream is one subject, `coord.log.{office}.{category}.{id}`
//! (`office` its writing office's slug: a record is (office, id)). Every commit read
//! back is checked against the subject it was stored on ([`check_subject`]): one whose
//! body names another office or stream is never handed out as an event.
//!
//! Atomicity: one append is **one message** (a commit) whose body holds all of the
//! append's events. JetStream stores a message whole or not at all, so a command that
//! produces several events is never half-written, on any server version (the atomic
//! batch publish of 2.12+ is not needed). An event's global position is
//! `(stream sequence of its commit, index in the commit)`.
//!
//! Concurrency: the writer reads the subject's last message (its sequence and the
//! stream version in header `Coord-Stream-Version`), checks the expected version, and
//! publishes with `Nats-Expected-Last-Subject-Sequence` set to that sequence. If another
//! writer got in between, the server refuses with error 10071 (or 10164 on clustered
//! streams) and the writer gets [`LogError::Conflict`]; nothing is stored.
//!
//! Idempotency: `Nats-Msg-Id` is the commit's first event id, so a retried publish
//! within the stream's duplicate window is acknowledged without being stored twice.
//! Past the window, a retry meets a version conflict, and the backend then looks for
//! the event id in the stream before reporting the conflict.
//!
//! The stream is created with `deny_delete` and `deny_purge`: an audit log is not edited.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::PublishMessage as Publish, stream};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::sync::Arc;

use coord_domain::Office;

use crate::envelope::{check_subject, office_of, outcome_of, subject_of, validate_batch};
use crate::{
    AppendOutcome, EventLog, EventPosition, ExpectedVersion, LogError, NewEvent, RecordedEvent,
    StreamId, StreamRevision, Subscription,
};

/// The JetStream API's subject prefix (no JetStream domain is used).
const API_PREFIX: &str = "$JS.API";
const VERSION_HEADER: &str = "Coord-Stream-Version";
const COUNT_HEADER: &str = "Coord-Event-Count";
const TYPES_HEADER: &str = "Coord-Event-Types";
/// JetStream error codes for "wrong last sequence": 10071 (single server and most
/// cases), 10164 (clustered streams, the constant form).
const WRONG_LAST_SEQUENCE_CODES: [u64; 2] = [10071, 10164];

/// Where the log lives in JetStream.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    pub stream_name: String,
    /// Subjects are `{prefix}.{office}.{category}.{id}`.
    pub subject_prefix: String,
    /// How long JetStream remembers message ids to drop retried publishes.
    pub duplicate_window: Duration,
    pub replicas: usize,
    /// `subscribe` and `head` see only these offices' subjects (`{prefix}.{office}.>`,
    /// what this site wrote), not what other sites' logs sourced into the stream: a
    /// site's auditor keeps the tree of what its offices wrote, and its audit export is
    /// the same log. Empty: the whole stream.
    pub own_offices: Vec<Office>,
    /// Commits asked for in one direct get when a stream is read forward (a cold load,
    /// a reference): nats-server 2.11+ answers up to this many at once. 0: one a
    /// request, as servers before 2.11 answer anyway.
    pub read_batch: usize,
}

impl Default for JetStreamConfig {
    fn default() -> Self {
        Self {
            stream_name: "COORD_LOG".into(),
            subject_prefix: "coord.log".into(),
            duplicate_window: Duration::from_secs(3600),
            replicas: 1,
            own_offices: Vec::new(),
            read_batch: 256,
        }
    }
}

/// The body of one commit message.
#[derive(Serialize, Deserialize)]
struct CommitBody {
    events: Vec<RecordedEvent>,
}

/// The log on NATS JetStream.
#[derive(Clone)]
pub struct JetStreamLog {
    js: jetstream::Context,
    stream: stream::Stream,
    config: JetStreamConfig,
    /// The office this view appends and loads as ([`EventLog::for_office`]).
    office: Option<Office>,
}

/// What a forward read does with a commit that is not what its subject says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnMismatch {
    /// The stream being loaded for writing: an error (nothing is decided on it).
    Fail,
    /// A reference or a search: left out, as if it were not there.
    Skip,
}

impl JetStreamLog {
    /// Opens the log, creating its JetStream stream if it does not exist.
    pub async fn open(
        client: async_nats::Client,
        config: JetStreamConfig,
    ) -> Result<Self, LogError> {
        let js = jetstream::new(client);
        let stream = js
            .get_or_create_stream(stream::Config {
                name: config.stream_name.clone(),
                description: Some(
                    "Coordination event log: one subject per aggregate stream".into(),
                ),
                subjects: vec![format!("{}.>", config.subject_prefix)],
                storage: stream::StorageType::File,
                num_replicas: config.replicas,
                duplicate_window: config.duplicate_window,
                allow_direct: true,
                deny_delete: true,
                deny_purge: true,
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::unavailable("cannot open the log stream", e))?;
        Ok(Self {
            js,
            stream,
            config,
            office: None,
        })
    }

    fn subject(&self, office: &Office, stream: &StreamId) -> String {
        subject_of(&self.config.subject_prefix, office, stream)
    }

    /// `stream` under every office: `{prefix}.*.{category}.{id}`.
    fn any_office(&self, stream: &StreamId) -> String {
        format!(
            "{}.*.{}.{}",
            self.config.subject_prefix,
            stream.category(),
            stream.id()
        )
    }

    /// The office an append writes as: this view's, which the events must name.
    fn writing_office(&self, events: &[NewEvent]) -> Result<Office, LogError> {
        let named = office_of(&events[0].metadata.office)?;
        match &self.office {
            Some(office) if *office != named => Err(LogError::InvalidInput(format!(
                "events of office {named} appended to the log of office {office}"
            ))),
            _ => Ok(named),
        }
    }

    /// Decodes a commit read back from `subject` and checks it against the subject.
    fn decode_on(
        &self,
        subject: &str,
        payload: &[u8],
        sequence: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        decode_checked(&self.config.subject_prefix, subject, payload, sequence)
    }

    /// Every commit on `subject` (a wildcard too), read forward with batched direct
    /// gets (`read_batch` commits a request) up to sequence `last_seq`, or, without
    /// one, until the subject has no next message.
    async fn read_subject(
        &self,
        subject: &str,
        last_seq: Option<u64>,
        on_mismatch: OnMismatch,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let mut events = Vec::new();
        let mut next = 1;
        while last_seq.is_none_or(|last| next <= last) {
            let page = crate::direct::next_by_subject(
                &self.js.client(),
                API_PREFIX,
                &self.config.stream_name,
                subject,
                next,
                self.config.read_batch,
            )
            .await?;
            let more = page.more;
            for msg in page.messages {
                if last_seq.is_some_and(|last| msg.sequence > last) {
                    return Ok(events);
                }
                next = msg.sequence + 1;
                match self.decode_on(&msg.subject, &msg.payload, msg.sequence) {
                    Ok(commit) => events.extend(commit),
                    Err(e @ LogError::SubjectMismatch { .. })
                        if on_mismatch == OnMismatch::Skip =>
                    {
                        tracing::warn!(error = %e, "left out of a read");
                    }
                    Err(e) => return Err(e),
                }
            }
            if !more {
                break;
            }
        }
        match last_seq {
            // A replica behind the leader's last sequence: not the whole stream.
            Some(last) if next <= last => Err(LogError::Unavailable(format!(
                "cannot read a stream: {subject} ended at sequence {} before its last, {last}",
                next - 1
            ))),
            _ => Ok(events),
        }
    }

    /// The subject's last commit: (its sequence, the stream version after it); (0, 0)
    /// for a stream never written.
    async fn last_commit(&self, subject: &str) -> Result<(u64, u64), LogError> {
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(msg) => {
                let version = msg
                    .headers
                    .get(VERSION_HEADER)
                    .and_then(|v| v.as_str().parse().ok())
                    .or_else(|| {
                        decode_commit(&msg.payload, msg.sequence)
                            .ok()?
                            .last()
                            .map(|e| e.stream_version)
                    })
                    .ok_or_else(|| LogError::Corrupt {
                        position: EventPosition {
                            commit: msg.sequence,
                            index: 0,
                        },
                        reason: "commit has no stream version".into(),
                    })?;
                Ok((msg.sequence, version))
            }
            Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => {
                Ok((0, 0))
            }
            Err(e) => Err(LogError::unavailable("cannot read the stream head", e)),
        }
    }

    /// Every commit of office `office`'s stream, up to its last.
    async fn read_own(
        &self,
        office: &Office,
        stream: &StreamId,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let subject = self.subject(office, stream);
        let (last_seq, _) = self.last_commit(&subject).await?;
        self.read_subject(&subject, Some(last_seq), OnMismatch::Fail)
            .await
    }

    /// Finds the commit holding `event_id` in `stream`, for a retry past the window.
    async fn find_commit(
        &self,
        office: &Office,
        stream: &StreamId,
        event_id: Uuid,
    ) -> Result<Option<AppendOutcome>, LogError> {
        Ok(crate::find_commit(
            &self.read_own(office, stream).await?,
            event_id,
        ))
    }

    async fn stored_outcome(&self, sequence: u64) -> Result<AppendOutcome, LogError> {
        let msg = self
            .stream
            .get_raw_message(sequence)
            .await
            .map_err(|e| LogError::unavailable("cannot read the original commit", e))?;
        Ok(outcome_of(&self.decode_on(
            &msg.subject,
            &msg.payload,
            sequence,
        )?))
    }

    /// Publishes `events` as one commit on `subject`, expecting its last sequence to
    /// be `at.commit` (the stream then at `at.version`). `None`: the subject moved.
    async fn publish_at(
        &self,
        subject: &str,
        stream: &StreamId,
        at: StreamRevision,
        events: &[NewEvent],
    ) -> Result<Option<AppendOutcome>, LogError> {
        let recorded = RecordedEvent::stamp(stream, at.version, Utc::now(), events.iter().cloned());
        let new_version = at.version + recorded.len() as u64;
        let types: Vec<&str> = recorded.iter().map(|e| e.event_type.as_str()).collect();
        let types = types.join(",");
        let body = serde_json::to_vec(&CommitBody { events: recorded })
            .map_err(|e| LogError::InvalidInput(format!("events do not serialize: {e}")))?;
        let publish = Publish::build()
            .payload(Bytes::from(body))
            .message_id(events[0].event_id.to_string())
            .expected_last_subject_sequence(at.commit)
            .header(VERSION_HEADER, new_version.to_string().as_str())
            .header(COUNT_HEADER, events.len().to_string().as_str())
            .header(TYPES_HEADER, types.as_str());
        let ack = match self.js.send_publish(subject.to_owned(), publish).await {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        match ack {
            Ok(ack) if ack.duplicate => Ok(Some(self.stored_outcome(ack.sequence).await?)),
            Ok(ack) => Ok(Some(AppendOutcome {
                stream_version: new_version,
                position: EventPosition {
                    commit: ack.sequence,
                    index: 0,
                },
                event_ids: events.iter().map(|e| e.event_id).collect(),
                duplicate: false,
            })),
            Err(e) if is_wrong_last_sequence(&e) => Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::PublishErrorKind::MaxPayloadExceeded
                ) =>
            {
                Err(LogError::InvalidInput(format!("commit too large: {e}")))
            }
            Err(e) => Err(LogError::unavailable("append not acknowledged", e)),
        }
    }

    /// The answer to an append whose expectation failed: the original outcome if it is
    /// a retry of a commit already stored (found by its first event id), else a
    /// conflict with the stream's version now.
    async fn conflict(
        &self,
        office: &Office,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, LogError> {
        if let Some(outcome) = self.find_commit(office, stream, events[0].event_id).await? {
            return Ok(outcome);
        }
        let (_, actual) = self.last_commit(&self.subject(office, stream)).await?;
        Err(LogError::Conflict {
            stream: stream.clone(),
            expected,
            actual,
        })
    }

    /// The subjects this site's own offices write, for `subscribe` and `head`.
    fn own_filters(&self) -> Vec<String> {
        self.config
            .own_offices
            .iter()
            .map(|o| format!("{}.{}.>", self.config.subject_prefix, o.slug()))
            .collect()
    }
}

/// Decodes the body of the commit message stored at `sequence`: its events, placed at
/// `(sequence, index)`, or [`LogError::Corrupt`] at that position if the body is not a
/// commit. Any bytes give one or the other. A consumer attached directly to the stream
/// (the analytics live feed) decodes with it too.
pub fn decode_commit(payload: &[u8], sequence: u64) -> Result<Vec<RecordedEvent>, LogError> {
    let body: CommitBody = serde_json::from_slice(payload).map_err(|e| LogError::Corrupt {
        position: EventPosition {
            commit: sequence,
            index: 0,
        },
        reason: format!("commit body is not a valid envelope list: {e}"),
    })?;
    if body.events.is_empty() {
        return Err(LogError::Corrupt {
            position: EventPosition {
                commit: sequence,
                index: 0,
            },
            reason: "commit holds no events".into(),
        });
    }
    let mut events = body.events;
    RecordedEvent::place(&mut events, sequence);
    Ok(events)
}

/// [`decode_commit`], then [`check_subject`] against the subject it was stored on, for
/// a log whose subjects start with `root`: what every reader of the log takes as
/// events.
pub fn decode_checked(
    root: &str,
    subject: &str,
    payload: &[u8],
    sequence: u64,
) -> Result<Vec<RecordedEvent>, LogError> {
    let events = decode_commit(payload, sequence)?;
    let at = EventPosition {
        commit: sequence,
        index: 0,
    };
    check_subject(root, subject, at, &events)?;
    Ok(events)
}

fn is_wrong_last_sequence(err: &jetstream::context::PublishError) -> bool {
    use jetstream::context::PublishErrorKind;
    if matches!(err.kind(), PublishErrorKind::WrongLastSequence) {
        return true;
    }
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<jetstream::Error>())
        .is_some_and(|e| WRONG_LAST_SEQUENCE_CODES.contains(&e.error_code().0))
}

#[async_trait]
impl EventLog for JetStreamLog {
    fn for_office(&self, office: &Office) -> Arc<dyn EventLog> {
        Arc::new(Self {
            office: Some(office.clone()),
            ..self.clone()
        })
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        validate_batch(&events)?;
        let office = self.writing_office(&events)?;
        let subject = self.subject(&office, stream);
        // `Any` may lose a race and must then try again; an exact expectation may not.
        let mut attempts = if expected == ExpectedVersion::Any {
            5
        } else {
            1
        };
        loop {
            attempts -= 1;
            let (commit, version) = self.last_commit(&subject).await?;
            if !expected.accepts(version) {
                return self.conflict(&office, stream, expected, &events).await;
            }
            let at = StreamRevision { commit, version };
            match self.publish_at(&subject, stream, at, &events).await? {
                Some(outcome) => return Ok(outcome),
                None if attempts > 0 => continue,
                None => return self.conflict(&office, stream, expected, &events).await,
            }
        }
    }

    /// One publish, expecting the subject's last sequence to be `at.commit`.
    async fn append_at(
        &self,
        stream: &StreamId,
        at: StreamRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        validate_batch(&events)?;
        let office = self.writing_office(&events)?;
        let subject = self.subject(&office, stream);
        match self.publish_at(&subject, stream, at, &events).await? {
            Some(outcome) => Ok(outcome),
            None => self.conflict(&office, stream, at.expected(), &events).await,
        }
    }

    async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
        match &self.office {
            Some(office) => self.read_own(office, stream).await,
            None => self.read_reference(stream).await,
        }
    }

    async fn read_reference(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
        // A wildcard subject has no "last message" to bound the read: read forward
        // until there is no next message on the subject.
        self.read_subject(&self.any_office(stream), None, OnMismatch::Skip)
            .await
    }

    async fn subscribe(&self, after: Option<EventPosition>) -> Result<Subscription, LogError> {
        let start_sequence = after.map(|p| p.commit).unwrap_or(1).max(1);
        let consumer = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                // Named, and randomly: users may create consumers only by a name their
                // permissions can see, and no other user can guess this one.
                name: Some(format!("log-{}", Uuid::new_v4().simple())),
                // The whole stream: besides this site's subjects it may hold what
                // other sites' logs sourced into it (multi-office topology), unless
                // only this site's own offices' subjects are wanted.
                filter_subjects: self.own_filters(),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence },
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::unavailable("cannot create a log consumer", e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| LogError::unavailable("cannot follow the log", e))?;
        let root = self.config.subject_prefix.clone();
        let stream = messages
            .scan((false, false), move |(ended, delivered), item| {
                // An infrastructure error ends the subscription; the caller resubscribes
                // from its checkpoint.
                if *ended {
                    return futures::future::ready(None);
                }
                let out: Vec<Result<RecordedEvent, LogError>> = match item {
                    Ok(msg) => match msg.info() {
                        // The ordered consumer was created again (its sequence starts
                        // over): maybe on another stream of this name. Ends here (see
                        // `EventLog::subscribe`). Rests on async-nats's ordered consumer
                        // yielding a new consumer's messages from sequence 1 (0.51; the
                        // log contract test of a recreated log fails if it changes).
                        Ok(info) if info.consumer_sequence == 1 && *delivered => {
                            *ended = true;
                            vec![Err(LogError::unavailable(
                                "the log's delivery started over",
                                "its consumer was created again; resubscribe from the checkpoint",
                            ))]
                        }
                        Ok(info) => {
                            *delivered = true;
                            match decode_checked(
                                &root,
                                &msg.subject,
                                &msg.payload,
                                info.stream_sequence,
                            ) {
                                Ok(events) => events
                                    .into_iter()
                                    .filter(|e| after.is_none_or(|a| e.pos() > a))
                                    .map(Ok)
                                    .collect(),
                                Err(corrupt) => vec![Err(corrupt)],
                            }
                        }
                        Err(e) => {
                            *ended = true;
                            vec![Err(LogError::unavailable(
                                "log message without metadata",
                                e,
                            ))]
                        }
                    },
                    Err(e) => {
                        *ended = true;
                        vec![Err(LogError::unavailable("log subscription failed", e))]
                    }
                };
                futures::future::ready(Some(futures::stream::iter(out)))
            })
            .flatten();
        Ok(Box::pin(stream))
    }

    async fn head(&self) -> Result<Option<EventPosition>, LogError> {
        let unavailable = |e| LogError::unavailable("cannot read the log head", e);
        let mut stream = self.stream.clone();
        let info = stream.info().await.map_err(unavailable)?;
        let sourced = info.config.sources.as_ref().is_some_and(|s| !s.is_empty());
        let msg = if !self.config.own_offices.is_empty() && sourced {
            // The last commit on this site's own subjects (a wildcard last-by-subject
            // per office; only a multi-office stream, nats-server 2.14+, sources
            // others in).
            let mut newest: Option<jetstream::message::StreamMessage> = None;
            for own in self.own_filters() {
                match self.stream.get_last_raw_message_by_subject(&own).await {
                    Ok(msg) => {
                        if newest.as_ref().is_none_or(|n| msg.sequence > n.sequence) {
                            newest = Some(msg);
                        }
                    }
                    Err(e)
                        if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => {}
                    Err(e) => return Err(LogError::unavailable("cannot read the log head", e)),
                }
            }
            match newest {
                Some(msg) => msg,
                None => return Ok(None),
            }
        } else {
            let last = info.state.last_sequence;
            if last == 0 {
                return Ok(None);
            }
            self.stream
                .get_raw_message(last)
                .await
                .map_err(|e| LogError::unavailable("cannot read the log head", e))?
        };
        let last = msg.sequence;
        // The last entry a subscription gives: the commit's last event, or, for a
        // commit that does not decode or is not what its subject says, the one error
        // it is read as, at index 0.
        let count = decode_checked(
            &self.config.subject_prefix,
            &msg.subject,
            &msg.payload,
            last,
        )
        .map_or(1, |events| events.len() as u64);
        Ok(Some(EventPosition {
            commit: last,
            index: count.saturating_sub(1),
        }))
    }

    /// The JetStream stream's name and creation time: a stream deleted and created
    /// again under the same name has another creation time.
    async fn identity(&self) -> Result<Option<String>, LogError> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| LogError::unavailable("cannot read the log's identity", e))?;
        Ok(Some(format!("{}@{}", info.config.name, info.created)))
    }
}
