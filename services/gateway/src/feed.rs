//! The analytics feed over HTTP (issue 8): the event log as CloudEvents for download
//! (`GET /v1/export/events`), the JSON Schema of every event type and version
//! (`GET /v1/schemas`, `GET /v1/schemas/{type}/{version}`), and the way back in
//! (`POST /v1/admin/import`, what `coordctl import` calls).
//!
//! An export is a snapshot: it reads the log from `after` up to the head as it was when
//! the request came (or `until`), in log order, and ends. The response header
//! `Coord-Resume-After` is the commit to pass as `after` next time, to get exactly
//! what was appended since, without gaps or repeats; it holds for a response that ended
//! whole. One the log cut short ends with an error record naming the last commit sent
//! whole (`resume_after`) and an aborted transfer (ANALYTICS.md). CSV and Parquet of
//! the events are streamed by [`crate::export_table`].

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use coord_feed::table::{self, Format, Table};
use coord_feed::{CLOUDEVENTS_BATCH, CloudEvent, NDJSON};
use coord_log::{EventPosition, LogError, RecordedEvent};
use coord_proto::ErrorKind;
use coord_service::import::ImportCommit;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::auth::{Caller, authorize_operation};
use crate::problem::Problem;
use crate::queries::query;

/// The header telling a consumer where to resume.
pub const RESUME_HEADER: &str = "coord-resume-after";

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// Start after this commit (exclusive); from the beginning if absent.
    pub after: Option<u64>,
    /// Stop after this commit (inclusive); the head at the time of the request if absent.
    pub until: Option<u64>,
    /// Only events whose business date (`occurredon`) is on or after this date.
    pub from: Option<NaiveDate>,
    /// Only events whose business date is on or before this date.
    pub to: Option<NaiveDate>,
    /// Only these CloudEvents types, comma-separated, with or without the `.vN` suffix
    /// (e.g. `vn.coord.inspection.concluded,vn.coord.discipline.decided`).
    #[serde(rename = "type")]
    pub types: Option<String>,
    /// `csv` or `parquet` for a table (one row per event, `data` as JSON text);
    /// CloudEvents otherwise.
    pub format: Option<String>,
}

impl ExportParams {
    pub(crate) fn wants(&self, ce: &CloudEvent) -> bool {
        let date_ok = self.from.is_none_or(|f| ce.occurredon >= f)
            && self.to.is_none_or(|t| ce.occurredon <= t);
        let type_ok = self.types.as_deref().is_none_or(|list| {
            list.split(',').map(str::trim).any(|t| {
                ce.ce_type == t || ce.ce_type.rsplit_once(".v").is_some_and(|(n, _)| n == t)
            })
        });
        date_ok && type_ok
    }
}

/// The base URL of this API as the caller reached it (for `dataschema`).
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The events of the log as CloudEvents, in log order: NDJSON by default (one
/// `application/cloudevents+json` event per line), or the CloudEvents JSON batch format
/// with `Accept: application/cloudevents-batch+json`. Payloads are served at the
/// current schema version of their type (stored older versions are upcast).
#[utoipa::path(get, path = "/v1/export/events", params(ExportParams), tag = "analytics",
    responses((status = 200, content_type = "application/x-ndjson", description = "one CloudEvent per line; header Coord-Resume-After"),
              (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn export_events(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(params) = q.map_err(|e| Problem::malformed("bad_query", e.body_text()))?;
    if let Some(format) = params.format.as_deref() {
        let format = parse_format(format)?;
        let snapshot = snapshot(&s, &params).await?;
        let base = base_url(&headers);
        return Ok(crate::export_table::respond(snapshot, params, base, format));
    }
    let batch = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains(CLOUDEVENTS_BATCH));
    let base = base_url(&headers);
    let events = snapshot(&s, &params).await?;
    // The snapshot's end: true only of a response that ends whole (a cut one ends with
    // an error record naming what was sent, and no final chunk).
    let resume = events.resume_after;
    let start = params.after.unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(stream_events(
        events.rx,
        params.clone(),
        base,
        batch,
        start,
        tx,
    ));
    let body = Body::from_stream(tokio_stream_of(rx));
    let content_type = if batch { CLOUDEVENTS_BATCH } else { NDJSON };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(RESUME_HEADER, HeaderValue::from(resume));
    Ok(response)
}

/// The bytes of one export line.
fn event_bytes(ce: &CloudEvent, batch: bool, first: bool) -> Bytes {
    let mut bytes = serde_json::to_vec(ce).unwrap_or_default();
    if batch && !first {
        bytes.insert(0, b',');
    }
    if !batch {
        bytes.push(b'\n');
    }
    Bytes::from(bytes)
}

/// The last NDJSON line of an export that could not finish: an error record naming
/// the last commit whose events were all sent (resume after it).
#[derive(Debug, Serialize)]
struct ExportFailed<'a> {
    error: ExportFailure<'a>,
}

#[derive(Debug, Serialize)]
struct ExportFailure<'a> {
    code: &'static str,
    message: &'a str,
    resume_after: u64,
}

