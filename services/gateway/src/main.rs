//! Reads configuration, sets up telemetry, serves HTTP until SIGTERM or SIGINT.

use clap::Parser;

/// mimalloc: each command allocates and frees many small buffers (JSON, NATS
/// messages); glibc's allocator took about a quarter of a command service's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = gateway::Cli::parse();
    coord_service::init_tracing(cli.config.service.log_format);
    gateway::run(cli.config, coord_service::shutdown_signal()).await
}
