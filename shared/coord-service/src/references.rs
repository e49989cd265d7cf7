//! Preloads the aggregates a command refers to (a discipline case's basis inspection, an
//! exchange's linked record) from the log, so the pure domain can check them through
//! `Context::references`.
//!
//! It reads this office's log only, but under any office's subjects
//! ([`EventLog::read_reference`]): the province's exchange that a district acknowledges
//! was written by the province and sourced into the district's log. A referenced
//! aggregate written at another office and not yet replicated here reads as an empty
//! stream, so the domain refuses the
//! command as referring to a record it cannot find (422, nothing appended); the caller
//! sends it again once the reference has arrived. References are read once per command,
//! before deciding: a referenced aggregate that changes between that read and the append
//! is not re-checked (the checks only need it to exist, belong to the unit and be
//! concluded, and none of those can be undone).
//!
//! A command whose aggregate asks for whole categories ([`Aggregate::scans`]: a
//! discipline decision needs the other cases of its subject, which it cannot name) has
//! every stream of them in this office's log folded in too, by [`scan`]: one forward
//! pass over the log up to its head, through the same `subscribe` the projector uses.
//! Cost: every commit in the log is read once per such command (about 340 commits in
//! the reference scenario; measured figures in ARCHITECTURE.md); only discipline
//! decisions and resolutions that change a form pay it.

use std::collections::BTreeMap;

use coord_domain::{Aggregate, References, StreamRef};
use coord_log::{EventLog, LogError, RecordedEvent, StreamId};
use coord_proto::{ErrorKind, ErrorReply};
use futures::StreamExt;
use uuid::Uuid;

/// Most combinations of candidate offices tried for one command.
const MAX_COMBINATIONS: usize = 16;

/// One way to read what a command refers to: the referenced aggregates, and for each
/// one found, the office whose stream it is.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub references: References,
    /// `(stream, office)` of every reference found.
    pub offices: Vec<(String, String)>,
}

/// Reads every stream `A::references(command)` names, under every office. Usually each
/// is one office's (or none's), and there is one candidate. Two offices that picked one
/// id while cut off from each other each have a stream of it: then there is one
/// candidate per combination, and the handler keeps the one the domain accepts. Every
/// candidate also holds every stream of the categories `A::scans(command)` asks for. A
/// log failure is answered as `from_log` says (the handler's one mapping of log errors).
pub async fn load<A: Aggregate>(
    log: &dyn EventLog,
    command: &A::Command,
    from_log: fn(LogError) -> ErrorReply,
) -> Result<Vec<Candidate>, ErrorReply> {
    let mut scanned = References::default();
    for category in A::scans(command) {
        scan(log, category, &mut scanned).await.map_err(from_log)?;
    }
    let mut candidates = vec![Candidate {
        references: scanned,
        offices: Vec::new(),
    }];
    for reference in A::references(command) {
        let stream = StreamId::new(reference.category, reference.id)
            .map_err(|e| ErrorReply::new(ErrorKind::Internal, "bad_stream_id", e.to_string()))?;
        let history = log.read_reference(&stream).await.map_err(from_log)?;
        let by_office = by_office(history);
        if by_office.len() > 1 && candidates.len() * by_office.len() > MAX_COMBINATIONS {
            return Err(ErrorReply::new(
                ErrorKind::Conflict,
                "ambiguous_reference",
                format!("{stream} exists under too many offices to choose from"),
            ));
        }
        candidates = extend(candidates, &reference, &stream, &by_office)?;
    }
    Ok(candidates)
}

/// A stream's events grouped by the office whose stream they are (the log checked each
/// against the subject it was stored on).
fn by_office(history: Vec<RecordedEvent>) -> BTreeMap<String, Vec<RecordedEvent>> {
    let mut groups: BTreeMap<String, Vec<RecordedEvent>> = BTreeMap::new();
    for event in history {
        groups.entry(event.office.clone()).or_default().push(event);
    }
    groups
}

