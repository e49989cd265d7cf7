//! The gateway: the system's only HTTP surface (axum, JSON, `/v1`). Commands go to the
//! command services over NATS, queries to the projector over NATS; the event stream is
//! read from the log. Errors are RFC 9457 problem documents.
//!
//! [`build_app`] makes the router so that tests can serve it on port 0; [`run`] is the
//! binary's whole life.

pub mod audit;
pub mod commands;
pub mod events;
pub mod nats;
pub mod openapi;
pub mod problem;
pub mod queries;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use coord_domain::Province;
use coord_log::EventLog;
use coord_service::ServiceConfig;

/// Gateway settings, on top of the shared service settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    /// Address to listen on.
    #[arg(long, env = "COORD_GATEWAY_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// How long to wait for a command service or the projector, in milliseconds.
    #[arg(long, env = "COORD_GATEWAY_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// `/readyz` fails while the projector is more than this many commits behind the log.
    #[arg(long, env = "COORD_GATEWAY_READY_MAX_LAG", default_value_t = 10)]
    pub ready_max_lag: u64,
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
    pub province: Arc<Province>,
    pub request_timeout: Duration,
    pub ready_max_lag: u64,
}

/// The router with every route.
pub fn build_app(state: AppState) -> Router {
    let doc = Arc::new(openapi::document());
    Router::new()
        .merge(commands::router())
        .merge(audit::router())
        .route("/v1/status/province", get(queries::province))
        .route("/v1/status/districts", get(queries::districts))
        .route("/v1/status/districts/{unit}", get(queries::district))
        .route("/v1/districts/{unit}/timeline", get(queries::timeline))
        .route("/v1/units", get(queries::units))
        .route("/v1/dead-letters", get(queries::dead_letters))
        .route("/v1/projector", get(queries::projector))
        .route("/v1/admin/rebuild", post(queries::rebuild))
        .route("/v1/events", get(events::events))
        .route(
            "/v1/openapi.json",
            get(move || async move { axum::Json(doc.as_ref().clone()) }),
        )
        .route("/healthz", get(queries::healthz))
        .route("/readyz", get(queries::readyz))
        .fallback(|| async {
            problem::Problem::new(
                coord_proto::ErrorKind::NotFound,
                "no_such_route",
                "no such route",
            )
        })
        .with_state(state)
}

/// Connects to NATS and the log, and builds the state.
pub async fn connect(config: &Config) -> anyhow::Result<AppState> {
    let province = Arc::new(config.service.province()?);
    let nats = coord_service::server::connect(&config.service.nats_url, "coord-gateway").await?;
    let log = config.service.open_log(nats.clone()).await?;
    Ok(AppState {
        nats,
        log,
        province,
        request_timeout: Duration::from_millis(config.request_timeout_ms),
        ready_max_lag: config.ready_max_lag,
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
    axum::serve(listener, build_app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    nats.flush().await.ok();
    tracing::info!("gateway stopped");
    Ok(())
}
