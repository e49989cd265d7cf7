//! Time for the multi-office topology (`coordctl offices`) to converge after a cut: one
//! office (of two, plus the hub) is cut off from the hub, writes N events as its own
//! service user, then its link is restored; we time until the hub and the other office
//! hold every event (then check the id sets are equal, nothing twice). N = 1,000 and
//! 100,000. Durable sourcing (ADR-60) as `coordctl offices` sets it up, nats-server from
//! `NATS_SERVER_BIN`.
//!
//! Run: `cargo bench -p tests --bench offices_convergence`.
//! Writes `tests/bench-results/offices_convergence.json`.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::time::{Duration, Instant};

use serde_json::json;
use tests::ConfiguredNats;
use tests::offices::{converge, count, start, write};

async fn run(queued: usize) -> serde_json::Value {
    let mut running = start(&["long-xuyen", "chau-doc"]).await;
    write(&running.topology.hub, 10).await;
    converge(&running, 10, Duration::from_secs(120)).await;
    let cut = running.topology.offices[0].clone();
    running.servers[1].stop();
    running.servers[1] = ConfiguredNats::start(&cut.isolated_config_file(), cut.port);
    let started = Instant::now();
    write(&cut, queued).await;
    let write_s = started.elapsed().as_secs_f64();
    assert_eq!(count(&cut).await, 10 + queued as u64);

    running.servers[1].stop();
    let restored = Instant::now();
    running.servers[1] = ConfiguredNats::start(&cut.config_file(), cut.port);
    let expected = 10 + queued as u64;
    let deadline = Duration::from_secs(600);
    loop {
        let mut all = true;
        for site in running.sites() {
            all &= count(site).await == expected;
        }
        if all {
            break;
        }
        assert!(
            restored.elapsed() < deadline,
            "no convergence in {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converge_s = restored.elapsed().as_secs_f64();
    // Same ids everywhere, none twice (asserted inside).
    converge(&running, expected as usize, Duration::from_secs(60)).await;
    println!(
        "{queued} queued: written in {write_s:.2} s, converged {converge_s:.2} s after the link was restored"
    );
    json!({ "queued_events": queued, "write_s": write_s, "converge_after_restore_s": converge_s })
}

#[tokio::main]
async fn main() {
    let mut runs = Vec::new();
    for queued in [1_000, 100_000] {
        runs.push(run(queued).await);
    }
    let nats_version = std::process::Command::new(tests::nats_server_bin())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let results = json!({
        "benchmark": "offices_convergence",
        "topology": "hub + 2 offices (leaf nodes, own JetStream domains), durable sourcing (ADR-60)",
        "profile": "dev (unoptimized client; the servers are release builds)",
        "earlier_default_sourcing_converge_s": { "1000": 19.75, "100000": 44.79 },
        "nats_server": nats_version,
        "machine_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "runs": runs,
    });
    let out = tests::workspace_root().join("tests/bench-results");
    std::fs::create_dir_all(&out).unwrap();
    let text = serde_json::to_string_pretty(&results).unwrap();
    std::fs::write(out.join("offices_convergence.json"), text + "\n").unwrap();
}
