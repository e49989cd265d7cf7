//! Request/reply to the command services and the projector, with bounded waits and
//! NATS failures mapped to problems: 503 when nothing answers, 504 when no answer came
//! in time. The wait is the caller's (the gateway's one timeout setting), given to the
//! NATS client on each request, so the client's own default (10 s) never caps it.

use std::time::Duration;

use async_nats::RequestErrorKind;
use coord_proto::ErrorKind;
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
    let timed_out = || {
        Problem::new(
            ErrorKind::Timeout,
            "upstream_timeout",
            format!(
                "no answer on {subject} within {timeout:?}; a command may still have been applied: retry with the same Idempotency-Key"
            ),
        )
    };
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(timeout));
    let answer = tokio::time::timeout(timeout, client.send_request(subject.clone(), request))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => Problem::unavailable(
                "service_unavailable",
                format!("no service answers on {subject}"),
            ),
            RequestErrorKind::TimedOut => timed_out(),
            RequestErrorKind::MaxPayloadExceeded => {
                Problem::malformed("payload_too_large", format!("{subject}: {e}"))
            }
            _ => Problem::unavailable("nats_unavailable", format!("{subject}: {e}")),
        })?;
    serde_json::from_slice(&answer.payload).map_err(|e| {
        Problem::new(
            ErrorKind::Internal,
            "bad_upstream_answer",
            format!("{subject}: {e}"),
        )
    })
}
