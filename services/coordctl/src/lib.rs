//! `coordctl` talks to the gateway over HTTP: it submits commands (one, or a JSON-lines
//! file in bulk), shows province and district status as tables with the Vietnamese
//! names, shows one record (`show`), follows the live event stream, and triggers a
//! rebuild. `coordctl up` starts
//! the whole system locally.

#![allow(clippy::print_stdout)] // a CLI prints to stdout by design

pub mod audit;
pub mod client;
pub mod cluster;
pub mod deploy;
pub mod durability;
pub mod feed;
pub mod launcher;
pub mod offices;
pub mod render;
pub mod supervise;
pub mod tokens;
pub mod up_offices;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use coord_proto::{Route, ScriptedCommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::client::Client;

#[derive(Debug, Parser)]
#[command(
    name = "coordctl",
    version,
    about = "Operator's client of the coordination system (kiểm tra, giám sát, kỷ luật Đảng)"
)]
pub struct Cli {
    /// Gateway URL.
    #[arg(
        long,
        global = true,
        env = "COORD_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub gateway: String,
    /// Bearer token for every request (default: the office's file in --credentials).
    #[arg(long, global = true, env = "COORD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Folder of the signing key and the offices' tokens (`coordctl up` writes them).
    #[arg(
        long,
        global = true,
        env = "COORD_CREDENTIALS_DIR",
        default_value = ".data/credentials"
    )]
    pub credentials: PathBuf,
    /// The site `--gateway` belongs to, by the office that runs it (`province`: the hub
    /// or the single server; `<unit>`: that office's own server). Requests that name no
    /// office send that office's token (a site refuses tokens of offices it does not
    /// host); `rebuild`, `redrive` and `import` send its admin token
    /// (`<office>.admin.token` in --credentials). --token overrides both.
    #[arg(long, global = true, env = "COORD_SITE", default_value = "province")]
    pub site: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start everything locally: nats-server, the services, the projector and the gateway.
    Up(launcher::UpArgs),
    /// Multi-office NATS: configurations, credentials and streams for a hub and offices.
    #[command(subcommand)]
    Offices(offices::OfficesCommand),
    /// A deployment's secrets and streams (containers, a NATS cluster: deploy/production/).
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// Bearer tokens: create one, or print the key that verifies them.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Province summary and every district's status.
    Status {
        #[arg(long)]
        term: Option<String>,
    },
    /// One district's status and latest events.
    District {
        unit: String,
        #[arg(long)]
        term: Option<String>,
        /// Timeline entries to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The province's district-level units.
    Units,
    /// One record as it stands now, with its version (the `If-Match` for the next command).
    Show {
        kind: client::RecordKind,
        id: String,
    },
    /// Submit one command, e.g. `send inspection.start --id <uuid> --set started_on=2022-07-01`.
    Send {
        /// `service.endpoint`: inspection.schedule, inspection.start, exchange.send, discipline.decide, ...
        command: String,
        /// The aggregate id (inspection_id, exchange_id or case_id).
        #[arg(long)]
        id: Option<String>,
        /// The payload as JSON.
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        /// The payload from a JSON file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Set one payload field (value parsed as JSON, else taken as a string). Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Idempotency key (default: a new one).
        #[arg(long)]
        key: Option<String>,
        /// Use this office's token from --credentials (default: the --site office's).
        #[arg(long)]
        office: Option<String>,
        /// Send only if the record is still at this version (`If-Match`; `show` prints
        /// it): a record someone changed since is refused with 409, nothing written.
        /// An acknowledgement or an appeal names its own stream's version (0 before).
        #[arg(long, value_name = "VERSION")]
        if_match: Option<u64>,
    },
    /// Submit every command of a JSON-lines file (see deploy/scenarios/).
    Load { file: PathBuf },
    /// Follow the live event stream.
    Follow {
        /// Start after this log position (default: new events only).
        #[arg(long)]
        after: Option<u64>,
    },
    /// Drop the read models and replay them from the log, showing progress. Refused
    /// while the log lost events the read models applied (`log_damage` of
    /// `/v1/projector`), unless `--accept-loss`.
    Rebuild {
        /// Rebuild without the events gone from the log: the figures will lack them.
        #[arg(long)]
        accept_loss: bool,
    },
    /// Events the projector could not apply.
    DeadLetters,
    /// Export for analytics: the events as CloudEvents (NDJSON or batch) into a file.
    #[command(subcommand)]
    Export(ExportWhat),
    /// Load an `export events` file into a log that holds none of this site's own events
    /// (same commits, same read models).
    Import {
        file: PathBuf,
        /// Allow a log that is not empty (to finish an interrupted import).
        #[arg(long)]
        append: bool,
    },
    /// The verifiable transparency log: verify, export, history, search, correlation.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Apply a dead letter's event again once its cause is fixed (no rebuild).
    Redrive {
        /// The dead letter's position, `commit:index` (see `dead-letters`).
        position: String,
    },
}

