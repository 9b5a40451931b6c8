//! The lines of a Proxmox migration task log, each read into what it says.
//!
//! `$self->log` lines (pve-guest-common's `AbstractMigrate.pm`) start with
//! the node's local `YYYY-MM-DD HH:MM:SS ` and, for errors, `ERROR: `;
//! every line of a multi-line message gets its own prefix. The block-job
//! code (`QemuServer/BlockJob.pm`) prints straight to the task's output,
//! so the mirror's lines have no timestamp. The worker's end adds `TASK
//! OK`, `TASK WARNINGS: N` or `TASK ERROR: …` (the last two after an empty
//! line). A line this module does not know is kept as
//! [`LineKind::Other`]: reading never fails.
//!
//! Where a message changed across releases both forms are read; the
//! variant's doc names the older one. [`LineKind::render`] writes a kind
//! back as Proxmox prints it (the current form where there are two).

use super::timestamp::{LocalTimestamp, TIMESTAMP_LEN};
use super::units::{parse_decimal, parse_digits, parse_duration, parse_rate, parse_size};
use super::TaskLogError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One line of a task log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskLine {
    /// Its number in the log, from 1 (the API's `n`).
    pub number: u64,
    /// Its local timestamp, when it has one (the mirror's lines do not).
    pub timestamp: Option<LocalTimestamp>,
    /// Whether `ERROR: ` follows the timestamp (logged at level `err`).
    pub error_prefix: bool,
    /// What it says.
    pub kind: LineKind,
    /// The line as written (without a trailing `\r`).
    pub text: String,
}

impl TaskLine {
    /// The message: the text without its timestamp and `ERROR: `.
    pub fn message(&self) -> &str {
        split_prefix(&self.text).2
    }
}

/// The state a mirror progress line ends with.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MirrorState {
    /// Still copying (no suffix; old form `ready: 0`).
    NotReady,
    /// `, ready`: the job reached the ready state (old form `ready: 1`).
    Ready,
    /// `, still busy`: ready, but QEMU says the job is busy.
    ReadyButBusy,
}

