//! A record as a person in an office reads it: its fields under Vietnamese names, coded
//! values (a body, a unit, a form of discipline, a date) as the offices write them, each
//! event of its history by what happened, offices by their names. The API keeps the
//! codes (`GET /v1/inspections/{id}`); the web console and `coordctl show` render the
//! same view with these.
//!
//! Coded values are read with the domain's own types and named by their `label_vi`
//! (`coord_domain`), so a label is written once for the console, the timeline and the
//! CLI. A value the domain does not know (a newer schema) is shown as it is.

use coord_domain::discipline::{AppealResolution, DisciplineForm, Membership};
use coord_domain::exchange::{Channel, Topic};
use coord_domain::inspection::{Category, InspectionKind, Outcome};
use coord_domain::rulebook::ViolationCategory;
use coord_domain::{Body, Date, PoliceOrganization, Province};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// One field of a record: its Vietnamese name and its value as written for people.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Line {
    pub label: String,
    pub value: String,
    /// The field's name in the API (`basis.reference`), for whoever compares.
    pub name: String,
}

/// Field names, by their dotted path in the record's JSON. A field not listed is
/// shown under its API name.
const FIELDS: &[(&str, &str)] = &[
    ("inspection_id", "Mã cuộc kiểm tra, giám sát"),
    ("exchange_id", "Mã trao đổi thông tin"),
    ("case_id", "Mã vụ việc"),
    ("term", "Nhiệm kỳ"),
    ("unit", "Đơn vị"),
    ("kind", "Loại"),
    ("category", "Nội dung"),
    ("coordinating_body", "Cơ quan phối hợp"),
    ("target", "Đối tượng kiểm tra, giám sát"),
    ("leading_body", "Cơ quan chủ trì"),
    ("decision_ref", "Số quyết định"),
    ("decided_on", "Ngày quyết định"),
    ("planned_start", "Ngày bắt đầu dự kiến"),
    ("planned_end", "Ngày kết thúc dự kiến"),
    ("started_on", "Ngày bắt đầu"),
    ("concluded_on", "Ngày kết luận"),
    ("outcome", "Kết quả"),
    ("summary", "Tóm tắt kết luận"),
    ("conclusion_ref", "Số thông báo kết luận"),
    ("cancelled_on", "Ngày hủy"),
    ("reason", "Lý do"),
    ("from", "Nơi gửi"),
    ("to", "Nơi nhận"),
    ("topic", "Nội dung trao đổi"),
    ("subject", "Trích yếu"),
    ("sent_on", "Ngày gửi"),
    ("channel", "Hình thức gửi"),
    ("link.kind", "Liên quan đến"),
    ("link.id", "Mã hồ sơ liên quan"),
    ("by", "Cơ quan tiếp nhận"),
    ("acknowledged_on", "Ngày tiếp nhận"),
    ("subject.kind", "Đối tượng kỷ luật"),
    ("subject.name", "Tên tổ chức đảng"),
    ("subject.member", "Đảng viên (mã)"),
    ("subject.membership", "Đảng viên chính thức / dự bị"),
    ("subject.holds_post", "Giữ chức vụ"),
    ("basis.kind", "Căn cứ"),
    ("basis.body", "Cơ quan kết luận"),
    ("basis.reference", "Số văn bản kết luận"),
    ("basis.inspection_id", "Cuộc kiểm tra đã kết luận"),
    ("violation.committed_on", "Ngày vi phạm"),
    ("violation.ended_on", "Ngày chấm dứt vi phạm"),
    ("violation.category", "Loại vi phạm"),
    ("opened_on", "Ngày mở vụ việc"),
    ("form", "Hình thức kỷ luật"),
    ("deciding_body", "Cơ quan quyết định"),
    ("closed_on", "Ngày đóng"),
    ("appealed_on", "Ngày khiếu nại"),
    ("grounds", "Lý do khiếu nại"),
    ("resolution.outcome", "Kết quả giải quyết khiếu nại"),
    ("resolution.form", "Hình thức mới"),
    ("resolving_body", "Cơ quan giải quyết"),
    ("resolved_on", "Ngày giải quyết"),
    ("reference", "Số văn bản"),
    ("form_in_force", "Hình thức kỷ luật đang có hiệu lực"),
];

