//! The multi-office topology of `coordctl offices` run for tests and benchmarks: start
//! the hub and the offices from generated configurations, write as an office's own
//! service user, read every site's event ids, wait for convergence.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::{EventLog, ExpectedVersion};
use coordctl::offices::{self, Site, Topology};
use futures::StreamExt;
use uuid::Uuid;

use crate::{ConfiguredNats, free_port};

pub struct Running {
    pub topology: Topology,
    pub servers: Vec<ConfiguredNats>,
    dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("KEEP_OFFICES").is_some() {
            let kept = self.dir.path().to_path_buf();
            std::mem::forget(std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().unwrap(),
            ));
            eprintln!("kept {}", kept.display());
        }
    }
}

impl Running {
    pub fn sites(&self) -> Vec<&Site> {
        std::iter::once(&self.topology.hub)
            .chain(self.topology.offices.iter())
            .collect()
    }
}

pub async fn start(units: &[&str]) -> Running {
    start_with_hub_servers(units, 1).await
}

/// [`start`] with the hub run as a JetStream cluster of `hub_servers` nats-servers
/// (`Running::servers` holds the hub's first, then each office's).
pub async fn start_with_hub_servers(units: &[&str], hub_servers: u16) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let offices: Vec<coord_domain::Office> = units.iter().map(|u| u.parse().unwrap()).collect();
    let mut ports = vec![crate::free_ports(hub_servers)];
    ports.extend(units.iter().map(|_| free_port()));
    let clustering = offices::Clustering {
        servers: hub_servers,
        clustered: vec!["province".into()],
        route_port: crate::free_ports(hub_servers),
        monitor_port: crate::free_ports(hub_servers),
    };
    let topology = offices::generate_for(
        coord_domain::province::an_giang(),
        dir.path(),
        &offices,
        &ports,
        crate::free_ports(hub_servers),
        coordctl::durability::Durability::default(),
        &clustering,
    )
    .unwrap();
    let mut servers = Vec::new();
    for site in topology.sites() {
        for (i, file) in (0..).zip(site.config_files()) {
            servers.push(ConfiguredNats::start(&file, site.port + i));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match offices::ensure_streams(&topology).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("streams: {e:#}"),
        }
    }
    Running {
        topology,
        servers,
        dir,
    }
}

/// A client of `site` as its process `name`'s own NATS user (with its own inbox prefix).
pub async fn client_as(site: &Site, name: &str) -> async_nats::Client {
    let seed = std::fs::read_to_string(site.credentials().unwrap().seed_file(name)).unwrap();
    coord_service::server::user_options(&seed)
        .unwrap()
        .connect(site.url())
        .await
        .unwrap()
}

/// The log of `site` as its inspection service's own user (not the admin).
pub async fn service_log(site: &Site) -> JetStreamLog {
    let client = client_as(site, "inspection").await;
    JetStreamLog::open(client, JetStreamConfig::default())
        .await
        .unwrap()
}

