//! Analytics read models over HTTP (issue 8): counts by month and unit, totals of a
//! window of business dates, and the province summary as of a date. The projector
//! computes them (its `analytics` module); this only checks parameters and forwards.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use coord_proto::analytics::{MonthlyReport, PeriodSummary};
use coord_proto::read::{ProvinceSummary, QueryRequest};
use serde::Deserialize;

use crate::AppState;
use crate::problem::Problem;
use crate::queries::query;

/// Parameters of the analytics routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsParams {
    /// Party congress term, e.g. `2020-2025` (default: the latest configured).
    pub term: Option<String>,
    /// First business date counted (inclusive, YYYY-MM-DD).
    pub from: Option<String>,
    /// Last business date counted (inclusive).
    pub to: Option<String>,
    /// Only this unit.
    pub unit: Option<String>,
    /// `/v1/analytics/province` only: the state as recorded up to this moment (RFC 3339,
    /// or YYYY-MM-DD for the end of that day UTC).
    pub as_of: Option<String>,
    /// `/v1/analytics/province` only: the state at the end of this business date.
    pub as_of_date: Option<String>,
    /// Wait until the read model reflects this log position.
    pub min_position: Option<u64>,
    pub wait_ms: Option<u64>,
}

fn request(q: Result<Query<AnalyticsParams>, QueryRejection>) -> Result<QueryRequest, Problem> {
    let Query(p) = q.map_err(|e| Problem::malformed("bad_query", e.body_text()))?;
    Ok(QueryRequest {
        term: p.term,
        unit: p.unit,
        from: p.from,
        to: p.to,
        as_of: p.as_of,
        as_of_date: p.as_of_date,
        min_position: p.min_position,
        wait_ms: p.wait_ms,
        ..Default::default()
    })
}

/// Per month and unit: inspections and supervisions scheduled, started, concluded and
/// cancelled, exchanges sent and acknowledged, discipline decisions by form for
/// organizations and members, counted by business date.
#[utoipa::path(get, path = "/v1/analytics/monthly", params(AnalyticsParams), tag = "analytics",
    responses((status = 200, body = MonthlyReport), (status = 400, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn monthly(
    State(s): State<AppState>,
    q: Result<Query<AnalyticsParams>, QueryRejection>,
) -> Result<Json<MonthlyReport>, Problem> {
    Ok(Json(query(&s, "monthly", request(q)?).await?))
}

/// The same counts, totalled over a `from`–`to` window.
#[utoipa::path(get, path = "/v1/analytics/period", params(AnalyticsParams), tag = "analytics",
    responses((status = 200, body = PeriodSummary), (status = 400, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn period(
    State(s): State<AppState>,
    q: Result<Query<AnalyticsParams>, QueryRejection>,
) -> Result<Json<PeriodSummary>, Problem> {
    Ok(Json(query(&s, "period", request(q)?).await?))
}

/// The province summary as recorded up to `as_of` (events recorded up to then), or as
/// it stood at the end of the business date `as_of_date` (events dated up to then).
/// Cost: a replay of the events before the cutoff, not of the whole log.
#[utoipa::path(get, path = "/v1/analytics/province", params(AnalyticsParams), tag = "analytics",
    responses((status = 200, body = ProvinceSummary), (status = 400, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn province_as_of(
    State(s): State<AppState>,
    q: Result<Query<AnalyticsParams>, QueryRejection>,
) -> Result<Json<ProvinceSummary>, Problem> {
    Ok(Json(query(&s, "province_as_of", request(q)?).await?))
}
