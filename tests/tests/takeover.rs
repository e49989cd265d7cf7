//! Several instances of a service at once (issue 18), as real processes.
//!
//! - The auditor is single-active: two instances of one office's auditor (each its own
//!   store, the same signing key) share a lease; only the holder signs. The holder is
//!   killed with SIGKILL while the log grows; the other takes over, and every
//!   checkpoint ever published, in the order published, grows strictly (two signers
//!   would publish the same sizes twice or go back) and is a prefix of the one tree of
//!   the log (so each pair of consecutive ones is joined by a consistency proof).
//! - The projector runs as several instances, each with its own read models, queries
//!   shared by a queue group: both apply the whole log, a rebuild reaches both, and
//!   with one killed the other answers read-your-writes queries.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coord_audit::{Checkpoint, Signer, Tree};
use coord_log::jetstream::JetStreamLog;
use coord_log::{EventLog, ExpectedVersion};
use futures::StreamExt;
use reqwest::StatusCode;
use tests::{ServiceProcess, Stack, metric, scrape};

/// An auditor of the stack's one site with its own data folder and metrics port.
fn auditor(stack: &Stack, dir: &Path) -> (ServiceProcess, String) {
    let dir = dir.display().to_string();
    let mut p = stack.spawn(
        "auditor",
        &[
            ("COORD_AUDIT_DIR", &dir),
            ("COORD_AUDIT_CHECKPOINT_MS", "200"),
            ("COORD_AUDIT_CHECKPOINT_EVENTS", "25"),
            ("COORD_METRICS_ADDR", "127.0.0.1:0"),
        ],
    );
    let port = p.wait_listening();
    (p, format!("http://127.0.0.1:{port}"))
}

