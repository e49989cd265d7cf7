//! How each event changes the read models: one function per event type, grouped by
//! aggregate, each changing its aggregate's rows and answering the unit it concerns
//! and the Vietnamese summary for the timeline ([`Row`]); [`apply_event`] dispatches
//! and writes the timeline and analytics rows every event has. No network I/O, no
//! async code; the caller owns the transaction.

use coord_domain::appeal::{self, AppealEvent};
use coord_domain::discipline::{self, AppealResolution, DisciplineEvent, Subject};
use coord_domain::exchange::{self, ExchangeEvent};
use coord_domain::inspection::{self, InspectionEvent, InspectionKind};
use coord_domain::receipt::{self, ReceiptEvent};
use coord_domain::{Body, Office, Province};
use coord_log::RecordedEvent;
use std::cell::RefCell;

use rusqlite::{Connection, OptionalExtension, ToSql, params};

use crate::analytics::Known;
use crate::store::{
    Skip, decode, exchange_unit_sent_to, exec, expect_one, fmt_date, json_name, unit_of,
};

/// What an event is applied with.
struct Cx<'a> {
    conn: &'a Connection,
    province: &'a Province,
    e: &'a RecordedEvent,
    /// The aggregate's term and analytics class, when its function learnt them (the
    /// analytics row then needs no lookup).
    known: RefCell<Option<Known>>,
}

impl Cx<'_> {
    /// A body's Vietnamese name as it was on the event's date.
    fn body_vi(&self, b: &Body) -> String {
        b.label_vi(self.province, Some(self.e.occurred_at))
    }
}

/// The unit an event concerns, and its timeline summary.
type Row = (String, String);

/// Applies one event to the read models (inside the caller's transaction): the
/// function of its type changes its aggregate's rows and says the unit and the
/// timeline's summary; the timeline and analytics rows are the same for all.
pub(crate) fn apply_event(
    conn: &Connection,
    province: &Province,
    e: &RecordedEvent,
) -> Result<(), Skip> {
    let cx = &Cx {
        conn,
        province,
        e,
        known: RefCell::new(None),
    };
    let (unit, summary) = match e.stream_id.category() {
        "inspection" => match decode::<InspectionEvent>(e)? {
            InspectionEvent::InspectionScheduled(s) => inspection_scheduled(cx, s)?,
            InspectionEvent::InspectionStarted(s) => inspection_started(cx, s)?,
            InspectionEvent::InspectionConcluded(s) => inspection_concluded(cx, s)?,
            InspectionEvent::InspectionCancelled(s) => inspection_cancelled(cx, s)?,
        },
        "exchange" => match decode::<ExchangeEvent>(e)? {
            ExchangeEvent::InformationExchanged(s) => information_exchanged(cx, s)?,
            ExchangeEvent::InformationAcknowledged(s) => {
                information_acknowledged_on_exchange(cx, s)?
            }
        },
        "receipt" => match decode::<ReceiptEvent>(e)? {
            ReceiptEvent::InformationAcknowledged(s) => receipt_acknowledged(cx, s)?,
        },
        "appeal" => match decode::<AppealEvent>(e)? {
            AppealEvent::DisciplineAppealed(s) => appeal_lodged(cx, s)?,
        },
        "discipline" => match decode::<DisciplineEvent>(e)? {
            DisciplineEvent::DisciplineCaseOpened(s) => discipline_case_opened(cx, s)?,
            DisciplineEvent::DisciplineDecided(s) => discipline_decided(cx, s)?,
            DisciplineEvent::DisciplineCaseClosed(s) => discipline_case_closed(cx, s)?,
            DisciplineEvent::DisciplineAppealed(s) => case_appealed(cx, s)?,
            DisciplineEvent::AppealResolved(s) => appeal_resolved(cx, s)?,
        },
        other => {
            return Err(Skip::Undecodable(format!(
                "unknown stream category `{other}`"
            )));
        }
    };
    let p = e.pos();
    let date = fmt_date(e.occurred_at);
    exec(
        conn,
        "INSERT INTO timeline (commit_pos, idx, unit, event_id, event_type, stream_id, occurred_at, recorded_at, office, actor, summary_vi, event)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            p.commit as i64, p.index as i64, unit, e.event_id.to_string(), e.event_type, e.stream_id.to_string(),
            date, e.recorded_at.to_rfc3339(), e.office, e.actor, summary, serde_json::to_string(e).unwrap_or_default(),
        ],
    )?;
    crate::analytics::record(conn, e, &unit, &date, cx.known.take())?;
    Ok(())
}

