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
//!   while the appeal is pending. The appeal is the appealing office's own record
//!   ([`crate::appeal::Appeal`], checked here by [`DisciplineCase::check_appeal`]); the
//!   case's resolution refers to it and resolves only an appeal this office has
//!   received (`appeal_not_found`). Appeals written on the case's stream before (older
//!   logs) are still read.
//! - authority: the deciding body must hold the authority for that form and subject in
//!   the rulebook's table (Điều lệ Đảng art. 36, 38; Quy định 22-QĐ/TW art. 11, 12),
//!   code `deciding_body_without_authority`;
//! - appeals go up: only a body above the deciding one resolves the appeal (Quy định
//!   22-QĐ/TW art. 22; hierarchy in the rulebook), code `resolving_body_not_superior`;
//! - time limits (thời hiệu, Quy định 69-QĐ/TW as amended by 264-QĐ/TW): a case
//!   records when the violation happened (and ended, if it lasted); a decision past the
//!   period for its form, in the rule version in force on the decision date, is refused
//!   with `limitation_period_expired`, except where no period applies. A new violation
//!   by the same organization or member, recorded on another case in this office's log
//!   (decided or still open; not one closed without discipline or annulled on appeal)
//!   and committed while the period ran, starts it again (Quy định 102-QĐ/TW art.
//!   3.1.b, 07-QĐi/TW art. 5.2): the decision scans the log's cases
//!   ([`Aggregate::scans`]). A form an appeal's resolution puts in place is checked
//!   against its own period, counted to the date the rules say (Hướng dẫn 06-HD/UBKTTW:
//!   the decision under appeal, not counted again);
//! - a case may concern an organization that has since been dissolved or reorganized
//!   (Quy định 69-QĐ/TW art. 1), so opening one does not need the district police
//!   committee to exist any more, but the violation must date from when it did, and a
//!   district standing committee acts (decides, resolves) only while its unit exists;
//! - a case based on an inspection names an existing, concluded inspection of the same
//!   unit (read from the log by the handler, see [`crate::references`]);
//! - the term: a case is opened in the term it belongs to, but its decision, appeal and
//!   resolution may come after the term (Quy định 69-QĐ/TW art. 1 covers organizations
//!   whose term has ended); the read model counts decisions by the case's term.

use chrono::Months;
use serde::{Deserialize, Serialize};

use crate::inspection::InspectionStatus;
use crate::references::StreamRef;
pub use crate::rulebook::ViolationCategory;
use crate::rulebook::{BodyRole, CountedTo, Limitation, LimitationSubject, SubjectClass};
use crate::rules::{body_exists, police_committee_exists, within_term};
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

impl Membership {
    pub fn label_vi(self) -> &'static str {
        match self {
            Membership::Full => "chính thức",
            Membership::Probationary => "dự bị",
        }
    }
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
    /// The subject as the authority table distinguishes it.
    pub fn class(&self) -> SubjectClass {
        match self {
            Subject::Organization { .. } => SubjectClass::Organization,
            Subject::Member {
                holds_post: true, ..
            } => SubjectClass::MemberHoldingPost,
            Subject::Member { .. } => SubjectClass::Member,
        }
    }
    /// The subject as the limitation table distinguishes it.
    pub fn limitation_subject(&self) -> LimitationSubject {
        match self {
            Subject::Organization { .. } => LimitationSubject::Organization,
            Subject::Member { .. } => LimitationSubject::Member,
        }
    }

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

/// When the violation happened: the day it was committed and, if it lasted, the day it
/// ended (the limitation period then counts from the end, Hướng dẫn 06-HD/UBKTTW 2018,
/// carried into Hướng dẫn 05-HD/UBKTTW 2022), and its kind where no period applies.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Violation {
    #[serde(deserialize_with = "crate::date::iso")]
    pub committed_on: Date,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::date::iso_opt"
    )]
    pub ended_on: Option<Date>,
    #[serde(default)]
    pub category: ViolationCategory,
}

impl Violation {
    /// The day the limitation period counts from.
    pub fn counted_from(&self) -> Date {
        self.ended_on.unwrap_or(self.committed_on)
    }
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

impl AppealResolution {
    /// The outcomes as the Party's rules on discipline appeals name them: the body that
    /// resolves an appeal *chuẩn y* (upholds), changes, or *xóa* (annuls) the form of
    /// discipline (Quy định 22-QĐ/TW 2021; Điều lệ Đảng, Điều 39).
    pub const UPHELD_VI: &'static str = "giữ nguyên (chuẩn y)";
    pub const CHANGED_VI: &'static str = "thay đổi hình thức kỷ luật";
    pub const ANNULLED_VI: &'static str = "xóa hình thức kỷ luật";

