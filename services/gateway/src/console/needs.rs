//! "What needs doing": the open work of the coordination, each item with its record's
//! link. Served as JSON (`GET /v1/needs?unit=&days=&today=`) and shown on the console's
//! overview and district pages.
//!
//! Folded from the log itself (the gateway's own view of it, as `crate::records` is),
//! one pass over every event: exchanges not acknowledged after `days` days, appeals
//! awaiting resolution with the days left, open cases whose limitation period ends
//! within 90 days (the shortest period, that of a reprimand, from the rules file),
//! inspections past their planned end without a conclusion, and units the term's
//! target still needs. The cost is a read of the whole log per request: fine for a
//! province's few thousand events; a read model in the projector is the next step
//! when logs grow.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::NaiveDate;
use coord_domain::discipline::{DisciplineForm, Subject, Violation};
use coord_domain::rulebook::Limitation;
use coord_domain::{Province, Rulebook};
use coord_log::RecordedEvent;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::problem::Problem;

/// Days an exchange may wait for its acknowledgement before it is listed (default).
pub const DEFAULT_ACK_DAYS: i64 = 7;
/// An open case is listed when its limitation period ends within this many days.
pub const LIMITATION_WINDOW_DAYS: i64 = 90;
/// Days the resolving body has for an appeal, counted from the appeal (Quy định
/// 22-QĐ/TW on complaints about discipline: 90 days at the most).
pub const APPEAL_RESOLUTION_DAYS: i64 = 90;

/// Parameters of `GET /v1/needs`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NeedsParams {
    /// Only this unit's work (unit slug).
    pub unit: Option<String>,
    /// Days an exchange may stay unacknowledged before it is listed (default 7).
    pub days: Option<i64>,
    /// The day to count from (YYYY-MM-DD, default today in Vietnam, UTC+7).
    pub today: Option<String>,
}

/// One piece of open work.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Need {
    /// `unacknowledged_exchange`, `pending_appeal`, `limitation_ending`,
    /// `inspection_overdue` or `unit_not_covered`.
    pub kind: String,
    /// What to do, in Vietnamese.
    pub title_vi: String,
    pub unit: String,
    /// The unit's name in Vietnamese (from the province file; its id if the file does not
    /// know it), e.g. `An Phú`.
    pub unit_name: String,
    /// The record's console page (`/records/<kind>/<id>`), absent for a unit.
    pub record: Option<String>,
    /// The date the item counts from (sent, appealed, planned end, violation).
    #[schema(value_type = Option<String>, format = Date)]
    pub since: Option<NaiveDate>,
    /// Days left until its deadline (negative: past it), where it has one.
    pub days_left: Option<i64>,
}

/// `GET /v1/needs`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Needs {
    #[schema(value_type = String, format = Date)]
    pub today: NaiveDate,
    pub items: Vec<Need>,
}

/// What the fold remembers of one record.
#[derive(Default)]
struct Open {
    exchanges: BTreeMap<String, (String, NaiveDate, String)>,
    acknowledged: BTreeSet<String>,
    cases: BTreeMap<String, (String, Value)>,
    settled: BTreeSet<String>,
    appeals: BTreeMap<String, (String, NaiveDate)>,
    resolved: BTreeSet<String>,
    inspections: BTreeMap<String, (String, NaiveDate)>,
    finished: BTreeSet<String>,
}

fn text(p: &Value, key: &str) -> String {
    p[key].as_str().unwrap_or_default().to_owned()
}

fn date(p: &Value, key: &str) -> Option<NaiveDate> {
    p[key].as_str()?.parse().ok()
}

impl Open {
    fn apply(&mut self, e: &RecordedEvent) {
        let p = &e.payload;
        match e.event_type.as_str() {
            "InformationExchanged" => {
                if let Some(sent) = date(p, "sent_on") {
                    let id = text(p, "exchange_id");
                    self.exchanges
                        .insert(id, (text(p, "unit"), sent, text(p, "subject")));
                }
            }
            "InformationAcknowledged" => {
                self.acknowledged.insert(text(p, "exchange_id"));
            }
            "DisciplineCaseOpened" => {
                self.cases
                    .insert(text(p, "case_id"), (text(p, "unit"), p.clone()));
            }
            "DisciplineDecided" | "DisciplineCaseClosed" => {
                self.settled.insert(text(p, "case_id"));
            }
            "DisciplineAppealed" => {
                if let Some(on) = date(p, "appealed_on") {
                    let unit = self.cases.get(&text(p, "case_id")).map(|c| c.0.clone());
                    self.appeals
                        .insert(text(p, "case_id"), (unit.unwrap_or_default(), on));
                }
            }
            "AppealResolved" => {
                self.resolved.insert(text(p, "case_id"));
            }
            "InspectionScheduled" => {
                if let Some(end) = date(p, "planned_end") {
                    self.inspections
                        .insert(text(p, "inspection_id"), (text(p, "unit"), end));
                }
            }
            "InspectionConcluded" | "InspectionCancelled" => {
                self.finished.insert(text(p, "inspection_id"));
            }
            _ => {}
        }
    }
}

