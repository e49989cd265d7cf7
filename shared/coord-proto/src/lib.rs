//! The wire contract of the command services: subjects, the request envelope, the reply,
//! and which JSON payload each command endpoint takes. Shared by the services, the
//! gateway and any other office's client, so they cannot drift apart.
//!
//! A command is a NATS request on `coord.cmd.{service}.{endpoint}` (NATS service API,
//! queue group `coord`), e.g. `coord.cmd.discipline.decide`, with a [`CommandRequest`]
//! body. The reply is always a JSON [`CommandReply`].

use coord_domain::appeal::Appeal;
use coord_domain::discipline::{
    AppealDecision, CloseCase, DecideDiscipline, DisciplineCase, DisciplineCommand, OpenCase,
    ResolveAppeal,
};
use coord_domain::exchange::{
    AcknowledgeInformation, ExchangeCommand, InformationExchange, SendInformation,
};
use coord_domain::inspection::{
    CancelInspection, ConcludeInspection, Inspection, InspectionCommand, ScheduleInspection,
    StartInspection,
};
use coord_domain::receipt::Receipt;
pub mod analytics;
pub mod ids;
pub mod labels;
pub mod read;

use coord_domain::{Aggregate, RejectionKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Subjects of command endpoints start with this.
pub const COMMAND_PREFIX: &str = "coord.cmd";
/// The queue group every command service instance joins.
pub const QUEUE_GROUP: &str = "coord";

/// The subject of one command endpoint.
pub fn command_subject(service: &str, endpoint: &str) -> String {
    format!("{COMMAND_PREFIX}.{service}.{endpoint}")
}

/// Whether a responder may answer on `reply`: a requester's inbox (`_INBOX.…`, or a
/// user's own `_INBOX_<user>.…`). nats-server lets a responder publish once to the
/// reply subject of any request it received, even a subject its own deny list forbids
/// (`allow_responses`): a request naming a log subject, or a JetStream API subject, as
/// its reply would have the responder write there. So no responder answers anywhere
/// but an inbox (the auditor's proofs for a witness also on their own subject), and a
/// command with another reply subject is not even handled.
pub fn is_inbox(reply: &str) -> bool {
    let own = reply
        .strip_prefix("_INBOX_")
        .and_then(|r| r.split_once('.'))
        .is_some_and(|(user, rest)| !user.is_empty() && !rest.is_empty());
    let shared = reply
        .strip_prefix("_INBOX.")
        .is_some_and(|rest| !rest.is_empty());
    (own || shared) && !reply.contains(['*', '>', ' '])
}

/// A command request: who sends it, its idempotency key, and the command itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// Idempotency key: the same command id twice appends once and answers the same.
    pub command_id: Uuid,
    /// Defaults to the command id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The issuing office, e.g. `province` or `district:long-xuyen`.
    pub office: String,
    /// The person or system issuing it.
    pub actor: String,
    /// The role of the caller's token, recorded on the events; absent from older
    /// senders, taken as `operator` (only operators may send commands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// If set, the command applies only if the aggregate is at this version; otherwise
    /// the service decides against the latest state (and retries a lost race itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// The command's own fields (see the domain's command structs).
    pub payload: Value,
}

/// The answer to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandReply {
    Accepted(Accepted),
    Error(ErrorReply),
}

/// Queries that can fail with a typed error (unknown unit, bad term, ...).
pub use read::QueryReply;

/// A command that was applied (or had been applied before: `duplicate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accepted {
    pub stream_id: String,
    pub aggregate_id: Uuid,
    /// The aggregate's version after the command.
    pub stream_version: u64,
    /// The global log position of the commit (wait for it with `min_position`).
    pub position: u64,
    pub event_ids: Vec<Uuid>,
    /// The command had already been applied; nothing new was appended.
    pub duplicate: bool,
}

