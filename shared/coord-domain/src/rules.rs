//! Checks against the reference data that every aggregate shares: the unit (or its
//! police Party committee, or a district body) exists on the date, the term exists and
//! the date falls inside it.

use crate::{Body, Date, Province, TermId, UnitId};

/// A command names reference data that does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("unit `{0}` is not a district-level unit of this province")]
    UnknownUnit(UnitId),
    #[error("unit `{unit}` did not exist on {date}")]
    UnitNotInExistence { unit: UnitId, date: Date },
    #[error("the police Party committee of unit `{unit}` did not exist on {date}")]
    PoliceCommitteeNotInExistence { unit: UnitId, date: Date },
    #[error("term `{0}` is not configured for this province")]
    UnknownTerm(TermId),
    #[error("{date} is outside term {term}")]
    OutsideTerm { date: Date, term: TermId },
}

impl ReferenceError {
    pub fn code(&self) -> &'static str {
        match self {
            ReferenceError::UnknownUnit(_) => "unknown_unit",
            ReferenceError::UnitNotInExistence { .. }
            | ReferenceError::PoliceCommitteeNotInExistence { .. } => "unit_not_in_existence",
            ReferenceError::UnknownTerm(_) => "unknown_term",
            ReferenceError::OutsideTerm { .. } => "outside_term",
        }
    }
}

/// The unit exists in the province on every one of `dates`.
pub(crate) fn unit_exists(
    province: &Province,
    unit: &UnitId,
    dates: &[Date],
) -> Result<(), ReferenceError> {
    let found = province
        .unit(unit)
        .ok_or_else(|| ReferenceError::UnknownUnit(unit.clone()))?;
    for &date in dates {
        if found.kind_on(date).is_none() {
            return Err(ReferenceError::UnitNotInExistence {
                unit: unit.clone(),
                date,
            });
        }
    }
    Ok(())
}

/// The unit's police Party committee existed on every one of `dates` (it ended with the
/// district police in the 2025 reorganization).
pub(crate) fn police_committee_exists(
    province: &Province,
    unit: &UnitId,
    dates: &[Date],
) -> Result<(), ReferenceError> {
    unit_exists(province, unit, dates)?;
    let found = province.unit(unit).expect("checked above");
    match dates.iter().find(|&&d| !found.police_committee_on(d)) {
        Some(&date) => Err(ReferenceError::PoliceCommitteeNotInExistence {
            unit: unit.clone(),
            date,
        }),
        None => Ok(()),
    }
}

/// A district body acts only while its unit exists; other bodies always exist here.
pub(crate) fn body_exists(
    province: &Province,
    body: &Body,
    date: Date,
) -> Result<(), ReferenceError> {
    match body.unit() {
        Some(unit) => unit_exists(province, unit, &[date]),
        None => Ok(()),
    }
}

/// The term exists and contains every one of `dates`.
pub(crate) fn within_term(
    province: &Province,
    term: TermId,
    dates: &[Date],
) -> Result<(), ReferenceError> {
    let found = province
        .term(term)
        .ok_or(ReferenceError::UnknownTerm(term))?;
    for &date in dates {
        if !found.contains(date) {
            return Err(ReferenceError::OutsideTerm { date, term });
        }
    }
    Ok(())
}