    /// The outcome of an appeal in a sentence, e.g. `thay đổi thành cảnh cáo`.
    pub fn label_vi(self) -> String {
        match self {
            AppealResolution::Upheld => Self::UPHELD_VI.into(),
            AppealResolution::ChangedTo { form } => format!("thay đổi thành {}", form.label_vi()),
            AppealResolution::Annulled => Self::ANNULLED_VI.into(),
        }
    }
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
    /// When the violation happened (required: the time limit counts from it).
    pub violation: Violation,
    #[serde(deserialize_with = "crate::date::iso")]
    pub opened_on: Date,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideDiscipline {
    pub case_id: CaseId,
    pub form: DisciplineForm,
    pub deciding_body: Body,
    #[serde(deserialize_with = "crate::date::iso")]
    pub decided_on: Date,
    pub decision_ref: Reference,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseCase {
    pub case_id: CaseId,
    #[serde(deserialize_with = "crate::date::iso")]
    pub closed_on: Date,
    pub reason: Text,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppealDecision {
    pub case_id: CaseId,
    #[serde(deserialize_with = "crate::date::iso")]
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
    #[serde(deserialize_with = "crate::date::iso")]
    pub resolved_on: Date,
    pub reference: Reference,
}

/// The commands the case's own stream takes. An appeal is not one of them: the office
/// of the case's unit records it in its own stream ([`crate::appeal::Appeal`]), so the
/// province's case stream has one writer.
#[derive(Debug, Clone, PartialEq)]
pub enum DisciplineCommand {
    Open(OpenCase),
    Decide(DecideDiscipline),
    Close(CloseCase),
    ResolveAppeal(ResolveAppeal),
}

impl DisciplineCommand {
    pub fn case_id(&self) -> CaseId {
        match self {
            DisciplineCommand::Open(c) => c.case_id,
            DisciplineCommand::Decide(c) => c.case_id,
            DisciplineCommand::Close(c) => c.case_id,
            DisciplineCommand::ResolveAppeal(c) => c.case_id,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            DisciplineCommand::Open(_) => "open",
            DisciplineCommand::Decide(_) => "decide",
            DisciplineCommand::Close(_) => "close",
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
    /// Absent in cases opened before violations were recorded; their decisions are not
    /// checked against a time limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<Violation>,
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

// An appeal written on the case's own stream, as it was before appeals became
// `crate::appeal::Appeal`s: still read (old logs replay), never written any more. (A
// plain comment: a doc comment would change its published JSON Schema.)
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
        "{resolving} is not above {deciding}, which decided: an appeal goes to a superior body (Quy định 22-QĐ/TW art. 22)"
    )]
    ResolvingBodyNotSuperior { resolving: Body, deciding: Body },
    #[error(
        "{body} has no authority to decide {} for a {subject:?} (Điều lệ Đảng art. 36, 38; Quy định 22-QĐ/TW art. 11, 12)",
        form.as_str()
    )]
    DecidingBodyWithoutAuthority {
        body: Body,
        form: DisciplineForm,
        subject: SubjectClass,
    },
    #[error(
        "the time limit for {} ({years} years from {counted_from}{}, rule {rule}) ended on {deadline}, before {counted_to}: too late",
        form.as_str(),
        if *restarted { ", the day a later violation of the same subject started it again" } else { "" }
    )]
    LimitationPeriodExpired {
        form: DisciplineForm,
        rule: String,
        years: u32,
        counted_from: Date,
        /// Whether `counted_from` is a later violation's date.
        restarted: bool,
        deadline: Date,
        /// The decision's date (for a form changed on appeal, the date the rules count
        /// it to).
        counted_to: Date,
    },
    #[error(
        "the basis inspection {0} was not found in this office's log (it may not have arrived yet from another office)"
    )]
    BasisInspectionNotFound(InspectionId),
    #[error("the basis inspection {0} is not concluded")]
    BasisInspectionNotConcluded(InspectionId),
    #[error("the basis inspection {id} is of unit `{unit}`, not of the case's unit")]
    BasisInspectionOfAnotherUnit { id: InspectionId, unit: UnitId },
    #[error(
        "an appeal must be filed within one month of the decision of {decided_on} (by {deadline})"
    )]
    AppealOutOfTime { decided_on: Date, deadline: Date },
    #[error("the changed form is the same as the decision under appeal")]
    ChangedToSameForm,
    #[error(
        "discipline case {0} was not found in this office's log (it may not have arrived yet from another office)"
    )]
    AppealedCaseNotFound(CaseId),
    #[error(
        "no appeal against discipline case {0} was found in this office's log (none was lodged, or it has not arrived yet from the appealing office)"
    )]
    AppealNotFound(CaseId),
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
            DisciplineRejection::ResolvingBodyNotSuperior { .. } => "resolving_body_not_superior",
            DisciplineRejection::DecidingBodyWithoutAuthority { .. } => {
                "deciding_body_without_authority"
            }
            DisciplineRejection::LimitationPeriodExpired { .. } => "limitation_period_expired",
            DisciplineRejection::BasisInspectionNotFound(_) => "basis_inspection_not_found",
            DisciplineRejection::BasisInspectionNotConcluded(_) => "basis_inspection_not_concluded",
            DisciplineRejection::BasisInspectionOfAnotherUnit { .. } => {
                "basis_inspection_of_another_unit"
            }
            DisciplineRejection::AppealOutOfTime { .. } => "appeal_out_of_time",
            DisciplineRejection::ChangedToSameForm => "changed_to_same_form",
            DisciplineRejection::AppealedCaseNotFound(_) => "case_not_found",
            DisciplineRejection::AppealNotFound(_) => "appeal_not_found",
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
            return self.handle_step(command, status, ctx);
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
        let v = &c.violation;
        if v.ended_on.is_some_and(|end| end < v.committed_on) {
            return Err(DisciplineRejection::DatesOutOfOrder(
                "violation.ended_on is before violation.committed_on",
            ));
        }
        if v.committed_on > c.opened_on {
            return Err(DisciplineRejection::DatesOutOfOrder(
                "violation.committed_on is after opened_on",
            ));
        }
        // Quy định 69-QĐ/TW art. 1: dissolved or reorganized organizations are still
        // disciplined, so only the violation must date from when the committee existed.
        police_committee_exists(ctx.province, &c.unit, &[v.committed_on])?;
        if let Basis::Inspection { inspection_id } = &c.basis {
            check_basis_inspection(ctx, *inspection_id, &c.unit, c.opened_on)?;
        }
        Ok(vec![DisciplineEvent::DisciplineCaseOpened(
            DisciplineCaseOpened {
                case_id: c.case_id,
                term: c.term,
                unit: c.unit.clone(),
                subject: c.subject.clone(),
                basis: c.basis.clone(),
                violation: Some(c.violation.clone()),
                opened_on: c.opened_on,
            },
        )])
    }

    fn references(command: &DisciplineCommand) -> Vec<StreamRef> {
        match command {
            DisciplineCommand::Open(OpenCase {
                basis: Basis::Inspection { inspection_id },
                ..
            }) => vec![StreamRef::inspection(inspection_id.as_uuid())],
            DisciplineCommand::ResolveAppeal(c) => vec![StreamRef::appeal_of(c.case_id)],
            _ => Vec::new(),
        }
    }

    /// A decision, and a resolution that changes the form, check a time limit that the
    /// subject's other violations may restart: they need every case in the log.
    fn scans(command: &DisciplineCommand) -> Vec<&'static str> {
        match command {
            DisciplineCommand::Decide(_)
            | DisciplineCommand::ResolveAppeal(ResolveAppeal {
                resolution: AppealResolution::ChangedTo { .. },
                ..
            }) => vec![Self::CATEGORY],
            _ => Vec::new(),
        }
    }
}

/// A case based on an inspection names an existing, concluded inspection of the same
/// unit, concluded no later than the case opens.
fn check_basis_inspection(
    ctx: &Context<'_>,
    id: InspectionId,
    unit: &UnitId,
    opened_on: Date,
) -> Result<(), DisciplineRejection> {
    let found = ctx
        .references
        .inspection(id.as_uuid())
        .ok_or(DisciplineRejection::BasisInspectionNotFound(id))?;
    let scheduled = found
        .scheduled
        .as_ref()
        .ok_or(DisciplineRejection::BasisInspectionNotFound(id))?;
    if &scheduled.unit != unit {
        return Err(DisciplineRejection::BasisInspectionOfAnotherUnit {
            id,
            unit: scheduled.unit.clone(),
        });
    }
    if found.status != Some(InspectionStatus::Concluded) {
        return Err(DisciplineRejection::BasisInspectionNotConcluded(id));
    }
    if found
        .last_date
        .is_some_and(|concluded| opened_on < concluded)
    {
        return Err(DisciplineRejection::DatesOutOfOrder(
            "opened_on is before the basis inspection's conclusion",
        ));
    }
    Ok(())
}

/// The deciding body holds the authority for this form and subject on that date.
fn check_authority(
    ctx: &Context<'_>,
    body: &Body,
    subject: &Subject,
    form: DisciplineForm,
    on: Date,
) -> Result<(), DisciplineRejection> {
    body_exists(ctx.province, body, on)?;
    match ctx
        .rules
        .authorizes(BodyRole::of(body), subject.class(), form, on)
    {
        Some(_) => Ok(()),
        None => Err(DisciplineRejection::DecidingBodyWithoutAuthority {
            body: body.clone(),
            form,
            subject: subject.class(),
        }),
    }
}

