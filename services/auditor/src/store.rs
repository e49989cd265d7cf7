//! The auditor's SQLite store (no network I/O): one row per leaf (its hash, its
//! canonical bytes and the fields reviewers search by), every signed checkpoint, the
//! log entries that could not be read, and the log position reached. A batch of events
//! and the position move together in one transaction, as in the projector.

use std::path::Path;

use coord_audit::wire::{
    AuditEvent, AuditPage, EventFilter, LeafIdentity, LogDamage, StoredCheckpoint,
};
use coord_audit::{Hash, leaf_data};
use coord_log::{EventPosition, RecordedEvent};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("audit store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("audit store holds a bad value: {0}")]
    Corrupt(String),
}

/// One item of a batch from the log.
#[derive(Debug, Clone)]
pub enum Item {
    Event(RecordedEvent),
    Unreadable {
        position: EventPosition,
        reason: String,
    },
}

impl Item {
    /// Where in the log this item was read.
    pub fn position(&self) -> EventPosition {
        match self {
            Item::Event(e) => e.pos(),
            Item::Unreadable { position, .. } => *position,
        }
    }
}

pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leaves (
    leaf_index     INTEGER PRIMARY KEY,
    hash           BLOB NOT NULL,
    leaf_data      BLOB NOT NULL,
    event_id       TEXT NOT NULL UNIQUE,
    commit_seq     INTEGER NOT NULL,
    commit_index   INTEGER NOT NULL,
    stream_id      TEXT NOT NULL,
    stream_version INTEGER NOT NULL,
    event_type     TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    office         TEXT NOT NULL,
    actor          TEXT NOT NULL,
    unit           TEXT,
    occurred_at    TEXT NOT NULL,
    recorded_at    TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    causation_id   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS leaves_stream ON leaves (stream_id, stream_version);
CREATE INDEX IF NOT EXISTS leaves_correlation ON leaves (correlation_id);
CREATE INDEX IF NOT EXISTS leaves_actor ON leaves (actor);
CREATE INDEX IF NOT EXISTS leaves_unit ON leaves (unit);
CREATE TABLE IF NOT EXISTS checkpoints (
    size         INTEGER PRIMARY KEY,
    note         TEXT NOT NULL,
    published_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cosigned (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS unreadable (
    commit_seq   INTEGER NOT NULL,
    commit_index INTEGER NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (commit_seq, commit_index)
);
CREATE TABLE IF NOT EXISTS damage (
    leaf_index  INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    detected_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS position (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    commit_seq   INTEGER NOT NULL,
    commit_index INTEGER NOT NULL
);
";

const EVENT_COLUMNS: &str = "leaf_index, commit_seq, commit_index, event_id, stream_id, stream_version, event_type, schema_version, office, actor, unit, occurred_at, recorded_at, correlation_id, causation_id, leaf_data";

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    /// The last log position applied.
    pub fn position(&self) -> Result<Option<EventPosition>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT commit_seq, commit_index FROM position", [], |r| {
                Ok(EventPosition {
                    commit: r.get::<_, i64>(0)? as u64,
                    index: r.get::<_, i64>(1)? as u64,
                })
            })
            .optional()?)
    }

    /// Every leaf hash, in order.
    pub fn leaf_hashes(&self) -> Result<Vec<Hash>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT hash FROM leaves ORDER BY leaf_index")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|h| {
            h?.try_into()
                .map_err(|_| StoreError::Corrupt("a leaf hash is not 32 bytes".into()))
        })
        .collect()
    }

    /// Applies a batch from leaf `next_leaf` on: events become leaves (their hashes
    /// returned, in order); items at or before the position are skipped.
    pub fn apply_batch(&mut self, items: &[Item], next_leaf: u64) -> Result<Vec<Hash>, StoreError> {
        let after = self.position()?;
        let tx = self.conn.transaction()?;
        let mut hashes = Vec::new();
        let mut last = after;
        for item in items {
            let position = item.position();
            if after.is_some_and(|a| position <= a) {
                continue;
            }
            match item {
                Item::Event(e) => {
                    let index = next_leaf + hashes.len() as u64;
                    hashes.push(insert_leaf(&tx, index, e)?);
                }
                Item::Unreadable { position, reason } => {
                    tracing::warn!(%position, reason, "unreadable log entry: not a leaf");
                    tx.execute(
                        "INSERT OR IGNORE INTO unreadable VALUES (?1, ?2, ?3)",
                        params![position.commit as i64, position.index as i64, reason],
                    )?;
                }
            }
            last = Some(position);
        }
        if let Some(p) = last {
            tx.execute(
                "INSERT INTO position (id, commit_seq, commit_index) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET commit_seq = ?1, commit_index = ?2",
                params![p.commit as i64, p.index as i64],
            )?;
        }
        tx.commit()?;
        Ok(hashes)
    }

    pub fn add_checkpoint(&self, size: u64, note: &str, at: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO checkpoints VALUES (?1, ?2, ?3)",
            params![size as i64, note, at],
        )?;
        Ok(())
    }

    /// Keeps the hub's cosigned note of the checkpoint of `size` leaves.
    pub fn add_cosigned(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO cosigned VALUES (?1, ?2) ON CONFLICT (size) DO UPDATE SET note = ?2",
            params![size as i64, note],
        )?;
        Ok(())
    }

    /// The checkpoint of `size` leaves with the cosignatures kept for it, if any came
    /// for this very checkpoint: one signed again at that size (its row lost) has
    /// another body, and what was cosigned before is not its.
    pub fn cosigned(&self, size: u64) -> Result<Option<String>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT c.note, k.note FROM cosigned c JOIN checkpoints k USING (size)
                 WHERE size = ?1",
                [size as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row
            .filter(|(cosigned, ours)| same_body(cosigned, ours))
            .map(|(cosigned, _)| cosigned))
    }

    /// Up to `limit` checkpoints after tree size `after`, oldest first.
    pub fn checkpoints_after(
        &self,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT size, note, published_at FROM checkpoints WHERE size > ?1 ORDER BY size LIMIT ?2",
        )?;
        let after = after.map_or(-1, |a| a as i64);
        let rows = stmt.query_map(params![after, i64::from(limit)], row_checkpoint)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The latest signed checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT size, note, published_at FROM checkpoints ORDER BY size DESC LIMIT 1",
                [],
                row_checkpoint,
            )
            .optional()?)
    }

    /// The checkpoint of `size` leaves, if one was signed (and kept).
    pub fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT size, note, published_at FROM checkpoints WHERE size = ?1",
                [size as i64],
                row_checkpoint,
            )
            .optional()?)
    }

    /// How many checkpoints are kept.
    pub fn checkpoint_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM checkpoints", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// The retention rule: of the checkpoints published before `before` (RFC 3339,
    /// UTC), keeps the first of each UTC hour, the first a witness cosigned in each
    /// hour, the latest cosigned and the latest of all; removes the rest, and the
    /// cosignatures of what it removed. Every proof stays servable (proofs come from the
    /// leaves, which are all kept). Returns how many checkpoints were removed.
    pub fn compact_checkpoints(&mut self, before: &str) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let removed = tx.execute(
            "DELETE FROM checkpoints
             WHERE published_at < ?1
               AND size <> (SELECT max(size) FROM checkpoints)
               AND size NOT IN (
                   SELECT min(size) FROM checkpoints GROUP BY substr(published_at, 1, 13))
               AND size <> coalesce(
                   (SELECT max(size) FROM cosigned JOIN checkpoints USING (size)), -1)
               AND size NOT IN (
                   SELECT min(size) FROM checkpoints JOIN cosigned USING (size)
                   GROUP BY substr(published_at, 1, 13))",
            [before],
        )?;
        tx.execute(
            "DELETE FROM cosigned WHERE size NOT IN (SELECT size FROM checkpoints)",
            [],
        )?;
        tx.commit()?;
        Ok(removed)
    }

    /// Records damage at `leaves` (first detection kept); how many are new.
    pub fn add_damage(
        &mut self,
        leaves: &[u64],
        kind: &str,
        at: &str,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut added = 0;
        for leaf in leaves {
            added += tx.execute(
                "INSERT OR IGNORE INTO damage VALUES (?1, ?2, ?3)",
                params![*leaf as i64, kind, at],
            )?;
        }
        tx.commit()?;
        Ok(added)
    }

    /// Every damaged leaf, with the event recorded there.
    pub fn damage(&self) -> Result<Vec<LogDamage>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.leaf_index, l.event_id, l.stream_id, l.stream_version, l.event_type, d.kind, d.detected_at
             FROM damage d JOIN leaves l ON l.leaf_index = d.leaf_index ORDER BY d.leaf_index",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(LogDamage {
                leaf_index: r.get::<_, i64>(0)? as u64,
                event_id: uuid_at(r, 1)?,
                stream_id: r.get(2)?,
                stream_version: r.get::<_, i64>(3)? as u64,
                event_type: r.get(4)?,
                kind: r.get(5)?,
                detected_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The identity of the event recorded at each of `count` leaves from `from`.
    pub fn leaf_identities(&self, from: u64, count: u64) -> Result<Vec<LeafIdentity>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT event_id, stream_id, stream_version, event_type FROM leaves
             WHERE leaf_index >= ?1 AND leaf_index < ?2 ORDER BY leaf_index",
        )?;
        let rows = stmt.query_map(params![from as i64, (from + count) as i64], |r| {
            Ok(LeafIdentity {
                id: uuid_at(r, 0)?,
                stream: r.get(1)?,
                version: r.get::<_, i64>(2)? as u64,
                event_type: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The leaf index and canonical bytes of an event.
    pub fn leaf_of(&self, event_id: Uuid) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT leaf_index, leaf_data FROM leaves WHERE event_id = ?1",
                [event_id.to_string()],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
    }

    fn events_where(
        &self,
        clause: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM leaves WHERE {clause}");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(args, row_event)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn stream(&self, stream: &str) -> Result<Vec<AuditEvent>, StoreError> {
        self.events_where("stream_id = ?1 ORDER BY stream_version", &[&stream])
    }

    pub fn correlation(&self, id: Uuid) -> Result<Vec<AuditEvent>, StoreError> {
        self.events_where(
            "correlation_id = ?1 ORDER BY leaf_index",
            &[&id.to_string()],
        )
    }

    pub fn search(&self, f: &EventFilter) -> Result<AuditPage, StoreError> {
        let limit = f.limit.unwrap_or(100).clamp(1, 1000);
        let cursor = f.cursor.map_or(-1, |c| c as i64);
        let mut events = self.events_where(
            "leaf_index > ?1
             AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR office = ?3)
             AND (?4 IS NULL OR event_type = ?4) AND (?5 IS NULL OR unit = ?5)
             AND (?6 IS NULL OR occurred_at >= ?6) AND (?7 IS NULL OR occurred_at <= ?7)
             ORDER BY leaf_index LIMIT ?8",
            &[
                &cursor,
                &f.actor,
                &f.office,
                &f.event_type,
                &f.unit,
                &f.from,
                &f.to,
                &(limit as i64 + 1),
            ],
        )?;
        let next_cursor = if events.len() > limit as usize {
            events.truncate(limit as usize);
            events.last().map(|e| e.leaf_index)
        } else {
            None
        };
        Ok(AuditPage {
            events,
            next_cursor,
        })
    }
}

fn row_checkpoint(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        size: r.get::<_, i64>(0)? as u64,
        note: r.get(1)?,
        published_at: r.get(2)?,
    })
}

