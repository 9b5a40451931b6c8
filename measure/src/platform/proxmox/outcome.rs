//! A task log turned into what a migration record needs: how the
//! migration ended, its timed markers, and Proxmox's own figures.
//!
//! Times: a line stamped second S (local) happened in [S, S+1 s), so its
//! marker is S + 0.5 s ± 0.5 s, in UTC as `S − utc_offset_s`. A line
//! without a stamp (the mirror's) happened after the stamped line before
//! it and before the end of the second of the stamped line after it: its
//! marker is the middle of that span, ± half of it. One offset serves the
//! whole log: a log that spans a daylight-saving change is off by the
//! change on one side of it.
//!
//! The log names no moment at which the source stops the guest or the
//! target resumes it (the resume is the tunnel's `resume` during cleanup,
//! unlogged), so this gives no `source-stopped` nor `destination-resumed`
//! marker, and no passes: Proxmox does not log them.

use super::tasklog::{LineKind, MirrorState, TaskLine, TaskLog};
use super::TaskLogError;
use crate::migration::marker::{Marker, MarkerKind, MarkerSource};
use crate::migration::record::{PlatformStats, RepStatus};
use serde::{Deserialize, Serialize};

/// [`PlatformStats::platform`] for Proxmox.
pub const PLATFORM: &str = "proxmox";

/// [`PlatformStats::downtime_source`] for the task log's `downtime N ms`.
pub const DOWNTIME_SOURCE: &str =
    "Proxmox task log: QEMU's source-side downtime (the destination stays paused until cleanup)";

/// When a line happened: ns since the epoch (UTC) on the caller's clock,
/// give or take `uncertainty_ns`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogTime {
    /// The middle of the span the line happened in, ns.
    pub t_ns: i64,
    /// Half the span, ns.
    pub uncertainty_ns: i64,
}

/// One mirror progress line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MirrorPoint {
    /// Its line number.
    pub line: u64,
    /// When, if the log's stamps bound it.
    pub time: Option<LogTime>,
    /// The block job (`mirror-scsi0`).
    pub job: String,
    /// Bytes copied (to the `%.1f` printed, or exact in the old form).
    pub transferred_bytes: u64,
    /// The disk's size.
    pub total_bytes: u64,
    /// Proxmox's percentage.
    pub percent: f64,
    /// Seconds since this wait for the mirrors began (`None` in the old form).
    pub elapsed_s: Option<u64>,
    /// Whether the job was ready.
    pub state: MirrorState,
}

/// One line of RAM progress (`migration active, …` or the old
/// `migration status: active (…)`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RamPoint {
    /// Its line number.
    pub line: u64,
    /// When, if the log's stamps bound it.
    pub time: Option<LogTime>,
    /// QEMU's status (`active`, `device`).
    pub status: String,
    /// `ram.transferred`, bytes.
    pub transferred_bytes: u64,
    /// `ram.total`, bytes.
    pub total_bytes: u64,
    /// `ram.remaining`, bytes (old form only).
    pub remaining_bytes: Option<u64>,
    /// Transfer speed, bytes/s (current form only).
    pub speed_bytes_s: Option<u64>,
    /// VFIO state sent, bytes.
    pub vfio_bytes: Option<u64>,
    /// The guest's dirty rate, bytes/s, when Proxmox printed it (only
    /// when above the speed).
    pub dirty_rate_bytes_s: Option<u64>,
}

/// A mirror's bandwidth limit, from `drive mirror is starting for …`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MirrorLimit {
    /// The device (`drive-scsi0`).
    pub device: String,
    /// Its limit, KiB/s.
    pub kib_s: u64,
}

