//! The read side's wire types: what the projector answers on `coord.query.*`, and what
//! the gateway serves under `/v1/status` and `/v1/districts`.

use serde::{Deserialize, Serialize};

/// Subjects of the projector's queries start with this (NATS service `projector`).
pub const QUERY_PREFIX: &str = "coord.query";

/// The subject of one query endpoint.
pub fn query_subject(endpoint: &str) -> String {
    format!("{QUERY_PREFIX}.{endpoint}")
}

/// Subjects of the projector's administrative endpoints start with this.
pub const ADMIN_PREFIX: &str = "coord.admin.projector";

/// The subject that asks the projector to drop its read models and replay the log.
pub fn rebuild_subject() -> String {
    format!("{ADMIN_PREFIX}.rebuild")
}

/// Counts of inspections and supervisions by their current state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InspectionCounts {
    pub scheduled: u64,
    pub in_progress: u64,
    pub concluded: u64,
    pub cancelled: u64,
}

/// Inspections (kiểm tra) and supervisions (giám sát) apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InspectionsByKind {
    pub inspection: InspectionCounts,
    pub supervision: InspectionCounts,
}

/// Information exchanged between the province and the district committees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExchangeCounts {
    /// All exchanges, both ways.
    pub sent: u64,
    /// From the provincial police Party committee to the district committee.
    pub to_district: u64,
    /// From the district committee to the provincial police Party committee.
    pub to_province: u64,
    /// Not acknowledged yet by the receiving body.
    pub unacknowledged: u64,
}

/// Discipline of Party organizations in force, by form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrganizationDiscipline {
    pub reprimand: u64,
    pub warning: u64,
    pub dissolution: u64,
}

/// Discipline of Party members in force, by form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberDiscipline {
    pub reprimand: u64,
    pub warning: u64,
    pub removal_from_post: u64,
    pub expulsion: u64,
}

/// Discipline decisions in force (after appeals) and cases still open.
///
/// People and decisions apart: a member disciplined in two cases counts once in
/// `members_disciplined` and twice in `member_decisions` (and in `members` by form).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DisciplineCounts {
    /// Decisions in force on organizations, by form.
    pub organizations: OrganizationDiscipline,
    /// Decisions in force on members, by form.
    pub members: MemberDiscipline,
    /// Distinct Party organizations with at least one decision in force.
    #[serde(default)]
    pub organizations_disciplined: u64,
    /// Decisions in force on organizations (the sum of `organizations`).
    #[serde(default)]
    pub organization_decisions: u64,
    /// Distinct Party members (by reference) with at least one decision in force.
    #[serde(default)]
    pub members_disciplined: u64,
    /// Decisions in force on members (the sum of `members`).
    #[serde(default)]
    pub member_decisions: u64,
    /// Cases opened and not yet decided or closed.
    pub open_cases: u64,
    /// Decisions under appeal (they stay in force while pending).
    pub appeals_pending: u64,
}

/// Where coordination with one district-level unit stands in one term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistrictStatus {
    pub unit: String,
    /// Vietnamese name, e.g. `Long Xuyên`.
    pub name: String,
    /// `city`, `town` or `district` (latest type).
    pub kind: String,
    /// e.g. `Ban Thường vụ Thành ủy Long Xuyên`.
    pub standing_committee: String,
    /// e.g. `Đảng bộ Công an thành phố Long Xuyên`.
    pub police_committee: String,
    pub term: String,
    /// At least one inspection or supervision not cancelled, coordinated with this
    /// unit's standing committee.
    pub coordinated: bool,
    /// At least one inspection or supervision concluded in the term (a conclusion
    /// dated after the term's end does not count for it).
    pub covered: bool,
    /// Inspections and supervisions of this term concluded after the term ended:
    /// recorded and counted among `concluded`, but not covering the unit.
    #[serde(default)]
    pub concluded_after_term: u64,
    pub inspections: InspectionCounts,
    pub inspections_by_kind: InspectionsByKind,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub last_conclusion_on: Option<chrono::NaiveDate>,
    pub exchanges: ExchangeCounts,
    pub discipline: DisciplineCounts,
}

/// Where the province stands against the term's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvinceSummary {
    pub term: String,
    pub province: String,
    /// The log position the read model reflects.
    pub position: u64,
    pub districts_total: u64,
    pub districts_coordinated: u64,
    pub districts_covered: u64,
    /// Units not yet covered: the term target is every unit at least once.
    pub districts_outstanding: Vec<String>,
    pub target_met: bool,
    pub inspections: InspectionCounts,
    pub inspections_by_kind: InspectionsByKind,
    pub exchanges: ExchangeCounts,
    pub discipline: DisciplineCounts,
    /// Events the projector could not apply (see the dead-letter list).
    pub dead_letters: u64,
    /// Present when the counts are restricted to a `from`/`to` window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<StatusWindow>,
}

/// The window of business dates (inclusive) a status answer's counts are restricted to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusWindow {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// All districts' status in one term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistrictList {
    pub term: String,
    pub position: u64,
    pub districts: Vec<DistrictStatus>,
    /// Present when the counts are restricted to a `from`/`to` window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<StatusWindow>,
}