/// A form decided (or put in place on appeal) counted to `counted_to` comes within the
/// limitation period of the rule in force on that date, as the subject's other
/// violations in this office's log may have restarted it.
fn check_limitation(
    ctx: &Context<'_>,
    opened: &DisciplineCaseOpened,
    form: DisciplineForm,
    counted_to: Date,
) -> Result<(), DisciplineRejection> {
    let Some(v) = &opened.violation else {
        return Ok(());
    };
    let new_violations = other_violations(ctx, opened);
    match ctx.rules.limitation(
        opened.subject.limitation_subject(),
        form,
        v.category,
        v.counted_from(),
        &new_violations,
        counted_to,
    ) {
        Limitation::Until {
            rule,
            years,
            counted_from,
            deadline,
        } if counted_to > deadline => Err(DisciplineRejection::LimitationPeriodExpired {
            form,
            rule,
            years,
            counted_from,
            restarted: counted_from != v.counted_from(),
            deadline,
            counted_to,
        }),
        _ => Ok(()),
    }
}

/// The dates of the violations recorded on the other cases of the same organization or
/// member that this office's log holds (as the handler scanned them): open or decided
/// cases; not one closed without discipline, nor one whose decision an appeal annulled,
/// for which no violation was found.
fn other_violations(ctx: &Context<'_>, opened: &DisciplineCaseOpened) -> Vec<Date> {
    ctx.references
        .discipline_cases()
        .filter(|(id, _)| *id != opened.case_id.as_uuid())
        .filter_map(|(_, case)| case.found_violation())
        .filter(|(other, _)| same_subject(opened, other))
        .map(|(_, v)| v.committed_on)
        .collect()
}

/// One member (by reference, in any unit), or one organization (by unit and name).
fn same_subject(a: &DisciplineCaseOpened, b: &DisciplineCaseOpened) -> bool {
    match (&a.subject, &b.subject) {
        (Subject::Member { member: x, .. }, Subject::Member { member: y, .. }) => x == y,
        (Subject::Organization { name: x }, Subject::Organization { name: y }) => {
            x == y && a.unit == b.unit
        }
        _ => false,
    }
}

/// To which date the period of a form changed on appeal counts, as the limitation rule
/// in force on the resolution's date says: the decision under appeal (not counted again,
/// Hướng dẫn 06-HD/UBKTTW), or the resolution itself.
fn changed_form_counted_to(
    ctx: &Context<'_>,
    decision: &DisciplineDecided,
    resolved_on: Date,
) -> Date {
    match ctx
        .rules
        .limitation_on(resolved_on)
        .map(|r| r.changed_form_counted_to())
    {
        Some(CountedTo::Decision) => decision.decided_on,
        Some(CountedTo::Resolution) | None => resolved_on,
    }
}

impl DisciplineCase {
    /// The case as it was opened and its violation, if a violation was found: the case is
    /// open or decided, not closed without discipline nor annulled on appeal.
    pub fn found_violation(&self) -> Option<(&DisciplineCaseOpened, &Violation)> {
        let opened = self.opened.as_ref()?;
        let violation = opened.violation.as_ref()?;
        let annulled = self.status == Some(CaseStatus::AppealResolved) && self.in_force.is_none();
        let closed = self.status == Some(CaseStatus::Closed);
        (!annulled && !closed).then_some((opened, violation))
    }

