//! C2SP `signed-note` with Ed25519 keys (the format of Go's checksum database and
//! Sigstore's Rekor v2), so any note-aware tool can check our checkpoints.
//!
//! - key hash: the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key), big endian;
//! - verifier key: `name+hexhash+base64(0x01 ‖ public key)`;
//! - signer key (what the auditor keeps on disk): `PRIVATE+KEY+name+hexhash+base64(0x01 ‖ seed)`;
//! - a note: the text (ending in a newline), a blank line, then one line per signature,
//!   `— name base64(key hash ‖ signature)`.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{b64, unb64};

const ED25519: u8 = 0x01;
/// The signature type of C2SP tlog-cosignature/v1 (Ed25519, timestamped).
pub(crate) const COSIGNATURE_V1: u8 = 0x04;
pub(crate) const DASH: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("invalid key name `{0}`: it must be non-empty, without `+` or whitespace")]
    BadName(String),
    #[error("malformed key: {0}")]
    BadKey(String),
    #[error("malformed note: {0}")]
    Malformed(String),
    #[error("the signature of `{0}` does not verify")]
    BadSignature(String),
    #[error("the note carries no signature from a known key ({0})")]
    Unverified(String),
}

pub(crate) fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::BadName(name.into()));
    }
    Ok(())
}

/// The 4-byte key hash of an Ed25519 key under `name`.
pub fn key_hash(name: &str, public: &[u8; 32]) -> u32 {
    key_id(name, ED25519, public)
}

/// SHA-256(name ‖ "\n" ‖ alg ‖ public key)[:4], big endian.
pub(crate) fn key_id(name: &str, alg: u8, public: &[u8; 32]) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([alg])
        .chain_update(public)
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A public key that checks signatures: the note verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    pub hash: u32,
    key: VerifyingKey,
}