fn insert_leaf(
    tx: &rusqlite::Transaction<'_>,
    index: u64,
    e: &RecordedEvent,
) -> Result<Hash, StoreError> {
    let data = leaf_data(e);
    let hash = coord_audit::tree::leaf_hash(&data);
    let unit = e.payload.get("unit").and_then(|u| u.as_str());
    let pos = e.pos();
    tx.execute(
        "INSERT INTO leaves VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            index as i64,
            hash.as_slice(),
            data,
            e.event_id.to_string(),
            pos.commit as i64,
            pos.index as i64,
            e.stream_id.as_str(),
            e.stream_version as i64,
            e.event_type,
            e.schema_version,
            e.office,
            e.actor,
            unit,
            e.occurred_at.to_string(),
            e.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            e.correlation_id.to_string(),
            e.causation_id.to_string(),
        ],
    )?;
    Ok(hash)
}

/// The role shown for an event whose envelope has none.
const DEFAULT_ROLE: &str = "operator";

fn uuid_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    let text: String = r.get(i)?;
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn row_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEvent> {
    let data: Vec<u8> = r.get(15)?;
    let mut envelope = serde_json::from_slice::<serde_json::Value>(&data).unwrap_or_default();
    let payload = envelope
        .get_mut("payload")
        .map(serde_json::Value::take)
        .unwrap_or_default();
    // Events recorded before roles were carry none: only operators send commands.
    let role = envelope
        .get("role")
        .and_then(|r| r.as_str())
        .unwrap_or(DEFAULT_ROLE)
        .to_owned();
    Ok(AuditEvent {
        leaf_index: r.get::<_, i64>(0)? as u64,
        position: format!("{}:{}", r.get::<_, i64>(1)?, r.get::<_, i64>(2)?),
        event_id: uuid_at(r, 3)?,
        stream_id: r.get(4)?,
        stream_version: r.get::<_, i64>(5)? as u64,
        event_type: r.get(6)?,
        schema_version: r.get(7)?,
        office: r.get(8)?,
        actor: r.get(9)?,
        role: Some(role),
        unit: r.get(10)?,
        occurred_at: r.get(11)?,
        recorded_at: r.get(12)?,
        correlation_id: uuid_at(r, 13)?,
        causation_id: uuid_at(r, 14)?,
        payload,
    })
}

