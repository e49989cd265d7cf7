//! `coordctl up`: the whole system on one machine, as separate processes: nats-server
//! with JetStream in a local data folder, the three command services, the projector
//! and the gateway. Loads the reference scenario into an empty log, prints the gateway
//! URL and the province summary, then supervises: a child that exits is restarted
//! with a backoff (`crate::supervise`), and everything stops cleanly on Ctrl-C or when
//! one child keeps failing. A second start finds the data and loads nothing.
//!
//! On first start it generates, owner-only under `<data-dir>/credentials/`, the token
//! signing key and an operator token for the province and every unit, and the NATS
//! credentials (admin password, one nkey per process): NATS allows no anonymous client,
//! and only the admin (used here once, to create the log stream) may change streams.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use coord_auth::nats::{LogSubjects, NatsCredentials};

use crate::client::Client;
use crate::{render, tokens};

/// The reference scenario (the article's figures), embedded so `up` works anywhere.
pub const REFERENCE_SCENARIO: &str =
    include_str!("../../../deploy/scenarios/an-giang-2020-2025.jsonl");

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the log (JetStream store), the read models and the process logs live.
    #[arg(long, default_value = ".data")]
    pub data_dir: PathBuf,
    /// The NATS port on 127.0.0.1.
    #[arg(long, default_value_t = 4222)]
    pub nats_port: u16,
    /// The gateway's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Do not load the reference scenario into an empty log.
    #[arg(long)]
    pub no_scenario: bool,
    /// Load this JSON-lines file instead of the embedded reference scenario.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Run the province as a hub and these district offices (unit ids, comma-separated)
    /// each with its own nats-server, services and gateway (see `up_offices`).
    #[arg(long, value_delimiter = ',')]
    pub offices: Vec<String>,
    /// The hub's leaf-node port, with `--offices`.
    #[arg(long, default_value_t = 7422)]
    pub leaf_port: u16,
    /// `strict`: every server fsyncs its store before acknowledging a write
    /// (`sync_interval: always`); `default`: JetStream's fsync every 2 minutes (see
    /// `coordctl::durability` for what each can lose).
    #[arg(long, value_enum, default_value_t)]
    pub durability: crate::durability::Durability,
    #[command(flatten)]
    pub clustering: crate::offices::Clustering,
    /// Serve each service's own metrics (`GET /metrics`, Prometheus text) on 127.0.0.1
    /// from this port on, in the order inspection, exchange, discipline, projector,
    /// auditor (the gateway's are at its own `/metrics`). Without it, only the gateway's.
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// Copies of the log and of the idempotency bucket (default: one per server; 1 on
    /// a cluster shows what replicas buy, as the fault suite measures).
    #[arg(long)]
    pub log_replicas: Option<usize>,
}

/// How a child is started, kept to start it again.
struct Spec {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

pub(crate) struct Process {
    name: String,
    child: Child,
    spec: Spec,
}

impl Process {
    /// Starts it again, as first started, appending to its log.
    pub(crate) fn respawn(&mut self) -> anyhow::Result<()> {
        self.child = start_child(&self.name, &self.spec, true)?;
        Ok(())
    }

    /// Appends a line of the launcher's to the child's log.
    pub(crate) fn note_in_log(&self, line: &str) {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.spec.log)
        {
            let _ = writeln!(f, "coordctl up: {line}");
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Its exit status, if it has exited.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub(crate) async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => println!("  đã dừng (stopped) {}", self.name),
            Ok(Ok(status)) => println!("  {} dừng với {status} (stopped with {status})", self.name),
            _ => {
                let _ = self.child.kill().await;
                println!("  {} không dừng kịp, đã buộc dừng (killed)", self.name);
            }
        }
    }
}

/// The `(major, minor)` of a `nats-server --version` line (`nats-server: v2.15.1`).
fn nats_version(line: &str) -> Option<(u32, u32)> {
    let v = line.trim().rsplit(' ').next()?.strip_prefix('v')?;
    let mut parts = v.split('.');
    let number = |p: Option<&str>| -> Option<u32> {
        let p = p?;
        let digits = p
            .find(|c: char| !c.is_ascii_digit())
            .map_or(p, |end| &p[..end]);
        digits.parse().ok()
    };
    Some((number(parts.next())?, number(parts.next())?))
}

/// Refuses a nats-server older than `min`, saying what needs it.
pub(crate) fn require_nats_version(bin: &Path, min: (u32, u32), needs: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new(bin).arg("--version").output()?;
    let line = String::from_utf8_lossy(&out.stdout);
    let found = nats_version(&line)
        .ok_or_else(|| anyhow::anyhow!("cannot read the version of {}: {line:?}", bin.display()))?;
    anyhow::ensure!(
        found >= min,
        "{} is nats-server {}.{}; {needs} needs {}.{} or newer: point NATS_SERVER_BIN at a \
         newer one, or remove this one from PATH and run deploy/install-nats.sh (it \
         installs 2.15.1, the version this project is tested on)",
        bin.display(),
        found.0,
        found.1,
        min.0,
        min.1
    );
    Ok(())
}

