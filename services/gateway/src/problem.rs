//! Errors as RFC 9457 problem documents (`application/problem+json`), each with a stable
//! machine-readable `code` and the error class `kind`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coord_proto::{ErrorKind, ErrorReply};
use serde::Serialize;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:coord:problem:{code}`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `removal_from_post_requires_post`.
    pub code: String,
    pub kind: ErrorKind,
}

impl Problem {
    pub fn new(kind: ErrorKind, code: &str, detail: impl Into<String>) -> Self {
        let title = match kind {
            ErrorKind::Malformed => "Malformed request",
            ErrorKind::NotFound => "Not found",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::InvalidTransition => "Invalid state transition",
            ErrorKind::RuleViolation => "Domain rule violated",
            ErrorKind::Unavailable => "Service unavailable",
            ErrorKind::Timeout => "Timed out",
            ErrorKind::Internal => "Internal error",
            ErrorKind::Unauthorized => "Unauthorized",
            ErrorKind::Forbidden => "Forbidden",
        };
        Self {
            problem_type: format!("urn:coord:problem:{code}"),
            title: title.into(),
            status: kind.http_status(),
            detail: detail.into(),
            code: code.into(),
            kind,
        }
    }

    /// A problem for an HTTP-level status that has no error class of its own (405, 413),
    /// titled by the status's reason phrase.
    pub fn with_status(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            problem_type: format!("urn:coord:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.into(),
            kind: if status.is_server_error() {
                ErrorKind::Internal
            } else {
                ErrorKind::Malformed
            },
        }
    }

    pub fn malformed(code: &str, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Malformed, code, detail)
    }

    pub fn unavailable(code: &str, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, code, detail)
    }
}

impl From<ErrorReply> for Problem {
    fn from(e: ErrorReply) -> Self {
        Self::new(e.kind, &e.code, e.message)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}
