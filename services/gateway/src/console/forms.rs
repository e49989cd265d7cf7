//! The district page's forms: one per command route an office may send about a unit,
//! each a list of fields with Vietnamese labels. A submitted form becomes the command's
//! JSON body (dotted names nest: `violation.committed_on`; empty fields are left out;
//! what the page's unit fixes, such as the coordinating body, is filled in here) and
//! goes through [`crate::commands::execute`], the API's own command path. A refusal
//! comes back as its problem document with a Vietnamese message and the field it names.
//!
//! Which forms a visitor sees follows the domain's acting offices
//! (`coord_domain::ActingOffice`): the province leads inspections and cases and sends
//! and acknowledges on its side; a district sends, acknowledges and appeals on its own
//! unit's page only; a reader or an admin sends nothing.

use coord_auth::{Claims, Role};
use coord_domain::Office;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::problem::Problem;

/// How a field is entered.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "type", content = "options", rename_all = "snake_case")]
pub enum Input {
    Date,
    Text,
    /// A record's id (UUID).
    Id,
    Select(&'static [(&'static str, &'static str)]),
}

/// One field of a form.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Field {
    pub name: &'static str,
    pub label_vi: &'static str,
    pub input: Input,
    pub required: bool,
}

const fn f(name: &'static str, label_vi: &'static str, input: Input) -> Field {
    Field {
        name,
        label_vi,
        input,
        required: true,
    }
}

const fn optional(name: &'static str, label_vi: &'static str, input: Input) -> Field {
    Field {
        name,
        label_vi,
        input,
        required: false,
    }
}

/// Who may send a form about a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Province,
    /// Either side, as itself (an exchange is sent and acknowledged by both).
    Both,
    /// The unit's own office.
    Unit,
}

/// One form: a command route and its fields.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Form {
    /// The command, e.g. `inspection.schedule` (`coord_proto::ROUTES`).
    pub command: &'static str,
    pub title_vi: &'static str,
    pub fields: &'static [Field],
    #[serde(skip)]
    side: Side,
}

const KINDS: &[(&str, &str)] = &[("inspection", "Kiểm tra"), ("supervision", "Giám sát")];
const CATEGORIES: &[(&str, &str)] = &[
    ("compliance", "Chấp hành (chuyên đề)"),
    ("on_signs_of_violation", "Khi có dấu hiệu vi phạm"),
    (
        "inspection_work",
        "Việc thực hiện nhiệm vụ kiểm tra, giám sát",
    ),
    ("discipline_enforcement", "Thi hành kỷ luật"),
    ("finances", "Tài chính"),
    ("regular", "Giám sát thường xuyên"),
    ("thematic", "Giám sát chuyên đề"),
];
const LEADING: &[(&str, &str)] = &[
    (
        "provincial_standing_committee",
        "Ban Thường vụ Đảng ủy Công an tỉnh",
    ),
    (
        "provincial_inspection_commission",
        "Ủy ban Kiểm tra Đảng ủy Công an tỉnh",
    ),
];
const OUTCOMES: &[(&str, &str)] = &[
    ("no_violation", "Không vi phạm"),
    ("shortcomings", "Có khuyết điểm"),
    ("violations", "Có vi phạm"),
];
const TOPICS: &[(&str, &str)] = &[
    ("plan", "Kế hoạch kiểm tra, giám sát"),
    ("notice_before_inspection", "Thông báo trước khi kiểm tra"),
    ("conclusion", "Thông báo kết luận"),
    ("discipline_decision", "Quyết định kỷ luật"),
    ("consultation", "Trao đổi ý kiến trước khi kỷ luật"),
    ("other", "Khác"),
];
const FORMS_OF_DISCIPLINE: &[(&str, &str)] = &[
    ("reprimand", "Khiển trách"),
    ("warning", "Cảnh cáo"),
    // Quy định 69-QĐ/TW: removal from post and expulsion are for members, dissolution
    // for organizations; the form serves both kinds of case, so it says which.
    ("removal_from_post", "Cách chức (chỉ với đảng viên)"),
    ("expulsion", "Khai trừ (chỉ với đảng viên)"),
    ("dissolution", "Giải tán (chỉ với tổ chức đảng)"),
];
/// The bodies that decide discipline, then `extra` ones: one list for both selects.
macro_rules! deciding_bodies {
    ($($extra:expr),*) => {
        &[
            ("provincial_standing_committee", "Ban Thường vụ Đảng ủy Công an tỉnh"),
            ("provincial_inspection_commission", "Ủy ban Kiểm tra Đảng ủy Công an tỉnh"),
            ("central_inspection_commission", "Ủy ban Kiểm tra Trung ương"),
            (
                "central_public_security_standing_committee",
                "Ban Thường vụ Đảng ủy Công an Trung ương",
            ),
            $($extra),*
        ]
    };
}
const DECIDING: &[(&str, &str)] = deciding_bodies!();
/// Who may resolve an appeal: the deciding bodies, and the Secretariat (Ban Bí thư),
/// the last level of an appeal against expulsion.
const RESOLVING: &[(&str, &str)] = deciding_bodies!(("secretariat", "Ban Bí thư"));
const BASES: &[(&str, &str)] = &[("central_conclusion", "Kết luận của cấp Trung ương")];
const RESOLUTIONS: &[(&str, &str)] = &[
    // The domain's names (`AppealResolution::*_VI`), capitalized: a test holds them equal.
    ("upheld", "Giữ nguyên (chuẩn y)"),
    ("changed_to", "Thay đổi hình thức kỷ luật"),
    ("annulled", "Xóa hình thức kỷ luật"),
];

