//! The Inspection aggregate: one kiểm tra (inspection) or giám sát (supervision) of a
//! district-level police Party committee, coordinated with that unit's standing committee.
//!
//! Lifecycle: scheduled → in progress → concluded, or cancelled before it concludes.
//! No step can be skipped or undone; an inspection counts as done only once concluded
//! (its conclusion notice issued).
//!
//! Term and existence rules (the term target of the article: every district police
//! Party committee inspected or supervised at least once in the 2020–2025 term):
//! - the decision and the planned dates lie in the term it is scheduled for, and the
//!   inspected police Party committee exists on each of them;
//! - the team starts work inside the term (choice: an inspection of a term's programme
//!   that has not started when the term ends is cancelled and planned again in the
//!   next term's programme, Quy định 22-QĐ/TW art. 4 on inspection programmes by term);
//! - the conclusion may come after the term: it is recorded, and the read model shows
//!   it as concluded after the term, not as covering the unit for that term;
//! - scheduling and starting need the inspected police committee to exist on their
//!   dates (`unit_not_in_existence` otherwise); the conclusion and a cancellation do
//!   not (choice: they are acts of the provincial leading body, which still exists, on
//!   work done while the committee existed; Quy định 69-QĐ/TW art. 1 keeps dissolved
//!   organizations accountable, so work on them must be able to close).

use serde::{Deserialize, Serialize};

use crate::rules::{police_committee_exists, within_term};
use crate::{
    Aggregate, Body, Context, Date, DomainEvent, InspectionId, PoliceOrganization, Reference,
    ReferenceError, Rejection, RejectionKind, TermId, Text, UnitId,
};

/// Kiểm tra or giám sát.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InspectionKind {
    /// Kiểm tra: evaluate and conclude.
    Inspection,
    /// Giám sát: observe and warn early.
    Supervision,
}

impl InspectionKind {
    pub fn label_vi(self) -> &'static str {
        match self {
            InspectionKind::Inspection => "kiểm tra",
            InspectionKind::Supervision => "giám sát",
        }
    }
}

/// The category of an inspection or supervision.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Kiểm tra khi có dấu hiệu vi phạm.
    OnSignsOfViolation,
    /// Kiểm tra chấp hành (compliance, thematic).
    Compliance,
    /// Kiểm tra việc thực hiện nhiệm vụ kiểm tra, giám sát.
    InspectionWork,
    /// Kiểm tra việc thi hành kỷ luật.
    DisciplineEnforcement,
    /// Kiểm tra tài chính.
    Finances,
    /// Giám sát thường xuyên.
    Regular,
    /// Giám sát chuyên đề.
    Thematic,
}

impl Category {
    /// The kind this category belongs to.
    pub fn kind(self) -> InspectionKind {
        match self {
            Category::Regular | Category::Thematic => InspectionKind::Supervision,
            _ => InspectionKind::Inspection,
        }
    }
    pub fn label_vi(self) -> &'static str {
        match self {
            Category::OnSignsOfViolation => "khi có dấu hiệu vi phạm",
            Category::Compliance => "chấp hành",
            Category::InspectionWork => "việc thực hiện nhiệm vụ kiểm tra, giám sát",
            Category::DisciplineEnforcement => "việc thi hành kỷ luật",
            Category::Finances => "tài chính",
            Category::Regular => "thường xuyên",
            Category::Thematic => "chuyên đề",
        }
    }
}

/// What a conclusion found.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    NoViolation,
    Shortcomings,
    Violations,
}

impl Outcome {
    pub fn label_vi(self) -> &'static str {
        match self {
            Outcome::NoViolation => "không vi phạm",
            Outcome::Shortcomings => "có khuyết điểm",
            Outcome::Violations => "có vi phạm",
        }
    }
}

/// Where an inspection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InspectionStatus {
    Scheduled,
    InProgress,
    Concluded,
    Cancelled,
}

// ---- commands ----