/// What a line says, with its values. Sizes are bytes (rounded to the
/// `%.1f` Proxmox printed unless the variant says otherwise), rates
/// bytes/s, times ms or s as named.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// `starting migration of VM 100 to node 'pve2' (10.0.0.2)`.
    StartingMigration {
        /// The VM's id.
        vmid: u64,
        /// The target node's name.
        node: String,
        /// The address the migration goes to.
        ip: String,
    },
    /// `found local disk 'local-lvm:vm-100-disk-0' (attached)`.
    FoundLocalDisk {
        /// `local`, `local, replicated` or `generated`.
        kind: String,
        /// The volume id.
        volume: String,
        /// `attached`, `unused`, `referenced by snapshot(s)`, `pending
        /// change`, `in current VM config` (older releases: `in current VM
        /// config`, `via storage`); `None` when the line has none.
        reason: Option<String>,
    },
    /// `can't migrate local disk 'VOLUME': REASON` (the cause behind a
    /// "can't migrate VM - check log").
    LocalDiskError {
        /// The volume id.
        volume: String,
        /// Why, as Proxmox put it.
        reason: String,
    },
    /// `starting VM 100 on remote node 'pve2'`.
    StartingRemoteVm {
        /// The VM's id.
        vmid: u64,
        /// The target node.
        node: String,
    },
    /// `volume 'SOURCE' is 'TARGET' on the target`.
    VolumeOnTarget {
        /// The source volume id.
        source: String,
        /// The volume id on the target.
        target: String,
    },
    /// `start remote tunnel`.
    StartRemoteTunnel,
    /// `starting storage migration`.
    StartingStorageMigration,
    /// `scsi0: start migration to nbd:unix:…:exportname=drive-scsi0`.
    DriveMigrationStart {
        /// The drive (`scsi0`).
        drive: String,
        /// The NBD target.
        target: String,
    },
    /// `drive mirror is starting for drive-scsi0[ with bandwidth limit: N
    /// KiB/s]` (older releases: `KB/s`, the same 1024 bytes).
    DriveMirrorStarting {
        /// The device (`drive-scsi0`).
        device: String,
        /// The mirror's bandwidth limit, KiB/s.
        bwlimit_kib_s: Option<u64>,
    },
    /// `mirror-scsi0: transferred 1.1 GiB of 32.0 GiB (3.44%) in 1s[,
    /// ready|, still busy]`; before qemu-server 6.4 `drive-scsi0:
    /// transferred: N bytes remaining: N bytes total: N bytes progression:
    /// P % busy: B ready: R` (exact bytes, no elapsed time).
    MirrorProgress {
        /// The block job (`mirror-scsi0`, `drive-scsi0`).
        job: String,
        /// Bytes copied so far.
        transferred_bytes: u64,
        /// The disk's size.
        total_bytes: u64,
        /// Proxmox's percentage (`%.2f`).
        percent: f64,
        /// Seconds since this wait for the mirrors began; `None` in the old form.
        elapsed_s: Option<u64>,
        /// Whether the job is ready.
        state: MirrorState,
    },
    /// `all 'mirror' jobs are ready`.
    AllJobsReady {
        /// The job type (`mirror`).
        op: String,
    },
    /// `switching mirror jobs to actively synced mode` (QEMU ≥ 8.2).
    SwitchingToActiveMode,
    /// `mirror-scsi0: switching to actively synced mode`.
    JobSwitchingToActiveMode {
        /// The block job.
        job: String,
    },
    /// `mirror-scsi0: successfully switched to actively synced mode`.
    JobSwitchedToActiveMode {
        /// The block job.
        job: String,
    },
    /// `starting online/live migration on unix:/run/qemu-server/100.migrate`.
    StartingLiveMigration {
        /// The migration URI.
        uri: String,
    },
    /// `set migration capabilities` (older releases: `set migration_caps`).
    SetCapabilities,
    /// `migration speed limit: 500.0 MiB/s` (older releases: `N B/s`).
    SpeedLimit {
        /// QEMU's `max-bandwidth`, bytes/s.
        bytes_per_s: u64,
    },
    /// `migration downtime limit: 100 ms`.
    DowntimeLimit {
        /// The initial `downtime-limit`, ms.
        ms: f64,
    },
    /// `capping downtime limit to maximum possible: N ms`.
    DowntimeCapped {
        /// The cap, ms.
        ms: f64,
    },
    /// `migration cachesize: 512.0 MiB` (older releases: `N B`).
    Cachesize {
        /// `xbzrle-cache-size`, bytes.
        bytes: u64,
    },
    /// `set migration parameters`.
    SetParameters,
    /// `start migrate command to unix:/run/qemu-server/100.migrate`.
    StartMigrateCommand {
        /// The migration URI.
        uri: String,
    },
    /// `migration in status 'setup' - waiting for transition`.
    WaitingForTransition {
        /// QEMU's status.
        status: String,
    },
    /// `migration active, transferred 1.2 GiB of 4.0 GiB VM-state,
    /// 351.2 MiB/s[ (+ 10.0 MiB VFIO-state)][, VM dirties lots of memory:
    /// 402.0 MiB/s]`.
    MigrationActive {
        /// QEMU's status (`active`, `device`).
        status: String,
        /// `ram.transferred`.
        transferred_bytes: u64,
        /// `ram.total`.
        total_bytes: u64,
        /// `pages-per-second` × page size, bytes/s.
        speed_bytes_s: u64,
        /// VFIO device state sent, when there is any.
        vfio_bytes: Option<u64>,
        /// `dirty-pages-rate` × page size, bytes/s, printed only when it
        /// exceeds the speed.
        dirty_rate_bytes_s: Option<u64>,
    },
    /// `xbzrle: send updates to N pages in 1.1 MiB encoded memory[,
    /// cache-miss 12.50%][, overflow N]`.
    Xbzrle {
        /// Pages sent as XBZRLE updates.
        pages: u64,
        /// Their encoded bytes.
        bytes: u64,
        /// Cache-miss rate, percent (`%.2f`).
        cache_miss_pct: Option<f64>,
        /// Overflows.
        overflow: Option<u64>,
    },
    /// Before qemu-server 6.4: `migration xbzrle cachesize: N transferred N
    /// pages N cachemiss N overflow N` (exact numbers).
    XbzrleOld {
        /// Cache size, bytes.
        cache_size_bytes: u64,
        /// Encoded bytes sent.
        bytes: u64,
        /// Pages sent.
        pages: u64,
        /// Cache misses.
        cache_miss: u64,
        /// Overflows.
        overflow: u64,
    },
    /// `auto-increased downtime to continue migration: 200 ms`.
    DowntimeIncreased {
        /// The new `downtime-limit`, ms.
        ms: f64,
    },
    /// `average migration speed: 372.4 MiB/s - downtime 87 ms`, logged
    /// only when the migration took at least 1 s.
    AverageSpeed {
        /// `ram.total` over the whole seconds since `migrate`, bytes/s.
        bytes_per_s: u64,
        /// QEMU's `downtime`, ms.
        downtime_ms: f64,
    },
    /// Before qemu-server 6.4: `migration speed: 12.34 MB/s - downtime 55
    /// ms` (the configured memory over the seconds taken; before 2013 no
    /// downtime).
    OldMigrationSpeed {
        /// Configured memory (MiB) over the seconds taken.
        mb_per_s: f64,
        /// QEMU's `downtime`, ms.
        downtime_ms: Option<f64>,
    },
    /// `migration completed, transferred 3.3 GiB VM-state[ (+ … VFIO-state)]`.
    MigrationCompleted {
        /// `ram.transferred` at the end.
        transferred_bytes: u64,
        /// VFIO device state sent, when there is any.
        vfio_bytes: Option<u64>,
    },
    /// `migration status: completed`.
    StatusCompleted,
    /// `migration status error: failed - ERROR-DESC` (or `cancelled`).
    StatusError {
        /// What follows `error: `.
        message: String,
    },
    /// Before qemu-server 6.4: `migration status: active (transferred N,
    /// remaining N), total N)` (in April 2021 briefly `migration active
    /// (…`; early 2013 with `, expected downtime N` after), exact bytes.
    OldStatusActive {
        /// QEMU's status.
        status: String,
        /// `ram.transferred`.
        transferred_bytes: u64,
        /// `ram.remaining`.
        remaining_bytes: u64,
        /// `ram.total`.
        total_bytes: u64,
        /// `expected-downtime`, ms, in the 2013 form.
        expected_downtime_ms: Option<u64>,
        /// Whether it reads `migration status: …` (not `migration …`).
        status_label: bool,
    },
    /// `mirror-scsi0: Completing block job...` (older: `block job_id...`).
    BlockJobCompleting {
        /// The block job.
        job: String,
    },
    /// `mirror-scsi0: Completed successfully.`
    BlockJobCompleted {
        /// The block job.
        job: String,
    },
    /// `mirror-scsi0: mirror-job finished` (older: `drive-scsi0: finished`).
    BlockJobFinished {
        /// The block job.
        job: String,
        /// The job type before `-job`; `None` in the old form.
        op: Option<String>,
    },
    /// `mirror-scsi0: Cancelling block job` (on failure).
    BlockJobCancelling {
        /// The block job.
        job: String,
    },
    /// `mirror-scsi0: Done.` (its cancel finished).
    BlockJobCancelled {
        /// The block job.
        job: String,
    },
    /// `stopping NBD storage migration server on target.`
    StoppingNbd,
    /// `online migrate failure - REASON` (an `ERROR:` line).
    OnlineMigrateFailure {
        /// Why.
        message: String,
    },
    /// `migration finished successfully (duration 00:01:01)`.
    FinishedSuccessfully {
        /// The whole task's duration, s.
        duration_s: u64,
    },
    /// `migration finished with problems (duration 00:01:01)`.
    FinishedWithProblems {
        /// The whole task's duration, s.
        duration_s: u64,
    },
    /// `migration aborted (duration 00:00:00): REASON`.
    Aborted {
        /// The whole task's duration, s.
        duration_s: u64,
        /// Why.
        reason: String,
    },
    /// `TASK OK`.
    TaskOk,
    /// `TASK ERROR: MESSAGE`.
    TaskError {
        /// The task's error (newlines made spaces).
        message: String,
    },
    /// `TASK WARNINGS: N`.
    TaskWarnings {
        /// How many warnings.
        count: u64,
    },
    /// Any other line: its message (without timestamp and `ERROR: `).
    Other(String),
}