/// Every form, in the order the page shows them.
pub const FORMS: &[Form] = &[
    Form {
        command: "inspection.schedule",
        title_vi: "Quyết định kiểm tra, giám sát",
        side: Side::Province,
        fields: &[
            f("kind", "Loại", Input::Select(KINDS)),
            f("category", "Nội dung", Input::Select(CATEGORIES)),
            f("leading_body", "Cơ quan chủ trì", Input::Select(LEADING)),
            f("decision_ref", "Số quyết định", Input::Text),
            f("decided_on", "Ngày quyết định", Input::Date),
            f("planned_start", "Ngày bắt đầu dự kiến", Input::Date),
            f("planned_end", "Ngày kết thúc dự kiến", Input::Date),
        ],
    },
    Form {
        command: "inspection.start",
        title_vi: "Bắt đầu kiểm tra, giám sát",
        side: Side::Province,
        fields: &[
            f("inspection_id", "Mã cuộc kiểm tra, giám sát", Input::Id),
            f("started_on", "Ngày bắt đầu", Input::Date),
        ],
    },
    Form {
        command: "inspection.conclude",
        title_vi: "Kết luận kiểm tra, giám sát",
        side: Side::Province,
        fields: &[
            f("inspection_id", "Mã cuộc kiểm tra, giám sát", Input::Id),
            f("concluded_on", "Ngày kết luận", Input::Date),
            f("outcome", "Kết quả", Input::Select(OUTCOMES)),
            f("summary", "Tóm tắt kết luận", Input::Text),
            f("conclusion_ref", "Số thông báo kết luận", Input::Text),
        ],
    },
    Form {
        command: "inspection.cancel",
        title_vi: "Hủy kiểm tra, giám sát",
        side: Side::Province,
        fields: &[
            f("inspection_id", "Mã cuộc kiểm tra, giám sát", Input::Id),
            f("cancelled_on", "Ngày hủy", Input::Date),
            f("reason", "Lý do", Input::Text),
        ],
    },
    Form {
        command: "exchange.send",
        title_vi: "Gửi thông tin",
        side: Side::Both,
        fields: &[
            f("topic", "Nội dung trao đổi", Input::Select(TOPICS)),
            f("subject", "Trích yếu", Input::Text),
            f("sent_on", "Ngày gửi", Input::Date),
        ],
    },
    Form {
        command: "exchange.acknowledge",
        title_vi: "Tiếp nhận thông tin",
        side: Side::Both,
        fields: &[
            f("exchange_id", "Mã trao đổi thông tin", Input::Id),
            f("acknowledged_on", "Ngày tiếp nhận", Input::Date),
        ],
    },
    Form {
        command: "discipline.open",
        title_vi: "Mở vụ việc kỷ luật (tổ chức đảng)",
        side: Side::Province,
        fields: &[
            f("subject.name", "Tên tổ chức đảng", Input::Text),
            f("basis.kind", "Căn cứ", Input::Select(BASES)),
            f("basis.body", "Cơ quan kết luận", Input::Select(DECIDING)),
            f("basis.reference", "Số văn bản kết luận", Input::Text),
            f("violation.committed_on", "Ngày vi phạm", Input::Date),
            f("opened_on", "Ngày mở vụ việc", Input::Date),
        ],
    },
    Form {
        command: "discipline.decide",
        title_vi: "Quyết định kỷ luật",
        side: Side::Province,
        fields: &[
            f("case_id", "Mã vụ việc", Input::Id),
            f(
                "form",
                "Hình thức kỷ luật",
                Input::Select(FORMS_OF_DISCIPLINE),
            ),
            f(
                "deciding_body",
                "Cơ quan quyết định",
                Input::Select(DECIDING),
            ),
            f("decided_on", "Ngày quyết định", Input::Date),
            f("decision_ref", "Số quyết định", Input::Text),
        ],
    },
    Form {
        command: "discipline.close",
        title_vi: "Đóng vụ việc (không thi hành kỷ luật)",
        side: Side::Province,
        fields: &[
            f("case_id", "Mã vụ việc", Input::Id),
            f("closed_on", "Ngày đóng", Input::Date),
            f("reason", "Lý do", Input::Text),
        ],
    },
    Form {
        command: "discipline.appeal",
        title_vi: "Khiếu nại quyết định kỷ luật",
        side: Side::Unit,
        fields: &[
            f("case_id", "Mã vụ việc", Input::Id),
            f("appealed_on", "Ngày khiếu nại", Input::Date),
            f("grounds", "Lý do khiếu nại", Input::Text),
        ],
    },
    Form {
        command: "discipline.resolve_appeal",
        title_vi: "Giải quyết khiếu nại",
        side: Side::Province,
        fields: &[
            f("case_id", "Mã vụ việc", Input::Id),
            f(
                "resolution.outcome",
                "Kết quả giải quyết",
                Input::Select(RESOLUTIONS),
            ),
            optional(
                "resolution.form",
                "Hình thức mới (khi thay đổi)",
                Input::Select(FORMS_OF_DISCIPLINE),
            ),
            f(
                "resolving_body",
                "Cơ quan giải quyết",
                Input::Select(RESOLVING),
            ),
            f("resolved_on", "Ngày giải quyết", Input::Date),
            f("reference", "Số văn bản", Input::Text),
        ],
    },
];

