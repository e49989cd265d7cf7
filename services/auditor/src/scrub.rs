//! The scrub: at each start the auditor reads its log again from the beginning up to
//! the position it had applied, and checks that every leaf it recorded is still there,
//! reading the same (its leaf hash is among the entries read). A leaf whose event is
//! gone (a message the server dropped) or changed is log damage: recorded with the
//! event signed there (`damage` table, `coord.audit.<office>.damage`,
//! `GET /v1/audit/damage`) and logged as an error, never silently carried.

use std::collections::HashSet;
use std::sync::Arc;

use coord_audit::{Hash, leaf_hash_of};
use futures::StreamExt;

use crate::runner::Auditor;

/// Reads the log to the applied position; the leaves not found again. An error reading
/// the log is returned (the scrub is then not conclusive).
pub async fn missing_leaves(auditor: &Arc<Auditor>) -> anyhow::Result<Vec<u64>> {
    let (position, leaves) = auditor
        .with_state(|s| Ok((s.store.position()?, s.tree.leaves().to_vec())))
        .await?;
    let Some(position) = position else {
        return Ok(Vec::new());
    };
    let head = auditor.log().head().await?;
    let mut seen: HashSet<Hash> = HashSet::with_capacity(leaves.len());
    if head.is_some() {
        // Through the backend's interruptions, never into another log.
        let mut entries = coord_log::resuming(auditor.log().clone(), None).await?;
        while let Some(entry) = entries.next().await {
            match entry {
                Ok(e) => {
                    let at = e.pos();
                    seen.insert(leaf_hash_of(&e));
                    if at >= position || head.is_some_and(|h| at >= h) {
                        break;
                    }
                }
                Err(coord_log::LogError::Corrupt { position: at, .. })
                | Err(coord_log::LogError::SubjectMismatch { position: at, .. }) => {
                    if at >= position || head.is_some_and(|h| at >= h) {
                        break;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(leaves
        .iter()
        .enumerate()
        .filter(|(_, h)| !seen.contains(*h))
        .map(|(i, _)| i as u64)
        .collect())
}

/// Scrubs once and records what is missing.
pub async fn scrub(auditor: Arc<Auditor>) -> anyhow::Result<()> {
    let missing = missing_leaves(&auditor).await?;
    if missing.is_empty() {
        tracing::info!("scrub: every applied leaf reads the same in the log");
        return Ok(());
    }
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let leaves = missing.clone();
    let added = auditor
        .with_state(move |s| s.store.add_damage(&leaves, "missing_or_changed", &at))
        .await?;
    tracing::error!(leaves = ?missing, new = added, "log damage: applied events are gone or changed in the log");
    Ok(())
}