fn need(kind: &str, title_vi: String, unit: &str, record: Option<String>) -> Need {
    Need {
        kind: kind.into(),
        title_vi,
        unit: unit.into(),
        unit_name: String::new(),
        record,
        since: None,
        days_left: None,
    }
}

/// The earliest day an open case's limitation period can end: that of the mildest
/// form, as the rules in force on `today` count it.
fn limitation_deadline(opened: &Value, today: NaiveDate) -> Option<NaiveDate> {
    let subject: Subject = serde_json::from_value(opened["subject"].clone()).ok()?;
    let violation: Violation = serde_json::from_value(opened["violation"].clone()).ok()?;
    match Rulebook::standard().limitation(
        subject.limitation_subject(),
        DisciplineForm::Reprimand,
        violation.category,
        violation.counted_from(),
        &[],
        today,
    ) {
        Limitation::Until { deadline, .. } => Some(deadline),
        _ => None,
    }
}

/// Every item, from the fold of the whole log, for `outstanding` units.
fn items(open: &Open, outstanding: &[(String, String)], today: NaiveDate, days: i64) -> Vec<Need> {
    let mut out = Vec::new();
    for (id, (unit, sent, subject)) in &open.exchanges {
        if !open.acknowledged.contains(id) && (today - *sent).num_days() > days {
            out.push(Need {
                since: Some(*sent),
                ..need(
                    "unacknowledged_exchange",
                    format!("Chưa tiếp nhận thông tin: {subject}"),
                    unit,
                    Some(format!("/records/exchange/{id}")),
                )
            });
        }
    }
    for (id, (unit, on)) in &open.appeals {
        if !open.resolved.contains(id) {
            out.push(Need {
                since: Some(*on),
                days_left: Some(APPEAL_RESOLUTION_DAYS - (today - *on).num_days()),
                ..need(
                    "pending_appeal",
                    "Khiếu nại kỷ luật chờ giải quyết".into(),
                    unit,
                    Some(format!("/records/discipline_case/{id}")),
                )
            });
        }
    }
    for (id, (unit, opened)) in &open.cases {
        if open.settled.contains(id) {
            continue;
        }
        let Some(deadline) = limitation_deadline(opened, today) else {
            continue;
        };
        let left = (deadline - today).num_days();
        if left <= LIMITATION_WINDOW_DAYS {
            out.push(Need {
                days_left: Some(left),
                ..need(
                    "limitation_ending",
                    format!(
                        "Vụ việc sắp hết thời hiệu kỷ luật (ngày {})",
                        coord_proto::labels::vi_day(deadline)
                    ),
                    unit,
                    Some(format!("/records/discipline_case/{id}")),
                )
            });
        }
    }
    for (id, (unit, end)) in &open.inspections {
        if !open.finished.contains(id) && *end < today {
            out.push(Need {
                since: Some(*end),
                days_left: Some((*end - today).num_days()),
                ..need(
                    "inspection_overdue",
                    "Cuộc kiểm tra, giám sát quá hạn kết thúc, chưa kết luận".into(),
                    unit,
                    Some(format!("/records/inspection/{id}")),
                )
            });
        }
    }
    for (unit, name) in outstanding {
        out.push(need(
            "unit_not_covered",
            format!("{name}: chưa được kiểm tra, giám sát trong nhiệm kỳ"),
            unit,
            None,
        ));
    }
    out
}

/// Every event of the log up to its head, folded: the export's snapshot read
/// ([`crate::feed::snapshot`]), which skips unreadable entries (the projector's alarm
/// to raise), stops at the head and ends with an error when the log cannot be read on.
async fn fold_log(state: &AppState) -> Result<Open, Problem> {
    let mut events = crate::feed::snapshot(state, &crate::feed::ExportParams::default())
        .await?
        .rx;
    let mut open = Open::default();
    while let Some(next) = events.next().await {
        let event = next.map_err(|e| Problem::unavailable("log_unavailable", e))?;
        open.apply(&event);
    }
    Ok(open)
}