/// Whether two notes sign the same text (a checkpoint and the same checkpoint with
/// cosignatures added).
fn same_body(a: &str, b: &str) -> bool {
    use coord_audit::note::Note;
    matches!((Note::parse(a), Note::parse(b)), (Ok(a), Ok(b)) if a.text == b.text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone, Utc};

    fn event(i: u64) -> RecordedEvent {
        RecordedEvent {
            role: None,
            event_id: Uuid::from_u128(100 + u128::from(i)),
            stream_id: "inspection-abc".parse().unwrap(),
            stream_version: i + 1,
            event_type: if i.is_multiple_of(2) { "A" } else { "B" }.into(),
            schema_version: 1,
            occurred_at: NaiveDate::from_ymd_opt(2022, 1, 1 + i as u32).unwrap(),
            recorded_at: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            office: "province".into(),
            actor: "a".into(),
            correlation_id: Uuid::from_u128(1),
            causation_id: Uuid::from_u128(2),
            payload: serde_json::json!({"unit": "long-xuyen"}),
            position: Some(EventPosition {
                commit: i + 1,
                index: 0,
            }),
        }
    }

    #[test]
    fn given_a_batch_applied_twice_then_the_second_time_adds_no_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("a.sqlite")).unwrap();
        let items: Vec<Item> = (0..5).map(|i| Item::Event(event(i))).collect();
        assert_eq!(store.apply_batch(&items, 0).unwrap().len(), 5);
        assert!(store.apply_batch(&items, 5).unwrap().is_empty());
        assert_eq!(store.leaf_hashes().unwrap().len(), 5);
        assert_eq!(store.position().unwrap().unwrap().commit, 5);
    }

    #[test]
    fn given_a_search_then_pages_follow_the_cursor_and_filters_apply() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("a.sqlite")).unwrap();
        let items: Vec<Item> = (0..9).map(|i| Item::Event(event(i))).collect();
        store.apply_batch(&items, 0).unwrap();
        let mut filter = EventFilter {
            event_type: Some("A".into()),
            from: Some("2022-01-02".into()),
            limit: Some(2),
            ..Default::default()
        };
        let first = store.search(&filter).unwrap();
        assert_eq!(
            first
                .events
                .iter()
                .map(|e| e.leaf_index)
                .collect::<Vec<_>>(),
            [2, 4]
        );
        filter.cursor = first.next_cursor;
        let second = store.search(&filter).unwrap();
        assert_eq!(
            second
                .events
                .iter()
                .map(|e| e.leaf_index)
                .collect::<Vec<_>>(),
            [6, 8]
        );
        assert_eq!(second.next_cursor, None);
        assert_eq!(second.events[0].unit.as_deref(), Some("long-xuyen"));
    }

    #[test]
    fn given_many_checkpoints_then_pages_follow_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.sqlite")).unwrap();
        for size in 1..=25 {
            store
                .add_checkpoint(size, "n", "2024-01-01T00:00:00.000Z")
                .unwrap();
        }
        let first = store.checkpoints_after(None, 10).unwrap();
        assert_eq!(
            first.iter().map(|c| c.size).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
        let last = store.checkpoints_after(Some(20), 10).unwrap();
        assert_eq!(
            last.iter().map(|c| c.size).collect::<Vec<_>>(),
            (21..=25).collect::<Vec<_>>()
        );
        assert_eq!(store.latest_checkpoint().unwrap().unwrap().size, 25);
    }

    #[test]
    fn given_a_checkpoint_signed_again_at_a_size_then_what_was_cosigned_before_is_not_its() {
        use coord_audit::Checkpoint;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.sqlite")).unwrap();
        let signer = coord_audit::note::Signer::from_seed("coord/x", [1; 32]).unwrap();
        let note = |root| {
            Checkpoint {
                origin: "coord/x".into(),
                size: 5,
                root,
            }
            .sign(&signer)
        };
        let (first, again) = (note([1; 32]), note([2; 32]));
        store
            .add_checkpoint(5, &first, "2024-01-01T10:00:00.000Z")
            .unwrap();
        store.add_cosigned(5, &first).unwrap();
        assert_eq!(store.cosigned(5).unwrap(), Some(first));
        // The checkpoint's row lost, and the log signed again at that size.
        store.conn.execute("DELETE FROM checkpoints", []).unwrap();
        store
            .add_checkpoint(5, &again, "2024-01-01T11:00:00.000Z")
            .unwrap();
        assert_eq!(store.cosigned(5).unwrap(), None);
    }

    #[test]
    fn given_old_checkpoints_then_compaction_keeps_the_cosigned_the_first_of_each_hour_and_the_latest()
     {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("a.sqlite")).unwrap();
        // Sizes 1..=6 in hour 10, 7..=9 in hour 11, 10 recent.
        for size in 1..=6 {
            store
                .add_checkpoint(size, "n", &format!("2024-01-01T10:0{size}:00.000Z"))
                .unwrap();
        }
        for size in 7..=9 {
            store
                .add_checkpoint(size, "n", &format!("2024-01-01T11:0{size}:00.000Z"))
                .unwrap();
        }
        store
            .add_checkpoint(10, "n", "2024-01-03T00:00:00.000Z")
            .unwrap();
        // Nothing cosigned yet: the first of each hour and the latest are kept.
        let backup = dir.path().join("b.sqlite");
        store
            .conn
            .execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
            .unwrap();
        let mut plain = Store::open(&backup).unwrap();
        assert_eq!(
            plain
                .compact_checkpoints("2024-01-02T00:00:00.000Z")
                .unwrap(),
            7
        );
        // Cosigned: 2, 3 and 4 in hour 10, 8 in hour 11.
        for size in [2, 3, 4, 8] {
            store.add_cosigned(size, "n").unwrap();
        }
        let removed = store
            .compact_checkpoints("2024-01-02T00:00:00.000Z")
            .unwrap();
        let kept: Vec<u64> = store
            .checkpoints_after(None, 100)
            .unwrap()
            .iter()
            .map(|c| c.size)
            .collect();
        assert_eq!(kept, [1, 2, 7, 8, 10]);
        assert_eq!(removed, 5);
        let cosigned: i64 = store
            .conn
            .query_row("SELECT count(*) FROM cosigned", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            cosigned, 2,
            "the cosignatures of removed checkpoints go too"
        );
    }
}
