//! The leaf data of an event: its envelope as stored (ids, stream, version, type,
//! schema version, office, actor, correlation and causation ids, occurred and recorded
//! times, payload; everything but the log position, which the log assigns), serialized
//! by RFC 8785 (JSON Canonicalization Scheme) so anyone can recompute it with another tool.

use coord_log::RecordedEvent;
use serde_json::Value;

use crate::tree::{Hash, leaf_hash};

/// The canonical bytes of `event`: RFC 8785 JSON of its envelope without `position`.
pub fn leaf_data(event: &RecordedEvent) -> Vec<u8> {
    let mut value = serde_json::to_value(event).expect("an envelope is JSON");
    if let Value::Object(map) = &mut value {
        map.remove("position");
    }
    serde_jcs::to_vec(&value).expect("JSON values canonicalize")
}

/// The RFC 9162 leaf hash of `event`.
pub fn leaf_hash_of(event: &RecordedEvent) -> Hash {
    leaf_hash(&leaf_data(event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone, Utc};
    use coord_log::EventPosition;
    use serde_json::json;
    use uuid::Uuid;

    pub(crate) fn event() -> RecordedEvent {
        RecordedEvent {
            role: None,
            event_id: Uuid::from_u128(7),
            stream_id: "inspection-abc".parse().unwrap(),
            stream_version: 1,
            event_type: "InspectionScheduled".into(),
            schema_version: 1,
            occurred_at: NaiveDate::from_ymd_opt(2021, 3, 4).unwrap(),
            recorded_at: Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap(),
            office: "province".into(),
            actor: "cán bộ".into(),
            correlation_id: Uuid::from_u128(8),
            causation_id: Uuid::from_u128(9),
            payload: json!({"z": 1, "a": [true, null], "é": "x"}),
            position: Some(EventPosition {
                commit: 3,
                index: 0,
            }),
        }
    }

    #[test]
    fn given_an_event_when_canonicalized_then_keys_are_sorted_without_whitespace_or_position() {
        let text = String::from_utf8(leaf_data(&event())).unwrap();
        assert_eq!(
            text,
            r#"{"actor":"cán bộ","causation_id":"00000000-0000-0000-0000-000000000009","correlation_id":"00000000-0000-0000-0000-000000000008","event_id":"00000000-0000-0000-0000-000000000007","event_type":"InspectionScheduled","occurred_at":"2021-03-04","office":"province","payload":{"a":[true,null],"z":1,"é":"x"},"recorded_at":"2024-01-02T03:04:05Z","schema_version":1,"stream_id":"inspection-abc","stream_version":1}"#
        );
    }

    #[test]
    fn given_the_same_event_at_another_position_then_the_leaf_is_the_same() {
        let mut moved = event();
        moved.position = Some(EventPosition {
            commit: 99,
            index: 1,
        });
        assert_eq!(leaf_hash_of(&event()), leaf_hash_of(&moved));
        moved.payload["z"] = json!(2);
        assert_ne!(leaf_hash_of(&event()), leaf_hash_of(&moved));
    }

    #[test]
    fn given_an_event_stored_before_roles_then_its_leaf_is_unchanged_and_a_role_is_a_leaf_field() {
        let old = leaf_data(&event());
        // Read back from the bytes an older writer stored (no `role`), it hashes the same.
        let stored: RecordedEvent = serde_json::from_slice(&old).unwrap();
        assert_eq!(stored.role, None);
        assert_eq!(leaf_data(&stored), old);
        let mut with_role = event();
        with_role.role = Some("operator".into());
        let text = String::from_utf8(leaf_data(&with_role)).unwrap();
        assert!(
            text.contains(
                r#""recorded_at":"2024-01-02T03:04:05Z","role":"operator","schema_version":1"#
            ),
            "{text}"
        );
    }
}
