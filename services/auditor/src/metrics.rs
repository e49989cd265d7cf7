//! The auditor's own metrics (served on `COORD_METRICS_ADDR`; ARCHITECTURE.md,
//! "Metrics").

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

pub struct Metrics {
    pub active: Gauge,
    pub takeovers: Counter,
    pub leaves: Gauge,
    pub checkpoint_size: Gauge,
    pub signed: Counter,
    pub refused: Counter,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        active: Gauge::default(),
        takeovers: Counter::default(),
        leaves: Gauge::default(),
        checkpoint_size: Gauge::default(),
        signed: Counter::default(),
        refused: Counter::default(),
    };
    use coord_service::metrics::register;
    register(
        "coord_auditor_active",
        "1 while this instance holds the auditor's lease (signs, witnesses, answers), else 0",
        m.active.clone(),
    );
    register(
        "coord_auditor_takeovers",
        "Times this instance took the auditor's lease",
        m.takeovers.clone(),
    );
    register(
        "coord_auditor_leaves",
        "Leaves in this instance's tree (log events applied)",
        m.leaves.clone(),
    );
    register(
        "coord_auditor_checkpoint_size",
        "Tree size of the latest checkpoint published for this log (signed here or observed)",
        m.checkpoint_size.clone(),
    );
    register(
        "coord_auditor_checkpoints_signed",
        "Checkpoints this instance signed and published",
        m.signed.clone(),
    );
    register(
        "coord_auditor_signatures_refused",
        "Checkpoints not signed because this tree does not extend the last published one (any > 0 needs a person)",
        m.refused.clone(),
    );
    m
});