/// Why a command was not applied. Nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorReply {
    pub kind: ErrorKind,
    /// Stable machine-readable code, e.g. `removal_from_post_requires_post`.
    pub code: String,
    pub message: String,
}

/// Error classes, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is not valid JSON or does not fit the command's schema (400).
    Malformed,
    /// The aggregate does not exist (404).
    NotFound,
    /// Another writer changed the aggregate first, or it already exists (409).
    Conflict,
    /// The command does not fit the aggregate's lifecycle state (409).
    InvalidTransition,
    /// A domain rule is broken (422).
    RuleViolation,
    /// NATS or the event log is unavailable (503).
    Unavailable,
    /// No answer within the deadline; the command may still have been applied (504).
    Timeout,
    /// A bug or corrupt data on our side (500).
    Internal,
    /// No credential, or one that does not verify (401).
    Unauthorized,
    /// The caller may not do this, e.g. act as another office (403).
    Forbidden,
}

impl ErrorKind {
    /// Its name as the wire spells it (`rule_violation`), e.g. for a metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidTransition => "invalid_transition",
            ErrorKind::RuleViolation => "rule_violation",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::Malformed => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict | ErrorKind::InvalidTransition => 409,
            ErrorKind::RuleViolation => 422,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::Internal => 500,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
        }
    }
}

impl From<RejectionKind> for ErrorKind {
    fn from(kind: RejectionKind) -> Self {
        match kind {
            RejectionKind::RuleViolation => ErrorKind::RuleViolation,
            RejectionKind::InvalidTransition => ErrorKind::InvalidTransition,
            RejectionKind::NotFound => ErrorKind::NotFound,
            RejectionKind::AlreadyExists => ErrorKind::Conflict,
        }
    }
}

impl ErrorReply {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// How an aggregate's commands appear on the wire.
/// Every aggregate on the wire also says which office may act on it
/// ([`coord_domain::ActingOffice`]).
pub trait CommandApi: Aggregate + coord_domain::ActingOffice {
    /// The service name and subject token, e.g. `inspection`.
    const SERVICE: &'static str;
    /// The endpoint names, e.g. `schedule`, `start`.
    const ENDPOINTS: &'static [&'static str];
    /// Decodes an endpoint's payload into a command.
    fn parse(endpoint: &str, payload: Value) -> Result<Self::Command, String>;
    /// The id of the aggregate the command addresses.
    fn aggregate_id(command: &Self::Command) -> Uuid;
}

/// Decodes a payload; an error names the field it is about, e.g.
/// "`concluded_on`: 2023-02-30 is not a valid date".
fn decode<T: serde::de::DeserializeOwned>(payload: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("`{path}`: {}", e.inner())
        }
    })
}

fn unknown(endpoint: &str) -> String {
    format!("unknown command endpoint `{endpoint}`")
}

impl CommandApi for Inspection {
    const SERVICE: &'static str = "inspection";
    const ENDPOINTS: &'static [&'static str] = &["schedule", "start", "conclude", "cancel"];
    fn parse(endpoint: &str, payload: Value) -> Result<InspectionCommand, String> {
        Ok(match endpoint {
            "schedule" => InspectionCommand::Schedule(decode::<ScheduleInspection>(payload)?),
            "start" => InspectionCommand::Start(decode::<StartInspection>(payload)?),
            "conclude" => InspectionCommand::Conclude(decode::<ConcludeInspection>(payload)?),
            "cancel" => InspectionCommand::Cancel(decode::<CancelInspection>(payload)?),
            other => return Err(unknown(other)),
        })
    }
    fn aggregate_id(command: &InspectionCommand) -> Uuid {
        command.inspection_id().as_uuid()
    }
}

impl CommandApi for InformationExchange {
    const SERVICE: &'static str = "exchange";
    const ENDPOINTS: &'static [&'static str] = &["send"];
    fn parse(endpoint: &str, payload: Value) -> Result<ExchangeCommand, String> {
        Ok(match endpoint {
            "send" => ExchangeCommand::Send(decode::<SendInformation>(payload)?),
            other => return Err(unknown(other)),
        })
    }
    fn aggregate_id(command: &ExchangeCommand) -> Uuid {
        command.exchange_id().as_uuid()
    }
}

