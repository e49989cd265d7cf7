//! Analysis-ready tables: the events and the read models as typed columns, written as
//! CSV (UTF-8, RFC 4180, a header row; for spreadsheets) or Parquet (typed columns,
//! Snappy; for DuckDB, pandas, BI tools).
//!
//! A [`Table`] is built once and written either way, so the CSV and the Parquet of a
//! dataset always have the same columns in the same order. A [`TableWriter`] writes the
//! same formats a group of rows at a time into any [`Write`], flushing each group, for
//! tables too large to hold (the events export): memory is one group, whatever the
//! number of rows.

use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use parquet::basic::{Compression, ConvertedType, LogicalType, Repetition, TimeUnit, Type};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type as SchemaType;

use serde_json::Value;

use crate::CloudEvent;

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Date,
    Timestamp,
    Bool,
}

/// One value; `Null` only in a nullable column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(i64),
    Text(String),
    Date(NaiveDate),
    Timestamp(DateTime<Utc>),
    Bool(bool),
    Null,
}

/// A column: name, type, and whether it may hold nulls.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    pub nullable: bool,
}

/// A named table of typed rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: &'static str,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

/// Why a table could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// Shorthand for a column.
pub fn col(name: &str, kind: Kind, nullable: bool) -> Column {
    Column {
        name: name.to_owned(),
        kind,
        nullable,
    }
}

impl Cell {
    fn to_csv(&self) -> String {
        match self {
            Cell::Int(v) => v.to_string(),
            Cell::Text(v) => v.clone(),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
            Cell::Timestamp(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            Cell::Bool(b) => b.to_string(),
            Cell::Null => String::new(),
        }
    }
}

/// The two table formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    /// `csv` or `parquet`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Self::Csv),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The media type of a file in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }
}

/// Writes a table a group of rows at a time: CSV (a header row, then the rows) or
/// Parquet (one row group per group, typed columns, Snappy). Each group is flushed to
/// the output before the call returns; [`TableWriter::finish`] ends the file (the
/// Parquet footer). A writer dropped without `finish` leaves a file a reader refuses
/// (Parquet) or one without its last groups (CSV).
pub enum TableWriter<W: Write + Send> {
    Csv(csv::Writer<W>),
    Parquet {
        writer: Box<SerializedFileWriter<W>>,
        columns: Vec<Column>,
    },
}

impl<W: Write + Send> TableWriter<W> {
    /// A writer of a table `name` with these columns (CSV writes its header now).
    pub fn new(format: Format, out: W, name: &str, columns: &[Column]) -> Result<Self, TableError> {
        match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(columns.iter().map(|c| c.name.as_str()))?;
                Ok(Self::Csv(w))
            }
            Format::Parquet => {
                let fields = columns.iter().map(|c| Arc::new(field(c))).collect();
                let schema = SchemaType::group_type_builder(name)
                    .with_fields(fields)
                    .build()?;
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                let writer = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(props))?;
                Ok(Self::Parquet {
                    writer: Box::new(writer),
                    columns: columns.to_vec(),
                })
            }
        }
    }

    /// Writes `rows` (one Parquet row group) and flushes them to the output.
    pub fn write_group(&mut self, rows: &[Vec<Cell>]) -> Result<(), TableError> {
        match self {
            Self::Csv(w) => {
                for row in rows {
                    w.write_record(row.iter().map(Cell::to_csv))?;
                }
                w.flush().map_err(csv::Error::from)?;
            }
            Self::Parquet { writer, columns } => {
                let mut group = writer.next_row_group()?;
                let mut index = 0;
                while let Some(mut column) = group.next_column()? {
                    write_column(&columns[index], rows, index, &mut column)?;
                    column.close()?;
                    index += 1;
                }
                group.close()?;
                writer
                    .flush()
                    .map_err(parquet::errors::ParquetError::from)?;
            }
        }
        Ok(())
    }

    /// Ends the file (Parquet: its footer) and gives the output back.
    pub fn finish(self) -> Result<W, TableError> {
        match self {
            Self::Csv(w) => w
                .into_inner()
                .map_err(|e| TableError::Csv(csv::Error::from(e.into_error()))),
            Self::Parquet { writer, .. } => Ok(writer.into_inner()?),
        }
    }
}

impl Table {
    /// CSV with a header row.
    pub fn to_csv(&self) -> Result<Vec<u8>, TableError> {
        self.write(Format::Csv)
    }

    /// One Parquet file (one row group), typed columns, Snappy-compressed.
    pub fn to_parquet(&self) -> Result<Vec<u8>, TableError> {
        self.write(Format::Parquet)
    }

