//! Read models for analytics (issue 8): counts of what happened in a period, by month
//! and unit. Unlike the status views (the state now), these count events by their
//! business date: an inspection concluded in March 2023 counts in `2023-03`.

use serde::{Deserialize, Serialize};

use crate::read::{MemberDiscipline, OrganizationDiscipline};

/// Inspections or supervisions by what happened to them in the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageCounts {
    pub scheduled: u64,
    pub started: u64,
    pub concluded: u64,
    pub cancelled: u64,
}

/// Exchanges sent, and acknowledged, in the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExchangeFlow {
    pub sent: u64,
    pub acknowledged: u64,
}

/// Discipline decisions taken in the period, by the form decided (a later appeal
/// does not move a decision out of the month it was taken in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionCounts {
    pub organizations: OrganizationDiscipline,
    pub members: MemberDiscipline,
}

impl DecisionCounts {
    /// Every decision counted, of organizations and of members, whatever its form.
    pub fn total(&self) -> u64 {
        let (o, m) = (&self.organizations, &self.members);
        o.reprimand
            + o.warning
            + o.dissolution
            + m.reprimand
            + m.warning
            + m.removal_from_post
            + m.expulsion
    }
}

/// Everything counted for one period (a month, or a `from`–`to` window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeriodCounts {
    /// Kiểm tra.
    pub inspections: StageCounts,
    /// Giám sát.
    pub supervisions: StageCounts,
    pub exchanges: ExchangeFlow,
    pub decisions: DecisionCounts,
}

impl PeriodCounts {
    /// Adds `n` events of one measure, e.g. `inspection.concluded`,
    /// `exchange.sent`, `decision.member.warning`. Other measures count nothing.
    pub fn add(&mut self, measure: &str, n: u64) {
        let parts: Vec<&str> = measure.split('.').collect();
        let (o, m) = (
            &mut self.decisions.organizations,
            &mut self.decisions.members,
        );
        let slot = match parts.as_slice() {
            ["inspection", stage] => stage_slot(&mut self.inspections, stage),
            ["supervision", stage] => stage_slot(&mut self.supervisions, stage),
            ["exchange", "sent"] => Some(&mut self.exchanges.sent),
            ["exchange", "acknowledged"] => Some(&mut self.exchanges.acknowledged),
            ["decision", "organization", "reprimand"] => Some(&mut o.reprimand),
            ["decision", "organization", "warning"] => Some(&mut o.warning),
            ["decision", "organization", "dissolution"] => Some(&mut o.dissolution),
            ["decision", "member", "reprimand"] => Some(&mut m.reprimand),
            ["decision", "member", "warning"] => Some(&mut m.warning),
            ["decision", "member", "removal_from_post"] => Some(&mut m.removal_from_post),
            ["decision", "member", "expulsion"] => Some(&mut m.expulsion),
            _ => None,
        };
        if let Some(slot) = slot {
            *slot += n;
        }
    }
}

fn stage_slot<'a>(c: &'a mut StageCounts, stage: &str) -> Option<&'a mut u64> {
    match stage {
        "scheduled" => Some(&mut c.scheduled),
        "started" => Some(&mut c.started),
        "concluded" => Some(&mut c.concluded),
        "cancelled" => Some(&mut c.cancelled),
        _ => None,
    }
}

/// One month of one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MonthlyRow {
    /// `YYYY-MM`.
    pub month: String,
    pub unit: String,
    #[serde(flatten)]
    pub counts: PeriodCounts,
}

/// `GET /v1/analytics/monthly`: one row per month and unit with anything in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MonthlyReport {
    pub term: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub unit: Option<String>,
    /// The read model's log position.
    pub position: u64,
    pub rows: Vec<MonthlyRow>,
}

/// `GET /v1/analytics/period`: totals of a `from`–`to` window (inclusive dates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeriodSummary {
    pub term: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub unit: Option<String>,
    pub position: u64,
    pub totals: PeriodCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decisions_total_counts_every_form_of_both_kinds() {
        let mut c = PeriodCounts::default();
        c.add("decision.organization.dissolution", 1);
        c.add("decision.member.removal_from_post", 2);
        c.add("decision.member.expulsion", 4);
        c.add("exchange.sent", 8);
        assert_eq!(c.decisions.total(), 7);
    }

    #[test]
    fn measures_land_in_their_counter() {
        let mut c = PeriodCounts::default();
        c.add("inspection.concluded", 2);
        c.add("supervision.started", 1);
        c.add("exchange.acknowledged", 3);
        c.add("decision.member.removal_from_post", 1);
        c.add("case.opened", 9);
        assert_eq!(c.inspections.concluded, 2);
        assert_eq!(c.supervisions.started, 1);
        assert_eq!(c.exchanges.acknowledged, 3);
        assert_eq!(c.decisions.members.removal_from_post, 1);
        assert_eq!(c.inspections.scheduled + c.exchanges.sent, 0);
    }
}