/// An acknowledgement is served by the exchange service, on the subject it always had
/// (`coord.cmd.exchange.acknowledge`), but writes the receiving office's receipt.
impl CommandApi for Receipt {
    const SERVICE: &'static str = "exchange";
    const ENDPOINTS: &'static [&'static str] = &["acknowledge"];
    fn parse(endpoint: &str, payload: Value) -> Result<AcknowledgeInformation, String> {
        match endpoint {
            "acknowledge" => decode::<AcknowledgeInformation>(payload),
            other => Err(unknown(other)),
        }
    }
    fn aggregate_id(command: &AcknowledgeInformation) -> Uuid {
        ids::receipt_id(command.exchange_id.as_uuid())
    }
}

impl CommandApi for DisciplineCase {
    const SERVICE: &'static str = "discipline";
    const ENDPOINTS: &'static [&'static str] = &["open", "decide", "close", "resolve_appeal"];
    fn parse(endpoint: &str, payload: Value) -> Result<DisciplineCommand, String> {
        Ok(match endpoint {
            "open" => DisciplineCommand::Open(decode::<OpenCase>(payload)?),
            "decide" => DisciplineCommand::Decide(decode::<DecideDiscipline>(payload)?),
            "close" => DisciplineCommand::Close(decode::<CloseCase>(payload)?),
            "resolve_appeal" => DisciplineCommand::ResolveAppeal(decode::<ResolveAppeal>(payload)?),
            other => return Err(unknown(other)),
        })
    }
    fn aggregate_id(command: &DisciplineCommand) -> Uuid {
        command.case_id().as_uuid()
    }
}

