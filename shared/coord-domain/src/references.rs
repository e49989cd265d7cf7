//! Cross-references between aggregates: a discipline case based on an inspection names
//! it, an exchange may link to an inspection or a discipline case. The domain stays
//! pure: an aggregate says which streams a command names ([`crate::Aggregate::references`]),
//! the command handler reads them from the log and folds them here, and the decision
//! sees them in [`crate::Context::references`].
//!
//! A command that cannot name the streams it needs has its aggregate ask for a whole
//! category instead ([`crate::Aggregate::scans`]): a discipline decision sees every case
//! in the log, and picks the other cases of its own subject.
//!
//! What is not visible is absent. The handler reads the office's own log, where a
//! referenced stream may have been written by any office (the province's exchange,
//! sourced into a district's log): an aggregate created at another office and not yet
//! replicated into it is not found, and the command is refused (422, nothing appended);
//! sending it again once the reference has arrived succeeds.

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use crate::appeal::{Appeal, appeal_id};
use crate::discipline::DisciplineCase;
use crate::exchange::InformationExchange;
use crate::inspection::Inspection;
use crate::{Aggregate, CaseId, DecodeError, DomainEvent};

/// A stream another aggregate's command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamRef {
    /// The referenced aggregate's category, e.g. `inspection`.
    pub category: &'static str,
    pub id: Uuid,
}

impl StreamRef {
    pub fn inspection(id: Uuid) -> Self {
        Self {
            category: Inspection::CATEGORY,
            id,
        }
    }
    pub fn discipline_case(id: Uuid) -> Self {
        Self {
            category: DisciplineCase::CATEGORY,
            id,
        }
    }
    pub fn exchange(id: Uuid) -> Self {
        Self {
            category: InformationExchange::CATEGORY,
            id,
        }
    }
    /// The appeal against case `case_id` (its stream id derived from the case's).
    pub fn appeal_of(case_id: CaseId) -> Self {
        Self {
            category: Appeal::CATEGORY,
            id: appeal_id(case_id.as_uuid()),
        }
    }
}

/// The referenced aggregates' current state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct References {
    inspections: BTreeMap<Uuid, Inspection>,
    cases: BTreeMap<Uuid, DisciplineCase>,
    exchanges: BTreeMap<Uuid, InformationExchange>,
    appeals: BTreeMap<Uuid, Appeal>,
}

/// One raw event of a referenced stream: `(event_type, schema_version, payload)`.
pub type RawEvent<'a> = (&'a str, u32, Value);

fn fold<A: Aggregate>(events: Vec<RawEvent<'_>>) -> Result<Option<A>, DecodeError> {
    if events.is_empty() {
        return Ok(None);
    }
    let mut state = A::default();
    for (ty, version, payload) in events {
        state.apply(&A::Event::decode(ty, version, payload)?);
    }
    Ok(Some(state))
}

impl References {
    /// Folds a referenced stream's events into its state. An empty stream adds nothing
    /// (the reference does not exist, or is not visible here yet).
    pub fn insert(
        &mut self,
        reference: StreamRef,
        events: Vec<RawEvent<'_>>,
    ) -> Result<(), DecodeError> {
        match reference.category {
            c if c == Inspection::CATEGORY => {
                if let Some(s) = fold::<Inspection>(events)? {
                    self.inspections.insert(reference.id, s);
                }
            }
            c if c == DisciplineCase::CATEGORY => {
                if let Some(s) = fold::<DisciplineCase>(events)? {
                    self.cases.insert(reference.id, s);
                }
            }
            c if c == InformationExchange::CATEGORY => {
                if let Some(s) = fold::<InformationExchange>(events)? {
                    self.exchanges.insert(reference.id, s);
                }
            }
            c if c == Appeal::CATEGORY => {
                if let Some(s) = fold::<Appeal>(events)? {
                    self.appeals.insert(reference.id, s);
                }
            }
            other => return Err(DecodeError::UnknownEventType(format!("category {other}"))),
        }
        Ok(())
    }

    /// For tests: a reference known with this state.
    pub fn with_inspection(mut self, id: Uuid, state: Inspection) -> Self {
        self.inspections.insert(id, state);
        self
    }
    /// For tests: a reference known with this state.
    pub fn with_exchange(mut self, id: Uuid, state: InformationExchange) -> Self {
        self.exchanges.insert(id, state);
        self
    }
    /// For tests: a reference known with this state.
    pub fn with_case(mut self, id: Uuid, state: DisciplineCase) -> Self {
        self.cases.insert(id, state);
        self
    }

    /// For tests: the appeal against `case_id` known with this state.
    pub fn with_appeal_of(mut self, case_id: CaseId, state: Appeal) -> Self {
        self.appeals.insert(appeal_id(case_id.as_uuid()), state);
        self
    }

    pub fn inspection(&self, id: Uuid) -> Option<&Inspection> {
        self.inspections.get(&id)
    }
    pub fn discipline_case(&self, id: Uuid) -> Option<&DisciplineCase> {
        self.cases.get(&id)
    }
    /// Every discipline case known here: those a command names, and every case in the
    /// log when the command scans the category ([`crate::Aggregate::scans`]).
    pub fn discipline_cases(&self) -> impl Iterator<Item = (Uuid, &DisciplineCase)> {
        self.cases.iter().map(|(id, case)| (*id, case))
    }
    pub fn exchange(&self, id: Uuid) -> Option<&InformationExchange> {
        self.exchanges.get(&id)
    }
    /// The appeal against case `case_id`, if this office has received it.
    pub fn appeal_of(&self, case_id: CaseId) -> Option<&Appeal> {
        self.appeals.get(&appeal_id(case_id.as_uuid()))
    }
}
