//! The production idempotency key store, a JetStream key-value bucket, on a real
//! nats-server: a key is claimed by exactly one of many concurrent claimants, across
//! connections (service instances), and the claim survives reopening the bucket.

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
