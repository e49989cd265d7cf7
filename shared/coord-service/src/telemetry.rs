//! Structured logs (tracing-subscriber with an env filter, pretty or JSON) and the
//! process signals that ask for a graceful shutdown.

use tracing_subscriber::EnvFilter;

use crate::LogFormat;

/// Installs the global subscriber. `RUST_LOG` filters (default `info`); logs go to stderr.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
///
/// The handlers are installed when this is called, not when the future is first
/// polled: a signal that arrives while the service is still starting is then a request
/// to stop, never the default "terminate now".
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(interrupt.take()) => tracing::info!("SIGINT received, shutting down"),
            _ = wait(terminate.take()) => tracing::info!("SIGTERM received, shutting down"),
        }
    }
}
