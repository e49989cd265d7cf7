//! The envelope every event travels in, and the small value types of the log API.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use coord_domain::Office;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

/// The name of one stream: `{category}-{id}`, e.g. `inspection-0190…`. The category is
/// lowercase ASCII letters and `_`; the id is ASCII letters, digits and `-`, so a
/// stream id is always a safe NATS subject token and a valid EventStoreDB stream name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid stream id `{0}`: expected {{category}}-{{id}} with a lowercase category and an ASCII id"
)]
pub struct StreamIdError(pub String);

impl StreamId {
    /// Builds `{category}-{id}`.
    pub fn new(category: &str, id: impl fmt::Display) -> Result<Self, StreamIdError> {
        format!("{category}-{id}").parse()
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The part before the first `-`.
    pub fn category(&self) -> &str {
        self.0.split_once('-').map(|(c, _)| c).unwrap_or(&self.0)
    }
    /// The part after the first `-`.
    pub fn id(&self) -> &str {
        self.0.split_once('-').map(|(_, i)| i).unwrap_or("")
    }
}

impl FromStr for StreamId {
    type Err = StreamIdError;
    fn from_str(s: &str) -> Result<Self, StreamIdError> {
        let bad = || StreamIdError(s.chars().take(120).collect());
        let (category, id) = s.split_once('-').ok_or_else(bad)?;
        let category_ok = !category.is_empty()
            && category
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_');
        let id_ok = !id.is_empty()
            && id.len() <= 100
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if category_ok && id_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for StreamId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What the writer believes the stream's version is. A stream's version is the number
/// of events in it: 0 before the first append, `n` after the n-th event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "version")]
pub enum ExpectedVersion {
    /// Write whatever the version is (the log still numbers events without gaps).
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must be at exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// Does a stream at `actual` satisfy this expectation?
    pub fn accepts(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(n) => actual == n,
        }
    }
}

/// Where an event sits in the whole log. Ordered lexicographically, positions order the
/// log totally, and a subscription can resume just after any of them.
///
/// - JetStream: `commit` is the stream sequence of the commit message, `index` the
///   event's index in that commit (0, 1, …).
/// - EventStoreDB: `commit` and `index` are the `$all` commit and prepare positions, the
///   pair `Position { commit, prepare }` that `subscribe_to_all` resumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventPosition {
    pub commit: u64,
    pub index: u64,
}

impl fmt::Display for EventPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.commit, self.index)
    }
}

/// Who did it, from where, and why: carried on every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The office the command came from, e.g. `province` or `district:long-xuyen`.
    pub office: String,
    /// The person or system that issued the command.
    pub actor: String,
    /// Ties together everything done for one request or workflow.
    pub correlation_id: Uuid,
    /// The id of the command that produced the event.
    pub causation_id: Uuid,
    /// The role of the caller's token (`operator`); absent on events recorded before
    /// roles were: omitted when absent, so their stored bytes (and audit leaves) stay
    /// as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique in the log; the command services derive it from the command id, the
    /// stream and the event's index, so that a retried append carries the same ids.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// The business date the event happened on.
    pub occurred_at: NaiveDate,
    pub payload: Value,
    pub metadata: Metadata,
}

/// An event as stored: the envelope, its payload and its place in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub stream_id: StreamId,
    /// 1 for the stream's first event.
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: NaiveDate,
    /// When the log stored it (the appending process's clock).
    pub recorded_at: DateTime<Utc>,
    pub office: String,
    pub actor: String,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    /// The caller's role (see [`Metadata::role`]); absent on older events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub payload: Value,
    /// Not part of the stored envelope: the log assigns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<EventPosition>,
}

impl RecordedEvent {
    /// The position; every event read back from a log has one.
    pub fn pos(&self) -> EventPosition {
        self.position
            .expect("events read from a log carry their position")
    }

