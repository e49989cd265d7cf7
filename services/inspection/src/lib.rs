//! The inspection command service: schedules, starts, concludes and cancels inspections and supervisions (kiểm tra, giám sát).
//!
//! All of the work is in `coord-service` (load, decide, append, reply) and in
//! `coord-domain` (the rules); this crate names the aggregate and exposes `run` so
//! that tests can start the service in-process as well as as a binary.

use std::future::Future;

use coord_domain::inspection::Inspection;
pub use coord_service::ServiceConfig as Config;

/// Command-line interface of the binary.
#[derive(Debug, clap::Parser)]
#[command(
    name = "inspection",
    version,
    about = "schedules, starts, concludes and cancels inspections and supervisions (kiểm tra, giám sát)."
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
    coord_service::run::<Inspection>(config, shutdown).await
}
