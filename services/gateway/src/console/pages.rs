//! The console's pages: sign-in, the province overview, a district, a record, the
//! offices and their sync, and the form submissions and live updates behind them.
//! Each handler reads through the API's own functions and renders one template.

use std::collections::HashMap;

use axum::Form as FormBody;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use coord_audit::wire::{AuditEvent, AuditRequest, InclusionProofBody, OfficeKey};
use coord_proto::read::{
    DistrictList, DistrictReport, ProvinceSummary, QueryRequest, TimelinePage,
};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::forms;
use super::labels;
use super::needs::{self, NeedsParams};
use super::session::{self, Visitor};
use crate::AppState;
use crate::auth::Caller;
use crate::problem::Problem;
use crate::queries::query;

/// Query parameters every page takes.
#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    /// Read the read models at least at this log position (after a live event).
    pub min_position: Option<u64>,
    /// The monthly chart's window.
    pub from: Option<String>,
    pub to: Option<String>,
    /// The timeline page's cursor.
    pub before: Option<String>,
}

impl PageParams {
    fn request(&self) -> QueryRequest {
        QueryRequest {
            min_position: self.min_position,
            ..Default::default()
        }
    }
}

/// Who is signed in, for the layout: the office and the role as people say them.
fn who(s: &AppState, v: &Visitor) -> minijinja::Value {
    let c = v.claims();
    minijinja::Value::from_serialize(json!({
        "office": labels::office(&s.province, &c.office),
        "actor": c.actor,
        "role": labels::role(c.role),
        "csrf": v.csrf,
    }))
}

fn page_error(problem: Problem) -> Response {
    super::problem_page(&problem)
}

/// A query parameter the form left empty is not given.
fn given(value: &Option<String>) -> Option<String> {
    value.as_ref().filter(|v| !v.trim().is_empty()).cloned()
}

