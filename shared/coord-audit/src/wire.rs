//! The auditor's query contract over NATS, shared by the auditor, the gateway and
//! `coordctl`: subjects, requests and answers (JSON; answers wrapped in
//! `coord_proto::read::QueryReply`).
//!
//! Each office's auditor answers on `coord.audit.{office token}.{endpoint}`, and the
//! default office's also on `coord.audit._.{endpoint}`; every auditor answers
//! `coord.audit.keys` (no queue group), so a caller gathers every office's key.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The subject every auditor answers, for a scatter-gather, with one JSON array: its own
/// key and the keys of the logs it witnesses.
pub const KEYS_SUBJECT: &str = "coord.audit.keys";
/// The office token of the default office.
pub const DEFAULT_OFFICE: &str = "_";

/// The subject token of an office: `district:long-xuyen` → `district_long-xuyen`
/// (`coord_domain::Office::audit_token`, the one place it is derived).
pub fn office_token(office: &str) -> String {
    coord_domain::office::audit_token(office)
}

/// The subject of `endpoint` at `office` (or the default office).
pub fn subject(office: Option<&str>, endpoint: &str) -> String {
    let token = office.map_or_else(|| DEFAULT_OFFICE.to_owned(), office_token);
    format!("coord.audit.{token}.{endpoint}")
}

/// The hub witness's status query (answered by the hub's auditor).
pub const WITNESS_SUBJECT: &str = "coord.audit.witness";

/// Where office `office`'s auditor publishes each checkpoint it signs (the hub's
/// witness listens; an office's leaf user may publish only its own).
pub fn published_subject(office: &str) -> String {
    subject(Some(office), "published")
}

/// Where the witness at office `witness` sends office `office` its cosigned
/// checkpoints: the hub's witness to each office (`….district_x.cosigned.province`),
/// each office's witness to the province (`….province.cosigned.district_x`). One
/// subject per witness, so a leaf user may publish only its own cosignature.
pub fn cosigned_subject(office: &str, witness: &str) -> String {
    format!(
        "{}.{}",
        subject(Some(office), "cosigned"),
        office_token(witness)
    )
}

/// Where office `office`'s auditor answers the consistency-proof requests of the
/// witness at office `witness`: each request names a reply subject under it,
/// `….<office>.proof.<witness>.<request id>`. Not an inbox: no inbox crosses the leaf
/// link, and an office's leaf user may publish only answers to the hub's witness under
/// its own office's subject (and receive only the answers to its own witness).
pub fn proof_subject(office: &str, witness: &str) -> String {
    format!(
        "{}.{}",
        subject(Some(office), "proof"),
        office_token(witness)
    )
}

/// The subject office `office`'s auditor hears every witness's cosignature on.
pub fn cosigned_wildcard(office: &str) -> String {
    format!("{}.*", subject(Some(office), "cosigned"))
}

/// The default origin (and key name) of office `office`'s log in province `province`.
pub fn default_origin(province: &str, office: &str) -> String {
    coord_domain::office::checkpoint_origin(province, office)
}

/// The default name of the hub witness's cosigner key in province `province`.
pub fn default_witness_name(province: &str) -> String {
    format!("coord/{province}/witness")
}

/// The name of office `office`'s witness key: the hub's is
/// [`default_witness_name`], an office's `coord/{province}/{office}/witness`.
pub fn witness_name(province: &str, office: &str) -> String {
    if office == "province" {
        default_witness_name(province)
    } else {
        format!("coord/{province}/{office}/witness")
    }
}

/// The endpoints every auditor serves.
pub const ENDPOINTS: [&str; 10] = [
    "damage",
    "key",
    "checkpoint",
    "checkpoints",
    "inclusion",
    "consistency",
    "leaves",
    "stream",
    "events",
    "correlation",
];

/// One query (fields used as each endpoint needs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<EventFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `checkpoints`: the page after this tree size (the `next_after` of the page before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
}

/// The most bytes of stored checkpoints one `checkpoints` answer carries: well under
/// nats-server's 1 MiB payload limit, whatever the notes' length (cosignatures make
/// them grow).
pub const CHECKPOINT_PAGE_BYTES: usize = 256 * 1024;
/// Checkpoints per page when the caller names no `limit`, and the most it may ask.
pub const CHECKPOINT_PAGE_DEFAULT: u32 = 100;
pub const CHECKPOINT_PAGE_MAX: u32 = 1000;
/// Leaf hashes (with the identity of each leaf's event) per `leaves` answer at most:
/// 2,048 × (44 bytes of base64 + about 170 bytes of identity) stays under 512 KiB.
pub const LEAVES_PAGE_MAX: u64 = 2048;

