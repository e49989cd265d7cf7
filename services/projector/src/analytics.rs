//! Analytics read models (issue 8): every applied event as a dated, classified fact,
//! for counts by period and month, and the status as of a business date.
//!
//! One table, `analytics_events`: a row per applied event with its term, unit,
//! business date, month and *measure* (`inspection.concluded`, `supervision.started`,
//! `exchange.sent`, `decision.member.warning`, `case.opened`, ...), and the event
//! itself. It is written in the same savepoint as the other read models, so it moves
//! with the checkpoint and is rebuilt with them.
//!
//! - `from`/`to` and the monthly report are `GROUP BY` queries over the date index.
//! - `as_of` replays the events dated up to that day (read through the date index, in
//!   log order) into an in-memory store and asks it for the province summary: the cost
//!   is proportional to the events before that day, not to the whole log.

use std::collections::BTreeMap;

use coord_domain::discipline::DisciplineEvent;
use coord_domain::{DomainEvent, TermId};
use coord_log::RecordedEvent;
use coord_proto::analytics::{MonthlyReport, MonthlyRow, PeriodCounts, PeriodSummary};
use coord_proto::read::ProvinceSummary;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{Item, Store, StoreError};

/// The analytics tables (created with the other read models, dropped on rebuild).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS analytics_events (
    commit_pos INTEGER NOT NULL, idx INTEGER NOT NULL,
    term TEXT NOT NULL, unit TEXT NOT NULL, occurred_on TEXT NOT NULL, month TEXT NOT NULL,
    measure TEXT NOT NULL, event TEXT NOT NULL,
    PRIMARY KEY (commit_pos, idx)
);
CREATE INDEX IF NOT EXISTS analytics_events_date ON analytics_events(occurred_on);
CREATE INDEX IF NOT EXISTS analytics_events_term ON analytics_events(term, occurred_on, unit);
";

/// Tables to drop on rebuild.
pub const TABLES: [&str; 1] = ["analytics_events"];

/// Events replayed per batch for `as_of`.
const REPLAY_BATCH: usize = 1_000;

/// Records one event just applied to the read models (same savepoint).
pub fn record(conn: &Connection, e: &RecordedEvent, unit: &str) -> rusqlite::Result<()> {
    let id = e.stream_id.id();
    let (table, key, extra) = match e.stream_id.category() {
        "inspection" => ("inspections", "inspection_id", "kind"),
        "exchange" => ("exchanges", "exchange_id", "'exchange'"),
        "discipline" => ("discipline_cases", "case_id", "subject_kind"),
        _ => return Ok(()),
    };
    let row: Option<(String, String)> = conn
        .query_row(
            &format!("SELECT term, {extra} FROM {table} WHERE {key} = ?1"),
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((term, class)) = row else {
        return Ok(());
    };
    let date = e.occurred_at.format("%Y-%m-%d").to_string();
    let p = e.pos();
    conn.execute(
        "INSERT OR REPLACE INTO analytics_events (commit_pos, idx, term, unit, occurred_on, month, measure, event)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            p.commit as i64,
            p.index as i64,
            term,
            unit,
            date,
            &date[..7],
            measure(e, &class),
            serde_json::to_string(e).unwrap_or_default(),
        ],
    )?;
    Ok(())
}

/// What an event counts as.
fn measure(e: &RecordedEvent, class: &str) -> String {
    let stage = |s: &str| format!("{class}.{s}");
    match e.event_type.as_str() {
        "InspectionScheduled" => stage("scheduled"),
        "InspectionStarted" => stage("started"),
        "InspectionConcluded" => stage("concluded"),
        "InspectionCancelled" => stage("cancelled"),
        "InformationExchanged" => "exchange.sent".into(),
        "InformationAcknowledged" => "exchange.acknowledged".into(),
        "DisciplineDecided" => {
            match DisciplineEvent::decode(&e.event_type, e.schema_version, e.payload.clone()) {
                Ok(DisciplineEvent::DisciplineDecided(d)) => {
                    format!("decision.{class}.{}", d.form.as_str())
                }
                _ => "decision.unknown".into(),
            }
        }
        other => format!("other.{other}"),
    }
}

