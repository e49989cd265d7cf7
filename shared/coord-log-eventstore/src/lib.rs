//! The EventStoreDB / KurrentDB backend of [`EventLog`], through the official
//! `eventstore` gRPC client.
//!
//! It maps the log's concepts one to one, so the services run on it unchanged:
//! - a stream is an EventStoreDB stream of the same name (`inspection-{uuid}`);
//! - expected version `n` is expected revision `n - 1` (`NoStream` for 0);
//! - an event's [`EventPosition`] is its `$all` position: `commit` ↔ commit position,
//!   `index` ↔ prepare position (events of one append share the commit position);
//! - the event id is the `EventData` id; the rest of the envelope (schema version,
//!   business date, office, actor, correlation and causation ids) is the event's custom
//!   metadata, with EventStoreDB's own `$correlationId` and `$causationId` names;
//! - an append is one `append_to_stream` call, which EventStoreDB makes atomic.
//!
//! No EventStoreDB server can run on the machines this project is built on: the mapping
//! is unit-tested here, and the shared contract suite runs against a live server only
//! where one is given (`EVENTSTORE_URL`, see `tests/tests/log_contract.rs`).

use async_trait::async_trait;
use chrono::NaiveDate;
use coord_log::{
    AppendOutcome, EventLog, EventPosition, ExpectedVersion, LogError, NewEvent, RecordedEvent,
    StreamId, Subscription, find_commit, validate_batch,
};
use eventstore::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, EventData, ExpectedRevision,
    Position, ReadAllOptions, ReadStreamOptions, StreamPosition, SubscribeToAllOptions,
    SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How far back `head` looks past EventStoreDB's own (`$`-prefixed) events.
const HEAD_SCAN: usize = 1000;

/// The envelope fields that travel in an event's custom metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeMetadata {
    pub schema_version: u32,
    pub occurred_at: NaiveDate,
    pub office: String,
    pub actor: String,
    #[serde(rename = "$correlationId")]
    pub correlation_id: Uuid,
    #[serde(rename = "$causationId")]
    pub causation_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Expected version (events in the stream) → expected revision (last event's number).
pub fn expected_revision(expected: ExpectedVersion) -> ExpectedRevision {
    match expected {
        ExpectedVersion::Any => ExpectedRevision::Any,
        ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => ExpectedRevision::NoStream,
        ExpectedVersion::Exact(n) => ExpectedRevision::Exact(n - 1),
    }
}

/// The stream's current revision → its version (number of events).
pub fn version_of(current: CurrentRevision) -> u64 {
    match current {
        CurrentRevision::NoStream => 0,
        CurrentRevision::Current(revision) => revision + 1,
    }
}

/// `$all` position → log position.
pub fn to_position(p: Position) -> EventPosition {
    EventPosition {
        commit: p.commit,
        index: p.prepare,
    }
}

/// Log position → `$all` position.
pub fn from_position(p: EventPosition) -> Position {
    Position {
        commit: p.commit,
        prepare: p.index,
    }
}

/// A new event as the bytes EventStoreDB stores: everything [`from_recorded`] reads
/// back. `EventData` does not expose its fields, so the mapping lives here, where a test
/// can decode it, and [`to_event_data`] only hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEvent {
    pub id: Uuid,
    pub event_type: String,
    /// The event's data: its JSON payload.
    pub data: bytes::Bytes,
    /// The event's custom metadata: the JSON [`EnvelopeMetadata`].
    pub custom_metadata: bytes::Bytes,
}

/// Encodes a new event for EventStoreDB.
pub fn encode(event: &NewEvent) -> Result<EncodedEvent, LogError> {
    let metadata = EnvelopeMetadata {
        schema_version: event.schema_version,
        occurred_at: event.occurred_at,
        office: event.metadata.office.clone(),
        actor: event.metadata.actor.clone(),
        correlation_id: event.metadata.correlation_id,
        causation_id: event.metadata.causation_id,
        role: event.metadata.role.clone(),
    };
    let invalid =
        |e: serde_json::Error| LogError::InvalidInput(format!("event does not serialize: {e}"));
    Ok(EncodedEvent {
        id: event.event_id,
        event_type: event.event_type.clone(),
        data: serde_json::to_vec(&event.payload).map_err(invalid)?.into(),
        custom_metadata: serde_json::to_vec(&metadata).map_err(invalid)?.into(),
    })
}

/// A new event as `EventData`: a JSON event (its data is `serde_json::to_vec` of the
/// payload, as in [`encode`]) with our id and custom metadata.
pub fn to_event_data(event: &NewEvent) -> Result<EventData, LogError> {
    let encoded = encode(event)?;
    Ok(EventData::json(encoded.event_type.as_str(), &event.payload)
        .map_err(|e| LogError::InvalidInput(format!("event does not serialize: {e}")))?
        .id(encoded.id)
        .metadata(encoded.custom_metadata))
}

