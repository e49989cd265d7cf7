//! The verifier: recomputes an office's tree from its log, checks every checkpoint's
//! signature, every checkpoint's root, the consistency of successive checkpoints, and
//! the log's own structure, then reports intact or the **first** place it breaks and why.
//!
//! How a break is located:
//! - signed roots decide *whether* the log matches what was signed, but only to within
//!   a checkpoint window;
//! - the leaf hashes the auditor recorded (or those of an earlier, trusted export), once
//!   they reproduce the signed roots, are as good as signed, and comparing them with the
//!   recomputed leaves gives the exact leaf and tells a changed event from a removed, an
//!   injected or two swapped ones;
//! - the log's structure (each stream's versions 1, 2, 3… without gap or repeat, event
//!   ids unique, every entry readable) catches what was slipped in after the last
//!   checkpoint, e.g. a raw message published on a log subject.

use std::collections::HashMap;

use coord_log::{EventPosition, RecordedEvent};
use serde::Serialize;
use uuid::Uuid;

use crate::checkpoint::Checkpoint;
use crate::export::{Entry, OfficeLog};
use crate::leaf::leaf_hash_of;
use crate::note::Verifier;
use crate::tree::{Hash, Tree, verify_consistency};
use crate::wire::LeafIdentity;

/// What kind of break was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// An event's content differs from what was signed.
    Changed,
    /// A signed event is missing.
    Removed,
    /// Two events are in each other's place.
    Swapped,
    /// An event that was not signed there (or repeats a stream version or an id).
    Injected,
    /// A log entry is not a readable event.
    Unreadable,
    /// A checkpoint does not verify (signature, key, origin, format, sizes).
    BadCheckpoint,
    /// The log's checkpoints verify, but one you trusted no longer matches: the
    /// history was rewritten and re-signed.
    Rewritten,
}

/// Where and why the log breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    pub kind: BreakKind,
    /// The exact leaf, when it can be told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_index: Option<u64>,
    /// Otherwise the leaves `[from, to)` the break lies in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<EventPosition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The event's type, when the event is named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Whether the event named is the one the auditor recorded (signed) at that leaf,
    /// rather than the one the log holds there now: so for a removed or changed event.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub as_signed: bool,
    pub detail: String,
}

impl Break {
    fn new(kind: BreakKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            leaf_index: None,
            window: None,
            position: None,
            event_id: None,
            stream: None,
            event_type: None,
            as_signed: false,
            detail: detail.into(),
        }
    }

    fn at(mut self, index: u64, walk: &Walk<'_>) -> Self {
        self.leaf_index = Some(index);
        if let Some(e) = walk.events.get(index as usize) {
            self.named(e);
        }
        self
    }

    fn named(&mut self, e: &RecordedEvent) {
        self.position = e.position;
        self.event_id = Some(e.event_id);
        self.stream = Some(format!("{} v{}", e.stream_id, e.stream_version));
        self.event_type = Some(e.event_type.clone());
    }

    /// Names the event recorded at the leaf: what was signed there, not what stands
    /// there now (a later event, after a removal).
    fn named_as_recorded(mut self, recorded: Option<&LeafIdentity>) -> Self {
        if let Some(r) = recorded {
            if self.event_id != Some(r.id) {
                self.position = None;
            }
            self.event_id = Some(r.id);
            self.stream = Some(format!("{} v{}", r.stream, r.version));
            self.event_type = Some(r.event_type.clone());
            self.as_signed = true;
        }
        self
    }

    /// The first leaf the break can be at (for ordering breaks).
    fn first_leaf(&self) -> u64 {
        self.leaf_index.or(self.window.map(|w| w[0])).unwrap_or(0)
    }
}

/// The outcome for one office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub office: String,
    pub origin: Option<String>,
    /// Events in the log (leaves recomputed).
    pub leaves: u64,
    /// Signed checkpoints checked.
    pub checkpoints: usize,
    /// The largest signed tree size.
    pub signed_size: u64,
    /// Consistency proofs checked between successive checkpoints.
    pub consistency_checks: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<Break>,
}

