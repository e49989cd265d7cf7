//! The auditor: follows one office's event log, keeps it as an RFC 9162 Merkle tree
//! with every leaf and an audit read model in SQLite, signs a C2SP checkpoint with the
//! office's Ed25519 key every N events or T seconds, keeps every checkpoint, and answers
//! proofs and reviewer queries over NATS.
//!
//! - [`store`]: the SQLite schema and queries (no network I/O);
//! - [`runner`]: catch-up-then-live consumption and checkpoint signing;
//! - [`queries`]: the NATS request/reply API;
//! - [`key`]: the office's signing key, created on first start;
//! - [`scrub`]: at each start, every applied leaf read again from the log (log damage);
//! - [`metrics`]: its own metrics;
//! - [`witness`]: witnessing both ways (the hub over the offices' checkpoints, each
//!   office over the province's), and the watched side that keeps the cosignatures.

pub mod key;
pub mod metrics;
pub mod queries;
pub mod runner;
pub mod scrub;
pub mod store;
pub mod witness;

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
    /// Every checkpoint younger than this many hours is kept; of older ones, the first of
    /// each hour, the first a witness cosigned in each hour, the latest cosigned and the
    /// latest (the retention rule).
    #[arg(long, env = "COORD_AUDIT_KEEP_ALL_HOURS", default_value_t = 24)]
    pub keep_all_hours: u64,
    /// Events applied per transaction at most.
    #[arg(long, env = "COORD_AUDIT_BATCH", default_value_t = 512)]
    pub batch_size: usize,
    /// The verifier keys of the logs this auditor witnesses (`<office> <vkey>` per
    /// line, from `coordctl offices init`): at the hub the offices', at an office the
    /// province's. Given, this auditor is a witness over those logs.
    #[arg(long, env = "COORD_WITNESS_KEYS")]
    pub witness_keys: Option<PathBuf>,
    /// Office only: the hub witness's cosignature verifier key; given, the office keeps
    /// the hub's cosignatures of its checkpoints that verify with it.
    #[arg(long, env = "COORD_WITNESS_VKEY")]
    pub witness_vkey: Option<String>,
    /// Hub only: the offices' witness cosignature keys (`<office> <vkey>` per line,
    /// from `coordctl offices init`); given, the province keeps every office's
    /// cosignature of its checkpoints that verifies with that office's key.
    #[arg(long, env = "COORD_WITNESSES")]
    pub witnesses: Option<PathBuf>,
    /// Several instances share the role through a lease (`auditor.<office>` in the
    /// bucket `COORD_LEASES`): one signs, witnesses and answers, the others follow the
    /// log and take over when it stops renewing. Off only to check that this matters.
    #[arg(long, env = "COORD_AUDIT_LEASE", default_value_t = true, action = clap::ArgAction::Set)]
    pub lease: bool,
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
        .unwrap_or_else(|| coord_audit::wire::default_origin(&province.id, &config.office));
    std::fs::create_dir_all(&config.data_dir)?;
    let signer = key::load_or_create(&config.data_dir.join("office.key"), &origin)?;
    let client = config.service.connect("coord-auditor").await?;
    let log = config.service.open_own_log(client.clone()).await?;
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
    auditor.keep_all_for(Duration::from_secs(config.keep_all_hours * 3600));
    Ok((client, auditor))
}

/// This auditor's witness over other logs, when it is given their keys; it cosigns
/// with the office's witness key (`witness.key`, written by `coordctl offices init`).
fn witnessing(
    config: &Config,
    client: &async_nats::Client,
) -> anyhow::Result<Option<Arc<witness::Witnessing>>> {
    let Some(keys) = &config.witness_keys else {
        return Ok(None);
    };
    let province = config.service.province()?;
    let cosigner = key::load_or_create(
        &config.data_dir.join("witness.key"),
        &coord_audit::wire::witness_name(&province.id, &config.office),
    )?;
    let store = witness::WitnessStore::open(&config.data_dir.join("witness.sqlite"))?;
    Ok(Some(witness::Witnessing::new(
        config.office.clone(),
        cosigner,
        witness::read_watched(keys)?,
        store,
        client.clone(),
    )?))
}

/// The witnesses whose cosignatures of this auditor's checkpoints it keeps: the hub's
/// (`COORD_WITNESS_VKEY`, as office `province`) and the offices' (`COORD_WITNESSES`).
fn witnesses(
    config: &Config,
) -> anyhow::Result<Vec<(String, coord_audit::cosign::CosignatureVerifier)>> {
    let mut all = Vec::new();
    if let Some(vkey) = &config.witness_vkey {
        let hub = vkey
            .parse()
            .map_err(|e| anyhow::anyhow!("COORD_WITNESS_VKEY: {e}"))?;
        all.push(("province".to_owned(), hub));
    }
    if let Some(path) = &config.witnesses {
        all.extend(witness::read_witnesses(path)?);
    }
    Ok(all)
}

