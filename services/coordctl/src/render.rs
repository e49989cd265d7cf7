//! Tables for people: Vietnamese labels with their diacritics, English alongside.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, ContentArrangement, Table};
use coord_proto::Accepted;
use coord_proto::labels;
use coord_proto::read::{
    DisciplineCounts, DistrictStatus, MemberDiscipline, OrganizationDiscipline, ProvinceSummary,
    TimelinePage,
};
use serde_json::Value;

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header.iter().map(Cell::new));
    t
}

fn kind_vi(kind: &str) -> &'static str {
    match kind {
        "city" => "thành phố",
        "town" => "thị xã",
        _ => "huyện",
    }
}

fn yes(b: bool) -> &'static str {
    if b { "có (yes)" } else { "chưa (no)" }
}

/// `reprimand / warning / dissolution`.
fn organization_forms(o: &OrganizationDiscipline) -> String {
    format!("{} / {} / {}", o.reprimand, o.warning, o.dissolution)
}

/// `reprimand / warning / removal from post / expulsion`.
fn member_forms(m: &MemberDiscipline) -> String {
    format!(
        "{} / {} / {} / {}",
        m.reprimand, m.warning, m.removal_from_post, m.expulsion
    )
}

/// People and decisions: `organizations / members` disciplined, each once.
const PEOPLE_ROW: &str = "Bị kỷ luật: tổ chức đảng / đảng viên (disciplined, each counted once)";
/// Decisions in force: a member disciplined in two cases has two.
const DECISIONS_ROW: &str = "Quyết định kỷ luật: tổ chức đảng / đảng viên (decisions in force)";

fn people(d: &DisciplineCounts) -> String {
    format!(
        "{} / {}",
        d.organizations_disciplined, d.members_disciplined
    )
}

fn decisions(d: &DisciplineCounts) -> String {
    format!("{} / {}", d.organization_decisions, d.member_decisions)
}

/// The province summary.
pub fn summary(s: &ProvinceSummary, districts: &[DistrictStatus]) -> String {
    let name_of = |unit: &str| {
        districts
            .iter()
            .find(|d| d.unit == unit)
            .map(|d| d.name.clone())
            .unwrap_or(unit.into())
    };
    let outstanding: Vec<String> = s.districts_outstanding.iter().map(|u| name_of(u)).collect();
    let mut t = table(&["Chỉ tiêu (measure)", "Giá trị (value)"]);
    let i = &s.inspections;
    let (o, m) = (&s.discipline.organizations, &s.discipline.members);
    let rows: Vec<(&str, String)> = vec![
        (
            "Tỉnh, nhiệm kỳ (province, term)",
            format!("{} — {}", s.province, s.term),
        ),
        (
            "Đơn vị cấp huyện (district-level units)",
            s.districts_total.to_string(),
        ),
        (
            "Đã phối hợp (coordinated)",
            format!("{}/{}", s.districts_coordinated, s.districts_total),
        ),
        (
            "Đã được kiểm tra, giám sát (covered)",
            format!("{}/{}", s.districts_covered, s.districts_total),
        ),
        (
            "Chưa được kiểm tra, giám sát (outstanding)",
            if outstanding.is_empty() {
                "— (chỉ tiêu đạt, target met)".into()
            } else {
                outstanding.join(", ")
            },
        ),
        (
            "Lượt kiểm tra, giám sát: kế hoạch / đang tiến hành / đã kết luận / đã hủy",
            format!(
                "{} / {} / {} / {}",
                i.scheduled, i.in_progress, i.concluded, i.cancelled
            ),
        ),
        (
            "Trao đổi thông tin: đã gửi / chưa tiếp nhận (exchanges sent / unacknowledged)",
            format!("{} / {}", s.exchanges.sent, s.exchanges.unacknowledged),
        ),
        (
            "Kỷ luật tổ chức đảng: khiển trách / cảnh cáo / giải tán",
            organization_forms(o),
        ),
        (
            "Kỷ luật đảng viên: khiển trách / cảnh cáo / cách chức / khai trừ",
            member_forms(m),
        ),
        (PEOPLE_ROW, people(&s.discipline)),
        (DECISIONS_ROW, decisions(&s.discipline)),
        (
            "Hồ sơ kỷ luật đang xem xét (open cases)",
            s.discipline.open_cases.to_string(),
        ),
        ("Vị trí log (log position)", s.position.to_string()),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_owned(), v]);
    }
    if s.dead_letters > 0 {
        t.add_row(vec![
            "Sự kiện lỗi (dead letters)".to_owned(),
            s.dead_letters.to_string(),
        ]);
    }
    t.to_string()
}

