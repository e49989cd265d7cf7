//! `coordctl up --offices long-xuyen,chau-doc`: the province as a hub and each listed
//! district office with its own nats-server (a leaf node of the hub, its own JetStream
//! domain; `crate::offices`), its own three command services, projector, auditor and
//! gateway; the hub's auditor is also the witness over the offices' checkpoints, and
//! each office's the witness over the province's. Each site's processes know whom it
//! hosts (`COORD_SITE`, `COORD_DISTRICT_SITES`), and each site gets an admin token
//! (`<data-dir>/credentials/<office>.admin.token`) for its rebuild, redrive and import.
//! Gateways listen on `--listen`'s port for the province and the next ports for the
//! offices, in the order given; one line `office <id> <url>` each. Every office acts
//! through its own operator token (`<data-dir>/credentials/<office>.token`).
//!
//! On empty logs it loads the reference scenario (or `--scenario`; not with
//! `--no-scenario`) as the offices would have worked: each command at the gateway of
//! the office that sends it, with that office's token (a unit without its own office
//! here sends through the hub, as in single-server mode). A command whose reference
//! has not reached its office yet (a district acknowledging the province's information,
//! the province resolving a district's appeal) is sent again, same key, until it has
//! (`crate::load_routed`). It then waits until every office shows the same province
//! figures and prints them.

use std::time::Duration;

use anyhow::Context;

use crate::client::Client;
use crate::launcher::{
    self, Process, StopSignal, UpArgs, find_nats_server, require_nats_version, sibling_binary,
    spawn, wait_ready,
};
use crate::offices::{self, Topology};
use crate::render;
use crate::tokens;

/// Every site runs these; its auditor keeps the tree of its own office's log, and the
/// hub's also witnesses the offices' checkpoints and each office's the province's
/// (`crate::offices::write_audit_keys`).
const SERVICES: [&str; 6] = [
    "inspection",
    "exchange",
    "discipline",
    "projector",
    "auditor",
    "gateway",
];

/// Puts `init`'s trust file where `coordctl audit verify` looks by default
/// (`<credentials>/audit-trust.keys`), unless one is there: a trusted key is never
/// replaced silently, so a different one there is only reported.
fn install_trust(topology: &Topology, credentials: &std::path::Path) -> anyhow::Result<()> {
    let target = credentials.join(crate::audit::TRUST_FILE);
    let keys = std::fs::read_to_string(topology.trust_file())?;
    match std::fs::read_to_string(&target) {
        Ok(existing) if existing != keys => eprintln!(
            "{} differs from the keys `offices init` wrote; kept as it is (a trusted key is never replaced silently)",
            target.display()
        ),
        Ok(_) => {}
        Err(_) => std::fs::write(&target, keys)?,
    }
    Ok(())
}

/// Starts the hub and the offices and runs until Ctrl-C.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let mut stop = StopSignal::install()?;
    let data = &args.data_dir;
    let logs = data.join("logs");
    std::fs::create_dir_all(&logs)?;
    let credentials = data.join("credentials");
    let province = coord_domain::Province::from_toml_str(coord_domain::province::AN_GIANG_TOML)?;
    tokens::ensure_office_tokens(&credentials, &province, &tokens::all_offices(&province))?;
    let token_key = tokens::signer(&credentials)?.public_key();
    let topology = offices::OfficesArgs {
        offices: args.offices.clone(),
        out: data.join("offices"),
        base_port: args.nats_port,
        leaf_port: args.leaf_port,
        province_file: None,
        durability: args.durability,
        clustering: args.clustering.clone(),
    }
    .topology()?;
    let sites: Vec<_> = topology.sites().iter().map(|s| s.office()).collect();
    tokens::ensure_admin_tokens(&credentials, &province, &sites)?;
    install_trust(&topology, &credentials)?;

    let mut processes = Vec::new();
    let result = start(&args, &topology, &token_key, &logs, &mut processes).await;
    let result = match result {
        Ok(urls) => run_until_signal(&args, &urls, &credentials, &mut processes, &mut stop).await,
        Err(e) => Err(e),
    };
    println!("Đang dừng hệ thống (stopping) ...");
    for p in processes.iter_mut().rev() {
        p.stop().await;
    }
    result
}

