//! `migration.flow = "proxmox"`: the switchover the way Proxmox VE's
//! qemu-server performs it (`QemuMigrate.pm`, phase 2 and phase 3
//! cleanup), on the lab's own QEMUs, writing its task log as it goes.
//!
//! What differs from the plain flow, and why the client sees it:
//! - the destination starts with `-S`, so it stays paused after the
//!   migration completes until the platform sends `cont`;
//! - capabilities are qemu-server's (`auto-converge`, `xbzrle`), with an
//!   XBZRLE cache of 10 % of RAM rounded to a power of two;
//! - qemu-server asks `query-migrate` once a second (every 100 ms once
//!   what remains is less than an average poll's transfer), so it notices
//!   the completion up to a poll late, doubles the downtime limit when
//!   `remaining` grows or hits zero more than 5 polls, and only then does
//!   its cleanup (moves the config, stops NBD for disks) and resumes the
//!   destination: all of that inside the guest's pause, none of it in the
//!   `downtime` the task log reports.
//!
//! The harness's own 20 Hz sampling goes on as in the plain flow; each
//! qemu-server poll is the sample taken at its due time (the sampling grid
//! is 50 ms, a divisor of both poll periods). The destination is started
//! before the task (during the pause after the previous migration), where
//! qemu-server starts it in phase 1: the guest runs on the source then,
//! so this does not change what the client sees.

use crate::clock::now_ns;
use measure::migration::marker::{Marker, MarkerKind, MarkerSource, HOST_CLOCK};
use measure::migration::record::{MigrationRecord, RepStatus};
use measure::platform::proxmox::outcome::outcome;
use measure::platform::proxmox::tasklog::{LineKind, TaskLog};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The VM id the lab's guest has in its task logs.
pub const VMID: u64 = 100;
/// qemu-server's ceiling for the auto-increased downtime limit, ms
/// (`$migrate_downtime_max = 2000 * 1000`, printed as it is).
const DOWNTIME_MAX_MS: f64 = 2_000_000.0;

/// A task log being written: one line per `$self->log`, stamped with the
/// time in UTC (a real node stamps its local time; the lab's is UTC, so
/// a reader's UTC offset is 0).
#[derive(Debug, Clone, Default)]
pub struct TaskLogWriter {
    lines: Arc<Mutex<Vec<String>>>,
}

impl TaskLogWriter {
    /// Appends a stamped line.
    pub fn log(&self, kind: &LineKind) {
        self.push(format!("{} {}", stamp_now(), kind.render()));
    }

    /// Appends a stamped error line (`ERROR: …`, as `$self->log('err', …)`).
    pub fn err(&self, kind: &LineKind) {
        self.push(format!("{} ERROR: {}", stamp_now(), kind.render()));
    }

    /// Appends a line without a stamp (`TASK OK`, `TASK ERROR: …`).
    pub fn plain(&self, kind: &LineKind) {
        self.push(kind.render());
    }

    fn push(&self, line: String) {
        if let Ok(mut v) = self.lines.lock() {
            v.push(line);
        }
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// `YYYY-MM-DD HH:MM:SS`, now, in UTC.
fn stamp_now() -> String {
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    t.trim_end_matches('Z').replacen('T', " ", 1)
}

/// qemu-server's phase-2 poll loop, fed with the harness's samples.
#[derive(Debug)]
pub struct ProxmoxPoll {
    /// Where the lines go.
    pub log: TaskLogWriter,
    /// The current downtime limit, ms.
    pub downtime_ms: f64,
    usleep: Duration,
    /// When (since `migrate`) the next qemu-server poll is due.
    next: Duration,
    i: u64,
    last_mem: i64,
    lastrem: Option<i64>,
    downtimecounter: u32,
    /// `time()` (whole seconds) when the migrate command was sent.
    start_s: i64,
    /// What the loop concluded: `Some(true)` completed, `Some(false)` failed.
    pub ended: Option<bool>,
    /// When the task began (its first line), ns.
    task_start_ns: i64,
    /// When the destination was sent `cont`, ns.
    pub cont_ns: Option<i64>,
}

/// What one qemu-server poll asks the harness to do.
#[derive(Debug, PartialEq)]
pub enum PollAction {
    /// Nothing.
    None,
    /// `migrate-set-parameters downtime-limit`, ms.
    SetDowntime(u64),
}

fn int(v: &Value, path: &[&str]) -> i64 {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)))
        .unwrap_or(0)
}