impl LineKind {
    /// Whether only a migration writes this line: the lines of
    /// `QemuMigrate.pm` and `AbstractMigrate.pm`, not the block-job lines
    /// a disk move or clone writes too, nor the task's end.
    pub fn is_migration_line(&self) -> bool {
        !matches!(
            self,
            LineKind::Other(_)
                | LineKind::TaskOk
                | LineKind::TaskError { .. }
                | LineKind::TaskWarnings { .. }
                | LineKind::DriveMirrorStarting { .. }
                | LineKind::MirrorProgress { .. }
                | LineKind::AllJobsReady { .. }
                | LineKind::JobSwitchingToActiveMode { .. }
                | LineKind::JobSwitchedToActiveMode { .. }
                | LineKind::BlockJobCompleting { .. }
                | LineKind::BlockJobCompleted { .. }
                | LineKind::BlockJobFinished { .. }
                | LineKind::BlockJobCancelling { .. }
                | LineKind::BlockJobCancelled { .. }
        )
    }
}

/// A whole task log, its lines in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskLog {
    /// The lines.
    pub lines: Vec<TaskLine>,
}

impl TaskLog {
    /// Reads a log as plain text, one entry a line (the task file under
    /// `/var/log/pve/tasks/`, or what the web UI's task viewer shows).
    /// Never fails; a leading byte-order mark and `\r\n` endings are taken.
    pub fn parse(text: &str) -> TaskLog {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines = text
            .lines()
            .zip(1u64..)
            .map(|(line, n)| parse_numbered_line(n, line))
            .collect();
        TaskLog { lines }
    }

