//! NATS users and their subject permissions, and the server configuration that holds
//! them. No anonymous access: every process connects as one [`NatsRole`]'s user with an
//! nkey (the server keeps only public keys); the operator's admin user, with a
//! generated password, is the only one that may create, change, purge or delete
//! streams and consumers of the log.
//!
//! What each permission rests on (each checked on a real server by
//! `tests/tests/nats_permissions.rs`):
//! - *Inboxes*: each user has its own inbox prefix, [`inbox_prefix`] of its public key,
//!   and may subscribe only under it; no user may publish to an inbox, answers go out
//!   through `allow_responses` (only to a request delivered to the answering user).
//! - *Consumers*: NATS wildcards match whole tokens, so no permission can say "names
//!   that start with …". What a permission can see is the name token of
//!   `$JS.API.CONSUMER.CREATE.<stream>.<name>[.<filter>]`: users create consumers only
//!   there, never through `$JS.API.CONSUMER.CREATE.<stream>` (the server takes the name
//!   from the body there, and updates an existing consumer of that name, a durable
//!   one included) nor `CONSUMER.DURABLE.CREATE`. The consumers only the admin may
//!   touch (the sourcing ones, [`LogSubjects::admin_consumers`]) are denied by name.
//!   Everything else a user creates has a random name no other user can learn (no
//!   user may list consumers or see another's inbox).
//! - *Idempotency keys*: the bucket's stream is write-once per key (see
//!   `coord_service::JetStreamKeys`): the server refuses any second message on a key,
//!   delete and purge markers included, whatever its headers say.
//!
//! Configuration is written as JSON, which nats-server's configuration parser reads.

use std::path::{Path, PathBuf};

use nkeys::KeyPair;
use serde_json::{Value, json};

use crate::secret;

/// Who connects to NATS, each with the least it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsRole {
    /// A command service: serves `coord.cmd.<service>.>`, reads and appends to the log.
    Command(&'static str),
    /// The projector: reads the log, serves queries and the rebuild request.
    Projector,
    /// The gateway: sends commands and queries, reads the log.
    Gateway,
    /// Reads the log and nothing more.
    Reader,
    /// The analytics live feed: reads the log only through consumers it creates on the
    /// log stream (a durable one to resume from); no direct gets, no other stream.
    Analytics,
    /// `POST /v1/admin/import`: reads and appends to the log (given to the gateway only
    /// for a migration).
    Importer,
    /// The auditor: reads the log, serves `coord.audit.>` queries and publishes its
    /// signed checkpoints (`coord.audit.<office>.published`); as a witness (the hub's
    /// over the offices, an office's over the province) it also asks for consistency
    /// proofs and sends back cosignatures (`coord.audit.<office>.consistency`,
    /// `coord.audit.<office>.cosigned.<own office>`); it never writes the log.
    Auditor,
}

/// Every role a local system runs, with its user name.
pub const ROLES: &[(&str, NatsRole)] = &[
    ("inspection", NatsRole::Command("inspection")),
    ("exchange", NatsRole::Command("exchange")),
    ("discipline", NatsRole::Command("discipline")),
    ("projector", NatsRole::Projector),
    ("gateway", NatsRole::Gateway),
    ("reader", NatsRole::Reader),
    ("analytics", NatsRole::Analytics),
    ("importer", NatsRole::Importer),
    ("auditor", NatsRole::Auditor),
];

