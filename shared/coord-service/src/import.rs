//! An import (`POST /v1/admin/import`) appends events that were decided elsewhere: an
//! export of another log. It appends only what this site's command services would have
//! appended, by the same rules: each commit (the events of one command in one stream)
//! must be of an office this site hosts ([`Hosting`]), and is decided again: its
//! command ([`Redecide::command_of`]) must be the acting office's
//! ([`crate::acting::check_office`]), and handled against the state its stream had
//! before it, with what it refers to as this log holds it
//! ([`crate::references::load`]), must give back exactly its events (types, payloads,
//! dates). Commits are checked in order, each seeing the ones before it, and all of
//! them before anything is appended: a refusal appends nothing. A commit already in
//! the log (a re-sent chunk) is not decided again: its append is a duplicate.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use coord_domain::appeal::Appeal;
use coord_domain::discipline::DisciplineCase;
use coord_domain::exchange::InformationExchange;
use coord_domain::inspection::Inspection;
use coord_domain::receipt::Receipt;
use coord_domain::{
    Aggregate, Context, DomainEvent, Office, Province, Redecide, Rejection, Rulebook,
};
use coord_log::{
    EventLog, EventPosition, ExpectedVersion, LogError, LogErrorKind, NewEvent, RecordedEvent,
    StreamId, Subscription,
};
use coord_proto::{CommandApi, ErrorKind, ErrorReply};

use crate::acting::{Hosting, check_office};

/// One commit to import: `events` of `stream`, the first at `first_version`.
#[derive(Debug, Clone)]
pub struct ImportCommit {
    pub stream: StreamId,
    pub first_version: u64,
    pub events: Vec<NewEvent>,
}

impl ImportCommit {
    /// The version the stream must be at for this commit's append.
    pub fn expected(&self) -> ExpectedVersion {
        match self.first_version.saturating_sub(1) {
            0 => ExpectedVersion::NoStream,
            n => ExpectedVersion::Exact(n),
        }
    }
}

/// Checks every commit, in order, as described above; the first refusal is the answer.
pub async fn check(
    log: Arc<dyn EventLog>,
    province: &Province,
    hosting: &Hosting,
    commits: &[ImportCommit],
) -> Result<(), ErrorReply> {
    let mut view = Pending {
        log,
        streams: HashMap::new(),
        office: None,
    };
    for commit in commits {
        check_commit(&mut view, province, hosting, commit)
            .await
            .map_err(|e| ErrorReply {
                message: format!(
                    "{} at version {}: {}",
                    commit.stream, commit.first_version, e.message
                ),
                ..e
            })?;
    }
    Ok(())
}

async fn check_commit(
    view: &mut Pending,
    province: &Province,
    hosting: &Hosting,
    commit: &ImportCommit,
) -> Result<(), ErrorReply> {
    if commit.first_version == 0 {
        // Stream versions start at 1: 0 would pass as a creation without its checks.
        return Err(malformed(
            "a commit's first stream version is 1 or more, not 0",
        ));
    }
    let office = one_command(commit)?;
    hosting.check(&office)?;
    let history = view
        .for_office(&office)
        .read_stream(&commit.stream)
        .await
        .map_err(from_log)?;
    if commit.first_version == 1 {
        id_free(view, &commit.stream, &office).await?;
    }
    let before = usize::try_from(commit.first_version.saturating_sub(1)).unwrap_or(usize::MAX);
    match history.get(before) {
        Some(there) if there.event_id == commit.events[0].event_id => return Ok(()),
        Some(_) => return Err(conflict(history.len())),
        None if history.len() < before => return Err(conflict(history.len())),
        None => {}
    }
    let history = &history[..before];
    let ctx = (view as &Pending, province, history, commit);
    match commit.stream.category() {
        c if c == Inspection::CATEGORY => redecide::<Inspection>(ctx).await?,
        c if c == InformationExchange::CATEGORY => redecide::<InformationExchange>(ctx).await?,
        c if c == Receipt::CATEGORY => redecide::<Receipt>(ctx).await?,
        c if c == DisciplineCase::CATEGORY => redecide::<DisciplineCase>(ctx).await?,
        c if c == Appeal::CATEGORY => redecide::<Appeal>(ctx).await?,
        other => {
            return Err(malformed(format!(
                "no aggregate has the category `{other}`"
            )));
        }
    }
    view.add(commit);
    Ok(())
}