/// What a migration's task log says, in the record's terms and Proxmox's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    /// Completed only when the log says `migration finished successfully`
    /// and has no `TASK ERROR`.
    pub status: RepStatus,
    /// The log's own words for why it failed.
    pub error: Option<String>,
    /// Timed markers, in time order (source [`MarkerSource::TaskLog`]).
    pub markers: Vec<Marker>,
    /// Proxmox's figures for the record.
    pub platform: PlatformStats,
    /// The VM's id.
    pub vmid: Option<u64>,
    /// The node it went to.
    pub target_node: Option<String>,
    /// The address it went to.
    pub target_ip: Option<String>,
    /// The local volumes found (`found local disk '…'`), in log order.
    pub local_disks: Vec<String>,
    /// `average migration speed`, bytes/s (total RAM over whole seconds).
    pub average_speed_bytes_s: Option<u64>,
    /// The initial downtime limit, ms.
    pub downtime_limit_ms: Option<f64>,
    /// Each `auto-increased downtime` in order, ms.
    pub downtime_increases_ms: Vec<f64>,
    /// The RAM migration's bandwidth limit, bytes/s (logged only when set).
    pub speed_limit_bytes_s: Option<u64>,
    /// The mirrors' bandwidth limits.
    pub mirror_limits: Vec<MirrorLimit>,
    /// The XBZRLE cache size, bytes.
    pub cachesize_bytes: Option<u64>,
    /// Every mirror progress line.
    pub mirror_progress: Vec<MirrorPoint>,
    /// Every RAM progress line.
    pub ram_progress: Vec<RamPoint>,
    /// The task's exit status as the API's `exitstatus` gives it: `OK`,
    /// `WARNINGS: N`, or the error; `None` while the log has no end line.
    pub exit_status: Option<String>,
}

/// [`outcome`], refusing a log that holds no line only a migration writes
/// (a wrong file, another task's log).
pub fn outcome_checked(
    log: &TaskLog,
    utc_offset_s: i64,
    clock: &str,
) -> Result<Outcome, TaskLogError> {
    if !log.is_migration_log() {
        let first = log
            .lines
            .iter()
            .map(|l| l.text.trim())
            .find(|t| !t.is_empty());
        return Err(TaskLogError::NotAMigrationLog {
            first_line: first.unwrap_or("").chars().take(120).collect(),
        });
    }
    Ok(outcome(log, utc_offset_s, clock))
}

/// Reads a migration's task log: the node's UTC offset turns its local
/// stamps into UTC (`t = local − utc_offset_s`, 3600 for CET); `clock`
/// names the clock the markers are on. Any log gives an outcome; one that
/// is not a migration's is simply Failed ([`outcome_checked`] refuses it).
pub fn outcome(log: &TaskLog, utc_offset_s: i64, clock: &str) -> Outcome {
    let times = line_times(&log.lines, utc_offset_s);
    let (status, error) = verdict(&log.lines);
    let mut o = Outcome {
        status,
        error,
        markers: markers(&log.lines, &times, clock),
        platform: platform_stats(&log.lines),
        vmid: None,
        target_node: None,
        target_ip: None,
        local_disks: Vec::new(),
        average_speed_bytes_s: None,
        downtime_limit_ms: None,
        downtime_increases_ms: Vec::new(),
        speed_limit_bytes_s: None,
        mirror_limits: Vec::new(),
        cachesize_bytes: None,
        mirror_progress: Vec::new(),
        ram_progress: Vec::new(),
        exit_status: exit_status(&log.lines),
    };
    for (line, time) in log.lines.iter().zip(&times) {
        o.take_settings(&line.kind);
        o.take_progress(line, *time);
    }
    o
}

