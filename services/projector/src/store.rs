//! The read models in SQLite, and the only code that writes them.
//!
//! The tables are a normalized projection of the log (one row per inspection, exchange
//! and discipline case, one row per timeline entry); the status views are aggregate
//! queries over them. Every batch of events is applied in one transaction that also
//! moves the checkpoint, so a crash leaves the model and its position consistent:
//! nothing is counted twice and nothing is skipped. Each event is applied inside a
//! savepoint; an event that cannot be applied *because of its content* is rolled back
//! alone and recorded as a dead letter, and the projection goes on. A failure of the
//! storage itself (busy, locked, I/O error, disk full, read-only, cannot open) is not
//! the event's fault: the whole batch rolls back, the checkpoint stays, and the caller
//! retries (see [`StoreError`] and [`is_content_error`]).
//!
//! Work that crosses offices is joined here, whatever order it arrives in: a receipt
//! (the recipient office's acknowledgement of an exchange) is kept in `receipts` and
//! sets the exchange's `acknowledged_on` if the exchange is there; an exchange inserted
//! later takes the date from a receipt already waiting. Both orders give the same rows,
//! so an event referring to something not received yet is neither lost nor a dead letter.
//! An appeal (the case unit's office's own stream) is kept the same way in `appeals`: a
//! case's status is derived from what is held (decision, appeal, resolution), so an
//! appeal arriving before its case, or a resolution before its appeal, gives the same
//! rows as the order they were decided in.
//!
//! This module does no network I/O and has no async code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use coord_domain::{DomainEvent, Office, Province, TermId, UnitId};
use coord_log::{EventPosition, RecordedEvent};
use coord_proto::read::{
    DeadLetter, DisciplineCounts, DistrictStatus, InspectionCounts, LogAlarm, ProvinceSummary,
    TimelineEntry, TimelinePage,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    commit_pos INTEGER NOT NULL,
    idx INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS inspections (
    office TEXT NOT NULL, inspection_id TEXT NOT NULL,
    term TEXT NOT NULL, unit TEXT NOT NULL, kind TEXT NOT NULL, category TEXT NOT NULL,
    coordinating_body TEXT NOT NULL, status TEXT NOT NULL, decided_on TEXT NOT NULL,
    started_on TEXT, concluded_on TEXT, cancelled_on TEXT, outcome TEXT,
    PRIMARY KEY (office, inspection_id)
);
CREATE TABLE IF NOT EXISTS exchanges (
    office TEXT NOT NULL, exchange_id TEXT NOT NULL, to_office TEXT NOT NULL,
    term TEXT NOT NULL, unit TEXT NOT NULL, from_body TEXT NOT NULL, to_body TEXT NOT NULL,
    direction TEXT NOT NULL, topic TEXT NOT NULL, sent_on TEXT NOT NULL, acknowledged_on TEXT,
    PRIMARY KEY (office, exchange_id)
);
CREATE TABLE IF NOT EXISTS receipts (
    office TEXT NOT NULL, exchange_id TEXT NOT NULL, receipt_id TEXT NOT NULL,
    term TEXT NOT NULL, unit TEXT NOT NULL, by_body TEXT NOT NULL, acknowledged_on TEXT NOT NULL,
    PRIMARY KEY (office, exchange_id), UNIQUE (office, receipt_id)
);
CREATE TABLE IF NOT EXISTS appeals (
    office TEXT NOT NULL, case_id TEXT NOT NULL, appeal_id TEXT NOT NULL,
    term TEXT NOT NULL, unit TEXT NOT NULL, appealed_on TEXT NOT NULL,
    PRIMARY KEY (office, case_id), UNIQUE (office, appeal_id)
);
CREATE TABLE IF NOT EXISTS discipline_cases (
    office TEXT NOT NULL, case_id TEXT NOT NULL,
    term TEXT NOT NULL, unit TEXT NOT NULL, subject_kind TEXT NOT NULL, status TEXT NOT NULL,
    form_in_force TEXT, decided_on TEXT,
    subject_ref TEXT NOT NULL,
    PRIMARY KEY (office, case_id)
);
CREATE TABLE IF NOT EXISTS timeline (
    commit_pos INTEGER NOT NULL, idx INTEGER NOT NULL, unit TEXT NOT NULL,
    event_id TEXT NOT NULL, event_type TEXT NOT NULL, stream_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL, office TEXT NOT NULL, actor TEXT NOT NULL,
    summary_vi TEXT NOT NULL, event TEXT NOT NULL,
    PRIMARY KEY (commit_pos, idx)
);
CREATE TABLE IF NOT EXISTS rebuilds (
    generation INTEGER PRIMARY KEY,
    target INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    replayed INTEGER,
    completed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    identity TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alarms (
    commit_pos INTEGER NOT NULL, idx INTEGER NOT NULL,
    code TEXT NOT NULL, subject TEXT, detail TEXT NOT NULL, recorded_at TEXT NOT NULL,
    PRIMARY KEY (commit_pos, idx)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    commit_pos INTEGER NOT NULL, idx INTEGER NOT NULL,
    stream_id TEXT, event_type TEXT, reason TEXT NOT NULL, recorded_at TEXT NOT NULL,
    PRIMARY KEY (commit_pos, idx)
);
";

/// The read models' indexes for queries (the apply path needs none of them). A store
/// that replays into empty read models builds them once it has caught up
/// ([`Store::indexes_deferred`]): an index built from a million rows at once is much
/// cheaper than kept up to date row by row.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS inspections_term_unit ON inspections(term, unit);
CREATE INDEX IF NOT EXISTS exchanges_term_unit ON exchanges(term, unit);
CREATE INDEX IF NOT EXISTS discipline_term_unit ON discipline_cases(term, unit);
CREATE INDEX IF NOT EXISTS timeline_unit ON timeline(unit, commit_pos DESC, idx DESC);
";

/// A case whose decision is in force (a decision stands while appealed; an annulment
/// leaves no form in force).
const IN_FORCE: &str =
    "status IN ('decided', 'appeal_pending', 'appeal_resolved') AND form_in_force IS NOT NULL";

/// Sets the decision and distinct-subject figures of one subject kind.
fn people(counts: &mut DisciplineCounts, subject_kind: &str, decisions: i64, subjects: i64) {
    let (decisions, subjects) = (decisions as u64, subjects as u64);
    match subject_kind {
        "member" => {
            counts.member_decisions = decisions;
            counts.members_disciplined = subjects;
        }
        _ => {
            counts.organization_decisions = decisions;
            counts.organizations_disciplined = subjects;
        }
    }
}

const TABLES: [&str; 10] = [
    "checkpoint",
    "log_identity",
    "inspections",
    "exchanges",
    "receipts",
    "appeals",
    "discipline_cases",
    "timeline",
    "alarms",
    "dead_letters",
];

/// Prepared statements kept per connection (rusqlite's default is 16; the projection
/// uses about 40).
const STATEMENT_CACHE: usize = 128;

/// WAL pages after which a commit checkpoints, while filling from empty: a page
/// rewritten by many batches (a table's last leaf, an index's inner pages) is copied
/// once per checkpoint, so fewer, larger ones copy less (80 MiB of WAL at most).
const FILL_CHECKPOINT_PAGES: i64 = 20_000;
/// The same once live, smaller than SQLite's default of 1,000: a checkpoint stalls the
/// writer (the copy and two syncs), the less the fewer pages it copies. Measured at
/// 1,000 commands/s (speed bench, command → read model p99): 12–13 ms at 250 pages,
/// 14–18 ms at 1,000, 38–43 ms at 10,000.
const LIVE_CHECKPOINT_PAGES: i64 = 250;

/// How long a write waits for a lock held by another connection before it fails.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A storage failure (not a bad event: those become dead letters). Nothing of the
/// batch that met it was written; retrying once the storage is fixed is safe.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("read model storage failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file the store keeps beside the database (or a thread it needs) failed.
    #[error("read model storage failed: {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// SQLite's name for the failure (`SQLITE_BUSY`, `SQLITE_READONLY`, ...), if any;
    /// a failed file of the store's own counts as `SQLITE_IOERR`.
    pub fn sqlite_code(&self) -> Option<&'static str> {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => Some(code_name(e.code)),
            StoreError::Sqlite(_) => None,
            StoreError::Io { .. } => Some("SQLITE_IOERR"),
        }
    }

    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
        move |source| StoreError::Io { what, source }
    }
}

