//! The production idempotency key store, a JetStream key-value bucket, on a real
//! nats-server: a key is claimed by exactly one of many concurrent claimants, across
//! connections (service instances), and the claim survives reopening the bucket; a
//! bucket an older version made as a plain key-value bucket is made write-once; a
//! marker on a key never claimed binds nothing.

use async_nats::jetstream::{self, kv};
use coord_service::idempotency::{Claim, Fingerprint, JetStreamKeys, KeyStore};
use serde_json::json;
use tests::NatsServer;
use uuid::Uuid;

const BUCKET: &str = "COORD_IDEMPOTENCY";

/// Opens the bucket as a command service does, with its own NATS user (the admin
/// created the bucket when the server started).
async fn open(server: &NatsServer) -> JetStreamKeys {
    let client = server.client_as("inspection").await;
    JetStreamKeys::open(client, BUCKET).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_claims_on_one_key_exactly_one_wins() {
    let server = NatsServer::start();
    // Two service instances, each with its own connection, opening the bucket at once.
    let (a, b) = tokio::join!(open(&server), open(&server));
    let command_id = Uuid::now_v7();
    assert_eq!(a.lookup(command_id).await.unwrap(), None);

    let claims = (0..16).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let fingerprint = Fingerprint::of(
            "province",
            "exchange.send",
            "exchange-1",
            &json!({ "n": i }),
        );
        tokio::spawn(async move {
            let claim = store.claim(command_id, &fingerprint).await.unwrap();
            (fingerprint, claim)
        })
    });
    let results: Vec<(Fingerprint, Claim)> = futures::future::join_all(claims)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<&Fingerprint> = results
        .iter()
        .filter(|(_, c)| *c == Claim::New)
        .map(|(f, _)| f)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    for (_, claim) in &results {
        if let Claim::Existing(bound) = claim {
            assert_eq!(bound, winners[0], "the losers see the winner's request");
        }
    }

    // A service that starts later opens the same bucket and sees the binding.
    let later = open(&server).await;
    assert_eq!(
        later.lookup(command_id).await.unwrap().as_ref(),
        Some(winners[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_an_older_version_made_is_made_write_once_and_keeps_its_keys() {
    let server = NatsServer::start();
    let js = jetstream::new(server.admin_client().await);
    js.delete_key_value(BUCKET).await.unwrap();
    let old = js
        .create_key_value(kv::Config {
            bucket: BUCKET.into(),
            history: 1,
            max_value_size: 4096,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    old.create("kept", "claimed".into()).await.unwrap();
    assert!(
        old.delete("deleted").await.is_ok(),
        "a plain bucket takes markers"
    );

    JetStreamKeys::ensure(server.admin_client().await, BUCKET)
        .await
        .unwrap();
    let mut stream = js.get_stream(format!("KV_{BUCKET}")).await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert!(config.discard_new_per_subject && config.deny_purge && !config.allow_rollup);
    assert_eq!(
        old.get("kept").await.unwrap().as_deref(),
        Some(&b"claimed"[..])
    );
    assert!(
        old.delete("kept").await.is_err(),
        "a delete marker is refused"
    );
    assert!(
        old.purge("kept").await.is_err(),
        "a purge marker is refused"
    );
    assert_eq!(
        old.get("kept").await.unwrap().as_deref(),
        Some(&b"claimed"[..])
    );
}

/// What a command service can still do with its right to publish claims: put a delete
/// marker on a key nobody claimed yet. It binds that command id to nothing, and the id
/// can no longer be claimed (the bucket takes one message per key): one command id
/// denied, never a claim undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_on_an_unclaimed_key_binds_nothing_and_the_key_stays_unclaimable() {
    let server = NatsServer::start();
    let client = server.client_as("exchange").await;
    let command_id = Uuid::now_v7();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("KV-Operation", "DEL");
    let subject = format!("$KV.{BUCKET}.{command_id}");
    jetstream::new(client)
        .publish_with_headers(subject, headers, "".into())
        .await
        .unwrap()
        .await
        .expect("the first message on a key is stored, marker or not");
    let keys = open(&server).await;
    assert_eq!(keys.lookup(command_id).await.unwrap(), None);
    let fingerprint = Fingerprint::of("province", "exchange.send", "exchange-1", &json!({}));
    assert!(keys.claim(command_id, &fingerprint).await.is_err());
    assert_eq!(keys.lookup(command_id).await.unwrap(), None);
}
