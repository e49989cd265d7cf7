//! Witnessing across offices (issue 7), both ways: the hub's auditor witnesses every
//! office's log, and every office's auditor witnesses the province's (the hub's) log.
//! A witness is given the verifier keys of the logs it watches (`COORD_WITNESS_KEYS`,
//! written by `coordctl offices init`; never learnt from the watched side itself).
//!
//! Each auditor publishes every checkpoint it signs on `coord.audit.<office>.published`;
//! its leaf connection lets it publish only its own. For each one, a [`Witnessing`]
//! asks that office's auditor for the consistency proof from the last size it cosigned
//! (`coord.audit.<office>.consistency`), checks the signature and the proof
//! (`coord_audit::cosign::Witness`), then either cosigns (C2SP `tlog-cosignature`),
//! stores the cosigned note and sends it back on `coord.audit.<office>.cosigned.<own
//! office>`, or records an alarm and cosigns nothing. The last cosigned checkpoint per
//! watched log and every alarm are in SQLite (`witness.sqlite`), each decision one
//! statement, written before the in-memory witness moves on.
//!
//! The watched side ([`keep_cosignatures`]) checks each witness's cosignature with that
//! witness's key (an office: the hub's; the province: every office's) and keeps them
//! all beside its own checkpoint, one line per witness, C2SP style.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coord_audit::cosign::{CosignatureVerifier, Cosigner, Witness, decode_hashes};
use coord_audit::note::Note;
use coord_audit::wire::{
    self, AuditRequest, ConsistencyProofBody, WitnessAlarm, WitnessStatus, WitnessedOffice,
};
use coord_audit::{Checkpoint, Hash, Verifier, b64};
use coord_proto::read::QueryReply;
use futures::StreamExt;
use rusqlite::{Connection, OptionalExtension, params};

use crate::runner::Auditor;
use crate::store::StoreError;

/// How long the witness waits for an office's consistency proof.
const PROOF_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS witnessed (
    origin      TEXT PRIMARY KEY,
    office      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    root        BLOB NOT NULL,
    note        TEXT NOT NULL,
    cosigned_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alarms (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    office   TEXT NOT NULL,
    origin   TEXT NOT NULL,
    old_size INTEGER,
    old_root BLOB,
    new_size INTEGER,
    new_root BLOB,
    reason   TEXT NOT NULL,
    note     TEXT NOT NULL,
    at       TEXT NOT NULL
);
";

/// The witness's persisted state.
pub struct WitnessStore {
    conn: Connection,
}

/// A refusal to record.
pub struct Refusal<'a> {
    pub office: &'a str,
    pub origin: &'a str,
    pub old: Option<&'a Checkpoint>,
    pub new: Option<&'a Checkpoint>,
    pub reason: String,
    pub note: &'a str,
}

