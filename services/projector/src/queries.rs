//! The projector's query API over NATS request/reply (NATS service `projector`):
//! `coord.query.{province_summary, districts, district, timeline, position, dead_letters}`
//! and `coord.admin.projector.{rebuild, redrive}`. Other offices and the gateway ask here.
//!
//! Queries read through the projector's read-only connection, so they never wait for a
//! projection batch. While a rebuild replays the log they wait for it to finish (up to
//! the query's bound) and otherwise answer `rebuilding`: a half-built model is never
//! presented as the figures.
//!
//! Each request takes a permit before its work is spawned and runs under a deadline
//! (see `coord_service::bounded`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::service::ServiceExt;
use coord_domain::{TermId, UnitId};
use coord_log::EventPosition;
use coord_proto::read::{
    ADMIN_PREFIX, DistrictList, DistrictReport, ProjectorPosition, QUERY_PREFIX, QueryReply,
    QueryRequest, Redriven,
};
use coord_proto::{ErrorKind, ErrorReply};
use coord_service::{Bounded, Limits};
use futures::StreamExt;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::runner::{Projector, RebuildError, RedriveError};
use crate::store::{Redrive, Store, StoreError};

/// How many times a read is tried again when a rebuild started while it read.
const READ_ATTEMPTS: usize = 3;

const ENDPOINTS: [&str; 6] = [
    "province_summary",
    "districts",
    "district",
    "timeline",
    "position",
    "dead_letters",
];

fn reply<T: Serialize>(r: Result<T, ErrorReply>) -> Vec<u8> {
    let r = match r {
        Ok(v) => QueryReply::Ok(v),
        Err(e) => QueryReply::Error(e),
    };
    serde_json::to_vec(&r).expect("replies serialize")
}

fn internal(e: impl std::fmt::Display) -> ErrorReply {
    ErrorReply::new(ErrorKind::Internal, "read_model_failed", e.to_string())
}

fn term_of(p: &Projector, q: &QueryRequest) -> Result<TermId, ErrorReply> {
    let term = match &q.term {
        Some(t) => TermId::parse(t)
            .map_err(|e| ErrorReply::new(ErrorKind::Malformed, "invalid_term", e.to_string()))?,
        None => p.province.terms.last().map(|t| t.id).ok_or_else(|| {
            ErrorReply::new(
                ErrorKind::NotFound,
                "unknown_term",
                "the province has no terms configured",
            )
        })?,
    };
    if p.province.term(term).is_none() {
        return Err(ErrorReply::new(
            ErrorKind::NotFound,
            "unknown_term",
            format!("term {term} is not configured"),
        ));
    }
    Ok(term)
}

fn unit_of(p: &Projector, q: &QueryRequest) -> Result<UnitId, ErrorReply> {
    let raw = q.unit.as_deref().ok_or_else(|| {
        ErrorReply::new(ErrorKind::Malformed, "missing_unit", "`unit` is required")
    })?;
    let unit = UnitId::parse(raw)
        .map_err(|e| ErrorReply::new(ErrorKind::Malformed, "invalid_unit", e.to_string()))?;
    if p.province.unit(&unit).is_none() {
        return Err(ErrorReply::new(
            ErrorKind::NotFound,
            "unknown_unit",
            format!("unit `{unit}` is not in this province"),
        ));
    }
    Ok(unit)
}

fn parse_position(s: &str) -> Result<EventPosition, ErrorReply> {
    let bad = || {
        ErrorReply::new(
            ErrorKind::Malformed,
            "invalid_cursor",
            format!("`{s}` is not a commit:index cursor"),
        )
    };
    let (c, i) = s.split_once(':').ok_or_else(bad)?;
    Ok(EventPosition {
        commit: c.parse().map_err(|_| bad())?,
        index: i.parse().map_err(|_| bad())?,
    })
}

fn rebuilding(p: &Projector) -> ErrorReply {
    ErrorReply::new(
        ErrorKind::Unavailable,
        "rebuilding",
        format!(
            "a rebuild is replaying the log (at position {}); the read models are incomplete until it ends",
            p.position()
        ),
    )
}

