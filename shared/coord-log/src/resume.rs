//! A subscription that survives the backend's interruptions without ever passing to
//! another log. [`EventLog::subscribe`] ends with an `Unavailable` error when its
//! delivery cannot go on as it was (the connection lost, JetStream's consumer created
//! again, as after a server restart or a replaced stream). A reader that has no
//! checkpoint of its own to resume from (an export, a scrub, an offline rebuild) uses
//! [`resuming`]: it subscribes again from just after the last entry it gave, after
//! checking that the log's identity is still the one it started with, so the reader
//! sees one unbroken sequence of one log, or an error.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::{EventLog, EventPosition, LogError, LogErrorKind, RecordedEvent, Subscription};

/// Resubscriptions in a row (with no entry between them) before the error is given.
const ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where an entry stands: an event's position, or an unreadable entry's own.
fn position_of(entry: &Result<RecordedEvent, LogError>) -> Option<EventPosition> {
    match entry {
        Ok(e) => Some(e.pos()),
        Err(LogError::Corrupt { position, .. } | LogError::SubjectMismatch { position, .. }) => {
            Some(*position)
        }
        Err(_) => None,
    }
}

struct State {
    log: Arc<dyn EventLog>,
    /// The log's identity when the reading began.
    identity: Option<String>,
    subscription: Option<Subscription>,
    /// Whether the subscription gave nothing yet: its first entry is given only after
    /// an identity check begun once it arrived (`EventLog::subscribe`).
    unchecked: bool,
    /// The last entry given.
    seen: Option<EventPosition>,
    failures: u32,
    ended: bool,
}

impl State {
    /// Whether the log is still the one the reading began with; an error that ends
    /// the reading if not.
    async fn check_identity(&mut self) -> Result<(), LogError> {
        let now = self.log.identity().await?;
        if now == self.identity {
            return Ok(());
        }
        self.ended = true;
        Err(LogError::Unavailable(format!(
            "the log was replaced while it was read (it was {}, it is {})",
            self.identity.as_deref().unwrap_or("unknown"),
            now.as_deref().unwrap_or("unknown")
        )))
    }

    /// Subscribes from just after the last entry given.
    async fn subscribe(&mut self) -> Result<(), LogError> {
        self.subscription = Some(self.log.subscribe(self.seen).await?);
        self.unchecked = true;
        Ok(())
    }

    /// Drops the subscription after `e`: the error to give (and end with), or `None`
    /// to subscribe again.
    async fn interrupted(&mut self, e: LogError) -> Option<LogError> {
        self.subscription = None;
        self.failed(e).await
    }

