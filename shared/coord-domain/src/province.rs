//! Reference data: a province, its district-level units and its Party congress terms.
//!
//! This is configuration, not code: another province is another TOML file (see
//! `deploy/provinces/an-giang.toml`). A unit's type can change over time (Tịnh Biên was
//! a huyện until 2023-04-10 and a thị xã from then), so a unit carries dated periods.
//! The 2025 reorganization ended both the district-level police (and with them their
//! Party committees, from 2025-03-01) and then the district level itself (from
//! 2025-07-01): a unit's last period and its police committee carry those end dates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Date, TermId, UnitId};

/// The type of a district-level unit. Its Party committee is named after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// thành phố thuộc tỉnh
    City,
    /// thị xã
    Town,
    /// huyện
    District,
}

impl UnitKind {
    /// The wire name: `city`, `town` or `district`.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::City => "city",
            UnitKind::Town => "town",
            UnitKind::District => "district",
        }
    }

    /// Vietnamese name of the unit type.
    pub fn label_vi(self) -> &'static str {
        match self {
            UnitKind::City => "thành phố",
            UnitKind::Town => "thị xã",
            UnitKind::District => "huyện",
        }
    }
    /// Vietnamese name of the unit's Party committee.
    pub fn committee_vi(self) -> &'static str {
        match self {
            UnitKind::City => "Thành ủy",
            UnitKind::Town => "Thị ủy",
            UnitKind::District => "Huyện ủy",
        }
    }
}

/// A period during which a unit had one type. Bounds are inclusive; a missing bound is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitPeriod {
    pub kind: UnitKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Date>,
}

impl UnitPeriod {
    fn contains(&self, date: Date) -> bool {
        self.from.is_none_or(|f| f <= date) && self.until.is_none_or(|u| date <= u)
    }
}

/// A district-level unit (huyện, thị xã, thành phố).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub id: UnitId,
    /// Vietnamese name with diacritics, e.g. `Long Xuyên`.
    pub name: String,
    pub periods: Vec<UnitPeriod>,
    /// The last day its police Party committee (Đảng bộ Công an huyện) existed, if it
    /// ended; before that day it existed whenever the unit did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub police_committee_until: Option<Date>,
}

impl Unit {
    /// The unit's type on a date, or `None` if the unit did not exist then.
    pub fn kind_on(&self, date: Date) -> Option<UnitKind> {
        self.periods
            .iter()
            .find(|p| p.contains(date))
            .map(|p| p.kind)
    }
    /// Did the unit's police Party committee exist on `date`?
    pub fn police_committee_on(&self, date: Date) -> bool {
        self.kind_on(date).is_some() && self.police_committee_until.is_none_or(|u| date <= u)
    }
    /// The unit's latest type (for display when no date is at hand).
    pub fn current_kind(&self) -> UnitKind {
        self.periods
            .last()
            .map(|p| p.kind)
            .unwrap_or(UnitKind::District)
    }
    /// Its kind on `date` if it existed then, else (or without a date) its current one:
    /// what names its bodies in a record of that day.
    pub fn kind_at(&self, date: Option<Date>) -> UnitKind {
        date.and_then(|d| self.kind_on(d))
            .unwrap_or_else(|| self.current_kind())
    }
    /// e.g. `Ban Thường vụ Thành ủy Long Xuyên`.
    pub fn standing_committee_vi(&self, kind: UnitKind) -> String {
        format!("Ban Thường vụ {} {}", kind.committee_vi(), self.name)
    }
    /// e.g. `Đảng bộ Công an thành phố Long Xuyên`.
    pub fn police_committee_vi(&self, kind: UnitKind) -> String {
        format!("Đảng bộ Công an {} {}", kind.label_vi(), self.name)
    }
}

/// A Party congress term with its dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    pub id: TermId,
    pub starts_on: Date,
    pub ends_on: Date,
}