impl Outcome {
    /// The figures a line sets (the first one where there could be two).
    fn take_settings(&mut self, kind: &LineKind) {
        match kind {
            LineKind::StartingMigration { vmid, node, ip } if self.vmid.is_none() => {
                self.vmid = Some(*vmid);
                self.target_node = Some(node.clone());
                self.target_ip = Some(ip.clone());
            }
            LineKind::FoundLocalDisk { volume, .. } => self.local_disks.push(volume.clone()),
            LineKind::AverageSpeed { bytes_per_s, .. } => {
                self.average_speed_bytes_s = Some(*bytes_per_s)
            }
            LineKind::DowntimeLimit { ms } => {
                self.downtime_limit_ms.get_or_insert(*ms);
            }
            LineKind::DowntimeIncreased { ms } => self.downtime_increases_ms.push(*ms),
            LineKind::SpeedLimit { bytes_per_s } => {
                self.speed_limit_bytes_s.get_or_insert(*bytes_per_s);
            }
            LineKind::DriveMirrorStarting {
                device,
                bwlimit_kib_s: Some(kib_s),
            } => self.mirror_limits.push(MirrorLimit {
                device: device.clone(),
                kib_s: *kib_s,
            }),
            LineKind::Cachesize { bytes } => {
                self.cachesize_bytes.get_or_insert(*bytes);
            }
            _ => {}
        }
    }

    /// A progress line's point.
    fn take_progress(&mut self, line: &TaskLine, time: Option<LogTime>) {
        match &line.kind {
            LineKind::MirrorProgress {
                job,
                transferred_bytes,
                total_bytes,
                percent,
                elapsed_s,
                state,
            } => self.mirror_progress.push(MirrorPoint {
                line: line.number,
                time,
                job: job.clone(),
                transferred_bytes: *transferred_bytes,
                total_bytes: *total_bytes,
                percent: *percent,
                elapsed_s: *elapsed_s,
                state: *state,
            }),
            LineKind::MigrationActive {
                status,
                transferred_bytes,
                total_bytes,
                speed_bytes_s,
                vfio_bytes,
                dirty_rate_bytes_s,
            } => self.ram_progress.push(RamPoint {
                line: line.number,
                time,
                status: status.clone(),
                transferred_bytes: *transferred_bytes,
                total_bytes: *total_bytes,
                remaining_bytes: None,
                speed_bytes_s: Some(*speed_bytes_s),
                vfio_bytes: *vfio_bytes,
                dirty_rate_bytes_s: *dirty_rate_bytes_s,
            }),
            LineKind::OldStatusActive {
                status,
                transferred_bytes,
                remaining_bytes,
                total_bytes,
                ..
            } => self.ram_progress.push(RamPoint {
                line: line.number,
                time,
                status: status.clone(),
                transferred_bytes: *transferred_bytes,
                total_bytes: *total_bytes,
                remaining_bytes: Some(*remaining_bytes),
                speed_bytes_s: None,
                vfio_bytes: None,
                dirty_rate_bytes_s: None,
            }),
            _ => {}
        }
    }
}

/// Each line's time: its own second, or the span between the stamped
/// lines around it; `None` when a side has no stamped line (or on overflow).
fn line_times(lines: &[TaskLine], utc_offset_s: i64) -> Vec<Option<LogTime>> {
    let secs: Vec<Option<i64>> = lines
        .iter()
        .map(|l| l.timestamp.and_then(|t| t.utc_epoch_s(utc_offset_s)))
        .collect();
    let before = running(secs.iter().copied());
    let mut after = running(secs.iter().rev().copied());
    after.reverse();
    (0..lines.len())
        .map(|i| match (secs[i], before[i], after[i]) {
            (Some(s), _, _) => span(s, s),
            (None, Some(p), Some(n)) => span(p.min(n), p.max(n)),
            _ => None,
        })
        .collect()
}

/// The last `Some` seen up to each place.
fn running(secs: impl Iterator<Item = Option<i64>>) -> Vec<Option<i64>> {
    let mut last = None;
    secs.map(|s| {
        last = s.or(last);
        last
    })
    .collect()
}

/// The span from the start of second `first` to the end of second `last`.
fn span(first: i64, last: i64) -> Option<LogTime> {
    const NS: i128 = 1_000_000_000;
    let (lo, hi) = (i128::from(first) * NS, (i128::from(last) + 1) * NS);
    Some(LogTime {
        t_ns: i64::try_from((lo + hi) / 2).ok()?,
        uncertainty_ns: i64::try_from((hi - lo) / 2).ok()?,
    })
}

