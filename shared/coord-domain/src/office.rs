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

/// Every spelling of an office the system uses, derived here and nowhere else:
///
/// | what | province | a district office |
/// |---|---|---|
/// | canonical (`Display`, tokens, envelopes) | `province` | `district:long-xuyen` |
/// | [`Office::slug`]: log subject token, file and folder names | `province` | `long-xuyen` |
/// | [`Office::audit_token`]: audit subject token | `province` | `district_long-xuyen` |
/// | [`Office::jetstream_domain`] of the site it runs | `hub` | `long-xuyen` |
/// | [`Office::leaf_user`] on the hub | (none) | `leaf-long-xuyen` |
/// | [`Office::checkpoint_origin`] | `coord/an-giang/province` | `coord/an-giang/district:long-xuyen` |
/// | [`Office::log_prefix`] | `coord.log.province` | `coord.log.long-xuyen` |
impl Office {
    /// A short name for log subjects, files and folders: `province` or the unit id.
    pub fn slug(&self) -> &str {
        match self {
            Office::Province => "province",
            Office::District(unit) => unit.as_str(),
        }
    }

    /// The office whose log subject token is `slug` (`province` or a unit id).
    pub fn from_slug(slug: &str) -> Result<Self, ParseIdError> {
        if slug.starts_with("district:") {
            return Err(ParseIdError {
                what: "office slug",
                input: slug.chars().take(80).collect(),
                reason: "expected province or <unit>",
            });
        }
        slug.parse()
    }

    /// The subject token of its auditor's subjects: `province`, `district_<unit>`.
    pub fn audit_token(&self) -> String {
        audit_token(&self.to_string())
    }

    /// The JetStream domain of the site this office runs as its own: `hub` for the
    /// province, the unit id for a district office.
    pub fn jetstream_domain(&self) -> &str {
        match self {
            Office::Province => "hub",
            Office::District(unit) => unit.as_str(),
        }
    }

    /// The user a district office's leaf connection authenticates as on the hub.
    pub fn leaf_user(&self) -> String {
        format!("leaf-{}", self.slug())
    }

    /// The origin line of its audit log's checkpoints (and its key's name) in
    /// `province` (the province file's id, e.g. `an-giang`).
    pub fn checkpoint_origin(&self, province: &str) -> String {
        checkpoint_origin(province, &self.to_string())
    }

    /// Where its events are in the log: `coord.log.<slug>.<category>.<id>`.
    pub fn log_prefix(&self) -> String {
        format!("{LOG_SUBJECT_ROOT}.{}", self.slug())
    }
}

/// The root of every log subject.
pub const LOG_SUBJECT_ROOT: &str = "coord.log";

/// The origin line of the checkpoints of the log of `office` (written canonically) in
/// `province`: `coord/<province>/<office>`.
pub fn checkpoint_origin(province: &str, office: &str) -> String {
    format!("coord/{province}/{office}")
}

/// The audit subject token of an office written canonically (`district:long-xuyen` →
/// `district_long-xuyen`); any other text maps its unsafe characters to `_`.
pub fn audit_token(office: &str) -> String {
    office
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Which site (server and services) hosts which office. A site is named by the office
/// that runs it: the hub by the province, a district office's own site by its office.
/// The hub hosts the province and every unit without a site of its own; a district's
/// own site hosts that district only. With no district sites (single-server mode) the
/// one site hosts every office.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sites {
    own_sites: std::collections::BTreeSet<UnitId>,
}

impl Sites {
    /// One site for everyone.
    pub fn single() -> Self {
        Self::default()
    }

    /// The hub plus one site for each of `units`.
    pub fn with_district_sites(units: impl IntoIterator<Item = UnitId>) -> Self {
        Self {
            own_sites: units.into_iter().collect(),
        }
    }

    /// Parses a comma-separated list of units with their own site (empty: single site).
    pub fn parse(list: &str) -> Result<Self, ParseIdError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Office::from_slug(s.strip_prefix("district:").unwrap_or(s)))
            .map(|o| match o? {
                Office::District(unit) => Ok(unit),
                Office::Province => Err(ParseIdError {
                    what: "district site",
                    input: "province".into(),
                    reason: "the province's site is the hub, always there",
                }),
            })
            .collect::<Result<Vec<UnitId>, _>>()
            .map(Self::with_district_sites)
    }

    /// The units with a site of their own.
    pub fn district_sites(&self) -> impl Iterator<Item = &UnitId> {
        self.own_sites.iter()
    }

    /// The site that hosts `office`.
    pub fn site_of(&self, office: &Office) -> Office {
        match office {
            Office::District(unit) if self.own_sites.contains(unit) => office.clone(),
            _ => Office::Province,
        }
    }

    /// Does site `site` host `office`?
    pub fn hosts(&self, site: &Office, office: &Office) -> bool {
        &self.site_of(office) == site
    }

    /// The offices `site` hosts among `units` (the province's units): the province and
    /// the units without their own site at the hub, the one unit at its own site.
    pub fn hosted<'a>(
        &'a self,
        site: &'a Office,
        units: impl IntoIterator<Item = &'a UnitId> + 'a,
    ) -> impl Iterator<Item = Office> + 'a {
        std::iter::once(Office::Province)
            .chain(units.into_iter().map(|u| Office::District(u.clone())))
            .filter(move |o| self.hosts(site, o))
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
            | Body::CentralPublicSecurityStandingCommittee
            | Body::Secretariat => Office::Province,
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
    fn every_spelling_of_an_office_comes_from_the_one_type() {
        let lx: Office = "district:long-xuyen".parse().unwrap();
        assert_eq!(lx.audit_token(), "district_long-xuyen");
        assert_eq!(lx.jetstream_domain(), "long-xuyen");
        assert_eq!(lx.leaf_user(), "leaf-long-xuyen");
        assert_eq!(
            lx.checkpoint_origin("an-giang"),
            "coord/an-giang/district:long-xuyen"
        );
        assert_eq!(lx.log_prefix(), "coord.log.long-xuyen");
        assert_eq!(Office::from_slug("long-xuyen").unwrap(), lx);
        assert!(Office::from_slug("district:long-xuyen").is_err());
        assert_eq!(Office::Province.audit_token(), "province");
        assert_eq!(Office::Province.jetstream_domain(), "hub");
        assert_eq!(Office::Province.log_prefix(), "coord.log.province");
    }

    #[test]
    fn the_hub_hosts_the_province_and_every_unit_without_a_site_of_its_own() {
        let lx: Office = "long-xuyen".parse().unwrap();
        let ap: Office = "an-phu".parse().unwrap();
        let sites = Sites::parse("long-xuyen, district:chau-doc").unwrap();
        assert_eq!(sites.site_of(&lx), lx);
        assert_eq!(sites.site_of(&ap), Office::Province);
        assert!(sites.hosts(&Office::Province, &Office::Province));
        assert!(sites.hosts(&Office::Province, &ap));
        assert!(!sites.hosts(&Office::Province, &lx));
        assert!(sites.hosts(&lx, &lx));
        assert!(!sites.hosts(&lx, &ap));
        let units: Vec<UnitId> = ["long-xuyen", "an-phu"].map(|u| u.parse().unwrap()).into();
        let at_hub: Vec<Office> = sites.hosted(&Office::Province, &units).collect();
        assert_eq!(at_hub, vec![Office::Province, ap.clone()]);
        let single = Sites::parse("").unwrap();
        assert!(single.hosts(&Office::Province, &lx));
        assert!(Sites::parse("province").is_err());
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
