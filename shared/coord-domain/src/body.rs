//! The bodies that act in coordination (who schedules, who is told, who decides), and
//! the Party organizations that are inspected.
//!
//! A body travels as one string, e.g. `provincial_standing_committee` or
//! `district_standing_committee:long-xuyen`, so it reads well in JSON, URLs and CLI flags.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Date, ParseIdError, Province, UnitId};

/// A body that acts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Body {
    /// Ban Thường vụ Đảng ủy Công an tỉnh.
    ProvincialStandingCommittee,
    /// Ủy ban Kiểm tra Đảng ủy Công an tỉnh.
    ProvincialInspectionCommission,
    /// Ban Thường vụ huyện ủy / thị ủy / thành ủy of one unit.
    DistrictStandingCommittee(UnitId),
    /// Ủy ban Kiểm tra Trung ương.
    CentralInspectionCommission,
    /// Ban Thường vụ Đảng ủy Công an Trung ương.
    CentralPublicSecurityStandingCommittee,
    /// Ban Bí thư (Trung ương Đảng): here only the last level of an appeal against
    /// expulsion (Quy định 22-QĐ/TW art. 22; see `deploy/rules/party-rules.toml`).
    Secretariat,
}

impl Body {
    /// True for the two bodies of the provincial police Party committee.
    pub fn is_provincial(&self) -> bool {
        matches!(
            self,
            Body::ProvincialStandingCommittee | Body::ProvincialInspectionCommission
        )
    }
    /// True for the two central bodies whose conclusions trigger discipline.
    pub fn is_central(&self) -> bool {
        matches!(
            self,
            Body::CentralInspectionCommission | Body::CentralPublicSecurityStandingCommittee
        )
    }
    /// The unit, for a district standing committee.
    pub fn unit(&self) -> Option<&UnitId> {
        match self {
            Body::DistrictStandingCommittee(u) => Some(u),
            _ => None,
        }
    }

    /// The Vietnamese name; a district body is named after its unit's type on `date`.
    pub fn label_vi(&self, province: &Province, date: Option<Date>) -> String {
        match self {
            Body::ProvincialStandingCommittee => "Ban Thường vụ Đảng ủy Công an tỉnh".into(),
            Body::ProvincialInspectionCommission => "Ủy ban Kiểm tra Đảng ủy Công an tỉnh".into(),
            Body::CentralInspectionCommission => "Ủy ban Kiểm tra Trung ương".into(),
            Body::CentralPublicSecurityStandingCommittee => {
                "Ban Thường vụ Đảng ủy Công an Trung ương".into()
            }
            Body::Secretariat => "Ban Bí thư".into(),
            Body::DistrictStandingCommittee(id) => match province.unit(id) {
                Some(unit) => unit.standing_committee_vi(unit.kind_at(date)),
                None => format!("Ban Thường vụ cấp ủy {id}"),
            },
        }
    }
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::ProvincialStandingCommittee => f.write_str("provincial_standing_committee"),
            Body::ProvincialInspectionCommission => f.write_str("provincial_inspection_commission"),
            Body::DistrictStandingCommittee(u) => write!(f, "district_standing_committee:{u}"),
            Body::CentralInspectionCommission => f.write_str("central_inspection_commission"),
            Body::CentralPublicSecurityStandingCommittee => {
                f.write_str("central_public_security_standing_committee")
            }
            Body::Secretariat => f.write_str("secretariat"),
        }
    }
}

impl FromStr for Body {
    type Err = ParseIdError;
    fn from_str(input: &str) -> Result<Self, ParseIdError> {
        Ok(match input {
            "provincial_standing_committee" => Body::ProvincialStandingCommittee,
            "provincial_inspection_commission" => Body::ProvincialInspectionCommission,
            "central_inspection_commission" => Body::CentralInspectionCommission,
            "central_public_security_standing_committee" => {
                Body::CentralPublicSecurityStandingCommittee
            }
            "secretariat" => Body::Secretariat,
            other => match other.strip_prefix("district_standing_committee:") {
                Some(unit) => Body::DistrictStandingCommittee(unit.parse()?),
                None => {
                    return Err(ParseIdError {
                        what: "body",
                        input: input.chars().take(80).collect(),
                        reason: "expected provincial_standing_committee, provincial_inspection_commission, \
                                 district_standing_committee:<unit>, central_inspection_commission, \
                                 central_public_security_standing_committee or secretariat",
                    });
                }
            },
        })
    }
}

crate::ids::string_schema!(
    Body,
    None,
    "provincial_standing_committee | provincial_inspection_commission | district_standing_committee:<unit> | central_inspection_commission | central_public_security_standing_committee | secretariat"
);
crate::ids::string_schema!(PoliceOrganization, None, "district_police:<unit>");
// The event schemas keep the description they were published with: `secretariat` (only
// ever a `resolving_body`) is a new value of the same string, not a new shape
// (ANALYTICS.md, "Schemas and versions").
crate::ids::json_string_schema!(
    Body,
    None,
    "provincial_standing_committee | provincial_inspection_commission | district_standing_committee:<unit> | central_inspection_commission | central_public_security_standing_committee"
);
crate::ids::json_string_schema!(PoliceOrganization, None, "district_police:<unit>");

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The Party organization inspected or supervised: a district-level police Party
/// committee (Đảng bộ Công an huyện / thị xã / thành phố), written `district_police:<unit>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoliceOrganization(pub UnitId);

impl fmt::Display for PoliceOrganization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "district_police:{}", self.0)
    }
}

impl FromStr for PoliceOrganization {
    type Err = ParseIdError;
    fn from_str(input: &str) -> Result<Self, ParseIdError> {
        match input.strip_prefix("district_police:") {
            Some(unit) => Ok(Self(unit.parse()?)),
            None => Err(ParseIdError {
                what: "police organization",
                input: input.chars().take(80).collect(),
                reason: "expected district_police:<unit>",
            }),
        }
    }
}

impl Serialize for PoliceOrganization {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PoliceOrganization {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_as_strings() {
        for s in [
            "provincial_standing_committee",
            "provincial_inspection_commission",
            "district_standing_committee:chau-doc",
            "central_inspection_commission",
            "central_public_security_standing_committee",
            "secretariat",
        ] {
            let body: Body = s.parse().unwrap();
            assert_eq!(body.to_string(), s);
            let json = serde_json::to_string(&body).unwrap();
            assert_eq!(serde_json::from_str::<Body>(&json).unwrap(), body);
        }
        assert!("district_standing_committee:".parse::<Body>().is_err());
        assert!("mayor".parse::<Body>().is_err());
    }

    #[test]
    fn district_body_label_follows_the_unit_type_on_the_date() {
        let p = Province::from_toml_str(crate::province::AN_GIANG_TOML).unwrap();
        let b: Body = "district_standing_committee:tinh-bien".parse().unwrap();
        assert_eq!(
            b.label_vi(&p, Some("2022-07-01".parse().unwrap())),
            "Ban Thường vụ Huyện ủy Tịnh Biên"
        );
        assert_eq!(
            b.label_vi(&p, Some("2024-07-01".parse().unwrap())),
            "Ban Thường vụ Thị ủy Tịnh Biên"
        );
    }
}
