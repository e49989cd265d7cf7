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

use chrono::{DateTime, Utc};
use coord_proto::read::StatusWindow;

use crate::analytics::{self, Cutoff, Window};
use crate::runner::{Projector, RebuildError, RedriveError};
use crate::store::{Redrive, Store, StoreError};

/// How many times a read is tried again when a rebuild started while it read.
const READ_ATTEMPTS: usize = 3;

const ENDPOINTS: [&str; 9] = [
    "province_summary",
    "districts",
    "district",
    "timeline",
    "position",
    "dead_letters",
    "monthly",
    "period",
    "province_as_of",
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

/// Which connection a query reads through: the status reader, or one of the analytics
/// readers (long queries, on low-priority threads: [`crate::readers`]). Neither is the
/// writer's.
#[derive(Debug, Clone, Copy)]
enum Via {
    Status,
    Analytics,
}

/// Reads the model when no rebuild is replaying, and checks that none started while it
/// read; waits at most `wait` for a rebuild to end.
async fn consistent<T: Send + 'static>(
    p: &Arc<Projector>,
    wait: Duration,
    via: Via,
    read: impl Fn(&Store) -> Result<T, StoreError> + Clone + Send + 'static,
) -> Result<T, ErrorReply> {
    for _ in 0..READ_ATTEMPTS {
        let Some(before) = p.wait_settled(wait).await else {
            return Err(rebuilding(p));
        };
        let value = match via {
            Via::Status => p.with_reader(read.clone()).await,
            Via::Analytics => p.with_analytics(read.clone()).await,
        }
        .map_err(internal)?;
        if p.phase() == before {
            return Ok(value);
        }
    }
    Err(rebuilding(p))
}