/// An appeal is served by the discipline service, on the subject it always had
/// (`coord.cmd.discipline.appeal`), but writes the appealing office's own appeal stream.
impl CommandApi for Appeal {
    const SERVICE: &'static str = "discipline";
    const ENDPOINTS: &'static [&'static str] = &["appeal"];
    fn parse(endpoint: &str, payload: Value) -> Result<AppealDecision, String> {
        match endpoint {
            "appeal" => decode::<AppealDecision>(payload),
            other => Err(unknown(other)),
        }
    }
    fn aggregate_id(command: &AppealDecision) -> Uuid {
        ids::appeal_id(command.case_id.as_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_inbox_is_a_reply_subject_a_responder_answers() {
        assert!(is_inbox("_INBOX.abc.1"));
        assert!(is_inbox("_INBOX_UABC.xyz"));
        for not in [
            "coord.log.province.inspection.x",
            "$JS.API.STREAM.DELETE.COORD_LOG",
            "$KV.COORD_IDEMPOTENCY.k",
            "_INBOX.>",
            "_INBOX_U.*",
            "",
            "_INBOXX.a",
            "_INBOX_U",
            "_INBOX_.x",
            "_INBOX.",
        ] {
            assert!(!is_inbox(not), "{not}");
        }
    }

    #[test]
    fn replies_are_tagged_json() {
        let reply = CommandReply::Error(ErrorReply::new(ErrorKind::RuleViolation, "x", "y"));
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(json["error"]["kind"], "rule_violation");
        assert_eq!(serde_json::from_value::<CommandReply>(json).unwrap(), reply);
    }

    #[test]
    fn an_error_kinds_name_is_its_wire_name() {
        use ErrorKind::*;
        for kind in [
            Malformed,
            NotFound,
            Conflict,
            InvalidTransition,
            RuleViolation,
            Unavailable,
            Timeout,
            Internal,
            Unauthorized,
            Forbidden,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn every_endpoint_parses_or_reports_why_not() {
        assert!(Inspection::parse("start", serde_json::json!({"inspection_id": "0190a000-0000-7000-8000-000000000001", "started_on": "2022-07-01"})).is_ok());
        let err =
            Inspection::parse("start", serde_json::json!({"inspection_id": "nope"})).unwrap_err();
        assert!(err.contains("inspection id"), "{err}");
        assert!(
            Inspection::parse("teleport", serde_json::json!({}))
                .unwrap_err()
                .contains("unknown command")
        );
        assert!(
            DisciplineCase::parse(
                "decide",
                serde_json::json!({"case_id": "0190a000-0000-7000-8000-000000000001"})
            )
            .is_err()
        );
        assert!(Receipt::parse("acknowledge", serde_json::json!({"exchange_id": "0190a000-0000-7000-8000-000000000001", "by": "provincial_standing_committee", "acknowledged_on": "2022-07-01", "extra": 1})).is_err());
    }

    // Issue 6: date and field errors name the field and the value; only YYYY-MM-DD.
    #[test]
    fn payload_errors_name_the_field_and_the_value() {
        let id = "0190a000-0000-7000-8000-000000000001";
        let err = Inspection::parse(
            "conclude",
            serde_json::json!({"inspection_id": id, "concluded_on": "2023-02-30",
                "outcome": "no_violation", "summary": "x", "conclusion_ref": "y"}),
        )
        .unwrap_err();
        assert_eq!(err, "`concluded_on`: 2023-02-30 is not a valid date");
        let err = Inspection::parse(
            "start",
            serde_json::json!({"inspection_id": id, "started_on": "2023-7-1"}),
        )
        .unwrap_err();
        assert!(
            err.starts_with("`started_on`: 2023-7-1 is not a valid date"),
            "{err}"
        );
        assert!(err.contains("YYYY-MM-DD"), "{err}");
        let err = DisciplineCase::parse(
            "open",
            serde_json::json!({"case_id": id, "term": "2020-2025", "unit": "an-phu",
                "subject": {"kind": "organization", "name": "Chi bộ"},
                "basis": {"kind": "central_conclusion", "body": "central_inspection_commission", "reference": "x"},
                "violation": {"committed_on": "2022-13-01"}, "opened_on": "2023-01-01"}),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "`violation.committed_on`: 2022-13-01 is not a valid date"
        );
    }

    #[test]
    fn every_command_endpoint_has_exactly_one_http_route() {
        fn check<A: CommandApi>() {
            for endpoint in A::ENDPOINTS {
                let routes: Vec<_> = ROUTES
                    .iter()
                    .filter(|r| r.service == A::SERVICE && r.endpoint == *endpoint)
                    .collect();
                assert_eq!(routes.len(), 1, "{}.{endpoint}", A::SERVICE);
                assert_eq!(routes[0].command, format!("{}.{endpoint}", A::SERVICE));
                assert_eq!(routes[0].id_in_path, routes[0].path.contains("{id}"));
            }
        }
        check::<Inspection>();
        check::<InformationExchange>();
        check::<Receipt>();
        check::<DisciplineCase>();
        check::<Appeal>();
        let endpoints = Inspection::ENDPOINTS.len()
            + InformationExchange::ENDPOINTS.len()
            + Receipt::ENDPOINTS.len()
            + DisciplineCase::ENDPOINTS.len()
            + Appeal::ENDPOINTS.len();
        assert_eq!(ROUTES.len(), endpoints, "no route without an endpoint");
    }

    #[test]
    fn http_statuses_follow_the_error_classes() {
        assert_eq!(
            ErrorKind::from(RejectionKind::RuleViolation).http_status(),
            422
        );
        assert_eq!(
            ErrorKind::from(RejectionKind::InvalidTransition).http_status(),
            409
        );
        assert_eq!(ErrorKind::from(RejectionKind::NotFound).http_status(), 404);
        assert_eq!(ErrorKind::Malformed.http_status(), 400);
        assert_eq!(ErrorKind::Unavailable.http_status(), 503);
    }
}

/// How one command is reached over HTTP: `POST {path}`, where `{id}` in the path is the
/// payload's `id_field`. The gateway's router and the CLI's loader both read this table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// `service.endpoint`, e.g. `inspection.start`: the name used in scenario files.
    pub command: &'static str,
    pub service: &'static str,
    pub endpoint: &'static str,
    /// e.g. `/v1/inspections/{id}/start`.
    pub path: &'static str,
    /// The payload field that holds the aggregate id.
    pub id_field: &'static str,
    /// Does the path carry the id (false for the command that creates the aggregate)?
    pub id_in_path: bool,
    /// One line for the API documentation.
    pub summary: &'static str,
}

macro_rules! route {
    ($service:literal, $endpoint:literal, $path:literal, $id:literal, $in_path:literal, $summary:literal) => {
        Route {
            command: concat!($service, ".", $endpoint),
            service: $service,
            endpoint: $endpoint,
            path: $path,
            id_field: $id,
            id_in_path: $in_path,
            summary: $summary,
        }
    };
}

/// Every command's HTTP route.
pub const ROUTES: &[Route] = &[
    route!(
        "inspection",
        "schedule",
        "/v1/inspections",
        "inspection_id",
        false,
        "Schedule an inspection or supervision (quyết định kiểm tra, giám sát)"
    ),
    route!(
        "inspection",
        "start",
        "/v1/inspections/{id}/start",
        "inspection_id",
        true,
        "Start it (công bố quyết định, đoàn bắt đầu làm việc)"
    ),
    route!(
        "inspection",
        "conclude",
        "/v1/inspections/{id}/conclude",
        "inspection_id",
        true,
        "Conclude it (thông báo kết luận)"
    ),
    route!(
        "inspection",
        "cancel",
        "/v1/inspections/{id}/cancel",
        "inspection_id",
        true,
        "Cancel it before it concludes"
    ),
    route!(
        "exchange",
        "send",
        "/v1/exchanges",
        "exchange_id",
        false,
        "Record information sent between the province and a district committee (trao đổi thông tin)"
    ),
    route!(
        "exchange",
        "acknowledge",
        "/v1/exchanges/{id}/acknowledge",
        "exchange_id",
        true,
        "The receiving body acknowledges it: its own office records the exchange's receipt (If-Match pins the receipt's version, 0 before any acknowledgement)"
    ),
    route!(
        "discipline",
        "open",
        "/v1/discipline-cases",
        "case_id",
        false,
        "Open a discipline case (xem xét thi hành kỷ luật)"
    ),
    route!(
        "discipline",
        "decide",
        "/v1/discipline-cases/{id}/decision",
        "case_id",
        true,
        "Record the discipline decision (quyết định kỷ luật)"
    ),
    route!(
        "discipline",
        "close",
        "/v1/discipline-cases/{id}/close",
        "case_id",
        true,
        "Close the case without discipline"
    ),
    route!(
        "discipline",
        "appeal",
        "/v1/discipline-cases/{id}/appeal",
        "case_id",
        true,
        "File an appeal within one month (khiếu nại): the office of the case's unit records it in its own appeal stream (If-Match pins the appeal's version, 0 before any appeal)"
    ),
    route!(
        "discipline",
        "resolve_appeal",
        "/v1/discipline-cases/{id}/appeal-resolution",
        "case_id",
        true,
        "Resolve the appeal: upheld, changed or annulled"
    ),
];

/// Finds a route by its `service.endpoint` name.
pub fn route(command: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.command == command)
}

/// One line of a scenario or bulk file (JSON lines): a command and who sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedCommand {
    /// `service.endpoint`, see [`ROUTES`].
    pub command: String,
    /// Idempotency key: loading a file twice appends nothing new.
    pub command_id: Uuid,
    pub office: String,
    pub actor: String,
    pub payload: Value,
}