/// Whether a SQLite error is caused by what is being written (a constraint the event's
/// content breaks, a value too big) rather than by the storage. Everything else is the
/// storage's (busy, locked, I/O error, disk full, read-only, cannot open, corrupt file,
/// out of memory, ...): it says nothing about the event, so the event must not be
/// dead-lettered for it.
pub fn is_content_error(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{ConstraintViolation, TooBig, TypeMismatch};
    match e {
        rusqlite::Error::SqliteFailure(f, _) => {
            matches!(f.code, ConstraintViolation | TooBig | TypeMismatch)
        }
        rusqlite::Error::ToSqlConversionFailure(_)
        | rusqlite::Error::IntegralValueOutOfRange(..) => true,
        _ => false,
    }
}

fn code_name(code: rusqlite::ErrorCode) -> &'static str {
    use rusqlite::ErrorCode as C;
    match code {
        C::DatabaseBusy => "SQLITE_BUSY",
        C::DatabaseLocked => "SQLITE_LOCKED",
        C::ReadOnly => "SQLITE_READONLY",
        C::SystemIoFailure => "SQLITE_IOERR",
        C::DiskFull => "SQLITE_FULL",
        C::CannotOpen => "SQLITE_CANTOPEN",
        C::DatabaseCorrupt => "SQLITE_CORRUPT",
        C::NotADatabase => "SQLITE_NOTADB",
        C::PermissionDenied => "SQLITE_PERM",
        C::OutOfMemory => "SQLITE_NOMEM",
        C::ConstraintViolation => "SQLITE_CONSTRAINT",
        _ => "SQLITE_ERROR",
    }
}

/// What re-driving one dead letter came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redrive {
    /// The event applied; its dead letter is gone.
    Applied,
    /// It still cannot be applied, for this reason (recorded on the dead letter).
    StillFailing(String),
    /// No dead letter at that position.
    NotDeadLetter,
}

/// Something for the projection to take in: an event, or an entry the log could not read.
#[derive(Debug, Clone)]
pub enum Item {
    Event(RecordedEvent),
    Unreadable {
        position: EventPosition,
        reason: String,
    },
    /// An entry that is not what its subject says (`LogError::SubjectMismatch`):
    /// never applied, recorded as an alarm.
    Mismatch {
        position: EventPosition,
        subject: String,
        reason: String,
    },
}

impl Item {
    pub fn position(&self) -> EventPosition {
        match self {
            Item::Event(e) => e.pos(),
            Item::Unreadable { position, .. } | Item::Mismatch { position, .. } => *position,
        }
    }

    /// A log entry as the subscription gave it; `Err` for an error that ends it.
    pub fn from_log(
        entry: Result<RecordedEvent, coord_log::LogError>,
    ) -> Result<Self, coord_log::LogError> {
        use coord_log::LogError;
        match entry {
            Ok(event) => Ok(Item::Event(event)),
            Err(LogError::Corrupt { position, reason }) => {
                Ok(Item::Unreadable { position, reason })
            }
            Err(LogError::SubjectMismatch {
                position,
                subject,
                reason,
            }) => Ok(Item::Mismatch {
                position,
                subject,
                reason,
            }),
            Err(e) => Err(e),
        }
    }
}

/// Why one event was not applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Skip {
    #[error("{0}")]
    Undecodable(String),
    #[error("{0}")]
    Inconsistent(String),
    /// Not the event's fault: the batch stops and rolls back.
    #[error(transparent)]
    Storage(rusqlite::Error),
}

impl From<rusqlite::Error> for Skip {
    fn from(e: rusqlite::Error) -> Self {
        if is_content_error(&e) {
            Skip::Inconsistent(e.to_string())
        } else {
            Skip::Storage(e)
        }
    }
}

impl Skip {
    /// A failed write with what was being written: content or storage, as the error says.
    pub(crate) fn writing(what: String, e: rusqlite::Error) -> Self {
        match Skip::from(e) {
            Skip::Inconsistent(reason) => Skip::Inconsistent(format!("{what}: {reason}")),
            other => other,
        }
    }
}

/// The read-model database.
pub struct Store {
    conn: Connection,
    province: Province,
    /// A file database's writer: empty read models are filled before their indexes
    /// are built, and without syncing if nothing else is lost with them (not a reader,
    /// nor an in-memory scratch store).
    file: Option<PathBuf>,
    /// Writing with `synchronous=OFF`, a fill marked on disk (`fill`).
    unsynced: bool,
    /// The read models are being filled from empty and have no query indexes yet.
    indexes_deferred: bool,
    /// While they are: the log's head when the filling began, whose batch builds them.
    build_indexes_at: Option<u64>,
}

/// `YYYY-MM-DD` (chrono's `Display`, without interpreting a format string per call).
pub(crate) fn fmt_date(d: NaiveDate) -> String {
    d.to_string()
}

impl Store {
    /// Opens (or creates) the database at `path`.
    /// The province's reference data names the units and bodies in the read models.
    pub fn open(path: &Path, province: Province) -> Result<Self, StoreError> {
        crate::fill::recover(path).map_err(StoreError::io("an interrupted fill"))?;
        let conn = Connection::open(path)?;
        Self::init(conn, province, Some(path.to_owned()))
    }

