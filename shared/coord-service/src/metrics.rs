//! A process's own metrics (issue 18): one `prometheus-client` registry per process,
//! served as OpenMetrics text on `GET /metrics` at `COORD_METRICS_ADDR` when it is set
//! (port 0: the system picks one; the process logs the address it bound). The command
//! services register [`CommandMetrics`]; the projector and the auditor register theirs
//! with [`register`]. Every metric is documented in ARCHITECTURE.md, "Metrics".

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

/// Registers `metric` under `name` in this process's registry (once per name).
pub fn register(name: &str, help: &str, metric: impl Metric) {
    REGISTRY
        .lock()
        .expect("metrics registry lock")
        .register(name, help, metric);
}

/// The registry as OpenMetrics text.
pub fn encode() -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(
        &mut text,
        &REGISTRY.lock().expect("metrics registry lock"),
    )
    .expect("writing to a String does not fail");
    text
}

/// Latency buckets: 1 ms to about 16 s, doubling (as the gateway's).
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub endpoint: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
}

/// A command service's metrics, measured in the service (the gateway counts the same
/// commands as it forwards them; these count what this instance handled).
pub struct CommandMetrics {
    commands: Family<CommandLabels, Counter>,
    command_seconds: Histograms<EndpointLabel>,
    append_seconds: Histogram,
}

/// The command metrics of this process, registered on first use.
pub static COMMANDS: LazyLock<CommandMetrics> = LazyLock::new(|| {
    let m = CommandMetrics {
        commands: Family::default(),
        command_seconds: Family::new_with_constructor(latency_histogram),
        append_seconds: latency_histogram(),
    };
    register(
        "coord_service_commands",
        "Commands this instance answered, by endpoint (service.endpoint) and outcome (accepted, duplicate, or the error kind)",
        m.commands.clone(),
    );
    register(
        "coord_service_command_duration_seconds",
        "Time this instance took to answer a command (load, decide, claim, append), by endpoint",
        m.command_seconds.clone(),
    );
    register(
        "coord_service_append_duration_seconds",
        "Time of one append to the log (the publish and its acknowledgement), whatever its result",
        m.append_seconds.clone(),
    );
    m
});

impl CommandMetrics {
    /// Records one answered command.
    pub fn command(&self, endpoint: &str, reply: &coord_proto::CommandReply, started: Instant) {
        let outcome = match reply {
            coord_proto::CommandReply::Accepted(a) if a.duplicate => "duplicate".to_owned(),
            coord_proto::CommandReply::Accepted(_) => "accepted".to_owned(),
            coord_proto::CommandReply::Error(e) => e.kind.as_str().to_owned(),
        };
        self.commands
            .get_or_create(&CommandLabels {
                endpoint: endpoint.to_owned(),
                outcome,
            })
            .inc();
        self.command_seconds
            .get_or_create(&EndpointLabel {
                endpoint: endpoint.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Records one append's duration.
    pub fn append(&self, started: Instant) {
        self.append_seconds.observe(started.elapsed().as_secs_f64());
    }
}

/// Binds `addr` and serves `GET /metrics` until `shutdown` resolves; returns the bound
/// address (the port the system chose for port 0) once listening.
pub async fn serve(
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<SocketAddr> {
    use axum::http::header;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                encode(),
            )
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "metrics server ended");
        }
    });
    tracing::info!(%bound, "metrics served on /metrics");
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_registry_is_served_as_openmetrics_text_and_counts_move() {
        let reply = coord_proto::CommandReply::Error(coord_proto::ErrorReply::new(
            coord_proto::ErrorKind::RuleViolation,
            "x",
            "y",
        ));
        COMMANDS.command("inspection.schedule", &reply, Instant::now());
        let text = encode();
        assert!(
            text.contains(r#"coord_service_commands_total{endpoint="inspection.schedule",outcome="rule_violation"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