/// Reads the model when no rebuild is replaying, and checks that none started while it
/// read; waits at most `wait` for a rebuild to end.
async fn consistent<T: Send + 'static>(
    p: &Arc<Projector>,
    wait: Duration,
    read: impl Fn(&Store) -> Result<T, StoreError> + Clone + Send + 'static,
) -> Result<T, ErrorReply> {
    for _ in 0..READ_ATTEMPTS {
        let Some(before) = p.wait_settled(wait).await else {
            return Err(rebuilding(p));
        };
        let value = p.with_reader(read.clone()).await.map_err(internal)?;
        if p.phase() == before {
            return Ok(value);
        }
    }
    Err(rebuilding(p))
}

async fn status(p: &Arc<Projector>) -> Result<ProjectorPosition, ErrorReply> {
    let phase = p.phase();
    let health = p.health();
    let (position, dead_letters) = p
        .with_reader(|s| {
            let position = s.checkpoint()?.map(|c| c.commit).unwrap_or(0);
            Ok((position, s.dead_letter_count()?))
        })
        .await
        .map_err(internal)?;
    Ok(ProjectorPosition {
        position,
        dead_letters,
        rebuilding: phase.rebuilding,
        fault: health.fault,
        rebuilds: health.last_rebuild.as_ref().map_or(0, |r| r.generation),
        last_rebuild: health.last_rebuild,
        log_identity: health.log_identity,
    })
}

async fn redrive(p: &Arc<Projector>, q: &QueryRequest) -> Result<Redriven, ErrorReply> {
    let raw = q.position.as_deref().ok_or_else(|| {
        ErrorReply::new(
            ErrorKind::Malformed,
            "missing_position",
            "`position` is required",
        )
    })?;
    let position = parse_position(raw)?;
    let unavailable =
        |code: &str, e: RedriveError| ErrorReply::new(ErrorKind::Unavailable, code, e.to_string());
    match p.redrive(position).await {
        Ok(Redrive::Applied) => Ok(Redriven {
            position: position.to_string(),
            applied: true,
        }),
        Ok(Redrive::StillFailing(reason)) => Err(ErrorReply::new(
            ErrorKind::RuleViolation,
            "dead_letter_still_failing",
            format!("the event at {position} still cannot be applied: {reason}"),
        )),
        Ok(Redrive::NotDeadLetter) => Err(ErrorReply::new(
            ErrorKind::NotFound,
            "unknown_dead_letter",
            format!("no dead letter at position {position}"),
        )),
        Err(e @ RedriveError::Rebuilding) => Err(unavailable("rebuilding", e)),
        Err(e @ RedriveError::LogReplaced) => Err(unavailable("log_replaced", e)),
        Err(e @ RedriveError::Log(_)) => Err(unavailable("log_unavailable", e)),
        Err(e @ RedriveError::Storage(_)) => Err(unavailable("storage_failed", e)),
        Err(e @ RedriveError::NotInLog(_)) => Err(ErrorReply::new(
            ErrorKind::Internal,
            "dead_letter_not_in_log",
            e.to_string(),
        )),
    }
}

