//! `coordctl audit`: verify the transparency log (online through the gateway, or
//! offline from an export file and the offices' public keys), export it, and read the
//! reviewer queries as tables with Vietnamese labels (or `--json`).

use std::path::PathBuf;

use anyhow::Context;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use coord_audit::Verifier;
use coord_audit::export::Export;
use coord_audit::verify::{Report, verify_all};
use coord_audit::wire::{AuditEvent, AuditPage, OfficeKey, WitnessStatus};

use crate::client::Client;
use crate::print_json;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Recompute every office's tree and check every signature and checkpoint: online
    /// from the gateway, or offline with --file and --key.
    Verify {
        /// An export file to verify offline (from `coordctl audit export`).
        #[arg(long)]
        file: Option<PathBuf>,
        /// A trusted verifier key `name+hash+base64` (or @file of keys, one a line).
        /// Required offline; online, the gateway's keys are used when none is given.
        #[arg(long = "key")]
        keys: Vec<String>,
        /// An earlier export already verified: its checkpoints and leaves are trusted,
        /// so a history rewritten and re-signed since is caught.
        #[arg(long)]
        trusted: Option<PathBuf>,
        /// Also save what was verified here (to pass as --trusted next time).
        #[arg(long)]
        save: Option<PathBuf>,
        #[arg(long)]
        office: Option<String>,
    },
    /// Write the log, checkpoints and recorded leaves to an NDJSON file.
    Export {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        office: Option<String>,
    },
    /// The verifier keys of every office.
    Keys,
    /// The latest signed checkpoint (the note as is).
    Checkpoint {
        #[arg(long)]
        office: Option<String>,
    },
    /// One aggregate's full history, e.g. `history inspection-<uuid>`.
    History { stream: String },
    /// Search the whole log.
    Search {
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        office: Option<String>,
        #[arg(long = "type")]
        event_type: Option<String>,
        #[arg(long)]
        unit: Option<String>,
        /// Occurred on or after (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Occurred on or before (YYYY-MM-DD).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        cursor: Option<u64>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Everything one request caused, in order.
    Correlation { id: String },
    /// This site's witness (the hub's over the offices, an office's over the
    /// province): each watched log's last cosigned checkpoint, and every checkpoint it
    /// refused (an error when there is any).
    Witness,
}

fn office_query(office: &Option<String>) -> Vec<(&'static str, String)> {
    office.iter().map(|o| ("office", o.clone())).collect()
}

/// Reads `--key` values: a key, or `@file` with one key a line.
fn read_keys(values: &[String]) -> anyhow::Result<Vec<Verifier>> {
    let mut out = Vec::new();
    for v in values {
        let texts: Vec<String> = match v.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read keys from {path}"))?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect(),
            None => vec![v.clone()],
        };
        for t in texts {
            out.push(t.trim().parse().with_context(|| format!("--key {t}"))?);
        }
    }
    Ok(out)
}

fn read_export(path: &PathBuf) -> anyhow::Result<Export> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Export::read(std::io::BufReader::new(file))?)
}

/// The export the gateway serves.
pub async fn fetch_export(
    client: &Client,
    office: &Option<String>,
) -> anyhow::Result<(String, Export)> {
    let text = client
        .get_text("/v1/audit/export", &office_query(office))
        .await?;
    let export = Export::read(text.as_bytes())?;
    Ok((text, export))
}

