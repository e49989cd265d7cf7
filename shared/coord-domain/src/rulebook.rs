//! The Party's rules as reference data (`deploy/rules/party-rules.toml`): who may decide
//! which discipline form for whom (thẩm quyền), which bodies are above which for appeals
//! (khiếu nại), and the limitation periods (thời hiệu) in each version with the date from
//! which it holds. Rules live here as data with their sources, so a changed rule is a
//! changed row, and the code that enforces them (the discipline aggregate) asks questions
//! of this table instead of carrying its own copy.
//!
//! Rules by date: every question takes the date it is asked for (the decision date, or
//! the resolution date for an appeal), and the answer comes from the rows in force on that
//! date: an authority or superiors row holds from its `from` to its `until` (both
//! included, either open), a limitation version from its `from` until the next one.

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
    Secretariat,
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
            Body::Secretariat => BodyRole::Secretariat,
        }
    }
}

/// Does a row dated `from`..=`until` (either open) hold on `date`?
fn holds_on(from: Option<Date>, until: Option<Date>, date: Date) -> bool {
    from.is_none_or(|f| f <= date) && until.is_none_or(|u| date <= u)
}

/// Do two date ranges (either end open) share a day?
fn dates_overlap(a: (Option<Date>, Option<Date>), b: (Option<Date>, Option<Date>)) -> bool {
    let starts_before_end = |from: Option<Date>, until: Option<Date>| match (from, until) {
        (Some(f), Some(u)) => f <= u,
        _ => true,
    };
    starts_before_end(a.0, b.1) && starts_before_end(b.0, a.1)
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

impl ViolationCategory {
    pub fn label_vi(self) -> &'static str {
        match self {
            ViolationCategory::Ordinary => "vi phạm khác (có thời hiệu xử lý)",
            ViolationCategory::InternalPolitics => "vi phạm về chính trị nội bộ",
            ViolationCategory::SecurityDefenceForeignAffairs => {
                "vi phạm về an ninh, quốc phòng, đối ngoại xâm hại lợi ích quốc gia"
            }
            ViolationCategory::UnlawfulDiplomas => {
                "sử dụng văn bằng, chứng chỉ, chứng nhận không hợp pháp"
            }
        }
    }
}

/// `body` may decide `forms` for `subject`, from `from` to `until` (both included).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityRow {
    pub body: BodyRole,
    pub subject: SubjectClass,
    pub forms: Vec<DisciplineForm>,
    pub source: String,
    #[serde(default)]
    pub note: Option<String>,
    /// Absent: held before anything this system records.
    #[serde(default)]
    pub from: Option<Date>,
    /// Absent: still in force.
    #[serde(default)]
    pub until: Option<Date>,
}

/// An appeal against a decision of `body` may be resolved by a body in `above` (and, by
/// transitivity, by a body above those), from `from` to `until` (both included); only for
/// appeals against `forms`, when given.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuperiorRow {
    pub body: BodyRole,
    pub above: Vec<BodyRole>,
    /// Absent: appeals against every form.
    #[serde(default)]
    pub forms: Option<Vec<DisciplineForm>>,
    pub source: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub from: Option<Date>,
    #[serde(default)]
    pub until: Option<Date>,
}

impl SuperiorRow {
    fn covers(&self, form: DisciplineForm) -> bool {
        self.forms
            .as_ref()
            .is_none_or(|forms| forms.contains(&form))
    }
    fn shares_a_form_with(&self, other: &SuperiorRow) -> bool {
        match (&self.forms, &other.forms) {
            (Some(a), Some(b)) => a.iter().any(|f| b.contains(f)),
            _ => true,
        }
    }
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

/// To which date the period of a form that an appeal's resolution puts in place of the
/// decided one is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountedTo {
    /// The resolution's own date: it is a decision of its own.
    #[default]
    Resolution,
    /// The date of the decision under appeal: the count is not started again when a
    /// superior decides the form again (upholds or changes it).
    Decision,
}

/// What a version says about a form changed on appeal, with its source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangedOnAppeal {
    pub counted_to: CountedTo,
    pub source: String,
    #[serde(default)]
    pub note: Option<String>,
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
    /// A new violation by the same organization or member, committed while the period
    /// of an earlier one runs, starts that period again from the new violation.
    #[serde(default)]
    pub new_violation_restarts: bool,
    /// Absent: a changed form is counted to the resolution's date.
    #[serde(default)]
    pub changed_on_appeal: Option<ChangedOnAppeal>,
}

