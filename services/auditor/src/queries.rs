//! The auditor's NATS API (service `auditor`): keys, checkpoints, proofs, recorded
//! leaves and the reviewer queries, on the subjects of `coord_audit::wire`.

use std::future::Future;
use std::sync::Arc;

use async_nats::service::ServiceExt;
use coord_audit::b64;
use coord_audit::wire::{
    self, AuditRequest, CHECKPOINT_PAGE_BYTES, CHECKPOINT_PAGE_DEFAULT, CHECKPOINT_PAGE_MAX,
    CheckpointPage, ConsistencyProofBody, ENDPOINTS, InclusionProofBody, LEAVES_PAGE_MAX,
    LeavesBody,
};
use coord_proto::read::QueryReply;
use coord_proto::{ErrorKind, ErrorReply};
use futures::StreamExt;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::runner::{Auditor, State};
use crate::store::StoreError;

fn encode<T: Serialize>(r: Result<T, ErrorReply>) -> Vec<u8> {
    let r = match r {
        Ok(v) => QueryReply::Ok(v),
        Err(e) => QueryReply::Error(e),
    };
    serde_json::to_vec(&r).expect("replies serialize")
}

fn err(kind: ErrorKind, code: &str, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, code, message.into())
}

fn internal(e: StoreError) -> ErrorReply {
    err(ErrorKind::Internal, "audit_store_failed", e.to_string())
}

fn required<T: Clone>(v: &Option<T>, name: &str) -> Result<T, ErrorReply> {
    v.clone().ok_or_else(|| {
        err(
            ErrorKind::Malformed,
            &format!("missing_{name}"),
            format!("`{name}` is required"),
        )
    })
}

/// The size of the latest checkpoint, or an error when none is signed yet.
fn latest_signed(s: &State) -> Result<u64, ErrorReply> {
    let latest = s.store.latest_checkpoint().map_err(internal)?;
    latest.map(|c| c.size).ok_or_else(|| {
        err(
            ErrorKind::NotFound,
            "no_checkpoint",
            "no checkpoint signed yet",
        )
    })
}

fn inclusion(office: &str, s: &State, q: &AuditRequest) -> Result<InclusionProofBody, ErrorReply> {
    let event_id = required(&q.event_id, "event_id")?;
    let tree_size = match q.tree_size {
        Some(t) => t,
        None => latest_signed(s)?,
    };
    let (leaf_index, data) = s
        .store
        .leaf_of(event_id)
        .map_err(internal)?
        .ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                "unknown_event",
                format!("event {event_id} is not in this office's log"),
            )
        })?;
    let path = s.tree.inclusion(leaf_index, tree_size).map_err(|e| {
        err(
            ErrorKind::NotFound,
            "not_in_tree",
            format!(
                "event {event_id} (leaf {leaf_index}) is not in a tree of size {tree_size}: {e}"
            ),
        )
    })?;
    Ok(InclusionProofBody {
        office: office.into(),
        leaf_index,
        tree_size,
        leaf_data: b64(&data),
        hashes: path.iter().map(|h| b64(h)).collect(),
    })
}

fn consistency(
    office: &str,
    s: &State,
    q: &AuditRequest,
) -> Result<ConsistencyProofBody, ErrorReply> {
    let from = required(&q.from, "from")?;
    let to = match q.to {
        Some(t) => t,
        None => latest_signed(s)?,
    };
    let proof = s
        .tree
        .consistency(from, to)
        .map_err(|e| err(ErrorKind::Malformed, "bad_tree_sizes", e.to_string()))?;
    Ok(ConsistencyProofBody {
        office: office.into(),
        from,
        to,
        hashes: proof.iter().map(|h| b64(h)).collect(),
    })
}

fn leaves(s: &State, q: &AuditRequest) -> Result<LeavesBody, ErrorReply> {
    let all = s.tree.leaves();
    let from = q.from.unwrap_or(0).min(all.len() as u64);
    let most = q
        .limit
        .map_or(LEAVES_PAGE_MAX, u64::from)
        .min(LEAVES_PAGE_MAX);
    let count = (all.len() as u64 - from).min(most);
    let slice = &all[from as usize..(from + count) as usize];
    Ok(LeavesBody {
        from,
        count,
        hashes: b64(&slice.concat()),
        events: s.store.leaf_identities(from, count).map_err(internal)?,
    })
}

/// One page of checkpoints: at most `limit` (default and bound in `wire`), and never
/// more than [`CHECKPOINT_PAGE_BYTES`] of notes, so the answer fits a NATS message.
fn checkpoint_page(s: &State, q: &AuditRequest) -> Result<CheckpointPage, ErrorReply> {
    let limit = q
        .limit
        .unwrap_or(CHECKPOINT_PAGE_DEFAULT)
        .clamp(1, CHECKPOINT_PAGE_MAX);
    let mut rows = s
        .store
        .checkpoints_after(q.after, limit + 1)
        .map_err(internal)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut bytes = 0;
    let fits = rows
        .iter()
        .take_while(|c| {
            bytes += c.note.len() + c.published_at.len() + 64;
            bytes <= CHECKPOINT_PAGE_BYTES
        })
        .count()
        .max(1);
    let cut = fits < rows.len();
    rows.truncate(fits);
    let next_after = (more || cut).then(|| rows.last().map(|c| c.size)).flatten();
    Ok(CheckpointPage {
        checkpoints: rows,
        next_after,
    })
}

fn json<T: Serialize>(r: Result<T, ErrorReply>) -> Result<serde_json::Value, ErrorReply> {
    r.map(|v| serde_json::to_value(v).expect("answers serialize"))
}