/// Starts every server and process; returns each office's slug and gateway URL.
async fn start(
    args: &UpArgs,
    t: &Topology,
    token_key: &str,
    logs: &std::path::Path,
    processes: &mut Vec<Process>,
) -> anyhow::Result<Vec<(String, String)>> {
    let nats_bin = find_nats_server()?;
    // Durable sourcing consumers (ADR-60) and the last commit by a wildcard subject of
    // a sourced stream.
    require_nats_version(&nats_bin, (2, 14), "`up --offices`")?;
    for site in t.sites() {
        for (i, file) in (0..).zip(site.config_files()) {
            let config = vec!["-c".to_owned(), file.display().to_string()];
            let name = format!("nats-server-{}", site.server_name(i));
            processes.push(spawn(&name, &nats_bin, &config, &[], logs)?);
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = offices::ensure_streams(t).await {
        for p in processes.iter_mut() {
            if let Some(status) = p.exited() {
                anyhow::bail!(
                    "{} exited during start-up ({status}); see its log",
                    p.name()
                );
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "cannot create the log streams: {e:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut urls = Vec::new();
    for (i, site) in t.sites().into_iter().enumerate() {
        let port = args.listen.port() + u16::try_from(i)?;
        for service in SERVICES {
            let env = offices::service_env(site, service, port, token_key)?;
            let name = format!("{service}-{}", site.slug);
            processes.push(spawn(&name, &sibling_binary(service)?, &[], &env, logs)?);
        }
        urls.push((site.slug.clone(), format!("http://127.0.0.1:{port}")));
    }
    Ok(urls)
}

async fn run_until_signal(
    args: &UpArgs,
    urls: &[(String, String)],
    credentials: &std::path::Path,
    processes: &mut [Process],
    stop: &mut StopSignal,
) -> anyhow::Result<()> {
    let mut head = 0;
    let mut clients = Vec::new();
    // Each request carries the token of the office it is from: at the hub, of the
    // office the command names (the province's for a read); at an office's own site,
    // that office's (a site refuses the tokens of offices it does not host).
    let tokens = tokens::TokenSet::load(None, credentials);
    for (i, (slug, url)) in urls.iter().enumerate() {
        let tokens = match i {
            0 => tokens.clone(),
            _ => tokens.clone().for_slug(slug),
        };
        let client = Client::new(url)?.with_tokens(tokens);
        head += wait_ready(&client, processes)
            .await
            .with_context(|| format!("office {slug}"))?;
        clients.push((slug.as_str(), client));
    }
    if let Some(text) = launcher::scenario_text(args, head)? {
        load_at_offices(&clients, &text).await?;
    }
    for (slug, url) in urls {
        println!("office {slug} {url}");
    }
    println!("Nhấn Ctrl-C để dừng (press Ctrl-C to stop).");
    let holds = crate::supervise::hold_dir(&args.data_dir);
    crate::supervise::supervise(processes, stop, Default::default(), &holds).await
}

/// How long a command may wait for what it refers to to reach its office.
const REFERENCE_WAIT: Duration = Duration::from_secs(60);

/// Loads `text`, each command at its office's gateway (the hub's, `clients[0]`, for a
/// unit without one), then waits until every office shows the same province figures
/// and prints them.
async fn load_at_offices(clients: &[(&str, Client)], text: &str) -> anyhow::Result<()> {
    println!(
        "Log trống: nạp kịch bản tham chiếu tại từng văn phòng (empty logs: loading the reference scenario, each command at its office) ..."
    );
    let route = |office: &str| {
        let slug = office
            .parse::<coord_domain::Office>()
            .map_or_else(|_| String::new(), |o| o.slug().to_owned());
        clients
            .iter()
            .find(|(s, _)| *s == slug)
            .map_or(&clients[0].1, |(_, c)| c)
    };
    let report = crate::load_routed(route, text, true, REFERENCE_WAIT).await?;
    for (line, problem) in &report.failures {
        eprintln!("dòng (line) {line}: {problem}");
    }
    anyhow::ensure!(
        report.failures.is_empty(),
        "the scenario did not load cleanly"
    );
    let summary = converged_summary(clients).await?;
    let districts = clients[0].1.districts(None).await?;
    println!();
    println!("{}", render::summary(&summary, &districts.districts));
    Ok(())
}

/// The hub's province summary once every office shows the same figures (within 60 s).
async fn converged_summary(
    clients: &[(&str, Client)],
) -> anyhow::Result<coord_proto::read::ProvinceSummary> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut summaries = Vec::new();
        for (_, client) in clients {
            summaries.push(client.province(None, None).await?);
        }
        // Positions are each office's own log's; the figures are what must agree.
        let hub_position = summaries[0].position;
        for s in &mut summaries {
            s.position = 0;
        }
        if summaries.windows(2).all(|w| w[0] == w[1]) {
            let mut hub = summaries.swap_remove(0);
            hub.position = hub_position;
            return Ok(hub);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the offices did not converge to the same province figures within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
