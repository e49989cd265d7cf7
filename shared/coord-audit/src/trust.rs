//! The reviewer's trust file: the keys `coordctl audit verify` trusts, held on the
//! reviewer's side, never taken from the gateway it verifies. One key a line:
//!
//! ```text
//! # comments and blank lines are skipped
//! log <office> <note verifier key>           # whose checkpoints count
//! witness <office> <cosignature verifier key> # whose cosignatures are required
//! ```
//!
//! `coordctl offices init` writes it with every office's log key and witness key;
//! without one, `verify` pins the served log keys on first use. A pinned key is never
//! replaced silently: a served key that differs is a failure naming the office.

use std::collections::BTreeMap;

use crate::checkpoint::Checkpoint;
use crate::cosign::CosignatureVerifier;
use crate::export::OfficeLog;
use crate::note::{NoteError, Verifier};

/// The keys a reviewer trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    /// (office, its log's note verifier key).
    pub logs: Vec<(String, Verifier)>,
    /// (office, its witness's cosignature key).
    pub witnesses: Vec<(String, CosignatureVerifier)>,
}

/// A served key that is not the trusted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMismatch {
    pub office: String,
    pub trusted: String,
    pub served: String,
}

/// A cosignature the latest checkpoint of `office` lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingCosignature {
    /// Whose checkpoint.
    pub office: String,
    /// Its tree size, when the note could be read.
    pub size: Option<u64>,
    /// Whose cosignature is missing.
    pub witness: String,
    pub why: String,
}

impl TrustedKeys {
    /// Reads a trust file.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut keys = Self::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || NoteError::BadKey(format!("`{line}` is not `log|witness <office> <key>`"));
            let mut parts = line.split_whitespace();
            let (kind, office, key) = (
                parts.next().ok_or_else(bad)?,
                parts.next().ok_or_else(bad)?,
                parts.next().ok_or_else(bad)?,
            );
            match kind {
                "log" => keys.logs.push((office.into(), key.parse()?)),
                "witness" => keys.witnesses.push((office.into(), key.parse()?)),
                _ => return Err(bad()),
            }
        }
        Ok(keys)
    }

    /// The file's text.
    pub fn format(&self) -> String {
        let mut out =
            String::from("# coordctl audit verify: trusted keys (never replaced silently)\n");
        for (office, key) in &self.logs {
            out.push_str(&format!("log {office} {key}\n"));
        }
        for (office, key) in &self.witnesses {
            out.push_str(&format!("witness {office} {key}\n"));
        }
        out
    }

    pub fn log_key(&self, office: &str) -> Option<&Verifier> {
        self.logs.iter().find(|(o, _)| o == office).map(|(_, k)| k)
    }

    /// The trusted log keys.
    pub fn verifiers(&self) -> Vec<Verifier> {
        self.logs.iter().map(|(_, k)| k.clone()).collect()
    }

    /// Served (office, key) pairs whose office is trusted with another key.
    pub fn mismatches(&self, served: &[(String, String)]) -> Vec<KeyMismatch> {
        served
            .iter()
            .filter_map(|(office, key)| {
                let trusted = self.log_key(office)?.to_string();
                (&trusted != key).then(|| KeyMismatch {
                    office: office.clone(),
                    trusted,
                    served: key.clone(),
                })
            })
            .collect()
    }

    /// Pins served keys of offices not trusted yet (trust on first use); the offices
    /// added. Keys of offices already trusted are never replaced (see [`Self::mismatches`]).
    pub fn pin_new(&mut self, served: &[(String, String)]) -> Result<Vec<String>, NoteError> {
        let mut added = Vec::new();
        for (office, key) in served {
            if self.log_key(office).is_none() {
                self.logs.push((office.clone(), key.parse()?));
                added.push(office.clone());
            }
        }
        Ok(added)
    }

    /// The witnesses whose cosignature `office`'s checkpoints need: the hub's
    /// (`province`) for an office, every office's for the province.
    pub fn required_witnesses(&self, office: &str) -> Vec<&(String, CosignatureVerifier)> {
        self.witnesses
            .iter()
            .filter(|(w, _)| {
                if office == "province" {
                    w != "province"
                } else {
                    w == "province"
                }
            })
            .collect()
    }

    /// Which required cosignatures the latest checkpoint of each office lacks (`latest`:
    /// office and note as served). The note itself must verify with the office's
    /// trusted log key, or every required cosignature counts as missing.
    pub fn missing_cosignatures(&self, latest: &[(String, String)]) -> Vec<MissingCosignature> {
        let mut missing = Vec::new();
        for (office, note) in latest {
            let opened = match self.log_key(office) {
                Some(key) => Checkpoint::open(note, &key.name, std::slice::from_ref(key))
                    .map_err(|e| e.to_string()),
                None => Err(format!("no trusted key of {office}")),
            };
            let size = opened.as_ref().ok().map(|c| c.size);
            for (witness, key) in self.required_witnesses(office) {
                let why = match &opened {
                    Err(e) => Some(format!("the checkpoint does not verify: {e}")),
                    Ok(_) => key.verify(note).err().map(|e| e.to_string()),
                };
                if let Some(why) = why {
                    missing.push(MissingCosignature {
                        office: office.clone(),
                        size,
                        witness: witness.clone(),
                        why,
                    });
                }
            }
        }
        missing
    }

    /// Of the latest checkpoints `served` (office and note), those whose required
    /// cosignatures are all there, to be checked against the export `offices` as its
    /// witnesses saw it ([`crate::verify::Trust::witnessed`]); and the cosignatures
    /// missing: a checkpoint not cosigned, or one older than the export's latest (the
    /// newer ones would go unwitnessed).
    pub fn witnessed(
        &self,
        served: &[(String, String)],
        offices: &BTreeMap<String, OfficeLog>,
    ) -> (BTreeMap<String, String>, Vec<MissingCosignature>) {
        let mut missing = self.missing_cosignatures(served);
        let mut witnessed = BTreeMap::new();
        for (office, note) in served {
            if missing.iter().any(|m| &m.office == office) {
                continue;
            }
            let size = size_of(note).unwrap_or(0);
            let log = offices.get(office);
            let latest = log
                .and_then(|l| l.checkpoints.last())
                .and_then(|n| size_of(n))
                .unwrap_or(0);
            let entries = exported(log);
            let why = if size < latest {
                format!(
                    "the latest checkpoint served is of {size} leaves, older than the export's latest"
                )
            } else if size > entries {
                // Not a break: the log moved on while it was read.
                format!(
                    "the latest cosigned checkpoint ({size} leaves) is newer than the export ({entries}): the log is busy; run again"
                )
            } else {
                witnessed.insert(office.clone(), note.clone());
                continue;
            };
            missing.extend(self.required_witnesses(office).iter().map(|(w, _)| {
                MissingCosignature {
                    office: office.clone(),
                    size: Some(size.max(latest)),
                    witness: w.clone(),
                    why: why.clone(),
                }
            }));
        }
        (witnessed, missing)
    }
}