/// Verifies and prints; an error when any office's log is broken.
#[allow(clippy::too_many_arguments)]
async fn verify(
    client: &Client,
    file: Option<PathBuf>,
    keys: Vec<String>,
    trusted: Option<PathBuf>,
    save: Option<PathBuf>,
    office: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let mut verifiers = read_keys(&keys)?;
    let (text, export) = match &file {
        Some(path) => {
            anyhow::ensure!(
                !verifiers.is_empty(),
                "offline verification needs --key: the keys inside an export are not evidence"
            );
            (std::fs::read_to_string(path)?, read_export(path)?)
        }
        None => fetch_export(client, &office).await?,
    };
    if verifiers.is_empty() {
        let served: Vec<OfficeKey> = client.get_json("/v1/audit/keys", &[]).await?;
        for k in served {
            verifiers.push(
                k.key
                    .parse()
                    .with_context(|| format!("the gateway's key of {}", k.office))?,
            );
        }
    }
    let known = trusted.as_ref().map(read_export).transpose()?;
    let reports = verify_all(
        &export.offices,
        &verifiers,
        known.as_ref().map(|k| &k.offices),
    );
    if json {
        print_json(&reports);
    } else {
        for r in &reports {
            println!("{}", render_report(r));
        }
    }
    let broken = reports.iter().filter(|r| !r.is_intact()).count();
    if broken > 0 {
        anyhow::bail!("{broken} office log(s) broken");
    }
    if let Some(path) = save {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// One office's verdict, for people.
pub fn render_report(r: &Report) -> String {
    let head = format!(
        "Văn phòng (office) {}: {} sự kiện (events), {} điểm kiểm (checkpoints) đã ký đến {} lá (signed up to leaf count), {} kiểm tra nhất quán (consistency checks)",
        r.office, r.leaves, r.checkpoints, r.signed_size, r.consistency_checks
    );
    match &r.broken {
        None => format!("{head}\nNGUYÊN VẸN (intact)"),
        Some(b) => {
            let place = match (b.leaf_index, b.window) {
                (Some(i), _) => format!("lá (leaf) {i}"),
                (None, Some([a, z])) => format!("trong các lá (leaves) {a}..{z}"),
                (None, None) => "điểm kiểm (checkpoint)".into(),
            };
            let mut lines = vec![
                head,
                format!("BỊ PHÁ VỠ (broken) tại {place}: {:?}", b.kind),
                format!("  lý do (why): {}", b.detail),
            ];
            if let Some(p) = b.position {
                lines.push(format!("  vị trí log (log position): {p}"));
            }
            if let (Some(id), Some(s)) = (b.event_id, &b.stream) {
                lines.push(format!("  sự kiện (event): {id} ({s})"));
            }
            lines.join("\n")
        }
    }
}

/// Events as a table.
pub fn events_table(events: &[AuditEvent]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(vec![
        "Lá (leaf)",
        "Ngày (occurred)",
        "Ghi lúc (recorded)",
        "Sự kiện (event)",
        "Luồng (stream) · phiên bản",
        "Văn phòng (office)",
        "Người thực hiện (actor)",
        "Vai trò (role)",
        "Tương quan / Nguyên nhân (correlation / causation)",
    ]);
    for e in events {
        t.add_row(vec![
            e.leaf_index.to_string(),
            e.occurred_at.clone(),
            e.recorded_at.clone(),
            e.event_type.clone(),
            format!("{} · v{}", e.stream_id, e.stream_version),
            e.office.clone(),
            e.actor.clone(),
            e.role.clone().unwrap_or_default(),
            format!("{} / {}", e.correlation_id, e.causation_id),
        ]);
    }
    t.to_string()
}

fn condensed(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// The witness's state, for people.
pub fn witness_tables(w: &WitnessStatus) -> String {
    let mut offices = condensed(&[
        "Văn phòng (office)",
        "Đã đồng ký đến (cosigned up to leaf count)",
        "Gốc (root)",
        "Lúc (at)",
    ]);
    for o in &w.offices {
        offices.add_row(vec![
            o.office.clone(),
            o.size
                .map_or("chưa có (none yet)".into(), |s| s.to_string()),
            o.root.clone().unwrap_or_default(),
            o.cosigned_at.clone().unwrap_or_default(),
        ]);
    }
    let mut out = format!("Nhân chứng (witness) {}\n{offices}\n", w.witness_key);
    if w.alarms.is_empty() {
        out.push_str("KHÔNG CÓ CẢNH BÁO (no alarms)");
        return out;
    }
    let mut alarms = condensed(&[
        "Cảnh báo (alarm)",
        "Văn phòng (office)",
        "Đã đồng ký (cosigned) cũ",
        "Điểm kiểm bị từ chối (refused) mới",
        "Lý do (reason)",
        "Lúc (at)",
    ]);
    let sized = |size: Option<u64>, root: &Option<String>| match size {
        Some(s) => format!("{s} · {}", root.as_deref().unwrap_or("")),
        None => "—".into(),
    };
    for a in &w.alarms {
        alarms.add_row(vec![
            a.id.to_string(),
            a.office.clone(),
            sized(a.old_size, &a.old_root),
            sized(a.new_size, &a.new_root),
            a.reason.clone(),
            a.at.clone(),
        ]);
    }
    out.push_str(&format!("CẢNH BÁO (alarms):\n{alarms}"));
    out
}

/// Runs one `coordctl audit` command.
pub async fn run(client: &Client, command: AuditCommand, json: bool) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            file,
            keys,
            trusted,
            save,
            office,
        } => verify(client, file, keys, trusted, save, office, json).await,
        AuditCommand::Export { out, office } => {
            let (text, export) = fetch_export(client, &office).await?;
            std::fs::write(&out, text)
                .with_context(|| format!("cannot write {}", out.display()))?;
            let events: usize = export.offices.values().map(|o| o.entries.len()).sum();
            println!(
                "Đã xuất (exported) {events} sự kiện (events) vào {}",
                out.display()
            );
            Ok(())
        }
        AuditCommand::Keys => {
            let keys: Vec<OfficeKey> = client.get_json("/v1/audit/keys", &[]).await?;
            if json {
                print_json(&keys);
            } else {
                for k in keys {
                    println!("{}\t{}", k.office, k.key);
                }
            }
            Ok(())
        }
        AuditCommand::Checkpoint { office } => {
            print!(
                "{}",
                client
                    .get_text("/v1/audit/checkpoint", &office_query(&office))
                    .await?
            );
            Ok(())
        }
        AuditCommand::History { stream } => {
            let events: Vec<AuditEvent> = client
                .get_json(&format!("/v1/audit/streams/{stream}"), &[])
                .await?;
            show(&events, json);
            Ok(())
        }
        AuditCommand::Witness => {
            let status: WitnessStatus = client.get_json("/v1/audit/witness", &[]).await?;
            if json {
                print_json(&status);
            } else {
                println!("{}", witness_tables(&status));
            }
            anyhow::ensure!(
                status.alarms.is_empty(),
                "the witness refused {} checkpoint(s)",
                status.alarms.len()
            );
            Ok(())
        }
        AuditCommand::Correlation { id } => {
            let events: Vec<AuditEvent> = client
                .get_json(&format!("/v1/audit/correlations/{id}"), &[])
                .await?;
            show(&events, json);
            Ok(())
        }
        AuditCommand::Search {
            actor,
            office,
            event_type,
            unit,
            from,
            to,
            cursor,
            limit,
        } => {
            let mut q: Vec<(&str, String)> = Vec::new();
            let pairs = [
                ("actor", actor),
                ("office", office),
                ("type", event_type),
                ("unit", unit),
                ("from", from),
                ("to", to),
            ];
            for (k, v) in pairs {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            if let Some(c) = cursor {
                q.push(("cursor", c.to_string()));
            }
            if let Some(l) = limit {
                q.push(("limit", l.to_string()));
            }
            let page: AuditPage = client.get_json("/v1/audit/events", &q).await?;
            if json {
                print_json(&page);
            } else {
                println!("{}", events_table(&page.events));
                if let Some(c) = page.next_cursor {
                    println!("Trang sau (next page): --cursor {c}");
                }
            }
            Ok(())
        }
    }
}

fn show(events: &[AuditEvent], json: bool) {
    if json {
        print_json(&events);
    } else {
        println!("{}", events_table(events));
    }
}