/// `GET /sign-in`.
pub async fn sign_in_page(State(s): State<AppState>) -> Response {
    s.console.render("sign_in.html", context! {})
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// `POST /sign-in`: a token in, a session cookie out.
pub async fn sign_in(
    State(s): State<AppState>,
    headers: HeaderMap,
    FormBody(form): FormBody<SignIn>,
) -> Response {
    match session::sign_in(&s, &headers, &form.token) {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response(),
        Err(problem) => {
            let status = axum::http::StatusCode::from_u16(problem.status)
                .unwrap_or(axum::http::StatusCode::UNAUTHORIZED);
            let page = s.console.render(
                "sign_in.html",
                context! {
                    error => format!("Mã truy cập bị từ chối: {}", forms::message_vi(&problem.code)),
                    detail => format!("{} ({})", problem.detail, problem.code),
                },
            );
            (status, page).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

/// `POST /sign-out`.
pub async fn sign_out(
    State(s): State<AppState>,
    visitor: Visitor,
    FormBody(form): FormBody<CsrfOnly>,
) -> Response {
    if let Err(p) = visitor.check_csrf(form.csrf.as_deref()) {
        return page_error(p);
    }
    let cookie = session::sign_out(&s, &visitor);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/sign-in")).into_response()
}

/// The monthly chart's rows: per month, inspections and supervisions concluded,
/// exchanges sent, decisions; with each bar's share of the largest.
async fn monthly_chart(s: &AppState, p: &PageParams) -> Result<serde_json::Value, Problem> {
    let request = QueryRequest {
        from: given(&p.from),
        to: given(&p.to),
        min_position: p.min_position,
        ..Default::default()
    };
    let report: coord_proto::analytics::MonthlyReport = query(s, "monthly", request).await?;
    let mut months: std::collections::BTreeMap<String, [u64; 3]> = Default::default();
    for row in &report.rows {
        let c = &row.counts;
        let m = months.entry(row.month.clone()).or_default();
        m[0] += c.inspections.concluded + c.supervisions.concluded;
        m[1] += c.exchanges.sent;
        m[2] += c.decisions.total();
    }
    let max = months
        .values()
        .flat_map(|m| m.iter())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let rows: Vec<_> = months
        .iter()
        .map(|(month, m)| {
            json!({"month": month, "concluded": m[0], "sent": m[1], "decisions": m[2],
                   "w": m.map(|n| n * 100 / max)})
        })
        .collect();
    Ok(json!({"from": report.from, "to": report.to, "rows": rows}))
}

/// `GET /`: the province overview.
pub async fn overview(
    State(s): State<AppState>,
    visitor: Visitor,
    Query(p): Query<PageParams>,
) -> Response {
    match overview_context(&s, &p).await {
        Ok(ctx) => s.console.render(
            "overview.html",
            context! { who => who(&s, &visitor), page => minijinja::Value::from_serialize(ctx) },
        ),
        Err(problem) => page_error(problem),
    }
}

async fn overview_context(s: &AppState, p: &PageParams) -> Result<serde_json::Value, Problem> {
    let summary: ProvinceSummary = query(s, "province_summary", p.request()).await?;
    let districts: DistrictList = query(s, "districts", p.request()).await?;
    let needs = needs::compute_with(s, NeedsParams::default(), &summary).await?;
    let outstanding: Vec<String> = summary
        .districts_outstanding
        .iter()
        .map(|u| labels::unit_name(&s.province, u))
        .collect();
    Ok(json!({
        "summary": summary,
        "outstanding": outstanding,
        "districts": districts.districts,
        "needs": needs,
        "chart": monthly_chart(s, p).await?,
        "position": summary.position,
    }))
}

/// `GET /districts/{unit}`.
pub async fn district(
    State(s): State<AppState>,
    visitor: Visitor,
    Path(unit): Path<String>,
    Query(p): Query<PageParams>,
) -> Response {
    match district_context(&s, &visitor, &unit, &p).await {
        Ok(ctx) => s.console.render(
            "district.html",
            context! { who => who(&s, &visitor), page => minijinja::Value::from_serialize(ctx) },
        ),
        Err(problem) => page_error(problem),
    }
}

async fn district_context(
    s: &AppState,
    visitor: &Visitor,
    unit: &str,
    p: &PageParams,
) -> Result<serde_json::Value, Problem> {
    let mut request = p.request();
    request.unit = Some(unit.to_owned());
    let report: DistrictReport = query(s, "district", request.clone()).await?;
    request.before = p.before.clone();
    request.limit = Some(20);
    let timeline: TimelinePage = query(s, "timeline", request).await?;
    let needs = needs::compute(
        s,
        NeedsParams {
            unit: Some(unit.to_owned()),
            ..Default::default()
        },
    )
    .await?;
    let entries: Vec<serde_json::Value> = timeline
        .entries
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["link"] = json!(record_link(&e.stream_id, &e.payload));
            v
        })
        .collect();
    Ok(json!({
        "unit": unit,
        "report": report,
        "timeline": timeline,
        "entries": entries,
        "needs": needs,
        "forms": forms::offered(visitor.claims(), unit),
    }))
}

/// The console page of the record an event belongs to (a receipt's exchange, an
/// appeal's case).
fn record_link(stream_id: &str, payload: &serde_json::Value) -> Option<String> {
    let (category, id) = stream_id.split_once('-')?;
    let id = id.to_owned();
    let (kind, id) = match category {
        "inspection" => ("inspection", id),
        "exchange" => ("exchange", id),
        "discipline" => ("discipline_case", id),
        "receipt" => ("exchange", payload["exchange_id"].as_str()?.to_owned()),
        "appeal" => ("discipline_case", payload["case_id"].as_str()?.to_owned()),
        _ => return None,
    };
    Some(format!("/records/{kind}/{id}"))
}

/// `POST /districts/{unit}/forms/{command}`: a form through the API's command path.
/// Answers JSON for the page's script: the accepted command, or the refusal with its
/// Vietnamese message and the field it names.
pub async fn submit(
    State(s): State<AppState>,
    visitor: Visitor,
    Path((unit, command)): Path<(String, String)>,
    headers: HeaderMap,
    FormBody(fields): FormBody<HashMap<String, String>>,
) -> Response {
    let result = send_form(&s, &visitor, &unit, &command, &headers, &fields).await;
    match result {
        Ok(accepted) => Json(json!({"ok": true, "accepted": accepted})).into_response(),
        Err((problem, field)) => refusal(&problem, field),
    }
}

/// A refused form: its problem document (RFC 9457) extended with the Vietnamese
/// message and the field it names.
fn refusal(problem: &Problem, field: Option<&str>) -> Response {
    let status = axum::http::StatusCode::from_u16(problem.status)
        .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
    let mut body = serde_json::to_value(problem).unwrap_or_default();
    body["field"] = json!(field);
    body["message_vi"] = json!(forms::message_vi(&problem.code));
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn send_form(
    s: &AppState,
    visitor: &Visitor,
    unit: &str,
    command: &str,
    headers: &HeaderMap,
    fields: &HashMap<String, String>,
) -> Result<coord_proto::Accepted, (Problem, Option<&'static str>)> {
    visitor
        .check_csrf(fields.get("csrf").map(String::as_str))
        .map_err(|p| (p, None))?;
    let form = forms::find(visitor.claims(), unit, command).map_err(|p| (p, None))?;
    let route = coord_proto::route(command).expect("every form is a route");
    let term = s
        .province
        .terms
        .last()
        .map(|t| t.id.to_string())
        .unwrap_or_default();
    let body = forms::body(form, &visitor.claims().office, unit, &term, fields);
    let path_id = route.id_in_path.then(|| {
        body.get(route.id_field)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    });
    let mut command_headers = HeaderMap::new();
    if let Some(key) = headers.get("idempotency-key") {
        command_headers.insert("idempotency-key", key.clone());
    }
    let caller = Caller(visitor.claims().clone());
    crate::commands::execute(s, caller, route, path_id, &command_headers, body)
        .await
        .map_err(|p| {
            let field = forms::field_named(form, &p.detail);
            (p, field)
        })
}

/// The events of `streams` as the site's auditor has them (who, role, correlation),
/// by event id; `None` when the auditor did not answer for one of them.
async fn audited(s: &AppState, streams: &[&str]) -> Option<HashMap<uuid::Uuid, AuditEvent>> {
    let asks =
        streams.iter().map(|stream| {
            let request = AuditRequest {
                stream: Some((*stream).to_owned()),
                ..Default::default()
            };
            async move {
                crate::audit::ask_auditor::<Vec<AuditEvent>>(s, None, "stream", &request).await
            }
        });
    let mut out = HashMap::new();
    for answer in futures::future::join_all(asks).await {
        out.extend(answer.ok()?.into_iter().map(|e| (e.event_id, e)));
    }
    Some(out)
}

/// One event of a record's history as the page shows it: what happened, when, who,
/// and either the link that proves it or why there is none here.
#[derive(serde::Serialize)]
struct HistoryRow<'a> {
    version: u64,
    event: &'a str,
    event_type: &'a str,
    occurred_at: chrono::NaiveDate,
    recorded_at: &'a str,
    office: String,
    actor: &'a str,
    role: &'static str,
    correlation_id: Option<uuid::Uuid>,
    proof: Option<String>,
    /// Why there is no proof here: in Vietnamese, and in English.
    not_audited: Option<(&'static str, &'static str)>,
}

fn history_rows<'a>(
    s: &AppState,
    kind: &str,
    view: &'a crate::records::RecordView,
    audited: Option<&HashMap<uuid::Uuid, AuditEvent>>,
) -> Vec<HistoryRow<'a>> {
    view.history
        .iter()
        .map(|step| {
            let audit = audited.and_then(|a| a.get(&step.event_id));
            let hosted = s.hosting.check_text(&step.office).is_ok();
            HistoryRow {
                version: step.version,
                event: labels::event(&step.event_type),
                event_type: &step.event_type,
                occurred_at: step.occurred_at,
                recorded_at: &step.recorded_at,
                office: labels::office_text(&s.province, &step.office),
                actor: &step.actor,
                role: audit
                    .and_then(|a| a.role.as_deref()?.parse().ok())
                    .map_or("", labels::role),
                correlation_id: audit.map(|a| a.correlation_id),
                proof: audit
                    .map(|_| format!("/records/{kind}/{}/proof/{}", view.id, step.event_id)),
                not_audited: match (audit, audited.is_some(), hosted) {
                    (Some(_), _, _) => None,
                    (None, false, _) => Some((
                        "máy chủ kiểm toán chưa trả lời: tải lại trang sau",
                        "the auditor did not answer",
                    )),
                    (None, true, true) => Some((
                        "chưa có trong nhật ký kiểm toán",
                        "not yet in the audit log",
                    )),
                    (None, true, false) => Some((
                        "kiểm chứng tại máy chủ của cơ quan ghi sự kiện này",
                        "audited at the site of the office that recorded it",
                    )),
                },
            }
        })
        .collect()
}

