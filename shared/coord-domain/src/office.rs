//! Offices and which body belongs to which: the domain knowledge behind "an office acts
//! only as itself". An office is the provincial police Party committee's office or one
//! district-level office; every command has one acting office, derived from the body
//! it names (or, where it names none, from who runs that kind of work under Quy chế 23).
//!
//! Central bodies have no office in this system: what they decide reaches the province,
//! whose office records it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::appeal::Appeal;
use crate::discipline::{AppealDecision, DisciplineCase, DisciplineCommand};
use crate::exchange::AcknowledgeInformation;
use crate::exchange::{ExchangeCommand, InformationExchange};
use crate::inspection::{Inspection, InspectionCommand};
use crate::receipt::Receipt;
use crate::{Aggregate, Body, ParseIdError, References, UnitId};

/// An office that sends commands.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Office {
    /// Văn phòng Đảng ủy Công an tỉnh, written `province`.
    Province,
    /// The office of one district-level Party committee, written `district:<unit>`
    /// (a bare `<unit>` is read too).
    District(UnitId),
}

impl Office {
    /// A short name for files and subjects: `province` or the unit id.
    pub fn slug(&self) -> &str {
        match self {
            Office::Province => "province",
            Office::District(unit) => unit.as_str(),
        }
    }
}

impl fmt::Display for Office {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Office::Province => f.write_str("province"),
            Office::District(unit) => write!(f, "district:{unit}"),
        }
    }
}

impl FromStr for Office {
    type Err = ParseIdError;
    fn from_str(input: &str) -> Result<Self, ParseIdError> {
        if input == "province" {
            return Ok(Office::Province);
        }
        let unit = input.strip_prefix("district:").unwrap_or(input);
        unit.parse()
            .map(Office::District)
            .map_err(|_| ParseIdError {
                what: "office",
                input: input.chars().take(80).collect(),
                reason: "expected province, district:<unit> or <unit>",
            })
    }
}

impl Serialize for Office {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Office {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Body {
    /// The office that acts for this body: a district standing committee's own office;
    /// the province's office for the provincial bodies and for what central bodies decide.
    pub fn office(&self) -> Office {
        match self {
            Body::DistrictStandingCommittee(unit) => Office::District(unit.clone()),
            Body::ProvincialStandingCommittee
            | Body::ProvincialInspectionCommission
            | Body::CentralInspectionCommission
            | Body::CentralPublicSecurityStandingCommittee => Office::Province,
        }
    }
}

/// Who acts for a command, given the aggregate it addresses.
pub trait ActingOffice: Aggregate {
    /// The one office that may send `command` to this aggregate; `None` when none can
    /// yet (the aggregate a command needs does not exist: the domain refuses it).
    fn acting_office(&self, command: &Self::Command) -> Option<Office>;

