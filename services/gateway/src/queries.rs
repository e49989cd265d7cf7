//! Read routes: status and timeline (answered by the projector over NATS), the
//! province's units (from the reference data), health and readiness.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coord_proto::read::{
    DeadLetter, DistrictList, DistrictReport, ProjectorPosition, ProvinceSummary, QueryReply,
    QueryRequest, Redriven, TimelinePage, query_subject,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::nats::ask;
use crate::problem::Problem;

/// Parameters of the status routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    /// Party congress term, e.g. `2020-2025` (default: the latest configured).
    pub term: Option<String>,
    /// Wait until the read model reflects this log position (from a command's answer).
    pub min_position: Option<u64>,
    /// How long to wait for `min_position`, in milliseconds (bounded).
    pub wait_ms: Option<u64>,
    /// The state as recorded up to this moment: an RFC 3339 timestamp, or a date
    /// (YYYY-MM-DD) meaning the end of that day UTC. Counts only events whose
    /// `recorded_at` is at or before it. Not with `from`/`to`.
    pub as_of: Option<String>,
    /// The state at the end of this business date (YYYY-MM-DD): events dated up to it.
    pub as_of_date: Option<String>,
    /// Counts restricted to business dates from this one (inclusive, YYYY-MM-DD):
    /// inspections concluded or cancelled, exchanges sent and decisions dated in the
    /// window; the answer names the window.
    pub from: Option<String>,
    /// Last business date of the window (inclusive, YYYY-MM-DD).
    pub to: Option<String>,
}

/// Parameters of the timeline route.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TimelineParams {
    /// Entries per page (1 to 500, default 50).
    pub limit: Option<u32>,
    /// Cursor from the previous page's `next_before`.
    pub before: Option<String>,
    pub min_position: Option<u64>,
    pub wait_ms: Option<u64>,
}

impl StatusParams {
    fn into_request(self, unit: Option<String>) -> QueryRequest {
        QueryRequest {
            term: self.term,
            unit,
            min_position: self.min_position,
            wait_ms: self.wait_ms,
            as_of: self.as_of,
            as_of_date: self.as_of_date,
            from: self.from,
            to: self.to,
            ..Default::default()
        }
    }
}

fn params<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(p)| p)
        .map_err(|e| Problem::malformed("bad_query", e.body_text()))
}

pub(crate) async fn query<T: DeserializeOwned>(
    state: &AppState,
    endpoint: &str,
    request: QueryRequest,
) -> Result<T, Problem> {
    // One timeout governs: a `min_position` wait gets at most four fifths of it, so
    // that the projector's "not yet" answer still arrives in time.
    let mut request = request;
    let budget = state.request_timeout.as_millis() as u64 * 4 / 5;
    request.wait_ms = Some(request.wait_ms.unwrap_or(budget).min(budget));
    let timeout = state.request_timeout;
    match ask::<_, QueryReply<T>>(&state.nats, query_subject(endpoint), &request, timeout).await? {
        QueryReply::Ok(v) => Ok(v),
        QueryReply::Error(e) => Err(e.into()),
    }
}

/// The province summary for a term: coordinated and covered districts, totals.
#[utoipa::path(get, path = "/v1/status/province", params(StatusParams), tag = "status",
    responses((status = 200, body = ProvinceSummary), (status = 400, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn province(
    State(s): State<AppState>,
    q: Result<Query<StatusParams>, QueryRejection>,
) -> Result<Json<ProvinceSummary>, Problem> {
    let req = params(q)?.into_request(None);
    Ok(Json(query(&s, "province_summary", req).await?))
}

/// Every district's coordination status in a term.
#[utoipa::path(get, path = "/v1/status/districts", params(StatusParams), tag = "status",
    responses((status = 200, body = DistrictList), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn districts(
    State(s): State<AppState>,
    q: Result<Query<StatusParams>, QueryRejection>,
) -> Result<Json<DistrictList>, Problem> {
    let req = params(q)?.into_request(None);
    Ok(Json(query(&s, "districts", req).await?))
}

/// One district's coordination status in a term.
#[utoipa::path(get, path = "/v1/status/districts/{unit}", params(("unit" = String, Path, description = "unit slug"), StatusParams), tag = "status",
    responses((status = 200, body = DistrictReport), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn district(
    State(s): State<AppState>,
    Path(unit): Path<String>,
    q: Result<Query<StatusParams>, QueryRejection>,
) -> Result<Json<DistrictReport>, Problem> {
    let req = params(q)?.into_request(Some(unit));
    Ok(Json(query(&s, "district", req).await?))
}

/// One district's events, newest first, paged.
#[utoipa::path(get, path = "/v1/districts/{unit}/timeline", params(("unit" = String, Path, description = "unit slug"), TimelineParams), tag = "status",
    responses((status = 200, body = TimelinePage), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn timeline(
    State(s): State<AppState>,
    Path(unit): Path<String>,
    q: Result<Query<TimelineParams>, QueryRejection>,
) -> Result<Json<TimelinePage>, Problem> {
    let p = params(q)?;
    let req = QueryRequest {
        unit: Some(unit),
        limit: p.limit,
        before: p.before,
        min_position: p.min_position,
        wait_ms: p.wait_ms,
        ..Default::default()
    };
    Ok(Json(query(&s, "timeline", req).await?))
}

/// Events the projector could not apply, newest first.
#[utoipa::path(get, path = "/v1/dead-letters", tag = "operations",
    responses((status = 200, body = Vec<DeadLetter>), (status = 503, body = Problem)))]
pub async fn dead_letters(State(s): State<AppState>) -> Result<Json<Vec<DeadLetter>>, Problem> {
    Ok(Json(
        query(&s, "dead_letters", QueryRequest::default()).await?,
    ))
}

/// Apply a dead letter's event again, once the cause is fixed, without a rebuild
/// (an operation: an admin of the site's own office only, like a rebuild).
#[utoipa::path(post, path = "/v1/dead-letters/{position}/redrive", tag = "operations",
    params(("position" = String, Path, description = "the dead letter's `commit:index`")),
    responses((status = 200, body = Redriven), (status = 400, body = Problem),
              (status = 403, body = Problem, description = "not an admin token of this site's office"),
              (status = 404, body = Problem),
              (status = 422, body = Problem, description = "the event still cannot be applied; the reason is updated"),
              (status = 503, body = Problem)))]
pub async fn redrive(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    Path(position): Path<String>,
) -> Result<Json<Redriven>, Problem> {
    crate::auth::authorize_operation(&caller, &s.hosting.site)?;
    let request = QueryRequest {
        position: Some(position),
        ..Default::default()
    };
    let answer = ask(
        &s.nats,
        coord_proto::read::redrive_subject(),
        &request,
        s.request_timeout,
    )
    .await?;
    match answer {
        QueryReply::Ok(v) => Ok(Json(v)),
        QueryReply::Error(e) => Err(e.into()),
    }
}

/// The projector's progress against the log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectorStatus {
    #[serde(flatten)]
    pub projector: ProjectorPosition,
    /// The log's newest commit (0 for an empty log).
    pub head: u64,
    /// Commits the read model is behind the log.
    pub lag: u64,
}

