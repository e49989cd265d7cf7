//! What every request goes through: one deadline (the gateway's one timeout setting,
//! `COORD_GATEWAY_TIMEOUT_MS`), and errors produced by the HTTP layer itself (wrong
//! method, body over the limit, an extractor's rejection) turned into RFC 9457 problem
//! documents like every other error, keeping their headers (`Allow` on a 405).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use coord_proto::ErrorKind;

use crate::AppState;
use crate::problem::Problem;

/// Extra time the outer deadline gives over the upstream waits, so that a timed-out
/// wait inside answers with its own, more precise problem first.
const GRACE: Duration = Duration::from_millis(250);
/// How much of a plain-text error body is kept as the problem's detail.
const MAX_DETAIL: usize = 4096;

/// The middleware: deadline, then problem documents for plain errors.
pub async fn guard(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let response = match tokio::time::timeout(s.request_timeout + GRACE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            return Problem::new(
                ErrorKind::Timeout,
                "request_timeout",
                format!(
                    "the request was not answered within {:?}; a command may still have been applied: retry with the same Idempotency-Key",
                    s.request_timeout
                ),
            )
            .into_response();
        }
    };
    as_problem(response, s.max_body_bytes).await
}

/// A problem document already, or one of the console's HTML pages (which explains
/// itself to a person).
fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/problem+json")
                || v.as_bytes().starts_with(b"text/html")
        })
}

/// Turns an error response that is not a problem document yet into one.
async fn as_problem(response: Response, max_body_bytes: usize) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_DETAIL)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let problem = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            Problem::with_status(
                status,
                "method_not_allowed",
                format!("this route does not take that method; allowed: {allow}"),
            )
        }
        StatusCode::PAYLOAD_TOO_LARGE => Problem::with_status(
            status,
            "payload_too_large",
            format!("the request body is over the limit of {max_body_bytes} bytes"),
        ),
        _ => {
            let code = status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
                .replace([' ', '-'], "_");
            let detail = if text.is_empty() { code.clone() } else { text };
            Problem::with_status(status, &code, detail)
        }
    };
    let mut response = problem.into_response();
    // Keep what the original said beyond its body (e.g. `Allow`).
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    for (name, value) in parts.headers.drain().filter_map(|(n, v)| n.map(|n| (n, v))) {
        response.headers_mut().entry(name).or_insert(value);
    }
    response
}