/// Waits (at most `secs`) until `done` holds, polling every 100 ms.
async fn until<T>(what: &str, secs: u64, mut done: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = done().await {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_active_auditor_is_replaced_and_checkpoints_stay_one_growing_history() {
    let stack = Stack::start();
    let admin = stack.nats.admin_client().await;
    // Every checkpoint published, in the order published.
    let published: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut notes = admin
        .subscribe("coord.audit.province.published")
        .await
        .unwrap();
    let collected = published.clone();
    tokio::spawn(async move {
        while let Some(msg) = notes.next().await {
            let note = String::from_utf8(msg.payload.to_vec()).unwrap();
            collected.lock().unwrap().push(note);
        }
    });
    admin.flush().await.unwrap();

    // The log grows throughout, one event per commit.
    let log = Arc::new(
        JetStreamLog::open(admin.clone(), Default::default())
            .await
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (log, stop, written) = (log.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = written.load(Ordering::SeqCst);
                let (stream, event) = tests::inspection_scheduled(n);
                log.append(&stream, ExpectedVersion::NoStream, vec![event])
                    .await
                    .unwrap();
                written.store(n + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // Two instances, each with its own store, sharing the office's signing key.
    let (a_dir, b_dir) = (
        stack.data.path().join("auditor-a"),
        stack.data.path().join("auditor-b"),
    );
    let (mut a, a_url) = auditor(&stack, &a_dir);
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::copy(a_dir.join("office.key"), b_dir.join("office.key")).unwrap();
    let (mut b, b_url) = auditor(&stack, &b_dir);
    let signer = Signer::from_key_text(
        std::fs::read_to_string(a_dir.join("office.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();

    // Exactly one is active, and it signs; sampled for a while, never both.
    let first = until("an active auditor that signed", 30, async || {
        let (ma, mb) = (scrape(&a_url).await, scrape(&b_url).await);
        let active = |m: &HashMap<String, f64>| metric(m, "coord_auditor_active") == 1.0;
        let signed =
            |m: &HashMap<String, f64>| metric(m, "coord_auditor_checkpoints_signed_total") > 0.0;
        if active(&ma) && signed(&ma) {
            Some('a')
        } else if active(&mb) && signed(&mb) {
            Some('b')
        } else {
            None
        }
    })
    .await;
    for _ in 0..20 {
        let (ma, mb) = (scrape(&a_url).await, scrape(&b_url).await);
        let both = metric(&ma, "coord_auditor_active") + metric(&mb, "coord_auditor_active");
        assert_eq!(both, 1.0, "one active at a time: a {ma:?}\nb {mb:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The active one dies.
    let (killed, survivor_url) = if first == 'a' {
        (&mut a, b_url.clone())
    } else {
        (&mut b, a_url.clone())
    };
    let size = |note: &str| {
        Checkpoint::parse(&coord_audit::note::Note::parse(note).unwrap().text)
            .unwrap()
            .size
    };
    killed.kill();
    let killed_at = Instant::now();
    let before = published.lock().unwrap().last().map(|n| size(n)).unwrap();
    let takeover = until("the standby takes over and signs", 30, async || {
        let m = scrape(&survivor_url).await;
        let newer = published.lock().unwrap().last().map(|n| size(n)).unwrap() > before;
        (metric(&m, "coord_auditor_active") == 1.0 && newer).then(|| killed_at.elapsed())
    })
    .await;
    eprintln!("takeover: first checkpoint from the standby {takeover:?} after the SIGKILL");
    let m = scrape(&survivor_url).await;
    assert_eq!(metric(&m, "coord_auditor_takeovers_total"), 1.0, "{m:?}");
    assert_eq!(metric(&m, "coord_auditor_signatures_refused_total"), 0.0);

    // The log stops growing; the survivor signs all of it.
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let total = written.load(Ordering::SeqCst) as u64;
    until("the whole log signed", 60, async || {
        let last = published.lock().unwrap().last().map(|n| size(n)).unwrap();
        (last == total).then_some(())
    })
    .await;

    // One history: sizes grow strictly in the order published, each note verifies
    // with the office's key, and each root is the log's tree at that size, so every
    // consecutive pair is joined by a consistency proof.
    let mut tree = Tree::from_leaves(Vec::new());
    let mut entries = log.subscribe(None).await.unwrap();
    while tree.len() < total {
        let event = entries.next().await.unwrap().unwrap();
        tree.push(coord_audit::leaf_hash_of(&event));
    }
    let notes = published.lock().unwrap().clone();
    let checkpoints: Vec<Checkpoint> = notes
        .iter()
        .map(|n| Checkpoint::open(n, signer.name(), &[signer.verifier().clone()]).unwrap())
        .collect();
    assert!(checkpoints.len() >= 3, "{notes:?}");
    for pair in checkpoints.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        assert!(
            old.size < new.size,
            "published out of order or twice: {} then {} (two signers?)",
            old.size,
            new.size
        );
        let proof = tree.consistency(old.size, new.size).unwrap();
        coord_audit::tree::verify_consistency(old.size, &old.root, new.size, &new.root, &proof)
            .unwrap_or_else(|e| panic!("{} → {}: {e}", old.size, new.size));
        assert_eq!(tree.root(new.size).unwrap(), new.root, "size {}", new.size);
    }
    assert_eq!(tree.root(checkpoints[0].size).unwrap(), checkpoints[0].root);
}

async fn get(http: &reqwest::Client, url: String) -> (StatusCode, serde_json::Value) {
    let r = http.get(&url).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or_default())
}

/// Schedules inspection `n` through the gateway.
async fn schedule(stack: &Stack, n: usize) {
    let body = serde_json::json!({"term": "2020-2025", "unit": "tri-ton", "kind": "inspection",
        "category": "compliance", "leading_body": "provincial_standing_committee",
        "coordinating_body": "district_standing_committee:tri-ton",
        "target": "district_police:tri-ton", "decision_ref": format!("QĐ {n} (giả định)"),
        "decided_on": "2024-06-01", "planned_start": "2024-06-10", "planned_end": "2024-06-20"});
    let r = stack
        .http()
        .post(format!("{}/v1/inspections", stack.gateway_url))
        .header("Idempotency-Key", format!("scale-{n}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_each_keep_the_read_models_and_either_answers() {
    let mut stack = Stack::start();
    // Two projectors instead of the stack's one, each with its own database.
    stack.process("projector").kill();
    let (mut urls, mut instances) = (Vec::new(), Vec::new());
    for name in ["p1", "p2"] {
        let db = stack
            .data
            .path()
            .join(format!("{name}.sqlite"))
            .display()
            .to_string();
        let mut p = stack.spawn(
            "projector",
            &[
                ("COORD_PROJECTOR_DB", &db),
                ("COORD_METRICS_ADDR", "127.0.0.1:0"),
            ],
        );
        urls.push(format!("http://127.0.0.1:{}", p.wait_listening()));
        instances.push(stack.processes.len());
        stack.processes.push(p);
    }
    stack.wait_ready().await;
    let (base, http) = (stack.gateway_url.clone(), stack.http());
    for n in 0..10 {
        schedule(&stack, n).await;
    }
    let head = tests::log_head(&http, &base).await;
    assert!(head >= 10);

    // Each instance applies the whole log to its own read models.
    for url in &urls {
        until("both instances caught up", 30, async || {
            let m = scrape(url).await;
            (metric(&m, "coord_projector_applied_position") == head as f64
                && metric(&m, "coord_projector_events_applied_total") >= 10.0)
                .then_some(())
        })
        .await;
    }

    // A rebuild is for every instance, whichever the caller's request reached.
    let r = stack
        .admin_http()
        .post(format!("{base}/v1/admin/rebuild"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    for url in &urls {
        until("both instances rebuilt", 30, async || {
            let m = scrape(url).await;
            (metric(&m, "coord_projector_rebuilds_total") == 1.0
                && metric(&m, "coord_projector_applied_position") == head as f64)
                .then_some(())
        })
        .await;
    }

    // One killed: the other answers, reads after writes included.
    stack.processes[instances[0]].kill();
    for n in 10..13 {
        schedule(&stack, n).await;
        let head = tests::log_head(&http, &base).await;
        let (status, s) = get(
            &http,
            format!("{base}/v1/status/province?term=2020-2025&min_position={head}&wait_ms=20000"),
        )
        .await;
        assert!(status.is_success(), "{s}");
        assert_eq!(s["inspections"]["scheduled"], n + 1, "{s}");
    }
}
