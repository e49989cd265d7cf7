//! The InformationExchange aggregate: one piece of information sent between the
//! provincial police Party committee and a district-level standing committee (a plan, a
//! notice before an inspection, a conclusion, a discipline decision, a consultation).
//! Its acknowledgement by the receiving body is that body's office's own record
//! ([`crate::receipt::Receipt`]); the checks it must pass live here
//! ([`InformationExchange::check_acknowledgement`]). Acknowledgements written on the
//! exchange's stream before receipts existed are still read.
//!
//! A link names an existing inspection or discipline case of the same unit, as found in
//! the office's log when the exchange is sent (see [`crate::references`]: a record from
//! another office not yet replicated here is refused until it arrives). A district
//! standing committee sends or acknowledges only while its unit exists (it ended with
//! the district level on 2025-07-01, Nghị quyết 203/2025/QH15).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::references::StreamRef;
use crate::rules::{body_exists, unit_exists, within_term};
use crate::{
    Aggregate, Body, CaseId, Context, Date, DecodeError, DomainEvent, ExchangeId, InspectionId,
    ReferenceError, Rejection, RejectionKind, TermId, Text, UnitId,
};

/// What the exchange is about.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Kế hoạch kiểm tra, giám sát hằng năm (to avoid overlap).
    Plan,
    /// Thông báo trước khi kiểm tra.
    NoticeBeforeInspection,
    /// Thông báo kết luận.
    Conclusion,
    /// Quyết định kỷ luật.
    DisciplineDecision,
    /// Trao đổi ý kiến trước khi xem xét kỷ luật.
    Consultation,
    Other,
}

impl Topic {
    pub fn label_vi(self) -> &'static str {
        match self {
            Topic::Plan => "kế hoạch kiểm tra, giám sát",
            Topic::NoticeBeforeInspection => "thông báo trước khi kiểm tra",
            Topic::Conclusion => "thông báo kết luận",
            Topic::DisciplineDecision => "quyết định kỷ luật",
            Topic::Consultation => "trao đổi ý kiến",
            Topic::Other => "khác",
        }
    }
}

/// How the information was sent (schema version 2 of `InformationExchanged`).
///
/// Events written with schema version 1 did not record it; they are read as
/// [`Channel::Document`], the official paper document (văn bản) that Quy chế 23 names
/// as the ordinary way of exchanging information.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Văn bản: an official document (the default, and what every v1 event was).
    #[default]
    Document,
    /// Trao đổi trực tiếp: in a meeting or conference, recorded in minutes.
    Meeting,
    /// Văn bản điện tử: through the electronic document system.
    Electronic,
}

impl Channel {
    pub fn label_vi(self) -> &'static str {
        match self {
            Channel::Document => "văn bản",
            Channel::Meeting => "trao đổi trực tiếp",
            Channel::Electronic => "văn bản điện tử",
        }
    }
}

