//! The fault suite's independent client and its checks: a few workers send
//! `POST /v1/inspections` to a gateway, each command under a UUID idempotency key (the
//! command id), retried with the same key until acknowledged; every acknowledged id is
//! recorded with its time. After the fault, [`figures`] compares what it saw with the
//! whole log (read as the NATS admin, [`log_command_ids`]) and the read model
//! ([`read_model_count`]): acknowledged, found, lost (acknowledged, not in the log),
//! doubled (in the log more than once), the read model's count, and the recovery time
//! (from the fault to the first acknowledgement of a request sent after it). Also the
//! cluster's leaders as its monitoring endpoints name them ([`leaders`]), and the
//! projector's progress as the gateway reports it ([`projector_status`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What the client saw.
#[derive(Debug, Default)]
pub struct Acks {
    /// Acknowledged command ids, when the command was first sent, and when its
    /// acknowledgement arrived.
    pub acked: Vec<(Uuid, Instant, Instant)>,
    /// Requests that failed and were retried with the same key.
    pub retries: u64,
    /// Commands still unacknowledged when the client gave up on them.
    pub abandoned: u64,
    /// Every key each command was sent under (one, unless retries change the key).
    pub keys: Vec<Vec<Uuid>>,
}

/// A running load; [`Load::stop`] ends it and returns what it saw.
pub struct Load {
    acks: Arc<Mutex<Acks>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

const WORKERS: usize = 4;
/// How long the client waits for one answer before it sends the command again (same
/// key): shorter than the gateway's 10 s deadline, as an impatient client would.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command is retried (same key) before the client gives up on it.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

fn body(key: Uuid) -> serde_json::Value {
    serde_json::json!({"term": "2020-2025", "unit": "tri-ton", "kind": "inspection",
        "category": "compliance", "leading_body": "provincial_standing_committee",
        "coordinating_body": "district_standing_committee:tri-ton",
        "target": "district_police:tri-ton", "decision_ref": format!("QĐ {key} (giả định)"),
        "decided_on": "2024-06-01", "planned_start": "2024-06-10", "planned_end": "2024-06-20"})
}

impl Load {
    /// Starts the workers against the gateway at `base` with the province's `token`.
    pub fn start(base: &str, token: &str) -> Self {
        Self::with_workers(base, token, WORKERS)
    }