impl WitnessStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        add_repeat_columns(&conn)?;
        Ok(Self { conn })
    }

    /// The last cosigned checkpoint of `origin`, with its cosigned note and time.
    pub fn last(&self, origin: &str) -> Result<Option<(Checkpoint, String, String)>, StoreError> {
        self.conn
            .query_row(
                "SELECT size, root, note, cosigned_at FROM witnessed WHERE origin = ?1",
                [origin],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?
            .map(|(size, root, note, at)| {
                let root: Hash = root
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("a witnessed root is not 32 bytes".into()))?;
                Ok((
                    Checkpoint {
                        origin: origin.into(),
                        size,
                        root,
                    },
                    note,
                    at,
                ))
            })
            .transpose()
    }

    pub fn record_cosigned(
        &self,
        office: &str,
        checkpoint: &Checkpoint,
        note: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO witnessed VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (origin) DO UPDATE SET office = ?2, size = ?3, root = ?4, note = ?5, cosigned_at = ?6",
            params![
                checkpoint.origin,
                office,
                checkpoint.size as i64,
                checkpoint.root.as_slice(),
                note,
                at
            ],
        )?;
        Ok(())
    }

    /// Records a refusal, unless the office already has an alarm about the same note
    /// (an office sends a checkpoint again until it is cosigned, also after sending
    /// another one meanwhile): then that alarm counts one more refusal and its time;
    /// whether it recorded a new one. One alarm per refused note, however often sent;
    /// it keeps what was found the first time (the reason, the cosigned checkpoint it
    /// was compared with): the same note is refused again for what it is.
    pub fn record_alarm(&self, r: &Refusal<'_>, at: &str) -> Result<bool, StoreError> {
        let same: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM alarms WHERE office = ?1 AND note = ?2 ORDER BY id DESC LIMIT 1",
                params![r.office, r.note],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(id) = same {
            self.conn.execute(
                "UPDATE alarms SET repeated = repeated + 1, last_at = ?2 WHERE id = ?1",
                params![id, at],
            )?;
            return Ok(false);
        }
        self.conn.execute(
            "INSERT INTO alarms (office, origin, old_size, old_root, new_size, new_root, reason, note, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                r.office,
                r.origin,
                r.old.map(|c| c.size as i64),
                r.old.map(|c| c.root.to_vec()),
                r.new.map(|c| c.size as i64),
                r.new.map(|c| c.root.to_vec()),
                r.reason,
                r.note,
                at
            ],
        )?;
        Ok(true)
    }

    pub fn alarms(&self) -> Result<Vec<WitnessAlarm>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, office, origin, old_size, old_root, new_size, new_root, reason, note, at,
                    repeated, last_at
             FROM alarms ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let root = |i: usize| -> rusqlite::Result<Option<String>> {
                Ok(r.get::<_, Option<Vec<u8>>>(i)?.map(|h| b64(&h)))
            };
            Ok(WitnessAlarm {
                id: r.get::<_, i64>(0)? as u64,
                office: r.get(1)?,
                origin: r.get(2)?,
                old_size: r.get::<_, Option<i64>>(3)?.map(|s| s as u64),
                old_root: root(4)?,
                new_size: r.get::<_, Option<i64>>(5)?.map(|s| s as u64),
                new_root: root(6)?,
                reason: r.get(7)?,
                note: r.get(8)?,
                at: r.get(9)?,
                repeated: r.get::<_, i64>(10)? as u64,
                last_at: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Adds the columns that count a refused note sent again (stores made before them
/// get them, zero and empty), and the index that finds the note's alarm.
fn add_repeat_columns(conn: &Connection) -> Result<(), StoreError> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('alarms') WHERE name = 'repeated'")?
        .exists([])?;
    if !has {
        conn.execute_batch(
            "ALTER TABLE alarms ADD COLUMN repeated INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE alarms ADD COLUMN last_at TEXT;",
        )?;
    }
    // A refused note is looked up among the office's alarms each time it comes.
    conn.execute_batch("CREATE INDEX IF NOT EXISTS alarms_office_note ON alarms (office, note)")?;
    Ok(())
}

/// One watched office log: its office id and key.
struct Watched {
    office: String,
    key: Verifier,
}

/// A witness service: the hub's over the offices, or an office's over the province.
pub struct Witnessing {
    /// The office this witness speaks for (its cosignatures go out under it).
    own: String,
    witness: Mutex<Witness>,
    store: Mutex<WitnessStore>,
    /// By subject token (`district_long-xuyen`).
    offices: BTreeMap<String, Watched>,
    client: async_nats::Client,
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Witnessing {
    /// Office `own`'s witness over `offices` (office id, verifier key), cosigning
    /// with `cosigner`, resuming from `store`.
    pub fn new(
        own: String,
        cosigner: Cosigner,
        offices: Vec<(String, Verifier)>,
        store: WitnessStore,
        client: async_nats::Client,
    ) -> Result<Arc<Self>, StoreError> {
        let mut witness = Witness::new(cosigner);
        let mut watched = BTreeMap::new();
        for (office, key) in offices {
            witness.watch(key.clone());
            if let Some((last, _, _)) = store.last(&key.name)? {
                witness.resume(last);
            }
            watched.insert(wire::office_token(&office), Watched { office, key });
        }
        Ok(Arc::new(Self {
            own,
            witness: Mutex::new(witness),
            store: Mutex::new(store),
            offices: watched,
            client,
        }))
    }

    /// The verifier keys of the offices this witness watches, as it was given them.
    pub fn watched_keys(&self) -> Vec<wire::OfficeKey> {
        self.offices
            .values()
            .map(|w| wire::OfficeKey {
                office: w.office.clone(),
                origin: w.key.name.clone(),
                key: w.key.to_string(),
            })
            .collect()
    }

    /// The last checkpoint of the office with subject token `token` that this witness
    /// cosigned, as a stored checkpoint whose note carries the office's signature and
    /// this witness's cosignature.
    fn cosigned(&self, token: &str) -> QueryReply<wire::StoredCheckpoint> {
        let refuse = |kind, code: &str, detail: String| {
            QueryReply::Error(coord_proto::ErrorReply::new(kind, code, detail))
        };
        let Some(w) = self.offices.get(token) else {
            return refuse(
                coord_proto::ErrorKind::NotFound,
                "unknown_office",
                format!("this witness does not watch {token}"),
            );
        };
        let last = self
            .store
            .lock()
            .expect("witness store lock")
            .last(&w.key.name);
        match last {
            Ok(Some((checkpoint, note, at))) => QueryReply::Ok(wire::StoredCheckpoint {
                size: checkpoint.size,
                note,
                published_at: at,
            }),
            Ok(None) => refuse(
                coord_proto::ErrorKind::NotFound,
                "no_checkpoint",
                format!("no checkpoint of {} cosigned here yet", w.office),
            ),
            Err(e) => refuse(
                coord_proto::ErrorKind::Internal,
                "witness_store_failed",
                e.to_string(),
            ),
        }
    }

    /// What the witness holds: every office's last cosigned checkpoint and the alarms.
    pub fn status(&self) -> Result<WitnessStatus, StoreError> {
        let store = self.store.lock().expect("witness store lock");
        let mut offices = Vec::new();
        for w in self.offices.values() {
            let last = store.last(&w.key.name)?;
            offices.push(WitnessedOffice {
                office: w.office.clone(),
                origin: w.key.name.clone(),
                key: w.key.to_string(),
                size: last.as_ref().map(|(c, _, _)| c.size),
                root: last.as_ref().map(|(c, _, _)| b64(&c.root)),
                cosigned: last.as_ref().map(|(_, n, _)| n.clone()),
                cosigned_at: last.map(|(_, _, at)| at),
            });
        }
        Ok(WitnessStatus {
            witness_key: self
                .witness
                .lock()
                .expect("witness lock")
                .verifier()
                .to_string(),
            offices,
            alarms: store.alarms()?,
        })
    }

    /// Listens to every office's published checkpoints and answers status queries
    /// until `shutdown` flips.
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        // Only the watched offices' subjects, each literal: an office's leaf user may
        // publish its own and no other.
        let mut subscriptions = Vec::new();
        for w in self.offices.values() {
            subscriptions.push(
                self.client
                    .subscribe(wire::published_subject(&w.office))
                    .await?,
            );
        }
        let mut published = futures::stream::select_all(subscriptions);
        // One observer per office, each on the office's latest note: an office that is
        // slow to answer its proof (up to PROOF_TIMEOUT) delays only its own.
        let mut observers = tokio::task::JoinSet::new();
        let mut latest = BTreeMap::new();
        for token in self.offices.keys() {
            let (tx, rx) = tokio::sync::watch::channel(String::new());
            latest.insert(token.clone(), tx);
            observers.spawn(
                self.clone()
                    .observe_each(token.clone(), rx, shutdown.clone()),
            );
        }
        let mut queries = self.client.subscribe(wire::WITNESS_SUBJECT).await?;
        // Here, a watched office's latest checkpoint is the one this witness cosigned
        // (its own auditor is not reachable from here), and its key is the one given.
        let mut checkpoint_queries = Vec::new();
        for w in self.offices.values() {
            let subject = wire::subject(Some(&w.office), "checkpoint");
            checkpoint_queries.push(self.client.subscribe(subject).await?);
        }
        let mut checkpoint_queries = futures::stream::select_all(checkpoint_queries);
        tracing::info!(own = %self.own, offices = self.offices.len(), "witness ready");
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                Some(ended) = observers.join_next() => {
                    ended??;
                    return Ok(());
                }
                Some(msg) = published.next() => {
                    let token = msg.subject.split('.').nth(2).unwrap_or_default();
                    if let Some(tx) = latest.get(token) {
                        tx.send_replace(String::from_utf8_lossy(&msg.payload).into_owned());
                    }
                }
                Some(msg) = queries.next() => {
                    let Some(reply) = msg.reply.filter(|r| coord_proto::is_inbox(r)) else { continue };
                    let this = self.clone();
                    let status = tokio::task::spawn_blocking(move || this.status()).await?;
                    let answer = match status {
                        Ok(s) => QueryReply::Ok(s),
                        Err(e) => QueryReply::Error(coord_proto::ErrorReply::new(
                            coord_proto::ErrorKind::Internal,
                            "witness_store_failed",
                            e.to_string(),
                        )),
                    };
                    let body = serde_json::to_vec(&answer).expect("replies serialize");
                    let _ = self.client.publish(reply, body.into()).await;
                }
                Some(msg) = checkpoint_queries.next() => {
                    let Some(reply) = msg.reply.filter(|r| coord_proto::is_inbox(r)) else { continue };
                    let token = msg.subject.split('.').nth(2).unwrap_or_default().to_owned();
                    let this = self.clone();
                    let answer = tokio::task::spawn_blocking(move || this.cosigned(&token)).await?;
                    let body = serde_json::to_vec(&answer).expect("replies serialize");
                    let _ = self.client.publish(reply, body.into()).await;
                }
            }
        }
    }

    /// Observes office `token`'s latest published note, one at a time, until
    /// `shutdown` flips: notes that arrive while one is being checked are coalesced
    /// into the latest.
    async fn observe_each(
        self: Arc<Self>,
        token: String,
        mut notes: tokio::sync::watch::Receiver<String>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                changed = notes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let note = notes.borrow_and_update().clone();
                    self.observe(&token, &note).await?;
                }
            }
        }
    }

    /// Handles one checkpoint published on office `token`'s subject.
    pub async fn observe(&self, token: &str, note: &str) -> anyhow::Result<()> {
        let Some(watched) = self.offices.get(token) else {
            // A log this witness is not given.
            return Ok(());
        };
        let new = Note::parse(note)
            .ok()
            .and_then(|n| Checkpoint::parse(&n.text).ok());
        let last = self
            .witness
            .lock()
            .expect("witness lock")
            .last(&watched.key.name)
            .cloned();
        let Some(proof) = self.proof_for(watched, last.as_ref(), new.as_ref()).await else {
            return Ok(());
        };
        match self.decide(watched, note, new.as_ref(), &proof) {
            Ok((cp, cosigned)) => self.accept(watched, cp, cosigned).await,
            Err(reason) => self.refuse(&Refusal {
                office: &watched.office,
                origin: &watched.key.name,
                old: last.as_ref(),
                new: new.as_ref(),
                reason,
                note,
            }),
        }
    }

    /// The consistency proof the check needs: from the last cosigned size to the new
    /// one, asked of the office (empty when none is needed); `None` when the office
    /// did not answer (the checkpoint waits for the next one: not an alarm).
    async fn proof_for(
        &self,
        watched: &Watched,
        last: Option<&Checkpoint>,
        new: Option<&Checkpoint>,
    ) -> Option<Vec<Hash>> {
        match (last, new) {
            (Some(old), Some(new))
                if old.size > 0 && new.size > old.size && new.origin == watched.key.name =>
            {
                match self.ask_proof(&watched.office, old.size, new.size).await {
                    Ok(proof) => Some(proof),
                    Err(e) => {
                        tracing::warn!(office = %watched.office, error = %e, "no consistency proof; the checkpoint waits for the next one");
                        None
                    }
                }
            }
            _ => Some(Vec::new()),
        }
    }

    /// Checks `note` (as `new`) from `watched`'s subject: its origin must be that
    /// office's, then the witness's check; the cosigned note, or why not.
    fn decide(
        &self,
        watched: &Watched,
        note: &str,
        new: Option<&Checkpoint>,
        proof: &[Hash],
    ) -> Result<(Checkpoint, String), String> {
        let origin = &watched.key.name;
        if let Some(cp) = new.filter(|cp| &cp.origin != origin) {
            return Err(format!(
                "the checkpoint names origin `{}`, not this office's `{origin}`",
                cp.origin
            ));
        }
        let witness = self.witness.lock().expect("witness lock");
        let cp = witness.check(note, proof).map_err(|e| e.to_string())?;
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let cosigned = witness.cosign(note, &cp, now);
        Ok((cp, cosigned))
    }

    /// Stores the cosigned checkpoint, then moves the witness on and sends it back.
    async fn accept(
        &self,
        watched: &Watched,
        cp: Checkpoint,
        cosigned: String,
    ) -> anyhow::Result<()> {
        self.store
            .lock()
            .expect("witness store lock")
            .record_cosigned(&watched.office, &cp, &cosigned, &now_text())?;
        tracing::info!(office = %watched.office, size = cp.size, "cosigned");
        self.witness.lock().expect("witness lock").resume(cp);
        let subject = wire::cosigned_subject(&watched.office, &self.own);
        let _ = self
            .client
            .publish(subject, cosigned.into_bytes().into())
            .await;
        Ok(())
    }

    /// Records an alarm; nothing is cosigned.
    fn refuse(&self, refusal: &Refusal<'_>) -> anyhow::Result<()> {
        let store = self.store.lock().expect("witness store lock");
        if store.record_alarm(refusal, &now_text())? {
            tracing::error!(office = %refusal.office, reason = %refusal.reason, "witness alarm: checkpoint refused");
        }
        Ok(())
    }

    /// The consistency proof from `from` to `to` leaves, from `office`'s auditor. An
    /// answer that is an error (e.g. the office's tree cannot prove it) is an empty
    /// proof, which fails the check; only no answer at all is a transport failure. The
    /// answer comes on [`wire::proof_subject`], not on this user's inbox: across the
    /// leaf link only the asked office may send it there.
    async fn ask_proof(&self, office: &str, from: u64, to: u64) -> anyhow::Result<Vec<Hash>> {
        let request = AuditRequest {
            from: Some(from),
            to: Some(to),
            ..AuditRequest::default()
        };
        let body = serde_json::to_vec(&request)?;
        let reply = format!(
            "{}.{}",
            wire::proof_subject(office, &self.own),
            uuid::Uuid::new_v4().simple()
        );
        let request = async_nats::Request::new().payload(body.into()).inbox(reply);
        let answer = tokio::time::timeout(
            PROOF_TIMEOUT,
            self.client
                .send_request(wire::subject(Some(office), "consistency"), request),
        )
        .await??;
        Ok(
            match serde_json::from_slice::<QueryReply<ConsistencyProofBody>>(&answer.payload) {
                Ok(QueryReply::Ok(p)) => decode_hashes(&p.hashes).unwrap_or_default(),
                _ => Vec::new(),
            },
        )
    }
}

