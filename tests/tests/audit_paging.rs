//! Months of checkpoints (issue 19): an auditor store holding more than 10,000 signed
//! checkpoints (the log filled in bulk, every tree size signed with the office's key
//! straight into the auditor's SQLite store while it is stopped) is listed page by page
//! over HTTP, each page far under nats-server's 1 MiB payload limit, exported by
//! `coordctl audit export` and verified offline by `coordctl audit verify`; then the
//! retention rule compacts it (the first of each hour, the first a witness cosigned in
//! each hour, the latest cosigned, the latest) and every proof is still served and the export still verifies.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use coord_audit::wire::{CheckpointPage, OfficeKey};
use coord_audit::{Checkpoint, Signer, Tree};
use serde_json::Value;
use tests::{ServiceProcess, Stack, workspace_bin};

/// Events in the log, so as many tree sizes to sign.
const EVENTS: usize = 10_050;

fn auditor(stack: &Stack, dir: &str, keep_all_hours: &str) -> ServiceProcess {
    stack.spawn(
        "auditor",
        &[
            ("COORD_AUDIT_DIR", dir),
            ("COORD_AUDIT_CHECKPOINT_MS", "200"),
            ("COORD_AUDIT_KEEP_ALL_HOURS", keep_all_hours),
        ],
    )
}

