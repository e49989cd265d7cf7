//! The fault suite (issue 18), on real processes under `coordctl up` (which restarts a
//! killed child on its store): while an independent client sends commands and records
//! every acknowledged command id (`tests::faults`),
//! - the single server's nats-server is killed with SIGKILL, with the default and with
//!   strict durability;
//! - on `--cluster 3`, the log stream's leader is killed with SIGKILL, then the
//!   JetStream metadata leader;
//! - the same with the log at one replica (`--log-replicas 1`): its one server killed,
//!   commands are refused until the launcher has it back;
//! - one of two instances of the inspection service is killed with SIGKILL (the
//!   client retries with the same key; NATS's queue group sends it to the other).
//!
//! After each: every acknowledged command id is in the log exactly once, the read model
//! counts each command in the log once, and the system answers again within a stated
//! time. `COORD_FAULTS_REPORT=1` writes the figures to `tests/bench-results/faults.json`.
//!
//! Run alone: `cargo test -p tests --test faults` (after `cargo build --workspace --bins`).

use std::sync::Mutex;
use std::time::Duration;

use tests::faults::{Figures, Load};
use tests::free_port;
use tests::up::Up;
use tokio::time::Instant;

/// One case at a time: each runs a whole system.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The system answers again within this time after each fault.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

struct Site {
    up: Up,
    data: tempfile::TempDir,
    http_port: u16,
    nats_urls: String,
}

