//! The fault suite (issue 18), on real processes under `coordctl up` (which restarts a
//! killed child on its store): while an independent client sends commands and records
//! every acknowledged command id (`tests::faults`),
//! - the single server's nats-server is killed with SIGKILL, with the default and with
//!   strict durability;
//! - on `--cluster 3`, the log stream's leader is killed with SIGKILL and kept down for
//!   [`HELD_DOWN`] (its hold file keeps the launcher from restarting it,
//!   `coordctl::supervise`): commands are accepted again while it is down; then the
//!   JetStream metadata leader is killed (restarted at once);
//! - the same with the log at one replica (`--log-replicas 1`): its one server killed
//!   and kept down likewise, commands are refused until it is back;
//! - on `--cluster 3`, the log stream's leader paused with SIGSTOP for [`PAUSE`], then
//!   resumed with SIGCONT;
//! - the projector killed with SIGKILL three times while it rebuilds a log of
//!   [`REBUILD_EVENTS`] events from scratch;
//! - one of two instances of the inspection service is killed with SIGKILL (the
//!   client retries with the same key; NATS's queue group sends it to the other).
//!
//! After each: every acknowledged command id is in the log exactly once, the read model
//! counts each command in the log once, and the system answers again within a stated
//! time. `COORD_FAULTS_REPORT=1` writes the figures to `tests/bench-results/faults.json`.
//!
//! Run alone: `cargo test -p tests --test faults` (after `cargo build --workspace --bins`).

use std::path::PathBuf;
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

    /// Keeps the launcher from restarting child `name` until the returned file is
    /// removed (`coordctl::supervise`'s hold files).
    fn hold(&self, name: &str) -> PathBuf {
        let dir = self.data.path().join("hold");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, "held by the fault suite\n").unwrap();
        file
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

