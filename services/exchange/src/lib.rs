//! The exchange command service: records information exchanged between the provincial and district committees, and its acknowledgement (trao đổi thông tin).
//!
//! All of the work is in `coord-service` (load, decide, append, reply) and in
//! `coord-domain` (the rules); this crate names the aggregates and exposes `run` so
//! that tests can start the service in-process as well as as a binary. It serves two:
//! the exchange (`send`, on the sender's stream) and its receipt (`acknowledge`, on
//! the receiving office's own stream).

use std::future::Future;

use coord_domain::exchange::InformationExchange;
use coord_domain::receipt::Receipt;
pub use coord_service::ServiceConfig as Config;

/// Command-line interface of the binary.
#[derive(Debug, clap::Parser)]
#[command(
    name = "exchange",
    version,
    about = "records information exchanged between the provincial and district committees, and its acknowledgement (trao đổi thông tin)."
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
}

/// Runs the service until `shutdown` resolves, then finishes in-flight commands.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    coord_service::run_pair::<InformationExchange, Receipt>(config, shutdown).await
}