/// What an exchange refers to.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Link {
    Inspection(InspectionId),
    DisciplineCase(CaseId),
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendInformation {
    pub exchange_id: ExchangeId,
    pub term: TermId,
    pub unit: UnitId,
    pub from: Body,
    pub to: Body,
    pub topic: Topic,
    pub subject: Text,
    #[serde(deserialize_with = "crate::date::iso")]
    pub sent_on: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    /// How it is sent; `document` when absent.
    #[serde(default)]
    pub channel: Channel,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeInformation {
    pub exchange_id: ExchangeId,
    pub by: Body,
    #[serde(deserialize_with = "crate::date::iso")]
    pub acknowledged_on: Date,
}

/// The commands the exchange's own stream takes. An acknowledgement is not one of them:
/// the receiving body records it in its own office's stream
/// ([`crate::receipt::Receipt`]), so the sender's stream has one writer.
#[derive(Debug, Clone, PartialEq)]
pub enum ExchangeCommand {
    Send(SendInformation),
}

impl ExchangeCommand {
    pub fn exchange_id(&self) -> ExchangeId {
        match self {
            ExchangeCommand::Send(c) => c.exchange_id,
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InformationExchanged {
    pub exchange_id: ExchangeId,
    pub term: TermId,
    pub unit: UnitId,
    pub from: Body,
    pub to: Body,
    pub topic: Topic,
    pub subject: Text,
    pub sent_on: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    /// How it was sent (since schema version 2; version-1 events are upcast to
    /// `document`).
    pub channel: Channel,
}

// An acknowledgement written on the exchange's own stream, as it was before
// acknowledgements became `crate::receipt::Receipt`s: still read (old logs replay),
// never written any more. (A plain comment: a doc comment would change its published
// JSON Schema.)
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InformationAcknowledged {
    pub exchange_id: ExchangeId,
    pub by: Body,
    pub acknowledged_on: Date,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ExchangeEvent {
    InformationExchanged(InformationExchanged),
    InformationAcknowledged(InformationAcknowledged),
}

impl DomainEvent for ExchangeEvent {
    /// Version 2 added `channel` to `InformationExchanged`; `InformationAcknowledged`
    /// is the same in both versions.
    const SCHEMA_VERSION: u32 = 2;

    /// Version 1 → 2: an `InformationExchanged` without `channel` was sent as a
    /// document.
    fn upcast(event_type: &str, schema_version: u32, payload: Value) -> Result<Value, DecodeError> {
        match (schema_version, payload) {
            (2, payload) => Ok(payload),
            (1, Value::Object(mut fields)) => {
                if event_type == "InformationExchanged" {
                    fields
                        .entry("channel")
                        .or_insert_with(|| Value::from("document"));
                }
                Ok(Value::Object(fields))
            }
            (1, other) => Ok(other),
            _ => Err(DecodeError::UnsupportedSchemaVersion {
                event_type: event_type.to_owned(),
                schema_version,
            }),
        }
    }

    fn event_type(&self) -> &'static str {
        match self {
            ExchangeEvent::InformationExchanged(_) => "InformationExchanged",
            ExchangeEvent::InformationAcknowledged(_) => "InformationAcknowledged",
        }
    }
    fn occurred_on(&self) -> Date {
        match self {
            ExchangeEvent::InformationExchanged(e) => e.sent_on,
            ExchangeEvent::InformationAcknowledged(e) => e.acknowledged_on,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeRejection {
    #[error("exchange {0} was already sent")]
    AlreadySent(ExchangeId),
    #[error(
        "exchange {0} was not found in this office's log (it may not have arrived yet from another office)"
    )]
    NotFound(ExchangeId),
    #[error("exchange {0} was already acknowledged")]
    AlreadyAcknowledged(ExchangeId),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(
        "an exchange runs between a provincial police Party body and the standing committee of unit `{unit}`: \
         {from} → {to} does not"
    )]
    PartiesNotProvinceAndUnit { unit: UnitId, from: Body, to: Body },
    #[error("only the receiving body ({expected}) can acknowledge, not {got}")]
    NotTheRecipient { expected: Body, got: Body },
    #[error("topic {topic:?} cannot link to {link:?}")]
    LinkDoesNotFitTopic { topic: Topic, link: Link },
    #[error("acknowledged_on is before sent_on")]
    AcknowledgedBeforeSent,
    #[error(
        "the linked {link:?} was not found in this office's log (it may not have arrived yet from another office)"
    )]
    LinkedRecordNotFound { link: Link },
    #[error("the linked {link:?} is of unit `{unit}`, not of the exchange's unit")]
    LinkedRecordOfAnotherUnit { link: Link, unit: UnitId },
}

impl Rejection for ExchangeRejection {
    fn kind(&self) -> RejectionKind {
        match self {
            ExchangeRejection::AlreadySent(_) => RejectionKind::AlreadyExists,
            ExchangeRejection::AlreadyAcknowledged(_) => RejectionKind::InvalidTransition,
            _ => RejectionKind::RuleViolation,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            ExchangeRejection::AlreadySent(_) => "already_sent",
            ExchangeRejection::NotFound(_) => "exchange_not_found",
            ExchangeRejection::AlreadyAcknowledged(_) => "already_acknowledged",
            ExchangeRejection::Reference(e) => e.code(),
            ExchangeRejection::PartiesNotProvinceAndUnit { .. } => "parties_not_province_and_unit",
            ExchangeRejection::NotTheRecipient { .. } => "not_the_recipient",
            ExchangeRejection::LinkDoesNotFitTopic { .. } => "link_does_not_fit_topic",
            ExchangeRejection::AcknowledgedBeforeSent => "dates_out_of_order",
            ExchangeRejection::LinkedRecordNotFound { .. } => "linked_record_not_found",
            ExchangeRejection::LinkedRecordOfAnotherUnit { .. } => "linked_record_of_another_unit",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InformationExchange {
    pub sent: Option<InformationExchanged>,
    pub acknowledged: Option<InformationAcknowledged>,
}

impl Aggregate for InformationExchange {
    const CATEGORY: &'static str = "exchange";
    type Command = ExchangeCommand;
    type Event = ExchangeEvent;
    type Rejection = ExchangeRejection;

    fn apply(&mut self, event: &ExchangeEvent) {
        match event {
            ExchangeEvent::InformationExchanged(e) => self.sent = Some(e.clone()),
            ExchangeEvent::InformationAcknowledged(e) => self.acknowledged = Some(e.clone()),
        }
    }

    fn references(command: &ExchangeCommand) -> Vec<StreamRef> {
        match command {
            ExchangeCommand::Send(SendInformation {
                link: Some(Link::Inspection(id)),
                ..
            }) => vec![StreamRef::inspection(id.as_uuid())],
            ExchangeCommand::Send(SendInformation {
                link: Some(Link::DisciplineCase(id)),
                ..
            }) => vec![StreamRef::discipline_case(id.as_uuid())],
            _ => Vec::new(),
        }
    }

    fn handle(
        &self,
        command: &ExchangeCommand,
        ctx: &Context<'_>,
    ) -> Result<Vec<ExchangeEvent>, ExchangeRejection> {
        match command {
            ExchangeCommand::Send(c) => {
                if self.sent.is_some() {
                    return Err(ExchangeRejection::AlreadySent(c.exchange_id));
                }
                let district = Body::DistrictStandingCommittee(c.unit.clone());
                let between = (c.from.is_provincial() && c.to == district)
                    || (c.from == district && c.to.is_provincial());
                if !between {
                    return Err(ExchangeRejection::PartiesNotProvinceAndUnit {
                        unit: c.unit.clone(),
                        from: c.from.clone(),
                        to: c.to.clone(),
                    });
                }
                if let Some(link) = c.link {
                    let fits = match (c.topic, link) {
                        (
                            Topic::NoticeBeforeInspection | Topic::Conclusion,
                            Link::Inspection(_),
                        ) => true,
                        (
                            Topic::NoticeBeforeInspection | Topic::Conclusion,
                            Link::DisciplineCase(_),
                        ) => false,
                        (
                            Topic::DisciplineDecision | Topic::Consultation,
                            Link::DisciplineCase(_),
                        ) => true,
                        (Topic::DisciplineDecision, Link::Inspection(_)) => false,
                        _ => true,
                    };
                    if !fits {
                        return Err(ExchangeRejection::LinkDoesNotFitTopic {
                            topic: c.topic,
                            link,
                        });
                    }
                }
                within_term(ctx.province, c.term, &[c.sent_on])?;
                unit_exists(ctx.province, &c.unit, &[c.sent_on])?;
                if let Some(link) = c.link {
                    check_link(ctx, link, &c.unit)?;
                }
                Ok(vec![ExchangeEvent::InformationExchanged(
                    InformationExchanged {
                        exchange_id: c.exchange_id,
                        term: c.term,
                        unit: c.unit.clone(),
                        from: c.from.clone(),
                        to: c.to.clone(),
                        topic: c.topic,
                        subject: c.subject.clone(),
                        sent_on: c.sent_on,
                        link: c.link,
                        channel: c.channel,
                    },
                )])
            }
        }
    }
}

impl InformationExchange {
    /// What an acknowledgement by `c.by` on `c.acknowledged_on` must respect, checked
    /// against this exchange as the acknowledging office found it: it was sent (else
    /// `exchange_not_found`, 422: not visible here yet), not acknowledged before (also by
    /// an old acknowledgement on this stream), `by` is its recipient, the date is not
    /// before it was sent, and `by` exists on that date. Returns what was sent.
    pub fn check_acknowledgement(
        &self,
        c: &AcknowledgeInformation,
        ctx: &Context<'_>,
    ) -> Result<&InformationExchanged, ExchangeRejection> {
        let sent = self
            .sent
            .as_ref()
            .ok_or(ExchangeRejection::NotFound(c.exchange_id))?;
        if self.acknowledged.is_some() {
            return Err(ExchangeRejection::AlreadyAcknowledged(c.exchange_id));
        }
        if c.by != sent.to {
            return Err(ExchangeRejection::NotTheRecipient {
                expected: sent.to.clone(),
                got: c.by.clone(),
            });
        }
        if c.acknowledged_on < sent.sent_on {
            return Err(ExchangeRejection::AcknowledgedBeforeSent);
        }
        body_exists(ctx.province, &c.by, c.acknowledged_on)?;
        Ok(sent)
    }
}

/// The linked record exists in the log and is of the exchange's unit.
fn check_link(ctx: &Context<'_>, link: Link, unit: &UnitId) -> Result<(), ExchangeRejection> {
    let found_unit = match link {
        Link::Inspection(id) => ctx
            .references
            .inspection(id.as_uuid())
            .and_then(|i| i.scheduled.as_ref())
            .map(|s| &s.unit),
        Link::DisciplineCase(id) => ctx
            .references
            .discipline_case(id.as_uuid())
            .and_then(|c| c.opened.as_ref())
            .map(|o| &o.unit),
    };
    match found_unit {
        None => Err(ExchangeRejection::LinkedRecordNotFound { link }),
        Some(u) if u != unit => Err(ExchangeRejection::LinkedRecordOfAnotherUnit {
            link,
            unit: u.clone(),
        }),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::References;
    use crate::testing::{assert_round_trips, d, given_refs_when, inspection_state};

    const LINKED: &str = "0190a000-0000-7000-8000-000000000001";

    /// What the log holds besides the exchange: the linked inspection, of Chợ Mới.
    fn known() -> References {
        References::default().with_inspection(
            LINKED.parse().unwrap(),
            inspection_state(LINKED, "cho-moi", false),
        )
    }

    fn given_when<A: Aggregate>(
        history: &[A::Event],
        command: A::Command,
    ) -> Result<Vec<A::Event>, A::Rejection> {
        given_refs_when::<A>(&known(), history, command)
    }

    fn id() -> ExchangeId {
        ExchangeId::parse("0190a000-0000-7000-8000-0000000000e1").unwrap()
    }

    fn send() -> SendInformation {
        SendInformation {
            exchange_id: id(),
            term: "2020-2025".parse().unwrap(),
            unit: "cho-moi".parse().unwrap(),
            from: Body::ProvincialStandingCommittee,
            to: "district_standing_committee:cho-moi".parse().unwrap(),
            topic: Topic::NoticeBeforeInspection,
            subject: "Thông báo kế hoạch kiểm tra".parse().unwrap(),
            sent_on: d("2022-09-01"),
            link: Some(Link::Inspection(
                InspectionId::parse("0190a000-0000-7000-8000-000000000001").unwrap(),
            )),
            channel: Channel::Meeting,
        }
    }

    fn sent() -> ExchangeEvent {
        given_when::<InformationExchange>(&[], ExchangeCommand::Send(send()))
            .unwrap()
            .remove(0)
    }

    // Cross-references: a link names an existing record of the same unit, as found in
    // the log (not yet visible = not found: refused, nothing appended).
    #[test]
    fn a_link_names_an_existing_record_of_the_same_unit() {
        let nothing = References::default();
        let err =
            given_refs_when::<InformationExchange>(&nothing, &[], ExchangeCommand::Send(send()))
                .unwrap_err();
        assert_eq!(err.code(), "linked_record_not_found");
        assert_eq!(err.kind(), RejectionKind::RuleViolation);
        let elsewhere = References::default().with_inspection(
            LINKED.parse().unwrap(),
            inspection_state(LINKED, "tri-ton", false),
        );
        let err =
            given_refs_when::<InformationExchange>(&elsewhere, &[], ExchangeCommand::Send(send()))
                .unwrap_err();
        assert_eq!(err.code(), "linked_record_of_another_unit");
        let case = SendInformation {
            topic: Topic::DisciplineDecision,
            link: Some(Link::DisciplineCase(CaseId::parse(LINKED).unwrap())),
            ..send()
        };
        assert_eq!(
            given_when::<InformationExchange>(&[], ExchangeCommand::Send(case))
                .unwrap_err()
                .code(),
            "linked_record_not_found"
        );
        assert_eq!(
            InformationExchange::references(&ExchangeCommand::Send(send())),
            vec![StreamRef::inspection(LINKED.parse().unwrap())]
        );
    }

    // The 2025 reorganization: a district standing committee no longer exists from
    // 2025-07-01 (Nghị quyết 203/2025/QH15): it neither sends nor acknowledges.
    #[test]
    fn a_district_committee_acts_only_while_its_unit_exists() {
        let upward = |on: &str| SendInformation {
            from: "district_standing_committee:cho-moi".parse().unwrap(),
            to: Body::ProvincialInspectionCommission,
            topic: Topic::Plan,
            link: None,
            sent_on: d(on),
            ..send()
        };
        assert!(
            given_when::<InformationExchange>(&[], ExchangeCommand::Send(upward("2025-06-30")))
                .is_ok()
        );
        assert_eq!(
            given_when::<InformationExchange>(&[], ExchangeCommand::Send(upward("2025-07-01")))
                .unwrap_err()
                .code(),
            "unit_not_in_existence"
        );
    }

    #[test]
    fn send_both_ways_is_accepted() {
        assert!(matches!(sent(), ExchangeEvent::InformationExchanged(_)));
        let upward = SendInformation {
            from: "district_standing_committee:cho-moi".parse().unwrap(),
            to: Body::ProvincialInspectionCommission,
            topic: Topic::Plan,
            link: None,
            ..send()
        };
        assert!(given_when::<InformationExchange>(&[], ExchangeCommand::Send(upward)).is_ok());
    }

    #[test]
    fn parties_must_be_the_province_and_the_units_committee() {
        for (from, to) in [
            (
                "provincial_standing_committee",
                "district_standing_committee:tri-ton",
            ),
            (
                "provincial_standing_committee",
                "provincial_inspection_commission",
            ),
            (
                "central_inspection_commission",
                "district_standing_committee:cho-moi",
            ),
            (
                "district_standing_committee:cho-moi",
                "district_standing_committee:cho-moi",
            ),
        ] {
            let cmd = SendInformation {
                from: from.parse().unwrap(),
                to: to.parse().unwrap(),
                ..send()
            };
            let err =
                given_when::<InformationExchange>(&[], ExchangeCommand::Send(cmd)).unwrap_err();
            assert_eq!(err.code(), "parties_not_province_and_unit", "{from} → {to}");
        }
    }

    #[test]
    fn link_must_fit_topic() {
        let cmd = SendInformation {
            topic: Topic::DisciplineDecision,
            ..send()
        };
        let err = given_when::<InformationExchange>(&[], ExchangeCommand::Send(cmd)).unwrap_err();
        assert_eq!(err.code(), "link_does_not_fit_topic");
    }

    #[test]
    fn send_outside_the_term_or_twice_is_refused() {
        let cmd = SendInformation {
            sent_on: d("2019-01-01"),
            ..send()
        };
        assert_eq!(
            given_when::<InformationExchange>(&[], ExchangeCommand::Send(cmd))
                .unwrap_err()
                .code(),
            "outside_term"
        );
        let err = given_when::<InformationExchange>(&[sent()], ExchangeCommand::Send(send()))
            .unwrap_err();
        assert_eq!(err.kind(), RejectionKind::AlreadyExists);
    }

    #[test]
    fn an_old_acknowledgement_on_the_exchange_stream_still_replays() {
        // given a log from before receipts: the acknowledgement on the exchange's stream
        let old = ExchangeEvent::InformationAcknowledged(InformationAcknowledged {
            exchange_id: id(),
            by: "district_standing_committee:cho-moi".parse().unwrap(),
            acknowledged_on: d("2022-09-02"),
        });
        let history = [sent(), old.clone()];
        // then it decodes and folds
        assert_round_trips::<InformationExchange>(&history);
        let state = InformationExchange::from_history(&history);
        assert!(state.acknowledged.is_some());
        let (ty, payload) = old.encode();
        assert_eq!(ExchangeEvent::decode(ty, 1, payload).unwrap(), old);
    }

    #[test]
    fn link_wire_form_is_tagged() {
        let json = serde_json::to_value(Link::DisciplineCase(
            CaseId::parse("0190a000-0000-7000-8000-0000000000c1").unwrap(),
        ))
        .unwrap();
        assert_eq!(json["kind"], "discipline_case");
    }

    #[test]
    fn a_version_1_exchange_is_read_as_sent_by_document() {
        // given a payload written before `channel` existed
        let ExchangeEvent::InformationExchanged(current) = sent() else {
            unreachable!()
        };
        let mut v1 = serde_json::to_value(&current).unwrap();
        v1.as_object_mut().unwrap().remove("channel");
        // when it is decoded as version 1
        let event = ExchangeEvent::decode("InformationExchanged", 1, v1.clone()).unwrap();
        // then it has the documented default
        let ExchangeEvent::InformationExchanged(read) = event else {
            unreachable!()
        };
        assert_eq!(read.channel, Channel::Document);
        assert_eq!(read.exchange_id, current.exchange_id);
        // and the same payload claimed as version 2 is refused, as is version 3
        assert!(ExchangeEvent::decode("InformationExchanged", 2, v1.clone()).is_err());
        assert!(matches!(
            ExchangeEvent::decode("InformationExchanged", 3, v1.clone()),
            Err(DecodeError::UnsupportedSchemaVersion { .. })
        ));
        // and the borrowing decoder reads each version the same way
        let by_ref = ExchangeEvent::decode_ref("InformationExchanged", 1, &v1).unwrap();
        assert_eq!(by_ref, ExchangeEvent::InformationExchanged(read));
        assert!(ExchangeEvent::decode_ref("InformationExchanged", 2, &v1).is_err());
        let (ty, payload) = sent().encode();
        assert_eq!(ExchangeEvent::decode_ref(ty, 2, &payload).unwrap(), sent());
        assert!(matches!(
            ExchangeEvent::decode_ref("InformationTeleported", 2, &payload),
            Err(DecodeError::UnknownEventType(_))
        ));
    }
}