/// Waits (at most 60 s) until the auditor serves a checkpoint of `size` leaves.
async fn wait_signed(http: &reqwest::Client, base: &str, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tests::checkpoint_size(http, base).await < size {
        assert!(Instant::now() < deadline, "no checkpoint of {size} leaves");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs every tree size of the stored leaves into the store, checkpoint `k` published
/// `total - k` minutes before `now` (so one a minute over a week); each size and its
/// publication time.
fn seed(dir: &std::path::Path) -> Vec<(u64, String)> {
    let signer =
        Signer::from_key_text(&std::fs::read_to_string(dir.join("office.key")).unwrap()).unwrap();
    let conn = rusqlite::Connection::open(dir.join("audit.sqlite")).unwrap();
    let hashes: Vec<[u8; 32]> = conn
        .prepare("SELECT hash FROM leaves ORDER BY leaf_index")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|h| h.unwrap().try_into().unwrap())
        .collect();
    let tree = Tree::from_leaves(hashes);
    let total = tree.len();
    let now = chrono::Utc::now();
    let mut seeded = Vec::new();
    let tx = conn.unchecked_transaction().unwrap();
    for size in 1..=total {
        let note = Checkpoint {
            origin: signer.name().into(),
            size,
            root: tree.root(size).unwrap(),
        }
        .sign(&signer);
        let at = (now - chrono::Duration::minutes((total - size) as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        tx.execute(
            "INSERT OR REPLACE INTO checkpoints VALUES (?1, ?2, ?3)",
            rusqlite::params![size as i64, note, at],
        )
        .unwrap();
        seeded.push((size, at));
    }
    tx.commit().unwrap();
    seeded
}

/// What the retention rule keeps of `seeded` when all are old: the first of each UTC
/// hour and the latest.
fn retained(seeded: &[(u64, String)]) -> Vec<u64> {
    let mut first_of_hour: BTreeMap<&str, u64> = BTreeMap::new();
    for (size, at) in seeded {
        first_of_hour.entry(&at[..13]).or_insert(*size);
    }
    let mut kept: BTreeSet<u64> = first_of_hour.into_values().collect();
    kept.extend(seeded.last().map(|(s, _)| *s));
    kept.into_iter().collect()
}

/// Every checkpoint over HTTP, page by page; asserts each page is bounded.
async fn list_all(http: &reqwest::Client, base: &str, limit: u32) -> (Vec<u64>, usize) {
    let mut sizes = Vec::new();
    let mut after: Option<u64> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{base}/v1/audit/checkpoints?limit={limit}");
        if let Some(a) = after {
            url.push_str(&format!("&after={a}"));
        }
        let r = http.get(&url).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let body = r.bytes().await.unwrap();
        assert!(body.len() < 512 * 1024, "a page of {} bytes", body.len());
        let page: CheckpointPage = serde_json::from_slice(&body).unwrap();
        assert!(page.checkpoints.len() <= 1000);
        sizes.extend(page.checkpoints.iter().map(|c| c.size));
        pages += 1;
        match page.next_after {
            Some(a) => after = Some(a),
            None => return (sizes, pages),
        }
    }
}

fn coordctl(base: &str, token: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(workspace_bin("coordctl"))
        .args(["--gateway", base])
        .env("COORD_TOKEN", token)
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `coordctl audit export` then `coordctl audit verify --file --key`: the number of
/// checkpoint lines, and the verify output.
fn export_and_verify(stack: &Stack, token: &str, key: &str) -> (usize, String) {
    let base = &stack.gateway_url;
    let file = stack.data.path().join("export.ndjson");
    let file_arg = file.display().to_string();
    let (ok, out) = coordctl(base, token, &["audit", "export", "--out", &file_arg]);
    assert!(ok, "{out}");
    let lines = std::fs::read_to_string(&file).unwrap();
    let checkpoints = lines
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["kind"] == "checkpoint")
        .count();
    let (ok, out) = coordctl(
        base,
        token,
        &["audit", "verify", "--file", &file_arg, "--key", key],
    );
    assert!(ok && out.contains("NGUYÊN VẸN"), "{out}");
    (checkpoints, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_checkpoints_are_listed_and_exported_in_bounded_pages_then_compacted() {
    let mut stack = Stack::start();
    let dir = stack.data.path().join("auditor");
    let dir_text = dir.display().to_string();
    stack.processes.push(auditor(&stack, &dir_text, "1000000"));
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    let reader = stack.sign("province", "kiểm tra viên", coord_auth::Role::Reader);
    let http = stack.http_with(&reader);

    // Given a log of 10,050 events, every tree size signed, one a minute over a week.
    stack.fill_inspections(EVENTS).await;
    wait_signed(&http, &base, EVENTS as u64).await;
    assert!(stack.process("auditor").terminate());
    let seeded = seed(&dir);
    let total = seeded.len() as u64;
    assert_eq!(total, EVENTS as u64);
    stack.processes.retain(|p| p.name != "auditor");
    stack.processes.push(auditor(&stack, &dir_text, "1000000"));
    wait_signed(&http, &base, total).await;

    // Then HTTP lists all of them, in order, in bounded pages (a limit above the
    // bound is clamped), and the export carries them all and verifies.
    let (sizes, pages) = list_all(&http, &base, 5000).await;
    assert_eq!(sizes, (1..=total).collect::<Vec<_>>());
    assert!(pages >= 11, "{pages} pages");
    let keys: Vec<OfficeKey> = http
        .get(format!("{base}/v1/audit/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = keys[0].key.clone();
    let (exported, out) = export_and_verify(&stack, &reader, &key);
    assert_eq!(exported as u64, total);
    assert!(
        out.contains(&format!("{} kiểm tra nhất quán", total - 1)),
        "{out}"
    );

    // When the retention rule runs (restarted with nothing younger kept whole), the
    // first checkpoint of each hour and the latest are kept, the rest compacted.
    assert!(stack.process("auditor").terminate());
    stack.processes.retain(|p| p.name != "auditor");
    stack.processes.push(auditor(&stack, &dir_text, "0"));
    wait_signed(&http, &base, total).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let kept = loop {
        let (kept, _) = list_all(&http, &base, 1000).await;
        if kept.len() < sizes.len() {
            break kept;
        }
        assert!(Instant::now() < deadline, "no compaction");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(kept, retained(&seeded));
    assert!((168..=170).contains(&kept.len()), "{} kept", kept.len());
    assert_eq!(kept.last(), Some(&total));
    // Every proof stays servable, from a compacted size too.
    let gone = (1..total).find(|s| !kept.contains(s)).unwrap();
    let r = http
        .get(format!("{base}/v1/audit/proof/consistency?from={gone}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (exported, _) = export_and_verify(&stack, &reader, &key);
    assert_eq!(exported, kept.len());
}