/// Every district, one row each.
pub fn districts(ds: &[DistrictStatus]) -> String {
    let mut t = table(&[
        "Đơn vị (unit)",
        "Loại",
        "Phối hợp",
        "Đã KT, GS",
        "KT, GS kết luận/tổng",
        "Kết luận gần nhất",
        "Trao đổi gửi/chưa tiếp nhận",
        "KL tổ chức (số tổ chức / QĐ)",
        "KL đảng viên (số người / QĐ)",
    ]);
    for d in ds {
        let i = &d.inspections;
        let total = i.scheduled + i.in_progress + i.concluded + i.cancelled;
        let k = &d.discipline;
        t.add_row(vec![
            d.name.clone(),
            kind_vi(&d.kind).to_owned(),
            yes(d.coordinated).to_owned(),
            yes(d.covered).to_owned(),
            format!("{}/{}", i.concluded, total),
            d.last_conclusion_on
                .map(|x| x.to_string())
                .unwrap_or_else(|| "—".into()),
            format!("{}/{}", d.exchanges.sent, d.exchanges.unacknowledged),
            format!(
                "{} / {}",
                k.organizations_disciplined, k.organization_decisions
            ),
            format!("{} / {}", k.members_disciplined, k.member_decisions),
        ]);
    }
    t.to_string()
}

/// One district in detail.
pub fn district(d: &DistrictStatus) -> String {
    let mut t = table(&["", ""]);
    let i = &d.inspections;
    let (o, m) = (&d.discipline.organizations, &d.discipline.members);
    for (k, v) in [
        (
            "Đơn vị (unit)",
            format!("{} {} ({})", kind_vi(&d.kind), d.name, d.unit),
        ),
        (
            "Cấp ủy phối hợp (coordinating committee)",
            d.standing_committee.clone(),
        ),
        (
            "Tổ chức được kiểm tra (inspected organization)",
            d.police_committee.clone(),
        ),
        ("Nhiệm kỳ (term)", d.term.clone()),
        (
            "Đã phối hợp / đã được kiểm tra, giám sát",
            format!("{} / {}", yes(d.coordinated), yes(d.covered)),
        ),
        (
            "KT, GS: kế hoạch / đang tiến hành / kết luận / hủy",
            format!(
                "{} / {} / {} / {}",
                i.scheduled, i.in_progress, i.concluded, i.cancelled
            ),
        ),
        (
            "Kết luận gần nhất (last conclusion)",
            d.last_conclusion_on
                .map(|x| x.to_string())
                .unwrap_or_else(|| "—".into()),
        ),
        (
            "Kết luận sau nhiệm kỳ, không tính (concluded after the term)",
            d.concluded_after_term.to_string(),
        ),
        (
            "Trao đổi: tỉnh → huyện / huyện → tỉnh / chưa tiếp nhận",
            format!(
                "{} / {} / {}",
                d.exchanges.to_district, d.exchanges.to_province, d.exchanges.unacknowledged
            ),
        ),
        (
            "Kỷ luật tổ chức: khiển trách / cảnh cáo / giải tán",
            organization_forms(o),
        ),
        (
            "Kỷ luật đảng viên: khiển trách / cảnh cáo / cách chức / khai trừ",
            member_forms(m),
        ),
        (PEOPLE_ROW, people(&d.discipline)),
        (DECISIONS_ROW, decisions(&d.discipline)),
        (
            "Đang xem xét / đang khiếu nại (open / under appeal)",
            format!(
                "{} / {}",
                d.discipline.open_cases, d.discipline.appeals_pending
            ),
        ),
    ] {
        t.add_row(vec![k.to_owned(), v]);
    }
    t.to_string()
}

/// A timeline page.
pub fn timeline(p: &TimelinePage) -> String {
    let mut t = table(&[
        "Ngày (date)",
        "Sự kiện (event)",
        "Nội dung",
        "Cơ quan (office)",
    ]);
    for e in &p.entries {
        t.add_row(vec![
            e.occurred_at.to_string(),
            e.event_type.clone(),
            e.summary_vi.clone(),
            e.office.clone(),
        ]);
    }
    t.to_string()
}

