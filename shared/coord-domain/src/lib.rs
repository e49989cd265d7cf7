//! The coordination domain: what the Provincial Police Party Committee and the
//! district-level Party committees do together, and the rules they must keep.
//!
//! This crate is pure. It does no I/O, spawns nothing, never reads a clock and has no
//! async code: every date it needs comes in a command, every fact it knows comes from
//! the events it is given and from the [`Province`] reference data passed in a
//! [`Context`]. That is what makes every rule testable as given / when / then.
//!
//! The three aggregates are [`inspection::Inspection`] (kiểm tra and giám sát),
//! [`exchange::InformationExchange`] (trao đổi thông tin) and
//! [`discipline::DisciplineCase`] (kỷ luật Đảng, Quy định 69-QĐ/TW); an exchange's
//! acknowledgement is a [`receipt::Receipt`], written by the receiving office, and an
//! appeal against a case's decision an [`appeal::Appeal`], written by the case unit's office.

pub mod aggregate;
pub mod appeal;
pub mod body;
pub mod date;
pub mod discipline;
pub mod exchange;
pub mod ids;
pub mod inspection;
pub mod office;
pub mod province;
pub mod receipt;
pub mod redecide;
pub mod references;
pub mod rulebook;
mod rules;
#[cfg(test)]
mod testing;

pub use aggregate::{Aggregate, Context, DecodeError, DomainEvent, Rejection, RejectionKind};
pub use body::{Body, PoliceOrganization};
pub use ids::{
    CaseId, ExchangeId, InspectionId, MemberRef, OrganizationName, ParseIdError, Reference, TermId,
    Text, UnitId,
};
pub use office::{ActingOffice, LOG_SUBJECT_ROOT, Office, Sites};
pub use province::{Province, ProvinceError, Term, Unit, UnitKind};
pub use redecide::Redecide;
pub use references::{References, StreamRef};
pub use rulebook::Rulebook;
pub use rules::ReferenceError;

/// Business dates are calendar dates (the date on a decision, a notice, a conclusion).
pub type Date = chrono::NaiveDate;