/// The day of the record's own first event (a companion's may come first in the log).
fn first_day(view: &crate::records::RecordView) -> Option<chrono::NaiveDate> {
    view.history
        .iter()
        .find(|h| h.stream_id == view.stream_id)
        .map(|h| h.occurred_at)
}

/// `GET /records/{kind}/{id}`.
pub async fn record(
    State(s): State<AppState>,
    visitor: Visitor,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    let view = match crate::records::view_of(&s, &kind, &id).await {
        Ok(view) => view,
        Err(problem) => return page_error(problem),
    };
    let mut streams: Vec<&str> = view.history.iter().map(|h| h.stream_id.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let audited = audited(&s, &streams).await;
    let ctx = json!({
        "kind": kind,
        "record": view,
        "kind_vi": labels::record_kind(&view.kind),
        "office_vi": labels::office_text(&s.province, &view.office),
        "fields": labels::fields(&s.province, &view.fields, first_day(&view)),
        "history": history_rows(&s, &kind, &view, audited.as_ref()),
    });
    s.console.render(
        "record.html",
        context! { who => who(&s, &visitor), page => minijinja::Value::from_serialize(ctx) },
    )
}

/// `GET /records/{kind}/{id}/proof/{event_id}`: what the browser needs to verify one
/// event's inclusion: the latest signed checkpoint, the proof against its size, and
/// the offices' verifier keys.
pub async fn proof(
    State(s): State<AppState>,
    _visitor: Visitor,
    Path((_kind, _id, event_id)): Path<(String, String, uuid::Uuid)>,
) -> Result<Json<serde_json::Value>, Problem> {
    let cp: coord_audit::wire::StoredCheckpoint =
        crate::audit::ask_auditor(&s, None, "checkpoint", &AuditRequest::default()).await?;
    let note = coord_audit::note::Note::parse(&cp.note)
        .map_err(|e| Problem::unavailable("bad_checkpoint", e.to_string()))?;
    let size = coord_audit::Checkpoint::parse(&note.text)
        .map_err(|e| Problem::unavailable("bad_checkpoint", e.to_string()))?
        .size;
    let request = AuditRequest {
        event_id: Some(event_id),
        tree_size: Some(size),
        ..Default::default()
    };
    let inclusion: InclusionProofBody =
        crate::audit::ask_auditor(&s, None, "inclusion", &request).await?;
    let Json(keys): Json<Vec<OfficeKey>> = crate::audit::keys(State(s.clone())).await?;
    Ok(Json(
        json!({"checkpoint": cp.note, "inclusion": inclusion, "keys": keys}),
    ))
}

/// `GET /offices`: every source's link, last heard, position and lag; the witness.
pub async fn offices(State(s): State<AppState>, visitor: Visitor) -> Response {
    let sync = crate::sync::status(&s).await;
    let witness = crate::audit::witness_status(&s).await;
    let site = s.hosting.site.to_string();
    let single = s.hosting.sites.district_sites().next().is_none();
    let ctx = offices_page(&s.province, &site, single, sync.as_ref(), witness.as_ref());
    s.console.render(
        "offices.html",
        context! { who => who(&s, &visitor), page => minijinja::Value::from_serialize(ctx) },
    )
}

/// What the offices page shows, said for people: offices by name, times as time ago,
/// the witness's cosigned sizes and alarms (and why either could not be read).
fn offices_page(
    province: &coord_domain::Province,
    site: &str,
    single_server: bool,
    sync: Result<&crate::sync::SyncStatus, &Problem>,
    witness: Result<&coord_audit::wire::WitnessStatus, &Problem>,
) -> serde_json::Value {
    let office = |o: &str| labels::office_text(province, o);
    let sources = sync.ok().map(|sync| {
        sync.sources
            .iter()
            .map(|src| {
                json!({
                    "from": office(&src.from), "link_up": src.link_up,
                    "last_heard": labels::ago(src.last_heard_ms),
                    "last_position": src.last_position, "lag": src.lag,
                })
            })
            .collect::<Vec<_>>()
    });
    let witnessed = witness.ok().map(|w| {
        let offices: Vec<_> = w
            .offices
            .iter()
            .map(|o| {
                json!({
                    "office": office(&o.office), "origin": o.origin, "size": o.size,
                    "cosigned_at": o.cosigned_at,
                })
            })
            .collect();
        let alarms: Vec<_> = w
            .alarms
            .iter()
            .map(|a| {
                json!({
                    "office": office(&a.office), "reason": a.reason, "at": a.at,
                    "old_size": a.old_size, "new_size": a.new_size, "repeated": a.repeated,
                })
            })
            .collect();
        json!({"key": w.witness_key, "offices": offices, "alarms": alarms})
    });
    json!({
        "sync": sync.ok().map(|s| json!({"head": s.head, "sources": sources})),
        "sync_error": sync.err().map(|p| (forms::message_vi(&p.code), &p.detail)),
        "witness": witnessed,
        "witness_error": witness.err().map(|p| {
            let said = match p.code.as_str() {
                // Nobody serves the witness: a single server has none; elsewhere it is down.
                "service_unavailable" if single_server => {
                    "máy chủ này không chạy bên chứng thực (chứng thực chéo chỉ có khi các \
                     cơ quan chạy máy chủ riêng)."
                }
                "service_unavailable" => "bên chứng thực không trả lời.",
                code => forms::message_vi(code),
            };
            (said, &p.detail)
        }),
        "site": office(site),
    })
}

/// `GET /live`: the log's new events for the signed-in page, as unnamed events (the
/// API's `/v1/events` names each by its type, which `EventSource.onmessage` does not
/// hear).
pub async fn live(State(s): State<AppState>, _visitor: Visitor, headers: HeaderMap) -> Response {
    match crate::events::signals(s, &headers).await {
        Ok(sse) => sse.into_response(),
        Err(problem) => problem.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use coord_audit::wire::{WitnessAlarm, WitnessStatus, WitnessedOffice};

    #[test]
    fn the_offices_page_says_sync_and_the_witness_for_people() {
        let sync = crate::sync::SyncStatus {
            head: 42,
            link_down_after_ms: 10_000,
            sources: vec![crate::sync::SourceStatus {
                from: "district:an-phu".into(),
                link_up: false,
                last_heard_ms: Some(125_000),
                lag: 0,
                last_position: Some(40),
            }],
        };
        let witness = WitnessStatus {
            witness_key: "witness+1234+AAAA".into(),
            offices: vec![WitnessedOffice {
                office: "district:an-phu".into(),
                origin: "an-giang/district:an-phu".into(),
                key: "k".into(),
                size: Some(17),
                root: Some("cm9vdA==".into()),
                cosigned: Some("note".into()),
                cosigned_at: Some("2024-03-01T01:00:00Z".into()),
            }],
            alarms: vec![WitnessAlarm {
                id: 1,
                office: "district:an-phu".into(),
                origin: "an-giang/district:an-phu".into(),
                old_size: Some(17),
                old_root: None,
                new_size: Some(12),
                new_root: None,
                reason: "smaller than the last cosigned".into(),
                note: "n".into(),
                at: "2024-03-02T01:00:00Z".into(),
                repeated: 3,
                last_at: None,
            }],
        };
        let province = coord_domain::province::an_giang();
        let page = super::offices_page(province, "province", false, Ok(&sync), Ok(&witness));
        let html = super::super::templates::environment()
            .get_template("offices.html")
            .unwrap()
            .render(minijinja::context! { page => minijinja::Value::from_serialize(page) })
            .unwrap();
        for said in [
            "Huyện ủy An Phú",
            "2 phút trước",
            "mất liên kết",
            "— (chưa biết",
            "<td>17</td>",
            "01/03/2024 08:00",
            "17 → 12",
            "Đảng ủy Công an tỉnh",
        ] {
            assert!(html.contains(said), "{said} not in {html}");
        }
        assert!(!html.contains('{') && !html.contains("125000"), "{html}");
    }

    #[test]
    fn a_witness_nobody_answers_for_is_none_on_a_single_server_and_down_elsewhere() {
        let province = coord_domain::province::an_giang();
        let none = crate::problem::Problem::unavailable("service_unavailable", "no responders");
        let said = |single| {
            let page = super::offices_page(province, "province", single, Err(&none), Err(&none));
            page["witness_error"][0].as_str().unwrap().to_owned()
        };
        assert!(said(true).contains("không chạy bên chứng thực"));
        assert_eq!(said(false), "bên chứng thực không trả lời.");
    }

    #[test]
    fn an_empty_date_of_the_chart_form_is_not_given() {
        assert_eq!(super::given(&Some(" ".into())), None);
        assert_eq!(super::given(&None), None);
        assert_eq!(
            super::given(&Some("2024-01-01".into())),
            Some("2024-01-01".into())
        );
    }
}
