//! `GET /readyz`: whether this site can take commands and answer reads now, and if
//! not, which parts are down. Every part is checked (the command services in
//! parallel), so an operator, or `coordctl up` restarting a child, sees all that is
//! down at once: NATS, each command service (`$SRV.PING.<name>`, answered by every
//! running instance), the log, and the projector (answering, not stalled, within
//! `ready_max_lag` commits of the log head, not rebuilding).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use coord_proto::read::{ProjectorPosition, QueryRequest};
use serde::Serialize;

use crate::AppState;
use crate::problem::Problem;
use crate::queries::{log_head, query};

/// The command services `/readyz` pings.
pub const COMMAND_SERVICES: [&str; 3] = ["inspection", "exchange", "discipline"];

/// One part that is down.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Down {
    /// `nats`, `inspection`, `exchange`, `discipline`, `log` or `projector`.
    pub component: String,
    /// The problem code it gives (e.g. `service_unavailable`, `projection_behind`).
    pub code: String,
    pub detail: String,
}

impl Down {
    fn new(component: &str, problem: Problem) -> Self {
        Self {
            component: component.to_owned(),
            code: problem.code,
            detail: problem.detail,
        }
    }
}

/// The answer when something is down: the problem of the first part down (its
/// `code`), every part's detail, and the list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotReady {
    #[serde(flatten)]
    pub problem: Problem,
    pub down: Vec<Down>,
}

impl IntoResponse for NotReady {
    fn into_response(self) -> Response {
        let mut response = self.problem.clone().into_response();
        *response.body_mut() = axum::body::Body::from(
            serde_json::to_vec(&self).expect("a readiness answer serializes"),
        );
        response
    }
}

/// What was found: the parts down, and the log head and projector position if read.
#[derive(Debug, Default)]
pub struct Readiness {
    pub down: Vec<Down>,
    pub head: Option<u64>,
    pub projector: Option<ProjectorPosition>,
}

/// Checks every part.
pub async fn check(s: &AppState) -> Readiness {
    let mut r = Readiness::default();
    if s.nats.connection_state() != async_nats::connection::State::Connected {
        let p = Problem::unavailable("nats_unavailable", "not connected to NATS");
        r.down.push(Down::new("nats", p));
        return r;
    }
    let pings = futures::future::join_all(COMMAND_SERVICES.map(|name| ping(s, name))).await;
    r.down.extend(pings.into_iter().flatten());
    match log_head(s).await {
        Ok(head) => r.head = Some(head),
        Err(p) => r.down.push(Down::new("log", p)),
    }
    match query::<ProjectorPosition>(s, "position", QueryRequest::default()).await {
        Ok(position) => {
            if let Some(p) = projector_problem(&position, r.head.unwrap_or(0), s.ready_max_lag) {
                r.down.push(Down::new("projector", p));
            }
            r.projector = Some(position);
        }
        Err(p) => r.down.push(Down::new("projector", p)),
    }
    r
}

/// `None` if command service `name` answers its NATS service info with every endpoint
/// the gateway routes to it. A service answers pings from its start, before its
/// endpoints are subscribed: a ping alone once let a command find no responder just
/// after its service was said ready (seen in CI).
async fn ping(s: &AppState, name: &str) -> Option<Down> {
    let info = s.nats.send_request(
        format!("$SRV.INFO.{name}"),
        async_nats::Request::new().timeout(Some(s.request_timeout)),
    );
    let subjects: Vec<String> = match tokio::time::timeout(s.request_timeout, info).await {
        Ok(Ok(msg)) => serde_json::from_slice::<async_nats::service::Info>(&msg.payload)
            .map(|i| i.endpoints.into_iter().map(|e| e.subject).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let all_served = !subjects.is_empty()
        && coord_proto::ROUTES
            .iter()
            .filter(|r| r.service == name)
            .all(|r| subjects.contains(&coord_proto::command_subject(r.service, r.endpoint)));
    (!all_served).then(|| {
        Down::new(
            name,
            Problem::unavailable(
                "service_unavailable",
                format!("the {name} command service does not answer with all its endpoints"),
            ),
        )
    })
}

/// Why a projector at `position` is not ready with the log at `head`, if it is not.
fn projector_problem(position: &ProjectorPosition, head: u64, max_lag: u64) -> Option<Problem> {
    if let Some(fault) = &position.fault {
        return Some(Problem::unavailable(
            &format!("projector_{}", fault.code),
            format!(
                "the projector is stalled at {} of {head} since {}: {}",
                position.position, fault.since, fault.detail
            ),
        ));
    }
    if let Some(d) = position.log_damage.iter().find(|d| d.accepted_at.is_none()) {
        return Some(Problem::unavailable(
            "projector_log_damaged",
            format!(
                "the log no longer holds what the read models applied: {}",
                d.describe()
            ),
        ));
    }
    let lag = head.saturating_sub(position.position);
    if lag <= max_lag && !position.rebuilding {
        return None;
    }
    Some(Problem::unavailable(
        "projection_behind",
        format!(
            "the projector is at {} of {head} (lag {lag}, allowed {max_lag}){}",
            position.position,
            if position.rebuilding {
                ", rebuilding"
            } else {
                ""
            }
        ),
    ))
}

/// Readiness: NATS reachable, every command service answering, the projector not
/// stalled (storage failure, replaced log) and within `ready_max_lag` commits of the
/// log head. When not ready, `down` names every part that is down.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, body = NotReady)))]
pub async fn readyz(State(s): State<AppState>) -> Result<Json<serde_json::Value>, NotReady> {
    let r = check(&s).await;
    if let Some(first) = r.down.first() {
        let detail = r
            .down
            .iter()
            .map(|d| format!("{}: {}", d.component, d.detail))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(NotReady {
            problem: Problem::unavailable(&first.code, detail),
            down: r.down,
        });
    }
    Ok(Json(serde_json::json!({
        "status": "ready",
        "head": r.head.unwrap_or(0),
        "position": r.projector.map_or(0, |p| p.position),
    })))
}