/// `InspectionScheduled` (InspectionEvent).
fn inspection_scheduled(cx: &Cx<'_>, s: inspection::InspectionScheduled) -> Result<Row, Skip> {
    let conn = cx.conn;
    let e = cx.e;
    let id = s.inspection_id.to_string();
    exec(
        conn,
        "INSERT INTO inspections (office, inspection_id, term, unit, kind, category, coordinating_body, status, decided_on)
         VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, 'scheduled', ?7)",
        params![id, s.term.to_string(), s.unit.as_str(), json_name(&s.kind), json_name(&s.category),
    s.coordinating_body.to_string(), fmt_date(s.decided_on), e.office],
    )
    .map_err(|err| Skip::writing(format!("inspection {id} cannot be inserted"), err))?;
    cx.known.replace(Some(Known {
        term: s.term.to_string(),
        class: json_name(&s.kind),
    }));
    let verb = if s.kind == InspectionKind::Inspection {
        "Quyết định kiểm tra"
    } else {
        "Quyết định giám sát"
    };
    Ok((
        s.unit.to_string(),
        format!("{verb} {} ({})", s.category.label_vi(), s.decision_ref),
    ))
}

/// `InspectionStarted` (InspectionEvent).
fn inspection_started(cx: &Cx<'_>, s: inspection::InspectionStarted) -> Result<Row, Skip> {
    let unit = step(
        cx,
        &s.inspection_id.to_string(),
        "UPDATE inspections SET status = 'in_progress', started_on = ?3
         WHERE inspection_id = ?1 AND office = ?2 AND status = 'scheduled'
         RETURNING unit, term, kind",
        &[&fmt_date(s.started_on)],
        "scheduled inspection",
    )?;
    Ok((unit, "Bắt đầu kiểm tra, giám sát".into()))
}

/// `InspectionConcluded` (InspectionEvent).
fn inspection_concluded(cx: &Cx<'_>, s: inspection::InspectionConcluded) -> Result<Row, Skip> {
    let id = s.inspection_id.to_string();
    let unit = step(
        cx,
        &id,
        "UPDATE inspections SET status = 'concluded', concluded_on = ?3, outcome = ?4
         WHERE inspection_id = ?1 AND office = ?2 AND status = 'in_progress'
         RETURNING unit, term, kind",
        &[&fmt_date(s.concluded_on), &json_name(&s.outcome)],
        "in_progress inspection",
    )?;
    Ok((
        unit,
        format!(
            "Thông báo kết luận: {} ({})",
            s.outcome.label_vi(),
            s.conclusion_ref
        ),
    ))
}

/// `InspectionCancelled` (InspectionEvent).
fn inspection_cancelled(cx: &Cx<'_>, s: inspection::InspectionCancelled) -> Result<Row, Skip> {
    let unit = step(
        cx,
        &s.inspection_id.to_string(),
        "UPDATE inspections SET status = 'cancelled', cancelled_on = ?3
         WHERE inspection_id = ?1 AND office = ?2 AND status IN ('scheduled', 'in_progress')
         RETURNING unit, term, kind",
        &[&fmt_date(s.cancelled_on)],
        "open inspection",
    )?;
    Ok((unit, format!("Hủy kiểm tra, giám sát: {}", s.reason)))
}

