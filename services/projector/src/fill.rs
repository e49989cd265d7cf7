//! Filling empty read models without waiting for the disk.
//!
//! A first start or a rebuild replays the whole log into empty read models. Waiting for
//! the disk (SQLite's `synchronous=NORMAL` syncs at every WAL checkpoint) cost about a
//! quarter of that replay, and buys nothing there: what was filled can be filled again
//! from the log. So a fill runs with `synchronous=OFF`, which survives the projector
//! stopping or crashing (the operating system holds its writes) but not the machine
//! stopping, which may leave the database torn.
//!
//! A marker file beside the database, holding the kernel's boot id, says a fill is under
//! way. When the fill reaches the log's head, the files are synced and the marker goes.
//! At open, a marker from another boot means the machine stopped mid-fill: the database
//! is deleted and filled again from the log. A marker from this boot only means the
//! projector stopped: the files are synced and the marker goes.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where the kernel names the current boot (Linux).
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// A fill from empty of the database at `db` begins: the marker is on disk before any
/// unsynced write.
pub(crate) fn begin(db: &Path) -> io::Result<()> {
    let mut file = File::create(marker(db))?;
    file.write_all(boot_id().unwrap_or_default().as_bytes())?;
    file.sync_all()?;
    sync_dir(db)
}

/// The fill of `db` is over: its files are synced, then the marker is removed.
pub(crate) fn end(db: &Path) -> io::Result<()> {
    for file in [db.to_owned(), sibling(db, "-wal")] {
        match File::open(&file) {
            Ok(f) => f.sync_all()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    remove(&marker(db))?;
    sync_dir(db)
}

/// Before `db` is opened: finishes a fill interrupted in this boot, or drops the
/// database of one the machine's stop interrupted.
pub(crate) fn recover(db: &Path) -> io::Result<()> {
    let began = match fs::read_to_string(marker(db)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if boot_id().is_some_and(|now| now == began.trim()) {
        return end(db);
    }
    tracing::warn!(
        db = %db.display(),
        "the machine stopped while the read models were being filled without syncing: \
         the database is dropped and the log replayed into a new one"
    );
    for file in [db.to_owned(), sibling(db, "-wal"), sibling(db, "-shm")] {
        remove(&file)?;
    }
    remove(&marker(db))?;
    sync_dir(db)
}

/// The marker of a fill under way, beside the database.
pub(crate) fn marker(db: &Path) -> PathBuf {
    sibling(db, ".filling")
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// This boot's id; `None` where the kernel does not tell (a marker then never matches,
/// and an interrupted fill always starts over).
fn boot_id() -> Option<String> {
    Some(fs::read_to_string(BOOT_ID).ok()?.trim().to_owned()).filter(|id| !id.is_empty())
}

fn remove(file: &Path) -> io::Result<()> {
    match fs::remove_file(file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes the creation or removal of a file in `db`'s folder durable.
fn sync_dir(db: &Path) -> io::Result<()> {
    let dir = db.parent().filter(|d| !d.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn database(dir: &Path) -> PathBuf {
        let db = dir.join("p.sqlite");
        for name in ["p.sqlite", "p.sqlite-wal", "p.sqlite-shm"] {
            fs::write(dir.join(name), b"pages").unwrap();
        }
        db
    }

    #[test]
    fn given_a_fill_begun_when_it_ends_then_the_marker_is_gone_and_the_database_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        begin(&db).unwrap();
        assert!(marker(&db).exists());
        end(&db).unwrap();
        assert_eq!(
            files(dir.path()),
            ["p.sqlite", "p.sqlite-shm", "p.sqlite-wal"]
        );
    }

    #[test]
    fn given_a_fill_interrupted_in_this_boot_when_reopened_then_the_database_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        begin(&db).unwrap();
        recover(&db).unwrap();
        assert_eq!(
            files(dir.path()),
            ["p.sqlite", "p.sqlite-shm", "p.sqlite-wal"]
        );
    }

    #[test]
    fn given_a_fill_interrupted_by_the_machine_stopping_when_reopened_then_the_database_is_dropped()
    {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        fs::write(marker(&db), "an-earlier-boot").unwrap();
        recover(&db).unwrap();
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    #[test]
    fn given_no_fill_when_opened_then_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        recover(&db).unwrap();
        assert_eq!(files(dir.path()).len(), 3);
    }
}
