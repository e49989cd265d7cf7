//! Reads configuration, sets up telemetry, runs the auditor.

use auditor::Cli;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    coord_service::init_tracing(cli.config.service.log_format);
    auditor::run(cli.config, coord_service::shutdown_signal()).await
}
