//! The console's templates and static files, embedded in the binary (no files to
//! deploy beside it, nothing fetched at run time).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("district.html", include_str!("templates/district.html")),
    ("record.html", include_str!("templates/record.html")),
    ("offices.html", include_str!("templates/offices.html")),
    ("needs.html", include_str!("templates/needs.html")),
];

/// Every template, HTML-escaped by default.
pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("console template {name}: {e}"));
    }
    env.add_filter("vi_date", vi_date);
    env
}

/// A date as people in the offices write it: `2024-03-01` → `01/03/2024`, a month
/// `2024-03` → `03/2024`, a moment (RFC 3339) → `01/03/2024 14:05` in Vietnam's time
/// (UTC+7). Anything else (not a date, not a string, nothing) is shown as it is.
pub fn vi_date(value: minijinja::Value) -> minijinja::Value {
    match value.as_str() {
        // Digits, `/`, `:` and a space: nothing to escape (`/` would be `&#x2f;`).
        Some(text) => {
            coord_proto::labels::vi_date(text).map_or(value, minijinja::Value::from_safe_string)
        }
        None => value,
    }
}

/// `GET /static/{file}`: the stylesheet and the script.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (
            include_str!("static/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("static/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        let env = super::environment();
        assert_eq!(env.templates().count(), super::TEMPLATES.len());
    }

    #[test]
    fn dates_are_written_day_month_year_and_moments_in_vietnam_time() {
        let vi = |v: &str| super::vi_date(v.into()).to_string();
        assert_eq!(vi("2024-03-01"), "01/03/2024");
        assert_eq!(vi("2024-03"), "03/2024");
        assert_eq!(vi("2024-02-29T18:30:00Z"), "01/03/2024 01:30");
        assert_eq!(vi("không rõ"), "không rõ");
        assert!(super::vi_date(minijinja::Value::from(())).is_none());
    }

    #[test]
    fn a_deadline_past_is_said_overdue_not_as_days_left_below_zero() {
        let env = super::environment();
        let item = |days_left: i64| {
            serde_json::json!({"kind": "pending_appeal", "title_vi": "Giải quyết khiếu nại",
                "unit": "an-phu", "unit_name": "An Phú", "record": null, "since": "2024-01-01",
                "days_left": days_left})
        };
        let page = minijinja::Value::from_serialize(
            serde_json::json!({"needs": {"items": [item(-5), item(3)]}}),
        );
        let html = env
            .get_template("needs.html")
            .unwrap()
            .render(minijinja::context! { page => page })
            .unwrap();
        assert!(html.contains("quá hạn 5 ngày"), "{html}");
        assert!(html.contains("còn 3 ngày"), "{html}");
        assert!(html.contains("từ 01/01/2024"), "{html}");
        assert!(html.contains("— An Phú,"), "{html}");
        assert!(!html.contains("-5"), "{html}");
    }
}
