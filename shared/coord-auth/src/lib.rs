//! Who may act, and as whom. Two boundaries carry identity:
//!
//! - HTTP: a bearer [`token`] binds an office, an actor and a role, signed with an
//!   Ed25519 key generated at first start (never committed); the gateway holds only the
//!   public key, so it can check tokens but not make them.
//! - NATS: every process connects as its own [`nats`] user with subject permissions;
//!   only the operator's admin user may create, change or delete streams and consumers.
//!
//! [`secret`] writes the generated keys and credentials with owner-only permissions.

pub mod nats;
pub mod secret;
pub mod token;

pub use token::{Claims, Role, TokenError, TokenSigner, TokenVerifier};
