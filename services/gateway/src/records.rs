//! `GET /v1/inspections/{id}`, `/v1/exchanges/{id}`, `/v1/discipline-cases/{id}`: one
//! record's current state with its version as a strong `ETag` (`"<version>"`, what
//! `If-Match` takes back), so a client can pin its next command without replaying its
//! own history.
//!
//! The state is folded from the record's own stream in the log the gateway already
//! holds, not read from the projector: it is exact and always current (a command's
//! answer and a read of its record right after agree), and the lifecycle status comes
//! from the domain's own `apply`, so it cannot drift from what the command services
//! decide. Streams are read under any office's subjects ([`EventLog::read_reference`]):
//! a district's gateway shows the province's exchange sourced into its log.
//!
//! A record is (office, id): two offices cut off from each other may each create one
//! with the same id, and both are kept. `?office=` names which to read; without it the
//! one office's record is read, and when several offices have a record of that id the
//! answer is `409 ambiguous_id` naming them (ask again with `?office=`).
//!
//! An exchange also folds its receipt (the recipient office's own stream, id derived
//! from the exchange's, `coord_proto::ids::receipt_id`): the view shows the
//! acknowledgement, its fields and its event in `history`, whichever office wrote it.
//! The version and `ETag` stay the exchange stream's own (what `If-Match` on the
//! exchange means). A discipline case folds its appeal the same way (the appealing
//! unit's office's stream, `coord_proto::ids::appeal_id`): `appeal_pending` with the
//! appeal's fields once it is there, unless the case has already resolved it.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use coord_domain::appeal::{Appeal, AppealEvent};
use coord_domain::discipline::{CaseStatus, DisciplineCase};
use coord_domain::exchange::InformationAcknowledged;
use coord_domain::exchange::InformationExchange;
use coord_domain::inspection::{Inspection, InspectionStatus};
use coord_domain::receipt::{Receipt, ReceiptEvent};
use coord_domain::{Aggregate, DomainEvent, Office};
use coord_log::{EventLog, RecordedEvent, StreamId};
use coord_proto::ErrorKind;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::AppState;
use crate::problem::Problem;

/// One record (an inspection, an exchange or a discipline case) as it stands now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordView {
    /// `inspection`, `exchange` or `discipline_case`.
    pub kind: String,
    pub id: Uuid,
    /// The office whose record it is (a record is (office, id)).
    pub office: String,
    pub stream_id: String,
    /// The record's version: the number of its events. Also the `ETag`.
    pub version: u64,
    /// The log commit of its latest event.
    pub position: u64,
    /// Lifecycle state, e.g. `concluded`, `appeal_pending`.
    pub status: String,
    /// The same in Vietnamese, e.g. `đã kết luận`.
    pub status_vi: String,
    /// Every field its events recorded, later events over earlier ones (e.g. a
    /// discipline case's subject, then its form and decision date), plus what the
    /// domain derives (a case's `form_in_force` after an appeal).
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    /// Its events and its companion's (an exchange's receipt, a case's appeal), in the
    /// log's order: oldest first.
    pub history: Vec<RecordStep>,
}

/// One event of a record's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordStep {
    /// The event's id (what `/v1/audit/inclusion` proves).
    pub event_id: Uuid,
    /// Its stream: the record's own, or the companion another office wrote (an
    /// exchange's receipt, a case's appeal).
    pub stream_id: String,
    pub version: u64,
    /// `commit:index` in the log.
    pub position: String,
    pub event_type: String,
    #[schema(value_type = String, format = Date)]
    pub occurred_at: chrono::NaiveDate,
    pub recorded_at: String,
    pub office: String,
    pub actor: String,
}

