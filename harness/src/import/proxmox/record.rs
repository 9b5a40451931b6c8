//! One task log file: read (text or the API's JSON), checked to be a
//! migration's, and turned into a repetition's record.

use super::upid::{parse_upid, Upid};
use crate::import::offset::UtcOffset;
use anyhow::{anyhow, Context, Result};
use measure::migration::marker::MarkerKind;
use measure::migration::record::{HypervisorStats, MigrationRecord, PlatformStats, RepRecord};
use measure::platform::proxmox::outcome::{outcome_checked, Outcome};
use measure::platform::proxmox::tasklog::TaskLog;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The clock a task log's markers are on: the Proxmox node's, as its log
/// printed it. Not the harness host's clock, and no client clock is
/// aligned with it.
pub const CLOCK: &str = "proxmox-node";

/// Where [`HypervisorStats::downtime_ms`] comes from in an import.
pub const DOWNTIME_NOTE: &str = "relayed by Proxmox's task log ('average migration speed: … - downtime N ms'): QEMU's own downtime, read by qemu-server from the source's query-migrate";

const NS: i64 = 1_000_000_000;

/// How a task log file was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One entry a line: the task file, or the web UI's task viewer saved.
    Text,
    /// The API's `{"data": [{"n": .., "t": ..}]}` (or the bare array).
    ApiJson,
}

/// A task log file, read (whether it is a migration's is checked by
/// [`rep_record`]).
#[derive(Debug, Clone)]
pub struct LogFile {
    /// The path as given: for errors only, never stored in the bundle.
    pub path: PathBuf,
    /// Its file name, which the bundle stores.
    pub name: String,
    /// How it was stored.
    pub format: Format,
    /// The UPID its name is, if it is one (a file from `/var/log/pve/tasks/`).
    pub upid: Option<Upid>,
    /// Its lines.
    pub log: TaskLog,
}

/// Reads the task log at `path`: the API's JSON when the file starts with
/// `{` or `[`, else text. Errors name the file.
pub fn read_log_file(path: &Path) -> Result<LogFile> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read task log {}", path.display()))?;
    // A task log is UTF-8 as Proxmox writes it; a stray byte (a VM name in
    // another encoding) should not cost the whole log.
    let text = String::from_utf8_lossy(&bytes);
    let body = text.trim_start_matches('\u{feff}').trim_start();
    let (format, log) = if body.starts_with('{') || body.starts_with('[') {
        let log = TaskLog::from_api_json(body)
            .map_err(|e| anyhow!("{}: read as the API's JSON task log: {e}", path.display()))?;
        (Format::ApiJson, log)
    } else {
        (Format::Text, TaskLog::parse(&text))
    };
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(LogFile {
        path: path.to_path_buf(),
        upid: parse_upid(&name),
        name,
        format,
        log,
    })
}

/// Repetition `n` as the log `f` tells it, its local times read as
/// `offset` east of UTC; with notes for a person (an offset the log's
/// UPID contradicts).
pub fn rep_record(n: u32, f: &LogFile, offset: UtcOffset) -> Result<(RepRecord, Vec<String>)> {
    let o = outcome_checked(&f.log, offset.seconds(), CLOCK)
        .map_err(|e| anyhow!("{}: {e}", f.path.display()))?;
    let span = stamped_span(&f.log, offset).with_context(|| {
        format!(
            "{}: no line carries a timestamp the record can hold (YYYY-MM-DD HH:MM:SS between 1678 and 2262), so the migration cannot be placed in time",
            f.path.display()
        )
    })?;
    let source = f.upid.as_ref().map_or("?", |u| u.node.as_str());
    let mut m = MigrationRecord::starting(n, source, o.target_node.as_deref().unwrap_or("?"));
    m.status = o.status;
    m.error = o.error.clone();
    m.markers = o.markers.clone();
    m.migrate_cmd_ns = m.marker_ns(MarkerKind::MigrationRequested);
    m.finished_ns = Some(span.last_ns);
    m.hypervisor = relayed_qemu_stats(&o.platform);
    m.platform = Some(o.platform.clone());
    m.platform_raw = Some(raw(f, &o, offset));
    let rep = RepRecord {
        repetition: n,
        window_start_ns: span.start_ns,
        window_end_ns: span.end_ns,
        migration: m,
        guest: None,
    };
    Ok((rep, offset_check(f, offset).into_iter().collect()))
}

