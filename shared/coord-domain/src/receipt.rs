//! The Receipt aggregate: the receiving body's acknowledgement of one information
//! exchange (tiếp nhận thông tin), recorded by the receiving body's office in its
//! own stream.
//!
//! Why a separate aggregate: every stream has exactly one writing office. The exchange's
//! stream belongs to the sender's office; if the recipient appended its acknowledgement
//! there, two offices would write one stream, and with several offices (each its own
//! server, streams sourced into each other) the recipient cannot even load it for
//! writing. So the recipient writes a `receipt` stream of its own, one per exchange:
//! its id is derived from the exchange id (`coord_proto::ids::receipt_id`), so a second
//! acknowledgement, or a retry under another key, finds the stream already there and is
//! refused (`already_acknowledged`, 409).
//!
//! The exchange is a cross-reference ([`Aggregate::references`]): the handler reads it
//! from wherever it was written (the sender's subjects, sourced into this office), and
//! the checks are the exchange's own ([`InformationExchange::check_acknowledgement`]).
//! An exchange not replicated here yet is `exchange_not_found` (422, nothing appended).
//!
//! The event keeps the type name `InformationAcknowledged`, the same fact as the old
//! event on exchange streams (so timelines and analytics measures read the same), in
//! the new category `receipt`, and carries the exchange's `term` and `unit` as found when
//! deciding: a read model can place it even when it arrives before the exchange itself.

use serde::{Deserialize, Serialize};

use crate::exchange::{AcknowledgeInformation, ExchangeRejection, InformationExchange};
use crate::references::StreamRef;
use crate::{Aggregate, Body, Context, Date, DomainEvent, ExchangeId, TermId, UnitId};

/// The recorded acknowledgement.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The exchange acknowledged.
    pub exchange_id: ExchangeId,
    /// The exchange's term, as it was sent.
    pub term: TermId,
    /// The exchange's unit, as it was sent.
    pub unit: UnitId,
    /// The receiving body.
    pub by: Body,
    pub acknowledged_on: Date,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ReceiptEvent {
    InformationAcknowledged(Acknowledgement),
}

impl DomainEvent for ReceiptEvent {
    fn event_type(&self) -> &'static str {
        match self {
            ReceiptEvent::InformationAcknowledged(_) => "InformationAcknowledged",
        }
    }
    fn occurred_on(&self) -> Date {
        match self {
            ReceiptEvent::InformationAcknowledged(e) => e.acknowledged_on,
        }
    }
}

/// One exchange's receipt: empty until acknowledged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receipt {
    pub acknowledged: Option<Acknowledgement>,
}

impl Aggregate for Receipt {
    const CATEGORY: &'static str = "receipt";
    type Command = AcknowledgeInformation;
    type Event = ReceiptEvent;
    type Rejection = ExchangeRejection;

    fn apply(&mut self, event: &ReceiptEvent) {
        match event {
            ReceiptEvent::InformationAcknowledged(e) => self.acknowledged = Some(e.clone()),
        }
    }

    fn references(command: &AcknowledgeInformation) -> Vec<StreamRef> {
        vec![StreamRef::exchange(command.exchange_id.as_uuid())]
    }

