//! The event log: the one place where the system's facts are stored, in order.
//!
//! [`EventLog`] is the storage boundary. It knows streams (one per aggregate instance),
//! optimistic concurrency by expected version, idempotent appends by event id, and a
//! global order that readers can follow from any position (catch-up, then live). It does
//! not know the domain: payloads are JSON, typed decoding belongs to the caller.
//!
//! Backends:
//! - [`jetstream::JetStreamLog`]: NATS JetStream, the production backend;
//! - [`memory::InMemoryLog`]: for domain-level tests only.
//!
//! The trait is shaped so an EventStoreDB/KurrentDB backend fits behind it unchanged:
//! expected version `n` ↔ expected revision `n - 1` (or `NoStream` for 0), global
//! [`EventPosition`] ↔ the `$all` position, event id ↔ `EventData` id.

mod direct;
mod envelope;
mod error;
pub mod jetstream;
pub mod memory;
mod resume;

pub use envelope::{
    AppendOutcome, EventPosition, ExpectedVersion, Metadata, NewEvent, RecordedEvent, StreamId,
    StreamIdError, check_subject, find_commit, office_of, subject_of, validate_batch,
};
pub use error::{LogError, LogErrorKind};
pub use resume::{resuming, resuming_on};

use async_trait::async_trait;
use futures::stream::BoxStream;

/// A subscription to the whole log: recorded events in global order.
///
/// An `Err` of kind [`LogErrorKind::Corrupt`] describes one unreadable entry, and one of
/// kind [`LogErrorKind::SubjectMismatch`] one entry that is not what its subject says;
/// the stream goes on after either. Any other error ends the stream.
pub type Subscription = BoxStream<'static, Result<RecordedEvent, LogError>>;

/// An append-only, ordered store of events, partitioned into streams. A stream belongs
/// to one office: a record is (office, stream), and two offices may hold streams of the
/// same id (picked while cut off from each other), never mixed.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// This log as office `office` writes it: `append` and `read_stream` address that
    /// office's streams only. An unscoped log appends to the office its events name and
    /// reads a stream under every office (for tools and tests; writers scope).
    fn for_office(&self, office: &coord_domain::Office) -> std::sync::Arc<dyn EventLog>;

    /// Appends `events` (all of one office) to `stream` atomically (all or none), if
    /// the stream is at `expected`. A stale writer gets [`LogError::Conflict`]; nothing
    /// is written.
    ///
    /// An append whose first event id is already stored in the stream is a retry: it
    /// writes nothing and returns the original outcome with `duplicate = true`.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError>;

    /// Reads a whole stream, oldest first. A stream that was never written is empty.
    async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError>;

    /// Reads a stream that a command refers to (an exchange a receipt acknowledges, an
    /// inspection a case is based on), under every office: with several offices the
    /// referenced stream may be another office's, sourced into this log under that
    /// office's subjects, and two offices may each have a stream of that id (the caller
    /// tells them apart by the events' `office`, which the log has checked against
    /// where each was stored). Only for references and for "is this id in use": an
    /// aggregate is loaded for writing with [`EventLog::read_stream`] of a scoped log.
    async fn read_reference(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError>;

    /// Follows the whole log from just after `after` (from the start if `None`): first
    /// what is stored, then new events as they are appended. A subscription never
    /// passes from one storage of the log to another: where the backend's delivery
    /// starts over after its first event (JetStream: the consumer was created again,
    /// as after the stream was deleted and recreated), it ends with an error instead,
    /// and the caller resubscribes from its checkpoint, checking the log's
    /// [`EventLog::identity`]. So a reader that checked the identity once it had the
    /// first event knows every later one is from that log.
    async fn subscribe(&self, after: Option<EventPosition>) -> Result<Subscription, LogError>;

    /// The position of the newest event in the log, if any.
    async fn head(&self) -> Result<Option<EventPosition>, LogError>;

    /// What identifies this log's storage, so that a reader keeping positions (the
    /// projector's checkpoint) notices when the log was deleted and recreated, or
    /// replaced by another: positions from one identity mean nothing in another.
    /// `None` when the backend cannot tell (the reader then cannot check).
    async fn identity(&self) -> Result<Option<String>, LogError> {
        Ok(None)
    }

    /// Appends `events` to `stream` if its last commit is still the one at `at` (as
    /// the writer read it): one round trip where the backend can check that itself
    /// (JetStream: `Nats-Expected-Last-Subject-Sequence`), without reading the head
    /// again. Otherwise as [`EventLog::append`] at the expected version `at.version`.
    async fn append_at(
        &self,
        stream: &StreamId,
        at: StreamRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        self.append(stream, at.expected(), events).await
    }
}

/// Where a writer read a stream up to: the position (`commit`) of its last commit, 0
/// for a stream never written, and the stream version after it. An append made "at" a
/// revision fails if anything was appended to the stream since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamRevision {
    pub commit: u64,
    pub version: u64,
}

impl StreamRevision {
    /// The expected version an append at this revision names.
    pub fn expected(self) -> ExpectedVersion {
        match self.version {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v),
        }
    }

    /// The revision after reading `history` (a whole stream, oldest first).
    pub fn of(history: &[RecordedEvent]) -> Self {
        history
            .last()
            .map(|e| Self {
                commit: e.pos().commit,
                version: e.stream_version,
            })
            .unwrap_or_default()
    }
}
