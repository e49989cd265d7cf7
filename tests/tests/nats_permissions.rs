//! NATS least privilege on real servers (issue 14): a hub and an office started from
//! `coordctl offices`' generated configurations, every service's user at each of them
//! and the office's leaf user at the hub. Each of these is refused: subscribing to
//! `_INBOX.>` or to another user's inbox, publishing to another user's inbox, creating
//! or updating a sourcing consumer, deleting or purging an idempotency key (by header
//! or by API), and, for the analytics user, any read of the log but through its own
//! consumer. Each test also shows the allowed counterpart working, so that what it
//! sees refused is refused by a permission, not lost on the way; and the leaf link
//! still carries what sourcing needs (flow control, both ways).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use async_nats::{Client, ConnectOptions, HeaderMap};
use coord_auth::nats::{NatsRole, ROLES};
use coordctl::offices::{self, STREAM, Site};
use futures::StreamExt;
use serde_json::{Value, json};
use tests::offices::{Running, start, write};
use uuid::Uuid;

const BUCKET: &str = "COORD_IDEMPOTENCY";
/// Long enough for a message or an answer on loopback, short enough to try many.
const WAIT: Duration = Duration::from_millis(1500);

/// What the server said to one connection (`-ERR`), e.g. permission violations.
type Errors = Arc<Mutex<Vec<String>>>;

/// One NATS user connected to its server.
struct User {
    /// `province/gateway`, `long-xuyen/auditor`, `leaf-long-xuyen`.
    label: String,
    /// Index of its site in [`Running::sites`].
    site: usize,
    /// `None` for a leaf user.
    role: Option<NatsRole>,
    /// Its own inbox prefix (`None` for a leaf user, which has none).
    inbox: Option<String>,
    client: Client,
    errors: Errors,
}

impl User {
    fn said(&self, what: &str) -> bool {
        self.errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.to_lowercase().contains(what))
    }
}

async fn connect(url: &str, options: ConnectOptions) -> (Client, Errors) {
    let errors = Errors::default();
    let seen = errors.clone();
    let client = options
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .unwrap();
    (client, errors)
}

/// Every role's user at every site, then every office's leaf user at the hub.
async fn users(running: &Running) -> Vec<User> {
    let mut all = Vec::new();
    for (i, site) in running.sites().into_iter().enumerate() {
        let creds = site.credentials().unwrap();
        for (name, role) in ROLES {
            let seed = std::fs::read_to_string(creds.seed_file(name)).unwrap();
            let options = coord_service::server::user_options(&seed).unwrap();
            let (client, errors) = connect(&site.url(), options).await;
            all.push(User {
                label: format!("{}/{name}", site.slug),
                site: i,
                role: Some(*role),
                inbox: Some(creds.inbox_prefix(name).unwrap()),
                client,
                errors,
            });
        }
    }
    for office in &running.topology.offices {
        let (user, password) = running.topology.leaf_login(office).unwrap();
        let options = ConnectOptions::with_user_and_password(user.clone(), password);
        let (client, errors) = connect(&running.topology.hub.url(), options).await;
        all.push(User {
            label: user,
            site: 0,
            role: None,
            inbox: None,
            client,
            errors,
        });
    }
    all
}

/// The inbox prefix of role `name`'s user at `site`.
fn inbox_of(site: &Site, name: &str) -> String {
    site.credentials().unwrap().inbox_prefix(name).unwrap()
}

/// Whatever `subscriber` receives within [`WAIT`].
async fn received(subscriber: &mut async_nats::Subscriber) -> Vec<async_nats::Message> {
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(WAIT, subscriber.next()).await {
        got.push(m);
    }
    got
}

