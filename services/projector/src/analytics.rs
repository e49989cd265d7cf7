//! Analytics read models (issue 8): every applied event as a dated, classified fact,
//! for counts by period and month, and the status as of a business date, as recorded up
//! to a moment, or restricted to a window of business dates.
//!
//! One table, `analytics_events`: a row per applied event with its term, unit,
//! business date, month and *measure* (`inspection.concluded`, `supervision.started`,
//! `exchange.sent`, `decision.member.warning`, `case.opened`, ...), and the event
//! itself. It is written in the same savepoint as the other read models, so it moves
//! with the checkpoint and is rebuilt with them.
//!
//! - `from`/`to` and the monthly report are `GROUP BY` queries over the date index.
//! - `as_of_date` replays the events dated up to that day (read through the date index,
//!   in log order) into an in-memory store and asks it for the status.
//! - `as_of` replays every event *recorded* (`recorded_at`, stamped by the office that
//!   wrote it) up to a moment, whatever order it arrived in here: an office cut off
//!   from the hub sends its events after the cut heals, later in this site's log than
//!   events recorded after them. The index `analytics_events_recorded` on
//!   `(recorded_ns, commit_pos, idx)` gives the positions of those events (k of them)
//!   without reading the others; they are sorted into log order (16 bytes each) and
//!   read by primary key. Cost: O(k log n) reads and O(k) memory for the positions,
//!   then the replay, O(k); independent of the events recorded after the moment.
//! - A status window is two such replays: the flow counts at the end of `to` minus those
//!   at the end of the day before `from`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use coord_domain::discipline::DisciplineEvent;
use coord_domain::{DomainEvent, TermId};
use coord_log::RecordedEvent;
use coord_proto::analytics::{MonthlyReport, MonthlyRow, PeriodCounts, PeriodSummary};
use coord_proto::read::{DistrictStatus, ProvinceSummary, StatusWindow};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::store::{Item, Store, StoreError};

/// The analytics tables (created with the other read models, dropped on rebuild).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS analytics_events (
    commit_pos INTEGER NOT NULL, idx INTEGER NOT NULL,
    term TEXT NOT NULL, unit TEXT NOT NULL, occurred_on TEXT NOT NULL, month TEXT NOT NULL,
    measure TEXT NOT NULL, recorded_ns INTEGER,
    PRIMARY KEY (commit_pos, idx)
);
";

/// The analytics table's query indexes (see `store::INDEXES`: built once a replay into
/// empty read models caught up).
pub const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS analytics_events_date ON analytics_events(occurred_on);
CREATE INDEX IF NOT EXISTS analytics_events_recorded ON analytics_events(recorded_ns, commit_pos, idx);
CREATE INDEX IF NOT EXISTS analytics_events_term ON analytics_events(term, occurred_on, unit);
";

/// Tables to drop on rebuild.
pub const TABLES: [&str; 1] = ["analytics_events"];

/// Events replayed per batch for `as_of`.
const REPLAY_BATCH: usize = 1_000;

/// Rows whose `recorded_ns` is filled per statement when an older database is brought
/// up to date.
const BACKFILL_BATCH: i64 = 10_000;

/// Brings an `analytics_events` table from before `recorded_ns` up to date (before
/// [`INDEXES`] creates its index): adds the column and fills it from each row's event.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('analytics_events')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if columns.is_empty() || columns.iter().any(|c| c == "recorded_ns") {
        return Ok(());
    }
    tracing::info!("analytics_events: adding recorded_ns");
    conn.execute_batch("ALTER TABLE analytics_events ADD COLUMN recorded_ns INTEGER")?;
    loop {
        let rows: Vec<(i64, i64, String)> = conn
            .prepare(
                "SELECT commit_pos, idx, event FROM analytics_events
                 WHERE recorded_ns IS NULL LIMIT ?1",
            )?
            .query_map([BACKFILL_BATCH], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        for (commit, idx, text) in rows {
            let ns = serde_json::from_str::<RecordedEvent>(&text).map_or(0, |e| recorded_ns(&e));
            conn.execute(
                "UPDATE analytics_events SET recorded_ns = ?3 WHERE commit_pos = ?1 AND idx = ?2",
                params![commit, idx, ns],
            )?;
        }
    }
}

