//! The event types the feed knows, their CloudEvents names and their JSON Schemas.
//!
//! Naming: `vn.coord.<category>.<event>.v<N>`, where `<category>` is the stream
//! category (`inspection`, `exchange`, `receipt`, `discipline`, `appeal`), `<event>` is the domain event
//! type in snake_case without a leading `<category>_` (`InspectionScheduled` →
//! `scheduled`, `InformationExchanged` → `information_exchanged`), and `N` is the
//! schema version. The schema of `T.vN` is served at `/v1/schemas/T/vN`.
//!
//! The schemas are generated from the domain enums (their schemars derive) so a new
//! event type or field shows up here without a table to keep in sync. Every version
//! ever published is a file under `schemas/`, embedded at build time; the file of the
//! current version must equal what the types generate (a test checks it).

use std::sync::LazyLock;

use coord_domain::appeal::AppealEvent;
use coord_domain::discipline::DisciplineEvent;
use coord_domain::exchange::ExchangeEvent;
use coord_domain::inspection::InspectionEvent;
use coord_domain::receipt::ReceiptEvent;
use coord_domain::{DecodeError, DomainEvent};
use serde_json::{Map, Value, json};

include!(concat!(env!("OUT_DIR"), "/committed.rs"));

/// Prefix of every CloudEvents `type` of this system.
pub const TYPE_PREFIX: &str = "vn.coord";

/// One event type at its current schema version.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeInfo {
    /// Stream category, e.g. `inspection`.
    pub category: &'static str,
    /// Domain event type, e.g. `InspectionScheduled`.
    pub event_type: String,
    /// CloudEvents type without its version, e.g. `vn.coord.inspection.scheduled`.
    pub name: String,
    /// The schema version written today.
    pub version: u32,
    /// The JSON Schema of the current version, generated from the Rust type.
    pub schema: Value,
}

impl EventTypeInfo {
    /// The CloudEvents `type` of version `version`, e.g. `vn.coord.inspection.scheduled.v1`.
    pub fn ce_type(&self, version: u32) -> String {
        format!("{}.v{version}", self.name)
    }
}

/// Every event type, in category order then in the enum's order.
pub fn catalog() -> &'static [EventTypeInfo] {
    static CATALOG: LazyLock<Vec<EventTypeInfo>> = LazyLock::new(|| {
        let mut all = entries::<InspectionEvent>("inspection");
        all.extend(entries::<ExchangeEvent>("exchange"));
        all.extend(entries::<ReceiptEvent>("receipt"));
        all.extend(entries::<DisciplineEvent>("discipline"));
        all.extend(entries::<AppealEvent>("appeal"));
        all
    });
    &CATALOG
}

/// Finds a type by category and domain event type.
pub fn lookup(category: &str, event_type: &str) -> Option<&'static EventTypeInfo> {
    catalog()
        .iter()
        .find(|i| i.category == category && i.event_type == event_type)
}

/// Splits a CloudEvents type `name.vN` and finds its entry.
pub fn lookup_ce_type(ce_type: &str) -> Option<(&'static EventTypeInfo, u32)> {
    let (name, version) = ce_type.rsplit_once(".v")?;
    let version: u32 = version.parse().ok()?;
    let info = catalog().iter().find(|i| i.name == name)?;
    (1..=info.version)
        .contains(&version)
        .then_some((info, version))
}

/// The committed schema of `name` (e.g. `vn.coord.inspection.scheduled`) at `version`.
pub fn committed_schema(name: &str, version: u32) -> Option<Value> {
    let file = format!("{name}.v{version}");
    COMMITTED
        .iter()
        .find(|(n, _)| *n == file)
        .and_then(|(_, text)| serde_json::from_str(text).ok())
}

/// The `/v1/schemas` index: every type with its versions and current version.
pub fn schema_index(base_url: &str) -> Value {
    let types: Vec<Value> = catalog()
        .iter()
        .map(|i| {
            let versions: Vec<Value> = (1..=i.version)
                .map(|v| {
                    json!({
                        "version": v,
                        "type": i.ce_type(v),
                        "url": schema_url(base_url, &i.name, v),
                    })
                })
                .collect();
            json!({
                "name": i.name,
                "category": i.category,
                "event_type": i.event_type,
                "current_version": i.version,
                "versions": versions,
            })
        })
        .collect();
    json!({ "types": types })
}

/// Where the schema of `name` at `version` is served.
pub fn schema_url(base_url: &str, name: &str, version: u32) -> String {
    format!(
        "{}/v1/schemas/{name}/v{version}",
        base_url.trim_end_matches('/')
    )
}

