//! An analytics consumer of the live feed on NATS (issue 8), the one the README shows
//! and `tests/tests/analytics.rs` runs.
//!
//! It attaches a durable pull consumer to the log's JetStream stream `COORD_LOG`
//! (subjects `coord.log.<office>.<category>.<id>`, one message per commit), turns every event
//! into a CloudEvent and prints it as one NDJSON line, acknowledging each commit after
//! printing it. It stops after `--idle-ms` without a message.
//!
//! Usage: `live_consumer <nats-url> <durable-name> [--after <commit>] [--idle-ms <ms>]
//! [--api <gateway-url>]`. With `--after`, a new durable starts after that commit;
//! without it, a new durable starts at the beginning and an existing durable goes on
//! from its acknowledged position. Credentials: set `COORD_NATS_CREDS` to the read-only
//! `analytics` user's nkey seed file (`coordctl up` writes it under
//! `.data/credentials/nats/analytics.nk`) or to a NATS `.creds` file. That user may
//! create and read consumers of `COORD_LOG` and nothing else: no publishing on the
//! log's subjects, no delete or purge.
//!
//! Delivery is at least once and in log order: a commit not acknowledged within the
//! ack wait (30 s) comes again. Each line carries `id` (unique) and `position`
//! (`commit:index`, increasing); a consumer drops a line whose position is not after
//! the last one it kept.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use coord_feed::CloudEvent;
use coord_log::EventPosition;
use coord_log::jetstream::decode_commit;
use futures::StreamExt;

struct Args {
    url: String,
    durable: String,
    after: Option<u64>,
    idle: Duration,
    api: String,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let url = it
        .next()
        .ok_or("usage: live_consumer <nats-url> <durable> [...]")?;
    let durable = it.next().ok_or("missing the durable consumer name")?;
    let mut a = Args {
        url,
        durable,
        after: None,
        idle: Duration::from_millis(1500),
        api: "http://127.0.0.1:8080".into(),
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--after" => a.after = Some(value.parse().map_err(|_| "--after: a commit number")?),
            "--idle-ms" => a.idle = Duration::from_millis(value.parse().map_err(|_| "--idle-ms")?),
            "--api" => a.api = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let a = args()?;
    let creds = std::env::var_os("COORD_NATS_CREDS").map(std::path::PathBuf::from);
    let client = coord_service::server::connect(&a.url, creds.as_deref(), "analytics")
        .await
        .map_err(|e| e.to_string())?;
    let stream = jetstream::new(client).get_stream("COORD_LOG").await?;
    let deliver_policy = match a.after {
        Some(commit) => consumer::DeliverPolicy::ByStartSequence {
            start_sequence: commit + 1,
        },
        None => consumer::DeliverPolicy::All,
    };
    let consumer = stream
        .get_or_create_consumer(
            &a.durable,
            consumer::pull::Config {
                durable_name: Some(a.durable.clone()),
                deliver_policy,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                filter_subject: "coord.log.>".into(),
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    let mut last: Option<EventPosition> = None;
    while let Ok(Some(message)) = tokio::time::timeout(a.idle, messages.next()).await {
        let message = message?;
        let sequence = message.info()?.stream_sequence;
        // An unreadable commit is skipped (the projector lists it as a dead letter).
        for event in decode_commit(&message.payload, sequence).unwrap_or_default() {
            if last.is_some_and(|l| event.pos() <= l) {
                continue; // a redelivery: already printed
            }
            last = Some(event.pos());
            match CloudEvent::from_recorded(&event, &a.api) {
                Ok(ce) => println!("{}", serde_json::to_string(&ce)?),
                Err(e) => eprintln!("{}: {e}", event.pos()),
            }
        }
        message.ack().await?;
    }
    Ok(())
}
