//! Verification that trusts no one it verifies (issue 19), with real processes (a hub
//! and one office as leaf nodes, their auditors, the office's gateway):
//! `coordctl audit verify` takes its keys from the trust file `coordctl offices init`
//! wrote (or pins the served ones on first use) and requires the hub's cosignature of
//! the office's latest checkpoint. An office that rebuilds its history under a new key
//! is refused: its gateway serves the new key, which differs from the trusted one, and
//! given that new key explicitly, verify names the hub's cosignature as missing.

use std::path::Path;
use std::time::{Duration, Instant};

use coord_audit::Signer;
use coordctl::offices::{self, Site};
use tests::offices::{start, write};
use tests::{ServiceProcess, free_port};

fn auditor(site: &Site) -> ServiceProcess {
    let mut env = offices::service_env(site, "auditor", 0, "").unwrap();
    env.push(("COORD_AUDIT_CHECKPOINT_MS", "200".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ServiceProcess::start("auditor", &[], &env)
}

/// The site's gateway and a reader's token for it.
fn gateway(site: &Site) -> (ServiceProcess, String, String) {
    let signer = coord_auth::TokenSigner::generate();
    let claims =
        coord_auth::TokenSigner::claims_now(site.office(), "thanh tra", coord_auth::Role::Reader);
    let token = signer.sign(&claims).unwrap();
    let port = free_port();
    let env = offices::service_env(site, "gateway", port, &signer.public_key()).unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut process = ServiceProcess::start("gateway", &[], &env);
    assert_eq!(process.wait_listening(), port);
    (process, format!("http://127.0.0.1:{port}"), token)
}

/// `coordctl audit verify` at `base` with trust file `trust` and `extra` arguments.
fn verify(base: &str, token: &str, trust: &Path, extra: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(tests::workspace_bin("coordctl"))
        .args(["--gateway", base, "audit", "verify", "--trust"])
        .arg(trust)
        .args(extra)
        .env("COORD_TOKEN", token)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs verify (at most 60 s) until `done` holds of its outcome.
async fn verify_until(
    base: &str,
    token: &str,
    trust: &Path,
    extra: &[&str],
    what: &str,
    done: impl Fn(bool, &str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out) = verify(base, token, trust, extra);
        if done(ok, &out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "verify never showed {what}: {out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rekeyed_office_fails_verification_by_its_served_key_and_by_the_missing_hub_cosignature()
{
    let running = start(&["long-xuyen"]).await;
    let (hub_site, lx) = (&running.topology.hub, &running.topology.offices[0]);
    let _hub_auditor = auditor(hub_site);
    let mut lx_auditor = auditor(lx);
    let (_gateway, base, token) = gateway(lx);
    let trust = running.topology.trust_file();
    let init_trust = std::fs::read_to_string(&trust).unwrap();
    assert!(
        init_trust.contains("log district:long-xuyen ") && init_trust.contains("witness province "),
        "{init_trust}"
    );

    // Given honest writes, verify passes with init's trust file once the hub cosigned
    // the office's latest checkpoint (it requires that cosignature).
    write(lx, 3).await;
    let out = verify_until(
        &base,
        &token,
        &trust,
        &[],
        "intact and cosigned",
        |ok, _| ok,
    )
    .await;
    assert!(out.contains("NGUYÊN VẸN"), "{out}");
    // Without a trust file the served keys are pinned on first use.
    let pinned = lx.dir.join("pinned.keys");
    let (ok, out) = verify(&base, &token, &pinned, &[]);
    assert!(ok && out.contains("ghim"), "{out}");
    let pinned_text = std::fs::read_to_string(&pinned).unwrap();

    // When the office's operator rebuilds its history under a new key.
    assert!(lx_auditor.terminate());
    let dir = lx.auditor_dir();
    let old =
        Signer::from_key_text(&std::fs::read_to_string(dir.join("office.key")).unwrap()).unwrap();
    let new = Signer::from_seed(old.name(), [42; 32]).unwrap();
    std::fs::write(dir.join("office.key"), new.to_key_text()).unwrap();
    for f in ["audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    lx_auditor = auditor(lx);
    write(lx, 1).await;

    // Then the served key differs from the trusted one, by init's file and by the
    // pinned one, which is not replaced.
    let new_key = new.verifier().to_string();
    for file in [&trust, &pinned] {
        let out = verify_until(
            &base,
            &token,
            file,
            &[],
            "the new key refused",
            |ok, out| !ok && out.contains("KHÓA KHÁC"),
        )
        .await;
        assert!(
            out.contains("district:long-xuyen") && out.contains(&new_key),
            "{out}"
        );
    }
    assert_eq!(std::fs::read_to_string(&pinned).unwrap(), pinned_text);
    // Given the new key explicitly, the log verifies but the hub never cosigned it.
    let out = verify_until(
        &base,
        &token,
        &trust,
        &["--key", &new_key],
        "the missing cosignature",
        |ok, out| !ok && out.contains("THIẾU ĐỒNG KÝ"),
    )
    .await;
    assert!(out.contains("NGUYÊN VẸN"), "the log itself verifies: {out}");
    assert!(
        out.contains("district:long-xuyen") && out.contains("(witness) province"),
        "{out}"
    );
    drop(lx_auditor);
}
