//! The Party's rules as reference data (`deploy/rules/party-rules.toml`): who may decide
//! which discipline form for whom (thẩm quyền), which bodies are above which for appeals
//! (khiếu nại), and the limitation periods (thời hiệu) in each version with the date from
//! which it holds. Rules live here as data with their sources, so a changed rule is a
//! changed row, and the code that enforces them (the discipline aggregate) asks questions
//! of this table instead of carrying its own copy.
//!
//! Rules by date: every question takes the date it is asked for (the decision date), and
//! the answer is the version in force on that date.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use chrono::Months;
use serde::{Deserialize, Serialize};

use crate::Body;
use crate::Date;
use crate::discipline::DisciplineForm;

/// A body by its role, without the unit a district body belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyRole {
    ProvincialStandingCommittee,
    ProvincialInspectionCommission,
    DistrictStandingCommittee,
    CentralInspectionCommission,
    CentralPublicSecurityStandingCommittee,
}

impl BodyRole {
    pub fn of(body: &Body) -> Self {
        match body {
            Body::ProvincialStandingCommittee => BodyRole::ProvincialStandingCommittee,
            Body::ProvincialInspectionCommission => BodyRole::ProvincialInspectionCommission,
            Body::DistrictStandingCommittee(_) => BodyRole::DistrictStandingCommittee,
            Body::CentralInspectionCommission => BodyRole::CentralInspectionCommission,
            Body::CentralPublicSecurityStandingCommittee => {
                BodyRole::CentralPublicSecurityStandingCommittee
            }
        }
    }
}

/// Who is disciplined, as the authority table distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectClass {
    Organization,
    Member,
    MemberHoldingPost,
}

/// Organization or member, as the limitation table distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitationSubject {
    Organization,
    Member,
}

/// The kinds of violation for which no limitation period applies (Quy định 69-QĐ/TW);
/// `ordinary` is every other violation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCategory {
    #[default]
    Ordinary,
    /// Vi phạm về chính trị nội bộ.
    InternalPolitics,
    /// Vi phạm về an ninh, quốc phòng, đối ngoại xâm hại lợi ích quốc gia.
    SecurityDefenceForeignAffairs,
    /// Sử dụng văn bằng, chứng chỉ, chứng nhận không hợp pháp (members).
    UnlawfulDiplomas,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityRow {
    pub body: BodyRole,
    pub subject: SubjectClass,
    pub forms: Vec<DisciplineForm>,
    pub source: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub from: Option<Date>,
    #[serde(default)]
    pub until: Option<Date>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuperiorRow {
    pub body: BodyRole,
    pub above: Vec<BodyRole>,
    pub source: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    pub subject: LimitationSubject,
    pub form: DisciplineForm,
    /// Absent: no limitation period for this form.
    #[serde(default)]
    pub years: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoLimit {
    pub subject: LimitationSubject,
    pub category: ViolationCategory,
}

/// One version of the limitation rules, in force from `from` until the next version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitationRule {
    pub id: String,
    pub from: Date,
    pub source: String,
    #[serde(default)]
    pub note: Option<String>,
    pub periods: Vec<Period>,
    #[serde(default)]
    pub no_limit: Vec<NoLimit>,
}

/// The whole rulebook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rulebook {
    pub authority: Vec<AuthorityRow>,
    pub superiors: Vec<SuperiorRow>,
    pub limitation: Vec<LimitationRule>,
}

/// Why a rules file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulebookError {
    #[error("the rules file is not valid TOML for this schema: {0}")]
    Syntax(String),
    #[error("limitation versions must be listed oldest first with distinct start dates")]
    UnorderedLimitation,
    #[error("limitation version `{0}` lists a (subject, form) twice")]
    DuplicatePeriod(String),
    #[error("body {0:?} has two rows of superiors")]
    DuplicateSuperiors(BodyRole),
}

/// What the limitation rules say about one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limitation {
    /// No period applies (the form, or the kind of violation, has none).
    None { rule: String },
    /// The decision must be taken by `deadline`.
    Until {
        rule: String,
        years: u32,
        deadline: Date,
    },
    /// No rule version was in force on the date, or it does not list the form.
    Unknown,
}

