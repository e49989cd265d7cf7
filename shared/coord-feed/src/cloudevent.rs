//! The CloudEvents 1.0 structured-mode JSON envelope of one recorded event, and the
//! way back from it to an event the log can append (for `coordctl import`).
//!
//! Attributes: `specversion` `1.0`; `id` the event id (a UUID v5 of the command id,
//! office, stream and index: unique per `source` and in fact globally); `source` the office that issued the command, as the URI
//! reference `/offices/<office>` (e.g. `/offices/district:long-xuyen`); `type`
//! `vn.coord.<category>.<event>.v<N>` (see [`crate::catalog`]); `time` when the log
//! recorded it; `subject` the aggregate stream (`inspection-<uuid>`);
//! `datacontenttype` `application/json`; `dataschema` the URL of the type's schema in
//! this API; `data` the payload at the current schema version.
//!
//! Extension attributes (lowercase alphanumeric, as CloudEvents requires):
//! `position` the log position `commit:index` (resume after it with `after=<commit>`);
//! `streamversion` the event's version in its stream (1 for the first); `occurredon`
//! the business date (ISO 8601); `correlationid`, `causationid` (the command id),
//! `actor` and `role` (absent on events recorded before roles were).

use chrono::{DateTime, NaiveDate, Utc};
use coord_domain::DecodeError;
use coord_log::{EventPosition, Metadata, NewEvent, RecordedEvent, StreamId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::catalog::{self, lookup, lookup_ce_type, schema_url};

/// Where `source` puts the office.
pub const SOURCE_PREFIX: &str = "/offices/";

/// One event as a CloudEvents 1.0 structured-mode JSON event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub ce_type: String,
    pub time: DateTime<Utc>,
    pub subject: String,
    pub datacontenttype: String,
    pub dataschema: String,
    pub data: Value,
    pub position: String,
    pub streamversion: u64,
    pub occurredon: NaiveDate,
    pub correlationid: String,
    pub causationid: String,
    pub actor: String,
    /// The caller's role; absent on events recorded before roles were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Why an event could not become a CloudEvent, or a CloudEvent an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("attribute `{attribute}` is invalid: {reason}")]
    BadAttribute {
        attribute: &'static str,
        reason: String,
    },
}

/// A CloudEvent turned back into what the log appends, with the place it had.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedEvent {
    pub stream: StreamId,
    /// Its version in the stream when it was exported.
    pub stream_version: u64,
    /// Its position when it was exported: events of one commit share `commit`.
    pub position: EventPosition,
    pub event: NewEvent,
}

impl CloudEvent {
    /// The envelope of `event`, its payload upcast to the current schema version.
    /// `base_url` is where this API is reachable (for `dataschema`).
    pub fn from_recorded(event: &RecordedEvent, base_url: &str) -> Result<Self, FeedError> {
        let category = event.stream_id.category();
        let info = lookup(category, &event.event_type)
            .ok_or_else(|| FeedError::UnknownType(event.event_type.clone()))?;
        let data = catalog::current_payload(
            category,
            &event.event_type,
            event.schema_version,
            event.payload.clone(),
        )?;
        Ok(CloudEvent {
            specversion: "1.0".into(),
            id: event.event_id.to_string(),
            source: format!("{SOURCE_PREFIX}{}", event.office),
            ce_type: info.ce_type(info.version),
            time: event.recorded_at,
            subject: event.stream_id.to_string(),
            datacontenttype: "application/json".into(),
            dataschema: schema_url(base_url, &info.name, info.version),
            data,
            position: event.pos().to_string(),
            streamversion: event.stream_version,
            occurredon: event.occurred_at,
            correlationid: event.correlation_id.to_string(),
            causationid: event.causation_id.to_string(),
            actor: event.actor.clone(),
            role: event.role.clone(),
        })
    }

    /// The log position this event had.
    pub fn log_position(&self) -> Result<EventPosition, FeedError> {
        parse_position(&self.position).ok_or_else(|| bad("position", &self.position))
    }

    /// What to append to reproduce this event in another log.
    pub fn to_import(&self) -> Result<ImportedEvent, FeedError> {
        let (info, version) = lookup_ce_type(&self.ce_type)
            .ok_or_else(|| FeedError::UnknownType(self.ce_type.clone()))?;
        let stream: StreamId = self
            .subject
            .parse()
            .map_err(|_| bad("subject", &self.subject))?;
        if stream.category() != info.category {
            return Err(bad("subject", &self.subject));
        }
        let office = self
            .source
            .strip_prefix(SOURCE_PREFIX)
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("source", &self.source))?;
        let uuid = |attribute, text: &str| Uuid::try_parse(text).map_err(|_| bad(attribute, text));
        Ok(ImportedEvent {
            stream,
            stream_version: self.streamversion,
            position: self.log_position()?,
            event: NewEvent {
                event_id: uuid("id", &self.id)?,
                event_type: info.event_type.clone(),
                schema_version: version,
                occurred_at: self.occurredon,
                payload: self.data.clone(),
                metadata: Metadata {
                    office: office.to_owned(),
                    actor: self.actor.clone(),
                    correlation_id: uuid("correlationid", &self.correlationid)?,
                    causation_id: uuid("causationid", &self.causationid)?,
                    role: self.role.clone(),
                },
            },
        })
    }
}

/// Parses `commit:index`.
pub fn parse_position(text: &str) -> Option<EventPosition> {
    let (commit, index) = text.split_once(':')?;
    Some(EventPosition {
        commit: commit.parse().ok()?,
        index: index.parse().ok()?,
    })
}

fn bad(attribute: &'static str, value: &str) -> FeedError {
    FeedError::BadAttribute {
        attribute,
        reason: format!(
            "`{}` does not fit",
            value.chars().take(80).collect::<String>()
        ),
    }
}