/// Appends `n` new inspection streams at `site`, 64 at a time.
pub async fn write(site: &Site, n: usize) {
    let log = std::sync::Arc::new(service_log(site).await);
    let writers = n.clamp(1, 64);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = log.clone();
        let office = site.office().to_string();
        let share = n / writers + usize::from(w < n % writers);
        tasks.push(tokio::spawn(
            async move { append(&log, &office, share).await },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn append(log: &JetStreamLog, office: &str, n: usize) {
    for i in 0..n {
        let (stream, mut event) = crate::inspection_scheduled(i);
        event.metadata.office = office.to_owned();
        log.append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .unwrap();
    }
}

/// How many commits `site`'s log holds (as its admin).
pub async fn count(site: &Site) -> u64 {
    let client = offices::admin_client(site).await.unwrap();
    crate::log_commits(&async_nats::jetstream::new(client), offices::STREAM).await
}

/// The event ids stored at `site` (as its admin).
pub async fn event_ids(site: &Site) -> Vec<Uuid> {
    try_event_ids(site).await.unwrap()
}

/// [`event_ids`], or why the log cannot be read now (a cluster electing a leader).
pub async fn try_event_ids(site: &Site) -> anyhow::Result<Vec<Uuid>> {
    let client = offices::admin_client(site).await?;
    let js = async_nats::jetstream::new(client.clone());
    let count = js
        .get_stream(offices::STREAM)
        .await?
        .info()
        .await?
        .state
        .messages;
    let log = JetStreamLog::open(client, JetStreamConfig::default()).await?;
    let events = log.subscribe(None).await?;
    events
        .take(usize::try_from(count)?)
        .map(|e| Ok(e?.event_id))
        .collect::<Vec<anyhow::Result<Uuid>>>()
        .await
        .into_iter()
        .collect()
}

/// Waits (at most `within`) until every site holds `expected` events, the same set
/// everywhere, none twice.
pub async fn converge(running: &Running, expected: usize, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let mut sets = Vec::new();
        let mut all_there = true;
        for site in running.sites() {
            let ids = match try_event_ids(site).await {
                Ok(ids) => ids,
                Err(e) => {
                    assert!(started.elapsed() < within, "{}: {e:#}", site.slug);
                    all_there = false;
                    continue;
                }
            };
            let set: BTreeSet<Uuid> = ids.iter().copied().collect();
            assert_eq!(set.len(), ids.len(), "{} holds an event twice", site.slug);
            all_there &= ids.len() == expected;
            sets.push(set);
        }
        if all_there {
            assert!(sets.windows(2).all(|w| w[0] == w[1]), "different events");
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "no convergence within {within:?}: counts {:?}",
            sets.iter().map(BTreeSet::len).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One office's command services, projector and gateway as processes, on its own server
/// and its own subjects (knowing whom its site hosts), with an operator and an admin
/// token for that office; its gateway may import (as the site's NATS importer user).
pub struct OfficeStack {
    pub url: String,
    pub token: String,
    pub admin: String,
    pub processes: Vec<crate::ServiceProcess>,
}

/// Starts [`OfficeStack`] at `site`; its gateway accepts tokens signed by `signer`.
/// Waits (at most 30 s) until the gateway says ready.
pub async fn office_stack(site: &Site, signer: &coord_auth::TokenSigner) -> OfficeStack {
    let port = free_port();
    let key = signer.public_key();
    let mut processes = Vec::new();
    for name in [
        "inspection",
        "exchange",
        "discipline",
        "projector",
        "gateway",
    ] {
        let mut env = offices::service_env(site, name, port, &key).unwrap();
        if name == "gateway" {
            let importer = site.credentials().unwrap().seed_file("importer");
            env.push(("COORD_IMPORT_NATS_CREDS", importer.display().to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        processes.push(crate::ServiceProcess::start(name, &[], &env));
    }
    let sign = |actor: &str, role| {
        let claims = coord_auth::TokenSigner::claims_now(site.office(), actor, role);
        signer.sign(&claims).unwrap()
    };
    let stack = OfficeStack {
        url: format!("http://127.0.0.1:{port}"),
        token: sign("cán bộ", coord_auth::Role::Operator),
        admin: sign("quản trị", coord_auth::Role::Admin),
        processes,
    };
    stack.wait_ready().await;
    stack
}

impl OfficeStack {
    /// Waits (at most 30 s) until the office's gateway says ready ([`crate::wait_ready`]).
    /// After the office's server restarts, its processes reconnect and subscribe again;
    /// until then a command is refused as `service_unavailable` (nothing appended).
    pub async fn wait_ready(&self) {
        crate::wait_ready(&self.url).await;
    }
}

/// Polls `GET /v1/sync` at `base` (at most 60 s) until the source from `from` has
/// `link_up == up`; returns that source.
pub async fn wait_link(base: &str, token: &str, from: &str, up: bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http
            .get(format!("{base}/v1/sync"))
            .bearer_auth(token)
            .send()
            .await
            && r.status().is_success()
        {
            let sync: serde_json::Value = r.json().await.unwrap();
            let source = sync["sources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["from"] == from)
                .cloned();
            if let Some(source) = source
                && source["link_up"] == up
            {
                return source;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{base}/v1/sync never showed {from} link_up={up}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An HTTP client that sends `token` with every request.
pub fn http_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}