/// What `coordctl export` writes.
#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// Every event as a CloudEvent, in log order (or as a CSV / Parquet table).
    Events(feed::ExportEventsArgs),
    /// The monthly read model: per month and unit (CSV or Parquet).
    Monthly(feed::ExportTableArgs),
    /// Every district's status (CSV or Parquet).
    Districts(feed::ExportTableArgs),
}

/// Runs one command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let site = tokens::office_of(coord_domain::province::an_giang(), &cli.site);
    // Reads and commands that name no office go as the office whose site this is.
    let site_slug = site.as_ref().map_or("province", |o| o.slug());
    let client = Client::new(&cli.gateway)?.with_tokens(
        tokens::TokenSet::load(cli.token.clone(), &cli.credentials).defaulting_to(site_slug),
    );
    // Operations that change the site go with its admin token.
    let admin = || -> anyhow::Result<Client> {
        let site = site.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let tokens = tokens::TokenSet::load(cli.token.clone(), &cli.credentials).for_admin(site);
        Ok(Client::new(&cli.gateway)?.with_tokens(tokens))
    };
    match cli.command {
        Command::Up(args) => launcher::up(args).await,
        Command::Offices(command) => {
            println!("{}", offices::run(command, &cli.credentials).await?);
            Ok(())
        }
        Command::Deploy(command) => {
            println!("{}", deploy::run(command).await?);
            Ok(())
        }
        Command::Token(command) => {
            println!("{}", tokens::run(command, &cli.credentials)?);
            Ok(())
        }
        Command::Status { term } => {
            let summary = client.province(term.as_deref(), None).await?;
            let districts = client.districts(term.as_deref()).await?;
            if cli.json {
                print_json(&serde_json::json!({ "province": summary, "districts": districts }));
            } else {
                println!("{}", render::summary(&summary, &districts.districts));
                println!("{}", render::districts(&districts.districts));
            }
            Ok(())
        }
        Command::District { unit, term, limit } => {
            let status = client.district(&unit, term.as_deref()).await?;
            let timeline = client.timeline(&unit, limit).await?;
            if cli.json {
                print_json(&serde_json::json!({ "status": status, "timeline": timeline }));
            } else {
                println!("{}", render::district(&status.status));
                println!("{}", render::timeline(&timeline));
            }
            Ok(())
        }
        Command::Show { kind, id } => {
            let record = client.record(kind, &id).await?;
            if cli.json {
                print_json(&record);
            } else {
                println!("{}", render::record(&record));
                println!("{}", render::record_history(&record));
            }
            Ok(())
        }
        Command::Units => {
            let units: Value = client.get_json("/v1/units", &[]).await?;
            if cli.json {
                print_json(&units);
            } else {
                println!("{}", render::units(&units));
            }
            Ok(())
        }
        Command::Send {
            command,
            id,
            data,
            file,
            set,
            key,
            office,
            if_match,
        } => {
            let route = coord_proto::route(&command).with_context(|| {
                let known: Vec<&str> = coord_proto::ROUTES.iter().map(|r| r.command).collect();
                format!("unknown command `{command}`; known: {}", known.join(", "))
            })?;
            let mut payload = match (data, file) {
                (Some(d), _) => serde_json::from_str(&d).context("--data is not JSON")?,
                (None, Some(f)) => serde_json::from_str(&std::fs::read_to_string(&f)?)
                    .context("--file is not JSON")?,
                (None, None) => Value::Object(Default::default()),
            };
            let Value::Object(map) = &mut payload else {
                anyhow::bail!("the payload must be a JSON object")
            };
            for kv in set {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--set {kv}: expected KEY=VALUE"))?;
                map.insert(
                    k.to_owned(),
                    serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned())),
                );
            }
            if let Some(id) = id {
                map.insert(route.id_field.to_owned(), Value::String(id));
            }
            let accepted = client
                .send(route, &payload, key.as_deref(), office.as_deref(), if_match)
                .await?;
            if cli.json {
                print_json(&accepted);
            } else {
                println!("{}", render::accepted(&accepted));
            }
            Ok(())
        }
        Command::Load { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let report = load(&client, &text, !cli.json).await?;
            if cli.json {
                print_json(
                    &serde_json::json!({ "sent": report.sent, "duplicates": report.duplicates,
                    "failed": report.failures.len(), "position": report.last_position }),
                );
            } else {
                println!(
                    "Đã gửi {} lệnh ({} đã có từ trước), {} lỗi; vị trí log {} (sent, already applied, failed; log position)",
                    report.sent,
                    report.duplicates,
                    report.failures.len(),
                    report.last_position
                );
            }
            for (line, problem) in &report.failures {
                eprintln!("dòng (line) {line}: {problem}");
            }
            if !report.failures.is_empty() {
                anyhow::bail!("{} commands failed", report.failures.len());
            }
            Ok(())
        }
        Command::Follow { after } => follow(&client, after, cli.json).await,
        Command::Rebuild { accept_loss } => rebuild(&admin()?, accept_loss, cli.json).await,
        Command::Audit(command) => audit::run(&client, command, &cli.credentials, cli.json).await,
        Command::DeadLetters => {
            let letters: Value = client.get_json("/v1/dead-letters", &[]).await?;
            print_json(&letters);
            Ok(())
        }
        Command::Export(ExportWhat::Events(args)) => {
            let report = feed::export_events(&client, &args, !cli.json).await?;
            if cli.json {
                print_json(&report);
            } else {
                println!(
                    "Đã xuất {} sự kiện vào {}; lần sau dùng --after {} (exported events; resume with --after)",
                    report.events,
                    args.out.display(),
                    report.resume_after
                );
            }
            Ok(())
        }
        Command::Export(ExportWhat::Monthly(args)) => export_table(&client, "monthly", &args).await,
        Command::Export(ExportWhat::Districts(args)) => {
            export_table(&client, "districts", &args).await
        }
        Command::Import { file, append } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let report = feed::import(&admin()?, &text, append, !cli.json).await?;
            if cli.json {
                print_json(&report);
            } else {
                println!(
                    "Đã nhập {} sự kiện, {} lần ghi ({} đã có); vị trí log {} (imported events, commits, already present; log position)",
                    report.events, report.commits, report.duplicates, report.position
                );
            }
            Ok(())
        }
        Command::Redrive { position } => {
            let path = format!("/v1/dead-letters/{position}/redrive");
            let done: Value = admin()?.post_json(&path).await?;
            if cli.json {
                print_json(&done);
            } else {
                println!(
                    "Đã áp dụng lại sự kiện tại vị trí {position} (dead letter re-driven and applied)"
                );
            }
            Ok(())
        }
    }
}

