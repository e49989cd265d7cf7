//! Test support for the workspace's end-to-end and contract tests.
//!
//! - [`NatsServer`]: a real `nats-server` with JetStream on a loopback port that the
//!   server chooses itself (`-p -1`, read back from its `--ports_file_dir` file, so no
//!   two tests race for a port) and a temporary store directory, killed on drop. Like
//!   every deployment it admits no anonymous client: [`NatsServer::admin_client`]
//!   connects as the generated admin (for tests that set up or inspect the log),
//!   services get their own users with [`NatsServer::service_env`]. The binary comes
//!   from `NATS_SERVER_BIN`, the project's `.tools/nats/bin` (see
//!   `deploy/install-nats.sh`) or `PATH`.
//! - [`ServiceProcess`]: one of the workspace's service binaries running as a child
//!   process, stopped with SIGTERM on drop.
//! - [`contract`]: the behaviour every `EventLog` backend must have.

pub mod contract;
pub mod faults;
pub mod jsz;
pub mod offices;
pub mod up;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Finds the `nats-server` binary.
pub fn nats_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let local = workspace_root().join(".tools/nats/bin/nats-server");
    if local.exists() {
        return local;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("nats-server");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    panic!("nats-server not found: run deploy/install-nats.sh, or set NATS_SERVER_BIN");
}

/// A free TCP port on 127.0.0.1 for a process about to listen on it, released just
/// before use.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The TCP port process `pid` listens on, if any (Linux: the socket inodes among its
/// open files, looked up in its network namespace's `/proc/<pid>/net/tcp`).
pub fn listening_port(pid: u32) -> Option<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_str()?;
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|line| {
        // sl local_address rem_address st … inode: state 0A is LISTEN.
        let fields: Vec<&str> = line.split_whitespace().collect();
        let listening = fields.get(3) == Some(&"0A") && inodes.contains(*fields.get(9)?);
        let port = fields.get(1)?.rsplit(':').next()?;
        listening.then(|| u16::from_str_radix(port, 16).ok())?
    })
}

/// The client port nats-server writes to `<dir>/nats-server_<pid>.ports` once it listens.
fn read_ports_file(dir: &Path, child: &mut Child) -> u16 {
    let file = dir.join(format!("nats-server_{}.ports", child.id()));
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let port = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|ports| ports["nats"][0].as_str()?.rsplit(':').next()?.parse().ok());
        if let Some(port) = port {
            return port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("nats-server exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!(
        "nats-server wrote no ports file {} within 15 s",
        file.display()
    );
}

/// The first of `n` consecutive free ports on 127.0.0.1 (for `coordctl up --offices`,
/// which numbers its offices' ports from a base). Picked at random below the kernel's
/// ephemeral range: a port the OS hands out (`:0`) may meanwhile become the local end
/// of an outgoing connection (a client's, a leaf node's), and the process it was for
/// then fails to bind. Never one this test binary was already given.
pub fn free_ports(n: u16) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let (low, high) = (10_000u16, ephemeral_low().saturating_sub(n).max(10_100));
    for _ in 0..100_000 {
        let base = low + (uuid::Uuid::new_v4().as_u128() % u128::from(high - low)) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        let ports = base..base + n;
        let free = ports
            .clone()
            .all(|p| !given.contains(&p) && TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            given.extend(ports);
            return base;
        }
    }
    panic!("no {n} consecutive free ports in 127.0.0.1:{low}..{high} not already given");
}

/// The first port of the kernel's ephemeral range (Linux; 32768 when unknown).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 15 s");
}

/// A real nats-server with JetStream, on loopback, with a temporary store, generated
/// credentials and the log stream created by its admin.
pub struct NatsServer {
    child: Option<Child>,
    /// 0 until the first start, then the port the server chose.
    port: u16,
    store: tempfile::TempDir,
    credentials: coord_auth::nats::NatsCredentials,
    durability: coordctl::durability::Durability,
}

impl NatsServer {
    pub fn start() -> Self {
        Self::start_with(Default::default())
    }