/// The acting office of a commit whose events all come from one command of one office.
fn one_command(commit: &ImportCommit) -> Result<Office, ErrorReply> {
    let first = &commit.events[0].metadata;
    if commit
        .events
        .iter()
        .any(|e| e.metadata.office != first.office || e.metadata.causation_id != first.causation_id)
    {
        return Err(malformed(
            "a commit's events come from one command of one office",
        ));
    }
    first
        .office
        .trim()
        .parse()
        .map_err(|e| ErrorReply::new(ErrorKind::Forbidden, "unknown_office", format!("{e}")))
}

/// The log, the stream's state and the commit one aggregate kind decides again.
type Redeciding<'a> = (
    &'a Pending,
    &'a Province,
    &'a [RecordedEvent],
    &'a ImportCommit,
);

/// Decides the commit's command again against `history` and compares.
async fn redecide<A: CommandApi + Redecide>(
    (view, province, history, commit): Redeciding<'_>,
) -> Result<(), ErrorReply> {
    let state = A::from_history(&decode::<A>(history)?);
    let recorded = decode_new::<A>(&commit.events)?;
    let command = A::command_of(&recorded[0]).ok_or_else(|| {
        ErrorReply::new(
            ErrorKind::RuleViolation,
            "import_not_decidable",
            format!(
                "no command gives a {} any more: it cannot be decided again",
                commit.events[0].event_type
            ),
        )
    })?;
    let stream = StreamId::new(A::CATEGORY, A::aggregate_id(&command))
        .map_err(|e| malformed(e.to_string()))?;
    if stream != commit.stream {
        return Err(malformed(format!("the event is about {stream}")));
    }
    let candidates = crate::references::load::<A>(view, &command, from_log).await?;
    let office = &commit.events[0].metadata.office;
    // Each way of reading what it refers to (one, unless two offices hold an id); the
    // import stands if the domain decides exactly its events with one of them.
    let mut first_refusal = None;
    for candidate in &candidates {
        let decided =
            check_office(&state, &command, &candidate.references, office).and_then(|()| {
                let ctx = Context {
                    province,
                    rules: Rulebook::standard(),
                    references: &candidate.references,
                };
                let decided = state.handle(&command, &ctx).map_err(|r| {
                    ErrorReply::new(ErrorKind::from(r.kind()), r.code(), r.to_string())
                })?;
                same_events::<A>(&decided, &commit.events)
            });
        match decided {
            Ok(()) => return Ok(()),
            Err(e) => {
                first_refusal.get_or_insert(e);
            }
        }
    }
    Err(first_refusal.expect("at least one candidate"))
}

/// Refuses a commit that creates `stream` for `office` when another office's record of
/// that id is here (as the command services do: `id_in_use`).
async fn id_free(view: &Pending, stream: &StreamId, office: &Office) -> Result<(), ErrorReply> {
    let known = view.read_reference(stream).await.map_err(from_log)?;
    match known
        .iter()
        .find(|e| e.office.parse::<Office>().as_ref() != Ok(office))
    {
        Some(e) => Err(ErrorReply::new(
            ErrorKind::Conflict,
            "id_in_use",
            format!("{stream} is already a record of office {}", e.office),
        )),
        None => Ok(()),
    }
}

