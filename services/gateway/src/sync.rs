//! `GET /v1/sync`: how this office's log hears from the others. In the multi-office
//! topology (`coordctl offices`) the hub's log sources every office's stream and each
//! office's log sources the hub's; for each source this reports whether the link is up,
//! how long since it last heard from it, and the local position of the last event
//! received from it. A source's `lag` stays 0 during an outage while its `active` age
//! grows, so the link is judged by that age. On a single server there are no sources.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::AppState;
use crate::problem::Problem;

/// Longer than this without hearing from a source means its link is down (sourcing
/// consumers send idle heartbeats while the link is up).
pub const LINK_DOWN_AFTER: Duration = Duration::from_secs(10);

/// One origin this office's log receives from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SourceStatus {
    /// The office it comes from (`province` for the hub).
    pub from: String,
    /// Heard from within [`LINK_DOWN_AFTER`].
    pub link_up: bool,
    /// Milliseconds since it was last heard from; `null` if never.
    pub last_heard_ms: Option<u64>,
    /// Messages known to be waiting at the origin (0 while the link is down).
    pub lag: u64,
    /// Local log position of the newest event received from it, if any.
    pub last_position: Option<u64>,
}

/// This office's log and its sources.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncStatus {
    /// The local log's newest position.
    pub head: u64,
    /// Milliseconds after which a silent source counts as cut off.
    pub link_down_after_ms: u64,
    pub sources: Vec<SourceStatus>,
}

fn unavailable(e: impl std::fmt::Display) -> Problem {
    Problem::unavailable(
        "log_unavailable",
        format!("cannot read the log's sources: {e}"),
    )
}

/// The office a source comes from: a source of one office's subjects
/// (`coord.log.<office>.>`) names it; one of several offices' subjects is the hub.
fn origin(subjects: &[String], prefix: &str) -> String {
    let [only] = subjects else {
        return "province".into();
    };
    Some(only.as_str())
        .and_then(|f| f.strip_prefix(prefix))
        .and_then(|rest| rest.trim_start_matches('.').split('.').next())
        .filter(|o| !o.is_empty() && *o != ">")
        .unwrap_or("province")
        .to_owned()
}

/// The subjects a source brings in: its filter, or its transforms' sources (the
/// multi-office topology uses transforms: durable sources take no filter).
fn source_subjects(info: &async_nats::jetstream::stream::SourceInfo) -> Vec<String> {
    match &info.filter_subject {
        Some(f) if !f.is_empty() => vec![f.clone()],
        _ => info
            .subject_transforms
            .iter()
            .map(|t| t.source.clone())
            .collect(),
    }
}

#[utoipa::path(get, path = "/v1/sync", tag = "operations",
    responses((status = 200, body = SyncStatus), (status = 503, body = Problem)))]
pub async fn sync(State(s): State<AppState>) -> Result<Json<SyncStatus>, Problem> {
    Ok(Json(status(&s).await?))
}

/// This office's log and how it hears from each source (also read by `/metrics`).
pub async fn status(s: &AppState) -> Result<SyncStatus, Problem> {
    let js = async_nats::jetstream::new(s.nats.clone());
    let mut stream = js.get_stream(&s.log_stream).await.map_err(unavailable)?;
    let info = stream.info().await.map_err(unavailable)?.clone();
    let mut sources = Vec::new();
    for source in &info.sources {
        let subjects = source_subjects(source);
        let mut last_position = None;
        for subject in &subjects {
            if let Ok(m) = stream.get_last_raw_message_by_subject(subject).await {
                last_position = last_position.max(Some(m.sequence));
            }
        }
        sources.push(SourceStatus {
            from: origin(&subjects, coord_domain::LOG_SUBJECT_ROOT),
            link_up: source.active.is_some_and(|a| a < LINK_DOWN_AFTER),
            last_heard_ms: source
                .active
                .map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
            lag: source.lag,
            last_position,
        });
    }
    Ok(SyncStatus {
        head: info.state.last_sequence,
        link_down_after_ms: u64::try_from(LINK_DOWN_AFTER.as_millis()).unwrap_or(u64::MAX),
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_of_one_offices_subjects_is_named_after_it_and_the_hubs_is_province() {
        let one = |s: &str| vec![s.to_owned()];
        assert_eq!(
            origin(&one("coord.log.long-xuyen.>"), "coord.log"),
            "long-xuyen"
        );
        assert_eq!(origin(&[], "coord.log"), "province");
        let many = [one("coord.log.province.>"), one("coord.log.chau-doc.>")].concat();
        assert_eq!(origin(&many, "coord.log"), "province");
    }
}