impl Report {
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// What the reviewer trusts.
#[derive(Debug, Clone, Default)]
pub struct Trust<'a> {
    /// Keys whose signatures count (a checkpoint's key is named after its origin).
    pub verifiers: &'a [Verifier],
    /// An earlier state of this office's log that was verified: its checkpoints and
    /// recorded leaves are taken as true.
    pub known: Option<&'a OfficeLog>,
    /// The office's latest checkpoint as its witnesses cosigned it (the caller checked
    /// the cosignatures): taken as true like a known one, so a log rewritten and signed
    /// again at a size the witnesses saw is `Rewritten`, not intact.
    pub witnessed: Option<&'a str>,
}

/// The recomputed leaves of a log and what its structure says.
struct Walk<'a> {
    events: Vec<&'a RecordedEvent>,
    tree: Tree,
    structural: Option<Break>,
}

fn walk(entries: &[Entry]) -> Walk<'_> {
    let mut events: Vec<&RecordedEvent> = Vec::with_capacity(entries.len());
    let mut tree = Tree::new();
    let mut first: Option<Break> = None;
    let mut versions: HashMap<&str, u64> = HashMap::new();
    let mut ids: HashMap<Uuid, u64> = HashMap::new();
    for entry in entries {
        let index = tree.len();
        let problem = match entry {
            Entry::Unreadable { position, reason } => {
                let mut b = Break::new(
                    BreakKind::Unreadable,
                    format!(
                        "the log entry at {position} is not a readable event ({reason}): written around the services, e.g. on a log subject"
                    ),
                );
                b.position = Some(*position);
                b.leaf_index = Some(index);
                Some(b)
            }
            Entry::Event(e) => {
                tree.push(leaf_hash_of(e));
                let last = versions
                    .insert(e.stream_id.as_str(), e.stream_version)
                    .unwrap_or(0);
                let seen = ids.insert(e.event_id, index);
                let why = if let Some(j) = seen {
                    Some((
                        BreakKind::Injected,
                        format!(
                            "event id {} already appeared at leaf {j}: replayed or injected",
                            e.event_id
                        ),
                    ))
                } else if e.stream_version <= last {
                    Some((
                        BreakKind::Injected,
                        format!(
                            "stream {} repeats version {} after version {last}: slipped in or reordered",
                            e.stream_id, e.stream_version
                        ),
                    ))
                } else if e.stream_version > last + 1 {
                    Some((
                        BreakKind::Removed,
                        format!(
                            "stream {} jumps from version {last} to {}: an event is missing or out of order",
                            e.stream_id, e.stream_version
                        ),
                    ))
                } else {
                    None
                };
                why.map(|(kind, detail)| (kind, detail, index))
                    .map(|(kind, detail, i)| {
                        let mut b = Break::new(kind, detail);
                        b.leaf_index = Some(i);
                        b.named(e);
                        b
                    })
            }
        };
        if let Entry::Event(e) = entry {
            events.push(e);
        }
        if first.is_none() {
            first = problem;
        }
    }
    Walk {
        events,
        tree,
        structural: first,
    }
}

/// A signed checkpoint and whether the reviewer already trusted it.
struct Signed {
    checkpoint: Checkpoint,
    trusted: bool,
    label: String,
}

/// How the log's own checkpoints are named in a break.
const OWN: &str = "checkpoint";

/// Opens every note; the first that fails is the break.
fn open_all(
    notes: &[String],
    verifiers: &[Verifier],
    whose: &str,
) -> Result<(Option<String>, Vec<Signed>), Box<Break>> {
    let Some(origin) = notes.first().and_then(|n| Checkpoint::origin_of(n)) else {
        return Ok((None, Vec::new()));
    };
    let trusted = whose != OWN;
    let mut out: Vec<Signed> = Vec::new();
    for (i, note) in notes.iter().enumerate() {
        let checkpoint = Checkpoint::open(note, origin, verifiers).map_err(|e| {
            Break::new(
                BreakKind::BadCheckpoint,
                format!("{whose} #{} of `{origin}`: {e}", i + 1),
            )
        })?;
        if let Some(prev) = out.last()
            && checkpoint.size < prev.checkpoint.size
        {
            return Err(Box::new(Break::new(
                BreakKind::BadCheckpoint,
                format!(
                    "{whose} #{} commits to {} leaves, fewer than the {} of the one before: the log shrank",
                    i + 1,
                    checkpoint.size,
                    prev.checkpoint.size
                ),
            )));
        }
        out.push(Signed {
            label: format!("{whose} #{} (size {})", i + 1, checkpoint.size),
            checkpoint,
            trusted,
        });
    }
    Ok((Some(origin.to_owned()), out))
}

