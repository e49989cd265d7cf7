//! `GET /metrics`: the site's metrics in the OpenMetrics text format (which Prometheus
//! scrapes), made with `prometheus-client`, all measured at the gateway so that the
//! command services and the projector stay as they are:
//!
//! - counted as requests pass: HTTP requests by route template, method and status;
//!   commands by endpoint and outcome, with a latency histogram; event streams opened
//!   and refused;
//! - read at each scrape: which parts are up (as `/readyz` checks them), the log head,
//!   the projector's position, lag (commits and seconds), dead letters, alarms and
//!   rebuild state (its position query), open event streams, each log source's link
//!   (as `/v1/sync` reports it) and this site's witness (as `/v1/audit/witness`).
//!
//! Every metric is documented in ARCHITECTURE.md, "Metrics". No token is needed: the
//! answer holds counts and office names only, no record.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

// The same labels as the command services' own metrics.
pub use coord_service::metrics::{CommandLabels, EndpointLabel};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabel {
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub from: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OfficeLabel {
    pub office: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Command latency buckets: 1 ms to about 16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric of the gateway, registered once.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub commands: Family<CommandLabels, Counter>,
    pub command_seconds: Histograms<EndpointLabel>,
    pub sse_opened: Counter,
    pub sse_refused: Counter,
    sse_open: Gauge,
    up: Family<ComponentLabel, Gauge>,
    log_head: Gauge,
    position: Gauge,
    lag_commits: Gauge,
    lag_seconds: FloatGauge,
    dead_letters: Gauge,
    projector_alarms: Gauge,
    rebuilding: Gauge,
    stalled: Gauge,
    log_damage: Gauge,
    link_up: Family<SourceLabel, Gauge>,
    last_heard: Family<SourceLabel, FloatGauge>,
    source_lag: Family<SourceLabel, Gauge>,
    cosigned_size: Family<OfficeLabel, Gauge>,
    witness_alarms: Gauge,
    max_streams: usize,
}

impl Metrics {
    /// The metrics of a gateway serving at most `max_streams` event streams.
    pub fn new(max_streams: usize) -> Self {
        let mut m = Self {
            registry: Registry::default(),
            http_requests: Family::default(),
            commands: Family::default(),
            command_seconds: Family::new_with_constructor(latency_histogram),
            sse_opened: Counter::default(),
            sse_refused: Counter::default(),
            sse_open: Gauge::default(),
            up: Family::default(),
            log_head: Gauge::default(),
            position: Gauge::default(),
            lag_commits: Gauge::default(),
            lag_seconds: FloatGauge::default(),
            dead_letters: Gauge::default(),
            projector_alarms: Gauge::default(),
            rebuilding: Gauge::default(),
            stalled: Gauge::default(),
            log_damage: Gauge::default(),
            link_up: Family::default(),
            last_heard: Family::default(),
            source_lag: Family::default(),
            cosigned_size: Family::default(),
            witness_alarms: Gauge::default(),
            max_streams,
        };
        m.register();
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "coord_http_requests",
            "HTTP requests answered, by route template, method and status",
            self.http_requests.clone(),
        );
        r.register("coord_commands", "Commands answered, by endpoint (service.endpoint) and outcome (accepted, duplicate, or the error kind)", self.commands.clone());
        r.register(
            "coord_command_duration_seconds",
            "Time to answer a command at the gateway, by endpoint",
            self.command_seconds.clone(),
        );
        r.register(
            "coord_sse_streams_opened",
            "Event streams (/v1/events) opened",
            self.sse_opened.clone(),
        );
        r.register(
            "coord_sse_streams_refused",
            "Event streams refused because as many were open as allowed",
            self.sse_refused.clone(),
        );
        r.register(
            "coord_sse_streams_open",
            "Event streams open now",
            self.sse_open.clone(),
        );
        r.register("coord_component_up", "1 if the part answers as /readyz checks it (nats, inspection, exchange, discipline, log, projector), else 0", self.up.clone());
        r.register(
            "coord_log_head",
            "The log's newest commit position",
            self.log_head.clone(),
        );
        r.register(
            "coord_projector_position",
            "The last log commit applied to the read models",
            self.position.clone(),
        );
        r.register(
            "coord_projector_lag_commits",
            "Log commits not yet applied to the read models",
            self.lag_commits.clone(),
        );
        r.register(
            "coord_projector_lag_seconds",
            "Age of the oldest log commit not yet applied (0 when caught up)",
            self.lag_seconds.clone(),
        );
        r.register(
            "coord_projector_dead_letters",
            "Events the projector could not apply (dead letters)",
            self.dead_letters.clone(),
        );
        r.register(
            "coord_projector_alarms",
            "Log entries not applied because they are not what their subject says",
            self.projector_alarms.clone(),
        );
        r.register(
            "coord_projector_rebuilding",
            "1 while the read models are being rebuilt",
            self.rebuilding.clone(),
        );
        r.register(
            "coord_projector_stalled",
            "1 while the projector reports a fault (storage failed, log replaced, rebuild failed)",
            self.stalled.clone(),
        );
        r.register(
            "coord_projector_log_damage",
            "Events the read models applied that the log no longer holds as they were, not accepted by a rebuild",
            self.log_damage.clone(),
        );
        r.register(
            "coord_sync_link_up",
            "1 if the log heard from this source within 10 s",
            self.link_up.clone(),
        );
        r.register(
            "coord_sync_last_heard_seconds",
            "Seconds since the log last heard from this source",
            self.last_heard.clone(),
        );
        r.register(
            "coord_sync_lag_messages",
            "Messages known to wait at this source (0 while its link is down)",
            self.source_lag.clone(),
        );
        r.register(
            "coord_witness_cosigned_size",
            "Tree size of the last checkpoint this site's witness cosigned, by watched office",
            self.cosigned_size.clone(),
        );
        r.register(
            "coord_witness_alarms",
            "Checkpoints this site's witness refused to cosign",
            self.witness_alarms.clone(),
        );
    }

    /// Records one answered command: `outcome` is `accepted`, `duplicate` or the
    /// error kind.
    pub fn command(&self, endpoint: &str, outcome: &str, started: Instant) {
        let endpoint = endpoint.to_owned();
        self.commands
            .get_or_create(&CommandLabels {
                endpoint: endpoint.clone(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.command_seconds
            .get_or_create(&EndpointLabel { endpoint })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Counts every request by its route template (not its path: ids would make a series
/// per record), method and status.
pub async fn track(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    s.metrics
        .http_requests
        .get_or_create(&HttpLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// Serves the metrics, reading the scrape-time values first.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "every metric, OpenMetrics text (ARCHITECTURE.md, Metrics)",
        content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(s): State<AppState>) -> Response {
    refresh(&s).await;
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &s.metrics.registry).is_err() {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

async fn refresh(s: &AppState) {
    let m = &s.metrics;
    let open = m.max_streams.saturating_sub(s.streams.available_permits());
    m.sse_open.set(i64::try_from(open).unwrap_or(i64::MAX));
    refresh_readiness(s).await;
    refresh_sync(s).await;
    refresh_witness(s).await;
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The parts' state, the log head and the projector's position, as `/readyz` reads them.
async fn refresh_readiness(s: &AppState) {
    let m = &s.metrics;
    let r = crate::ready::check(s).await;
    let components = ["nats", "log", "projector"]
        .into_iter()
        .chain(crate::ready::COMMAND_SERVICES);
    for component in components {
        let down = r.down.iter().any(|d| d.component == component);
        let label = ComponentLabel {
            component: component.to_owned(),
        };
        m.up.get_or_create(&label).set(i64::from(!down));
    }
    let (Some(head), Some(p)) = (r.head, r.projector) else {
        return;
    };
    let lag = head.saturating_sub(p.position);
    m.log_head.set(gauge(head));
    m.position.set(gauge(p.position));
    m.lag_commits.set(gauge(lag));
    m.dead_letters.set(gauge(p.dead_letters));
    m.projector_alarms.set(gauge(p.alarms.len() as u64));
    m.rebuilding.set(i64::from(p.rebuilding));
    m.stalled.set(i64::from(p.fault.is_some()));
    let damaged = p.log_damage.iter().filter(|d| d.accepted_at.is_none());
    m.log_damage.set(gauge(damaged.count() as u64));
    let seconds = match lag {
        0 => 0.0,
        _ => oldest_unapplied_age(s, p.position + 1).await.unwrap_or(0.0),
    };
    m.lag_seconds.set(seconds);
}

/// Seconds since the commit at `position` was recorded (by the office that wrote it).
async fn oldest_unapplied_age(s: &AppState, position: u64) -> Option<f64> {
    let js = async_nats::jetstream::new(s.nats.clone());
    let stream = js.get_stream(&s.log_stream).await.ok()?;
    let message = stream.get_raw_message(position).await.ok()?;
    let events = coord_log::jetstream::decode_commit(&message.payload, position).ok()?;
    let recorded = events.first()?.recorded_at;
    let age = chrono::Utc::now().signed_duration_since(recorded);
    Some(age.num_milliseconds().max(0) as f64 / 1000.0)
}

/// Each log source's link, as `/v1/sync` reports it (none on a single server).
async fn refresh_sync(s: &AppState) {
    let m = &s.metrics;
    let Ok(status) = crate::sync::status(s).await else {
        return;
    };
    for source in status.sources {
        let label = SourceLabel { from: source.from };
        m.link_up
            .get_or_create(&label)
            .set(i64::from(source.link_up));
        let heard = source
            .last_heard_ms
            .map_or(f64::NAN, |ms| ms as f64 / 1000.0);
        m.last_heard.get_or_create(&label).set(heard);
        m.source_lag.get_or_create(&label).set(gauge(source.lag));
    }
}

/// This site's witness: the size it last cosigned per office, and its alarms.
async fn refresh_witness(s: &AppState) {
    let m = &s.metrics;
    let Ok(status) = crate::audit::witness_status(s).await else {
        return;
    };
    for office in status.offices {
        let label = OfficeLabel {
            office: office.office,
        };
        m.cosigned_size
            .get_or_create(&label)
            .set(gauge(office.size.unwrap_or(0)));
    }
    m.witness_alarms.set(gauge(status.alarms.len() as u64));
}