/// What an aggregate shows of itself when read as one record.
trait Readable: Aggregate {
    const KIND: &'static str;
    /// The problem code for an unknown id (the same the command services answer).
    const NOT_FOUND: &'static str;
    /// Lifecycle status and its Vietnamese label.
    fn status(&self) -> (&'static str, &'static str);
    /// Fields the domain derives, beyond what the events say.
    fn derived(&self, _fields: &mut Map<String, Value>) {}
    /// Another office's stream that completes this record (an exchange's receipt).
    fn companion(_id: Uuid) -> Option<StreamId> {
        None
    }
    /// The office whose companion stream completes this record (an exchange's
    /// recipient's, a case's unit's).
    fn companion_office(&self) -> Option<Office> {
        None
    }
    /// Folds the companion's events into the state (see [`Readable::companion`]).
    fn apply_companion(&mut self, _e: &RecordedEvent) -> Result<(), String> {
        Ok(())
    }
}

impl Readable for Inspection {
    const KIND: &'static str = "inspection";
    const NOT_FOUND: &'static str = "inspection_not_found";
    fn status(&self) -> (&'static str, &'static str) {
        match self.status {
            Some(InspectionStatus::Scheduled) | None => ("scheduled", "đã quyết định"),
            Some(InspectionStatus::InProgress) => ("in_progress", "đang tiến hành"),
            Some(InspectionStatus::Concluded) => ("concluded", "đã kết luận"),
            Some(InspectionStatus::Cancelled) => ("cancelled", "đã hủy"),
        }
    }
}

impl Readable for InformationExchange {
    const KIND: &'static str = "exchange";
    const NOT_FOUND: &'static str = "exchange_not_found";
    fn status(&self) -> (&'static str, &'static str) {
        if self.acknowledged.is_some() {
            ("acknowledged", "đã tiếp nhận")
        } else {
            ("sent", "đã gửi, chưa tiếp nhận")
        }
    }
    fn companion(id: Uuid) -> Option<StreamId> {
        StreamId::new(Receipt::CATEGORY, coord_proto::ids::receipt_id(id)).ok()
    }
    fn companion_office(&self) -> Option<Office> {
        self.sent.as_ref().map(|s| s.to.office())
    }
    fn apply_companion(&mut self, e: &RecordedEvent) -> Result<(), String> {
        let ReceiptEvent::InformationAcknowledged(a) =
            ReceiptEvent::decode_ref(&e.event_type, e.schema_version, &e.payload)
                .map_err(|err| err.to_string())?;
        self.acknowledged = Some(InformationAcknowledged {
            exchange_id: a.exchange_id,
            by: a.by,
            acknowledged_on: a.acknowledged_on,
        });
        Ok(())
    }
}

impl Readable for DisciplineCase {
    const KIND: &'static str = "discipline_case";
    const NOT_FOUND: &'static str = "case_not_found";
    fn status(&self) -> (&'static str, &'static str) {
        match self.status {
            Some(CaseStatus::Open) | None => ("open", "đang xem xét"),
            Some(CaseStatus::Decided) => ("decided", "đã quyết định kỷ luật"),
            Some(CaseStatus::Closed) => ("closed", "không thi hành kỷ luật"),
            Some(CaseStatus::AppealPending) => ("appeal_pending", "đang khiếu nại"),
            Some(CaseStatus::AppealResolved) => ("appeal_resolved", "đã giải quyết khiếu nại"),
        }
    }
    fn companion(id: Uuid) -> Option<StreamId> {
        StreamId::new(Appeal::CATEGORY, coord_proto::ids::appeal_id(id)).ok()
    }
    fn companion_office(&self) -> Option<Office> {
        self.opened
            .as_ref()
            .map(|o| Office::District(o.unit.clone()))
    }
    fn apply_companion(&mut self, e: &RecordedEvent) -> Result<(), String> {
        let AppealEvent::DisciplineAppealed(a) =
            AppealEvent::decode_ref(&e.event_type, e.schema_version, &e.payload)
                .map_err(|err| err.to_string())?;
        self.appealed_on = Some(a.appealed_on);
        if self.status == Some(CaseStatus::Decided) {
            self.status = Some(CaseStatus::AppealPending);
        }
        Ok(())
    }
    fn derived(&self, fields: &mut Map<String, Value>) {
        let form = self.in_force.map(|f| Value::String(f.as_str().to_owned()));
        fields.insert("form_in_force".into(), form.unwrap_or(Value::Null));
    }
}

