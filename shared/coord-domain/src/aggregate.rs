//! The shape every aggregate has: a pure `handle` that turns a command into events or a
//! typed rejection, and a pure `apply` that folds an event into state.
//!
//! Events cross the wire as `(event_type, schema_version, JSON payload)`. Decoding goes
//! through [`DomainEvent::upcast`] on the raw JSON first, so an old payload can be
//! brought up to the current schema before it meets the typed decoder.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::references::{References, StreamRef};
use crate::{Date, Province, Rulebook};

/// What a command handler may consult besides the aggregate's own state.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The province's reference data (units, terms).
    pub province: &'a Province,
    /// The Party's rules (authority, appeals, limitation periods), by date.
    pub rules: &'a Rulebook,
    /// The other aggregates the command names (see [`Aggregate::references`]), as the
    /// handler found them in the log just before deciding.
    pub references: &'a References,
}

/// Why a command was refused, in the categories a caller must treat differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    /// A domain rule is broken by the command's content (HTTP 422).
    RuleViolation,
    /// The command does not fit the aggregate's current lifecycle state (HTTP 409).
    InvalidTransition,
    /// The command addresses an aggregate that does not exist (HTTP 404).
    NotFound,
    /// The command would create an aggregate that already exists (HTTP 409).
    AlreadyExists,
}

/// A typed domain rejection. Each aggregate has its own `thiserror` enum; this trait
/// gives every one of them a stable machine-readable code and a kind.
pub trait Rejection: std::error::Error + Send + Sync + 'static {
    /// How the caller must treat it.
    fn kind(&self) -> RejectionKind;
    /// A stable snake_case code, e.g. `removal_from_post_requires_post`.
    fn code(&self) -> &'static str;
}

/// An event payload that can go on the wire.
pub trait DomainEvent:
    Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// The schema version written today for every event type of this enum.
    const SCHEMA_VERSION: u32 = 1;
    /// Stable PascalCase event type, e.g. `InspectionScheduled`.
    fn event_type(&self) -> &'static str;
    /// The business date the event happened on.
    fn occurred_on(&self) -> Date;
    /// Brings a payload written with an older schema up to [`Self::SCHEMA_VERSION`].
    /// Works on JSON, before typed decoding. The default knows only the current version.
    fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, DecodeError> {
        if schema_version == Self::SCHEMA_VERSION {
            Ok(payload)
        } else {
            Err(DecodeError::UnsupportedSchemaVersion {
                event_type: event_type.to_owned(),
                schema_version,
            })
        }
    }

    /// Splits the event into its wire type and payload.
    fn encode(&self) -> (&'static str, Value) {
        // Every event enum is `#[serde(tag = "type", content = "data")]`, so the
        // serialized form is {"type": .., "data": ..}: take the data part.
        let value = serde_json::to_value(self).expect("domain events always serialize");
        let payload = match value {
            Value::Object(mut map) => map.remove("data").unwrap_or(Value::Null),
            other => other,
        };
        (self.event_type(), payload)
    }

    /// Rebuilds a typed event from its wire parts, upcasting first.
    fn decode(event_type: &str, schema_version: u32, payload: Value) -> Result<Self, DecodeError> {
        let payload = Self::upcast(event_type, schema_version, payload)?;
        let tag = Value::String(event_type.to_owned());
        from_parts(event_type, [("type", tag), ("data", payload)])
    }

    /// [`DomainEvent::decode`] of a payload the caller keeps: an event of the current
    /// schema version (which [`DomainEvent::upcast`] leaves as it is) is read from the
    /// borrowed JSON without copying it; an older one is copied and upcast.
    fn decode_ref(
        event_type: &str,
        schema_version: u32,
        payload: &Value,
    ) -> Result<Self, DecodeError> {
        if schema_version != Self::SCHEMA_VERSION {
            return Self::decode(event_type, schema_version, payload.clone());
        }
        let tag = Value::String(event_type.to_owned());
        from_parts(event_type, [("type", &tag), ("data", payload)])
    }
}

/// The typed event read from `{"type": .., "data": ..}` given as `parts`, type first:
/// serde then reads the data straight into its variant (from a JSON object, whose keys
/// are sorted, `data` came first, and serde buffered the payload to read it later).
fn from_parts<'de, E, V>(event_type: &str, parts: [(&'static str, V); 2]) -> Result<E, DecodeError>
where
    E: DomainEvent,
    V: serde::de::IntoDeserializer<'de, serde_json::Error>,
{
    let map = serde::de::value::MapDeserializer::<_, serde_json::Error>::new(parts.into_iter());
    E::deserialize(map).map_err(|e| {
        if e.to_string().contains("unknown variant") {
            DecodeError::UnknownEventType(event_type.to_owned())
        } else {
            DecodeError::BadPayload {
                event_type: event_type.to_owned(),
                reason: e.to_string(),
            }
        }
    })
}

/// An event that could not be turned back into a typed domain event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type `{0}`")]
    UnknownEventType(String),
    #[error(
        "event `{event_type}` has schema version {schema_version}, which this build does not know"
    )]
    UnsupportedSchemaVersion {
        event_type: String,
        schema_version: u32,
    },
    #[error("event `{event_type}` has a malformed payload: {reason}")]
    BadPayload { event_type: String, reason: String },
}

/// An event-sourced aggregate: state is a fold of its events, and commands are decided
/// against that state without side effects.
pub trait Aggregate: Default + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The stream category, e.g. `inspection`; streams are named `{category}-{id}`.
    const CATEGORY: &'static str;
    /// The commands this aggregate decides.
    type Command: std::fmt::Debug + Send + Sync;
    /// The events it emits.
    type Event: DomainEvent;
    /// Its typed rejections.
    type Rejection: Rejection;

    /// Folds one event into the state.
    fn apply(&mut self, event: &Self::Event);

    /// Decides a command against the current state.
    fn handle(
        &self,
        command: &Self::Command,
        ctx: &Context<'_>,
    ) -> Result<Vec<Self::Event>, Self::Rejection>;

    /// The other aggregates a command names, whose state the handler must load from the
    /// log and pass in [`Context::references`] before deciding. None by default.
    fn references(_command: &Self::Command) -> Vec<StreamRef> {
        Vec::new()
    }

    /// The categories whose every stream in the log a command must see, when it cannot
    /// name the streams it needs (a discipline decision needs the other cases of the same
    /// organization or member: their violations restart its time limit). The handler
    /// reads them all from this office's log (one pass over the log: see
    /// `coord_service::references`) and passes them in [`Context::references`]. None by
    /// default.
    fn scans(_command: &Self::Command) -> Vec<&'static str> {
        Vec::new()
    }

    /// Builds the state from a history.
    fn from_history<'e>(events: impl IntoIterator<Item = &'e Self::Event>) -> Self {
        let mut state = Self::default();
        for event in events {
            state.apply(event);
        }
        state
    }
}