/// The forms `claims` may send on unit `unit`'s page.
pub fn offered(claims: &Claims, unit: &str) -> Vec<&'static Form> {
    if claims.role != Role::Operator {
        return Vec::new();
    }
    let own_unit = matches!(&claims.office, Office::District(u) if u.as_str() == unit);
    FORMS
        .iter()
        .filter(|form| match (form.side, &claims.office) {
            (Side::Province, Office::Province) | (Side::Both, Office::Province) => true,
            (Side::Both | Side::Unit, Office::District(_)) => own_unit,
            _ => false,
        })
        .collect()
}

/// The form of `command` if `claims` may send it on `unit`'s page.
pub fn find(claims: &Claims, unit: &str, command: &str) -> Result<&'static Form, Problem> {
    offered(claims, unit)
        .into_iter()
        .find(|f| f.command == command)
        .ok_or_else(|| {
            Problem::new(
                coord_proto::ErrorKind::Forbidden,
                "form_not_offered",
                format!(
                    "office {} may not send {command} on this page",
                    claims.office
                ),
            )
        })
}

/// This office's body on `unit`'s page (the sender or the acknowledging body).
fn own_body(office: &Office, unit: &str) -> String {
    match office {
        Office::Province => "provincial_standing_committee".into(),
        Office::District(_) => format!("district_standing_committee:{unit}"),
    }
}

/// The other side's body (an exchange's recipient).
fn other_body(office: &Office, unit: &str) -> String {
    match office {
        Office::Province => format!("district_standing_committee:{unit}"),
        Office::District(_) => "provincial_standing_committee".into(),
    }
}

/// Sets `value` at a dotted `name` in `body`.
fn insert(body: &mut Map<String, Value>, name: &str, value: Value) {
    match name.split_once('.') {
        None => {
            body.insert(name.into(), value);
        }
        Some((head, rest)) => {
            let inner = body
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = inner {
                insert(inner, rest, value);
            }
        }
    }
}

