//! The DisciplineCase aggregate: the consideration of discipline (xem xét thi hành kỷ
//! luật) of one Party organization or one Party member of a district-level police Party
//! committee, under Quy định 69-QĐ/TW (2022).
//!
//! Rules kept here:
//! - organizations: reprimand, warning, dissolution;
//! - full members: reprimand, warning, removal from post (only if the member holds a
//!   post), expulsion; probationary members: reprimand, warning;
//! - one decision per case; only an appeal's resolution can change it;
//! - an appeal is filed within one month of the decision, once; the decision stands
//!   while the appeal is pending.

use chrono::Months;
use serde::{Deserialize, Serialize};

use crate::rules::{unit_exists, within_term};
use crate::{
    Aggregate, Body, CaseId, Context, Date, DomainEvent, InspectionId, MemberRef, OrganizationName,
    Reference, ReferenceError, Rejection, RejectionKind, TermId, Text, UnitId,
};

/// A discipline form, mildest first.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisciplineForm {
    Reprimand,
    Warning,
    RemovalFromPost,
    Expulsion,
    Dissolution,
}

impl DisciplineForm {
    pub const ALL: [DisciplineForm; 5] = [
        DisciplineForm::Reprimand,
        DisciplineForm::Warning,
        DisciplineForm::RemovalFromPost,
        DisciplineForm::Expulsion,
        DisciplineForm::Dissolution,
    ];
    pub fn label_vi(self) -> &'static str {
        match self {
            DisciplineForm::Reprimand => "khiển trách",
            DisciplineForm::Warning => "cảnh cáo",
            DisciplineForm::RemovalFromPost => "cách chức",
            DisciplineForm::Expulsion => "khai trừ",
            DisciplineForm::Dissolution => "giải tán",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DisciplineForm::Reprimand => "reprimand",
            DisciplineForm::Warning => "warning",
            DisciplineForm::RemovalFromPost => "removal_from_post",
            DisciplineForm::Expulsion => "expulsion",
            DisciplineForm::Dissolution => "dissolution",
        }
    }
}

/// Full (chính thức) or probationary (dự bị) membership.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    Full,
    Probationary,
}

/// Who is being considered for discipline.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Subject {
    /// A Party organization of the district police Party committee.
    Organization { name: OrganizationName },
    /// A Party member, by an opaque reference.
    Member {
        member: MemberRef,
        membership: Membership,
        holds_post: bool,
    },
}

impl Subject {
    /// Checks a form against Quy định 69-QĐ/TW for this subject.
    pub fn allows(&self, form: DisciplineForm) -> Result<(), DisciplineRejection> {
        use DisciplineForm::*;
        match (self, form) {
            (Subject::Organization { .. }, Reprimand | Warning | Dissolution) => Ok(()),
            (Subject::Organization { .. }, _) => {
                Err(DisciplineRejection::FormNotForOrganizations(form))
            }
            (Subject::Member { .. }, Dissolution) => {
                Err(DisciplineRejection::DissolutionOnlyForOrganizations)
            }
            (
                Subject::Member {
                    membership: Membership::Probationary,
                    ..
                },
                RemovalFromPost | Expulsion,
            ) => Err(DisciplineRejection::FormNotForProbationaryMembers(form)),
            (
                Subject::Member {
                    holds_post: false, ..
                },
                RemovalFromPost,
            ) => Err(DisciplineRejection::RemovalFromPostRequiresPost),
            (Subject::Member { .. }, _) => Ok(()),
        }
    }
}

/// What the case rests on.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Basis {
    /// A conclusion of the Central Inspection Commission or of the Central Public
    /// Security Party standing committee.
    CentralConclusion { body: Body, reference: Reference },
    /// The conclusion of an inspection in this system.
    Inspection { inspection_id: InspectionId },
}

/// How an appeal ended.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum AppealResolution {
    Upheld,
    ChangedTo { form: DisciplineForm },
    Annulled,
}

