//! `coordctl up` as a new user runs it: starts everything, loads the reference scenario
//! into the empty log, prints the summary, stops cleanly on Ctrl-C (SIGINT); a second
//! start keeps the data and loads nothing.

use tests::free_port;
use tests::up::Up;

/// What `up` generated is owner-only, there is a token per office and the site's admin
/// token, and its NATS admits no anonymous client.
fn credentials_are_private_and_nats_refuses_strangers(data: &std::path::Path, nats_port: u16) {
    use std::os::unix::fs::PermissionsExt as _;
    let credentials = data.join("credentials");
    for file in [
        "province.token",
        "long-xuyen.token",
        "tri-ton.token",
        "province.admin.token",
        "token-signing.nk",
    ] {
        let mode = std::fs::metadata(credentials.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let anonymous = runtime.block_on(
        async_nats::ConnectOptions::new()
            .max_reconnects(Some(1))
            .connect(format!("nats://127.0.0.1:{nats_port}")),
    );
    assert!(anonymous.is_err(), "an anonymous NATS client connected");
}

/// The auditor runs as its own NATS user: the gateway gathers its key, and a reader's
/// route answers with the office token.
fn the_auditor_answers(data: &std::path::Path, http_port: u16) {
    let token = std::fs::read_to_string(data.join("credentials/province.token")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys: serde_json::Value = runtime.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{http_port}/v1/audit/keys"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.unwrap()
    });
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
    assert_eq!(keys[0]["office"], "province", "{keys}");
}

/// `coordctl rebuild` sends the site's admin token by default; the province operator's
/// token may not rebuild.
fn a_rebuild_takes_the_admin_token(data: &std::path::Path, http_port: u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let gateway = format!("http://127.0.0.1:{http_port}");
    let rebuild = |token: Option<String>| coordctl::Cli {
        gateway: gateway.clone(),
        token,
        credentials: data.join("credentials"),
        site: "province".into(),
        json: true,
        command: coordctl::Command::Rebuild { accept_loss: false },
    };
    runtime
        .block_on(coordctl::run(rebuild(None)))
        .unwrap_or_else(|e| panic!("rebuild with the admin token: {e:#}"));
    let operator = std::fs::read_to_string(data.join("credentials/province.token")).unwrap();
    let err = runtime
        .block_on(coordctl::run(rebuild(Some(operator))))
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("role_cannot_operate"),
        "{err:#}"
    );
}

/// `coordctl send --if-match` sends the version it is given: a stale one is refused and
/// writes nothing, the current one goes through.
fn send_if_match_refuses_a_stale_version(data: &std::path::Path, http_port: u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = uuid::Uuid::now_v7();
    let send = |command: &str, data_json: serde_json::Value, if_match: Option<u64>| coordctl::Cli {
        gateway: format!("http://127.0.0.1:{http_port}"),
        token: None,
        credentials: data.join("credentials"),
        site: "province".into(),
        json: true,
        command: coordctl::Command::Send {
            command: command.into(),
            id: Some(id.to_string()),
            data: Some(data_json.to_string()),
            file: None,
            set: Vec::new(),
            key: None,
            office: None,
            if_match,
        },
    };
    let start = serde_json::json!({"started_on": "2024-02-01"});
    runtime
        .block_on(coordctl::run(send(
            "inspection.schedule",
            tests::schedule_payload(id, "tri-ton"),
            None,
        )))
        .unwrap();
    let stale = runtime
        .block_on(coordctl::run(send(
            "inspection.start",
            start.clone(),
            Some(0),
        )))
        .unwrap_err();
    assert!(
        format!("{stale:#}").contains("concurrent_modification"),
        "{stale:#}"
    );
    runtime
        .block_on(coordctl::run(send("inspection.start", start, Some(1))))
        .unwrap_or_else(|e| panic!("the current version is taken: {e:#}"));
}

