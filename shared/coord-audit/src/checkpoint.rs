//! C2SP `tlog-checkpoint`: the body of a signed note that commits to one tree size and
//! root: `origin\nsize\nbase64(root)\n`, then optional extension lines (none here).

use crate::note::{Note, NoteError, Signer, Verifier};
use crate::tree::Hash;
use crate::{b64, unb64};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("checkpoint origin is `{found}`, expected `{expected}`")]
    WrongOrigin { expected: String, found: String },
}

/// One commitment to a tree: its origin (the log's name), size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint body, as signed.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, b64(&self.root))
    }

    /// Parses a checkpoint body (a note's text).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let bad = |why: &str| CheckpointError::Malformed(why.into());
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size = lines
            .next()
            .and_then(|s| {
                s.parse::<u64>()
                    .ok()
                    .filter(|_| !s.starts_with('+') && (s == "0" || !s.starts_with('0')))
            })
            .ok_or_else(|| bad("the second line is not a tree size"))?;
        let root: Hash = lines
            .next()
            .and_then(|r| unb64(r).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the third line is not a base64 SHA-256 root"))?;
        if !text.ends_with('\n') {
            return Err(bad("the body must end with a newline"));
        }
        Ok(Self {
            origin: origin.into(),
            size,
            root,
        })
    }

    /// Signs the checkpoint into a note.
    pub fn sign(&self, signer: &Signer) -> String {
        signer
            .sign(&self.to_text())
            .expect("checkpoint bodies are valid note texts")
    }

    /// Opens a signed checkpoint: the note must carry a valid signature by the key
    /// named after `origin` among `verifiers`, and its body must name that origin.
    pub fn open(note: &str, origin: &str, verifiers: &[Verifier]) -> Result<Self, CheckpointError> {
        let note = Note::parse(note)?;
        let own: Vec<Verifier> = verifiers
            .iter()
            .filter(|v| v.name == origin)
            .cloned()
            .collect();
        note.verify(&own)?;
        let checkpoint = Self::parse(&note.text)?;
        if checkpoint.origin != origin {
            return Err(CheckpointError::WrongOrigin {
                expected: origin.into(),
                found: checkpoint.origin,
            });
        }
        Ok(checkpoint)
    }

    /// The origin named by a signed checkpoint, without verifying anything.
    pub fn origin_of(note: &str) -> Option<&str> {
        note.split('\n').next().filter(|o| !o.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_checkpoint_when_signed_then_it_opens_to_itself() {
        let signer = Signer::from_seed("coord/x", [1; 32]).unwrap();
        let cp = Checkpoint {
            origin: "coord/x".into(),
            size: 42,
            root: [9; 32],
        };
        let note = cp.sign(&signer);
        assert!(note.starts_with("coord/x\n42\nCQkJ"));
        assert_eq!(
            Checkpoint::open(&note, "coord/x", &[signer.verifier().clone()]).unwrap(),
            cp
        );
        assert!(Checkpoint::open(&note, "coord/y", &[signer.verifier().clone()]).is_err());
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        for (text, why) in [
            ("\n1\nAA==\n", "origin"),
            ("o\nx\nAA==\n", "tree size"),
            ("o\n01\nAA==\n", "tree size"),
            ("o\n1\nAA==\n", "root"),
        ] {
            let err = Checkpoint::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
