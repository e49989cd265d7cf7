//! `coordctl deploy …`: what a deployment outside `coordctl up` needs from this tool
//! (`deploy/production/`: containers, a 3-node NATS cluster, Kubernetes).
//!
//! - `secrets --out DIR`: the site's secrets, owner-only, kept if they exist: the NATS
//!   admin password and one nkey per process (`DIR/nats/*.nk`), the `authorization`
//!   block every nats-server of the site includes (`DIR/nats/auth.conf`: the users'
//!   public keys and subject permissions, and the admin password), the token signing
//!   key, an operator token per office and the site's admin token. Prints the token
//!   verifier key the gateway is given (`COORD_TOKEN_PUBLIC_KEY`).
//! - `streams --nats URLS --replicas N`: as the NATS admin, creates the log stream and
//!   the idempotency bucket at N replicas (3 on a 3-node cluster), once the servers run.

use std::path::{Path, PathBuf};

use anyhow::Context;
use coord_auth::nats::{LogSubjects, NatsCredentials};

use crate::tokens;

#[derive(Debug, clap::Subcommand)]
pub enum DeployCommand {
    /// Write the site's NATS credentials, its servers' `auth.conf`, and its tokens.
    Secrets {
        /// Folder for the secrets (owner-only; keep it out of the repository).
        #[arg(long)]
        out: PathBuf,
    },
    /// Create the log stream and the idempotency bucket as the NATS admin.
    Streams {
        /// The cluster's servers, comma-separated.
        #[arg(long, env = "COORD_NATS_URL")]
        nats: String,
        /// The secrets folder `deploy secrets` wrote (its `nats/admin.password`).
        #[arg(long)]
        secrets: PathBuf,
        /// Copies of the log and of the idempotency bucket (1 or 3; at most the servers).
        #[arg(long, default_value_t = 3)]
        replicas: usize,
    },
}

/// Runs `coordctl deploy …`; returns what to print.
pub async fn run(command: DeployCommand) -> anyhow::Result<String> {
    match command {
        DeployCommand::Secrets { out } => secrets(&out),
        DeployCommand::Streams {
            nats,
            secrets,
            replicas,
        } => {
            let creds = NatsCredentials::ensure(&secrets.join("nats"))?;
            let client = admin_connect(&nats, &creds.admin_password).await?;
            create_log(client, replicas).await?;
            Ok(format!(
                "log stream and idempotency bucket ready at {replicas} replica(s)"
            ))
        }
    }
}

/// Writes (or keeps) every secret of a single site hosting every office.
pub fn secrets(out: &Path) -> anyhow::Result<String> {
    let creds = NatsCredentials::ensure(&out.join("nats"))?;
    let auth =
        serde_json::json!({ "authorization": creds.authorization(&LogSubjects::default())? });
    coord_auth::nats::write_config(&out.join("nats/auth.conf"), &auth)?;
    let province = coord_domain::province::an_giang();
    tokens::ensure_office_tokens(out, province, &tokens::all_offices(province))?;
    tokens::ensure_admin_tokens(out, province, &[coord_domain::Office::Province])?;
    Ok(tokens::signer(out)?.public_key())
}

/// Connects as the NATS admin to any of `servers` (comma-separated).
pub async fn admin_connect(servers: &str, password: &str) -> anyhow::Result<async_nats::Client> {
    let list: Vec<&str> = servers.split(',').map(str::trim).collect();
    coord_service::server::password_options("admin", password)
        .connect(list)
        .await
        .with_context(|| format!("cannot connect to NATS at {servers} as admin"))
}

/// Creates (or finds) the log stream, the idempotency bucket and the lease bucket with
/// `replicas` copies.
pub async fn create_log(client: async_nats::Client, replicas: usize) -> anyhow::Result<()> {
    let config = coord_log::jetstream::JetStreamConfig {
        replicas,
        ..Default::default()
    };
    coord_log::jetstream::JetStreamLog::open(client.clone(), config)
        .await
        .context("cannot create the log stream")?;
    if replicas > 1 {
        create_replicated_bucket(&client, replicas).await?;
    }
    crate::launcher::create_idempotency_bucket(client.clone()).await?;
    coord_service::lease::ensure_bucket(client.clone(), replicas).await?;
    client.flush().await.ok();
    Ok(())
}

/// The idempotency bucket as `coord_service::JetStreamKeys` creates it, at `replicas`
/// copies (that type creates it at one when it finds none).
pub(crate) async fn create_replicated_bucket(
    client: &async_nats::Client,
    replicas: usize,
) -> anyhow::Result<()> {
    use async_nats::jetstream::{self, kv};
    let js = jetstream::new(client.clone());
    let bucket = LogSubjects::default().idempotency_bucket;
    if js.get_key_value(&bucket).await.is_ok() {
        return Ok(());
    }
    js.create_key_value(kv::Config {
        bucket: bucket.clone(),
        description: "Idempotency keys: command id → request fingerprint".into(),
        history: 1,
        storage: jetstream::stream::StorageType::File,
        max_value_size: 4096,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .with_context(|| format!("cannot create the idempotency bucket {bucket}"))?;
    Ok(())
}