pub(crate) fn find_nats_server() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let local = Path::new(".tools/nats/bin/nats-server");
    if local.exists() {
        return Ok(local.to_path_buf());
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            if dir.join("nats-server").exists() {
                return Ok(dir.join("nats-server"));
            }
        }
    }
    let script = Path::new("deploy/install-nats.sh");
    anyhow::ensure!(
        script.exists(),
        "nats-server not found: set NATS_SERVER_BIN, or run from the repository root so deploy/install-nats.sh can install it"
    );
    println!("Cài nats-server (installing nats-server) ...");
    let out = std::process::Command::new("bash")
        .arg(script)
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "deploy/install-nats.sh failed");
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    Ok(PathBuf::from(path))
}

pub(crate) fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("coordctl has a folder")?.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build the workspace (cargo build --workspace --bins)",
        path.display()
    );
    Ok(path)
}

pub(crate) fn spawn(
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
    logs: &Path,
) -> anyhow::Result<Process> {
    let spec = Spec {
        program: program.to_path_buf(),
        args: args.to_vec(),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        log: logs.join(format!("{name}.log")),
    };
    let child = start_child(name, &spec, false)?;
    Ok(Process {
        name: name.to_owned(),
        child,
        spec,
    })
}

/// Starts `spec`'s program with its output in its log (appended on a restart, so the
/// reason of the exit stays readable).
fn start_child(name: &str, spec: &Spec, append: bool) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&spec.log)?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    // Own process group: a Ctrl-C in the terminal reaches coordctl only, which then
    // stops the processes in order (gateway first, NATS last).
    cmd.process_group(0);
    cmd.env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    cmd.spawn()
        .with_context(|| format!("cannot start {name} ({})", spec.program.display()))
}

/// What to load into a log whose head is `head`: the file given, else the reference
/// scenario; nothing if the log has data or `--no-scenario` is given.
pub(crate) fn scenario_text(args: &UpArgs, head: u64) -> anyhow::Result<Option<String>> {
    if head > 0 || args.no_scenario {
        return Ok(None);
    }
    Ok(Some(match &args.scenario {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the scenario {}", path.display()))?,
        None => REFERENCE_SCENARIO.to_owned(),
    }))
}