async fn status(p: &Arc<Projector>) -> Result<ProjectorPosition, ErrorReply> {
    let phase = p.phase();
    let health = p.health();
    let (position, dead_letters, mut alarms, log_damage) = p
        .with_reader(|s| {
            let position = s.checkpoint()?.map(|c| c.commit).unwrap_or(0);
            let damage = crate::damage::list(s)?;
            Ok((position, s.dead_letter_count()?, s.alarms(100)?, damage))
        })
        .await
        .map_err(internal)?;
    alarms.extend(log_damage.iter().map(crate::damage::alarm));
    Ok(ProjectorPosition {
        position,
        dead_letters,
        alarms,
        rebuilding: phase.rebuilding,
        fault: health.fault,
        rebuilds: health.last_rebuild.as_ref().map_or(0, |r| r.generation),
        last_rebuild: health.last_rebuild,
        log_identity: health.log_identity,
        log_damage,
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
    let windowed =
        q.from.is_some() || q.to.is_some() || q.as_of.is_some() || q.as_of_date.is_some();
    match endpoint {
        "province_summary" | "districts" | "district" if windowed => {
            analytics(p, endpoint, &q, max_wait).await
        }
        "province_summary" => {
            let term = match term_of(p, &q) {
                Ok(t) => t,
                Err(e) => return reply::<()>(Err(e)),
            };
            reply(consistent(p, max_wait, Via::Status, move |s| s.province_summary(term)).await)
        }
        "districts" => {
            let term = match term_of(p, &q) {
                Ok(t) => t,
                Err(e) => return reply::<()>(Err(e)),
            };
            reply(
                consistent(p, max_wait, Via::Status, move |s| {
                    let position = s.checkpoint()?.map(|c| c.commit).unwrap_or(0);
                    Ok(DistrictList {
                        term: term.to_string(),
                        position,
                        districts: s.district_statuses(term)?,
                        window: None,
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
                consistent(p, max_wait, Via::Status, move |s| {
                    let position = s.checkpoint()?.map(|c| c.commit).unwrap_or(0);
                    let status = s
                        .district_statuses(term)?
                        .into_iter()
                        .find(|d| d.unit == unit.as_str());
                    Ok(status.map(|status| DistrictReport {
                        position,
                        status,
                        window: None,
                    }))
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
            reply(
                consistent(p, max_wait, Via::Status, move |s| {
                    s.timeline(&unit, limit, before)
                })
                .await,
            )
        }
        "position" => reply(status(p).await),
        "dead_letters" => {
            let limit = q.limit.unwrap_or(100).min(1000);
            reply(consistent(p, max_wait, Via::Status, move |s| s.dead_letters(limit)).await)
        }
        "monthly" | "period" | "province_as_of" => analytics(p, endpoint, &q, max_wait).await,
        "redrive" => reply(redrive(p, &q).await),
        "rebuild" => match p.request_rebuild_with(q.accept_loss.unwrap_or(false)).await {
            Ok(head) => reply(Ok(
                serde_json::json!({ "rebuilding": head > 0, "target_position": head }),
            )),
            Err(e) => {
                let (kind, code) = match e {
                    RebuildError::NotRunning => (ErrorKind::Unavailable, "projection_not_running"),
                    RebuildError::Failed(_) => (ErrorKind::Unavailable, "rebuild_failed"),
                    RebuildError::LogDamaged(_) => (ErrorKind::Conflict, "log_damaged"),
                };
                reply::<()>(Err(ErrorReply::new(kind, code, e.to_string())))
            }
        },
        other => reply::<()>(Err(ErrorReply::new(
            ErrorKind::NotFound,
            "unknown_query",
            format!("no query `{other}`"),
        ))),
    }
}

/// A business date parameter, checked.
fn date_param(name: &str, value: &Option<String>) -> Result<Option<String>, ErrorReply> {
    match value {
        None => Ok(None),
        Some(v) => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(|d| Some(d.format("%Y-%m-%d").to_string()))
            .map_err(|_| {
                ErrorReply::new(
                    ErrorKind::Malformed,
                    "invalid_date",
                    format!("`{name}` must be a date YYYY-MM-DD, not `{v}`"),
                )
            }),
    }
}

/// A recorded moment: RFC 3339, or a date meaning the end of that day UTC.
fn moment_param(name: &str, v: &str) -> Result<DateTime<Utc>, ErrorReply> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 999_999_999))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            ErrorReply::new(
                ErrorKind::Malformed,
                "invalid_date",
                format!("`{name}` must be an RFC 3339 timestamp or a date YYYY-MM-DD, not `{v}`"),
            )
        })
}

/// What an analytics or status query asked for, checked.
struct Checked {
    term: TermId,
    window: Window,
    cutoff: Option<Cutoff>,
}

fn check(p: &Projector, q: &QueryRequest) -> Result<Checked, ErrorReply> {
    let term = term_of(p, q)?;
    let unit = q.unit.as_ref().map(|_| unit_of(p, q)).transpose()?;
    let window = Window {
        from: date_param("from", &q.from)?,
        to: date_param("to", &q.to)?,
        unit: unit.map(|u| u.to_string()),
    };
    if let (Some(f), Some(t)) = (&window.from, &window.to)
        && f > t
    {
        return Err(ErrorReply::new(
            ErrorKind::Malformed,
            "invalid_window",
            format!("`from` ({f}) is after `to` ({t})"),
        ));
    }
    let dated = date_param("as_of_date", &q.as_of_date)?.map(Cutoff::Dated);
    let recorded = q
        .as_of
        .as_deref()
        .map(|v| moment_param("as_of", v))
        .transpose()?
        .map(Cutoff::Recorded);
    let cutoff = match (dated, recorded) {
        (Some(_), Some(_)) => {
            return Err(ErrorReply::new(
                ErrorKind::Malformed,
                "conflicting_as_of",
                "give `as_of` or `as_of_date`, not both",
            ));
        }
        (d, r) => d.or(r),
    };
    if cutoff.is_some() && (window.from.is_some() || window.to.is_some()) {
        return Err(ErrorReply::new(
            ErrorKind::Malformed,
            "conflicting_window",
            "`as_of` and `from`/`to` cannot be combined",
        ));
    }
    Ok(Checked {
        term,
        window,
        cutoff,
    })
}

/// The analytics queries, and the status queries restricted to a window or a cutoff
/// (see [`crate::analytics`]): on the analytics readers, never the writer; during a
/// rebuild they wait for it (up to `wait`), else answer `rebuilding`, as the status
/// queries do.
async fn analytics(
    p: &Arc<Projector>,
    endpoint: &str,
    q: &QueryRequest,
    wait: Duration,
) -> Vec<u8> {
    let Checked {
        term,
        window,
        cutoff,
    } = match check(p, q) {
        Ok(c) => c,
        Err(e) => return reply::<()>(Err(e)),
    };
    let status_window = StatusWindow {
        from: window.from.clone(),
        to: window.to.clone(),
    };
    match (endpoint, cutoff) {
        ("monthly", _) => reply(
            consistent(p, wait, Via::Analytics, move |s| {
                analytics::monthly(s, term, &window)
            })
            .await,
        ),
        ("period", _) => reply(
            consistent(p, wait, Via::Analytics, move |s| {
                analytics::period(s, term, &window)
            })
            .await,
        ),
        ("province_summary" | "province_as_of", Some(c)) => reply(
            consistent(p, wait, Via::Analytics, move |s| {
                analytics::province_as_of(s, term, &c)
            })
            .await,
        ),
        ("province_summary", None) => reply(
            consistent(p, wait, Via::Analytics, move |s| {
                analytics::province_window(s, term, &window)
            })
            .await,
        ),
        ("districts" | "district", c) => {
            let unit = window.unit.clone();
            let windowed = c.is_none();
            let districts = consistent(p, wait, Via::Analytics, move |s| {
                let position = analytics::position(s)?;
                let list = match &c {
                    Some(c) => analytics::districts_as_of(s, term, c)?,
                    None => analytics::districts_window(s, term, &window)?,
                };
                Ok((position, list))
            })
            .await;
            let window = windowed.then_some(status_window);
            match (endpoint, districts) {
                (_, Err(e)) => reply::<()>(Err(e)),
                ("districts", Ok((position, districts))) => reply(Ok(DistrictList {
                    term: term.to_string(),
                    position,
                    districts,
                    window,
                })),
                (_, Ok((position, districts))) => reply(
                    districts
                        .into_iter()
                        .find(|d| Some(&d.unit) == unit.as_ref())
                        .map(|status| DistrictReport {
                            position,
                            status,
                            window,
                        })
                        .ok_or_else(|| {
                            ErrorReply::new(ErrorKind::NotFound, "unknown_unit", "no such unit")
                        }),
                ),
            }
        }
        _ => reply::<()>(Err(ErrorReply::new(
            ErrorKind::Malformed,
            "missing_as_of",
            "`as_of` or `as_of_date` is required",
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
    // Every instance keeps its own read models, so a rebuild or a redrive is for every
    // instance: each has a queue group of its own here (the first answer is the
    // caller's); queries are shared by the group `projector`.
    let admin = service.group_with_queue_group(
        ADMIN_PREFIX,
        format!("projector-{}", uuid::Uuid::new_v4().simple()),
    );
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
                    let reply_to = request.message.reply.as_deref().unwrap_or_default();
                    if !coord_proto::is_inbox(reply_to) {
                        tracing::warn!(endpoint = name, reply = reply_to, "query not answered: its reply subject is not an inbox");
                        return;
                    }
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