    /// The whole table in `format`, as one group.
    pub fn write(&self, format: Format) -> Result<Vec<u8>, TableError> {
        let mut w = TableWriter::new(format, Vec::new(), self.name, &self.columns)?;
        w.write_group(&self.rows)?;
        w.finish()
    }
}

fn write_column(
    col: &Column,
    rows: &[Vec<Cell>],
    index: usize,
    column: &mut parquet::file::writer::SerializedColumnWriter<'_>,
) -> Result<(), TableError> {
    let cells: Vec<&Cell> = rows.iter().map(|r| &r[index]).collect();
    let levels: Vec<i16> = cells.iter().map(|c| i16::from(**c != Cell::Null)).collect();
    let levels = col.nullable.then_some(levels.as_slice());
    match col.kind {
        Kind::Int | Kind::Timestamp => {
            let values: Vec<i64> = cells
                .iter()
                .filter_map(|c| match c {
                    Cell::Int(v) => Some(*v),
                    Cell::Timestamp(t) => Some(t.timestamp_micros()),
                    _ => None,
                })
                .collect();
            column
                .typed::<Int64Type>()
                .write_batch(&values, levels, None)?;
        }
        Kind::Date => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
            let values: Vec<i32> = cells
                .iter()
                .filter_map(|c| match c {
                    Cell::Date(d) => Some((*d - epoch).num_days() as i32),
                    _ => None,
                })
                .collect();
            column
                .typed::<Int32Type>()
                .write_batch(&values, levels, None)?;
        }
        Kind::Text => {
            let values: Vec<ByteArray> = cells
                .iter()
                .filter_map(|c| match c {
                    Cell::Text(s) => Some(ByteArray::from(s.as_str())),
                    _ => None,
                })
                .collect();
            column
                .typed::<ByteArrayType>()
                .write_batch(&values, levels, None)?;
        }
        Kind::Bool => {
            let values: Vec<bool> = cells
                .iter()
                .filter_map(|c| match c {
                    Cell::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect();
            column
                .typed::<BoolType>()
                .write_batch(&values, levels, None)?;
        }
    }
    Ok(())
}

fn field(c: &Column) -> SchemaType {
    let (physical, logical) = match c.kind {
        Kind::Int => (Type::INT64, None),
        Kind::Text => (Type::BYTE_ARRAY, Some(LogicalType::String)),
        Kind::Date => (Type::INT32, Some(LogicalType::Date)),
        Kind::Timestamp => (
            Type::INT64,
            Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
        ),
        Kind::Bool => (Type::BOOLEAN, None),
    };
    let repetition = if c.nullable {
        Repetition::OPTIONAL
    } else {
        Repetition::REQUIRED
    };
    let mut builder = SchemaType::primitive_type_builder(&c.name, physical)
        .with_repetition(repetition)
        .with_logical_type(logical.clone());
    if logical == Some(LogicalType::String) {
        builder = builder.with_converted_type(ConvertedType::UTF8);
    }
    builder.build().expect("a valid column definition")
}

/// The columns of the events table (one row per CloudEvent).
pub fn event_columns() -> Vec<Column> {
    use Kind::*;
    vec![
        col("position_commit", Int, false),
        col("position_index", Int, false),
        col("id", Text, false),
        col("type", Text, false),
        col("source", Text, false),
        col("subject", Text, false),
        col("stream_version", Int, false),
        col("occurred_on", Date, false),
        col("time", Timestamp, false),
        col("actor", Text, false),
        col("correlation_id", Text, false),
        col("causation_id", Text, false),
        col("unit", Text, true),
        col("data", Text, false),
    ]
}

/// One event as a row of [`event_columns`], `data` as JSON text.
pub fn event_row(e: &CloudEvent) -> Vec<Cell> {
    let p = e.log_position().unwrap_or(coord_log::EventPosition {
        commit: 0,
        index: 0,
    });
    vec![
        Cell::Int(p.commit as i64),
        Cell::Int(p.index as i64),
        Cell::Text(e.id.clone()),
        Cell::Text(e.ce_type.clone()),
        Cell::Text(e.source.clone()),
        Cell::Text(e.subject.clone()),
        Cell::Int(e.streamversion as i64),
        Cell::Date(e.occurredon),
        Cell::Timestamp(e.time),
        Cell::Text(e.actor.clone()),
        Cell::Text(e.correlationid.clone()),
        Cell::Text(e.causationid.clone()),
        e.data["unit"]
            .as_str()
            .map_or(Cell::Null, |u| Cell::Text(u.to_owned())),
        Cell::Text(e.data.to_string()),
    ]
}

/// The events as a table: one row per CloudEvent, `data` as JSON text.
pub fn events_table(events: &[CloudEvent]) -> Table {
    Table {
        name: "events",
        columns: event_columns(),
        rows: events.iter().map(event_row).collect(),
    }
}

/// A table of read-model rows (any JSON objects), nested fields flattened with `_`
/// (`inspections.concluded` → `inspections_concluded`). Numbers become integer
/// columns, booleans boolean, `YYYY-MM-DD` strings in `*_on` fields dates, arrays
/// JSON text; a column is nullable when a row lacks it.
pub fn json_table(name: &'static str, rows: &[Value]) -> Table {
    let flat: Vec<Vec<(String, Value)>> = rows.iter().map(|r| flatten("", r)).collect();
    let mut columns: Vec<Column> = Vec::new();
    for row in &flat {
        for (key, value) in row {
            let kind = kind_of(key, value);
            match columns.iter_mut().find(|c| &c.name == key) {
                Some(c) => c.nullable |= value.is_null(),
                None => columns.push(Column {
                    name: key.clone(),
                    kind: kind.unwrap_or(Kind::Text),
                    nullable: value.is_null(),
                }),
            }
            if let (Some(kind), Some(c)) = (kind, columns.iter_mut().find(|c| &c.name == key)) {
                c.kind = kind;
            }
        }
    }
    for c in &mut columns {
        c.nullable |= flat.iter().any(|r| !r.iter().any(|(k, _)| k == &c.name));
    }
    // What identifies a row (names, units, months, dates) first, then the counts.
    columns.sort_by_key(|c| match c.kind {
        Kind::Text | Kind::Date | Kind::Timestamp => 0,
        Kind::Bool => 1,
        Kind::Int => 2,
    });
    let rows = flat
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| {
                    let value = row.iter().find(|(k, _)| k == &c.name).map(|(_, v)| v);
                    cell(c.kind, value.unwrap_or(&Value::Null))
                })
                .collect()
        })
        .collect();
    Table {
        name,
        columns,
        rows,
    }
}

