//! The audit routes (reader routes): verifier keys, signed checkpoints, inclusion and
//! consistency proofs, the reviewer queries (answered by the office's auditor over
//! NATS), and an NDJSON export that `coordctl audit verify` checks. The export's events
//! are read from the log here, not from the auditor, so a verifier compares two
//! independent sources: the log as stored and what the auditor signed. Like the
//! auditor's tree, the export covers this office's own subjects only.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use coord_audit::export::{Entry, Line, entry_line, leaves_lines};
use coord_audit::wire::{
    self, AuditEvent, AuditPage, AuditRequest, CheckpointPage, ConsistencyProofBody, EventFilter,
    InclusionProofBody, LeafIdentity, LeavesBody, LogDamage, OfficeKey, StoredCheckpoint,
    WitnessAlarm, WitnessStatus, WitnessedOffice,
};
use coord_audit::{Hash, unb64};
use coord_proto::read::QueryReply;
use futures::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::AppState;
use crate::nats::ask;
use crate::problem::Problem;

/// How long `/v1/audit/keys` gathers answers from the offices' auditors.
const KEYS_WINDOW: Duration = Duration::from_millis(300);

/// The audit routes.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/v1/audit/keys", get(keys))
        .route("/v1/audit/checkpoint", get(checkpoint))
        .route("/v1/audit/checkpoints", get(checkpoints))
        .route("/v1/audit/proof/inclusion", get(inclusion))
        .route("/v1/audit/proof/consistency", get(consistency))
        .route("/v1/audit/streams/{stream}", get(stream))
        .route("/v1/audit/events", get(events))
        .route("/v1/audit/correlations/{id}", get(correlation))
        .route("/v1/audit/export", get(export))
        .route("/v1/audit/witness", get(witness))
        .route("/v1/audit/damage", get(damage))
}

/// Which office's log (default: the gateway's own office).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OfficeParam {
    /// The office, e.g. `province` or `district:long-xuyen`.
    pub office: Option<String>,
}

/// A page of checkpoints.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsParams {
    /// The office, e.g. `province` or `district:long-xuyen`.
    pub office: Option<String>,
    /// The page after this tree size: the `next_after` of the page before.
    pub after: Option<u64>,
    /// Checkpoints per page (1 to 1000, default 100); a page also stops at 256 KiB
    /// of notes.
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InclusionParams {
    pub event_id: Uuid,
    /// Default: the latest checkpoint's size.
    pub tree_size: Option<u64>,
    pub office: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    pub from: u64,
    /// Default: the latest checkpoint's size.
    pub to: Option<u64>,
    pub office: Option<String>,
}

fn params<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(p)| p)
        .map_err(|e| Problem::malformed("bad_query", e.body_text()))
}

/// Asks `office`'s auditor.
pub async fn ask_auditor<T: DeserializeOwned>(
    s: &AppState,
    office: Option<&str>,
    endpoint: &str,
    request: &AuditRequest,
) -> Result<T, Problem> {
    // `long-xuyen` and `district:long-xuyen` name one office.
    let office = office.map(|o| {
        o.parse::<coord_domain::Office>()
            .map_or_else(|_| o.to_owned(), |o| o.to_string())
    });
    let subject = wire::subject(office.as_deref(), endpoint);
    match ask::<_, QueryReply<T>>(&s.nats, subject, request, s.request_timeout).await? {
        QueryReply::Ok(v) => Ok(v),
        QueryReply::Error(e) => Err(e.into()),
    }
}

/// Every office's note verifier key.
#[utoipa::path(get, path = "/v1/audit/keys", tag = "audit",
    responses((status = 200, body = Vec<OfficeKey>), (status = 503, body = Problem)))]
pub async fn keys(State(s): State<AppState>) -> Result<Json<Vec<OfficeKey>>, Problem> {
    let inbox = s.nats.new_inbox();
    let mut answers = s
        .nats
        .subscribe(inbox.clone())
        .await
        .map_err(|e| Problem::unavailable("nats_unavailable", e.to_string()))?;
    s.nats
        .publish_with_reply(wire::KEYS_SUBJECT, inbox, "".into())
        .await
        .map_err(|e| Problem::unavailable("nats_unavailable", e.to_string()))?;
    let mut keys: Vec<OfficeKey> = Vec::new();
    let deadline = tokio::time::Instant::now() + KEYS_WINDOW;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, answers.next()).await {
        // Each auditor answers with its key and those of the logs it witnesses.
        if let Ok(some) = serde_json::from_slice::<Vec<OfficeKey>>(&msg.payload) {
            keys.extend(some);
        }
    }
    if keys.is_empty() {
        return Err(Problem::unavailable(
            "auditor_unavailable",
            "no auditor answered",
        ));
    }
    // An office's key comes from its own auditor and from each witness given it.
    keys.sort_by(|a, b| (&a.office, &a.key).cmp(&(&b.office, &b.key)));
    keys.dedup();
    Ok(Json(keys))
}

