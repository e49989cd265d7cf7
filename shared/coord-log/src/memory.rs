//! An in-memory [`EventLog`] for domain-level tests. It keeps the same contract as the
//! production backend (the shared contract suite runs against both) but nothing
//! survives the process.
//!
//! Reads and appends yield to the scheduler before they touch the log, as a network
//! round trip would: two commands run concurrently on one task really interleave (both
//! read before either appends), so the tests of lost races exercise what they claim.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::watch;
use uuid::Uuid;

use coord_domain::Office;

use crate::envelope::{office_of, outcome_of, validate_batch};
use crate::{
    AppendOutcome, EventLog, EventPosition, ExpectedVersion, LogError, NewEvent, RecordedEvent,
    StreamId, Subscription,
};

#[derive(Default)]
struct Inner {
    /// Commit n (1-based) is at index n - 1.
    commits: Vec<Vec<RecordedEvent>>,
    /// For each office's stream, the commits that wrote to it.
    streams: HashMap<(Office, StreamId), Vec<usize>>,
    /// Event id → commit index, to recognise a retried append.
    by_event_id: HashMap<Uuid, usize>,
}

/// The in-memory log. Cheap to clone; clones share the same log.
#[derive(Clone)]
pub struct InMemoryLog {
    inner: Arc<Mutex<Inner>>,
    head: Arc<watch::Sender<u64>>,
    /// The office this view appends and loads as ([`EventLog::for_office`]).
    office: Option<Office>,
}

impl Default for InMemoryLog {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            head: Arc::new(watch::channel(0).0),
            office: None,
        }
    }
}

impl InMemoryLog {
    pub fn new() -> Self {
        Self::default()
    }

    fn after(&self, after: Option<EventPosition>) -> Vec<RecordedEvent> {
        let inner = self.inner.lock().expect("log lock");
        let start = after
            .map(|p| p.commit.saturating_sub(1) as usize)
            .unwrap_or(0);
        inner.commits[start.min(inner.commits.len())..]
            .iter()
            .flatten()
            .filter(|e| after.is_none_or(|a| e.pos() > a))
            .cloned()
            .collect()
    }

    /// Every commit of `stream` whose office `keep` accepts, in log order.
    fn read_where(&self, stream: &StreamId, keep: impl Fn(&Office) -> bool) -> Vec<RecordedEvent> {
        let inner = self.inner.lock().expect("log lock");
        let mut commits: Vec<usize> = inner
            .streams
            .iter()
            .filter(|((office, s), _)| s == stream && keep(office))
            .flat_map(|(_, commits)| commits.iter().copied())
            .collect();
        commits.sort_unstable();
        commits
            .iter()
            .flat_map(|&c| inner.commits[c].iter().cloned())
            .collect()
    }
}

#[async_trait]
impl EventLog for InMemoryLog {
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
        let office = office_of(&events[0].metadata.office)?;
        if let Some(own) = self.office.as_ref().filter(|own| **own != office) {
            return Err(LogError::InvalidInput(format!(
                "events of office {office} appended to the log of office {own}"
            )));
        }
        let key = (office, stream.clone());
        tokio::task::yield_now().await;
        let mut inner = self.inner.lock().expect("log lock");
        if let Some(&commit) = inner.by_event_id.get(&events[0].event_id) {
            return Ok(outcome_of(&inner.commits[commit]));
        }
        let actual = inner
            .streams
            .get(&key)
            .and_then(|c| c.last())
            .and_then(|&c| inner.commits[c].last())
            .map(|e| e.stream_version)
            .unwrap_or(0);
        if !expected.accepts(actual) {
            return Err(LogError::Conflict {
                stream: stream.clone(),
                expected,
                actual,
            });
        }
        let commit_index = inner.commits.len();
        let commit_number = commit_index as u64 + 1;
        let mut recorded = RecordedEvent::stamp(stream, actual, Utc::now(), events);
        RecordedEvent::place(&mut recorded, commit_number);
        for e in &recorded {
            inner.by_event_id.insert(e.event_id, commit_index);
        }
        inner.streams.entry(key).or_default().push(commit_index);
        let mut outcome = outcome_of(&recorded);
        outcome.duplicate = false;
        inner.commits.push(recorded);
        drop(inner);
        self.head.send_replace(commit_number);
        Ok(outcome)
    }

    async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
        tokio::task::yield_now().await;
        Ok(self.read_where(stream, |o| self.office.as_ref().is_none_or(|own| own == o)))
    }

    async fn read_reference(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
        tokio::task::yield_now().await;
        Ok(self.read_where(stream, |_| true))
    }

    async fn subscribe(&self, after: Option<EventPosition>) -> Result<Subscription, LogError> {
        let state = (
            self.clone(),
            self.head.subscribe(),
            after,
            VecDeque::<RecordedEvent>::new(),
        );
        let stream = futures::stream::unfold(
            state,
            |(log, mut head, mut cursor, mut buffer)| async move {
                loop {
                    if let Some(event) = buffer.pop_front() {
                        cursor = Some(event.pos());
                        return Some((Ok(event), (log, head, cursor, buffer)));
                    }
                    // Mark the current head as seen before reading, so an append that lands
                    // after this read still wakes us.
                    head.borrow_and_update();
                    buffer.extend(log.after(cursor));
                    if buffer.is_empty() && head.changed().await.is_err() {
                        return None;
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }

    async fn head(&self) -> Result<Option<EventPosition>, LogError> {
        let inner = self.inner.lock().expect("log lock");
        Ok(inner.commits.last().and_then(|c| c.last()).map(|e| e.pos()))
    }
}