// ---- commands ----

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenCase {
    pub case_id: CaseId,
    pub term: TermId,
    pub unit: UnitId,
    pub subject: Subject,
    pub basis: Basis,
    pub opened_on: Date,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideDiscipline {
    pub case_id: CaseId,
    pub form: DisciplineForm,
    pub deciding_body: Body,
    pub decided_on: Date,
    pub decision_ref: Reference,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseCase {
    pub case_id: CaseId,
    pub closed_on: Date,
    pub reason: Text,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppealDecision {
    pub case_id: CaseId,
    pub appealed_on: Date,
    pub grounds: Text,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveAppeal {
    pub case_id: CaseId,
    pub resolution: AppealResolution,
    pub resolving_body: Body,
    pub resolved_on: Date,
    pub reference: Reference,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DisciplineCommand {
    Open(OpenCase),
    Decide(DecideDiscipline),
    Close(CloseCase),
    Appeal(AppealDecision),
    ResolveAppeal(ResolveAppeal),
}

impl DisciplineCommand {
    pub fn case_id(&self) -> CaseId {
        match self {
            DisciplineCommand::Open(c) => c.case_id,
            DisciplineCommand::Decide(c) => c.case_id,
            DisciplineCommand::Close(c) => c.case_id,
            DisciplineCommand::Appeal(c) => c.case_id,
            DisciplineCommand::ResolveAppeal(c) => c.case_id,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            DisciplineCommand::Open(_) => "open",
            DisciplineCommand::Decide(_) => "decide",
            DisciplineCommand::Close(_) => "close",
            DisciplineCommand::Appeal(_) => "appeal",
            DisciplineCommand::ResolveAppeal(_) => "resolve_appeal",
        }
    }
}

// ---- events ----

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisciplineCaseOpened {
    pub case_id: CaseId,
    pub term: TermId,
    pub unit: UnitId,
    pub subject: Subject,
    pub basis: Basis,
    pub opened_on: Date,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisciplineDecided {
    pub case_id: CaseId,
    pub form: DisciplineForm,
    pub deciding_body: Body,
    pub decided_on: Date,
    pub decision_ref: Reference,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisciplineCaseClosed {
    pub case_id: CaseId,
    pub closed_on: Date,
    pub reason: Text,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisciplineAppealed {
    pub case_id: CaseId,
    pub appealed_on: Date,
    pub grounds: Text,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppealResolved {
    pub case_id: CaseId,
    pub resolution: AppealResolution,
    pub resolving_body: Body,
    pub resolved_on: Date,
    pub reference: Reference,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DisciplineEvent {
    DisciplineCaseOpened(DisciplineCaseOpened),
    DisciplineDecided(DisciplineDecided),
    DisciplineCaseClosed(DisciplineCaseClosed),
    DisciplineAppealed(DisciplineAppealed),
    AppealResolved(AppealResolved),
}

impl DomainEvent for DisciplineEvent {
    fn event_type(&self) -> &'static str {
        match self {
            DisciplineEvent::DisciplineCaseOpened(_) => "DisciplineCaseOpened",
            DisciplineEvent::DisciplineDecided(_) => "DisciplineDecided",
            DisciplineEvent::DisciplineCaseClosed(_) => "DisciplineCaseClosed",
            DisciplineEvent::DisciplineAppealed(_) => "DisciplineAppealed",
            DisciplineEvent::AppealResolved(_) => "AppealResolved",
        }
    }
    fn occurred_on(&self) -> Date {
        match self {
            DisciplineEvent::DisciplineCaseOpened(e) => e.opened_on,
            DisciplineEvent::DisciplineDecided(e) => e.decided_on,
            DisciplineEvent::DisciplineCaseClosed(e) => e.closed_on,
            DisciplineEvent::DisciplineAppealed(e) => e.appealed_on,
            DisciplineEvent::AppealResolved(e) => e.resolved_on,
        }
    }
}

// ---- rejections ----

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Open,
    Decided,
    Closed,
    AppealPending,
    AppealResolved,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisciplineRejection {
    #[error("discipline case {0} is already open")]
    AlreadyOpen(CaseId),
    #[error("discipline case {0} does not exist")]
    NotFound(CaseId),
    #[error("cannot {command} a case that is {status:?}")]
    InvalidTransition {
        command: &'static str,
        status: CaseStatus,
    },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("{} ({}) is not a discipline form for Party organizations (reprimand, warning, dissolution)", .0.as_str(), .0.label_vi())]
    FormNotForOrganizations(DisciplineForm),
    #[error("dissolution applies to Party organizations only, not to members")]
    DissolutionOnlyForOrganizations,
    #[error("{} is not a discipline form for probationary members (reprimand, warning)", .0.as_str())]
    FormNotForProbationaryMembers(DisciplineForm),
    #[error("removal_from_post requires a member holding a post")]
    RemovalFromPostRequiresPost,
    #[error("a central conclusion must come from a central body, not {0}")]
    BasisNotCentral(Body),
    #[error("{0} is not competent to decide discipline in unit `{1}`")]
    DecidingBodyNotCompetent(Body, UnitId),
    #[error("an appeal must be resolved by a body other than the one that decided ({0})")]
    ResolvedByDecidingBody(Body),
    #[error(
        "an appeal must be filed within one month of the decision of {decided_on} (by {deadline})"
    )]
    AppealOutOfTime { decided_on: Date, deadline: Date },
    #[error("the changed form is the same as the decision under appeal")]
    ChangedToSameForm,
    #[error("dates out of order: {0}")]
    DatesOutOfOrder(&'static str),
}

impl Rejection for DisciplineRejection {
    fn kind(&self) -> RejectionKind {
        match self {
            DisciplineRejection::AlreadyOpen(_) => RejectionKind::AlreadyExists,
            DisciplineRejection::NotFound(_) => RejectionKind::NotFound,
            DisciplineRejection::InvalidTransition { .. } => RejectionKind::InvalidTransition,
            _ => RejectionKind::RuleViolation,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            DisciplineRejection::AlreadyOpen(_) => "already_open",
            DisciplineRejection::NotFound(_) => "case_not_found",
            DisciplineRejection::InvalidTransition { .. } => "invalid_transition",
            DisciplineRejection::Reference(e) => e.code(),
            DisciplineRejection::FormNotForOrganizations(_) => "form_not_for_organizations",
            DisciplineRejection::DissolutionOnlyForOrganizations => {
                "dissolution_only_for_organizations"
            }
            DisciplineRejection::FormNotForProbationaryMembers(_) => {
                "form_not_for_probationary_members"
            }
            DisciplineRejection::RemovalFromPostRequiresPost => "removal_from_post_requires_post",
            DisciplineRejection::BasisNotCentral(_) => "basis_not_central",
            DisciplineRejection::DecidingBodyNotCompetent(..) => "deciding_body_not_competent",
            DisciplineRejection::ResolvedByDecidingBody(_) => "resolved_by_deciding_body",
            DisciplineRejection::AppealOutOfTime { .. } => "appeal_out_of_time",
            DisciplineRejection::ChangedToSameForm => "changed_to_same_form",
            DisciplineRejection::DatesOutOfOrder(_) => "dates_out_of_order",
        }
    }
}

// ---- the aggregate ----

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DisciplineCase {
    pub opened: Option<DisciplineCaseOpened>,
    pub status: Option<CaseStatus>,
    pub decision: Option<DisciplineDecided>,
    pub appealed_on: Option<Date>,
    /// The form in force now: the decision, as changed by an appeal's resolution.
    pub in_force: Option<DisciplineForm>,
    pub last_date: Option<Date>,
}

impl Aggregate for DisciplineCase {
    const CATEGORY: &'static str = "discipline";
    type Command = DisciplineCommand;
    type Event = DisciplineEvent;
    type Rejection = DisciplineRejection;

    fn apply(&mut self, event: &DisciplineEvent) {
        self.last_date = Some(event.occurred_on());
        match event {
            DisciplineEvent::DisciplineCaseOpened(e) => {
                self.opened = Some(e.clone());
                self.status = Some(CaseStatus::Open);
            }
            DisciplineEvent::DisciplineDecided(e) => {
                self.decision = Some(e.clone());
                self.in_force = Some(e.form);
                self.status = Some(CaseStatus::Decided);
            }
            DisciplineEvent::DisciplineCaseClosed(_) => self.status = Some(CaseStatus::Closed),
            DisciplineEvent::DisciplineAppealed(e) => {
                self.appealed_on = Some(e.appealed_on);
                self.status = Some(CaseStatus::AppealPending);
            }
            DisciplineEvent::AppealResolved(e) => {
                match e.resolution {
                    AppealResolution::Upheld => {}
                    AppealResolution::ChangedTo { form } => self.in_force = Some(form),
                    AppealResolution::Annulled => self.in_force = None,
                }
                self.status = Some(CaseStatus::AppealResolved);
            }
        }
    }

    fn handle(
        &self,
        command: &DisciplineCommand,
        ctx: &Context<'_>,
    ) -> Result<Vec<DisciplineEvent>, DisciplineRejection> {
        let DisciplineCommand::Open(c) = command else {
            let status = self
                .status
                .ok_or(DisciplineRejection::NotFound(command.case_id()))?;
            return self.handle_step(command, status);
        };
        if self.status.is_some() {
            return Err(DisciplineRejection::AlreadyOpen(c.case_id));
        }
        if let Basis::CentralConclusion { body, .. } = &c.basis
            && !body.is_central()
        {
            return Err(DisciplineRejection::BasisNotCentral(body.clone()));
        }
        within_term(ctx.province, c.term, &[c.opened_on])?;
        unit_exists(ctx.province, &c.unit, &[c.opened_on])?;
        Ok(vec![DisciplineEvent::DisciplineCaseOpened(
            DisciplineCaseOpened {
                case_id: c.case_id,
                term: c.term,
                unit: c.unit.clone(),
                subject: c.subject.clone(),
                basis: c.basis.clone(),
                opened_on: c.opened_on,
            },
        )])
    }
}

impl DisciplineCase {
    fn handle_step(
        &self,
        command: &DisciplineCommand,
        status: CaseStatus,
    ) -> Result<Vec<DisciplineEvent>, DisciplineRejection> {
        let allowed = match command {
            DisciplineCommand::Open(_) => false,
            DisciplineCommand::Decide(_) | DisciplineCommand::Close(_) => {
                status == CaseStatus::Open
            }
            DisciplineCommand::Appeal(_) => status == CaseStatus::Decided,
            DisciplineCommand::ResolveAppeal(_) => status == CaseStatus::AppealPending,
        };
        if !allowed {
            return Err(DisciplineRejection::InvalidTransition {
                command: command.name(),
                status,
            });
        }
        let opened = self
            .opened
            .as_ref()
            .expect("a case with a status was opened");
        let not_before_last = |date: Date, what: &'static str| match self.last_date {
            Some(last) if date < last => Err(DisciplineRejection::DatesOutOfOrder(what)),
            _ => Ok(()),
        };
        let event = match command {
            DisciplineCommand::Open(_) => unreachable!("handled by the caller"),
            DisciplineCommand::Decide(c) => {
                opened.subject.allows(c.form)?;
                let competent = c.deciding_body.is_provincial()
                    || c.deciding_body.is_central()
                    || c.deciding_body.unit() == Some(&opened.unit);
                if !competent {
                    return Err(DisciplineRejection::DecidingBodyNotCompetent(
                        c.deciding_body.clone(),
                        opened.unit.clone(),
                    ));
                }
                not_before_last(c.decided_on, "decided_on is before opened_on")?;
                DisciplineEvent::DisciplineDecided(DisciplineDecided {
                    case_id: c.case_id,
                    form: c.form,
                    deciding_body: c.deciding_body.clone(),
                    decided_on: c.decided_on,
                    decision_ref: c.decision_ref.clone(),
                })
            }
            DisciplineCommand::Close(c) => {
                not_before_last(c.closed_on, "closed_on is before opened_on")?;
                DisciplineEvent::DisciplineCaseClosed(DisciplineCaseClosed {
                    case_id: c.case_id,
                    closed_on: c.closed_on,
                    reason: c.reason.clone(),
                })
            }
            DisciplineCommand::Appeal(c) => {
                let decided_on = self
                    .decision
                    .as_ref()
                    .expect("a decided case has a decision")
                    .decided_on;
                not_before_last(c.appealed_on, "appealed_on is before decided_on")?;
                let deadline = decided_on
                    .checked_add_months(Months::new(1))
                    .unwrap_or(Date::MAX);
                if c.appealed_on > deadline {
                    return Err(DisciplineRejection::AppealOutOfTime {
                        decided_on,
                        deadline,
                    });
                }
                DisciplineEvent::DisciplineAppealed(DisciplineAppealed {
                    case_id: c.case_id,
                    appealed_on: c.appealed_on,
                    grounds: c.grounds.clone(),
                })
            }
            DisciplineCommand::ResolveAppeal(c) => {
                let decision = self
                    .decision
                    .as_ref()
                    .expect("an appealed case has a decision");
                if c.resolving_body == decision.deciding_body {
                    return Err(DisciplineRejection::ResolvedByDecidingBody(
                        c.resolving_body.clone(),
                    ));
                }
                if let AppealResolution::ChangedTo { form } = c.resolution {
                    if Some(form) == self.in_force {
                        return Err(DisciplineRejection::ChangedToSameForm);
                    }
                    opened.subject.allows(form)?;
                }
                not_before_last(c.resolved_on, "resolved_on is before appealed_on")?;
                DisciplineEvent::AppealResolved(AppealResolved {
                    case_id: c.case_id,
                    resolution: c.resolution,
                    resolving_body: c.resolving_body.clone(),
                    resolved_on: c.resolved_on,
                    reference: c.reference.clone(),
                })
            }
        };
        Ok(vec![event])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_round_trips, d, given_when};

    fn id() -> CaseId {
        CaseId::parse("0190a000-0000-7000-8000-0000000000c1").unwrap()
    }

    fn member(membership: Membership, holds_post: bool) -> Subject {
        Subject::Member {
            member: "DV-0001".parse().unwrap(),
            membership,
            holds_post,
        }
    }
    fn organization() -> Subject {
        Subject::Organization {
            name: "Chi bộ Đội Cảnh sát giao thông".parse().unwrap(),
        }
    }

    fn open(subject: Subject) -> OpenCase {
        OpenCase {
            case_id: id(),
            term: "2020-2025".parse().unwrap(),
            unit: "an-phu".parse().unwrap(),
            subject,
            basis: Basis::CentralConclusion {
                body: Body::CentralInspectionCommission,
                reference: "KL-000 (example)".parse().unwrap(),
            },
            opened_on: d("2023-01-10"),
        }
    }
    fn opened(subject: Subject) -> DisciplineEvent {
        given_when::<DisciplineCase>(&[], DisciplineCommand::Open(open(subject)))
            .unwrap()
            .remove(0)
    }
    fn decide(form: DisciplineForm) -> DisciplineCommand {
        DisciplineCommand::Decide(DecideDiscipline {
            case_id: id(),
            form,
            deciding_body: Body::ProvincialStandingCommittee,
            decided_on: d("2023-02-01"),
            decision_ref: "QĐ-KL-01 (example)".parse().unwrap(),
        })
    }
    fn decided(subject: Subject, form: DisciplineForm) -> Vec<DisciplineEvent> {
        let first = opened(subject);
        let second = given_when::<DisciplineCase>(std::slice::from_ref(&first), decide(form))
            .unwrap()
            .remove(0);
        vec![first, second]
    }
    fn appeal(on: &str) -> DisciplineCommand {
        DisciplineCommand::Appeal(AppealDecision {
            case_id: id(),
            appealed_on: d(on),
            grounds: "Khiếu nại về hình thức kỷ luật".parse().unwrap(),
        })
    }
    fn resolve(resolution: AppealResolution) -> DisciplineCommand {
        DisciplineCommand::ResolveAppeal(ResolveAppeal {
            case_id: id(),
            resolution,
            resolving_body: Body::CentralPublicSecurityStandingCommittee,
            resolved_on: d("2023-03-15"),
            reference: "GQ-KN-01 (example)".parse().unwrap(),
        })
    }

    fn code_of(history: &[DisciplineEvent], cmd: DisciplineCommand) -> &'static str {
        given_when::<DisciplineCase>(history, cmd)
            .unwrap_err()
            .code()
    }

    #[test]
    fn organizations_get_reprimand_warning_or_dissolution_only() {
        use DisciplineForm::*;
        for form in [Reprimand, Warning, Dissolution] {
            assert!(
                given_when::<DisciplineCase>(&[opened(organization())], decide(form)).is_ok(),
                "{form:?}"
            );
        }
        for form in [RemovalFromPost, Expulsion] {
            assert_eq!(
                code_of(&[opened(organization())], decide(form)),
                "form_not_for_organizations"
            );
        }
    }

    #[test]
    fn full_members_get_any_member_form_removal_only_with_a_post() {
        use DisciplineForm::*;
        for form in [Reprimand, Warning, RemovalFromPost, Expulsion] {
            assert!(
                given_when::<DisciplineCase>(
                    &[opened(member(Membership::Full, true))],
                    decide(form)
                )
                .is_ok()
            );
        }
        let err = given_when::<DisciplineCase>(
            &[opened(member(Membership::Full, false))],
            decide(RemovalFromPost),
        )
        .unwrap_err();
        assert_eq!(err, DisciplineRejection::RemovalFromPostRequiresPost);
        assert_eq!(
            err.to_string(),
            "removal_from_post requires a member holding a post"
        );
        assert_eq!(err.kind(), RejectionKind::RuleViolation);
        assert_eq!(
            code_of(
                &[opened(member(Membership::Full, true))],
                decide(Dissolution)
            ),
            "dissolution_only_for_organizations"
        );
    }

    #[test]
    fn probationary_members_get_reprimand_or_warning_only() {
        use DisciplineForm::*;
        let history = [opened(member(Membership::Probationary, true))];
        assert!(given_when::<DisciplineCase>(&history, decide(Reprimand)).is_ok());
        assert!(given_when::<DisciplineCase>(&history, decide(Warning)).is_ok());
        assert_eq!(
            code_of(&history, decide(RemovalFromPost)),
            "form_not_for_probationary_members"
        );
        assert_eq!(
            code_of(&history, decide(Expulsion)),
            "form_not_for_probationary_members"
        );
        assert_eq!(
            code_of(&history, decide(Dissolution)),
            "dissolution_only_for_organizations"
        );
    }

    #[test]
    fn one_decision_per_case() {
        let history = decided(organization(), DisciplineForm::Reprimand);
        let err =
            given_when::<DisciplineCase>(&history, decide(DisciplineForm::Warning)).unwrap_err();
        assert_eq!(
            err,
            DisciplineRejection::InvalidTransition {
                command: "decide",
                status: CaseStatus::Decided
            }
        );
        assert_eq!(err.kind(), RejectionKind::InvalidTransition);
        let close = DisciplineCommand::Close(CloseCase {
            case_id: id(),
            closed_on: d("2023-02-02"),
            reason: "x".parse().unwrap(),
        });
        assert_eq!(code_of(&history, close), "invalid_transition");
    }

    #[test]
    fn a_case_can_close_without_discipline_and_then_takes_no_decision() {
        let close = DisciplineCommand::Close(CloseCase {
            case_id: id(),
            closed_on: d("2023-01-20"),
            reason: "Không đủ căn cứ".parse().unwrap(),
        });
        let closed = given_when::<DisciplineCase>(&[opened(organization())], close)
            .unwrap()
            .remove(0);
        let history = [opened(organization()), closed];
        assert_eq!(
            code_of(&history, decide(DisciplineForm::Reprimand)),
            "invalid_transition"
        );
        assert_eq!(
            code_of(&history, appeal("2023-01-25")),
            "invalid_transition"
        );
    }

    #[test]
    fn deciding_body_must_be_competent_for_the_unit() {
        let cmd = DisciplineCommand::Decide(DecideDiscipline {
            deciding_body: "district_standing_committee:tri-ton".parse().unwrap(),
            ..match decide(DisciplineForm::Reprimand) {
                DisciplineCommand::Decide(c) => c,
                _ => unreachable!(),
            }
        });
        assert_eq!(
            code_of(&[opened(organization())], cmd),
            "deciding_body_not_competent"
        );
    }

    #[test]
    fn basis_must_be_a_central_conclusion_or_an_inspection() {
        let mut cmd = open(organization());
        cmd.basis = Basis::CentralConclusion {
            body: Body::ProvincialStandingCommittee,
            reference: "x".parse().unwrap(),
        };
        assert_eq!(
            given_when::<DisciplineCase>(&[], DisciplineCommand::Open(cmd))
                .unwrap_err()
                .code(),
            "basis_not_central"
        );
        let mut cmd = open(organization());
        cmd.basis = Basis::Inspection {
            inspection_id: InspectionId::parse("0190a000-0000-7000-8000-000000000001").unwrap(),
        };
        assert!(given_when::<DisciplineCase>(&[], DisciplineCommand::Open(cmd)).is_ok());
    }

    #[test]
    fn appeal_within_one_month_is_accepted_and_later_is_refused() {
        let history = decided(member(Membership::Full, true), DisciplineForm::Warning);
        assert!(given_when::<DisciplineCase>(&history, appeal("2023-03-01")).is_ok()); // decided 2023-02-01
        let err = given_when::<DisciplineCase>(&history, appeal("2023-03-02")).unwrap_err();
        assert_eq!(
            err,
            DisciplineRejection::AppealOutOfTime {
                decided_on: d("2023-02-01"),
                deadline: d("2023-03-01")
            }
        );
        assert_eq!(
            code_of(&[opened(organization())], appeal("2023-01-20")),
            "invalid_transition"
        );
    }

    #[test]
    fn appeal_is_filed_once_and_the_decision_stands_while_pending() {
        let mut history = decided(member(Membership::Full, true), DisciplineForm::Warning);
        history.push(
            given_when::<DisciplineCase>(&history, appeal("2023-02-10"))
                .unwrap()
                .remove(0),
        );
        let state = DisciplineCase::from_history(&history);
        assert_eq!(state.in_force, Some(DisciplineForm::Warning));
        assert_eq!(state.status, Some(CaseStatus::AppealPending));
        assert_eq!(
            code_of(&history, appeal("2023-02-11")),
            "invalid_transition"
        );
    }

    #[test]
    fn appeal_resolution_upholds_changes_or_annuls() {
        let mut history = decided(member(Membership::Full, true), DisciplineForm::Warning);
        history.push(
            given_when::<DisciplineCase>(&history, appeal("2023-02-10"))
                .unwrap()
                .remove(0),
        );
        let cases = [
            (AppealResolution::Upheld, Some(DisciplineForm::Warning)),
            (
                AppealResolution::ChangedTo {
                    form: DisciplineForm::Reprimand,
                },
                Some(DisciplineForm::Reprimand),
            ),
            (AppealResolution::Annulled, None),
        ];
        for (resolution, in_force) in cases {
            let events = given_when::<DisciplineCase>(&history, resolve(resolution)).unwrap();
            let mut all = history.clone();
            all.extend(events);
            let state = DisciplineCase::from_history(&all);
            assert_eq!(state.in_force, in_force, "{resolution:?}");
            assert_eq!(state.status, Some(CaseStatus::AppealResolved));
            assert_eq!(code_of(&all, appeal("2023-03-16")), "invalid_transition");
            assert_eq!(
                code_of(&all, decide(DisciplineForm::Reprimand)),
                "invalid_transition"
            );
            assert_round_trips::<DisciplineCase>(&all);
        }
    }

    #[test]
    fn appeal_resolution_keeps_the_form_rules_and_a_different_body() {
        let mut history = decided(
            member(Membership::Probationary, false),
            DisciplineForm::Warning,
        );
        history.push(
            given_when::<DisciplineCase>(&history, appeal("2023-02-10"))
                .unwrap()
                .remove(0),
        );
        let to = |form| resolve(AppealResolution::ChangedTo { form });
        assert_eq!(
            code_of(&history, to(DisciplineForm::Expulsion)),
            "form_not_for_probationary_members"
        );
        assert_eq!(
            code_of(&history, to(DisciplineForm::Warning)),
            "changed_to_same_form"
        );
        let mut same_body = match resolve(AppealResolution::Upheld) {
            DisciplineCommand::ResolveAppeal(c) => c,
            _ => unreachable!(),
        };
        same_body.resolving_body = Body::ProvincialStandingCommittee;
        assert_eq!(
            code_of(&history, DisciplineCommand::ResolveAppeal(same_body)),
            "resolved_by_deciding_body"
        );
        assert_eq!(
            code_of(
                &decided(organization(), DisciplineForm::Reprimand),
                resolve(AppealResolution::Upheld)
            ),
            "invalid_transition"
        );
    }

    #[test]
    fn missing_or_duplicate_cases_are_typed() {
        assert_eq!(
            given_when::<DisciplineCase>(&[], decide(DisciplineForm::Reprimand))
                .unwrap_err()
                .kind(),
            RejectionKind::NotFound
        );
        let err = given_when::<DisciplineCase>(
            &[opened(organization())],
            DisciplineCommand::Open(open(organization())),
        )
        .unwrap_err();
        assert_eq!(err.kind(), RejectionKind::AlreadyExists);
    }

    #[test]
    fn decision_cannot_predate_the_case() {
        let cmd = DisciplineCommand::Decide(DecideDiscipline {
            decided_on: d("2023-01-01"),
            ..match decide(DisciplineForm::Reprimand) {
                DisciplineCommand::Decide(c) => c,
                _ => unreachable!(),
            }
        });
        assert_eq!(
            code_of(&[opened(organization())], cmd),
            "dates_out_of_order"
        );
    }

    #[test]
    fn wire_names_are_snake_case() {
        let names: Vec<String> = DisciplineForm::ALL
            .iter()
            .map(|f| serde_json::to_string(f).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "\"reprimand\"",
                "\"warning\"",
                "\"removal_from_post\"",
                "\"expulsion\"",
                "\"dissolution\""
            ]
        );
        assert_eq!(DisciplineForm::Expulsion.label_vi(), "khai trừ");
        let subject = serde_json::to_value(member(Membership::Probationary, false)).unwrap();
        assert_eq!(subject["kind"], "member");
        assert_eq!(subject["membership"], "probationary");
    }
}