    /// A second, read-only connection to the database at `path` (opened by
    /// [`Store::open`] first): in WAL mode it reads the last committed state while the
    /// writer writes, so queries never wait behind a projection batch.
    pub fn open_reader(path: &Path, province: Province) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT)?;
        Ok(Self {
            conn,
            province,
            file: None,
            unsynced: false,
            indexes_deferred: false,
            build_indexes_at: None,
        })
    }

    /// How long a write waits for another connection's lock before failing busy.
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        Ok(self.conn.busy_timeout(timeout)?)
    }

    /// Runs `f` inside one read transaction, so that every statement it makes sees
    /// the same committed state (a status never mixes two batches).
    pub fn snapshot<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let out = f(self);
        // A read transaction: ending it changes nothing, whichever way.
        let end = self.conn.execute_batch("ROLLBACK");
        let out = out?;
        end?;
        Ok(out)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory(province: Province) -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, province, None)
    }

    /// The province the store describes.
    pub fn province(&self) -> &Province {
        &self.province
    }

    /// The database, for the read-only queries of sibling modules (analytics).
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    fn init(
        conn: Connection,
        province: Province,
        file: Option<PathBuf>,
    ) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // In WAL mode NORMAL can lose the last transactions on power loss, never
        // corrupt: the checkpoint is lost with them, so they are simply applied again.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", LIVE_CHECKPOINT_PAGES)?;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT)?;
        // Every statement of `apply_event` and the analytics, each prepared once.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(SCHEMA)?;
        crate::analytics::migrate(&conn)?;
        conn.execute_batch(crate::analytics::SCHEMA)?;
        conn.execute_batch(crate::damage::SCHEMA)?;
        let mut store = Self {
            conn,
            province,
            file,
            unsynced: false,
            indexes_deferred: false,
            build_indexes_at: None,
        };
        store.plan_indexes()?;
        if !store.has_column("discipline_cases", "subject_ref")?
            || !store.has_column("discipline_cases", "office")?
            || !store.has_column("timeline", "event")?
        {
            // A database from before people were counted, or before rows were keyed by
            // office and id: drop the read models so that the runner replays the log
            // into the current schema.
            tracing::info!("read-model schema changed: the read models are rebuilt");
            store.reset()?;
        }
        Ok(store)
    }

    fn has_column(&self, table: &str, column: &str) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for name in names {
            if name? == column {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The last position applied, if any.
    pub fn checkpoint(&self) -> Result<Option<EventPosition>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT commit_pos, idx FROM checkpoint WHERE id = 1",
                [],
                |r| {
                    Ok(EventPosition {
                        commit: r.get::<_, i64>(0)? as u64,
                        index: r.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .optional()?)
    }

    /// Drops every read model and the checkpoint, for a replay from the start.
    pub fn reset(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        drop_models(&tx)?;
        tx.commit()?;
        self.plan_indexes()
    }

    /// Builds the query indexes now, unless the read models are empty and this store
    /// fills them first ([`Store::indexes_deferred`]).
    fn plan_indexes(&mut self) -> Result<(), StoreError> {
        self.indexes_deferred = self.file.is_some() && self.checkpoint()?.is_none();
        self.build_indexes_at = None;
        if !self.indexes_deferred {
            return self.build_indexes();
        }
        tracing::info!("read models empty: their query indexes are built once caught up");
        if !self.holds_history()? && self.begin_unsynced()? {
            return Ok(());
        }
        // A synced fill: what an unsynced one left is synced first.
        self.end_fill()
    }

    /// Whether the database holds what the log cannot give back (recorded log damage,
    /// the rebuilds' history): it is never filled without syncing, as a machine stop
    /// mid-fill drops the whole file.
    fn holds_history(&self) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM log_damage) OR EXISTS (SELECT 1 FROM rebuilds)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Fills without syncing from now on, once the fill's marker is on disk (`fill`);
    /// `false` (a synced fill) where it cannot be marked.
    fn begin_unsynced(&mut self) -> Result<bool, StoreError> {
        let Some(db) = &self.file else {
            return Ok(false);
        };
        match crate::fill::begin(db) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => {
                tracing::warn!(error = %e, "cannot mark a fill: the read models are filled synced");
                return Ok(false);
            }
        }
        tracing::info!("filling without syncing until caught up");
        self.conn
            .pragma_update(None, "wal_autocheckpoint", FILL_CHECKPOINT_PAGES)?;
        self.conn.pragma_update(None, "synchronous", "OFF")?;
        self.unsynced = true;
        Ok(true)
    }

    /// Writes synced again and ends a fill marked on disk (this writer's, or one an
    /// earlier writer of this boot left): its files are synced, then the marker goes.
    fn end_fill(&mut self) -> Result<(), StoreError> {
        let Some(db) = &self.file else {
            return Ok(());
        };
        if self.unsynced {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
            self.conn
                .pragma_update(None, "wal_autocheckpoint", LIVE_CHECKPOINT_PAGES)?;
        }
        let marked = crate::fill::marked(db).map_err(StoreError::io("the fill's marker"))?;
        if self.unsynced || marked {
            crate::fill::end(db).map_err(StoreError::io("syncing the filled database"))?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Whether the read models are being filled from empty without their query indexes
    /// (queries are answered, by scanning); [`Store::build_indexes`] ends it.
    pub fn indexes_deferred(&self) -> bool {
        self.indexes_deferred
    }

    /// Read models being filled from empty get their query indexes with the batch that
    /// applies the log's `head` (as it is when the filling begins), before its position
    /// is told; with no head (an empty log, or none known), now.
    pub fn catch_up_to(&mut self, head: Option<u64>) -> Result<(), StoreError> {
        match head {
            _ if !self.indexes_deferred => Ok(()),
            Some(head) => {
                self.build_indexes_at = Some(head);
                Ok(())
            }
            None => self.build_indexes(),
        }
    }

    /// Builds the read models' query indexes (those already there are kept).
    pub fn build_indexes(&mut self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let tx = self.conn.transaction()?;
        tx.execute_batch(INDEXES)?;
        tx.execute_batch(crate::analytics::INDEXES)?;
        tx.commit()?;
        self.end_fill()?;
        if self.indexes_deferred {
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "query indexes built"
            );
        }
        self.indexes_deferred = false;
        Ok(())
    }

    /// Drops every read model and records a rebuild that is complete once the
    /// checkpoint reaches `target`, in one transaction (so a restart mid-replay still
    /// knows the model is partial). Returns the rebuild's generation.
    pub fn start_rebuild(&mut self, target: u64) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        drop_models(&tx)?;
        tx.execute(
            "INSERT INTO rebuilds (generation, target, started_at, completed)
             VALUES ((SELECT COALESCE(MAX(generation), 0) + 1 FROM rebuilds), ?1, ?2, ?3)",
            params![target as i64, chrono::Utc::now().to_rfc3339(), target == 0],
        )?;
        let generation: i64 =
            tx.query_row("SELECT MAX(generation) FROM rebuilds", [], |r| r.get(0))?;
        tx.commit()?;
        self.plan_indexes()?;
        Ok(generation as u64)
    }

    /// Marks rebuild `generation` complete, having replayed `replayed` entries.
    pub fn finish_rebuild(&mut self, generation: u64, replayed: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE rebuilds SET completed = 1, replayed = ?2 WHERE generation = ?1",
            params![generation as i64, replayed as i64],
        )?;
        Ok(())
    }

    /// The latest rebuild of this database: generation, target, replayed (once
    /// complete; else counted from the model), complete.
    pub fn latest_rebuild(&self) -> Result<Option<(u64, u64, u64, bool)>, StoreError> {
        let latest = self
            .conn
            .query_row(
                "SELECT generation, target, replayed, completed FROM rebuilds
                 ORDER BY generation DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, bool>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((generation, target, replayed, completed)) = latest else {
            return Ok(None);
        };
        let replayed = match replayed {
            Some(n) => n as u64,
            // Every applied event has one timeline row; every other entry a dead letter.
            None => self.conn.query_row(
                "SELECT (SELECT COUNT(*) FROM timeline) + (SELECT COUNT(*) FROM dead_letters)
                      + (SELECT COUNT(*) FROM alarms)",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64,
        };
        Ok(Some((generation, target, replayed, completed)))
    }

    /// Applies a batch in one transaction with the checkpoint. Items at or before the
    /// checkpoint are skipped, so a redelivered batch changes nothing. Returns how many
    /// items were applied and how many became dead letters. A storage failure rolls the
    /// whole batch back (the checkpoint does not move) and is returned.
    pub fn apply_batch(&mut self, items: &[Item]) -> Result<(usize, usize), StoreError> {
        let checkpoint = self.checkpoint()?;
        let mut last = checkpoint;
        let todo: Vec<&Item> = items
            .iter()
            .filter(|item| {
                let fresh = last.is_none_or(|l| item.position() > l);
                if fresh {
                    last = Some(item.position());
                }
                fresh
            })
            .collect();
        if todo.is_empty() {
            return Ok((0, 0));
        }
        let counts = match self.apply_all(&todo)? {
            Some(applied) => (applied, 0),
            None => self.apply_one_by_one(&todo)?,
        };
        if self.indexes_deferred
            && let (Some(at), Some(last)) = (self.build_indexes_at, last)
            && last.commit >= at
        {
            self.build_indexes()?;
        }
        Ok(counts)
    }

    /// The usual case: every item applies. All in one transaction with the checkpoint,
    /// no savepoint per event; `None` (everything rolled back) as soon as one item
    /// cannot be applied, for [`Store::apply_one_by_one`] to isolate it.
    fn apply_all(&mut self, items: &[&Item]) -> Result<Option<usize>, StoreError> {
        let mut tx = self.conn.transaction()?;
        for item in items {
            match item {
                Item::Event(e) => match crate::apply::apply_event(&tx, &self.province, e) {
                    Ok(()) => {}
                    Err(Skip::Storage(e)) => return Err(StoreError::Sqlite(e)),
                    Err(_) => return Ok(None),
                },
                Item::Unreadable { .. } => return Ok(None),
                Item::Mismatch { .. } => record_alarm(&tx, item)?,
            }
        }
        let last = items.last().expect("not empty").position();
        set_checkpoint(&mut tx, last)?;
        tx.commit()?;
        Ok(Some(items.len()))
    }

    /// A batch with an item that cannot be applied: each item in its own savepoint, so
    /// the one that fails is rolled back alone and kept as a dead letter.
    fn apply_one_by_one(&mut self, items: &[&Item]) -> Result<(usize, usize), StoreError> {
        let mut tx = self.conn.transaction()?;
        let (mut applied, mut dead) = (0, 0);
        for item in items {
            match apply_item(&mut tx, &self.province, item)? {
                Ok(()) => applied += 1,
                Err(reason) => {
                    dead += 1;
                    tracing::warn!(position = %item.position(), %reason, "dead letter");
                    record_dead_letter(&tx, item, &reason)?;
                }
            }
        }
        let last = items.last().expect("not empty").position();
        set_checkpoint(&mut tx, last)?;
        tx.commit()?;
        Ok((applied, dead))
    }

    /// Applies again the event of one dead letter (read again from the log), once the
    /// cause is fixed: if it applies now, the dead letter goes; if not, its reason is
    /// brought up to date. The checkpoint does not move.
    pub fn redrive(&mut self, item: &Item) -> Result<Redrive, StoreError> {
        let p = item.position();
        let mut tx = self.conn.transaction()?;
        let known: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM dead_letters WHERE commit_pos = ?1 AND idx = ?2",
                params![p.commit as i64, p.index as i64],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_none() {
            return Ok(Redrive::NotDeadLetter);
        }
        let outcome = match apply_item(&mut tx, &self.province, item)? {
            Ok(()) => {
                tx.execute(
                    "DELETE FROM dead_letters WHERE commit_pos = ?1 AND idx = ?2",
                    params![p.commit as i64, p.index as i64],
                )?;
                Redrive::Applied
            }
            Err(reason) => {
                record_dead_letter(&tx, item, &reason)?;
                Redrive::StillFailing(reason)
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    /// The identity of the log the checkpoint refers to, once one was recorded.
    pub fn log_identity(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT identity FROM log_identity WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Records the identity of the log the read models are built from.
    pub fn set_log_identity(&mut self, identity: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO log_identity (id, identity) VALUES (1, ?1)
             ON CONFLICT(id) DO UPDATE SET identity = excluded.identity",
            [identity],
        )?;
        Ok(())
    }

    /// The newest `limit` alarms (entries never applied), newest first.
    pub fn alarms(&self, limit: u32) -> Result<Vec<LogAlarm>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT commit_pos, idx, code, subject, detail, recorded_at FROM alarms
             ORDER BY commit_pos DESC, idx DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(LogAlarm {
                position: format!("{}:{}", r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
                code: r.get(2)?,
                subject: r.get(3)?,
                detail: r.get(4)?,
                recorded_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn dead_letter_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// The dead letter at `position`, if there is one.
    pub fn dead_letter(&self, position: EventPosition) -> Result<Option<DeadLetter>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT commit_pos, idx, stream_id, event_type, reason, recorded_at FROM dead_letters
                 WHERE commit_pos = ?1 AND idx = ?2",
                params![position.commit as i64, position.index as i64],
                dead_letter_row,
            )
            .optional()?)
    }

    pub fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT commit_pos, idx, stream_id, event_type, reason, recorded_at FROM dead_letters
             ORDER BY commit_pos DESC, idx DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], dead_letter_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every district's status in a term, in the province file's order.
    pub fn district_statuses(&self, term: TermId) -> Result<Vec<DistrictStatus>, StoreError> {
        let province = &self.province;
        let term_s = term.to_string();
        let mut by_unit: BTreeMap<String, DistrictStatus> = BTreeMap::new();
        for unit in &province.units {
            let kind = unit.current_kind();
            by_unit.insert(
                unit.id.to_string(),
                DistrictStatus {
                    unit: unit.id.to_string(),
                    name: unit.name.clone(),
                    kind: kind.as_str().to_owned(),
                    standing_committee: unit.standing_committee_vi(kind),
                    police_committee: unit.police_committee_vi(kind),
                    term: term_s.clone(),
                    coordinated: false,
                    covered: false,
                    concluded_after_term: 0,
                    inspections: Default::default(),
                    inspections_by_kind: Default::default(),
                    last_conclusion_on: None,
                    exchanges: Default::default(),
                    discipline: Default::default(),
                },
            );
        }

        let mut stmt = self.conn.prepare(
            "SELECT unit, kind, status, COUNT(*),
                    SUM(CASE WHEN status != 'cancelled' AND coordinating_body = 'district_standing_committee:' || unit THEN 1 ELSE 0 END),
                    MAX(concluded_on),
                    SUM(CASE WHEN concluded_on > ?2 THEN 1 ELSE 0 END)
             FROM inspections WHERE term = ?1 GROUP BY unit, kind, status",
        )?;
        // The term target counts only what was done in the term: a conclusion after
        // the term's last day is recorded but does not cover the unit for the term.
        let term_end = province
            .term(term)
            .map(|t| fmt_date(t.ends_on))
            .unwrap_or_else(|| "9999-12-31".to_owned());
        let mut rows = stmt.query([&term_s, &term_end])?;
        while let Some(r) = rows.next()? {
            let Some(d) = by_unit.get_mut(&r.get::<_, String>(0)?) else {
                continue;
            };
            let kind: String = r.get(1)?;
            let status: String = r.get(2)?;
            let n = r.get::<_, i64>(3)? as u64;
            let coordinated = r.get::<_, i64>(4)? > 0;
            let by_kind = if kind == "supervision" {
                &mut d.inspections_by_kind.supervision
            } else {
                &mut d.inspections_by_kind.inspection
            };
            for counts in [&mut d.inspections, by_kind] {
                match status.as_str() {
                    "scheduled" => counts.scheduled += n,
                    "in_progress" => counts.in_progress += n,
                    "concluded" => counts.concluded += n,
                    _ => counts.cancelled += n,
                }
            }
            d.coordinated |= coordinated;
            if status == "concluded" {
                let late = r.get::<_, i64>(6)? as u64;
                d.concluded_after_term += late;
                d.covered |= n > late;
                let last: Option<String> = r.get(5)?;
                let last = last.and_then(|s| s.parse().ok());
                d.last_conclusion_on = d.last_conclusion_on.max(last);
            }
        }

        let mut stmt = self.conn.prepare(
            "SELECT unit, direction, SUM(CASE WHEN acknowledged_on IS NULL THEN 1 ELSE 0 END), COUNT(*)
             FROM exchanges WHERE term = ?1 GROUP BY unit, direction",
        )?;
        let mut rows = stmt.query([&term_s])?;
        while let Some(r) = rows.next()? {
            let Some(d) = by_unit.get_mut(&r.get::<_, String>(0)?) else {
                continue;
            };
            let direction: String = r.get(1)?;
            let n = r.get::<_, i64>(3)? as u64;
            d.exchanges.sent += n;
            d.exchanges.unacknowledged += r.get::<_, i64>(2)? as u64;
            if direction == "to_province" {
                d.exchanges.to_province += n;
            } else {
                d.exchanges.to_district += n;
            }
        }

        let mut stmt = self.conn.prepare(
            "SELECT unit, subject_kind, status, form_in_force, COUNT(*)
             FROM discipline_cases WHERE term = ?1 GROUP BY unit, subject_kind, status, form_in_force",
        )?;
        let mut rows = stmt.query([&term_s])?;
        while let Some(r) = rows.next()? {
            let Some(d) = by_unit.get_mut(&r.get::<_, String>(0)?) else {
                continue;
            };
            let subject: String = r.get(1)?;
            let status: String = r.get(2)?;
            let form: Option<String> = r.get(3)?;
            let n = r.get::<_, i64>(4)? as u64;
            match status.as_str() {
                "open" => d.discipline.open_cases += n,
                "appeal_pending" => d.discipline.appeals_pending += n,
                _ => {}
            }
            let in_force = matches!(
                status.as_str(),
                "decided" | "appeal_pending" | "appeal_resolved"
            );
            if let (true, Some(form)) = (in_force, form) {
                let (o, m) = (&mut d.discipline.organizations, &mut d.discipline.members);
                match (subject.as_str(), form.as_str()) {
                    ("organization", "reprimand") => o.reprimand += n,
                    ("organization", "warning") => o.warning += n,
                    ("organization", "dissolution") => o.dissolution += n,
                    ("member", "reprimand") => m.reprimand += n,
                    ("member", "warning") => m.warning += n,
                    ("member", "removal_from_post") => m.removal_from_post += n,
                    ("member", "expulsion") => m.expulsion += n,
                    _ => {}
                }
            }
        }

        let mut stmt = self.conn.prepare(&format!(
            "SELECT unit, subject_kind, COUNT(*), COUNT(DISTINCT subject_ref)
             FROM discipline_cases WHERE term = ?1 AND {IN_FORCE} GROUP BY unit, subject_kind"
        ))?;
        let mut rows = stmt.query([&term_s])?;
        while let Some(r) = rows.next()? {
            if let Some(d) = by_unit.get_mut(&r.get::<_, String>(0)?) {
                people(
                    &mut d.discipline,
                    &r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                );
            }
        }

        Ok(province
            .units
            .iter()
            .filter_map(|u| by_unit.remove(u.id.as_str()))
            .collect())
    }

    /// Decisions in force and distinct subjects across the whole province: a member
    /// disciplined in cases of two districts is one person.
    fn province_people(
        &self,
        term: TermId,
        counts: &mut DisciplineCounts,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT subject_kind, COUNT(*), COUNT(DISTINCT subject_ref)
             FROM discipline_cases WHERE term = ?1 AND {IN_FORCE} GROUP BY subject_kind"
        ))?;
        let mut rows = stmt.query([term.to_string()])?;
        while let Some(r) = rows.next()? {
            people(counts, &r.get::<_, String>(0)?, r.get(1)?, r.get(2)?);
        }
        Ok(())
    }

    /// The province's standing against the term target.
    pub fn province_summary(&self, term: TermId) -> Result<ProvinceSummary, StoreError> {
        let province = &self.province;
        let districts = self.district_statuses(term)?;
        let mut s = ProvinceSummary {
            term: term.to_string(),
            province: province.name.clone(),
            position: self.checkpoint()?.map(|p| p.commit).unwrap_or(0),
            districts_total: districts.len() as u64,
            districts_coordinated: districts.iter().filter(|d| d.coordinated).count() as u64,
            districts_covered: districts.iter().filter(|d| d.covered).count() as u64,
            districts_outstanding: districts
                .iter()
                .filter(|d| !d.covered)
                .map(|d| d.unit.clone())
                .collect(),
            target_met: districts.iter().all(|d| d.covered),
            inspections: Default::default(),
            inspections_by_kind: Default::default(),
            exchanges: Default::default(),
            discipline: Default::default(),
            dead_letters: self.dead_letter_count()?,
            window: None,
        };
        fn add(total: &mut InspectionCounts, c: &InspectionCounts) {
            total.scheduled += c.scheduled;
            total.in_progress += c.in_progress;
            total.concluded += c.concluded;
            total.cancelled += c.cancelled;
        }
        for d in &districts {
            add(&mut s.inspections, &d.inspections);
            add(
                &mut s.inspections_by_kind.inspection,
                &d.inspections_by_kind.inspection,
            );
            add(
                &mut s.inspections_by_kind.supervision,
                &d.inspections_by_kind.supervision,
            );
            let (e, de) = (&mut s.exchanges, &d.exchanges);
            e.sent += de.sent;
            e.to_district += de.to_district;
            e.to_province += de.to_province;
            e.unacknowledged += de.unacknowledged;
            let (t, dd) = (&mut s.discipline, &d.discipline);
            t.open_cases += dd.open_cases;
            t.appeals_pending += dd.appeals_pending;
            t.organizations.reprimand += dd.organizations.reprimand;
            t.organizations.warning += dd.organizations.warning;
            t.organizations.dissolution += dd.organizations.dissolution;
            t.members.reprimand += dd.members.reprimand;
            t.members.warning += dd.members.warning;
            t.members.removal_from_post += dd.members.removal_from_post;
            t.members.expulsion += dd.members.expulsion;
        }
        self.province_people(term, &mut s.discipline)?;
        Ok(s)
    }

    /// A page of one district's timeline, newest first.
    pub fn timeline(
        &self,
        unit: &UnitId,
        limit: u32,
        before: Option<EventPosition>,
    ) -> Result<TimelinePage, StoreError> {
        let before = before.unwrap_or(EventPosition {
            commit: i64::MAX as u64,
            index: i64::MAX as u64,
        });
        let limit = limit.clamp(1, 500);
        let mut stmt = self.conn.prepare(
            "SELECT commit_pos, idx, event_id, event_type, stream_id, occurred_at, recorded_at, office, actor, summary_vi,
                 json_extract(event, '$.payload')
             FROM timeline WHERE unit = ?1 AND (commit_pos < ?2 OR (commit_pos = ?2 AND idx < ?3))
             ORDER BY commit_pos DESC, idx DESC LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                unit.as_str(),
                before.commit as i64,
                before.index as i64,
                limit as i64 + 1
            ],
            |r| {
                let payload: String = r.get(10)?;
                let occurred: String = r.get(5)?;
                Ok(TimelineEntry {
                    position: format!("{}:{}", r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
                    event_id: r.get(2)?,
                    event_type: r.get(3)?,
                    stream_id: r.get(4)?,
                    occurred_at: occurred.parse().unwrap_or_default(),
                    recorded_at: r.get(6)?,
                    office: r.get(7)?,
                    actor: r.get(8)?,
                    summary_vi: r.get(9)?,
                    payload: serde_json::from_str(&payload).unwrap_or_default(),
                })
            },
        )?;
        let mut entries: Vec<TimelineEntry> = rows.collect::<Result<_, _>>()?;
        let next_before = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries.last().map(|e| e.position.clone())
        } else {
            None
        };
        Ok(TimelinePage {
            unit: unit.to_string(),
            position: self.checkpoint()?.map(|p| p.commit).unwrap_or(0),
            entries,
            next_before,
        })
    }

    /// Every row of every read model, as text: for comparing two builds.
    pub fn dump(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for (table, order) in [
            ("inspections", "office, inspection_id"),
            ("exchanges", "office, exchange_id"),
            ("discipline_cases", "office, case_id"),
            ("timeline", "commit_pos, idx"),
            ("dead_letters", "commit_pos, idx"),
            ("checkpoint", "id"),
        ] {
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
            let columns = stmt.column_count();
            let skip = if table == "dead_letters" {
                Some(columns - 1)
            } else {
                None
            }; // recorded_at is wall-clock
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let mut line = format!("{table}:");
                for i in 0..columns {
                    if Some(i) == skip {
                        continue;
                    }
                    let v: rusqlite::types::Value = r.get(i)?;
                    line.push_str(&format!(" {v:?}"));
                }
                out.push(line);
            }
        }
        Ok(out)
    }
}