/// Brings a stored payload to the current schema of its type (decode with the domain's
/// upcasters, then encode), so the feed always serves the current version.
pub fn current_payload(
    category: &str,
    event_type: &str,
    schema_version: u32,
    payload: Value,
) -> Result<Value, DecodeError> {
    fn via<E: DomainEvent>(t: &str, v: u32, p: Value) -> Result<Value, DecodeError> {
        Ok(E::decode(t, v, p)?.encode().1)
    }
    match category {
        "inspection" => via::<InspectionEvent>(event_type, schema_version, payload),
        "exchange" => via::<ExchangeEvent>(event_type, schema_version, payload),
        "receipt" => via::<ReceiptEvent>(event_type, schema_version, payload),
        "discipline" => via::<DisciplineEvent>(event_type, schema_version, payload),
        "appeal" => via::<AppealEvent>(event_type, schema_version, payload),
        _ => Err(DecodeError::UnknownEventType(event_type.to_owned())),
    }
}

/// `InspectionScheduled` in category `inspection` → `scheduled`.
pub fn event_name(category: &str, event_type: &str) -> String {
    let mut snake = String::new();
    for (i, c) in event_type.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    match snake.strip_prefix(&format!("{category}_")) {
        Some(rest) => rest.to_owned(),
        None => snake,
    }
}

fn entries<E: DomainEvent + schemars::JsonSchema>(category: &'static str) -> Vec<EventTypeInfo> {
    let root = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<E>();
    let root = root.as_value();
    let defs = root.get("$defs").cloned().unwrap_or_default();
    let variants = root
        .get("oneOf")
        .or_else(|| root.get("anyOf"))
        .and_then(Value::as_array)
        .expect("event enums are adjacently tagged: a oneOf of {type, data}");
    variants
        .iter()
        .map(|variant| {
            let props = &variant["properties"];
            let event_type = props["type"]["const"]
                .as_str()
                .or_else(|| props["type"]["enum"][0].as_str())
                .expect("each variant has a constant type")
                .to_owned();
            let name = format!(
                "{TYPE_PREFIX}.{category}.{}",
                event_name(category, &event_type)
            );
            let schema = standalone(
                &props["data"],
                &defs,
                &format!("{name}.v{}", E::SCHEMA_VERSION),
            );
            EventTypeInfo {
                category,
                event_type,
                name,
                version: E::SCHEMA_VERSION,
                schema,
            }
        })
        .collect()
}

/// Makes the `data` subschema a document of its own: the referenced definition at the
/// root, with only the definitions it reaches.
fn standalone(data: &Value, defs: &Value, title: &str) -> Value {
    let body = match data.get("$ref").and_then(Value::as_str) {
        Some(r) => defs[def_name(r)].clone(),
        None => data.clone(),
    };
    let mut reached = Map::new();
    collect_refs(&body, defs, &mut reached);
    let mut doc = Map::new();
    doc.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    doc.insert("title".into(), json!(title));
    if let Value::Object(fields) = body {
        for (k, v) in fields {
            if k != "title" {
                doc.insert(k, v);
            }
        }
    }
    if !reached.is_empty() {
        doc.insert("$defs".into(), Value::Object(reached));
    }
    Value::Object(doc)
}

fn def_name(reference: &str) -> &str {
    reference.trim_start_matches("#/$defs/")
}

fn collect_refs(node: &Value, defs: &Value, reached: &mut Map<String, Value>) {
    match node {
        Value::Object(map) => {
            if let Some(name) = map.get("$ref").and_then(Value::as_str).map(def_name)
                && !reached.contains_key(name)
            {
                let def = defs[name].clone();
                reached.insert(name.to_owned(), def.clone());
                collect_refs(&def, defs, reached);
            }
            map.values().for_each(|v| collect_refs(v, defs, reached));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, defs, reached)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_the_category_prefix() {
        assert_eq!(event_name("inspection", "InspectionScheduled"), "scheduled");
        assert_eq!(
            event_name("discipline", "DisciplineCaseOpened"),
            "case_opened"
        );
        assert_eq!(
            event_name("discipline", "AppealResolved"),
            "appeal_resolved"
        );
        assert_eq!(
            event_name("exchange", "InformationExchanged"),
            "information_exchanged"
        );
    }

    #[test]
    fn every_domain_event_type_is_in_the_catalog() {
        let names: Vec<&str> = catalog().iter().map(|i| i.name.as_str()).collect();
        assert!(names.len() >= 11, "{names:?}");
        assert!(names.contains(&"vn.coord.inspection.scheduled"));
        assert!(names.contains(&"vn.coord.discipline.decided"));
        assert!(names.contains(&"vn.coord.receipt.information_acknowledged"));
        assert!(names.contains(&"vn.coord.appeal.discipline_appealed"));
        assert!(names.contains(&"vn.coord.exchange.information_acknowledged"));
        let (info, v) = lookup_ce_type("vn.coord.inspection.started.v1").unwrap();
        assert_eq!((info.event_type.as_str(), v), ("InspectionStarted", 1));
        assert!(lookup_ce_type("vn.coord.inspection.started.v0").is_none());
        assert!(lookup_ce_type("vn.coord.nothing.v1").is_none());
    }
}