fn bytes(v: i64) -> u64 {
    v.max(0) as u64
}

impl ProxmoxPoll {
    /// A loop for a migration whose command was sent now, with `downtime_ms`
    /// as its first limit.
    pub fn new(log: TaskLogWriter, downtime_ms: f64) -> Self {
        Self {
            log,
            downtime_ms,
            usleep: Duration::from_secs(1),
            next: Duration::from_secs(1),
            i: 0,
            last_mem: 0,
            lastrem: None,
            downtimecounter: 0,
            start_s: now_ns() / 1_000_000_000,
            ended: None,
            task_start_ns: now_ns(),
            cont_ns: None,
        }
    }

    /// The migrate command is being sent: qemu-server's `$start = time()`.
    pub fn migrate_sent(&mut self) {
        self.start_s = now_ns() / 1_000_000_000;
    }

    /// Whether a poll is due at `elapsed` since `migrate`.
    pub fn due(&self, elapsed: Duration) -> bool {
        self.ended.is_none() && elapsed >= self.next
    }

    /// How long after `elapsed` the next poll is due (zero if it is).
    pub fn until_next(&self, elapsed: Duration) -> Duration {
        self.next.saturating_sub(elapsed)
    }

    /// One qemu-server poll on the `query-migrate` answer `raw`.
    pub fn observe(&mut self, raw: &Value, elapsed: Duration) -> PollAction {
        self.i += 1;
        let avglstat = if self.last_mem > 0 {
            self.last_mem / self.i as i64
        } else {
            0
        };
        let status = raw.get("status").and_then(Value::as_str).unwrap_or("");
        let mut action = PollAction::None;
        match status {
            "setup" | "cancelling" | "wait-unplug" => {
                self.log.log(&LineKind::WaitingForTransition {
                    status: status.into(),
                });
                self.next = elapsed + Duration::from_secs(1) + self.usleep;
                return action;
            }
            "completed" => self.completed(raw),
            "failed" | "cancelled" => self.failed(raw, status),
            "active" | "device" => action = self.active(raw, status, avglstat),
            _ => {}
        }
        self.last_mem = int(raw, &["ram", "transferred"]);
        self.next = elapsed + self.usleep;
        action
    }

    fn completed(&mut self, raw: &Value) {
        let delay = now_ns() / 1_000_000_000 - self.start_s;
        if delay > 0 {
            self.log.log(&LineKind::AverageSpeed {
                bytes_per_s: bytes(int(raw, &["ram", "total"]) / delay),
                downtime_ms: int(raw, &["downtime"]) as f64,
            });
        }
        let transferred = int(raw, &["ram", "transferred"]);
        if transferred > 0 {
            self.log.log(&LineKind::MigrationCompleted {
                transferred_bytes: bytes(transferred),
                vfio_bytes: None,
            });
        }
        self.log.log(&LineKind::StatusCompleted);
        self.ended = Some(true);
    }

    fn failed(&mut self, raw: &Value, status: &str) {
        let message = match raw.get("error-desc").and_then(Value::as_str) {
            Some(d) => format!("{status} - {d}"),
            None => status.to_string(),
        };
        self.log.log(&LineKind::StatusError { message });
        self.ended = Some(false);
    }

