//! Single-active by a lease (issue 18): one key per role in the JetStream key-value
//! bucket `COORD_LEASES`, whose stream keeps each key's last value for [`TTL`]
//! (`max_age`). An instance takes the lease with `create` (refused while the key holds
//! a value), keeps it by rewriting it with `update` at the revision it last wrote
//! (refused as soon as anyone else wrote the key), at least every [`RENEW_EVERY`], and
//! loses it when a renewal is refused or none succeeded for [`TTL`]. A holder that dies
//! stops renewing; the key expires [`TTL`] after its last write and a standby, trying
//! every [`TRY_EVERY`], takes it: a takeover within `TTL + TRY_EVERY` of the holder's
//! last renewal. The NATS admin creates the bucket ([`ensure_bucket`]); a user may
//! only read and write its keys.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use tokio::sync::Mutex;

/// The bucket of every lease.
pub const BUCKET: &str = coord_auth::nats::LEASE_BUCKET;
/// How long a lease outlives its holder's last renewal (the bucket's `max_age`).
pub const TTL: Duration = Duration::from_secs(3);
/// How often a holder renews.
pub const RENEW_EVERY: Duration = Duration::from_millis(1000);
/// How often a standby tries to take the lease.
pub const TRY_EVERY: Duration = Duration::from_millis(500);

/// Creates the lease bucket (or leaves the one there), as the NATS admin.
pub async fn ensure_bucket(client: async_nats::Client, replicas: usize) -> anyhow::Result<()> {
    let js = jetstream::new(client);
    if js.get_key_value(BUCKET).await.is_ok() {
        return Ok(());
    }
    let created = js
        .create_key_value(kv::Config {
            bucket: BUCKET.into(),
            description: "Leases of single-active roles (the auditor): holder and state".into(),
            history: 1,
            max_age: TTL,
            storage: jetstream::stream::StorageType::File,
            max_value_size: 64 * 1024,
            num_replicas: replicas.max(1),
            ..Default::default()
        })
        .await;
    match created {
        Ok(_) => Ok(()),
        // Another admin may have created it in between.
        Err(e) if js.get_key_value(BUCKET).await.is_ok() => {
            tracing::debug!(error = %e, "the lease bucket appeared meanwhile");
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot create the lease bucket {BUCKET}: {e}"
        )),
    }
}

/// Why a lease is not (or no longer) held.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Someone else wrote the key since our last write, or our last write is older
    /// than [`TTL`]: another instance may hold it.
    #[error("the lease {0} is lost")]
    Lost(String),
    #[error("lease store: {0}")]
    Unavailable(String),
}

/// One key of the bucket, as one instance sees it.
pub struct Lease {
    store: kv::Store,
    key: String,
    /// The revision we last wrote and when, while we hold it.
    held: Mutex<Option<(u64, Instant)>>,
}

impl Lease {
    /// Opens lease `key` (e.g. `auditor.province`) in [`BUCKET`].
    pub async fn open(client: async_nats::Client, key: &str) -> anyhow::Result<Self> {
        let store = jetstream::new(client)
            .get_key_value(BUCKET)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "the lease bucket {BUCKET} is missing ({e}): the NATS admin creates it \
                     beside the log (`coordctl deploy streams`, `coordctl up`)"
                )
            })?;
        Ok(Self {
            store,
            key: key.to_owned(),
            held: Mutex::new(None),
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value the holder last wrote, if the lease is held.
    pub async fn current(&self) -> Result<Option<Bytes>, LeaseError> {
        let entry = self
            .store
            .entry(&self.key)
            .await
            .map_err(|e| LeaseError::Unavailable(e.to_string()))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| e.value))
    }

    /// Tries once to take the lease with `value`; whether we hold it now.
    pub async fn try_acquire(&self, value: Bytes) -> Result<bool, LeaseError> {
        let mut held = self.held.lock().await;
        let started = Instant::now();
        match self.store.create(&self.key, value).await {
            Ok(revision) => {
                *held = Some((revision, started));
                Ok(true)
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(LeaseError::Unavailable(e.to_string())),
        }
    }

    /// Renews the lease with `value` (the holder's state, e.g. its latest checkpoint),
    /// only if nobody wrote the key since our last write and that write is younger
    /// than [`TTL`]. On `Lost` we no longer hold it.
    pub async fn renew(&self, value: Bytes) -> Result<(), LeaseError> {
        let mut held = self.held.lock().await;
        let Some((revision, at)) = *held else {
            return Err(LeaseError::Lost(self.key.clone()));
        };
        if at.elapsed() >= TTL {
            *held = None;
            return Err(LeaseError::Lost(self.key.clone()));
        }
        let started = Instant::now();
        match self.store.update(&self.key, value, revision).await {
            Ok(revision) => {
                *held = Some((revision, started));
                Ok(())
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                *held = None;
                Err(LeaseError::Lost(self.key.clone()))
            }
            Err(e) => Err(LeaseError::Unavailable(e.to_string())),
        }
    }

    /// Whether we hold the lease (our last write is younger than [`TTL`]).
    pub async fn held(&self) -> bool {
        self.held
            .lock()
            .await
            .is_some_and(|(_, at)| at.elapsed() < TTL)
    }

    /// Gives the lease up (stops holding it; the key expires on its own).
    pub async fn release(&self) {
        *self.held.lock().await = None;
    }
}