    /// Reads the API's answer to `GET /nodes/{node}/tasks/{upid}/log`:
    /// `{"data": [{"n": 1, "t": "…"}, …]}`, or the bare array. Fails,
    /// saying what is wrong, on anything else.
    pub fn from_api_json(text: &str) -> Result<TaskLog, TaskLogError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| TaskLogError::NotJson(e.to_string()))?;
        TaskLog::from_api_value(&value)
    }

    /// [`TaskLog::from_api_json`] on JSON already read. An entry without
    /// `n` gets its place in the array (from 1).
    pub fn from_api_value(value: &Value) -> Result<TaskLog, TaskLogError> {
        let entries = match value {
            Value::Array(a) => a,
            Value::Object(o) => match o.get("data") {
                Some(Value::Array(a)) => a,
                Some(other) => {
                    return Err(TaskLogError::NotALineArray(format!(
                        "its \"data\" is {}",
                        json_kind(other)
                    )))
                }
                None => {
                    return Err(TaskLogError::NotALineArray(
                        "an object without \"data\"".into(),
                    ))
                }
            },
            other => return Err(TaskLogError::NotALineArray(json_kind(other).to_string())),
        };
        let lines = entries
            .iter()
            .enumerate()
            .map(|(i, e)| api_entry(i, e))
            .collect::<Result<_, _>>()?;
        Ok(TaskLog { lines })
    }

    /// Whether any line is one only a migration writes
    /// ([`LineKind::is_migration_line`]).
    pub fn is_migration_log(&self) -> bool {
        self.lines.iter().any(|l| l.kind.is_migration_line())
    }
}

/// One `{"n": .., "t": ..}` entry.
fn api_entry(index: usize, entry: &Value) -> Result<TaskLine, TaskLogError> {
    let bad = |what: String| TaskLogError::BadEntry { index, what };
    let Value::Object(o) = entry else {
        return Err(bad(format!(
            "is {}, not {{\"n\": .., \"t\": ..}}",
            json_kind(entry)
        )));
    };
    let text = match o.get("t") {
        Some(Value::String(t)) => t,
        Some(other) => {
            return Err(bad(format!(
                "has a \"t\" that is {}, not text",
                json_kind(other)
            )))
        }
        None => return Err(bad("has no \"t\" (the line's text)".into())),
    };
    let number = match o.get("n") {
        None => index as u64 + 1,
        Some(n) => n
            .as_u64()
            .ok_or_else(|| bad(format!("has an \"n\" that is not a line number: {n}")))?,
    };
    Ok(parse_numbered_line(number, text))
}

/// What kind of JSON value `v` is, for an error.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads one line on its own; it gets number 1 (the first of its own log).
pub fn parse_line(text: &str) -> TaskLine {
    parse_numbered_line(1, text)
}

/// Reads line `number` of a log.
pub fn parse_numbered_line(number: u64, text: &str) -> TaskLine {
    let text = text.strip_suffix('\r').unwrap_or(text);
    let (timestamp, error_prefix, message) = split_prefix(text);
    TaskLine {
        number,
        timestamp,
        error_prefix,
        kind: parse_message(message),
        text: text.to_string(),
    }
}