    fn active(&mut self, raw: &Value, status: &str, avglstat: i64) -> PollAction {
        let mem = int(raw, &["ram", "transferred"]);
        if mem == self.last_mem {
            return PollAction::None;
        }
        let rem = int(raw, &["ram", "remaining"]);
        let page = int(raw, &["ram", "page-size"]);
        let speed = int(raw, &["ram", "pages-per-second"]) * page;
        let dirty = int(raw, &["ram", "dirty-pages-rate"]) * page;
        if avglstat > 0 && rem < avglstat {
            self.usleep = Duration::from_millis(100);
        }
        if self.usleep > Duration::from_millis(100) || self.i.is_multiple_of(10) {
            self.log_progress(raw, status, mem, speed, dirty);
        }
        if self.lastrem.is_some_and(|l| rem > l) || rem == 0 {
            self.downtimecounter += 1;
        }
        self.lastrem = Some(rem);
        if self.downtimecounter > 5 {
            self.downtimecounter = 0;
            return self.increase_downtime();
        }
        PollAction::None
    }

    fn log_progress(&self, raw: &Value, status: &str, mem: i64, speed: i64, dirty: i64) {
        self.log.log(&LineKind::MigrationActive {
            status: status.into(),
            transferred_bytes: bytes(mem),
            total_bytes: bytes(int(raw, &["ram", "total"])),
            speed_bytes_s: bytes(speed),
            vfio_bytes: None,
            dirty_rate_bytes_s: (dirty > speed).then_some(bytes(dirty)),
        });
        let (xb, xp) = (
            int(raw, &["xbzrle-cache", "bytes"]),
            int(raw, &["xbzrle-cache", "pages"]),
        );
        if xb > 0 || xp > 0 {
            let miss = raw
                .pointer("/xbzrle-cache/cache-miss-rate")
                .and_then(Value::as_f64)
                .filter(|m| *m > 0.0);
            let overflow = int(raw, &["xbzrle-cache", "overflow"]);
            self.log.log(&LineKind::Xbzrle {
                pages: bytes(xp),
                bytes: bytes(xb),
                cache_miss_pct: miss.map(|m| m * 100.0),
                overflow: (overflow > 0).then_some(bytes(overflow)),
            });
        }
    }

    fn increase_downtime(&mut self) -> PollAction {
        if self.downtime_ms >= DOWNTIME_MAX_MS {
            return PollAction::None;
        }
        self.downtime_ms = (self.downtime_ms * 2.0).min(DOWNTIME_MAX_MS);
        self.log.log(&LineKind::DowntimeIncreased {
            ms: self.downtime_ms,
        });
        PollAction::SetDowntime(self.downtime_ms as u64)
    }
}

/// Ends the task log as qemu-server ends it (finished, or aborted with the
/// error) and puts it in the record: its figures as the platform's view
/// (read back by the same parser that reads real Proxmox logs), its lines
/// as the platform's raw data, and the moment of `cont` as the cleanup
/// marker.
pub fn record_task_log(p: &ProxmoxPoll, rec: &mut MigrationRecord) {
    let duration_s = ((now_ns() - p.task_start_ns) / 1_000_000_000).max(0) as u64;
    if rec.status == RepStatus::Completed {
        p.log.log(&LineKind::FinishedSuccessfully { duration_s });
        p.log.plain(&LineKind::TaskOk);
    } else {
        let reason = rec
            .error
            .clone()
            .unwrap_or_else(|| "migration failed".into());
        p.log.err(&LineKind::Aborted {
            duration_s,
            reason: reason.replace('\n', " "),
        });
        p.log.plain(&LineKind::TaskError {
            message: "migration aborted".into(),
        });
    }
    let lines = p.log.lines();
    let o = outcome(&TaskLog::parse(&lines.join("\n")), 0, HOST_CLOCK);
    rec.platform = Some(o.platform);
    rec.platform_raw = Some(json!({
        "flow": "proxmox",
        "task_log": lines,
        "downtime_limit_ms": o.downtime_limit_ms,
        "downtime_increases_ms": o.downtime_increases_ms,
    }));
    // With a disk, the storage record already marked the same `cont`.
    let marked = rec.marker(MarkerKind::PlatformCleanupDone).is_some();
    if let Some(t) = p.cont_ns.filter(|_| !marked) {
        rec.markers.push(Marker {
            kind: MarkerKind::PlatformCleanupDone,
            pass: None,
            t_ns: t,
            clock: HOST_CLOCK.into(),
            uncertainty_ns: 0,
            source: MarkerSource::Harness,
        });
        rec.markers.sort_by_key(|m| (m.t_ns, m.kind));
    }
}