/// How many entries (leaves) an office's export holds.
fn exported(log: Option<&OfficeLog>) -> u64 {
    log.map_or(0, |l| l.entries.len() as u64)
}

/// Whether `served` (an office's latest checkpoint as served) commits to more than the
/// office's export `log` holds: signed while the export was read.
pub fn newer_than_export(served: &str, log: Option<&OfficeLog>) -> bool {
    size_of(served).unwrap_or(0) > exported(log)
}

/// The tree size a note commits to, if it is a checkpoint.
pub fn size_of(note: &str) -> Option<u64> {
    let text = crate::note::Note::parse(note).ok()?.text;
    Some(Checkpoint::parse(&text).ok()?.size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Signer;
    use crate::cosign::Cosigner;

    fn signer(name: &str, seed: u8) -> Signer {
        Signer::from_seed(name, [seed; 32]).unwrap()
    }

    #[test]
    fn given_a_trust_file_when_read_back_then_it_is_the_same_and_a_served_key_that_differs_is_named()
     {
        let a = signer("coord/ag/province", 1);
        let b = signer("coord/ag/district:x", 2);
        let w = Cosigner::from_seed("coord/ag/witness", [3; 32]).unwrap();
        let keys = TrustedKeys {
            logs: vec![
                ("province".into(), a.verifier().clone()),
                ("district:x".into(), b.verifier().clone()),
            ],
            witnesses: vec![("province".into(), w.verifier())],
        };
        let back = TrustedKeys::parse(&keys.format()).unwrap();
        assert_eq!(back, keys);
        let rekeyed = signer("coord/ag/district:x", 9).verifier().to_string();
        let served = vec![
            ("province".to_owned(), a.verifier().to_string()),
            ("district:x".to_owned(), rekeyed.clone()),
        ];
        let m = back.mismatches(&served);
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].office.as_str(), m[0].served.as_str()),
            ("district:x", rekeyed.as_str())
        );
        let mut pinned = back.clone();
        assert!(pinned.pin_new(&served).unwrap().is_empty());
        assert_eq!(pinned, back, "a trusted key is never replaced");
    }

    #[test]
    fn given_an_office_checkpoint_without_the_hubs_cosignature_then_it_is_missing() {
        let office = signer("coord/ag/district:x", 2);
        let hub = Cosigner::from_seed("coord/ag/witness", [3; 32]).unwrap();
        let keys = TrustedKeys {
            logs: vec![("district:x".into(), office.verifier().clone())],
            witnesses: vec![("province".into(), hub.verifier())],
        };
        let cp = Checkpoint {
            origin: "coord/ag/district:x".into(),
            size: 5,
            root: [7; 32],
        };
        let note = cp.sign(&office);
        let missing = keys.missing_cosignatures(&[("district:x".into(), note.clone())]);
        assert_eq!(missing.len(), 1);
        assert_eq!(
            (missing[0].witness.as_str(), missing[0].size),
            ("province", Some(5))
        );
        let mut witness = crate::cosign::Witness::new(hub);
        witness.watch(office.verifier().clone());
        let checked = witness.check(&note, &[]).unwrap();
        let cosigned = witness.cosign(&note, &checked, 1);
        assert!(
            keys.missing_cosignatures(&[("district:x".into(), cosigned)])
                .is_empty()
        );
    }

    #[test]
    fn given_the_provinces_checkpoint_then_every_offices_cosignature_is_required_and_each_missing_one_named()
     {
        let province = signer("coord/ag/province", 1);
        let x = Cosigner::from_seed("coord/ag/district:x/witness", [5; 32]).unwrap();
        let y = Cosigner::from_seed("coord/ag/district:y/witness", [6; 32]).unwrap();
        let hub = Cosigner::from_seed("coord/ag/witness", [3; 32]).unwrap();
        let keys = TrustedKeys {
            logs: vec![("province".into(), province.verifier().clone())],
            witnesses: vec![
                ("province".into(), hub.verifier()),
                ("district:x".into(), x.verifier()),
                ("district:y".into(), y.verifier()),
            ],
        };
        let cp = Checkpoint {
            origin: "coord/ag/province".into(),
            size: 9,
            root: [1; 32],
        };
        let note = cp.sign(&province);
        let mut by_x = crate::cosign::Witness::new(x);
        by_x.watch(province.verifier().clone());
        let checked = by_x.check(&note, &[]).unwrap();
        let cosigned_by_x = by_x.cosign(&note, &checked, 1);
        let missing = keys.missing_cosignatures(&[("province".into(), cosigned_by_x)]);
        let names: Vec<&str> = missing.iter().map(|m| m.witness.as_str()).collect();
        assert_eq!(names, ["district:y"], "{missing:?}");
    }

    #[test]
    fn given_served_checkpoints_then_only_cosigned_ones_at_least_the_exports_latest_are_witnessed()
    {
        let office = signer("coord/ag/district:x", 2);
        let hub = Cosigner::from_seed("coord/ag/witness", [3; 32]).unwrap();
        let keys = TrustedKeys {
            logs: vec![("district:x".into(), office.verifier().clone())],
            witnesses: vec![("province".into(), hub.verifier())],
        };
        let mut witness = crate::cosign::Witness::new(hub);
        witness.watch(office.verifier().clone());
        let note = |size| {
            let note = Checkpoint {
                origin: "coord/ag/district:x".into(),
                size,
                root: [size as u8; 32],
            }
            .sign(&office);
            (
                note.clone(),
                witness.cosign(&note, &witness.check(&note, &[]).unwrap(), 1),
            )
        };
        let ((at_5, cosigned_5), (at_8, cosigned_8)) = (note(5), note(8));
        // An export of as many entries as its latest checkpoint covers.
        let export = |checkpoints: Vec<String>| {
            let size = checkpoints.last().and_then(|n| size_of(n)).unwrap_or(0);
            let entries = (1..=size)
                .map(|commit| crate::export::Entry::Unreadable {
                    position: coord_log::EventPosition { commit, index: 0 },
                    reason: String::new(),
                })
                .collect();
            let log = OfficeLog {
                entries,
                checkpoints,
                leaves: Vec::new(),
                leaf_events: Vec::new(),
            };
            BTreeMap::from([("district:x".to_owned(), log)])
        };
        let served = |note: &str| vec![("district:x".to_owned(), note.to_owned())];
        // The latest, cosigned: witnessed, nothing missing.
        let (witnessed, missing) = keys.witnessed(
            &served(&cosigned_8),
            &export(vec![at_5.clone(), at_8.clone()]),
        );
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(witnessed.get("district:x"), Some(&cosigned_8));
        // An older cosigned checkpoint served as the latest: the export's latest is not witnessed.
        let (witnessed, missing) = keys.witnessed(
            &served(&cosigned_5),
            &export(vec![at_5.clone(), at_8.clone()]),
        );
        assert!(witnessed.is_empty());
        assert_eq!(
            (missing.len(), missing[0].size),
            (1, Some(8)),
            "{missing:?}"
        );
        // Newer than the export (signed while it was read): not checked against it, and
        // said, not taken for a break.
        let (witnessed, missing) =
            keys.witnessed(&served(&cosigned_8), &export(vec![at_5.clone()]));
        assert!(witnessed.is_empty());
        assert!(missing[0].why.contains("run again"), "{missing:?}");
        // Not cosigned: missing, and not witnessed.
        let (witnessed, missing) = keys.witnessed(&served(&at_8), &export(vec![at_8.clone()]));
        assert!(witnessed.is_empty());
        assert_eq!(missing.len(), 1);
    }
}