    /// The next entry to give, `None` at the end.
    async fn next(&mut self) -> Option<Result<RecordedEvent, LogError>> {
        loop {
            if self.ended {
                return None;
            }
            let Some(subscription) = self.subscription.as_mut() else {
                // Again, and only on the same log (a replaced one would be found at its
                // first entry too, but an empty one would keep the reader waiting).
                let again = match self.check_identity().await {
                    Ok(()) => self.subscribe().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = again
                    && let Some(e) = self.interrupted(e).await
                {
                    return Some(Err(e));
                }
                continue;
            };
            let entry = match subscription.next().await {
                Some(entry) => entry,
                // Not the log's end (a subscription waits for new entries): its client
                // closed. Subscribed again, or an error; never a quiet end.
                None => {
                    let ended = LogError::Unavailable("the log's subscription ended".into());
                    if let Some(e) = self.interrupted(ended).await {
                        return Some(Err(e));
                    }
                    continue;
                }
            };
            if std::mem::take(&mut self.unchecked)
                && let Err(e) = self.check_identity().await
            {
                if let Some(e) = self.interrupted(e).await {
                    return Some(Err(e));
                }
                continue;
            }
            match position_of(&entry) {
                // Given before the interruption: the new subscription starts at the
                // last commit given, and gives its unreadable entries again.
                Some(at) if self.seen.is_some_and(|seen| at <= seen) => {}
                Some(at) => {
                    self.seen = Some(at);
                    self.failures = 0;
                    return Some(entry);
                }
                None => match entry {
                    Err(e) if e.kind() == LogErrorKind::Unavailable => {
                        if let Some(e) = self.interrupted(e).await {
                            return Some(Err(e));
                        }
                    }
                    other => return Some(other),
                },
            }
        }
    }

    /// After a failure: waits before the next attempt, or gives the error (and ends)
    /// once the attempts are used up or the log was replaced.
    async fn failed(&mut self, e: LogError) -> Option<LogError> {
        self.failures += 1;
        if self.ended || self.failures > ATTEMPTS {
            self.ended = true;
            return Some(e);
        }
        tracing::debug!(error = %e, attempt = self.failures, "resubscribing to the log");
        let backoff = (FIRST_BACKOFF * 2u32.pow(self.failures - 1)).min(MAX_BACKOFF);
        tokio::time::sleep(backoff).await;
        None
    }
}

/// Follows `log` from just after `after` like [`EventLog::subscribe`], subscribing again
/// from just after the last entry given when the subscription fails (`Unavailable`),
/// up to [`ATTEMPTS`] times in a row, as long as the log's identity is unchanged. Ends
/// with the error once the attempts are used up, or when the log was replaced. The
/// first subscription is made here: its failure is this call's.
pub async fn resuming(
    log: Arc<dyn EventLog>,
    after: Option<EventPosition>,
) -> Result<Subscription, LogError> {
    let identity = log.identity().await?;
    resuming_on(log, after, identity).await
}

/// [`resuming`], held to the log whose identity is `identity` (as the caller read it
/// when it began, also for resubscribing of its own): another log ends it with an
/// error.
pub async fn resuming_on(
    log: Arc<dyn EventLog>,
    after: Option<EventPosition>,
    identity: Option<String>,
) -> Result<Subscription, LogError> {
    let mut state = State {
        log,
        identity,
        subscription: None,
        unchecked: false,
        seen: after,
        failures: 0,
        ended: false,
    };
    state.subscribe().await?;
    Ok(futures::stream::unfold(state, |mut state| async move {
        let entry = state.next().await?;
        Some((entry, state))
    })
    .boxed())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use uuid::Uuid;

    use super::*;
    use crate::memory::InMemoryLog;
    use crate::{AppendOutcome, ExpectedVersion, Metadata, NewEvent, StreamId};

    /// The in-memory log, whose first subscription ends quietly after two entries (as
    /// a subscription whose client closed).
    struct Interrupted {
        inner: InMemoryLog,
        subscriptions: AtomicUsize,
    }

    #[async_trait]
    impl EventLog for Interrupted {
        fn for_office(&self, office: &coord_domain::Office) -> Arc<dyn EventLog> {
            self.inner.for_office(office)
        }
        async fn append(
            &self,
            stream: &StreamId,
            expected: ExpectedVersion,
            events: Vec<NewEvent>,
        ) -> Result<AppendOutcome, LogError> {
            self.inner.append(stream, expected, events).await
        }
        async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
            self.inner.read_stream(stream).await
        }
        async fn read_reference(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
            self.inner.read_reference(stream).await
        }
        async fn subscribe(&self, after: Option<EventPosition>) -> Result<Subscription, LogError> {
            let subscription = self.inner.subscribe(after).await?;
            Ok(match self.subscriptions.fetch_add(1, Ordering::SeqCst) {
                0 => subscription.take(2).boxed(),
                _ => subscription,
            })
        }
        async fn head(&self) -> Result<Option<EventPosition>, LogError> {
            self.inner.head().await
        }
    }

    fn event(kind: &str) -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: kind.into(),
            schema_version: 1,
            occurred_at: "2022-06-15".parse().unwrap(),
            payload: serde_json::json!({}),
            metadata: Metadata {
                role: None,
                office: "province".into(),
                actor: "test".into(),
                correlation_id: Uuid::now_v7(),
                causation_id: Uuid::now_v7(),
            },
        }
    }

    #[tokio::test]
    async fn a_subscription_that_ends_midway_through_a_commit_is_read_on_each_entry_once() {
        let log = Arc::new(Interrupted {
            inner: InMemoryLog::new(),
            subscriptions: AtomicUsize::new(0),
        });
        let stream = |n: u32| StreamId::new("inspection", Uuid::from_u128(n.into())).unwrap();
        let three = vec![event("A"), event("B"), event("C")];
        log.append(&stream(1), ExpectedVersion::NoStream, three)
            .await
            .unwrap();
        log.append(&stream(2), ExpectedVersion::NoStream, vec![event("D")])
            .await
            .unwrap();
        let mut read = resuming(log.clone(), None).await.unwrap();
        let mut kinds = Vec::new();
        for _ in 0..4 {
            let next = tokio::time::timeout(Duration::from_secs(10), read.next()).await;
            kinds.push(next.unwrap().unwrap().unwrap().event_type);
        }
        assert_eq!(kinds, ["A", "B", "C", "D"]);
        assert_eq!(
            log.subscriptions.load(Ordering::SeqCst),
            2,
            "subscribed again"
        );
    }
}
