//! NATS users and their subject permissions, and the server configuration that holds
//! them. No anonymous access: every process connects as one [`NatsRole`]'s user with an
//! nkey (the server keeps only public keys); the operator's admin user, with a
//! generated password, is the only one that may create, change, purge or delete
//! streams and consumers of the log.
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
}

impl Default for LogSubjects {
    fn default() -> Self {
        Self {
            stream: "COORD_LOG".into(),
            prefix: "coord.log".into(),
            offices: Vec::new(),
            idempotency_bucket: "COORD_IDEMPOTENCY".into(),
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
    "$JS.API.CONSUMER.DELETE.>",
];

impl NatsRole {
    /// The `permissions` block of this role's user.
    pub fn permissions(self, log: &LogSubjects) -> Value {
        if self == NatsRole::Analytics {
            return consumer_only(log);
        }
        let s = &log.stream;
        // Reading the log: stream info, direct gets, ephemeral ordered consumers.
        let mut publish: Vec<String> = vec![
            "$JS.API.INFO".into(),
            format!("$JS.API.STREAM.INFO.{s}"),
            format!("$JS.API.STREAM.MSG.GET.{s}"),
            format!("$JS.API.DIRECT.GET.{s}"),
            format!("$JS.API.DIRECT.GET.{s}.>"),
            format!("$JS.API.CONSUMER.CREATE.{s}"),
            format!("$JS.API.CONSUMER.CREATE.{s}.>"),
            format!("$JS.API.CONSUMER.INFO.{s}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{s}.>"),
            format!("$JS.ACK.{s}.>"),
            "$JS.FC.>".into(),
        ];
        let mut subscribe: Vec<String> = vec!["_INBOX.>".into()];
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
                subscribe.push("coord.audit.>".into());
                subscribe.push("$SRV.>".into());
            }
            NatsRole::Reader | NatsRole::Analytics => {}
        }
        json!({
            "publish": { "allow": publish, "deny": ADMIN_ONLY },
            "subscribe": { "allow": subscribe },
            "allow_responses": true,
        })
    }
}

/// Reading the log through consumers of its stream and nothing else: look the stream
/// up, create (or look up) a consumer on it, pull and acknowledge. Creating a durable
/// takes `CONSUMER.CREATE.<stream>.<name>`; the legacy `CONSUMER.DURABLE.CREATE` and
/// every delete or purge stay denied.
fn consumer_only(log: &LogSubjects) -> Value {
    let s = &log.stream;
    let publish = [
        "$JS.API.INFO".to_owned(),
        format!("$JS.API.STREAM.INFO.{s}"),
        format!("$JS.API.CONSUMER.CREATE.{s}"),
        format!("$JS.API.CONSUMER.CREATE.{s}.>"),
        format!("$JS.API.CONSUMER.INFO.{s}.>"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{s}.>"),
        format!("$JS.ACK.{s}.>"),
    ];
    json!({
        "publish": { "allow": publish, "deny": ADMIN_ONLY },
        "subscribe": { "allow": ["_INBOX.>"] },
        "allow_responses": true,
    })
}

/// What a command service needs of the idempotency bucket: open it, read a key, claim
/// a key (a publish that expects no previous value). Not create, purge or delete it.
fn idempotency_keys(bucket: &str) -> [String; 4] {
    let stream = format!("KV_{bucket}");
    [
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
        format!("$KV.{bucket}.>"),
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
        KeyPair::from_seed(seed.trim())
            .map(|k| k.public_key())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }

    /// The server's `authorization` block: the admin and every role's user.
    pub fn authorization(&self, log: &LogSubjects) -> std::io::Result<Value> {
        let mut users = vec![json!({ "user": "admin", "password": self.admin_password })];
        for (name, role) in ROLES {
            users.push(json!({
                "nkey": self.public_key(name)?,
                "permissions": role.permissions(log),
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

    #[test]
    fn no_role_but_admin_may_change_streams_and_only_command_services_append() {
        let log = LogSubjects::default();
        for (name, role) in ROLES {
            let p = role.permissions(&log);
            let allow: Vec<&str> = p["publish"]["allow"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert!(
                !allow.iter().any(|s| s.starts_with("$JS.API.STREAM.DELETE")
                    || s.starts_with("$JS.API.STREAM.PURGE")
                    || *s == ">"),
                "{name}"
            );
            assert_eq!(
                allow.contains(&"coord.log.>"),
                matches!(role, NatsRole::Command(_) | NatsRole::Importer),
                "{name}"
            );
            assert_eq!(
                allow.contains(&"$KV.COORD_IDEMPOTENCY.>"),
                matches!(role, NatsRole::Command(_)),
                "{name}: only command services claim idempotency keys"
            );
        }
    }

    #[test]
    fn the_analytics_user_only_reads_the_log_through_its_consumers() {
        let p = NatsRole::Analytics.permissions(&LogSubjects::default());
        let allow: Vec<&str> = p["publish"]["allow"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(allow.contains(&"$JS.API.CONSUMER.CREATE.COORD_LOG.>"));
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
        assert_eq!(p["subscribe"]["allow"], json!(["_INBOX.>"]));
    }

    #[test]
    fn the_auditor_reads_the_log_and_serves_audit_queries_but_never_writes_the_log() {
        let p = NatsRole::Auditor.permissions(&LogSubjects::default());
        let list = |kind: &str| -> Vec<String> {
            p[kind]["allow"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        let (publish, subscribe) = (list("publish"), list("subscribe"));
        assert!(publish.contains(&"$JS.API.CONSUMER.CREATE.COORD_LOG.>".to_owned()));
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
        assert!(text.contains(&creds.public_key("gateway").unwrap()));
    }
}
