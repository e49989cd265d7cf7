//! The aggregates a command service has loaded or written, kept so that the next command
//! on one is decided without reading its stream again: a warm command costs one append.
//!
//! An entry is the aggregate's state, the [`StreamRevision`] it was read at, and the
//! outcome of every command already applied to it (a replay is answered from here: the
//! log is append-only, so what was applied stays applied). An entry may be stale
//! (another instance appended since): the append is made *at* the entry's revision, so
//! a stale entry costs a refused append, and the handler then reads the stream again.
//! A refusal decided on a cached entry is checked on a fresh read before it is answered.
//!
//! Bounded: past [`CAPACITY`] entries the cache starts over (a cold stream is read again).

use std::collections::HashMap;
use std::sync::Mutex;

use coord_domain::{Aggregate, Office};
use coord_log::{StreamId, StreamRevision};
use coord_proto::Accepted;
use uuid::Uuid;

use crate::idempotency::Fingerprint;

/// Most aggregates kept per service.
pub const CAPACITY: usize = 100_000;

/// An aggregate as the handler decides on it.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    pub at: StreamRevision,
    /// The commands already applied, with their outcome.
    pub applied: Vec<Applied>,
}

/// A command applied to an aggregate.
#[derive(Debug, Clone)]
pub struct Applied {
    pub command_id: Uuid,
    /// What it asked, when this service appended it (not known from the log alone).
    pub fingerprint: Option<Fingerprint>,
    pub accepted: Accepted,
}

impl<A: Aggregate> Loaded<A> {
    /// `command_id` if it was applied.
    pub fn applied(&self, command_id: Uuid) -> Option<&Applied> {
        self.applied.iter().find(|a| a.command_id == command_id)
    }

    /// This aggregate after `events`, appended by `command_id` (asking `fingerprint`)
    /// with outcome `accepted`.
    pub fn after(
        mut self,
        events: &[A::Event],
        command_id: Uuid,
        fingerprint: &Fingerprint,
        accepted: &Accepted,
    ) -> Self {
        for event in events {
            self.state.apply(event);
        }
        self.at = StreamRevision {
            commit: accepted.position,
            version: accepted.stream_version,
        };
        self.applied.push(Applied {
            command_id,
            fingerprint: Some(fingerprint.clone()),
            accepted: accepted.clone(),
        });
        self
    }
}

/// The cache of one handler.
pub struct AggregateCache<A> {
    entries: Mutex<HashMap<(Office, StreamId), Loaded<A>>>,
}

impl<A: Aggregate> Default for AggregateCache<A> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
        }
    }
}

impl<A: Aggregate> AggregateCache<A> {
    pub fn get(&self, office: &Office, stream: &StreamId) -> Option<Loaded<A>> {
        self.lock().get(&(office.clone(), stream.clone())).cloned()
    }

    /// Keeps `loaded` unless a newer revision of the stream is already kept.
    pub fn put(&self, office: &Office, stream: &StreamId, loaded: Loaded<A>) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        let key = (office.clone(), stream.clone());
        if entries
            .get(&key)
            .is_none_or(|kept| kept.at.commit <= loaded.at.commit)
        {
            entries.insert(key, loaded);
        }
    }

    pub fn forget(&self, office: &Office, stream: &StreamId) {
        self.lock().remove(&(office.clone(), stream.clone()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Office, StreamId), Loaded<A>>> {
        // A panic while holding the lock leaves a map of whole entries: still usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
