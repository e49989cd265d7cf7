//! Property tests of every decoder that reads outside input: the command payload
//! decoders (`CommandApi::parse`, behind every command endpoint), the domain event
//! decoder (`DomainEvent::decode`, behind every read of the log) and the commit decoder
//! of the JetStream log. Whatever the bytes, each gives a value or a typed error, and
//! never panics.
//!
//! Inputs are arbitrary bytes, arbitrary JSON, and the valid payloads of the reference
//! scenario with one field replaced by arbitrary JSON or a date-like string (the shapes
//! most likely to reach deep into the decoders).

use coord_domain::appeal::{Appeal, AppealEvent};
use coord_domain::discipline::{DisciplineCase, DisciplineEvent};
use coord_domain::exchange::{ExchangeEvent, InformationExchange};
use coord_domain::inspection::{Inspection, InspectionEvent};
use coord_domain::receipt::{Receipt, ReceiptEvent};
use coord_domain::{DecodeError, DomainEvent};
use coord_log::LogError;
use coord_proto::{CommandApi, ROUTES};
use proptest::prelude::*;
use serde_json::Value;

const SCENARIO: &str = include_str!("../../../deploy/scenarios/an-giang-2020-2025.jsonl");

const EVENT_TYPES: &[&str] = &[
    "InspectionScheduled",
    "InspectionStarted",
    "InspectionConcluded",
    "InspectionCancelled",
    "InformationExchanged",
    "InformationAcknowledged",
    "DisciplineCaseOpened",
    "DisciplineDecided",
    "DisciplineCaseClosed",
    "DisciplineAppealed",
    "AppealResolved",
];

/// (`service.endpoint`, payload) of every command of the reference scenario.
fn scenario() -> Vec<(String, Value)> {
    SCENARIO
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["command"].as_str().unwrap().to_owned(),
                v["payload"].clone(),
            )
        })
        .collect()
}

/// Parses `payload` with the decoder of `service`'s `endpoint`.
fn parse(service: &str, endpoint: &str, payload: Value) -> Result<(), String> {
    match service {
        "inspection" => Inspection::parse(endpoint, payload).map(|_| ()),
        "exchange" if endpoint == "acknowledge" => Receipt::parse(endpoint, payload).map(|_| ()),
        "exchange" => InformationExchange::parse(endpoint, payload).map(|_| ()),
        "discipline" if endpoint == "appeal" => Appeal::parse(endpoint, payload).map(|_| ()),
        "discipline" => DisciplineCase::parse(endpoint, payload).map(|_| ()),
        other => panic!("unknown service {other}"),
    }
}

fn date_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,5}-[0-9]{1,3}-[0-9]{1,3}",
        "(19|20)[0-9]{2}-(0[0-9]|1[0-3])-(0[0-9]|[1-3][0-9])",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z?",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::from),
        date_like().prop_map(Value::from),
        "[0-9a-f-]{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{0,12}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Bytes that are often almost JSON: arbitrary bytes, serialized JSON, and serialized
/// JSON cut short or with one byte changed.
fn json_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (
            json(),
            any::<prop::sample::Index>(),
            any::<u8>(),
            any::<bool>()
        )
            .prop_map(|(v, at, byte, cut)| {
                let mut bytes = serde_json::to_vec(&v).unwrap();
                let i = at.index(bytes.len());
                if cut {
                    bytes.truncate(i);
                } else {
                    bytes[i] = byte;
                }
                bytes
            }),
    ]
}