async fn admins(running: &Running) -> Vec<Client> {
    let mut all = Vec::new();
    for site in running.sites() {
        all.push(offices::admin_client(site).await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_user_may_subscribe_to_every_inbox_or_to_another_users() {
    let running = start(&["long-xuyen"]).await;
    let users = users(&running).await;
    let admins = admins(&running).await;
    let sites = running.sites();
    let mut watched = Vec::new();
    for user in &users {
        // Another user of the same server: the gateway, or, for the gateway, the
        // projector; for a leaf user, the hub's auditor (whose requests cross the link).
        let other = match user.role {
            None => inbox_of(sites[user.site], "auditor"),
            Some(NatsRole::Gateway) => inbox_of(sites[user.site], "projector"),
            Some(_) => inbox_of(sites[user.site], "gateway"),
        };
        let mut refused = Vec::new();
        for subject in [
            "_INBOX.>".to_owned(),
            "*.>".to_owned(),
            format!("{other}.>"),
        ] {
            refused.push(user.client.subscribe(subject).await.unwrap());
        }
        let own = match &user.inbox {
            Some(own) => Some(user.client.subscribe(format!("{own}.own")).await.unwrap()),
            None => None,
        };
        user.client.flush().await.unwrap();
        watched.push((user, other, refused, own));
    }
    for (user, other, _, _) in &watched {
        let admin = &admins[user.site];
        for subject in ["_INBOX.probe".to_owned(), format!("{other}.probe")] {
            admin.publish(subject, "probe".into()).await.unwrap();
        }
        if let Some(own) = &user.inbox {
            admin
                .publish(format!("{own}.own"), "own".into())
                .await
                .unwrap();
        }
        admin.flush().await.unwrap();
    }
    let checks = watched
        .into_iter()
        .map(|(user, _, refused, own)| async move {
            if let Some(mut own) = own {
                assert_eq!(
                    received(&mut own).await.len(),
                    1,
                    "{}: own inbox",
                    user.label
                );
            }
            for mut subscriber in refused {
                let got = received(&mut subscriber).await;
                assert!(got.is_empty(), "{} read {:?}", user.label, got[0].subject);
            }
            assert!(
                user.said("permissions violation for subscription"),
                "{}: {:?}",
                user.label,
                user.errors.lock().unwrap()
            );
        });
    futures::future::join_all(checks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_user_may_publish_to_another_users_inbox() {
    let running = start(&["long-xuyen"]).await;
    let users = users(&running).await;
    let admins = admins(&running).await;
    // The victims: at every site, the gateway (answers to its commands and queries) and
    // the auditor (consistency proofs, across the link too), each on its own inbox.
    let mut victims = Vec::new();
    for victim in users
        .iter()
        .filter(|u| matches!(u.role, Some(NatsRole::Gateway | NatsRole::Auditor)))
    {
        let inbox = victim.inbox.clone().unwrap();
        let subscriber = victim.client.subscribe(format!("{inbox}.>")).await.unwrap();
        victim.client.flush().await.unwrap();
        victims.push((victim, inbox, subscriber));
    }
    for attacker in &users {
        for (victim, inbox, _) in &victims {
            if victim.label != attacker.label {
                let forged = format!("{inbox}.forged");
                let body = attacker.label.clone().into();
                attacker.client.publish(forged, body).await.unwrap();
            }
        }
        attacker.client.flush().await.unwrap();
    }
    for (victim, inbox, _) in &victims {
        let admin = &admins[victim.site];
        admin
            .publish(format!("{inbox}.genuine"), "admin".into())
            .await
            .unwrap();
        admin.flush().await.unwrap();
    }
    for (victim, _, subscriber) in &mut victims {
        let got: Vec<String> = received(subscriber)
            .await
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect();
        assert_eq!(got, ["admin"], "{} received forged answers", victim.label);
    }
    for attacker in &users {
        assert!(
            attacker.said("permissions violation for publish"),
            "{}: {:?}",
            attacker.label,
            attacker.errors.lock().unwrap()
        );
    }
}

/// Sends JetStream API request `subject`; its answer, `None` if none came within
/// [`WAIT`] (a refused request gets none, and a leaf user cannot read answers).
async fn api(client: &Client, subject: String, body: &Value) -> Option<Value> {
    let payload = serde_json::to_vec(body).unwrap().into();
    match tokio::time::timeout(WAIT, client.request(subject, payload)).await {
        Ok(Ok(answer)) => serde_json::from_slice(&answer.payload).ok(),
        _ => None,
    }
}

fn succeeded(answer: &Option<Value>) -> bool {
    answer.as_ref().is_some_and(|a| a.get("error").is_none())
}

/// The sourcing consumers at `site`, as its admin sees them: (name, raw config).
async fn sourcing_consumers(running: &Running, admin: &Client) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for name in offices::sourcing_consumers(&running.topology) {
        let subject = format!("$JS.API.CONSUMER.INFO.{STREAM}.{name}");
        if let Some(info) = api(admin, subject, &json!({})).await
            && info.get("error").is_none()
        {
            found.push((name, info["config"].clone()));
        }
    }
    found
}

/// Waits (at most 20 s) until sourcing consumer `name` at `admin`'s server delivered
/// something and has every delivery acknowledged, i.e. the sourcing side's flow
/// control answers reached it across the leaf link; its info.
async fn wait_acknowledged(admin: &Client, name: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let subject = format!("$JS.API.CONSUMER.INFO.{STREAM}.{name}");
        let info = api(admin, subject, &json!({})).await.unwrap_or_default();
        let delivered = info["delivered"]["stream_seq"].as_u64().unwrap_or(0);
        if delivered > 0
            && info["ack_floor"]["stream_seq"].as_u64() == Some(delivered)
            && info["num_ack_pending"] == 0
        {
            return info;
        }
        assert!(std::time::Instant::now() < deadline, "{name}: {info}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaf_link_carries_the_sourcing_flow_control_both_ways() {
    let running = start(&["long-xuyen"]).await;
    let admins = admins(&running).await;
    for site in running.sites() {
        write(site, 3).await;
    }
    // The hub's consumer feeds the office, the office's feeds the hub: each is
    // acknowledged by the other side's flow-control answers, through the leaf user.
    for admin in &admins {
        for (name, _) in sourcing_consumers(&running, admin).await {
            wait_acknowledged(admin, &name).await;
        }
    }
}

/// Every way to create or update consumer `name` with `config`: by name, by name with
/// a filter, the legacy create (name in the body), the legacy durable create; through
/// the local API and through the server's JetStream domain.
fn consumer_updates(domain: &str, name: &str, config: &Value) -> Vec<(String, Value)> {
    let filter = "coord.log.forged.>";
    let mut named = config.clone();
    named["filter_subjects"] = json!([filter]);
    named["description"] = json!("forged");
    let mut one_filter = named.clone();
    one_filter
        .as_object_mut()
        .unwrap()
        .remove("filter_subjects");
    one_filter["filter_subject"] = json!(filter);
    let mut ephemeral = named.clone();
    ephemeral.as_object_mut().unwrap().remove("durable_name");
    let mut all = Vec::new();
    for api in ["$JS.API".to_owned(), format!("$JS.{domain}.API")] {
        let body = |config: &Value| json!({ "stream_name": STREAM, "config": config });
        all.extend([
            (
                format!("{api}.CONSUMER.CREATE.{STREAM}.{name}"),
                body(&named),
            ),
            (
                format!("{api}.CONSUMER.CREATE.{STREAM}.{name}.{filter}"),
                body(&one_filter),
            ),
            (format!("{api}.CONSUMER.CREATE.{STREAM}"), body(&ephemeral)),
            (
                format!("{api}.CONSUMER.DURABLE.CREATE.{STREAM}.{name}"),
                body(&named),
            ),
        ]);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_user_may_create_or_update_a_sourcing_consumer() {
    let running = start(&["long-xuyen"]).await;
    let users = users(&running).await;
    let admins = admins(&running).await;
    let sites = running.sites();
    let mut before = Vec::new();
    for admin in &admins {
        let consumers = sourcing_consumers(&running, admin).await;
        assert_eq!(consumers.len(), 1, "one sourcing consumer at each site");
        before.push(consumers);
    }
    let attempts = users.iter().flat_map(|user| {
        let domain = &sites[user.site].domain;
        before[user.site].iter().flat_map(move |(name, config)| {
            consumer_updates(domain, name, config)
                .into_iter()
                .map(move |(subject, body)| (user, subject, body))
        })
    });
    let answers = futures::future::join_all(attempts.map(|(user, subject, body)| async move {
        let answer = api(&user.client, subject.clone(), &body).await;
        (user, subject, answer)
    }))
    .await;
    for (user, subject, answer) in &answers {
        assert!(!succeeded(answer), "{}: {subject}: {answer:?}", user.label);
    }
    for (admin, consumers) in admins.iter().zip(&before) {
        assert_eq!(&sourcing_consumers(&running, admin).await, consumers);
    }
    // Every role still creates consumers of its own, by name.
    for user in users.iter().filter(|u| u.role.is_some()) {
        let name = format!("probe-{}", Uuid::new_v4().simple());
        let config =
            json!({ "name": name, "ack_policy": "none", "inactive_threshold": 10_000_000_000u64 });
        let subject = format!("$JS.API.CONSUMER.CREATE.{STREAM}.{name}");
        let body = json!({ "stream_name": STREAM, "config": config });
        let answer = api(&user.client, subject, &body).await;
        assert!(succeeded(&answer), "{}: {answer:?}", user.label);
    }
}

/// Publishes on `subject` with `headers` as `client` through JetStream; whether the
/// stream stored it.
async fn stored(client: &Client, subject: String, headers: &[(&str, &str)]) -> bool {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, *value);
    }
    let js = jetstream::new(client.clone());
    let ack = tokio::time::timeout(WAIT, async {
        js.publish_with_headers(subject, map, "overwritten".into())
            .await?
            .await
    })
    .await;
    matches!(ack, Ok(Ok(_)))
}

/// Every way to remove or replace key `key` of the idempotency bucket by a publish:
/// purge and delete markers (as the key-value API writes them), a plain overwrite.
const KEY_REWRITES: [&[(&str, &str)]; 4] = [
    &[("KV-Operation", "PURGE"), ("Nats-Rollup", "sub")],
    &[("KV-Operation", "PURGE")],
    &[("KV-Operation", "DEL")],
    &[],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_user_may_delete_or_purge_an_idempotency_key() {
    let running = start(&["long-xuyen"]).await;
    let users = users(&running).await;
    let admins = admins(&running).await;
    let mut claims = Vec::new();
    for claimer in users
        .iter()
        .filter(|u| matches!(u.role, Some(NatsRole::Command(_))))
    {
        let kv = jetstream::new(claimer.client.clone())
            .get_key_value(BUCKET)
            .await
            .unwrap();
        let key = Uuid::new_v4().to_string();
        kv.create(&key, claimer.label.clone().into()).await.unwrap();
        claims.push((claimer, kv, key));
    }
    // Every user of the claimer's server, every marker or overwrite, all at once.
    let attempts = claims.iter().flat_map(|(claimer, _, key)| {
        let subject = format!("$KV.{BUCKET}.{key}");
        let same_site = users.iter().filter(|u| u.site == claimer.site);
        same_site.flat_map(move |user| {
            let subject = subject.clone();
            KEY_REWRITES.iter().map(move |headers| {
                let subject = subject.clone();
                async move {
                    let done = stored(&user.client, subject, headers).await;
                    (user, headers, done)
                }
            })
        })
    });
    for (user, headers, done) in futures::future::join_all(attempts).await {
        assert!(!done, "{} rewrote a key with {headers:?}", user.label);
    }
    for (claimer, kv, key) in &claims {
        assert_not_removed_by_api(claimer, key).await;
        // The claim is whole, and still refuses another claim of its key.
        let admin_kv = jetstream::new(admins[claimer.site].clone())
            .get_key_value(BUCKET)
            .await
            .unwrap();
        let entry = admin_kv.entry(key).await.unwrap().expect("the claim");
        assert_eq!(entry.operation, jetstream::kv::Operation::Put);
        assert_eq!(entry.value.as_ref(), claimer.label.as_bytes());
        let again = kv.create(key, "another request".into()).await.unwrap_err();
        assert_eq!(again.kind(), jetstream::kv::CreateErrorKind::AlreadyExists);
    }
}

/// The stream API refuses `claimer` a purge of `key`'s subject and a message delete.
async fn assert_not_removed_by_api(claimer: &User, key: &str) {
    let stream = format!("KV_{BUCKET}");
    let purge = json!({ "filter": format!("$KV.{BUCKET}.{key}") });
    let purged = api(
        &claimer.client,
        format!("$JS.API.STREAM.PURGE.{stream}"),
        &purge,
    )
    .await;
    assert!(!succeeded(&purged), "{} purged by API", claimer.label);
    let delete = json!({ "seq": 1 });
    let subject = format!("$JS.API.STREAM.MSG.DELETE.{stream}");
    let deleted = api(&claimer.client, subject, &delete).await;
    assert!(!succeeded(&deleted), "{} deleted by API", claimer.label);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analytics_user_reads_the_log_only_through_its_own_consumers() {
    let running = start(&["long-xuyen"]).await;
    let users = users(&running).await;
    for site in running.sites() {
        write(site, 1).await;
    }
    for analytics in users.iter().filter(|u| u.role == Some(NatsRole::Analytics)) {
        let js = jetstream::new(analytics.client.clone());
        let stream = js.get_stream(STREAM).await.unwrap();
        // Through a consumer of its own: the log.
        let own = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(format!("analytics-{}", Uuid::new_v4().simple())),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut batch = own.fetch().max_messages(1).messages().await.unwrap();
        let first = batch.next().await.expect("a commit").unwrap();
        let subject = first.subject.to_string();
        // Around it: nothing.
        let reads = [
            tokio::time::timeout(WAIT, stream.direct_get(1))
                .await
                .is_ok_and(|r| r.is_ok()),
            tokio::time::timeout(WAIT, stream.get_raw_message(1))
                .await
                .is_ok_and(|r| r.is_ok()),
            tokio::time::timeout(WAIT, stream.direct_get_last_for_subject(subject.clone()))
                .await
                .is_ok_and(|r| r.is_ok()),
            tokio::time::timeout(WAIT, stream.get_last_raw_message_by_subject(&subject))
                .await
                .is_ok_and(|r| r.is_ok()),
        ];
        assert_eq!(
            reads, [false; 4],
            "{} read around its consumers",
            analytics.label
        );
        // Nor the idempotency keys (one claimed just now).
        let key = claim(&users, analytics.site).await;
        let subject = format!("$JS.API.DIRECT.GET.KV_{BUCKET}.$KV.{BUCKET}.{key}");
        let read = tokio::time::timeout(WAIT, analytics.client.request(subject, "".into())).await;
        assert!(
            !read.is_ok_and(|r| r.is_ok_and(|m| m.status.is_none())),
            "{} read an idempotency key",
            analytics.label
        );
    }
}

/// Claims a new idempotency key as the inspection service at site `site`; the key.
async fn claim(users: &[User], site: usize) -> String {
    let inspection = users
        .iter()
        .find(|u| u.site == site && u.role == Some(NatsRole::Command("inspection")))
        .unwrap();
    let kv = jetstream::new(inspection.client.clone())
        .get_key_value(BUCKET)
        .await
        .unwrap();
    let key = Uuid::new_v4().to_string();
    kv.create(&key, "claimed".into()).await.unwrap();
    key
}
