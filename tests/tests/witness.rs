//! The hub's witness across offices, over NATS (issue 7), with real nats-server
//! processes (a hub and two offices as leaf nodes, as `coordctl offices init` writes
//! them) and the auditors as processes: each office's auditor keeps the tree of its own
//! subjects and publishes its signed checkpoints; the hub's auditor cosigns each one
//! that a consistency proof joins to the last it cosigned. An office that rewrites one
//! old event and re-signs with its own key is refused, with an alarm naming it, while
//! the other office keeps being cosigned. The other way, every office's auditor
//! witnesses the province's log: a hub that rewrites one old event and re-signs is
//! refused by both offices. An office's NATS credentials cannot publish another
//! office's or the province's checkpoint subject, nor another office's cosignature of
//! the province's log, into the hub.

use std::time::{Duration, Instant};

use coord_audit::cosign::{CosignatureVerifier, Cosigner};
use coord_audit::wire::{self, StoredCheckpoint, WitnessStatus, WitnessedOffice};
use coord_audit::{Checkpoint, Signer};
use coord_proto::read::QueryReply;
use coordctl::offices::{self, Site};
use futures::StreamExt;
use tests::offices::{Running, client_as, start, write};
use tests::{ServiceProcess, free_port};

/// The auditor of `site`, as `coordctl up --offices` starts it, signing every 200 ms.
fn auditor(site: &Site) -> ServiceProcess {
    let mut env = offices::service_env(site, "auditor", 0, "").unwrap();
    env.push(("COORD_AUDIT_CHECKPOINT_MS", "200".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ServiceProcess::start("auditor", &[], &env)
}

async fn ask<T: serde::de::DeserializeOwned>(
    client: &async_nats::Client,
    subject: String,
) -> Option<T> {
    let answer = tokio::time::timeout(Duration::from_secs(2), client.request(subject, "{}".into()))
        .await
        .ok()?
        .ok()?;
    match serde_json::from_slice(&answer.payload).ok()? {
        QueryReply::Ok(v) => Some(v),
        QueryReply::Error(_) => None,
    }
}

/// Polls the hub's witness (at most 60 s) until `done` holds; returns that status.
async fn wait_witness(
    hub: &async_nats::Client,
    what: &str,
    done: impl Fn(&WitnessStatus) -> bool,
) -> WitnessStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        if let Some(status) = ask::<WitnessStatus>(hub, wire::WITNESS_SUBJECT.into()).await {
            if done(&status) {
                return status;
            }
            last = Some(status);
        }
        assert!(
            Instant::now() < deadline,
            "the witness never showed {what}: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Now, as the witness writes its times.
fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The witness refused `id`'s last refused note again at or after `since` (so it
/// has seen it re-sent and not cosigned it).
fn refused_again_since(id: &'static str, since: String) -> impl Fn(&WitnessStatus) -> bool {
    move |s| {
        s.alarms
            .iter()
            .rev()
            .find(|a| a.office == id)
            .and_then(|a| a.last_at.as_deref())
            .is_some_and(|at| at >= since.as_str())
    }
}

/// The alarms without their repeat counts, which grow while an office re-sends.
fn alarms_seen(status: &WitnessStatus) -> Vec<(u64, String, String)> {
    status
        .alarms
        .iter()
        .map(|a| (a.id, a.note.clone(), a.reason.clone()))
        .collect()
}

fn office<'a>(status: &'a WitnessStatus, id: &str) -> &'a WitnessedOffice {
    status.offices.iter().find(|o| o.office == id).unwrap()
}

fn cosigned_at_least(id: &'static str, size: u64) -> impl Fn(&WitnessStatus) -> bool {
    move |s| office(s, id).size.is_some_and(|n| n >= size)
}

/// The hub witness's key, from the file `coordctl offices init` wrote at the hub.
fn hub_key(running: &Running) -> CosignatureVerifier {
    let text =
        std::fs::read_to_string(running.topology.hub.auditor_dir().join("witness.key")).unwrap();
    Cosigner::from_key_text(&text).unwrap().verifier()
}

/// The office's own verifier key, from its generated signing key.
fn office_key(site: &Site) -> coord_audit::Verifier {
    let text = std::fs::read_to_string(site.auditor_dir().join("office.key")).unwrap();
    Signer::from_key_text(&text).unwrap().verifier().clone()
}

/// Checks the witnessed office's cosigned note: both signatures verify, at `size`.
fn assert_cosigned(o: &WitnessedOffice, size: u64, hub: &CosignatureVerifier, site: &Site) {
    assert_eq!(
        o.size,
        Some(size),
        "{}: only its own subjects are its tree",
        o.office
    );
    let note = o.cosigned.as_deref().unwrap();
    hub.verify(note).expect("the hub's cosignature verifies");
    let cp = Checkpoint::open(note, &o.origin, &[office_key(site)]).unwrap();
    assert_eq!(cp.size, size);
}

/// What a dishonest operator with the office's key and store can do: stop its
/// auditor, change one old event's payload in its store (leaf data and hash), drop
/// the checkpoints that cover it (an honest auditor signs only a tree that extends the
/// last checkpoint it knows), wait out its lease, and start it again, so that it signs,
/// with the same key, a history that was rewritten.
fn rewrite_old_event(site: &Site, leaf_index: i64) {
    let db = rusqlite::Connection::open(site.auditor_dir().join("audit.sqlite")).unwrap();
    let data: Vec<u8> = db
        .query_row(
            "SELECT leaf_data FROM leaves WHERE leaf_index = ?1",
            [leaf_index],
            |r| r.get(0),
        )
        .unwrap();
    let mut event: serde_json::Value = serde_json::from_slice(&data).unwrap();
    event["payload"]["decision_ref"] = "rewritten-QĐ".into();
    let data = serde_json::to_vec(&event).unwrap();
    let hash = coord_audit::tree::leaf_hash(&data);
    let changed = db
        .execute(
            "UPDATE leaves SET leaf_data = ?1, hash = ?2 WHERE leaf_index = ?3",
            rusqlite::params![data, hash.as_slice(), leaf_index],
        )
        .unwrap();
    assert_eq!(changed, 1);
    // The auditor signs only a tree that extends the last checkpoint it knows (its
    // store's, and the one its lease still holds): the operator also drops the stored
    // checkpoints over the rewritten leaf and lets the stopped auditor's lease expire.
    db.execute("DELETE FROM checkpoints WHERE size > ?1", [leaf_index])
        .unwrap();
    std::thread::sleep(coord_service::lease::TTL + Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_two_offices_when_one_rewrites_an_old_event_and_resigns_then_the_hub_witness_refuses_it()
 {
    let running = start(&["long-xuyen", "chau-doc"]).await;
    let (hub_site, lx, cd) = (
        &running.topology.hub,
        &running.topology.offices[0],
        &running.topology.offices[1],
    );
    let mut auditors: Vec<ServiceProcess> = running.sites().into_iter().map(auditor).collect();
    let hub = client_as(hub_site, "gateway").await;
    let hub_key = hub_key(&running);
    const LX: &str = "district:long-xuyen";
    const CD: &str = "district:chau-doc";

    // Round 1 and 2: honest writes at both offices (and the province's own).
    write(hub_site, 2).await;
    write(lx, 5).await;
    write(cd, 4).await;
    let status = wait_witness(&hub, "both offices cosigned", |s| {
        cosigned_at_least(LX, 5)(s) && cosigned_at_least(CD, 4)(s)
    })
    .await;
    assert_eq!(status.witness_key, hub_key.to_string());
    assert_cosigned(office(&status, LX), 5, &hub_key, lx);
    assert_cosigned(office(&status, CD), 4, &hub_key, cd);
    write(lx, 3).await;
    write(cd, 3).await;
    let status = wait_witness(&hub, "round 2 cosigned", |s| {
        cosigned_at_least(LX, 8)(s) && cosigned_at_least(CD, 7)(s)
    })
    .await;
    assert_cosigned(office(&status, LX), 8, &hub_key, lx);
    assert_cosigned(office(&status, CD), 7, &hub_key, cd);
    assert!(status.alarms.is_empty(), "{:#?}", status.alarms);

    // The office serves its checkpoint with the hub's cosignature, which it checked.
    let at_office = client_as(lx, "gateway").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cp: Option<StoredCheckpoint> =
            ask(&at_office, wire::subject(Some(LX), "checkpoint")).await;
        if let Some(cp) = cp.filter(|c| c.size == 8 && hub_key.verify(&c.note).is_ok()) {
            Checkpoint::open(&cp.note, &office(&status, LX).origin, &[office_key(lx)]).unwrap();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the office never kept its cosigned checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Long Xuyên's operator rewrites its event at leaf 1 and re-signs with its own key.
    assert!(
        auditors[1].terminate(),
        "the office's auditor stops cleanly"
    );
    rewrite_old_event(lx, 1);
    // Written while its auditor is down, so that the first checkpoint it signs over the
    // rewritten tree is at 11 (not at 8, had it signed before they arrived).
    write(lx, 3).await;
    auditors[1] = auditor(lx);
    write(cd, 3).await;
    let status = wait_witness(
        &hub,
        "an alarm for Long Xuyên and Châu Đốc cosigned",
        |s| !s.alarms.is_empty() && cosigned_at_least(CD, 10)(s),
    )
    .await;

    // Refused: nothing cosigned past 8 for Long Xuyên, and the alarm says why.
    assert_cosigned(office(&status, LX), 8, &hub_key, lx);
    assert_eq!(status.alarms.len(), 1, "{:#?}", status.alarms);
    let alarm = &status.alarms[0];
    assert_eq!(alarm.office, LX);
    assert_eq!(alarm.old_size, Some(8));
    assert_eq!(alarm.old_root, office(&status, LX).root);
    assert_eq!(alarm.new_size, Some(11));
    assert!(
        alarm
            .reason
            .contains("is not an extension of the 8 leaves cosigned before"),
        "{}",
        alarm.reason
    );
    // The refused checkpoint is validly signed by the office: only the witness caught it.
    let refused = Checkpoint::open(&alarm.note, &alarm.origin, &[office_key(lx)]).unwrap();
    assert_eq!(refused.size, 11);
    assert!(hub_key.verify(&alarm.note).is_err());
    // The honest office goes on being cosigned.
    assert_cosigned(office(&status, CD), 10, &hub_key, cd);

    // The office keeps only cosignatures that verify with the hub's key: one made with
    // another key under the hub's name, sent on its subject, is ignored.
    let latest: StoredCheckpoint = ask(&at_office, wire::subject(Some(LX), "checkpoint"))
        .await
        .unwrap();
    assert_eq!(latest.size, 11);
    let body = coord_audit::note::Note::parse(&latest.note).unwrap().text;
    let impostor = Cosigner::from_seed(&hub_key.name, [7; 32]).unwrap();
    let forged = format!("{}{}", latest.note, impostor.cosign(&body, 1_700_000_000));
    let sender = client_as(lx, "auditor").await;
    sender
        .publish(wire::cosigned_subject(LX, "province"), forged.into())
        .await
        .unwrap();
    sender.flush().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after: StoredCheckpoint = ask(&at_office, wire::subject(Some(LX), "checkpoint"))
        .await
        .unwrap();
    assert_eq!(after.note, latest.note, "a forged cosignature was kept");

    // The witness's state is persisted: restarted, it still holds Long Xuyên at 8 and
    // refuses the rewritten history it is sent again (an office re-sends its latest
    // checkpoint every 2 s until cosigned); without it, it would cosign it afresh.
    assert!(auditors[0].terminate(), "the hub's auditor stops cleanly");
    let restarted_at = now_text();
    auditors[0] = auditor(hub_site);
    write(cd, 2).await;
    wait_witness(
        &hub,
        "Châu Đốc cosigned after the restart",
        cosigned_at_least(CD, 12),
    )
    .await;
    let status = wait_witness(
        &hub,
        "the restarted witness refusing Long Xuyên's re-sent checkpoint",
        refused_again_since(LX, restarted_at),
    )
    .await;
    assert_cosigned(office(&status, LX), 8, &hub_key, lx);
    assert_cosigned(office(&status, CD), 12, &hub_key, cd);
    assert!(!status.alarms.is_empty());

    // The same over HTTP at the province's gateway.
    let (_gateway, base, token) = gateway(hub_site);
    let http = witness_over_http(&base, &token).await;
    assert_eq!(alarms_seen(&http), alarms_seen(&status));
    assert_eq!(office(&http, LX).size, Some(8));

    // `coordctl audit witness`: a table with Vietnamese labels, failing on an alarm.
    let out = std::process::Command::new(tests::workspace_bin("coordctl"))
        .args(["--gateway", &base, "audit", "witness"])
        .env("COORD_TOKEN", &token)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("CẢNH BÁO (alarms)"), "{text}");
    assert!(text.contains("Đã đồng ký đến"), "{text}");
    assert!(text.contains("8 · "), "{text}");

    // At each office, `coordctl audit verify` checks the office's own log (its stream
    // also holds what it sourced in, which is not in its tree): Châu Đốc's is intact,
    // Long Xuyên's is broken from its re-signed checkpoint on.
    for (site, intact) in [(cd, true), (lx, false)] {
        let (_gateway, base, token) = gateway(site);
        let out = std::process::Command::new(tests::workspace_bin("coordctl"))
            .args(["--gateway", &base, "audit", "verify"])
            .env("COORD_TOKEN", &token)
            .env("COORD_AUDIT_TRUST", site.dir.join("pinned-trust.keys"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), intact, "{}: {text}", site.slug);
        if !intact {
            // The operator dropped the checkpoints signed before the rewrite; the one
            // re-signed over the rewritten tree holds leaf 1 as it was changed, which
            // is not the log's.
            assert!(
                text.contains("BỊ PHÁ VỠ (broken) tại lá (leaf) 1: Changed"),
                "{text}"
            );
            assert!(text.contains("differ from those signed"), "{text}");
        }
    }

    // An office cannot pass another office's checkpoint off as its own (nor frame it):
    // Châu Đốc's valid note sent on Long Xuyên's subject is refused, under Long Xuyên.
    let cd_note = office(&status, CD).cosigned.clone().unwrap();
    let sender = client_as(lx, "auditor").await;
    sender
        .publish(wire::published_subject(LX), cd_note.into())
        .await
        .unwrap();
    sender.flush().await.unwrap();
    let status = wait_witness(&hub, "a second alarm", |s| s.alarms.len() == 2).await;
    let alarm = &status.alarms[1];
    assert_eq!(alarm.office, LX);
    assert!(
        alarm.reason.contains("not this office's"),
        "{}",
        alarm.reason
    );
    assert_cosigned(office(&status, CD), 12, &hub_key, cd);
}

/// An office's witness key, from the file `coordctl offices init` wrote there.
fn office_witness_key(site: &Site) -> CosignatureVerifier {
    let text = std::fs::read_to_string(site.auditor_dir().join("witness.key")).unwrap();
    Cosigner::from_key_text(&text).unwrap().verifier()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn given_two_offices_witnessing_the_hub_when_the_hub_rewrites_an_old_event_and_resigns_then_every_office_refuses_it()
 {
    let running = start(&["long-xuyen", "chau-doc"]).await;
    let (hub_site, lx, cd) = (
        &running.topology.hub,
        &running.topology.offices[0],
        &running.topology.offices[1],
    );
    let mut auditors: Vec<ServiceProcess> = running.sites().into_iter().map(auditor).collect();
    let hub = client_as(hub_site, "gateway").await;
    let mut offices = Vec::new();
    for site in [lx, cd] {
        offices.push((
            site,
            client_as(site, "gateway").await,
            office_witness_key(site),
        ));
    }
    const P: &str = "province";

    // Honest rounds: every office's witness cosigns the province's checkpoints.
    write(hub_site, 4).await;
    write(lx, 2).await;
    for (site, client, key) in &offices {
        let status = wait_witness(client, "the province cosigned", cosigned_at_least(P, 4)).await;
        assert_eq!(status.witness_key, key.to_string(), "{}", site.slug);
        assert_eq!(
            status.offices.len(),
            1,
            "an office witnesses the province only"
        );
        assert_cosigned(office(&status, P), 4, key, hub_site);
    }
    write(hub_site, 3).await;
    for (_, client, key) in &offices {
        let status = wait_witness(client, "round 2 cosigned", cosigned_at_least(P, 7)).await;
        assert_cosigned(office(&status, P), 7, key, hub_site);
        assert!(status.alarms.is_empty(), "{:#?}", status.alarms);
    }

    // The province serves its checkpoint with both offices' cosignatures appended
    // (C2SP: one signature line each), still the province's valid note.
    let deadline = Instant::now() + Duration::from_secs(30);
    let served = loop {
        let cp: Option<StoredCheckpoint> = ask(&hub, wire::subject(Some(P), "checkpoint")).await;
        if let Some(cp) =
            cp.filter(|c| c.size == 7 && offices.iter().all(|(_, _, k)| k.verify(&c.note).is_ok()))
        {
            break cp;
        }
        assert!(
            Instant::now() < deadline,
            "the province never kept both offices' cosignatures"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let origin = wire::default_origin("an-giang", P);
    Checkpoint::open(&served.note, &origin, &[office_key(hub_site)]).unwrap();

    // The hub's operator rewrites the province's event at leaf 1 and re-signs.
    assert!(auditors[0].terminate(), "the hub's auditor stops cleanly");
    rewrite_old_event(hub_site, 1);
    write(hub_site, 3).await; // while its auditor is down: the re-signed size is 10
    auditors[0] = auditor(hub_site);

    // Every office's witness refuses it and records an alarm naming the province.
    for (site, client, key) in &offices {
        let status = wait_witness(client, "an alarm about the province", |s| {
            !s.alarms.is_empty()
        })
        .await;
        assert_cosigned(office(&status, P), 7, key, hub_site);
        assert_eq!(
            status.alarms.len(),
            1,
            "{}: {:#?}",
            site.slug,
            status.alarms
        );
        let alarm = &status.alarms[0];
        assert_eq!(alarm.office, P);
        assert_eq!(alarm.origin, origin);
        assert_eq!((alarm.old_size, alarm.new_size), (Some(7), Some(10)));
        assert_eq!(alarm.old_root, office(&status, P).root);
        assert!(
            alarm
                .reason
                .contains("is not an extension of the 7 leaves cosigned before"),
            "{}",
            alarm.reason
        );
        // Validly signed by the province: only the witnesses caught it.
        let refused = Checkpoint::open(&alarm.note, &origin, &[office_key(hub_site)]).unwrap();
        assert_eq!(refused.size, 10);
        assert!(key.verify(&alarm.note).is_err());
    }

    // The office's witness state is persisted: restarted, Long Xuyên's still holds the
    // province at 7 and one alarm, though the province re-sends its checkpoint every
    // 2 s until cosigned (without the store it would cosign the rewritten history).
    assert!(
        auditors[1].terminate(),
        "Long Xuyên's auditor stops cleanly"
    );
    let restarted_at = now_text();
    auditors[1] = auditor(lx);
    let status = wait_witness(
        &offices[0].1,
        "the restarted witness refusing the province's re-sent checkpoint",
        refused_again_since(P, restarted_at),
    )
    .await;
    assert_cosigned(office(&status, P), 7, &offices[0].2, hub_site);
    assert_eq!(status.alarms.len(), 1, "{:#?}", status.alarms);

    // Over HTTP at the office's gateway (503 before offices witnessed the hub).
    let (_gateway, base, token) = gateway(lx);
    let http = witness_over_http(&base, &token).await;
    assert_eq!(alarms_seen(&http), alarms_seen(&status));
    assert_eq!(office(&http, P).size, Some(7));
}

/// `GET /v1/audit/witness` at the gateway at `base`.
async fn witness_over_http(base: &str, token: &str) -> WitnessStatus {
    reqwest::Client::new()
        .get(format!("{base}/v1/audit/witness"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A site's gateway (as its own NATS user), listening, with a reader token of the site's
/// own office (a site refuses the tokens of offices it does not host).
fn gateway(site: &Site) -> (ServiceProcess, String, String) {
    let signer = coord_auth::TokenSigner::generate();
    let token = signer
        .sign(&coord_auth::TokenSigner::claims_now(
            site.office(),
            "thanh tra",
            coord_auth::Role::Reader,
        ))
        .unwrap();
    let port = free_port();
    let env = offices::service_env(site, "gateway", port, &signer.public_key()).unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut process = ServiceProcess::start("gateway", &[], &env);
    assert_eq!(process.wait_listening(), port);
    (process, format!("http://127.0.0.1:{port}"), token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offices_credentials_cannot_publish_another_offices_checkpoint_into_the_hub() {
    let running = start(&["long-xuyen", "chau-doc"]).await;
    let (hub_site, lx) = (&running.topology.hub, &running.topology.offices[0]);
    let at_hub = client_as(hub_site, "auditor").await;
    let own = wire::published_subject("district:long-xuyen");
    // Another office's checkpoints, the province's (the offices witness them, they
    // must not forge them), and another office's cosignature of the province's log.
    let forged_subjects = [
        wire::published_subject("district:chau-doc"),
        wire::published_subject("province"),
        wire::cosigned_subject("province", "district:chau-doc"),
    ];
    let mut heard_own = at_hub.subscribe(own.clone()).await.unwrap();
    let mut heard_forged = Vec::new();
    for subject in &forged_subjects {
        heard_forged.push(at_hub.subscribe(subject.clone()).await.unwrap());
    }
    let office = client_as(lx, "auditor").await;

    // Once the hub's interest reached the office, its own subject comes through...
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        office.publish(own.clone(), "probe".into()).await.unwrap();
        office.flush().await.unwrap();
        if let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(300), heard_own.next()).await
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the office's own checkpoints never reach the hub"
        );
    }
    while tokio::time::timeout(Duration::from_millis(300), heard_own.next())
        .await
        .is_ok()
    {}
    // ...and the others do not: sent first on the same connection, each would arrive
    // before the marker.
    for (subject, heard) in forged_subjects.iter().zip(&mut heard_forged) {
        office
            .publish(subject.clone(), "forged".into())
            .await
            .unwrap();
        office.publish(own.clone(), "marker".into()).await.unwrap();
        office.flush().await.unwrap();
        let marker = tokio::time::timeout(Duration::from_secs(10), heard_own.next())
            .await
            .expect("the marker arrives")
            .unwrap();
        assert_eq!(&marker.payload[..], b"marker");
        let forged = tokio::time::timeout(Duration::from_millis(500), heard.next()).await;
        assert!(forged.is_err(), "{subject} got through: {forged:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_office_cut_off_from_the_hub_when_the_link_is_back_then_its_latest_checkpoint_is_cosigned()
 {
    let mut running = start(&["long-xuyen", "chau-doc"]).await;
    let (hub_site, lx, cd) = (
        running.topology.hub.clone(),
        running.topology.offices[0].clone(),
        running.topology.offices[1].clone(),
    );
    let _auditors: Vec<ServiceProcess> = running.sites().into_iter().map(auditor).collect();
    let hub = client_as(&hub_site, "gateway").await;
    const LX: &str = "district:long-xuyen";
    const CD: &str = "district:chau-doc";
    write(&lx, 3).await;
    wait_witness(&hub, "Long Xuyên cosigned", cosigned_at_least(LX, 3)).await;

    // Cut: the office's server without its leaf remote. It keeps writing and signing.
    running.servers[1].stop();
    running.servers[1] = tests::ConfiguredNats::start(&lx.isolated_config_file(), lx.port);
    write(&lx, 4).await;
    let at_office = client_as(&lx, "gateway").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ask::<StoredCheckpoint>(&at_office, wire::subject(Some(LX), "checkpoint"))
        .await
        .is_none_or(|c| c.size < 7)
    {
        assert!(
            Instant::now() < deadline,
            "the cut office never signed 7 leaves"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The witness is at work during the cut: Châu Đốc, still linked, is cosigned at a
    // size it reached only after the cut office had signed 7 leaves.
    write(&cd, 2).await;
    let status = wait_witness(
        &hub,
        "Châu Đốc cosigned during the cut",
        cosigned_at_least(CD, 2),
    )
    .await;
    assert_eq!(office(&status, LX).size, Some(3), "nothing crossed the cut");

    // Restored: the office sends its latest checkpoint again until the hub cosigns it.
    running.servers[1].stop();
    running.servers[1] = tests::ConfiguredNats::start(&lx.config_file(), lx.port);
    let status = wait_witness(
        &hub,
        "Long Xuyên cosigned after the cut",
        cosigned_at_least(LX, 7),
    )
    .await;
    assert_cosigned(office(&status, LX), 7, &hub_key(&running), &lx);
    assert!(status.alarms.is_empty(), "{:#?}", status.alarms);
}

/// The witness observes each office on its own: while an office's consistency proof is
/// awaited (up to the witness's bound, 5 s), another office's checkpoints are cosigned.
/// Here the test speaks for Long Xuyên (its auditor is not started): it publishes a
/// checkpoint, receives the witness's proof request and holds it; Châu Đốc's new
/// checkpoint is cosigned meanwhile, and only then is the held request answered (with a
/// bad proof), which the witness must still be waiting for: it refuses the checkpoint.
/// A witness that observes the offices one after the other would have cosigned Châu
/// Đốc only after giving up on Long Xuyên, and never hear that late answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_that_never_answers_proofs_does_not_delay_another_offices_cosignature() {
    let running = start(&["long-xuyen", "chau-doc"]).await;
    let (hub_site, lx, cd) = (
        &running.topology.hub,
        &running.topology.offices[0],
        &running.topology.offices[1],
    );
    let _auditors: Vec<ServiceProcess> = [hub_site, cd].into_iter().map(auditor).collect();
    let hub = client_as(hub_site, "gateway").await;
    const LX: &str = "district:long-xuyen";
    const CD: &str = "district:chau-doc";
    write(cd, 2).await;
    wait_witness(&hub, "Châu Đốc cosigned", cosigned_at_least(CD, 2)).await;

    // Long Xuyên's first checkpoint needs no proof; its second one does.
    let as_lx = client_as(lx, "auditor").await;
    let mut requests = as_lx
        .subscribe(wire::subject(Some(LX), "consistency"))
        .await
        .unwrap();
    let signer = Signer::from_key_text(
        &std::fs::read_to_string(lx.auditor_dir().join("office.key")).unwrap(),
    )
    .unwrap();
    let note = |size: u64| {
        Checkpoint {
            origin: signer.name().into(),
            size,
            root: [size as u8; 32],
        }
        .sign(&signer)
    };
    as_lx
        .publish(wire::published_subject(LX), note(1).into())
        .await
        .unwrap();
    wait_witness(
        &hub,
        "Long Xuyên's first checkpoint",
        cosigned_at_least(LX, 1),
    )
    .await;
    as_lx
        .publish(wire::published_subject(LX), note(2).into())
        .await
        .unwrap();
    let held = tokio::time::timeout(Duration::from_secs(30), requests.next())
        .await
        .expect("the witness asks Long Xuyên for a proof")
        .unwrap();

    // While that request is held, Châu Đốc grows and is cosigned.
    write(cd, 3).await;
    wait_witness(
        &hub,
        "Châu Đốc cosigned meanwhile",
        cosigned_at_least(CD, 5),
    )
    .await;

    // The witness is still waiting for Long Xuyên's answer: a bad proof is refused.
    let bad = wire::ConsistencyProofBody {
        office: LX.into(),
        from: 1,
        to: 2,
        hashes: vec![coord_audit::b64(&[9; 32])],
    };
    let answer = serde_json::to_vec(&QueryReply::Ok(bad)).unwrap();
    as_lx
        .publish(held.reply.unwrap(), answer.into())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = ask::<WitnessStatus>(&hub, wire::WITNESS_SUBJECT.into()).await;
        if let Some(alarm) = status
            .as_ref()
            .and_then(|s| s.alarms.iter().find(|a| a.office == LX))
        {
            assert_eq!((alarm.old_size, alarm.new_size), (Some(1), Some(2)));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the witness no longer waited for Long Xuyên's proof: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
