//! The NATS servers `coordctl up` runs: one (`nats-server`, the default) or, with
//! `--cluster N`, N on loopback as one JetStream cluster (`nats-server-1` …): each with
//! its own client port (`--nats-port` and the next ones), route port (`--cluster-port`
//! …), monitoring port (`--monitor-port` …, `/jsz`, `/healthz`) and store
//! (`<data-dir>/nats-cluster/<name>`), every server routing to every other. The log and
//! the idempotency bucket are then created at N replicas (`crate::deploy::create_log`)
//! and every service is given the whole server list.

use std::path::{Path, PathBuf};

use coord_auth::nats::{LogSubjects, NatsCredentials};
use serde_json::{Value, json};

use crate::launcher::UpArgs;

/// The cluster's name in every server's `cluster` block.
const CLUSTER: &str = "coord";

/// One nats-server to run.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its process name (and log file), also its `server_name`.
    pub name: String,
    pub port: u16,
    pub config: PathBuf,
}

impl Server {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// Every server's URL, comma-separated: what the services are given.
pub fn urls(servers: &[Server]) -> String {
    servers
        .iter()
        .map(Server::url)
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes the configuration of each server `args` asks for and returns them.
pub fn write_configs(
    args: &UpArgs,
    creds: &NatsCredentials,
    credentials: &Path,
) -> anyhow::Result<Vec<Server>> {
    let n = usize::from(args.clustering.servers.max(1));
    let mut servers = Vec::new();
    for i in 0..n {
        let offset = u16::try_from(i)?;
        let (name, store, file) = if n == 1 {
            let store = args.data_dir.join("nats");
            (
                "nats-server".to_owned(),
                store,
                "nats-server.conf".to_owned(),
            )
        } else {
            let name = format!("nats-server-{}", i + 1);
            let store = args.data_dir.join("nats-cluster").join(&name);
            let file = format!("{name}.conf");
            (name, store, file)
        };
        std::fs::create_dir_all(&store)?;
        let port = args.nats_port + offset;
        let mut config =
            coord_auth::nats::single_server_config(port, &store, creds, &LogSubjects::default())?;
        if n > 1 {
            clustered(&mut config, &name, args, offset, n)?;
        }
        args.durability.apply(&mut config);
        let path = credentials.join("nats").join(file);
        coord_auth::nats::write_config(&path, &config)?;
        servers.push(Server {
            name,
            port,
            config: path,
        });
    }
    Ok(servers)
}

/// Makes `config` the `offset`-th of `n` servers of one cluster.
fn clustered(
    config: &mut Value,
    name: &str,
    args: &UpArgs,
    offset: u16,
    n: usize,
) -> anyhow::Result<()> {
    let routes = (0..n)
        .map(|i| {
            let port = args.clustering.route_port + u16::try_from(i)?;
            Ok(format!("nats-route://127.0.0.1:{port}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    config["server_name"] = json!(name);
    config["http"] = json!(format!(
        "127.0.0.1:{}",
        args.clustering.monitor_port + offset
    ));
    config["cluster"] = json!({
        "name": CLUSTER,
        "listen": format!("127.0.0.1:{}", args.clustering.route_port + offset),
        "routes": routes,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        up: UpArgs,
    }

    #[test]
    fn three_servers_each_with_its_ports_and_store_route_to_each_other() {
        let data = tempfile::tempdir().unwrap();
        let cli = Cli::parse_from([
            "up",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--cluster",
            "3",
            "--nats-port",
            "5000",
            "--cluster-port",
            "6000",
            "--monitor-port",
            "7000",
        ]);
        let creds = NatsCredentials::ensure(&data.path().join("credentials/nats")).unwrap();
        let servers = write_configs(&cli.up, &creds, &data.path().join("credentials")).unwrap();
        assert_eq!(urls(&servers).split(',').count(), 3);
        for (i, server) in servers.iter().enumerate() {
            let config: Value =
                serde_json::from_str(&std::fs::read_to_string(&server.config).unwrap()).unwrap();
            assert_eq!(config["port"], 5000 + i);
            assert_eq!(config["http"], format!("127.0.0.1:{}", 7000 + i));
            assert_eq!(
                config["cluster"]["listen"],
                format!("127.0.0.1:{}", 6000 + i)
            );
            assert_eq!(config["cluster"]["routes"].as_array().unwrap().len(), 3);
            let store = config["jetstream"]["store_dir"].as_str().unwrap();
            assert!(
                store.ends_with(&format!("nats-server-{}", i + 1)),
                "{store}"
            );
        }
    }
}
