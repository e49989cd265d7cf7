//! `coordctl export` and `coordctl import`: the analytics feed to and from a file.
//!
//! `export events` writes the log as CloudEvents (NDJSON, one per line, or the batch
//! format) with a progress bar over log positions, and prints the position to resume
//! from. `import` sends such a file to a log without the site's own events (an empty
//! one, or an office's site restored from the hub), a few hundred events per request
//! and never splitting a commit, so the log holds the same commits in the same order
//! and the projector builds the same read models.

use std::path::PathBuf;

use anyhow::Context;
use coord_feed::cloudevent::parse_position;
use coord_feed::{CLOUDEVENTS_BATCH, NDJSON};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::client::Client;

/// Events per import request (a commit is never split, so a request may hold more).
pub const IMPORT_CHUNK: usize = 500;

#[derive(Debug, Clone, clap::Args)]
pub struct ExportEventsArgs {
    /// The file to write.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Start after this commit (the `resume after` of a previous export).
    #[arg(long)]
    pub after: Option<u64>,
    /// Stop after this commit.
    #[arg(long)]
    pub until: Option<u64>,
    /// Only events on or after this business date (YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Only events on or before this business date.
    #[arg(long)]
    pub to: Option<String>,
    /// Only these CloudEvents types, comma-separated (with or without `.vN`).
    #[arg(long = "type")]
    pub types: Option<String>,
    /// Write the CloudEvents JSON batch format (one array) instead of NDJSON.
    #[arg(long, conflicts_with = "format")]
    pub batch: bool,
    /// Write a table instead of CloudEvents: `csv` or `parquet` (one row per event).
    #[arg(long)]
    pub format: Option<String>,
}

/// `coordctl export monthly|districts`: a read model as a table.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportTableArgs {
    /// The file to write.
    #[arg(long, short)]
    pub out: PathBuf,
    /// `csv` (default) or `parquet`.
    #[arg(long, default_value = "csv")]
    pub format: String,
    #[arg(long)]
    pub term: Option<String>,
    /// Monthly only: first business date (YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Monthly only: last business date.
    #[arg(long)]
    pub to: Option<String>,
    /// Monthly only: one unit.
    #[arg(long)]
    pub unit: Option<String>,
}

/// Writes `/v1/export/{model}` (`monthly` or `districts`) into `args.out`; returns
/// the bytes written.
pub async fn export_table(
    client: &Client,
    model: &str,
    args: &ExportTableArgs,
) -> anyhow::Result<u64> {
    let mut query = vec![("format", args.format.clone())];
    for (k, v) in [
        ("term", &args.term),
        ("from", &args.from),
        ("to", &args.to),
        ("unit", &args.unit),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let response = client
        .get_stream(&format!("/v1/export/{model}"), &query, "*/*")
        .await?;
    let bytes = response.bytes().await.context("the export was cut off")?;
    tokio::fs::write(&args.out, &bytes)
        .await
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(bytes.len() as u64)
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportReport {
    pub events: u64,
    pub bytes: u64,
    /// Pass as `--after` to get what is appended from now on.
    pub resume_after: u64,
}

/// What an import did, summed over its requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ImportReport {
    pub events: u64,
    pub commits: u64,
    pub duplicates: u64,
    pub position: u64,
}

fn bar(len: u64, show: bool, template: &str) -> ProgressBar {
    let bar = if show {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Times an NDJSON export cut short is resumed before giving up.
const RESUME_ATTEMPTS: u32 = 5;

/// How one request of an NDJSON export ended.
enum Pass {
    /// The response ended whole: resume after the snapshot's end next time.
    Whole { resume_after: u64 },
    /// Cut short: the file holds every event through commit `resume_after`, nothing
    /// after it.
    Cut { resume_after: u64, why: String },
}

/// The last line of an export the gateway could not finish.
#[derive(Deserialize)]
struct ExportFailed {
    error: ExportFailure,
}

#[derive(Deserialize)]
struct ExportFailure {
    message: String,
    resume_after: u64,
}

/// Where the file stands during an NDJSON pass: the lines of the commit being read
/// may be incomplete until a later commit's line arrives.
struct Written {
    /// File length before the current commit's first line.
    safe_len: u64,
    /// The last commit whose lines are all in the file.
    complete_through: u64,
    current: Option<u64>,
    current_lines: u64,
    len: u64,
}

/// Streams `/v1/export/events` into `args.out`. An NDJSON export that is cut short
/// (an error record as its last line, or a transfer that ends without its final
/// chunk) keeps what is complete and resumes from there, so the file has no gap.
pub async fn export_events(
    client: &Client,
    args: &ExportEventsArgs,
    progress: bool,
) -> anyhow::Result<ExportReport> {
    if args.batch || args.format.is_some() {
        return export_whole(client, args, progress).await;
    }
    let mut file = tokio::fs::File::create(&args.out)
        .await
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut report = ExportReport::default();
    let mut after = args.after;
    let mut attempts = 0;
    let bar = bar(
        0,
        progress,
        "{spinner} xuất (export) [{bar:40}] {pos}/{len} vị trí (positions) {msg}",
    );
    loop {
        match ndjson_pass(client, args, after, &mut file, &mut report, &bar).await? {
            Pass::Whole { resume_after } => {
                report.resume_after = resume_after;
                file.flush().await?;
                bar.finish_and_clear();
                return Ok(report);
            }
            Pass::Cut { resume_after, why } => {
                attempts += 1;
                anyhow::ensure!(
                    attempts <= RESUME_ATTEMPTS,
                    "the export was cut short {attempts} times (last: {why}); {} holds every event through commit {resume_after}: export again with --after {resume_after} into another file",
                    args.out.display()
                );
                eprintln!(
                    "xuất bị cắt (export cut short) sau commit {resume_after}: {why}; tiếp tục (resuming)"
                );
                after = Some(resume_after);
                tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempts)))
                    .await;
            }
        }
    }
}