pub(crate) async fn wait_ready(client: &Client, processes: &mut [Process]) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        for p in processes.iter_mut() {
            if let Some(status) = p.child.try_wait()? {
                anyhow::bail!("{} exited during start-up ({status}); see its log", p.name);
            }
        }
        // Ready means every service answers and the projector has caught up.
        if client
            .get_json::<serde_json::Value>("/readyz", &[])
            .await
            .is_ok()
        {
            let v: serde_json::Value = client.get_json("/v1/projector", &[]).await?;
            return Ok(v["head"].as_u64().unwrap_or(0));
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the system did not become ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the nats-server(s) `args` asks for (`crate::cluster`) and creates the log
/// stream and the idempotency bucket at one replica per server; returns the servers'
/// URLs for the services.
async fn start_nats(
    args: &UpArgs,
    creds: &NatsCredentials,
    credentials: &Path,
    logs: &Path,
    processes: &mut Vec<Process>,
) -> anyhow::Result<String> {
    let nats_bin = find_nats_server()?;
    let servers = crate::cluster::write_configs(args, creds, credentials)?;
    for server in &servers {
        let config = vec!["-c".to_owned(), server.config.display().to_string()];
        processes.push(spawn(&server.name, &nats_bin, &config, &[], logs)?);
    }
    let urls = crate::cluster::urls(&servers);
    let replicas = args
        .log_replicas
        .unwrap_or(servers.len())
        .clamp(1, servers.len());
    create_log_stream(&urls, creds, replicas).await?;
    Ok(urls)
}

/// Creates (or finds) the log stream and the idempotency bucket as the NATS admin (the
/// services' own users may not create streams), retrying while the servers start and,
/// in a cluster, elect their leaders.
async fn create_log_stream(
    urls: &str,
    creds: &NatsCredentials,
    replicas: usize,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let client = crate::deploy::admin_connect(urls, &creds.admin_password).await?;
            crate::deploy::create_log(client, replicas).await
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e.context(format!("cannot create the log at {urls}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Creates the bucket where command services claim idempotency keys (or brings it to
/// the write-once settings), as the admin of the server `client` is connected to.
pub(crate) async fn create_idempotency_bucket(client: async_nats::Client) -> anyhow::Result<()> {
    let bucket = LogSubjects::default().idempotency_bucket;
    coord_service::JetStreamKeys::ensure(client, &bucket)
        .await
        .with_context(|| format!("cannot create the idempotency bucket {bucket}"))?;
    Ok(())
}

/// Ctrl-C or SIGTERM. Installed before anything starts, so a signal at any moment
/// means "stop everything cleanly", never the default "die now".
pub(crate) struct StopSignal {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    pub(crate) fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Starts everything and runs until Ctrl-C.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    if !args.offices.is_empty() {
        return crate::up_offices::up(args).await;
    }
    let mut stop = StopSignal::install()?;
    TcpListener::bind(("127.0.0.1", args.nats_port)).with_context(|| {
        format!(
            "port {} is taken: is another NATS running? use --nats-port",
            args.nats_port
        )
    })?;
    TcpListener::bind(args.listen)
        .with_context(|| format!("{} is taken: use --listen", args.listen))?;
    let data = &args.data_dir;
    let logs = data.join("logs");
    std::fs::create_dir_all(&logs)?;
    let credentials = data.join("credentials");
    let province = coord_domain::Province::from_toml_str(coord_domain::province::AN_GIANG_TOML)?;
    tokens::ensure_office_tokens(&credentials, &province, &tokens::all_offices(&province))?;
    tokens::ensure_admin_tokens(&credentials, &province, &[coord_domain::Office::Province])?;
    let token_key = tokens::signer(&credentials)?.public_key();
    let nats_creds = NatsCredentials::ensure(&credentials.join("nats"))?;
    let mut processes = Vec::new();
    let nats_url = match start_nats(&args, &nats_creds, &credentials, &logs, &mut processes).await {
        Ok(url) => url,
        Err(e) => {
            for p in processes.iter_mut().rev() {
                p.stop().await;
            }
            return Err(e);
        }
    };
    let common = vec![
        ("COORD_NATS_URL", nats_url),
        (
            "COORD_PROJECTOR_DB",
            data.join("projector.sqlite").display().to_string(),
        ),
        ("COORD_GATEWAY_ADDR", args.listen.to_string()),
        (
            "COORD_AUDIT_DIR",
            data.join("auditor").display().to_string(),
        ),
        ("COORD_TOKEN_PUBLIC_KEY", token_key),
        // One site for every office, whatever the shell says.
        ("COORD_SITE", "province".to_owned()),
        ("COORD_DISTRICT_SITES", String::new()),
    ];
    for (i, name) in (0..).zip([
        "inspection",
        "exchange",
        "discipline",
        "projector",
        "auditor",
        "gateway",
    ]) {
        let mut env = common.clone();
        env.push((
            "COORD_NATS_CREDS",
            nats_creds.seed_file(name).display().to_string(),
        ));
        if let Some(base) = args.metrics_port.filter(|_| name != "gateway") {
            let addr = format!("127.0.0.1:{}", base + i);
            println!("metrics {name} http://{addr}/metrics");
            env.push(("COORD_METRICS_ADDR", addr));
        }
        processes.push(spawn(name, &sibling_binary(name)?, &[], &env, &logs)?);
    }
    let url = format!("http://{}", args.listen);
    let client = Client::new(&url)?.with_tokens(tokens::TokenSet::load(None, &credentials));
    let result = run_until_signal(&args, &client, &url, &logs, &mut processes, &mut stop).await;
    println!("Đang dừng hệ thống (stopping) ...");
    for p in processes.iter_mut().rev() {
        p.stop().await;
    }
    result
}

async fn run_until_signal(
    args: &UpArgs,
    client: &Client,
    url: &str,
    logs: &Path,
    processes: &mut [Process],
    stop: &mut StopSignal,
) -> anyhow::Result<()> {
    let head = wait_ready(client, processes).await?;
    let mut min_position = None;
    if let Some(text) = scenario_text(args, head)? {
        println!(
            "Log trống: nạp kịch bản tham chiếu (empty log: loading the reference scenario) ..."
        );
        let report = crate::load(client, &text, true).await?;
        for (line, problem) in &report.failures {
            eprintln!("dòng (line) {line}: {problem}");
        }
        anyhow::ensure!(
            report.failures.is_empty(),
            "the scenario did not load cleanly"
        );
        min_position = Some(report.last_position);
    } else if head > 0 {
        println!("Dữ liệu đã có đến vị trí {head}; không nạp lại (data kept, nothing loaded)");
        min_position = Some(head);
    }
    let summary = client.province(None, min_position).await?;
    let districts = client.districts(None).await?;
    println!();
    println!("{}", render::summary(&summary, &districts.districts));
    println!("{}", render::districts(&districts.districts));
    println!();
    println!("Cổng HTTP (gateway): {url}   — API: {url}/v1/openapi.json");
    println!("Nhật ký (logs): {}", logs.display());
    println!("Nhấn Ctrl-C để dừng (press Ctrl-C to stop).");

    let holds = crate::supervise::hold_dir(&args.data_dir);
    crate::supervise::supervise(processes, stop, Default::default(), &holds).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_servers_version_is_read_from_its_version_line() {
        assert_eq!(super::nats_version("nats-server: v2.15.1\n"), Some((2, 15)));
        assert_eq!(super::nats_version("nats-server: v2.9.11"), Some((2, 9)));
        assert_eq!(
            super::nats_version("nats-server: v2.12.0-RC.1"),
            Some((2, 12))
        );
        assert_eq!(
            super::nats_version("nats-server: v2.14.0-dev"),
            Some((2, 14))
        );
        assert_eq!(
            super::nats_version("nats-server: v2.11-beta"),
            Some((2, 11))
        );
        assert_eq!(super::nats_version("garbage"), None);
    }
}