/// The prefix of `leaves` that reproduces every root in `signed` it covers, if they all do.
fn authenticated<'a>(leaves: &'a [Hash], signed: &[&Signed]) -> Option<&'a [Hash]> {
    let tree = Tree::from_leaves(leaves.iter().copied());
    let mut covered = 0;
    for s in signed {
        let size = s.checkpoint.size;
        if size <= tree.len() {
            if tree.root(size).ok()? != s.checkpoint.root {
                return None;
            }
            covered = covered.max(size);
        }
    }
    Some(&leaves[..covered as usize])
}

/// Authenticated leaf hashes and the identities recorded with them.
#[derive(Clone, Copy)]
struct Expected<'a> {
    hashes: &'a [Hash],
    recorded: &'a [LeafIdentity],
}

/// The first leaf where the log differs from the authenticated leaves, classified; a
/// removed, changed or swapped event is named as recorded at that leaf.
fn diff(walk: &Walk<'_>, expected: Expected<'_>) -> Option<Break> {
    let (recorded, expected) = (expected.recorded, expected.hashes);
    let got = walk.tree.leaves();
    let i = (0..expected.len()).find(|&i| got.get(i) != Some(&expected[i]))?;
    let (g, e) = (|k: usize| got.get(k), |k: usize| expected.get(k));
    let (kind, detail) = if g(i).is_none() {
        (
            BreakKind::Removed,
            format!(
                "the log ends after {} events but leaf {i} was signed: events removed",
                got.len()
            ),
        )
    } else if g(i) == e(i + 1) && g(i + 1) == e(i) {
        (
            BreakKind::Swapped,
            format!("leaves {i} and {} are in each other's place", i + 1),
        )
    } else if g(i) == e(i + 1) {
        (
            BreakKind::Removed,
            format!("the event signed as leaf {i} is missing"),
        )
    } else if g(i + 1) == e(i) {
        (
            BreakKind::Injected,
            format!("leaf {i} was not signed: an event was slipped in before the one signed there"),
        )
    } else {
        (
            BreakKind::Changed,
            format!(
                "the canonical bytes of leaf {i} differ from those signed: the event was changed"
            ),
        )
    };
    let b = Break::new(kind, detail).at(i as u64, walk);
    Some(match kind {
        BreakKind::Injected => b,
        _ => b.named_as_recorded(recorded.get(i)),
    })
}

/// Checks each signed root against the recomputed tree; the first mismatch as a window.
fn roots(walk: &Walk<'_>, signed: &[&Signed]) -> Option<Break> {
    let mut good = 0;
    for s in signed {
        let cp = &s.checkpoint;
        let matches = walk.tree.root(cp.size).ok() == Some(cp.root);
        if !matches {
            let (kind, why) = if cp.size > walk.tree.len() {
                (
                    BreakKind::Removed,
                    format!(
                        "{} commits to {} leaves but the log has {}: events removed",
                        s.label,
                        cp.size,
                        walk.tree.len()
                    ),
                )
            } else if s.trusted {
                (
                    BreakKind::Rewritten,
                    format!(
                        "{} no longer matches the log: the history before it was rewritten (and re-signed, if the log's own checkpoints verify)",
                        s.label
                    ),
                )
            } else {
                (
                    BreakKind::Changed,
                    format!(
                        "{} does not match the log: something in leaves {good}..{} changed, was removed, swapped or slipped in",
                        s.label, cp.size
                    ),
                )
            };
            let mut b = Break::new(kind, why);
            b.window = Some([good, cp.size.max(good)]);
            return Some(b);
        }
        good = cp.size;
    }
    None
}

/// Checks a consistency proof between each pair of successive checkpoints.
fn consistency(walk: &Walk<'_>, signed: &[&Signed]) -> Result<usize, Box<Break>> {
    let mut checks = 0;
    for pair in signed.windows(2) {
        let (a, b) = (&pair[0].checkpoint, &pair[1].checkpoint);
        if a.size == 0 {
            continue;
        }
        let proof = walk
            .tree
            .consistency(a.size, b.size)
            .map_err(|e| Box::new(Break::new(BreakKind::BadCheckpoint, e.to_string())))?;
        verify_consistency(a.size, &a.root, b.size, &b.root, &proof).map_err(|e| {
            let mut br = Break::new(
                BreakKind::Rewritten,
                format!(
                    "{} is not an extension of {}: {e}",
                    pair[1].label, pair[0].label
                ),
            );
            br.window = Some([0, a.size]);
            Box::new(br)
        })?;
        checks += 1;
    }
    Ok(checks)
}