/// Runs the auditor until `shutdown` resolves: follows the log and, while it holds the
/// lease (always, without one), signs, witnesses and answers queries.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (client, auditor) = open(&config).await?;
    let stop_metrics = tokio_util::sync::CancellationToken::new();
    config.service.serve_metrics(stop_metrics.clone()).await?;
    let lease = if config.lease {
        let key = format!(
            "auditor.{}",
            coord_audit::wire::office_token(&config.office)
        );
        let lease = Arc::new(coord_service::lease::Lease::open(client.clone(), &key).await?);
        let holder = uuid::Uuid::new_v4().to_string();
        auditor.use_lease(lease.clone(), holder);
        Some(lease)
    } else {
        auditor.set_active(true);
        None
    };
    tracing::info!(office = %auditor.office, key = %auditor.signer.verifier(), leaves = auditor.leaf_count(), lease = config.lease, "auditor starting");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut following = tokio::spawn(
        auditor
            .clone()
            .run(Duration::from_millis(config.checkpoint_ms), stop_rx.clone()),
    );
    let scrub = tokio::spawn({
        let auditor = auditor.clone();
        async move {
            if let Err(e) = scrub::scrub(auditor).await {
                tracing::warn!(error = %e, "scrub: not conclusive (the log could not be read to the end); the next start scrubs again");
            }
        }
    });
    let result = tokio::select! {
        _ = shutdown => Ok(()),
        r = &mut following => match r {
            Ok(r) => r,
            Err(e) => Err(e.into()),
        },
        r = roles(&config, &client, &auditor, lease.as_deref()) => r,
    };
    // The last signature on the way out needs the lease still held.
    let _ = stop_tx.send(true);
    if !following.is_finished() {
        let _ = following.await;
    }
    scrub.abort();
    if let Some(lease) = &lease {
        lease.release().await;
    }
    stop_metrics.cancel();
    client.flush().await.ok();
    tracing::info!(leaves = auditor.leaf_count(), "auditor stopped");
    result
}

/// Stands by until this instance holds the lease, then is the active auditor until it
/// loses it, and again; returns only on an error. Without a lease, active at once.
async fn roles(
    config: &Config,
    client: &async_nats::Client,
    auditor: &Arc<Auditor>,
    lease: Option<&coord_service::lease::Lease>,
) -> anyhow::Result<()> {
    loop {
        if let Some(lease) = lease {
            stand_by(client, auditor, lease).await?;
            auditor.set_active(true);
            metrics::METRICS.takeovers.inc();
            tracing::info!(lease = lease.key(), "holding the lease: active");
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut active = start_active(config, client, auditor, stop_rx)?;
        match lease {
            Some(lease) => hold(auditor, lease).await,
            None => std::future::pending().await,
        }
        auditor.set_active(false);
        tracing::warn!("lease lost: standing by");
        let _ = stop_tx.send(true);
        while let Some(r) = active.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "an active task ended with an error");
            }
        }
    }
}

/// Follows the holder's published checkpoints (from the lease and their subject) until
/// the lease is free, then takes it.
async fn stand_by(
    client: &async_nats::Client,
    auditor: &Arc<Auditor>,
    lease: &coord_service::lease::Lease,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let mut published = client
        .subscribe(coord_audit::wire::published_subject(&auditor.office))
        .await?;
    let mut tries = tokio::time::interval(coord_service::lease::TRY_EVERY);
    tries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(msg) = published.next() => {
                if let Ok(note) = std::str::from_utf8(&msg.payload) {
                    auditor.observe(note).await?;
                }
            }
            _ = tries.tick() => match lease.current().await {
                Ok(Some(value)) => {
                    if let Ok(runner::LeaseValue { note: Some(note), .. }) = serde_json::from_slice(&value) {
                        auditor.observe(&note).await?;
                    }
                }
                Ok(None) => match lease.try_acquire(auditor.lease_value()).await {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot take the lease; retrying"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot read the lease; retrying"),
            },
        }
    }
}

/// Renews the lease until it is lost (a renewal refused, none done for the lease's
/// time, or a fenced signature that found it lost).
async fn hold(auditor: &Arc<Auditor>, lease: &coord_service::lease::Lease) {
    let mut renewals = tokio::time::interval(coord_service::lease::RENEW_EVERY);
    renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = auditor.wait_inactive() => return,
            _ = renewals.tick() => match lease.renew(auditor.lease_value()).await {
                Ok(()) => {}
                Err(coord_service::lease::LeaseError::Lost(_)) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the lease");
                    if !lease.held().await {
                        return;
                    }
                }
            },
        }
    }
}

/// What only the active instance runs: queries, witnessing, keeping cosignatures;
/// each ends when `stop` flips to true.
fn start_active(
    config: &Config,
    client: &async_nats::Client,
    auditor: &Arc<Auditor>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinSet<anyhow::Result<()>>> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut keys = vec![auditor.key()];
    if let Some(witnessing) = witnessing(config, client)? {
        keys.extend(witnessing.watched_keys());
        tasks.spawn(witnessing.run(stop.clone()));
    }
    let witnesses = witnesses(config)?;
    if !witnesses.is_empty() {
        tasks.spawn(witness::keep_cosignatures(
            client.clone(),
            auditor.clone(),
            witnesses,
            stop.clone(),
        ));
    }
    let mut stop_queries = stop;
    tasks.spawn(queries::serve(
        client.clone(),
        auditor.clone(),
        keys,
        config.default_office,
        async move {
            let _ = stop_queries.wait_for(|s| *s).await;
        },
    ));
    Ok(tasks)
}