/// Sends a snapshot's events as CloudEvents into the body. A snapshot that cannot be
/// read to its end ends with an error record (NDJSON) and then an aborted transfer
/// (no final chunk), so no client can take a cut export for a whole one.
async fn stream_events(
    mut events: futures::stream::BoxStream<'static, Result<RecordedEvent, String>>,
    params: ExportParams,
    base: String,
    batch: bool,
    start: u64,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut first = true;
    // The last commit whose events were all sent, and the commit being read.
    let mut sent_through = start;
    let mut reading: Option<u64> = None;
    if batch && tx.send(Ok(Bytes::from_static(b"["))).await.is_err() {
        return;
    }
    while let Some(item) = events.next().await {
        let event = match item {
            Ok(e) => e,
            Err(message) => {
                tracing::warn!(error = %message, resume_after = sent_through, "export cut by a log error");
                if !batch {
                    let record = ExportFailed {
                        error: ExportFailure {
                            code: "export_incomplete",
                            message: &message,
                            resume_after: sent_through,
                        },
                    };
                    let mut line = serde_json::to_vec(&record).unwrap_or_default();
                    line.push(b'\n');
                    let _ = tx.send(Ok(Bytes::from(line))).await;
                    record_written(&tx).await;
                }
                let _ = tx.send(Err(std::io::Error::other(message))).await;
                return;
            }
        };
        // Once a later commit's event is read, the earlier commits were read whole (on
        // EventStoreDB a commit's events arrive one by one: the last commit read may
        // not be whole when the read fails).
        let commit = event.pos().commit;
        if let Some(previous) = reading.filter(|c| *c != commit) {
            sent_through = sent_through.max(previous);
        }
        reading = Some(commit);
        let ce = CloudEvent::from_recorded(&event, &base)
            .map_err(|e| tracing::warn!(position = %event.pos(), error = %e, "not exportable"))
            .ok()
            .filter(|ce| params.wants(ce));
        if let Some(ce) = ce {
            if tx.send(Ok(event_bytes(&ce, batch, first))).await.is_err() {
                return;
            }
            first = false;
        }
    }
    if batch {
        let _ = tx.send(Ok(Bytes::from_static(b"]"))).await;
    }
}

/// Waits until the body has taken everything sent (at most 5 s), then a moment more:
/// hyper writes what it took to the socket once the body has nothing ready, but an
/// error ready right behind the error record aborts the connection with the record still
/// in its buffer (seen: `tests/tests/export_resume.rs`).
async fn record_written<T>(tx: &tokio::sync::mpsc::Sender<T>) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tx.capacity() < tx.max_capacity() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

pub(crate) fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A bounded read of the log: every event after `after` up to `until` (or the head);
/// an item is an error when the log cannot be read on to the end (then it is the last).
pub struct Snapshot {
    pub rx: futures::stream::BoxStream<'static, Result<RecordedEvent, String>>,
    /// The commit to resume after: the last commit the snapshot covers.
    pub resume_after: u64,
}

/// How many times a snapshot subscribes again after the log gave nothing for the
/// request deadline, before it ends as cut. A JetStream pull whose request was lost
/// is otherwise noticed only after two missed 15 s heartbeats (async-nats's ordered
/// consumer); one export of a million events once stalled that way under load.
const RESUBSCRIBES: u32 = 2;

/// The snapshot's read of the log, up to `last`.
struct SnapshotReader {
    log: std::sync::Arc<dyn coord_log::EventLog>,
    /// The log's identity when the snapshot began: every subscription is held to it.
    identity: Option<String>,
    sub: coord_log::Subscription,
    /// The last event handed on (at first, where the snapshot starts after).
    seen: Option<EventPosition>,
    last: EventPosition,
    stall: std::time::Duration,
    /// Stalls in a row.
    stalls: u32,
}

