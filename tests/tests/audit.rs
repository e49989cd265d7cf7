//! The transparency log end to end: every process real (nats-server, the command
//! services, the projector, the auditor, the gateway), the reference scenario loaded
//! through the API. An untouched log verifies intact online (library and the `coordctl`
//! binary) and offline; each tampering case is found at the right leaf; a history
//! rewritten and re-signed with the office's own key is caught against an earlier
//! export; a raw message published on a log subject is caught; an inclusion proof of
//! every event and a consistency proof verify with a Python script that is not the
//! project's code; the reviewer queries return what the scenario recorded.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use coord_audit::export::{Entry, Export, OfficeLog};
use coord_audit::verify::{BreakKind, Report, verify_all};
use coord_audit::wire::{AuditEvent, AuditPage, CheckpointPage, OfficeKey, StoredCheckpoint};
use coord_audit::{Checkpoint, Signer, Tree, Verifier, leaf_hash_of};
use coord_log::RecordedEvent;
use serde_json::{Value, json};
use tests::{ServiceProcess, Stack, workspace_bin, workspace_root};

const SCENARIO: &str = include_str!("../../deploy/scenarios/an-giang-2020-2025.jsonl");
const OFFICE: &str = "province";

async fn get<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> T {
    let r = http.get(url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

async fn export(http: &reqwest::Client, base: &str) -> (String, Export) {
    let text = http
        .get(format!("{base}/v1/audit/export"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let export = Export::read(text.as_bytes()).unwrap();
    (text, export)
}

fn events(log: &OfficeLog) -> Vec<RecordedEvent> {
    log.entries
        .iter()
        .filter_map(|e| match e {
            Entry::Event(e) => Some(e.clone()),
            Entry::Unreadable { .. } => None,
        })
        .collect()
}

/// Waits (at most 30 s) until a checkpoint covers every event of the log.
async fn wait_signed(http: &reqwest::Client, base: &str) -> Export {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, export) = export(http, base).await;
        let log = &export.offices[OFFICE];
        let signed = log.checkpoints.last().map(|n| size_of(n));
        if let Some(size) = signed
            && size == log.entries.len() as u64
            && log.leaves.len() as u64 == size
        {
            return export;
        }
        assert!(
            Instant::now() < deadline,
            "the auditor did not sign the whole log: {} entries, {} leaves, last checkpoint {:?}",
            log.entries.len(),
            log.leaves.len(),
            log.checkpoints.last()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tree size of a signed checkpoint (unverified).
fn size_of(note: &str) -> u64 {
    let text = coord_audit::note::Note::parse(note).unwrap().text;
    Checkpoint::parse(&text).unwrap().size
}

fn verify(export: &Export, keys: &[Verifier], known: Option<&Export>) -> Report {
    let reports = verify_all(
        &export.offices,
        keys,
        known.map(|k| &k.offices),
        &Default::default(),
    );
    assert_eq!(reports.len(), 1);
    reports.into_iter().next().unwrap()
}

fn assert_break(report: &Report, kind: BreakKind, leaf: u64) {
    let b = report
        .broken
        .as_ref()
        .unwrap_or_else(|| panic!("not detected: {report:?}"));
    assert_eq!((b.kind, b.leaf_index), (kind, Some(leaf)), "{b:?}");
}

/// Runs `coordctl` against the gateway at `base` with `token`, its trust file in `dir`.
fn coordctl(dir: &Path, base: &str, token: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(workspace_bin("coordctl"))
        .args(["--gateway", base])
        .env("COORD_TOKEN", token)
        .env("COORD_AUDIT_TRUST", dir.join("audit-trust.keys"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs the independent verifier; installs `cryptography` into tests/.pydeps if the
/// system Python lacks it.
fn python_verify(input: &Value, dir: &Path) -> (bool, String) {
    let deps = workspace_root().join("tests/.pydeps");
    let has = Command::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !has && !deps.join("cryptography").exists() {
        let ok = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&deps)
            .arg("cryptography")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot install the Python package `cryptography`");
    }
    let file = dir.join("proofs.json");
    std::fs::write(&file, serde_json::to_vec(input).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(workspace_root().join("tests/audit/verify_proofs.py"))
        .arg(&file)
        .env("PYTHONPATH", &deps)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn scenario_lines() -> Vec<Value> {
    SCENARIO
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_scenarios_log_verifies_and_every_tampering_is_found_where_it_happened() {
    let mut stack = Stack::start();
    let audit_dir = stack.data.path().join("auditor");
    let audit_dir_text = audit_dir.display().to_string();
    let auditor: ServiceProcess = stack.spawn(
        "auditor",
        &[
            ("COORD_AUDIT_DIR", audit_dir_text.as_str()),
            ("COORD_AUDIT_CHECKPOINT_EVENTS", "50"),
            ("COORD_AUDIT_CHECKPOINT_MS", "200"),
        ],
    );
    stack.processes.push(auditor);
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    // The audit routes are reader routes: a reader's token reads them, no token is refused.
    let reader = stack.sign(OFFICE, "kiểm tra viên", coord_auth::Role::Reader);
    let http = stack.http_with(&reader);
    let anonymous = reqwest::Client::new()
        .get(format!("{base}/v1/audit/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let client = stack.client();
    let report = coordctl::load(&client, SCENARIO, false).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);

    // Given the whole scenario signed.
    let original = wait_signed(&http, &base).await;
    let (original_text, _) = (export(&http, &base).await.0, ());
    let log = &original.offices[OFFICE];
    let n = log.entries.len();
    assert!(n >= 300, "the scenario gave {n} events");
    assert!(
        log.checkpoints.len() >= 5,
        "{} checkpoints",
        log.checkpoints.len()
    );
    let served: Vec<OfficeKey> = get(&http, &format!("{base}/v1/audit/keys")).await;
    assert_eq!(served.len(), 1);
    let keys: Vec<Verifier> = vec![served[0].key.parse().unwrap()];
    let key_file = stack.data.path().join("keys.txt");
    std::fs::write(&key_file, format!("{}\n", served[0].key)).unwrap();
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(audit_dir.join("office.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode, 0o600);

    // Then it is intact, online through coordctl and offline from the export.
    let report = verify(&original, &keys, None);
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.consistency_checks, log.checkpoints.len() - 1);
    let (ok, out) = coordctl(stack.data.path(), &base, &reader, &["audit", "verify"]);
    assert!(ok && out.contains("NGUYÊN VẸN"), "{out}");
    let file = stack.data.path().join("export.ndjson");
    std::fs::write(&file, &original_text).unwrap();
    let key_arg = format!("@{}", key_file.display());
    let file_arg = file.display().to_string();
    let (ok, out) = coordctl(
        stack.data.path(),
        &base,
        &reader,
        &["audit", "verify", "--file", &file_arg, "--key", &key_arg],
    );
    assert!(ok, "{out}");

    // When the store is tampered with, the break is found at the right leaf.
    let tamper = |f: &dyn Fn(&mut Vec<Entry>)| {
        let mut t = original.clone();
        f(&mut t.offices.get_mut(OFFICE).unwrap().entries);
        t
    };
    let changed = tamper(&|e| {
        if let Entry::Event(ev) = &mut e[100] {
            ev.payload["tampered"] = json!(true);
        }
    });
    assert_break(&verify(&changed, &keys, None), BreakKind::Changed, 100);
    // A removed event is named by what was signed at its leaf (the auditor's recorded
    // identity), not by the later event now standing there.
    let removed = verify(&tamper(&|e| drop(e.remove(150))), &keys, None);
    assert_break(&removed, BreakKind::Removed, 150);
    let signed_there = events(log)[150].clone();
    let b = removed.broken.as_ref().unwrap();
    assert_eq!(b.event_id, Some(signed_there.event_id), "{b:?}");
    assert_eq!(
        b.stream,
        Some(format!(
            "{} v{}",
            signed_there.stream_id, signed_there.stream_version
        ))
    );
    assert_eq!(
        b.event_type.as_deref(),
        Some(signed_there.event_type.as_str())
    );
    assert!(b.as_signed);
    assert_break(
        &verify(&tamper(&|e| e.swap(200, 201)), &keys, None),
        BreakKind::Swapped,
        200,
    );
    let injected = tamper(&|e| {
        let Entry::Event(mut copy) = e[10].clone() else {
            panic!()
        };
        copy.event_id = uuid::Uuid::now_v7();
        e.insert(250, Entry::Event(copy));
    });
    assert_break(&verify(&injected, &keys, None), BreakKind::Injected, 250);
    // The coordctl binary reports the same, with a failing exit status.
    let bad = stack.data.path().join("tampered.ndjson");
    changed.write(std::fs::File::create(&bad).unwrap()).unwrap();
    let bad_arg = bad.display().to_string();
    let (ok, out) = coordctl(
        stack.data.path(),
        &base,
        &reader,
        &["audit", "verify", "--file", &bad_arg, "--key", &key_arg],
    );
    assert!(
        !ok && out.contains("lá (leaf) 100") && out.contains("Changed"),
        "{out}"
    );

    // A history rewritten and re-signed with the office's own key verifies by itself,
    // but not against the earlier export.
    let signer =
        Signer::from_key_text(&std::fs::read_to_string(audit_dir.join("office.key")).unwrap())
            .unwrap();
    let mut rewritten = original.clone();
    let office_log = rewritten.offices.get_mut(OFFICE).unwrap();
    if let Entry::Event(ev) = &mut office_log.entries[42] {
        ev.actor = "kẻ giả mạo".into();
    }
    let tree = Tree::from_leaves(events(office_log).iter().map(leaf_hash_of));
    office_log.leaves = tree.leaves().to_vec();
    office_log.checkpoints = office_log
        .checkpoints
        .iter()
        .map(|note| {
            let size = size_of(note);
            Checkpoint {
                origin: signer.name().into(),
                size,
                root: tree.root(size).unwrap(),
            }
            .sign(&signer)
        })
        .collect();
    assert!(verify(&rewritten, &keys, None).is_intact());
    assert_break(
        &verify(&rewritten, &keys, Some(&original)),
        BreakKind::Rewritten,
        42,
    );

    // An inclusion proof and a consistency proof verify with independent code.
    let page: CheckpointPage = get(&http, &format!("{base}/v1/audit/checkpoints")).await;
    assert_eq!(page.next_after, None);
    let checkpoints: Vec<StoredCheckpoint> = page.checkpoints;
    let (old, new) = (&checkpoints[1], checkpoints.last().unwrap());
    let note = http
        .get(format!("{base}/v1/audit/checkpoint"))
        .send()
        .await
        .unwrap();
    assert!(
        note.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(note.text().await.unwrap(), new.note);
    let decided: AuditPage = get(
        &http,
        &format!("{base}/v1/audit/events?type=DisciplineDecided&limit=1"),
    )
    .await;
    let event_id = decided.events[0].event_id;
    let mut inclusion: Value = get(
        &http,
        &format!("{base}/v1/audit/proof/inclusion?event_id={event_id}"),
    )
    .await;
    inclusion["event_id"] = json!(event_id);
    let consistency: Value = get(
        &http,
        &format!(
            "{base}/v1/audit/proof/consistency?from={}&to={}",
            old.size, new.size
        ),
    )
    .await;
    let mut input = json!({
        "vkey": served[0].key, "checkpoint": new.note, "inclusion": inclusion,
        "old_checkpoint": old.note, "consistency": consistency,
    });
    // Every event of the reference scenario, not just one.
    let mut more = Vec::new();
    for e in events(log) {
        let url = format!("{base}/v1/audit/proof/inclusion?event_id={}", e.event_id);
        let mut proof: Value = get(&http, &url).await;
        proof["event_id"] = json!(e.event_id);
        more.push(proof);
    }
    assert_eq!(more.len(), n);
    input["more_inclusions"] = json!(more);
    let (ok, out) = python_verify(&input, stack.data.path());
    assert!(ok && out.trim() == "OK", "{out}");
    input.as_object_mut().unwrap().remove("more_inclusions");
    input["consistency"]["hashes"][0] = json!(coord_audit::b64(&[0; 32]));
    let (ok, out) = python_verify(&input, stack.data.path());
    assert!(!ok && out.contains("consistency"), "{out}");
    input["consistency"] = consistency.clone();
    input["inclusion"]["leaf_index"] = json!(inclusion["leaf_index"].as_u64().unwrap() + 1);
    let (ok, out) = python_verify(&input, stack.data.path());
    assert!(!ok && out.contains("inclusion"), "{out}");

    // The reviewer queries return what the scenario recorded.
    let lines = scenario_lines();
    let inspection = "d09da369-c525-5dda-add1-b952bf497234";
    let history: Vec<AuditEvent> = get(
        &http,
        &format!("{base}/v1/audit/streams/inspection-{inspection}"),
    )
    .await;
    let expected = lines
        .iter()
        .filter(|l| l["payload"]["inspection_id"] == inspection)
        .count();
    assert_eq!(history.len(), expected);
    assert_eq!(history[0].event_type, "InspectionScheduled");
    assert_eq!(history[0].actor, "văn phòng Đảng ủy Công an tỉnh");
    // The role comes from the caller's token and is part of the signed leaf.
    assert!(
        history
            .iter()
            .all(|e| e.role.as_deref() == Some("operator"))
    );
    let proof: Value = get(
        &http,
        &format!(
            "{base}/v1/audit/proof/inclusion?event_id={}",
            history[0].event_id
        ),
    )
    .await;
    let leaf: Value =
        serde_json::from_slice(&coord_audit::unb64(proof["leaf_data"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(leaf["role"], "operator", "{leaf}");
    assert!(
        history
            .iter()
            .enumerate()
            .all(|(i, e)| e.stream_version == i as u64 + 1)
    );
    let correlated: Vec<AuditEvent> = get(
        &http,
        &format!("{base}/v1/audit/correlations/{}", history[1].correlation_id),
    )
    .await;
    assert!(correlated.iter().any(|e| e.event_id == history[1].event_id));
    assert!(
        correlated
            .iter()
            .all(|e| e.correlation_id == history[1].correlation_id)
    );
    // The actor is the one bound to the office's token: a district's events all carry its
    // office actor, whatever the command said.
    let office = "district:long-xuyen";
    let logged = events(log);
    let actor = logged
        .iter()
        .find(|e| e.office == office)
        .unwrap()
        .actor
        .clone();
    assert!(
        logged
            .iter()
            .filter(|e| e.office == office)
            .all(|e| e.actor == actor)
    );
    assert_ne!(actor, history[0].actor);
    let mut found = Vec::new();
    let mut cursor: Option<u64> = None;
    loop {
        let mut url = reqwest::Url::parse(&format!("{base}/v1/audit/events")).unwrap();
        url.query_pairs_mut()
            .append_pair("actor", &actor)
            .append_pair("limit", "7");
        if let Some(c) = cursor {
            url.query_pairs_mut().append_pair("cursor", &c.to_string());
        }
        let page: AuditPage = get(&http, url.as_str()).await;
        found.extend(page.events);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let commands = lines.iter().filter(|l| l["office"] == office).count();
    let expected: Vec<uuid::Uuid> = logged
        .iter()
        .filter(|e| e.actor == actor)
        .map(|e| e.event_id)
        .collect();
    let found_ids: Vec<uuid::Uuid> = found.iter().map(|e| e.event_id).collect();
    assert!(
        commands > 7 && expected.len() >= commands && found_ids == expected,
        "{} events found, {} in the log, {commands} commands",
        found.len(),
        expected.len()
    );
    assert!(found.iter().all(|e| e.actor == actor && e.office == office));
    // Bad input gets a typed problem naming what was wrong.
    for (url, status, code) in [
        (
            format!("{base}/v1/audit/events?from=yesterday"),
            400,
            "invalid_date",
        ),
        (
            format!(
                "{base}/v1/audit/proof/inclusion?event_id={}",
                uuid::Uuid::nil()
            ),
            404,
            "unknown_event",
        ),
        (
            format!("{base}/v1/audit/proof/inclusion?event_id=x"),
            400,
            "bad_query",
        ),
        (
            format!("{base}/v1/audit/proof/consistency?from=0"),
            400,
            "bad_tree_sizes",
        ),
        (
            format!("{base}/v1/audit/proof/consistency?from=5&to=99999"),
            400,
            "bad_tree_sizes",
        ),
        (
            format!("{base}/v1/audit/correlations/nope"),
            400,
            "invalid_correlation_id",
        ),
        (
            format!("{base}/v1/audit/streams/Not-A-Stream"),
            400,
            "invalid_stream",
        ),
        (
            format!("{base}/v1/audit/checkpoint?office=nowhere"),
            503,
            "service_unavailable",
        ),
    ] {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{url}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], code, "{url}: {p}");
    }
    let (ok, out) = coordctl(
        stack.data.path(),
        &base,
        &reader,
        &["audit", "history", &format!("inspection-{inspection}")],
    );
    assert!(
        ok && out.contains("Người thực hiện") && out.contains("InspectionScheduled"),
        "{out}"
    );

    // When a raw message is published on a log subject of the real server, it is caught.
    // (Only the admin can: the services' NATS users other than the command services may not.)
    let nats = stack.nats.admin_client().await;
    let js = async_nats::jetstream::new(nats);
    let mut replay = history[0].clone();
    replay.event_id = uuid::Uuid::now_v7();
    let first = events(log)
        .into_iter()
        .find(|e| e.event_id == history[0].event_id)
        .unwrap();
    let mut forged = first.clone();
    forged.event_id = replay.event_id;
    forged.position = None;
    let body = serde_json::to_vec(&json!({ "events": [forged] })).unwrap();
    js.publish(format!("coord.log.inspection.{inspection}"), body.into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (_, after) = export(&http, &base).await;
    let report = verify(&after, &keys, None);
    assert_break(&report, BreakKind::Injected, n as u64);
    let (ok, out) = coordctl(stack.data.path(), &base, &reader, &["audit", "verify"]);
    assert!(!ok && out.contains(&format!("lá (leaf) {n}")), "{out}");
}