/// The units list.
pub fn units(v: &Value) -> String {
    let mut t = table(&[
        "Mã (id)",
        "Tên (name)",
        "Loại (type)",
        "Ban Thường vụ (standing committee)",
    ]);
    for u in v["units"].as_array().into_iter().flatten() {
        t.add_row(vec![
            u["id"].as_str().unwrap_or_default().to_owned(),
            u["name"].as_str().unwrap_or_default().to_owned(),
            u["kind_vi"].as_str().unwrap_or_default().to_owned(),
            u["standing_committee"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ]);
    }
    t.to_string()
}

/// A command's answer.
pub fn accepted(a: &Accepted) -> String {
    format!(
        "{} {} — phiên bản (version) {}, vị trí log (position) {}, sự kiện (events) {}",
        if a.duplicate {
            "Đã có từ trước (already applied):"
        } else {
            "Đã ghi nhận (accepted):"
        },
        a.stream_id,
        a.stream_version,
        a.position,
        a.event_ids
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// One line per followed event.
pub fn event_line(e: &Value) -> String {
    format!(
        "{}:{}  {}  {:<24} {}  ({}, {})",
        e["position"]["commit"],
        e["position"]["index"],
        e["occurred_at"].as_str().unwrap_or_default(),
        e["event_type"].as_str().unwrap_or_default(),
        e["stream_id"].as_str().unwrap_or_default(),
        e["office"].as_str().unwrap_or_default(),
        e["actor"].as_str().unwrap_or_default(),
    )
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// One record (`GET /v1/{kind}/{id}`): what it is, where it stands, its fields, named
/// and valued as the offices write them ([`coord_proto::labels`], as the web console
/// does), each with its API name alongside.
pub fn record(r: &Value) -> String {
    let province = coord_domain::province::an_giang();
    let mut t = table(&["Mục (field)", "Giá trị (value)"]);
    let kind = r["kind"].as_str().unwrap_or_default();
    let head = [
        (
            "Loại hồ sơ (kind)".to_owned(),
            format!("{} ({kind})", labels::record_kind(kind)),
        ),
        ("Mã (id)".to_owned(), plain(&r["id"])),
        (
            "Cơ quan (office)".to_owned(),
            labels::office_text(province, r["office"].as_str().unwrap_or_default()),
        ),
        (
            "Trạng thái (status)".to_owned(),
            format!("{} ({})", plain(&r["status_vi"]), plain(&r["status"])),
        ),
        (
            "Phiên bản (version, If-Match)".to_owned(),
            plain(&r["version"]),
        ),
        (
            "Vị trí log (log position)".to_owned(),
            plain(&r["position"]),
        ),
    ];
    for (k, v) in head {
        t.add_row(vec![k, v]);
    }
    // The record's own first event (a companion's may come first in the log).
    let on = r["history"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["stream_id"] == r["stream_id"])
        .and_then(|h| h["occurred_at"].as_str()?.parse().ok());
    let empty = serde_json::Map::new();
    let fields = r["fields"].as_object().unwrap_or(&empty);
    for line in labels::fields(province, fields, on) {
        let label = if line.label == line.name {
            line.name
        } else {
            format!("{} ({})", line.label, line.name)
        };
        t.add_row(vec![label, line.value]);
    }
    t.to_string()
}

/// A record's events and its companion's, in the log's order.
pub fn record_history(r: &Value) -> String {
    let province = coord_domain::province::an_giang();
    let mut t = table(&[
        "#",
        "Ngày (date)",
        "Sự kiện (event)",
        "Cơ quan (office)",
        "Người thực hiện (actor)",
        "Vị trí log (position)",
    ]);
    for (n, step) in r["history"].as_array().into_iter().flatten().enumerate() {
        let event_type = step["event_type"].as_str().unwrap_or_default();
        let date = step["occurred_at"].as_str().unwrap_or_default();
        t.add_row(vec![
            (n + 1).to_string(),
            labels::vi_date(date).unwrap_or_else(|| date.to_owned()),
            format!("{} ({event_type})", labels::event(event_type)),
            labels::office_text(province, step["office"].as_str().unwrap_or_default()),
            plain(&step["actor"]),
            plain(&step["position"]),
        ]);
    }
    t.to_string()
}