/// Verifies one office's log.
pub fn verify_office(office: &str, log: &OfficeLog, trust: &Trust<'_>) -> Report {
    let walk = walk(&log.entries);
    let mut report = Report {
        office: office.into(),
        origin: None,
        leaves: walk.tree.len(),
        checkpoints: 0,
        signed_size: 0,
        consistency_checks: 0,
        broken: None,
    };
    let opened = open_all(&log.checkpoints, trust.verifiers, OWN).and_then(|(origin, own)| {
        let known = trust.known.map(|k| k.checkpoints.as_slice()).unwrap_or(&[]);
        let (_, mut known) = open_all(known, trust.verifiers, "trusted checkpoint")?;
        let witnessed: Vec<String> = trust.witnessed.map(str::to_owned).into_iter().collect();
        let (of, witnessed) = open_all(&witnessed, trust.verifiers, "cosigned checkpoint")?;
        if let (Some(of), Some(origin)) = (&of, &origin)
            && of != origin
        {
            return Err(Box::new(Break::new(
                BreakKind::BadCheckpoint,
                format!("the cosigned checkpoint is of log `{of}`, not `{origin}`"),
            )));
        }
        known.extend(witnessed);
        Ok((origin, own, known))
    });
    let (origin, own, known) = match opened {
        Ok(v) => v,
        Err(b) => {
            report.broken = Some(*b);
            return report;
        }
    };
    report.origin = origin;
    report.checkpoints = own.len();
    report.signed_size = own.last().map_or(0, |s| s.checkpoint.size);
    let mut all: Vec<&Signed> = own.iter().chain(known.iter()).collect();
    all.sort_by_key(|s| (s.checkpoint.size, !s.trusted));
    let own_refs: Vec<&Signed> = own.iter().collect();
    let known_refs: Vec<&Signed> = known.iter().collect();
    // Exact leaves: an earlier trusted state first, else what the auditor recorded.
    let expected = trust
        .known
        .and_then(|k| {
            authenticated(&k.leaves, &known_refs).map(|hashes| Expected {
                hashes,
                recorded: &k.leaf_events,
            })
        })
        .filter(|e| !e.hashes.is_empty())
        .or_else(|| {
            authenticated(&log.leaves, &all).map(|hashes| Expected {
                hashes,
                recorded: &log.leaf_events,
            })
        });
    // At the same leaf the hash comparison says more than the structure.
    let exact = [
        expected.and_then(|e| diff(&walk, e)),
        walk.structural.clone(),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|b| b.leaf_index);
    let window = roots(&walk, &all);
    let mut broken = match (exact, window) {
        (Some(e), Some(w))
            if w.first_leaf() < e.first_leaf()
                && w.window.is_some_and(|win| e.first_leaf() >= win[1]) =>
        {
            Some(w)
        }
        (Some(mut e), Some(w)) => {
            if w.kind == BreakKind::Rewritten {
                e.detail = format!("{}; {}", e.detail, w.detail);
                e.kind = BreakKind::Rewritten;
            }
            Some(e)
        }
        (e, w) => e.or(w),
    };
    if broken.is_none() {
        match consistency(&walk, &own_refs) {
            Ok(n) => report.consistency_checks = n,
            Err(b) => broken = Some(*b),
        }
    }
    report.broken = broken;
    report
}

/// Verifies every office of an export (`known`: an earlier verified export;
/// `witnessed`: each office's latest checkpoint as its witnesses cosigned it).
pub fn verify_all(
    offices: &std::collections::BTreeMap<String, OfficeLog>,
    verifiers: &[Verifier],
    known: Option<&std::collections::BTreeMap<String, OfficeLog>>,
    witnessed: &std::collections::BTreeMap<String, String>,
) -> Vec<Report> {
    offices
        .iter()
        .map(|(office, log)| {
            let trust = Trust {
                verifiers,
                known: known.and_then(|k| k.get(office)),
                witnessed: witnessed.get(office).map(String::as_str),
            };
            verify_office(office, log, &trust)
        })
        .collect()
}