fn corrupt(e: &RecordedEvent, reason: impl std::fmt::Display) -> Problem {
    Problem::new(
        ErrorKind::Internal,
        "corrupt_stream",
        format!(
            "event {} of {} at {} cannot be read: {reason}",
            e.stream_version,
            e.stream_id,
            e.pos()
        ),
    )
}

/// Folds a stream's history, then its companion's (the part of it written by the
/// office [`Readable::companion_office`] names), into the record view; `None` for an
/// empty stream.
fn fold<A: Readable>(
    id: Uuid,
    history: &[RecordedEvent],
    companion: &[RecordedEvent],
) -> Result<Option<RecordView>, Problem> {
    let Some(last) = history.last() else {
        return Ok(None);
    };
    let mut state = A::default();
    let mut fields = Map::new();
    for e in history {
        let event = A::Event::decode_ref(&e.event_type, e.schema_version, &e.payload)
            .map_err(|err| corrupt(e, err))?;
        state.apply(&event);
        if let Value::Object(payload) = &e.payload {
            fields.extend(payload.clone());
        }
    }
    let companion_office = state.companion_office().map(|o| o.to_string());
    let companion: Vec<&RecordedEvent> = companion
        .iter()
        .filter(|e| companion_office.as_ref() == Some(&e.office))
        .collect();
    for e in &companion {
        state.apply_companion(e).map_err(|err| corrupt(e, err))?;
        if let Value::Object(payload) = &e.payload {
            fields.extend(payload.clone());
        }
    }
    state.derived(&mut fields);
    let (status, status_vi) = state.status();
    Ok(Some(RecordView {
        kind: A::KIND.to_owned(),
        id,
        office: last.office.clone(),
        stream_id: last.stream_id.to_string(),
        version: last.stream_version,
        position: last.pos().commit,
        status: status.to_owned(),
        status_vi: status_vi.to_owned(),
        fields,
        history: in_log_order(history.iter().chain(companion)),
    }))
}

/// Which office's record of an id to read.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// The office whose record to read (`province`, `district:<unit>`), when several
    /// offices have a record of this id.
    pub office: Option<String>,
}

/// The events of the one office's stream among `events` (a stream read under every
/// office): the office asked for, or the only one there is.
fn one_office(
    kind: &str,
    id: Uuid,
    events: Vec<RecordedEvent>,
    asked: Option<&Office>,
) -> Result<Vec<RecordedEvent>, Problem> {
    let mut offices: Vec<String> = events.iter().map(|e| e.office.clone()).collect();
    offices.sort();
    offices.dedup();
    let chosen = match asked {
        Some(office) => office.to_string(),
        None if offices.len() > 1 => {
            return Err(Problem::new(
                ErrorKind::Conflict,
                "ambiguous_id",
                format!(
                    "offices {} each have a {kind} with id {id}; ask again with ?office=",
                    offices.join(", ")
                ),
            ));
        }
        None => return Ok(events),
    };
    Ok(events.into_iter().filter(|e| e.office == chosen).collect())
}

/// The record's events and its companion's, as the log has them: oldest first.
fn in_log_order<'a>(events: impl Iterator<Item = &'a RecordedEvent>) -> Vec<RecordStep> {
    let mut events: Vec<&RecordedEvent> = events.collect();
    events.sort_by_key(|e| e.pos());
    events.into_iter().map(step).collect()
}

fn step(e: &RecordedEvent) -> RecordStep {
    RecordStep {
        event_id: e.event_id,
        stream_id: e.stream_id.to_string(),
        version: e.stream_version,
        position: e.pos().to_string(),
        event_type: e.event_type.clone(),
        occurred_at: e.occurred_at,
        recorded_at: e.recorded_at.to_rfc3339(),
        office: e.office.clone(),
        actor: e.actor.clone(),
    }
}