    /// [`Load::start`] with `workers` commands under way at once.
    pub fn with_workers(base: &str, token: &str, workers: usize) -> Self {
        let acks = Arc::new(Mutex::new(Acks::default()));
        let stop = CancellationToken::new();
        let http = reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .build()
            .unwrap();
        let tasks = (0..workers)
            .map(|_| {
                let (acks, stop, http) = (acks.clone(), stop.clone(), http.clone());
                let (url, token) = (format!("{base}/v1/inspections"), token.to_owned());
                tokio::spawn(async move {
                    while !stop.is_cancelled() {
                        send_until_acked(&http, &url, &token, &acks).await;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        Self { acks, stop, tasks }
    }

    /// Acknowledgements so far.
    pub fn acked(&self) -> usize {
        self.acks.lock().unwrap().acked.len()
    }

    /// Waits (at most `within`) for the acknowledgement of a command first sent after
    /// `since`; its time. Not a retry of an older command: one appended before `since`
    /// is rightly answered as a duplicate (from the idempotency bucket and the
    /// service's cache) even while the log is down.
    pub async fn first_ack_after(&self, since: Instant, within: Duration) -> Option<Instant> {
        let deadline = since + within;
        while Instant::now() < deadline {
            let first = {
                let acks = self.acks.lock().unwrap();
                acks.acked
                    .iter()
                    .filter(|(_, sent, _)| *sent > since)
                    .map(|(_, _, acked)| *acked)
                    .min()
            };
            if first.is_some() {
                return first;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Stops sending new commands, lets the ones under way finish, returns what it saw.
    pub async fn stop(self) -> Acks {
        self.stop.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
        std::mem::take(&mut *self.acks.lock().unwrap())
    }
}

/// One new command, sent under one key until acknowledged (or given up on).
async fn send_until_acked(http: &reqwest::Client, url: &str, token: &str, acks: &Mutex<Acks>) {
    let key = Uuid::now_v7();
    let tried = vec![key];
    let started = Instant::now();
    while started.elapsed() < GIVE_UP_AFTER {
        let sent = http
            .post(url)
            .bearer_auth(token)
            .header("Idempotency-Key", key.to_string())
            .json(&body(key))
            .send()
            .await;
        match sent.map(|r| r.status().as_u16()) {
            Ok(200 | 201) => {
                let mut acks = acks.lock().unwrap();
                acks.acked.push((key, started, Instant::now()));
                acks.keys.push(tried);
                return;
            }
            Ok(status) if status < 500 && status != 429 => {
                panic!("command {key} refused with {status}: the load must be valid")
            }
            _ => {
                acks.lock().unwrap().retries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut acks = acks.lock().unwrap();
    acks.abandoned += 1;
    acks.keys.push(tried);
}

/// The figures of one fault case.
#[derive(Debug, Serialize)]
pub struct Figures {
    pub acknowledged: usize,
    /// Acknowledged ids found in the log.
    pub found: usize,
    pub lost: usize,
    /// Commands in the log more than once: a command id stored twice, or a command
    /// whose several keys (a retry under a new key) are each in the log.
    pub doubled: usize,
    /// Distinct command ids in the log (acknowledged or not).
    pub in_log: usize,
    /// What the read model counts (inspections scheduled).
    pub read_model: u64,
    pub retries: u64,
    pub abandoned: u64,
    /// From each fault to the first acknowledgement after it, in ms.
    pub recovery_ms: Vec<u64>,
    /// How long the killed server was kept down (the launcher held from restarting it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_down_ms: Option<u64>,
    /// Whether a request sent after the kill was acknowledged while it was still down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_while_down: Option<bool>,
    /// From a paused server's resumption to the first acknowledgement after it, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_after_resume_ms: Option<u64>,
    /// The projector killed during a rebuild: its own figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<serde_json::Value>,
}

/// How many times each command id is in the log (as the causation of its events).
pub async fn log_command_ids(nats_urls: &str, admin_password: &str) -> HashMap<Uuid, usize> {
    let servers: Vec<&str> = nats_urls.split(',').collect();
    let client =
        async_nats::ConnectOptions::with_user_and_password("admin".into(), admin_password.into())
            .connect(servers)
            .await
            .expect("the NATS admin connects");
    log_command_ids_with(client).await
}

/// [`log_command_ids`] over a connected admin `client`: one ordered consumer reads
/// every commit up to the head (a 100,000-commit log in seconds).
pub async fn log_command_ids_with(client: async_nats::Client) -> HashMap<Uuid, usize> {
    use futures::StreamExt as _;
    let js = async_nats::jetstream::new(client);
    let mut ids = HashMap::new();
    // Right after a cluster fault the servers may still be electing leaders, and a
    // JetStream request times out meanwhile: asked again for up to 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (last, mut messages) = loop {
        match open_log_reader(&js).await {
            Ok(reader) => break reader,
            Err(e) => assert!(Instant::now() < deadline, "the admin reads the log: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if last == 0 {
        return ids;
    }
    while let Some(message) = messages.next().await {
        let message = message.expect("every commit is readable");
        let seq = message.info().expect("a JetStream message").stream_sequence;
        let events = coord_log::jetstream::decode_commit(&message.payload, seq).unwrap();
        if let Some(first) = events.first() {
            *ids.entry(first.causation_id).or_insert(0) += 1;
        }
        if seq >= last {
            break;
        }
    }
    ids
}

/// The log's last sequence and an ordered consumer of it from the start.
async fn open_log_reader(
    js: &async_nats::jetstream::Context,
) -> anyhow::Result<(u64, async_nats::jetstream::consumer::pull::Ordered)> {
    let mut stream = js.get_stream("COORD_LOG").await?;
    let last = stream.info().await?.state.last_sequence;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await?;
    Ok((last, consumer.messages().await?))
}

/// `GET /v1/projector` at the gateway `base`, if it answers (not while the projector
/// is down).
pub async fn projector_status(http: &reqwest::Client, base: &str) -> Option<serde_json::Value> {
    let url = format!("{base}/v1/projector");
    // A short wait: a request that reached a projector just killed would otherwise hang
    // for the gateway's whole deadline.
    let r = http
        .get(url)
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// The log stream's leader and the metadata leader (server names), as one of the
/// servers on `monitor`… `monitor + 2` sees them.
pub async fn leaders(monitor: u16) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for port in monitor..monitor + 3 {
            if let Some(found) = crate::jsz::jsz(port).await.as_ref().and_then(leaders_in) {
                return found;
            }
        }
        assert!(Instant::now() < deadline, "no server names both leaders");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn leaders_in(j: &serde_json::Value) -> Option<(String, String)> {
    let stream = crate::jsz::stream_of(j, "COORD_LOG")?;
    let stream_leader = stream["cluster"]["leader"].as_str()?;
    let meta_leader = j["meta_cluster"]["leader"].as_str()?;
    (!stream_leader.is_empty() && !meta_leader.is_empty())
        .then(|| (stream_leader.to_owned(), meta_leader.to_owned()))
}

/// The read model's count once it has caught up with the log at the gateway `base`.
pub async fn read_model_count(base: &str, token: &str) -> u64 {
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let token = token.to_owned();
        async move {
            let r = http.get(path).bearer_auth(token).send().await.ok()?;
            r.json::<serde_json::Value>().await.ok()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(p) = get(format!("{base}/v1/projector")).await
            && p["lag"] == 0
            && let Some(head) = p["head"].as_u64()
            && let Some(s) = get(format!("{base}/v1/status/province?min_position={head}")).await
            && let Some(n) = s["inspections"]["scheduled"].as_u64()
        {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "the read model did not catch up in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Compares what the client saw with the log and the read model.
pub fn figures(
    acks: &Acks,
    log: &HashMap<Uuid, usize>,
    read_model: u64,
    recovery: Vec<u64>,
) -> Figures {
    let found = acks
        .acked
        .iter()
        .filter(|(id, _, _)| log.contains_key(id))
        .count();
    Figures {
        acknowledged: acks.acked.len(),
        found,
        lost: acks.acked.len() - found,
        doubled: log.values().filter(|n| **n > 1).count()
            + acks
                .keys
                .iter()
                .filter(|keys| keys.iter().filter(|k| log.contains_key(k)).count() > 1)
                .count(),
        in_log: log.len(),
        read_model,
        retries: acks.retries,
        abandoned: acks.abandoned,
        recovery_ms: recovery,
        held_down_ms: None,
        accepted_while_down: None,
        recovery_after_resume_ms: None,
        rebuild: None,
    }
}
