//! Idempotency keys: one command id names one request, whatever the aggregate.
//!
//! The IETF Idempotency-Key draft asks a server to refuse a key reused with a different
//! request (422). The log alone cannot tell: it knows which events a command id caused
//! on one stream, not what was asked, and nothing at all about other streams. So each
//! command id is bound to a [`Fingerprint`] of its request (office, route, aggregate
//! stream, RFC 8785 canonical body hash) in a [`KeyStore`]: the production store is a
//! JetStream key-value bucket whose `create` claims a key only if it is absent, on a
//! write-once stream ([`bucket_stream`]) so that no claim can be deleted or purged; the
//! in-memory one is for domain tests.
//!
//! The command handler claims the key after the domain has decided and before the
//! append (bound to a different request → `idempotency_key_reused`; a replay of an
//! applied command is compared with the key's binding first): a request the domain
//! refuses binds nothing, so a corrected request may use the key (unless it was refused
//! only on a fresh read after its append lost a race: its refusal then says the key
//! stays bound); a request that won the claim but failed to append (log down) can be retried
//! with the same body. Keys are never released: the log keeps the events they caused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What a request asked, reduced to what must be equal for a retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The issuing office.
    pub office: String,
    /// `service.endpoint`, e.g. `inspection.start`.
    pub command: String,
    /// The aggregate's stream, e.g. `inspection-0190…`.
    pub stream: String,
    /// SHA-256 (hex) of the payload in RFC 8785 canonical form, so that key order and
    /// white space do not make two equal bodies differ.
    pub body_sha256: String,
}

impl Fingerprint {
    pub fn of(office: &str, command: &str, stream: &str, payload: &Value) -> Self {
        let canonical = serde_json_canonicalizer::to_vec(payload)
            .expect("a JSON value always has a canonical form");
        let digest = Sha256::digest(&canonical);
        Self {
            office: office.to_owned(),
            command: command.to_owned(),
            stream: stream.to_owned(),
            body_sha256: format!("{digest:x}"),
        }
    }

    /// How a key store keeps it.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("fingerprints serialize")
    }

    /// What [`Fingerprint::to_bytes`] stored for `command_id`.
    pub fn from_bytes(command_id: Uuid, bytes: &[u8]) -> Result<Self, KeyStoreError> {
        serde_json::from_slice(bytes).map_err(|e| KeyStoreError::Corrupt {
            command_id,
            reason: e.to_string(),
        })
    }

    /// What differs from `other`, for the error message: e.g. `["route", "body"]`.
    pub fn differences(&self, other: &Fingerprint) -> Vec<&'static str> {
        [
            (self.office != other.office, "office"),
            (self.command != other.command, "route"),
            (self.stream != other.stream, "aggregate"),
            (self.body_sha256 != other.body_sha256, "body"),
        ]
        .into_iter()
        .filter_map(|(differs, what)| differs.then_some(what))
        .collect()
    }
}

/// Why the key store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("idempotency key store unavailable: {0}")]
    Unavailable(String),
    #[error("idempotency record of command {command_id} is unreadable: {reason}")]
    Corrupt { command_id: Uuid, reason: String },
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free and is now bound to the fingerprint.
    New,
    /// The key was already bound, to this fingerprint.
    Existing(Fingerprint),
}

/// Binds command ids to the request they first named.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The fingerprint bound to `command_id`, if any.
    async fn lookup(&self, command_id: Uuid) -> Result<Option<Fingerprint>, KeyStoreError>;
    /// Binds `command_id` to `fingerprint` if it is free (atomically: of two concurrent
    /// claims exactly one gets [`Claim::New`]), else says what it is bound to.
    async fn claim(
        &self,
        command_id: Uuid,
        fingerprint: &Fingerprint,
    ) -> Result<Claim, KeyStoreError>;
}

/// An in-memory key store, for domain tests.
#[derive(Debug, Clone, Default)]
pub struct InMemoryKeys {
    keys: Arc<Mutex<HashMap<Uuid, Fingerprint>>>,
}

impl InMemoryKeys {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl KeyStore for InMemoryKeys {
    async fn lookup(&self, command_id: Uuid) -> Result<Option<Fingerprint>, KeyStoreError> {
        Ok(self
            .keys
            .lock()
            .expect("keys lock")
            .get(&command_id)
            .cloned())
    }

    async fn claim(
        &self,
        command_id: Uuid,
        fingerprint: &Fingerprint,
    ) -> Result<Claim, KeyStoreError> {
        let mut keys = self.keys.lock().expect("keys lock");
        Ok(match keys.get(&command_id) {
            Some(existing) => Claim::Existing(existing.clone()),
            None => {
                keys.insert(command_id, fingerprint.clone());
                Claim::New
            }
        })
    }
}

/// The key store on a JetStream key-value bucket (one key per command id).
#[derive(Clone)]
pub struct JetStreamKeys {
    store: kv::Store,
}

impl JetStreamKeys {
    /// Opens the bucket, creating it (write-once, [`bucket_stream`]) if it does not exist.
    pub async fn open(client: async_nats::Client, bucket: &str) -> Result<Self, KeyStoreError> {
        let js = jetstream::new(client);
        if let Ok(store) = js.get_key_value(bucket).await {
            return Ok(Self { store });
        }
        Self::ensure_on(&js, bucket).await
    }

    /// As the admin: creates the bucket, or brings an existing one (made by an older
    /// version as a plain key-value bucket) to the write-once settings.
    pub async fn ensure(client: async_nats::Client, bucket: &str) -> Result<Self, KeyStoreError> {
        Self::ensure_on(&jetstream::new(client), bucket).await
    }