    fn handle_step(
        &self,
        command: &DisciplineCommand,
        status: CaseStatus,
        ctx: &Context<'_>,
    ) -> Result<Vec<DisciplineEvent>, DisciplineRejection> {
        let allowed = match command {
            DisciplineCommand::Open(_) => false,
            DisciplineCommand::Decide(_) | DisciplineCommand::Close(_) => {
                status == CaseStatus::Open
            }
            // Decided: the appeal is another office's stream (read below); pending: an
            // appeal on this stream, from an older log.
            DisciplineCommand::ResolveAppeal(_) => {
                matches!(status, CaseStatus::Decided | CaseStatus::AppealPending)
            }
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
                check_authority(ctx, &c.deciding_body, &opened.subject, c.form, c.decided_on)?;
                check_limitation(ctx, opened, c.form, c.decided_on)?;
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
                let (resolving, deciding) = (
                    BodyRole::of(&c.resolving_body),
                    BodyRole::of(&decision.deciding_body),
                );
                if !ctx
                    .rules
                    .is_superior(resolving, deciding, decision.form, c.resolved_on)
                {
                    return Err(DisciplineRejection::ResolvingBodyNotSuperior {
                        resolving: c.resolving_body.clone(),
                        deciding: decision.deciding_body.clone(),
                    });
                }
                body_exists(ctx.province, &c.resolving_body, c.resolved_on)?;
                if let AppealResolution::ChangedTo { form } = c.resolution {
                    if Some(form) == self.in_force {
                        return Err(DisciplineRejection::ChangedToSameForm);
                    }
                    opened.subject.allows(form)?;
                    check_authority(ctx, &c.resolving_body, &opened.subject, form, c.resolved_on)?;
                    let counted_to = changed_form_counted_to(ctx, decision, c.resolved_on);
                    check_limitation(ctx, opened, form, counted_to)?;
                }
                let appealed_on = self.appeal_received(c.case_id, ctx)?;
                if c.resolved_on < appealed_on {
                    return Err(DisciplineRejection::DatesOutOfOrder(
                        "resolved_on is before appealed_on",
                    ));
                }
                not_before_last(c.resolved_on, "resolved_on is before the case's last event")?;
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

    /// The date of the appeal against this case as this office has received it: the
    /// appealing office's [`crate::appeal::Appeal`] (a reference), or one written on
    /// this stream by an older version. None received: `appeal_not_found`.
    fn appeal_received(
        &self,
        case_id: CaseId,
        ctx: &Context<'_>,
    ) -> Result<Date, DisciplineRejection> {
        let referenced = ctx
            .references
            .appeal_of(case_id)
            .and_then(|a| a.lodged.as_ref())
            .map(|a| a.appealed_on);
        self.appealed_on
            .or(referenced)
            .ok_or(DisciplineRejection::AppealNotFound(case_id))
    }

    /// What an appeal against this case's decision must respect, checked against the
    /// case as the appealing office found it: the case is there (else `case_not_found`,
    /// 422: not visible here yet), decided and neither appealed nor resolved, and the
    /// appeal comes on or after the decision and within one month of it. Returns what
    /// the case was opened with.
    pub fn check_appeal(
        &self,
        c: &AppealDecision,
    ) -> Result<&DisciplineCaseOpened, DisciplineRejection> {
        let (Some(status), Some(opened)) = (self.status, self.opened.as_ref()) else {
            return Err(DisciplineRejection::AppealedCaseNotFound(c.case_id));
        };
        if status != CaseStatus::Decided {
            return Err(DisciplineRejection::InvalidTransition {
                command: "appeal",
                status,
            });
        }
        let decided_on = self
            .decision
            .as_ref()
            .expect("a decided case has a decision")
            .decided_on;
        if self.last_date.is_some_and(|last| c.appealed_on < last) {
            return Err(DisciplineRejection::DatesOutOfOrder(
                "appealed_on is before decided_on",
            ));
        }
        let deadline = decided_on
            .checked_add_months(Months::new(1))
            .unwrap_or(Date::MAX);
        if c.appealed_on > deadline {
            return Err(DisciplineRejection::AppealOutOfTime {
                decided_on,
                deadline,
            });
        }
        Ok(opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::References;
    use crate::Rulebook;
    use crate::appeal::{Appeal, AppealEvent};
    use crate::testing::{
        assert_round_trips, d, given_refs_when, given_rules_refs_when, given_when, inspection_state,
    };

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
            violation: Violation {
                committed_on: d("2022-05-01"),
                ended_on: None,
                category: ViolationCategory::Ordinary,
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
    fn appeal(on: &str) -> AppealDecision {
        AppealDecision {
            case_id: id(),
            appealed_on: d(on),
            grounds: "Khiếu nại về hình thức kỷ luật".parse().unwrap(),
        }
    }
    /// The log as the appealing office sees it: the case's stream holds `history`.
    fn case_seen(history: &[DisciplineEvent]) -> References {
        References::default().with_case(id().as_uuid(), DisciplineCase::from_history(history))
    }
    /// The appeal against the case holding `history`, lodged at the unit's office.
    fn lodge(
        history: &[DisciplineEvent],
        on: &str,
    ) -> Result<Vec<AppealEvent>, DisciplineRejection> {
        given_refs_when::<Appeal>(&case_seen(history), &[], appeal(on))
    }
    fn appeal_code(history: &[DisciplineEvent], on: &str) -> &'static str {
        lodge(history, on).unwrap_err().code()
    }
    /// The log as the province sees it once the appeal lodged on 2023-02-10 arrived.
    fn appeal_received(history: &[DisciplineEvent]) -> References {
        let lodged = lodge(history, "2023-02-10").unwrap();
        References::default().with_appeal_of(id(), Appeal::from_history(&lodged))
    }
    /// `cmd` decided by the province with the appeal received.
    fn on_appeal(
        history: &[DisciplineEvent],
        cmd: DisciplineCommand,
    ) -> Result<Vec<DisciplineEvent>, DisciplineRejection> {
        given_refs_when::<DisciplineCase>(&appeal_received(history), history, cmd)
    }
    fn code_on_appeal(history: &[DisciplineEvent], cmd: DisciplineCommand) -> &'static str {
        on_appeal(history, cmd).unwrap_err().code()
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
        assert_eq!(appeal_code(&history, "2023-01-25"), "invalid_transition");
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
            inspection_id: InspectionId::parse(BASIS).unwrap(),
        };
        let concluded = References::default().with_inspection(
            BASIS.parse().unwrap(),
            inspection_state(BASIS, "an-phu", true),
        );
        assert!(
            given_refs_when::<DisciplineCase>(&concluded, &[], DisciplineCommand::Open(cmd))
                .is_ok()
        );
    }

    const BASIS: &str = "0190a000-0000-7000-8000-000000000001";

    fn open_on_inspection() -> DisciplineCommand {
        let mut cmd = open(organization());
        cmd.basis = Basis::Inspection {
            inspection_id: InspectionId::parse(BASIS).unwrap(),
        };
        DisciplineCommand::Open(cmd)
    }

    // Cross-references: a case based on an inspection names an existing, concluded
    // inspection of the same unit, as the handler found it in the log.
    #[test]
    fn a_case_on_an_inspection_needs_it_concluded_in_the_same_unit() {
        let code = |refs: &References| {
            given_refs_when::<DisciplineCase>(refs, &[], open_on_inspection())
                .unwrap_err()
                .code()
        };
        assert_eq!(code(&References::default()), "basis_inspection_not_found");
        let open_only = References::default().with_inspection(
            BASIS.parse().unwrap(),
            inspection_state(BASIS, "an-phu", false),
        );
        assert_eq!(code(&open_only), "basis_inspection_not_concluded");
        let other_unit = References::default().with_inspection(
            BASIS.parse().unwrap(),
            inspection_state(BASIS, "tri-ton", true),
        );
        assert_eq!(code(&other_unit), "basis_inspection_of_another_unit");
        assert_eq!(
            DisciplineCase::references(&open_on_inspection()),
            vec![StreamRef::inspection(BASIS.parse().unwrap())]
        );
        assert!(DisciplineCase::references(&decide(DisciplineForm::Reprimand)).is_empty());
    }

    fn decide_by(body: &str, form: DisciplineForm, on: &str) -> DisciplineCommand {
        DisciplineCommand::Decide(DecideDiscipline {
            deciding_body: body.parse().unwrap(),
            decided_on: d(on),
            ..match decide(form) {
                DisciplineCommand::Decide(c) => c,
                _ => unreachable!(),
            }
        })
    }

    // Authority (Điều lệ Đảng art. 36, 38; Quy định 22-QĐ/TW art. 11, 12; table in
    // deploy/rules/party-rules.toml): a district standing committee may expel a member
    // without a post, but not a post holder, and may not dissolve an organization.
    #[test]
    fn the_deciding_body_needs_authority_for_the_form_and_subject() {
        use DisciplineForm::*;
        let district = "district_standing_committee:an-phu";
        let ok = |subject, form| {
            given_when::<DisciplineCase>(
                &[opened(subject)],
                decide_by(district, form, "2023-02-01"),
            )
        };
        assert!(ok(member(Membership::Full, false), Expulsion).is_ok());
        assert!(ok(member(Membership::Full, true), Warning).is_ok());
        assert!(ok(organization(), Reprimand).is_ok());
        let err = ok(member(Membership::Full, true), Expulsion).unwrap_err();
        assert_eq!(err.code(), "deciding_body_without_authority");
        assert_eq!(err.kind(), RejectionKind::RuleViolation);
        assert!(err.to_string().contains("art. 36"), "{err}");
        assert_eq!(
            ok(member(Membership::Full, true), RemovalFromPost)
                .unwrap_err()
                .code(),
            "deciding_body_without_authority"
        );
        assert_eq!(
            ok(organization(), Dissolution).unwrap_err().code(),
            "deciding_body_without_authority"
        );
        // The provincial inspection commission reprimands or warns organizations only.
        let commission = |form| {
            given_when::<DisciplineCase>(
                &[opened(organization())],
                decide_by("provincial_inspection_commission", form, "2023-02-01"),
            )
        };
        assert!(commission(Warning).is_ok());
        assert_eq!(
            commission(Dissolution).unwrap_err().code(),
            "deciding_body_without_authority"
        );
    }

    // The 2025 reorganization: a district standing committee decides nothing after its
    // unit ended (2025-07-01, Nghị quyết 203/2025/QH15).
    #[test]
    fn a_district_committee_decides_only_while_its_unit_exists() {
        let district = "district_standing_committee:an-phu";
        let history = [opened(member(Membership::Full, false))];
        assert!(
            given_when::<DisciplineCase>(
                &history,
                decide_by(district, DisciplineForm::Reprimand, "2025-06-30")
            )
            .is_ok()
        );
        assert_eq!(
            given_when::<DisciplineCase>(
                &history,
                decide_by(district, DisciplineForm::Reprimand, "2025-07-01")
            )
            .unwrap_err()
            .code(),
            "unit_not_in_existence"
        );
    }

    // The term: a decision may come after the case's term (Quy định 69-QĐ/TW art. 1),
    // by a body that still exists.
    #[test]
    fn a_decision_may_come_after_the_term() {
        let history = [opened(member(Membership::Full, false))];
        assert!(
            given_when::<DisciplineCase>(
                &history,
                decide_by(
                    "provincial_standing_committee",
                    DisciplineForm::Reprimand,
                    "2026-01-10"
                )
            )
            .is_ok()
        );
    }

    fn appealed(decided_by: &str) -> Vec<DisciplineEvent> {
        let mut history = vec![opened(member(Membership::Full, true))];
        history.extend(
            given_when::<DisciplineCase>(
                &history,
                decide_by(decided_by, DisciplineForm::Warning, "2023-02-01"),
            )
            .unwrap(),
        );
        history
    }

    fn resolve_by(body: &str) -> DisciplineCommand {
        match resolve(AppealResolution::Upheld) {
            DisciplineCommand::ResolveAppeal(c) => {
                DisciplineCommand::ResolveAppeal(ResolveAppeal {
                    resolving_body: body.parse().unwrap(),
                    ..c
                })
            }
            _ => unreachable!(),
        }
    }

    // Appeals go up (Quy định 22-QĐ/TW art. 22; hierarchy in the rulebook): the
    // standing committee resolves an appeal against its inspection commission, not the
    // other way round, and a district committee never resolves a provincial decision.
    #[test]
    fn an_appeal_is_resolved_only_by_a_superior_body() {
        let by_commission = appealed("provincial_inspection_commission");
        assert!(on_appeal(&by_commission, resolve_by("provincial_standing_committee")).is_ok());
        assert!(on_appeal(&by_commission, resolve_by("central_inspection_commission")).is_ok());
        let by_committee = appealed("provincial_standing_committee");
        for body in [
            "provincial_inspection_commission",
            "district_standing_committee:an-phu",
        ] {
            let err = on_appeal(&by_committee, resolve_by(body)).unwrap_err();
            assert_eq!(err.code(), "resolving_body_not_superior", "{body}");
            assert!(err.to_string().contains("art. 22"), "{err}");
        }
        assert!(
            on_appeal(
                &by_committee,
                resolve_by("central_public_security_standing_committee")
            )
            .is_ok()
        );
    }

    fn opened_with(
        subject: Subject,
        committed: &str,
        ended: Option<&str>,
        category: ViolationCategory,
    ) -> DisciplineEvent {
        let mut cmd = open(subject);
        cmd.violation = Violation {
            committed_on: d(committed),
            ended_on: ended.map(d),
            category,
        };
        given_when::<DisciplineCase>(&[], DisciplineCommand::Open(cmd))
            .unwrap()
            .remove(0)
    }

    // Time limits (thời hiệu, Quy định 69-QĐ/TW; periods in the rulebook): 5 years for
    // reprimand, 10 for warning, counted from the violation or from its end.
    #[test]
    fn a_decision_past_the_time_limit_is_refused_qd69() {
        let province = "provincial_standing_committee";
        let history = [opened_with(
            organization(),
            "2018-01-15",
            None,
            ViolationCategory::Ordinary,
        )];
        // Reprimand: the 5 years end on 2023-01-15.
        assert!(
            given_when::<DisciplineCase>(
                &history,
                decide_by(province, DisciplineForm::Reprimand, "2023-01-15")
            )
            .is_ok()
        );
        let err = given_when::<DisciplineCase>(
            &history,
            decide_by(province, DisciplineForm::Reprimand, "2023-02-01"),
        )
        .unwrap_err();
        assert_eq!(err.code(), "limitation_period_expired");
        assert!(err.to_string().contains("ended on 2023-01-15"), "{err}");
        // Warning: 10 years, still in time.
        assert!(
            given_when::<DisciplineCase>(
                &history,
                decide_by(province, DisciplineForm::Warning, "2023-02-01")
            )
            .is_ok()
        );
        // A lasting violation counts from its end.
        let lasting = [opened_with(
            organization(),
            "2015-01-01",
            Some("2019-01-01"),
            ViolationCategory::Ordinary,
        )];
        assert!(
            given_when::<DisciplineCase>(
                &lasting,
                decide_by(province, DisciplineForm::Reprimand, "2023-02-01")
            )
            .is_ok()
        );
    }

    // Quy định 69-QĐ/TW: no time limit for expulsion, nor for violations of internal
    // politics, of security/defence/foreign affairs, or (members) unlawful diplomas.
    #[test]
    fn no_time_limit_for_expulsion_or_the_excepted_violations_qd69() {
        let province = "provincial_standing_committee";
        let old = [opened_with(
            member(Membership::Full, false),
            "2005-01-01",
            None,
            ViolationCategory::Ordinary,
        )];
        assert!(
            given_when::<DisciplineCase>(
                &old,
                decide_by(province, DisciplineForm::Expulsion, "2023-02-01")
            )
            .is_ok()
        );
        assert_eq!(
            given_when::<DisciplineCase>(
                &old,
                decide_by(province, DisciplineForm::Warning, "2023-02-01")
            )
            .unwrap_err()
            .code(),
            "limitation_period_expired"
        );
        for category in [
            ViolationCategory::InternalPolitics,
            ViolationCategory::SecurityDefenceForeignAffairs,
            ViolationCategory::UnlawfulDiplomas,
        ] {
            let h = [opened_with(
                member(Membership::Full, false),
                "2005-01-01",
                None,
                category,
            )];
            assert!(
                given_when::<DisciplineCase>(
                    &h,
                    decide_by(province, DisciplineForm::Reprimand, "2023-02-01")
                )
                .is_ok(),
                "{category:?}"
            );
        }
        // Unlawful diplomas are an exception for members, not for organizations.
        let org = [opened_with(
            organization(),
            "2005-01-01",
            None,
            ViolationCategory::UnlawfulDiplomas,
        )];
        assert_eq!(
            given_when::<DisciplineCase>(
                &org,
                decide_by(province, DisciplineForm::Reprimand, "2023-02-01")
            )
            .unwrap_err()
            .code(),
            "limitation_period_expired"
        );
    }

    // The violation is recorded with dates in order, and from when the district police
    // committee existed (Quy định 69-QĐ/TW art. 1 lets a case concern a dissolved one).
    #[test]
    fn violation_dates_are_checked_when_the_case_opens() {
        let mut cmd = open(organization());
        cmd.violation.ended_on = Some(d("2022-01-01"));
        assert_eq!(
            given_when::<DisciplineCase>(&[], DisciplineCommand::Open(cmd))
                .unwrap_err()
                .code(),
            "dates_out_of_order"
        );
        let mut cmd = open(organization());
        cmd.violation.committed_on = d("2023-02-01");
        assert_eq!(
            given_when::<DisciplineCase>(&[], DisciplineCommand::Open(cmd))
                .unwrap_err()
                .code(),
            "dates_out_of_order"
        );
        // Opened after the district police ended, about a violation from before: accepted.
        let mut cmd = open(organization());
        cmd.opened_on = d("2025-05-02");
        assert!(given_when::<DisciplineCase>(&[], DisciplineCommand::Open(cmd.clone())).is_ok());
        cmd.violation.committed_on = d("2025-03-05");
        assert_eq!(
            given_when::<DisciplineCase>(&[], DisciplineCommand::Open(cmd))
                .unwrap_err()
                .code(),
            "unit_not_in_existence"
        );
    }

    // Cases opened before violations were recorded still decode, and are not checked
    // against a time limit.
    #[test]
    fn a_case_opened_without_a_violation_still_decodes() {
        let (ty, mut payload) = opened(organization()).encode();
        payload.as_object_mut().unwrap().remove("violation");
        let event = DisciplineEvent::decode(ty, DisciplineEvent::SCHEMA_VERSION, payload).unwrap();
        let DisciplineEvent::DisciplineCaseOpened(e) = &event else {
            unreachable!()
        };
        assert_eq!(e.violation, None);
        assert!(given_when::<DisciplineCase>(&[event], decide(DisciplineForm::Reprimand)).is_ok());
    }

    #[test]
    fn appeal_within_one_month_is_accepted_and_later_is_refused() {
        let history = decided(member(Membership::Full, true), DisciplineForm::Warning);
        assert!(lodge(&history, "2023-03-01").is_ok()); // decided 2023-02-01
        let err = lodge(&history, "2023-03-02").unwrap_err();
        assert_eq!(
            err,
            DisciplineRejection::AppealOutOfTime {
                decided_on: d("2023-02-01"),
                deadline: d("2023-03-01")
            }
        );
        assert_eq!(
            appeal_code(&[opened(organization())], "2023-01-20"),
            "invalid_transition"
        );
        assert_eq!(appeal_code(&history, "2023-01-31"), "dates_out_of_order");
    }

    // Issue 10, Ownership: the appeal is the unit's office's own stream, referring to
    // the province's case.
    #[test]
    fn an_appeal_is_the_units_own_record_of_the_case_it_refers_to() {
        // given a decided case, as the district's office found it
        let history = decided(member(Membership::Full, true), DisciplineForm::Warning);
        // when the district appeals
        let events = lodge(&history, "2023-02-10").unwrap();
        // then its appeal carries where the case belongs, under the old event's name
        let AppealEvent::DisciplineAppealed(a) = &events[0];
        assert_eq!((a.case_id, a.unit.as_str()), (id(), "an-phu"));
        assert_eq!(a.term.to_string(), "2020-2025");
        assert_eq!(events[0].event_type(), "DisciplineAppealed");
        assert_round_trips::<Appeal>(&events);
        assert_eq!(
            Appeal::references(&appeal("2023-02-10")),
            vec![StreamRef::discipline_case(id().as_uuid())]
        );
        assert_eq!(
            DisciplineCase::references(&resolve(AppealResolution::Upheld)),
            vec![StreamRef::appeal_of(id())]
        );
    }

    #[test]
    fn a_case_not_in_this_offices_log_is_not_found_and_refused() {
        let err = given_refs_when::<Appeal>(&References::default(), &[], appeal("2023-02-10"))
            .unwrap_err();
        assert_eq!(err.code(), "case_not_found");
        assert_eq!(err.kind(), RejectionKind::RuleViolation);
    }

    #[test]
    fn appeal_is_filed_once_and_the_decision_stands_while_pending() {
        let history = decided(member(Membership::Full, true), DisciplineForm::Warning);
        let first = lodge(&history, "2023-02-10").unwrap();
        // the case is not written by the appeal: its decision stands
        let state = DisciplineCase::from_history(&history);
        assert_eq!(state.in_force, Some(DisciplineForm::Warning));
        let again = given_refs_when::<Appeal>(&case_seen(&history), &first, appeal("2023-02-11"))
            .unwrap_err();
        assert_eq!(again.code(), "invalid_transition");
        assert_eq!(again.kind(), RejectionKind::InvalidTransition);
    }

    #[test]
    fn the_province_resolves_only_an_appeal_it_has_received() {
        // given a decided case whose appeal has not arrived at the province
        let history = decided(member(Membership::Full, true), DisciplineForm::Warning);
        // when it resolves
        let err =
            given_when::<DisciplineCase>(&history, resolve(AppealResolution::Upheld)).unwrap_err();
        // then there is nothing to resolve yet
        assert_eq!(err, DisciplineRejection::AppealNotFound(id()));
        assert_eq!(err.kind(), RejectionKind::RuleViolation);
        // and once it has arrived, it resolves, not before the appeal's date
        assert!(on_appeal(&history, resolve(AppealResolution::Upheld)).is_ok());
        let early = match resolve(AppealResolution::Upheld) {
            DisciplineCommand::ResolveAppeal(c) => {
                DisciplineCommand::ResolveAppeal(ResolveAppeal {
                    resolved_on: d("2023-02-09"),
                    ..c
                })
            }
            _ => unreachable!(),
        };
        assert_eq!(code_on_appeal(&history, early), "dates_out_of_order");
    }

    #[test]
    fn an_appeal_on_the_cases_stream_from_an_older_log_is_still_resolved() {
        // given an old log: the appeal on the case's own stream
        let mut history = decided(member(Membership::Full, true), DisciplineForm::Warning);
        history.push(DisciplineEvent::DisciplineAppealed(DisciplineAppealed {
            case_id: id(),
            appealed_on: d("2023-02-10"),
            grounds: "Khiếu nại".parse().unwrap(),
        }));
        assert_round_trips::<DisciplineCase>(&history);
        let state = DisciplineCase::from_history(&history);
        assert_eq!(state.status, Some(CaseStatus::AppealPending));
        // then it is resolved without an appeal stream, and not appealed again
        assert!(given_when::<DisciplineCase>(&history, resolve(AppealResolution::Upheld)).is_ok());
        assert_eq!(appeal_code(&history, "2023-02-11"), "invalid_transition");
    }

    #[test]
    fn appeal_resolution_upholds_changes_or_annuls() {
        let history = decided(member(Membership::Full, true), DisciplineForm::Warning);
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
            let events = on_appeal(&history, resolve(resolution)).unwrap();
            let mut all = history.clone();
            all.extend(events);
            let state = DisciplineCase::from_history(&all);
            assert_eq!(state.in_force, in_force, "{resolution:?}");
            assert_eq!(state.status, Some(CaseStatus::AppealResolved));
            assert_eq!(appeal_code(&all, "2023-03-16"), "invalid_transition");
            let again = given_refs_when::<DisciplineCase>(
                &appeal_received(&history),
                &all,
                resolve(AppealResolution::Upheld),
            );
            assert_eq!(again.unwrap_err().code(), "invalid_transition");
            assert_eq!(
                code_of(&all, decide(DisciplineForm::Reprimand)),
                "invalid_transition"
            );
            assert_round_trips::<DisciplineCase>(&all);
        }
    }

    #[test]
    fn appeal_resolution_keeps_the_form_rules_and_a_different_body() {
        let history = decided(
            member(Membership::Probationary, false),
            DisciplineForm::Warning,
        );
        let to = |form| resolve(AppealResolution::ChangedTo { form });
        assert_eq!(
            code_on_appeal(&history, to(DisciplineForm::Expulsion)),
            "form_not_for_probationary_members"
        );
        assert_eq!(
            code_on_appeal(&history, to(DisciplineForm::Warning)),
            "changed_to_same_form"
        );
        let mut same_body = match resolve(AppealResolution::Upheld) {
            DisciplineCommand::ResolveAppeal(c) => c,
            _ => unreachable!(),
        };
        same_body.resolving_body = Body::ProvincialStandingCommittee;
        assert_eq!(
            code_on_appeal(&history, DisciplineCommand::ResolveAppeal(same_body)),
            "resolved_by_deciding_body"
        );
        assert_eq!(
            code_of(&[opened(organization())], resolve(AppealResolution::Upheld)),
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

    // ---- the time limit restarted by a new violation ----

    const OTHER: &str = "0190a000-0000-7000-8000-0000000000b2";

    fn other_id() -> CaseId {
        CaseId::parse(OTHER).unwrap()
    }

    /// Another case of `subject` in `unit`, its violation committed on `committed`,
    /// opened on `opened_on`, then taken through `steps`.
    fn other_case(
        subject: Subject,
        unit: &str,
        committed: &str,
        opened_on: &str,
        steps: &[DisciplineEvent],
    ) -> Vec<DisciplineEvent> {
        let mut cmd = open(subject);
        cmd.case_id = other_id();
        cmd.unit = unit.parse().unwrap();
        cmd.violation.committed_on = d(committed);
        cmd.opened_on = d(opened_on);
        let mut history = given_when::<DisciplineCase>(&[], DisciplineCommand::Open(cmd)).unwrap();
        history.extend_from_slice(steps);
        history
    }

    fn other_decided(form: DisciplineForm, on: &str) -> DisciplineEvent {
        DisciplineEvent::DisciplineDecided(DisciplineDecided {
            case_id: other_id(),
            form,
            deciding_body: Body::ProvincialStandingCommittee,
            decided_on: d(on),
            decision_ref: "QĐ-B (example)".parse().unwrap(),
        })
    }

    fn other_closed() -> DisciplineEvent {
        DisciplineEvent::DisciplineCaseClosed(DisciplineCaseClosed {
            case_id: other_id(),
            closed_on: d("2023-04-01"),
            reason: "Không đủ căn cứ".parse().unwrap(),
        })
    }

    fn other_annulled() -> [DisciplineEvent; 3] {
        [
            other_decided(DisciplineForm::Reprimand, "2023-05-10"),
            DisciplineEvent::DisciplineAppealed(DisciplineAppealed {
                case_id: other_id(),
                appealed_on: d("2023-05-20"),
                grounds: "Khiếu nại".parse().unwrap(),
            }),
            DisciplineEvent::AppealResolved(AppealResolved {
                case_id: other_id(),
                resolution: AppealResolution::Annulled,
                resolving_body: Body::CentralPublicSecurityStandingCommittee,
                resolved_on: d("2023-06-01"),
                reference: "GQ-B (example)".parse().unwrap(),
            }),
        ]
    }

    /// The log as the deciding office scanned it: the other case holds `history`.
    fn in_the_log(history: &[DisciplineEvent]) -> References {
        References::default().with_case(other_id().as_uuid(), DisciplineCase::from_history(history))
    }

    /// Deciding, on `on`, a reprimand of the case whose violation was on `committed`,
    /// with the other case as found in the log.
    fn reprimand_given(
        subject: Subject,
        committed: &str,
        other: &[DisciplineEvent],
        on: &str,
    ) -> Result<Vec<DisciplineEvent>, DisciplineRejection> {
        let history = [opened_with(
            subject,
            committed,
            None,
            ViolationCategory::Ordinary,
        )];
        let province = "provincial_standing_committee";
        given_refs_when::<DisciplineCase>(
            &in_the_log(other),
            &history,
            decide_by(province, DisciplineForm::Reprimand, on),
        )
    }

    fn dv(reference: &str) -> Subject {
        Subject::Member {
            member: reference.parse().unwrap(),
            membership: Membership::Full,
            holds_post: false,
        }
    }

    // Quy định 102-QĐ/TW art. 3.1.b (carried into 69-QĐ/TW): a member's violation of
    // 2018-06-10 (this case) and a new one of 2020-06-10 (another case, decided on
    // 2023-05-10 as a reprimand): the reprimand's five years count again from 2020-06-10,
    // so a decision on 2023-07-01 is in time; without the other case it is too late.
    #[test]
    fn a_new_violation_within_the_period_restarts_it_qd102_art3_1b() {
        let me = || dv("DV-0001");
        let on = "2023-07-01";
        // given no other case: the period ended on 2023-06-10
        let err = reprimand_given(me(), "2018-06-10", &[], on).unwrap_err();
        assert_eq!(err.code(), "limitation_period_expired");
        assert!(err.to_string().contains("ended on 2023-06-10"), "{err}");
        // given the member's new violation, decided or still open: in time
        let reprimanded = [other_decided(DisciplineForm::Reprimand, "2023-05-10")];
        let decided = other_case(me(), "chau-doc", "2020-06-10", "2023-03-01", &reprimanded);
        assert!(reprimand_given(me(), "2018-06-10", &decided, on).is_ok());
        let open = other_case(me(), "chau-doc", "2020-06-10", "2023-03-01", &[]);
        assert!(reprimand_given(me(), "2018-06-10", &open, on).is_ok());
        // but not another member's, nor a violation the Party did not find (closed
        // without discipline, annulled on appeal), nor one after the period had ended
        let refused = |other: &[DisciplineEvent]| {
            reprimand_given(me(), "2018-06-10", other, on)
                .unwrap_err()
                .code()
        };
        let someone_else = other_case(dv("DV-0002"), "an-phu", "2020-06-10", "2023-03-01", &[]);
        assert_eq!(refused(&someone_else), "limitation_period_expired");
        let closed = other_case(
            me(),
            "an-phu",
            "2020-06-10",
            "2023-03-01",
            &[other_closed()],
        );
        assert_eq!(refused(&closed), "limitation_period_expired");
        let annulled = other_case(
            me(),
            "an-phu",
            "2020-06-10",
            "2023-03-01",
            &other_annulled(),
        );
        assert_eq!(refused(&annulled), "limitation_period_expired");
        let too_late = other_case(me(), "an-phu", "2023-06-11", "2023-06-20", &[]);
        assert_eq!(refused(&too_late), "limitation_period_expired");
        // a restarted period that has ended too says where it counted from
        let early = other_case(me(), "an-phu", "2018-12-01", "2023-03-01", &[]);
        let err = reprimand_given(me(), "2018-06-10", &early, "2024-01-05").unwrap_err();
        assert!(
            err.to_string()
                .contains("from 2018-12-01, the day a later violation")
                && err.to_string().contains("ended on 2023-12-01"),
            "{err}"
        );
    }

    // Quy định 07-QĐi/TW art. 5.2 (carried into 69-QĐ/TW): the same for a Party
    // organization, told apart by its unit and name.
    #[test]
    fn a_new_violation_of_the_same_organization_restarts_it_qd07_art5_2() {
        let on = "2023-07-01";
        let same = other_case(organization(), "an-phu", "2020-06-10", "2023-03-01", &[]);
        assert!(reprimand_given(organization(), "2018-06-10", &same, on).is_ok());
        let namesake = other_case(organization(), "tri-ton", "2020-06-10", "2023-03-01", &[]);
        assert_eq!(
            reprimand_given(organization(), "2018-06-10", &namesake, on)
                .unwrap_err()
                .code(),
            "limitation_period_expired"
        );
    }

    // The other cases cannot be named by the command: a decision, and a resolution that
    // changes the form, ask the handler for every case in the log.
    #[test]
    fn a_decision_scans_the_cases_in_the_log() {
        let all = vec![DisciplineCase::CATEGORY];
        assert_eq!(
            DisciplineCase::scans(&decide(DisciplineForm::Reprimand)),
            all
        );
        let changed = resolve(AppealResolution::ChangedTo {
            form: DisciplineForm::Reprimand,
        });
        assert_eq!(DisciplineCase::scans(&changed), all);
        assert!(DisciplineCase::scans(&resolve(AppealResolution::Upheld)).is_empty());
        assert!(DisciplineCase::scans(&DisciplineCommand::Open(open(organization()))).is_empty());
    }

    // ---- a form changed on appeal, and its time limit ----

    /// A post holder's violation on `committed`, decided as a warning on 2023-02-01 and
    /// appealed on 2023-02-10; the resolution on 2023-03-15 changes it to a reprimand.
    fn reprimand_on_appeal(
        rules: &Rulebook,
        committed: &str,
        other: &[DisciplineEvent],
    ) -> Result<Vec<DisciplineEvent>, DisciplineRejection> {
        let subject = member(Membership::Full, true);
        let mut history = vec![opened_with(
            subject,
            committed,
            None,
            ViolationCategory::Ordinary,
        )];
        history.extend(
            given_when::<DisciplineCase>(
                &history,
                decide_by(
                    "provincial_standing_committee",
                    DisciplineForm::Warning,
                    "2023-02-01",
                ),
            )
            .unwrap(),
        );
        let mut known = appeal_received(&history);
        if !other.is_empty() {
            known = known.with_case(other_id().as_uuid(), DisciplineCase::from_history(other));
        }
        let to_reprimand = resolve(AppealResolution::ChangedTo {
            form: DisciplineForm::Reprimand,
        });
        given_rules_refs_when::<DisciplineCase>(rules, &known, &history, to_reprimand)
    }

    // A form put in place on appeal is checked against its own period, on the
    // resolution's date (issue 16); counted to the decision under appeal where the
    // rules say so instead (Hướng dẫn 06-HD/UBKTTW on Quy định 07-QĐi/TW art. 5.2).
    #[test]
    fn a_form_changed_on_appeal_is_checked_against_its_own_period_hd06_art5_2() {
        let shipped = Rulebook::standard();
        // The reprimand's five years from 2018-01-15 ended before the decision: refused.
        let err = reprimand_on_appeal(shipped, "2018-01-15", &[]).unwrap_err();
        assert_eq!(err.code(), "limitation_period_expired");
        // ... unless a new violation of the member's restarted it.
        let me = member(Membership::Full, true);
        let restarted = other_case(me, "an-phu", "2020-01-01", "2023-01-05", &[]);
        assert!(reprimand_on_appeal(shipped, "2018-01-15", &restarted).is_ok());
        // From 2018-02-15 they end on 2023-02-15: after the decision, before the
        // resolution: too late on the resolution's date.
        let err = reprimand_on_appeal(shipped, "2018-02-15", &[]).unwrap_err();
        assert_eq!(err.code(), "limitation_period_expired");
        assert!(err.to_string().contains("before 2023-03-15"), "{err}");
        // Under rules that count a changed form to the decision (not counted again): in
        // time.
        let to_decision = Rulebook::from_toml_str(
            &crate::rulebook::PARTY_RULES_TOML
                .replace("counted_to = \"resolution\"", "counted_to = \"decision\""),
        )
        .unwrap();
        assert!(reprimand_on_appeal(&to_decision, "2018-02-15", &[]).is_ok());
        let err = reprimand_on_appeal(&to_decision, "2018-01-15", &[]).unwrap_err();
        assert!(err.to_string().contains("before 2023-02-01"), "{err}");
    }

    // ---- the Secretariat ----

    // Quy định 22-QĐ/TW art. 22: the Secretariat is the last level of an appeal against
    // expulsion, and may change the form it resolves; it resolves nothing else here, and
    // takes no first decision in this system.
    #[test]
    fn an_expulsion_appeal_goes_up_to_the_secretariat_qd22_art22() {
        let expelled = decided(member(Membership::Full, false), DisciplineForm::Expulsion);
        assert!(on_appeal(&expelled, resolve_by("secretariat")).is_ok());
        let to_warning = match resolve(AppealResolution::ChangedTo {
            form: DisciplineForm::Warning,
        }) {
            DisciplineCommand::ResolveAppeal(c) => {
                DisciplineCommand::ResolveAppeal(ResolveAppeal {
                    resolving_body: Body::Secretariat,
                    ..c
                })
            }
            _ => unreachable!(),
        };
        assert!(on_appeal(&expelled, to_warning).is_ok());
        let warned = decided(member(Membership::Full, false), DisciplineForm::Warning);
        assert_eq!(
            code_on_appeal(&warned, resolve_by("secretariat")),
            "resolving_body_not_superior"
        );
        assert_eq!(
            code_of(
                &[opened(member(Membership::Full, false))],
                decide_by("secretariat", DisciplineForm::Expulsion, "2023-02-01")
            ),
            "deciding_body_not_competent"
        );
        assert_eq!(
            Body::Secretariat.label_vi(crate::province::an_giang(), None),
            "Ban Bí thư"
        );
    }

    // ---- rules by date ----

    // Rules by date (Quy định 22-QĐ/TW until 2025-05-29, 296-QĐ/TW from 2025-05-30): a
    // decision is checked against the authority rows in force on its date, a resolution
    // against the superiors rows in force on the resolution's date.
    #[test]
    fn each_act_is_checked_against_the_rows_of_its_date_qd22_qd296() {
        let rules = Rulebook::from_toml_str(
            "limitation = []\n\
            [[authority]]\nbody='provincial_standing_committee'\nsubject='member'\n\
            forms=['reprimand', 'warning']\nsource='22'\nuntil='2025-05-29'\n\
            [[authority]]\nbody='provincial_standing_committee'\nsubject='member'\n\
            forms=['warning']\nsource='296'\nfrom='2025-05-30'\n\
            [[superiors]]\nbody='provincial_standing_committee'\n\
            above=['central_public_security_standing_committee']\nsource='22'\nuntil='2025-05-29'\n",
        )
        .unwrap();
        let history = [opened(member(Membership::Full, false))];
        let decide_on = |form, on| {
            given_rules_refs_when::<DisciplineCase>(
                &rules,
                &References::default(),
                &history,
                decide_by("provincial_standing_committee", form, on),
            )
        };
        assert!(decide_on(DisciplineForm::Reprimand, "2025-05-29").is_ok());
        assert_eq!(
            decide_on(DisciplineForm::Reprimand, "2025-05-30")
                .unwrap_err()
                .code(),
            "deciding_body_without_authority"
        );
        assert!(decide_on(DisciplineForm::Warning, "2025-05-30").is_ok());
        let decided = [
            history[0].clone(),
            decide_on(DisciplineForm::Warning, "2023-02-01")
                .unwrap()
                .remove(0),
        ];
        let resolve_on = |on: &str| {
            let cmd = match resolve(AppealResolution::Upheld) {
                DisciplineCommand::ResolveAppeal(c) => {
                    DisciplineCommand::ResolveAppeal(ResolveAppeal {
                        resolved_on: d(on),
                        ..c
                    })
                }
                _ => unreachable!(),
            };
            given_rules_refs_when::<DisciplineCase>(
                &rules,
                &appeal_received(&decided),
                &decided,
                cmd,
            )
        };
        assert!(resolve_on("2025-05-29").is_ok());
        assert_eq!(
            resolve_on("2025-05-30").unwrap_err().code(),
            "resolving_body_not_superior"
        );
    }
}
