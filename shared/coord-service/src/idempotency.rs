//! Idempotency keys: one command id names one request, whatever the aggregate.
//!
//! The IETF Idempotency-Key draft asks a server to refuse a key reused with a different
//! request (422). The log alone cannot tell: it knows which events a command id caused
//! on one stream, not what was asked, and nothing at all about other streams. So each
//! command id is bound to a [`Fingerprint`] of its request (office, route, aggregate
//! stream, RFC 8785 canonical body hash) in a [`KeyStore`]: the production store is a
//! JetStream key-value bucket whose `create` claims a key only if it is absent; the
//! in-memory one is for domain tests.
//!
//! The command handler looks the key up before anything else (a different request →
//! `idempotency_key_reused`), and claims it after the domain has decided and before the
//! append: a request the domain refuses binds nothing, so a corrected request may use
//! the key; a request that won the claim but failed to append (log down) can be retried
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
            body_sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
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
    /// Opens the bucket, creating it if it does not exist (file storage, one revision
    /// per key, no expiry).
    pub async fn open(client: async_nats::Client, bucket: &str) -> Result<Self, KeyStoreError> {
        let js = jetstream::new(client);
        if let Ok(store) = js.get_key_value(bucket).await {
            return Ok(Self { store });
        }
        let created = js
            .create_key_value(kv::Config {
                bucket: bucket.to_owned(),
                description: "Idempotency keys: command id → request fingerprint".into(),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                max_value_size: 4096,
                ..Default::default()
            })
            .await;
        let store = match created {
            Ok(store) => store,
            // Another service instance created it in between.
            Err(_) => js.get_key_value(bucket).await.map_err(|e| {
                KeyStoreError::Unavailable(format!("cannot open bucket {bucket}: {e}"))
            })?,
        };
        Ok(Self { store })
    }

    fn decode(command_id: Uuid, bytes: &[u8]) -> Result<Fingerprint, KeyStoreError> {
        serde_json::from_slice(bytes).map_err(|e| KeyStoreError::Corrupt {
            command_id,
            reason: e.to_string(),
        })
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
        let value = serde_json::to_vec(fingerprint).expect("fingerprints serialize");
        match self
            .store
            .create(command_id.to_string(), value.into())
            .await
        {
            Ok(_) => Ok(Claim::New),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => self
                .lookup(command_id)
                .await?
                .map(Claim::Existing)
                .ok_or_else(|| KeyStoreError::Corrupt {
                    command_id,
                    reason: "the key exists but holds no fingerprint".into(),
                }),
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