impl Verifier {
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.into(),
            hash: key_hash(name, key.as_bytes()),
            key,
        })
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Checks `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .map(|s| self.key.verify_strict(message, &s).is_ok())
            .unwrap_or(false)
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![ED25519];
        key.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.hash, b64(&key))
    }
}

/// The parts of `name+hash+base64(0x01 ‖ key)`: the name, the key hash as written,
/// and the 32 key bytes.
pub(crate) struct KeyParts {
    pub(crate) name: String,
    hash: String,
    /// The signature type byte: 0x01 Ed25519 notes, 0x04 cosignature/v1.
    pub(crate) alg: u8,
    pub(crate) material: [u8; 32],
}

impl KeyParts {
    pub(crate) fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::BadKey(format!("{why} in `{}`", text.trim()));
        let mut parts = text.trim().splitn(3, '+');
        let (name, hash, key) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(h), Some(k)) => (n, h, k),
            _ => return Err(bad("expected name+hash+key")),
        };
        check_name(name)?;
        if hash.len() != 8 || u32::from_str_radix(hash, 16).is_err() {
            return Err(bad("the key hash is not 8 hex digits"));
        }
        let key = unb64(key).map_err(|_| bad("the key is not base64"))?;
        if key.len() != 33 || ![ED25519, COSIGNATURE_V1].contains(&key[0]) {
            return Err(bad("not an Ed25519 key"));
        }
        Ok(Self {
            name: name.into(),
            hash: hash.to_ascii_lowercase(),
            alg: key[0],
            material: key[1..].try_into().expect("33 bytes checked"),
        })
    }

    /// Refuses a key whose written hash is not `hash`, the hash of its name and key.
    pub(crate) fn check_id(&self, hash: u32) -> Result<(), NoteError> {
        if format!("{hash:08x}") != self.hash {
            return Err(NoteError::BadKey(format!(
                "key hash {} does not match the key of `{}`",
                self.hash, self.name
            )));
        }
        Ok(())
    }
}

impl FromStr for Verifier {
    type Err = NoteError;
    fn from_str(text: &str) -> Result<Self, NoteError> {
        let parts = KeyParts::parse(text)?;
        if parts.alg != ED25519 {
            return Err(NoteError::BadKey(format!(
                "`{}` is not a note signing key",
                parts.name
            )));
        }
        let key = VerifyingKey::from_bytes(&parts.material)
            .map_err(|e| NoteError::BadKey(format!("not an Ed25519 point: {e}")))?;
        let verifier = Verifier::new(&parts.name, key)?;
        parts.check_id(verifier.hash)?;
        Ok(verifier)
    }
}

/// A private key that signs notes.
#[derive(Clone)]
pub struct Signer {
    verifier: Verifier,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({})", self.verifier)
    }
}

impl Signer {
    /// The signer `name` with this 32-byte Ed25519 seed (random, from the caller).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        let key = SigningKey::from_bytes(&seed);
        Ok(Self {
            verifier: Verifier::new(name, key.verifying_key())?,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.verifier.name
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The signer key text, `PRIVATE+KEY+name+hash+base64(0x01 ‖ seed)`.
    pub fn to_key_text(&self) -> String {
        let mut seed = vec![ED25519];
        seed.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.verifier.name,
            self.verifier.hash,
            b64(&seed)
        )
    }

    /// Reads a signer key text.
    pub fn from_key_text(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| NoteError::BadKey("a signer key starts with PRIVATE+KEY+".into()))?;
        let parts = KeyParts::parse(rest)?;
        let signer = Self::from_seed(&parts.name, parts.material)?;
        parts.check_id(signer.verifier.hash)?;
        Ok(signer)
    }

    /// Raw Ed25519 signature of `message`.
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The note's signature line for `text`.
    pub fn signature_line(&self, text: &str) -> String {
        let mut sig = self.verifier.hash.to_be_bytes().to_vec();
        sig.extend_from_slice(&self.sign_bytes(text.as_bytes()));
        format!("{DASH}{} {}\n", self.verifier.name, b64(&sig))
    }

    /// Signs `text` (which must end with a newline) into a note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        Ok(format!("{text}\n{}", self.signature_line(text)))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') || text.contains("\n\n") {
        return Err(NoteError::Malformed(
            "the text must end with a newline and hold no blank line".into(),
        ));
    }
    Ok(())
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub hash: u32,
    /// The signature bytes after the key hash.
    pub signature: Vec<u8>,
}

/// A note split into its text and signatures (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
        let text = &note[..=split];
        check_text(text)?;
        let signatures = note[split + 2..]
            .lines()
            .map(parse_signature_line)
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.is_empty() {
            return Err(NoteError::Malformed("no signature lines".into()));
        }
        Ok(Self {
            text: text.into(),
            signatures,
        })
    }

    /// The names of `verifiers` whose signatures are on the note and verify. A
    /// signature from a known key that does not verify is an error; signatures from
    /// unknown keys are ignored; no verified signature at all is an error.
    pub fn verify(&self, verifiers: &[Verifier]) -> Result<Vec<String>, NoteError> {
        let mut verified = Vec::new();
        for sig in &self.signatures {
            let Some(v) = verifiers
                .iter()
                .find(|v| v.name == sig.name && v.hash == sig.hash)
            else {
                continue;
            };
            if !v.verify(self.text.as_bytes(), &sig.signature) {
                return Err(NoteError::BadSignature(sig.name.clone()));
            }
            verified.push(sig.name.clone());
        }
        if verified.is_empty() {
            let names: Vec<&str> = self.signatures.iter().map(|s| s.name.as_str()).collect();
            return Err(NoteError::Unverified(format!(
                "signed by: {}",
                names.join(", ")
            )));
        }
        Ok(verified)
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let bad = || NoteError::Malformed(format!("bad signature line `{line}`"));
    let rest = line.strip_prefix(DASH).ok_or_else(bad)?;
    let (name, sig) = rest.split_once(' ').ok_or_else(bad)?;
    check_name(name)?;
    let bytes = unb64(sig).map_err(|_| bad())?;
    if bytes.len() < 5 {
        return Err(bad());
    }
    Ok(NoteSignature {
        name: name.into(),
        hash: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        signature: bytes[4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from Go's golang.org/x/mod/sumdb/note documentation.
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn signer() -> Signer {
        Signer::from_seed("coord/an-giang/province", [7; 32]).unwrap()
    }

    #[test]
    fn given_gos_published_example_then_it_verifies() {
        let v: Verifier = GO_VKEY.parse().unwrap();
        assert_eq!(v.to_string(), GO_VKEY);
        let note = Note::parse(GO_NOTE).unwrap();
        assert_eq!(
            note.verify(std::slice::from_ref(&v)).unwrap(),
            vec!["PeterNeumann"]
        );
        let forged = GO_NOTE.replace("cryptography", "cryptographY");
        assert_eq!(
            Note::parse(&forged).unwrap().verify(&[v]),
            Err(NoteError::BadSignature("PeterNeumann".into()))
        );
    }

    #[test]
    fn given_a_signed_note_then_keys_round_trip_and_it_verifies() {
        let s = signer();
        let again = Signer::from_key_text(&s.to_key_text()).unwrap();
        assert_eq!(again.verifier(), s.verifier());
        let v: Verifier = s.verifier().to_string().parse().unwrap();
        let note = s.sign("origin\n3\nAAAA\n").unwrap();
        assert_eq!(Note::parse(&note).unwrap().verify(&[v]).unwrap().len(), 1);
    }

    #[test]
    fn given_keys_whose_base64_holds_a_plus_then_they_round_trip() {
        let with_plus: Vec<Signer> = (0u8..64)
            .map(|i| Signer::from_seed("coord/x", [i; 32]).unwrap())
            .filter(|s| s.verifier().to_string().split_once('+').unwrap().1[9..].contains('+'))
            .take(3)
            .collect();
        assert!(!with_plus.is_empty());
        for s in with_plus {
            let v: Verifier = s.verifier().to_string().parse().unwrap();
            assert_eq!(&v, s.verifier());
            assert_eq!(
                Signer::from_key_text(&s.to_key_text()).unwrap().verifier(),
                &v
            );
        }
    }

    #[test]
    fn given_another_key_then_the_note_is_unverified() {
        let note = signer().sign("a\n").unwrap();
        let other = Signer::from_seed("coord/an-giang/province", [8; 32]).unwrap();
        assert!(matches!(
            Note::parse(&note)
                .unwrap()
                .verify(&[other.verifier().clone()]),
            Err(NoteError::Unverified(_))
        ));
    }

    #[test]
    fn bad_keys_and_notes_are_refused_with_a_reason() {
        assert!(matches!(
            "x+zz+AAAA".parse::<Verifier>(),
            Err(NoteError::BadKey(_))
        ));
        assert!(matches!(
            "a b+0000+AAAA".parse::<Verifier>(),
            Err(NoteError::BadName(_))
        ));
        let wrong_hash = signer().verifier().to_string().replacen('+', "+0", 1);
        assert!("x".parse::<Verifier>().is_err());
        assert!(wrong_hash.parse::<Verifier>().is_err());
        assert!(matches!(
            signer().sign("no newline"),
            Err(NoteError::Malformed(_))
        ));
        assert!(matches!(
            Note::parse("a\nb\n"),
            Err(NoteError::Malformed(_))
        ));
    }
}