fn dead_letter_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        position: format!("{}:{}", r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
        stream_id: r.get(2)?,
        event_type: r.get(3)?,
        reason: r.get(4)?,
        recorded_at: r.get(5)?,
    })
}

/// Applies one item in its own savepoint. The outer `Err` is a storage failure (the
/// caller abandons the transaction); the inner `Err` is why the item's content cannot
/// be applied (the savepoint is rolled back, the caller records a dead letter).
fn apply_item(
    tx: &mut Transaction<'_>,
    province: &Province,
    item: &Item,
) -> Result<Result<(), String>, StoreError> {
    let event = match item {
        Item::Event(event) => event,
        Item::Unreadable { reason, .. } => return Ok(Err(reason.clone())),
        Item::Mismatch { .. } => {
            record_alarm(tx, item)?;
            return Ok(Ok(()));
        }
    };
    let sp = tx.savepoint()?;
    match crate::apply::apply_event(&sp, province, event) {
        Ok(()) => {
            sp.commit()?;
            Ok(Ok(()))
        }
        Err(Skip::Storage(e)) => Err(StoreError::Sqlite(e)),
        Err(skip) => Ok(Err(skip.to_string())),
    }
}

fn record_dead_letter(tx: &Transaction<'_>, item: &Item, reason: &str) -> rusqlite::Result<()> {
    let p = item.position();
    let event = match item {
        Item::Event(e) => Some(e),
        Item::Unreadable { .. } | Item::Mismatch { .. } => None,
    };
    tx.execute(
        "INSERT OR REPLACE INTO dead_letters (commit_pos, idx, stream_id, event_type, reason, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            p.commit as i64,
            p.index as i64,
            event.map(|e| e.stream_id.to_string()),
            event.map(|e| e.event_type.clone()),
            reason,
            chrono::Utc::now().to_rfc3339(),
        ],
    )?;
    Ok(())
}

