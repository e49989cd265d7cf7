//! The export format: NDJSON, one [`Line`] per line, holding each office's log (its
//! events in log order, and any unreadable entry), its signed checkpoints, and the leaf
//! hashes its auditor recorded. `coordctl audit export` writes it; `coordctl audit
//! verify` reads the same lines online (from the gateway) or offline (from a file).
//!
//! Nothing in an export is trusted by itself: signatures are checked against keys the
//! reviewer supplies, and recorded leaf hashes are used only where they reproduce a
//! signed root.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use coord_log::{EventPosition, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::tree::Hash;
use crate::wire::LeafIdentity;
use crate::{b64, unb64};

/// Leaf hashes per `leaves` line.
const LEAVES_PER_LINE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Line {
    /// An office's verifier key as the exporter saw it (informational: verification
    /// uses the keys the reviewer trusts).
    Key { office: String, key: String },
    /// One event of the log of `log` (an office), with its position.
    Event { log: String, event: RecordedEvent },
    /// An entry of the log of `log` that is not a readable event.
    Unreadable {
        log: String,
        position: EventPosition,
        reason: String,
    },
    /// One signed checkpoint of `office`'s tree, as published (a C2SP signed note).
    Checkpoint { office: String, note: String },
    /// Leaf hashes `office`'s auditor recorded from leaf `from` on: base64 of the
    /// concatenated 32-byte hashes, and (from exports of issue 19 on) the identity of
    /// the event recorded at each, so a verifier names a missing event by what was
    /// signed there.
    Leaves {
        office: String,
        from: u64,
        hashes: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        events: Vec<LeafIdentity>,
    },
}

/// One entry of a log, in log order.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Event(RecordedEvent),
    Unreadable {
        position: EventPosition,
        reason: String,
    },
}

/// Everything about one office's log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfficeLog {
    pub entries: Vec<Entry>,
    /// Signed notes, in publication order.
    pub checkpoints: Vec<String>,
    /// The leaf hashes the office's auditor recorded, from leaf 0.
    pub leaves: Vec<Hash>,
    /// The identity of the event recorded at each leaf, from leaf 0 (empty, or
    /// shorter than `leaves`, in an older export).
    pub leaf_events: Vec<LeafIdentity>,
}

/// A whole export: every office's log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Export {
    /// (office, verifier key) as exported.
    pub keys: Vec<(String, String)>,
    pub offices: BTreeMap<String, OfficeLog>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("export line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("cannot read the export: {0}")]
    Io(#[from] std::io::Error),
}

impl Export {
    /// Adds one line.
    pub fn push(&mut self, line: Line) -> Result<(), String> {
        match line {
            Line::Key { office, key } => self.keys.push((office, key)),
            Line::Event { log, event } => {
                self.office(log).entries.push(Entry::Event(event));
            }
            Line::Unreadable {
                log,
                position,
                reason,
            } => self
                .office(log)
                .entries
                .push(Entry::Unreadable { position, reason }),
            Line::Checkpoint { office, note } => self.office(office).checkpoints.push(note),
            Line::Leaves {
                office,
                from,
                hashes,
                events,
            } => {
                let log = self.office(office);
                if from != log.leaves.len() as u64 {
                    return Err(format!(
                        "leaves from {from} do not follow the {} already read",
                        log.leaves.len()
                    ));
                }
                if log.leaf_events.len() == log.leaves.len() {
                    log.leaf_events.extend(events);
                }
                log.leaves.extend(decode_hashes(&hashes)?);
            }
        }
        Ok(())
    }

    fn office(&mut self, office: String) -> &mut OfficeLog {
        self.offices.entry(office).or_default()
    }

    /// Reads NDJSON lines (blank lines are skipped).
    pub fn read(reader: impl BufRead) -> Result<Self, ExportError> {
        let mut export = Self::default();
        for (i, text) in reader.lines().enumerate() {
            let text = text?;
            if text.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&text).map_err(|e| ExportError::Line {
                line: i + 1,
                reason: e.to_string(),
            })?;
            export.push(line).map_err(|reason| ExportError::Line {
                line: i + 1,
                reason,
            })?;
        }
        Ok(export)
    }

    /// The lines of this export, in the order [`Export::read`] expects.
    pub fn lines(&self) -> Vec<Line> {
        let mut out: Vec<Line> = self
            .keys
            .iter()
            .map(|(office, key)| Line::Key {
                office: office.clone(),
                key: key.clone(),
            })
            .collect();
        for (office, log) in &self.offices {
            out.extend(log.entries.iter().map(|e| entry_line(office, e)));
            out.extend(log.checkpoints.iter().map(|note| Line::Checkpoint {
                office: office.clone(),
                note: note.clone(),
            }));
            out.extend(leaves_lines(office, 0, &log.leaves, &log.leaf_events));
        }
        out
    }

    /// Writes the export as NDJSON.
    pub fn write(&self, mut w: impl Write) -> std::io::Result<()> {
        for line in self.lines() {
            serde_json::to_writer(&mut w, &line)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }
}

/// The line of one log entry.
pub fn entry_line(office: &str, entry: &Entry) -> Line {
    match entry {
        Entry::Event(e) => Line::Event {
            log: office.into(),
            event: e.clone(),
        },
        Entry::Unreadable { position, reason } => Line::Unreadable {
            log: office.into(),
            position: *position,
            reason: reason.clone(),
        },
    }
}

/// `leaves` lines for hashes starting at leaf `from`, with the recorded identities
/// (`events[i]` is leaf `from + i`'s; fewer or none in an older export).
pub fn leaves_lines(
    office: &str,
    from: u64,
    hashes: &[Hash],
    events: &[LeafIdentity],
) -> Vec<Line> {
    hashes
        .chunks(LEAVES_PER_LINE)
        .enumerate()
        .map(|(i, chunk)| {
            let start = i * LEAVES_PER_LINE;
            let end = (start + chunk.len()).min(events.len());
            Line::Leaves {
                office: office.into(),
                from: from + start as u64,
                hashes: b64(&chunk.concat()),
                events: events.get(start..end).unwrap_or_default().to_vec(),
            }
        })
        .collect()
}

fn decode_hashes(text: &str) -> Result<Vec<Hash>, String> {
    let bytes = unb64(text).map_err(|e| format!("leaf hashes are not base64: {e}"))?;
    if bytes.len() % 32 != 0 {
        return Err("leaf hashes are not a whole number of 32-byte hashes".into());
    }
    Ok(bytes
        .chunks(32)
        .map(|c| c.try_into().expect("32-byte chunks"))
        .collect())
}
