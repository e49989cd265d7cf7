//! Read connections for the analytics queries (issue 19). `as_of`, window and monthly
//! figures read, and for `as_of` and windows replay, up to every event of the log: a
//! query over 200,000 events is seconds of CPU. They never run on the writer's
//! connection (a projection batch would wait behind them) nor on the status queries'
//! reader (a status would):
//! - each query takes a read-only connection of its own from [`Readers`] (opened on
//!   demand, kept for the next): in WAL mode it reads one committed snapshot and
//!   neither blocks nor waits for a projection batch;
//! - it runs on a thread of its own at the lowest CPU priority (nice 19), so that on a
//!   busy machine projection and commands get the processor first;
//! - at most [`MAX_CONCURRENT`] run at once; more wait for a permit (under the query's
//!   deadline). A query abandoned at its deadline keeps its permit until its thread
//!   ends, so abandoned work never piles up beyond the bound.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use coord_domain::Province;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::store::{Store, StoreError};

/// Analytics queries running at once, at most.
pub const MAX_CONCURRENT: usize = 2;

/// The lowest CPU priority (the highest nice value) on Linux.
const LOWEST_PRIORITY: i32 = 19;

/// A bounded set of read-only connections to one read-model database, each used by one
/// query at a time on a low-priority thread.
#[derive(Clone)]
pub struct Readers {
    inner: Arc<Inner>,
}

struct Inner {
    db: PathBuf,
    province: Province,
    idle: Mutex<Vec<Store>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    /// Readers of the database at `db` (created by the writer first).
    pub fn new(db: PathBuf, province: Province) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                province,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(MAX_CONCURRENT)),
            }),
        }
    }

    /// Runs `f` in one read transaction on a connection of its own, on a low-priority
    /// thread.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name("coord-analytics".into())
            .spawn(move || {
                let _ = tx.send(inner.run(permit, f));
            })
            .map_err(thread_error)?;
        rx.await.expect("an analytics query does not panic")
    }
}

impl Inner {
    fn run<T>(
        &self,
        _permit: OwnedSemaphorePermit,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        lower_priority();
        let idle = self.idle.lock().expect("readers lock").pop();
        let store = match idle {
            Some(store) => store,
            None => Store::open_reader(&self.db, self.province.clone())?,
        };
        let out = store.snapshot(f);
        self.idle.lock().expect("readers lock").push(store);
        out
    }
}

/// Lowers the calling thread's CPU priority (Linux: `setpriority` on the thread id
/// applies to that thread alone). Best effort: a failure only loses the preference.
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), LOWEST_PRIORITY) {
        tracing::debug!(error = %e, "cannot lower the analytics thread's priority");
    }
}

fn thread_error(source: std::io::Error) -> StoreError {
    StoreError::Io {
        what: "an analytics thread",
        source,
    }
}
