//! What only the web console says: a caller's role and how long ago a source was heard
//! from. A record's fields, values, events and offices are said by
//! [`coord_proto::labels`], which `coordctl` uses too.

pub use coord_proto::labels::*;

pub fn role(role: coord_auth::Role) -> &'static str {
    match role {
        coord_auth::Role::Operator => "nghiệp vụ (gửi và xem)",
        coord_auth::Role::Reader => "chỉ xem",
        coord_auth::Role::Admin => "quản trị",
    }
}

/// How long ago a source was last heard from, as a person says it.
pub fn ago(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "chưa từng nhận được".into();
    };
    match ms / 1000 {
        0 => "vừa xong".into(),
        s @ 1..60 => format!("{s} giây trước"),
        s @ 60..3600 => format!("{} phút trước", s / 60),
        s @ 3600..86_400 => format!("{} giờ trước", s / 3600),
        s => format!("{} ngày trước", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_is_named_as_people_say_it() {
        assert_eq!(role(coord_auth::Role::Reader), "chỉ xem");
        assert_eq!(role(coord_auth::Role::Admin), "quản trị");
    }

    #[test]
    fn a_source_last_heard_is_said_as_time_ago() {
        assert_eq!(ago(None), "chưa từng nhận được");
        assert_eq!(ago(Some(999)), "vừa xong");
        assert_eq!(ago(Some(42_000)), "42 giây trước");
        assert_eq!(ago(Some(125_000)), "2 phút trước");
        assert_eq!(ago(Some(3 * 86_400_000)), "3 ngày trước");
    }
}