/// Waits until the load has had 20 more acknowledgements (at most 10 s).
async fn warm(load: &Load) {
    let warm = Instant::now() + Duration::from_secs(10);
    let before = load.acked();
    while load.acked() < before + 20 {
        assert!(Instant::now() < warm, "the load does not get through");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap()
}

/// The first acknowledgement of a request sent after `at` (within `within`), as the
/// time since `at`; panics without one.
async fn recovery_since(load: &Load, at: Instant, within: Duration) -> u64 {
    let first = load.first_ack_after(at, within).await;
    let first = first.unwrap_or_else(|| panic!("no command acknowledged within {within:?}"));
    ms(first - at)
}

/// Waits until the load has some acknowledgements, kills `pid` with SIGKILL, and
/// returns the time until the first acknowledgement after the kill.
async fn kill_under_load(load: &Load, pid: u32) -> u64 {
    warm(load).await;
    signal(pid, "KILL");
    recovery_since(load, Instant::now(), RECOVERY_BOUND).await
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

/// How long a killed nats-server is kept down in the cluster cases.
const HELD_DOWN: Duration = Duration::from_secs(15);

/// The process id of the cluster's server `name` (found by its configuration file).
fn server_pid(site: &Site, name: &str) -> u32 {
    site.up
        .child_pid_with_arg(&format!("{name}.conf"))
        .unwrap_or_else(|| panic!("{name} runs"))
}

/// Kills server `name` under load and keeps it down for [`HELD_DOWN`] (its hold file),
/// then lets the launcher restart it. Returns the time from the kill to the first
/// acknowledgement of a request sent after it, and whether that came while it was down.
async fn kill_held_down(site: &mut Site, load: &Load, name: &str) -> (u64, bool) {
    let pid = server_pid(site, name);
    let hold = site.hold(name);
    warm(load).await;
    signal(pid, "KILL");
    let killed = Instant::now();
    let while_down = load.first_ack_after(killed, HELD_DOWN).await;
    tokio::time::sleep_until(killed + HELD_DOWN).await;
    std::fs::remove_file(&hold).unwrap();
    let released = Instant::now();
    site.up
        .wait_for(&format!("đã khởi động lại (restarted) {name}"));
    let first = match while_down {
        Some(first) => first,
        None => {
            let within = HELD_DOWN + RECOVERY_BOUND;
            let first = load.first_ack_after(killed, within).await;
            first.unwrap_or_else(|| panic!("no command acknowledged within {within:?}"))
        }
    };
    (ms(first - killed), first < released)
}

/// The stream leader killed and held down, then (if `meta_too`) the metadata leader
/// killed and restarted at once.
async fn cluster_leaders_killed(site: &mut Site, monitor: u16, meta_too: bool) -> Figures {
    let load = Load::start(&site.base(), &site.secret("province.token"));
    let (stream_leader, _) = tests::faults::leaders(monitor).await;
    let (first, while_down) = kill_held_down(site, &load, &stream_leader).await;
    let mut recovery = vec![first];
    if meta_too {
        let (_, meta_leader) = tests::faults::leaders(monitor).await;
        let pid = server_pid(site, &meta_leader);
        recovery.push(kill_under_load(&load, pid).await);
        site.up
            .wait_for(&format!("đã khởi động lại (restarted) {meta_leader}"));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut figures = site.verify(load, recovery).await;
    figures.held_down_ms = Some(ms(HELD_DOWN));
    figures.accepted_while_down = Some(while_down);
    figures
}

/// A `--cluster 3` site with `extra` arguments, and its first monitoring port.
fn cluster_site(extra: &[&str]) -> (Site, u16) {
    let (routes, monitor) = (tests::free_ports(3), tests::free_ports(3));
    let (routes_arg, monitor_arg) = (routes.to_string(), monitor.to_string());
    let mut args = vec!["--cluster", "3", "--cluster-port", &routes_arg];
    args.extend(["--monitor-port", &monitor_arg]);
    args.extend_from_slice(extra);
    (Site::start(&args, tests::free_ports(3), 3), monitor)
}

/// A `--cluster 3` site (with `extra` arguments) whose stream leader is killed and
/// held down, then (if `meta_too`) its metadata leader killed.
fn cluster_case(case: &str, extra: &[&str], meta_too: bool) -> Figures {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (mut site, monitor) = cluster_site(extra);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let figures = runtime.block_on(cluster_leaders_killed(&mut site, monitor, meta_too));
    site.up.interrupt();
    assert_nothing_lost_or_doubled(case, &figures);
    figures
}

/// With the log at three replicas, two servers hold it while the third is down: a new
/// stream leader takes over and commands are accepted again before the killed server
/// is back (the first acknowledgement of a request sent after the kill comes before
/// its hold is lifted). Seen to fail with the log at one replica.
#[test]
fn cluster_of_3_accepts_commands_while_its_killed_stream_leader_is_down() {
    let f = cluster_case(
        "cluster_3_stream_leader_held_down_then_meta_leader_sigkill",
        &[],
        true,
    );
    assert_eq!(f.accepted_while_down, Some(true), "{f:?}");
}

/// With the log at one replica, its server's death leaves no copy: no request sent
/// after the kill is acknowledged until the launcher may restart it. Seen to fail with
/// the log at three replicas.
#[test]
fn cluster_of_3_with_the_log_at_one_replica_refuses_until_its_server_is_back() {
    let f = cluster_case(
        "cluster_3_log_at_1_replica_stream_leader_held_down",
        &["--log-replicas", "1"],
        false,
    );
    assert_eq!(f.accepted_while_down, Some(false), "{f:?}");
    assert!(f.retries > 0, "{f:?}");
}

/// How long the paused server stays stopped.
const PAUSE: Duration = Duration::from_secs(30);

/// The log stream's leader stopped with SIGSTOP for [`PAUSE`] under load, then
/// resumed: recovery from the pause and from the resumption.
async fn stream_leader_paused(site: &mut Site, monitor: u16) -> Figures {
    let load = Load::start(&site.base(), &site.secret("province.token"));
    let (leader, _) = tests::faults::leaders(monitor).await;
    let pid = server_pid(site, &leader);
    warm(&load).await;
    signal(pid, "STOP");
    let paused = Instant::now();
    tokio::time::sleep(PAUSE).await;
    signal(pid, "CONT");
    let resumed = Instant::now();
    let after_resume = recovery_since(&load, resumed, RECOVERY_BOUND).await;
    let after_pause = recovery_since(&load, paused, PAUSE + RECOVERY_BOUND).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut figures = site.verify(load, vec![after_pause]).await;
    figures.recovery_after_resume_ms = Some(after_resume);
    figures.accepted_while_down = Some(after_pause < ms(resumed - paused));
    figures
}

/// Commands are accepted again while the stream leader is still paused: the other two
/// servers hold the log, and a client whose server stopped answering leaves it within
/// a few pings (`coord_service::server`'s ping interval). Seen to fail with
/// async-nats's default 60 s ping (nothing acknowledged for the whole pause in two
/// runs of three).
#[test]
fn cluster_of_3_loses_nothing_acknowledged_when_its_stream_leader_is_paused_30_s() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (mut site, monitor) = cluster_site(&[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let figures = runtime.block_on(stream_leader_paused(&mut site, monitor));
    site.up.interrupt();
    assert_nothing_lost_or_doubled("cluster_3_stream_leader_sigstop_30s", &figures);
    assert_eq!(figures.accepted_while_down, Some(true), "{figures:?}");
}

/// Kill rounds of the two-instance case: each kills the older instance and starts a
/// new one.
const INSTANCE_KILLS: usize = 5;

/// Commands under way at once in the two-instance case, so that a kill finds several
/// in the killed instance.
const INSTANCE_LOAD: usize = 32;

/// Kills `pid` with SIGKILL the moment an append reaches the log (`appends`, the
/// admin's subscription to the log's subjects), so that the kill tends to land after
/// an instance appended and before it answered: the case where a retry under a new
/// key would store the command twice. Returns the recovery time.
async fn kill_on_append(load: &Load, appends: &mut async_nats::Subscriber, pid: u32) -> u64 {
    use futures::StreamExt as _;
    warm(load).await;
    // What arrived before now is stale: kill on a fresh append.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, appends.next()).await {}
    appends.next().await.expect("appends reach the log");
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    recovery_since(load, Instant::now(), RECOVERY_BOUND).await
}

async fn one_of_two_instances_killed() -> Figures {
    let stack = tests::Stack::start();
    stack.wait_ready().await;
    // The stack's own inspection instance plus one more.
    let mut instances = vec![stack.spawn("inspection", &[])];
    let admin = stack.nats.admin_client().await;
    let mut appends = admin.subscribe("coord.log.>").await.unwrap();
    let load = Load::with_workers(&stack.gateway_url, &stack.token("province"), INSTANCE_LOAD);
    let mut recovery = Vec::new();
    for round in 0..INSTANCE_KILLS {
        // Kept until killed (dropping a process kills it too).
        let older = (round > 0).then(|| instances.remove(0));
        let pid = older
            .as_ref()
            .map_or_else(|| stack.processes[0].pid(), |p| p.pid());
        recovery.push(kill_on_append(&load, &mut appends, pid).await);
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

/// Seen to catch a client that retries under a new key: with `send_until_acked`
/// changed to take a new key for each retry, five runs of five log-timed kills each
/// failed (4, 7, 4, 4 and 18 commands doubled); with the same key, two runs passed.
/// (With three kills at random moments and 16 in flight it caught it in one run of
/// three.)
#[test]
fn one_of_two_command_service_instances_killed_loses_nothing_acknowledged() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let figures = runtime.block_on(one_of_two_instances_killed());
    assert_nothing_lost_or_doubled("inspection_one_of_two_sigkill", &figures);
}

/// The events in the log the projector rebuilds (besides the load's commands).
const REBUILD_EVENTS: usize = 100_000;

/// How far into the rebuild each kill of the projector lands (shares of its target).
const PROJECTOR_KILLS: [f64; 3] = [0.25, 0.5, 0.75];

/// Fills the site's log with [`REBUILD_EVENTS`] inspections, raw, as the NATS admin.
async fn fill_log(site: &Site, nats_url: &str) {
    let admin = async_nats::ConnectOptions::with_user_and_password(
        "admin".into(),
        site.secret("nats/admin.password"),
    )
    .connect(nats_url)
    .await
    .expect("the NATS admin connects");
    let js = async_nats::jetstream::new(admin);
    tests::publish_inspections(&js, 0..REBUILD_EVENTS).await;
}

/// Asks the projector to drop its read model and replay the log; its target position.
async fn start_rebuild(site: &Site, http: &reqwest::Client) -> u64 {
    let r = http
        .post(format!("{}/v1/admin/rebuild", site.base()))
        .bearer_auth(site.secret("province.admin.token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // The projector answers once the tables are dropped.
    let (_, p) = answers_again(http, &site.base(), "/v1/projector", Instant::now()).await;
    p["last_rebuild"]["target_position"].as_u64().unwrap()
}

/// Waits until the rebuild has replayed up to `position`; the position then.
async fn rebuilt_to(http: &reqwest::Client, base: &str, position: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(p) = tests::faults::projector_status(http, base).await {
            assert_eq!(
                p["rebuilding"], true,
                "the rebuild ended before a kill: {p}"
            );
            let at = p["position"].as_u64().unwrap();
            if at >= position {
                return at;
            }
        }
        assert!(Instant::now() < deadline, "the rebuild stalls");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long one poll of the projector's state waits for its answer.
const POLL_TIMEOUT: Duration = Duration::from_millis(500);

/// Waits (within [`RECOVERY_BOUND`]) until `path` answers 200 at the gateway `base`;
/// the time since `since` and the answer.
async fn answers_again(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    since: Instant,
) -> (u64, serde_json::Value) {
    loop {
        // A short wait per try: a request that reached the process just killed would
        // otherwise hang for the gateway's whole deadline.
        let tried = http.get(format!("{base}{path}")).timeout(POLL_TIMEOUT);
        let last = match tried.send().await {
            Ok(r) if r.status().is_success() => {
                return (ms(since.elapsed()), r.json().await.unwrap_or_default());
            }
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        assert!(
            since.elapsed() < RECOVERY_BOUND,
            "{path} does not answer within {RECOVERY_BOUND:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills the projector at each share of the rebuild in [`PROJECTOR_KILLS`]; what each
/// kill found and how long the projector took to answer again, and the last kill's time.
async fn kill_projector_while_rebuilding(
    site: &Site,
    http: &reqwest::Client,
    target: u64,
) -> (Vec<serde_json::Value>, Instant) {
    let mut kills = Vec::new();
    let mut killed = Instant::now();
    for share in PROJECTOR_KILLS {
        let wanted = (target as f64 * share) as u64;
        let at = rebuilt_to(http, &site.base(), wanted).await;
        let pid = site.up.child_pid("projector").expect("the projector runs");
        signal(pid, "KILL");
        killed = Instant::now();
        let (back_ms, p) = answers_again(http, &site.base(), "/v1/projector", killed).await;
        kills.push(serde_json::json!({
            "killed_at_position": at, "back_ms": back_ms,
            "resumed_at_position": p["position"], "still_rebuilding": p["rebuilding"],
        }));
    }
    (kills, killed)
}

/// A log of [`REBUILD_EVENTS`] events rebuilt from scratch under a light load, the
/// projector killed three times during the rebuild (the launcher restarts it).
async fn projector_killed_during_rebuild(site: &Site, nats_url: &str) -> Figures {
    let http = tests::offices::http_with(&site.secret("province.token"));
    let filling = Instant::now();
    fill_log(site, nats_url).await;
    let fill_ms = ms(filling.elapsed());
    // One command at a time beside the rebuild: the command path does not need it.
    let load = Load::with_workers(&site.base(), &site.secret("province.token"), 1);
    warm(&load).await;
    let started = Instant::now();
    let target = start_rebuild(site, &http).await;
    let (kills, last_kill) = kill_projector_while_rebuilding(site, &http, target).await;
    let (ready_ms, _) = answers_again(&http, &site.base(), "/readyz", last_kill).await;
    let rebuild_ms = ms(started.elapsed());
    let mut figures = site.verify(load, Vec::new()).await;
    figures.rebuild = Some(serde_json::json!({
        "log_events_filled": REBUILD_EVENTS, "fill_ms": fill_ms, "target_position": target,
        "kills": kills, "ready_after_last_kill_ms": ready_ms, "rebuild_ms": rebuild_ms,
    }));
    figures
}

#[test]
fn the_projector_killed_three_times_during_a_rebuild_counts_each_event_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let nats_port = free_port();
    let mut site = Site::start(&[], nats_port, 1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("nats://127.0.0.1:{nats_port}");
    let figures = runtime.block_on(projector_killed_during_rebuild(&site, &url));
    site.up.wait_for("đã khởi động lại (restarted) projector");
    site.up.interrupt();
    assert!(figures.in_log > REBUILD_EVENTS, "{figures:?}");
    assert_nothing_lost_or_doubled("projector_sigkill_x3_during_100k_rebuild", &figures);
}