impl SnapshotReader {
    /// The next event up to `last`, an error to end with, or `None` past `last`.
    async fn next(&mut self) -> Option<Result<RecordedEvent, String>> {
        let last = self.last;
        loop {
            let Ok(next) = tokio::time::timeout(self.stall, self.sub.next()).await else {
                if let Err(cut) = self.resubscribe().await {
                    return Some(Err(cut));
                }
                continue;
            };
            let Some(next) = next else {
                return Some(Err(format!("the log subscription ended before {last}")));
            };
            match next {
                Ok(e) if e.pos() > last => return None,
                Ok(e) => {
                    self.stalls = 0;
                    self.seen = Some(e.pos());
                    return Some(Ok(e));
                }
                // Skipped, as the projector skips them; one at `last` is the end.
                Err(
                    LogError::Corrupt { position, .. } | LogError::SubjectMismatch { position, .. },
                ) => {
                    if position < last {
                        continue;
                    }
                    return None;
                }
                Err(e) => return Some(Err(e.to_string())),
            }
        }
    }

    /// After a stall: a new subscription from the last event handed on, or the cut.
    async fn resubscribe(&mut self) -> Result<(), String> {
        self.stalls += 1;
        let stalled = || {
            format!(
                "the log gave nothing for {} ms before reaching {}",
                self.stall.as_millis(),
                self.last
            )
        };
        if self.stalls > RESUBSCRIBES {
            return Err(stalled());
        }
        tracing::warn!(
            stalls = self.stalls,
            "an export's log read stalled; subscribing again"
        );
        self.sub = coord_log::resuming_on(self.log.clone(), self.seen, self.identity.clone())
            .await
            .map_err(|e| format!("{}; subscribing again failed: {e}", stalled()))?;
        Ok(())
    }
}

/// Reads the log from `params.after` to `params.until` or the current head.
pub async fn snapshot(s: &AppState, params: &ExportParams) -> Result<Snapshot, Problem> {
    let after = params.after.unwrap_or(0);
    let head = s
        .log
        .head()
        .await
        .map_err(|e| Problem::unavailable("log_unavailable", e.to_string()))?;
    let last = match (head, params.until) {
        (None, _) => None,
        (Some(h), Some(u)) if u < h.commit => Some(EventPosition {
            commit: u,
            index: u64::MAX,
        }),
        (Some(h), _) => Some(h),
    };
    let Some(last) = last.filter(|l| l.commit > after) else {
        return Ok(Snapshot {
            rx: futures::stream::empty().boxed(),
            resume_after: after.max(last.map_or(0, |l| l.commit)),
        });
    };
    let start = params.after.map(|commit| EventPosition {
        commit,
        index: u64::MAX,
    });
    // Through the backend's interruptions (a server restart), never into another log:
    // the one read from here, also when the reader subscribes again after a stall.
    let unavailable = |e: LogError| Problem::unavailable("log_unavailable", e.to_string());
    let identity = s.log.identity().await.map_err(unavailable)?;
    let subscription = coord_log::resuming_on(s.log.clone(), start, identity.clone())
        .await
        .map_err(unavailable)?;
    // Stop right after the last position of the snapshot (never wait for live events);
    // skip unreadable entries and commits whose subject does not match them (the
    // projector lists them as dead letters and alarms); any other error, the log
    // ending before the snapshot's end, or the log giving nothing for the request
    // deadline even after subscribing again (NATS unreachable: the client would wait
    // for it forever), is the last item.
    let reader = SnapshotReader {
        log: s.log.clone(),
        identity,
        sub: subscription,
        seen: start,
        last,
        stall: s.request_timeout,
        stalls: 0,
    };
    let rx = futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let item = reader.next().await?;
        let more = item.as_ref().is_ok_and(|e| e.pos() < reader.last);
        Some((item, more.then_some(reader)))
    })
    .boxed();
    Ok(Snapshot {
        rx,
        resume_after: last.commit,
    })
}

/// `csv` or `parquet`, or a 400 problem.
fn parse_format(s: &str) -> Result<Format, Problem> {
    Format::parse(s).ok_or_else(|| {
        Problem::malformed(
            "bad_format",
            format!("`format` is csv or parquet, not `{s}`"),
        )
    })
}

