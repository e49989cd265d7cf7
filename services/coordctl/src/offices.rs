//! Multi-office NATS topology, generated from the province file (`coordctl offices
//! init`): a hub server (the province, JetStream domain `hub`) and one server per
//! district office, each a leaf node of the hub with its own JetStream domain.
//!
//! - Each office writes only its own subjects, `coord.log.<office>.>`, into its own
//!   stream `COORD_LOG` (subjects are disjoint: streams on the same subjects in one
//!   account would store each other's publishes across the leaf link).
//! - The hub's `COORD_LOG` holds the province's subjects and sources every office's
//!   stream, filtered to that office's subjects.
//! - Every office's stream sources the hub's, keeping every subject but its own: all of
//!   the province's log, not only what concerns its unit, because each office's read
//!   model must show the same province figures as the hub's.
//! - Sourcing is durable (ADR-60): each origin holds a flow-control consumer its admin
//!   created (`to-hub` on an office, `to-<office>` on the hub) that the other side
//!   sources through.
//! - No anonymous access anywhere. On the hub, each office's leaf connection is a user
//!   of the hub's account whose permissions allow only the sourcing traffic of that
//!   office (its deliver subjects, info and reset of its two sourcing consumers, flow
//!   control of those two, the servers' `$JSC.R` replies): it cannot publish on the
//!   province's or another office's subjects, nor reach the hub's stream API, and no
//!   inbox crosses the link. No user of any site may create or change a sourcing
//!   consumer ([`sourcing_consumers`]).
//!
//! - The transparency log across offices (issue 7): every site's auditor keeps the
//!   tree of its own office's subjects. `init` creates each auditor's signing key and
//!   the hub witness's cosigner key beforehand, gives the hub the offices' verifier
//!   keys (`province/auditor/witnessed.keys`) and each office the hub's
//!   (`<office>/auditor/witness.vkey`). An office's leaf user may also publish its
//!   own checkpoints (`coord.audit.<office>.published`), receive the witness's
//!   consistency-proof requests and its cosignatures (`coord.audit.<office>.
//!   {consistency,cosigned.province}`) and answer on `coord.audit.<office>.proof.
//!   province.…`, for its own office only.
//! - The other way, each office's auditor witnesses the province's log: `init` also
//!   creates each office's witness key and gives it the province's verifier key (its
//!   `witnessed.keys`) and the hub every office's witness key (`witnesses.keys`). The
//!   leaf user may receive `coord.audit.province.published`, ask
//!   `coord.audit.province.consistency` (answered on `coord.audit.province.proof.<its
//!   office>.…`) and publish only its own cosignature,
//!   `coord.audit.province.cosigned.<its office>`.
//!
//! Everything is written under one folder, owner-only, never committed.

use std::path::{Path, PathBuf};

use async_nats::jetstream::consumer::{AckPolicy, push};
use async_nats::jetstream::stream::{
    self, External, Source, StreamConsumerSource, SubjectTransform,
};
use coord_audit::Signer;
use coord_audit::cosign::Cosigner;
use coord_audit::wire;
use coord_auth::nats::{LogSubjects, NatsCredentials};
use coord_auth::secret;
use coord_domain::{LOG_SUBJECT_ROOT, Office, Sites};

use crate::durability::Durability;
use serde_json::{Value, json};

/// The log stream's name on every server (each in its own JetStream domain).
pub const STREAM: &str = "COORD_LOG";
/// The account that holds the coordination traffic on every server.
pub const ACCOUNT: &str = "COORD";

/// One server of the topology.
#[derive(Debug, Clone)]
pub struct Site {
    /// `province` for the hub, else the unit id.
    pub slug: String,
    /// JetStream domain: `hub` or the unit id.
    pub domain: String,
    /// Client port on 127.0.0.1.
    pub port: u16,
    /// Folder with this server's configuration and credentials.
    pub dir: PathBuf,
    /// The offices it hosts, whose subjects `coord.log.<office slug>.>` it writes: the
    /// hub the province and every unit without a site of its own, an office its unit.
    pub hosted: Vec<Office>,
    /// Which site of its topology hosts which office (each process of the site is told,
    /// `COORD_SITE` and `COORD_DISTRICT_SITES`).
    pub sites: Sites,
    /// Several nats-servers as one JetStream cluster, or `None`: one server.
    pub cluster: Option<SiteCluster>,
}

/// A site run as a JetStream cluster on loopback: `servers` nats-servers with the
/// client ports from the site's `port` on, route ports from `route_port` on and
/// monitoring ports (`/jsz`) from `monitor_port` on; its log and idempotency bucket
/// at `servers` replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteCluster {
    pub servers: u16,
    pub route_port: u16,
    pub monitor_port: u16,
}

/// Which servers run as one JetStream cluster (`--cluster`, `--clustered`, and their
/// ports), for `coordctl up` (its one site) and the multi-office topology (each site
/// of `--clustered`).
#[derive(Debug, Clone, clap::Args)]
pub struct Clustering {
    /// Run this many nats-servers on loopback as one JetStream cluster, the log and the
    /// idempotency bucket at as many replicas (client ports from the site's on; with
    /// offices, each hub server also takes the next leaf port).
    #[arg(
        long = "cluster",
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=5)
    )]
    pub servers: u16,
    /// With offices: the sites --cluster applies to (`province` is the hub),
    /// comma-separated.
    #[arg(
        long,
        value_name = "SITES",
        value_delimiter = ',',
        default_value = "province"
    )]
    pub clustered: Vec<String>,
    /// The first clustered server's route port; every other one takes the next.
    #[arg(long = "cluster-port", value_name = "PORT", default_value_t = 6222)]
    pub route_port: u16,
    /// The first clustered server's monitoring port (`/jsz`, `/healthz`); every other
    /// one takes the next.
    #[arg(long, value_name = "PORT", default_value_t = 8222)]
    pub monitor_port: u16,
}

impl Default for Clustering {
    fn default() -> Self {
        Self {
            servers: 1,
            clustered: Vec::new(),
            route_port: 6222,
            monitor_port: 8222,
        }
    }
}