async fn read<A: Readable>(
    state: &AppState,
    raw_id: &str,
    query: RecordQuery,
) -> Result<Response, Problem> {
    let view = view::<A>(state, raw_id, query).await?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", view.version)).expect("digits");
    let mut response = Json(view).into_response();
    response.headers_mut().insert(header::ETAG, etag);
    Ok(response)
}

/// One record of kind `kind` (`inspection`, `exchange`, `discipline_case`), as the
/// routes answer it (the console's record page shows the same).
pub async fn view_of(state: &AppState, kind: &str, raw_id: &str) -> Result<RecordView, Problem> {
    let query = RecordQuery { office: None };
    match kind {
        Inspection::KIND => view::<Inspection>(state, raw_id, query).await,
        InformationExchange::KIND => view::<InformationExchange>(state, raw_id, query).await,
        DisciplineCase::KIND => view::<DisciplineCase>(state, raw_id, query).await,
        other => Err(Problem::new(
            ErrorKind::NotFound,
            "no_such_record_kind",
            format!("no record kind `{other}`"),
        )),
    }
}

async fn view<A: Readable>(
    state: &AppState,
    raw_id: &str,
    query: RecordQuery,
) -> Result<RecordView, Problem> {
    let id = Uuid::try_parse(raw_id).map_err(|_| {
        Problem::malformed("bad_id", format!("`{raw_id}` in the path is not a UUID"))
    })?;
    let asked: Option<Office> = query
        .office
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| Problem::malformed("bad_office", format!("`office`: {e}")))?;
    let stream =
        StreamId::new(A::CATEGORY, id).map_err(|e| Problem::malformed("bad_id", e.to_string()))?;
    let history = one_office(
        A::KIND,
        id,
        read_any(state.log.as_ref(), &stream).await?,
        asked.as_ref(),
    )?;
    let companion = match A::companion(id) {
        Some(other) => read_any(state.log.as_ref(), &other).await?,
        None => Vec::new(),
    };
    fold::<A>(id, &history, &companion)?.ok_or_else(|| {
        Problem::new(
            ErrorKind::NotFound,
            A::NOT_FOUND,
            format!("no {} with id {id}", A::KIND),
        )
    })
}

/// A stream, under whichever office's subjects it was written.
async fn read_any(log: &dyn EventLog, stream: &StreamId) -> Result<Vec<RecordedEvent>, Problem> {
    log.read_reference(stream)
        .await
        .map_err(|e| Problem::unavailable("log_unavailable", e.to_string()))
}

/// One inspection or supervision, as it stands now.
#[utoipa::path(get, path = "/v1/inspections/{id}", params(("id" = Uuid, Path, description = "inspection id"), RecordQuery), tag = "records",
    responses((status = 200, body = RecordView, description = "current state; `ETag` is its version"), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem, description = "several offices have a record of this id (`ambiguous_id`): name one with `office`"), (status = 503, body = Problem)))]
pub async fn inspection(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<RecordQuery>,
) -> Result<Response, Problem> {
    read::<Inspection>(&s, &id, query).await
}

/// One information exchange, as it stands now.
#[utoipa::path(get, path = "/v1/exchanges/{id}", params(("id" = Uuid, Path, description = "exchange id"), RecordQuery), tag = "records",
    responses((status = 200, body = RecordView, description = "current state; `ETag` is its version"), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem, description = "several offices have a record of this id (`ambiguous_id`): name one with `office`"), (status = 503, body = Problem)))]
pub async fn exchange(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<RecordQuery>,
) -> Result<Response, Problem> {
    read::<InformationExchange>(&s, &id, query).await
}

/// One discipline case, as it stands now.
#[utoipa::path(get, path = "/v1/discipline-cases/{id}", params(("id" = Uuid, Path, description = "case id"), RecordQuery), tag = "records",
    responses((status = 200, body = RecordView, description = "current state; `ETag` is its version"), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem, description = "several offices have a record of this id (`ambiguous_id`): name one with `office`"), (status = 503, body = Problem)))]
pub async fn discipline_case(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<RecordQuery>,
) -> Result<Response, Problem> {
    read::<DisciplineCase>(&s, &id, query).await
}