/// A scenario payload with one field (or one field of a nested object) replaced.
fn damaged() -> impl Strategy<Value = (String, Value)> {
    let commands = scenario();
    (
        0..commands.len(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop_oneof![
            3 => ".{0,12}".prop_map(Value::from),
            2 => date_like().prop_map(Value::from),
            2 => json(),
        ],
    )
        .prop_map(move |(i, field, inner, value)| {
            let (command, mut payload) = commands[i].clone();
            if let Value::Object(map) = &mut payload {
                let keys: Vec<String> = map.keys().cloned().collect();
                let key = field.get(&keys).clone();
                match map.get_mut(&key) {
                    Some(Value::Object(nested)) if !nested.is_empty() => {
                        let keys: Vec<String> = nested.keys().cloned().collect();
                        nested.insert(inner.get(&keys).clone(), value);
                    }
                    _ => {
                        map.insert(key, value);
                    }
                }
            }
            (command, payload)
        })
}

/// Every command decoder, on one payload: a command or a message, never a panic.
fn parse_everywhere(payload: &Value) {
    for route in ROUTES {
        if let Err(message) = parse(route.service, route.endpoint, payload.clone()) {
            assert!(!message.is_empty(), "{}: an error says why", route.command);
        }
    }
}

/// Every event decoder, on one payload: an event of that type, or a typed error about it.
fn decode_everywhere(event_type: &str, schema_version: u32, payload: &Value) {
    fn check<E: DomainEvent>(event_type: &str, version: u32, payload: &Value) {
        match E::decode(event_type, version, payload.clone()) {
            Ok(event) => assert_eq!(event.event_type(), event_type),
            Err(DecodeError::UnsupportedSchemaVersion { schema_version, .. }) => {
                assert_eq!(schema_version, version)
            }
            Err(
                DecodeError::UnknownEventType(t) | DecodeError::BadPayload { event_type: t, .. },
            ) => assert_eq!(t, event_type),
        }
    }
    check::<InspectionEvent>(event_type, schema_version, payload);
    check::<ExchangeEvent>(event_type, schema_version, payload);
    check::<ReceiptEvent>(event_type, schema_version, payload);
    check::<DisciplineEvent>(event_type, schema_version, payload);
    check::<AppealEvent>(event_type, schema_version, payload);
}

fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(EVENT_TYPES).prop_map(str::to_owned),
        ".{0,24}",
    ]
}

/// The commit decoder, on one body: events placed at `seq`, or `Corrupt` at `seq`.
fn check_commit(bytes: &[u8], seq: u64) {
    match coord_log::jetstream::decode_commit(bytes, seq) {
        Ok(events) => {
            assert!(!events.is_empty());
            for (i, e) in events.iter().enumerate() {
                assert_eq!((e.pos().commit, e.pos().index), (seq, i as u64));
            }
        }
        Err(LogError::Corrupt { position, reason }) => {
            assert_eq!((position.commit, position.index), (seq, 0));
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("not a Corrupt error: {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn command_decoders_take_any_bytes(bytes in json_bytes()) {
        if let Ok(payload) = serde_json::from_slice::<Value>(&bytes) {
            parse_everywhere(&payload);
        }
    }

    #[test]
    fn command_decoders_take_any_json(payload in json()) {
        parse_everywhere(&payload);
    }

    #[test]
    fn command_decoders_take_damaged_valid_payloads((_, payload) in damaged()) {
        parse_everywhere(&payload);
    }

    #[test]
    fn event_decoders_take_any_json(t in event_type(), v in 0u32..4, payload in json()) {
        decode_everywhere(&t, v, &payload);
    }

    #[test]
    fn event_decoders_take_damaged_valid_payloads(t in event_type(), (_, payload) in damaged()) {
        decode_everywhere(&t, 1, &payload);
    }

    #[test]
    fn the_commit_decoder_takes_any_bytes(
        bytes in json_bytes(),
        seq in 1u64..u64::MAX,
    ) {
        check_commit(&bytes, seq);
    }

    #[test]
    fn the_commit_decoder_takes_any_json(
        body in json(),
        events in prop::collection::vec(json(), 0..3),
        seq in 1u64..1000,
    ) {
        check_commit(&serde_json::to_vec(&body).unwrap(), seq);
        let commit = serde_json::json!({"events": events});
        check_commit(&serde_json::to_vec(&commit).unwrap(), seq);
    }
}

/// The damaged payloads start from valid input: the scenario's payloads all parse.
#[test]
fn the_undamaged_scenario_payloads_parse() {
    for (command, payload) in scenario() {
        let route = coord_proto::route(&command).unwrap();
        assert!(
            parse(route.service, route.endpoint, payload).is_ok(),
            "{command}"
        );
    }
}
