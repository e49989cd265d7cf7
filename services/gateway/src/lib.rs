//! The gateway: the system's only HTTP surface (axum, JSON, `/v1`). Commands go to the
//! command services over NATS, queries to the projector over NATS; the event stream is
//! read from the log. Errors are RFC 9457 problem documents.
//!
//! [`build_app`] makes the router so that tests can serve it on port 0; [`run`] is the
//! binary's whole life.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod console;
pub mod events;
pub mod export_table;
pub mod feed;
pub mod limits;
pub mod metrics;
pub mod nats;
pub mod openapi;
pub mod problem;
pub mod queries;
pub mod ready;
pub mod records;
pub mod sync;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use coord_domain::Province;
use coord_log::EventLog;
use coord_service::ServiceConfig;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Gateway settings, on top of the shared service settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    /// Address to listen on.
    #[arg(long, env = "COORD_GATEWAY_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The one deadline of every request, in milliseconds: how long the gateway waits
    /// for a command service, the projector (a `min_position` wait included) or the log.
    #[arg(long, env = "COORD_GATEWAY_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Largest request body accepted, in bytes (more is a 413 problem).
    #[arg(long, env = "COORD_GATEWAY_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Event streams (`/v1/events`) open at once (one more is a 503 problem).
    #[arg(long, env = "COORD_GATEWAY_MAX_STREAMS", default_value_t = 64)]
    pub max_streams: usize,
    /// `/readyz` fails while the projector is more than this many commits behind the log.
    #[arg(long, env = "COORD_GATEWAY_READY_MAX_LAG", default_value_t = 10)]
    pub ready_max_lag: u64,
    /// Public key that bearer tokens must be signed with (`coordctl token public-key` prints it;
    /// `coordctl up` sets it).
    #[arg(long, env = "COORD_TOKEN_PUBLIC_KEY")]
    pub token_public_key: String,
    /// NATS credentials of the `importer` user, the only one besides the command
    /// services that may append to the log. Without them `POST /v1/admin/import`
    /// answers 503 `import_not_enabled`: give them to the gateway for a migration only.
    #[arg(long, env = "COORD_IMPORT_NATS_CREDS")]
    pub import_nats_creds: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Parser)]
#[command(
    name = "gateway",
    version,
    about = "HTTP API of the coordination system"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub nats: async_nats::Client,
    pub log: Arc<dyn EventLog>,
    /// This office's own subjects of the log: what its auditor's tree covers, read by
    /// the audit export.
    pub audit_log: Arc<dyn EventLog>,
    /// The log as the `importer` NATS user, if configured (see [`Config::import_nats_creds`]).
    pub import_log: Option<Arc<dyn EventLog>>,
    pub province: Arc<Province>,
    pub request_timeout: Duration,
    pub ready_max_lag: u64,
    pub max_body_bytes: usize,
    /// One permit per open event stream.
    pub streams: Arc<Semaphore>,
    /// Cancelled when the gateway shuts down: open event streams end.
    pub shutdown: CancellationToken,
    pub tokens: coord_auth::TokenVerifier,
    /// This site and the offices it hosts: tokens of other offices are refused.
    pub hosting: coord_service::acting::Hosting,
    /// The JetStream stream of the log (for `/v1/sync`).
    pub log_stream: String,
    /// What `/metrics` serves.
    pub metrics: Arc<metrics::Metrics>,
    /// The web console's templates and sessions.
    pub console: Arc<console::Console>,
}

/// The router with every route.
pub fn build_app(state: AppState) -> Router {
    let doc = Arc::new(openapi::document());
    let max_body = state.max_body_bytes;
    let open = Router::new()
        .route("/healthz", get(queries::healthz))
        .route("/readyz", get(ready::readyz))
        .route("/metrics", get(metrics::metrics));
    Router::new()
        .merge(commands::router())
        .merge(audit::router())
        .merge(records::router())
        .route("/v1/status/province", get(queries::province))
        .route("/v1/status/districts", get(queries::districts))
        .route("/v1/status/districts/{unit}", get(queries::district))
        .route("/v1/districts/{unit}/timeline", get(queries::timeline))
        .route("/v1/units", get(queries::units))
        .route("/v1/dead-letters", get(queries::dead_letters))
        .route(
            "/v1/dead-letters/{position}/redrive",
            post(queries::redrive),
        )
        .route("/v1/projector", get(queries::projector))
        .route("/v1/admin/rebuild", post(queries::rebuild))
        .route("/v1/events", get(events::events))
        .route("/v1/export/events", get(feed::export_events))
        .route("/v1/export/{model}", get(feed::export_read_model))
        .route("/v1/schemas", get(feed::schemas))
        .route("/v1/schemas/{name}/{version}", get(feed::schema))
        .route("/v1/admin/import", post(feed::import))
        .route("/v1/analytics/monthly", get(analytics::monthly))
        .route("/v1/analytics/period", get(analytics::period))
        .route("/v1/analytics/province", get(analytics::province_as_of))
        .route("/v1/sync", get(sync::sync))
        .route("/v1/needs", get(console::needs::needs))
        .route(
            "/v1/openapi.json",
            get(move || async move { axum::Json(doc.as_ref().clone()) }),
        )
        .fallback(|| async {
            problem::Problem::new(
                coord_proto::ErrorKind::NotFound,
                "no_such_route",
                "no such route",
            )
        })
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .merge(open)
        .merge(console::router())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Connects to NATS and the log, and builds the state.
pub async fn connect(config: &Config) -> anyhow::Result<AppState> {
    let province = Arc::new(config.service.province()?);
    let tokens = coord_auth::TokenVerifier::from_public_key(&config.token_public_key)
        .map_err(|e| anyhow::anyhow!("--token-public-key: {e}"))?;
    let nats = config.service.connect("coord-gateway").await?;
    let log = config.service.open_log(nats.clone()).await?;
    let audit_log = config.service.open_own_log(nats.clone()).await?;
    let import_log = match &config.import_nats_creds {
        Some(creds) => {
            let client = coord_service::server::connect(
                &config.service.nats_url,
                Some(creds),
                "coord-gateway-import",
            )
            .await?;
            Some(config.service.open_log(client).await?)
        }
        None => None,
    };
    Ok(AppState {
        nats,
        log,
        audit_log,
        import_log,
        province,
        request_timeout: Duration::from_millis(config.request_timeout_ms),
        ready_max_lag: config.ready_max_lag,
        max_body_bytes: config.max_body_bytes,
        streams: Arc::new(Semaphore::new(config.max_streams)),
        shutdown: CancellationToken::new(),
        tokens,
        hosting: config.service.hosting()?,
        log_stream: config.service.log_stream.clone(),
        metrics: Arc::new(metrics::Metrics::new(config.max_streams)),
        console: Arc::new(console::Console::new()),
    })
}

/// Serves the API on `config.listen` until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = connect(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, "gateway listening");
    let nats = state.nats.clone();
    let streams_end = state.shutdown.clone();
    axum::serve(listener, build_app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Open event streams never end by themselves: end them, or they would
            // hold the graceful shutdown back forever.
            streams_end.cancel();
        })
        .await?;
    nats.flush().await.ok();
    tracing::info!("gateway stopped");
    Ok(())
}
