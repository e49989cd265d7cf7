//! The projector's own metrics (served on `COORD_METRICS_ADDR`; ARCHITECTURE.md,
//! "Metrics"): what this instance applied to its own read models.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

pub struct Metrics {
    pub position: Gauge,
    pub applied: Counter,
    pub dead_lettered: Counter,
    pub batch_seconds: Histogram,
    pub rebuilds: Counter,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        position: Gauge::default(),
        applied: Counter::default(),
        dead_lettered: Counter::default(),
        batch_seconds: coord_service::metrics::latency_histogram(),
        rebuilds: Counter::default(),
    };
    use coord_service::metrics::register;
    register(
        "coord_projector_applied_position",
        "The last log commit this instance applied to its read models",
        m.position.clone(),
    );
    register(
        "coord_projector_events_applied",
        "Events this instance applied to its read models",
        m.applied.clone(),
    );
    register(
        "coord_projector_events_dead_lettered",
        "Events this instance could not apply (recorded as dead letters)",
        m.dead_lettered.clone(),
    );
    register(
        "coord_projector_batch_duration_seconds",
        "Time to apply one batch and its checkpoint in one transaction",
        m.batch_seconds.clone(),
    );
    register(
        "coord_projector_rebuilds",
        "Rebuilds this instance started (its read models dropped and replayed)",
        m.rebuilds.clone(),
    );
    m
});

impl Metrics {
    /// Records one applied batch.
    pub fn batch(&self, started: Instant, applied: u64, dead: u64, position: u64) {
        self.batch_seconds.observe(started.elapsed().as_secs_f64());
        self.applied.inc_by(applied);
        self.dead_lettered.inc_by(dead);
        self.position.set(position as i64);
    }
}