impl Clustering {
    /// How many servers site `slug` runs.
    pub fn servers_at(&self, slug: &str) -> u16 {
        if self.servers > 1 && self.clustered.iter().any(|s| s == slug) {
            self.servers
        } else {
            1
        }
    }

    /// Each site's cluster, given in site order, with its own route and monitoring ports.
    fn assign<'a>(&self, slugs: impl Iterator<Item = &'a str>) -> Vec<Option<SiteCluster>> {
        let (mut route_port, mut monitor_port) = (self.route_port, self.monitor_port);
        slugs
            .map(|slug| {
                let servers = self.servers_at(slug);
                (servers > 1).then(|| {
                    let c = SiteCluster {
                        servers,
                        route_port,
                        monitor_port,
                    };
                    route_port += servers;
                    monitor_port += servers;
                    c
                })
            })
            .collect()
    }
}

impl Site {
    /// The office that runs this site: the province at the hub, else the district.
    pub fn office(&self) -> Office {
        if self.is_hub() {
            Office::Province
        } else {
            Office::from_slug(&self.slug).expect("an office site is named by its unit")
        }
    }
    pub fn is_hub(&self) -> bool {
        self.domain == "hub"
    }
    /// The office whose log this site's auditor keeps (`province`, `district:<unit>`).
    pub fn audit_office(&self) -> String {
        self.office().to_string()
    }
    /// How many nats-servers it runs.
    pub fn servers(&self) -> u16 {
        self.cluster.map_or(1, |c| c.servers)
    }
    /// Where its (first) nats-server's configuration is.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("nats-server.conf")
    }
    /// The variant without the leaf remote: the office cut off from the hub.
    pub fn isolated_config_file(&self) -> PathBuf {
        self.dir.join("nats-server.isolated.conf")
    }
    /// Each of its servers' configuration (one file, or one per cluster member).
    pub fn config_files(&self) -> Vec<PathBuf> {
        (0..self.servers())
            .map(|i| match i {
                0 => self.config_file(),
                i => self.dir.join(format!("nats-server-{}.conf", i + 1)),
            })
            .collect()
    }
    /// Each of its servers' configuration without the leaf remote.
    pub fn isolated_config_files(&self) -> Vec<PathBuf> {
        (0..self.servers())
            .map(|i| match i {
                0 => self.isolated_config_file(),
                i => self
                    .dir
                    .join(format!("nats-server-{}.isolated.conf", i + 1)),
            })
            .collect()
    }
    /// Its `i`-th server's name (`server_name`, and the process name `coordctl up` gives it).
    pub fn server_name(&self, i: u16) -> String {
        match self.cluster {
            None => self.slug.clone(),
            Some(_) => format!("{}-{}", self.slug, i + 1),
        }
    }
    /// Its users' credentials (admin password, one nkey per process).
    pub fn credentials(&self) -> std::io::Result<NatsCredentials> {
        NatsCredentials::ensure(&self.dir.join("credentials"))
    }
    /// The subjects it writes.
    pub fn log_subjects(&self) -> LogSubjects {
        LogSubjects {
            stream: STREAM.into(),
            prefix: LOG_SUBJECT_ROOT.into(),
            offices: self.hosted.iter().map(|o| o.slug().to_owned()).collect(),
            ..LogSubjects::default()
        }
    }
    /// Its log subjects, one wildcard per office it hosts.
    pub fn own_subjects(&self) -> Vec<String> {
        self.hosted
            .iter()
            .map(|o| format!("{}.>", o.log_prefix()))
            .collect()
    }
    /// Its servers' client URLs, comma-separated (what its services are given).
    pub fn url(&self) -> String {
        (0..self.servers())
            .map(|i| format!("nats://127.0.0.1:{}", self.port + i))
            .collect::<Vec<_>>()
            .join(",")
    }
    /// Its auditor's data folder (signing key, tree, checkpoints).
    pub fn auditor_dir(&self) -> PathBuf {
        self.dir.join("auditor")
    }
    /// Hub: the offices' verifier keys its witness is given.
    pub fn witnessed_keys_file(&self) -> PathBuf {
        self.auditor_dir().join("witnessed.keys")
    }
    /// Office: the hub witness's cosignature verifier key.
    pub fn witness_vkey_file(&self) -> PathBuf {
        self.auditor_dir().join("witness.vkey")
    }
    /// Hub: every office witness's cosignature verifier key.
    pub fn witnesses_keys_file(&self) -> PathBuf {
        self.auditor_dir().join("witnesses.keys")
    }
}

/// The hub's audit office.
const PROVINCE: &str = "province";

/// The subject prefix office `slug` writes under.
pub fn subject_prefix(slug: &str) -> String {
    format!("{LOG_SUBJECT_ROOT}.{slug}")
}

/// The hub and the offices.
#[derive(Debug, Clone)]
pub struct Topology {
    pub hub: Site,
    pub offices: Vec<Site>,
    /// The hub's leaf-node port on 127.0.0.1 (of its first server; each other server of
    /// a hub cluster listens on the next one).
    pub leaf_port: u16,
    /// The durability of every server's store.
    pub durability: Durability,
}

impl Topology {
    /// The hub, then the offices in the order given.
    pub fn sites(&self) -> Vec<&Site> {
        std::iter::once(&self.hub)
            .chain(self.offices.iter())
            .collect()
    }

    /// Where the hub keeps the password of `office`'s leaf user.
    fn leaf_password_file(&self, office: &Site) -> PathBuf {
        self.hub
            .dir
            .join(format!("credentials/{}.password", leaf_user(&office.slug)))
    }

    /// The user name and password `office`'s server links to the hub with.
    pub fn leaf_login(&self, office: &Site) -> std::io::Result<(String, String)> {
        let password = std::fs::read_to_string(self.leaf_password_file(office))?;
        Ok((leaf_user(&office.slug), password.trim().to_owned()))
    }

    /// The reviewer's trust file `init` writes (`audit-trust.keys` in its folder).
    pub fn trust_file(&self) -> PathBuf {
        self.hub
            .dir
            .parent()
            .unwrap_or(&self.hub.dir)
            .join(crate::audit::TRUST_FILE)
    }
}

