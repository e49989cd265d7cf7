//! The system against JetStream itself, in one run on one nats-server (issue 15): each
//! figure next to the raw JetStream baseline it is bounded by, and their ratio.
//!
//! - baseline: raw publishes with per-subject optimistic concurrency
//!   (`Nats-Expected-Last-Subject-Sequence`) over 1,000 subjects, 64 in flight;
//! - commands over NATS to one inspection service: schedule → start → conclude for
//!   `SPEED_INSPECTIONS` inspections, 64 in flight; and the sequential round trip;
//! - the same over HTTP through the gateway (a province operator's token);
//! - command → read-model delay: a new inspection every millisecond (1,000/s), each
//!   timed from sending until the projector answers a query at its position;
//! - baseline: one ordered consumer reading the whole log and decoding every commit;
//! - the projector replaying that log from scratch (events/s, peak RSS), then started
//!   again on its database: the cold start to ready on that log.
//!
//! The whole system runs (the command services, projector and gateway of
//! [`tests::Stack`]) while commands are measured; its projector is stopped before the
//! log is filled for the replay, which a projector of its own then reads.
//!
//! Run (release, the services too):
//! `cargo build --release --workspace --bins && cargo bench -p tests --bench speed`.
//! Sizes: `SPEED_INSPECTIONS` (default 10,000), `SPEED_REPLAY_EVENTS` (default
//! 1,000,000, published raw before the replay). Writes `tests/bench-results/speed.json`.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use coord_proto::read::{ProjectorPosition, QueryReply, QueryRequest, query_subject};
use coord_proto::{CommandReply, command_subject};
use futures::StreamExt;
use serde_json::{Value, json};
use tests::{NatsServer, ServiceProcess, Stack, request};
use uuid::Uuid;

const IN_FLIGHT: usize = 64;
const SUBJECTS: usize = 1_000;

fn env_size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The CPU time each process of the system used over a phase, per command: where a
/// command's cost goes (the client is this benchmark's own process).
struct CpuMeter {
    processes: Vec<(&'static str, u32, f64)>,
}

impl CpuMeter {
    fn start(stack: &mut Stack) -> Self {
        let mut pids = vec![("client", std::process::id())];
        pids.extend(stack.nats.pid().map(|p| ("nats-server", p)));
        for name in ["inspection", "projector", "gateway"] {
            pids.push((name, stack.process(name).pid()));
        }
        let processes = pids
            .into_iter()
            .map(|(name, pid)| (name, pid, tests::cpu_seconds(pid).unwrap_or(0.0)))
            .collect();
        Self { processes }
    }

