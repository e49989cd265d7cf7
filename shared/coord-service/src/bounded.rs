//! Bounded work for the request loops of the command services and the query service.
//!
//! A loop takes a permit *before* it spawns the work for a request, so that a flood of
//! requests waits in the NATS subscription (backpressure) instead of becoming an
//! unbounded number of tasks; and every request runs under a deadline, so that a stuck
//! request gives its permit back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

/// How much work a request loop may have at once, and for how long each piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests handled at once (at least 1).
    pub max_in_flight: usize,
    /// Longest one request may take before it is answered with a timeout error.
    pub deadline: Duration,
}

/// A spawner that never has more than `max_in_flight` tasks running.
#[derive(Debug, Clone)]
pub struct Bounded {
    permits: Arc<Semaphore>,
    max: usize,
    tasks: TaskTracker,
}

impl Bounded {
    pub fn new(max_in_flight: usize) -> Self {
        let max = max_in_flight.max(1);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            tasks: TaskTracker::new(),
        }
    }

    /// Waits for a permit, then spawns `work`, which holds the permit until it ends.
    /// The caller's loop does not take the next request before this returns.
    pub async fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        self.tasks.spawn(async move {
            work.await;
            drop(permit);
        });
    }

    /// Tasks running now.
    pub fn in_flight(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Waits for every spawned task to end; spawn nothing after this.
    pub async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn given_all_permits_taken_when_spawning_then_the_caller_waits_until_one_frees() {
        let bounded = Bounded::new(1);
        let (release, released) = oneshot::channel::<()>();
        bounded
            .spawn(async move {
                let _ = released.await;
            })
            .await;
        assert_eq!(bounded.in_flight(), 1);

        // The second spawn must not even start while the first holds the only permit.
        let second = bounded.spawn(async {});
        tokio::pin!(second);
        let waited = tokio::time::timeout(Duration::from_millis(100), &mut second).await;
        assert!(waited.is_err(), "spawned beyond the limit");

        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the permit came back");
        bounded.drain().await;
        assert_eq!(bounded.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_limit_of_zero_still_allows_one() {
        let bounded = Bounded::new(0);
        tokio::time::timeout(Duration::from_secs(5), bounded.spawn(async {}))
            .await
            .expect("one at a time, not none");
        bounded.drain().await;
    }
}