/// Refuses a commit whose events are not exactly what the domain decided.
fn same_events<A: Aggregate>(decided: &[A::Event], given: &[NewEvent]) -> Result<(), ErrorReply> {
    let same = decided.len() == given.len()
        && decided.iter().zip(given).all(|(d, g)| {
            let (event_type, payload) = d.encode();
            let current = A::Event::upcast(&g.event_type, g.schema_version, g.payload.clone());
            event_type == g.event_type
                && current.is_ok_and(|p| p == payload)
                && d.occurred_on() == g.occurred_at
        });
    if same {
        return Ok(());
    }
    Err(ErrorReply::new(
        ErrorKind::RuleViolation,
        "import_differs_from_decision",
        format!(
            "the domain decides {} for its command, not what the import holds",
            decided
                .iter()
                .map(|d| d.event_type())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

fn decode<A: Aggregate>(history: &[RecordedEvent]) -> Result<Vec<A::Event>, ErrorReply> {
    history
        .iter()
        .map(|e| decode_one::<A>(&e.event_type, e.schema_version, &e.payload))
        .collect()
}

fn decode_new<A: Aggregate>(events: &[NewEvent]) -> Result<Vec<A::Event>, ErrorReply> {
    events
        .iter()
        .map(|e| decode_one::<A>(&e.event_type, e.schema_version, &e.payload))
        .collect()
}

fn decode_one<A: Aggregate>(
    event_type: &str,
    version: u32,
    payload: &serde_json::Value,
) -> Result<A::Event, ErrorReply> {
    A::Event::decode(event_type, version, payload.clone())
        .map_err(|e| malformed(format!("{event_type} v{version}: {e}")))
}

fn malformed(message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(ErrorKind::Malformed, "bad_cloudevent", message)
}

fn conflict(actual: usize) -> ErrorReply {
    ErrorReply::new(
        ErrorKind::Conflict,
        "import_conflict",
        format!("the stream holds {actual} other events there"),
    )
}

fn from_log(e: LogError) -> ErrorReply {
    match e.kind() {
        LogErrorKind::Unavailable => {
            ErrorReply::new(ErrorKind::Unavailable, "log_unavailable", e.to_string())
        }
        _ => ErrorReply::new(ErrorKind::Internal, "log_unreadable", e.to_string()),
    }
}

/// The log as it will be once the commits checked so far are appended: read-only, for
/// deciding (the aggregate's own stream and what a command refers to).
#[derive(Clone)]
struct Pending {
    log: Arc<dyn EventLog>,
    streams: HashMap<StreamId, Vec<RecordedEvent>>,
    /// The office this view loads streams as ([`EventLog::for_office`]).
    office: Option<Office>,
}

impl Pending {
    fn add(&mut self, commit: &ImportCommit) {
        let events = self.streams.entry(commit.stream.clone()).or_default();
        for (event, version) in commit.events.iter().zip(commit.first_version..) {
            events.push(RecordedEvent {
                event_id: event.event_id,
                stream_id: commit.stream.clone(),
                stream_version: version,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                occurred_at: event.occurred_at,
                recorded_at: chrono::Utc::now(),
                office: event.metadata.office.clone(),
                actor: event.metadata.actor.clone(),
                correlation_id: event.metadata.correlation_id,
                causation_id: event.metadata.causation_id,
                role: event.metadata.role.clone(),
                payload: event.payload.clone(),
                position: None,
            });
        }
    }

    /// `stored` and the pending events of `stream` (of `office` only, if given).
    fn with_pending(
        &self,
        stream: &StreamId,
        office: Option<&Office>,
        mut stored: Vec<RecordedEvent>,
    ) -> Vec<RecordedEvent> {
        let of_office = |e: &&RecordedEvent| {
            office.is_none_or(|o| e.office.parse::<Office>().as_ref() == Ok(o))
        };
        stored.extend(
            self.streams
                .get(stream)
                .into_iter()
                .flatten()
                .filter(of_office)
                .cloned(),
        );
        stored
    }
}

#[async_trait]
impl EventLog for Pending {
    fn for_office(&self, office: &Office) -> Arc<dyn EventLog> {
        Arc::new(Self {
            office: Some(office.clone()),
            ..self.clone()
        })
    }

    async fn append(
        &self,
        _: &StreamId,
        _: ExpectedVersion,
        _: Vec<NewEvent>,
    ) -> Result<coord_log::AppendOutcome, LogError> {
        Err(LogError::InvalidInput(
            "an import is checked read-only".into(),
        ))
    }

    async fn read_stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
        let stored = match &self.office {
            Some(office) => self.log.for_office(office).read_stream(stream).await?,
            None => self.log.read_reference(stream).await?,
        };
        Ok(self.with_pending(stream, self.office.as_ref(), stored))
    }

    async fn read_reference(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, LogError> {
        Ok(self.with_pending(stream, None, self.log.read_reference(stream).await?))
    }

    /// What is stored (a scan of the log, for the restart of a time limit, sees the
    /// stored cases, not the import's own: at worst a decision is refused that the
    /// whole import would have allowed, never the other way).
    async fn subscribe(&self, after: Option<EventPosition>) -> Result<Subscription, LogError> {
        self.log.subscribe(after).await
    }

    async fn head(&self) -> Result<Option<EventPosition>, LogError> {
        self.log.head().await
    }
}

#[cfg(test)]
mod tests {
    use coord_domain::Sites;
    use coord_domain::province::AN_GIANG_TOML;
    use coord_log::Metadata;
    use coord_log::memory::InMemoryLog;
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::*;

    const ID: &str = "0190a000-0000-7000-8000-000000000001";

    fn province() -> Province {
        Province::from_toml_str(AN_GIANG_TOML).unwrap()
    }

    fn commit(version: u64, office: &str, event_type: &str, payload: Value) -> ImportCommit {
        let stream = StreamId::new("inspection", ID).unwrap();
        let date = ["decided_on", "started_on", "concluded_on"]
            .iter()
            .find_map(|k| payload[k].as_str())
            .unwrap()
            .parse()
            .unwrap();
        ImportCommit {
            stream,
            first_version: version,
            events: vec![NewEvent {
                event_id: Uuid::now_v7(),
                event_type: event_type.into(),
                schema_version: 1,
                occurred_at: date,
                payload,
                metadata: Metadata {
                    office: office.into(),
                    actor: "nhập".into(),
                    correlation_id: Uuid::now_v7(),
                    causation_id: Uuid::now_v7(),
                    role: Some("operator".into()),
                },
            }],
        }
    }

    fn scheduled(office: &str) -> ImportCommit {
        commit(
            1,
            office,
            "InspectionScheduled",
            json!({"inspection_id": ID, "term": "2020-2025", "unit": "long-xuyen",
                "kind": "inspection", "category": "compliance",
                "leading_body": "provincial_standing_committee",
                "coordinating_body": "district_standing_committee:long-xuyen",
                "target": "district_police:long-xuyen", "decision_ref": "01-QĐ (example)",
                "decided_on": "2022-06-15", "planned_start": "2022-07-01",
                "planned_end": "2022-07-31"}),
        )
    }

    fn started(version: u64) -> ImportCommit {
        commit(
            version,
            "province",
            "InspectionStarted",
            json!({"inspection_id": ID, "started_on": "2022-07-01"}),
        )
    }

    fn concluded(version: u64) -> ImportCommit {
        commit(
            version,
            "province",
            "InspectionConcluded",
            json!({"inspection_id": ID, "concluded_on": "2022-08-20", "outcome": "violations",
                "summary": "x", "conclusion_ref": "TB (example)"}),
        )
    }

    async fn code(log: &InMemoryLog, hosting: &Hosting, commits: &[ImportCommit]) -> String {
        match check(Arc::new(log.clone()), &province(), hosting, commits).await {
            Ok(()) => "ok".into(),
            Err(e) => e.code,
        }
    }

    #[tokio::test]
    async fn commits_the_domain_decides_pass_in_order_each_seeing_the_ones_before() {
        let log = InMemoryLog::new();
        let all = Hosting::everything();
        let commits = [scheduled("province"), started(2), concluded(3)];
        assert_eq!(code(&log, &all, &commits).await, "ok");
        // Already in the log: not decided again (its append is a duplicate).
        let first = &commits[0];
        log.append(&first.stream, first.expected(), first.events.clone())
            .await
            .unwrap();
        assert_eq!(code(&log, &all, &commits).await, "ok");
        // Another event at a version the log holds: a conflict.
        assert_eq!(
            code(&log, &all, &[scheduled("province")]).await,
            "import_conflict"
        );
    }

    #[tokio::test]
    async fn what_the_domain_or_the_site_would_refuse_is_refused() {
        let log = InMemoryLog::new();
        let all = Hosting::everything();
        // A conclusion before the inspection was started.
        let early = [scheduled("province"), concluded(2)];
        assert_eq!(code(&log, &all, &early).await, "invalid_transition");
        // A district scheduling as the provincial standing committee.
        let district = [scheduled("district:long-xuyen")];
        assert_eq!(
            code(&log, &all, &district).await,
            "acting_for_another_office"
        );
        // An office this site does not host.
        let at_office = Hosting {
            site: "long-xuyen".parse().unwrap(),
            sites: Sites::parse("long-xuyen").unwrap(),
        };
        let province = [scheduled("province")];
        assert_eq!(
            code(&log, &at_office, &province).await,
            "office_not_hosted_here"
        );
        // A date that is not the event's own.
        let mut moved = scheduled("province");
        moved.events[0].occurred_at = "2022-06-16".parse().unwrap();
        assert_eq!(
            code(&log, &all, &[moved]).await,
            "import_differs_from_decision"
        );
        // A creation numbered 0 (it would skip the creation's checks).
        let mut zero = scheduled("province");
        zero.first_version = 0;
        assert_eq!(code(&log, &all, &[zero]).await, "bad_cloudevent");
        assert_eq!(log.head().await.unwrap(), None, "nothing appended");
    }
}