/// Decide and plan an inspection or supervision (quyết định, kế hoạch).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInspection {
    pub inspection_id: InspectionId,
    pub term: TermId,
    pub unit: UnitId,
    pub kind: InspectionKind,
    pub category: Category,
    /// The provincial body that leads it.
    pub leading_body: Body,
    /// Must be the standing committee of `unit`.
    pub coordinating_body: Body,
    /// Must be the police Party committee of `unit`.
    pub target: PoliceOrganization,
    pub decision_ref: Reference,
    #[serde(deserialize_with = "crate::date::iso")]
    pub decided_on: Date,
    #[serde(deserialize_with = "crate::date::iso")]
    pub planned_start: Date,
    #[serde(deserialize_with = "crate::date::iso")]
    pub planned_end: Date,
}

/// The team starts work (announced to the subject).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartInspection {
    pub inspection_id: InspectionId,
    #[serde(deserialize_with = "crate::date::iso")]
    pub started_on: Date,
}

/// The deciding body concludes and issues the conclusion notice.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcludeInspection {
    pub inspection_id: InspectionId,
    #[serde(deserialize_with = "crate::date::iso")]
    pub concluded_on: Date,
    pub outcome: Outcome,
    pub summary: Text,
    pub conclusion_ref: Reference,
}

/// Called off before it concluded.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelInspection {
    pub inspection_id: InspectionId,
    #[serde(deserialize_with = "crate::date::iso")]
    pub cancelled_on: Date,
    pub reason: Text,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InspectionCommand {
    Schedule(ScheduleInspection),
    Start(StartInspection),
    Conclude(ConcludeInspection),
    Cancel(CancelInspection),
}

impl InspectionCommand {
    pub fn inspection_id(&self) -> InspectionId {
        match self {
            InspectionCommand::Schedule(c) => c.inspection_id,
            InspectionCommand::Start(c) => c.inspection_id,
            InspectionCommand::Conclude(c) => c.inspection_id,
            InspectionCommand::Cancel(c) => c.inspection_id,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            InspectionCommand::Schedule(_) => "schedule",
            InspectionCommand::Start(_) => "start",
            InspectionCommand::Conclude(_) => "conclude",
            InspectionCommand::Cancel(_) => "cancel",
        }
    }
}

// ---- events ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionScheduled {
    pub inspection_id: InspectionId,
    pub term: TermId,
    pub unit: UnitId,
    pub kind: InspectionKind,
    pub category: Category,
    pub leading_body: Body,
    pub coordinating_body: Body,
    pub target: PoliceOrganization,
    pub decision_ref: Reference,
    pub decided_on: Date,
    pub planned_start: Date,
    pub planned_end: Date,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionStarted {
    pub inspection_id: InspectionId,
    pub started_on: Date,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionConcluded {
    pub inspection_id: InspectionId,
    pub concluded_on: Date,
    pub outcome: Outcome,
    pub summary: Text,
    pub conclusion_ref: Reference,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionCancelled {
    pub inspection_id: InspectionId,
    pub cancelled_on: Date,
    pub reason: Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum InspectionEvent {
    InspectionScheduled(InspectionScheduled),
    InspectionStarted(InspectionStarted),
    InspectionConcluded(InspectionConcluded),
    InspectionCancelled(InspectionCancelled),
}

impl DomainEvent for InspectionEvent {
    fn event_type(&self) -> &'static str {
        match self {
            InspectionEvent::InspectionScheduled(_) => "InspectionScheduled",
            InspectionEvent::InspectionStarted(_) => "InspectionStarted",
            InspectionEvent::InspectionConcluded(_) => "InspectionConcluded",
            InspectionEvent::InspectionCancelled(_) => "InspectionCancelled",
        }
    }
    fn occurred_on(&self) -> Date {
        match self {
            InspectionEvent::InspectionScheduled(e) => e.decided_on,
            InspectionEvent::InspectionStarted(e) => e.started_on,
            InspectionEvent::InspectionConcluded(e) => e.concluded_on,
            InspectionEvent::InspectionCancelled(e) => e.cancelled_on,
        }
    }
}

// ---- rejections ----

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectionRejection {
    #[error("inspection {0} is already scheduled")]
    AlreadyScheduled(InspectionId),
    #[error("inspection {0} does not exist")]
    NotFound(InspectionId),
    #[error("cannot {command} an inspection that is {status:?}")]
    InvalidTransition {
        command: &'static str,
        status: InspectionStatus,
    },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("category {category:?} belongs to {:?}, not {kind:?}", category.kind())]
    CategoryDoesNotMatchKind {
        kind: InspectionKind,
        category: Category,
    },
    #[error("the leading body must be a provincial police Party body, not {0}")]
    LeadingBodyNotProvincial(Body),
    #[error(
        "the coordinating body must be the standing committee of the inspected unit ({expected}), not {got}"
    )]
    WrongCoordinatingBody { expected: Body, got: Body },
    #[error(
        "the target must be the police Party committee of the inspected unit ({expected}), not {got}"
    )]
    WrongTarget {
        expected: PoliceOrganization,
        got: PoliceOrganization,
    },
    #[error("dates out of order: {0}")]
    DatesOutOfOrder(&'static str),
}

