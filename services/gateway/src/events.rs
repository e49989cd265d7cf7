//! `GET /v1/events`: the live event stream as server-sent events. Each SSE `id` is the
//! event's `commit:index`.
//!
//! Where it starts: just after `Last-Event-ID` (a client reconnecting resumes exactly
//! where it stopped, even inside a multi-event commit); else just after commit `after`;
//! else at the log's head, live only (a client that wants history asks for it).
//! Open streams are capped (`COORD_GATEWAY_MAX_STREAMS`; one more is a 503 problem)
//! and end when the gateway shuts down, so they never hold a graceful shutdown back.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use coord_log::{EventPosition, LogError};
use futures::{Stream, StreamExt};
use serde::Deserialize;

use crate::AppState;
use crate::problem::Problem;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Start after this log position (commit). Without it (and without a
    /// `Last-Event-ID` header) the stream starts at the head: new events only.
    pub after: Option<u64>,
}

/// A `Last-Event-ID` value: the `commit:index` of the last event the client received.
fn last_event_id(headers: &HeaderMap) -> Result<Option<EventPosition>, Problem> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let bad = || {
        Problem::malformed(
            "bad_last_event_id",
            format!("Last-Event-ID must be an event id `commit:index` as sent, got {value:?}"),
        )
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    let (commit, index) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some(EventPosition {
        commit: commit.parse().map_err(|_| bad())?,
        index: index.parse().map_err(|_| bad())?,
    }))
}

/// Where the stream starts: just after the returned position, or from the start (`None`).
async fn start(
    s: &AppState,
    resume: Option<EventPosition>,
    after: Option<u64>,
) -> Result<Option<EventPosition>, Problem> {
    if let Some(resume) = resume {
        return Ok(Some(resume));
    }
    if let Some(commit) = after {
        return Ok(Some(EventPosition {
            commit,
            index: u64::MAX,
        }));
    }
    // Live only: after the head as it is now (an empty log has nothing to skip).
    s.log
        .head()
        .await
        .map_err(|e| Problem::unavailable("log_unavailable", e.to_string()))
}

fn to_sse(item: Result<coord_log::RecordedEvent, LogError>) -> Result<Event, Infallible> {
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
}

/// Follow the event log (server-sent events: `data` is the recorded event as JSON).
#[utoipa::path(get, path = "/v1/events", params(EventsParams,
        ("Last-Event-ID" = Option<String>, Header, description = "resume just after this event id (`commit:index`)")),
    tag = "events",
    responses((status = 200, content_type = "text/event-stream", description = "one SSE per event"),
        (status = 400, body = Problem), (status = 503, body = Problem, description = "log unavailable, or too many open streams")))]
pub async fn events(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<EventsParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let Query(p) = q.map_err(|e| Problem::malformed("bad_query", e.body_text()))?;
    follow(s, &headers, p.after, to_sse).await
}

/// The web console's signal that the log moved: an unnamed event (what a page's
/// `EventSource.onmessage` hears) whose id is the position and whose data is the
/// event type; the page reads the rest itself.
fn to_signal(item: Result<coord_log::RecordedEvent, LogError>) -> Result<Event, Infallible> {
    Ok(match item {
        Ok(event) => Event::default()
            .id(event.pos().to_string())
            .data(event.event_type),
        Err(LogError::Corrupt { position, .. }) => {
            Event::default().id(position.to_string()).data("unreadable")
        }
        Err(other) => Event::default().event("error").data(other.to_string()),
    })
}

/// `GET /live` of the console: new events only, as [`to_signal`]s.
pub async fn signals(
    s: AppState,
    headers: &HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, Problem> {
    follow(s, headers, None, to_signal).await
}

/// The log from `after` (or the `Last-Event-ID` the client resumes from, or the head
/// as it is now), each entry as `encode` makes it, within the gateway's stream limit.
async fn follow(
    s: AppState,
    headers: &HeaderMap,
    after: Option<u64>,
    encode: fn(Result<coord_log::RecordedEvent, LogError>) -> Result<Event, Infallible>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, Problem> {
    let resume = last_event_id(headers)?;
    let permit = s.streams.clone().try_acquire_owned().map_err(|_| {
        s.metrics.sse_refused.inc();
        Problem::unavailable(
            "too_many_streams",
            "the gateway serves as many event streams as it is configured for; retry later",
        )
    })?;
    let after = start(&s, resume, after).await?;
    let subscription = s
        .log
        .subscribe(after)
        .await
        .map_err(|e| Problem::unavailable("log_unavailable", e.to_string()))?;
    s.metrics.sse_opened.inc();
    let shutdown = s.shutdown.clone().cancelled_owned();
    let stream = subscription
        .take_while(|item| {
            futures::future::ready(
                !matches!(item, Err(e) if e.kind() != coord_log::LogErrorKind::Corrupt),
            )
        })
        .take_until(shutdown)
        .map(move |item| {
            // The permit lives as long as the stream: one open stream, one permit.
            let _held = &permit;
            encode(item)
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