/// The latest signed checkpoint, as the note (C2SP signed-note, text/plain).
#[utoipa::path(get, path = "/v1/audit/checkpoint", params(OfficeParam), tag = "audit",
    responses((status = 200, body = String, content_type = "text/plain"), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn checkpoint(
    State(s): State<AppState>,
    q: Result<Query<OfficeParam>, QueryRejection>,
) -> Result<Response, Problem> {
    let p = params(q)?;
    let cp: StoredCheckpoint = ask_auditor(
        &s,
        p.office.as_deref(),
        "checkpoint",
        &AuditRequest::default(),
    )
    .await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        cp.note,
    )
        .into_response())
}

/// The checkpoints the office keeps, oldest first, one page at a time (follow
/// `next_after`).
#[utoipa::path(get, path = "/v1/audit/checkpoints", params(CheckpointsParams), tag = "audit",
    responses((status = 200, body = CheckpointPage), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn checkpoints(
    State(s): State<AppState>,
    q: Result<Query<CheckpointsParams>, QueryRejection>,
) -> Result<Json<CheckpointPage>, Problem> {
    let p = params(q)?;
    let request = AuditRequest {
        after: p.after,
        limit: p.limit,
        ..Default::default()
    };
    Ok(Json(
        ask_auditor(&s, p.office.as_deref(), "checkpoints", &request).await?,
    ))
}

/// Every checkpoint the office keeps, page by page.
async fn all_checkpoints(
    s: &AppState,
    office: Option<&str>,
) -> Result<Vec<StoredCheckpoint>, Problem> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let request = AuditRequest {
            after,
            limit: Some(wire::CHECKPOINT_PAGE_MAX),
            ..Default::default()
        };
        let page: CheckpointPage = ask_auditor(s, office, "checkpoints", &request).await?;
        all.extend(page.checkpoints);
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}