    async fn ensure_on(js: &jetstream::Context, bucket: &str) -> Result<Self, KeyStoreError> {
        let unavailable =
            |e: &dyn std::fmt::Display| KeyStoreError::Unavailable(format!("bucket {bucket}: {e}"));
        let mut config = bucket_stream(bucket);
        if let Ok(existing) = js.get_stream(&config.name).await {
            // Its replicas stay as the admin made them (a cluster's are several).
            config.num_replicas = existing.cached_info().config.num_replicas;
            js.update_stream(config)
                .await
                .map_err(|e| unavailable(&e))?;
        } else if let Err(e) = js.create_stream(config.clone()).await {
            // Another instance may have created it in between.
            js.update_stream(config)
                .await
                .map_err(|_| unavailable(&e))?;
        }
        let store = js
            .get_key_value(bucket)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(Self { store })
    }

    fn decode(command_id: Uuid, bytes: &[u8]) -> Result<Fingerprint, KeyStoreError> {
        Fingerprint::from_bytes(command_id, bytes)
    }
}

/// The stream of idempotency bucket `bucket`: what `async_nats` reads as a key-value
/// bucket of one value per key, made write-once. A claim is the first message on its
/// key's subject (`$KV.<bucket>.<key>`, published expecting no previous one); with
/// `discard_new_per_subject` the server refuses every later message on that subject,
/// whatever its headers, so neither an overwrite nor a delete (`KV-Operation: DEL`) or
/// purge (`KV-Operation: PURGE`) marker can ever replace a claim. Roll-up headers are
/// refused, and the delete and purge API too.
pub fn bucket_stream(bucket: &str) -> jetstream::stream::Config {
    use jetstream::stream::{Config, DiscardPolicy, StorageType};
    Config {
        name: format!("KV_{bucket}"),
        description: Some("Idempotency keys: command id → request fingerprint, write-once".into()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        discard: DiscardPolicy::New,
        discard_new_per_subject: true,
        allow_rollup: false,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        storage: StorageType::File,
        max_message_size: 4096,
        duplicate_window: std::time::Duration::from_secs(120),
        ..Default::default()
    }
}

#[async_trait]
impl KeyStore for JetStreamKeys {
    async fn lookup(&self, command_id: Uuid) -> Result<Option<Fingerprint>, KeyStoreError> {
        self.store
            .get(command_id.to_string())
            .await
            .map_err(|e| KeyStoreError::Unavailable(format!("cannot read a key: {e}")))?
            .map(|bytes| Self::decode(command_id, &bytes))
            .transpose()
    }

    async fn claim(
        &self,
        command_id: Uuid,
        fingerprint: &Fingerprint,
    ) -> Result<Claim, KeyStoreError> {
        let value = fingerprint.to_bytes();
        match self
            .store
            .create(command_id.to_string(), value.into())
            .await
        {
            Ok(_) => Ok(Claim::New),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                // The bucket's reads are direct gets, which a replica behind the leader
                // may answer: the key the leader just refused may not be there yet.
                // Read again for a moment, then say so (retryable), never "corrupt".
                for wait_ms in [0, 10, 40, 160] {
                    tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
                    if let Some(bound) = self.lookup(command_id).await? {
                        return Ok(Claim::Existing(bound));
                    }
                }
                Err(KeyStoreError::Unavailable(format!(
                    "key {command_id} is claimed but its binding could not be read yet"
                )))
            }
            Err(e) => Err(KeyStoreError::Unavailable(format!(
                "cannot claim a key: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_bodies_in_another_key_order_have_one_fingerprint() {
        let a = Fingerprint::of(
            "province",
            "exchange.send",
            "exchange-1",
            &json!({"a": 1, "b": [1, {"x": "y", "c": 2}]}),
        );
        let b = Fingerprint::of(
            "province",
            "exchange.send",
            "exchange-1",
            &json!({"b": [1, {"c": 2, "x": "y"}], "a": 1}),
        );
        assert_eq!(a, b);
        assert!(a.differences(&b).is_empty());
        // The body's hash is the SHA-256 of its RFC 8785 form, in lower-case hex (as
        // keys bound before were stored).
        let canonical = r#"{"a":1,"b":[1,{"c":2,"x":"y"}]}"#;
        let expected: String = Sha256::digest(canonical)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(a.body_sha256, expected);
        assert_eq!(
            Fingerprint::of("province", "exchange.send", "exchange-1", &json!({})).body_sha256,
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let c = Fingerprint::of(
            "province",
            "exchange.send",
            "exchange-1",
            &json!({"a": 2, "b": [1, {"x": "y", "c": 2}]}),
        );
        assert_eq!(a.differences(&c), ["body"]);
        let d = Fingerprint::of(
            "district:an-phu",
            "inspection.start",
            "inspection-1",
            &json!({"a": 1, "b": [1, {"x": "y", "c": 2}]}),
        );
        assert_eq!(a.differences(&d), ["office", "route", "aggregate"]);
    }

    #[tokio::test]
    async fn a_key_is_claimed_once() {
        let keys = InMemoryKeys::new();
        let id = Uuid::now_v7();
        let f = Fingerprint::of("province", "exchange.send", "exchange-1", &json!({}));
        assert_eq!(keys.lookup(id).await.unwrap(), None);
        assert_eq!(keys.claim(id, &f).await.unwrap(), Claim::New);
        let g = Fingerprint::of("province", "exchange.send", "exchange-2", &json!({}));
        assert_eq!(
            keys.claim(id, &g).await.unwrap(),
            Claim::Existing(f.clone())
        );
        assert_eq!(keys.lookup(id).await.unwrap(), Some(f));
    }
}