/// Every candidate so far, with each office's version of one more reference.
fn extend(
    candidates: Vec<Candidate>,
    reference: &StreamRef,
    stream: &StreamId,
    by_office: &BTreeMap<String, Vec<RecordedEvent>>,
) -> Result<Vec<Candidate>, ErrorReply> {
    if by_office.is_empty() {
        return Ok(candidates);
    }
    let mut out = Vec::with_capacity(candidates.len() * by_office.len());
    for candidate in candidates {
        for (office, events) in by_office {
            let mut next = candidate.clone();
            let raw = events
                .iter()
                .map(|e| (e.event_type.as_str(), e.schema_version, e.payload.clone()))
                .collect();
            next.references.insert(*reference, raw).map_err(|err| {
                ErrorReply::new(
                    ErrorKind::Internal,
                    "undecodable_history",
                    format!("referenced stream {stream} of {office} cannot be read: {err}"),
                )
            })?;
            next.offices.push((stream.to_string(), office.clone()));
            out.push(next);
        }
    }
    Ok(out)
}

/// Folds into `references` every stream of `category` in this office's log as it stands
/// now (up to its head; what is appended meanwhile is not waited for). A stream that
/// cannot be decoded is left out with a warning rather than failing every command that
/// scans: the one scan today, of discipline cases, only ever finds violations that
/// restart a time limit, so leaving one out can refuse a decision, never let a wrong one
/// through.
pub async fn scan(
    log: &dyn EventLog,
    category: &'static str,
    references: &mut References,
) -> Result<(), LogError> {
    let Some(head) = log.head().await? else {
        return Ok(());
    };
    // Each office's stream apart: a record is (office, id).
    let mut streams: BTreeMap<(String, Uuid), Vec<RecordedEvent>> = BTreeMap::new();
    let mut log_events = log.subscribe(None).await?;
    while let Some(item) = log_events.next().await {
        let event = match item {
            Ok(event) => event,
            // An unreadable commit is skipped, as the projector records and skips it.
            Err(
                LogError::Corrupt { position, .. } | LogError::SubjectMismatch { position, .. },
            ) if position.commit < head.commit => {
                continue;
            }
            Err(LogError::Corrupt { .. } | LogError::SubjectMismatch { .. }) => break,
            Err(e) => return Err(e),
        };
        let at = event.pos();
        if event.stream_id.category() == category
            && let Ok(id) = event.stream_id.id().parse::<Uuid>()
        {
            streams
                .entry((event.office.clone(), id))
                .or_default()
                .push(event);
        }
        if at >= head {
            break;
        }
    }
    for ((_, id), history) in streams {
        let events = history
            .iter()
            .map(|e| (e.event_type.as_str(), e.schema_version, e.payload.clone()))
            .collect();
        if let Err(err) = references.insert(StreamRef { category, id }, events) {
            tracing::warn!(%category, %id, error = %err, "a scanned stream cannot be read; left out");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use coord_domain::Province;
    use coord_domain::discipline::DisciplineCase;
    use coord_domain::inspection::Inspection;
    use coord_domain::province::AN_GIANG_TOML;
    use coord_log::memory::InMemoryLog;
    use coord_proto::{CommandReply, CommandRequest};
    use serde_json::{Value, json};
    use uuid::Uuid;

    use coord_log::EventLog;

    use crate::CommandHandler;
    use crate::InMemoryKeys;

    const INSPECTION: &str = "0190a000-0000-7000-8000-000000000001";
    const CASE: &str = "0190a000-0000-7000-8000-0000000000c1";

    fn request(payload: Value) -> CommandRequest {
        CommandRequest {
            role: None,
            command_id: Uuid::now_v7(),
            correlation_id: None,
            office: "province".into(),
            actor: "tester".into(),
            expected_version: None,
            payload,
        }
    }

    fn code(reply: CommandReply) -> String {
        match reply {
            CommandReply::Error(e) => e.code,
            CommandReply::Accepted(a) => format!("accepted at {}", a.position),
        }
    }

    // Cross-references through the handler: the basis inspection is read from the log
    // before deciding; absent (or not yet replicated here) means refused, nothing appended.
    #[tokio::test]
    async fn the_handler_preloads_the_basis_inspection_from_the_log() {
        let log = InMemoryLog::new();
        let province = Arc::new(Province::from_toml_str(AN_GIANG_TOML).unwrap());
        let cases = CommandHandler::<DisciplineCase>::new(
            Arc::new(log.clone()),
            Arc::new(InMemoryKeys::new()),
            province.clone(),
        );
        let inspections = CommandHandler::<Inspection>::new(
            Arc::new(log.clone()),
            Arc::new(InMemoryKeys::new()),
            province,
        );
        let open = || {
            request(json!({
                "case_id": CASE, "term": "2020-2025", "unit": "chau-doc",
                "subject": {"kind": "organization", "name": "Chi bộ Đội Cảnh sát"},
                "basis": {"kind": "inspection", "inspection_id": INSPECTION},
                "violation": {"committed_on": "2022-05-01"},
                "opened_on": "2022-09-01"
            }))
        };
        assert_eq!(
            code(cases.handle("open", open()).await),
            "basis_inspection_not_found"
        );
        assert_eq!(log.head().await.unwrap(), None, "nothing appended");

        let steps = [
            (
                "schedule",
                json!({
                "inspection_id": INSPECTION, "term": "2020-2025", "unit": "chau-doc",
                "kind": "inspection", "category": "compliance",
                "leading_body": "provincial_standing_committee",
                "coordinating_body": "district_standing_committee:chau-doc",
                "target": "district_police:chau-doc", "decision_ref": "01-QĐ (example)",
                "decided_on": "2022-06-15", "planned_start": "2022-07-01", "planned_end": "2022-07-31"}),
            ),
            (
                "start",
                json!({"inspection_id": INSPECTION, "started_on": "2022-07-01"}),
            ),
        ];
        for (endpoint, payload) in steps {
            assert!(
                code(inspections.handle(endpoint, request(payload)).await).starts_with("accepted")
            );
        }
        assert_eq!(
            code(cases.handle("open", open()).await),
            "basis_inspection_not_concluded"
        );
        let conclude = json!({"inspection_id": INSPECTION, "concluded_on": "2022-08-20",
            "outcome": "violations", "summary": "x", "conclusion_ref": "TB (example)"});
        assert!(
            code(inspections.handle("conclude", request(conclude)).await).starts_with("accepted")
        );
        assert!(code(cases.handle("open", open()).await).starts_with("accepted"));
    }

    fn member_case(case_id: &str, committed_on: &str, opened_on: &str) -> CommandRequest {
        request(json!({
            "case_id": case_id, "term": "2020-2025", "unit": "chau-doc",
            "subject": {"kind": "member", "member": "ĐV-1601", "membership": "full", "holds_post": false},
            "basis": {"kind": "central_conclusion", "body": "central_inspection_commission", "reference": "KL-16"},
            "violation": {"committed_on": committed_on}, "opened_on": opened_on
        }))
    }

    fn reprimand(case_id: &str, on: &str) -> CommandRequest {
        request(json!({"case_id": case_id, "form": "reprimand",
            "deciding_body": "provincial_standing_committee", "decided_on": on, "decision_ref": "QĐ-16"}))
    }

    // Quy định 102-QĐ/TW art. 3.1.b through the handler: the member's other case is
    // found by scanning the log, and its violation restarts the time limit.
    #[tokio::test]
    async fn a_decision_finds_the_subjects_other_cases_by_scanning_the_log() {
        let log = InMemoryLog::new();
        let province = Arc::new(Province::from_toml_str(AN_GIANG_TOML).unwrap());
        let cases = CommandHandler::<DisciplineCase>::new(
            Arc::new(log.clone()),
            Arc::new(InMemoryKeys::new()),
            province,
        );
        const A: &str = "0190a000-0000-7000-8000-0000000016a1";
        const B: &str = "0190a000-0000-7000-8000-0000000016b1";
        assert!(
            code(
                cases
                    .handle("open", member_case(A, "2018-06-10", "2023-01-10"))
                    .await
            )
            .starts_with("accepted")
        );
        // given only case A: its five years ended on 2023-06-10
        assert_eq!(
            code(cases.handle("decide", reprimand(A, "2023-07-01")).await),
            "limitation_period_expired"
        );
        // given the member's new violation of 2020-06-10 on case B, decided
        assert!(
            code(
                cases
                    .handle("open", member_case(B, "2020-06-10", "2023-03-01"))
                    .await
            )
            .starts_with("accepted")
        );
        assert!(
            code(cases.handle("decide", reprimand(B, "2023-05-10")).await).starts_with("accepted")
        );
        // then case A is in time
        assert!(
            code(cases.handle("decide", reprimand(A, "2023-07-01")).await).starts_with("accepted")
        );
    }
}