/// The proof that an event is in the office's tree of a given size.
#[utoipa::path(get, path = "/v1/audit/proof/inclusion", params(InclusionParams), tag = "audit",
    responses((status = 200, body = InclusionProofBody), (status = 400, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn inclusion(
    State(s): State<AppState>,
    q: Result<Query<InclusionParams>, QueryRejection>,
) -> Result<Json<InclusionProofBody>, Problem> {
    let p = params(q)?;
    let request = AuditRequest {
        event_id: Some(p.event_id),
        tree_size: p.tree_size,
        ..Default::default()
    };
    Ok(Json(
        ask_auditor(&s, p.office.as_deref(), "inclusion", &request).await?,
    ))
}

/// The proof that the tree of size `from` is a prefix of the tree of size `to`.
#[utoipa::path(get, path = "/v1/audit/proof/consistency", params(ConsistencyParams), tag = "audit",
    responses((status = 200, body = ConsistencyProofBody), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn consistency(
    State(s): State<AppState>,
    q: Result<Query<ConsistencyParams>, QueryRejection>,
) -> Result<Json<ConsistencyProofBody>, Problem> {
    let p = params(q)?;
    let request = AuditRequest {
        from: Some(p.from),
        to: p.to,
        ..Default::default()
    };
    Ok(Json(
        ask_auditor(&s, p.office.as_deref(), "consistency", &request).await?,
    ))
}

/// One aggregate's full history, oldest first.
#[utoipa::path(get, path = "/v1/audit/streams/{stream}", params(("stream" = String, Path, description = "stream id, e.g. inspection-<uuid>"), OfficeParam), tag = "audit",
    responses((status = 200, body = Vec<AuditEvent>), (status = 503, body = Problem)))]
pub async fn stream(
    State(s): State<AppState>,
    Path(stream): Path<String>,
    q: Result<Query<OfficeParam>, QueryRejection>,
) -> Result<Json<Vec<AuditEvent>>, Problem> {
    let p = params(q)?;
    stream
        .parse::<coord_log::StreamId>()
        .map_err(|e| Problem::malformed("invalid_stream", e.to_string()))?;
    let request = AuditRequest {
        stream: Some(stream),
        ..Default::default()
    };
    Ok(Json(
        ask_auditor(&s, p.office.as_deref(), "stream", &request).await?,
    ))
}

/// Everything one request caused, in log order.
#[utoipa::path(get, path = "/v1/audit/correlations/{id}", params(("id" = Uuid, Path, description = "correlation id"), OfficeParam), tag = "audit",
    responses((status = 200, body = Vec<AuditEvent>), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn correlation(
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<OfficeParam>, QueryRejection>,
) -> Result<Json<Vec<AuditEvent>>, Problem> {
    let p = params(q)?;
    let id: Uuid = id.parse().map_err(|_| {
        Problem::malformed("invalid_correlation_id", format!("`{id}` is not a UUID"))
    })?;
    let request = AuditRequest {
        correlation_id: Some(id),
        ..Default::default()
    };
    Ok(Json(
        ask_auditor(&s, p.office.as_deref(), "correlation", &request).await?,
    ))
}

/// Search over the whole log, paged by cursor.
#[utoipa::path(get, path = "/v1/audit/events", operation_id = "audit_events", params(EventFilter), tag = "audit",
    responses((status = 200, body = AuditPage), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn events(
    State(s): State<AppState>,
    q: Result<Query<EventFilter>, QueryRejection>,
) -> Result<Json<AuditPage>, Problem> {
    let filter = params(q)?;
    for date in [&filter.from, &filter.to].into_iter().flatten() {
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
            Problem::malformed("invalid_date", format!("`{date}` is not a YYYY-MM-DD date"))
        })?;
    }
    let request = AuditRequest {
        filter: Some(filter),
        ..Default::default()
    };
    Ok(Json(ask_auditor(&s, None, "events", &request).await?))
}

/// What the export needs from the auditor, fetched before the log is read so that
/// every checkpoint covers only events the export holds.
async fn auditor_side(s: &AppState, office: Option<&str>) -> Result<AuditorSide, Problem> {
    let none = AuditRequest::default();
    let key: OfficeKey = ask_auditor(s, office, "key", &none).await?;
    let checkpoints = all_checkpoints(s, office).await?;
    let mut leaves: Vec<Hash> = Vec::new();
    let mut events: Vec<LeafIdentity> = Vec::new();
    loop {
        let request = AuditRequest {
            from: Some(leaves.len() as u64),
            ..Default::default()
        };
        let page: LeavesBody = ask_auditor(s, office, "leaves", &request).await?;
        if page.count == 0 {
            break;
        }
        let bytes = unb64(&page.hashes).map_err(|e| {
            Problem::new(
                coord_proto::ErrorKind::Internal,
                "bad_upstream_answer",
                e.to_string(),
            )
        })?;
        leaves.extend(bytes.chunks(32).filter_map(|c| <Hash>::try_from(c).ok()));
        events.extend(page.events);
    }
    Ok(AuditorSide {
        key,
        checkpoints,
        leaves,
        events,
    })
}

/// What an export takes from the auditor.
struct AuditorSide {
    key: OfficeKey,
    checkpoints: Vec<StoredCheckpoint>,
    leaves: Vec<Hash>,
    events: Vec<LeafIdentity>,
}

fn ndjson(line: &Line) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(line).expect("export lines serialize");
    bytes.push(b'\n');
    bytes
}

/// The office's log as stored, its signed checkpoints and recorded leaves, as NDJSON
/// (the format `coordctl audit verify` reads).
#[utoipa::path(get, path = "/v1/audit/export", params(OfficeParam), tag = "audit",
    responses((status = 200, description = "NDJSON export lines", content_type = "application/x-ndjson"),
        (status = 403, body = Problem, description = "`office` is hosted at another site: export its trail there"),
        (status = 503, body = Problem)))]