/// The role of process `name` (a workspace binary or `reader`).
pub fn role_of(name: &str) -> Option<NatsRole> {
    ROLES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// The log a user's permissions are about.
#[derive(Debug, Clone)]
pub struct LogSubjects {
    /// The JetStream stream, e.g. `COORD_LOG`.
    pub stream: String,
    /// The subject prefix of its messages, e.g. `coord.log`.
    pub prefix: String,
    /// The offices (slugs) whose subjects `{prefix}.{office}.>` this server's writers
    /// may append to: those it hosts. Empty: every office (a single server).
    pub offices: Vec<String>,
    /// The key-value bucket where command services claim idempotency keys, e.g.
    /// `COORD_IDEMPOTENCY` (the admin creates it beside the log).
    pub idempotency_bucket: String,
    /// Consumers of the log only the admin may create or change: the durable sourcing
    /// consumers of a multi-office topology (`to-hub`, `to-<office>`).
    pub admin_consumers: Vec<String>,
}

impl Default for LogSubjects {
    fn default() -> Self {
        Self {
            stream: "COORD_LOG".into(),
            prefix: "coord.log".into(),
            offices: Vec::new(),
            idempotency_bucket: "COORD_IDEMPOTENCY".into(),
            admin_consumers: Vec::new(),
        }
    }
}

impl LogSubjects {
    /// The log subjects a writer here may publish on.
    pub fn writable(&self) -> Vec<String> {
        if self.offices.is_empty() {
            return vec![format!("{}.>", self.prefix)];
        }
        self.offices
            .iter()
            .map(|o| format!("{}.{o}.>", self.prefix))
            .collect()
    }
}

/// JetStream API requests that change streams or consumers: refused to every user but
/// the admin, even if an allow list were widened by mistake.
const ADMIN_ONLY: &[&str] = &[
    "$JS.API.STREAM.CREATE.>",
    "$JS.API.STREAM.UPDATE.>",
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
    "$JS.API.STREAM.RESTORE.>",
    "$JS.API.CONSUMER.DURABLE.CREATE.>",
    // The legacy create: the consumer's name is in the body, out of a permission's
    // sight, and an existing consumer of that name is updated.
    "$JS.API.CONSUMER.CREATE.*",
    "$JS.API.CONSUMER.DELETE.>",
];

/// The inbox prefix of NATS user `user` (its nkey public key; `admin` for the admin):
/// `_INBOX_<user>`, one token, so that no pattern short of `>` or `*.>` covers two
/// users' inboxes. Clients set it with `ConnectOptions::custom_inbox_prefix`; replies
/// to their requests (JetStream API answers and publish acks included) arrive there.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// Every subject of user `user`'s inbox.
pub fn inbox_subjects(user: &str) -> String {
    format!("{}.>", inbox_prefix(user))
}

/// The public key of nkey user seed `seed` (`SU…`).
pub fn public_key_of_seed(seed: &str) -> Result<String, nkeys::error::Error> {
    KeyPair::from_seed(seed.trim()).map(|k| k.public_key())
}

/// The inbox prefix of the user whose nkey seed is `seed`.
pub fn inbox_prefix_of_seed(seed: &str) -> Result<String, nkeys::error::Error> {
    public_key_of_seed(seed).map(|key| inbox_prefix(&key))
}

impl NatsRole {
    /// The `permissions` block of this role's user, whose nkey public key is `user`.
    pub fn permissions(self, log: &LogSubjects, user: &str) -> Value {
        let mut publish = log_consumers(log);
        let mut subscribe = vec![inbox_subjects(user)];
        if self == NatsRole::Analytics {
            // Reads the log only through its consumers: no direct or message gets.
            return permission_block(publish, subscribe, log);
        }
        let s = &log.stream;
        // Reading the log around consumers too: direct gets, a subject's last message.
        publish.extend([
            format!("$JS.API.STREAM.MSG.GET.{s}"),
            format!("$JS.API.DIRECT.GET.{s}"),
            format!("$JS.API.DIRECT.GET.{s}.>"),
        ]);
        match self {
            NatsRole::Command(service) => {
                publish.extend(log.writable());
                publish.extend(idempotency_keys(&log.idempotency_bucket));
                subscribe.push(format!("coord.cmd.{service}.>"));
                subscribe.push("$SRV.>".into());
            }
            NatsRole::Projector => {
                subscribe.push("coord.query.>".into());
                subscribe.push("coord.admin.projector.>".into());
                subscribe.push("$SRV.>".into());
            }
            NatsRole::Gateway => {
                publish.push("coord.cmd.>".into());
                publish.push("coord.query.>".into());
                publish.push("coord.admin.>".into());
                publish.push("coord.audit.>".into());
                publish.push("$SRV.>".into());
            }
            NatsRole::Importer => publish.extend(log.writable()),
            NatsRole::Auditor => {
                publish.push("coord.audit.*.published".into());
                // A witness (the hub's over the offices, an office's over the
                // province): asks the watched auditor for a consistency proof and
                // sends it its cosignature (`coord.audit.<watched>.cosigned.<own>`).
                publish.push("coord.audit.*.consistency".into());
                publish.push("coord.audit.*.cosigned.*".into());
                // Single-active: its lease, `auditor.<office>` in the lease bucket.
                publish.extend(lease_keys("auditor"));
                subscribe.push("coord.audit.>".into());
                subscribe.push("$SRV.>".into());
            }
            NatsRole::Reader | NatsRole::Analytics => {}
        }
        permission_block(publish, subscribe, log)
    }
}

/// Reading the log through consumers of its stream: look the stream up, create (or
/// look up) a consumer by name, pull and acknowledge. Pull consumers need no flow
/// control (`$JS.FC`).
fn log_consumers(log: &LogSubjects) -> Vec<String> {
    let s = &log.stream;
    vec![
        "$JS.API.INFO".into(),
        format!("$JS.API.STREAM.INFO.{s}"),
        format!("$JS.API.CONSUMER.CREATE.{s}.*"),
        format!("$JS.API.CONSUMER.CREATE.{s}.*.>"),
        format!("$JS.API.CONSUMER.INFO.{s}.*"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{s}.*"),
        format!("$JS.ACK.{s}.>"),
    ]
}

/// A user's block: `publish` and `subscribe` allowed, answers to requests delivered to
/// it, and never the admin's API or the admin's consumers.
fn permission_block(publish: Vec<String>, subscribe: Vec<String>, log: &LogSubjects) -> Value {
    json!({
        "publish": { "allow": publish, "deny": admin_only(log) },
        "subscribe": { "allow": subscribe },
        "allow_responses": true,
    })
}

/// [`ADMIN_ONLY`], and creating, updating, pulling from or acknowledging for a
/// consumer only the admin may touch.
fn admin_only(log: &LogSubjects) -> Vec<String> {
    let s = &log.stream;
    let mut deny: Vec<String> = ADMIN_ONLY.iter().map(|d| (*d).to_owned()).collect();
    for name in &log.admin_consumers {
        deny.extend([
            format!("$JS.API.CONSUMER.CREATE.{s}.{name}"),
            format!("$JS.API.CONSUMER.CREATE.{s}.{name}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{s}.{name}"),
            format!("$JS.ACK.{s}.{name}.>"),
        ]);
    }
    deny
}

/// What a command service needs of the idempotency bucket: open it, read a key, claim
/// a key (a publish that expects no previous value). Not create, purge or delete it:
/// the bucket's stream refuses a second message on a key, so a delete or purge marker
/// published on `$KV.<bucket>.<key>` is refused too.
fn idempotency_keys(bucket: &str) -> [String; 4] {
    let stream = format!("KV_{bucket}");
    [
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
        format!("$KV.{bucket}.>"),
    ]
}

/// The key-value bucket of the single-active roles' leases (the admin creates it).
pub const LEASE_BUCKET: &str = "COORD_LEASES";

/// What a single-active role needs of the lease bucket: open it, read a lease, take and
/// renew the leases of role `role` (keys `<role>.…`), nothing else.
fn lease_keys(role: &str) -> [String; 4] {
    let stream = format!("KV_{LEASE_BUCKET}");
    [
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
        format!("$KV.{LEASE_BUCKET}.{role}.>"),
    ]
}

/// The generated credentials of one NATS server, in a folder (owner-only): the admin
/// password and one nkey seed per role.
#[derive(Debug, Clone)]
pub struct NatsCredentials {
    dir: PathBuf,
    pub admin_password: String,
}

impl NatsCredentials {
    /// Reads the credentials in `dir`, generating what is missing.
    pub fn ensure(dir: &Path) -> std::io::Result<Self> {
        secret::ensure_private_dir(dir)?;
        let admin_password =
            secret::read_or_create(&dir.join("admin.password"), secret::random_secret)?;
        for (name, _) in ROLES {
            Self::read_or_create_seed(dir, name)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            admin_password,
        })
    }

    fn read_or_create_seed(dir: &Path, name: &str) -> std::io::Result<String> {
        secret::read_or_create(&dir.join(format!("{name}.nk")), || {
            KeyPair::new_user().seed().expect("a new key has a seed")
        })
    }

    /// The seed file of user `name`: what `COORD_NATS_CREDS` points to.
    pub fn seed_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.nk"))
    }

    /// The public key of user `name`.
    pub fn public_key(&self, name: &str) -> std::io::Result<String> {
        let seed = std::fs::read_to_string(self.seed_file(name))?;
        public_key_of_seed(&seed)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }

    /// The inbox prefix of user `name` ([`inbox_prefix`] of its public key).
    pub fn inbox_prefix(&self, name: &str) -> std::io::Result<String> {
        self.public_key(name).map(|key| inbox_prefix(&key))
    }

    /// The server's `authorization` block: the admin and every role's user.
    pub fn authorization(&self, log: &LogSubjects) -> std::io::Result<Value> {
        let mut users = vec![json!({ "user": "admin", "password": self.admin_password })];
        for (name, role) in ROLES {
            let key = self.public_key(name)?;
            users.push(json!({
                "permissions": role.permissions(log, &key),
                "nkey": key,
            }));
        }
        Ok(json!({ "users": users }))
    }
}

