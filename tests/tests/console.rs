//! The web console in a real browser (issue 17): the system started as the README's
//! Quick start starts it (`coordctl up`, the reference scenario loaded, on free
//! loopback ports), then `tests/console/console_test.py` drives Debian's
//! chromium-headless-shell through Playwright against it: sign-in, the overview's
//! figures, a form through the command path, live update, refusals, sessions and
//! CSRF, in-browser proof verification, axe-core, the downloads and the OpenAPI
//! document. The tools come from `deploy/install-console-tools.sh` (run by
//! `deploy/test.sh`); screenshots go to `tests/console/artifacts/` (git-ignored).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coord_auth::{Role, TokenSigner};
use tests::up::Up;
use tests::{free_port, workspace_root};

/// The whole browser run may take this long; past it the script is killed.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(420);

fn tool(path: &str) -> std::path::PathBuf {
    let path = workspace_root().join(path);
    assert!(
        path.exists(),
        "{} is missing: run deploy/install-console-tools.sh (deploy/test.sh does)",
        path.display()
    );
    path
}

/// Runs the script with a deadline; its output is printed, its exit status returned.
fn run_script(env: &[(&str, String)]) -> bool {
    let mut cmd = Command::new(tool(".tools/venv/bin/python"));
    cmd.arg(workspace_root().join("tests/console/console_test.py"))
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the browser test starts");
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser test did not end within {SCRIPT_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_console_works_in_a_real_browser_against_the_quick_start_system() {
    tool("tests/console/node_modules/axe-core/axe.min.js");
    let data = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let mut up = Up::start(data.path(), free_port(), http_port);
    up.wait_for("Nhấn Ctrl-C");
    let credentials = data.path().join("credentials");
    let signer = coordctl::tokens::signer(&credentials).expect("the signing key");
    let sign = |office: &str, role, ttl: u64| {
        let claims = TokenSigner::claims_now(office.parse().unwrap(), "kiểm thử", role)
            .valid_for(Duration::from_secs(ttl));
        signer.sign(&claims).unwrap()
    };
    let env = [
        ("CONSOLE_URL", format!("http://127.0.0.1:{http_port}")),
        ("CONSOLE_CREDENTIALS", credentials.display().to_string()),
        ("CONSOLE_READER_TOKEN", sign("province", Role::Reader, 3600)),
        ("CONSOLE_SHORT_TOKEN", sign("province", Role::Operator, 15)),
        (
            "CONSOLE_ARTIFACTS",
            workspace_root()
                .join("tests/console/artifacts")
                .display()
                .to_string(),
        ),
        (
            "CONSOLE_AXE",
            tool("tests/console/node_modules/axe-core/axe.min.js")
                .display()
                .to_string(),
        ),
    ];
    let passed = run_script(&env);
    up.interrupt();
    assert!(passed, "the browser test failed: see its output above");
}
