//! Each way of tampering with a log is detected at the right leaf, and an untouched log
//! is intact (pure: the verifier on an export built in memory; the end-to-end tests
//! in `tests/tests/audit.rs` do the same against real processes).

use chrono::{NaiveDate, TimeZone, Utc};
use coord_audit::export::{Entry, Export, OfficeLog};
use coord_audit::verify::{BreakKind, Report, Trust, verify_office};
use coord_audit::{Checkpoint, Signer, Tree, Verifier, leaf_hash_of};
use coord_log::{EventPosition, RecordedEvent};
use serde_json::json;
use uuid::Uuid;

const ORIGIN: &str = "coord/an-giang/province";

fn event(i: u64) -> RecordedEvent {
    let stream = i % 4;
    RecordedEvent {
        role: None,
        event_id: Uuid::from_u128(1000 + i as u128),
        stream_id: format!("inspection-s{stream}").parse().unwrap(),
        stream_version: i / 4 + 1,
        event_type: "InspectionScheduled".into(),
        schema_version: 1,
        occurred_at: NaiveDate::from_ymd_opt(2022, 1, 1).unwrap(),
        recorded_at: Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, i as u32 % 60)
            .unwrap(),
        office: "province".into(),
        actor: "reviewer".into(),
        correlation_id: Uuid::from_u128(i as u128),
        causation_id: Uuid::from_u128(i as u128),
        payload: json!({"n": i, "unit": "long-xuyen"}),
        position: Some(EventPosition {
            commit: i + 1,
            index: 0,
        }),
    }
}

/// A log of `n` events signed every 8 events (and at the end), as the auditor keeps it.
fn signed_log(signer: &Signer, events: Vec<RecordedEvent>) -> OfficeLog {
    let tree = Tree::from_leaves(events.iter().map(leaf_hash_of));
    let mut sizes: Vec<u64> = (8..=tree.len()).step_by(8).collect();
    if sizes.last() != Some(&tree.len()) {
        sizes.push(tree.len());
    }
    let checkpoints = sizes
        .iter()
        .map(|&size| {
            Checkpoint {
                origin: ORIGIN.into(),
                size,
                root: tree.root(size).unwrap(),
            }
            .sign(signer)
        })
        .collect();
    OfficeLog {
        entries: events.into_iter().map(Entry::Event).collect(),
        checkpoints,
        leaves: tree.leaves().to_vec(),
        leaf_events: Vec::new(),
    }
}

fn setup() -> (Signer, Vec<Verifier>, OfficeLog) {
    let signer = Signer::from_seed(ORIGIN, [3; 32]).unwrap();
    let verifiers = vec![signer.verifier().clone()];
    let log = signed_log(&signer, (0..30).map(event).collect());
    (signer, verifiers, log)
}

fn check(log: &OfficeLog, verifiers: &[Verifier], known: Option<&OfficeLog>) -> Report {
    verify_office(
        "province",
        log,
        &Trust {
            verifiers,
            known,
            witnessed: None,
        },
    )
}

fn events_mut(log: &mut OfficeLog) -> Vec<&mut RecordedEvent> {
    log.entries
        .iter_mut()
        .filter_map(|e| match e {
            Entry::Event(e) => Some(e),
            Entry::Unreadable { .. } => None,
        })
        .collect()
}

fn assert_break(report: &Report, kind: BreakKind, leaf: u64) {
    let b = report
        .broken
        .as_ref()
        .unwrap_or_else(|| panic!("not detected: {report:?}"));
    assert_eq!((b.kind, b.leaf_index), (kind, Some(leaf)), "{b:?}");
}

#[test]
fn given_an_untouched_log_then_it_is_intact_with_every_checkpoint_checked() {
    let (_, verifiers, log) = setup();
    let report = check(&log, &verifiers, None);
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.leaves, report.checkpoints, report.signed_size),
        (30, 4, 30)
    );
    assert_eq!(report.consistency_checks, 3);
}

#[test]
fn given_a_changed_payload_then_the_break_is_at_that_event() {
    let (_, verifiers, mut log) = setup();
    events_mut(&mut log)[13].payload["n"] = json!(999);
    let report = check(&log, &verifiers, None);
    assert_break(&report, BreakKind::Changed, 13);
    assert_eq!(report.broken.unwrap().event_id, Some(Uuid::from_u128(1013)));
}

#[test]
fn given_a_removed_event_then_the_break_is_where_it_was() {
    let (_, verifiers, mut log) = setup();
    log.entries.remove(17);
    assert_break(&check(&log, &verifiers, None), BreakKind::Removed, 17);
}

#[test]
fn given_two_swapped_events_then_the_break_is_at_the_first() {
    let (_, verifiers, mut log) = setup();
    log.entries.swap(9, 10);
    assert_break(&check(&log, &verifiers, None), BreakKind::Swapped, 9);
}

#[test]
fn given_an_event_injected_in_the_past_then_the_break_is_where_it_was_slipped_in() {
    let (_, verifiers, mut log) = setup();
    let mut forged = event(5);
    forged.event_id = Uuid::from_u128(77);
    forged.stream_version = 9;
    log.entries.insert(5, Entry::Event(forged));
    assert_break(&check(&log, &verifiers, None), BreakKind::Injected, 5);
}