/// The markers the log can state.
fn markers(lines: &[TaskLine], times: &[Option<LogTime>], clock: &str) -> Vec<Marker> {
    let first = |f: fn(&LineKind) -> bool| lines.iter().position(|l| f(&l.kind));
    let last = |f: fn(&LineKind) -> bool| lines.iter().rposition(|l| f(&l.kind));
    let found = [
        (
            MarkerKind::MigrationRequested,
            first(|k| matches!(k, LineKind::StartingMigration { .. })),
        ),
        (
            MarkerKind::SetupDone,
            first(|k| matches!(k, LineKind::StartMigrateCommand { .. })),
        ),
        (
            MarkerKind::RamCompleted,
            first(|k| {
                matches!(
                    k,
                    LineKind::MigrationCompleted { .. } | LineKind::StatusCompleted
                )
            }),
        ),
        (MarkerKind::MirrorReady, mirror_ready(lines)),
        (
            MarkerKind::MirrorCompleted,
            last(|k| {
                matches!(
                    k,
                    LineKind::BlockJobCompleted { .. } | LineKind::BlockJobFinished { .. }
                )
            }),
        ),
        (
            MarkerKind::PlatformCleanupDone,
            first(|k| matches!(k, LineKind::FinishedSuccessfully { .. })),
        ),
    ];
    let mut out: Vec<Marker> = found
        .into_iter()
        .filter_map(|(kind, at)| {
            let time = times[at?]?;
            Some(Marker {
                kind,
                pass: None,
                t_ns: time.t_ns,
                clock: clock.to_string(),
                uncertainty_ns: time.uncertainty_ns,
                source: MarkerSource::TaskLog,
            })
        })
        .collect();
    out.sort_by_key(|m| m.t_ns);
    out
}

/// The line that says every mirror is ready. Proxmox waits for the jobs
/// once per disk (each wait covers the disks started so far) and once more
/// when it completes them, printing `all 'mirror' jobs are ready` each
/// time: the moment is the last of those before the RAM migration starts
/// (the last of all in a log that never got there).
fn mirror_ready(lines: &[TaskLine]) -> Option<usize> {
    let ram_start = lines
        .iter()
        .position(|l| matches!(l.kind, LineKind::StartingLiveMigration { .. }))
        .unwrap_or(lines.len());
    lines[..ram_start]
        .iter()
        .rposition(|l| matches!(&l.kind, LineKind::AllJobsReady { op } if op == "mirror"))
}

/// Completed or Failed, and the log's words for a failure.
fn verdict(lines: &[TaskLine]) -> (RepStatus, Option<String>) {
    let finished = lines
        .iter()
        .any(|l| matches!(l.kind, LineKind::FinishedSuccessfully { .. }));
    let task_error = lines.iter().rev().find_map(|l| match &l.kind {
        LineKind::TaskError { message } => Some(message.clone()),
        _ => None,
    });
    match (finished, task_error) {
        (true, None) => (RepStatus::Completed, None),
        (true, Some(e)) => (RepStatus::Failed, Some(e)),
        (false, _) => (RepStatus::Failed, Some(failure(lines))),
    }
}

/// Why a migration that did not finish failed, most specific first:
/// QEMU's error, the abort's reason (with the disks' reasons behind a
/// "check log"), the first error before "finished with problems", the
/// task's error, or the log's end.
fn failure(lines: &[TaskLine]) -> String {
    let find = |f: &dyn Fn(&LineKind) -> Option<String>| lines.iter().find_map(|l| f(&l.kind));
    if let Some(m) = find(&|k| match k {
        LineKind::StatusError { message } => Some(format!("migration status error: {message}")),
        _ => None,
    }) {
        return m;
    }
    if let Some(reason) = find(&|k| match k {
        LineKind::Aborted { reason, .. } => Some(reason.clone()),
        _ => None,
    }) {
        return with_disk_errors(reason, lines);
    }
    if let Some(m) = problems(lines) {
        return m;
    }
    if let Some(m) = find(&|k| match k {
        LineKind::TaskError { message } => Some(message.clone()),
        _ => None,
    }) {
        return m;
    }
    let ended = lines
        .iter()
        .any(|l| matches!(l.kind, LineKind::TaskOk | LineKind::TaskWarnings { .. }));
    if ended {
        "the task ended without a 'migration finished successfully' line".into()
    } else {
        "the task log ends before the migration finished".into()
    }
}