/// A single nats-server with JetStream on `127.0.0.1:port`, storing in `store_dir`,
/// with no anonymous access.
pub fn single_server_config(
    port: u16,
    store_dir: &Path,
    credentials: &NatsCredentials,
    log: &LogSubjects,
) -> std::io::Result<Value> {
    Ok(json!({
        "host": "127.0.0.1",
        "port": port,
        "jetstream": { "store_dir": store_dir.display().to_string() },
        "authorization": credentials.authorization(log)?,
    }))
}

/// Writes a server configuration owner-only (it holds the admin password).
pub fn write_config(path: &Path, config: &Value) -> std::io::Result<()> {
    secret::write_private(
        path,
        &serde_json::to_string_pretty(config).expect("JSON values serialize"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "UTESTUSER";

    fn list(p: &Value, kind: &str, which: &str) -> Vec<String> {
        p[kind][which]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn no_role_but_admin_may_change_streams_and_only_command_services_append() {
        let log = LogSubjects::default();
        for (name, role) in ROLES {
            let allow = list(&role.permissions(&log, USER), "publish", "allow");
            assert!(
                !allow.iter().any(|s| s.starts_with("$JS.API.STREAM.DELETE")
                    || s.starts_with("$JS.API.STREAM.PURGE")
                    || s == ">"),
                "{name}"
            );
            assert_eq!(
                allow.contains(&"coord.log.>".to_owned()),
                matches!(role, NatsRole::Command(_) | NatsRole::Importer),
                "{name}"
            );
            assert_eq!(
                allow.contains(&"$KV.COORD_IDEMPOTENCY.>".to_owned()),
                matches!(role, NatsRole::Command(_)),
                "{name}: only command services claim idempotency keys"
            );
        }
    }

    #[test]
    fn each_user_subscribes_to_its_own_inbox_only_and_publishes_to_none() {
        let log = LogSubjects::default();
        for (name, role) in ROLES {
            let p = role.permissions(&log, USER);
            let subscribe = list(&p, "subscribe", "allow");
            let inboxes: Vec<&String> = subscribe
                .iter()
                .filter(|s| s.starts_with("_INBOX"))
                .collect();
            assert_eq!(inboxes, ["_INBOX_UTESTUSER.>"], "{name}");
            assert!(
                !subscribe.iter().any(|s| s == ">" || s.starts_with('*')),
                "{name}"
            );
            let publish = list(&p, "publish", "allow");
            assert!(
                !publish
                    .iter()
                    .any(|s| s.starts_with("_INBOX") || s.starts_with('*') || s == ">"),
                "{name}: publishes to an inbox"
            );
            assert_eq!(p["allow_responses"], json!(true), "{name}");
        }
        assert_eq!(inbox_prefix("admin"), "_INBOX_admin");
    }

    #[test]
    fn consumers_are_created_by_name_and_the_admins_are_denied_by_name() {
        let log = LogSubjects {
            admin_consumers: vec!["to-hub".into()],
            ..LogSubjects::default()
        };
        for (name, role) in ROLES {
            let p = role.permissions(&log, USER);
            let allow = list(&p, "publish", "allow");
            assert!(
                allow.contains(&"$JS.API.CONSUMER.CREATE.COORD_LOG.*".to_owned()),
                "{name}"
            );
            assert!(
                !allow
                    .iter()
                    .any(|s| s == "$JS.API.CONSUMER.CREATE.COORD_LOG"
                        || s.starts_with("$JS.FC")
                        || s.starts_with("$JS.API.CONSUMER.DURABLE")),
                "{name}: {allow:?}"
            );
            let deny = list(&p, "publish", "deny");
            for denied in [
                "$JS.API.CONSUMER.CREATE.*",
                "$JS.API.CONSUMER.DURABLE.CREATE.>",
                "$JS.API.CONSUMER.CREATE.COORD_LOG.to-hub",
                "$JS.API.CONSUMER.CREATE.COORD_LOG.to-hub.>",
            ] {
                assert!(deny.contains(&denied.to_owned()), "{name}: {denied}");
            }
        }
    }

    #[test]
    fn the_analytics_user_only_reads_the_log_through_its_consumers() {
        let p = NatsRole::Analytics.permissions(&LogSubjects::default(), USER);
        let allow = list(&p, "publish", "allow");
        assert!(allow.contains(&"$JS.API.CONSUMER.CREATE.COORD_LOG.*.>".to_owned()));
        assert!(
            allow
                .iter()
                .all(|s| s.starts_with("$JS.API.") || s.starts_with("$JS.ACK.COORD_LOG")),
            "{allow:?}"
        );
        assert!(
            !allow
                .iter()
                .any(|s| s.contains("DIRECT.GET") || s.contains("MSG.GET"))
        );
        assert_eq!(p["subscribe"]["allow"], json!(["_INBOX_UTESTUSER.>"]));
    }

    #[test]
    fn the_auditor_reads_the_log_and_serves_audit_queries_but_never_writes_the_log() {
        let p = NatsRole::Auditor.permissions(&LogSubjects::default(), USER);
        let (publish, subscribe) = (list(&p, "publish", "allow"), list(&p, "subscribe", "allow"));
        assert!(publish.contains(&"$JS.API.CONSUMER.CREATE.COORD_LOG.*.>".to_owned()));
        assert!(publish.contains(&"coord.audit.*.published".to_owned()));
        assert!(!publish.iter().any(|s| s.starts_with("coord.log")
            || s.starts_with("coord.cmd")
            || s.starts_with("$JS.API.STREAM.DELETE")));
        assert!(subscribe.contains(&"coord.audit.>".to_owned()));
        assert_eq!(role_of("auditor"), Some(NatsRole::Auditor));
    }

    #[test]
    fn credentials_are_generated_once_and_the_config_holds_only_public_keys() {
        let dir = tempfile::tempdir().unwrap();
        let creds = NatsCredentials::ensure(dir.path()).unwrap();
        let again = NatsCredentials::ensure(dir.path()).unwrap();
        assert_eq!(creds.admin_password, again.admin_password);
        let config =
            single_server_config(4222, dir.path(), &creds, &LogSubjects::default()).unwrap();
        let text = config.to_string();
        let seed = std::fs::read_to_string(creds.seed_file("gateway")).unwrap();
        assert!(!text.contains(seed.trim()));
        let key = creds.public_key("gateway").unwrap();
        assert!(text.contains(&key));
        // The user's inbox is derived from its key, on the server's side and on the
        // client's (from the seed) alike.
        assert_eq!(
            inbox_prefix_of_seed(&seed).unwrap(),
            creds.inbox_prefix("gateway").unwrap()
        );
        assert!(text.contains(&inbox_subjects(&key)));
    }
}