#[test]
fn coordctl_up_runs_loads_once_and_stops_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let (nats_port, http_port) = (free_port(), free_port());

    let mut first = Up::start(data.path(), nats_port, http_port);
    first.wait_for("Nhấn Ctrl-C");
    credentials_are_private_and_nats_refuses_strangers(data.path(), nats_port);
    the_auditor_answers(data.path(), http_port);
    a_rebuild_takes_the_admin_token(data.path(), http_port);
    send_if_match_refuses_a_stale_version(data.path(), http_port);
    let out = first.interrupt().join("\n");
    assert!(
        out.contains("nạp kịch bản tham chiếu"),
        "the empty log gets the scenario:\n{out}"
    );
    assert!(out.contains("8/11"), "coordinated 8 of 11:\n{out}");
    assert!(
        out.contains("An Phú, Thoại Sơn, Tri Tôn"),
        "outstanding districts named in Vietnamese:\n{out}"
    );
    assert!(
        out.contains("30 / 15 / 0 / 1"),
        "members disciplined:\n{out}"
    );
    assert!(
        out.contains(&format!("http://127.0.0.1:{http_port}")),
        "prints the gateway URL"
    );
    assert!(
        out.contains("đã dừng (stopped) auditor"),
        "the auditor ran until asked to stop:\n{out}"
    );
    assert!(
        out.contains("đã dừng (stopped) nats-server"),
        "stops NATS last:\n{out}"
    );

    let mut second = Up::start(data.path(), nats_port, http_port);
    second.wait_for("Nhấn Ctrl-C");
    let out = second.interrupt().join("\n");
    assert!(
        out.contains("không nạp lại"),
        "a second start keeps the data:\n{out}"
    );
    assert!(
        !out.contains("nạp kịch bản tham chiếu"),
        "and loads nothing:\n{out}"
    );
    assert!(out.contains("10 / 0 / 0"), "the same figures:\n{out}");
}

