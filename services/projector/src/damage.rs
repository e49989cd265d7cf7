//! Log damage is an alarm at the projector (issue 19). JetStream drops a stored message
//! it cannot read back (one flipped byte in a block file of a stopped server): the
//! projector, resuming after its checkpoint, would never notice, and a rebuild would
//! silently count one event less.
//!
//! What the read models applied is in `analytics_events` (one row per applied event,
//! with the event as it was applied). A *scrub* reads the log from its start up to the
//! checkpoint beside those rows, both in log order (a merge: O(events) time, one page of
//! rows in memory), and finds each applied event that is now
//! - `missing`: no entry at its position any more;
//! - `unreadable`: the entry at its position cannot be decoded;
//! - `changed`: another event stands at its position.
//!
//! Each is recorded in `log_damage` (kept across rebuilds) with the event as applied
//! (id, stream, version, type), logged as an error, shown by `GET /v1/projector`
//! (`log_damage[]`, and in `alarms[]` as `log_damage`), counted by the metric
//! `coord_projector_log_damage` and makes `/readyz` answer `projector_log_damaged`.
//! A scrub runs at each start of the projection (beside it, without holding it back).
//! A rebuild refuses (`log_damaged`, nothing dropped) while recorded damage is not
//! accepted, unless asked with `accept_loss`, which marks it accepted. Not covered:
//! damage done while the projector keeps running (nats-server restarted under it) is
//! found at the projector's next start, so restart it before a rebuild after such an
//! event; a scrub that cannot read the log to the checkpoint concludes nothing.

use coord_log::{EventLog, EventPosition, LogError, Subscription};
use coord_proto::read::{LogAlarm, LogDamage};
use futures::StreamExt;
use rusqlite::{Connection, params};

use std::sync::Arc;

use crate::runner::{Projector, RebuildError};
use crate::store::{Store, StoreError};

/// The damage table (created with the store's schema); not a read model: a rebuild
/// keeps it.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log_damage (
    commit_pos INTEGER NOT NULL, idx INTEGER NOT NULL,
    event_id TEXT NOT NULL, stream_id TEXT NOT NULL, stream_version INTEGER NOT NULL,
    event_type TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL,
    detected_at TEXT NOT NULL, accepted_at TEXT,
    PRIMARY KEY (commit_pos, idx)
);
";

/// Applied events read per page during a scrub.
pub const PAGE: u32 = 10_000;

/// The longest wait for the log's next entry during a scrub.
const IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// An event the read models applied: where, and which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub position: EventPosition,
    pub event_id: String,
}

/// One applied event the log does not hold as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub position: EventPosition,
    pub kind: &'static str,
    pub detail: String,
}