/// The units of the latest term not yet covered, by id and name.
fn outstanding_units(province: &Province, outstanding: &[String]) -> Vec<(String, String)> {
    province
        .units
        .iter()
        .filter(|u| {
            outstanding
                .iter()
                .any(|o| *o == u.id.to_string() || *o == u.name)
        })
        .map(|u| (u.id.to_string(), u.name.clone()))
        .collect()
}

/// The open work, for one unit or all.
pub async fn compute(state: &AppState, params: NeedsParams) -> Result<Needs, Problem> {
    let summary: coord_proto::read::ProvinceSummary = crate::queries::query(
        state,
        "province_summary",
        coord_proto::read::QueryRequest::default(),
    )
    .await?;
    compute_with(state, params, &summary).await
}

/// [`compute`] with the province summary the caller already has (its units still to
/// cover).
pub async fn compute_with(
    state: &AppState,
    params: NeedsParams,
    summary: &coord_proto::read::ProvinceSummary,
) -> Result<Needs, Problem> {
    let today = match &params.today {
        Some(t) => t
            .parse()
            .map_err(|_| Problem::malformed("bad_query", "`today` must be YYYY-MM-DD"))?,
        // Vietnam's date: the UTC one is a day behind from midnight to 7 in the morning.
        None => chrono::Utc::now()
            .with_timezone(&coord_proto::labels::vietnam_time())
            .date_naive(),
    };
    let outstanding = outstanding_units(&state.province, &summary.districts_outstanding);
    let open = tokio::time::timeout(state.request_timeout, fold_log(state))
        .await
        .map_err(|_| {
            Problem::new(
                coord_proto::ErrorKind::Timeout,
                "upstream_timeout",
                "the log was not read in time",
            )
        })??;
    let days = params.days.unwrap_or(DEFAULT_ACK_DAYS);
    let mut all = items(&open, &outstanding, today, days);
    if let Some(unit) = &params.unit {
        all.retain(|n| &n.unit == unit);
    }
    for n in &mut all {
        n.unit_name = coord_proto::labels::unit_name(&state.province, &n.unit);
    }
    Ok(Needs { today, items: all })
}

/// What needs doing: unacknowledged exchanges, appeals awaiting resolution, cases near
/// the end of their limitation period, overdue inspections, units still to cover.
#[utoipa::path(get, path = "/v1/needs", params(NeedsParams), tag = "status",
    responses((status = 200, body = Needs), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn needs(
    State(s): State<AppState>,
    q: Result<Query<NeedsParams>, QueryRejection>,
) -> Result<Json<Needs>, Problem> {
    let Query(params) = q.map_err(|e| Problem::malformed("bad_query", e.body_text()))?;
    Ok(Json(compute(&s, params).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(event_type: &str, payload: Value) -> RecordedEvent {
        serde_json::from_value(json!({
            "event_id": uuid::Uuid::now_v7(), "stream_id": "exchange-00000000-0000-0000-0000-000000000001",
            "stream_version": 1, "event_type": event_type, "schema_version": 1,
            "occurred_at": "2024-01-01", "recorded_at": "2024-01-01T00:00:00Z",
            "office": "province", "actor": "t", "correlation_id": uuid::Uuid::nil(),
            "causation_id": uuid::Uuid::nil(), "payload": payload
        }))
        .unwrap()
    }

    #[test]
    fn an_exchange_is_listed_once_past_the_days_and_until_acknowledged() {
        let mut open = Open::default();
        let sent =
            json!({"exchange_id": "x1", "unit": "an-phu", "sent_on": "2024-01-01", "subject": "S"});
        open.apply(&event("InformationExchanged", sent));
        let day = |d: &str| d.parse::<NaiveDate>().unwrap();
        assert!(items(&open, &[], day("2024-01-08"), 7).is_empty());
        let listed = items(&open, &[], day("2024-01-09"), 7);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].record.as_deref(), Some("/records/exchange/x1"));
        open.apply(&event(
            "InformationAcknowledged",
            json!({"exchange_id": "x1"}),
        ));
        assert!(items(&open, &[], day("2024-02-01"), 7).is_empty());
    }

    #[test]
    fn an_appeal_counts_its_days_left_until_resolved() {
        let mut open = Open::default();
        open.apply(&event(
            "DisciplineAppealed",
            json!({"case_id": "c1", "appealed_on": "2024-01-01"}),
        ));
        let listed = items(&open, &[], "2024-01-31".parse().unwrap(), 7);
        assert_eq!(listed[0].days_left, Some(APPEAL_RESOLUTION_DAYS - 30));
        open.apply(&event("AppealResolved", json!({"case_id": "c1"})));
        assert!(items(&open, &[], "2024-01-31".parse().unwrap(), 7).is_empty());
    }
}
