//! Request/reply to the command services and the projector, with bounded waits and
//! NATS failures mapped to 503 problems.

use std::time::Duration;

use async_nats::RequestErrorKind;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Sends `body` to `subject` and decodes the JSON answer.
pub async fn ask<B: Serialize, T: DeserializeOwned>(
    client: &async_nats::Client,
    subject: String,
    body: &B,
    timeout: Duration,
) -> Result<T, Problem> {
    let payload = serde_json::to_vec(body).expect("requests serialize");
    let answer = tokio::time::timeout(timeout, client.request(subject.clone(), payload.into()))
        .await
        .map_err(|_| {
            Problem::unavailable(
                "upstream_timeout",
                format!("no answer on {subject} within {timeout:?}; a command may still have been applied: retry with the same Idempotency-Key"),
            )
        })?
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => {
                Problem::unavailable("service_unavailable", format!("no service answers on {subject}"))
            }
            RequestErrorKind::TimedOut => Problem::unavailable("upstream_timeout", format!("{subject}: {e}")),
            RequestErrorKind::MaxPayloadExceeded => Problem::malformed("payload_too_large", format!("{subject}: {e}")),
            _ => Problem::unavailable("nats_unavailable", format!("{subject}: {e}")),
        })?;
    serde_json::from_slice(&answer.payload).map_err(|e| {
        Problem::new(
            coord_proto::ErrorKind::Internal,
            "bad_upstream_answer",
            format!("{subject}: {e}"),
        )
    })
}