/// Splits `YYYY-MM-DD HH:MM:SS [ERROR: ]` off a line: the timestamp,
/// whether `ERROR: ` followed it, and the message.
fn split_prefix(text: &str) -> (Option<LocalTimestamp>, bool, &str) {
    let stamp = text
        .get(..TIMESTAMP_LEN)
        .and_then(LocalTimestamp::parse)
        .filter(|_| text[TIMESTAMP_LEN..].starts_with(' '));
    let Some(stamp) = stamp else {
        return (None, false, text);
    };
    let rest = &text[TIMESTAMP_LEN + 1..];
    match rest.strip_prefix("ERROR: ") {
        Some(m) => (Some(stamp), true, m),
        None => (Some(stamp), false, rest),
    }
}

/// Reads a message (a line without its timestamp and `ERROR: `; trailing
/// white space is ignored). Unknown messages are [`LineKind::Other`].
pub fn parse_message(message: &str) -> LineKind {
    let m = message.trim_end();
    parse_task_end(m)
        .or_else(|| parse_setup(m))
        .or_else(|| parse_storage(m))
        .or_else(|| parse_ram_setup(m))
        .or_else(|| parse_ram_progress(m))
        .or_else(|| parse_migration_end(m))
        .or_else(|| parse_job_line(m))
        .unwrap_or_else(|| LineKind::Other(m.to_string()))
}

/// `s` without `prefix` and `suffix`.
fn between<'a>(s: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    s.strip_prefix(prefix)?.strip_suffix(suffix)
}

/// `TASK OK`, `TASK ERROR: …`, `TASK WARNINGS: N`.
fn parse_task_end(m: &str) -> Option<LineKind> {
    if m == "TASK OK" {
        return Some(LineKind::TaskOk);
    }
    if let Some(message) = m.strip_prefix("TASK ERROR: ") {
        return Some(LineKind::TaskError {
            message: message.to_string(),
        });
    }
    let count = parse_digits(m.strip_prefix("TASK WARNINGS: ")?)?;
    Some(LineKind::TaskWarnings { count })
}

/// Phase 1 and the target's start: the migration's first lines.
fn parse_setup(m: &str) -> Option<LineKind> {
    if let Some(rest) = m.strip_prefix("starting migration of VM ") {
        let (vmid, rest) = rest.split_once(" to node '")?;
        let (node, ip) = rest.rsplit_once("' (")?;
        return Some(LineKind::StartingMigration {
            vmid: parse_digits(vmid)?,
            node: node.to_string(),
            ip: ip.strip_suffix(')')?.to_string(),
        });
    }
    if let Some(rest) = m.strip_prefix("found ") {
        return parse_found_disk(rest);
    }
    if let Some(rest) = m.strip_prefix("can't migrate local disk '") {
        let (volume, reason) = rest.split_once("': ")?;
        return Some(LineKind::LocalDiskError {
            volume: volume.to_string(),
            reason: reason.to_string(),
        });
    }
    if let Some(rest) = between(m, "starting VM ", "'") {
        let (vmid, node) = rest.split_once(" on remote node '")?;
        return Some(LineKind::StartingRemoteVm {
            vmid: parse_digits(vmid)?,
            node: node.to_string(),
        });
    }
    if let Some(rest) = between(m, "volume '", "' on the target") {
        let (source, target) = rest.split_once("' is '")?;
        return Some(LineKind::VolumeOnTarget {
            source: source.to_string(),
            target: target.to_string(),
        });
    }
    match m {
        "start remote tunnel" => Some(LineKind::StartRemoteTunnel),
        "starting storage migration" => Some(LineKind::StartingStorageMigration),
        _ => None,
    }
}

/// `found KIND disk 'VOLUME'[ (REASON)]`, after `found `.
fn parse_found_disk(rest: &str) -> Option<LineKind> {
    let (kind, rest) = rest.split_once(" disk '")?;
    let (volume, tail) = rest.split_once('\'')?;
    let reason = if tail.is_empty() {
        None
    } else {
        Some(between(tail, " (", ")")?.to_string())
    };
    Some(LineKind::FoundLocalDisk {
        kind: kind.to_string(),
        volume: volume.to_string(),
        reason,
    })
}

