//! The office's signing key (and, at the hub, the witness's cosigner key): created on
//! first start in the data directory (mode 0600, from the OS's random source), read
//! back afterwards; never part of the repository.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use coord_audit::cosign::Cosigner;
use coord_audit::{NoteError, Signer};

/// A private key kept as a C2SP `PRIVATE+KEY+…` text.
pub trait KeyFile: Sized {
    fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError>;
    fn from_key_text(text: &str) -> Result<Self, NoteError>;
    fn to_key_text(&self) -> String;
    fn key_name(&self) -> &str;
}

impl KeyFile for Signer {
    fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        Signer::from_seed(name, seed)
    }
    fn from_key_text(text: &str) -> Result<Self, NoteError> {
        Signer::from_key_text(text)
    }
    fn to_key_text(&self) -> String {
        Signer::to_key_text(self)
    }
    fn key_name(&self) -> &str {
        self.name()
    }
}

impl KeyFile for Cosigner {
    fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        Cosigner::from_seed(name, seed)
    }
    fn from_key_text(text: &str) -> Result<Self, NoteError> {
        Cosigner::from_key_text(text)
    }
    fn to_key_text(&self) -> String {
        Cosigner::to_key_text(self)
    }
    fn key_name(&self) -> &str {
        self.name()
    }
}

/// Reads the key at `path`, or creates one named `origin`. A key under another name
/// is refused: an office's origin does not change silently.
pub fn load_or_create<K: KeyFile>(path: &Path, origin: &str) -> anyhow::Result<K> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the signing key {}", path.display()))?;
        let key = K::from_key_text(&text)
            .with_context(|| format!("bad signing key in {}", path.display()))?;
        anyhow::ensure!(
            key.key_name() == origin,
            "the signing key {} is for `{}`, not the configured origin `{origin}`",
            path.display(),
            key.key_name()
        );
        return Ok(key);
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    let key = K::from_seed(origin, seed)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the signing key {}", path.display()))?;
    writeln!(file, "{}", key.to_key_text())?;
    file.sync_all()?;
    tracing::info!(name = origin, path = %path.display(), "created a signing key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_no_key_when_started_twice_then_the_same_private_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("office.key");
        let first: Signer = load_or_create(&path, "coord/x/province").unwrap();
        let again: Signer = load_or_create(&path, "coord/x/province").unwrap();
        assert_eq!(first.verifier(), again.verifier());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(load_or_create::<Signer>(&path, "coord/x/other").is_err());
    }

    #[test]
    fn given_a_witness_key_when_read_back_then_it_is_the_same_cosigner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.key");
        let first: Cosigner = load_or_create(&path, "coord/x/witness").unwrap();
        let again: Cosigner = load_or_create(&path, "coord/x/witness").unwrap();
        assert_eq!(first.verifier(), again.verifier());
        assert!(load_or_create::<Signer>(&path, "coord/x/witness").is_err());
    }
}