/// The leaf user of office `slug` on the hub.
fn leaf_user(slug: &str) -> String {
    Office::from_slug(slug)
        .expect("an office site's slug names its office")
        .leaf_user()
}

/// Deliver subject prefix of the hub sourcing office `slug`, and of `slug` sourcing the hub.
fn to_hub(slug: &str) -> String {
    format!("coord.sync.{slug}.to-hub")
}
fn from_hub(slug: &str) -> String {
    format!("coord.sync.hub.to-{slug}")
}

/// What office `slug`'s leaf connection may carry (hub's view: publish = from the
/// office into the hub, subscribe = from the hub down to the office). No inbox crosses
/// the link, either way: the auditors' consistency proofs travel on
/// [`wire::proof_subject`], and the servers' JetStream requests are answered on
/// `$JSC.R.…` (server-made reply subjects, both ways). So it needs no
/// `allow_responses`: it may publish nothing but the subjects listed.
fn leaf_permissions(slug: &str) -> Value {
    let to_office = to_office(slug);
    let office = Office::from_slug(slug)
        .expect("an office site's slug names its office")
        .to_string();
    json!({
        "publish": { "allow": [
            format!("{}.>", to_hub(slug)),
            wire::published_subject(&office),
            // Witnessed by the hub: its consistency proofs, under its own subject.
            format!("{}.>", wire::proof_subject(&office, PROVINCE)),
            // Witnessing the province: ask its auditor for consistency proofs, and send
            // it this office's cosignature, under this office's subject only.
            wire::subject(Some(PROVINCE), "consistency"),
            wire::cosigned_subject(PROVINCE, &office),
            format!("$JS.hub.API.CONSUMER.INFO.{STREAM}.{to_office}"),
            format!("$JS.hub.API.CONSUMER.RESET.{STREAM}.{to_office}"),
            // Flow control of the hub's consumer this office sources through, only
            // (`$JS.FC.<stream>.<consumer>.…`, the server's default format).
            format!("$JS.FC.{STREAM}.{to_office}.>"),
            // The office server's answers to the hub's sourcing requests.
            "$JSC.R.>",
        ]},
        "subscribe": { "allow": [
            format!("{}.>", from_hub(slug)),
            wire::subject(Some(&office), "consistency"),
            wire::cosigned_subject(&office, PROVINCE),
            wire::published_subject(PROVINCE),
            format!("{}.>", wire::proof_subject(PROVINCE, &office)),
            format!("$JS.{slug}.API.CONSUMER.INFO.{STREAM}.{TO_HUB}"),
            format!("$JS.{slug}.API.CONSUMER.RESET.{STREAM}.{TO_HUB}"),
            // The hub's flow control of the office's consumer it sources through.
            format!("$JS.FC.{STREAM}.{TO_HUB}.>"),
            // The hub's answers to the office server's own sourcing requests.
            "$JSC.R.>",
        ]},
    })
}

/// The users of `site`'s server: every role's, none of which may touch the sourcing
/// consumers.
fn users(t: &Topology, site: &Site, creds: &NatsCredentials) -> std::io::Result<Vec<Value>> {
    let log = LogSubjects {
        admin_consumers: sourcing_consumers(t),
        ..site.log_subjects()
    };
    let auth = creds.authorization(&log)?;
    Ok(auth["users"].as_array().cloned().unwrap_or_default())
}

fn server_config(t: &Topology, site: &Site, i: u16, users: Vec<Value>, leafnodes: Value) -> Value {
    let store = match i {
        0 => site.dir.join("store"),
        i => site.dir.join(format!("store-{}", i + 1)),
    };
    let mut config = json!({
        "server_name": site.server_name(i),
        "host": "127.0.0.1",
        "port": site.port + i,
        "jetstream": {
            "store_dir": store.display().to_string(),
            "domain": site.domain,
        },
        "leafnodes": leafnodes,
        "accounts": { ACCOUNT: { "jetstream": "enabled", "users": users } },
    });
    if let Some(c) = site.cluster {
        let routes: Vec<String> = (0..c.servers)
            .map(|r| format!("nats-route://127.0.0.1:{}", c.route_port + r))
            .collect();
        config["http"] = json!(format!("127.0.0.1:{}", c.monitor_port + i));
        config["cluster"] = json!({
            "name": format!("coord-{}", site.slug),
            "listen": format!("127.0.0.1:{}", c.route_port + i),
            "routes": routes,
        });
    }
    t.durability.apply(&mut config);
    config
}

/// [`generate_for`] the embedded province (An Giang).
pub fn generate(
    dir: &Path,
    offices: &[Office],
    ports: &[u16],
    leaf_port: u16,
) -> anyhow::Result<Topology> {
    let province = coord_domain::Province::from_toml_str(coord_domain::province::AN_GIANG_TOML)?;
    generate_for(
        &province,
        dir,
        offices,
        ports,
        leaf_port,
        Durability::default(),
        &Clustering::default(),
    )
}

/// Writes configurations and credentials for the hub (client port `ports[0]`) and
/// `offices` (`ports[1..]`), the hub's leaf port `leaf_port`, under `dir`, and the
/// audit keys of province `province` ([`write_audit_keys`]). A site `clustering` names
/// runs several servers, with client ports from its own on (leave room for them).
/// Existing credentials and keys are kept.
pub fn generate_for(
    province: &coord_domain::Province,
    dir: &Path,
    offices: &[Office],
    ports: &[u16],
    leaf_port: u16,
    durability: Durability,
    clustering: &Clustering,
) -> anyhow::Result<Topology> {
    anyhow::ensure!(
        ports.len() == offices.len() + 1,
        "one client port for the hub and one per office"
    );
    let mut units = Vec::new();
    for office in offices {
        let Office::District(unit) = office else {
            anyhow::bail!("the province is the hub; list district offices only");
        };
        units.push(unit.clone());
    }
    let sites = Sites::with_district_sites(units.iter().cloned());
    let all_units: Vec<_> = province.units.iter().map(|u| u.id.clone()).collect();
    let all_offices: Vec<Office> = std::iter::once(Office::Province)
        .chain(offices.iter().cloned())
        .collect();
    let clusters = clustering.assign(all_offices.iter().map(Office::slug));
    let mut sites: Vec<Site> = all_offices
        .iter()
        .zip(ports)
        .zip(clusters)
        .map(|((office, port), cluster)| Site {
            slug: office.slug().into(),
            domain: office.jetstream_domain().into(),
            port: *port,
            dir: dir.join(office.slug()),
            hosted: sites.hosted(office, &all_units).collect(),
            sites: sites.clone(),
            cluster,
        })
        .collect();
    let hub = sites.remove(0);
    let topology = Topology {
        hub,
        offices: sites,
        leaf_port,
        durability,
    };
    write_hub(&topology)?;
    for office in &topology.offices {
        write_office(&topology, office)?;
    }
    write_audit_keys(&topology, &province.id)?;
    Ok(topology)
}

