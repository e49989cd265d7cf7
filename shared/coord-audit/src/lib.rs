//! The verifiable transparency log of the coordination events (issue 7), as pure code:
//! no I/O, no clock, no randomness, so the auditor service, the gateway, `coordctl`
//! and the tests all compute exactly the same bytes and hashes.
//!
//! - [`leaf`]: the leaf data of an event, its RFC 8785 canonical JSON envelope;
//! - [`tree`]: the RFC 9162 Merkle tree of one office's log, with inclusion and
//!   consistency proofs for any past size (verified with `ct-merkle`);
//! - [`note`]: C2SP `signed-note` with Ed25519 keys, and the note verifier key format;
//! - [`checkpoint`]: C2SP `tlog-checkpoint` bodies;
//! - [`cosign`]: C2SP `tlog-cosignature` and the hub's witness;
//! - [`trust`]: the reviewer's trust file (log and witness keys held outside the gateway);
//! - [`export`]: the NDJSON export format that `coordctl audit verify` reads offline;
//! - [`wire`]: the auditor's NATS query contract;
//! - [`verify`]: walks a log and its checkpoints and reports intact, or the first
//!   position where it breaks and why.

pub mod checkpoint;
pub mod cosign;
pub mod export;
pub mod leaf;
pub mod note;
pub mod tree;
pub mod trust;
pub mod verify;
pub mod wire;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use leaf::{leaf_data, leaf_hash_of};
pub use note::{NoteError, Signer, Verifier};
pub use tree::{Hash, Tree, TreeError};

use base64::Engine as _;

/// Standard base64 with padding: what C2SP notes and the proof JSON use.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn unb64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(text)
}
