//! `GET /v1/events`: the live event stream as server-sent events, from any position
//! (catch-up, then live). Each SSE `id` is the event's `commit:index`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use coord_log::{EventPosition, LogError};
use futures::{Stream, StreamExt};
use serde::Deserialize;

use crate::AppState;
use crate::problem::Problem;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Start after this log position (commit); from the beginning if absent.
    pub after: Option<u64>,
}

/// Follow the event log (server-sent events: `data` is the recorded event as JSON).
#[utoipa::path(get, path = "/v1/events", params(EventsParams), tag = "events",
    responses((status = 200, content_type = "text/event-stream", description = "one SSE per event"), (status = 503, body = Problem)))]
pub async fn events(
    State(s): State<AppState>,
    q: Result<Query<EventsParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let Query(p) = q.map_err(|e| Problem::malformed("bad_query", e.body_text()))?;
    let after = p.after.map(|commit| EventPosition {
        commit,
        index: u64::MAX,
    });
    let subscription = s
        .log
        .subscribe(after)
        .await
        .map_err(|e| Problem::unavailable("log_unavailable", e.to_string()))?;
    let stream = subscription
        .take_while(|item| {
            futures::future::ready(
                !matches!(item, Err(e) if e.kind() != coord_log::LogErrorKind::Corrupt),
            )
        })
        .map(|item| {
            Ok(match item {
                Ok(event) => Event::default()
                    .id(event.pos().to_string())
                    .event(event.event_type.clone())
                    .json_data(&event)
                    .unwrap_or_else(|_| Event::default().event("error")),
                Err(LogError::Corrupt { position, reason }) => Event::default()
                    .id(position.to_string())
                    .event("unreadable")
                    .data(reason),
                Err(other) => Event::default().event("error").data(other.to_string()),
            })
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
