//! Reads configuration, sets up telemetry, serves HTTP until SIGTERM or SIGINT.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = gateway::Cli::parse();
    coord_service::init_tracing(cli.config.service.log_format);
    gateway::run(cli.config, coord_service::shutdown_signal()).await
}