/// The command's JSON body from the submitted fields and the page's unit and term.
pub fn body(
    form: &Form,
    office: &Office,
    unit: &str,
    term: &str,
    submitted: &std::collections::HashMap<String, String>,
) -> Map<String, Value> {
    let mut body = Map::new();
    for field in form.fields {
        if let Some(v) = submitted
            .get(field.name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            insert(&mut body, field.name, Value::String(v.to_owned()));
        }
    }
    let fixed: Vec<(&str, String)> = match form.command {
        "inspection.schedule" => vec![
            ("term", term.into()),
            ("unit", unit.into()),
            (
                "coordinating_body",
                format!("district_standing_committee:{unit}"),
            ),
            ("target", format!("district_police:{unit}")),
        ],
        "exchange.send" => vec![
            ("term", term.into()),
            ("unit", unit.into()),
            ("from", own_body(office, unit)),
            ("to", other_body(office, unit)),
        ],
        "exchange.acknowledge" => vec![("by", own_body(office, unit))],
        "discipline.open" => vec![
            ("term", term.into()),
            ("unit", unit.into()),
            ("subject.kind", "organization".into()),
        ],
        _ => Vec::new(),
    };
    for (name, value) in fixed {
        insert(&mut body, name, Value::String(value));
    }
    body
}

/// The field a refusal names: the first of the form's fields its detail mentions.
pub fn field_named(form: &Form, detail: &str) -> Option<&'static str> {
    form.fields
        .iter()
        .filter_map(|f| {
            let last = f.name.rsplit('.').next().unwrap_or(f.name);
            detail.find(last).map(|at| (at, f.name))
        })
        .min_by_key(|(at, _)| *at)
        .map(|(_, name)| name)
}