/// An entry that is not what its subject says: never applied, kept as an alarm.
fn record_alarm(tx: &Transaction<'_>, item: &Item) -> rusqlite::Result<()> {
    let Item::Mismatch {
        position,
        subject,
        reason,
    } = item
    else {
        return Ok(());
    };
    tx.execute(
        "INSERT OR REPLACE INTO alarms (commit_pos, idx, code, subject, detail, recorded_at)
         VALUES (?1, ?2, 'subject_mismatch', ?3, ?4, ?5)",
        params![
            position.commit as i64,
            position.index as i64,
            subject,
            reason,
            chrono::Utc::now().to_rfc3339(),
        ],
    )?;
    Ok(())
}

fn drop_models(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    for table in TABLES.iter().chain(&crate::analytics::TABLES) {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {table};"))?;
    }
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(crate::analytics::SCHEMA)
}

fn set_checkpoint(tx: &mut Transaction<'_>, p: EventPosition) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO checkpoint (id, commit_pos, idx) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET commit_pos = excluded.commit_pos, idx = excluded.idx",
        params![p.commit as i64, p.index as i64],
    )?;
    Ok(())
}

pub(crate) fn decode<E: DomainEvent>(e: &RecordedEvent) -> Result<E, Skip> {
    E::decode_ref(&e.event_type, e.schema_version, &e.payload)
        .map_err(|err| Skip::Undecodable(err.to_string()))
}