/// How often an auditor sends its latest checkpoint again while a witness has not
/// cosigned it (lost on the way, link down, witness not yet listening).
const REPUBLISH_EVERY: Duration = Duration::from_secs(2);

/// Watched side: keeps each witness's cosignature of this auditor's checkpoints, once
/// it verifies with that witness's key (`witnesses`: office id, cosignature key) and
/// cosigns a checkpoint this auditor signed; sends the latest checkpoint again every
/// [`REPUBLISH_EVERY`] until every witness cosigned it.
pub async fn keep_cosignatures(
    client: async_nats::Client,
    auditor: Arc<Auditor>,
    witnesses: Vec<(String, CosignatureVerifier)>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let by_token: BTreeMap<String, CosignatureVerifier> = witnesses
        .into_iter()
        .map(|(office, key)| (wire::office_token(&office), key))
        .collect();
    let mut sub = client
        .subscribe(wire::cosigned_wildcard(&auditor.office))
        .await?;
    let mut ticker = tokio::time::interval(REPUBLISH_EVERY);
    loop {
        let msg = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = ticker.tick() => {
                let all: Vec<CosignatureVerifier> = by_token.values().cloned().collect();
                republish_uncosigned(&client, &auditor, all).await?;
                continue;
            }
            m = sub.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let token = msg.subject.rsplit('.').next().unwrap_or_default();
        let Some(witness) = by_token.get(token).cloned() else {
            tracing::warn!(subject = %msg.subject, "a cosignature from a witness this auditor is not given: ignored");
            continue;
        };
        let note = String::from_utf8_lossy(&msg.payload).into_owned();
        if !keep_cosigned(&auditor, note, witness).await? {
            tracing::warn!(subject = %msg.subject, "a cosignature that does not verify with its witness's key over a checkpoint this auditor signed: ignored");
        }
    }
}