impl Rejection for InspectionRejection {
    fn kind(&self) -> RejectionKind {
        match self {
            InspectionRejection::AlreadyScheduled(_) => RejectionKind::AlreadyExists,
            InspectionRejection::NotFound(_) => RejectionKind::NotFound,
            InspectionRejection::InvalidTransition { .. } => RejectionKind::InvalidTransition,
            _ => RejectionKind::RuleViolation,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            InspectionRejection::AlreadyScheduled(_) => "already_scheduled",
            InspectionRejection::NotFound(_) => "inspection_not_found",
            InspectionRejection::InvalidTransition { .. } => "invalid_transition",
            InspectionRejection::Reference(e) => e.code(),
            InspectionRejection::CategoryDoesNotMatchKind { .. } => "category_does_not_match_kind",
            InspectionRejection::LeadingBodyNotProvincial(_) => "leading_body_not_provincial",
            InspectionRejection::WrongCoordinatingBody { .. } => "wrong_coordinating_body",
            InspectionRejection::WrongTarget { .. } => "wrong_target",
            InspectionRejection::DatesOutOfOrder(_) => "dates_out_of_order",
        }
    }
}

// ---- the aggregate ----

/// What the aggregate remembers to decide the next command.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspection {
    pub status: Option<InspectionStatus>,
    pub scheduled: Option<InspectionScheduled>,
    /// The date of the latest step; the next step cannot be earlier.
    pub last_date: Option<Date>,
}

impl Aggregate for Inspection {
    const CATEGORY: &'static str = "inspection";
    type Command = InspectionCommand;
    type Event = InspectionEvent;
    type Rejection = InspectionRejection;

    fn apply(&mut self, event: &InspectionEvent) {
        self.last_date = Some(event.occurred_on());
        match event {
            InspectionEvent::InspectionScheduled(e) => {
                self.status = Some(InspectionStatus::Scheduled);
                self.scheduled = Some(e.clone());
            }
            InspectionEvent::InspectionStarted(_) => {
                self.status = Some(InspectionStatus::InProgress)
            }
            InspectionEvent::InspectionConcluded(_) => {
                self.status = Some(InspectionStatus::Concluded)
            }
            InspectionEvent::InspectionCancelled(_) => {
                self.status = Some(InspectionStatus::Cancelled)
            }
        }
    }