/// An abort's reason, with each `can't migrate local disk` line's reason
/// after it (Proxmox's reason then is only "can't migrate VM - check log").
fn with_disk_errors(reason: String, lines: &[TaskLine]) -> String {
    let disks: Vec<String> = lines
        .iter()
        .filter(|l| matches!(l.kind, LineKind::LocalDiskError { .. }))
        .map(|l| l.message().to_string())
        .collect();
    if disks.is_empty() {
        reason
    } else {
        format!("{reason} ({})", disks.join("; "))
    }
}

/// For `migration finished with problems`: the first `ERROR:` line before
/// it, or the line itself when there is none.
fn problems(lines: &[TaskLine]) -> Option<String> {
    let at = lines
        .iter()
        .position(|l| matches!(l.kind, LineKind::FinishedWithProblems { .. }))?;
    let first_error = lines[..at].iter().find(|l| l.error_prefix);
    Some(
        first_error
            .map_or("migration finished with problems", |l| l.message())
            .to_string(),
    )
}

/// The task's end as the API's `exitstatus` states it.
fn exit_status(lines: &[TaskLine]) -> Option<String> {
    lines.iter().rev().find_map(|l| match &l.kind {
        LineKind::TaskOk => Some("OK".to_string()),
        LineKind::TaskWarnings { count } => Some(format!("WARNINGS: {count}")),
        LineKind::TaskError { message } => Some(message.clone()),
        _ => None,
    })
}

/// Proxmox's figures: downtime and average speed from QEMU's completion,
/// the task's duration, RAM and disk bytes sent.
fn platform_stats(lines: &[TaskLine]) -> PlatformStats {
    let downtime_ms = lines.iter().rev().find_map(|l| match l.kind {
        LineKind::AverageSpeed { downtime_ms, .. } => Some(downtime_ms),
        LineKind::OldMigrationSpeed { downtime_ms, .. } => downtime_ms,
        _ => None,
    });
    let duration_s = lines.iter().rev().find_map(|l| match l.kind {
        LineKind::FinishedSuccessfully { duration_s }
        | LineKind::FinishedWithProblems { duration_s }
        | LineKind::Aborted { duration_s, .. } => Some(duration_s),
        _ => None,
    });
    let ram = lines.iter().rev().find_map(|l| match l.kind {
        LineKind::MigrationCompleted {
            transferred_bytes, ..
        } => Some(transferred_bytes),
        _ => None,
    });
    PlatformStats {
        platform: PLATFORM.to_string(),
        downtime_ms,
        downtime_source: downtime_ms.map(|_| DOWNTIME_SOURCE.to_string()),
        duration_ms: duration_s.map(|s| s as f64 * 1000.0),
        ram_transferred_bytes: ram.and_then(|b| i64::try_from(b).ok()),
        disk_transferred_bytes: disk_transferred(lines),
    }
}

/// The last progress line's bytes of each mirror job, summed. What the
/// guest writes after a job is ready is copied too, and no line counts it.
fn disk_transferred(lines: &[TaskLine]) -> Option<i64> {
    let mut last: Vec<(&str, u64)> = Vec::new();
    for l in lines {
        if let LineKind::MirrorProgress {
            job,
            transferred_bytes,
            ..
        } = &l.kind
        {
            match last.iter_mut().find(|(j, _)| j == job) {
                Some(entry) => entry.1 = *transferred_bytes,
                None => last.push((job, *transferred_bytes)),
            }
        }
    }
    if last.is_empty() {
        return None;
    }
    let sum = last
        .iter()
        .try_fold(0u64, |acc, (_, b)| acc.checked_add(*b))?;
    i64::try_from(sum).ok()
}
