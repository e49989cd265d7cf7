//! Configuration of a command service: defaults, overridden by environment variables
//! (`COORD_*`), overridden by command-line flags.

use std::path::PathBuf;

use coord_domain::province::AN_GIANG_TOML;
use coord_domain::{Office, Province, Sites};
use std::sync::Arc;

use coord_log::EventLog;
use coord_log::jetstream::{JetStreamConfig, JetStreamLog};

/// Where the event log lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogBackend {
    /// NATS JetStream (the default; the same NATS that carries requests).
    Jetstream,
    /// EventStoreDB / KurrentDB at `--eventstore-url`.
    Eventstore,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServiceConfig {
    /// NATS server URL; the servers of a cluster separated by commas.
    #[arg(long, env = "COORD_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// This process's NATS credentials: a file holding its nkey seed (`SU…`, as
    /// `coordctl up` generates them) or a NATS `.creds` file. Without it, the URL's
    /// `user:password@` (if any) is used; NATS refuses anonymous clients.
    #[arg(long, env = "COORD_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// Province reference data (TOML). Defaults to the embedded An Giang file.
    #[arg(long, env = "COORD_PROVINCE_FILE")]
    pub province_file: Option<PathBuf>,
    /// Name of the JetStream stream that holds the log.
    #[arg(long, env = "COORD_LOG_STREAM", default_value = "COORD_LOG")]
    pub log_stream: String,
    /// Subject prefix of the log: each office's streams are under
    /// `{prefix}.{office slug}.{category}.{id}`.
    #[arg(long, env = "COORD_LOG_SUBJECT_PREFIX", default_value = "coord.log")]
    pub log_subject_prefix: String,
    /// JetStream key-value bucket that binds idempotency keys (command ids) to requests.
    #[arg(
        long,
        env = "COORD_IDEMPOTENCY_BUCKET",
        default_value = "COORD_IDEMPOTENCY"
    )]
    pub idempotency_bucket: String,
    /// Which event-log backend to use.
    #[arg(
        long,
        env = "COORD_LOG_BACKEND",
        value_enum,
        default_value = "jetstream"
    )]
    pub log_backend: LogBackend,
    /// EventStoreDB / KurrentDB connection string, for `--log-backend eventstore`.
    #[arg(
        long,
        env = "COORD_EVENTSTORE_URL",
        default_value = "esdb://127.0.0.1:2113?tls=false"
    )]
    pub eventstore_url: String,
    /// Log format.
    #[arg(long, env = "COORD_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    /// The site this process belongs to, named by the office that runs it: `province`
    /// for the hub (and the single server), `district:<unit>` for a district office's
    /// own server.
    #[arg(long, env = "COORD_SITE", default_value = "province")]
    pub site: Office,
    /// The units with a site of their own, comma-separated (`coordctl offices init`
    /// writes it); empty: this one site hosts every office (single-server mode).
    #[arg(long, env = "COORD_DISTRICT_SITES", default_value = "")]
    pub district_sites: String,
    /// Commands handled at once by this instance.
    #[arg(long, env = "COORD_MAX_IN_FLIGHT", default_value_t = 64)]
    pub max_in_flight: usize,
    /// Longest a command (or a query, in the projector) may run before it is answered
    /// with a timeout error, in milliseconds.
    #[arg(long, env = "COORD_REQUEST_DEADLINE_MS", default_value_t = 15_000)]
    pub request_deadline_ms: u64,
    /// Serve this process's own metrics (`GET /metrics`, OpenMetrics text) on this
    /// address, e.g. `127.0.0.1:9101` (port 0: any free port, logged); unset: none.
    #[arg(long, env = "COORD_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl ServiceConfig {
    /// How many requests this process handles at once, and for how long each.
    pub fn limits(&self) -> crate::Limits {
        crate::Limits {
            max_in_flight: self.max_in_flight,
            deadline: std::time::Duration::from_millis(self.request_deadline_ms),
        }
    }

    /// Serves this process's metrics on [`ServiceConfig::metrics_addr`], if set, until
    /// `stop` is cancelled; the address bound.
    pub async fn serve_metrics(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Option<std::net::SocketAddr>> {
        match self.metrics_addr {
            Some(addr) => Ok(Some(
                crate::metrics::serve(addr, stop.cancelled_owned()).await?,
            )),
            None => Ok(None),
        }
    }

    /// Which site hosts which office ([`Sites`]).
    pub fn sites(&self) -> anyhow::Result<Sites> {
        Sites::parse(&self.district_sites).map_err(|e| anyhow::anyhow!("COORD_DISTRICT_SITES: {e}"))
    }

    /// Does this site host `office`?
    pub fn hosts(&self, office: &Office) -> anyhow::Result<bool> {
        Ok(self.sites()?.hosts(&self.site, office))
    }

    /// This site and whom it hosts, as the checks take it ([`crate::acting::Hosting`]).
    pub fn hosting(&self) -> anyhow::Result<crate::acting::Hosting> {
        Ok(crate::acting::Hosting {
            site: self.site.clone(),
            sites: self.sites()?,
        })
    }

    /// Loads the province reference data.
    pub fn province(&self) -> anyhow::Result<Province> {
        let text = match &self.province_file {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read province file {}: {e}", path.display())
            })?,
            None => AN_GIANG_TOML.to_owned(),
        };
        Ok(Province::from_toml_str(&text)?)
    }

    /// Opens the idempotency key store (on NATS, whatever the log backend).
    pub async fn open_keys(
        &self,
        client: async_nats::Client,
    ) -> Result<Arc<dyn crate::KeyStore>, crate::idempotency::KeyStoreError> {
        Ok(Arc::new(
            crate::JetStreamKeys::open(client, &self.idempotency_bucket).await?,
        ))
    }

    /// Connects to NATS as this process's user, retrying for a while so that services
    /// can start before the server.
    pub async fn connect(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        crate::server::connect(&self.nats_url, self.nats_creds.as_deref(), name).await
    }

    /// Opens the event log on the configured backend.
    pub async fn open_log(
        &self,
        client: async_nats::Client,
    ) -> Result<Arc<dyn EventLog>, coord_log::LogError> {
        self.open_log_view(client, false).await
    }

    /// The offices this site hosts, among the province's units (the province first).
    pub fn hosted_offices(&self) -> anyhow::Result<Vec<Office>> {
        let province = self.province()?;
        let units: Vec<_> = province.units.iter().map(|u| u.id.clone()).collect();
        Ok(self.sites()?.hosted(&self.site, &units).collect())
    }

    /// Opens the log of this site's own offices' subjects only (on JetStream; another
    /// backend holds one site's log anyway): what its transparency log covers, not
    /// what other sites' logs sourced into its stream. A single site's is the whole
    /// log (older subjects without an office token included).
    pub async fn open_own_log(
        &self,
        client: async_nats::Client,
    ) -> Result<Arc<dyn EventLog>, coord_log::LogError> {
        self.open_log_view(client, true).await
    }

    async fn open_log_view(
        &self,
        client: async_nats::Client,
        own_subjects_only: bool,
    ) -> Result<Arc<dyn EventLog>, coord_log::LogError> {
        let own_offices = if own_subjects_only && !self.district_sites.trim().is_empty() {
            self.hosted_offices()
                .map_err(|e| coord_log::LogError::InvalidInput(e.to_string()))?
        } else {
            Vec::new()
        };
        Ok(match self.log_backend {
            LogBackend::Jetstream => Arc::new(
                JetStreamLog::open(
                    client,
                    JetStreamConfig {
                        stream_name: self.log_stream.clone(),
                        subject_prefix: self.log_subject_prefix.clone(),
                        own_offices,
                        ..JetStreamConfig::default()
                    },
                )
                .await?,
            ),
            LogBackend::Eventstore => Arc::new(coord_log_eventstore::EventStoreLog::connect(
                &self.eventstore_url,
            )?),
        })
    }
}