/// What a retried append answers, from the stream's tail read **backwards** (newest
/// first, as EventStoreDB reads from the end): the original commit holding `first_id`,
/// in append order, or `None` if the tail does not hold it.
pub fn retry_outcome(
    tail_newest_first: Vec<RecordedEvent>,
    first_id: Uuid,
) -> Option<AppendOutcome> {
    let mut oldest_first = tail_newest_first;
    oldest_first.reverse();
    find_commit(&oldest_first, first_id)
}

/// A stored EventStoreDB event as a log event; `Corrupt` if it is not one of ours.
pub fn from_recorded(e: &eventstore::RecordedEvent) -> Result<RecordedEvent, LogError> {
    let position = to_position(e.position);
    let corrupt = |reason: String| LogError::Corrupt { position, reason };
    let stream_id: StreamId = e
        .stream_id
        .parse()
        .map_err(|err| corrupt(format!("{err}")))?;
    let payload = serde_json::from_slice(&e.data)
        .map_err(|err| corrupt(format!("data is not JSON: {err}")))?;
    let meta: EnvelopeMetadata = serde_json::from_slice(&e.custom_metadata)
        .map_err(|err| corrupt(format!("metadata is not an envelope: {err}")))?;
    Ok(RecordedEvent {
        event_id: e.id,
        stream_id,
        stream_version: e.revision + 1,
        event_type: e.event_type.clone(),
        schema_version: meta.schema_version,
        occurred_at: meta.occurred_at,
        recorded_at: e.created,
        office: meta.office,
        actor: meta.actor,
        correlation_id: meta.correlation_id,
        causation_id: meta.causation_id,
        role: meta.role,
        payload,
        position: Some(position),
    })
}

fn unavailable(what: &str, e: eventstore::Error) -> LogError {
    LogError::Unavailable(format!("{what}: {e}"))
}

/// The log on EventStoreDB / KurrentDB: one site's log, where a stream id is one
/// office's (a second office's stream of that id is refused as `id_in_use` by the
/// command side, which sees every office here); the offices' separation is the events'
/// `office`, checked on every scoped append and load.
#[derive(Clone)]
pub struct EventStoreLog {
    client: Client,
    /// The office this view appends and loads as ([`EventLog::for_office`]).
    office: Option<coord_domain::Office>,
}

impl EventStoreLog {
    /// Connects with a connection string, e.g. `esdb://127.0.0.1:2113?tls=false`.
    pub fn connect(url: &str) -> Result<Self, LogError> {
        let settings: ClientSettings = url.parse().map_err(|e| {
            LogError::InvalidInput(format!("bad EventStoreDB connection string: {e}"))
        })?;
        let client =
            Client::new(settings).map_err(|e| unavailable("cannot create the client", e))?;
        Ok(Self {
            client,
            office: None,
        })
    }

    /// Is every event of `events` this view's office's (always, unscoped)?
    fn owns(&self, events: &[RecordedEvent]) -> bool {
        self.office.as_ref().is_none_or(|own| {
            events
                .iter()
                .all(|e| e.office.parse::<coord_domain::Office>().as_ref() == Ok(own))
        })
    }

    async fn read(
        &self,
        stream: &StreamId,
        options: &ReadStreamOptions,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let mut read = match self.client.read_stream(stream.as_str(), options).await {
            Ok(r) => r,
            Err(eventstore::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(e) => return Err(unavailable("cannot read a stream", e)),
        };
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(resolved)) => events.push(from_recorded(resolved.get_original_event())?),
                Ok(None) => return Ok(events),
                Err(eventstore::Error::ResourceNotFound) => return Ok(events),
                Err(e) => return Err(unavailable("cannot read a stream", e)),
            }
        }
    }
}

