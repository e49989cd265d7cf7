//! The Appeal aggregate: a Party organization's or member's appeal (khiếu nại) against
//! the discipline decided in their case, recorded by the office of the case's unit in
//! its own stream.
//!
//! Why a separate aggregate: every stream has exactly one writing office. A discipline
//! case of a district police Party organization or member is the province's stream; if
//! the district appended its appeal there, two offices would write one stream, and with
//! several offices (each its own server, streams sourced into each other) the district
//! cannot even load it for writing. So the district writes an `appeal` stream of its
//! own, one per case: its id is derived from the case id ([`appeal_id`]), so a second
//! appeal, or a retry under another key, finds the stream already there and is refused
//! (`invalid_transition`, 409, as before).
//!
//! The case is a cross-reference ([`Aggregate::references`]): the handler reads it from
//! wherever it was written (the province's subjects, sourced into this office), and the
//! checks are the case's own ([`DisciplineCase::check_appeal`]: decided, within one
//! month of the decision). A case not replicated here yet is `case_not_found` (422,
//! nothing appended). The acting office is the one of the case's unit, as found in the
//! referenced case ([`crate::office::ActingOffice::acting_office_given`]).
//!
//! The event keeps the type name `DisciplineAppealed`, the same fact as the old event on
//! case streams, in the new category `appeal`, and carries the case's `term` and `unit`
//! as found when deciding, so a read model can place it even when it arrives before the
//! case itself. The province resolves the appeal on the case, referring to this stream
//! (`appeal_not_found` until it has arrived).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::discipline::{AppealDecision, DisciplineCase, DisciplineRejection};
use crate::references::StreamRef;
use crate::{Aggregate, CaseId, Context, Date, DomainEvent, TermId, Text, UnitId};

/// Namespace of appeal ids (one appeal per case).
const APPEAL_NAMESPACE: Uuid = Uuid::from_u128(0x7b21_e5c8_3d94_4a6f_b0e7_19c2_5f8d_a34e);

/// The id of the appeal stream against case `case_id`: one per case, whoever lodges it
/// and under whatever key, so a second appeal meets the stream the first one wrote.
/// (Re-exported as `coord_proto::ids::appeal_id`; it lives here because the case's
/// resolution refers to it.)
pub fn appeal_id(case_id: Uuid) -> Uuid {
    Uuid::new_v5(&APPEAL_NAMESPACE, case_id.as_bytes())
}

/// The recorded appeal.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appealed {
    /// The case appealed against.
    pub case_id: CaseId,
    /// The case's term, as it was opened.
    pub term: TermId,
    /// The case's unit, as it was opened.
    pub unit: UnitId,
    pub appealed_on: Date,
    pub grounds: Text,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AppealEvent {
    DisciplineAppealed(Appealed),
}

impl DomainEvent for AppealEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AppealEvent::DisciplineAppealed(_) => "DisciplineAppealed",
        }
    }
    fn occurred_on(&self) -> Date {
        match self {
            AppealEvent::DisciplineAppealed(e) => e.appealed_on,
        }
    }
}

/// One case's appeal: empty until lodged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Appeal {
    pub lodged: Option<Appealed>,
}

impl Aggregate for Appeal {
    const CATEGORY: &'static str = "appeal";
    type Command = AppealDecision;
    type Event = AppealEvent;
    type Rejection = DisciplineRejection;

    fn apply(&mut self, event: &AppealEvent) {
        match event {
            AppealEvent::DisciplineAppealed(e) => self.lodged = Some(e.clone()),
        }
    }

    fn references(command: &AppealDecision) -> Vec<StreamRef> {
        vec![StreamRef::discipline_case(command.case_id.as_uuid())]
    }

    fn handle(
        &self,
        c: &AppealDecision,
        ctx: &Context<'_>,
    ) -> Result<Vec<AppealEvent>, DisciplineRejection> {
        if self.lodged.is_some() {
            return Err(DisciplineRejection::InvalidTransition {
                command: "appeal",
                status: crate::discipline::CaseStatus::AppealPending,
            });
        }
        // Not in this office's log: a case never opened, which the check refuses.
        let unseen = DisciplineCase::default();
        let case = ctx
            .references
            .discipline_case(c.case_id.as_uuid())
            .unwrap_or(&unseen);
        let opened = case.check_appeal(c)?;
        Ok(vec![AppealEvent::DisciplineAppealed(Appealed {
            case_id: c.case_id,
            term: opened.term,
            unit: opened.unit.clone(),
            appealed_on: c.appealed_on,
            grounds: c.grounds.clone(),
        })])
    }
}
