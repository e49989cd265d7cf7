//! Filling empty read models without waiting for the disk.
//!
//! A first start replays the whole log into empty read models. Waiting for the disk
//! (SQLite's `synchronous=NORMAL` syncs at every WAL checkpoint) cost about a quarter of
//! that replay, and buys nothing there: what was filled can be filled again from the
//! log. So such a fill runs with `synchronous=OFF`, which survives the projector stopping
//! or crashing (the operating system holds its writes) but not the machine stopping,
//! which may leave the database torn. Only a database holding nothing the log cannot
//! give back (no recorded log damage, no rebuild history) is filled so: a rebuild syncs.
//!
//! A marker file beside the database, holding the kernel's boot id and the process's
//! id, says a fill is under way. When the fill reaches the log's head, the files are
//! synced and the marker goes. At open, a marker of another boot means the machine
//! stopped mid-fill: the database is deleted and filled again from the log. A marker of
//! this boot only means the projector stopped: the store ends it (syncs, removes it) as
//! soon as it writes synced again. A failed sync marks the fill lost: it is never
//! retried into a false success, and the next process drops the database.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where the kernel names the current boot (Linux).
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// What a marker ends with once syncing the fill failed: what was written may never
/// reach the disk (Linux drops the failed pages' dirty state, so a later sync would
/// succeed falsely), and the next process drops the database.
const SYNC_FAILED: &str = "sync-failed";

/// A fill from empty of the database at `db` may begin: the marker is on disk before
/// any unsynced write. `false` where the kernel names no boot (the fill then syncs as
/// usual: an interrupted one could not be told from a finished one).
pub(crate) fn begin(db: &Path) -> io::Result<bool> {
    let Some(boot) = boot_id() else {
        return Ok(false);
    };
    write_marker(db, &format!("{boot} {}", std::process::id()))?;
    Ok(true)
}

/// The fill of `db` is over: its files are synced, then the marker is removed. A
/// failed sync marks the fill lost for good (the next process drops the database).
pub(crate) fn end(db: &Path) -> io::Result<()> {
    if marker_text(db)?.is_some_and(|m| m.ends_with(SYNC_FAILED)) {
        return Err(io::Error::other(
            "an earlier sync of this fill failed: the database is filled again at the next start",
        ));
    }
    let synced = [db.to_owned(), sibling(db, "-wal")]
        .iter()
        .try_for_each(|file| match File::open(file) {
            Ok(f) => f.sync_all(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        });
    if let Err(e) = synced {
        let _ = write_marker(db, &format!("{} {SYNC_FAILED}", std::process::id()));
        return Err(e);
    }
    remove(&marker(db))?;
    sync_dir(db)
}

/// Before `db` is opened: drops the database of a fill that the machine's stop (a
/// marker of another boot) or a failed sync (in another process) interrupted. A fill
/// of this boot is left to the store, which ends it once it writes synced again.
pub(crate) fn recover(db: &Path) -> io::Result<()> {
    let Some(began) = marker_text(db)? else {
        return Ok(());
    };
    let first = began
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let lost = if began.ends_with(SYNC_FAILED) {
        first != std::process::id().to_string()
    } else {
        boot_id().is_none_or(|now| first != now)
    };
    if !lost {
        return Ok(());
    }
    tracing::warn!(
        db = %db.display(),
        "the read models were being filled without syncing when the machine stopped (or a \
         sync failed): the database is dropped and the log replayed into a new one"
    );
    for file in [db.to_owned(), sibling(db, "-wal"), sibling(db, "-shm")] {
        remove(&file)?;
    }
    sync_dir(db)?;
    remove(&marker(db))?;
    sync_dir(db)
}

/// Whether a fill of `db` is marked under way (or lost).
pub(crate) fn marked(db: &Path) -> io::Result<bool> {
    Ok(marker_text(db)?.is_some())
}

/// The marker of a fill under way, beside the database.
pub(crate) fn marker(db: &Path) -> PathBuf {
    sibling(db, ".filling")
}

fn marker_text(db: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(marker(db)) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_marker(db: &Path, text: &str) -> io::Result<()> {
    let mut file = File::create(marker(db))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    sync_dir(db)
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// This boot's id; `None` where the kernel does not tell.
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

    const DATABASE: [&str; 3] = ["p.sqlite", "p.sqlite-shm", "p.sqlite-wal"];

    #[test]
    fn given_a_fill_begun_when_it_ends_then_the_marker_is_gone_and_the_database_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        assert!(begin(&db).unwrap());
        assert!(marked(&db).unwrap());
        end(&db).unwrap();
        assert_eq!(files(dir.path()), DATABASE);
    }

    #[test]
    fn given_a_fill_interrupted_in_this_boot_when_reopened_then_it_is_left_to_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        begin(&db).unwrap();
        recover(&db).unwrap();
        assert_eq!(files(dir.path()).len(), 4, "{:?}", files(dir.path()));
    }

    #[test]
    fn given_a_fill_interrupted_by_the_machine_stopping_when_reopened_then_the_database_is_dropped()
    {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        fs::write(marker(&db), "an-earlier-boot 1").unwrap();
        recover(&db).unwrap();
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    #[test]
    fn given_a_failed_sync_when_the_fill_ends_again_then_it_is_refused_and_the_next_process_drops_it()
     {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        begin(&db).unwrap();
        let failed = format!("{} {SYNC_FAILED}", std::process::id());
        fs::write(marker(&db), failed).unwrap();
        assert!(
            end(&db).is_err(),
            "a failed sync is never retried into success"
        );
        recover(&db).unwrap();
        assert_eq!(files(dir.path()).len(), 4, "this process: left alone");
        fs::write(marker(&db), format!("1 {SYNC_FAILED}")).unwrap();
        recover(&db).unwrap();
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    #[test]
    fn given_no_fill_when_opened_then_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        recover(&db).unwrap();
        assert_eq!(files(dir.path()), DATABASE);
    }
}
