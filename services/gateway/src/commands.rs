//! Command routes: one per entry of `coord_proto::ROUTES`. The gateway adds who (from
//! the caller's token, see [`crate::auth`]) and which idempotency key, checks the id in the path against the body, forwards over NATS
//! and turns the answer into HTTP.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use coord_proto::{Accepted, CommandReply, CommandRequest, Route, command_subject};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, authorize_command};
use crate::nats::ask;
use crate::problem::Problem;

/// A header as text. UTF-8 is accepted (actors and offices have Vietnamese names).
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Problem> {
    headers
        .get(name)
        .map(|v| {
            std::str::from_utf8(v.as_bytes()).map_err(|_| {
                Problem::malformed("bad_header", format!("header {name} is not UTF-8"))
            })
        })
        .transpose()
}

/// The command id: the `Idempotency-Key` header (see `coord_proto::ids::command_id_from_key`:
/// a UUID, or any string scoped by the office), or `command_id` in the body, or a new one.
fn command_id(
    headers: &HeaderMap,
    office: &str,
    body: &mut serde_json::Map<String, Value>,
) -> Result<Uuid, Problem> {
    let from_header = header(headers, "idempotency-key")?
        .map(|k| {
            let k = k.trim();
            if k.is_empty() || k.len() > 200 {
                return Err(Problem::malformed(
                    "bad_idempotency_key",
                    "Idempotency-Key must be 1 to 200 characters",
                ));
            }
            Ok(coord_proto::ids::command_id_from_key(office, k))
        })
        .transpose()?;
    let from_body = match body.remove("command_id") {
        None => None,
        Some(Value::String(s)) => Some(
            Uuid::try_parse(&s)
                .map_err(|_| Problem::malformed("bad_command_id", "`command_id` must be a UUID"))?,
        ),
        Some(_) => {
            return Err(Problem::malformed(
                "bad_command_id",
                "`command_id` must be a UUID string",
            ));
        }
    };
    match (from_header, from_body) {
        (Some(h), Some(b)) if h != b => Err(Problem::malformed(
            "idempotency_key_mismatch",
            "Idempotency-Key and command_id differ",
        )),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => Ok(Uuid::now_v7()),
    }
}

/// `If-Match: "3"` pins the aggregate version the command expects.
fn expected_version(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    header(headers, "if-match")?
        .map(|v| {
            v.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .parse()
                .map_err(|_| {
                    Problem::malformed(
                        "bad_if_match",
                        "If-Match must be the aggregate version, e.g. \"3\"",
                    )
                })
        })
        .transpose()
}

/// Handles `POST` on one command route, counted and timed in the metrics.
pub async fn handle(
    state: AppState,
    caller: Caller,
    route: &'static Route,
    path_id: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    // A reader is refused before its body is read, as by `execute`.
    let accepted = match authorize_command(&caller).and_then(|()| json_object(&body)) {
        Ok(payload) => execute(&state, caller, route, path_id, &headers, payload).await?,
        Err(problem) => {
            let endpoint = format!("{}.{}", route.service, route.endpoint);
            let started = std::time::Instant::now();
            state
                .metrics
                .command(&endpoint, problem.kind.as_str(), started);
            return Err(problem);
        }
    };
    let status = if !route.id_in_path && !accepted.duplicate {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, axum::Json(&accepted)).into_response();
    response.headers_mut().insert(
        "etag",
        format!("\"{}\"", accepted.stream_version)
            .parse()
            .expect("valid"),
    );
    Ok(response)
}

/// The one command path, for the API and the console alike: checks the caller and the
/// command, sends it to its service, and counts and times the answer in the metrics.
pub async fn execute(
    state: &AppState,
    caller: Caller,
    route: &'static Route,
    path_id: Option<String>,
    headers: &HeaderMap,
    payload: serde_json::Map<String, Value>,
) -> Result<Accepted, Problem> {
    let started = std::time::Instant::now();
    let result = send(state, caller, route, path_id, headers, payload).await;
    let outcome = match &result {
        Ok(accepted) if accepted.duplicate => "duplicate".to_owned(),
        Ok(_) => "accepted".to_owned(),
        Err(problem) => problem.kind.as_str().to_owned(),
    };
    let endpoint = format!("{}.{}", route.service, route.endpoint);
    state.metrics.command(&endpoint, &outcome, started);
    result
}

fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Problem> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Problem::malformed("malformed_json", format!("the body is not valid JSON: {e}"))
    })?;
    match value {
        Value::Object(payload) => Ok(payload),
        _ => Err(Problem::malformed(
            "malformed_json",
            "the body must be a JSON object",
        )),
    }
}

/// Checks and completes the command, and sends it to its service.
async fn send(
    state: &AppState,
    caller: Caller,
    route: &'static Route,
    path_id: Option<String>,
    headers: &HeaderMap,
    mut payload: serde_json::Map<String, Value>,
) -> Result<Accepted, Problem> {
    authorize_command(&caller)?;
    let office = caller.0.office.to_string();
    let command_id = command_id(headers, &office, &mut payload)?;
    let id_field = route.id_field;
    match (&path_id, payload.get(id_field)) {
        (Some(path), body_id) => {
            let id = Uuid::try_parse(path).map_err(|_| {
                Problem::malformed("bad_id", format!("`{path}` in the path is not a UUID"))
            })?;
            if let Some(body_id) = body_id
                && body_id.as_str() != Some(id.to_string().as_str())
            {
                return Err(Problem::malformed(
                    "id_mismatch",
                    format!("`{id_field}` in the body differs from the path"),
                ));
            }
            payload.insert(id_field.into(), Value::String(id.to_string()));
        }
        (None, None) => {
            // A new aggregate without a client-chosen id: derive it from the command id,
            // so a retry with the same Idempotency-Key addresses the same aggregate.
            let id = coord_proto::ids::new_aggregate_id(command_id);
            payload.insert(id_field.into(), Value::String(id.to_string()));
        }
        (None, Some(_)) => {}
    }
    let payload = Value::Object(payload);
    let request = CommandRequest {
        command_id,
        correlation_id: None,
        office: caller.0.office.to_string(),
        actor: caller.0.actor.clone(),
        role: Some(caller.0.role.to_string()),
        expected_version: expected_version(headers)?,
        payload,
    };
    let subject = command_subject(route.service, route.endpoint);
    match ask::<_, CommandReply>(&state.nats, subject, &request, state.request_timeout).await? {
        CommandReply::Accepted(accepted) => Ok(accepted),
        CommandReply::Error(e) => Err(e.into()),
    }
}

/// Builds the router of every command route.
pub fn router() -> axum::Router<AppState> {
    let mut router = axum::Router::new();
    for route in coord_proto::ROUTES {
        router = if route.id_in_path {
            router.route(
                route.path,
                axum::routing::post(
                    move |State(s): State<AppState>,
                          Extension(c): Extension<Caller>,
                          Path(id): Path<String>,
                          h: HeaderMap,
                          b: Bytes| { handle(s, c, route, Some(id), h, b) },
                ),
            )
        } else {
            router.route(
                route.path,
                axum::routing::post(
                    move |State(s): State<AppState>,
                          Extension(c): Extension<Caller>,
                          h: HeaderMap,
                          b: Bytes| { handle(s, c, route, None, h, b) },
                ),
            )
        };
    }
    router
}