/// The storage migration's lines that are not a block job's.
fn parse_storage(m: &str) -> Option<LineKind> {
    if let Some(rest) = m.strip_prefix("drive mirror is starting for ") {
        let (device, limit) = match rest.split_once(" with bandwidth limit: ") {
            Some((d, l)) => {
                let kib = l
                    .strip_suffix(" KiB/s")
                    .or_else(|| l.strip_suffix(" KB/s"))?;
                (d, Some(parse_digits(kib)?))
            }
            None => (rest, None),
        };
        return is_job_id(device).then(|| LineKind::DriveMirrorStarting {
            device: device.to_string(),
            bwlimit_kib_s: limit,
        });
    }
    if let Some(op) = between(m, "all '", "' jobs are ready") {
        return Some(LineKind::AllJobsReady { op: op.to_string() });
    }
    match m {
        "switching mirror jobs to actively synced mode" => Some(LineKind::SwitchingToActiveMode),
        "stopping NBD storage migration server on target." => Some(LineKind::StoppingNbd),
        _ => None,
    }
}

/// From `starting online/live migration` to `start migrate command`.
fn parse_ram_setup(m: &str) -> Option<LineKind> {
    if let Some(uri) = m.strip_prefix("starting online/live migration on ") {
        return Some(LineKind::StartingLiveMigration {
            uri: uri.to_string(),
        });
    }
    if let Some(uri) = m.strip_prefix("start migrate command to ") {
        return Some(LineKind::StartMigrateCommand {
            uri: uri.to_string(),
        });
    }
    if let Some(rate) = m.strip_prefix("migration speed limit: ") {
        return Some(LineKind::SpeedLimit {
            bytes_per_s: parse_rate(rate)?,
        });
    }
    if let Some(ms) = between(m, "migration downtime limit: ", " ms") {
        return Some(LineKind::DowntimeLimit {
            ms: parse_decimal(ms)?,
        });
    }
    if let Some(ms) = between(m, "capping downtime limit to maximum possible: ", " ms") {
        return Some(LineKind::DowntimeCapped {
            ms: parse_decimal(ms)?,
        });
    }
    if let Some(size) = m.strip_prefix("migration cachesize: ") {
        return Some(LineKind::Cachesize {
            bytes: parse_size(size)?,
        });
    }
    match m {
        "set migration capabilities" | "set migration_caps" => Some(LineKind::SetCapabilities),
        "set migration parameters" => Some(LineKind::SetParameters),
        _ => None,
    }
}

/// The lines logged while `query-migrate` is polled.
fn parse_ram_progress(m: &str) -> Option<LineKind> {
    if let Some(status) = between(m, "migration in status '", "' - waiting for transition") {
        return Some(LineKind::WaitingForTransition {
            status: status.to_string(),
        });
    }
    if let Some(rest) = m.strip_prefix("xbzrle: send updates to ") {
        return parse_xbzrle(rest);
    }
    if let Some(rest) = m.strip_prefix("migration xbzrle cachesize: ") {
        return parse_xbzrle_old(rest);
    }
    if let Some(ms) = between(m, "auto-increased downtime to continue migration: ", " ms") {
        return Some(LineKind::DowntimeIncreased {
            ms: parse_decimal(ms)?,
        });
    }
    if let Some(rest) = m.strip_prefix("migration status: ") {
        return parse_old_active(rest, true);
    }
    let rest = m.strip_prefix("migration ")?;
    parse_active(rest).or_else(|| parse_old_active(rest, false))
}

/// `STATUS, transferred X of Y VM-state, S/s[ (+ V VFIO-state)][, VM
/// dirties lots of memory: D/s]`, after `migration `.
fn parse_active(rest: &str) -> Option<LineKind> {
    let (status, rest) = rest.split_once(", transferred ")?;
    if !is_status_word(status) {
        return None;
    }
    let (transferred, rest) = rest.split_once(" of ")?;
    let (total, rest) = rest.split_once(" VM-state, ")?;
    let (speed, rest) = rest.split_once("/s")?;
    let (vfio, rest) = match rest.strip_prefix(" (+ ") {
        Some(r) => {
            let (v, r) = r.split_once(" VFIO-state)")?;
            (Some(parse_size(v)?), r)
        }
        None => (None, rest),
    };
    let dirty = match rest {
        "" => None,
        r => Some(parse_rate(
            r.strip_prefix(", VM dirties lots of memory: ")?,
        )?),
    };
    Some(LineKind::MigrationActive {
        status: status.to_string(),
        transferred_bytes: parse_size(transferred)?,
        total_bytes: parse_size(total)?,
        speed_bytes_s: parse_size(speed)?,
        vfio_bytes: vfio,
        dirty_rate_bytes_s: dirty,
    })
}

