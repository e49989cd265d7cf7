//! Batched direct gets: many commits of one subject (a wildcard too) in one request.
//!
//! A stream is read forward for a cold load, a reference and the search for a retried
//! commit. One direct get per commit makes that a round trip per commit; nats-server
//! 2.11+ answers `{"seq", "next_by_subj", "batch"}` on `$JS.API.DIRECT.GET.<stream>`
//! (ADR-31) with up to `batch` messages, each with `Nats-Num-Pending`, then a status
//! `204 EOB` message. async-nats 0.51 has no call for it, so the request is sent here
//! on an inbox of the caller's own (its inbox prefix, which its permissions allow).
//!
//! A server without batches (before 2.11) ignores the field and answers one message
//! without `Nats-Num-Pending`: that is taken as a page of one, and the reader asks for
//! the next, as it always did. `batch = 0` asks that way on purpose.

use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use async_nats::{Client, StatusCode};
use futures::StreamExt;
use serde::Serialize;

use crate::LogError;

const NUM_PENDING: &str = "Nats-Num-Pending";
/// The status of the message that ends a batch (`204 EOB`).
const END_OF_BATCH: u16 = 204;
/// How long a page may take to arrive, message by message (the JetStream API's own
/// default request timeout).
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct Request<'a> {
    seq: u64,
    next_by_subj: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    batch: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Messages of one request, in stream order.
pub(crate) struct Page {
    pub messages: Vec<StreamMessage>,
    /// Whether the stream may hold more on the subject after the last one given.
    pub more: bool,
}

/// Up to `batch` messages on `subject` from sequence `from` (or one, with `batch` 0 or
/// a server without batches), from stream `stream`.
pub(crate) async fn next_by_subject(
    client: &Client,
    api_prefix: &str,
    stream: &str,
    subject: &str,
    from: u64,
    batch: usize,
) -> Result<Page, LogError> {
    let request = serde_json::to_vec(&Request {
        seq: from,
        next_by_subj: subject,
        batch,
    })
    .expect("a direct get request serializes");
    let inbox = client.new_inbox();
    let mut answers = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| LogError::unavailable("cannot read a stream", e))?;
    client
        .publish_with_reply(
            format!("{api_prefix}.DIRECT.GET.{stream}"),
            inbox,
            request.into(),
        )
        .await
        .map_err(|e| LogError::unavailable("cannot read a stream", e))?;
    let mut messages = Vec::new();
    loop {
        let answer = match tokio::time::timeout(TIMEOUT, answers.next()).await {
            Ok(Some(answer)) => answer,
            Ok(None) => return Err(LogError::Unavailable("a stream read was cut off".into())),
            Err(_) => return Err(LogError::Unavailable("a stream read timed out".into())),
        };
        match answer.status {
            // End of the batch: what it says is still pending after the last given.
            Some(status) if status.as_u16() == END_OF_BATCH => {
                let pending = pending_of(&answer).unwrap_or(0);
                return Ok(Page {
                    messages,
                    more: pending > 0,
                });
            }
            Some(StatusCode::NOT_FOUND) if messages.is_empty() => {
                return Ok(Page {
                    messages,
                    more: false,
                });
            }
            Some(status) if status != StatusCode::OK => {
                return Err(LogError::Unavailable(format!(
                    "a stream read was refused: {status} {}",
                    answer.description.as_deref().unwrap_or_default()
                )));
            }
            _ => {}
        }
        let batched = pending_of(&answer).is_some();
        let message = StreamMessage::try_from(answer)
            .map_err(|e| LogError::unavailable("a stream read gave no stream message", e))?;
        messages.push(message);
        if !batched {
            // One message, as a server without batches answers: ask again after it.
            return Ok(Page {
                messages,
                more: true,
            });
        }
    }
}

fn pending_of(message: &async_nats::Message) -> Option<u64> {
    message
        .headers
        .as_ref()?
        .get(NUM_PENDING)?
        .as_str()
        .parse()
        .ok()
}