fn events_query(args: &ExportEventsArgs, after: Option<u64>) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    for (k, v) in [
        ("after", after.map(|a| a.to_string())),
        ("until", args.until.map(|u| u.to_string())),
        ("from", args.from.clone()),
        ("to", args.to.clone()),
        ("type", args.types.clone()),
    ] {
        if let Some(v) = v {
            query.push((k, v));
        }
    }
    query
}

/// One request of an NDJSON export from `after`, appended to `file` line by line.
async fn ndjson_pass(
    client: &Client,
    args: &ExportEventsArgs,
    after: Option<u64>,
    file: &mut tokio::fs::File,
    report: &mut ExportReport,
    bar: &ProgressBar,
) -> anyhow::Result<Pass> {
    let start = after.unwrap_or(0);
    let first = args.after.unwrap_or(0);
    let cut = |why: String, w: &Written| Pass::Cut {
        resume_after: w.complete_through,
        why,
    };
    let response = match client
        .get_stream("/v1/export/events", &events_query(args, after), NDJSON)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return Ok(Pass::Cut {
                resume_after: start,
                why: format!("{e:#}"),
            });
        }
    };
    let planned: u64 = response
        .headers()
        .get("coord-resume-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .context("the gateway did not say where to resume (Coord-Resume-After)")?;
    bar.set_length(planned.saturating_sub(first));
    let len = file.metadata().await?.len();
    let mut w = Written {
        safe_len: len,
        complete_through: start,
        current: None,
        current_lines: 0,
        len,
    };
    let mut body = response.bytes_stream();
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // The transfer ended without its final chunk: the current commit's
                // lines may be incomplete, so they go.
                file.set_len(w.safe_len).await?;
                file.seek(std::io::SeekFrom::End(0)).await?;
                report.events -= w.current_lines;
                report.bytes -= w.len - w.safe_len;
                return Ok(cut(format!("the transfer was cut: {e}"), &w));
            }
        };
        tail.extend_from_slice(&chunk);
        while let Some(end) = tail.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = tail.drain(..=end).collect();
            if let Ok(failed) = serde_json::from_slice::<ExportFailed>(&line) {
                // The gateway says every event through this commit was sent; the lines
                // of a later commit it does not vouch for go, as after a cut transfer.
                if w.current.is_some_and(|c| c > failed.error.resume_after) {
                    file.set_len(w.safe_len).await?;
                    file.seek(std::io::SeekFrom::End(0)).await?;
                    report.events -= w.current_lines;
                    report.bytes -= w.len - w.safe_len;
                }
                return Ok(Pass::Cut {
                    resume_after: failed.error.resume_after,
                    why: failed.error.message,
                });
            }
            let commit = commit_of(&line).unwrap_or(start);
            if w.current != Some(commit) {
                bar.set_position(commit.saturating_sub(first));
                w.complete_through = w.current.unwrap_or(start);
                w.safe_len = w.len;
                w.current = Some(commit);
                w.current_lines = 0;
            }
            file.write_all(&line).await?;
            w.len += line.len() as u64;
            w.current_lines += 1;
            report.events += 1;
            report.bytes += line.len() as u64;
        }
    }
    Ok(Pass::Whole {
        resume_after: planned,
    })
}