pub(crate) async fn log_head(s: &AppState) -> Result<u64, Problem> {
    Ok(coord_log::EventLog::head(s.log.as_ref())
        .await
        .map_err(|e| Problem::unavailable("log_unavailable", e.to_string()))?
        .map(|p| p.commit)
        .unwrap_or(0))
}

/// The projector's position, the log head, and the dead-letter count.
#[utoipa::path(get, path = "/v1/projector", tag = "operations",
    responses((status = 200, body = ProjectorStatus), (status = 503, body = Problem)))]
pub async fn projector(State(s): State<AppState>) -> Result<Json<ProjectorStatus>, Problem> {
    let head = log_head(&s).await?;
    let projector: ProjectorPosition = query(&s, "position", QueryRequest::default()).await?;
    let lag = head.saturating_sub(projector.position);
    Ok(Json(ProjectorStatus {
        projector,
        head,
        lag,
    }))
}

/// Parameters of a rebuild.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RebuildParams {
    /// Go on although events the read models applied are gone from the log or
    /// unreadable (`log_damage` of `/v1/projector`): the figures will lack them. Without
    /// it such a rebuild is refused (409 `log_damaged`).
    pub accept_loss: Option<bool>,
}

/// Drop the read models and replay them from the log (an admin of the site's own office
/// only). Refused while the log lost events the read models applied, unless
/// `accept_loss=true`.
#[utoipa::path(post, path = "/v1/admin/rebuild", tag = "operations", params(RebuildParams),
    responses((status = 202, description = "rebuild started; follow /v1/projector"),
              (status = 403, body = Problem, description = "not an admin token of this site's office"),
              (status = 409, body = Problem, description = "`log_damaged`: applied events are gone from the log; nothing was dropped"),
              (status = 503, body = Problem)))]
pub async fn rebuild(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    q: Result<Query<RebuildParams>, QueryRejection>,
) -> Result<Response, Problem> {
    crate::auth::authorize_operation(&caller, &s.hosting.site)?;
    let p = params(q)?;
    let answer: QueryReply<serde_json::Value> = ask(
        &s.nats,
        coord_proto::read::rebuild_subject(),
        &QueryRequest {
            accept_loss: p.accept_loss,
            ..Default::default()
        },
        s.request_timeout,
    )
    .await?;
    match answer {
        QueryReply::Ok(v) => Ok((StatusCode::ACCEPTED, Json(v)).into_response()),
        QueryReply::Error(e) => Err(e.into()),
    }
}

/// A district-level unit as the reference data describes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnitView {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// Vietnamese type, e.g. `thành phố`.
    pub kind_vi: String,
    pub standing_committee: String,
    pub police_committee: String,
    #[schema(value_type = Object)]
    pub periods: serde_json::Value,
}

/// The province's units and terms.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnitsView {
    pub province: String,
    pub name: String,
    pub terms: Vec<String>,
    pub units: Vec<UnitView>,
}

/// The province's district-level units (reference data).
#[utoipa::path(get, path = "/v1/units", tag = "reference", responses((status = 200, body = UnitsView)))]
pub async fn units(State(s): State<AppState>) -> Json<UnitsView> {
    let p = &s.province;
    Json(UnitsView {
        province: p.id.clone(),
        name: p.name.clone(),
        terms: p.terms.iter().map(|t| t.id.to_string()).collect(),
        units: p
            .units
            .iter()
            .map(|u| {
                let kind = u.current_kind();
                UnitView {
                    id: u.id.to_string(),
                    name: u.name.clone(),
                    kind: kind.as_str().to_owned(),
                    kind_vi: kind.label_vi().into(),
                    standing_committee: u.standing_committee_vi(kind),
                    police_committee: u.police_committee_vi(kind),
                    periods: serde_json::to_value(&u.periods).unwrap_or_default(),
                }
            })
            .collect(),
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}
