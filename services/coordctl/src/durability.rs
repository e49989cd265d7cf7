//! How much a nats-server's JetStream store survives, chosen per start
//! (`coordctl up --durability`, `coordctl offices init --durability`).
//!
//! - `default`: JetStream's own setting, an fsync of the store every 2 minutes
//!   (`sync_interval: 2m`). A process crash loses nothing acknowledged (the OS has the
//!   writes), but a power loss or an OS crash can lose what was acknowledged since the
//!   last fsync, up to 2 minutes of commands; Jepsen (NATS 2.12.1, 2025) lost
//!   acknowledged writes this way in replicated clusters too (coordinated power
//!   failure; one node's OS crash with a partition or pause).
//! - `strict`: `sync_interval: always`, an fsync before each acknowledgement, the
//!   setting NATS documents for the strongest durability. An acknowledged command then
//!   survives a power loss of the machine, at a cost in commands per second measured by
//!   `cargo bench -p tests --bench durability` (`tests/bench-results/durability.json`).
//!   It does not help against a damaged disk (Jepsen's truncated or bit-flipped `.blk`
//!   files): that needs replicas and backups.

use serde_json::{Value, json};

/// The durability of the servers' JetStream stores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// JetStream's default: fsync every 2 minutes.
    #[default]
    #[value(name = "default")]
    Standard,
    /// fsync before every acknowledgement (`sync_interval: always`).
    Strict,
}

impl Durability {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "default",
            Self::Strict => "strict",
        }
    }

    /// Sets this durability on a server configuration's `jetstream` block.
    pub fn apply(self, config: &mut Value) {
        if self == Self::Strict {
            config["jetstream"]["sync_interval"] = json!("always");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_syncs_always_and_default_leaves_jetstream_as_it_is() {
        let base = json!({ "jetstream": { "store_dir": "/x" } });
        let mut strict = base.clone();
        Durability::Strict.apply(&mut strict);
        assert_eq!(strict["jetstream"]["sync_interval"], "always");
        assert_eq!(strict["jetstream"]["store_dir"], "/x");
        let mut default = base.clone();
        Durability::Standard.apply(&mut default);
        assert_eq!(default, base);
    }
}
