//! What the analytics read models cost, on a synthetic log of `EVENTS` inspections
//! scheduled evenly over the 2020-2025 term (11 units), in a SQLite file:
//! - applying the events (with the `analytics_events` row each now writes);
//! - `as_of` at 10 %, 50 % and 100 % of the term: it should grow with the events
//!   before the date, not with the log;
//! - the monthly and period queries over the whole term;
//! - the events as CloudEvents, then CSV and Parquet.
//!
//! Run: `cargo bench -p projector --bench analytics` (release). Writes
//! `tests/bench-results/analytics.json`.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};
use coord_domain::Province;
use coord_domain::province::AN_GIANG_TOML;
use coord_feed::CloudEvent;
use coord_log::{EventPosition, RecordedEvent};
use projector::analytics::{Cutoff, Window, monthly, period, province_as_of};
use projector::store::{Item, Store};
use serde_json::json;
use uuid::Uuid;

const EVENTS: usize = 50_000;
fn event(i: usize, start: NaiveDate, days: i64) -> RecordedEvent {
    let id = Uuid::now_v7();
    let units = &coord_domain::province::an_giang().units;
    let unit = units[i % units.len()].id.as_str();
    let date = start + Duration::days(i as i64 * days / EVENTS as i64);
    RecordedEvent {
        role: None,
        event_id: Uuid::now_v7(),
        stream_id: format!("inspection-{id}").parse().unwrap(),
        stream_version: 1,
        event_type: "InspectionScheduled".into(),
        schema_version: 1,
        occurred_at: date,
        recorded_at: Utc::now(),
        office: "province".into(),
        actor: "bench".into(),
        correlation_id: id,
        causation_id: id,
        payload: json!({
            "inspection_id": id, "term": "2020-2025", "unit": unit,
            "kind": if i.is_multiple_of(2) { "inspection" } else { "supervision" }, "category": "regular",
            "leading_body": "provincial_inspection_commission",
            "coordinating_body": format!("district_standing_committee:{unit}"),
            "target": format!("district_police:{unit}"),
            "decision_ref": "bench (giả định)", "decided_on": date,
            "planned_start": date, "planned_end": date
        }),
        position: Some(EventPosition {
            commit: i as u64 + 1,
            index: 0,
        }),
    }
}

fn median_ms(mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[1]
}

fn main() {
    let province = Province::from_toml_str(AN_GIANG_TOML).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("bench.sqlite"), province).unwrap();
    let start: NaiveDate = "2020-11-01".parse().unwrap();
    let days = ("2025-09-30".parse::<NaiveDate>().unwrap() - start).num_days();
    let events: Vec<RecordedEvent> = (0..EVENTS).map(|i| event(i, start, days)).collect();

    let t = Instant::now();
    for chunk in events.chunks(1000) {
        let items: Vec<Item> = chunk.iter().cloned().map(Item::Event).collect();
        store.apply_batch(&items).unwrap();
    }
    let apply_s = t.elapsed().as_secs_f64();

    let term = "2020-2025".parse().unwrap();
    let mut as_of = Vec::new();
    for share in [0.1, 0.5, 1.0] {
        let date = start + Duration::days((days as f64 * share) as i64);
        let date_s = date.format("%Y-%m-%d").to_string();
        let mut scheduled = 0;
        let ms = median_ms(|| {
            let s = province_as_of(&store, term, &Cutoff::Dated(date_s.clone())).unwrap();
            scheduled = s.inspections.scheduled;
        });
        println!("as_of {date_s}: {scheduled} events before it, {ms:.1} ms");
        as_of.push(
            json!({ "as_of": date_s, "events_before": scheduled, "ms": ms,
                           "us_per_event": ms * 1e3 / scheduled.max(1) as f64 }),
        );
    }
    let whole = Window::default();
    let monthly_ms = median_ms(|| {
        monthly(&store, term, &whole).unwrap();
    });
    let period_ms = median_ms(|| {
        period(&store, term, &whole).unwrap();
    });

    let t = Instant::now();
    let ces: Vec<CloudEvent> = events
        .iter()
        .map(|e| CloudEvent::from_recorded(e, "http://127.0.0.1:8080").unwrap())
        .collect();
    let cloudevents_s = t.elapsed().as_secs_f64();
    let table = coord_feed::table::events_table(&ces);
    let t = Instant::now();
    let csv = table.to_csv().unwrap();
    let csv_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let parquet = table.to_parquet().unwrap();
    let parquet_s = t.elapsed().as_secs_f64();

    let result = json!({
        "events": EVENTS,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "apply_events_per_s": EVENTS as f64 / apply_s,
        "as_of": as_of,
        "monthly_whole_term_ms": monthly_ms,
        "period_whole_term_ms": period_ms,
        "cloudevents_per_s": EVENTS as f64 / cloudevents_s,
        "csv_rows_per_s": EVENTS as f64 / csv_s,
        "csv_bytes": csv.len(),
        "parquet_rows_per_s": EVENTS as f64 / parquet_s,
        "parquet_bytes": parquet.len(),
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("analytics.json"),
        serde_json::to_string_pretty(&result).unwrap() + "\n",
    )
    .unwrap();
}