    /// Numbers a batch of new events after a stream at version `actual`, as recorded now.
    pub(crate) fn stamp(
        stream: &StreamId,
        actual: u64,
        recorded_at: DateTime<Utc>,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> Vec<Self> {
        events
            .into_iter()
            .zip(actual + 1..)
            .map(|(e, version)| Self::from_new(stream, version, recorded_at, e))
            .collect()
    }

    /// Gives the events of one commit their positions in the log.
    pub(crate) fn place(events: &mut [Self], commit: u64) {
        for (index, e) in events.iter_mut().enumerate() {
            e.position = Some(EventPosition {
                commit,
                index: index as u64,
            });
        }
    }

    fn from_new(
        stream: &StreamId,
        version: u64,
        recorded_at: DateTime<Utc>,
        event: NewEvent,
    ) -> Self {
        RecordedEvent {
            event_id: event.event_id,
            stream_id: stream.clone(),
            stream_version: version,
            event_type: event.event_type,
            schema_version: event.schema_version,
            occurred_at: event.occurred_at,
            recorded_at,
            office: event.metadata.office,
            actor: event.metadata.actor,
            correlation_id: event.metadata.correlation_id,
            causation_id: event.metadata.causation_id,
            role: event.metadata.role,
            payload: event.payload,
            position: None,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    /// The stream's version after the append (the version of its last event).
    pub stream_version: u64,
    /// The position of the commit's first event.
    pub position: EventPosition,
    pub event_ids: Vec<Uuid>,
    /// True when the append was a retry of one already stored: nothing new was written.
    pub duplicate: bool,
}

/// The outcome of an already stored commit whose events are `events` (all of one
/// commit): what a backend answers to a retried append.
pub(crate) fn outcome_of(events: &[RecordedEvent]) -> AppendOutcome {
    AppendOutcome {
        stream_version: events.last().map(|e| e.stream_version).unwrap_or(0),
        position: events[0].pos(),
        event_ids: events.iter().map(|e| e.event_id).collect(),
        duplicate: true,
    }
}

/// The stored commit, among `events` (a stream read back), that holds `event_id`: how
/// a backend recognises a retried append.
pub fn find_commit(events: &[RecordedEvent], event_id: Uuid) -> Option<AppendOutcome> {
    let commit = events.iter().find(|e| e.event_id == event_id)?.pos().commit;
    let same: Vec<RecordedEvent> = events
        .iter()
        .filter(|e| e.pos().commit == commit)
        .cloned()
        .collect();
    Some(outcome_of(&same))
}

/// The office an event was written for, as its envelope says (`office`), parsed.
pub fn office_of(office: &str) -> Result<Office, crate::LogError> {
    office
        .parse()
        .map_err(|e| crate::LogError::InvalidInput(format!("office of the events: {e}")))
}

/// Where office `office`'s stream `stream` is stored in a log whose subjects start with
/// `root`: `{root}.{office slug}.{category}.{id}` (a record is (office, id)).
pub fn subject_of(root: &str, office: &Office, stream: &StreamId) -> String {
    format!(
        "{root}.{}.{}.{}",
        office.slug(),
        stream.category(),
        stream.id()
    )
}

/// Checks that the commit stored on `subject` at `position` is what the subject says:
/// every event is of the stream and the office the subject names. A subject without an
/// office token (`{root}.{category}.{id}`, logs written before subjects named the
/// office) is checked for the stream only. Anything else is a
/// [`LogError::SubjectMismatch`]: an office's server can put any body on its own
/// subjects, and no reader may take the body's word for whose record it is.
pub fn check_subject(
    root: &str,
    subject: &str,
    position: EventPosition,
    events: &[RecordedEvent],
) -> Result<(), crate::LogError> {
    let mismatch = |reason: String| crate::LogError::SubjectMismatch {
        position,
        subject: subject.chars().take(200).collect(),
        reason,
    };
    let rest = subject
        .strip_prefix(root)
        .and_then(|r| r.strip_prefix('.'))
        .ok_or_else(|| mismatch(format!("not a subject under `{root}`")))?;
    let tokens: Vec<&str> = rest.split('.').collect();
    let (office, category, id) = match tokens[..] {
        [office, category, id] => (Some(office), category, id),
        [category, id] => (None, category, id),
        _ => return Err(mismatch("expected <office>.<category>.<id>".into())),
    };
    for e in events {
        if e.stream_id.category() != category || e.stream_id.id() != id {
            return Err(mismatch(format!(
                "the commit names stream {} where the subject says {category}-{id}",
                e.stream_id
            )));
        }
        if let Some(slug) = office
            && e.office.parse::<Office>().map(|o| o.slug() == slug) != Ok(true)
        {
            return Err(mismatch(format!(
                "the commit names office `{}` where the subject says `{slug}`",
                e.office.chars().take(80).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// Checks an append request that every backend must refuse the same way.
pub fn validate_batch(events: &[NewEvent]) -> Result<(), crate::LogError> {
    if events.is_empty() {
        return Err(crate::LogError::InvalidInput(
            "an append needs at least one event".into(),
        ));
    }
    for (i, e) in events.iter().enumerate() {
        if e.event_id.is_nil() || events[..i].iter().any(|o| o.event_id == e.event_id) {
            return Err(crate::LogError::InvalidInput(format!(
                "event id {} is nil or repeated",
                e.event_id
            )));
        }
        if e.metadata.office != events[0].metadata.office {
            return Err(crate::LogError::InvalidInput(
                "the events of one append are of one office".into(),
            ));
        }
        office_of(&e.metadata.office)?;
        if e.event_type.is_empty() || !e.event_type.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(crate::LogError::InvalidInput(format!(
                "event type `{}` is not an ASCII name",
                e.event_type
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_category_dash_id() {
        let s = StreamId::new("inspection", "0190a000-0000-7000-8000-000000000001").unwrap();
        assert_eq!(s.category(), "inspection");
        assert_eq!(s.id(), "0190a000-0000-7000-8000-000000000001");
        for bad in [
            "inspection",
            "-x",
            "Inspection-1",
            "a-b.c",
            "a-b c",
            "a-*",
            "a->",
        ] {
            assert!(bad.parse::<StreamId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn expected_versions_accept_what_they_say() {
        assert!(ExpectedVersion::Any.accepts(7));
        assert!(ExpectedVersion::NoStream.accepts(0));
        assert!(!ExpectedVersion::NoStream.accepts(1));
        assert!(ExpectedVersion::Exact(3).accepts(3));
        assert!(!ExpectedVersion::Exact(3).accepts(2));
    }
}