impl Term {
    pub fn contains(&self, date: Date) -> bool {
        self.starts_on <= date && date <= self.ends_on
    }
}

/// A province's reference data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Province {
    pub id: String,
    pub name: String,
    pub terms: Vec<Term>,
    pub units: Vec<Unit>,
    #[serde(skip)]
    index: BTreeMap<UnitId, usize>,
}

/// Why a province file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvinceError {
    #[error("the province file is not valid TOML for this schema: {0}")]
    Syntax(String),
    #[error("unit `{0}` is listed twice")]
    DuplicateUnit(UnitId),
    #[error("unit `{0}` has no type: give `kind` or `periods`")]
    NoPeriods(UnitId),
    #[error("unit `{0}` has overlapping or unordered periods")]
    BadPeriods(UnitId),
    #[error("unit `{0}` has an empty name")]
    EmptyName(UnitId),
    #[error("term `{0}` ends before it starts, or is listed twice")]
    BadTerm(TermId),
    #[error("the province lists no units")]
    NoUnits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvinceFile {
    id: String,
    name: String,
    #[serde(default)]
    terms: Vec<Term>,
    units: Vec<UnitFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitFile {
    id: UnitId,
    name: String,
    kind: Option<UnitKind>,
    #[serde(default)]
    periods: Vec<UnitPeriod>,
    #[serde(default)]
    police_committee_until: Option<Date>,
}

impl Province {
    /// Parses and validates a province file.
    pub fn from_toml_str(text: &str) -> Result<Self, ProvinceError> {
        let file: ProvinceFile =
            toml::from_str(text).map_err(|e| ProvinceError::Syntax(e.to_string()))?;
        let mut units = Vec::with_capacity(file.units.len());
        for u in file.units {
            let mut periods = u.periods;
            if let Some(kind) = u.kind {
                periods.insert(
                    0,
                    UnitPeriod {
                        kind,
                        from: None,
                        until: None,
                    },
                );
            }
            if periods.is_empty() {
                return Err(ProvinceError::NoPeriods(u.id));
            }
            if u.name.trim().is_empty() {
                return Err(ProvinceError::EmptyName(u.id));
            }
            // Periods must be ordered and disjoint: each one ends before the next begins.
            for pair in periods.windows(2) {
                match (pair[0].until, pair[1].from) {
                    (Some(until), Some(from)) if until < from => {}
                    _ => return Err(ProvinceError::BadPeriods(u.id)),
                }
            }
            if periods
                .iter()
                .any(|p| matches!((p.from, p.until), (Some(f), Some(t)) if t < f))
            {
                return Err(ProvinceError::BadPeriods(u.id));
            }
            units.push(Unit {
                id: u.id,
                name: u.name.trim().to_owned(),
                periods,
                police_committee_until: u.police_committee_until,
            });
        }
        Self::new(file.id, file.name, file.terms, units)
    }

    /// Builds a province from parts, validating them.
    pub fn new(
        id: String,
        name: String,
        terms: Vec<Term>,
        units: Vec<Unit>,
    ) -> Result<Self, ProvinceError> {
        if units.is_empty() {
            return Err(ProvinceError::NoUnits);
        }
        let mut index = BTreeMap::new();
        for (i, unit) in units.iter().enumerate() {
            if index.insert(unit.id.clone(), i).is_some() {
                return Err(ProvinceError::DuplicateUnit(unit.id.clone()));
            }
        }
        for (i, term) in terms.iter().enumerate() {
            if term.ends_on < term.starts_on || terms[..i].iter().any(|t| t.id == term.id) {
                return Err(ProvinceError::BadTerm(term.id));
            }
        }
        Ok(Self {
            id,
            name,
            terms,
            units,
            index,
        })
    }

    pub fn unit(&self, id: &UnitId) -> Option<&Unit> {
        self.index.get(id).map(|&i| &self.units[i])
    }

    pub fn term(&self, id: TermId) -> Option<&Term> {
        self.terms.iter().find(|t| t.id == id)
    }
}

/// The An Giang reference data shipped with the repository, for tests and defaults.
pub const AN_GIANG_TOML: &str = include_str!("../../../deploy/provinces/an-giang.toml");

/// The embedded reference province, parsed once (tests, benchmarks and defaults).
pub fn an_giang() -> &'static Province {
    static AN_GIANG: std::sync::LazyLock<Province> = std::sync::LazyLock::new(|| {
        Province::from_toml_str(AN_GIANG_TOML).expect("the embedded province file is valid")
    });
    &AN_GIANG
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn an_giang_has_eleven_units_and_tinh_bien_changes_type() {
        let p = Province::from_toml_str(AN_GIANG_TOML).unwrap();
        assert_eq!(p.units.len(), 11);
        let tb = p.unit(&UnitId::parse("tinh-bien").unwrap()).unwrap();
        assert_eq!(tb.name, "Tịnh Biên");
        assert_eq!(tb.kind_on(d("2023-04-09")), Some(UnitKind::District));
        assert_eq!(tb.kind_on(d("2023-04-10")), Some(UnitKind::Town));
        assert_eq!(
            tb.standing_committee_vi(UnitKind::Town),
            "Ban Thường vụ Thị ủy Tịnh Biên"
        );
        let lx = p.unit(&UnitId::parse("long-xuyen").unwrap()).unwrap();
        assert_eq!(
            lx.police_committee_vi(lx.current_kind()),
            "Đảng bộ Công an thành phố Long Xuyên"
        );
        let term = p.term(TermId::parse("2020-2025").unwrap()).unwrap();
        assert!(term.contains(d("2022-06-01")));
        assert!(!term.contains(d("2019-12-31")));
    }

    // The 2025 reorganization: district police ended 2025-03-01 (Bộ Công an, after
    // Kết luận 121-KL/TW); the district level ended 2025-07-01 (Nghị quyết 203/2025/QH15
    // amending the Constitution, art. 110).
    #[test]
    fn units_and_their_police_committees_end_in_2025() {
        let p = Province::from_toml_str(AN_GIANG_TOML).unwrap();
        for unit in &p.units {
            assert!(unit.police_committee_on(d("2025-02-28")), "{}", unit.id);
            assert!(!unit.police_committee_on(d("2025-03-01")), "{}", unit.id);
            assert!(unit.kind_on(d("2025-06-30")).is_some(), "{}", unit.id);
            assert!(unit.kind_on(d("2025-07-01")).is_none(), "{}", unit.id);
            assert!(!unit.police_committee_on(d("2025-07-01")));
        }
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let dup = "id='x'\nname='X'\n[[units]]\nid='a'\nname='A'\nkind='city'\n[[units]]\nid='a'\nname='B'\nkind='town'\n";
        assert!(matches!(
            Province::from_toml_str(dup),
            Err(ProvinceError::DuplicateUnit(_))
        ));
        let no_kind = "id='x'\nname='X'\n[[units]]\nid='a'\nname='A'\n";
        assert!(matches!(
            Province::from_toml_str(no_kind),
            Err(ProvinceError::NoPeriods(_))
        ));
        let overlap = "id='x'\nname='X'\n[[units]]\nid='a'\nname='A'\nperiods=[{kind='district', until='2023-05-01'},{kind='town', from='2023-04-10'}]\n";
        assert!(matches!(
            Province::from_toml_str(overlap),
            Err(ProvinceError::BadPeriods(_))
        ));
        let bad_slug = "id='x'\nname='X'\n[[units]]\nid='Long Xuyên'\nname='A'\nkind='city'\n";
        assert!(matches!(
            Province::from_toml_str(bad_slug),
            Err(ProvinceError::Syntax(_))
        ));
        assert!(matches!(
            Province::from_toml_str("id='x'\nname='X'\nunits=[]"),
            Err(ProvinceError::NoUnits)
        ));
    }
}