/// A read model's table (a row per unit, or per month and unit: small, so built whole)
/// as a download. Encoding runs on a blocking thread, off the async runtime.
async fn respond_table(table: Table, format: Format) -> Result<Response, Problem> {
    let failed = |e: String| Problem::new(ErrorKind::Internal, "export_failed", e);
    let name = table.name;
    let bytes = tokio::task::spawn_blocking(move || table.write(format))
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))?;
    Ok(table_download(Body::from(bytes), format, name))
}

/// A `200` download of table `name` in `format`: its media type and file name.
pub(crate) fn table_download(body: Body, format: Format, name: &str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    let disposition = format!("attachment; filename=\"{name}.{}\"", format.extension());
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadModelExportParams {
    /// `csv` (default) or `parquet`.
    pub format: Option<String>,
    pub term: Option<String>,
    /// `monthly` only: first and last business dates, one unit.
    pub from: Option<String>,
    pub to: Option<String>,
    pub unit: Option<String>,
}

/// A read model as a table: `monthly` (one row per month and unit) or `districts`
/// (one row per district, nested counts flattened: `inspections_concluded`, ...).
#[utoipa::path(get, path = "/v1/export/{model}", tag = "analytics",
    params(("model" = String, Path, description = "`monthly` or `districts`"), ReadModelExportParams),
    responses((status = 200, content_type = "text/csv", description = "the table"), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn export_read_model(
    State(s): State<AppState>,
    Path(model): Path<String>,
    q: Result<Query<ReadModelExportParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = q.map_err(|e| Problem::malformed("bad_query", e.body_text()))?;
    let format = parse_format(p.format.as_deref().unwrap_or("csv"))?;
    let request = coord_proto::read::QueryRequest {
        term: p.term,
        from: p.from,
        to: p.to,
        unit: p.unit,
        ..Default::default()
    };
    let (name, rows): (&'static str, Vec<Value>) = match model.as_str() {
        "monthly" => {
            let report: coord_proto::analytics::MonthlyReport =
                query(&s, "monthly", request).await?;
            let rows = report
                .rows
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    v["term"] = Value::from(report.term.clone());
                    v
                })
                .collect();
            ("monthly", rows)
        }
        "districts" => {
            let list: coord_proto::read::DistrictList = query(&s, "districts", request).await?;
            let rows = list
                .districts
                .iter()
                .map(|d| serde_json::to_value(d).unwrap_or_default())
                .collect();
            ("districts", rows)
        }
        other => {
            return Err(Problem::new(
                ErrorKind::NotFound,
                "no_such_export",
                format!("no export `{other}`: events, monthly or districts"),
            ));
        }
    };
    respond_table(table::json_table(name, &rows), format).await
}

/// The schema index: every event type, its versions and where each schema is.
#[utoipa::path(get, path = "/v1/schemas", tag = "analytics",
    responses((status = 200, description = "event types, their versions and schema URLs")))]
pub async fn schemas(headers: HeaderMap) -> Json<Value> {
    Json(coord_feed::schema_index(&base_url(&headers)))
}

/// The JSON Schema (2020-12) of one event type at one version, e.g.
/// `/v1/schemas/vn.coord.exchange.information_exchanged/v2`.
#[utoipa::path(get, path = "/v1/schemas/{type}/{version}", tag = "analytics",
    params(("type" = String, Path, description = "CloudEvents type without version"),
           ("version" = String, Path, description = "`v1`, `v2`, ...")),
    responses((status = 200, content_type = "application/schema+json", description = "the schema"), (status = 404, body = Problem)))]
pub async fn schema(Path((name, version)): Path<(String, String)>) -> Result<Response, Problem> {
    let found = version
        .strip_prefix('v')
        .and_then(|v| v.parse().ok())
        .and_then(|v| coord_feed::committed_schema(&name, v));
    let schema = found.ok_or_else(|| {
        Problem::new(
            ErrorKind::NotFound,
            "no_such_schema",
            format!("no schema for event type `{name}` at version `{version}`; see /v1/schemas"),
        )
    })?;
    let mut response = Json(schema).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/schema+json"),
    );
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// Refuse unless the log holds no event of the offices this site hosts (the first
    /// request of an import; what the site sources from others may be there).
    #[serde(default)]
    pub fresh: bool,
}

