//! The feed's contract without a server: committed schemas match the Rust types, every
//! published version is kept, and an event (including a stored version-1 one) becomes
//! a CloudEvent that validates against the CloudEvents 1.0 schema and its `dataschema`.

use chrono::Utc;
use coord_feed::catalog::{catalog, committed_schema};
use coord_feed::{CloudEvent, schema_index};
use coord_log::{EventPosition, RecordedEvent};
use serde_json::{Value, json};
use uuid::Uuid;

const BASE: &str = "http://127.0.0.1:8080";

pub fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("a valid schema")
}

fn errors(schema: &Value, instance: &Value) -> Vec<String> {
    validator(schema)
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn cloudevents_schema() -> Value {
    serde_json::from_str(include_str!("cloudevents-1.0.schema.json")).unwrap()
}

/// The schema a `dataschema` URL names, read from the committed files.
fn dataschema(url: &str) -> Value {
    let path = url.strip_prefix(&format!("{BASE}/v1/schemas/")).unwrap();
    let (name, version) = path.split_once("/v").unwrap();
    committed_schema(name, version.parse().unwrap()).unwrap()
}

#[test]
fn committed_schemas_match_the_rust_types() {
    for info in catalog() {
        let committed = committed_schema(&info.name, info.version);
        assert_eq!(
            committed.as_ref(),
            Some(&info.schema),
            "{}: the type's shape and its committed schema differ. If consumers would see a \
             change, bump the enum's SCHEMA_VERSION and add an upcast; then run \
             `cargo run -p coord-feed --bin gen-schemas`",
            info.ce_type(info.version)
        );
        jsonschema::meta::validate(&info.schema).expect("a valid 2020-12 schema");
    }
}

#[test]
fn every_published_version_is_still_served() {
    for info in catalog() {
        for v in 1..=info.version {
            assert!(
                committed_schema(&info.name, v).is_some(),
                "{} is gone",
                info.ce_type(v)
            );
        }
    }
    let index = schema_index(BASE);
    let exchanged = index["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "vn.coord.exchange.information_exchanged")
        .unwrap();
    assert_eq!(exchanged["current_version"], 2);
    assert_eq!(exchanged["versions"].as_array().unwrap().len(), 2);
}

fn stored_v1_exchange() -> RecordedEvent {
    RecordedEvent {
        role: None,
        event_id: Uuid::now_v7(),
        stream_id: "exchange-0190a000-0000-7000-8000-0000000000e1"
            .parse()
            .unwrap(),
        stream_version: 1,
        event_type: "InformationExchanged".into(),
        schema_version: 1,
        occurred_at: "2022-09-01".parse().unwrap(),
        recorded_at: Utc::now(),
        office: "province".into(),
        actor: "analyst".into(),
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        payload: json!({
            "exchange_id": "0190a000-0000-7000-8000-0000000000e1",
            "term": "2020-2025", "unit": "cho-moi",
            "from": "provincial_standing_committee", "to": "district_standing_committee:cho-moi",
            "topic": "plan", "subject": "Kế hoạch kiểm tra năm 2022", "sent_on": "2022-09-01"
        }),
        position: Some(EventPosition {
            commit: 7,
            index: 0,
        }),
    }
}

#[test]
fn a_stored_version_1_event_is_served_upcast_to_the_current_version() {
    // given an InformationExchanged stored with schema version 1 (no `channel`)
    let stored = stored_v1_exchange();
    // when the feed turns it into a CloudEvent
    let ce = CloudEvent::from_recorded(&stored, BASE).unwrap();
    // then it is served at version 2 with the documented default
    assert_eq!(ce.ce_type, "vn.coord.exchange.information_exchanged.v2");
    assert_eq!(ce.data["channel"], "document");
    assert_eq!(ce.position, "7:0");
    assert_eq!(ce.source, "/offices/province");
    let json = serde_json::to_value(&ce).unwrap();
    assert_eq!(errors(&cloudevents_schema(), &json), Vec::<String>::new());
    assert_eq!(
        errors(&dataschema(&ce.dataschema), &ce.data),
        Vec::<String>::new()
    );
    // and the version-1 payload does not fit the version-2 schema, but fits version 1
    assert!(!errors(&dataschema(&ce.dataschema), &stored.payload).is_empty());
    let v1 = committed_schema("vn.coord.exchange.information_exchanged", 1).unwrap();
    assert_eq!(errors(&v1, &stored.payload), Vec::<String>::new());
    // and the official SDK reads the same JSON as a CloudEvent
    let sdk: cloudevents::Event = serde_json::from_value(json).unwrap();
    assert_eq!(cloudevents::AttributesReader::id(&sdk), ce.id);
}

#[test]
fn a_cloud_event_turns_back_into_the_event_it_was() {
    let stored = stored_v1_exchange();
    let ce = CloudEvent::from_recorded(&stored, BASE).unwrap();
    let back = ce.to_import().unwrap();
    assert_eq!(back.stream, stored.stream_id);
    assert_eq!(back.position, stored.pos());
    assert_eq!(back.event.event_id, stored.event_id);
    assert_eq!(back.event.event_type, "InformationExchanged");
    assert_eq!(back.event.schema_version, 2);
    assert_eq!(back.event.metadata.office, "province");
    assert_eq!(back.event.metadata.causation_id, stored.causation_id);
    // a CloudEvent of another system is refused, naming what is wrong
    let mut foreign = ce.clone();
    foreign.ce_type = "com.example.thing.v1".into();
    assert!(
        foreign
            .to_import()
            .unwrap_err()
            .to_string()
            .contains("com.example.thing.v1")
    );
    let mut bad = ce;
    bad.source = "https://example.com".into();
    assert!(bad.to_import().unwrap_err().to_string().contains("source"));
}

#[test]
fn the_events_parquet_reads_back_with_its_rows_and_types() {
    use parquet::basic::{LogicalType, Type};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let mut second = stored_v1_exchange();
    second.position = Some(EventPosition {
        commit: 8,
        index: 0,
    });
    let events: Vec<CloudEvent> = [stored_v1_exchange(), second]
        .iter()
        .map(|e| CloudEvent::from_recorded(e, BASE).unwrap())
        .collect();
    let table = coord_feed::table::events_table(&events);
    let bytes = table.to_parquet().unwrap();
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
    let meta = reader.metadata().file_metadata();
    assert_eq!(meta.num_rows(), 2);
    let schema = meta.schema_descr();
    let column = |name: &str| {
        schema
            .columns()
            .iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .clone()
    };
    assert_eq!(column("position_commit").physical_type(), Type::INT64);
    assert_eq!(
        column("occurred_on").logical_type_ref(),
        Some(&LogicalType::Date)
    );
    assert!(matches!(
        column("time").logical_type_ref(),
        Some(LogicalType::Timestamp(_))
    ));
    assert_eq!(
        column("type").logical_type_ref(),
        Some(&LogicalType::String)
    );
    let rows: Vec<_> = reader
        .get_row_iter(None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    use parquet::record::RowAccessor;
    assert_eq!(rows[1].get_long(0).unwrap(), 8);
    assert_eq!(
        rows[0].get_string(3).unwrap(),
        "vn.coord.exchange.information_exchanged.v2"
    );
    assert_eq!(rows[0].get_string(12).unwrap(), "cho-moi");
    // the CSV has a header and one line per event
    let csv = String::from_utf8(table.to_csv().unwrap()).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.starts_with("position_commit,position_index,id,type,"));
}

/// What a group writer flushes: the bytes it has written so far, and how often it was
/// flushed.
#[derive(Default)]
struct Flushes {
    bytes: Vec<u8>,
    at: Vec<usize>,
}

impl std::io::Write for Flushes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.at.push(self.bytes.len());
        Ok(())
    }
}