/// One page of an office's signed checkpoints, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckpointPage {
    pub checkpoints: Vec<StoredCheckpoint>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// The search filters of `/v1/audit/events`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct EventFilter {
    /// Who issued the command.
    pub actor: Option<String>,
    /// The office the command came from, e.g. `province`.
    pub office: Option<String>,
    /// The event type, e.g. `DisciplineDecided`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// The district unit named in the payload, e.g. `long-xuyen`.
    pub unit: Option<String>,
    /// Occurred on or after this date (YYYY-MM-DD).
    pub from: Option<String>,
    /// Occurred on or before this date (YYYY-MM-DD).
    pub to: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<u64>,
    /// Entries per page (1 to 1000, default 100).
    pub limit: Option<u32>,
}

/// An office's verifier key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfficeKey {
    pub office: String,
    /// The checkpoints' origin line (also the key's name).
    pub origin: String,
    /// The C2SP note verifier key, `name+hash+base64(0x01 ‖ key)`.
    pub key: String,
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredCheckpoint {
    pub size: u64,
    pub note: String,
    pub published_at: String,
}

/// `GET /v1/audit/proof/inclusion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProofBody {
    pub office: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Base64 of the canonical bytes (RFC 8785 JSON of the envelope).
    pub leaf_data: String,
    /// Base64 hashes of the audit path, leaf to root.
    pub hashes: Vec<String>,
}

/// `GET /v1/audit/proof/consistency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProofBody {
    pub office: String,
    pub from: u64,
    pub to: u64,
    pub hashes: Vec<String>,
}

/// Recorded leaf hashes from leaf `from` (base64 of the concatenated hashes), with
/// the identity of the event recorded at each leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeavesBody {
    pub from: u64,
    pub count: u64,
    pub hashes: String,
    /// One per leaf, in order (absent from an older auditor's answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<LeafIdentity>,
}

/// Which event the auditor recorded at a leaf: what a verifier names when that leaf
/// is missing or changed in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafIdentity {
    pub id: Uuid,
    pub stream: String,
    pub version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
}

/// A leaf the auditor applied whose event is gone from the log, or no longer reads
/// the same, on a later read (the scrub at each start): log damage, an alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogDamage {
    pub leaf_index: u64,
    /// The event recorded (signed) at that leaf.
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    /// `missing_or_changed`: no entry of the log reads as that leaf any more.
    pub kind: String,
    pub detected_at: String,
}

/// One event as a reviewer reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    pub leaf_index: u64,
    /// The log position, `commit:index`.
    pub position: String,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub office: String,
    pub actor: String,
    /// The caller's role from its token (`operator`); events recorded before roles
    /// were show `operator`, since only operators send commands.
    pub role: Option<String>,
    pub unit: Option<String>,
    pub occurred_at: String,
    pub recorded_at: String,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
}

/// A page of search results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<u64>,
}

/// `GET /v1/audit/witness`: what the hub's witness holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WitnessStatus {
    /// The witness's cosignature verifier key (C2SP `tlog-cosignature`).
    pub witness_key: String,
    pub offices: Vec<WitnessedOffice>,
    /// Every refused checkpoint, oldest first.
    pub alarms: Vec<WitnessAlarm>,
}

/// One watched office log and the last checkpoint the witness cosigned for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WitnessedOffice {
    pub office: String,
    pub origin: String,
    /// The office's note verifier key the witness was given.
    pub key: String,
    /// Size and root (base64) of the last cosigned checkpoint; absent before the first.
    pub size: Option<u64>,
    pub root: Option<String>,
    /// The office's note with the witness's cosignature.
    pub cosigned: Option<String>,
    pub cosigned_at: Option<String>,
}

/// A checkpoint the witness refused to cosign, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WitnessAlarm {
    pub id: u64,
    /// The office whose subject carried the checkpoint.
    pub office: String,
    pub origin: String,
    /// The last cosigned size and root, if any.
    pub old_size: Option<u64>,
    pub old_root: Option<String>,
    /// The refused checkpoint's size and root, when it could be read.
    pub new_size: Option<u64>,
    pub new_root: Option<String>,
    pub reason: String,
    /// The refused note as received.
    pub note: String,
    pub at: String,
    /// How many times the same note was refused again since (an office re-sends its
    /// latest checkpoint until it is cosigned), and when last.
    #[serde(default)]
    pub repeated: u64,
    #[serde(default)]
    pub last_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_page_of_checkpoints_has_no_next_after() {
        let last = CheckpointPage {
            checkpoints: Vec::new(),
            next_after: None,
        };
        assert_eq!(
            serde_json::to_value(&last).unwrap(),
            serde_json::json!({"checkpoints": []})
        );
        let page: CheckpointPage = serde_json::from_str(r#"{"checkpoints": []}"#).unwrap();
        assert_eq!(page.next_after, None);
    }
}
