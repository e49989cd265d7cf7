//! The multi-office NATS topology that `coordctl offices init` generates, run with real
//! nats-server processes on loopback: a hub and three offices as leaf nodes with their
//! own JetStream domains. Each office writes its own log as its own (non-admin) user;
//! every site converges to the same set of events; an office cut off from the hub keeps
//! writing, and after the link is restored every site holds every event exactly once.
//! An office's credentials cannot write the province's subjects nor touch the hub's
//! streams.

use std::time::Duration;

use coordctl::offices;
use tests::ConfiguredNats;
use tests::offices::{converge, event_ids, start, write};

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