    fn handle(
        &self,
        command: &InspectionCommand,
        ctx: &Context<'_>,
    ) -> Result<Vec<InspectionEvent>, InspectionRejection> {
        let id = command.inspection_id();
        let InspectionCommand::Schedule(c) = command else {
            let status = self.status.ok_or(InspectionRejection::NotFound(id))?;
            return self.handle_step(command, status, ctx);
        };
        if self.status.is_some() {
            return Err(InspectionRejection::AlreadyScheduled(id));
        }
        if c.category.kind() != c.kind {
            return Err(InspectionRejection::CategoryDoesNotMatchKind {
                kind: c.kind,
                category: c.category,
            });
        }
        if !c.leading_body.is_provincial() {
            return Err(InspectionRejection::LeadingBodyNotProvincial(
                c.leading_body.clone(),
            ));
        }
        let expected_body = Body::DistrictStandingCommittee(c.unit.clone());
        if c.coordinating_body != expected_body {
            return Err(InspectionRejection::WrongCoordinatingBody {
                expected: expected_body,
                got: c.coordinating_body.clone(),
            });
        }
        let expected_target = PoliceOrganization(c.unit.clone());
        if c.target != expected_target {
            return Err(InspectionRejection::WrongTarget {
                expected: expected_target,
                got: c.target.clone(),
            });
        }
        if c.planned_start < c.decided_on {
            return Err(InspectionRejection::DatesOutOfOrder(
                "planned_start is before decided_on",
            ));
        }
        if c.planned_end < c.planned_start {
            return Err(InspectionRejection::DatesOutOfOrder(
                "planned_end is before planned_start",
            ));
        }
        let dates = [c.decided_on, c.planned_start, c.planned_end];
        within_term(ctx.province, c.term, &dates)?;
        police_committee_exists(ctx.province, &c.unit, &dates)?;
        Ok(vec![InspectionEvent::InspectionScheduled(
            InspectionScheduled {
                inspection_id: c.inspection_id,
                term: c.term,
                unit: c.unit.clone(),
                kind: c.kind,
                category: c.category,
                leading_body: c.leading_body.clone(),
                coordinating_body: c.coordinating_body.clone(),
                target: c.target.clone(),
                decision_ref: c.decision_ref.clone(),
                decided_on: c.decided_on,
                planned_start: c.planned_start,
                planned_end: c.planned_end,
            },
        )])
    }
}

