//! The launcher's supervision: once the system is up, a child that exits is started
//! again after a backoff (0.5 s, doubling up to 8 s), each restart printed and
//! appended to the child's own log. While it is down the gateway's `/readyz` names it
//! (NATS, a command service, the projector). Everything stops only on Ctrl-C, or when
//! one child keeps failing: [`RestartPolicy::max_failures`] exits within
//! [`RestartPolicy::window`] mean a fault a restart will not cure (a broken
//! configuration, a full disk), and a launcher that restarts it forever hides it.
//!
//! *Holding a child down*: while the file `<data-dir>/hold/<child name>` exists (e.g.
//! `hold/nats-server-2`, `hold/projector`), a restart of that child that falls due is
//! put off, said once on the output, and done as soon as the file is gone. An operator
//! keeps a part down for maintenance this way; the fault suite keeps a killed
//! nats-server down for a stated time.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::launcher::{Process, StopSignal};

/// When to restart a child and when to give up.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// The wait before the first restart; doubled for each recent failure.
    pub first_backoff: Duration,
    /// The longest wait between an exit and the restart.
    pub max_backoff: Duration,
    /// This many exits of one child within [`Self::window`] stop everything.
    pub max_failures: usize,
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_failures: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// What to do after a child exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this wait.
    RestartAfter(Duration),
    /// It failed too often: stop everything.
    GiveUp,
}

impl RestartPolicy {
    /// Records an exit at `now` in `failures` (the child's recent exits, oldest
    /// first; those older than the window are dropped) and decides.
    pub fn on_exit(&self, failures: &mut VecDeque<Instant>, now: Instant) -> Decision {
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            failures.pop_front();
        }
        failures.push_back(now);
        if failures.len() >= self.max_failures {
            return Decision::GiveUp;
        }
        let doublings = u32::try_from(failures.len() - 1)
            .unwrap_or(u32::MAX)
            .min(16);
        Decision::RestartAfter(
            self.first_backoff
                .saturating_mul(1 << doublings)
                .min(self.max_backoff),
        )
    }
}

/// One child under supervision: its recent exits and its pending restart.
#[derive(Default)]
struct Watch {
    failures: VecDeque<Instant>,
    restart_at: Option<Instant>,
    /// A due restart is held back by a hold file (said once).
    held: bool,
}

/// Where the hold files of the children of the site whose data is in `data_dir` are.
pub fn hold_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("hold")
}

/// Runs until Ctrl-C (`Ok`) or until a child keeps failing (`Err`), restarting the
/// children in `processes` as they exit, unless held by a file in `holds`.
pub(crate) async fn supervise(
    processes: &mut [Process],
    stop: &mut StopSignal,
    policy: RestartPolicy,
    holds: &Path,
) -> anyhow::Result<()> {
    let mut watches: Vec<Watch> = processes.iter().map(|_| Watch::default()).collect();
    loop {
        tokio::select! {
            _ = stop.recv() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        for (p, w) in processes.iter_mut().zip(watches.iter_mut()) {
            check(p, w, &policy, holds)?;
        }
    }
}

/// Notices an exit of `p` and schedules its restart, or restarts it when due and not
/// held by its file in `holds`.
fn check(
    p: &mut Process,
    w: &mut Watch,
    policy: &RestartPolicy,
    holds: &Path,
) -> anyhow::Result<()> {
    let now = Instant::now();
    if let Some(at) = w.restart_at {
        if now >= at && held(p, w, holds) {
            return Ok(());
        }
        if now >= at {
            w.restart_at = None;
            w.held = false;
            p.respawn()?;
            println!(
                "  đã khởi động lại (restarted) {} (lần thứ {} trong {} s)",
                p.name(),
                w.failures.len(),
                policy.window.as_secs()
            );
        }
        return Ok(());
    }
    let Some(status) = p.exited() else {
        return Ok(());
    };
    match policy.on_exit(&mut w.failures, now) {
        Decision::RestartAfter(wait) => {
            let line = format!(
                "{} đã dừng bất ngờ ({status}); khởi động lại sau {} ms ({} stopped unexpectedly; restarting in {} ms)",
                p.name(),
                wait.as_millis(),
                p.name(),
                wait.as_millis()
            );
            println!("  {line}");
            p.note_in_log(&line);
            w.restart_at = Some(now + wait);
            Ok(())
        }
        Decision::GiveUp => anyhow::bail!(
            "{} stopped {} times within {} s (last: {status}); stopping everything, see its log",
            p.name(),
            w.failures.len(),
            policy.window.as_secs()
        ),
    }
}

/// Whether `p`'s hold file exists; the first time, says so on the output and in its log.
fn held(p: &Process, w: &mut Watch, holds: &Path) -> bool {
    let file = holds.join(p.name());
    if !file.exists() {
        return false;
    }
    if !w.held {
        w.held = true;
        let line = format!(
            "{} được giữ dừng khi còn {} (held down while {} exists)",
            p.name(),
            file.display(),
            file.display()
        );
        println!("  {line}");
        p.note_in_log(&line);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_the_fifth_exit_within_a_minute_gives_up() {
        let policy = RestartPolicy::default();
        let start = Instant::now();
        let mut failures = VecDeque::new();
        let waits: Vec<Decision> = (0..5)
            .map(|i| policy.on_exit(&mut failures, start + Duration::from_secs(i)))
            .collect();
        let ms = |n| Decision::RestartAfter(Duration::from_millis(n));
        assert_eq!(
            waits,
            [ms(500), ms(1000), ms(2000), ms(4000), Decision::GiveUp]
        );
    }

    #[test]
    fn exits_older_than_the_window_are_forgotten() {
        let policy = RestartPolicy::default();
        let start = Instant::now();
        let mut failures = VecDeque::new();
        for i in 0..4 {
            policy.on_exit(&mut failures, start + Duration::from_secs(i));
        }
        // A fifth exit 61 s after the first: the exits at 0 s and 1 s are forgotten.
        let later = policy.on_exit(&mut failures, start + Duration::from_secs(61));
        assert_eq!(later, Decision::RestartAfter(Duration::from_secs(2)));
        assert_eq!(failures.len(), 3);
    }
}