    /// Microseconds of CPU per command, by process, since [`CpuMeter::start`].
    fn per_command(&self, commands: usize) -> Value {
        let mut out = serde_json::Map::new();
        let mut total = 0.0;
        for (name, pid, before) in &self.processes {
            let used = tests::cpu_seconds(*pid).unwrap_or(0.0) - before;
            let us = (used * 1e6 / commands as f64).round();
            total += us;
            out.insert((*name).into(), json!(us));
        }
        out.insert("total".into(), json!(total));
        Value::Object(out)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Raw OCC publishes over `SUBJECTS` subjects of a stream of its own: `n` in all,
/// `IN_FLIGHT` at a time, each expecting its subject's last sequence.
async fn raw_occ_publishes(js: &jetstream::Context, n: usize) -> f64 {
    js.create_stream(jetstream::stream::Config {
        name: "RAW_OCC".into(),
        subjects: vec!["raw.occ.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..IN_FLIGHT {
        let (js, next) = (js.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            // Each writer owns the subjects w, w + IN_FLIGHT, …: it knows their last
            // sequences, as a writer that just read them would.
            let mut last: std::collections::HashMap<usize, u64> = Default::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let subject = w + IN_FLIGHT * (i / IN_FLIGHT % (SUBJECTS / IN_FLIGHT));
                let expected = last.get(&subject).copied().unwrap_or(0);
                let publish = jetstream::message::PublishMessage::build()
                    .payload(r#"{"events":[]}"#.into())
                    .expected_last_subject_sequence(expected);
                let ack = js
                    .send_publish(format!("raw.occ.{subject}"), publish)
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                last.insert(subject, ack.sequence);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn schedule(id: Uuid, unit: &str) -> Value {
    tests::schedule_payload(id, unit)
}

async fn command(client: &async_nats::Client, endpoint: &str, payload: Value) -> Duration {
    let body = serde_json::to_vec(&request(payload)).unwrap();
    let start = Instant::now();
    let msg = client
        .request(command_subject("inspection", endpoint), body.into())
        .await
        .unwrap();
    let reply: CommandReply = serde_json::from_slice(&msg.payload).unwrap();
    assert!(matches!(reply, CommandReply::Accepted(_)), "{reply:?}");
    start.elapsed()
}

/// One inspection's life: scheduled, started, concluded.
async fn lifecycle(client: &async_nats::Client, n: usize) {
    let units = ["long-xuyen", "chau-doc", "tan-chau", "an-phu", "tri-ton"];
    let id = Uuid::now_v7();
    command(client, "schedule", schedule(id, units[n % units.len()])).await;
    command(
        client,
        "start",
        json!({"inspection_id": id, "started_on": "2024-02-01"}),
    )
    .await;
    command(
        client,
        "conclude",
        json!({"inspection_id": id, "concluded_on": "2024-02-20", "outcome": "no_violation",
            "summary": "Không có vi phạm", "conclusion_ref": "KL (giả định)"}),
    )
    .await;
}

/// `inspections` lifecycles, `IN_FLIGHT` at a time: commands per second.
async fn commands_over_nats(client: &async_nats::Client, inspections: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= inspections {
                    return;
                }
                lifecycle(&client, n).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (inspections * 3) as f64 / start.elapsed().as_secs_f64()
}

/// The HTTP body and path of one step of an inspection's life.
fn http_step(base: &str, step: usize, id: Uuid, unit: &str) -> (String, Value) {
    match step {
        0 => (format!("{base}/v1/inspections"), schedule(id, unit)),
        1 => (
            format!("{base}/v1/inspections/{id}/start"),
            json!({"started_on": "2024-02-01"}),
        ),
        _ => (
            format!("{base}/v1/inspections/{id}/conclude"),
            json!({"concluded_on": "2024-02-20", "outcome": "no_violation",
                "summary": "Không có vi phạm", "conclusion_ref": "KL (giả định)"}),
        ),
    }
}

/// `inspections` lifecycles over HTTP, `IN_FLIGHT` at a time: commands per second.
async fn commands_over_http(base: &str, http: &reqwest::Client, inspections: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (http, next, base) = (http.clone(), next.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= inspections {
                    return;
                }
                let id = Uuid::now_v7();
                for step in 0..3 {
                    let (url, body) = http_step(&base, step, id, ["an-phu", "tri-ton"][n % 2]);
                    let r = http
                        .post(url)
                        .header("idempotency-key", Uuid::now_v7().to_string())
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "{:?}", r.text().await);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (inspections * 3) as f64 / start.elapsed().as_secs_f64()
}

/// Sends a new inspection every millisecond for `seconds` (open loop: a slow answer
/// does not slow the sending) and times each from sending until the projector answers
/// a query made at its commit's position: the delay until a reader sees it.
async fn read_model_delay(client: &async_nats::Client, seconds: u64) -> Value {
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        ticks.tick().await;
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let body = serde_json::to_vec(&request(schedule(Uuid::now_v7(), "chau-doc"))).unwrap();
            let msg = client
                .request(command_subject("inspection", "schedule"), body.into())
                .await
                .unwrap();
            let CommandReply::Accepted(accepted) = serde_json::from_slice(&msg.payload).unwrap()
            else {
                panic!("a new inspection is accepted");
            };
            let command = start.elapsed();
            let query = QueryRequest {
                min_position: Some(accepted.position),
                wait_ms: Some(10_000),
                ..Default::default()
            };
            let q = serde_json::to_vec(&query).unwrap();
            let msg = client
                .request(query_subject("position"), q.into())
                .await
                .unwrap();
            let reply: QueryReply<ProjectorPosition> =
                serde_json::from_slice(&msg.payload).unwrap();
            assert!(
                matches!(reply, QueryReply::Ok(_)),
                "the projector caught up"
            );
            (command, start.elapsed())
        }));
    }
    let sent = tasks.len();
    let mut commands = Vec::new();
    let mut delays = Vec::new();
    for t in tasks {
        let (command, delay) = t.await.unwrap();
        commands.push(command);
        delays.push(delay);
    }
    commands.sort();
    delays.sort();
    json!({"commands": sent, "rate_per_s": sent as f64 / seconds as f64,
        "command_p50_ms": percentile(&commands, 0.5), "command_p99_ms": percentile(&commands, 0.99),
        "read_model_p50_ms": percentile(&delays, 0.5), "read_model_p99_ms": percentile(&delays, 0.99)})
}

/// One ordered consumer reading the whole log and decoding every commit.
async fn raw_read_decode(js: &jetstream::Context, head: u64) -> (usize, f64) {
    let stream = js.get_stream("COORD_LOG").await.unwrap();
    // The log's commits, as the projector reads them.
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: "coord.log.>".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let start = Instant::now();
    let mut events = 0usize;
    while let Some(msg) = messages.next().await {
        let msg = msg.unwrap();
        let sequence = msg.info().unwrap().stream_sequence;
        events += coord_log::jetstream::decode_commit(&msg.payload, sequence)
            .map(|e| e.len())
            .unwrap_or(0);
        if sequence >= head {
            break;
        }
    }
    (events, events as f64 / start.elapsed().as_secs_f64())
}

async fn log_state(js: &jetstream::Context) -> jetstream::stream::State {
    let mut stream = js.get_stream("COORD_LOG").await.unwrap();
    stream.info().await.unwrap().state.clone()
}

/// Starts a projector on database `db_path` and waits until it has applied `head`:
/// the time that took, its dead letters, and the process.
async fn projector_at_head(
    nats: &NatsServer,
    client: &async_nats::Client,
    db_path: &str,
    head: u64,
) -> (f64, u64, ServiceProcess) {
    let start = Instant::now();
    let projector = ServiceProcess::start_on(nats, "projector", &[("COORD_PROJECTOR_DB", db_path)]);
    let dead_letters = tests::projector_reached(client, head, Duration::from_secs(900)).await;
    (start.elapsed().as_secs_f64(), dead_letters, projector)
}

/// The projector replaying the whole log into a new database (events/s, peak RSS),
/// then started again on that database (cold start to ready).
async fn replay(nats: &NatsServer, client: &async_nats::Client, head: u64, events: usize) -> Value {
    let db = tempfile::tempdir().unwrap();
    let db_path = db.path().join("speed.sqlite").display().to_string();
    let (seconds, dead_letters, mut projector) =
        projector_at_head(nats, client, &db_path, head).await;
    let peak = tests::peak_rss_kib(projector.pid()).map(|k| k / 1024);
    projector.terminate();
    let (cold_start, _, _again) = projector_at_head(nats, client, &db_path, head).await;
    json!({"events": events, "dead_letters": dead_letters, "seconds": seconds,
        "events_per_s": (events as f64 / seconds).round(), "peak_rss_mib": peak,
        "cold_start_to_ready_s": cold_start})
}

#[tokio::main]
async fn main() {
    let inspections = env_size("SPEED_INSPECTIONS", 10_000);
    let replay_events = env_size("SPEED_REPLAY_EVENTS", 1_000_000);
    let delay_seconds = env_size("SPEED_DELAY_SECONDS", 10) as u64;
    let mut stack = Stack::start();
    stack.wait_ready().await;
    let client = stack.nats.admin_client().await;
    let js = jetstream::new(client.clone());

    let cpu = CpuMeter::start(&mut stack);
    let raw_occ = raw_occ_publishes(&js, inspections * 3).await;
    let raw_cpu = cpu.per_command(inspections * 3);
    println!("raw OCC publish: {raw_occ:.0}/s; CPU µs per publish: {raw_cpu}");

    let mut sequential = Vec::new();
    for n in 0..300 {
        let id = Uuid::now_v7();
        sequential.push(
            command(
                &client,
                "schedule",
                schedule(id, ["an-phu", "tri-ton"][n % 2]),
            )
            .await,
        );
    }
    sequential.sort();
    let cpu = CpuMeter::start(&mut stack);
    let commands = commands_over_nats(&client, inspections).await;
    let nats_cpu = cpu.per_command(inspections * 3);
    println!("commands over NATS: {commands:.0}/s; CPU µs per command: {nats_cpu}");
    let cpu = CpuMeter::start(&mut stack);
    let http = commands_over_http(&stack.gateway_url, &stack.http(), inspections).await;
    let http_cpu = cpu.per_command(inspections * 3);
    println!("commands over HTTP: {http:.0}/s; CPU µs per command: {http_cpu}");
    let delay = read_model_delay(&client, delay_seconds).await;
    println!("command → read model at 1,000/s: {delay}");
    // The replay below has a projector of its own.
    stack.process("projector").terminate();

    let before = log_state(&js).await;
    tests::publish_inspections(
        &js,
        0..replay_events.saturating_sub(before.messages as usize),
    )
    .await;
    let head = log_state(&js).await.last_sequence;
    let (events, read) = raw_read_decode(&js, head).await;
    println!("raw ordered read + decode: {read:.0} events/s");
    let projected = replay(&stack.nats, &client, head, events).await;
    println!("projector replay: {projected}");

    let replay_rate = projected["events_per_s"].as_f64().unwrap_or(0.0);
    let results = json!({
        "what": "Issue 15: the system against raw JetStream on the same nats-server in one run (release build, 2-core machine).",
        "measured_at": chrono::Utc::now().to_rfc3339(),
        "nats_server": String::from_utf8_lossy(&std::process::Command::new(tests::nats_server_bin()).arg("--version").output().unwrap().stdout).trim(),
        "in_flight": IN_FLIGHT,
        "raw_occ_publish_per_s": raw_occ.round(),
        "raw_occ_cpu_us_per_publish": raw_cpu,
        "commands_over_nats": { "inspections": inspections, "commands_per_s": commands.round(), "ratio_to_raw_occ": commands / raw_occ, "cpu_us_per_command": nats_cpu },
        "commands_over_http": { "inspections": inspections, "commands_per_s": http.round(), "ratio_to_raw_occ": http / raw_occ, "cpu_us_per_command": http_cpu },
        "command_to_read_model": delay,
        "command_round_trip_sequential": { "commands": sequential.len(), "p50_ms": percentile(&sequential, 0.5), "p99_ms": percentile(&sequential, 0.99) },
        "raw_ordered_read_decode_events_per_s": read.round(),
        "projector_replay": projected,
        "projector_replay_ratio_to_raw_read": replay_rate / read,
    });
    let text = serde_json::to_string_pretty(&results).unwrap();
    println!("{text}");
    let out = tests::workspace_root().join("tests/bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("speed.json"), text + "\n").unwrap();
}