/// 32 random bytes for a key seed.
fn random_seed() -> [u8; 32] {
    let hex = secret::random_secret();
    std::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digits"))
}

/// Creates (or keeps) every site's auditor signing key and witness cosigner key, and
/// writes the reviewer's trust file (every log key and witness key, public only:
/// [`Topology::trust_file`], for `coordctl audit verify --trust`) and what each side must
/// be given, both ways: the hub the offices' verifier keys
/// (`witnessed.keys`) and their witness keys (`witnesses.keys`); each office the
/// province's verifier key (its `witnessed.keys`) and the hub's witness key
/// (`witness.vkey`). A witness is given keys, never learns them from the watched side
/// (trust on first use would let a history rewritten before it first looked pass).
pub fn write_audit_keys(t: &Topology, province: &str) -> anyhow::Result<()> {
    let mut verifiers = Vec::new();
    let mut witnesses = Vec::new();
    for site in t.sites() {
        let office = site.audit_office();
        let origin = wire::default_origin(province, &office);
        let text = secret::read_or_create(&site.auditor_dir().join("office.key"), || {
            Signer::from_seed(&origin, random_seed())
                .expect("origins are valid key names")
                .to_key_text()
        })?;
        verifiers.push((
            office.clone(),
            Signer::from_key_text(&text)?.verifier().clone(),
        ));
        let name = wire::witness_name(province, &office);
        let text = secret::read_or_create(&site.auditor_dir().join("witness.key"), || {
            Cosigner::from_seed(&name, random_seed())
                .expect("witness names are valid key names")
                .to_key_text()
        })?;
        witnesses.push((office, Cosigner::from_key_text(&text)?.verifier()));
    }
    std::fs::write(
        t.trust_file(),
        coord_audit::trust::TrustedKeys {
            logs: verifiers.clone(),
            witnesses: witnesses.clone(),
        }
        .format(),
    )?;
    let (hub_key, offices_keys) = verifiers.split_first().expect("the hub is first");
    let (hub_witness, offices_witnesses) = witnesses.split_first().expect("the hub is first");
    secret::write_private(
        &t.hub.witnessed_keys_file(),
        &coord_audit::cosign::format_watched(offices_keys),
    )?;
    secret::write_private(
        &t.hub.witnesses_keys_file(),
        &coord_audit::cosign::format_witnesses(offices_witnesses),
    )?;
    for office in &t.offices {
        secret::write_private(&office.witness_vkey_file(), &hub_witness.1.to_string())?;
        secret::write_private(
            &office.witnessed_keys_file(),
            &coord_audit::cosign::format_watched(std::slice::from_ref(hub_key)),
        )?;
    }
    Ok(())
}

fn write_hub(t: &Topology) -> anyhow::Result<()> {
    let creds = t.hub.credentials()?;
    let mut all = users(t, &t.hub, &creds)?;
    for office in &t.offices {
        let password =
            secret::read_or_create(&t.leaf_password_file(office), secret::random_secret)?;
        all.push(json!({
            "user": leaf_user(&office.slug),
            "password": password,
            "permissions": leaf_permissions(&office.slug),
        }));
    }
    for (i, file) in (0..).zip(t.hub.config_files()) {
        let leaf = json!({ "host": "127.0.0.1", "port": t.leaf_port + i, "no_advertise": true });
        let config = server_config(t, &t.hub, i, all.clone(), leaf);
        coord_auth::nats::write_config(&file, &config)?;
    }
    Ok(())
}

fn write_office(t: &Topology, office: &Site) -> anyhow::Result<()> {
    let creds = office.credentials()?;
    let (user, password) = t.leaf_login(office)?;
    // Every server of a hub cluster: the link moves to another when one is down.
    let urls: Vec<String> = (0..t.hub.servers())
        .map(|i| {
            format!(
                "nats-leaf://{user}:{password}@127.0.0.1:{}",
                t.leaf_port + i
            )
        })
        .collect();
    let remote = json!({ "urls": urls, "account": ACCOUNT });
    let linked = json!({ "reconnect": "1s", "remotes": [remote] });
    let users = users(t, office, &creds)?;
    let files = office.config_files().into_iter();
    for ((i, file), isolated) in (0..).zip(files).zip(office.isolated_config_files()) {
        let config = server_config(t, office, i, users.clone(), linked.clone());
        coord_auth::nats::write_config(&file, &config)?;
        let config = server_config(t, office, i, users.clone(), json!({}));
        coord_auth::nats::write_config(&isolated, &config)?;
    }
    Ok(())
}