/// The moment an event was recorded, in nanoseconds since 1970 (the moment's order;
/// saturating past 2262).
fn recorded_ns(e: &RecordedEvent) -> i64 {
    nanos(e.recorded_at)
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// What an event's aggregate row says for its analytics row, when the event's apply
/// function learnt it already.
pub struct Known {
    pub term: String,
    /// The column that classes the event's measure (an inspection's kind, ...).
    pub class: String,
}

/// Records one event just applied to the read models (same transaction), on its
/// occurrence `date` (`YYYY-MM-DD`); its aggregate's term and class are looked up
/// unless `known`.
pub fn record(
    conn: &Connection,
    e: &RecordedEvent,
    unit: &str,
    date: &str,
    known: Option<Known>,
) -> rusqlite::Result<()> {
    let (term, class) = match known {
        Some(k) => (k.term, k.class),
        None => match lookup(conn, e)? {
            Some(found) => found,
            None => return Ok(()),
        },
    };
    let p = e.pos();
    crate::store::exec(
        conn,
        "INSERT OR REPLACE INTO analytics_events (commit_pos, idx, term, unit, occurred_on, month, measure, recorded_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            p.commit as i64,
            p.index as i64,
            term,
            unit,
            date,
            &date[..7],
            measure(e, &class),
            recorded_ns(e),
        ],
    )?;
    Ok(())
}

