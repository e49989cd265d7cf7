//! The multi-office NATS topology that `coordctl offices init` generates, run with real
//! nats-server processes on loopback: a hub and three offices as leaf nodes with their
//! own JetStream domains. Each office writes its own log as its own (non-admin) user;
//! every site converges to the same set of events; an office cut off from the hub keeps
//! writing, and after the link is restored every site holds every event exactly once.
//! An office's credentials cannot write the province's subjects nor touch the hub's
//! streams.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
use coord_log::{EventLog, ExpectedVersion};
use coordctl::offices::{self, Site, Topology};
use futures::StreamExt;
use tests::{ConfiguredNats, free_port};
use uuid::Uuid;

struct Running {
    topology: Topology,
    servers: Vec<ConfiguredNats>,
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
    fn sites(&self) -> Vec<&Site> {
        std::iter::once(&self.topology.hub)
            .chain(self.topology.offices.iter())
            .collect()
    }
}

async fn start(units: &[&str]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let offices: Vec<coord_domain::Office> = units.iter().map(|u| u.parse().unwrap()).collect();
    let ports: Vec<u16> = (0..=units.len()).map(|_| free_port()).collect();
    let topology = offices::generate(dir.path(), &offices, &ports, free_port()).unwrap();
    let mut servers = vec![ConfiguredNats::start(
        &topology.hub.config_file(),
        topology.hub.port,
    )];
    for office in &topology.offices {
        servers.push(ConfiguredNats::start(&office.config_file(), office.port));
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

/// The log of `site` as its inspection service's own user (not the admin).
async fn service_log(site: &Site) -> JetStreamLog {
    let seed =
        std::fs::read_to_string(site.credentials().unwrap().seed_file("inspection")).unwrap();
    let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        .connect(site.url())
        .await
        .unwrap();
    JetStreamLog::open(
        client,
        JetStreamConfig {
            subject_prefix: offices::subject_prefix(&site.slug),
            ..JetStreamConfig::default()
        },
    )
    .await
    .unwrap()
}

async fn write(site: &Site, n: usize) {
    let log = service_log(site).await;
    for i in 0..n {
        let (stream, mut event) = tests::inspection_scheduled(i);
        event.metadata.office = site.slug.clone();
        log.append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .unwrap();
    }
}

/// The event ids stored at `site` (as its admin).
async fn event_ids(site: &Site) -> Vec<Uuid> {
    let client = offices::admin_client(site).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let count = js
        .get_stream(offices::STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    let log = JetStreamLog::open(client, JetStreamConfig::default())
        .await
        .unwrap();
    let events = log.subscribe(None).await.unwrap();
    events
        .take(usize::try_from(count).unwrap())
        .map(|e| e.unwrap().event_id)
        .collect()
        .await
}

/// Waits (at most `within`) until every site holds `expected` events, the same set
/// everywhere, none twice.
async fn converge(running: &Running, expected: usize, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let mut sets = Vec::new();
        let mut all_there = true;
        for site in running.sites() {
            let ids = event_ids(site).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offices_converge_keep_writing_when_cut_off_and_catch_up_exactly_once() {
    let mut running = start(&["long-xuyen", "chau-doc", "tan-chau"]).await;
    for site in running.sites() {
        write(site, 5).await;
    }
    converge(&running, 20, Duration::from_secs(60)).await;

    // Cut Long Xuyên off: its server restarts without the leaf remote, same store.
    let cut = running.topology.offices[0].clone();
    running.servers[1].stop();
    running.servers[1] = ConfiguredNats::start(&cut.isolated_config_file(), cut.port);
    write(&cut, 7).await; // it keeps working
    write(&running.topology.hub, 3).await; // and so do the others
    write(&running.topology.offices[1], 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        event_ids(&cut).await.len(),
        27,
        "the cut office has only its own news"
    );
    assert_eq!(
        event_ids(&running.topology.hub).await.len(),
        26,
        "the hub has not heard from the cut office"
    );

    // Restore the link.
    running.servers[1].stop();
    running.servers[1] = ConfiguredNats::start(&cut.config_file(), cut.port);
    let took = converge(&running, 33, Duration::from_secs(120)).await;
    eprintln!("converged {took:?} after the link was restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offices_credentials_cannot_write_the_provinces_subjects_or_touch_hub_streams() {
    let running = start(&["long-xuyen", "chau-doc"]).await;
    let office = &running.topology.offices[0];
    write(&running.topology.hub, 1).await;
    let hub_before = event_ids(&running.topology.hub).await;

    // Its service user at its own server: only its own subjects.
    let seed =
        std::fs::read_to_string(office.credentials().unwrap().seed_file("inspection")).unwrap();
    let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        .connect(office.url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let forged = tokio::time::timeout(Duration::from_secs(3), async {
        js.publish("coord.log.province.inspection.forged", "{}".into())
            .await?
            .await
    })
    .await;
    assert!(
        !matches!(forged, Ok(Ok(_))),
        "wrote a province subject: {forged:?}"
    );
    assert!(js.delete_stream(offices::STREAM).await.is_err());

    // Its leaf user, used as a client of the hub.
    let password = std::fs::read_to_string(
        running
            .topology
            .hub
            .dir
            .join("credentials/leaf-long-xuyen.password"),
    )
    .unwrap();
    let leaf = async_nats::ConnectOptions::with_user_and_password(
        "leaf-long-xuyen".into(),
        password.trim().into(),
    )
    .connect(running.topology.hub.url())
    .await
    .unwrap();
    let hub_js = async_nats::jetstream::new(leaf);
    let forged = tokio::time::timeout(Duration::from_secs(3), async {
        hub_js
            .publish("coord.log.province.inspection.forged", "{}".into())
            .await?
            .await
    })
    .await;
    assert!(
        !matches!(forged, Ok(Ok(_))),
        "wrote into the hub: {forged:?}"
    );
    let deleted = tokio::time::timeout(
        Duration::from_secs(3),
        hub_js.delete_stream(offices::STREAM),
    )
    .await;
    assert!(!matches!(deleted, Ok(Ok(_))), "deleted the hub's log");

    assert_eq!(event_ids(&running.topology.hub).await, hub_before);
}
