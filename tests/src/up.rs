//! `coordctl up` as a child process: its output read line by line, Ctrl-C at the end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::workspace_bin;

pub struct Up {
    /// Everything printed so far (stderr lines prefixed `stderr: `).
    pub seen: Vec<String>,
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn forward(
    stream: impl std::io::Read + Send + 'static,
    tx: mpsc::Sender<String>,
    prefix: &'static str,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(format!("{prefix}{line}")).is_err() {
                break;
            }
        }
    });
}

/// The children of process `parent`: (pid, program name), from `/proc/<pid>/stat`.
pub fn child_pids(parent: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces, so split at the last ')'.
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_owned();
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some((pid, comm))
        })
        .collect()
}

impl Up {
    pub fn start(data: &std::path::Path, nats_port: u16, http_port: u16) -> Self {
        Self::start_with(data, nats_port, http_port, &[])
    }

    /// `coordctl up` with `extra` arguments (e.g. `--offices a,b`).
    pub fn start_with(
        data: &std::path::Path,
        nats_port: u16,
        http_port: u16,
        extra: &[&str],
    ) -> Self {
        let mut child = Command::new(workspace_bin("coordctl"))
            .args(["up", "--data-dir"])
            .arg(data)
            .args([
                "--nats-port",
                &nats_port.to_string(),
                "--listen",
                &format!("127.0.0.1:{http_port}"),
            ])
            .args(extra)
            .env("NATS_SERVER_BIN", crate::nats_server_bin())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("coordctl starts");
        // Both streams go to one channel, so a failure message shows coordctl's errors too.
        let (tx, lines) = mpsc::channel();
        forward(child.stdout.take().unwrap(), tx.clone(), "");
        forward(child.stderr.take().unwrap(), tx, "stderr: ");
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The process id of `coordctl up`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process id of its child whose program is `name` (`inspection`,
    /// `nats-server`, …), read from `/proc`.
    pub fn child_pid(&self, name: &str) -> Option<u32> {
        child_pids(self.pid())
            .into_iter()
            .find(|(_, comm)| comm == name)
            .map(|(pid, _)| pid)
    }

    /// The process id of its child whose command line holds `needle` (a nats-server of
    /// a cluster, by its configuration file's name).
    pub fn child_pid_with_arg(&self, needle: &str) -> Option<u32> {
        child_pids(self.pid())
            .into_iter()
            .map(|(pid, _)| pid)
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
            })
    }

    /// Reads output until a line contains `needle` (at most 90 s).
    pub fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "`{needle}` never printed; output so far:\n{}",
            self.seen.join("\n")
        );
    }

    /// Ctrl-C, then a bounded wait for a clean exit.
    pub fn interrupt(mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                self.seen.extend(self.lines.try_iter());
                assert!(
                    status.success(),
                    "coordctl up exits cleanly on Ctrl-C ({status}); output:\n{}",
                    self.seen.join("\n")
                );
                break;
            }
            assert!(Instant::now() < deadline, "coordctl up stops within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.seen.extend(self.lines.try_iter());
        std::mem::take(&mut self.seen)
    }
}

/// A test that panicked before [`Up::interrupt`] must not leave the system running:
/// its launcher would go on restarting servers on ports the next tests take as free.
impl Drop for Up {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
