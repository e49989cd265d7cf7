//! The analytics feed end to end (issue 8), every process real: the reference scenario
//! exported as CloudEvents validates line by line against the CloudEvents 1.0 schema
//! and each `data` against the `dataschema` the gateway serves; an export resumed from
//! its position misses nothing and repeats nothing; re-importing the file into an empty
//! log gives the same province summary.

use chrono::{DateTime, Utc};
use std::collections::HashMap;

use coord_proto::read::ProvinceSummary;
use coordctl::feed::{ExportEventsArgs, export_events, import};
use serde_json::Value;
use tests::Stack;

const SCENARIO: &str = include_str!("../../deploy/scenarios/an-giang-2020-2025.jsonl");
const CLOUDEVENTS_SCHEMA: &str =
    include_str!("../../shared/coord-feed/tests/cloudevents-1.0.schema.json");

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("a valid schema")
}

fn args(out: &std::path::Path, after: Option<u64>) -> ExportEventsArgs {
    ExportEventsArgs {
        out: out.to_owned(),
        after,
        until: None,
        from: None,
        to: None,
        types: None,
        batch: false,
        format: None,
    }
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

async fn summary(http: &reqwest::Client, base: &str, min_position: u64) -> ProvinceSummary {
    let url = format!("{base}/v1/status/province?term=2020-2025&min_position={min_position}");
    let r = http.get(&url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// Every line: a valid CloudEvent whose data fits the schema behind its `dataschema`.
async fn assert_valid_cloudevents(http: &reqwest::Client, events: &[Value]) {
    let envelope = validator(&serde_json::from_str(CLOUDEVENTS_SCHEMA).unwrap());
    let mut schemas: HashMap<String, jsonschema::Validator> = HashMap::new();
    for (i, ce) in events.iter().enumerate() {
        let errors: Vec<String> = envelope.iter_errors(ce).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "line {}: {errors:?}", i + 1);
        let _: cloudevents::Event = serde_json::from_value(ce.clone())
            .unwrap_or_else(|e| panic!("line {}: the CloudEvents SDK refuses it: {e}", i + 1));
        let url = ce["dataschema"].as_str().unwrap().to_owned();
        if !schemas.contains_key(&url) {
            let r = http.get(&url).send().await.unwrap();
            assert!(r.status().is_success(), "{url}: {}", r.status());
            schemas.insert(url.clone(), validator(&r.json().await.unwrap()));
        }
        let errors: Vec<String> = schemas[&url]
            .iter_errors(&ce["data"])
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "line {} ({}): {errors:?}",
            i + 1,
            ce["type"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_scenario_exports_validates_resumes_and_reimports() {
    let stack = Stack::start();
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    let http = stack.http();
    let client = stack.client();
    let report = coordctl::load(&client, SCENARIO, false).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let original = summary(&http, &base, report.last_position).await;

    // The whole log, exported.
    let dir = tempfile::tempdir().unwrap();
    let all_path = dir.path().join("all.ndjson");
    let all = export_events(&client, &args(&all_path, None), false)
        .await
        .unwrap();
    let events = lines(&all_path);
    assert_eq!(all.events as usize, events.len());
    assert_eq!(all.resume_after, report.last_position);
    assert!(events.len() >= SCENARIO.lines().count(), "{}", events.len());
    assert_valid_cloudevents(&http, &events).await;
    let positions: Vec<(u64, u64)> = events
        .iter()
        .map(|e| {
            let p = coord_feed::cloudevent::parse_position(e["position"].as_str().unwrap());
            p.map(|p| (p.commit, p.index)).unwrap()
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "log order");

    // Resumed from a position in the middle: the two parts are the whole, in order.
    let middle = positions[positions.len() / 2].0;
    let first_path = dir.path().join("first.ndjson");
    let mut first_args = args(&first_path, None);
    first_args.until = Some(middle);
    let first = export_events(&client, &first_args, false).await.unwrap();
    assert_eq!(first.resume_after, middle);
    let rest_path = dir.path().join("rest.ndjson");
    let rest = export_events(&client, &args(&rest_path, Some(first.resume_after)), false)
        .await
        .unwrap();
    let mut joined = lines(&first_path);
    joined.extend(lines(&rest_path));
    let ids = |v: &[Value]| v.iter().map(|e| e["id"].to_string()).collect::<Vec<_>>();
    assert_eq!(
        ids(&joined),
        ids(&events),
        "resuming loses or repeats nothing"
    );
    assert_eq!(joined, events);
    assert_eq!(rest.resume_after, all.resume_after);
    // Nothing new: resuming from the end gives nothing, and the same position back.
    let none_path = dir.path().join("none.ndjson");
    let none = export_events(&client, &args(&none_path, Some(all.resume_after)), false)
        .await
        .unwrap();
    assert_eq!((none.events, none.resume_after), (0, all.resume_after));

    // Filters: discipline decisions dated from June 2022.
    let decided_path = dir.path().join("decided.ndjson");
    let mut decided_args = args(&decided_path, None);
    decided_args.types = Some("vn.coord.discipline.decided".into());
    decided_args.from = Some("2022-06-01".into());
    export_events(&client, &decided_args, false).await.unwrap();
    let decided = lines(&decided_path);
    let expected = events
        .iter()
        .filter(|e| e["type"] == "vn.coord.discipline.decided.v1")
        .filter(|e| e["occurredon"].as_str().unwrap() >= "2022-06-01")
        .count();
    assert!(expected > 0);
    assert_eq!(decided.len(), expected);

    // The CloudEvents batch format on request: one JSON array of the same events.
    let r = http
        .get(format!("{base}/v1/export/events"))
        .header("accept", "application/cloudevents-batch+json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/cloudevents-batch+json"
    );
    let batch: Vec<Value> = r.json().await.unwrap();
    assert_eq!(batch, events);
    // An unknown schema is a problem document.
    let r = http
        .get(format!(
            "{base}/v1/schemas/vn.coord.inspection.scheduled/v9"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Re-imported into an empty log: the same province summary.
    let text = std::fs::read_to_string(&all_path).unwrap();
    let copy = Stack::start();
    copy.wait_ready().await;
    let copy_http = copy.http();
    // Import writes in every office's name: a reader may not.
    let r = copy
        .http_with(&copy.sign("province", "analyst", coord_auth::Role::Reader))
        .post(format!("{}/v1/admin/import", copy.gateway_url))
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "role_cannot_operate");
    let imported = import(&copy.admin_client(), &text, false, false)
        .await
        .unwrap();
    assert_eq!(imported.events as usize, events.len());
    assert_eq!(imported.duplicates, 0);
    let copied = summary(&copy_http, &copy.gateway_url, imported.position).await;
    let strip = |s: &ProvinceSummary| {
        let mut v = serde_json::to_value(s).unwrap();
        v.as_object_mut().unwrap().remove("position");
        v
    };
    assert_eq!(strip(&copied), strip(&original));
    // A file with a bad line is refused whole, naming the line; nothing is appended.
    let mut broken = text.lines().take(3).collect::<Vec<_>>().join("\n");
    broken.push_str("\n{\"specversion\":\"1.0\"}\n");
    let r = copy
        .admin_http()
        .post(format!("{}/v1/admin/import", copy.gateway_url))
        .body(broken)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "bad_cloudevent");
    assert!(p["detail"].as_str().unwrap().contains("line 4"), "{p}");
    // Sending it again is refused (the log is not empty) and appends nothing; with
    // --append every commit is recognised as already there.
    let admin = copy.admin_client();
    let err = import(&admin, &text, false, false).await.unwrap_err();
    assert!(err.to_string().contains("log_not_empty"), "{err:#}");
    let again = import(&admin, &text, true, false).await.unwrap();
    assert_eq!(again.duplicates, again.commits);
    let after = summary(&copy_http, &copy.gateway_url, imported.position).await;
    assert_eq!(after.position, copied.position, "nothing appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_version_1_event_is_upcast_by_the_projector_and_the_feed() {
    use coord_log::jetstream::{JetStreamConfig, JetStreamLog};
    use coord_log::{EventLog, ExpectedVersion, Metadata, NewEvent, StreamId};

    let stack = Stack::start();
    stack.wait_ready().await;
    let http = stack.http();
    let base = stack.gateway_url.clone();
    // given an InformationExchanged written as schema version 1 (before `channel`)
    let nats = stack.nats.admin_client().await;
    let log = JetStreamLog::open(nats, JetStreamConfig::default())
        .await
        .unwrap();
    let exchange_id = uuid::Uuid::now_v7();
    let stream = StreamId::new("exchange", exchange_id).unwrap();
    let v1 = serde_json::json!({
        "exchange_id": exchange_id, "term": "2020-2025", "unit": "cho-moi",
        "from": "provincial_standing_committee", "to": "district_standing_committee:cho-moi",
        "topic": "plan", "subject": "Kế hoạch kiểm tra năm 2021", "sent_on": "2021-03-01"
    });
    let outcome = log
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: "InformationExchanged".into(),
                schema_version: 1,
                occurred_at: "2021-03-01".parse().unwrap(),
                payload: v1,
                metadata: Metadata {
                    role: None,
                    office: "province".into(),
                    actor: "legacy".into(),
                    correlation_id: uuid::Uuid::now_v7(),
                    causation_id: uuid::Uuid::now_v7(),
                },
            }],
        )
        .await
        .unwrap();
    // then the projector counts it (no dead letter)
    let s = summary(&http, &base, outcome.position.commit).await;
    assert_eq!((s.exchanges.sent, s.dead_letters), (1, 0));
    // and the feed serves it at version 2 with the documented default
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.ndjson");
    let client = stack.client();
    export_events(&client, &args(&path, None), false)
        .await
        .unwrap();
    let events = lines(&path);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["type"],
        "vn.coord.exchange.information_exchanged.v2"
    );
    assert_eq!(events[0]["data"]["channel"], "document");
    assert_valid_cloudevents(&http, &events).await;
}

/// Runs the documented example consumer (tests/examples/live_consumer.rs) until idle;
/// its NDJSON output, parsed.
async fn live_consumer(stack: &Stack, durable: &str, after: Option<u64>) -> Vec<Value> {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/live_consumer");
    assert!(
        bin.exists(),
        "{} is not built: `cargo test -p tests` (or `cargo build -p tests --examples`) builds it",
        bin.display()
    );
    let mut cmd = tokio::process::Command::new(bin);
    // As the read-only analytics user.
    cmd.env("COORD_NATS_CREDS", stack.nats.creds_file("analytics"));
    cmd.args([stack.nats.url().as_str(), durable, "--idle-ms", "800"]);
    cmd.args(["--api", stack.gateway_url.as_str()]);
    if let Some(after) = after {
        cmd.args(["--after", &after.to_string()]);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("the consumer stops when idle")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn position(ce: &Value) -> (u64, u64) {
    let p = coord_feed::cloudevent::parse_position(ce["position"].as_str().unwrap()).unwrap();
    (p.commit, p.index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_resumes_in_order_and_a_restart_from_scratch_is_detectable() {
    let stack = Stack::start();
    stack.wait_ready().await;
    let client = stack.client();
    let all_lines: Vec<&str> = SCENARIO.lines().collect();
    let (first_half, second_half) = all_lines.split_at(all_lines.len() / 2);

    // A durable consumer reads what is there, stops; more is appended; it resumes.
    coordctl::load(&client, &first_half.join("\n"), false)
        .await
        .unwrap();
    let before = live_consumer(&stack, "analytics-a", None).await;
    coordctl::load(&client, &second_half.join("\n"), false)
        .await
        .unwrap();
    let resumed = live_consumer(&stack, "analytics-a", None).await;
    assert!(!before.is_empty() && !resumed.is_empty());
    let mut received = before.clone();
    received.extend(resumed);
    let positions: Vec<_> = received.iter().map(position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in log order, no repeats"
    );
    // ... and it received every event of the log: the same as an export.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.ndjson");
    export_events(&client, &args(&path, None), false)
        .await
        .unwrap();
    let exported = lines(&path);
    let ids = |v: &[Value]| v.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&received), ids(&exported));
    assert_valid_cloudevents(&stack.http(), &received[..3]).await;

    // A consumer that restarts without its position (a new durable) gets the log again
    // from the start: every line is a duplicate it can recognise by position and id.
    let last_kept = *positions.last().unwrap();
    let again = live_consumer(&stack, "analytics-b", None).await;
    assert_eq!(ids(&again), ids(&received));
    assert!(again.iter().all(|e| position(e) <= last_kept));

    // One that keeps its position starts a new durable after it: exactly the rest.
    let middle = position(&before[before.len() - 1]).0;
    let rest = live_consumer(&stack, "analytics-c", Some(middle)).await;
    let expected: Vec<_> = received
        .iter()
        .filter(|e| position(e).0 > middle)
        .cloned()
        .collect();
    assert_eq!(ids(&rest), ids(&expected));

    // The analytics user reads, and can do nothing else to the log.
    let js = async_nats::jetstream::new(stack.nats.client_as("analytics").await);
    let forged = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        js.publish("coord.log.inspection.forged", "{}".into())
            .await?
            .await
    })
    .await;
    assert!(
        !matches!(forged, Ok(Ok(_))),
        "the analytics user appended to the log: {forged:?}"
    );
    assert!(
        js.delete_stream("COORD_LOG").await.is_err(),
        "deleted the log"
    );
    let mut log_stream = js.get_stream("COORD_LOG").await.unwrap();
    assert!(log_stream.purge().await.is_err(), "purged the log");
    assert!(
        log_stream.delete_consumer("analytics-a").await.is_err(),
        "deleted a consumer"
    );
    assert!(
        log_stream.direct_get(1).await.is_err(),
        "read around its consumers"
    );
    let info = log_stream.info().await.unwrap();
    assert_eq!(
        info.state.last_sequence,
        position(received.last().unwrap()).0,
        "the log kept exactly what it had"
    );
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    let r = http.get(&url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// Events of `ce_type` (without version) dated within `from..=to`, from the export.
fn count(events: &[Value], ce_type: &str, from: &str, to: &str) -> u64 {
    events
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{ce_type}.v"))
        })
        .filter(|e| (from..=to).contains(&e["occurredon"].as_str().unwrap()))
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periods_months_and_as_of_agree_with_the_events_of_the_reference_scenario() {
    let stack = Stack::start();
    stack.wait_ready().await;
    let base = stack.gateway_url.clone();
    let http = stack.http();
    let client = stack.client();
    let loaded = coordctl::load(&client, SCENARIO, false).await.unwrap();
    let now = summary(&http, &base, loaded.last_position).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.ndjson");
    export_events(&client, &args(&path, None), false)
        .await
        .unwrap();
    let events = lines(&path);
    let q = format!("term=2020-2025&min_position={}", loaded.last_position);

    // "Since 06/2022": a window from 2022-06-01.
    let (from, to) = ("2022-06-01", "2025-12-31");
    let p = get_json(&http, format!("{base}/v1/analytics/period?{q}&from={from}")).await;
    let t = &p["totals"];
    let concluded = t["inspections"]["concluded"].as_u64().unwrap()
        + t["supervisions"]["concluded"].as_u64().unwrap();
    assert_eq!(
        concluded,
        count(&events, "vn.coord.inspection.concluded", from, to)
    );
    assert!(concluded > 0);
    assert_eq!(
        t["exchanges"]["sent"],
        count(&events, "vn.coord.exchange.information_exchanged", from, to)
    );
    let warnings = t["decisions"]["organizations"]["warning"].as_u64().unwrap()
        + t["decisions"]["members"]["warning"].as_u64().unwrap();
    let expected_warnings = events
        .iter()
        .filter(|e| e["type"] == "vn.coord.discipline.decided.v1" && e["data"]["form"] == "warning")
        .filter(|e| e["occurredon"].as_str().unwrap() >= from)
        .count() as u64;
    assert_eq!(warnings, expected_warnings);

    // Monthly: the months add up to the window, and one unit's schedule is its own.
    let m = get_json(
        &http,
        format!("{base}/v1/analytics/monthly?{q}&from={from}"),
    )
    .await;
    let rows = m["rows"].as_array().unwrap();
    let sum: u64 = rows
        .iter()
        .map(|r| {
            r["inspections"]["concluded"].as_u64().unwrap()
                + r["supervisions"]["concluded"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(sum, concluded);
    assert!(
        rows.windows(2)
            .all(|w| w[0]["month"].as_str() <= w[1]["month"].as_str())
    );
    let lx = get_json(
        &http,
        format!("{base}/v1/analytics/monthly?{q}&unit=long-xuyen"),
    )
    .await;
    let lx_scheduled: u64 = lx["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["inspections"]["scheduled"].as_u64().unwrap()
                + r["supervisions"]["scheduled"].as_u64().unwrap()
        })
        .sum();
    let expected = events
        .iter()
        .filter(|e| {
            e["type"] == "vn.coord.inspection.scheduled.v1" && e["data"]["unit"] == "long-xuyen"
        })
        .count() as u64;
    assert_eq!(lx_scheduled, expected);
    assert!(
        lx["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["unit"] == "long-xuyen")
    );

    // As of a date: what was concluded by then; before the term nothing, after it all.
    let date = "2023-06-30";
    let a = get_json(
        &http,
        format!("{base}/v1/analytics/province?{q}&as_of_date={date}"),
    )
    .await;
    assert_eq!(
        a["inspections"]["concluded"],
        count(&events, "vn.coord.inspection.concluded", "0000-01-01", date)
    );
    assert_eq!(
        a["inspections"]["scheduled"].as_u64().unwrap()
            + a["inspections"]["in_progress"].as_u64().unwrap()
            + a["inspections"]["concluded"].as_u64().unwrap()
            + a["inspections"]["cancelled"].as_u64().unwrap(),
        count(&events, "vn.coord.inspection.scheduled", "0000-01-01", date)
    );
    let same = get_json(
        &http,
        format!("{base}/v1/status/province?{q}&as_of_date={date}"),
    )
    .await;
    assert_eq!(same, a, "the status route takes as_of_date too");
    let before = get_json(
        &http,
        format!("{base}/v1/analytics/province?{q}&as_of=2019-12-31"),
    )
    .await;
    assert_eq!(before["districts_coordinated"], 0);
    assert_eq!(before["inspections"]["concluded"], 0);
    let end = get_json(
        &http,
        format!("{base}/v1/analytics/province?{q}&as_of=2030-01-01"),
    )
    .await;
    let mut now_v = serde_json::to_value(&now).unwrap();
    now_v["position"] = end["position"].clone();
    assert_eq!(end, now_v, "as of after everything = the status now");

    window_status(&http, &base, &q, &events).await;
    as_of_recorded(&http, &base, &q, &events, &now).await;

    // The same as tables: Parquet with typed columns, CSV with a header.
    let parquet = |bytes: bytes::Bytes| {
        parquet::file::reader::SerializedFileReader::new(bytes).expect("a Parquet file")
    };
    let r = http
        .get(format!("{base}/v1/export/events?format=parquet"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    let file = parquet(r.bytes().await.unwrap());
    assert_eq!(num_rows(&file), events.len() as i64);
    assert_eq!(column_type(&file, "occurred_on"), "INT32 Date");
    assert_eq!(column_type(&file, "position_commit"), "INT64 -");
    let r = http
        .get(format!(
            "{base}/v1/export/districts?format=parquet&term=2020-2025"
        ))
        .send()
        .await
        .unwrap();
    let file = parquet(r.bytes().await.unwrap());
    assert_eq!(num_rows(&file), 11);
    assert_eq!(column_type(&file, "coordinated"), "BOOLEAN -");
    assert_eq!(column_type(&file, "inspections_concluded"), "INT64 -");
    let csv = http
        .get(format!(
            "{base}/v1/export/monthly?term=2020-2025&from={from}"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        csv.lines().count(),
        rows.len() + 1,
        "a header and one line per row"
    );
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .contains("inspections_concluded")
    );

    // A bad date is a typed error naming the parameter.
    let r = http
        .get(format!("{base}/v1/analytics/province?as_of=30/06/2023"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "invalid_date");
    assert!(p["detail"].as_str().unwrap().contains("as_of"));
}

fn num_rows(file: &parquet::file::reader::SerializedFileReader<bytes::Bytes>) -> i64 {
    use parquet::file::reader::FileReader;
    file.metadata().file_metadata().num_rows()
}

/// `PHYSICAL Logical` of a column, e.g. `INT32 Date`.
fn column_type(
    file: &parquet::file::reader::SerializedFileReader<bytes::Bytes>,
    name: &str,
) -> String {
    use parquet::file::reader::FileReader;
    let schema = file.metadata().file_metadata().schema_descr();
    let c = schema
        .columns()
        .iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let logical = c
        .logical_type_ref()
        .map_or("-".to_owned(), |l| format!("{l:?}"));
    format!("{} {logical}", c.physical_type())
}

/// Events of `ce_type` (without version) recorded at or before `t`, from the export.
fn count_recorded(events: &[Value], ce_type: &str, t: DateTime<Utc>) -> u64 {
    events
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{ce_type}.v"))
        })
        .filter(|e| recorded(e) <= t)
        .count() as u64
}

fn recorded(e: &Value) -> DateTime<Utc> {
    e["time"].as_str().unwrap().parse().unwrap()
}

/// The status routes restricted to a window of business dates.
async fn window_status(http: &reqwest::Client, base: &str, q: &str, events: &[Value]) {
    let (from, to) = ("2022-06-01", "9999-12-31");
    let concluded = count(events, "vn.coord.inspection.concluded", from, to);
    let sent = count(events, "vn.coord.exchange.information_exchanged", from, to);
    let w = get_json(http, format!("{base}/v1/status/province?{q}&from={from}")).await;
    assert_eq!(w["window"], serde_json::json!({"from": from, "to": null}));
    assert_eq!(w["inspections"]["concluded"], concluded);
    assert_eq!(w["exchanges"]["sent"], sent);
    let list = get_json(http, format!("{base}/v1/status/districts?{q}&from={from}")).await;
    assert_eq!(list["window"], w["window"]);
    let districts = list["districts"].as_array().unwrap();
    let sum = |f: &dyn Fn(&Value) -> &Value| {
        districts
            .iter()
            .map(|d| f(d).as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(sum(&|d| &d["inspections"]["concluded"]), concluded);
    assert_eq!(sum(&|d| &d["exchanges"]["sent"]), sent);
    let unit = districts[0]["unit"].as_str().unwrap();
    let one = get_json(
        http,
        format!("{base}/v1/status/districts/{unit}?{q}&from={from}"),
    )
    .await;
    assert_eq!(one["inspections"], districts[0]["inspections"]);
    assert_eq!(one["window"], w["window"]);
    // Everything in the reference scenario is dated from 06/2022 on, so split it at
    // the date of its middle conclusion: the two windows add up to the whole.
    let mut dates: Vec<&str> = events
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .unwrap()
                .starts_with("vn.coord.inspection.concluded.v")
        })
        .map(|e| e["occurredon"].as_str().unwrap())
        .collect();
    dates.sort();
    let mid = dates[dates.len() / 2];
    let day_before = (mid.parse::<chrono::NaiveDate>().unwrap() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let late = get_json(http, format!("{base}/v1/status/province?{q}&from={mid}")).await;
    let early = get_json(
        http,
        format!("{base}/v1/status/province?{q}&from=2020-01-01&to={day_before}"),
    )
    .await;
    assert_eq!(
        early["window"],
        serde_json::json!({"from": "2020-01-01", "to": day_before})
    );
    let late_n = count(events, "vn.coord.inspection.concluded", mid, to);
    assert_eq!(late["inspections"]["concluded"], late_n);
    assert!(0 < late_n && late_n < concluded, "a real split");
    assert_eq!(
        early["inspections"]["concluded"].as_u64().unwrap() + late_n,
        concluded
    );
    assert_eq!(
        late["exchanges"]["sent"],
        count(events, "vn.coord.exchange.information_exchanged", mid, to)
    );
    for (query, code, named) in [
        ("from=2022-13-01", "invalid_date", "2022-13-01"),
        ("to=June", "invalid_date", "June"),
        ("from=2023-01-01&to=2022-01-01", "invalid_window", "from"),
    ] {
        let r = http
            .get(format!("{base}/v1/status/province?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], code, "{query}");
        assert!(p["detail"].as_str().unwrap().contains(named), "{p}");
    }
}

/// The status as recorded up to a moment: only events recorded at or before it.
async fn as_of_recorded(
    http: &reqwest::Client,
    base: &str,
    q: &str,
    events: &[Value],
    now: &ProvinceSummary,
) {
    let conclusions: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .unwrap()
                .starts_with("vn.coord.inspection.concluded.v")
        })
        .collect();
    let known = recorded(conclusions[conclusions.len() / 2]);
    let just_before = known - chrono::Duration::nanoseconds(1);
    let at = |t: DateTime<Utc>| {
        let t = t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        get_json(http, format!("{base}/v1/status/province?{q}&as_of={t}"))
    };
    let (a, b) = (at(known).await, at(just_before).await);
    let concluded = count_recorded(events, "vn.coord.inspection.concluded", known);
    assert_eq!(a["inspections"]["concluded"], concluded);
    assert_eq!(
        b["inspections"]["concluded"],
        count_recorded(events, "vn.coord.inspection.concluded", just_before)
    );
    assert!(b["inspections"]["concluded"].as_u64().unwrap() < concluded);
    assert!(concluded < now.inspections.concluded);
    assert_eq!(
        a["exchanges"]["sent"],
        count_recorded(events, "vn.coord.exchange.information_exchanged", known)
    );
    let first = recorded(&events[0]) - chrono::Duration::nanoseconds(1);
    let nothing = at(first).await;
    assert_eq!(nothing["inspections"]["scheduled"], 0);
    assert_eq!(nothing["districts_coordinated"], 0);
    let last = at(recorded(events.last().unwrap())).await;
    assert_eq!(
        last["inspections"],
        serde_json::to_value(now.inspections).unwrap()
    );
    assert_eq!(
        last["exchanges"],
        serde_json::to_value(now.exchanges).unwrap()
    );
}