/// `STATUS (transferred N, remaining N), total N)[ , expected downtime N]`.
fn parse_old_active(rest: &str, status_label: bool) -> Option<LineKind> {
    let (status, rest) = rest.split_once(" (transferred ")?;
    if !is_status_word(status) {
        return None;
    }
    let (transferred, rest) = rest.split_once(", remaining ")?;
    let (remaining, rest) = rest.split_once("), total ")?;
    let (total, tail) = rest.split_once(')')?;
    let expected = match tail {
        "" => None,
        t => Some(parse_digits(t.strip_prefix(" , expected downtime ")?)?),
    };
    Some(LineKind::OldStatusActive {
        status: status.to_string(),
        transferred_bytes: parse_digits(transferred)?,
        remaining_bytes: parse_digits(remaining)?,
        total_bytes: parse_digits(total)?,
        expected_downtime_ms: expected,
        status_label,
    })
}

/// `N pages in SIZE encoded memory[, cache-miss P%][, overflow N]`.
fn parse_xbzrle(rest: &str) -> Option<LineKind> {
    let (pages, rest) = rest.split_once(" pages in ")?;
    let (bytes, mut rest) = rest.split_once(" encoded memory")?;
    let mut cache_miss_pct = None;
    if let Some(r) = rest.strip_prefix(", cache-miss ") {
        let (pct, r) = r.split_once('%')?;
        cache_miss_pct = Some(parse_decimal(pct)?);
        rest = r;
    }
    let overflow = match rest {
        "" => None,
        r => Some(parse_digits(r.strip_prefix(", overflow ")?)?),
    };
    Some(LineKind::Xbzrle {
        pages: parse_digits(pages)?,
        bytes: parse_size(bytes)?,
        cache_miss_pct,
        overflow,
    })
}

/// `N transferred N pages N cachemiss N overflow N`.
fn parse_xbzrle_old(rest: &str) -> Option<LineKind> {
    let w: Vec<&str> = rest.split(' ').collect();
    let [size, "transferred", bytes, "pages", pages, "cachemiss", miss, "overflow", overflow] =
        w.as_slice()
    else {
        return None;
    };
    Some(LineKind::XbzrleOld {
        cache_size_bytes: parse_digits(size)?,
        bytes: parse_digits(bytes)?,
        pages: parse_digits(pages)?,
        cache_miss: parse_digits(miss)?,
        overflow: parse_digits(overflow)?,
    })
}

/// From QEMU's `completed` to the task's verdict.
fn parse_migration_end(m: &str) -> Option<LineKind> {
    if let Some(rest) = m.strip_prefix("average migration speed: ") {
        let (rate, downtime) = rest.split_once(" - downtime ")?;
        return Some(LineKind::AverageSpeed {
            bytes_per_s: parse_rate(rate)?,
            downtime_ms: parse_decimal(downtime.strip_suffix(" ms")?)?,
        });
    }
    if let Some(rest) = m.strip_prefix("migration speed: ") {
        let (mb, tail) = rest.split_once(" MB/s")?;
        let downtime = match tail {
            "" => None,
            t => Some(parse_decimal(between(t, " - downtime ", " ms")?)?),
        };
        return Some(LineKind::OldMigrationSpeed {
            mb_per_s: parse_decimal(mb)?,
            downtime_ms: downtime,
        });
    }
    if let Some(rest) = m.strip_prefix("migration completed, transferred ") {
        let (size, tail) = rest.split_once(" VM-state")?;
        let vfio = match tail {
            "" => None,
            t => Some(parse_size(between(t, " (+ ", " VFIO-state)")?)?),
        };
        return Some(LineKind::MigrationCompleted {
            transferred_bytes: parse_size(size)?,
            vfio_bytes: vfio,
        });
    }
    if m == "migration status: completed" {
        return Some(LineKind::StatusCompleted);
    }
    if let Some(message) = m.strip_prefix("migration status error: ") {
        return Some(LineKind::StatusError {
            message: message.to_string(),
        });
    }
    if let Some(message) = m.strip_prefix("online migrate failure - ") {
        return Some(LineKind::OnlineMigrateFailure {
            message: message.to_string(),
        });
    }
    parse_verdict(m)
}

