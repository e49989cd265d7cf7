//! The multi-office NATS topology that `coordctl offices init` generates, run with real
//! nats-server processes on loopback: a hub and three offices as leaf nodes with their
//! own JetStream domains. Each office writes its own log as its own (non-admin) user;
//! every site converges to the same set of events; an office cut off from the hub keeps
//! writing, and after the link is restored every site holds every event exactly once.
//! An office's credentials cannot write the province's subjects nor touch the hub's
//! streams.

use std::time::Duration;

use coordctl::offices::{self, Site};
use tests::offices::{converge, event_ids, start, wait_link, write};
use tests::{ConfiguredNats, ServiceProcess, free_port};

/// A gateway on `site` (as its own NATS user, knowing whom its site hosts), with a
/// token of the site's own office.
fn gateway(site: &Site) -> (ServiceProcess, String, String) {
    let signer = coord_auth::TokenSigner::generate();
    let token = signer
        .sign(&coord_auth::TokenSigner::claims_now(
            site.office(),
            "giám sát đồng bộ",
            coord_auth::Role::Reader,
        ))
        .unwrap();
    let district_sites: Vec<&str> = site.sites.district_sites().map(|u| u.as_str()).collect();
    let port = free_port();
    let creds = site.credentials().unwrap().seed_file("gateway");
    let process = ServiceProcess::start(
        "gateway",
        &[],
        &[
            ("COORD_NATS_URL", &site.url()),
            ("COORD_NATS_CREDS", &creds.display().to_string()),
            ("COORD_TOKEN_PUBLIC_KEY", &signer.public_key()),
            ("COORD_GATEWAY_ADDR", &format!("127.0.0.1:{port}")),
            ("COORD_SITE", &site.office().to_string()),
            ("COORD_DISTRICT_SITES", &district_sites.join(",")),
        ],
    );
    (process, format!("http://127.0.0.1:{port}"), token)
}

/// Waits (at most 60 s) until `site` holds at least `n` events.
async fn wait_count(site: &Site, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let held = event_ids(site).await.len();
        if held >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} holds {held} events, never {n}",
            site.slug
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
    let cut = running.topology.offices[0].clone();
    let (_hub_gateway, hub_url, hub_token) = gateway(&running.topology.hub);
    let (_cut_gateway, cut_url, cut_token) = gateway(&cut);
    let heard = wait_link(&hub_url, &hub_token, "long-xuyen", true).await;
    assert!(heard["last_position"].as_u64().is_some(), "{heard}");

    // Cut Long Xuyên off: its server restarts without the leaf remote, same store.
    running.servers[1].stop();
    running.servers[1] = ConfiguredNats::start(&cut.isolated_config_file(), cut.port);
    write(&cut, 7).await; // it keeps working
    write(&running.topology.hub, 3).await; // and so do the others
    write(&running.topology.offices[1], 3).await;
    // What can travel has arrived: the hub holds its own and Châu Đốc's new events, the
    // cut office its own.
    wait_count(&running.topology.hub, 26).await;
    wait_count(&cut, 27).await;

    // Both sides see the outage, for at least 10 s.
    let silent = wait_link(&hub_url, &hub_token, "long-xuyen", false).await;
    assert!(
        silent["last_heard_ms"].as_u64().unwrap_or(u64::MAX) >= 10_000,
        "{silent}"
    );
    wait_link(&cut_url, &cut_token, "province", false).await;
    // Long past the sourcing's catch-up time, nothing crossed the cut.
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
    wait_link(&hub_url, &hub_token, "long-xuyen", true).await;
    wait_link(&cut_url, &cut_token, "province", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offices_credentials_cannot_write_the_provinces_subjects_or_touch_hub_streams() {
    let running = start(&["long-xuyen", "chau-doc"]).await;
    let office = &running.topology.offices[0];
    write(&running.topology.hub, 1).await;
    let hub_before = event_ids(&running.topology.hub).await;

    // Its service user at its own server: only its own subjects.
    let client = tests::offices::client_as(office, "inspection").await;
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

/// The leaf connections the server monitored on `port` has (`/leafz`); 0 when it does
/// not answer.
async fn leaf_connections(port: u16) -> u64 {
    let url = format!("http://127.0.0.1:{port}/leafz");
    match reqwest::get(url).await {
        Ok(r) => r.json::<serde_json::Value>().await.unwrap_or_default()["leafnodes"]
            .as_u64()
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// The hub as a JetStream cluster of three (its log at three replicas): the hub server
/// the office's leaf connection is on is killed and stays down; the office links to
/// another hub server (its remote lists all three), and what it writes next reaches the
/// hub's log, which two servers of three keep. Every site ends with every event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_hub_cluster_when_the_server_an_office_links_through_dies_its_events_still_reach_the_hub()
 {
    let mut running = tests::offices::start_with_hub_servers(&["long-xuyen"], 3).await;
    let lx = running.topology.offices[0].clone();
    let monitor = running.topology.hub.cluster.unwrap().monitor_port;
    write(&lx, 5).await;
    converge(&running, 5, Duration::from_secs(30)).await;

    let mut linked = None;
    for i in 0..3 {
        if leaf_connections(monitor + i).await > 0 {
            linked = Some(usize::from(i));
        }
    }
    let linked = linked.expect("the office is linked to one hub server");
    running.servers[linked].stop();
    write(&lx, 5).await;
    let took = converge(&running, 10, Duration::from_secs(60)).await;
    eprintln!("hub server {} down: converged after {took:?}", linked + 1);
    let relinked = futures::future::join_all((0..3).map(|i| leaf_connections(monitor + i))).await;
    assert_eq!(relinked[linked], 0, "the killed server is down");
    assert!(
        relinked.iter().sum::<u64>() > 0,
        "the office linked to another: {relinked:?}"
    );
}
