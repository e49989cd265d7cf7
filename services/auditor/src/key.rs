//! The office's signing key: created on first start in the data directory (mode 0600,
//! from the OS's random source), read back afterwards; never part of the repository.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use coord_audit::Signer;

/// Reads the key at `path`, or creates one named `origin`. A key under another name
/// is refused: an office's origin does not change silently.
pub fn load_or_create(path: &Path, origin: &str) -> anyhow::Result<Signer> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the signing key {}", path.display()))?;
        let signer = Signer::from_key_text(&text)
            .with_context(|| format!("bad signing key in {}", path.display()))?;
        anyhow::ensure!(
            signer.name() == origin,
            "the signing key {} is for `{}`, not the configured origin `{origin}`",
            path.display(),
            signer.name()
        );
        return Ok(signer);
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    let signer = Signer::from_seed(origin, seed)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the signing key {}", path.display()))?;
    writeln!(file, "{}", signer.to_key_text())?;
    file.sync_all()?;
    tracing::info!(key = %signer.verifier(), path = %path.display(), "created the office signing key");
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_no_key_when_started_twice_then_the_same_private_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("office.key");
        let first = load_or_create(&path, "coord/x/province").unwrap();
        let again = load_or_create(&path, "coord/x/province").unwrap();
        assert_eq!(first.verifier(), again.verifier());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(load_or_create(&path, "coord/x/other").is_err());
    }
}