/// `migration finished successfully|with problems (duration …)`,
/// `migration aborted (duration …): REASON`.
fn parse_verdict(m: &str) -> Option<LineKind> {
    if let Some(d) = between(m, "migration finished successfully (duration ", ")") {
        return Some(LineKind::FinishedSuccessfully {
            duration_s: parse_duration(d)?,
        });
    }
    if let Some(d) = between(m, "migration finished with problems (duration ", ")") {
        return Some(LineKind::FinishedWithProblems {
            duration_s: parse_duration(d)?,
        });
    }
    let (d, reason) = m
        .strip_prefix("migration aborted (duration ")?
        .split_once("): ")?;
    Some(LineKind::Aborted {
        duration_s: parse_duration(d)?,
        reason: reason.to_string(),
    })
}

/// A block-job id as Proxmox names them (`mirror-scsi0`, `drive-scsi0`,
/// `scsi0`): letters, digits, `-`, `_`, `.`.
fn is_job_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A QEMU migration status (`active`, `device`, `wait-unplug`).
fn is_status_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

/// `JOB: …` lines: a drive's NBD start, a block job's progress and end.
fn parse_job_line(m: &str) -> Option<LineKind> {
    let (job, rest) = m.split_once(": ")?;
    if !is_job_id(job) {
        return None;
    }
    let job_s = || job.to_string();
    if let Some(target) = rest.strip_prefix("start migration to ") {
        return Some(LineKind::DriveMigrationStart {
            drive: job_s(),
            target: target.to_string(),
        });
    }
    if let Some(r) = rest.strip_prefix("transferred: ") {
        return parse_old_progress(job, r);
    }
    if let Some(r) = rest.strip_prefix("transferred ") {
        return parse_progress(job, r);
    }
    if let Some(op) = rest.strip_suffix("-job finished") {
        return is_job_id(op).then(|| LineKind::BlockJobFinished {
            job: job_s(),
            op: Some(op.to_string()),
        });
    }
    let kind = match rest {
        "switching to actively synced mode" => LineKind::JobSwitchingToActiveMode { job: job_s() },
        "successfully switched to actively synced mode" => {
            LineKind::JobSwitchedToActiveMode { job: job_s() }
        }
        "Completing block job..." | "Completing block job_id..." => {
            LineKind::BlockJobCompleting { job: job_s() }
        }
        "Completed successfully." => LineKind::BlockJobCompleted { job: job_s() },
        "finished" => LineKind::BlockJobFinished {
            job: job_s(),
            op: None,
        },
        "Cancelling block job" => LineKind::BlockJobCancelling { job: job_s() },
        "Done." => LineKind::BlockJobCancelled { job: job_s() },
        _ => return None,
    };
    Some(kind)
}

/// `X of Y (P%) in DURATION[, ready|, still busy]`, after `transferred `.
fn parse_progress(job: &str, rest: &str) -> Option<LineKind> {
    let (transferred, rest) = rest.split_once(" of ")?;
    let (total, rest) = rest.split_once(" (")?;
    let (percent, rest) = rest.split_once("%) in ")?;
    let (duration, state) = if let Some(d) = rest.strip_suffix(", ready") {
        (d, MirrorState::Ready)
    } else if let Some(d) = rest.strip_suffix(", still busy") {
        (d, MirrorState::ReadyButBusy)
    } else {
        (rest, MirrorState::NotReady)
    };
    Some(LineKind::MirrorProgress {
        job: job.to_string(),
        transferred_bytes: parse_size(transferred)?,
        total_bytes: parse_size(total)?,
        percent: parse_decimal(percent)?,
        elapsed_s: Some(parse_duration(duration)?),
        state,
    })
}

/// `N bytes remaining: N bytes total: N bytes progression: P % busy: B
/// ready: R`, after `transferred: ` (QEMU's booleans as Perl prints them).
fn parse_old_progress(job: &str, rest: &str) -> Option<LineKind> {
    let w: Vec<&str> = rest.split_whitespace().collect();
    let [transferred, "bytes", "remaining:", _, "bytes", "total:", total, "bytes", "progression:", percent, "%", "busy:", busy, "ready:", ready] =
        w.as_slice()
    else {
        return None;
    };
    let flag = |s: &str| match s {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    };
    let state = match (flag(ready)?, flag(busy)?) {
        (false, _) => MirrorState::NotReady,
        (true, false) => MirrorState::Ready,
        (true, true) => MirrorState::ReadyButBusy,
    };
    Some(LineKind::MirrorProgress {
        job: job.to_string(),
        transferred_bytes: parse_digits(transferred)?,
        total_bytes: parse_digits(total)?,
        percent: parse_decimal(percent)?,
        elapsed_s: None,
        state,
    })
}
