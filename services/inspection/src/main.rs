//! Reads configuration, sets up telemetry, runs the service until SIGTERM or SIGINT.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = inspection::Cli::parse();
    coord_service::init_tracing(cli.config.log_format);
    inspection::run(cli.config, coord_service::shutdown_signal()).await
}