/// Adds `witness`'s cosignature in `note` to what is kept of the checkpoint it
/// cosigns, if this auditor signed that checkpoint, body for body, and the
/// cosignature verifies; whether that witness's cosignature is now kept.
async fn keep_cosigned(
    auditor: &Arc<Auditor>,
    note: String,
    witness: CosignatureVerifier,
) -> Result<bool, StoreError> {
    auditor
        .with_state(move |s| {
            let Some(cp) = Note::parse(&note)
                .ok()
                .and_then(|n| Checkpoint::parse(&n.text).ok())
            else {
                return Ok(false);
            };
            let Some(ours) = s.store.checkpoint(cp.size)? else {
                return Ok(false);
            };
            let kept = s.store.cosigned(cp.size)?.unwrap_or(ours.note);
            if witness.verify(&kept).is_ok() {
                // Already kept (the witness cosigned it again when it was re-sent).
                return Ok(true);
            }
            match coord_audit::cosign::merge_cosignature(&kept, &note, &witness) {
                Some(merged) => {
                    s.store.add_cosigned(cp.size, &merged)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
        .await
}

async fn republish_uncosigned(
    client: &async_nats::Client,
    auditor: &Arc<Auditor>,
    witnesses: Vec<CosignatureVerifier>,
) -> Result<(), StoreError> {
    let pending = auditor
        .with_state(move |s| {
            let Some(latest) = s.store.latest_checkpoint()? else {
                return Ok(None);
            };
            let kept = s.store.cosigned(latest.size)?;
            let missing = witnesses
                .iter()
                .any(|w| kept.as_deref().is_none_or(|k| w.verify(k).is_err()));
            Ok(missing.then_some(latest.note))
        })
        .await?;
    if let Some(note) = pending {
        let subject = wire::published_subject(&auditor.office);
        let _ = client.publish(subject, note.into_bytes().into()).await;
    }
    Ok(())
}

/// Reads the witnessed logs' keys file (`<office> <verifier key>` lines).
pub fn read_watched(path: &Path) -> anyhow::Result<Vec<(String, Verifier)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the witness keys {}: {e}", path.display()))?;
    Ok(coord_audit::cosign::parse_watched(&text)?)
}

/// Reads the witnesses' keys file (`<office> <cosignature key>` lines).
pub fn read_witnesses(path: &Path) -> anyhow::Result<Vec<(String, CosignatureVerifier)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the witnesses' keys {}: {e}", path.display()))?;
    Ok(coord_audit::cosign::parse_witnesses(&text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(size: u64, root: u8) -> Checkpoint {
        Checkpoint {
            origin: "coord/x/district:a".into(),
            size,
            root: [root; 32],
        }
    }

    #[test]
    fn given_a_cosigned_checkpoint_when_the_store_is_reopened_then_it_is_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.sqlite");
        let store = WitnessStore::open(&path).unwrap();
        store
            .record_cosigned("district:a", &checkpoint(3, 1), "n3", "t1")
            .unwrap();
        store
            .record_cosigned("district:a", &checkpoint(5, 2), "n5", "t2")
            .unwrap();
        drop(store);
        let store = WitnessStore::open(&path).unwrap();
        let (last, note, at) = store.last("coord/x/district:a").unwrap().unwrap();
        assert_eq!(
            (last, note.as_str(), at.as_str()),
            (checkpoint(5, 2), "n5", "t2")
        );
        assert!(store.last("coord/x/district:b").unwrap().is_none());
    }

    #[test]
    fn given_the_same_refused_note_sent_again_then_one_alarm_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = WitnessStore::open(&dir.path().join("w.sqlite")).unwrap();
        let (old, new) = (checkpoint(8, 1), checkpoint(11, 9));
        let refusal = |note: &'static str| Refusal {
            office: "district:a",
            origin: "coord/x/district:a",
            old: Some(&old),
            new: Some(&new),
            reason: "rewritten".into(),
            note,
        };
        store.record_alarm(&refusal("bad"), "t1").unwrap();
        store.record_alarm(&refusal("bad"), "t2").unwrap();
        store.record_alarm(&refusal("worse"), "t3").unwrap();
        // Sent again after another: still its own alarm, not a third.
        store.record_alarm(&refusal("bad"), "t4").unwrap();
        let alarms = store.alarms().unwrap();
        assert_eq!(alarms.len(), 2);
        assert_eq!(alarms[0].old_size, Some(8));
        assert_eq!(alarms[0].new_size, Some(11));
        assert_eq!(alarms[0].new_root.as_deref(), Some(b64(&[9; 32]).as_str()));
        assert_eq!(alarms[1].note, "worse");
        assert_eq!(
            (alarms[0].repeated, alarms[0].last_at.as_deref()),
            (2, Some("t4"))
        );
        assert_eq!(
            (alarms[1].repeated, alarms[1].last_at.as_deref()),
            (0, None)
        );
    }
}