/// What an import request did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub events: u64,
    pub commits: u64,
    /// Commits that were already in the log (a re-sent chunk): nothing appended.
    pub duplicates: u64,
    /// The log position of the last commit written or found.
    pub position: u64,
}

/// Appends exported CloudEvents (NDJSON body) to the log, commit by commit, each at the
/// stream version it had, so a replayed import appends nothing twice. Only an admin of
/// the site's own office may, and only commits of offices this site hosts that the
/// domain decides again exactly as they are (`coord_service::import`): the whole body
/// is checked before anything is appended.
#[utoipa::path(post, path = "/v1/admin/import", params(ImportParams), tag = "operations",
    request_body(content = String, content_type = "application/x-ndjson"),
    responses((status = 200, body = ImportReport), (status = 400, body = Problem),
              (status = 403, body = Problem, description = "not an admin of this site's office, or an event of an office this site does not host, or acting for another office"),
              (status = 409, body = Problem), (status = 422, body = Problem, description = "an event the domain refuses or decides otherwise"),
              (status = 503, body = Problem)))]
pub async fn import(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<ImportParams>, QueryRejection>,
    body: String,
) -> Result<Json<ImportReport>, Problem> {
    authorize_operation(&caller, &s.hosting.site)?;
    let Some(log) = s.import_log.clone() else {
        return Err(Problem::unavailable(
            "import_not_enabled",
            "this gateway may not append to the log: start it with COORD_IMPORT_NATS_CREDS \
             (the NATS importer user) for the import",
        ));
    };
    let Query(params) = q.map_err(|e| Problem::malformed("bad_query", e.body_text()))?;
    let commits = parse_commits(&body)?;
    if params.fresh {
        // Empty of this site's own offices' events: an office's site restored from the
        // hub already holds what it sources from the others, and the import only ever
        // appends its own.
        let head = s.audit_log.head().await.map_err(log_problem)?;
        if let Some(head) = head {
            return Err(Problem::new(
                ErrorKind::Conflict,
                "log_not_empty",
                format!(
                    "an import starts on a log without this site's own events; \
                     this one has them up to {head}"
                ),
            ));
        }
    }
    coord_service::import::check(s.log.clone(), &s.province, &s.hosting, &commits).await?;
    let mut report = ImportReport::default();
    let total = commits.len();
    for commit in commits {
        let n = commit.events.len() as u64;
        let outcome = log
            .append(&commit.stream, commit.expected(), commit.events)
            .await
            .map_err(|e| {
                // Commits are appended one by one: say how far it got, and that the
                // same import sent again finds those and goes on after them.
                let mut problem = log_problem(e);
                problem.detail = format!(
                    "{} ({} of {total} commits were appended, through log position {}; \
                     sending the same import again recognises them and goes on)",
                    problem.detail, report.commits, report.position
                );
                problem
            })?;
        report.events += n;
        report.commits += 1;
        report.duplicates += u64::from(outcome.duplicate);
        report.position = outcome.position.commit;
    }
    Ok(Json(report))
}

/// Parses NDJSON CloudEvents into commits (consecutive events of one exported commit).
fn parse_commits(body: &str) -> Result<Vec<ImportCommit>, Problem> {
    let mut commits: Vec<(u64, ImportCommit)> = Vec::new();
    for (i, line) in body
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad =
            |what: String| Problem::malformed("bad_cloudevent", format!("line {}: {what}", i + 1));
        let ce: CloudEvent = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let event = ce.to_import().map_err(|e| bad(e.to_string()))?;
        match commits.last_mut() {
            Some((at, last)) if *at == event.position.commit && last.stream == event.stream => {
                last.events.push(event.event)
            }
            _ => commits.push((
                event.position.commit,
                ImportCommit {
                    stream: event.stream,
                    first_version: event.stream_version,
                    events: vec![event.event],
                },
            )),
        }
    }
    Ok(commits.into_iter().map(|(_, c)| c).collect())
}