/// A table or batch export: one request, written as it comes; a transfer cut short is
/// an error.
async fn export_whole(
    client: &Client,
    args: &ExportEventsArgs,
    progress: bool,
) -> anyhow::Result<ExportReport> {
    let mut query = Vec::new();
    for (k, v) in [
        ("after", args.after.map(|a| a.to_string())),
        ("until", args.until.map(|u| u.to_string())),
        ("from", args.from.clone()),
        ("to", args.to.clone()),
        ("type", args.types.clone()),
        ("format", args.format.clone()),
    ] {
        if let Some(v) = v {
            query.push((k, v));
        }
    }
    let accept = if args.batch {
        CLOUDEVENTS_BATCH
    } else {
        NDJSON
    };
    let response = client
        .get_stream("/v1/export/events", &query, accept)
        .await?;
    let resume_after: u64 = response
        .headers()
        .get("coord-resume-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .context("the gateway did not say where to resume (Coord-Resume-After)")?;
    let start = args.after.unwrap_or(0);
    let bar = bar(
        resume_after.saturating_sub(start),
        progress,
        "{spinner} xuất (export) [{bar:40}] {pos}/{len} vị trí (positions) {msg}",
    );
    let mut file = tokio::fs::File::create(&args.out)
        .await
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut report = ExportReport {
        resume_after,
        ..Default::default()
    };
    let mut body = response.bytes_stream();
    let mut tail = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the export was cut off")?;
        file.write_all(&chunk).await?;
        report.bytes += chunk.len() as u64;
        tail.extend_from_slice(&chunk);
        if let Some(end) = tail.iter().rposition(|b| *b == b'\n') {
            let lines: Vec<&[u8]> = tail[..end].split(|b| *b == b'\n').collect();
            report.events += lines.len() as u64;
            if let Some(commit) = lines.last().and_then(|l| commit_of(l)) {
                // (NDJSON only; a CSV line has no `position` field to read)
                bar.set_position(commit.saturating_sub(start));
            }
            tail.drain(..=end);
        }
    }
    match args.format.as_deref() {
        Some("csv") => report.events = report.events.saturating_sub(1), // the header
        Some(_) => report.events = 0, // a binary table: not counted here
        None if args.batch => {
            let all: Vec<Value> = serde_json::from_slice(&tail).context("the batch is not JSON")?;
            report.events = all.len() as u64;
        }
        None => {}
    }
    file.flush().await?;
    bar.finish_and_clear();
    Ok(report)
}

fn commit_of(line: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Position<'a> {
        position: &'a str,
    }
    let p: Position<'_> = serde_json::from_slice(line).ok()?;
    parse_position(p.position).map(|p| p.commit)
}

/// Splits NDJSON lines into chunks of about [`IMPORT_CHUNK`] events, never splitting
/// the events of one commit.
pub fn chunks(text: &str) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let (mut current, mut count, mut last_commit) = (String::new(), 0usize, None);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let commit = commit_of(line.as_bytes())
            .with_context(|| format!("line {}: not an exported CloudEvent (no position)", i + 1))?;
        if count >= IMPORT_CHUNK && last_commit != Some(commit) {
            out.push(std::mem::take(&mut current));
            count = 0;
        }
        current.push_str(line);
        current.push('\n');
        count += 1;
        last_commit = Some(commit);
    }
    if count > 0 {
        out.push(current);
    }
    Ok(out)
}

/// Sends an NDJSON export to the gateway's import. Unless `append`, the log must hold
/// no event of the site's own offices (what it sources from other sites may be there);
/// with `append`, an interrupted import can be sent again (what is already in
/// the log is recognised and skipped).
pub async fn import(
    client: &Client,
    text: &str,
    append: bool,
    progress: bool,
) -> anyhow::Result<ImportReport> {
    let chunks = chunks(text)?;
    let total: usize = chunks.iter().map(|c| c.lines().count()).sum();
    let bar = bar(
        total as u64,
        progress,
        "{spinner} nhập (import) [{bar:40}] {pos}/{len} sự kiện (events)",
    );
    let mut report = ImportReport::default();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let fresh = i == 0 && !append;
        let query = [("fresh", fresh.to_string())];
        let lines = chunk.lines().count() as u64;
        let r: ImportReport = client
            .post_text("/v1/admin/import", &query, NDJSON, chunk)
            .await?;
        report.events += r.events;
        report.commits += r.commits;
        report.duplicates += r.duplicates;
        report.position = report.position.max(r.position);
        bar.inc(lines);
    }
    bar.finish_and_clear();
    Ok(report)
}
