//! The analytics event feed: every recorded event as a CloudEvents 1.0 structured-mode
//! JSON event, with a JSON Schema (2020-12) per event type and version.
//!
//! Why a crate of its own: the gateway serves the feed and the schemas, `coordctl`
//! reads and re-imports exports, and the tests validate both against the committed
//! schemas; all of them must agree on one envelope and one naming scheme.
//!
//! - [`catalog`]: the event types, their CloudEvents `type` names and their schemas,
//!   generated from the domain's Rust types with schemars and committed under
//!   `shared/coord-feed/schemas/` (regenerate with `cargo run -p coord-feed --bin gen-schemas`).
//! - [`cloudevent`]: the envelope, from a [`coord_log::RecordedEvent`] and back.

pub mod catalog;
pub mod cloudevent;
pub mod table;

pub use catalog::{EventTypeInfo, catalog, committed_schema, current_payload, schema_index};
pub use cloudevent::{CloudEvent, FeedError, ImportedEvent};

/// The media type of one structured-mode CloudEvent.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";
/// The media type of the CloudEvents JSON batch format (a JSON array of events).
pub const CLOUDEVENTS_BATCH: &str = "application/cloudevents-batch+json";
/// Newline-delimited JSON: one CloudEvent per line.
pub const NDJSON: &str = "application/x-ndjson";