    fn handle(
        &self,
        c: &AcknowledgeInformation,
        ctx: &Context<'_>,
    ) -> Result<Vec<ReceiptEvent>, ExchangeRejection> {
        if self.acknowledged.is_some() {
            return Err(ExchangeRejection::AlreadyAcknowledged(c.exchange_id));
        }
        // Not in this office's log: an exchange never sent, which the check refuses.
        let unseen = InformationExchange::default();
        let exchange = ctx
            .references
            .exchange(c.exchange_id.as_uuid())
            .unwrap_or(&unseen);
        let sent = exchange.check_acknowledgement(c, ctx)?;
        Ok(vec![ReceiptEvent::InformationAcknowledged(
            Acknowledgement {
                exchange_id: c.exchange_id,
                term: sent.term,
                unit: sent.unit.clone(),
                by: c.by.clone(),
                acknowledged_on: c.acknowledged_on,
            },
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{
        Channel, ExchangeCommand, ExchangeEvent, InformationAcknowledged, SendInformation, Topic,
    };
    use crate::testing::{assert_round_trips, d, given_refs_when, given_when};
    use crate::{References, Rejection, RejectionKind};

    fn id() -> ExchangeId {
        ExchangeId::parse("0190a000-0000-7000-8000-0000000000e1").unwrap()
    }

    /// Information the province sent to Chợ Mới's standing committee on 2022-09-01.
    fn sent() -> ExchangeEvent {
        let send = SendInformation {
            exchange_id: id(),
            term: "2020-2025".parse().unwrap(),
            unit: "cho-moi".parse().unwrap(),
            from: Body::ProvincialStandingCommittee,
            to: "district_standing_committee:cho-moi".parse().unwrap(),
            topic: Topic::Plan,
            subject: "Kế hoạch kiểm tra năm 2022".parse().unwrap(),
            sent_on: d("2022-09-01"),
            link: None,
            channel: Channel::Document,
        };
        given_when::<InformationExchange>(&[], ExchangeCommand::Send(send))
            .unwrap()
            .remove(0)
    }

    /// The log as the acknowledging office sees it: the exchange's stream holds `history`.
    fn seen(history: &[ExchangeEvent]) -> References {
        References::default()
            .with_exchange(id().as_uuid(), InformationExchange::from_history(history))
    }

    fn ack(by: &str, on: &str) -> AcknowledgeInformation {
        AcknowledgeInformation {
            exchange_id: id(),
            by: by.parse().unwrap(),
            acknowledged_on: d(on),
        }
    }

    const CHO_MOI: &str = "district_standing_committee:cho-moi";

    #[test]
    fn the_recipient_acknowledges_a_sent_exchange_with_its_term_and_unit() {
        // given the exchange, as found in the log
        let refs = seen(&[sent()]);
        // when its recipient acknowledges it
        let events = given_refs_when::<Receipt>(&refs, &[], ack(CHO_MOI, "2022-09-02")).unwrap();
        // then the receipt carries where the exchange belongs
        let ReceiptEvent::InformationAcknowledged(a) = &events[0];
        assert_eq!(a.exchange_id, id());
        assert_eq!(a.unit.as_str(), "cho-moi");
        assert_eq!(a.term.to_string(), "2020-2025");
        assert_eq!(events[0].event_type(), "InformationAcknowledged");
        assert_round_trips::<Receipt>(&events);
        assert_eq!(
            Receipt::references(&ack(CHO_MOI, "2022-09-02")),
            vec![StreamRef::exchange(id().as_uuid())]
        );
    }

    #[test]
    fn an_exchange_not_in_this_offices_log_is_not_found_and_refused() {
        let err =
            given_refs_when::<Receipt>(&References::default(), &[], ack(CHO_MOI, "2022-09-02"))
                .unwrap_err();
        assert_eq!(err.code(), "exchange_not_found");
        assert_eq!(err.kind(), RejectionKind::RuleViolation);
    }

    #[test]
    fn only_the_recipient_acknowledges_and_not_before_it_was_sent() {
        let refs = seen(&[sent()]);
        for by in [
            "provincial_standing_committee",
            "district_standing_committee:tri-ton",
        ] {
            let err = given_refs_when::<Receipt>(&refs, &[], ack(by, "2022-09-02")).unwrap_err();
            assert_eq!(err.code(), "not_the_recipient", "{by}");
        }
        let err = given_refs_when::<Receipt>(&refs, &[], ack(CHO_MOI, "2022-08-31")).unwrap_err();
        assert_eq!(err.code(), "dates_out_of_order");
    }

    // The 2025 reorganization: a district standing committee no longer exists from
    // 2025-07-01 (Nghị quyết 203/2025/QH15): it does not acknowledge after that.
    #[test]
    fn a_district_committee_acknowledges_only_while_its_unit_exists() {
        let refs = seen(&[sent()]);
        assert!(given_refs_when::<Receipt>(&refs, &[], ack(CHO_MOI, "2025-06-30")).is_ok());
        let err = given_refs_when::<Receipt>(&refs, &[], ack(CHO_MOI, "2025-07-01")).unwrap_err();
        assert_eq!(err.code(), "unit_not_in_existence");
    }

    #[test]
    fn a_receipt_is_written_once() {
        // given a receipt already recorded
        let refs = seen(&[sent()]);
        let first = given_refs_when::<Receipt>(&refs, &[], ack(CHO_MOI, "2022-09-02")).unwrap();
        // when the recipient acknowledges again
        let err =
            given_refs_when::<Receipt>(&refs, &first, ack(CHO_MOI, "2022-09-03")).unwrap_err();
        // then it is an invalid transition
        assert_eq!(err, ExchangeRejection::AlreadyAcknowledged(id()));
        assert_eq!(err.kind(), RejectionKind::InvalidTransition);
    }

    #[test]
    fn an_exchange_acknowledged_the_old_way_is_not_acknowledged_again() {
        // given an old log: the acknowledgement on the exchange's own stream
        let old = ExchangeEvent::InformationAcknowledged(InformationAcknowledged {
            exchange_id: id(),
            by: CHO_MOI.parse().unwrap(),
            acknowledged_on: d("2022-09-02"),
        });
        let refs = seen(&[sent(), old]);
        let err = given_refs_when::<Receipt>(&refs, &[], ack(CHO_MOI, "2022-09-03")).unwrap_err();
        assert_eq!(err.code(), "already_acknowledged");
    }
}