pub(crate) fn expect_one(changed: usize, what: &str, id: &str) -> Result<(), Skip> {
    if changed == 1 {
        Ok(())
    } else {
        Err(Skip::Inconsistent(format!(
            "{what} {id} is not in the read model"
        )))
    }
}

pub(crate) fn unit_of(
    conn: &Connection,
    table: &str,
    key: &str,
    id: &str,
    office: &str,
) -> Result<String, Skip> {
    conn.prepare_cached(&format!(
        "SELECT unit FROM {table} WHERE {key} = ?1 AND office = ?2"
    ))?
    .query_row([id, office], |r| r.get(0))
    .optional()?
    .ok_or_else(|| Skip::Inconsistent(format!("{key} {id} is not in the read model")))
}

/// The unit of the exchange `id` sent to `office`.
pub(crate) fn exchange_unit_sent_to(
    conn: &Connection,
    id: &str,
    office: &Office,
) -> Result<String, Skip> {
    conn.prepare_cached("SELECT unit FROM exchanges WHERE exchange_id = ?1 AND to_office = ?2")?
        .query_row([id, office.to_string().as_str()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Skip::Inconsistent(format!("exchange {id} is not in the read model")))
}

/// Runs one statement through the connection's statement cache: a replay runs the same
/// few dozen statements millions of times.
pub(crate) fn exec(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

pub(crate) fn json_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    //! Storage failures against content failures, on a real SQLite database.

    use super::*;
    use coord_domain::Body;
    use coord_domain::appeal::AppealEvent;
    use coord_domain::discipline::AppealResolution;
    use coord_domain::discipline::DisciplineEvent;
    use coord_domain::exchange::ExchangeEvent;
    use coord_domain::inspection::{
        Category, InspectionEvent, InspectionKind, InspectionScheduled,
    };
    use coord_domain::province::AN_GIANG_TOML;
    use coord_domain::receipt::ReceiptEvent;
    use coord_log::StreamId;
    use uuid::Uuid;

    fn province() -> Province {
        Province::from_toml_str(AN_GIANG_TOML).unwrap()
    }

    /// A valid `InspectionScheduled` at commit `commit`, recorded by `actor`.
    fn scheduled(commit: u64, actor: &str) -> Item {
        let id = Uuid::now_v7();
        let event = InspectionEvent::InspectionScheduled(InspectionScheduled {
            inspection_id: coord_domain::InspectionId::from_uuid(id),
            term: "2020-2025".parse().unwrap(),
            unit: "long-xuyen".parse().unwrap(),
            kind: InspectionKind::Inspection,
            category: Category::Regular,
            leading_body: Body::ProvincialInspectionCommission,
            coordinating_body: "district_standing_committee:long-xuyen".parse().unwrap(),
            target: "district_police:long-xuyen".parse().unwrap(),
            decision_ref: "1-QĐ".parse().unwrap(),
            decided_on: "2024-01-02".parse().unwrap(),
            planned_start: "2024-02-01".parse().unwrap(),
            planned_end: "2024-02-28".parse().unwrap(),
        });
        let (event_type, payload) = event.encode();
        Item::Event(RecordedEvent {
            role: None,
            event_id: Uuid::now_v7(),
            stream_id: StreamId::new("inspection", id).unwrap(),
            stream_version: 1,
            event_type: event_type.into(),
            schema_version: 1,
            occurred_at: "2024-01-02".parse().unwrap(),
            recorded_at: chrono::Utc::now(),
            office: "province".into(),
            actor: actor.into(),
            correlation_id: id,
            causation_id: id,
            payload,
            position: Some(EventPosition { commit, index: 0 }),
        })
    }

    /// `event` recorded on stream `{category}-{id}` at commit `commit`, by `office`.
    fn recorded<E: DomainEvent>(
        category: &str,
        id: Uuid,
        event: &E,
        commit: u64,
        office: &str,
    ) -> Item {
        let (event_type, payload) = event.encode();
        Item::Event(RecordedEvent {
            event_id: Uuid::now_v7(),
            stream_id: StreamId::new(category, id).unwrap(),
            stream_version: 1,
            event_type: event_type.into(),
            schema_version: E::SCHEMA_VERSION,
            occurred_at: event.occurred_on(),
            recorded_at: chrono::Utc::now(),
            office: office.into(),
            actor: "tester".into(),
            role: None,
            correlation_id: id,
            causation_id: id,
            payload,
            position: Some(EventPosition { commit, index: 0 }),
        })
    }

    /// The first column of every row `sql` selects, as text.
    fn text_rows(store: &Store, sql: &str) -> Vec<String> {
        let mut stmt = store.conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// What a store shows of exchanges: their rows, the province's summary, and the
    /// analytics measures recorded.
    fn exchange_view(store: &Store) -> (Vec<String>, String, Vec<String>) {
        let summary = store
            .province_summary("2020-2025".parse().unwrap())
            .unwrap();
        (
            text_rows(
                store,
                "SELECT exchange_id || '|' || unit || '|' || sent_on || '|' || IFNULL(acknowledged_on, '-') FROM exchanges",
            ),
            serde_json::to_string(&summary).unwrap(),
            text_rows(
                store,
                "SELECT unit || '|' || term || '|' || occurred_on || '|' || measure FROM analytics_events ORDER BY measure",
            ),
        )
    }

    /// What a store shows of discipline: case rows, the province's summary, measures.
    fn case_view(store: &Store) -> (Vec<String>, String, Vec<String>) {
        let summary = store
            .province_summary("2020-2025".parse().unwrap())
            .unwrap();
        (
            text_rows(
                store,
                "SELECT case_id || '|' || unit || '|' || status || '|' || IFNULL(form_in_force, '-') FROM discipline_cases",
            ),
            serde_json::to_string(&summary.discipline).unwrap(),
            text_rows(
                store,
                "SELECT unit || '|' || occurred_on || '|' || measure FROM analytics_events ORDER BY measure",
            ),
        )
    }

    // Issue 10, Ownership: the province writes the case and its resolution, the
    // district its appeal; at a third office the appeal may come before the case, or
    // after the resolution.
    #[test]
    fn a_case_and_its_appeal_give_the_same_model_in_any_order() {
        use coord_domain::appeal::Appealed;
        use coord_domain::discipline::{
            AppealResolved, Basis, DisciplineCaseOpened, DisciplineDecided, DisciplineForm,
        };
        // given a case the province opened, decided and resolved, and Long Xuyên's appeal
        let case_id = coord_domain::CaseId::from_uuid(Uuid::now_v7());
        let opened = DisciplineEvent::DisciplineCaseOpened(DisciplineCaseOpened {
            case_id,
            term: "2020-2025".parse().unwrap(),
            unit: "long-xuyen".parse().unwrap(),
            subject: serde_json::from_value(serde_json::json!({
                "kind": "member", "member": "ĐV-0042", "membership": "full", "holds_post": false
            }))
            .unwrap(),
            basis: Basis::CentralConclusion {
                body: Body::CentralInspectionCommission,
                reference: "KL-01".parse().unwrap(),
            },
            violation: None,
            opened_on: "2024-03-01".parse().unwrap(),
        });
        let decided = DisciplineEvent::DisciplineDecided(DisciplineDecided {
            case_id,
            form: DisciplineForm::Warning,
            deciding_body: Body::ProvincialStandingCommittee,
            decided_on: "2024-03-05".parse().unwrap(),
            decision_ref: "QĐ-1".parse().unwrap(),
        });
        let resolved = DisciplineEvent::AppealResolved(AppealResolved {
            case_id,
            resolution: AppealResolution::ChangedTo {
                form: DisciplineForm::Reprimand,
            },
            resolving_body: Body::CentralPublicSecurityStandingCommittee,
            resolved_on: "2024-04-01".parse().unwrap(),
            reference: "GQ-1".parse().unwrap(),
        });
        let appealed = AppealEvent::DisciplineAppealed(Appealed {
            case_id,
            term: "2020-2025".parse().unwrap(),
            unit: "long-xuyen".parse().unwrap(),
            appealed_on: "2024-03-06".parse().unwrap(),
            grounds: "Không đồng ý".parse().unwrap(),
        });
        let appeal_id = coord_proto::ids::appeal_id(case_id.as_uuid());
        let case =
            |e: &DisciplineEvent, c| recorded("discipline", case_id.as_uuid(), e, c, "province");
        let appeal = |c| recorded("appeal", appeal_id, &appealed, c, "district:long-xuyen");
        let build = |items: Vec<Item>| {
            let mut store = Store::open_in_memory(province()).unwrap();
            for item in items {
                assert_eq!(store.apply_batch(&[item]).unwrap(), (1, 0));
            }
            assert_eq!(store.dead_letter_count().unwrap(), 0);
            case_view(&store)
        };

        // when offices receive them in different orders (pending, then resolved)
        let pending = build(vec![case(&opened, 1), case(&decided, 2), appeal(3)]);
        let pending_appeal_first = build(vec![appeal(1), case(&opened, 2), case(&decided, 3)]);
        let pending_before_decision = build(vec![case(&opened, 1), appeal(2), case(&decided, 3)]);
        let in_order = build(vec![
            case(&opened, 1),
            case(&decided, 2),
            appeal(3),
            case(&resolved, 4),
        ]);
        let resolution_first = build(vec![
            case(&opened, 1),
            case(&decided, 2),
            case(&resolved, 3),
            appeal(4),
        ]);
        let appeal_first = build(vec![
            appeal(1),
            case(&opened, 2),
            case(&decided, 3),
            case(&resolved, 4),
        ]);

        // then the same rows, figures and measures
        assert_eq!(pending, pending_appeal_first);
        assert_eq!(pending, pending_before_decision);
        assert!(
            pending.0[0].ends_with("|long-xuyen|appeal_pending|warning"),
            "{:?}",
            pending.0
        );
        assert!(pending.1.contains("\"appeals_pending\":1"), "{}", pending.1);
        assert_eq!(in_order, resolution_first);
        assert_eq!(in_order, appeal_first);
        assert!(
            in_order.0[0].ends_with("|appeal_resolved|reprimand"),
            "{:?}",
            in_order.0
        );
        assert!(
            in_order
                .2
                .contains(&"long-xuyen|2024-03-06|other.DisciplineAppealed".to_owned()),
            "{:?}",
            in_order.2
        );

        // and an older log, with the appeal on the case's own stream, gives the same
        let old =
            DisciplineEvent::DisciplineAppealed(coord_domain::discipline::DisciplineAppealed {
                case_id,
                appealed_on: "2024-03-06".parse().unwrap(),
                grounds: "Không đồng ý".parse().unwrap(),
            });
        let older = build(vec![
            case(&opened, 1),
            case(&decided, 2),
            case(&old, 3),
            case(&resolved, 4),
        ]);
        assert_eq!(in_order, older);
    }

    // Issue 10, Ownership: the province writes the exchange, the district its receipt;
    // at a third office either may arrive first.
    #[test]
    fn an_exchange_and_its_receipt_give_the_same_model_in_either_order() {
        use coord_domain::exchange::{Channel, InformationExchanged, Topic};
        use coord_domain::receipt::Acknowledgement;
        // given information the province sent to Long Xuyên, and Long Xuyên's receipt
        let exchange_id = coord_domain::ExchangeId::from_uuid(Uuid::now_v7());
        let to: Body = "district_standing_committee:long-xuyen".parse().unwrap();
        let sent = ExchangeEvent::InformationExchanged(InformationExchanged {
            exchange_id,
            term: "2020-2025".parse().unwrap(),
            unit: "long-xuyen".parse().unwrap(),
            from: Body::ProvincialStandingCommittee,
            to: to.clone(),
            topic: Topic::Plan,
            subject: "Kế hoạch kiểm tra".parse().unwrap(),
            sent_on: "2024-03-01".parse().unwrap(),
            link: None,
            channel: Channel::Document,
        });
        let received = ReceiptEvent::InformationAcknowledged(Acknowledgement {
            exchange_id,
            term: "2020-2025".parse().unwrap(),
            unit: "long-xuyen".parse().unwrap(),
            by: to,
            acknowledged_on: "2024-03-04".parse().unwrap(),
        });
        let receipt_id = coord_proto::ids::receipt_id(exchange_id.as_uuid());
        let exchange_at = |c| recorded("exchange", exchange_id.as_uuid(), &sent, c, "province");
        let receipt_at = |c| recorded("receipt", receipt_id, &received, c, "district:long-xuyen");

        // when one office receives the exchange first and another the receipt first
        let mut in_order = Store::open_in_memory(province()).unwrap();
        assert_eq!(
            in_order
                .apply_batch(&[exchange_at(1), receipt_at(2)])
                .unwrap(),
            (2, 0)
        );
        let mut reversed = Store::open_in_memory(province()).unwrap();
        assert_eq!(reversed.apply_batch(&[receipt_at(1)]).unwrap(), (1, 0));
        assert_eq!(reversed.apply_batch(&[exchange_at(2)]).unwrap(), (1, 0));

        // then both show it acknowledged, with the same rows, summary and measures
        let view = exchange_view(&in_order);
        assert_eq!(view, exchange_view(&reversed));
        assert!(view.0[0].ends_with("|2024-03-04"), "{:?}", view.0);
        let summary = in_order
            .province_summary("2020-2025".parse().unwrap())
            .unwrap();
        assert_eq!(
            (summary.exchanges.sent, summary.exchanges.unacknowledged),
            (1, 0)
        );
        assert_eq!(
            view.2,
            vec![
                "long-xuyen|2020-2025|2024-03-04|exchange.acknowledged",
                "long-xuyen|2020-2025|2024-03-01|exchange.sent"
            ]
        );
        assert_eq!(reversed.dead_letter_count().unwrap(), 0);

        // and an older log, with the acknowledgement on the exchange's own stream,
        // shows the same figures
        let old = ExchangeEvent::InformationAcknowledged(
            coord_domain::exchange::InformationAcknowledged {
                exchange_id,
                by: "district_standing_committee:long-xuyen".parse().unwrap(),
                acknowledged_on: "2024-03-04".parse().unwrap(),
            },
        );
        let mut older = Store::open_in_memory(province()).unwrap();
        let old_at = recorded(
            "exchange",
            exchange_id.as_uuid(),
            &old,
            2,
            "district:long-xuyen",
        );
        assert_eq!(
            older.apply_batch(&[exchange_at(1), old_at]).unwrap(),
            (2, 0)
        );
        assert_eq!(exchange_view(&older), view);
    }

    fn sqlite_error(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn storage_errors_are_not_the_events_fault_and_constraint_violations_are() {
        // given the SQLite failures a projection batch can meet
        let storage = [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_IOERR,
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_CANTOPEN,
            rusqlite::ffi::SQLITE_CORRUPT,
        ];
        // then each one is storage, even while inserting an event's row
        for code in storage {
            assert!(!is_content_error(&sqlite_error(code)), "{code}");
            let skip = Skip::writing("inspection x cannot be inserted".into(), sqlite_error(code));
            assert!(matches!(skip, Skip::Storage(_)), "{code}: {skip:?}");
        }
        // and a constraint the event's content breaks is the event's
        let skip = Skip::writing(
            "inspection x cannot be inserted".into(),
            sqlite_error(rusqlite::ffi::SQLITE_CONSTRAINT),
        );
        assert!(matches!(skip, Skip::Inconsistent(ref r) if r.starts_with("inspection x")));
    }

    #[test]
    fn a_full_database_rolls_the_batch_back_and_makes_no_dead_letter() {
        // given a store whose file may not grow, and a batch whose second event needs room
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("p.sqlite"), province()).unwrap();
        store.apply_batch(&[scheduled(1, "small")]).unwrap();
        let pages: i64 = store
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        store
            .conn
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let batch = [scheduled(2, "small"), scheduled(3, &"x".repeat(64 * 1024))];

        // when it is applied
        let err = store.apply_batch(&batch).unwrap_err();

        // then the failure is the storage's, and nothing of the batch was written
        assert_eq!(err.sqlite_code(), Some("SQLITE_FULL"), "{err}");
        assert_eq!(store.checkpoint().unwrap().unwrap().commit, 1);
        assert_eq!(store.dead_letter_count().unwrap(), 0);
        let summary = store
            .province_summary("2020-2025".parse().unwrap())
            .unwrap();
        assert_eq!(summary.inspections.scheduled, 1);

        // and once there is room again the same batch applies whole
        store
            .conn
            .pragma_update(None, "max_page_count", 1_000_000)
            .unwrap();
        assert_eq!(store.apply_batch(&batch).unwrap(), (2, 0));
        assert_eq!(store.checkpoint().unwrap().unwrap().commit, 3);
    }

    #[test]
    fn a_read_only_database_fails_the_batch_and_moves_nothing() {
        // given a database the projector can only read
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        drop(Store::open(&path, province()).unwrap());
        let mut read_only = Store::open_reader(&path, province()).unwrap();

        // when a batch is applied, then it fails as storage and makes no dead letter
        let err = read_only.apply_batch(&[scheduled(1, "a")]).unwrap_err();
        assert_eq!(err.sqlite_code(), Some("SQLITE_READONLY"), "{err}");
        let store = Store::open(&path, province()).unwrap();
        assert_eq!(store.checkpoint().unwrap(), None);
        assert_eq!(store.dead_letter_count().unwrap(), 0);
    }

    /// A pragma's value on the store's connection.
    fn pragma(store: &Store, name: &str) -> i64 {
        store
            .conn
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .unwrap()
    }

    fn synchronous(store: &Store) -> i64 {
        pragma(store, "synchronous")
    }

    #[test]
    fn empty_read_models_fill_without_syncing_until_the_head_then_are_synced() {
        // given a new database, to be filled up to the log's head at 2
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        let mut store = Store::open(&path, province()).unwrap();
        store.catch_up_to(Some(2)).unwrap();

        // then it fills without syncing (OFF = 0), its marker on disk
        assert_eq!(synchronous(&store), 0);
        assert!(crate::fill::marker(&path).exists());
        store.apply_batch(&[scheduled(1, "a")]).unwrap();
        assert_eq!(synchronous(&store), 0, "short of the head");

        // and the batch reaching the head syncs it and ends the fill (NORMAL = 1)
        store.apply_batch(&[scheduled(2, "b")]).unwrap();
        assert_eq!(synchronous(&store), 1);
        assert_eq!(pragma(&store, "wal_autocheckpoint"), LIVE_CHECKPOINT_PAGES);
        assert!(!crate::fill::marker(&path).exists());

        // and a rebuild, whose history the log cannot give back, fills synced
        store.start_rebuild(2).unwrap();
        assert_eq!(synchronous(&store), 1);
        assert!(!crate::fill::marker(&path).exists());
    }

    #[test]
    fn a_fill_the_machine_stopped_leaves_an_empty_database_to_fill_again() {
        // given a database part-filled when the machine stopped (a marker of another boot)
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        let mut store = Store::open(&path, province()).unwrap();
        store.catch_up_to(Some(9)).unwrap();
        store.apply_batch(&[scheduled(1, "a")]).unwrap();
        drop(store);
        std::fs::write(crate::fill::marker(&path), "an-earlier-boot").unwrap();

        // when it is opened, then it is empty: nothing of the torn fill is trusted
        let store = Store::open(&path, province()).unwrap();
        assert_eq!(store.checkpoint().unwrap(), None);
        assert_eq!(synchronous(&store), 0, "filled again, without syncing");

        // while one the projector alone stopped in is kept, and synced at once
        drop(store);
        let mut store = Store::open(&path, province()).unwrap();
        store.catch_up_to(Some(9)).unwrap();
        store.apply_batch(&[scheduled(1, "a")]).unwrap();
        drop(store);
        let store = Store::open(&path, province()).unwrap();
        assert_eq!(store.checkpoint().unwrap().unwrap().commit, 1);
        assert_eq!(synchronous(&store), 1);
        assert!(!crate::fill::marker(&path).exists());
    }
}
