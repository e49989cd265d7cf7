//! The NATS side of a command service: a NATS service ("micro") with one endpoint per
//! command, in queue group `coord` so that instances share the load, and a graceful
//! shutdown that stops taking requests, answers those already received, then exits.
//! Each request takes a permit before its work is spawned and runs under a deadline
//! (see [`crate::bounded`]). A request for an office this site does not host is refused
//! before its handler sees it ([`crate::acting::Hosting`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::service::ServiceExt;
use coord_proto::{COMMAND_PREFIX, CommandApi, CommandReply, ErrorKind, ErrorReply, QUEUE_GROUP};
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::acting::Hosting;
use crate::bounded::{Bounded, Limits};
use crate::{CommandHandler, ServiceConfig};

/// Connection options with the credentials in `creds` (an nkey seed or a `.creds` file),
/// else the URL's `user:password@`, if any; with the user's own inbox prefix
/// ([`coord_auth::nats::inbox_prefix`]), the only inbox its permissions let it read.
async fn options(
    url: &str,
    creds: Option<&std::path::Path>,
) -> anyhow::Result<async_nats::ConnectOptions> {
    let Some(path) = creds else {
        let first = servers(url).into_iter().next().unwrap_or_default();
        let address: async_nats::ServerAddr = first.parse()?;
        return Ok(match (address.username(), address.password()) {
            (Some(user), Some(password)) => password_options(user, password),
            _ => async_nats::ConnectOptions::new(),
        });
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read NATS credentials {}: {e}", path.display()))?;
    if text.contains("BEGIN NATS USER JWT") {
        let seed = creds_file_seed(&text)
            .ok_or_else(|| anyhow::anyhow!("{} holds no nkey seed", path.display()))?;
        return Ok(async_nats::ConnectOptions::with_credentials(&text)?
            .custom_inbox_prefix(coord_auth::nats::inbox_prefix_of_seed(seed)?));
    }
    let seed = text.trim();
    anyhow::ensure!(
        seed.starts_with("SU"),
        "{} is neither an nkey user seed (SU…) nor a .creds file",
        path.display()
    );
    user_options(seed)
}

/// Connection options of user `user` with password `password` (the admin), with its
/// own inbox prefix.
pub fn password_options(user: &str, password: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .custom_inbox_prefix(coord_auth::nats::inbox_prefix(user))
}

/// Connection options of the nkey user whose seed is `seed`, with its own inbox prefix.
pub fn user_options(seed: &str) -> anyhow::Result<async_nats::ConnectOptions> {
    let seed = seed.trim();
    Ok(async_nats::ConnectOptions::with_nkey(seed.to_owned())
        .custom_inbox_prefix(coord_auth::nats::inbox_prefix_of_seed(seed)?))
}

/// The user seed of a `.creds` file (the line after `BEGIN USER NKEY SEED`).
fn creds_file_seed(text: &str) -> Option<&str> {
    let mut lines = text.lines().map(str::trim);
    lines.find(|l| l.contains("BEGIN USER NKEY SEED"))?;
    lines.find(|l| !l.is_empty())
}

/// The servers of `url`: one URL, or several separated by commas (the servers of one
/// cluster; the client also learns the others from the server it reaches).
fn servers(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// How often a client pings its server. A server that stops answering without closing
/// the connection (paused, or its machine hung) is left after about three intervals
/// unanswered, for another server of the cluster; async-nats's default of 60 s kept
/// the gateway or a service waiting out a 30 s pause of its server (fault suite).
const PING_INTERVAL: Duration = Duration::from_secs(2);

/// Connects to NATS with `creds` (see [`crate::ServiceConfig::nats_creds`]), retrying
/// for a while so that services can start before the server. A refused credential is
/// not retried.
pub async fn connect(
    url: &str,
    creds: Option<&std::path::Path>,
    name: &str,
) -> anyhow::Result<async_nats::Client> {
    let mut delay = Duration::from_millis(100);
    let mut last_error = None;
    for _ in 0..40 {
        match options(url, creds)
            .await?
            .name(name)
            .ping_interval(PING_INTERVAL)
            .connect(servers(url))
            .await
        {
            Ok(client) => return Ok(client),
            Err(e) if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => {
                anyhow::bail!("NATS at {url} refused the credentials of {name}: {e}");
            }
            Err(e) => {
                tracing::warn!(%url, error = %e, "NATS not reachable yet, retrying");
                last_error = Some(e);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
    Err(anyhow::anyhow!(
        "cannot connect to NATS at {url}: {}",
        last_error.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Runs the command service of aggregate `A` until `shutdown` resolves.
pub async fn run<A: CommandApi>(
    config: ServiceConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (client, handler) = open::<A>(&config).await?;
    let endpoints = endpoints(handler, &config.hosting()?);
    let stop_metrics = tokio_util::sync::CancellationToken::new();
    config.serve_metrics(stop_metrics.clone()).await?;
    let result = serve_endpoints(client, A::SERVICE, endpoints, config.limits(), shutdown).await;
    stop_metrics.cancel();
    result
}

/// Runs the commands of aggregates `A` and `B` as one NATS service (`A::SERVICE`, which
/// must be `B::SERVICE` too), over one connection, log and key store, until `shutdown`
/// resolves: the exchange service serves exchanges and their receipts. One service, so
/// `$SRV.PING.<name>` has one answer per process.
pub async fn run_pair<A: CommandApi, B: CommandApi>(
    config: ServiceConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        A::SERVICE == B::SERVICE,
        "one service cannot be named both {} and {}",
        A::SERVICE,
        B::SERVICE
    );
    let (client, first) = open::<A>(&config).await?;
    let second = CommandHandler::<B>::sharing(&first);
    let hosting = config.hosting()?;
    let mut all = endpoints(first, &hosting);
    all.extend(endpoints(second, &hosting));
    let stop_metrics = tokio_util::sync::CancellationToken::new();
    config.serve_metrics(stop_metrics.clone()).await?;
    let result = serve_endpoints(client, A::SERVICE, all, config.limits(), shutdown).await;
    stop_metrics.cancel();
    result
}

/// Connects and opens what a command service needs.
async fn open<A: CommandApi>(
    config: &ServiceConfig,
) -> anyhow::Result<(async_nats::Client, CommandHandler<A>)> {
    let province = Arc::new(config.province()?);
    let client = config.connect(&format!("coord-{}", A::SERVICE)).await?;
    let log = config.open_log(client.clone()).await?;
    let keys = config.open_keys(client.clone()).await?;
    Ok((client, CommandHandler::<A>::new(log, keys, province)))
}

/// Runs a command's handling within `deadline`; past it, the answer is a timeout error.
async fn within(deadline: Duration, work: impl Future<Output = CommandReply>) -> CommandReply {
    match tokio::time::timeout(deadline, work).await {
        Ok(reply) => reply,
        Err(_) => CommandReply::Error(ErrorReply::new(
            ErrorKind::Timeout,
            "command_timeout",
            format!(
                "the command was not decided within {deadline:?}; it may still have been \
                 applied: retry with the same command id"
            ),
        )),
    }
}

/// Answers one command endpoint's raw requests.
type Dispatch = Arc<dyn Fn(bytes::Bytes) -> BoxFuture<'static, CommandReply> + Send + Sync>;

/// `A`'s endpoints, each with its handler; a request for an office this site does not
/// host is refused before the handler sees it.
fn endpoints<A: CommandApi>(
    handler: CommandHandler<A>,
    hosting: &Hosting,
) -> Vec<(&'static str, Dispatch)> {
    A::ENDPOINTS
        .iter()
        .map(|&name| {
            let handler = handler.clone();
            let hosting = hosting.clone();
            let dispatch: Dispatch = Arc::new(move |body: bytes::Bytes| {
                let handler = handler.clone();
                let refused = not_hosted(&hosting, &body);
                Box::pin(async move {
                    match refused {
                        Some(refusal) => CommandReply::Error(refusal),
                        None => handler.handle_raw(name, &body).await,
                    }
                })
            });
            (name, dispatch)
        })
        .collect()
}

/// The refusal of a request whose office this site does not host (a body that is not
/// a request is left to the handler to refuse).
fn not_hosted(hosting: &Hosting, body: &[u8]) -> Option<ErrorReply> {
    #[derive(serde::Deserialize)]
    struct Office {
        office: String,
    }
    let request: Office = serde_json::from_slice(body).ok()?;
    hosting.check_text(&request.office).err()
}

/// Serves `handler` over NATS, for the offices `hosting` says, until `shutdown`
/// resolves, then drains.
pub async fn serve<A: CommandApi>(
    client: async_nats::Client,
    handler: CommandHandler<A>,
    hosting: &Hosting,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let endpoints = endpoints(handler, hosting);
    serve_endpoints(client, A::SERVICE, endpoints, limits, shutdown).await
}

/// Serves `endpoints` as NATS service `service` until `shutdown` resolves, then drains.
async fn serve_endpoints(
    client: async_nats::Client,
    service_name: &'static str,
    endpoints: Vec<(&'static str, Dispatch)>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = client
        .service_builder()
        .description(format!("coordination commands: {service_name}"))
        .queue_group(QUEUE_GROUP)
        .start(service_name, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the NATS service: {e}"))?;
    let group = service.group(format!("{COMMAND_PREFIX}.{service_name}"));
    let (stop_tx, stop_rx) = watch::channel(false);
    let in_flight = Bounded::new(limits.max_in_flight);
    let mut loops = JoinSet::new();
    let names: Vec<&str> = endpoints.iter().map(|(name, _)| *name).collect();

    for (name, handle) in endpoints {
        let mut endpoint = group
            .endpoint(name)
            .await
            .map_err(|e| anyhow::anyhow!("cannot add endpoint {name}: {e}"))?;
        let mut stop_rx = stop_rx.clone();
        let in_flight = in_flight.clone();
        let metric_name: Arc<str> = format!("{service_name}.{name}").into();
        loops.spawn(async move {
            // Waits for a permit before spawning: the next request stays in NATS meanwhile.
            let dispatch = |request: async_nats::service::Request| {
                let handle = handle.clone();
                let metric_name = metric_name.clone();
                in_flight.spawn(async move {
                    let reply_to = request.message.reply.as_deref().unwrap_or_default();
                    if !coord_proto::is_inbox(reply_to) {
                        // Its answer would be written wherever the request said.
                        tracing::warn!(endpoint = name, reply = reply_to, "command not handled: its reply subject is not an inbox");
                        return;
                    }
                    let started = std::time::Instant::now();
                    let work = handle(request.message.payload.clone());
                    let reply = within(limits.deadline, work).await;
                    crate::metrics::COMMANDS.command(&metric_name, &reply, started);
                    match &reply {
                        CommandReply::Accepted(a) => tracing::info!(
                            service = service_name, endpoint = name, stream = %a.stream_id,
                            version = a.stream_version, position = a.position, duplicate = a.duplicate,
                            "command accepted"
                        ),
                        CommandReply::Error(e) => tracing::info!(
                            service = service_name, endpoint = name, kind = ?e.kind, code = %e.code,
                            message = %e.message, "command refused"
                        ),
                    }
                    let body = serde_json::to_vec(&reply).expect("replies serialize");
                    if let Err(e) = request.respond(Ok(body.into())).await {
                        tracing::warn!(endpoint = name, error = %e, "could not send the reply");
                    }
                })
            };
            loop {
                tokio::select! {
                    biased;
                    _ = stop_rx.changed() => break,
                    request = endpoint.next() => match request {
                        Some(request) => dispatch(request).await,
                        None => return,
                    },
                }
            }
            // Stop taking requests, then answer those already delivered to us.
            let _ = endpoint.stop().await;
            while let Ok(Some(request)) = tokio::time::timeout(Duration::from_millis(200), endpoint.next()).await {
                dispatch(request).await;
            }
        });
    }
    tracing::info!(service = service_name, endpoints = ?names, "command service ready");

    shutdown.await;
    tracing::info!(service = service_name, "draining in-flight commands");
    let _ = stop_tx.send(true);
    while loops.join_next().await.is_some() {}
    in_flight.drain().await;
    let _ = service.stop().await;
    client.flush().await.ok();
    tracing::info!(service = service_name, "stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn given_a_command_that_never_ends_when_the_deadline_passes_then_it_is_answered_with_a_timeout()
     {
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            within(Duration::from_millis(20), std::future::pending()),
        )
        .await
        .expect("the deadline answers, the caller does not wait forever");
        let CommandReply::Error(e) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Timeout, "command_timeout")
        );
        assert_eq!(e.kind.http_status(), 504);
    }

    #[test]
    fn a_creds_file_gives_the_inbox_prefix_of_its_seed() {
        let seed = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU";
        let text = format!(
            "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.sig\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        );
        assert_eq!(creds_file_seed(&text), Some(seed));
        let prefix = coord_auth::nats::inbox_prefix_of_seed(seed).unwrap();
        assert!(prefix.starts_with("_INBOX_U"), "{prefix}");
    }
}
