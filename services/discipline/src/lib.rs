//! The discipline command service: opens discipline cases, records decisions, closures, appeals and their resolution (thi hành kỷ luật Đảng).
//!
//! All of the work is in `coord-service` (load, decide, append, reply) and in
//! `coord-domain` (the rules); this crate names the aggregate and exposes `run` so
//! that tests can start the service in-process as well as as a binary. It serves two:
//! the case (on the province's stream) and its appeal (`appeal`, on the stream of the
//! office of the case's unit).

use std::future::Future;

use coord_domain::appeal::Appeal;
use coord_domain::discipline::DisciplineCase;
pub use coord_service::ServiceConfig as Config;

/// Command-line interface of the binary.
#[derive(Debug, clap::Parser)]
#[command(
    name = "discipline",
    version,
    about = "opens discipline cases, records decisions, closures, appeals and their resolution (thi hành kỷ luật Đảng)."
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
    coord_service::run_pair::<DisciplineCase, Appeal>(config, shutdown).await
}