fn log_problem(e: LogError) -> Problem {
    match e {
        LogError::Conflict { .. } => {
            Problem::new(ErrorKind::Conflict, "import_conflict", e.to_string())
        }
        LogError::InvalidInput(_) => Problem::malformed("bad_cloudevent", e.to_string()),
        other => Problem::unavailable("log_unavailable", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(commit: u64) -> RecordedEvent {
        RecordedEvent {
            role: None,
            event_id: uuid::Uuid::from_u128(u128::from(commit)),
            stream_id: "inspection-abc".parse().unwrap(),
            stream_version: commit,
            event_type: "NotAnExportedType".into(),
            schema_version: 1,
            occurred_at: "2024-01-01".parse().unwrap(),
            recorded_at: chrono::Utc::now(),
            office: "province".into(),
            actor: "a".into(),
            correlation_id: uuid::Uuid::nil(),
            causation_id: uuid::Uuid::nil(),
            payload: serde_json::json!({}),
            position: Some(EventPosition { commit, index: 0 }),
        }
    }

    fn params() -> ExportParams {
        serde_json::from_value(serde_json::json!({})).unwrap()
    }

    #[tokio::test]
    async fn given_a_log_error_mid_export_then_the_last_line_is_an_error_record_and_the_transfer_aborts()
     {
        let items: Vec<Result<RecordedEvent, String>> =
            vec![Ok(event(4)), Ok(event(5)), Err("the log is gone".into())];
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(stream_events(
            futures::stream::iter(items).boxed(),
            params(),
            "http://x".into(),
            false,
            3,
            tx,
        ));
        let record = rx.recv().await.unwrap().unwrap();
        let record: Value = serde_json::from_slice(&record).unwrap();
        assert_eq!(record["error"]["code"], "export_incomplete");
        // Commit 5 was being read: its events may not all have come (on EventStoreDB
        // a commit's events arrive one by one), so the last whole commit is 4.
        assert_eq!(record["error"]["resume_after"], 4, "{record}");
        assert!(rx.recv().await.unwrap().is_err(), "the transfer is aborted");
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn given_a_whole_export_then_it_ends_without_an_error() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let items: Vec<Result<RecordedEvent, String>> = vec![Ok(event(4))];
        stream_events(
            futures::stream::iter(items).boxed(),
            params(),
            "http://x".into(),
            false,
            3,
            tx,
        )
        .await;
        assert!(rx.recv().await.is_none());
    }

    /// The body of a table export of `items` in `format`, chunk by chunk.
    async fn table_body(items: Vec<Result<RecordedEvent, String>>, format: Format) -> Vec<bool> {
        let snapshot = Snapshot {
            rx: futures::stream::iter(items).boxed(),
            resume_after: 9,
        };
        let response = crate::export_table::respond(snapshot, params(), "http://x".into(), format);
        let mut body = response.into_body().into_data_stream();
        let mut chunks = Vec::new();
        while let Some(chunk) = body.next().await {
            chunks.push(chunk.is_ok());
        }
        chunks
    }

    /// An event the export keeps (a valid `InspectionCancelled`) at `commit`.
    fn exported(commit: u64) -> RecordedEvent {
        use coord_domain::DomainEvent as _;
        let (event_type, payload) = coord_domain::inspection::InspectionEvent::InspectionCancelled(
            coord_domain::inspection::InspectionCancelled {
                inspection_id: coord_domain::InspectionId::from_uuid(uuid::Uuid::from_u128(1)),
                cancelled_on: "2024-01-01".parse().unwrap(),
                reason: "hủy".parse().unwrap(),
            },
        )
        .encode();
        RecordedEvent {
            event_type: event_type.into(),
            payload,
            ..event(commit)
        }
    }

    /// A table export cut after more than one group of rows went out whole: the rows
    /// sent are kept, and the transfer still ends aborted, not as a whole table.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_a_log_error_mid_table_export_then_the_transfer_aborts() {
        let rows = crate::export_table::GROUP_ROWS as u64 + 10;
        for format in [Format::Csv, Format::Parquet] {
            let whole = table_body((1..=rows).map(|c| Ok(exported(c))).collect(), format).await;
            assert!(whole.iter().all(|ok| *ok), "{format:?}: {whole:?}");
            let mut items: Vec<_> = (1..=rows).map(|c| Ok(exported(c))).collect();
            items.push(Err("the log is gone".into()));
            let cut = table_body(items, format).await;
            assert_eq!(cut.last(), Some(&false), "{format:?}: {cut:?}");
            assert!(
                cut.len() > 1 && cut[..cut.len() - 1].iter().all(|ok| *ok),
                "{format:?}: rows went out before the cut: {cut:?}"
            );
        }
    }
}