#[test]
fn given_a_copy_of_an_event_appended_after_the_last_checkpoint_then_it_is_caught() {
    let (_, verifiers, mut log) = setup();
    let mut replay = event(2);
    replay.event_id = Uuid::from_u128(4242);
    log.entries.push(Entry::Event(replay));
    assert_break(&check(&log, &verifiers, None), BreakKind::Injected, 30);
}

#[test]
fn given_an_unreadable_entry_then_it_is_reported_at_its_position() {
    let (_, verifiers, mut log) = setup();
    let position = EventPosition {
        commit: 31,
        index: 0,
    };
    log.entries.push(Entry::Unreadable {
        position,
        reason: "not JSON".into(),
    });
    let report = check(&log, &verifiers, None);
    assert_break(&report, BreakKind::Unreadable, 30);
    assert_eq!(report.broken.unwrap().position, Some(position));
}

#[test]
fn given_a_rewritten_history_resigned_with_the_office_key_then_a_trusted_earlier_state_catches_it()
{
    let (signer, verifiers, before) = setup();
    let mut events: Vec<RecordedEvent> = (0..30).map(event).collect();
    events[4].payload["n"] = json!(-1);
    let mut rewritten = signed_log(&signer, events);
    // The rewritten log verifies on its own: only an earlier state can tell.
    assert!(check(&rewritten, &verifiers, None).is_intact());
    let report = check(&rewritten, &verifiers, Some(&before));
    assert_break(&report, BreakKind::Rewritten, 4);
    // Without the earlier leaves, the earlier checkpoints alone still place it.
    rewritten.leaves.clear();
    let known = OfficeLog {
        leaves: Vec::new(),
        ..before
    };
    let b = check(&rewritten, &verifiers, Some(&known)).broken.unwrap();
    assert_eq!((b.kind, b.window), (BreakKind::Rewritten, Some([0, 8])));
}

#[test]
fn given_a_rewritten_history_resigned_at_a_size_the_witnesses_cosigned_then_it_is_caught() {
    let (signer, verifiers, before) = setup();
    let cosigned = before.checkpoints.last().unwrap().clone();
    let mut events: Vec<RecordedEvent> = (0..30).map(event).collect();
    events[21].payload["n"] = json!(-1);
    // Rewritten and signed again, its own checkpoints dropped but the last one.
    let mut rewritten = signed_log(&signer, events);
    rewritten.checkpoints.drain(..3);
    let witnessed = |note: &str| {
        let trust = Trust {
            verifiers: &verifiers,
            known: None,
            witnessed: Some(note),
        };
        verify_office("province", &rewritten, &trust)
    };
    let b = witnessed(&cosigned).broken.unwrap();
    assert_eq!(
        (b.kind, b.window),
        (BreakKind::Rewritten, Some([0, 30])),
        "{b:?}"
    );
    // The log's own latest checkpoint, cosigned, is no break.
    assert!(witnessed(rewritten.checkpoints.last().unwrap()).is_intact());
    // A cosigned checkpoint of another log is no proof of this one.
    let other = Signer::from_seed("other.example/log", [4; 32]).unwrap();
    let foreign = Checkpoint {
        origin: "other.example/log".into(),
        size: 30,
        root: [0; 32],
    };
    let mut keys = verifiers.clone();
    keys.push(other.verifier().clone());
    let trust = Trust {
        verifiers: &keys,
        known: None,
        witnessed: Some(&foreign.sign(&other)),
    };
    let b = verify_office("province", &before, &trust).broken.unwrap();
    assert_eq!(b.kind, BreakKind::BadCheckpoint, "{b:?}");
}

#[test]
fn given_tampering_without_recorded_leaves_then_the_checkpoint_window_is_reported() {
    let (_, verifiers, mut log) = setup();
    log.leaves.clear();
    events_mut(&mut log)[20].actor = "someone else".into();
    let b = check(&log, &verifiers, None).broken.unwrap();
    assert_eq!((b.kind, b.window), (BreakKind::Changed, Some([16, 24])));
}

#[test]
fn given_recorded_leaves_that_do_not_match_the_signatures_then_they_are_not_trusted() {
    let (_, verifiers, mut log) = setup();
    log.leaves[3] = [0; 32];
    events_mut(&mut log)[3].payload["n"] = json!(5);
    let b = check(&log, &verifiers, None).broken.unwrap();
    assert_eq!((b.kind, b.window), (BreakKind::Changed, Some([0, 8])));
}

#[test]
fn given_a_checkpoint_signed_by_another_key_then_it_is_a_bad_checkpoint() {
    let (_, verifiers, mut log) = setup();
    let other = Signer::from_seed(ORIGIN, [4; 32]).unwrap();
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: 30,
        root: [0; 32],
    };
    log.checkpoints.push(cp.sign(&other));
    let b = check(&log, &verifiers, None).broken.unwrap();
    assert_eq!(b.kind, BreakKind::BadCheckpoint);
    assert!(b.detail.contains("#5"), "{}", b.detail);
}

#[test]
fn given_an_export_when_written_and_read_back_then_it_is_the_same() {
    let (_, _, log) = setup();
    let mut export = Export::default();
    export.offices.insert("province".into(), log);
    export.keys.push(("province".into(), "k".into()));
    let mut bytes = Vec::new();
    export.write(&mut bytes).unwrap();
    assert_eq!(Export::read(bytes.as_slice()).unwrap(), export);
    let err = Export::read(&b"{\"kind\":\"nope\"}\n"[..])
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1"), "{err}");
}