fn flatten(prefix: &str, value: &Value) -> Vec<(String, Value)> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}_{k}")
                };
                flatten(&key, v)
            })
            .collect(),
        other => vec![(prefix.to_owned(), other.clone())],
    }
}

fn kind_of(key: &str, value: &Value) -> Option<Kind> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some(Kind::Bool),
        Value::Number(_) => Some(Kind::Int),
        Value::String(s) if key.ends_with("_on") && s.parse::<NaiveDate>().is_ok() => {
            Some(Kind::Date)
        }
        _ => Some(Kind::Text),
    }
}

fn cell(kind: Kind, value: &Value) -> Cell {
    match (kind, value) {
        (_, Value::Null) => Cell::Null,
        (Kind::Int, v) => v.as_i64().map_or(Cell::Null, Cell::Int),
        (Kind::Bool, v) => v.as_bool().map_or(Cell::Null, Cell::Bool),
        (Kind::Date, v) => v
            .as_str()
            .and_then(|s| s.parse().ok())
            .map_or(Cell::Null, Cell::Date),
        (_, Value::String(s)) => Cell::Text(s.clone()),
        (_, other) => Cell::Text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            name: "t",
            columns: vec![
                col("n", Kind::Int, false),
                col("name", Kind::Text, true),
                col("on", Kind::Date, false),
            ],
            rows: vec![
                vec![
                    Cell::Int(1),
                    Cell::Text("Long Xuyên, \"thành phố\"".into()),
                    Cell::Date("2022-06-01".parse().unwrap()),
                ],
                vec![
                    Cell::Int(2),
                    Cell::Null,
                    Cell::Date("2023-01-31".parse().unwrap()),
                ],
            ],
        }
    }

    #[test]
    fn read_model_rows_flatten_into_typed_columns() {
        let rows = [
            serde_json::json!({"unit": "an-phu", "coordinated": true, "counts": {"sent": 2}, "last_on": "2023-01-02"}),
            serde_json::json!({"unit": "tri-ton", "coordinated": false, "counts": {"sent": 0}, "last_on": null}),
        ];
        let t = json_table("districts", &rows);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["last_on", "unit", "coordinated", "counts_sent"]);
        let kinds: Vec<Kind> = t.columns.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [Kind::Date, Kind::Text, Kind::Bool, Kind::Int]);
        assert!(t.columns[0].nullable && !t.columns[1].nullable);
        assert_eq!(t.rows[1][0], Cell::Null);
    }

    #[test]
    fn csv_quotes_and_keeps_vietnamese_text() {
        let csv = String::from_utf8(table().to_csv().unwrap()).unwrap();
        assert_eq!(
            csv,
            "n,name,on\n1,\"Long Xuyên, \"\"thành phố\"\"\",2022-06-01\n2,,2023-01-31\n"
        );
    }
}