/// Runs a query on the state (on a blocking thread) and encodes its answer.
async fn on_state(
    a: &Arc<Auditor>,
    f: impl FnOnce(&mut State) -> Result<serde_json::Value, ErrorReply> + Send + 'static,
) -> Vec<u8> {
    let out = a.with_state(move |s| Ok(f(s))).await.map_err(internal);
    encode(out.and_then(|r| r))
}

/// Answers one query.
pub async fn answer(a: &Arc<Auditor>, endpoint: &str, body: &[u8]) -> Vec<u8> {
    let q: AuditRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AuditRequest::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(q) => q,
            Err(e) => {
                return encode::<()>(Err(err(
                    ErrorKind::Malformed,
                    "malformed_query",
                    e.to_string(),
                )));
            }
        }
    };
    let office = a.office.clone();
    match endpoint {
        "key" => encode(Ok(a.key())),
        "damage" => on_state(a, |s| json(s.store.damage().map_err(internal))).await,
        "checkpoint" => {
            on_state(a, |s| {
                let latest = s.store.latest_checkpoint().map_err(internal)?;
                let mut latest = latest.ok_or_else(|| {
                    err(
                        ErrorKind::NotFound,
                        "no_checkpoint",
                        "no checkpoint signed yet",
                    )
                })?;
                // With the hub's cosignature once it came (still the office's valid note).
                if let Some(cosigned) = s.store.cosigned(latest.size).map_err(internal)? {
                    latest.note = cosigned;
                }
                json(Ok(latest))
            })
            .await
        }
        "checkpoints" => on_state(a, move |s| json(checkpoint_page(s, &q))).await,
        "inclusion" => on_state(a, move |s| json(inclusion(&office, s, &q))).await,
        "consistency" => on_state(a, move |s| json(consistency(&office, s, &q))).await,
        "leaves" => on_state(a, move |s| json(leaves(s, &q))).await,
        "stream" => {
            on_state(a, move |s| {
                let stream = required(&q.stream, "stream")?;
                json(s.store.stream(&stream).map_err(internal))
            })
            .await
        }
        "correlation" => {
            on_state(a, move |s| {
                let id = required(&q.correlation_id, "correlation_id")?;
                json(s.store.correlation(id).map_err(internal))
            })
            .await
        }
        "events" => {
            on_state(a, move |s| {
                json(
                    s.store
                        .search(&q.filter.unwrap_or_default())
                        .map_err(internal),
                )
            })
            .await
        }
        other => encode::<()>(Err(err(
            ErrorKind::NotFound,
            "unknown_query",
            format!("no audit query `{other}`"),
        ))),
    }
}

/// Serves queries until `shutdown` resolves.
pub async fn serve(
    client: async_nats::Client,
    auditor: Arc<Auditor>,
    keys: Vec<wire::OfficeKey>,
    default_office: bool,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let service = client
        .service_builder()
        .description("transparency log: checkpoints, proofs, audit queries")
        .queue_group(format!("auditor-{}", wire::office_token(&auditor.office)))
        .start("auditor", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the audit service: {e}"))?;
    let mut prefixes = vec![wire::office_token(&auditor.office)];
    if default_office {
        prefixes.push(wire::DEFAULT_OFFICE.into());
    }
    let mut endpoints = Vec::new();
    for prefix in &prefixes {
        let group = service.group(format!("coord.audit.{prefix}"));
        for name in ENDPOINTS {
            let endpoint = group
                .endpoint(name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            endpoints.push((name, endpoint));
        }
    }
    let mut tasks = JoinSet::new();
    for (name, mut endpoint) in endpoints {
        let auditor = auditor.clone();
        tasks.spawn(async move {
            while let Some(request) = endpoint.next().await {
                let auditor = auditor.clone();
                tokio::spawn(async move {
                    let reply_to = request.message.reply.as_deref().unwrap_or_default();
                    if !answerable(&auditor.office, name, reply_to) {
                        tracing::warn!(
                            endpoint = name,
                            reply = reply_to,
                            "query not answered: its reply subject is not an inbox"
                        );
                        return;
                    }
                    let body = answer(&auditor, name, &request.message.payload).await;
                    if let Err(e) = request.respond(Ok(body.into())).await {
                        tracing::warn!(endpoint = name, error = %e, "could not send the answer");
                    }
                });
            }
        });
    }
    // Every auditor answers the key gathering (no queue group), in one message (a
    // reply subject takes one answer): its own key and those of the logs it witnesses.
    let key = serde_json::to_vec(&keys).expect("keys serialize");
    let mut keys = client.subscribe(wire::KEYS_SUBJECT).await?;
    let keys_client = client.clone();
    tasks.spawn(async move {
        while let Some(msg) = keys.next().await {
            if let Some(reply) = msg.reply.filter(|r| coord_proto::is_inbox(r)) {
                let _ = keys_client.publish(reply, key.clone().into()).await;
            }
        }
    });
    tracing::info!(office = %auditor.office, "audit query service ready");
    shutdown.await;
    tasks.abort_all();
    let _ = service.stop().await;
    Ok(())
}

/// Whether endpoint `name` of office `office`'s auditor may answer on `reply`: an
/// inbox ([`coord_proto::is_inbox`]), or, for a witness's consistency proof, this
/// office's own proof subject, which alone crosses the leaf link back to the witness.
fn answerable(office: &str, name: &str, reply: &str) -> bool {
    let proofs = format!("{}.", wire::subject(Some(office), "proof"));
    coord_proto::is_inbox(reply)
        || (name == "consistency" && reply.starts_with(&proofs) && !reply.contains(['*', '>']))
}
