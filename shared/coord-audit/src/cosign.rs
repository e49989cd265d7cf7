//! Witnessing: C2SP `tlog-cosignature` v1 (Ed25519, timestamped) and the hub's
//! [`Witness`], which cosigns an office's new checkpoint only after checking, with a
//! consistency proof, that it extends the last one it cosigned. An office that rewrites
//! its history and re-signs is refused by the hub; a hub that cosigns two views is
//! caught by the offices, which check the hub's cosignature on what they are shown.
//!
//! - key ID: SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4];
//! - signed message: `cosignature/v1\ntime <t>\n` followed by the checkpoint body;
//! - signature line: `— name base64(key ID ‖ u64 t big endian ‖ Ed25519 signature)`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::note::{COSIGNATURE_V1, DASH, KeyParts, Note, NoteError, Verifier, check_name, key_id};
use crate::tree::{Hash, verify_consistency};
use crate::{b64, unb64};

fn message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// A cosigner's private key.
pub struct Cosigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl Cosigner {
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(name, COSIGNATURE_V1, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.into(),
            id,
            key,
        })
    }

    /// The cosigner key text, `PRIVATE+KEY+name+id+base64(0x04 ‖ seed)` (as a note
    /// signer key, with the cosignature type byte).
    pub fn to_key_text(&self) -> String {
        let mut seed = vec![COSIGNATURE_V1];
        seed.extend_from_slice(&self.key.to_bytes());
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.id, b64(&seed))
    }

    /// Reads a cosigner key text.
    pub fn from_key_text(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| NoteError::BadKey("a cosigner key starts with PRIVATE+KEY+".into()))?;
        let parts = KeyParts::parse(rest)?;
        if parts.alg != COSIGNATURE_V1 {
            return Err(NoteError::BadKey(format!(
                "`{}` is not a cosigner key",
                parts.name
            )));
        }
        let cosigner = Self::from_seed(&parts.name, parts.material)?;
        parts.check_id(cosigner.id)?;
        Ok(cosigner)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The cosignature line for a checkpoint body at `timestamp`.
    pub fn cosign(&self, body: &str, timestamp: u64) -> String {
        let mut sig = self.id.to_be_bytes().to_vec();
        sig.extend_from_slice(&timestamp.to_be_bytes());
        sig.extend_from_slice(
            &self
                .key
                .sign(message(body, timestamp).as_bytes())
                .to_bytes(),
        );
        format!("{DASH}{} {}\n", self.name, b64(&sig))
    }
}

/// A cosigner's public key, as a vkey `name+id+base64(0x04 ‖ key)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    pub name: String,
    pub id: u32,
    key: VerifyingKey,
}

impl fmt::Display for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![COSIGNATURE_V1];
        key.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, b64(&key))
    }
}

impl FromStr for CosignatureVerifier {
    type Err = NoteError;
    fn from_str(text: &str) -> Result<Self, NoteError> {
        let parts = KeyParts::parse(text)?;
        if parts.alg != COSIGNATURE_V1 {
            return Err(NoteError::BadKey(format!(
                "`{}` is not a cosignature key",
                parts.name
            )));
        }
        let key = VerifyingKey::from_bytes(&parts.material)
            .map_err(|e| NoteError::BadKey(format!("not an Ed25519 point: {e}")))?;
        let id = key_id(&parts.name, COSIGNATURE_V1, key.as_bytes());
        parts.check_id(id)?;
        Ok(Self {
            name: parts.name,
            id,
            key,
        })
    }
}

impl CosignatureVerifier {
    /// The timestamp of this cosigner's valid cosignature on `note`, if there is one.
    pub fn verify(&self, note: &str) -> Result<u64, NoteError> {
        let note = Note::parse(note)?;
        for sig in &note.signatures {
            if sig.name != self.name || sig.hash != self.id || sig.signature.len() != 72 {
                continue;
            }
            let timestamp = u64::from_be_bytes(sig.signature[..8].try_into().expect("8 bytes"));
            let signature = Signature::from_slice(&sig.signature[8..])
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            return self
                .key
                .verify_strict(message(&note.text, timestamp).as_bytes(), &signature)
                .map(|()| timestamp)
                .map_err(|_| NoteError::BadSignature(self.name.clone()));
        }
        Err(NoteError::Unverified(format!(
            "no cosignature by {}",
            self.name
        )))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    #[error("no office log with origin `{0}` is known to the witness")]
    UnknownLog(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("`{origin}` went from {old} leaves to {new}: a log does not shrink")]
    Shrunk { origin: String, old: u64, new: u64 },
    #[error(
        "`{origin}` at {new} leaves is not an extension of the {old} leaves cosigned before: its history was rewritten ({detail})"
    )]
    Inconsistent {
        origin: String,
        old: u64,
        new: u64,
        detail: String,
    },
}

/// What the witness holds per office log: its key and the last checkpoint it cosigned.
struct Watched {
    verifier: Verifier,
    last: Option<Checkpoint>,
}

/// The hub's witness over every office's log.
pub struct Witness {
    cosigner: Cosigner,
    logs: BTreeMap<String, Watched>,
}

impl Witness {
    pub fn new(cosigner: Cosigner) -> Self {
        Self {
            cosigner,
            logs: BTreeMap::new(),
        }
    }

    /// Watches the office log whose checkpoints `verifier` signs (origin = key name).
    pub fn watch(&mut self, verifier: Verifier) {
        self.logs.insert(
            verifier.name.clone(),
            Watched {
                verifier,
                last: None,
            },
        );
    }

    /// Resumes from a persisted state: `checkpoint` is the last one cosigned for its
    /// origin (which must be watched; otherwise nothing changes).
    pub fn resume(&mut self, checkpoint: Checkpoint) {
        if let Some(w) = self.logs.get_mut(&checkpoint.origin) {
            w.last = Some(checkpoint);
        }
    }