impl Site {
    fn start(extra: &[&str], nats_port: u16, servers: u16) -> Self {
        let data = tempfile::tempdir().unwrap();
        let http_port = free_port();
        let mut args = vec!["--no-scenario"];
        args.extend_from_slice(extra);
        let mut up = Up::start_with(data.path(), nats_port, http_port, &args);
        up.wait_for("Nhấn Ctrl-C");
        let nats_urls = (0..servers)
            .map(|i| format!("nats://127.0.0.1:{}", nats_port + i))
            .collect::<Vec<_>>()
            .join(",");
        Self {
            up,
            data,
            http_port,
            nats_urls,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn secret(&self, file: &str) -> String {
        let path = self.data.path().join("credentials").join(file);
        std::fs::read_to_string(path).unwrap().trim().to_owned()
    }

    /// Stops the load and compares what it saw with the log and the read model.
    async fn verify(&self, load: Load, recovery: Vec<u64>) -> Figures {
        let acks = load.stop().await;
        let log =
            tests::faults::log_command_ids(&self.nats_urls, &self.secret("nats/admin.password"))
                .await;
        let token = self.secret("province.token");
        let read_model = tests::faults::read_model_count(&self.base(), &token).await;
        tests::faults::figures(&acks, &log, read_model, recovery)
    }
}

/// Waits until the load has some acknowledgements, kills `pid` with SIGKILL, and
/// returns the time until the first acknowledgement after the kill.
async fn kill_under_load(load: &Load, pid: u32) -> u64 {
    let warm = Instant::now() + Duration::from_secs(10);
    let before = load.acked();
    while load.acked() < before + 20 {
        assert!(Instant::now() < warm, "the load does not get through");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let at = Instant::now();
    let first = load.first_ack_after(at, RECOVERY_BOUND).await;
    let first =
        first.unwrap_or_else(|| panic!("no command acknowledged within {RECOVERY_BOUND:?}"));
    u64::try_from((first - at).as_millis()).unwrap()
}

fn assert_nothing_lost_or_doubled(case: &str, f: &Figures) {
    eprintln!("{case}: {}", serde_json::to_string(f).unwrap());
    assert!(f.acknowledged >= 20, "{case}: {f:?}");
    assert_eq!(f.lost, 0, "{case}: acknowledged commands lost: {f:?}");
    assert_eq!(f.doubled, 0, "{case}: commands in the log twice: {f:?}");
    assert_eq!(f.abandoned, 0, "{case}: {f:?}");
    assert_eq!(
        f.read_model, f.in_log as u64,
        "{case}: the read model counts each once: {f:?}"
    );
    report(case, f);
}

/// Adds the case's figures to `tests/bench-results/faults.json` if asked to.
fn report(case: &str, f: &Figures) {
    if std::env::var_os("COORD_FAULTS_REPORT").is_none() {
        return;
    }
    let path = tests::workspace_root().join("tests/bench-results/faults.json");
    let mut all: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    all[case] = serde_json::json!({
        "measured_at": chrono::Utc::now().to_rfc3339(),
        "figures": f,
    });
    std::fs::write(path, serde_json::to_string_pretty(&all).unwrap() + "\n").unwrap();
}

async fn single_server_killed(site: &mut Site) -> Figures {
    let load = Load::start(&site.base(), &site.secret("province.token"));
    let pid = site.up.child_pid("nats-server").expect("nats-server runs");
    let recovery = kill_under_load(&load, pid).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    site.verify(load, vec![recovery]).await
}

fn single_server_case(case: &str, extra: &[&str]) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut site = Site::start(extra, free_port(), 1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let figures = runtime.block_on(single_server_killed(&mut site));
    site.up.interrupt();
    assert_nothing_lost_or_doubled(case, &figures);
}

#[test]
fn the_single_server_killed_under_load_loses_nothing_acknowledged() {
    single_server_case("single_server_sigkill_default", &[]);
}

#[test]
fn the_single_server_killed_under_load_with_strict_durability_loses_nothing_acknowledged() {
    single_server_case("single_server_sigkill_strict", &["--durability", "strict"]);
}

/// The `/jsz` of the server on `port`, if it answers (a restarted one may not yet).
async fn jsz(port: u16) -> Option<serde_json::Value> {
    let url = format!("http://127.0.0.1:{port}/jsz?accounts=true&streams=true");
    reqwest::get(url).await.ok()?.json().await.ok()
}

/// The log stream's leader and the metadata leader, as one of the servers on
/// `monitor`… `monitor + 2` sees them.
async fn leaders(monitor: u16) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for port in monitor..monitor + 3 {
            if let Some(found) = jsz(port).await.as_ref().and_then(leaders_in) {
                return found;
            }
        }
        assert!(Instant::now() < deadline, "no server names both leaders");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn leaders_in(j: &serde_json::Value) -> Option<(String, String)> {
    let stream = j["account_details"]
        .as_array()?
        .iter()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == "COORD_LOG")?;
    let stream_leader = stream["cluster"]["leader"].as_str()?;
    let meta_leader = j["meta_cluster"]["leader"].as_str()?;
    (!stream_leader.is_empty() && !meta_leader.is_empty())
        .then(|| (stream_leader.to_owned(), meta_leader.to_owned()))
}

async fn cluster_leaders_killed(site: &mut Site, monitor: u16, kinds: &[&str]) -> Figures {
    let load = Load::start(&site.base(), &site.secret("province.token"));
    let mut recovery = Vec::new();
    for which in kinds {
        let (stream_leader, meta_leader) = leaders(monitor).await;
        let name = if *which == "stream" {
            stream_leader
        } else {
            meta_leader
        };
        let pid = site
            .up
            .child_pid_with_arg(&format!("{name}.conf"))
            .unwrap_or_else(|| panic!("{name} runs"));
        recovery.push(kill_under_load(&load, pid).await);
        // Back on its store (the launcher restarts it) before the next fault.
        site.up
            .wait_for(&format!("đã khởi động lại (restarted) {name}"));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    site.verify(load, recovery).await
}

/// A `--cluster 3` site (with `extra` arguments) whose leaders of `kinds` are killed.
fn cluster_case(case: &str, extra: &[&str], kinds: &[&str]) -> Figures {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (routes, monitor) = (tests::free_ports(3), tests::free_ports(3));
    let (routes_arg, monitor_arg) = (routes.to_string(), monitor.to_string());
    let mut args = vec!["--cluster", "3", "--cluster-port", &routes_arg];
    args.extend(["--monitor-port", &monitor_arg]);
    args.extend_from_slice(extra);
    let mut site = Site::start(&args, tests::free_ports(3), 3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let figures = runtime.block_on(cluster_leaders_killed(&mut site, monitor, kinds));
    site.up.interrupt();
    assert_nothing_lost_or_doubled(case, &figures);
    figures
}

#[test]
fn cluster_of_3_loses_nothing_acknowledged_when_its_stream_then_meta_leader_is_killed() {
    cluster_case(
        "cluster_3_stream_then_meta_leader_sigkill",
        &[],
        &["stream", "meta"],
    );
}

#[test]
fn cluster_of_3_with_the_log_at_one_replica_refuses_until_its_server_is_back() {
    let f = cluster_case(
        "cluster_3_log_at_1_replica_stream_leader_sigkill",
        &["--log-replicas", "1"],
        &["stream"],
    );
    // Its only copy is down until the launcher restarts that server (0.5 s at least).
    assert!(f.recovery_ms[0] >= 500, "{f:?}");
}

/// Kill rounds of the two-instance case: each kills the older instance and starts a
/// new one, so that some kills land on requests under way.
const INSTANCE_KILLS: usize = 3;

async fn one_of_two_instances_killed() -> Figures {
    let stack = tests::Stack::start();
    stack.wait_ready().await;
    // The stack's own inspection instance plus one more.
    let mut instances = vec![stack.spawn("inspection", &[])];
    // Many commands under way, so that a kill finds some in the killed instance.
    let load = Load::with_workers(&stack.gateway_url, &stack.token("province"), 16);
    let mut recovery = Vec::new();
    for round in 0..INSTANCE_KILLS {
        // Kept until killed (dropping a process kills it too).
        let older = (round > 0).then(|| instances.remove(0));
        let pid = older
            .as_ref()
            .map_or_else(|| stack.processes[0].pid(), |p| p.pid());
        recovery.push(kill_under_load(&load, pid).await);
        drop(older);
        instances.push(stack.spawn("inspection", &[]));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acks = load.stop().await;
    let log = tests::faults::log_command_ids_with(stack.nats.admin_client().await).await;
    let read_model =
        tests::faults::read_model_count(&stack.gateway_url, &stack.token("province")).await;
    tests::faults::figures(&acks, &log, read_model, recovery)
}

#[test]
fn one_of_two_command_service_instances_killed_loses_nothing_acknowledged() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let figures = runtime.block_on(one_of_two_instances_killed());
    assert_nothing_lost_or_doubled("inspection_one_of_two_sigkill", &figures);
}