/// A window of business dates, and optionally one unit.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub from: Option<String>,
    pub to: Option<String>,
    pub unit: Option<String>,
}

impl Window {
    fn bounds(&self) -> (&str, &str, Option<&str>) {
        (
            self.from.as_deref().unwrap_or("0000-01-01"),
            self.to.as_deref().unwrap_or("9999-12-31"),
            self.unit.as_deref(),
        )
    }
}

/// Counts by month and unit, in month then province order of units.
pub fn monthly(store: &Store, term: TermId, w: &Window) -> Result<MonthlyReport, StoreError> {
    let (from, to, unit) = w.bounds();
    let mut stmt = store.connection().prepare(
        "SELECT month, unit, measure, COUNT(*) FROM analytics_events
         WHERE term = ?1 AND occurred_on >= ?2 AND occurred_on <= ?3 AND (?4 IS NULL OR unit = ?4)
         GROUP BY month, unit, measure",
    )?;
    let mut rows = stmt.query(params![term.to_string(), from, to, unit])?;
    let order: Vec<&str> = store
        .province()
        .units
        .iter()
        .map(|u| u.id.as_str())
        .collect();
    let mut by_key: BTreeMap<(String, usize, String), PeriodCounts> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let (month, unit, measure): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let rank = order.iter().position(|u| *u == unit).unwrap_or(usize::MAX);
        by_key
            .entry((month, rank, unit))
            .or_default()
            .add(&measure, r.get::<_, i64>(3)? as u64);
    }
    Ok(MonthlyReport {
        term: term.to_string(),
        from: w.from.clone(),
        to: w.to.clone(),
        unit: w.unit.clone(),
        position: position(store)?,
        rows: by_key
            .into_iter()
            .map(|((month, _, unit), counts)| MonthlyRow {
                month,
                unit,
                counts,
            })
            .collect(),
    })
}

/// Totals of a window.
pub fn period(store: &Store, term: TermId, w: &Window) -> Result<PeriodSummary, StoreError> {
    let report = monthly(store, term, w)?;
    let mut totals = PeriodCounts::default();
    let mut stmt = store.connection().prepare(
        "SELECT measure, COUNT(*) FROM analytics_events
         WHERE term = ?1 AND occurred_on >= ?2 AND occurred_on <= ?3 AND (?4 IS NULL OR unit = ?4)
         GROUP BY measure",
    )?;
    let (from, to, unit) = w.bounds();
    let mut rows = stmt.query(params![term.to_string(), from, to, unit])?;
    while let Some(r) = rows.next()? {
        totals.add(&r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64);
    }
    Ok(PeriodSummary {
        term: report.term,
        from: report.from,
        to: report.to,
        unit: report.unit,
        position: report.position,
        totals,
    })
}

/// The province summary as of the end of `date`: the events dated up to then,
/// replayed in log order into a scratch store.
pub fn province_as_of(
    store: &Store,
    term: TermId,
    date: &str,
) -> Result<ProvinceSummary, StoreError> {
    let mut scratch = Store::open_in_memory(store.province().clone())?;
    let mut stmt = store.connection().prepare(
        "SELECT event FROM analytics_events WHERE occurred_on <= ?1 ORDER BY commit_pos, idx",
    )?;
    let mut rows = stmt.query([date])?;
    let mut batch = Vec::with_capacity(REPLAY_BATCH);
    while let Some(r) = rows.next()? {
        let text: String = r.get(0)?;
        if let Ok(event) = serde_json::from_str::<RecordedEvent>(&text) {
            batch.push(Item::Event(event));
        }
        if batch.len() == REPLAY_BATCH {
            scratch.apply_batch(&batch)?;
            batch.clear();
        }
    }
    scratch.apply_batch(&batch)?;
    let mut summary = scratch.province_summary(term)?;
    summary.position = position(store)?;
    Ok(summary)
}

fn position(store: &Store) -> Result<u64, StoreError> {
    Ok(store.checkpoint()?.map(|c| c.commit).unwrap_or(0))
}