    /// The origins watched, in order.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.logs.keys().map(String::as_str)
    }

    /// The cosigner's public key.
    pub fn verifier(&self) -> CosignatureVerifier {
        self.cosigner.verifier()
    }

    /// The last checkpoint cosigned for `origin`.
    pub fn last(&self, origin: &str) -> Option<&Checkpoint> {
        self.logs.get(origin).and_then(|w| w.last.as_ref())
    }

    /// Checks an office's new signed checkpoint against the last one cosigned (with
    /// `proof`, the consistency proof from that size) and returns the note with the
    /// witness's cosignature added. Nothing changes on refusal.
    pub fn add(&mut self, note: &str, proof: &[Hash], now: u64) -> Result<String, WitnessError> {
        let checkpoint = self.check(note, proof)?;
        let cosigned = self.cosign(note, &checkpoint, now);
        self.resume(checkpoint);
        Ok(cosigned)
    }

    /// Checks, without changing anything, that `note` is its office's valid signed
    /// checkpoint and extends the last one cosigned (`proof`: the consistency proof
    /// from that size). A caller that persists the outcome calls [`Witness::cosign`],
    /// stores it, then [`Witness::resume`].
    pub fn check(&self, note: &str, proof: &[Hash]) -> Result<Checkpoint, WitnessError> {
        let origin = Checkpoint::origin_of(note).unwrap_or_default().to_owned();
        let watched = self
            .logs
            .get(&origin)
            .ok_or_else(|| WitnessError::UnknownLog(origin.clone()))?;
        let new = Checkpoint::open(note, &origin, std::slice::from_ref(&watched.verifier))?;
        if let Some(old) = &watched.last {
            if new.size < old.size {
                return Err(WitnessError::Shrunk {
                    origin,
                    old: old.size,
                    new: new.size,
                });
            }
            if old.size > 0 {
                verify_consistency(old.size, &old.root, new.size, &new.root, proof).map_err(
                    |e| WitnessError::Inconsistent {
                        origin: origin.clone(),
                        old: old.size,
                        new: new.size,
                        detail: e.to_string(),
                    },
                )?;
            }
        }
        Ok(new)
    }

    /// `note` (already checked into `checkpoint`) with the witness's cosignature line,
    /// which signs the note's text as it is (extension lines included, as C2SP's
    /// tlog-cosignature says), not the checkpoint rebuilt from its first three lines.
    pub fn cosign(&self, note: &str, checkpoint: &Checkpoint, now: u64) -> String {
        let text = Note::parse(note).map_or_else(|_| checkpoint.to_text(), |n| n.text);
        format!("{note}{}", self.cosigner.cosign(&text, now))
    }
}

/// Decodes a list of base64 hashes (as proofs travel in JSON).
pub fn decode_hashes(hashes: &[String]) -> Option<Vec<Hash>> {
    hashes
        .iter()
        .map(|h| unb64(h).ok().and_then(|b| b.try_into().ok()))
        .collect()
}

/// The file the hub's witness is given (one line per office: `<office> <vkey>`), as
/// `coordctl offices init` writes it from each office's generated key. A witness does
/// not learn keys from the offices themselves (trust on first use would let an office
/// that rewrote its history before the hub first saw it go unnoticed).
pub fn format_watched(offices: &[(String, Verifier)]) -> String {
    offices.iter().map(|(o, v)| format!("{o} {v}\n")).collect()
}

/// Reads a [`format_watched`] file; blank lines and `#` comments are skipped.
pub fn parse_watched(text: &str) -> Result<Vec<(String, Verifier)>, NoteError> {
    parse_office_keys(text, "verifier key")
}

/// The file a log's auditor is given with its witnesses' cosignature keys (one line
/// per witnessing office: `<office> <cosignature vkey>`), as `coordctl offices init`
/// writes it: the province's auditor keeps only cosignatures that verify with these.
pub fn format_witnesses(witnesses: &[(String, CosignatureVerifier)]) -> String {
    witnesses
        .iter()
        .map(|(o, v)| format!("{o} {v}\n"))
        .collect()
}

/// Reads a [`format_witnesses`] file; blank lines and `#` comments are skipped.
pub fn parse_witnesses(text: &str) -> Result<Vec<(String, CosignatureVerifier)>, NoteError> {
    parse_office_keys(text, "cosignature key")
}

/// `<office> <key>` lines, `what` naming the key in the error.
fn parse_office_keys<K: FromStr<Err = NoteError>>(
    text: &str,
    what: &str,
) -> Result<Vec<(String, K)>, NoteError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (office, key) = line
                .split_once(' ')
                .ok_or_else(|| NoteError::BadKey(format!("`{line}` is not `<office> <{what}>`")))?;
            Ok((office.to_owned(), key.trim().parse()?))
        })
        .collect()
}

/// `kept` (a signed note) with `witness`'s cosignature line from `cosigned` added, if
/// `cosigned` carries a valid one over the same body and `kept` has none by that name
/// yet: how a log keeps one cosignature per witness on the same checkpoint (C2SP
/// signed notes take any number of signature lines). `None` when nothing is added.
pub fn merge_cosignature(
    kept: &str,
    cosigned: &str,
    witness: &CosignatureVerifier,
) -> Option<String> {
    if Note::parse(kept).ok()?.text != Note::parse(cosigned).ok()?.text {
        return None;
    }
    let prefix = format!("{DASH}{} ", witness.name);
    if kept.lines().any(|l| l.starts_with(&prefix)) {
        return None;
    }
    cosigned
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|line| format!("{kept}{line}\n"))
        .find(|merged| witness.verify(merged).is_ok())
}