async fn export_table(
    client: &Client,
    model: &str,
    args: &feed::ExportTableArgs,
) -> anyhow::Result<()> {
    let bytes = feed::export_table(client, model, args).await?;
    println!(
        "Đã ghi {bytes} byte vào {} (wrote the {model} table)",
        args.out.display()
    );
    Ok(())
}

pub(crate) fn print_json(v: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("values serialize")
    );
}

/// What a bulk load did.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub sent: usize,
    pub duplicates: usize,
    pub failures: Vec<(usize, String)>,
    pub last_position: u64,
}

/// Submits every line of a JSON-lines file, in order, with a progress bar.
pub async fn load(client: &Client, text: &str, progress: bool) -> anyhow::Result<LoadReport> {
    load_routed(|_| client, text, progress, Duration::ZERO).await
}

/// [`load`] with each command sent to the client `route` picks for its office (several
/// offices, each with its own gateway). A command refused because what it refers to has
/// not reached its office yet (422 `…_not_found`: the exchange it acknowledges, the
/// case it appeals, the appeal it resolves) is sent again, same key, until
/// `wait_for_references` has passed.
pub async fn load_routed<'c>(
    route: impl Fn(&str) -> &'c Client,
    text: &str,
    progress: bool,
    wait_for_references: Duration,
) -> anyhow::Result<LoadReport> {
    let commands = parse_script(text)?;
    let bar = if progress {
        ProgressBar::new(commands.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} lệnh (commands) {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut report = LoadReport::default();
    for (line, path, cmd) in commands {
        match send_scripted(route(&cmd.office), path, &cmd, wait_for_references).await {
            Ok(a) => {
                report.sent += 1;
                report.duplicates += usize::from(a.duplicate);
                report.last_position = report.last_position.max(a.position);
            }
            Err(e) => report.failures.push((line, format!("{e:#}"))),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Every non-empty line as (line number, route, command).
fn parse_script(text: &str) -> anyhow::Result<Vec<(usize, &'static Route, ScriptedCommand)>> {
    let mut commands = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cmd: ScriptedCommand = serde_json::from_str(line)
            .with_context(|| format!("line {}: not a scripted command", i + 1))?;
        let route = coord_proto::route(&cmd.command)
            .with_context(|| format!("line {}: unknown command {}", i + 1, cmd.command))?;
        commands.push((i + 1, route, cmd));
    }
    Ok(commands)
}

/// Sends one scripted command with its id as the idempotency key (so a retry cannot
/// apply it twice): a brief outage (a service restarting) is retried up to 6 times, a
/// reference not received yet until `wait_for_references` has passed.
async fn send_scripted(
    client: &Client,
    route: &Route,
    cmd: &ScriptedCommand,
    wait_for_references: Duration,
) -> anyhow::Result<coord_proto::Accepted> {
    let key = cmd.command_id.to_string();
    let references_deadline = tokio::time::Instant::now() + wait_for_references;
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = client
            .send(route, &cmd.payload, Some(&key), Some(&cmd.office), None)
            .await;
        let api = result
            .as_ref()
            .err()
            .and_then(|e| e.downcast_ref::<client::ApiError>());
        let transient = api.is_some_and(client::ApiError::is_transient) && attempts < 6;
        let waiting = api.is_some_and(|e| e.status == 422 && e.code.ends_with("_not_found"))
            && tokio::time::Instant::now() < references_deadline;
        if !transient && !waiting {
            return result;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

async fn follow(client: &Client, after: Option<u64>, json: bool) -> anyhow::Result<()> {
    let mut events = client.events(after).await?;
    while let Some(event) = events.next().await {
        let event = event?;
        if json {
            println!("{}", serde_json::to_string(&event)?);
        } else {
            println!("{}", render::event_line(&event));
        }
    }
    Ok(())
}

async fn rebuild(client: &Client, accept_loss: bool, json: bool) -> anyhow::Result<()> {
    let path = match accept_loss {
        true => "/v1/admin/rebuild?accept_loss=true",
        false => "/v1/admin/rebuild",
    };
    let started: Value = client.post_json(path).await?;
    let target = started["target_position"].as_u64().unwrap_or(0);
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(target)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} dựng lại (rebuild) [{bar:40}] {pos}/{len}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let status: Value = client.get_json("/v1/projector", &[]).await?;
        let position = status["position"].as_u64().unwrap_or(0);
        bar.set_position(position.min(target));
        if position >= target && status["rebuilding"] == false {
            break;
        }
        if let Some(detail) = status["fault"]["detail"].as_str() {
            bar.println(format!("projector: {detail}"));
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the rebuild did not finish within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish_and_clear();
    if json {
        print_json(&serde_json::json!({ "rebuilt_to": target }));
    } else {
        println!(
            "Đã dựng lại mô hình đọc đến vị trí {target} (read models rebuilt to position {target})"
        );
    }
    Ok(())
}
