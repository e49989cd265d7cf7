//! The projector: follows the event log and keeps the coordination-status read models
//! in an embedded SQLite database; answers queries over NATS.
//!
//! - [`store`]: the SQLite schema, batches, checkpoint and queries (no network I/O);
//! - `apply`: how each event type changes the read models;
//! - [`runner`]: catch-up-then-live consumption, batching, rebuild;
//! - [`queries`]: the NATS request/reply API;
//! - [`analytics`]: counts by period and month, status as of a date;
//! - [`damage`]: applied events gone from the log, found by a scrub; a rebuild's refusal;
//! - `fill`: empty read models filled without syncing, safe against the machine stopping;
//! - [`readers`]: read connections for the analytics queries, off the writer.

pub mod analytics;
mod apply;
pub mod damage;
mod fill;
pub mod metrics;
pub mod queries;
pub mod readers;
pub mod runner;
pub mod store;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use coord_log::EventLog;
use coord_service::ServiceConfig;
use futures::StreamExt;
use tokio::sync::watch;

pub use runner::{Batching, Projector};
pub use store::Store;

/// Projector settings, on top of the shared service settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    /// The SQLite database of the read models.
    #[arg(
        long,
        env = "COORD_PROJECTOR_DB",
        default_value = "coord-projector.sqlite"
    )]
    pub db: PathBuf,
    /// Events applied per transaction at most (what is ready is batched).
    #[arg(long, env = "COORD_PROJECTOR_BATCH", default_value_t = 256)]
    pub batch_size: usize,
    /// Under heavy traffic (a backlog: the last batch held eight events or more), how
    /// long a batch smaller than `COORD_PROJECTOR_BATCH` waits for more, in milliseconds
    /// (0: never; at most 100, as shutdown and rebuild requests wait for it). A command
    /// after a quiet spell, or at a moderate rate, is applied at once.
    #[arg(
        long,
        env = "COORD_PROJECTOR_LINGER_MS",
        default_value_t = 2,
        value_parser = clap::value_parser!(u64).range(0..=100)
    )]
    pub linger_ms: u64,
    /// Longest wait for `min_position` in a query, in milliseconds.
    #[arg(long, env = "COORD_PROJECTOR_MAX_WAIT_MS", default_value_t = 10_000)]
    pub max_wait_ms: u64,
    /// How long a write waits for a database lock held elsewhere before the batch is
    /// rolled back and retried, in milliseconds.
    #[arg(long, env = "COORD_PROJECTOR_BUSY_TIMEOUT_MS", default_value_t = 5_000)]
    pub busy_timeout_ms: u64,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Follow the log and answer queries (the default).
    Run,
    /// Drop the read models, replay the whole log, and exit.
    Rebuild {
        /// Rebuild even though events the read models hold are gone from the log
        /// (recorded log damage): they are then lost from the read models too.
        #[arg(long)]
        accept_loss: bool,
    },
}

#[derive(Debug, clap::Parser)]
#[command(
    name = "projector",
    version,
    about = "Builds the coordination-status read models from the event log"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

async fn open(config: &Config) -> anyhow::Result<(async_nats::Client, Arc<Projector>)> {
    let province = config.service.province()?;
    let client = config.service.connect("coord-projector").await?;
    let log = config.service.open_log(client.clone()).await?;
    let projector = Projector::open(
        &config.db,
        province,
        log,
        Batching {
            size: config.batch_size,
            linger: Duration::from_millis(config.linger_ms),
        },
        Duration::from_millis(config.busy_timeout_ms),
    )?;
    Ok((client, projector))
}

/// Runs the projection and the query service until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (client, projector) = open(&config).await?;
    let stop_metrics = tokio_util::sync::CancellationToken::new();
    config.service.serve_metrics(stop_metrics.clone()).await?;
    metrics::METRICS.position.set(projector.position() as i64);
    tracing::info!(db = %config.db.display(), position = projector.position(), "projector starting");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut projection = tokio::spawn(projector.clone().run(stop_rx.clone()));
    let mut stop_queries = stop_rx.clone();
    let queries = queries::serve(
        client.clone(),
        projector.clone(),
        Duration::from_millis(config.max_wait_ms),
        config.service.limits(),
        async move {
            let _ = stop_queries.wait_for(|s| *s).await;
        },
    );
    let queries = tokio::spawn(queries);
    tokio::select! {
        _ = shutdown => {}
        result = &mut projection => {
            // The projection retries every failure itself; ending early is a bug.
            let _ = stop_tx.send(true);
            let _ = queries.await;
            return match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(e.into()),
            };
        }
    }
    let _ = stop_tx.send(true);
    let _ = projection.await;
    let _ = queries.await;
    stop_metrics.cancel();
    client.flush().await.ok();
    tracing::info!(position = projector.position(), "projector stopped");
    Ok(())
}

/// Drops the read models and replays the log up to its current head, then returns;
/// refused while events the read models hold are recorded as gone from the log, unless
/// `accept_loss`, as the online rebuild is.
pub async fn rebuild_offline(config: Config, accept_loss: bool) -> anyhow::Result<u64> {
    let province = config.service.province()?;
    let client = config.service.connect("coord-projector-rebuild").await?;
    let log = config.service.open_log(client).await?;
    let mut store = Store::open(&config.db, province)?;
    let open = damage::list(&store)?
        .into_iter()
        .filter(|d| d.accepted_at.is_none())
        .count();
    if open > 0 {
        anyhow::ensure!(
            accept_loss,
            "{open} event(s) the read models hold are gone from the log (see the projector's alarms): a rebuild would lose them; run it with --accept-loss to accept that"
        );
        damage::accept(store.connection())?;
        tracing::warn!(
            open,
            "rebuilding without events lost from the log, as asked"
        );
    }
    replay_into(&mut store, log, config.batch_size).await?;
    Ok(store.checkpoint()?.map(|p| p.commit).unwrap_or(0))
}

/// Resets `store` and replays `log` into it up to the head seen at the start, through
/// the backend's interruptions (never into another log).
pub async fn replay_into(
    store: &mut Store,
    log: Arc<dyn EventLog>,
    batch_size: usize,
) -> anyhow::Result<()> {
    store.reset()?;
    let Some(head) = log.head().await? else {
        return Ok(store.build_indexes()?);
    };
    let mut chunks = coord_log::resuming(log, None)
        .await?
        .ready_chunks(batch_size.max(1));
    while let Some(chunk) = chunks.next().await {
        let items = chunk
            .into_iter()
            .map(store::Item::from_log)
            .collect::<Result<Vec<_>, _>>()?;
        store.apply_batch(&items)?;
        if store.checkpoint()?.is_some_and(|c| c >= head) {
            break;
        }
    }
    // Filled: the query indexes, and the files synced.
    Ok(store.build_indexes()?)
}