#[test]
fn a_table_written_in_groups_is_the_same_table_flushed_group_by_group() {
    use coord_feed::table::{Format, TableWriter, event_columns};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let events: Vec<CloudEvent> = (1..=5)
        .map(|commit| {
            let mut e = stored_v1_exchange();
            e.position = Some(EventPosition { commit, index: 0 });
            CloudEvent::from_recorded(&e, BASE).unwrap()
        })
        .collect();
    let whole = coord_feed::table::events_table(&events);
    let in_groups = |format| {
        let mut w =
            TableWriter::new(format, Flushes::default(), "events", &event_columns()).unwrap();
        for group in whole.rows.chunks(2) {
            w.write_group(group).unwrap();
        }
        w.finish().unwrap()
    };

    // CSV: the same bytes as the whole table, each group flushed as it was written.
    let csv = in_groups(Format::Csv);
    assert_eq!(csv.bytes, whole.to_csv().unwrap());
    let lines_at: Vec<usize> = csv.at[..3]
        .iter()
        .map(|&n| csv.bytes[..n].iter().filter(|b| **b == b'\n').count())
        .collect();
    assert_eq!(lines_at, [3, 5, 6], "header + 2 rows, + 2, + 1");

    // Parquet: one row group per group (the writer flushes each column chunk as it
    // closes it), the same rows.
    let parquet = in_groups(Format::Parquet);
    let reader = SerializedFileReader::new(bytes::Bytes::from(parquet.bytes)).unwrap();
    let groups: Vec<i64> = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    assert_eq!(groups, [2, 2, 1]);
    let commits: Vec<i64> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| parquet::record::RowAccessor::get_long(&r.unwrap(), 0).unwrap())
        .collect();
    assert_eq!(commits, [1, 2, 3, 4, 5]);
}
