//! The events export as a table (`GET /v1/export/events?format=csv|parquet`), streamed
//! in bounded memory: whatever the number of rows, the gateway holds a few groups of
//! [`READ_GROUP`] events and one group of [`GROUP_ROWS`] rows, never the table.
//!
//! Three stages joined by bounded channels, so a slow client slows the log read
//! instead of filling memory:
//!
//! 1. an async task reads the snapshot from the log and hands on groups of
//!    [`READ_GROUP`] events ([`GROUPS_IN_FLIGHT`] at most waiting);
//! 2. a blocking thread, off the async runtime, turns them into CloudEvents, applies the
//!    export's filters and writes them with [`TableWriter`]: CSV rows, or one Parquet row
//!    group per [`GROUP_ROWS`] rows, each flushed;
//! 3. [`BodyWriter`] cuts the encoded bytes into chunks of [`CHUNK_BYTES`] for the
//!    response body ([`BODY_CHUNKS`] at most waiting).
//!
//! A log error mid-stream ends the body with an error instead of its last chunk (an
//! aborted chunked transfer, and for Parquet no footer), so no client takes a cut
//! table for a whole one (ANALYTICS.md).

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::http::HeaderValue;
use axum::response::Response;
use coord_feed::CloudEvent;
use coord_feed::table::{Cell, Format, TableWriter, event_columns, event_row};
use coord_log::RecordedEvent;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::feed::{ExportParams, RESUME_HEADER, Snapshot, table_download};

/// Rows per CSV flush and per Parquet row group.
pub const GROUP_ROWS: usize = 8192;
/// Events handed from the log read to the encoder at once.
pub const READ_GROUP: usize = 1024;
/// Groups of events read from the log and not yet encoded.
const GROUPS_IN_FLIGHT: usize = 2;
/// Bytes per body chunk.
const CHUNK_BYTES: usize = 64 * 1024;
/// Body chunks encoded and not yet sent.
const BODY_CHUNKS: usize = 8;

type Chunk = Result<Bytes, std::io::Error>;
type Group = Result<Vec<RecordedEvent>, String>;

/// The snapshot's events as a table download in `format`.
pub fn respond(snapshot: Snapshot, params: ExportParams, base: String, format: Format) -> Response {
    let (groups_tx, groups_rx) = mpsc::channel::<Group>(GROUPS_IN_FLIGHT);
    let (body_tx, body_rx) = mpsc::channel::<Chunk>(BODY_CHUNKS);
    tokio::spawn(read_groups(snapshot.rx, groups_tx));
    tokio::task::spawn_blocking(move || encode(format, groups_rx, &params, &base, body_tx));
    let body = Body::from_stream(crate::feed::tokio_stream_of(body_rx));
    let mut response = table_download(body, format, "events");
    let h = response.headers_mut();
    h.insert(RESUME_HEADER, HeaderValue::from(snapshot.resume_after));
    response
}

/// Stage 1: the log's events in groups; an error is the last item.
async fn read_groups(
    mut events: futures::stream::BoxStream<'static, Result<RecordedEvent, String>>,
    tx: mpsc::Sender<Group>,
) {
    let mut group = Vec::with_capacity(READ_GROUP);
    while let Some(item) = events.next().await {
        match item {
            Ok(event) => group.push(event),
            Err(message) => {
                let _ = tx.send(Err(message)).await;
                return;
            }
        }
        if group.len() == READ_GROUP
            && tx
                .send(Ok(std::mem::replace(
                    &mut group,
                    Vec::with_capacity(READ_GROUP),
                )))
                .await
                .is_err()
        {
            return; // the encoder stopped: the client went away
        }
    }
    if !group.is_empty() {
        let _ = tx.send(Ok(group)).await;
    }
}

/// Stage 2 (a blocking thread): the groups encoded into the body; a failure, the log's
/// or the encoder's, ends the body with an error.
fn encode(
    format: Format,
    mut groups: mpsc::Receiver<Group>,
    params: &ExportParams,
    base: &str,
    body: mpsc::Sender<Chunk>,
) {
    let out = BodyWriter::new(body.clone());
    let written = TableWriter::new(format, out, "events", &event_columns())
        .map_err(|e| e.to_string())
        .and_then(|mut writer| {
            write_rows(&mut writer, &mut groups, params, base)?;
            let mut out = writer.finish().map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())
        });
    if let Err(message) = written {
        tracing::warn!(error = %message, "table export cut");
        let _ = body.blocking_send(Err(std::io::Error::other(message)));
    }
}

fn write_rows(
    writer: &mut TableWriter<BodyWriter>,
    groups: &mut mpsc::Receiver<Group>,
    params: &ExportParams,
    base: &str,
) -> Result<(), String> {
    let mut rows: Vec<Vec<Cell>> = Vec::with_capacity(GROUP_ROWS);
    while let Some(group) = groups.blocking_recv() {
        for event in group? {
            let ce = CloudEvent::from_recorded(&event, base)
                .ok()
                .filter(|ce| params.wants(ce));
            rows.extend(ce.as_ref().map(event_row));
            if rows.len() == GROUP_ROWS {
                writer.write_group(&rows).map_err(|e| e.to_string())?;
                rows.clear();
            }
        }
    }
    if !rows.is_empty() {
        writer.write_group(&rows).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Stage 3: a [`Write`] into the response body, in chunks of [`CHUNK_BYTES`] (and
/// whatever is held at a flush). Blocks while the body's channel is full; fails once the
/// client is gone.
pub struct BodyWriter {
    tx: mpsc::Sender<Chunk>,
    held: Vec<u8>,
}

impl BodyWriter {
    fn new(tx: mpsc::Sender<Chunk>) -> Self {
        Self {
            tx,
            held: Vec::with_capacity(CHUNK_BYTES),
        }
    }

    fn send_held(&mut self) -> std::io::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.held,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.held.extend_from_slice(buf);
        if self.held.len() >= CHUNK_BYTES {
            self.send_held()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_held()
    }
}