/// A problem's message in Vietnamese, by its stable code.
pub fn message_vi(code: &str) -> &'static str {
    match code {
        "dates_out_of_order" => "Ngày không hợp lệ: các ngày phải theo đúng thứ tự.",
        "outside_term" => "Ngày nằm ngoài nhiệm kỳ.",
        "malformed_command" | "malformed_json" => "Dữ liệu nhập chưa đúng hoặc còn thiếu.",
        "invalid_transition" => "Không thể thực hiện ở trạng thái hiện tại của hồ sơ.",
        "inspection_not_found" | "exchange_not_found" | "case_not_found" => {
            "Không tìm thấy hồ sơ với mã này."
        }
        "already_acknowledged" => "Thông tin này đã được tiếp nhận.",
        "acting_for_another_office" => "Cơ quan của bạn không được thực hiện việc này.",
        "role_cannot_send_commands" => "Tài khoản chỉ được xem, không được gửi.",
        "appeal_out_of_time" => "Đã quá thời hạn khiếu nại (một tháng kể từ quyết định).",
        "appeal_not_found" => "Chưa có khiếu nại đối với quyết định này.",
        "limitation_period_expired" => "Đã hết thời hiệu xử lý kỷ luật.",
        "deciding_body_without_authority" => "Cơ quan này không có thẩm quyền quyết định.",
        "removal_from_post_requires_post" => "Chỉ cách chức đảng viên có giữ chức vụ.",
        "concurrent_modification" => "Hồ sơ vừa được thay đổi: tải lại trang rồi thử lại.",
        "csrf_token_invalid" => "Biểu mẫu đã hết hiệu lực: tải lại trang rồi gửi lại.",
        "log_unavailable" | "nats_unavailable" => {
            "Không kết nối được nhật ký sự kiện (NATS): thử lại sau giây lát."
        }
        "invalid_token" | "missing_token" => {
            "Mã truy cập không hợp lệ (không do máy chủ này cấp, hoặc bị sửa)."
        }
        "token_expired" => "Mã truy cập đã hết hạn: xin quản trị cấp mã mới.",
        "office_not_hosted_here" => {
            "Mã truy cập này thuộc cơ quan có máy chủ riêng: đăng nhập tại máy chủ của cơ quan đó."
        }
        "invalid_session" | "session_expired" => "Phiên đăng nhập đã hết: đăng nhập lại.",
        "cross_site_form" => "Biểu mẫu được gửi từ trang khác: mở trang đăng nhập của máy chủ này.",
        "form_not_offered" => "Cơ quan của bạn không được gửi biểu mẫu này.",
        "form_not_for_organizations" => {
            "Hình thức kỷ luật này chỉ áp dụng với đảng viên, không áp dụng với tổ chức đảng."
        }
        "resolving_body_not_superior" => {
            "Cơ quan giải quyết khiếu nại phải là cấp trên của cơ quan đã quyết định kỷ luật."
        }
        "resolved_by_deciding_body" => {
            "Cơ quan đã quyết định kỷ luật không tự giải quyết khiếu nại về quyết định đó."
        }
        "changed_to_same_form" => "Hình thức kỷ luật mới trùng với hình thức đã quyết định.",
        "invalid_date" | "invalid_window" => {
            "Ngày không hợp lệ: nhập ngày theo dạng năm-tháng-ngày, ngày đầu trước ngày cuối."
        }
        "unknown_unit" | "invalid_unit" => "Không có đơn vị này trong tỉnh.",
        "unknown_term" | "invalid_term" => "Không có nhiệm kỳ này.",
        "bad_id" | "bad_query" | "invalid_cursor" => "Mã hoặc tham số không hợp lệ.",
        "ambiguous_id" => "Mã này là hồ sơ của nhiều cơ quan: mở hồ sơ từ trang của đơn vị.",
        "stream_of_another_office" => "Hồ sơ này thuộc cơ quan khác: chỉ cơ quan đó được cập nhật.",
        "projection_behind" | "upstream_timeout" | "query_timeout" | "service_unavailable" => {
            "Số liệu đang được cập nhật hoặc dịch vụ chưa trả lời: thử lại sau giây lát."
        }
        _ => "Yêu cầu bị từ chối.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_appeals_outcomes_are_named_as_the_domain_names_them() {
        use coord_domain::discipline::AppealResolution as R;
        let named: Vec<String> = [R::UPHELD_VI, R::CHANGED_VI, R::ANNULLED_VI]
            .map(coord_proto::labels::capital)
            .into();
        let offered: Vec<&str> = RESOLUTIONS.iter().map(|(_, label)| *label).collect();
        assert_eq!(offered, named);
    }

    #[test]
    fn an_appeal_may_be_resolved_by_every_deciding_body_and_the_secretariat() {
        let (deciding, last) = RESOLVING.split_at(DECIDING.len());
        assert_eq!(deciding, DECIDING);
        assert_eq!(last[0].0, "secretariat");
        assert_eq!(
            last[0].0.parse::<coord_domain::Body>().unwrap(),
            coord_domain::Body::Secretariat
        );
    }

    fn claims(office: &str, role: Role) -> Claims {
        coord_auth::TokenSigner::claims_now(office.parse().unwrap(), "t", role)
    }

    fn commands(c: &Claims, unit: &str) -> Vec<&'static str> {
        offered(c, unit).iter().map(|f| f.command).collect()
    }

    #[test]
    fn a_reader_gets_no_form_and_a_district_only_its_own_units() {
        assert!(commands(&claims("province", Role::Reader), "an-phu").is_empty());
        assert!(commands(&claims("province", Role::Admin), "an-phu").is_empty());
        let district = claims("district:an-phu", Role::Operator);
        assert_eq!(
            commands(&district, "an-phu"),
            ["exchange.send", "exchange.acknowledge", "discipline.appeal"]
        );
        assert!(commands(&district, "tri-ton").is_empty());
        let province = commands(&claims("province", Role::Operator), "an-phu");
        assert!(province.contains(&"inspection.schedule"));
        assert!(!province.contains(&"discipline.appeal"));
    }

    #[test]
    fn a_schedule_form_becomes_the_commands_body_with_the_units_bodies() {
        let form = FORMS
            .iter()
            .find(|f| f.command == "inspection.schedule")
            .unwrap();
        let submitted = [("planned_end", "2024-02-01"), ("kind", " ")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let b = body(form, &Office::Province, "an-phu", "2020-2025", &submitted);
        assert_eq!(b["coordinating_body"], "district_standing_committee:an-phu");
        assert_eq!(b["planned_end"], "2024-02-01");
        assert!(!b.contains_key("kind"), "empty fields are left out");
    }

    #[test]
    fn a_refusal_is_shown_at_the_first_field_it_names() {
        let form = FORMS
            .iter()
            .find(|f| f.command == "inspection.schedule")
            .unwrap();
        assert_eq!(
            field_named(
                form,
                "dates out of order: planned_end is before planned_start"
            ),
            Some("planned_end")
        );
        assert_eq!(field_named(form, "no field here"), None);
    }
}