/// The term and class of the aggregate row an event belongs to, if there is one.
fn lookup(conn: &Connection, e: &RecordedEvent) -> rusqlite::Result<Option<(String, String)>> {
    let id = e.stream_id.id();
    // Whose row: the event's office's; an older log's acknowledgement on an exchange
    // stream is the recipient's, of the exchange sent to it.
    let (table, key, extra, owner) = match e.stream_id.category() {
        "inspection" => ("inspections", "inspection_id", "kind", "office"),
        "exchange" if e.event_type == "InformationAcknowledged" => {
            ("exchanges", "exchange_id", "'exchange'", "to_office")
        }
        "exchange" => ("exchanges", "exchange_id", "'exchange'", "office"),
        "receipt" => ("receipts", "receipt_id", "'exchange'", "office"),
        "appeal" => ("appeals", "appeal_id", "'appeal'", "office"),
        "discipline" => ("discipline_cases", "case_id", "subject_kind", "office"),
        _ => return Ok(None),
    };
    conn.prepare_cached(&format!(
        "SELECT term, {extra} FROM {table} WHERE {key} = ?1 AND {owner} = ?2"
    ))?
    .query_row([id, e.office.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
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
            match DisciplineEvent::decode_ref(&e.event_type, e.schema_version, &e.payload) {
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

/// Where a replay stops: events dated up to the end of a business date, or events
/// recorded up to a moment.
#[derive(Debug, Clone)]
pub enum Cutoff {
    /// `occurred_on` at or before this date (YYYY-MM-DD).
    Dated(String),
    /// `recorded_at` at or before this moment.
    Recorded(DateTime<Utc>),
}

/// Replays into a scratch store the events before `cutoff`, in log order: the cost is
/// proportional to the events before the cutoff, not to the whole log.
fn replay(store: &Store, cutoff: &Cutoff) -> Result<Store, StoreError> {
    let mut scratch = Store::open_in_memory(store.province().clone())?;
    let mut batch = Vec::with_capacity(REPLAY_BATCH);
    let mut push = |text: String| -> Result<(), StoreError> {
        if let Ok(event) = serde_json::from_str::<RecordedEvent>(&text) {
            batch.push(Item::Event(event));
        }
        if batch.len() == REPLAY_BATCH {
            scratch.apply_batch(&batch)?;
            batch.clear();
        }
        Ok(())
    };
    match cutoff {
        Cutoff::Dated(d) => {
            let mut stmt = store.connection().prepare(
                "SELECT t.event FROM analytics_events a JOIN timeline t USING (commit_pos, idx)
                 WHERE a.occurred_on <= ?1 ORDER BY a.commit_pos, a.idx",
            )?;
            let mut rows = stmt.query([d])?;
            while let Some(r) = rows.next()? {
                push(r.get(0)?)?;
            }
        }
        Cutoff::Recorded(t) => {
            let mut by_key = store
                .connection()
                .prepare("SELECT event FROM timeline WHERE commit_pos = ?1 AND idx = ?2")?;
            for (commit, idx) in recorded_before(store, *t)? {
                push(by_key.query_row([commit, idx], |r| r.get(0))?)?;
            }
        }
    }
    scratch.apply_batch(&batch)?;
    Ok(scratch)
}

/// The positions of the events recorded at or before `t`, in log order (through the
/// `recorded_ns` index: the others are not read).
fn recorded_before(store: &Store, t: DateTime<Utc>) -> Result<Vec<(i64, i64)>, StoreError> {
    let mut positions: Vec<(i64, i64)> = store
        .connection()
        .prepare("SELECT commit_pos, idx FROM analytics_events WHERE recorded_ns <= ?1")?
        .query_map([nanos(t)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    positions.sort_unstable();
    Ok(positions)
}

/// The province summary as of `cutoff`.
pub fn province_as_of(
    store: &Store,
    term: TermId,
    cutoff: &Cutoff,
) -> Result<ProvinceSummary, StoreError> {
    let mut summary = replay(store, cutoff)?.province_summary(term)?;
    summary.position = position(store)?;
    Ok(summary)
}

/// Every district's status as of `cutoff`.
pub fn districts_as_of(
    store: &Store,
    term: TermId,
    cutoff: &Cutoff,
) -> Result<Vec<DistrictStatus>, StoreError> {
    replay(store, cutoff)?.district_statuses(term)
}

/// Counts that accumulate (events happened), as JSON pointers into a province summary
/// or a district status; the other counts are states, read at the end of the window.
const FLOWS: [&str; 18] = [
    "/inspections/concluded",
    "/inspections/cancelled",
    "/inspections_by_kind/inspection/concluded",
    "/inspections_by_kind/inspection/cancelled",
    "/inspections_by_kind/supervision/concluded",
    "/inspections_by_kind/supervision/cancelled",
    "/exchanges/sent",
    "/exchanges/to_district",
    "/exchanges/to_province",
    "/discipline/organizations/reprimand",
    "/discipline/organizations/warning",
    "/discipline/organizations/dissolution",
    "/discipline/members/reprimand",
    "/discipline/members/warning",
    "/discipline/members/removal_from_post",
    "/discipline/members/expulsion",
    "/discipline/organization_decisions",
    "/discipline/member_decisions",
];

/// The state at the end of the window with each flow count replaced by its change
/// over the window (at the end minus before the start).
fn net<T: Serialize + DeserializeOwned>(end: T, before: &T) -> Result<T, StoreError> {
    let mut end = serde_json::to_value(end).map_err(window_error)?;
    let before = serde_json::to_value(before).map_err(window_error)?;
    for p in FLOWS {
        let b = before.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        if let Some(v) = end.pointer_mut(p) {
            *v = Value::from(v.as_u64().unwrap_or(0).saturating_sub(b));
        }
    }
    serde_json::from_value(end).map_err(window_error)
}

fn window_error(e: serde_json::Error) -> StoreError {
    StoreError::from(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// The two replays of a window: to the end of `to`, and to the day before `from`.
fn window_cutoffs(w: &Window) -> (Cutoff, Option<Cutoff>) {
    let end = Cutoff::Dated(w.to.clone().unwrap_or_else(|| "9999-12-31".into()));
    let before = w
        .from
        .as_deref()
        .and_then(|f| NaiveDate::parse_from_str(f, "%Y-%m-%d").ok())
        .and_then(|d| d.pred_opt())
        .map(|d| Cutoff::Dated(d.format("%Y-%m-%d").to_string()));
    (end, before)
}

/// The province summary restricted to a window: concluded and cancelled inspections,
/// exchanges and decisions in force dated in it; states as at its end.
pub fn province_window(
    store: &Store,
    term: TermId,
    w: &Window,
) -> Result<ProvinceSummary, StoreError> {
    let (end, before) = window_cutoffs(w);
    let mut summary = province_as_of(store, term, &end)?;
    if let Some(b) = before {
        summary = net(summary, &province_as_of(store, term, &b)?)?;
    }
    summary.window = Some(StatusWindow {
        from: w.from.clone(),
        to: w.to.clone(),
    });
    Ok(summary)
}

/// Every district's status restricted to a window (see [`province_window`]).
pub fn districts_window(
    store: &Store,
    term: TermId,
    w: &Window,
) -> Result<Vec<DistrictStatus>, StoreError> {
    let (end, before) = window_cutoffs(w);
    let districts = districts_as_of(store, term, &end)?;
    let Some(b) = before else {
        return Ok(districts);
    };
    let earlier = districts_as_of(store, term, &b)?;
    districts
        .into_iter()
        .zip(&earlier)
        .map(|(d, e)| net(d, e))
        .collect()
}

pub fn position(store: &Store) -> Result<u64, StoreError> {
    Ok(store.checkpoint()?.map(|c| c.commit).unwrap_or(0))
}