/// The record routes.
pub fn router() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/v1/inspections/{id}", get(inspection))
        .route("/v1/exchanges/{id}", get(exchange))
        .route("/v1/discipline-cases/{id}", get(discipline_case))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_domain::exchange::{Channel, ExchangeEvent, InformationExchanged, Topic};
    use coord_domain::receipt::Acknowledgement;
    use coord_log::EventPosition;

    fn recorded<E: DomainEvent>(
        stream: StreamId,
        event: &E,
        version: u64,
        commit: u64,
    ) -> RecordedEvent {
        let (event_type, payload) = event.encode();
        RecordedEvent {
            event_id: Uuid::now_v7(),
            stream_id: stream,
            stream_version: version,
            event_type: event_type.into(),
            schema_version: E::SCHEMA_VERSION,
            occurred_at: event.occurred_on(),
            recorded_at: chrono::Utc::now(),
            office: "province".into(),
            actor: "tester".into(),
            role: None,
            correlation_id: Uuid::now_v7(),
            causation_id: Uuid::now_v7(),
            payload,
            position: Some(EventPosition { commit, index: 0 }),
        }
    }

    // Issue 10: an exchange's one-record read shows its acknowledgement, which the
    // recipient's office wrote on its own receipt stream; older logs' acknowledgements
    // on the exchange stream still show.
    #[test]
    fn an_exchange_is_read_with_its_receipt_or_its_old_acknowledgement() {
        let id = Uuid::now_v7();
        let exchange_id = coord_domain::ExchangeId::from_uuid(id);
        let to: coord_domain::Body = "district_standing_committee:long-xuyen".parse().unwrap();
        let sent = ExchangeEvent::InformationExchanged(InformationExchanged {
            exchange_id,
            term: "2020-2025".parse().unwrap(),
            unit: "long-xuyen".parse().unwrap(),
            from: coord_domain::Body::ProvincialStandingCommittee,
            to: to.clone(),
            topic: Topic::Plan,
            subject: "Kế hoạch".parse().unwrap(),
            sent_on: "2024-03-01".parse().unwrap(),
            link: None,
            channel: Channel::Document,
        });
        let history = [recorded(
            StreamId::new("exchange", id).unwrap(),
            &sent,
            1,
            1,
        )];
        let receipt = ReceiptEvent::InformationAcknowledged(Acknowledgement {
            exchange_id,
            term: "2020-2025".parse().unwrap(),
            unit: "long-xuyen".parse().unwrap(),
            by: to.clone(),
            acknowledged_on: "2024-03-04".parse().unwrap(),
        });
        let mut by_recipient =
            recorded(InformationExchange::companion(id).unwrap(), &receipt, 1, 2);
        by_recipient.office = "district:long-xuyen".into();
        // another office's receipt stream of the same id (two exchanges of one id, picked
        // while cut off) is not this exchange's acknowledgement
        let by_another = RecordedEvent {
            office: "district:chau-doc".into(),
            ..by_recipient.clone()
        };
        assert_eq!(
            fold::<InformationExchange>(id, &history, &[by_another])
                .unwrap()
                .unwrap()
                .status,
            "sent"
        );
        let companion = [by_recipient];

        let alone = fold::<InformationExchange>(id, &history, &[])
            .unwrap()
            .unwrap();
        assert_eq!(alone.status, "sent");
        let view = fold::<InformationExchange>(id, &history, &companion)
            .unwrap()
            .unwrap();
        assert_eq!(view.status, "acknowledged");
        assert_eq!(
            view.version, 1,
            "the ETag stays the exchange stream's version"
        );
        assert_eq!(view.fields["acknowledged_on"], "2024-03-04");
        assert_eq!(view.history.len(), 2);

        let old = ExchangeEvent::InformationAcknowledged(InformationAcknowledged {
            exchange_id,
            by: to,
            acknowledged_on: "2024-03-04".parse().unwrap(),
        });
        let stream = StreamId::new("exchange", id).unwrap();
        let old_log = [history[0].clone(), recorded(stream, &old, 2, 2)];
        let view = fold::<InformationExchange>(id, &old_log, &[])
            .unwrap()
            .unwrap();
        assert_eq!((view.status.as_str(), view.version), ("acknowledged", 2));
    }

    // Issue 10: a case's one-record read shows the appeal the unit's office wrote on
    // its own appeal stream; once resolved, the resolution's status stands.
    #[test]
    fn a_case_is_read_with_its_appeal() {
        use coord_domain::appeal::Appealed;
        use coord_domain::discipline::{
            AppealResolution, AppealResolved, Basis, DisciplineCaseOpened, DisciplineDecided,
            DisciplineEvent, DisciplineForm,
        };
        let id = Uuid::now_v7();
        let case_id = coord_domain::CaseId::from_uuid(id);
        let stream = StreamId::new("discipline", id).unwrap();
        let opened = DisciplineEvent::DisciplineCaseOpened(DisciplineCaseOpened {
            case_id,
            term: "2020-2025".parse().unwrap(),
            unit: "long-xuyen".parse().unwrap(),
            subject: serde_json::from_value(serde_json::json!({
                "kind": "member", "member": "ĐV-1", "membership": "full", "holds_post": false
            }))
            .unwrap(),
            basis: Basis::CentralConclusion {
                body: coord_domain::Body::CentralInspectionCommission,
                reference: "KL-01".parse().unwrap(),
            },
            violation: None,
            opened_on: "2024-03-01".parse().unwrap(),
        });
        let decided = DisciplineEvent::DisciplineDecided(DisciplineDecided {
            case_id,
            form: DisciplineForm::Warning,
            deciding_body: coord_domain::Body::ProvincialStandingCommittee,
            decided_on: "2024-03-05".parse().unwrap(),
            decision_ref: "QĐ-1".parse().unwrap(),
        });
        let history = [
            recorded(stream.clone(), &opened, 1, 1),
            recorded(stream.clone(), &decided, 2, 2),
        ];
        let appealed = AppealEvent::DisciplineAppealed(Appealed {
            case_id,
            term: "2020-2025".parse().unwrap(),
            unit: "long-xuyen".parse().unwrap(),
            appealed_on: "2024-03-06".parse().unwrap(),
            grounds: "Không đồng ý".parse().unwrap(),
        });
        let mut appeal = recorded(DisciplineCase::companion(id).unwrap(), &appealed, 1, 3);
        appeal.office = "district:long-xuyen".into();
        let companion = [appeal];

        let alone = fold::<DisciplineCase>(id, &history, &[]).unwrap().unwrap();
        assert_eq!(alone.status, "decided");
        let view = fold::<DisciplineCase>(id, &history, &companion)
            .unwrap()
            .unwrap();
        assert_eq!((view.status.as_str(), view.version), ("appeal_pending", 2));
        assert_eq!(view.fields["appealed_on"], "2024-03-06");
        assert_eq!(view.fields["form_in_force"], "warning");
        assert_eq!(view.history.len(), 3);

        let resolved = DisciplineEvent::AppealResolved(AppealResolved {
            case_id,
            resolution: AppealResolution::Annulled,
            resolving_body: coord_domain::Body::CentralPublicSecurityStandingCommittee,
            resolved_on: "2024-04-01".parse().unwrap(),
            reference: "GQ-1".parse().unwrap(),
        });
        let mut all = history.to_vec();
        all.push(recorded(stream, &resolved, 3, 4));
        let view = fold::<DisciplineCase>(id, &all, &companion)
            .unwrap()
            .unwrap();
        assert_eq!((view.status.as_str(), view.version), ("appeal_resolved", 3));
        assert_eq!(view.fields["form_in_force"], Value::Null);
        // The appeal (the unit's stream) between the decision and its resolution: the
        // history is in the log's order, not the case's events then the appeal.
        let types: Vec<&str> = view.history.iter().map(|h| h.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "DisciplineCaseOpened",
                "DisciplineDecided",
                "DisciplineAppealed",
                "AppealResolved"
            ]
        );
    }
}
