//! `coordctl up --offices long-xuyen,chau-doc`: the province as a hub and each listed
//! district office with its own nats-server (a leaf node of the hub, its own JetStream
//! domain; `crate::offices`), its own three command services, projector, auditor and
//! gateway; the hub's auditor is also the witness over the offices' checkpoints, and
//! each office's the witness over the province's.
//! Gateways listen on `--listen`'s port for the province and the next ports for the
//! offices, in the order given; one line `office <id> <url>` each. Every office acts
//! through its own operator token (`<data-dir>/credentials/<office>.token`).
//!
//! Nothing is loaded. A district's acknowledgements and appeals work here (its own
//! receipt and appeal streams, see ARCHITECTURE.md, Ownership), but loading the
//! reference scenario would have to send each command at its office and wait for what
//! it refers to (an appeal for its decision, a resolution for its appeal).

use std::time::Duration;

use anyhow::Context;

use crate::client::Client;
use crate::launcher::{
    Process, StopSignal, UpArgs, find_nats_server, sibling_binary, spawn, wait_ready,
};
use crate::offices::{self, Topology};
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
    }
    .topology()?;

    let mut processes = Vec::new();
    let result = start(&args, &topology, &token_key, &logs, &mut processes).await;
    let result = match result {
        Ok(urls) => run_until_signal(&urls, &credentials, &mut processes, &mut stop).await,
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
    for site in t.sites() {
        let config = vec!["-c".to_owned(), site.config_file().display().to_string()];
        let name = format!("nats-server-{}", site.slug);
        processes.push(spawn(&name, &nats_bin, &config, &[], logs)?);
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
            let mut env = offices::service_env(site, service, port)?;
            env.push(("COORD_TOKEN_PUBLIC_KEY", token_key.to_owned()));
            let name = format!("{service}-{}", site.slug);
            processes.push(spawn(&name, &sibling_binary(service)?, &[], &env, logs)?);
        }
        urls.push((site.slug.clone(), format!("http://127.0.0.1:{port}")));
    }
    Ok(urls)
}

async fn run_until_signal(
    urls: &[(String, String)],
    credentials: &std::path::Path,
    processes: &mut [Process],
    stop: &mut StopSignal,
) -> anyhow::Result<()> {
    for (slug, url) in urls {
        let client =
            Client::new(url)?.with_tokens(tokens::TokenSet::load(None, credentials).for_slug(slug));
        wait_ready(&client, processes)
            .await
            .with_context(|| format!("office {slug}"))?;
    }
    for (slug, url) in urls {
        println!("office {slug} {url}");
    }
    println!("Nhấn Ctrl-C để dừng (press Ctrl-C to stop).");
    let watch_children = async {
        loop {
            for p in processes.iter_mut() {
                if let Some(status) = p.exited() {
                    return (p.name().to_owned(), status);
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::select! {
        _ = stop.recv() => Ok(()),
        (name, status) = watch_children => Err(anyhow::anyhow!("{name} stopped unexpectedly ({status}); see its log")),
    }
}