impl Inspection {
    fn handle_step(
        &self,
        command: &InspectionCommand,
        status: InspectionStatus,
        ctx: &Context<'_>,
    ) -> Result<Vec<InspectionEvent>, InspectionRejection> {
        use InspectionStatus::*;
        let allowed = match command {
            InspectionCommand::Schedule(_) => false,
            InspectionCommand::Start(_) => status == Scheduled,
            InspectionCommand::Conclude(_) => status == InProgress,
            InspectionCommand::Cancel(_) => matches!(status, Scheduled | InProgress),
        };
        if !allowed {
            return Err(InspectionRejection::InvalidTransition {
                command: command.name(),
                status,
            });
        }
        let not_before_last = |date: Date, what: &'static str| match self.last_date {
            Some(last) if date < last => Err(InspectionRejection::DatesOutOfOrder(what)),
            _ => Ok(()),
        };
        let event = match command {
            InspectionCommand::Schedule(_) => unreachable!("handled by the caller"),
            InspectionCommand::Start(c) => {
                not_before_last(c.started_on, "started_on is before the decision date")?;
                let scheduled = self
                    .scheduled
                    .as_ref()
                    .expect("a started inspection was scheduled");
                within_term(ctx.province, scheduled.term, &[c.started_on])?;
                police_committee_exists(ctx.province, &scheduled.unit, &[c.started_on])?;
                InspectionEvent::InspectionStarted(InspectionStarted {
                    inspection_id: c.inspection_id,
                    started_on: c.started_on,
                })
            }
            InspectionCommand::Conclude(c) => {
                not_before_last(c.concluded_on, "concluded_on is before started_on")?;
                InspectionEvent::InspectionConcluded(InspectionConcluded {
                    inspection_id: c.inspection_id,
                    concluded_on: c.concluded_on,
                    outcome: c.outcome,
                    summary: c.summary.clone(),
                    conclusion_ref: c.conclusion_ref.clone(),
                })
            }
            InspectionCommand::Cancel(c) => {
                not_before_last(c.cancelled_on, "cancelled_on is before the previous step")?;
                InspectionEvent::InspectionCancelled(InspectionCancelled {
                    inspection_id: c.inspection_id,
                    cancelled_on: c.cancelled_on,
                    reason: c.reason.clone(),
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

    fn id() -> InspectionId {
        InspectionId::parse("0190a000-0000-7000-8000-000000000001").unwrap()
    }

    fn schedule() -> ScheduleInspection {
        ScheduleInspection {
            inspection_id: id(),
            term: "2020-2025".parse().unwrap(),
            unit: "chau-doc".parse().unwrap(),
            kind: InspectionKind::Inspection,
            category: Category::Compliance,
            leading_body: Body::ProvincialStandingCommittee,
            coordinating_body: "district_standing_committee:chau-doc".parse().unwrap(),
            target: "district_police:chau-doc".parse().unwrap(),
            decision_ref: "01-QĐ/ĐUCA (example)".parse().unwrap(),
            decided_on: d("2022-06-15"),
            planned_start: d("2022-07-01"),
            planned_end: d("2022-07-31"),
        }
    }

    fn scheduled() -> InspectionEvent {
        given_when::<Inspection>(&[], InspectionCommand::Schedule(schedule()))
            .unwrap()
            .remove(0)
    }
    fn started() -> InspectionEvent {
        InspectionEvent::InspectionStarted(InspectionStarted {
            inspection_id: id(),
            started_on: d("2022-07-01"),
        })
    }
    fn start(on: &str) -> InspectionCommand {
        InspectionCommand::Start(StartInspection {
            inspection_id: id(),
            started_on: d(on),
        })
    }
    fn conclude(on: &str) -> InspectionCommand {
        InspectionCommand::Conclude(ConcludeInspection {
            inspection_id: id(),
            concluded_on: d(on),
            outcome: Outcome::Shortcomings,
            summary: "Còn hạn chế trong sinh hoạt chi bộ".parse().unwrap(),
            conclusion_ref: "12-TB/ĐUCA (example)".parse().unwrap(),
        })
    }
    fn cancel(on: &str) -> InspectionCommand {
        InspectionCommand::Cancel(CancelInspection {
            inspection_id: id(),
            cancelled_on: d(on),
            reason: "merged into another plan".parse().unwrap(),
        })
    }

    #[test]
    fn schedule_emits_inspection_scheduled() {
        let events =
            given_when::<Inspection>(&[], InspectionCommand::Schedule(schedule())).unwrap();
        assert_eq!(events.len(), 1);
        let InspectionEvent::InspectionScheduled(e) = &events[0] else {
            panic!("wrong event {events:?}")
        };
        assert_eq!(e.unit.as_str(), "chau-doc");
        assert_eq!(events[0].occurred_on(), d("2022-06-15"));
    }

    #[test]
    fn schedule_twice_is_refused() {
        let err = given_when::<Inspection>(&[scheduled()], InspectionCommand::Schedule(schedule()))
            .unwrap_err();
        assert_eq!(err, InspectionRejection::AlreadyScheduled(id()));
        assert_eq!(err.kind(), RejectionKind::AlreadyExists);
    }

    #[test]
    fn coordinating_body_must_be_the_units_standing_committee() {
        for body in [
            "district_standing_committee:long-xuyen",
            "provincial_standing_committee",
        ] {
            let cmd = ScheduleInspection {
                coordinating_body: body.parse().unwrap(),
                ..schedule()
            };
            let err = given_when::<Inspection>(&[], InspectionCommand::Schedule(cmd)).unwrap_err();
            assert_eq!(err.code(), "wrong_coordinating_body");
            assert_eq!(err.kind(), RejectionKind::RuleViolation);
        }
    }

    #[test]
    fn target_must_be_the_units_police_committee() {
        let cmd = ScheduleInspection {
            target: "district_police:tri-ton".parse().unwrap(),
            ..schedule()
        };
        let err = given_when::<Inspection>(&[], InspectionCommand::Schedule(cmd)).unwrap_err();
        assert_eq!(err.code(), "wrong_target");
    }

    #[test]
    fn leading_body_must_be_provincial() {
        let cmd = ScheduleInspection {
            leading_body: Body::CentralInspectionCommission,
            ..schedule()
        };
        let err = given_when::<Inspection>(&[], InspectionCommand::Schedule(cmd)).unwrap_err();
        assert_eq!(err.code(), "leading_body_not_provincial");
    }

    #[test]
    fn category_must_match_kind() {
        let cmd = ScheduleInspection {
            kind: InspectionKind::Supervision,
            ..schedule()
        };
        let err = given_when::<Inspection>(&[], InspectionCommand::Schedule(cmd)).unwrap_err();
        assert_eq!(err.code(), "category_does_not_match_kind");
        let ok = ScheduleInspection {
            kind: InspectionKind::Supervision,
            category: Category::Thematic,
            ..schedule()
        };
        assert!(given_when::<Inspection>(&[], InspectionCommand::Schedule(ok)).is_ok());
    }

    #[test]
    fn dates_must_be_in_order_and_inside_the_term() {
        let cmd = ScheduleInspection {
            planned_start: d("2022-06-01"),
            ..schedule()
        };
        assert_eq!(
            given_when::<Inspection>(&[], InspectionCommand::Schedule(cmd))
                .unwrap_err()
                .code(),
            "dates_out_of_order"
        );
        let cmd = ScheduleInspection {
            planned_end: d("2022-06-30"),
            ..schedule()
        };
        assert_eq!(
            given_when::<Inspection>(&[], InspectionCommand::Schedule(cmd))
                .unwrap_err()
                .code(),
            "dates_out_of_order"
        );
        let cmd = ScheduleInspection {
            planned_end: d("2026-02-01"),
            ..schedule()
        };
        assert_eq!(
            given_when::<Inspection>(&[], InspectionCommand::Schedule(cmd))
                .unwrap_err()
                .code(),
            "outside_term"
        );
        let cmd = ScheduleInspection {
            term: "2015-2020".parse().unwrap(),
            ..schedule()
        };
        assert_eq!(
            given_when::<Inspection>(&[], InspectionCommand::Schedule(cmd))
                .unwrap_err()
                .code(),
            "unknown_term"
        );
    }

    #[test]
    fn unknown_unit_is_refused() {
        let cmd = ScheduleInspection {
            unit: "ha-noi".parse().unwrap(),
            coordinating_body: "district_standing_committee:ha-noi".parse().unwrap(),
            target: "district_police:ha-noi".parse().unwrap(),
            ..schedule()
        };
        assert_eq!(
            given_when::<Inspection>(&[], InspectionCommand::Schedule(cmd))
                .unwrap_err()
                .code(),
            "unknown_unit"
        );
    }

    #[test]
    fn lifecycle_runs_scheduled_started_concluded() {
        let started = given_when::<Inspection>(&[scheduled()], start("2022-07-01")).unwrap();
        assert!(matches!(started[0], InspectionEvent::InspectionStarted(_)));
        let concluded =
            given_when::<Inspection>(&[scheduled(), started[0].clone()], conclude("2022-08-10"))
                .unwrap();
        assert!(matches!(
            concluded[0],
            InspectionEvent::InspectionConcluded(_)
        ));
        let history = vec![scheduled(), started[0].clone(), concluded[0].clone()];
        assert_eq!(
            Inspection::from_history(&history).status,
            Some(InspectionStatus::Concluded)
        );
        assert_round_trips::<Inspection>(&history);
    }

    #[test]
    fn steps_cannot_be_skipped() {
        let err = given_when::<Inspection>(&[scheduled()], conclude("2022-08-10")).unwrap_err();
        assert_eq!(
            err,
            InspectionRejection::InvalidTransition {
                command: "conclude",
                status: InspectionStatus::Scheduled
            }
        );
        assert_eq!(err.kind(), RejectionKind::InvalidTransition);
    }

    #[test]
    fn steps_cannot_be_reversed_or_repeated() {
        let concluded = given_when::<Inspection>(&[scheduled(), started()], conclude("2022-08-10"))
            .unwrap()
            .remove(0);
        let history = [scheduled(), started(), concluded];
        for cmd in [
            start("2022-08-11"),
            conclude("2022-08-12"),
            cancel("2022-08-12"),
        ] {
            let err = given_when::<Inspection>(&history, cmd).unwrap_err();
            assert_eq!(err.kind(), RejectionKind::InvalidTransition);
        }
        let err =
            given_when::<Inspection>(&[scheduled(), started()], start("2022-07-02")).unwrap_err();
        assert_eq!(err.code(), "invalid_transition");
    }

    #[test]
    fn cancel_is_allowed_before_conclusion_only_and_is_final() {
        assert!(given_when::<Inspection>(&[scheduled()], cancel("2022-06-20")).is_ok());
        let cancelled = given_when::<Inspection>(&[scheduled(), started()], cancel("2022-07-05"))
            .unwrap()
            .remove(0);
        let err =
            given_when::<Inspection>(&[scheduled(), started(), cancelled], conclude("2022-08-01"))
                .unwrap_err();
        assert_eq!(
            err,
            InspectionRejection::InvalidTransition {
                command: "conclude",
                status: InspectionStatus::Cancelled
            }
        );
    }

    #[test]
    fn a_step_cannot_be_dated_before_the_previous_one() {
        let err = given_when::<Inspection>(&[scheduled()], start("2022-06-01")).unwrap_err();
        assert_eq!(err.code(), "dates_out_of_order");
        let err = given_when::<Inspection>(&[scheduled(), started()], conclude("2022-06-30"))
            .unwrap_err();
        assert_eq!(err.code(), "dates_out_of_order");
    }

    #[test]
    fn commands_on_a_missing_inspection_are_not_found() {
        let err = given_when::<Inspection>(&[], start("2022-07-01")).unwrap_err();
        assert_eq!(err, InspectionRejection::NotFound(id()));
        assert_eq!(err.kind(), RejectionKind::NotFound);
    }

    #[test]
    fn tinh_bien_can_be_inspected_across_its_type_change() {
        let cmd = ScheduleInspection {
            unit: "tinh-bien".parse().unwrap(),
            coordinating_body: "district_standing_committee:tinh-bien".parse().unwrap(),
            target: "district_police:tinh-bien".parse().unwrap(),
            decided_on: d("2023-03-01"),
            planned_start: d("2023-04-01"),
            planned_end: d("2023-04-30"),
            ..schedule()
        };
        assert!(given_when::<Inspection>(&[], InspectionCommand::Schedule(cmd)).is_ok());
    }

    fn scheduled_on(unit: &str, decided: &str, start: &str, end: &str) -> InspectionEvent {
        let c = ScheduleInspection {
            unit: unit.parse().unwrap(),
            coordinating_body: format!("district_standing_committee:{unit}")
                .parse()
                .unwrap(),
            target: format!("district_police:{unit}").parse().unwrap(),
            decided_on: d(decided),
            planned_start: d(start),
            planned_end: d(end),
            ..schedule()
        };
        given_when::<Inspection>(&[], InspectionCommand::Schedule(c))
            .unwrap()
            .remove(0)
    }

    // Term rule (choice, Quy định 22-QĐ/TW art. 4: programmes by term): the start lies in
    // the term; the conclusion may come after it (it is recorded, and not counted).
    #[test]
    fn start_lies_in_the_term_and_a_late_conclusion_is_recorded() {
        let history = [scheduled_on(
            "chau-doc",
            "2025-01-10",
            "2025-01-20",
            "2025-02-20",
        )];
        // Accept: started in the term, concluded inside it or after its end (2026).
        assert!(given_when::<Inspection>(&history, start("2025-01-20")).is_ok());
        let mut started = history.to_vec();
        started.push(
            given_when::<Inspection>(&history, start("2025-01-20"))
                .unwrap()
                .remove(0),
        );
        assert!(given_when::<Inspection>(&started, conclude("2025-02-27")).is_ok());
        assert!(given_when::<Inspection>(&started, conclude("2026-01-10")).is_ok());
        // Reject: a start after the term's end (2025-12-31) is outside the term.
        let late = [scheduled_on(
            "chau-doc",
            "2024-11-01",
            "2024-11-10",
            "2024-12-10",
        )];
        let err = given_when::<Inspection>(&late, start("2026-01-05")).unwrap_err();
        assert_eq!(err.code(), "outside_term");
    }

    // The 2025 reorganization: district police Party committees ended on 2025-03-01
    // (Bộ Công an; Kết luận 121-KL/TW): no inspection of one may be scheduled or
    // started on or after that day; concluding or cancelling work begun stays possible.
    #[test]
    fn nothing_is_done_to_a_police_committee_after_it_ceased_to_exist() {
        let mut c = schedule();
        c.decided_on = d("2025-02-20");
        c.planned_start = d("2025-03-01");
        c.planned_end = d("2025-03-20");
        let err = given_when::<Inspection>(&[], InspectionCommand::Schedule(c)).unwrap_err();
        assert_eq!(err.code(), "unit_not_in_existence");
        assert!(err.to_string().contains("police Party committee"), "{err}");
        let history = [scheduled_on(
            "chau-doc",
            "2025-02-01",
            "2025-02-10",
            "2025-02-28",
        )];
        assert!(given_when::<Inspection>(&history, start("2025-02-28")).is_ok());
        assert_eq!(
            given_when::<Inspection>(&history, start("2025-03-01"))
                .unwrap_err()
                .code(),
            "unit_not_in_existence"
        );
        let mut started = history.to_vec();
        started.push(
            given_when::<Inspection>(&history, start("2025-02-10"))
                .unwrap()
                .remove(0),
        );
        // Work started before the end can still be concluded or cancelled after it.
        assert!(given_when::<Inspection>(&started, conclude("2026-01-10")).is_ok());
        assert!(given_when::<Inspection>(&started, cancel("2025-03-03")).is_ok());
    }

    // Issue 6: only full ISO dates, and the error names the value.
    #[test]
    fn command_dates_are_strict_iso() {
        let bad =
            serde_json::json!({"inspection_id": id().to_string(), "started_on": "2023-02-30"});
        let err = serde_json::from_value::<StartInspection>(bad).unwrap_err();
        assert!(
            err.to_string().contains("2023-02-30 is not a valid date"),
            "{err}"
        );
        let short =
            serde_json::json!({"inspection_id": id().to_string(), "started_on": "2023-2-3"});
        assert!(serde_json::from_value::<StartInspection>(short).is_err());
    }

    #[test]
    fn wire_names_are_stable() {
        assert_eq!(
            serde_json::to_string(&Category::InspectionWork).unwrap(),
            "\"inspection_work\""
        );
        assert_eq!(
            serde_json::to_string(&Outcome::NoViolation).unwrap(),
            "\"no_violation\""
        );
        let (ty, payload) = scheduled().encode();
        assert_eq!(ty, "InspectionScheduled");
        assert_eq!(
            payload["coordinating_body"],
            "district_standing_committee:chau-doc"
        );
        assert_eq!(payload["target"], "district_police:chau-doc");
    }

    #[test]
    fn unknown_event_types_and_versions_are_typed_errors() {
        let err =
            InspectionEvent::decode("InspectionTeleported", 1, serde_json::json!({})).unwrap_err();
        assert_eq!(
            err,
            crate::DecodeError::UnknownEventType("InspectionTeleported".into())
        );
        let err =
            InspectionEvent::decode("InspectionStarted", 9, serde_json::json!({})).unwrap_err();
        assert!(matches!(
            err,
            crate::DecodeError::UnsupportedSchemaVersion {
                schema_version: 9,
                ..
            }
        ));
        let err = InspectionEvent::decode("InspectionStarted", 1, serde_json::json!({"x": 1}))
            .unwrap_err();
        assert!(matches!(err, crate::DecodeError::BadPayload { .. }));
    }
}
