//! The runtime every command service shares: configuration, telemetry, the command
//! handler (load → decide → append) and the NATS service loop around it.
//!
//! A command service is this crate instantiated for one aggregate:
//! `coord_service::run::<Inspection>(config, shutdown)`. The handler is generic over
//! the [`EventLog`](coord_log::EventLog), so its rules are tested against the in-memory
//! log and the services run on JetStream.

pub mod acting;
pub mod bounded;
pub mod cache;
pub mod config;
pub mod handler;
pub mod idempotency;
pub mod import;
pub mod lease;
pub mod metrics;
pub mod references;
pub mod server;
pub mod telemetry;

pub use bounded::{Bounded, Limits};
pub use config::{LogBackend, LogFormat, ServiceConfig};
pub use handler::CommandHandler;
pub use idempotency::{InMemoryKeys, JetStreamKeys, KeyStore};
pub use server::{run, run_pair};
pub use telemetry::{init_tracing, shutdown_signal};