pub async fn export(
    State(s): State<AppState>,
    q: Result<Query<OfficeParam>, QueryRejection>,
) -> Result<Response, Problem> {
    let p = params(q)?;
    // The events exported are this site's (its own offices'): another site's office's
    // tree beside them would not match. That office's own site exports its trail.
    if let Some(office) = p.office.as_deref() {
        s.hosting.check_text(office).map_err(Problem::from)?;
    }
    let AuditorSide {
        key,
        checkpoints,
        leaves,
        events,
    } = auditor_side(&s, p.office.as_deref()).await?;
    let office = key.office.clone();
    let head = s
        .audit_log
        .head()
        .await
        .map_err(|e| Problem::unavailable("log_unavailable", e.to_string()))?;
    let mut head_lines: Vec<Line> = vec![Line::Key {
        office: office.clone(),
        key: key.key.clone(),
    }];
    head_lines.extend(checkpoints.into_iter().map(|c| Line::Checkpoint {
        office: office.clone(),
        note: c.note,
    }));
    head_lines.extend(leaves_lines(&office, 0, &leaves, &events));
    let first = futures::stream::iter(head_lines.iter().map(|l| Ok(ndjson(l))).collect::<Vec<_>>());
    let entries = match head {
        None => futures::stream::empty().boxed(),
        Some(head) => {
            // Through the backend's interruptions, never into another log: an export
            // is one log's entries, each once.
            let subscription = coord_log::resuming(s.audit_log.clone(), None)
                .await
                .map_err(|e| Problem::unavailable("log_unavailable", e.to_string()))?;
            // Stops at the head seen above without waiting for the next event.
            futures::stream::unfold((subscription, false), move |(mut sub, done)| {
                let office = office.clone();
                async move {
                    if done {
                        return None;
                    }
                    let (entry, done) = match sub.next().await? {
                        Ok(e) => {
                            let last = e.pos() >= head;
                            (Entry::Event(e), last)
                        }
                        Err(coord_log::LogError::Corrupt { position, reason }) => {
                            (Entry::Unreadable { position, reason }, position >= head)
                        }
                        Err(coord_log::LogError::SubjectMismatch {
                            position,
                            subject,
                            reason,
                        }) => (
                            Entry::Unreadable {
                                position,
                                reason: format!("subject_mismatch: on `{subject}`: {reason}"),
                            },
                            position >= head,
                        ),
                        Err(e) => {
                            // The body is aborted, not ended: a bundle cut short must
                            // not read as complete (its missing entries as removed).
                            tracing::warn!(error = %e, "export cut short");
                            let cut = std::io::Error::other(format!("export cut short: {e}"));
                            return Some((Err(cut), (sub, true)));
                        }
                    };
                    Some((Ok(ndjson(&entry_line(&office, &entry))), (sub, done)))
                }
            })
            .boxed()
        }
    };
    let body = first
        .chain(entries)
        .map(|bytes: std::io::Result<Vec<u8>>| bytes.map(axum::body::Bytes::from));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

/// This site's witness: per watched log the last checkpoint it cosigned (the note
/// with the witness's cosignature), and every checkpoint it refused, with why. At the
/// province's gateway the hub's witness over the offices; at an office's, that
/// office's witness over the province's log.
#[utoipa::path(get, path = "/v1/audit/witness", tag = "audit",
    responses((status = 200, body = WitnessStatus), (status = 503, body = Problem)))]
pub async fn witness(State(s): State<AppState>) -> Result<Json<WitnessStatus>, Problem> {
    Ok(Json(witness_status(&s).await?))
}

/// This site's witness, as its auditor reports it (also read by `/metrics`).
pub async fn witness_status(s: &AppState) -> Result<WitnessStatus, Problem> {
    let subject = wire::WITNESS_SUBJECT.to_owned();
    match ask::<_, QueryReply<WitnessStatus>>(&s.nats, subject, &(), s.request_timeout).await? {
        QueryReply::Ok(v) => Ok(v),
        QueryReply::Error(e) => Err(e.into()),
    }
}

/// Log damage the auditor found at its last start: leaves it had applied whose events
/// are gone from the log or read differently, each named by the event signed there.
#[utoipa::path(get, path = "/v1/audit/damage", params(OfficeParam), tag = "audit",
    responses((status = 200, body = Vec<LogDamage>), (status = 503, body = Problem)))]
pub async fn damage(
    State(s): State<AppState>,
    q: Result<Query<OfficeParam>, QueryRejection>,
) -> Result<Json<Vec<LogDamage>>, Problem> {
    let p = params(q)?;
    let request = AuditRequest::default();
    Ok(Json(
        ask_auditor(&s, p.office.as_deref(), "damage", &request).await?,
    ))
}

/// The audit routes' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        keys,
        checkpoint,
        checkpoints,
        inclusion,
        consistency,
        stream,
        events,
        correlation,
        export,
        witness,
        damage
    ),
    components(schemas(
        OfficeKey,
        StoredCheckpoint,
        CheckpointPage,
        InclusionProofBody,
        ConsistencyProofBody,
        AuditEvent,
        AuditPage,
        WitnessStatus,
        WitnessedOffice,
        WitnessAlarm,
        LogDamage
    ))
)]
pub struct AuditApi;