/// One district's status, with the position it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistrictReport {
    pub position: u64,
    #[serde(flatten)]
    pub status: DistrictStatus,
    /// Present when the counts are restricted to a `from`/`to` window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<StatusWindow>,
}

/// One event in a district's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    /// `commit:index` in the log.
    pub position: String,
    pub event_id: String,
    pub event_type: String,
    pub stream_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub occurred_at: chrono::NaiveDate,
    pub recorded_at: String,
    pub office: String,
    pub actor: String,
    /// A short Vietnamese description.
    pub summary_vi: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
}

/// A page of a timeline, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelinePage {
    pub unit: String,
    pub position: u64,
    pub entries: Vec<TimelineEntry>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<String>,
}

/// An event the projector could not apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    pub position: String,
    pub stream_id: Option<String>,
    pub event_type: Option<String>,
    pub reason: String,
    pub recorded_at: String,
}

/// A log entry the projector refused to apply, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogAlarm {
    /// `commit:index`.
    pub position: String,
    /// `subject_mismatch`.
    pub code: String,
    /// The subject the entry was stored on.
    pub subject: Option<String>,
    pub detail: String,
    pub recorded_at: String,
}

/// The projector's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectorPosition {
    /// The last log commit applied to the read model (0 before the first).
    pub position: u64,
    pub dead_letters: u64,
    /// Log entries never applied because they are not what their subject says (a
    /// commit naming another office's or another stream than where it was stored), the
    /// newest first (at most 100).
    #[serde(default)]
    pub alarms: Vec<LogAlarm>,
    /// True while a rebuild replays the log.
    pub rebuilding: bool,
    /// Why the projection is not advancing, while it is not (absent when healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<ProjectorFault>,
    /// Rebuilds of this read-model database so far.
    #[serde(default)]
    pub rebuilds: u64,
    /// The latest rebuild, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rebuild: Option<RebuildProgress>,
    /// The identity of the log the read model is built from (e.g. the JetStream
    /// stream's name and creation time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_identity: Option<String>,
    /// Events the read models had applied that a later read of the log found gone,
    /// unreadable or changed (at a start, or before a rebuild), oldest first. One not
    /// yet accepted by a rebuild (`accepted_at`) makes the projector not ready.
    #[serde(default)]
    pub log_damage: Vec<LogDamage>,
}

/// An event the read models applied that the log no longer holds as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogDamage {
    /// `commit:index` where it was applied.
    pub position: String,
    /// The event as applied: id, stream, version, type.
    pub event_id: String,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    /// `missing` (no longer in the log), `unreadable`, or `changed` (another event at
    /// its place).
    pub kind: String,
    pub detail: String,
    pub detected_at: String,
    /// When a rebuild went on without it (`accept_loss`); absent while not accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<String>,
}

impl LogDamage {
    /// One line naming the event as applied and what became of it.
    pub fn describe(&self) -> String {
        format!(
            "event {} ({} v{}, {}) applied at {} is {}: {}",
            self.event_id,
            self.stream_id,
            self.stream_version,
            self.event_type,
            self.position,
            self.kind,
            self.detail
        )
    }
}

/// Why the projector stopped advancing: `storage_failed` (the read-model database
/// cannot be written; retried with backoff), `log_replaced` (the log is not the one the
/// checkpoint refers to; a rebuild adopts the new one), `rebuild_failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectorFault {
    pub code: String,
    pub detail: String,
    /// RFC 3339 time the fault was first seen.
    pub since: String,
}

/// How far the latest rebuild got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RebuildProgress {
    /// 1 for the database's first rebuild, then 2, ...
    pub generation: u64,
    /// The log head when the rebuild started: the replay is complete there.
    pub target_position: u64,
    /// Log entries replayed (applied or dead-lettered) since the read models were dropped.
    pub replayed: u64,
    pub completed: bool,
}

/// The subject that asks the projector to apply one dead letter's event again.
pub fn redrive_subject() -> String {
    format!("{ADMIN_PREFIX}.redrive")
}

/// The answer to a re-drive: the dead letter is gone, its event applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Redriven {
    /// `commit:index` of the event.
    pub position: String,
    pub applied: bool,
}

/// A query request. All fields optional; each endpoint reads the ones it needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Wait until the read model reflects at least this log position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_position: Option<u64>,
    /// How long to wait for `min_position`, in milliseconds (bounded by the projector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Timeline cursor: entries strictly older than this `commit:index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Analytics: first business date of the window (inclusive, YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Analytics: last business date of the window (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Status as recorded up to this moment (RFC 3339, or YYYY-MM-DD for the end of
    /// that day UTC): only events whose `recorded_at` is at or before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// Status as of the end of this business date (YYYY-MM-DD): events dated up to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of_date: Option<String>,
    /// A log position `commit:index` (dead-letter re-drive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Rebuild: go on although events the read models had applied are gone from the
    /// log or unreadable ([`ProjectorPosition::log_damage`]); the figures will lack
    /// them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_loss: Option<bool>,
}

/// A query answer: the value, or a typed error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryReply<T> {
    Ok(T),
    Error(crate::ErrorReply),
}