/// qemu-server's XBZRLE cache: 10 % of RAM, rounded up to a power of two
/// (`round_powerof2`: `2 << int(log(x - 1) / log(2))`).
pub fn xbzrle_cache_bytes(memory_mib: u64) -> u64 {
    (memory_mib * 1_048_576 / 10).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn active(transferred: i64, remaining: i64) -> Value {
        json!({"status": "active", "ram": {"transferred": transferred, "remaining": remaining,
               "total": 268_435_456, "page-size": 4096, "pages-per-second": 25_000}})
    }

    #[test]
    fn polls_log_progress_and_double_the_limit_after_six_stalls() {
        let log = TaskLogWriter::default();
        let mut p = ProxmoxPoll::new(log.clone(), 100.0);
        let s = Duration::from_secs;
        assert!(!p.due(Duration::from_millis(999)) && p.due(s(1)));
        assert_eq!(p.observe(&active(1 << 20, 1000), s(1)), PollAction::None);
        let mut actions = Vec::new();
        for k in 2..=8 {
            actions.push(p.observe(&active(k << 20, 1000 + k), s(k as u64)));
        }
        // Polls 2..=7 each see `remaining` grow: the sixth doubles the limit.
        assert_eq!(actions[5], PollAction::SetDowntime(200));
        assert_eq!(
            actions.iter().filter(|a| **a != PollAction::None).count(),
            1
        );
        let lines = log.lines();
        assert!(
            lines[0].contains(
                "migration active, transferred 1.0 MiB of 256.0 MiB VM-state, 97.7 MiB/s"
            ),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with("auto-increased downtime to continue migration: 200 ms")),
            "{lines:?}"
        );
        // Each written line reads back as the kind it was written from.
        let parsed = measure::platform::proxmox::tasklog::TaskLog::parse(&lines.join("\n"));
        assert!(
            parsed
                .lines
                .iter()
                .all(|l| !matches!(l.kind, LineKind::Other(_))),
            "{parsed:?}"
        );
    }

    #[test]
    fn completion_ends_the_loop_with_the_lines_qemu_server_writes() {
        let log = TaskLogWriter::default();
        let mut p = ProxmoxPoll::new(log.clone(), 100.0);
        p.start_s -= 2;
        let done = json!({"status": "completed", "downtime": 87, "ram": {"transferred": 150_000_000, "total": 268_435_456}});
        p.observe(&done, Duration::from_secs(2));
        assert_eq!(p.ended, Some(true));
        let lines = log.lines();
        assert!(lines[0].ends_with("- downtime 87 ms"), "{lines:?}");
        assert!(
            lines[1].ends_with("migration completed, transferred 143.1 MiB VM-state"),
            "{lines:?}"
        );
        assert!(
            lines[2].ends_with("migration status: completed"),
            "{lines:?}"
        );
        assert!(!p.due(Duration::from_secs(9)));
    }

    #[test]
    fn the_xbzrle_cache_is_a_tenth_of_ram_rounded_up_to_a_power_of_two() {
        assert_eq!(xbzrle_cache_bytes(256), 32 << 20); // 25.6 MiB -> 32
        assert_eq!(xbzrle_cache_bytes(4096), 512 << 20); // 409.6 MiB -> 512
        assert_eq!(xbzrle_cache_bytes(1536), 256 << 20); // 153.6 MiB -> 256
    }
}