/// The hub's log: the province's subjects, and every office's stream as a source.
pub fn hub_stream(t: &Topology) -> stream::Config {
    stream::Config {
        sources: Some(
            t.offices
                .iter()
                .map(|o| Source {
                    name: STREAM.into(),
                    subject_transforms: keep(o.own_subjects()),
                    external: Some(External {
                        api_prefix: format!("$JS.{}.API", o.domain),
                        delivery_prefix: None,
                    }),
                    consumer: Some(StreamConsumerSource {
                        name: TO_HUB.into(),
                        deliver_subject: format!("{}.durable", to_hub(&o.slug)),
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
        ..log_stream(&t.hub)
    }
}

/// Office `office`'s log: its own subjects, and the hub's log but for its own subjects.
pub fn office_stream(t: &Topology, office: &Site) -> stream::Config {
    stream::Config {
        sources: Some(vec![Source {
            name: STREAM.into(),
            external: Some(External {
                api_prefix: "$JS.hub.API".into(),
                delivery_prefix: None,
            }),
            subject_transforms: keep(others(t, office)),
            consumer: Some(StreamConsumerSource {
                name: to_office(&office.slug),
                deliver_subject: format!("{}.durable", from_hub(&office.slug)),
            }),
            ..Default::default()
        }]),
        ..log_stream(office)
    }
}

/// Source filters that keep `subjects` as they are (a durable source takes no
/// `filter_subject`; its consumer filters too, these are the receiving side's guard).
fn keep(subjects: Vec<String>) -> Vec<SubjectTransform> {
    subjects
        .into_iter()
        .map(|s| SubjectTransform {
            source: s.clone(),
            destination: s,
        })
        .collect()
}

/// Every subject but `office`'s: what the office receives from the hub.
fn others(t: &Topology, office: &Site) -> Vec<String> {
    std::iter::once(&t.hub)
        .chain(t.offices.iter())
        .filter(|s| s.slug != office.slug)
        .flat_map(Site::own_subjects)
        .collect()
}

/// Every durable sourcing consumer of the topology, on any site: only the admin may
/// create or change them.
pub fn sourcing_consumers(t: &Topology) -> Vec<String> {
    std::iter::once(TO_HUB.to_owned())
        .chain(t.offices.iter().map(|o| to_office(&o.slug)))
        .collect()
}

/// Name of the durable consumer on an office that the hub sources through.
const TO_HUB: &str = "to-hub";
/// Name of the durable consumer on the hub that office `slug` sources through.
fn to_office(slug: &str) -> String {
    format!("to-{slug}")
}

/// A durable sourcing consumer (ADR-60, nats-server 2.14+): created on the origin by
/// its admin, so the sourcing side never has to create one across the link, and
/// catching up after a cut does not wait for the create-retry backoff.
fn sourcing_consumer(name: &str, deliver_subject: String, filters: Vec<String>) -> push::Config {
    push::Config {
        durable_name: Some(name.into()),
        name: Some(name.into()),
        deliver_subject,
        ack_policy: AckPolicy::FlowControl,
        flow_control: true,
        idle_heartbeat: std::time::Duration::from_secs(1),
        filter_subjects: filters,
        ..Default::default()
    }
}

/// The settings every log stream has (as `coord_log::jetstream` creates it), on the
/// subjects of the offices `site` hosts.
fn log_stream(site: &Site) -> stream::Config {
    stream::Config {
        name: STREAM.into(),
        description: Some(format!("Coordination event log of site {}", site.slug)),
        subjects: site.own_subjects(),
        storage: stream::StorageType::File,
        duplicate_window: std::time::Duration::from_secs(3600),
        allow_direct: true,
        deny_delete: true,
        deny_purge: true,
        num_replicas: usize::from(site.servers()),
        ..Default::default()
    }
}

/// `coordctl offices …`.
#[derive(Debug, clap::Subcommand)]
pub enum OfficesCommand {
    /// Write the hub's and each office's nats-server configuration, credentials and
    /// service settings (one `<service>.env` per process) into a folder.
    Init(OfficesArgs),
    /// Create or update the log streams (hub sources every office, every office sources
    /// the hub), as each server's admin: run once the servers are up.
    Streams(OfficesArgs),
}

#[derive(Debug, clap::Args)]
pub struct OfficesArgs {
    /// District offices (unit ids of the province), comma-separated, e.g. long-xuyen,chau-doc.
    #[arg(long, value_delimiter = ',', required = true)]
    pub offices: Vec<String>,
    /// Folder for everything generated (owner-only; keep it out of the repository).
    #[arg(long, default_value = ".data/offices")]
    pub out: PathBuf,
    /// The hub's client port; offices get the next ones, in the order given (a
    /// clustered site takes one per server).
    #[arg(long, default_value_t = 4222)]
    pub base_port: u16,
    /// The hub's leaf-node port.
    #[arg(long, default_value_t = 7422)]
    pub leaf_port: u16,
    /// The province file (default: the embedded An Giang file).
    #[arg(long, env = "COORD_PROVINCE_FILE")]
    pub province_file: Option<PathBuf>,
    /// `strict`: every server fsyncs before acknowledging (`sync_interval: always`).
    #[arg(long, value_enum, default_value_t)]
    pub durability: Durability,
    #[command(flatten)]
    pub clustering: Clustering,
}

impl OfficesArgs {
    /// Generates (or refreshes) the topology these arguments describe.
    pub fn topology(&self) -> anyhow::Result<Topology> {
        let text = match &self.province_file {
            Some(path) => std::fs::read_to_string(path)?,
            None => coord_domain::province::AN_GIANG_TOML.to_owned(),
        };
        let province = coord_domain::Province::from_toml_str(&text)?;
        let offices = self
            .offices
            .iter()
            .map(|o| crate::tokens::office_of(&province, o))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let clustering = &self.clustering;
        // Each site's first client port, after the previous site's servers.
        let mut next = self.base_port;
        let ports: Vec<u16> = std::iter::once(Office::Province.slug())
            .chain(offices.iter().map(Office::slug))
            .map(|slug| {
                let port = next;
                next += clustering.servers_at(slug);
                port
            })
            .collect();
        generate_for(
            &province,
            &self.out,
            &offices,
            &ports,
            self.leaf_port,
            self.durability,
            clustering,
        )
    }
}

/// The settings of process `name` at `site` whose gateway listens on `gateway_port`;
/// a gateway verifies tokens with `token_key` (the public key of the signing key
/// `coordctl token` uses).
pub fn service_env(
    site: &Site,
    name: &str,
    gateway_port: u16,
    token_key: &str,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let creds = site.credentials()?;
    let mut env = vec![
        ("COORD_NATS_URL", site.url()),
        (
            "COORD_NATS_CREDS",
            creds.seed_file(name).display().to_string(),
        ),
        ("COORD_LOG_STREAM", STREAM.to_owned()),
        ("COORD_LOG_SUBJECT_PREFIX", LOG_SUBJECT_ROOT.to_owned()),
        (
            "COORD_PROJECTOR_DB",
            site.dir.join("projector.sqlite").display().to_string(),
        ),
        ("COORD_GATEWAY_ADDR", format!("127.0.0.1:{gateway_port}")),
        (
            "COORD_AUDIT_DIR",
            site.dir.join("auditor").display().to_string(),
        ),
        ("COORD_AUDIT_OFFICE", site.audit_office()),
        // Whom this site hosts: a token or a request of another office is refused here.
        ("COORD_SITE", site.office().to_string()),
        ("COORD_DISTRICT_SITES", district_sites(&site.sites)),
    ];
    if name == "gateway" {
        env.push(("COORD_TOKEN_PUBLIC_KEY", token_key.to_owned()));
    }
    if name == "auditor" {
        if site.witnessed_keys_file().exists() {
            let keys = site.witnessed_keys_file().display().to_string();
            env.push(("COORD_WITNESS_KEYS", keys));
        }
        if site.is_hub() {
            let keys = site.witnesses_keys_file().display().to_string();
            env.push(("COORD_WITNESSES", keys));
        } else if let Ok(vkey) = std::fs::read_to_string(site.witness_vkey_file()) {
            env.push(("COORD_WITNESS_VKEY", vkey.trim().to_owned()));
        }
    }
    Ok(env)
}

/// The units with a site of their own, as `COORD_DISTRICT_SITES` lists them.
fn district_sites(sites: &Sites) -> String {
    sites
        .district_sites()
        .map(|u| u.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `coordctl offices …`; returns what to print.
pub async fn run(command: OfficesCommand, credentials: &Path) -> anyhow::Result<String> {
    match command {
        OfficesCommand::Init(args) => {
            let t = args.topology()?;
            // The key the tokens are signed with: an existing one, never a new one.
            let token_key = crate::tokens::existing_signer(credentials)?.public_key();
            let mut out = format!(
                "gateways verify tokens with {token_key} (from {})\n",
                credentials.join(crate::tokens::SIGNING_KEY_FILE).display()
            );
            for (i, site) in std::iter::once(&t.hub).chain(t.offices.iter()).enumerate() {
                let gateway_port = 8080 + u16::try_from(i)?;
                for (name, _) in coord_auth::nats::ROLES {
                    let lines: String = service_env(site, name, gateway_port, &token_key)?
                        .iter()
                        .map(|(k, v)| format!("{k}={v}\n"))
                        .collect();
                    secret::write_private(&site.dir.join(format!("{name}.env")), &lines)?;
                }
                out.push_str(&format!(
                    "office {} nats {} domain {} config {}\n",
                    site.slug,
                    site.url(),
                    site.domain,
                    site.config_file().display()
                ));
            }
            out.push_str(&format!(
                "hub leaf nodes: nats-leaf://127.0.0.1:{}",
                t.leaf_port
            ));
            Ok(out)
        }
        OfficesCommand::Streams(args) => {
            let t = args.topology()?;
            ensure_streams(&t).await?;
            Ok(format!(
                "streams ready at the hub and {} offices",
                t.offices.len()
            ))
        }
    }
}

/// Connects to `site` as its admin.
pub async fn admin_client(site: &Site) -> anyhow::Result<async_nats::Client> {
    let creds = site.credentials()?;
    crate::deploy::admin_connect(&site.url(), &creds.admin_password).await
}

/// Creates (or updates) the log streams of the hub and every office, as their admins:
/// first each stream (and each server's idempotency and lease buckets) on its own, then the
/// durable sourcing consumers on the origins, then the sources.
pub async fn ensure_streams(t: &Topology) -> anyhow::Result<()> {
    let mut admins = Vec::new();
    for site in t.sites() {
        let client = admin_client(site).await?;
        if site.servers() > 1 {
            crate::deploy::create_replicated_bucket(&client, site.servers().into()).await?;
        }
        crate::launcher::create_idempotency_bucket(client.clone()).await?;
        coord_service::lease::ensure_bucket(client.clone(), 1).await?;
        admins.push(async_nats::jetstream::new(client));
    }
    let hub = admins.remove(0);
    let office_js = admins;
    create_if_missing(&hub, log_stream(&t.hub)).await?;
    for (office, js) in t.offices.iter().zip(&office_js) {
        create_if_missing(js, log_stream(office)).await?;
        js.get_stream(STREAM)
            .await?
            .get_or_create_consumer(
                TO_HUB,
                sourcing_consumer(
                    TO_HUB,
                    format!("{}.durable", to_hub(&office.slug)),
                    office.own_subjects(),
                ),
            )
            .await?;
        hub.get_stream(STREAM)
            .await?
            .get_or_create_consumer(
                &to_office(&office.slug),
                sourcing_consumer(
                    &to_office(&office.slug),
                    format!("{}.durable", from_hub(&office.slug)),
                    others(t, office),
                ),
            )
            .await?;
    }
    hub.update_stream(hub_stream(t)).await?;
    for (office, js) in t.offices.iter().zip(&office_js) {
        js.update_stream(office_stream(t, office)).await?;
    }
    Ok(())
}

async fn create_if_missing(
    js: &async_nats::jetstream::Context,
    config: stream::Config,
) -> anyhow::Result<()> {
    if js.get_stream(&config.name).await.is_err() {
        js.create_stream(config).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_durability_reaches_every_generated_server_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let province =
            coord_domain::Province::from_toml_str(coord_domain::province::AN_GIANG_TOML).unwrap();
        let office = Office::from_slug("long-xuyen").unwrap();
        let t = generate_for(
            &province,
            dir.path(),
            &[office],
            &[4222, 4223],
            7422,
            Durability::Strict,
            &Clustering::default(),
        )
        .unwrap();
        let read = |path: PathBuf| -> Value {
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        let office = &t.offices[0];
        for config in [
            t.hub.config_file(),
            office.config_file(),
            office.isolated_config_file(),
        ] {
            let config = read(config);
            assert_eq!(config["jetstream"]["sync_interval"], "always", "{config}");
        }
    }

    #[test]
    fn a_clustered_hub_has_three_routed_servers_each_a_leaf_listener_the_office_links_to_all() {
        let dir = tempfile::tempdir().unwrap();
        let province =
            coord_domain::Province::from_toml_str(coord_domain::province::AN_GIANG_TOML).unwrap();
        let clustering = Clustering {
            servers: 3,
            clustered: vec!["province".into()],
            route_port: 6000,
            monitor_port: 7000,
        };
        let office = Office::from_slug("long-xuyen").unwrap();
        let t = generate_for(
            &province,
            dir.path(),
            &[office],
            &[4222, 4225],
            7422,
            Durability::default(),
            &clustering,
        )
        .unwrap();
        let read = |path: &PathBuf| -> Value {
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        assert_eq!(t.hub.url().split(',').count(), 3);
        assert_eq!(log_stream(&t.hub).num_replicas, 3);
        for (i, file) in (0u16..).zip(t.hub.config_files()) {
            let c = read(&file);
            assert_eq!(c["port"], 4222 + i);
            assert_eq!(c["server_name"], format!("province-{}", i + 1));
            assert_eq!(c["leafnodes"]["port"], 7422 + i);
            assert_eq!(c["cluster"]["listen"], format!("127.0.0.1:{}", 6000 + i));
            assert_eq!(c["cluster"]["routes"].as_array().unwrap().len(), 3);
            assert_eq!(c["http"], format!("127.0.0.1:{}", 7000 + i));
            assert_eq!(c["jetstream"]["domain"], "hub");
        }
        let office = &t.offices[0];
        assert_eq!(office.config_files().len(), 1, "only the hub is clustered");
        assert_eq!(log_stream(office).num_replicas, 1);
        let c = read(&office.config_file());
        let urls = c["leafnodes"]["remotes"][0]["urls"].as_array().unwrap();
        assert_eq!(urls.len(), 3);
        assert!(c.get("cluster").is_none());
    }

    #[test]
    fn each_sites_auditor_keeps_its_own_office_log_in_its_own_folder() {
        let dir = tempfile::tempdir().unwrap();
        let site = |slug: &str, domain: &str| Site {
            slug: slug.into(),
            domain: domain.into(),
            port: 4222,
            dir: dir.path().join(slug),
            hosted: Vec::new(),
            sites: Sites::parse("long-xuyen,chau-doc").unwrap(),
            cluster: None,
        };
        for (site, office) in [
            (site("province", "hub"), "province"),
            (site("long-xuyen", "long-xuyen"), "district:long-xuyen"),
        ] {
            let env = service_env(&site, "auditor", 8080, "").unwrap();
            let get = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
            assert_eq!(get("COORD_AUDIT_OFFICE"), office);
            assert_eq!(get("COORD_SITE"), office);
            assert_eq!(get("COORD_DISTRICT_SITES"), "chau-doc,long-xuyen");
            assert_eq!(
                get("COORD_AUDIT_DIR"),
                site.dir.join("auditor").display().to_string()
            );
            assert!(get("COORD_NATS_CREDS").ends_with("auditor.nk"));
            // The gateway verifies tokens: its file names the key; no one else needs it.
            assert!(!env.iter().any(|(k, _)| *k == "COORD_TOKEN_PUBLIC_KEY"));
            let gateway = service_env(&site, "gateway", 8080, "TOKEN-KEY").unwrap();
            assert!(gateway.contains(&("COORD_TOKEN_PUBLIC_KEY", "TOKEN-KEY".into())));
        }
    }

    #[test]
    fn given_init_then_the_hub_is_given_each_offices_key_and_each_office_the_hubs() {
        let dir = tempfile::tempdir().unwrap();
        let offices: Vec<Office> = ["long-xuyen", "chau-doc"]
            .iter()
            .map(|u| u.parse().unwrap())
            .collect();
        let t = generate(dir.path(), &offices, &[4222, 4223, 4224], 7422).unwrap();
        let watched = coord_audit::cosign::parse_watched(
            &std::fs::read_to_string(t.hub.witnessed_keys_file()).unwrap(),
        )
        .unwrap();
        assert_eq!(watched.len(), 2);
        for (site, (office, key)) in t.offices.iter().zip(&watched) {
            assert_eq!(office, &site.audit_office());
            let own = std::fs::read_to_string(site.auditor_dir().join("office.key")).unwrap();
            assert_eq!(Signer::from_key_text(&own).unwrap().verifier(), key);
            assert_eq!(key.name, format!("coord/an-giang/{office}"));
            let env = service_env(site, "auditor", 8081, "").unwrap();
            let hub_key = Cosigner::from_key_text(
                &std::fs::read_to_string(t.hub.auditor_dir().join("witness.key")).unwrap(),
            )
            .unwrap()
            .verifier()
            .to_string();
            assert!(env.contains(&("COORD_WITNESS_VKEY", hub_key)));
        }
        let hub_env = service_env(&t.hub, "auditor", 8080, "").unwrap();
        assert!(hub_env.iter().any(|(k, _)| *k == "COORD_WITNESS_KEYS"));
        // The other way: each office is given the province's key to witness it, and
        // the hub each office's witness key, under that office.
        let hub_own = std::fs::read_to_string(t.hub.auditor_dir().join("office.key")).unwrap();
        let hub_own = Signer::from_key_text(&hub_own).unwrap().verifier().clone();
        let witnesses = coord_audit::cosign::parse_witnesses(
            &std::fs::read_to_string(t.hub.witnesses_keys_file()).unwrap(),
        )
        .unwrap();
        assert_eq!(witnesses.len(), 2);
        for (site, (office, key)) in t.offices.iter().zip(&witnesses) {
            assert_eq!(office, &site.audit_office());
            let own = std::fs::read_to_string(site.auditor_dir().join("witness.key")).unwrap();
            assert_eq!(&Cosigner::from_key_text(&own).unwrap().verifier(), key);
            assert_eq!(key.name, format!("coord/an-giang/{office}/witness"));
            let watched = coord_audit::cosign::parse_watched(
                &std::fs::read_to_string(site.witnessed_keys_file()).unwrap(),
            )
            .unwrap();
            assert_eq!(watched, [("province".to_owned(), hub_own.clone())]);
            let env = service_env(site, "auditor", 8081, "").unwrap();
            let keys = site.witnessed_keys_file().display().to_string();
            assert!(env.contains(&("COORD_WITNESS_KEYS", keys)));
        }
        let witnesses_file = t.hub.witnesses_keys_file().display().to_string();
        assert!(hub_env.contains(&("COORD_WITNESSES", witnesses_file)));
        // Generated again, the keys stay.
        let again = generate(dir.path(), &offices, &[4222, 4223, 4224], 7422).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.hub.witnessed_keys_file()).unwrap(),
            coord_audit::cosign::format_watched(&watched)
        );
    }

    /// The subjects a permissions block allows to `kind` (`publish`, `subscribe`).
    fn allowed(p: &Value, kind: &str) -> Vec<String> {
        p[kind]["allow"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn an_offices_leaf_user_carries_only_its_own_audit_subjects() {
        let p = leaf_permissions("long-xuyen");
        let list = |kind: &str| allowed(&p, kind);
        let audit = |l: Vec<String>| -> Vec<String> {
            l.into_iter()
                .filter(|s| s.starts_with("coord.audit"))
                .collect()
        };
        // Into the hub: its own checkpoints; as the province's witness, proof requests
        // and its own cosignature of the province's log, nothing of another office's
        // and not the province's checkpoints.
        assert_eq!(
            audit(list("publish")),
            [
                "coord.audit.district_long-xuyen.published",
                "coord.audit.district_long-xuyen.proof.province.>",
                "coord.audit.province.consistency",
                "coord.audit.province.cosigned.district_long-xuyen"
            ]
        );
        // From the hub: proof requests and the hub's cosignatures about its own log,
        // the province's checkpoints it witnesses and the proofs its witness asked for.
        assert_eq!(
            audit(list("subscribe")),
            [
                "coord.audit.district_long-xuyen.consistency",
                "coord.audit.district_long-xuyen.cosigned.province",
                "coord.audit.province.published",
                "coord.audit.province.proof.district_long-xuyen.>"
            ]
        );
    }

    #[test]
    fn an_offices_leaf_user_reaches_no_inbox_and_only_its_own_flow_control() {
        let p = leaf_permissions("long-xuyen");
        let list = |kind: &str| allowed(&p, kind);
        let (publish, subscribe) = (list("publish"), list("subscribe"));
        assert!(
            !publish
                .iter()
                .chain(&subscribe)
                .any(|s| s.starts_with("_INBOX"))
        );
        assert!(
            !publish
                .iter()
                .chain(&subscribe)
                .any(|s| s == "$JS.FC.>" || s == "$JSC.>")
        );
        let may = |subject: &str| publish.iter().any(|pat| matches(pat, subject));
        assert!(may("$JS.FC.COORD_LOG.to-long-xuyen.x"));
        assert!(!may("$JS.FC.COORD_LOG.to-chau-doc.x"));
        assert!(!may("$JS.FC.COORD_LOG.to-hub.x"));
        // Every answer it sends has a subject of its own above: none goes to an inbox.
        assert!(p.get("allow_responses").is_none());
    }

    #[test]
    fn no_user_of_any_site_may_touch_a_sourcing_consumer() {
        let dir = tempfile::tempdir().unwrap();
        let offices: Vec<Office> = ["long-xuyen", "chau-doc"]
            .iter()
            .map(|u| u.parse().unwrap())
            .collect();
        let t = generate(dir.path(), &offices, &[4222, 4223, 4224], 7422).unwrap();
        assert_eq!(
            sourcing_consumers(&t),
            ["to-hub", "to-long-xuyen", "to-chau-doc"]
        );
        for site in t.sites() {
            let creds = site.credentials().unwrap();
            let users = users(&t, site, &creds).unwrap();
            // Every user but the admin, which has no permissions block (all rights).
            let roles: Vec<&Value> = users.iter().filter(|u| u.get("nkey").is_some()).collect();
            assert_eq!(roles.len(), coord_auth::nats::ROLES.len());
            for user in roles {
                let deny = user["permissions"]["publish"]["deny"].to_string();
                for name in sourcing_consumers(&t) {
                    let create = format!("\"$JS.API.CONSUMER.CREATE.{STREAM}.{name}\"");
                    assert!(deny.contains(&create), "{}: {create}", site.slug);
                }
            }
        }
    }

    /// Whether NATS subject `subject` matches pattern `pattern` (`*`, `>`).
    fn matches(pattern: &str, subject: &str) -> bool {
        let (mut p, mut s) = (pattern.split('.'), subject.split('.'));
        loop {
            match (p.next(), s.next()) {
                (Some(">"), Some(_)) => return true,
                (Some(a), Some(b)) if a == "*" || a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    #[test]
    fn an_offices_leaf_user_cannot_speak_for_the_province_or_another_witness() {
        let p = leaf_permissions("long-xuyen");
        let publish: Vec<&str> = p["publish"]["allow"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let may = |subject: &str| publish.iter().any(|pat| matches(pat, subject));
        assert!(may(&wire::cosigned_subject(
            "province",
            "district:long-xuyen"
        )));
        assert!(may(&wire::subject(Some("province"), "consistency")));
        assert!(may(&format!(
            "{}.x",
            wire::proof_subject("district:long-xuyen", "province")
        )));
        for refused in [
            wire::published_subject("province"),
            wire::cosigned_subject("province", "district:chau-doc"),
            wire::cosigned_subject("district:chau-doc", "province"),
            wire::cosigned_subject("district:long-xuyen", "province"),
            format!("{}.x", wire::proof_subject("district:chau-doc", "province")),
            format!(
                "{}.x",
                wire::proof_subject("province", "district:long-xuyen")
            ),
            wire::subject(Some("province"), "checkpoint"),
            wire::WITNESS_SUBJECT.to_owned(),
        ] {
            assert!(!may(&refused), "{refused} is allowed");
        }
    }
}