impl LimitationRule {
    /// Where a changed form's period is counted to, under this version.
    pub fn changed_form_counted_to(&self) -> CountedTo {
        self.changed_on_appeal
            .as_ref()
            .map_or(CountedTo::default(), |c| c.counted_to)
    }
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
    #[error("body {0:?} has two rows of superiors in force on one day for one form")]
    OverlappingSuperiors(BodyRole),
    #[error("body {0:?} has two authority rows for {1:?} in force on one day")]
    OverlappingAuthority(BodyRole, SubjectClass),
    #[error("a row of body {0:?} ends before it starts")]
    UntilBeforeFrom(BodyRole),
}

/// What the limitation rules say about one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limitation {
    /// No period applies (the form, or the kind of violation, has none).
    None { rule: String },
    /// The decision must be taken by `deadline`: `years` from `counted_from` (the
    /// violation, its end, or a new violation that started the count again).
    Until {
        rule: String,
        years: u32,
        counted_from: Date,
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
        book.check_limitation()?;
        book.check_authority()?;
        book.check_superiors()?;
        Ok(book)
    }

    fn check_limitation(&self) -> Result<(), RulebookError> {
        if self.limitation.windows(2).any(|w| w[0].from >= w[1].from) {
            return Err(RulebookError::UnorderedLimitation);
        }
        for rule in &self.limitation {
            let keys: BTreeSet<_> = rule
                .periods
                .iter()
                .map(|p| (p.subject as u8, p.form))
                .collect();
            if keys.len() != rule.periods.len() {
                return Err(RulebookError::DuplicatePeriod(rule.id.clone()));
            }
        }
        Ok(())
    }

    /// Every row starts before it ends, and one body has one row per subject on a day.
    fn check_authority(&self) -> Result<(), RulebookError> {
        for (i, a) in self.authority.iter().enumerate() {
            if !dates_overlap((a.from, a.until), (a.from, a.until)) {
                return Err(RulebookError::UntilBeforeFrom(a.body));
            }
            let clash = self.authority[i + 1..].iter().any(|b| {
                (a.body, a.subject) == (b.body, b.subject)
                    && dates_overlap((a.from, a.until), (b.from, b.until))
            });
            if clash {
                return Err(RulebookError::OverlappingAuthority(a.body, a.subject));
            }
        }
        Ok(())
    }

    /// Every row starts before it ends, and one body has one row per form on a day.
    fn check_superiors(&self) -> Result<(), RulebookError> {
        for (i, a) in self.superiors.iter().enumerate() {
            if !dates_overlap((a.from, a.until), (a.from, a.until)) {
                return Err(RulebookError::UntilBeforeFrom(a.body));
            }
            let clash = self.superiors[i + 1..].iter().any(|b| {
                a.body == b.body
                    && a.shares_a_form_with(b)
                    && dates_overlap((a.from, a.until), (b.from, b.until))
            });
            if clash {
                return Err(RulebookError::OverlappingSuperiors(a.body));
            }
        }
        Ok(())
    }

    /// May `body` decide `form` for `subject` on `date`? Returns the source of the row in
    /// force on that date that says so.
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
            .filter(|r| holds_on(r.from, r.until, date))
            .find(|r| r.forms.contains(&form))
            .map(|r| r.source.as_str())
    }

    /// Is `candidate` above `body` for an appeal against `form` resolved on `date`
    /// (directly or through other superiors, by the rows in force on that date)?
    pub fn is_superior(
        &self,
        candidate: BodyRole,
        body: BodyRole,
        form: DisciplineForm,
        date: Date,
    ) -> bool {
        let rows: Vec<&SuperiorRow> = self
            .superiors
            .iter()
            .filter(|r| holds_on(r.from, r.until, date) && r.covers(form))
            .collect();
        let mut seen = BTreeSet::new();
        let mut frontier = vec![body];
        while let Some(b) = frontier.pop() {
            for above in rows.iter().filter(|r| r.body == b).flat_map(|r| &r.above) {
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
    /// `decided_on`, for a violation of `category` counted from `counted_from`. Where the
    /// version in force restarts the count, `new_violations` are the dates on which the
    /// same subject committed other violations: each one committed after the count's
    /// start, within the period then running and by `decided_on`, starts it again.
    pub fn limitation(
        &self,
        subject: LimitationSubject,
        form: DisciplineForm,
        category: ViolationCategory,
        counted_from: Date,
        new_violations: &[Date],
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
            (false, Some(years)) => {
                let counted_from = match rule.new_violation_restarts {
                    true => restarted(counted_from, years, new_violations, decided_on),
                    false => counted_from,
                };
                Limitation::Until {
                    rule: rule.id.clone(),
                    years,
                    counted_from,
                    deadline: years_after(counted_from, years),
                }
            }
        }
    }
}

fn years_after(date: Date, years: u32) -> Date {
    date.checked_add_months(Months::new(12 * years))
        .unwrap_or(Date::MAX)
}

/// Where a count of `years` from `from` stands on `by` once every new violation committed
/// within the period then running has started it again.
fn restarted(from: Date, years: u32, new_violations: &[Date], by: Date) -> Date {
    let mut dates: Vec<Date> = new_violations.to_vec();
    dates.sort();
    let mut start = from;
    for date in dates.into_iter().filter(|d| *d > from && *d <= by) {
        if date > years_after(start, years) {
            break;
        }
        start = date;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::d;
    use BodyRole::*;
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
        assert!(
            b.limitation
                .iter()
                .filter_map(|r| r.changed_on_appeal.as_ref())
                .all(|c| !c.source.trim().is_empty())
        );
        assert_eq!(b.limitation.len(), 3);
    }

    // Điều lệ Đảng art. 36; Quy định 22-QĐ/TW art. 11: a district standing committee
    // does not expel or remove a post holder managed by the provincial police committee.
    #[test]
    fn district_standing_committee_authority_qd22_art11() {
        let on = d("2023-01-01");
        let district = DistrictStandingCommittee;
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
        let c = ProvincialInspectionCommission;
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
                    ProvincialStandingCommittee,
                    SubjectClass::Organization,
                    Dissolution,
                    on
                )
                .is_some()
        );
    }

    fn above(candidate: BodyRole, body: BodyRole, form: DisciplineForm, on: &str) -> bool {
        book().is_superior(candidate, body, form, d(on))
    }

    // Quy định 22-QĐ/TW art. 22: appeals go to a body above, transitively; never sideways
    // or down.
    #[test]
    fn superiors_are_transitive_and_never_downwards_qd22_art22() {
        let up = |candidate, body| above(candidate, body, Warning, "2023-01-01");
        assert!(up(
            ProvincialStandingCommittee,
            ProvincialInspectionCommission
        ));
        assert!(up(CentralInspectionCommission, DistrictStandingCommittee));
        assert!(up(
            CentralPublicSecurityStandingCommittee,
            DistrictStandingCommittee
        ));
        assert!(!up(
            ProvincialInspectionCommission,
            ProvincialStandingCommittee
        ));
        assert!(!up(DistrictStandingCommittee, ProvincialStandingCommittee));
        assert!(!up(
            ProvincialStandingCommittee,
            ProvincialStandingCommittee
        ));
        assert!(!up(
            CentralPublicSecurityStandingCommittee,
            CentralInspectionCommission
        ));
    }

    // Quy định 22-QĐ/TW art. 22: the Central Inspection Commission is the last level
    // against reprimand, warning and removal; the Secretariat against expulsion decided
    // by a committee directly under the Centre or below; against the Commission's own
    // decisions the Central Committee (not modelled), so not the Secretariat.
    #[test]
    fn the_secretariat_is_the_last_level_against_expulsion_qd22_art22() {
        let on = "2023-01-01";
        for below in [
            DistrictStandingCommittee,
            ProvincialInspectionCommission,
            ProvincialStandingCommittee,
            CentralPublicSecurityStandingCommittee,
        ] {
            assert!(above(Secretariat, below, Expulsion, on), "{below:?}");
            for form in [Reprimand, Warning, RemovalFromPost, Dissolution] {
                assert!(!above(Secretariat, below, form, on), "{below:?} {form:?}");
            }
            assert!(above(CentralInspectionCommission, below, Expulsion, on));
        }
        assert!(!above(
            Secretariat,
            CentralInspectionCommission,
            Expulsion,
            on
        ));
        assert!(!above(
            CentralInspectionCommission,
            Secretariat,
            Expulsion,
            on
        ));
    }

    // Rules by date: Quy định 22-QĐ/TW holds until 2025-05-29, Quy định 296-QĐ/TW (which
    // replaced it) from 2025-05-30; each answer names the row in force on its date, and
    // the 296 rows say that they are unverified.
    #[test]
    fn qd22_holds_until_it_was_replaced_and_qd296_after() {
        let source = |on| {
            book()
                .authorizes(
                    DistrictStandingCommittee,
                    SubjectClass::Member,
                    Reprimand,
                    d(on),
                )
                .unwrap()
        };
        assert!(source("2021-01-01").contains("22-QĐ/TW"));
        assert!(source("2025-05-29").contains("22-QĐ/TW"));
        assert!(source("2025-05-30").contains("296-QĐ/TW"));
        for on in ["2025-05-29", "2025-05-30"] {
            assert!(above(Secretariat, DistrictStandingCommittee, Expulsion, on));
            assert!(above(
                ProvincialStandingCommittee,
                ProvincialInspectionCommission,
                Warning,
                on
            ));
        }
        let from_296 = Some(d("2025-05-30"));
        let rows_296 = book()
            .authority
            .iter()
            .filter(|r| r.from == from_296)
            .map(|r| (&r.source, &r.note))
            .chain(
                book()
                    .superiors
                    .iter()
                    .filter(|r| r.from == from_296)
                    .map(|r| (&r.source, &r.note)),
            );
        for (source, note) in rows_296 {
            assert!(source.contains("296-QĐ/TW"), "{source}");
            assert!(note.as_deref().unwrap_or("").contains("UNVERIFIED"));
        }
    }

    // Quy định 69-QĐ/TW (thời hiệu): 5 years reprimand, 10 warning/removal, none for
    // expulsion or dissolution, none for internal politics.
    #[test]
    fn limitation_periods_qd69() {
        let b = book();
        let from = d("2016-03-01");
        let on = d("2023-01-01");
        let limit = |subject, form, category| b.limitation(subject, form, category, from, &[], on);
        assert_eq!(
            limit(
                LimitationSubject::Member,
                Reprimand,
                ViolationCategory::Ordinary
            ),
            Limitation::Until {
                rule: "qd69-2022".into(),
                years: 5,
                counted_from: from,
                deadline: d("2021-03-01")
            }
        );
        assert!(matches!(
            limit(
                LimitationSubject::Organization,
                Warning,
                ViolationCategory::Ordinary
            ),
            Limitation::Until { years: 10, .. }
        ));
        assert!(matches!(
            limit(
                LimitationSubject::Member,
                Expulsion,
                ViolationCategory::Ordinary
            ),
            Limitation::None { .. }
        ));
        assert!(matches!(
            limit(
                LimitationSubject::Member,
                Reprimand,
                ViolationCategory::InternalPolitics
            ),
            Limitation::None { .. }
        ));
        // Unlawful diplomas are an exception for members only.
        assert!(matches!(
            limit(
                LimitationSubject::Organization,
                Reprimand,
                ViolationCategory::UnlawfulDiplomas
            ),
            Limitation::Until { .. }
        ));
    }

    fn reprimand_of_member(new_violations: &[&str], on: &str) -> (Date, Date) {
        let dates: Vec<Date> = new_violations.iter().map(|s| d(s)).collect();
        match book().limitation(
            LimitationSubject::Member,
            Reprimand,
            ViolationCategory::Ordinary,
            d("2018-06-10"),
            &dates,
            d(on),
        ) {
            Limitation::Until {
                counted_from,
                deadline,
                ..
            } => (counted_from, deadline),
            other => panic!("{other:?}"),
        }
    }

    // Quy định 102-QĐ/TW art. 3.1.b, 07-QĐi/TW art. 5.2 (carried into 69-QĐ/TW): a new
    // violation committed while the period runs starts it again from that day; one
    // committed after the period ended, before the old violation, or after the date
    // decided on does not; restarts chain.
    #[test]
    fn a_new_violation_within_the_period_restarts_it_qd102_art3_1b() {
        let on = "2023-07-01";
        assert_eq!(
            reprimand_of_member(&[], on),
            (d("2018-06-10"), d("2023-06-10"))
        );
        assert_eq!(
            reprimand_of_member(&["2020-06-10"], on),
            (d("2020-06-10"), d("2025-06-10"))
        );
        // After the period ended, before the old violation, after the decision: nothing.
        for late_or_early in ["2023-06-11", "2017-01-01", "2023-07-02"] {
            assert_eq!(
                reprimand_of_member(&[late_or_early], on).0,
                d("2018-06-10"),
                "{late_or_early}"
            );
        }
        // A chain, in any order: 2018 → 2022 (in the first period) → 2026 (in the second).
        assert_eq!(
            reprimand_of_member(&["2026-05-01", "2022-01-01"], "2027-01-01"),
            (d("2026-05-01"), d("2031-05-01"))
        );
        // A version that does not restart leaves the count where it was.
        let text = "authority = []\nsuperiors = []\n\
            [[limitation]]\nid='x'\nfrom='2000-01-01'\nsource='s'\n\
            periods=[{subject='member', form='reprimand', years=5}]\n";
        let plain = Rulebook::from_toml_str(text).unwrap();
        assert!(matches!(
            plain.limitation(
                LimitationSubject::Member,
                Reprimand,
                ViolationCategory::Ordinary,
                d("2018-06-10"),
                &[d("2020-06-10")],
                d(on)
            ),
            Limitation::Until { deadline, .. } if deadline == d("2023-06-10")
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
                &[],
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
        // Where a changed form is counted to: as the version says, the resolution's date
        // when it says nothing.
        assert_eq!(
            b.limitation_on(d("2023-01-01"))
                .unwrap()
                .changed_form_counted_to(),
            CountedTo::Resolution
        );
        assert_eq!(
            custom.limitation[0].changed_form_counted_to(),
            CountedTo::Resolution
        );
    }

    // Rules by date for authority and superiors: a row holds only between its `from` and
    // `until`, both included.
    #[test]
    fn a_row_holds_only_in_its_dates() {
        let text = "limitation = []\n\
            [[authority]]\nbody='district_standing_committee'\nsubject='member'\n\
            forms=['reprimand']\nsource='s'\nuntil='2025-06-30'\n\
            [[superiors]]\nbody='provincial_inspection_commission'\n\
            above=['provincial_standing_committee']\nsource='s'\nfrom='2021-07-28'\nuntil='2025-05-29'\n";
        let custom = Rulebook::from_toml_str(text).unwrap();
        let at = |on| {
            custom.authorizes(
                DistrictStandingCommittee,
                SubjectClass::Member,
                Reprimand,
                d(on),
            )
        };
        assert_eq!(at("2025-06-30"), Some("s"));
        assert_eq!(at("2025-07-01"), None);
        let up = |on| {
            custom.is_superior(
                ProvincialStandingCommittee,
                ProvincialInspectionCommission,
                Warning,
                d(on),
            )
        };
        assert!(!up("2021-07-27"));
        assert!(up("2021-07-28"));
        assert!(up("2025-05-29"));
        assert!(!up("2025-05-30"));
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
        let authority = "superiors = []\nlimitation = []\n\
            [[authority]]\nbody='secretariat'\nsubject='member'\nforms=['warning']\nsource='s'\nuntil='2025-05-29'\n\
            [[authority]]\nbody='secretariat'\nsubject='member'\nforms=['expulsion']\nsource='s'\nfrom='2025-05-29'\n";
        assert_eq!(
            Rulebook::from_toml_str(authority),
            Err(RulebookError::OverlappingAuthority(
                Secretariat,
                SubjectClass::Member
            ))
        );
        let superiors = "authority = []\nlimitation = []\n\
            [[superiors]]\nbody='secretariat'\nabove=[]\nsource='s'\n\
            [[superiors]]\nbody='secretariat'\nabove=[]\nforms=['expulsion']\nsource='s'\nfrom='2030-01-01'\n";
        assert_eq!(
            Rulebook::from_toml_str(superiors),
            Err(RulebookError::OverlappingSuperiors(Secretariat))
        );
        // One row per form is fine; a row that ends before it starts is not.
        let by_form = superiors.replace(
            "above=[]\nsource='s'\n[",
            "above=[]\nforms=['warning']\nsource='s'\n[",
        );
        assert!(Rulebook::from_toml_str(&by_form).is_ok());
        let backwards = "authority = []\nlimitation = []\n\
            [[superiors]]\nbody='secretariat'\nabove=[]\nsource='s'\nfrom='2025-01-01'\nuntil='2024-01-01'\n";
        assert_eq!(
            Rulebook::from_toml_str(backwards),
            Err(RulebookError::UntilBeforeFrom(Secretariat))
        );
    }
}
