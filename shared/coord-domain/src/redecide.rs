//! The command a recorded event was decided from. Every command gives exactly one event,
//! and the event carries the command's fields (plus what the decision found, such as a
//! receipt's term and unit), so an event decided elsewhere (an import) can be decided
//! again here: its command, handled against the state its stream had, must give back
//! exactly that event. Events that no command gives any more (an acknowledgement or an
//! appeal on the stream it was once written to, a case opened before violations were
//! recorded) have no command: they were never written by today's rules and are not
//! imported.

use crate::Aggregate;
use crate::appeal::{Appeal, AppealEvent};
use crate::discipline::{
    AppealDecision, CloseCase, DecideDiscipline, DisciplineCase, DisciplineCommand,
    DisciplineEvent, OpenCase, ResolveAppeal,
};
use crate::exchange::{
    AcknowledgeInformation, ExchangeCommand, ExchangeEvent, InformationExchange, SendInformation,
};
use crate::inspection::{
    CancelInspection, ConcludeInspection, Inspection, InspectionCommand, InspectionEvent,
    ScheduleInspection, StartInspection,
};
use crate::receipt::{Receipt, ReceiptEvent};

/// An aggregate whose events name the command they were decided from.
pub trait Redecide: Aggregate {
    /// The command whose decision gives `event`; `None` when no command gives it today.
    fn command_of(event: &Self::Event) -> Option<Self::Command>;
}

impl Redecide for Inspection {
    fn command_of(event: &InspectionEvent) -> Option<InspectionCommand> {
        Some(match event.clone() {
            InspectionEvent::InspectionScheduled(e) => {
                InspectionCommand::Schedule(ScheduleInspection {
                    inspection_id: e.inspection_id,
                    term: e.term,
                    unit: e.unit,
                    kind: e.kind,
                    category: e.category,
                    leading_body: e.leading_body,
                    coordinating_body: e.coordinating_body,
                    target: e.target,
                    decision_ref: e.decision_ref,
                    decided_on: e.decided_on,
                    planned_start: e.planned_start,
                    planned_end: e.planned_end,
                })
            }
            InspectionEvent::InspectionStarted(e) => InspectionCommand::Start(StartInspection {
                inspection_id: e.inspection_id,
                started_on: e.started_on,
            }),
            InspectionEvent::InspectionConcluded(e) => {
                InspectionCommand::Conclude(ConcludeInspection {
                    inspection_id: e.inspection_id,
                    concluded_on: e.concluded_on,
                    outcome: e.outcome,
                    summary: e.summary,
                    conclusion_ref: e.conclusion_ref,
                })
            }
            InspectionEvent::InspectionCancelled(e) => {
                InspectionCommand::Cancel(CancelInspection {
                    inspection_id: e.inspection_id,
                    cancelled_on: e.cancelled_on,
                    reason: e.reason,
                })
            }
        })
    }
}

impl Redecide for InformationExchange {
    fn command_of(event: &ExchangeEvent) -> Option<ExchangeCommand> {
        match event.clone() {
            ExchangeEvent::InformationExchanged(e) => {
                Some(ExchangeCommand::Send(SendInformation {
                    exchange_id: e.exchange_id,
                    term: e.term,
                    unit: e.unit,
                    from: e.from,
                    to: e.to,
                    topic: e.topic,
                    subject: e.subject,
                    sent_on: e.sent_on,
                    link: e.link,
                    channel: e.channel,
                }))
            }
            // Receipts are written on their own streams now.
            ExchangeEvent::InformationAcknowledged(_) => None,
        }
    }
}

impl Redecide for Receipt {
    fn command_of(event: &ReceiptEvent) -> Option<AcknowledgeInformation> {
        let ReceiptEvent::InformationAcknowledged(e) = event.clone();
        Some(AcknowledgeInformation {
            exchange_id: e.exchange_id,
            by: e.by,
            acknowledged_on: e.acknowledged_on,
        })
    }
}