    /// A server whose store has this durability (`strict`: fsync before every
    /// acknowledgement).
    pub fn start_with(durability: coordctl::durability::Durability) -> Self {
        let store = tempfile::tempdir().expect("a temporary store directory");
        let credentials = coord_auth::nats::NatsCredentials::ensure(&store.path().join("creds"))
            .expect("NATS credentials are generated");
        let mut server = Self {
            child: None,
            port: 0,
            store,
            credentials,
            durability,
        };
        server.spawn();
        server.create_log_stream();
        server
    }

    fn config_file(&self) -> PathBuf {
        let path = self.store.path().join("creds/nats-server.conf");
        let mut config = coord_auth::nats::single_server_config(
            self.port,
            self.store.path(),
            &self.credentials,
            &coord_auth::nats::LogSubjects::default(),
        )
        .expect("the NATS configuration is generated");
        self.durability.apply(&mut config);
        coord_auth::nats::write_config(&path, &config).expect("the NATS configuration is written");
        path
    }

    /// As an operator does at first start: the admin creates the log stream and the
    /// idempotency bucket, which the services' users may not. (A thread of its own: callers may be inside a runtime.)
    fn create_log_stream(&self) {
        let (url, password) = (self.url(), self.credentials.admin_password.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let client = admin_connect(&url, password).await;
                coord_log::jetstream::JetStreamLog::open(client.clone(), Default::default())
                    .await
                    .expect("the admin creates the log stream");
                let bucket = coord_auth::nats::LogSubjects::default().idempotency_bucket;
                coord_service::JetStreamKeys::ensure(client.clone(), &bucket)
                    .await
                    .expect("the admin creates the idempotency bucket");
                coord_service::lease::ensure_bucket(client.clone(), 1)
                    .await
                    .expect("the admin creates the lease bucket");
                client.flush().await.expect("flushed");
            });
        })
        .join()
        .expect("the log stream is created");
    }

    fn spawn(&mut self) {
        let ports_dir = self.store.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir).expect("a ports file directory");
        // First start: the server picks a free port. A restart keeps the port, so
        // that clients reconnect; it was the server's own until the kill.
        let port = if self.port == 0 {
            "-1".to_owned()
        } else {
            self.port.to_string()
        };
        let mut child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(self.config_file())
            // Flags override the file: the server picks the port on the first start.
            .args(["-a", "127.0.0.1", "-p", &port])
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.port = read_ports_file(&ports_dir, &mut child);
        wait_for_port(self.port, &mut child, "nats-server");
        self.child = Some(child);
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's URL; connecting needs credentials ([`NatsServer::admin_client`],
    /// [`NatsServer::client_as`], [`NatsServer::service_env`]).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A client connected as the admin: full rights, for setting up and inspecting.
    pub async fn admin_client(&self) -> async_nats::Client {
        admin_connect(&self.url(), self.credentials.admin_password.clone()).await
    }

    /// The nkey seed file of process `name`'s user (`inspection`, `gateway`, `reader`, …).
    pub fn creds_file(&self, name: &str) -> PathBuf {
        self.credentials.seed_file(name)
    }

    /// What process `name` needs to connect as its own user.
    pub fn service_env(&self, name: &str) -> Vec<(String, String)> {
        vec![
            ("COORD_NATS_URL".into(), self.url()),
            (
                "COORD_NATS_CREDS".into(),
                self.creds_file(name).display().to_string(),
            ),
        ]
    }

    /// A client connected as user `name`, with that user's own inbox prefix.
    pub async fn client_as(&self, name: &str) -> async_nats::Client {
        let seed = std::fs::read_to_string(self.creds_file(name)).expect("the seed file");
        coord_service::server::user_options(&seed)
            .expect("a user seed")
            .connect(self.url())
            .await
            .expect("the user connects")
    }

    /// Kills the server (SIGKILL: no clean shutdown) and starts it again on the same
    /// port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Kills the server (SIGKILL), to [`NatsServer::start_again`] later.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// The server's store directory (JetStream data under `jetstream/`).
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Starts a stopped server again on the same port and store.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn admin_connect(url: &str, password: String) -> async_nats::Client {
    coord_service::server::password_options("admin", &password)
        .connect(url)
        .await
        .expect("the NATS admin connects")
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A nats-server run from a configuration file (e.g. one of `coordctl offices`),
/// killed on drop.
pub struct ConfiguredNats {
    child: Option<Child>,
    port: u16,
}

impl ConfiguredNats {
    /// Starts nats-server with `config` and waits until it listens on `port`.
    pub fn start(config: &Path, port: u16) -> Self {
        // Its log goes next to the configuration, for post-mortems.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.with_extension("log"))
            .expect("a log file");
        let mut child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        wait_for_port(port, &mut child, "nats-server");
        Self {
            child: Some(child),
            port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops it (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ConfiguredNats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The path of a workspace binary, next to the test executable's `deps/` folder.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (deploy/test.sh does)",
        path.display()
    );
    path
}

/// A workspace service running as a child process.
pub struct ServiceProcess {
    child: Option<Child>,
    pub name: String,
}

impl ServiceProcess {
    /// Starts `bin` with `args` and environment `env`. Logs go to stderr of the test.
    pub fn start(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(workspace_bin(bin));
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null());
        cmd.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{bin} starts: {e}"));
        Self {
            child: Some(child),
            name: bin.to_owned(),
        }
    }

    /// Starts `bin` connected to `nats` as its own NATS user, with `extra` environment.
    pub fn start_on(nats: &NatsServer, bin: &str, extra: &[(&str, &str)]) -> Self {
        let env = nats.service_env(bin);
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        Self::start(bin, &[], &all)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits (at most 15 s) until the process listens on a TCP port and returns it: for
    /// a server started on port 0, which chose its own port (no race for a free one).
    pub fn wait_listening(&mut self) -> u16 {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(port) = listening_port(child.id()) {
                return port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{} exited early with {status}", self.name);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{} did not listen within 15 s", self.name);
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills without warning (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a command request over NATS and decodes the reply, retrying while no service
/// instance is subscribed yet (services start in parallel with the test), for at most
/// 20 seconds.
pub async fn send_command(
    client: &async_nats::Client,
    service: &str,
    endpoint: &str,
    request: &coord_proto::CommandRequest,
) -> coord_proto::CommandReply {
    let subject = coord_proto::command_subject(service, endpoint);
    let body = serde_json::to_vec(request).expect("requests serialize");
    send_raw(client, &subject, body).await
}

/// Sends raw bytes to a command subject (for malformed-input tests).
pub async fn send_raw(
    client: &async_nats::Client,
    subject: &str,
    body: Vec<u8>,
) -> coord_proto::CommandReply {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout(
            Duration::from_secs(10),
            client.request(subject.to_owned(), body.clone().into()),
        )
        .await
        {
            Ok(Ok(msg)) => return serde_json::from_slice(&msg.payload).expect("replies are JSON"),
            Ok(Err(e)) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Err(e)) => panic!("no reply on {subject}: {e}"),
            Err(_) => panic!("request on {subject} timed out"),
        }
    }
}

/// A command request from the province office with a fresh command id.
/// The payload of a command scheduling inspection `id` of district `unit` (a slug).
pub fn schedule_payload(id: uuid::Uuid, unit: &str) -> serde_json::Value {
    serde_json::json!({
        "inspection_id": id, "term": "2020-2025", "unit": unit,
        "kind": "supervision", "category": "regular",
        "leading_body": "provincial_inspection_commission",
        "coordinating_body": format!("district_standing_committee:{unit}"),
        "target": format!("district_police:{unit}"),
        "decision_ref": "bench (giả định)", "decided_on": "2024-01-02",
        "planned_start": "2024-02-01", "planned_end": "2024-02-28"
    })
}

pub fn request(payload: serde_json::Value) -> coord_proto::CommandRequest {
    coord_proto::CommandRequest {
        role: None,
        command_id: uuid::Uuid::now_v7(),
        correlation_id: None,
        office: "province".into(),
        actor: "e2e-test".into(),
        expected_version: None,
        payload,
    }
}

/// The whole system as separate processes: nats-server, the three command services,
/// the projector (SQLite in a temporary folder) and the gateway on a free port.
pub struct Stack {
    pub nats: NatsServer,
    pub processes: Vec<ServiceProcess>,
    pub gateway_url: String,
    pub data: tempfile::TempDir,
    gateway_port: u16,
}

impl Stack {
    /// Appends `n` valid inspections (one new stream each) as the NATS admin, by four
    /// writers at once: a log of a given size for the tests that need one.
    pub async fn fill_inspections(&self, n: usize) {
        let client = self.nats.admin_client().await;
        let log = std::sync::Arc::new(
            coord_log::jetstream::JetStreamLog::open(client, Default::default())
                .await
                .unwrap(),
        );
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let log = log.clone();
                tokio::spawn(async move {
                    use coord_log::EventLog;
                    for i in (w..n).step_by(4) {
                        let (stream, event) = inspection_scheduled(i);
                        log.append(&stream, coord_log::ExpectedVersion::NoStream, vec![event])
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
    }

    pub fn start() -> Self {
        let nats = NatsServer::start();
        let data = tempfile::tempdir().expect("a temporary data folder");
        let mut stack = Self {
            nats,
            processes: Vec::new(),
            gateway_url: String::new(),
            data,
            // The first gateway binds port 0 and we read back the port it got.
            gateway_port: 0,
        };
        let province = coord_domain::Province::from_toml_str(coord_domain::province::AN_GIANG_TOML)
            .expect("the embedded province");
        coordctl::tokens::ensure_office_tokens(
            &stack.credentials_dir(),
            &province,
            &coordctl::tokens::all_offices(&province),
        )
        .expect("office tokens are written");
        coordctl::tokens::ensure_admin_tokens(
            &stack.credentials_dir(),
            &province,
            &[coord_domain::Office::Province],
        )
        .expect("the site's admin token is written");
        for name in ["inspection", "exchange", "discipline", "projector"] {
            let p = stack.spawn(name, &[]);
            stack.processes.push(p);
        }
        // The gateway may append only for an import, as the NATS importer user.
        let importer = stack.nats.creds_file("importer").display().to_string();
        let gateway = stack.spawn("gateway", &[("COORD_IMPORT_NATS_CREDS", &importer)]);
        stack.processes.push(gateway);
        stack.gateway_port = stack.process("gateway").wait_listening();
        stack.gateway_url = format!("http://127.0.0.1:{}", stack.gateway_port);
        stack
    }

    /// Where the token signing key and the offices' operator tokens are.
    pub fn credentials_dir(&self) -> PathBuf {
        self.data.path().join("credentials")
    }

    /// The operator token of office `slug` (`province`, `long-xuyen`, …).
    pub fn token(&self, slug: &str) -> String {
        std::fs::read_to_string(self.credentials_dir().join(format!("{slug}.token")))
            .unwrap_or_else(|e| panic!("no token for office {slug}: {e}"))
    }

    /// The admin token of the stack's one site (the province runs it).
    pub fn admin_token(&self) -> String {
        let file = coordctl::tokens::admin_token_file(
            &self.credentials_dir(),
            &coord_domain::Office::Province,
        );
        std::fs::read_to_string(file).expect("the site's admin token")
    }

    /// An HTTP client that sends the site's admin token (rebuild, redrive, import).
    pub fn admin_http(&self) -> reqwest::Client {
        self.http_with(&self.admin_token())
    }

    /// A `coordctl` client of the gateway that sends the site's admin token.
    pub fn admin_client(&self) -> coordctl::client::Client {
        coordctl::client::Client::new(&self.gateway_url)
            .expect("a client")
            .with_tokens(coordctl::tokens::TokenSet::load(
                Some(self.admin_token()),
                &self.credentials_dir(),
            ))
    }

    /// A token of any office, actor and role, signed with the stack's key.
    pub fn sign(&self, office: &str, actor: &str, role: coord_auth::Role) -> String {
        let signer = coordctl::tokens::signer(&self.credentials_dir()).expect("the signing key");
        signer
            .sign(&coord_auth::TokenSigner::claims_now(
                office.parse().expect("an office"),
                actor,
                role,
            ))
            .expect("signed")
    }

    /// An HTTP client that sends the province operator's token with every request.
    pub fn http(&self) -> reqwest::Client {
        self.http_with(&self.token("province"))
    }

    /// An HTTP client that sends `token` with every request.
    pub fn http_with(&self, token: &str) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("a header value"),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("an HTTP client")
    }

    /// A `coordctl` client of the gateway with every office's token.
    pub fn client(&self) -> coordctl::client::Client {
        coordctl::client::Client::new(&self.gateway_url)
            .expect("a client")
            .with_tokens(coordctl::tokens::TokenSet::load(
                None,
                &self.credentials_dir(),
            ))
    }

    /// Environment every process of the stack gets (its NATS user is added by
    /// [`Stack::spawn`]).
    pub fn env(&self) -> Vec<(String, String)> {
        let public_key = coordctl::tokens::signer(&self.credentials_dir())
            .expect("the signing key")
            .public_key();
        vec![
            ("COORD_NATS_URL".into(), self.nats.url()),
            ("COORD_TOKEN_PUBLIC_KEY".into(), public_key),
            (
                "COORD_PROJECTOR_DB".into(),
                self.data
                    .path()
                    .join("projector.sqlite")
                    .display()
                    .to_string(),
            ),
            (
                "COORD_GATEWAY_ADDR".into(),
                format!("127.0.0.1:{}", self.gateway_port),
            ),
            // The one site, hosting every office (as `coordctl up` says too).
            ("COORD_SITE".into(), "province".into()),
            ("COORD_DISTRICT_SITES".into(), String::new()),
        ]
    }

    /// Starts one more process of the stack with extra environment.
    pub fn spawn(&self, name: &str, extra: &[(&str, &str)]) -> ServiceProcess {
        let mut env = self.env();
        env.extend(self.nats.service_env(name));
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        ServiceProcess::start(name, &[], &all)
    }

    /// The running process called `name`.
    pub fn process(&mut self, name: &str) -> &mut ServiceProcess {
        self.processes
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no {name} in the stack"))
    }

    /// Waits (at most 30 s) until the gateway says ready: every service answers and the
    /// projector has caught up.
    pub async fn wait_ready(&self) {
        wait_ready(&self.gateway_url).await;
    }
}

/// Waits (at most 30 s) until the gateway at `base` says ready (`/readyz`): every
/// command service answering with all its endpoints, the projector caught up.
pub async fn wait_ready(base: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base} did not become ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The size of the latest checkpoint the gateway at `base` serves (0 while its auditor
/// does not answer).
pub async fn checkpoint_size(http: &reqwest::Client, base: &str) -> u64 {
    let Ok(r) = http.get(format!("{base}/v1/audit/checkpoint")).send().await else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    coord_audit::note::Note::parse(&text)
        .ok()
        .and_then(|n| coord_audit::Checkpoint::parse(&n.text).ok())
        .map_or(0, |c| c.size)
}

/// The log's head commit as the gateway reports it (`GET /v1/projector`): tests compare
/// it before and after a refused request to show that nothing was appended.
pub async fn log_head(http: &reqwest::Client, base: &str) -> u64 {
    let p: serde_json::Value = http
        .get(format!("{base}/v1/projector"))
        .send()
        .await
        .expect("the gateway answers")
        .json()
        .await
        .expect("a JSON projector status");
    p["head"].as_u64().expect("the projector status has a head")
}

/// The peak resident memory of process `pid` (`VmHWM`), in KiB: what benchmarks report.
/// CPU time (user and system) process `pid` has used so far, in seconds (Linux
/// `/proc/<pid>/stat`, in clock ticks of 1/100 s).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    const TICKS_PER_SECOND: f64 = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces): state first, then
    // utime and stime as the 12th and 13th.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / TICKS_PER_SECOND)
}

pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Publishes inspections `range` (see [`inspection_scheduled`]) as raw one-event
/// commits of the province, pipelined (4,096 acknowledgements outstanding), as the NATS
/// admin: the fastest way to a log of a million events for a benchmark.
pub async fn publish_inspections(
    js: &async_nats::jetstream::Context,
    range: std::ops::Range<usize>,
) {
    use futures::StreamExt;
    use std::future::IntoFuture;
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in range {
        let (stream, event) = inspection_scheduled(i);
        let recorded = serde_json::json!({
            "event_id": event.event_id, "stream_id": stream.to_string(), "stream_version": 1,
            "event_type": event.event_type, "schema_version": event.schema_version,
            "occurred_at": event.occurred_at, "recorded_at": chrono::Utc::now(),
            "office": "province", "actor": "bench", "role": "operator",
            "correlation_id": event.metadata.correlation_id,
            "causation_id": event.metadata.causation_id, "payload": event.payload,
        });
        let body = serde_json::to_vec(&serde_json::json!({ "events": [recorded] })).expect("JSON");
        let subject = format!("coord.log.province.inspection.{}", stream.id());
        let ack = js.publish(subject, body.into()).await.expect("published");
        pending.push(ack.into_future());
        if pending.len() >= 4_096 {
            pending.next().await.expect("an ack").expect("acknowledged");
        }
    }
    while let Some(ack) = pending.next().await {
        ack.expect("acknowledged");
    }
}

/// A valid `InspectionScheduled` on a new stream, for filling a log in bulk
/// (unit `n` modulo the eleven An Giang units).
pub fn inspection_scheduled(n: usize) -> (coord_log::StreamId, coord_log::NewEvent) {
    let id = uuid::Uuid::now_v7();
    use coord_domain::DomainEvent;
    use coord_domain::inspection::{
        Category, InspectionEvent, InspectionKind, InspectionScheduled,
    };
    let units = &coord_domain::province::an_giang().units;
    let unit = units[n % units.len()].id.as_str();
    let event = InspectionEvent::InspectionScheduled(InspectionScheduled {
        inspection_id: coord_domain::InspectionId::from_uuid(id),
        term: "2020-2025".parse().unwrap(),
        unit: unit.parse().unwrap(),
        kind: InspectionKind::Supervision,
        category: Category::Regular,
        leading_body: coord_domain::Body::ProvincialInspectionCommission,
        coordinating_body: format!("district_standing_committee:{unit}")
            .parse()
            .unwrap(),
        target: format!("district_police:{unit}").parse().unwrap(),
        decision_ref: format!("{n}-QĐ (giả định)").parse().unwrap(),
        decided_on: "2024-01-02".parse().unwrap(),
        planned_start: "2024-02-01".parse().unwrap(),
        planned_end: "2024-02-28".parse().unwrap(),
    });
    let (event_type, payload) = event.encode();
    let new = coord_log::NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: event_type.into(),
        schema_version: InspectionEvent::SCHEMA_VERSION,
        occurred_at: event.occurred_on(),
        payload,
        metadata: coord_log::Metadata {
            role: None,
            office: "province".into(),
            actor: "load".into(),
            correlation_id: id,
            causation_id: id,
        },
    };
    (coord_log::StreamId::new("inspection", id).unwrap(), new)
}

/// How many commits the log stream `stream` holds (one message each).
pub async fn log_commits(js: &async_nats::jetstream::Context, stream: &str) -> u64 {
    let mut stream = js.get_stream(stream).await.expect("the log stream");
    stream.info().await.expect("the log's state").state.messages
}

/// Asks the projector at `client` for its position until it has applied `head` (at most
/// `within`): its dead letters then.
pub async fn projector_reached(client: &async_nats::Client, head: u64, within: Duration) -> u64 {
    use coord_proto::read::{ProjectorPosition, QueryReply, QueryRequest, query_subject};
    let start = Instant::now();
    loop {
        let q = serde_json::to_vec(&QueryRequest::default()).expect("a query");
        if let Ok(Ok(msg)) = tokio::time::timeout(
            Duration::from_secs(5),
            client.request(query_subject("position"), q.into()),
        )
        .await
            && let Ok(QueryReply::Ok(p)) =
                serde_json::from_slice::<QueryReply<ProjectorPosition>>(&msg.payload)
            && p.position >= head
        {
            return p.dead_letters;
        }
        assert!(
            start.elapsed() < within,
            "the projector did not reach {head} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One scrape of `GET {base}/metrics` (OpenMetrics text): `name{labels}` → value, as
/// the exposition text writes them.
pub async fn scrape(base: &str) -> std::collections::HashMap<String, f64> {
    let r = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap_or_else(|e| panic!("no metrics at {base}: {e}"));
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of `series` in a scrape (0 when absent).
pub fn metric(m: &std::collections::HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}