    /// The same, when the acting office depends on a referenced aggregate as this
    /// office's log holds it (an appeal acts through the office of its case's unit).
    fn acting_office_given(
        &self,
        command: &Self::Command,
        _references: &References,
    ) -> Option<Office> {
        self.acting_office(command)
    }
}

impl ActingOffice for Inspection {
    /// Inspections are led by a provincial body: scheduling acts as the leading body
    /// named; starting, concluding and cancelling are the leading side's, the province.
    fn acting_office(&self, command: &InspectionCommand) -> Option<Office> {
        Some(match command {
            InspectionCommand::Schedule(c) => c.leading_body.office(),
            InspectionCommand::Start(_)
            | InspectionCommand::Conclude(_)
            | InspectionCommand::Cancel(_) => Office::Province,
        })
    }
}

impl ActingOffice for InformationExchange {
    /// The sender sends.
    fn acting_office(&self, command: &ExchangeCommand) -> Option<Office> {
        Some(match command {
            ExchangeCommand::Send(c) => c.from.office(),
        })
    }
}

impl ActingOffice for Receipt {
    /// The recipient acknowledges, through its own office.
    fn acting_office(&self, command: &AcknowledgeInformation) -> Option<Office> {
        Some(command.by.office())
    }
}

impl ActingOffice for DisciplineCase {
    /// Discipline of a district police Party organization or member is the province's
    /// work: it opens and closes cases and records decisions and resolutions (its own,
    /// or central bodies'); one naming a district body is that district's. (An appeal
    /// is not the case's command: see [`Appeal`].)
    fn acting_office(&self, command: &DisciplineCommand) -> Option<Office> {
        match command {
            DisciplineCommand::Decide(c) => Some(c.deciding_body.office()),
            DisciplineCommand::ResolveAppeal(c) => Some(c.resolving_body.office()),
            DisciplineCommand::Open(_) | DisciplineCommand::Close(_) => Some(Office::Province),
        }
    }
}

impl ActingOffice for Appeal {
    /// Known only from the case: see [`ActingOffice::acting_office_given`].
    fn acting_office(&self, _command: &AppealDecision) -> Option<Office> {
        None
    }
    /// An appeal is lodged through the office of the case's unit, as the case is found
    /// here; a case not found is left to the domain to refuse.
    fn acting_office_given(
        &self,
        command: &AppealDecision,
        references: &References,
    ) -> Option<Office> {
        references
            .discipline_case(command.case_id.as_uuid())
            .and_then(|case| case.opened.as_ref())
            .map(|o| Office::District(o.unit.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Body {
        s.parse().unwrap()
    }

    #[test]
    fn offices_read_and_write_as_strings() {
        let lx: Office = "district:long-xuyen".parse().unwrap();
        assert_eq!(lx, Office::District("long-xuyen".parse().unwrap()));
        assert_eq!("long-xuyen".parse::<Office>().unwrap(), lx);
        assert_eq!(lx.to_string(), "district:long-xuyen");
        assert_eq!(lx.slug(), "long-xuyen");
        assert_eq!("province".parse::<Office>().unwrap(), Office::Province);
        let err = "district:Long Xuyen".parse::<Office>().unwrap_err();
        assert_eq!(err.what, "office");
    }

    #[test]
    fn each_body_acts_through_its_own_office() {
        let lx: Office = "long-xuyen".parse().unwrap();
        assert_eq!(body("district_standing_committee:long-xuyen").office(), lx);
        assert_eq!(
            body("provincial_standing_committee").office(),
            Office::Province
        );
        assert_eq!(
            body("provincial_inspection_commission").office(),
            Office::Province
        );
        assert_eq!(
            body("central_inspection_commission").office(),
            Office::Province
        );
    }

    #[test]
    fn an_acknowledgement_acts_as_the_acknowledging_district() {
        let command = AcknowledgeInformation {
            exchange_id: crate::ExchangeId::from_uuid(uuid::Uuid::nil()),
            by: body("district_standing_committee:chau-doc"),
            acknowledged_on: "2024-01-02".parse().unwrap(),
        };
        assert_eq!(
            Receipt::default().acting_office(&command),
            Some(Office::District("chau-doc".parse().unwrap()))
        );
    }

    #[test]
    fn an_appeal_acts_as_the_office_of_the_cases_unit_once_the_case_exists() {
        let appeal = AppealDecision {
            case_id: crate::CaseId::from_uuid(uuid::Uuid::nil()),
            appealed_on: "2024-01-02".parse().unwrap(),
            grounds: "x".parse().unwrap(),
        };
        let unseen = References::default();
        assert_eq!(
            Appeal::default().acting_office_given(&appeal, &unseen),
            None
        );
        let case = DisciplineCase {
            opened: Some(crate::discipline::DisciplineCaseOpened {
                case_id: crate::CaseId::from_uuid(uuid::Uuid::nil()),
                term: "2020-2025".parse().unwrap(),
                unit: "thoai-son".parse().unwrap(),
                subject: serde_json::from_value(serde_json::json!({
                    "kind": "member", "member": "ĐV-1", "membership": "full", "holds_post": false
                }))
                .unwrap(),
                basis: crate::discipline::Basis::Inspection {
                    inspection_id: crate::InspectionId::from_uuid(uuid::Uuid::nil()),
                },
                violation: None,
                opened_on: "2023-01-02".parse().unwrap(),
            }),
            ..DisciplineCase::default()
        };
        let seen = References::default().with_case(uuid::Uuid::nil(), case);
        assert_eq!(
            Appeal::default().acting_office_given(&appeal, &seen),
            Some(Office::District("thoai-son".parse().unwrap()))
        );
    }
}