impl Redecide for DisciplineCase {
    fn command_of(event: &DisciplineEvent) -> Option<DisciplineCommand> {
        Some(match event.clone() {
            DisciplineEvent::DisciplineCaseOpened(e) => DisciplineCommand::Open(OpenCase {
                case_id: e.case_id,
                term: e.term,
                unit: e.unit,
                subject: e.subject,
                basis: e.basis,
                // A case opened before violations were recorded: no command opens one.
                violation: e.violation?,
                opened_on: e.opened_on,
            }),
            DisciplineEvent::DisciplineDecided(e) => DisciplineCommand::Decide(DecideDiscipline {
                case_id: e.case_id,
                form: e.form,
                deciding_body: e.deciding_body,
                decided_on: e.decided_on,
                decision_ref: e.decision_ref,
            }),
            DisciplineEvent::DisciplineCaseClosed(e) => DisciplineCommand::Close(CloseCase {
                case_id: e.case_id,
                closed_on: e.closed_on,
                reason: e.reason,
            }),
            DisciplineEvent::AppealResolved(e) => DisciplineCommand::ResolveAppeal(ResolveAppeal {
                case_id: e.case_id,
                resolution: e.resolution,
                resolving_body: e.resolving_body,
                resolved_on: e.resolved_on,
                reference: e.reference,
            }),
            // Appeals are written on their own streams now.
            DisciplineEvent::DisciplineAppealed(_) => return None,
        })
    }
}

impl Redecide for Appeal {
    fn command_of(event: &AppealEvent) -> Option<AppealDecision> {
        let AppealEvent::DisciplineAppealed(e) = event.clone();
        Some(AppealDecision {
            case_id: e.case_id,
            appealed_on: e.appealed_on,
            grounds: e.grounds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Province, References, Rulebook};

    fn province() -> Province {
        Province::from_toml_str(crate::province::AN_GIANG_TOML).unwrap()
    }

    fn decide<A: Redecide>(state: &A, command: &A::Command) -> Vec<A::Event> {
        let province = province();
        let ctx = Context {
            province: &province,
            rules: Rulebook::standard(),
            references: &References::default(),
        };
        state
            .handle(command, &ctx)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn inspection(steps: &[serde_json::Value]) -> (Inspection, Vec<InspectionEvent>) {
        let mut state = Inspection::default();
        let mut events = Vec::new();
        for step in steps {
            let command = command_from_json(step);
            let decided = decide(&state, &command);
            for e in &decided {
                state.apply(e);
            }
            events.extend(decided);
        }
        (state, events)
    }

    fn command_from_json(step: &serde_json::Value) -> InspectionCommand {
        let body = step["body"].clone();
        match step["command"].as_str().unwrap() {
            "schedule" => InspectionCommand::Schedule(serde_json::from_value(body).unwrap()),
            "start" => InspectionCommand::Start(serde_json::from_value(body).unwrap()),
            _ => InspectionCommand::Conclude(serde_json::from_value(body).unwrap()),
        }
    }

    const ID: &str = "0190a000-0000-7000-8000-000000000001";

    fn steps() -> Vec<serde_json::Value> {
        vec![
            serde_json::json!({"command": "schedule", "body": {
                "inspection_id": ID, "term": "2020-2025", "unit": "chau-doc",
                "kind": "inspection", "category": "compliance",
                "leading_body": "provincial_standing_committee",
                "coordinating_body": "district_standing_committee:chau-doc",
                "target": "district_police:chau-doc", "decision_ref": "01-QĐ (example)",
                "decided_on": "2022-06-15", "planned_start": "2022-07-01",
                "planned_end": "2022-07-31"}}),
            serde_json::json!({"command": "start", "body": {
                "inspection_id": ID, "started_on": "2022-07-01"}}),
            serde_json::json!({"command": "conclude", "body": {
                "inspection_id": ID, "concluded_on": "2022-08-20", "outcome": "violations",
                "summary": "x", "conclusion_ref": "TB (example)"}}),
        ]
    }

    #[test]
    fn each_event_decided_again_from_its_command_gives_itself_back() {
        let (_, events) = inspection(&steps());
        let mut state = Inspection::default();
        for event in &events {
            let command = Inspection::command_of(event).expect("a command");
            assert_eq!(decide(&state, &command), vec![event.clone()]);
            state.apply(event);
        }
    }

    #[test]
    fn a_conclusion_before_the_start_is_refused_when_decided_again() {
        let (_, events) = inspection(&steps());
        let scheduled = Inspection::from_history(&events[..1]);
        let command = Inspection::command_of(&events[2]).unwrap();
        let province = province();
        let ctx = Context {
            province: &province,
            rules: Rulebook::standard(),
            references: &References::default(),
        };
        assert!(scheduled.handle(&command, &ctx).is_err());
    }

    #[test]
    fn events_no_command_gives_any_more_have_no_command() {
        let legacy: ExchangeEvent = serde_json::from_value(serde_json::json!({
            "type": "InformationAcknowledged",
            "data": {"exchange_id": ID, "by": "provincial_standing_committee",
                     "acknowledged_on": "2022-07-01"}
        }))
        .unwrap();
        assert!(InformationExchange::command_of(&legacy).is_none());
    }
}
