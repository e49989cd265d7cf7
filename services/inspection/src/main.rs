//! Reads configuration, sets up telemetry, runs the service until SIGTERM or SIGINT.

use clap::Parser;

/// mimalloc: each command allocates and frees many small buffers (JSON, NATS
/// messages); glibc's allocator took about a quarter of a command service's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = inspection::Cli::parse();
    coord_service::init_tracing(cli.config.log_format);
    inspection::run(cli.config, coord_service::shutdown_signal()).await
}
