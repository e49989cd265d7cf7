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

/// Where an entry stands: an event's position, or an unreadable entry's commit (after
/// every index of it).
fn position_of(entry: &Result<RecordedEvent, LogError>) -> Option<EventPosition> {
    match entry {
        Ok(e) => Some(e.pos()),
        Err(LogError::Corrupt { position, .. } | LogError::SubjectMismatch { position, .. }) => {
            Some(EventPosition {
                commit: position.commit,
                index: u64::MAX,
            })
        }
        Err(_) => None,
    }
}

struct State {
    log: Arc<dyn EventLog>,
    identity: Option<Option<String>>,
    subscription: Option<Subscription>,
    /// The last entry given.
    seen: Option<EventPosition>,
    failures: u32,
    ended: bool,
}

impl State {
    /// Subscribes from just after the last entry given, if the log is still the one
    /// first subscribed to.
    async fn subscribe(&mut self) -> Result<Subscription, LogError> {
        let now = self.log.identity().await?;
        match &self.identity {
            None => self.identity = Some(now),
            Some(first) if *first == now => {}
            Some(first) => {
                self.ended = true;
                return Err(LogError::Unavailable(format!(
                    "the log was replaced while it was read (it was {}, it is {})",
                    first.as_deref().unwrap_or("unknown"),
                    now.as_deref().unwrap_or("unknown")
                )));
            }
        }
        self.log.subscribe(self.seen).await
    }

    /// The next entry to give, `None` at the end.
    async fn next(&mut self) -> Option<Result<RecordedEvent, LogError>> {
        loop {
            if self.ended {
                return None;
            }
            let Some(subscription) = self.subscription.as_mut() else {
                match self.subscribe().await {
                    Ok(s) => self.subscription = Some(s),
                    Err(e) => {
                        if let Some(e) = self.failed(e).await {
                            return Some(Err(e));
                        }
                    }
                }
                continue;
            };
            let entry = subscription.next().await?;
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
                        self.subscription = None;
                        if let Some(e) = self.failed(e).await {
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
    let mut state = State {
        log,
        identity: None,
        subscription: None,
        seen: after,
        failures: 0,
        ended: false,
    };
    state.subscription = Some(state.subscribe().await?);
    Ok(futures::stream::unfold(state, |mut state| async move {
        let entry = state.next().await?;
        Some((entry, state))
    })
    .boxed())
}
