//! Moves the write-ahead log into the database file on a thread of its own. SQLite's
//! automatic checkpoint runs in the writer after a commit and waits there for the disk
//! (`fsync` of the WAL, then of the database): a replay spent about a fifth of its time
//! so. Here this thread checkpoints (`PASSIVE`: it never blocks the writer or a
//! reader) as soon as there is something to copy, and the writer's own automatic
//! checkpoint ([`WRITER_PAGES_FILLING`]) mostly finds the pages copied already; it is
//! what restarts the WAL, which a checkpoint beside a writer that never pauses cannot.
//! The thread runs only while empty read models are filled (a first start, a rebuild):
//! once live the writer checkpoints by itself as usual ([`WRITER_PAGES_LIVE`]; the
//! thread then gained nothing, measured), and the thread is held, its connection
//! closed. So it is while the writer reports a storage failure: a checkpoint over files
//! that could not be written kept the query connection waiting.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::Connection;

/// How long the thread sleeps when the WAL had nothing to copy.
const IDLE: Duration = Duration::from_millis(100);

/// WAL pages past which the writer checkpoints by itself, whatever this thread did:
/// while empty read models are filled (nobody waits on a batch) few and large
/// checkpoints; once live, SQLite's default, so that no single one stalls a batch long
/// (this thread has copied most of what they would copy).
pub const WRITER_PAGES_FILLING: i64 = 10_000;
pub const WRITER_PAGES_LIVE: i64 = 1_000;

/// The checkpointing thread of one database; stopped when dropped.
pub struct Checkpointer {
    stop: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts the thread for the database at `db` (in WAL mode), `held` or not.
    pub fn start(db: &Path, held: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicBool::new(held));
        let (stopped, on_hold) = (stop.clone(), held.clone());
        let db = db.to_owned();
        std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || run(&db, &stopped, &on_hold))
            // As `std::thread::spawn` does: a process that cannot start a thread is done.
            .expect("a thread for WAL checkpoints");
        Self { stop, held }
    }

    /// Holds checkpoints back (its connection closed) while the writer cannot write,
    /// or lets them go on.
    pub fn hold(&self, held: bool) {
        self.held.store(held, Ordering::Relaxed);
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(db: &Path, stop: &AtomicBool, held: &AtomicBool) {
    let mut conn: Option<Connection> = None;
    // The WAL's frames and those copied, as the last checkpoint left them.
    let mut last = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        if held.load(Ordering::Relaxed) {
            conn = None;
            std::thread::sleep(IDLE);
            continue;
        }
        match checkpoint(db, &mut conn) {
            // Something new was copied: there may be more already.
            Ok(now) if now != last && now.1 > 0 => last = now,
            Ok(now) => {
                last = now;
                std::thread::sleep(IDLE);
            }
            Err(e) => {
                // A connection that failed (the disk, the file) may hold locks that
                // readers would wait on: closed, and opened again later.
                conn = None;
                tracing::warn!(error = %e, "WAL checkpoint failed; tried again in a while");
                std::thread::sleep(IDLE * 10);
            }
        }
    }
}

/// One passive checkpoint: the WAL's frames, and how many of them are now copied into
/// the database (all of them when nothing was written since the last one).
fn checkpoint(db: &Path, conn: &mut Option<Connection>) -> rusqlite::Result<(i64, i64)> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(Connection::open(db)?),
    };
    // (busy, WAL frames, frames copied)
    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A database in WAL mode whose writer never checkpoints, with about 2 MiB written.
    fn written(db: &Path) -> Connection {
        let conn = Connection::open(db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        for _ in 0..512 {
            conn.execute("INSERT INTO t VALUES (zeroblob(4096))", [])
                .unwrap();
        }
        conn
    }

    #[test]
    fn a_held_checkpointer_copies_nothing_and_a_running_one_copies_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.sqlite");
        let _writer = written(&db);
        let size = || std::fs::metadata(&db).unwrap().len();
        let before = size();

        let checkpointer = Checkpointer::start(&db, true);
        std::thread::sleep(IDLE * 3);
        assert_eq!(size(), before, "held: the database file is as it was");

        checkpointer.hold(false);
        let deadline = Instant::now() + Duration::from_secs(5);
        while size() < before + 2 * 1024 * 1024 {
            assert!(
                Instant::now() < deadline,
                "the WAL was not copied: {}",
                size()
            );
            std::thread::sleep(IDLE / 5);
        }
    }
}