/// The record's fields in the order [`FIELDS`] lists them (then any others), nested
/// objects flattened to dotted names.
///
/// Bodies and units are named as they were on `on` (the record's first day: a unit
/// that became a town since keeps the name it had then), as the timeline names them.
pub fn fields(province: &Province, fields: &Map<String, Value>, on: Option<Date>) -> Vec<Line> {
    let mut flat = Vec::new();
    flatten("", fields, &mut flat);
    let rank = |name: &str| FIELDS.iter().position(|(n, _)| *n == name);
    flat.sort_by_key(|(name, _)| rank(name).unwrap_or(FIELDS.len()));
    flat.into_iter()
        .map(|(name, v)| Line {
            label: rank(&name).map_or_else(|| name.clone(), |i| FIELDS[i].1.to_owned()),
            value: value(province, on, &name, &v),
            name,
        })
        .collect()
}

fn flatten(prefix: &str, object: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (key, v) in object {
        let name = format!("{prefix}{key}");
        match v {
            Value::Object(inner) => flatten(&format!("{name}."), inner, out),
            _ => out.push((name, v.clone())),
        }
    }
}

/// Fields that hold a date: `decided_on`, `violation.committed_on`, `planned_start`.
fn is_date(name: &str) -> bool {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    leaf.ends_with("_on") || leaf.starts_with("planned_")
}

/// `v` read as the domain type `T` and named by `label`.
fn coded<T: DeserializeOwned>(v: &Value, label: impl Fn(T) -> String) -> Option<String> {
    serde_json::from_value(v.clone()).ok().map(label)
}

/// The first letter in upper case: a label standing alone.
pub fn capital(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars).collect::<String>()
    })
}

