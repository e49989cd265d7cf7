//! One error type for every log operation, with a small [`LogErrorKind`] to match on.

use crate::{EventPosition, ExpectedVersion, StreamId};

/// The classes of log failure a caller treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogErrorKind {
    /// Optimistic concurrency: another writer got there first. Reload and decide again.
    Conflict,
    /// The request itself is wrong (empty batch, bad ids). Retrying will not help.
    InvalidInput,
    /// The backend cannot be reached or did not answer. Retrying may help.
    Unavailable,
    /// A stored entry cannot be read. Only ever for that entry.
    Corrupt,
    /// A stored entry is readable but is not what its subject says (another office's
    /// stream put on an office's subjects): never applied. Only ever for that entry.
    SubjectMismatch,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("conflict on stream {stream}: expected {expected:?}, stream is at version {actual}")]
    Conflict {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: u64,
    },
    #[error("invalid append: {0}")]
    InvalidInput(String),
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    #[error("unreadable log entry at {position}: {reason}")]
    Corrupt {
        position: EventPosition,
        reason: String,
    },
    #[error("log entry at {position} on `{subject}` is not what its subject says: {reason}")]
    SubjectMismatch {
        position: EventPosition,
        subject: String,
        reason: String,
    },
}

impl LogError {
    pub fn kind(&self) -> LogErrorKind {
        match self {
            LogError::Conflict { .. } => LogErrorKind::Conflict,
            LogError::InvalidInput(_) => LogErrorKind::InvalidInput,
            LogError::Unavailable(_) => LogErrorKind::Unavailable,
            LogError::Corrupt { .. } => LogErrorKind::Corrupt,
            LogError::SubjectMismatch { .. } => LogErrorKind::SubjectMismatch,
        }
    }

    pub(crate) fn unavailable(what: &str, err: impl std::fmt::Display) -> Self {
        LogError::Unavailable(format!("{what}: {err}"))
    }
}