/// Up to `limit` applied events after `after`, in log order.
pub fn applied_page(
    store: &Store,
    after: Option<EventPosition>,
    limit: u32,
) -> Result<Vec<Applied>, StoreError> {
    let (commit, idx) = after.map_or((-1, -1), |p| (p.commit as i64, p.index as i64));
    let mut stmt = store.connection().prepare_cached(
        "SELECT commit_pos, idx, event_id FROM timeline
         WHERE (commit_pos, idx) > (?1, ?2) ORDER BY commit_pos, idx LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![commit, idx, limit], |r| {
        Ok(Applied {
            position: EventPosition {
                commit: r.get::<_, i64>(0)? as u64,
                index: r.get::<_, i64>(1)? as u64,
            },
            event_id: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What the log holds at a position, as far as a scrub needs it.
enum Entry {
    Event(EventPosition, String),
    Unreadable(EventPosition, String),
}

/// Reads the log from its start up to `up_to` beside the applied events (pages from
/// `page`), and returns every applied event the log does not hold as it was.
pub async fn scan<F, Fut>(
    log: &dyn EventLog,
    up_to: EventPosition,
    mut page: F,
) -> Result<Vec<Found>, ScanError>
where
    F: FnMut(Option<EventPosition>) -> Fut,
    Fut: Future<Output = Result<Vec<Applied>, StoreError>>,
{
    let head = log.head().await?;
    let end = head.map_or(up_to, |h| h.min(up_to));
    let mut entries = log.subscribe(None).await?;
    let mut current: Option<Entry> = None;
    let mut read_to: Option<EventPosition> = None;
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let applied = page(after).await?;
        let Some(last) = applied.last() else {
            return Ok(found);
        };
        after = Some(last.position);
        for a in applied.into_iter().filter(|a| a.position <= up_to) {
            // Read on until the log is at or past this applied event (never past the
            // end: the subscription would wait for new events).
            while read_to.is_none_or(|r| r < a.position) && read_to.is_none_or(|r| r < end) {
                match read(&mut entries).await? {
                    Some(entry) => {
                        read_to = Some(match &entry {
                            Entry::Event(p, _) => *p,
                            Entry::Unreadable(p, _) => EventPosition {
                                commit: p.commit,
                                index: u64::MAX,
                            },
                        });
                        current = Some(entry);
                    }
                    None => return Err(ScanError::Ended),
                }
            }
            if let Some(f) = compare(&a, current.as_ref()) {
                found.push(f);
            }
        }
    }
}

/// The next entry of the log; `None` when the subscription ended. An entry not coming
/// within [`IDLE`] ends the scrub without a conclusion (the log is slow or its last
/// entries are gone: the next scrub tries again).
async fn read(entries: &mut Subscription) -> Result<Option<Entry>, ScanError> {
    let Ok(next) = tokio::time::timeout(IDLE, entries.next()).await else {
        return Err(ScanError::Stalled);
    };
    Ok(match next {
        None => None,
        Some(Ok(e)) => Some(Entry::Event(e.pos(), e.event_id.to_string())),
        Some(Err(
            LogError::Corrupt { position, reason }
            | LogError::SubjectMismatch {
                position, reason, ..
            },
        )) => Some(Entry::Unreadable(position, reason)),
        Some(Err(e)) => return Err(e.into()),
    })
}

/// What the log's entry read last says of an applied event.
fn compare(a: &Applied, current: Option<&Entry>) -> Option<Found> {
    let found = |kind, detail: String| {
        Some(Found {
            position: a.position,
            kind,
            detail,
        })
    };
    match current {
        Some(Entry::Event(p, id)) if *p == a.position && *id == a.event_id => None,
        Some(Entry::Event(p, id)) if *p == a.position => found(
            "changed",
            format!("event {id} stands at {p} where {} was applied", a.event_id),
        ),
        Some(Entry::Unreadable(p, reason)) if p.commit == a.position.commit => found(
            "unreadable",
            format!("the entry at commit {} cannot be read: {reason}", p.commit),
        ),
        _ => found(
            "missing",
            format!("no entry at {} in the log any more", a.position),
        ),
    }
}

/// Why a scrub could not finish (it is tried again at the next start or rebuild).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error("the log subscription ended before the checkpoint")]
    Ended,
    #[error("no log entry came within {IDLE:?} before the checkpoint")]
    Stalled,
}

/// Records what a scrub found (first detection kept), with the event as applied.
pub fn record(store: &Store, found: &[Found]) -> Result<(), StoreError> {
    let conn = store.connection();
    let now = chrono::Utc::now().to_rfc3339();
    for f in found {
        conn.execute(
            "INSERT OR IGNORE INTO log_damage (commit_pos, idx, event_id, stream_id, stream_version,
                 event_type, kind, detail, detected_at)
             SELECT commit_pos, idx, event_id, stream_id, json_extract(event, '$.stream_version'),
                 event_type, ?3, ?4, ?5
             FROM timeline WHERE commit_pos = ?1 AND idx = ?2",
            params![
                f.position.commit as i64,
                f.position.index as i64,
                f.kind,
                f.detail,
                now
            ],
        )?;
    }
    Ok(())
}

/// Every damage recorded, oldest position first.
pub fn list(store: &Store) -> Result<Vec<LogDamage>, StoreError> {
    let mut stmt = store.connection().prepare_cached(
        "SELECT commit_pos, idx, event_id, stream_id, stream_version, event_type, kind, detail,
             detected_at, accepted_at
         FROM log_damage ORDER BY commit_pos, idx",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(LogDamage {
            position: format!("{}:{}", r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
            event_id: r.get(2)?,
            stream_id: r.get(3)?,
            stream_version: r.get::<_, i64>(4)? as u64,
            event_type: r.get(5)?,
            kind: r.get(6)?,
            detail: r.get(7)?,
            detected_at: r.get(8)?,
            accepted_at: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks every damage not yet accepted as accepted now (a rebuild asked to go on).
pub fn accept(conn: &Connection) -> Result<usize, StoreError> {
    let now = chrono::Utc::now().to_rfc3339();
    Ok(conn.execute(
        "UPDATE log_damage SET accepted_at = ?1 WHERE accepted_at IS NULL",
        [now],
    )?)
}

/// A damage as an entry of the projector's alarms.
pub fn alarm(d: &LogDamage) -> LogAlarm {
    LogAlarm {
        position: d.position.clone(),
        code: "log_damage".into(),
        subject: None,
        detail: d.describe(),
        recorded_at: d.detected_at.clone(),
    }
}

impl Projector {
    /// Scrubs the log up to the checkpoint and records what it finds (see the module).
    /// Nothing is compared against a log that is not the one the checkpoint refers to.
    pub(crate) async fn scrub(self: &Arc<Self>) -> Result<(), ScanError> {
        if !self.follows_recorded_log().await {
            return Ok(());
        }
        let Some(up_to) = self.with_reader(|s| s.checkpoint()).await? else {
            return Ok(());
        };
        let pages = |after| {
            let this = self.clone();
            async move {
                this.with_reader(move |s| applied_page(s, after, PAGE))
                    .await
            }
        };
        let found = scan(self.log(), up_to, pages).await?;
        for f in &found {
            tracing::error!(position = %f.position, kind = f.kind, detail = %f.detail,
                "log damage: an event the read models applied is not in the log as it was");
        }
        if !found.is_empty() {
            self.with_store(move |s| record(s, &found)).await?;
        }
        tracing::info!(up_to = %up_to, "log scrubbed against the read models");
        Ok(())
    }

    /// The scrub at the start of the projection: logged, never stopping it.
    pub(crate) async fn scrub_at_start(self: Arc<Self>) {
        if let Err(e) = self.scrub().await {
            tracing::warn!(error = %e, "could not scrub the log against the read models");
        }
    }

    /// Before a rebuild: refuses while recorded damage is not accepted, unless
    /// `accept_loss` (which accepts it).
    pub(crate) async fn check_damage(
        self: &Arc<Self>,
        accept_loss: bool,
    ) -> Result<(), RebuildError> {
        let open: Vec<LogDamage> = self
            .with_reader(list)
            .await
            .map_err(|e| RebuildError::Failed(e.to_string()))?
            .into_iter()
            .filter(|d| d.accepted_at.is_none())
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        if !accept_loss {
            return Err(RebuildError::LogDamaged(open));
        }
        let accepted = self
            .with_store(|s| accept(s.connection()))
            .await
            .map_err(|e| RebuildError::Failed(e.to_string()))?;
        tracing::warn!(
            accepted,
            "rebuilding without events lost from the log, as asked (accept_loss)"
        );
        Ok(())
    }
}
