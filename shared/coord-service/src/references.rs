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

use std::collections::BTreeMap;

use coord_domain::{Aggregate, References, StreamRef};
use coord_log::{EventLog, LogError, RecordedEvent, StreamId};
use coord_proto::{ErrorKind, ErrorReply};

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
/// candidate per combination, and the handler keeps the one the domain accepts. A log
/// failure is answered as `from_log` says (the handler's one mapping of log errors).
pub async fn load<A: Aggregate>(
    log: &dyn EventLog,
    command: &A::Command,
    from_log: fn(LogError) -> ErrorReply,
) -> Result<Vec<Candidate>, ErrorReply> {
    let mut candidates = vec![Candidate::default()];
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
}