#[async_trait]
impl EventLog for EventStoreLog {
    fn for_office(&self, office: &coord_domain::Office) -> std::sync::Arc<dyn EventLog> {
        std::sync::Arc::new(Self {
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
        let named = coord_log::office_of(&events[0].metadata.office)?;
        if let Some(own) = self.office.as_ref().filter(|own| **own != named) {
            return Err(LogError::InvalidInput(format!(
                "events of office {named} appended to the log of office {own}"
            )));
        }
        let first_id = events[0].event_id;
        // EventStoreDB answers an idempotent retry with success, so look first.
        let tail = self
            .read(
                stream,
                &ReadStreamOptions::default()
                    .backwards()
                    .position(StreamPosition::End)
                    .max_count(events.len()),
            )
            .await?;
        if let Some(outcome) = retry_outcome(tail, first_id) {
            return Ok(outcome);
        }
        let data = events
            .iter()
            .map(to_event_data)
            .collect::<Result<Vec<_>, _>>()?;
        let options =
            AppendToStreamOptions::default().expected_revision(expected_revision(expected));
        match self
            .client
            .append_to_stream(stream.as_str(), &options, data)
            .await
        {
            Ok(written) => Ok(AppendOutcome {
                stream_version: written.next_expected_version + 1,
                position: to_position(written.position),
                event_ids: events.iter().map(|e| e.event_id).collect(),
                duplicate: false,
            }),
            Err(eventstore::Error::WrongExpectedVersion { current, .. }) => {
                let all = self.read_stream(stream).await?;
                match find_commit(&all, first_id) {
                    Some(outcome) => Ok(outcome),
                    None => Err(LogError::Conflict {
                        stream: stream.clone(),
                        expected,
                        actual: version_of(current),
                    }),
                }
            }
            Err(e) => Err(unavailable("append failed", e)),
        }
    }

    async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
        let events = self.read_reference(stream).await?;
        // Another office's stream is not this office's to load (as on JetStream, where
        // it is under another office's subjects).
        Ok(if self.owns(&events) {
            events
        } else {
            Vec::new()
        })
    }

    async fn read_reference(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
        self.read(
            stream,
            &ReadStreamOptions::default()
                .forwards()
                .position(StreamPosition::Start),
        )
        .await
    }

    async fn subscribe(&self, after: Option<EventPosition>) -> Result<Subscription, LogError> {
        let start = after
            .map(|p| StreamPosition::Position(from_position(p)))
            .unwrap_or(StreamPosition::Start);
        let options = SubscribeToAllOptions::default()
            .position(start)
            .filter(SubscriptionFilter::on_event_type().exclude_system_events());
        let subscription = self.client.subscribe_to_all(&options).await;
        let stream = futures::stream::unfold(Some(subscription), move |state| async move {
            let mut subscription = state?;
            loop {
                match subscription.next().await {
                    Ok(resolved) => {
                        let event = from_recorded(resolved.get_original_event());
                        // Subscribing from a position is exclusive; skip a replay anyway.
                        if let (Ok(e), Some(a)) = (&event, after)
                            && e.pos() <= a
                        {
                            continue;
                        }
                        return Some((event, Some(subscription)));
                    }
                    Err(e) => return Some((Err(unavailable("subscription failed", e)), None)),
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn head(&self) -> Result<Option<EventPosition>, LogError> {
        let options = ReadAllOptions::default()
            .backwards()
            .position(StreamPosition::End)
            .max_count(HEAD_SCAN);
        let mut read = self
            .client
            .read_all(&options)
            .await
            .map_err(|e| unavailable("cannot read $all", e))?;
        while let Some(resolved) = read
            .next()
            .await
            .map_err(|e| unavailable("cannot read $all", e))?
        {
            let event = resolved.get_original_event();
            if !event.event_type.starts_with('$') {
                return Ok(Some(to_position(event.position)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn new_event() -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "InspectionStarted".into(),
            schema_version: 1,
            occurred_at: "2022-07-01".parse().unwrap(),
            payload: serde_json::json!({"inspection_id": "x", "started_on": "2022-07-01"}),
            metadata: coord_log::Metadata {
                role: None,
                office: "district:chau-doc".into(),
                actor: "văn thư".into(),
                correlation_id: Uuid::now_v7(),
                causation_id: Uuid::now_v7(),
            },
        }
    }

    #[test]
    fn expected_versions_map_to_revisions() {
        assert!(matches!(
            expected_revision(ExpectedVersion::Any),
            ExpectedRevision::Any
        ));
        assert!(matches!(
            expected_revision(ExpectedVersion::NoStream),
            ExpectedRevision::NoStream
        ));
        assert!(matches!(
            expected_revision(ExpectedVersion::Exact(0)),
            ExpectedRevision::NoStream
        ));
        assert!(matches!(
            expected_revision(ExpectedVersion::Exact(1)),
            ExpectedRevision::Exact(0)
        ));
        assert!(matches!(
            expected_revision(ExpectedVersion::Exact(7)),
            ExpectedRevision::Exact(6)
        ));
        assert_eq!(version_of(CurrentRevision::NoStream), 0);
        assert_eq!(version_of(CurrentRevision::Current(0)), 1);
        assert_eq!(version_of(CurrentRevision::Current(41)), 42);
    }

    #[test]
    fn positions_map_both_ways_and_keep_their_order() {
        let a = Position {
            commit: 1000,
            prepare: 900,
        };
        let b = Position {
            commit: 1000,
            prepare: 950,
        };
        let c = Position {
            commit: 1200,
            prepare: 1100,
        };
        assert_eq!(from_position(to_position(a)), a);
        assert!(to_position(a) < to_position(b) && to_position(b) < to_position(c));
    }

    /// What the server stores for an appended event: exactly the encoded bytes.
    fn stored(
        encoded: &EncodedEvent,
        revision: u64,
        position: Position,
    ) -> eventstore::RecordedEvent {
        eventstore::RecordedEvent {
            stream_id: "inspection-0190a000-0000-7000-8000-000000000001".into(),
            id: encoded.id,
            revision,
            event_type: encoded.event_type.clone(),
            data: encoded.data.clone(),
            metadata: HashMap::new(),
            custom_metadata: encoded.custom_metadata.clone(),
            is_json: true,
            position,
            created: chrono::Utc::now(),
        }
    }

    #[test]
    fn an_appended_event_reads_back_as_the_same_envelope() {
        let new = new_event();
        let encoded = encode(&new).unwrap();
        // `to_event_data` hands over exactly these bytes and this id.
        let data = format!("{:?}", to_event_data(&new).unwrap());
        assert!(
            data.contains(&format!("{:?}", encoded.custom_metadata)),
            "{data}"
        );
        assert!(data.contains(&format!("{:?}", encoded.data)), "{data}");
        assert!(data.contains(&new.event_id.to_string()), "{data}");
        let meta: serde_json::Value = serde_json::from_slice(&encoded.custom_metadata).unwrap();
        assert_eq!(meta["$causationId"], new.metadata.causation_id.to_string());
        assert_eq!(
            meta["$correlationId"],
            new.metadata.correlation_id.to_string()
        );

        let position = Position {
            commit: 5000,
            prepare: 4990,
        };
        let back = from_recorded(&stored(&encoded, 2, position)).unwrap();
        let expected = RecordedEvent {
            role: None,
            event_id: new.event_id,
            stream_id: "inspection-0190a000-0000-7000-8000-000000000001"
                .parse()
                .unwrap(),
            stream_version: 3,
            event_type: new.event_type.clone(),
            schema_version: new.schema_version,
            occurred_at: new.occurred_at,
            recorded_at: back.recorded_at,
            office: new.metadata.office.clone(),
            actor: new.metadata.actor.clone(),
            correlation_id: new.metadata.correlation_id,
            causation_id: new.metadata.causation_id,
            payload: new.payload.clone(),
            position: Some(EventPosition {
                commit: 5000,
                index: 4990,
            }),
        };
        assert_eq!(back, expected);
    }

    #[test]
    fn a_multi_event_retry_answers_the_original_in_append_order() {
        // A stream at version 2 whose last append wrote three events (revisions 2..=4)
        // in one commit; the tail is read backwards, newest first.
        let batch: Vec<NewEvent> = (0..3).map(|_| new_event()).collect();
        let commit = 9000;
        let recorded: Vec<RecordedEvent> = batch
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let position = Position {
                    commit,
                    prepare: 8000 + i as u64 * 10,
                };
                from_recorded(&stored(&encode(e).unwrap(), 2 + i as u64, position)).unwrap()
            })
            .collect();
        let mut tail = recorded.clone();
        tail.reverse();
        let outcome = retry_outcome(tail, batch[0].event_id).expect("the retry is recognised");
        assert_eq!(
            outcome,
            AppendOutcome {
                stream_version: 5,
                position: EventPosition {
                    commit,
                    index: 8000
                },
                event_ids: batch.iter().map(|e| e.event_id).collect(),
                duplicate: true,
            }
        );
        assert_eq!(retry_outcome(recorded, Uuid::now_v7()), None);
    }

    #[test]
    fn foreign_events_are_corrupt_not_fatal() {
        let stored = eventstore::RecordedEvent {
            stream_id: "orders-1".into(),
            id: Uuid::now_v7(),
            revision: 0,
            event_type: "OrderPlaced".into(),
            data: b"{}".to_vec().into(),
            metadata: HashMap::new(),
            custom_metadata: b"".to_vec().into(),
            is_json: true,
            position: Position {
                commit: 7,
                prepare: 7,
            },
            created: chrono::Utc::now(),
        };
        let err = from_recorded(&stored).unwrap_err();
        assert_eq!(err.kind(), coord_log::LogErrorKind::Corrupt);
    }

    #[test]
    fn a_bad_connection_string_is_invalid_input() {
        let err = EventStoreLog::connect("not a url").err().unwrap();
        assert_eq!(err.kind(), coord_log::LogErrorKind::InvalidInput);
    }
}