/// One step of the inspection `id` of the event's office: `update` (its id `?1`, its
/// office `?2`, then `values`) changes its row if it is in the status the step
/// starts from (`what` names it otherwise) and returns its unit, term and kind.
fn step(
    cx: &Cx<'_>,
    id: &str,
    update: &str,
    values: &[&dyn ToSql],
    what: &str,
) -> Result<String, Skip> {
    let mut all: Vec<&dyn ToSql> = vec![&id, &cx.e.office];
    all.extend_from_slice(values);
    let (unit, term, class): (String, String, String) = cx
        .conn
        .prepare_cached(update)?
        .query_row(all.as_slice(), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .ok_or_else(|| Skip::Inconsistent(format!("{what} {id} is not in the read model")))?;
    cx.known.replace(Some(Known { term, class }));
    Ok(unit)
}

/// `InformationExchanged` (ExchangeEvent).
fn information_exchanged(cx: &Cx<'_>, s: exchange::InformationExchanged) -> Result<Row, Skip> {
    let conn = cx.conn;
    let e = cx.e;
    let body_vi = |b: &Body| cx.body_vi(b);
    let id = s.exchange_id.to_string();
    let direction = if s.to.is_provincial() {
        "to_province"
    } else {
        "to_district"
    };
    // A receipt written at the recipient's office may have arrived first.
    let to_office = s.to.office().to_string();
    exec(
        conn,
        "INSERT INTO exchanges (office, exchange_id, to_office, term, unit, from_body, to_body, direction, topic, sent_on, acknowledged_on)
         VALUES (?9, ?1, ?10, ?2, ?3, ?4, ?5, ?6, ?7, ?8,
     (SELECT acknowledged_on FROM receipts WHERE exchange_id = ?1 AND office = ?10))",
        params![id, s.term.to_string(), s.unit.as_str(), s.from.to_string(), s.to.to_string(),
    direction, json_name(&s.topic), fmt_date(s.sent_on), e.office, to_office],
    )
    .map_err(|err| Skip::writing(format!("exchange {id} cannot be inserted"), err))?;
    Ok((
        s.unit.to_string(),
        format!(
            "Trao đổi thông tin ({}): {} → {}: {}",
            s.topic.label_vi(),
            body_vi(&s.from),
            body_vi(&s.to),
            s.subject
        ),
    ))
}

/// `InformationAcknowledged` (ExchangeEvent).
fn information_acknowledged_on_exchange(
    cx: &Cx<'_>,
    s: exchange::InformationAcknowledged,
) -> Result<Row, Skip> {
    let conn = cx.conn;
    let e = cx.e;
    let body_vi = |b: &Body| cx.body_vi(b);
    let id = s.exchange_id.to_string();
    let changed = exec(
        conn,
        // An older log's acknowledgement on the exchange's own stream: of the
        // exchange of that id sent to the acknowledging body.
        "UPDATE exchanges SET acknowledged_on = ?2
         WHERE exchange_id = ?1 AND to_office = ?3 AND acknowledged_on IS NULL",
        params![id, fmt_date(s.acknowledged_on), s.by.office().to_string()],
    )?;
    expect_one(changed, "unacknowledged exchange", &id)?;
    Ok((
        unit_of(conn, "exchanges", "exchange_id", &id, &e.office)
            .or_else(|_| exchange_unit_sent_to(conn, &id, &s.by.office()))?,
        format!("{} tiếp nhận thông tin", body_vi(&s.by)),
    ))
}

/// `InformationAcknowledged` (ReceiptEvent).
fn receipt_acknowledged(cx: &Cx<'_>, s: receipt::Acknowledgement) -> Result<Row, Skip> {
    let conn = cx.conn;
    let e = cx.e;
    let body_vi = |b: &Body| cx.body_vi(b);
    let id = s.exchange_id.to_string();
    exec(
        conn,
        "INSERT INTO receipts (office, exchange_id, receipt_id, term, unit, by_body, acknowledged_on)
         VALUES (?7, ?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, e.stream_id.id().to_string(), s.term.to_string(), s.unit.as_str(),
    s.by.to_string(), fmt_date(s.acknowledged_on), e.office],
    )
    .map_err(|err| Skip::writing(format!("receipt of exchange {id} cannot be inserted"), err))?;
    // The exchange may not have arrived yet (it was written at another
    // office): then its insert picks the receipt up. The receipt is of the
    // exchange sent to this receipt's office (two offices may have picked
    // one exchange id).
    exec(
        conn,
        "UPDATE exchanges SET acknowledged_on = ?2
         WHERE exchange_id = ?1 AND to_office = ?3 AND acknowledged_on IS NULL",
        params![id, fmt_date(s.acknowledged_on), e.office],
    )?;
    Ok((
        s.unit.to_string(),
        format!("{} tiếp nhận thông tin", body_vi(&s.by)),
    ))
}

/// `DisciplineAppealed` (AppealEvent).
fn appeal_lodged(cx: &Cx<'_>, s: appeal::Appealed) -> Result<Row, Skip> {
    let conn = cx.conn;
    let e = cx.e;
    let id = s.case_id.to_string();
    if e.office != Office::District(s.unit.clone()).to_string() {
        return Err(Skip::Inconsistent(format!(
            "an appeal against case {id} is lodged by the office of unit {}, not by {}",
            s.unit, e.office
        )));
    }
    exec(
        conn,
        "INSERT INTO appeals (office, case_id, appeal_id, term, unit, appealed_on) VALUES (?6, ?1, ?2, ?3, ?4, ?5)",
        params![id, e.stream_id.id().to_string(), s.term.to_string(), s.unit.as_str(),
    fmt_date(s.appealed_on), e.office],
    )
    .map_err(|err| Skip::writing(format!("appeal against case {id} cannot be inserted"), err))?;
    // The case may not have arrived, or not be decided here yet: its decision
    // then finds the appeal. A resolution that arrived first stays.
    exec(
        conn,
        "UPDATE discipline_cases SET status = 'appeal_pending'
         WHERE case_id = ?1 AND status = 'decided' AND unit = ?2",
        [&id, s.unit.as_str()],
    )?;
    Ok((s.unit.to_string(), "Khiếu nại quyết định kỷ luật".into()))
}

/// `DisciplineCaseOpened` (DisciplineEvent).
fn discipline_case_opened(cx: &Cx<'_>, s: discipline::DisciplineCaseOpened) -> Result<Row, Skip> {
    let conn = cx.conn;
    let e = cx.e;
    let id = s.case_id.to_string();
    let (kind, who) = match &s.subject {
        Subject::Organization { name } => ("organization", format!("tổ chức đảng {name}")),
        Subject::Member { member, .. } => ("member", format!("đảng viên {member}")),
    };
    // Who, for counting people: a member by the reference (one person
    // wherever their cases are), an organization by its unit and name.
    let subject_ref = match &s.subject {
        Subject::Organization { name } => format!("{}/{name}", s.unit),
        Subject::Member { member, .. } => member.to_string(),
    };
    exec(
        conn,
        "INSERT INTO discipline_cases (office, case_id, term, unit, subject_kind, status, subject_ref) VALUES (?6, ?1, ?2, ?3, ?4, 'open', ?5)",
        params![id, s.term.to_string(), s.unit.as_str(), kind, subject_ref, e.office],
    )
    .map_err(|err| Skip::writing(format!("case {id} cannot be inserted"), err))?;
    Ok((
        s.unit.to_string(),
        format!("Xem xét thi hành kỷ luật {who}"),
    ))
}

/// `DisciplineDecided` (DisciplineEvent).
fn discipline_decided(cx: &Cx<'_>, s: discipline::DisciplineDecided) -> Result<Row, Skip> {
    let conn = cx.conn;
    let e = cx.e;
    let id = s.case_id.to_string();
    // The appeal, written at the unit's office, may have arrived first.
    let changed = exec(
        conn,
        "UPDATE discipline_cases SET form_in_force = ?2, decided_on = ?3,
             status = CASE WHEN EXISTS (SELECT 1 FROM appeals a WHERE a.case_id = ?1
                            AND a.unit = discipline_cases.unit)
          THEN 'appeal_pending' ELSE 'decided' END
         WHERE case_id = ?1 AND office = ?4 AND status = 'open'",
        params![id, s.form.as_str(), fmt_date(s.decided_on), e.office],
    )?;
    expect_one(changed, "open case", &id)?;
    Ok((
        unit_of(conn, "discipline_cases", "case_id", &id, &e.office)?,
        format!(
            "Quyết định kỷ luật: {} ({})",
            s.form.label_vi(),
            s.decision_ref
        ),
    ))
}

/// `DisciplineCaseClosed` (DisciplineEvent).
fn discipline_case_closed(cx: &Cx<'_>, s: discipline::DisciplineCaseClosed) -> Result<Row, Skip> {
    let conn = cx.conn;
    let e = cx.e;
    let id = s.case_id.to_string();
    let changed = exec(
        conn,
        "UPDATE discipline_cases SET status = 'closed' WHERE case_id = ?1 AND office = ?2 AND status = 'open'",
        [&id, &e.office],
    )?;
    expect_one(changed, "open case", &id)?;
    Ok((
        unit_of(conn, "discipline_cases", "case_id", &id, &e.office)?,
        format!("Không thi hành kỷ luật: {}", s.reason),
    ))
}

/// `DisciplineAppealed` (DisciplineEvent).
fn case_appealed(cx: &Cx<'_>, s: discipline::DisciplineAppealed) -> Result<Row, Skip> {
    let conn = cx.conn;
    let e = cx.e;
    let id = s.case_id.to_string();
    let changed = exec(
        conn,
        "UPDATE discipline_cases SET status = 'appeal_pending' WHERE case_id = ?1 AND office = ?2 AND status = 'decided'",
        [&id, &e.office],
    )?;
    expect_one(changed, "decided case", &id)?;
    Ok((
        unit_of(conn, "discipline_cases", "case_id", &id, &e.office)?,
        "Khiếu nại quyết định kỷ luật".into(),
    ))
}

/// `AppealResolved` (DisciplineEvent).
fn appeal_resolved(cx: &Cx<'_>, s: discipline::AppealResolved) -> Result<Row, Skip> {
    let conn = cx.conn;
    let e = cx.e;
    let id = s.case_id.to_string();
    let text = s.resolution.label_vi();
    let (outcome, form) = match s.resolution {
        AppealResolution::Upheld => ("upheld", None),
        AppealResolution::ChangedTo { form } => ("changed", Some(form.as_str())),
        AppealResolution::Annulled => ("annulled", None),
    };
    let changed = exec(
        conn,
        "UPDATE discipline_cases SET status = 'appeal_resolved',
             form_in_force = CASE ?2 WHEN 'upheld' THEN form_in_force WHEN 'changed' THEN ?3 ELSE NULL END
         WHERE case_id = ?1 AND office = ?4 AND status IN ('appeal_pending', 'decided')",
        params![id, outcome, form, e.office],
    )?;
    expect_one(changed, "case under appeal", &id)?;
    Ok((
        unit_of(conn, "discipline_cases", "case_id", &id, &e.office)?,
        format!("Giải quyết khiếu nại: {text}"),
    ))
}
