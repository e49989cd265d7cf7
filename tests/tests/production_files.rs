//! Every file under `deploy/production/` parses and they agree with each other: the
//! nats-server configurations pass `nats-server -t` with an `auth.conf` that
//! `coordctl deploy secrets` generates, the YAML files (compose, Helm values) parse, the
//! compose file runs only binaries the Dockerfile ships with credentials that exist, and
//! the cluster is 3 nodes with `sync_interval: always`. Images are not built here.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

fn production() -> PathBuf {
    tests::workspace_root().join("deploy/production")
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let mut value: Value = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    value.apply_merge().unwrap();
    value
}

/// `nats-server -t` on `config`: its status and what it said.
fn check_nats_config(config: &Path) -> (bool, String) {
    let out = Command::new(tests::nats_server_bin())
        .arg("-t")
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), said)
}

/// The server configurations beside a generated `auth.conf`, in a temporary folder.
fn nats_configs_with_auth(secrets: &Path) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(secrets.join("nats/auth.conf"), dir.path().join("auth.conf")).unwrap();
    let mut configs = Vec::new();
    for file in files(&production().join("nats")) {
        let copy = dir.path().join(file.file_name().unwrap());
        std::fs::copy(&file, &copy).unwrap();
        configs.push(copy);
    }
    (dir, configs)
}

#[test]
fn every_production_file_parses_and_they_agree() {
    let secrets = tempfile::tempdir().unwrap();
    let key = coordctl::deploy::secrets(secrets.path()).unwrap();
    assert!(!key.is_empty());
    let (_dir, configs) = nats_configs_with_auth(secrets.path());
    assert_eq!(configs.len(), 3, "three servers");
    for config in &configs {
        let (ok, said) = check_nats_config(config);
        assert!(ok, "{}: {said}", config.display());
        let text = std::fs::read_to_string(config).unwrap();
        assert!(
            text.contains("sync_interval: always"),
            "{}",
            config.display()
        );
    }
    // The check can fail: a wrong value is refused.
    let broken = configs[0].with_file_name("broken.conf");
    let text = std::fs::read_to_string(&configs[0]).unwrap();
    std::fs::write(
        &broken,
        text.replace("sync_interval: always", "sync_interval: sometimes"),
    )
    .unwrap();
    assert!(
        !check_nats_config(&broken).0,
        "nats-server -t refuses a bad value"
    );

    for file in files(&production()) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match file.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => drop(yaml(&file)),
            Some("conf" | "md") => {}
            _ if name == "Dockerfile" || name == "Dockerfile.dockerignore" => {}
            _ => panic!(
                "{}: no check for this kind of file; add one",
                file.display()
            ),
        }
    }
    compose_agrees(secrets.path());
    helm_values_agree();
}

/// The binaries the Dockerfile copies into the image.
fn shipped_binaries() -> Vec<String> {
    let text = std::fs::read_to_string(production().join("Dockerfile")).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("for bin in"))
        .expect("the Dockerfile copies the binaries in one loop");
    let list = line
        .split("for bin in")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    list.split_whitespace().map(str::to_owned).collect()
}

fn compose_agrees(secrets: &Path) {
    let compose = yaml(&production().join("compose.yaml"));
    let services = compose["services"].as_mapping().expect("services");
    let shipped = shipped_binaries();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let command: Vec<&str> = service["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} has a command"))
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        if let Some(n) = name.strip_prefix("nats-") {
            assert_eq!(command, ["-c", &format!("/etc/nats/nats-{n}.conf")]);
            assert!(production().join(format!("nats/nats-{n}.conf")).exists());
            continue;
        }
        assert!(
            shipped.iter().any(|b| b == command[0]),
            "{name} runs {}, which the Dockerfile does not ship ({shipped:?})",
            command[0]
        );
        if let Some(creds) = service["environment"]["COORD_NATS_CREDS"].as_str() {
            let file = creds.strip_prefix("/run/coord/").unwrap();
            assert!(secrets.join(file).exists(), "{name}: {file} is generated");
            // Its own key and nothing else of the secrets (not the token signing key,
            // the tokens or another process's key).
            let mounts: Vec<&str> = service["volumes"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{name} mounts its key"))
                .iter()
                .map(|v| v.as_str().unwrap())
                .filter(|v| v.starts_with("./secrets"))
                .collect();
            assert_eq!(mounts, [format!("./secrets/{file}:{creds}:ro")], "{name}");
        }
        let url = service["environment"]["COORD_NATS_URL"].as_str().unwrap();
        assert_eq!(url.split(',').count(), 3, "{name} is given every server");
    }
    // `init` reads the admin password, which stays the operator's: it runs as root.
    assert_eq!(services["init"]["user"].as_str(), Some("0"), "init's user");
    for service in [
        "nats-1",
        "nats-2",
        "nats-3",
        "init",
        "gateway",
        "projector",
        "auditor",
    ] {
        assert!(services.contains_key(service), "{service}");
    }
}

fn helm_values_agree() {
    let values = yaml(&production().join("helm/nats-values.yaml"));
    let config = &values["config"];
    assert_eq!(config["cluster"]["enabled"], Value::Bool(true));
    assert_eq!(config["cluster"]["replicas"].as_u64(), Some(3));
    assert_eq!(
        config["jetstream"]["fileStore"]["enabled"],
        Value::Bool(true)
    );
    assert_eq!(
        config["jetstream"]["merge"]["sync_interval"].as_str(),
        Some("always")
    );
    assert!(
        config["merge"]["$include"]
            .as_str()
            .is_some_and(|p| p.ends_with("auth.conf"))
    );
}
