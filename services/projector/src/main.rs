//! Reads configuration, sets up telemetry, runs the projector (or an offline rebuild).

use clap::Parser;
use projector::{Cli, Command};

/// mimalloc: the projection allocates and frees many small strings and JSON values
/// per event; glibc's allocator took about a seventh of the replay's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    coord_service::init_tracing(cli.config.service.log_format);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => projector::run(cli.config, coord_service::shutdown_signal()).await,
        Command::Rebuild { accept_loss } => {
            let position = projector::rebuild_offline(cli.config, accept_loss).await?;
            tracing::info!(position, "rebuild complete");
            Ok(())
        }
    }
}
