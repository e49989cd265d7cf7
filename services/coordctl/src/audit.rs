//! `coordctl audit`: verify the transparency log (online through the gateway, or
//! offline from an export file and the offices' public keys), export it, and read the
//! reviewer queries as tables with Vietnamese labels (or `--json`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use coord_audit::Verifier;
use coord_audit::export::Export;
use coord_audit::trust::TrustedKeys;
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
        /// A trusted verifier key `name+hash+base64` (or @file of keys, one a line):
        /// used instead of the trust file's log keys. Required offline without a trust
        /// file.
        #[arg(long = "key")]
        keys: Vec<String>,
        /// The trust file (`log|witness <office> <key>` lines, written by `coordctl
        /// offices init`); online without it, the served keys are pinned there on first
        /// use. Default: `audit-trust.keys` in --credentials.
        #[arg(long, env = "COORD_AUDIT_TRUST")]
        trust: Option<PathBuf>,
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

/// The trust file's name (in --credentials by default; `coordctl offices init` writes
/// one in its folder).
pub const TRUST_FILE: &str = "audit-trust.keys";

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

/// What `verify` was asked.
pub struct VerifyArgs {
    pub file: Option<PathBuf>,
    pub keys: Vec<String>,
    /// The trust file (already defaulted).
    pub trust: PathBuf,
    pub trusted: Option<PathBuf>,
    pub save: Option<PathBuf>,
    pub office: Option<String>,
}

