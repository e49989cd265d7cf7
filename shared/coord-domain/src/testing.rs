//! Given / when / then helpers for the aggregates' unit tests.

use crate::{Aggregate, Context, Date, References, Rulebook};

pub(crate) fn d(s: &str) -> Date {
    s.parse().expect("test dates are ISO dates")
}

/// Runs `command` against the state built from `history`, with no other aggregate known.
pub(crate) fn given_when<A: Aggregate>(
    history: &[A::Event],
    command: A::Command,
) -> Result<Vec<A::Event>, A::Rejection> {
    given_refs_when::<A>(&References::default(), history, command)
}

/// Runs `command` against the state built from `history`, with `references` known.
pub(crate) fn given_refs_when<A: Aggregate>(
    references: &References,
    history: &[A::Event],
    command: A::Command,
) -> Result<Vec<A::Event>, A::Rejection> {
    given_rules_refs_when::<A>(Rulebook::standard(), references, history, command)
}

/// The same under another rulebook than the shipped one.
pub(crate) fn given_rules_refs_when<A: Aggregate>(
    rules: &Rulebook,
    references: &References,
    history: &[A::Event],
    command: A::Command,
) -> Result<Vec<A::Event>, A::Rejection> {
    let state = A::from_history(history);
    state.handle(
        &command,
        &Context {
            province: crate::province::an_giang(),
            rules,
            references,
        },
    )
}

/// Every event type survives the wire: encode, then decode gives the same event.
pub(crate) fn assert_round_trips<A: Aggregate>(events: &[A::Event])
where
    A::Event: PartialEq,
{
    use crate::DomainEvent;
    for event in events {
        let (ty, payload) = event.encode();
        let back = A::Event::decode(ty, A::Event::SCHEMA_VERSION, payload).unwrap();
        assert_eq!(&back, event);
    }
}

/// An inspection of `unit` with id `id`, scheduled in 2022 and, if `concluded`, started
/// and concluded on 2022-08-20: the state a cross-reference check would find.
pub(crate) fn inspection_state(
    id: &str,
    unit: &str,
    concluded: bool,
) -> crate::inspection::Inspection {
    use crate::inspection::*;
    let inspection_id: crate::InspectionId = id.parse().unwrap();
    let mut history = given_when::<Inspection>(
        &[],
        InspectionCommand::Schedule(ScheduleInspection {
            inspection_id,
            term: "2020-2025".parse().unwrap(),
            unit: unit.parse().unwrap(),
            kind: InspectionKind::Inspection,
            category: Category::Compliance,
            leading_body: crate::Body::ProvincialStandingCommittee,
            coordinating_body: format!("district_standing_committee:{unit}")
                .parse()
                .unwrap(),
            target: format!("district_police:{unit}").parse().unwrap(),
            decision_ref: "01-QĐ (example)".parse().unwrap(),
            decided_on: d("2022-06-15"),
            planned_start: d("2022-07-01"),
            planned_end: d("2022-07-31"),
        }),
    )
    .unwrap();
    if concluded {
        let steps = [
            InspectionCommand::Start(StartInspection {
                inspection_id,
                started_on: d("2022-07-01"),
            }),
            InspectionCommand::Conclude(ConcludeInspection {
                inspection_id,
                concluded_on: d("2022-08-20"),
                outcome: Outcome::Shortcomings,
                summary: "x".parse().unwrap(),
                conclusion_ref: "TB (example)".parse().unwrap(),
            }),
        ];
        for step in steps {
            let next = given_when::<Inspection>(&history, step).unwrap();
            history.extend(next);
        }
    }
    Inspection::from_history(&history)
}