/// Polls `/readyz` (at most `secs` s) until `done` holds for its status and body.
async fn poll_readyz(
    http_port: u16,
    secs: u64,
    done: impl Fn(u16, &serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    let url = format!("http://127.0.0.1:{http_port}/readyz");
    while tokio::time::Instant::now() < deadline {
        if let Ok(r) = reqwest::get(&url).await {
            let status = r.status().as_u16();
            let body = r.json().await.unwrap_or_default();
            if done(status, &body) {
                return Some(body);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

/// The parts `/readyz` says are down.
fn down(body: &serde_json::Value) -> Vec<&str> {
    body["down"]
        .as_array()
        .map(|d| d.iter().filter_map(|c| c["component"].as_str()).collect())
        .unwrap_or_default()
}

/// Schedules an inspection as the province; returns the HTTP status.
async fn schedule(data: &std::path::Path, http_port: u16, n: u32) -> u16 {
    let token = std::fs::read_to_string(data.join("credentials/province.token")).unwrap();
    let body = serde_json::json!({"term": "2020-2025", "unit": "tri-ton", "kind": "inspection",
        "category": "compliance", "leading_body": "provincial_standing_committee",
        "coordinating_body": "district_standing_committee:tri-ton",
        "target": "district_police:tri-ton", "decision_ref": format!("QĐ {n} (giả định)"),
        "decided_on": "2024-06-01", "planned_start": "2024-06-10", "planned_end": "2024-06-20"});
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http_port}/v1/inspections"))
        .bearer_auth(token.trim())
        .header("Idempotency-Key", format!("supervised-{n}"))
        .json(&body)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Kills `name`, a child of `up`, with SIGKILL; `/readyz` names it while it is down
/// (if `shows_down`), the launcher restarts it, and the system takes a command again.
async fn killed_child_comes_back(up: &mut Up, data: &std::path::Path, http_port: u16, name: &str) {
    let pid = up
        .child_pid(name)
        .unwrap_or_else(|| panic!("{name} runs under up"));
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let component = if name == "nats-server" { "nats" } else { name };
    let seen = poll_readyz(
        http_port,
        if name == "nats-server" { 3 } else { 10 },
        |status, body| status == 503 && down(body).contains(&component),
    )
    .await;
    // A killed service stays down for the launcher's first backoff (0.5 s) and the
    // gateway's ping notices; a killed nats-server may be back before any poll sees
    // its clients disconnected, so for it only the recovery below is asserted.
    assert!(
        seen.is_some() || name == "nats-server",
        "/readyz never named {component} as down"
    );
    up.wait_for(&format!("đã khởi động lại (restarted) {name}"));
    let ready = poll_readyz(http_port, 60, |status, _| status == 200).await;
    assert!(ready.is_some(), "not ready again after {name} came back");
    let again = up.child_pid(name).expect("restarted");
    assert_ne!(again, pid, "a new {name} process");
    assert_eq!(
        schedule(data, http_port, pid).await,
        201,
        "a command after {name} came back"
    );
}

#[test]
fn coordctl_up_restarts_a_killed_child_and_the_system_answers_again_with_strict_durability() {
    let data = tempfile::tempdir().unwrap();
    let (nats_port, http_port) = (free_port(), free_port());
    let mut up = Up::start_with(
        data.path(),
        nats_port,
        http_port,
        &["--no-scenario", "--durability", "strict"],
    );
    up.wait_for("Nhấn Ctrl-C");
    // Strict durability: the server it runs fsyncs before every acknowledgement.
    let config =
        std::fs::read_to_string(data.path().join("credentials/nats/nats-server.conf")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["jetstream"]["sync_interval"], "always", "{config}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(killed_child_comes_back(
        &mut up,
        data.path(),
        http_port,
        "inspection",
    ));
    // NATS itself, restarted on its store: the services reconnect.
    runtime.block_on(killed_child_comes_back(
        &mut up,
        data.path(),
        http_port,
        "nats-server",
    ));
    let out = up.interrupt().join("\n");
    assert!(
        out.contains("inspection đã dừng bất ngờ"),
        "the exit is reported:\n{out}"
    );
}

#[test]
fn coordctl_up_cluster_3_keeps_the_log_at_three_replicas_with_a_leader() {
    let data = tempfile::tempdir().unwrap();
    let (nats_port, http_port) = (tests::free_ports(3), free_port());
    let (routes, monitor) = (tests::free_ports(3), tests::free_ports(3));
    let (routes, monitor) = (routes.to_string(), monitor.to_string());
    let metrics = tests::free_ports(5);
    let metrics_arg = metrics.to_string();
    let mut up = Up::start_with(
        data.path(),
        nats_port,
        http_port,
        &[
            "--cluster",
            "3",
            "--cluster-port",
            &routes,
            "--monitor-port",
            &monitor,
            "--metrics-port",
            &metrics_arg,
        ],
    );
    up.wait_for("Nhấn Ctrl-C");
    let printed = up.seen.join("\n");
    assert!(
        printed.contains("8/11"),
        "the article's figures:\n{printed}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let monitor: u16 = monitor.parse().unwrap();
    let log = runtime.block_on(tests::jsz::replicated_with_leader(monitor, "COORD_LOG"));
    assert!(log["state"]["messages"].as_u64().unwrap() > 300, "{log}");
    runtime.block_on(tests::jsz::replicated_with_leader(
        monitor,
        "KV_COORD_IDEMPOTENCY",
    ));
    // Each service's own metrics, on the ports `--metrics-port` gave them: the
    // projector's applied position is the loaded scenario's, the inspection service
    // counted the scenario's inspections, the auditor holds its lease.
    let scrape = |offset: u16| {
        let url = format!("http://127.0.0.1:{}/metrics", metrics + offset);
        runtime.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
    };
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let projector_url = format!("metrics projector http://127.0.0.1:{}/metrics", metrics + 3);
    assert!(printed.contains(&projector_url), "{printed}");
    let projector = scrape(3);
    assert!(
        value(&projector, "coord_projector_applied_position") > 300.0,
        "{projector}"
    );
    let inspection = scrape(0);
    assert!(
        value(&inspection, "coord_service_commands_total") >= 9.0,
        "{inspection}"
    );
    assert_eq!(value(&scrape(4), "coord_auditor_active"), 1.0);
    let out = up.interrupt().join("\n");
    for n in 1..=3 {
        assert!(
            out.contains(&format!("đã dừng (stopped) nats-server-{n}")),
            "{out}"
        );
    }
}