/// The trust file's keys, if it exists.
fn read_trust(path: &Path) -> anyhow::Result<Option<TrustedKeys>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            Ok(Some(TrustedKeys::parse(&text).with_context(|| {
                format!("trust file {}", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The keys the gateway serves, as (office, key).
async fn served_keys(client: &Client) -> anyhow::Result<Vec<(String, String)>> {
    let served: Vec<OfficeKey> = client.get_json("/v1/audit/keys", &[]).await?;
    Ok(served.into_iter().map(|k| (k.office, k.key)).collect())
}

/// The trusted keys: `--key` (log keys) over the trust file; online, the served keys
/// must be the trusted ones, and a missing trust file is written from them (pinned on
/// first use, said on stderr). Never replaces a trusted key.
async fn trusted_keys(client: &Client, a: &VerifyArgs) -> anyhow::Result<TrustedKeys> {
    let mut trust = read_trust(&a.trust)?;
    let explicit = read_keys(&a.keys)?;
    if a.file.is_some() {
        let mut t = trust.unwrap_or_default();
        if !explicit.is_empty() {
            t.logs = explicit.into_iter().map(|k| (k.name.clone(), k)).collect();
        }
        anyhow::ensure!(
            !t.logs.is_empty(),
            "offline verification needs --key or a trust file: the keys inside an export are not evidence"
        );
        return Ok(t);
    }
    let served = served_keys(client).await?;
    if trust.is_none() && explicit.is_empty() {
        let mut pinned = TrustedKeys::default();
        pinned.pin_new(&served)?;
        write_trust(&a.trust, &pinned)?;
        eprintln!(
            "Đã ghim khóa lần đầu (keys pinned on first use) vào {}: hãy đối chiếu chúng qua một kênh khác (check them out of band)",
            a.trust.display()
        );
        trust = Some(pinned);
    }
    let mut t = trust.unwrap_or_default();
    if !explicit.is_empty() {
        t.logs = explicit
            .into_iter()
            .map(|k| {
                let office = served
                    .iter()
                    .find(|(_, s)| s.split('+').next() == Some(k.name.as_str()))
                    .map_or_else(|| k.name.clone(), |(o, _)| o.clone());
                (office, k)
            })
            .collect();
    }
    let mismatches = t.mismatches(&served);
    if !mismatches.is_empty() {
        for m in &mismatches {
            eprintln!(
                "KHÓA KHÁC (key differs) {}: tin cậy (trusted) {} · máy chủ đưa (served) {}",
                m.office, m.trusted, m.served
            );
        }
        anyhow::bail!(
            "the gateway serves {} key(s) that differ from the trusted ones ({}): the office was re-keyed or the gateway is not the one you trust; the trust file is not changed",
            mismatches.len(),
            mismatches
                .iter()
                .map(|m| m.office.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(t)
}

fn write_trust(path: &Path, keys: &TrustedKeys) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, keys.format()).with_context(|| format!("cannot write {}", path.display()))
}

/// The latest checkpoint, with its cosignatures, of each office of `offices` whose
/// checkpoints the trust file says need a witness's, as this gateway serves it.
async fn served_checkpoints(
    client: &Client,
    trust: &TrustedKeys,
    offices: impl Iterator<Item = &String>,
) -> Vec<(String, String)> {
    let mut latest = Vec::new();
    for office in offices {
        if trust.required_witnesses(office).is_empty() {
            continue;
        }
        let note = client
            .get_text("/v1/audit/checkpoint", &[("office", office.clone())])
            .await
            .unwrap_or_default();
        latest.push((office.clone(), note));
    }
    latest
}

/// The export and the served checkpoints that need cosignatures. They are read after
/// the export: one newer than the export (signed meanwhile) cannot be checked against
/// it, so both are read again (three times at most).
async fn export_and_served(
    client: &Client,
    trust: &TrustedKeys,
    office: &Option<String>,
) -> anyhow::Result<(String, Export, Vec<(String, String)>)> {
    let mut attempt = 1;
    loop {
        let (text, export) = fetch_export(client, office).await?;
        let served = served_checkpoints(client, trust, export.offices.keys()).await;
        let newer = served
            .iter()
            .any(|(o, note)| coord_audit::trust::newer_than_export(note, export.offices.get(o)));
        if !newer || attempt == 3 {
            return Ok((text, export, served));
        }
        attempt += 1;
    }
}

/// Verifies and prints; an error when any office's log is broken, a served key is not
/// the trusted one, or a required cosignature is missing. Each office's latest
/// checkpoint as its witnesses cosigned it is checked against the export, as an earlier
/// trusted state is: a log rewritten and signed again is caught even at a size the
/// witnesses saw.
async fn verify(client: &Client, a: VerifyArgs, json: bool) -> anyhow::Result<()> {
    let trust = trusted_keys(client, &a).await?;
    let (text, export, served) = match &a.file {
        Some(path) => (
            std::fs::read_to_string(path)?,
            read_export(path)?,
            Vec::new(),
        ),
        None => export_and_served(client, &trust, &a.office).await?,
    };
    let (witnessed, missing) = trust.witnessed(&served, &export.offices);
    let known = a.trusted.as_ref().map(read_export).transpose()?;
    let reports = verify_all(
        &export.offices,
        &trust.verifiers(),
        known.as_ref().map(|k| &k.offices),
        &witnessed,
    );

    if json {
        print_json(
            &serde_json::json!({ "reports": reports, "missing_cosignatures": missing.iter().map(|m| serde_json::json!({"office": m.office, "size": m.size, "witness": m.witness, "why": m.why})).collect::<Vec<_>>() }),
        );
    } else {
        for r in &reports {
            println!("{}", render_report(r));
        }
        for m in &missing {
            println!(
                "THIẾU ĐỒNG KÝ (missing cosignature): điểm kiểm (checkpoint) mới nhất của {} ({}) chưa có chữ ký của nhân chứng (witness) {}: {}",
                m.office,
                m.size.map_or("?".into(), |s| format!("{s} lá (leaves)")),
                m.witness,
                m.why
            );
        }
    }
    let broken = reports.iter().filter(|r| !r.is_intact()).count();
    if broken > 0 {
        anyhow::bail!("{broken} office log(s) broken");
    }
    let unsigned = reports
        .iter()
        .filter(|r| r.checkpoints == 0 && r.leaves > 0)
        .count();
    if unsigned > 0 {
        anyhow::bail!(
            "{unsigned} office log(s) have events but no signed checkpoint: nothing vouches for them"
        );
    }
    if !missing.is_empty() {
        anyhow::bail!("{} required cosignature(s) missing", missing.len());
    }
    if let Some(path) = a.save {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// One office's verdict, for people.
pub fn render_report(r: &Report) -> String {
    let head = format!(
        "Cơ quan (office) {}: {} sự kiện (events), {} điểm kiểm (checkpoints) đã ký đến {} lá (signed up to leaf count), {} kiểm tra nhất quán (consistency checks)",
        r.office, r.leaves, r.checkpoints, r.signed_size, r.consistency_checks
    );
    let unsigned = r.leaves.saturating_sub(r.signed_size);
    match &r.broken {
        // Nothing signed: nothing here is vouched for, however consistent it looks.
        None if r.checkpoints == 0 && r.leaves > 0 => format!(
            "{head}\nCHƯA KÝ (unsigned): không điểm kiểm nào bảo đảm {} sự kiện này (no checkpoint vouches for these events)",
            r.leaves
        ),
        None if unsigned > 0 => format!(
            "{head}\nNGUYÊN VẸN (intact) đến lá {} (up to leaf count); {unsigned} sự kiện mới hơn chưa được ký (newer events not yet signed)",
            r.signed_size
        ),
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
                let kind = b.event_type.as_deref().unwrap_or("");
                let whose = if b.as_signed {
                    "sự kiện đã ký tại đây (event signed here)"
                } else {
                    "sự kiện (event)"
                };
                lines.push(format!("  {whose}: {id} ({s}, {kind})"));
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
        "Cơ quan (office)",
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
        "Cơ quan (office)",
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
        "Cơ quan (office)",
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

/// Runs one `coordctl audit` command (`credentials`: where the trust file is by default).
pub async fn run(
    client: &Client,
    command: AuditCommand,
    credentials: &Path,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            file,
            keys,
            trust,
            trusted,
            save,
            office,
        } => {
            let args = VerifyArgs {
                file,
                keys,
                trust: trust.unwrap_or_else(|| credentials.join(TRUST_FILE)),
                trusted,
                save,
                office,
            };
            verify(client, args, json).await
        }
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