/// The stamped lines' extent, ns (UTC).
struct Span {
    /// The start of the earliest stamped second.
    start_ns: i64,
    /// The end of the latest.
    end_ns: i64,
    /// The middle of the latest: when the task ended, ± 0.5 s.
    last_ns: i64,
}

/// From the earliest to the latest stamped second of the log; `None`
/// when no stamp fits an i64 of ns.
fn stamped_span(log: &TaskLog, offset: UtcOffset) -> Option<Span> {
    let secs = log
        .lines
        .iter()
        .filter_map(|l| l.timestamp?.utc_epoch_s(offset.seconds()));
    let (first, last) = secs.fold(None, |acc: Option<(i64, i64)>, s| {
        Some(acc.map_or((s, s), |(a, b)| (a.min(s), b.max(s))))
    })?;
    let start_ns = first.checked_mul(NS)?;
    let last_start = last.checked_mul(NS)?;
    Some(Span {
        start_ns,
        end_ns: last_start.checked_add(NS)?,
        last_ns: last_start.checked_add(NS / 2)?,
    })
}

/// What the log relays of QEMU's own statistics: the downtime and the
/// RAM sent, both read by qemu-server from the source's `query-migrate`.
/// `None` when the log has neither (the migration never reached QEMU).
fn relayed_qemu_stats(p: &PlatformStats) -> Option<HypervisorStats> {
    if p.downtime_ms.is_none() && p.ram_transferred_bytes.is_none() {
        return None;
    }
    Some(HypervisorStats {
        downtime_ms: p.downtime_ms,
        downtime_note: p.downtime_ms.map(|_| DOWNTIME_NOTE.to_string()),
        transferred_bytes: p.ram_transferred_bytes,
        ..HypervisorStats::default()
    })
}

/// `platform_raw`: the file's name (not its path), how it was read, the
/// outcome's figures the record has no field for, and every line as the
/// API gives them (`{"n", "t"}`), so the figures can be read again.
fn raw(f: &LogFile, o: &Outcome, offset: UtcOffset) -> Value {
    let mut figures = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut figures {
        // The record holds these in its own fields.
        for k in ["status", "error", "markers", "platform"] {
            map.remove(k);
        }
    }
    let lines: Vec<Value> = f
        .log
        .lines
        .iter()
        .map(|l| json!({ "n": l.number, "t": l.text }))
        .collect();
    json!({
        "source": "proxmox-task-log",
        "file": f.name,
        "format": f.format,
        "upid": f.upid,
        "utc_offset_assumed": offset.to_string(),
        "figures": figures,
        "lines": lines,
    })
}

/// When the log's UPID (whose start time is UTC) and its first stamp (the
/// node's local time) say the node's offset was not `assumed`: a note
/// saying which it looks like.
fn offset_check(f: &LogFile, assumed: UtcOffset) -> Option<String> {
    let upid = f.upid.as_ref()?;
    let first = f.log.lines.iter().find_map(|l| l.timestamp)?;
    let implied = first.naive_epoch_s().checked_sub(upid.start_s)?;
    // Zones are whole quarter hours off UTC, and the first line comes
    // within seconds of the task's start.
    let nearest = (implied + 450).div_euclid(900) * 900;
    if (implied - nearest).abs() > 120 || nearest == assumed.seconds() {
        return None;
    }
    let zone = UtcOffset::from_seconds(nearest)?;
    Some(format!(
        "{}: its UPID says the task started at {} and its first line is stamped {} (local): the node's clock looks like UTC{zone}, not the UTC{assumed} assumed (give --utc-offset {zone})",
        f.name,
        crate::clock::rfc3339(upid.start_s.saturating_mul(NS)),
        first
    ))
}