/// The value of field `name` as the offices write it.
fn value(province: &Province, on: Option<Date>, name: &str, v: &Value) -> String {
    let label = |l: &str| capital(l);
    let known = match name {
        "coordinating_body" | "leading_body" | "from" | "to" | "by" | "deciding_body"
        | "resolving_body" | "basis.body" => coded(v, |b: Body| b.label_vi(province, on)),
        "unit" => v.as_str().map(|u| unit_name(province, u)),
        "target" => v
            .as_str()
            .and_then(|t| t.parse::<PoliceOrganization>().ok())
            .and_then(|p| {
                let unit = province.unit(&p.0)?;
                Some(unit.police_committee_vi(unit.kind_at(on)))
            }),
        "kind" => coded(v, |k: InspectionKind| label(k.label_vi())),
        "category" => coded(v, |c: Category| label(c.label_vi())),
        "outcome" => coded(v, |o: Outcome| label(o.label_vi())),
        "topic" => coded(v, |t: Topic| label(t.label_vi())),
        "channel" => coded(v, |c: Channel| label(c.label_vi())),
        "form" | "form_in_force" | "resolution.form" => {
            coded(v, |f: DisciplineForm| label(f.label_vi()))
        }
        "subject.membership" => coded(v, |m: Membership| label(m.label_vi())),
        "violation.category" => coded(v, |c: ViolationCategory| label(c.label_vi())),
        "subject.kind" => match v.as_str() {
            Some("organization") => Some("Tổ chức đảng".into()),
            Some("member") => Some("Đảng viên".into()),
            _ => None,
        },
        "basis.kind" => match v.as_str() {
            Some("central_conclusion") => Some("Kết luận của cấp Trung ương".into()),
            Some("inspection") => Some("Kết luận kiểm tra".into()),
            _ => None,
        },
        "resolution.outcome" => match v.as_str() {
            Some("upheld") => Some(label(AppealResolution::UPHELD_VI)),
            Some("changed_to") => Some(label(AppealResolution::CHANGED_VI)),
            Some("annulled") => Some(label(AppealResolution::ANNULLED_VI)),
            _ => None,
        },
        "link.kind" => match v.as_str() {
            Some("inspection") => Some("Cuộc kiểm tra, giám sát".into()),
            Some("discipline_case") => Some("Vụ việc kỷ luật".into()),
            _ => None,
        },
        _ => None,
    };
    known.unwrap_or_else(|| match v {
        Value::Null => "—".into(),
        Value::Bool(true) => "Có".into(),
        Value::Bool(false) => "Không".into(),
        // A date by its field's name: free text that looks like a date stays as written.
        Value::String(s) if is_date(name) => vi_date(s).unwrap_or_else(|| s.clone()),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// A unit's name (`an-phu` → `An Phú`); its id if the province file does not know it.
pub fn unit_name(province: &Province, unit: &str) -> String {
    province
        .units
        .iter()
        .find(|u| u.id.as_str() == unit)
        .map_or_else(|| unit.to_owned(), |u| u.name.clone())
}

/// `province` → `Đảng ủy Công an tỉnh`; `district:long-xuyen` → `Thành ủy Long Xuyên`.
pub fn office(province: &Province, office: &coord_domain::Office) -> String {
    match office {
        coord_domain::Office::Province => "Đảng ủy Công an tỉnh".into(),
        coord_domain::Office::District(id) => match province.unit(id) {
            Some(unit) => format!("{} {}", unit.current_kind().committee_vi(), unit.name),
            None => office.to_string(),
        },
    }
}

/// An office as the API writes it (`district:an-phu`), said as [`office`] says it; a
/// text that is not an office is shown as it is.
pub fn office_text(province: &Province, office_id: &str) -> String {
    office_id
        .parse()
        .map_or_else(|_| office_id.to_owned(), |o| office(province, &o))
}

/// Vietnam's time (UTC+7, no daylight saving): what "today" and a moment mean to the
/// offices.
pub fn vietnam_time() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(7 * 3600).expect("UTC+7 is a valid offset")
}

/// A day as the offices write it: `01/03/2024`.
pub fn vi_day(day: Date) -> String {
    day.format("%d/%m/%Y").to_string()
}

/// A date as people in the offices write it: `2024-03-01` → `01/03/2024`, a month
/// `2024-03` → `03/2024`, a moment (RFC 3339) → `01/03/2024 14:05` in Vietnam's time;
/// `None` for anything else.
pub fn vi_date(v: &str) -> Option<String> {
    let v = v.trim();
    if let Ok(day) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Some(vi_day(day));
    }
    if let Ok(month) = chrono::NaiveDate::parse_from_str(&format!("{v}-01"), "%Y-%m-%d") {
        return Some(month.format("%m/%Y").to_string());
    }
    let moment = chrono::DateTime::parse_from_rfc3339(v).ok()?;
    Some(
        moment
            .with_timezone(&vietnam_time())
            .format("%d/%m/%Y %H:%M")
            .to_string(),
    )
}

/// A record's kind, as a heading says it.
pub fn record_kind(kind: &str) -> &str {
    match kind {
        "inspection" => "Cuộc kiểm tra, giám sát",
        "exchange" => "Trao đổi thông tin",
        "discipline_case" => "Vụ việc kỷ luật",
        other => other,
    }
}

/// What an event says happened, by its type; an unknown type (a newer schema) as it is.
pub fn event(event_type: &str) -> &str {
    match event_type {
        "InspectionScheduled" => "Quyết định kiểm tra, giám sát",
        "InspectionStarted" => "Bắt đầu kiểm tra, giám sát",
        "InspectionConcluded" => "Kết luận kiểm tra, giám sát",
        "InspectionCancelled" => "Hủy kiểm tra, giám sát",
        "InformationExchanged" => "Gửi thông tin",
        "InformationAcknowledged" => "Tiếp nhận thông tin",
        "DisciplineCaseOpened" => "Mở vụ việc kỷ luật",
        "DisciplineDecided" => "Quyết định kỷ luật",
        "DisciplineCaseClosed" => "Đóng vụ việc (không thi hành kỷ luật)",
        "DisciplineAppealed" => "Khiếu nại quyết định kỷ luật",
        "AppealResolved" => "Giải quyết khiếu nại",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(v: Value) -> Vec<Line> {
        let Value::Object(map) = v else { panic!() };
        fields(coord_domain::province::an_giang(), &map, None)
    }

    fn shown<'a>(lines: &'a [Line], name: &str) -> (&'a str, &'a str) {
        let line = lines.iter().find(|l| l.name == name).expect(name);
        (&line.label, &line.value)
    }

    #[test]
    fn a_record_reads_in_vietnamese_names_and_values() {
        let l = lines(json!({
            "case_id": "0190c2a4-0000-7000-8000-000000000001",
            "unit": "long-xuyen",
            "subject": {"kind": "organization", "name": "Chi bộ 1"},
            "basis": {"kind": "central_conclusion", "body": "central_inspection_commission",
                      "reference": "KL 1"},
            "form": "warning",
            "deciding_body": "district_standing_committee:long-xuyen",
            "decided_on": "2024-03-01",
            "resolution": {"outcome": "annulled"},
            "form_in_force": null,
            "violation": {"committed_on": "2024-01-05", "category": "internal_politics"},
            "grounds": "2024-01",
            "newer_field": "x"
        }));
        assert_eq!(shown(&l, "unit"), ("Đơn vị", "Long Xuyên"));
        assert_eq!(
            shown(&l, "subject.kind"),
            ("Đối tượng kỷ luật", "Tổ chức đảng")
        );
        assert_eq!(shown(&l, "basis.body").1, "Ủy ban Kiểm tra Trung ương");
        assert_eq!(shown(&l, "form"), ("Hình thức kỷ luật", "Cảnh cáo"));
        assert_eq!(
            shown(&l, "deciding_body").1,
            "Ban Thường vụ Thành ủy Long Xuyên"
        );
        assert_eq!(shown(&l, "decided_on"), ("Ngày quyết định", "01/03/2024"));
        assert_eq!(shown(&l, "resolution.outcome").1, "Xóa hình thức kỷ luật");
        assert_eq!(shown(&l, "form_in_force").1, "—");
        assert_eq!(shown(&l, "newer_field"), ("newer_field", "x"));
        assert_eq!(shown(&l, "violation.committed_on").1, "05/01/2024");
        assert_eq!(
            shown(&l, "violation.category").1,
            "Vi phạm về chính trị nội bộ"
        );
        // Free text is never read as a date.
        assert_eq!(shown(&l, "grounds").1, "2024-01");
        // Listed fields first, in the table's order; unknown ones last.
        assert_eq!(l.first().unwrap().name, "case_id");
        assert_eq!(l.last().unwrap().name, "newer_field");
    }

    #[test]
    fn an_inspection_names_its_target_and_codes() {
        let l = lines(json!({
            "target": "district_police:long-xuyen", "kind": "supervision",
            "category": "thematic", "outcome": "shortcomings"
        }));
        assert_eq!(
            shown(&l, "target").1,
            "Đảng bộ Công an thành phố Long Xuyên"
        );
        assert_eq!(shown(&l, "kind").1, "Giám sát");
        assert_eq!(shown(&l, "category").1, "Chuyên đề");
        assert_eq!(shown(&l, "outcome").1, "Có khuyết điểm");
    }

    #[test]
    fn an_office_is_named_as_people_say_it() {
        let province = coord_domain::province::an_giang();
        let office = |o: &str| office(province, &o.parse().unwrap());
        assert_eq!(office("province"), "Đảng ủy Công an tỉnh");
        assert_eq!(office("district:long-xuyen"), "Thành ủy Long Xuyên");
        assert_eq!(office("district:an-phu"), "Huyện ủy An Phú");
        assert_eq!(office_text(province, "not an office"), "not an office");
    }

    #[test]
    fn every_event_type_has_a_vietnamese_name() {
        for t in coord_feed::catalog::catalog() {
            let t = t.event_type.as_str();
            assert_ne!(event(t), t, "{t} has no Vietnamese name");
        }
    }
}
