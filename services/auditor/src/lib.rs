//! The auditor: follows one office's event log, keeps it as an RFC 9162 Merkle tree
//! with every leaf and an audit read model in SQLite, signs a C2SP checkpoint with the
//! office's Ed25519 key every N events or T seconds, keeps every checkpoint, and answers
//! proofs and reviewer queries over NATS.
//!
//! - [`store`]: the SQLite schema and queries (no network I/O);
//! - [`runner`]: catch-up-then-live consumption and checkpoint signing;
//! - [`queries`]: the NATS request/reply API;
//! - [`key`]: the office's signing key, created on first start.

pub mod key;
pub mod queries;
pub mod runner;
pub mod store;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use coord_service::ServiceConfig;
use tokio::sync::watch;

pub use runner::Auditor;
pub use store::Store;

/// Auditor settings, on top of the shared service settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    /// Where the audit database and the office's signing key live.
    #[arg(long, env = "COORD_AUDIT_DIR", default_value = "coord-auditor")]
    pub data_dir: PathBuf,
    /// The office whose log this is, e.g. `province` or `district:long-xuyen`.
    #[arg(long, env = "COORD_AUDIT_OFFICE", default_value = "province")]
    pub office: String,
    /// The checkpoints' origin line and the key's name (default `coord/{province}/{office}`).
    #[arg(long, env = "COORD_AUDIT_ORIGIN")]
    pub origin: Option<String>,
    /// Sign a checkpoint after this many new events…
    #[arg(long, env = "COORD_AUDIT_CHECKPOINT_EVENTS", default_value_t = 1000)]
    pub checkpoint_events: u64,
    /// …or after this many milliseconds, whichever comes first (if the tree grew).
    #[arg(long, env = "COORD_AUDIT_CHECKPOINT_MS", default_value_t = 5000)]
    pub checkpoint_ms: u64,
    /// Events applied per transaction at most.
    #[arg(long, env = "COORD_AUDIT_BATCH", default_value_t = 512)]
    pub batch_size: usize,
    /// Also answer for the default office (`coord.audit._.*`).
    #[arg(long, env = "COORD_AUDIT_DEFAULT", default_value_t = true, action = clap::ArgAction::Set)]
    pub default_office: bool,
}

#[derive(Debug, clap::Parser)]
#[command(
    name = "auditor",
    version,
    about = "Keeps the office's event log as a signed, verifiable transparency log"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
}

/// Opens the store and the key and builds the auditor.
pub async fn open(config: &Config) -> anyhow::Result<(async_nats::Client, Arc<Auditor>)> {
    let province = config.service.province()?;
    let origin = config
        .origin
        .clone()
        .unwrap_or_else(|| format!("coord/{}/{}", province.id, config.office));
    std::fs::create_dir_all(&config.data_dir)?;
    let signer = key::load_or_create(&config.data_dir.join("office.key"), &origin)?;
    let client = config.service.connect("coord-auditor").await?;
    let log = config.service.open_log(client.clone()).await?;
    let store = Store::open(&config.data_dir.join("audit.sqlite"))?;
    let auditor = Auditor::new(
        config.office.clone(),
        signer,
        store,
        log,
        config.checkpoint_events,
        config.batch_size,
        Some(client.clone()),
    )?;
    Ok((client, auditor))
}

/// Runs the auditor until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (client, auditor) = open(&config).await?;
    tracing::info!(office = %auditor.office, key = %auditor.signer.verifier(), leaves = auditor.leaf_count(), "auditor starting");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut following = tokio::spawn(
        auditor
            .clone()
            .run(Duration::from_millis(config.checkpoint_ms), stop_rx.clone()),
    );
    let mut stop_queries = stop_rx.clone();
    let queries = tokio::spawn(queries::serve(
        client.clone(),
        auditor.clone(),
        config.default_office,
        async move {
            let _ = stop_queries.wait_for(|s| *s).await;
        },
    ));
    let result = tokio::select! {
        _ = shutdown => Ok(()),
        r = &mut following => match r {
            Ok(r) => r,
            Err(e) => Err(e.into()),
        },
    };
    let _ = stop_tx.send(true);
    if !following.is_finished() {
        let _ = following.await;
    }
    let _ = queries.await;
    client.flush().await.ok();
    tracing::info!(leaves = auditor.leaf_count(), "auditor stopped");
    result
}