/// The rules shipped with the repository.
pub const PARTY_RULES_TOML: &str = include_str!("../../../deploy/rules/party-rules.toml");

static STANDARD: LazyLock<Rulebook> = LazyLock::new(|| {
    Rulebook::from_toml_str(PARTY_RULES_TOML).expect("the shipped rules file is valid")
});

impl Rulebook {
    /// The rulebook shipped in `deploy/rules/party-rules.toml`.
    pub fn standard() -> &'static Rulebook {
        &STANDARD
    }

    /// Parses and validates a rules file.
    pub fn from_toml_str(text: &str) -> Result<Self, RulebookError> {
        let book: Rulebook =
            toml::from_str(text).map_err(|e| RulebookError::Syntax(e.to_string()))?;
        if book.limitation.windows(2).any(|w| w[0].from >= w[1].from) {
            return Err(RulebookError::UnorderedLimitation);
        }
        for rule in &book.limitation {
            let keys: BTreeSet<_> = rule
                .periods
                .iter()
                .map(|p| (p.subject as u8, p.form))
                .collect();
            if keys.len() != rule.periods.len() {
                return Err(RulebookError::DuplicatePeriod(rule.id.clone()));
            }
        }
        let bodies: BTreeSet<_> = book.superiors.iter().map(|r| r.body).collect();
        if bodies.len() != book.superiors.len() {
            let dup = book
                .superiors
                .iter()
                .find(|r| book.superiors.iter().filter(|s| s.body == r.body).count() > 1)
                .map(|r| r.body)
                .expect("a duplicate exists");
            return Err(RulebookError::DuplicateSuperiors(dup));
        }
        Ok(book)
    }

    /// May `body` decide `form` for `subject` on `date`? Returns the row's source when yes.
    pub fn authorizes(
        &self,
        body: BodyRole,
        subject: SubjectClass,
        form: DisciplineForm,
        date: Date,
    ) -> Option<&str> {
        self.authority
            .iter()
            .filter(|r| r.body == body && r.subject == subject)
            .filter(|r| r.from.is_none_or(|f| f <= date) && r.until.is_none_or(|u| date <= u))
            .find(|r| r.forms.contains(&form))
            .map(|r| r.source.as_str())
    }

    /// Is `candidate` above `body` (directly or through other superiors)?
    pub fn is_superior(&self, candidate: BodyRole, body: BodyRole) -> bool {
        let mut seen = BTreeSet::new();
        let mut frontier = vec![body];
        while let Some(b) = frontier.pop() {
            for above in self
                .superiors
                .iter()
                .filter(|r| r.body == b)
                .flat_map(|r| &r.above)
            {
                if *above == candidate {
                    return true;
                }
                if seen.insert(*above) {
                    frontier.push(*above);
                }
            }
        }
        false
    }

    /// The limitation version in force on `date`: the latest one that started by then.
    pub fn limitation_on(&self, date: Date) -> Option<&LimitationRule> {
        self.limitation.iter().rev().find(|r| r.from <= date)
    }

    /// The limitation period for a decision of `form` about `subject`, taken on
    /// `decided_on`, for a violation of `category` counted from `counted_from`.
    pub fn limitation(
        &self,
        subject: LimitationSubject,
        form: DisciplineForm,
        category: ViolationCategory,
        counted_from: Date,
        decided_on: Date,
    ) -> Limitation {
        let Some(rule) = self.limitation_on(decided_on) else {
            return Limitation::Unknown;
        };
        let exempt = rule
            .no_limit
            .iter()
            .any(|n| n.subject == subject && n.category == category);
        let Some(period) = rule
            .periods
            .iter()
            .find(|p| p.subject == subject && p.form == form)
        else {
            return Limitation::Unknown;
        };
        match (exempt, period.years) {
            (true, _) | (false, None) => Limitation::None {
                rule: rule.id.clone(),
            },
            (false, Some(years)) => Limitation::Until {
                rule: rule.id.clone(),
                years,
                deadline: counted_from
                    .checked_add_months(Months::new(12 * years))
                    .unwrap_or(Date::MAX),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::d;
    use DisciplineForm::*;

    fn book() -> &'static Rulebook {
        Rulebook::standard()
    }

    #[test]
    fn the_shipped_rules_parse_and_every_row_names_its_source() {
        let b = book();
        assert!(b.authority.iter().all(|r| !r.source.trim().is_empty()));
        assert!(b.superiors.iter().all(|r| !r.source.trim().is_empty()));
        assert!(b.limitation.iter().all(|r| !r.source.trim().is_empty()));
        assert_eq!(b.limitation.len(), 3);
    }

    // Điều lệ Đảng art. 36; Quy định 22-QĐ/TW art. 11: a district standing committee
    // does not expel or remove a post holder managed by the provincial police committee.
    #[test]
    fn district_standing_committee_authority_qd22_art11() {
        let on = d("2023-01-01");
        let district = BodyRole::DistrictStandingCommittee;
        assert!(
            book()
                .authorizes(district, SubjectClass::Member, Expulsion, on)
                .is_some()
        );
        assert!(
            book()
                .authorizes(district, SubjectClass::MemberHoldingPost, Warning, on)
                .is_some()
        );
        assert!(
            book()
                .authorizes(district, SubjectClass::MemberHoldingPost, Expulsion, on)
                .is_none()
        );
        assert!(
            book()
                .authorizes(
                    district,
                    SubjectClass::MemberHoldingPost,
                    RemovalFromPost,
                    on
                )
                .is_none()
        );
        assert!(
            book()
                .authorizes(district, SubjectClass::Organization, Dissolution, on)
                .is_none()
        );
    }

    // Quy định 22-QĐ/TW art. 12: inspection commissions reprimand or warn organizations,
    // they do not dissolve them.
    #[test]
    fn inspection_commission_does_not_dissolve_qd22_art12() {
        let on = d("2023-01-01");
        let c = BodyRole::ProvincialInspectionCommission;
        assert!(
            book()
                .authorizes(c, SubjectClass::Organization, Warning, on)
                .is_some()
        );
        assert!(
            book()
                .authorizes(c, SubjectClass::Organization, Dissolution, on)
                .is_none()
        );
        assert!(
            book()
                .authorizes(
                    BodyRole::ProvincialStandingCommittee,
                    SubjectClass::Organization,
                    Dissolution,
                    on
                )
                .is_some()
        );
    }

    // Quy định 22-QĐ/TW art. 22: appeals go to a body above, transitively; never sideways
    // or down.
    #[test]
    fn superiors_are_transitive_and_never_downwards_qd22_art22() {
        use BodyRole::*;
        let b = book();
        assert!(b.is_superior(ProvincialStandingCommittee, ProvincialInspectionCommission));
        assert!(b.is_superior(CentralInspectionCommission, DistrictStandingCommittee));
        assert!(b.is_superior(
            CentralPublicSecurityStandingCommittee,
            DistrictStandingCommittee
        ));
        assert!(!b.is_superior(ProvincialInspectionCommission, ProvincialStandingCommittee));
        assert!(!b.is_superior(DistrictStandingCommittee, ProvincialStandingCommittee));
        assert!(!b.is_superior(ProvincialStandingCommittee, ProvincialStandingCommittee));
        assert!(!b.is_superior(
            CentralPublicSecurityStandingCommittee,
            CentralInspectionCommission
        ));
    }

    // Quy định 69-QĐ/TW (thời hiệu): 5 years reprimand, 10 warning/removal, none for
    // expulsion or dissolution, none for internal politics.
    #[test]
    fn limitation_periods_qd69() {
        let b = book();
        let from = d("2016-03-01");
        let on = d("2023-01-01");
        assert_eq!(
            b.limitation(
                LimitationSubject::Member,
                Reprimand,
                ViolationCategory::Ordinary,
                from,
                on
            ),
            Limitation::Until {
                rule: "qd69-2022".into(),
                years: 5,
                deadline: d("2021-03-01")
            }
        );
        assert!(matches!(
            b.limitation(
                LimitationSubject::Organization,
                Warning,
                ViolationCategory::Ordinary,
                from,
                on
            ),
            Limitation::Until { years: 10, .. }
        ));
        assert!(matches!(
            b.limitation(
                LimitationSubject::Member,
                Expulsion,
                ViolationCategory::Ordinary,
                from,
                on
            ),
            Limitation::None { .. }
        ));
        assert!(matches!(
            b.limitation(
                LimitationSubject::Member,
                Reprimand,
                ViolationCategory::InternalPolitics,
                from,
                on
            ),
            Limitation::None { .. }
        ));
        // Unlawful diplomas are an exception for members only.
        assert!(matches!(
            b.limitation(
                LimitationSubject::Organization,
                Reprimand,
                ViolationCategory::UnlawfulDiplomas,
                from,
                on
            ),
            Limitation::Until { .. }
        ));
    }

    // Rules by date: the version in force on the decision date applies (Quy định 69 of
    // 2022-07-06; Quy định 264 of 2025-02-14).
    #[test]
    fn the_version_in_force_on_the_decision_date_applies() {
        let b = book();
        assert_eq!(b.limitation_on(d("2022-07-05")).unwrap().id, "qd102-qd07");
        assert_eq!(b.limitation_on(d("2022-07-06")).unwrap().id, "qd69-2022");
        assert_eq!(b.limitation_on(d("2025-02-13")).unwrap().id, "qd69-2022");
        assert_eq!(b.limitation_on(d("2025-02-14")).unwrap().id, "qd264-2025");
        assert!(b.limitation_on(d("2010-01-01")).is_none());
        // A version that changes a period changes the answer from its date on.
        let text = "authority = []\nsuperiors = []\n\
            [[limitation]]\nid='old'\nfrom='2020-01-01'\nsource='s'\nperiods=[{subject='member', form='reprimand', years=5}]\n\
            [[limitation]]\nid='new'\nfrom='2025-02-14'\nsource='s'\nperiods=[{subject='member', form='reprimand', years=7}]\n";
        let custom = Rulebook::from_toml_str(text).unwrap();
        let at = |on| {
            custom.limitation(
                LimitationSubject::Member,
                Reprimand,
                ViolationCategory::Ordinary,
                d("2019-01-01"),
                d(on),
            )
        };
        assert!(matches!(
            at("2025-02-13"),
            Limitation::Until { years: 5, .. }
        ));
        assert!(matches!(
            at("2025-02-14"),
            Limitation::Until { years: 7, .. }
        ));
    }

    // Rules by date for authority too: a row holds only between its `from` and `until`.
    #[test]
    fn an_authority_row_holds_only_in_its_dates() {
        let text = "superiors = []\nlimitation = []\n\
            [[authority]]\nbody='district_standing_committee'\nsubject='member'\n\
            forms=['reprimand']\nsource='s'\nuntil='2025-06-30'\n";
        let custom = Rulebook::from_toml_str(text).unwrap();
        let at = |on| {
            custom.authorizes(
                BodyRole::DistrictStandingCommittee,
                SubjectClass::Member,
                Reprimand,
                d(on),
            )
        };
        assert_eq!(at("2025-06-30"), Some("s"));
        assert_eq!(at("2025-07-01"), None);
    }

    #[test]
    fn bad_rule_files_are_refused() {
        let unordered = "authority = []\nsuperiors = []\n\
            [[limitation]]\nid='b'\nfrom='2025-01-01'\nsource='s'\nperiods=[]\n\
            [[limitation]]\nid='a'\nfrom='2020-01-01'\nsource='s'\nperiods=[]\n";
        assert_eq!(
            Rulebook::from_toml_str(unordered),
            Err(RulebookError::UnorderedLimitation)
        );
        assert!(matches!(
            Rulebook::from_toml_str("authority = 1"),
            Err(RulebookError::Syntax(_))
        ));
    }
}