/// Answers one query.
pub async fn answer(
    p: &Arc<Projector>,
    endpoint: &str,
    body: &[u8],
    max_wait: Duration,
) -> Vec<u8> {
    let q: QueryRequest = if body.iter().all(u8::is_ascii_whitespace) {
        QueryRequest::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(q) => q,
            Err(e) => {
                return reply::<()>(Err(ErrorReply::new(
                    ErrorKind::Malformed,
                    "malformed_query",
                    e.to_string(),
                )));
            }
        }
    };
    if let Some(min) = q.min_position {
        let wait = q
            .wait_ms
            .map(Duration::from_millis)
            .unwrap_or(max_wait)
            .min(max_wait);
        if !p.wait_for(min, wait).await {
            return reply::<()>(Err(ErrorReply::new(
                ErrorKind::Unavailable,
                "projection_behind",
                format!(
                    "the read model is at position {}, not yet {min}",
                    p.position()
                ),
            )));
        }
    }
    match endpoint {
        "province_summary" => {
            let term = match term_of(p, &q) {
                Ok(t) => t,
                Err(e) => return reply::<()>(Err(e)),
            };
            reply(consistent(p, max_wait, move |s| s.province_summary(term)).await)
        }
        "districts" => {
            let term = match term_of(p, &q) {
                Ok(t) => t,
                Err(e) => return reply::<()>(Err(e)),
            };
            reply(
                consistent(p, max_wait, move |s| {
                    let position = s.checkpoint()?.map(|c| c.commit).unwrap_or(0);
                    Ok(DistrictList {
                        term: term.to_string(),
                        position,
                        districts: s.district_statuses(term)?,
                    })
                })
                .await,
            )
        }
        "district" => {
            let (term, unit) = match (term_of(p, &q), unit_of(p, &q)) {
                (Ok(t), Ok(u)) => (t, u),
                (Err(e), _) | (_, Err(e)) => return reply::<()>(Err(e)),
            };
            reply(
                consistent(p, max_wait, move |s| {
                    let position = s.checkpoint()?.map(|c| c.commit).unwrap_or(0);
                    let status = s
                        .district_statuses(term)?
                        .into_iter()
                        .find(|d| d.unit == unit.as_str());
                    Ok(status.map(|status| DistrictReport { position, status }))
                })
                .await
                .and_then(|d| {
                    d.ok_or_else(|| {
                        ErrorReply::new(ErrorKind::NotFound, "unknown_unit", "no such unit")
                    })
                }),
            )
        }
        "timeline" => {
            let unit = match unit_of(p, &q) {
                Ok(u) => u,
                Err(e) => return reply::<()>(Err(e)),
            };
            let before = match q.before.as_deref().map(parse_position).transpose() {
                Ok(b) => b,
                Err(e) => return reply::<()>(Err(e)),
            };
            let limit = q.limit.unwrap_or(50);
            reply(consistent(p, max_wait, move |s| s.timeline(&unit, limit, before)).await)
        }
        "position" => reply(status(p).await),
        "dead_letters" => {
            let limit = q.limit.unwrap_or(100).min(1000);
            reply(consistent(p, max_wait, move |s| s.dead_letters(limit)).await)
        }
        "redrive" => reply(redrive(p, &q).await),
        "rebuild" => match p.request_rebuild().await {
            Ok(head) => reply(Ok(
                serde_json::json!({ "rebuilding": head > 0, "target_position": head }),
            )),
            Err(e) => {
                let code = match e {
                    RebuildError::NotRunning => "projection_not_running",
                    RebuildError::Failed(_) => "rebuild_failed",
                };
                reply::<()>(Err(ErrorReply::new(
                    ErrorKind::Unavailable,
                    code,
                    e.to_string(),
                )))
            }
        },
        other => reply::<()>(Err(ErrorReply::new(
            ErrorKind::NotFound,
            "unknown_query",
            format!("no query `{other}`"),
        ))),
    }
}

/// Serves queries until `shutdown` resolves.
pub async fn serve(
    client: async_nats::Client,
    projector: Arc<Projector>,
    max_wait: Duration,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let service = client
        .service_builder()
        .description("coordination read models: status, timeline, rebuild")
        .queue_group("projector")
        .start("projector", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the query service: {e}"))?;
    let mut endpoints = Vec::new();
    let queries = service.group(QUERY_PREFIX);
    for name in ENDPOINTS {
        endpoints.push((
            name,
            queries
                .endpoint(name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ));
    }
    let admin = service.group(ADMIN_PREFIX);
    for name in ["rebuild", "redrive"] {
        endpoints.push((
            name,
            admin
                .endpoint(name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ));
    }

    let mut tasks = JoinSet::new();
    let in_flight = Bounded::new(limits.max_in_flight);
    // A query may wait `max_wait` for its position; the deadline leaves it that much.
    let deadline = limits.deadline.max(max_wait + Duration::from_secs(1));
    for (name, mut endpoint) in endpoints {
        let projector = projector.clone();
        let in_flight = in_flight.clone();
        tasks.spawn(async move {
            while let Some(request) = endpoint.next().await {
                let projector = projector.clone();
                in_flight.spawn(async move {
                    let work = answer(&projector, name, &request.message.payload, max_wait);
                    let body = tokio::time::timeout(deadline, work).await.unwrap_or_else(|_| {
                        reply::<()>(Err(ErrorReply::new(
                            ErrorKind::Timeout,
                            "query_timeout",
                            format!("the query was not answered within {deadline:?}"),
                        )))
                    });
                    if let Err(e) = request.respond(Ok(body.into())).await {
                        tracing::warn!(endpoint = name, error = %e, "could not send the answer");
                    }
                })
                .await;
            }
        });
    }
    tracing::info!("query service ready");
    shutdown.await;
    tasks.abort_all();
    let _ = service.stop().await;
    Ok(())
}
