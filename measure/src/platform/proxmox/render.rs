//! [`LineKind::render`]: a kind written back as Proxmox prints it, so that
//! tests and the fuzz target can check that reading what was written gives
//! the same values.

use super::tasklog::{LineKind, MirrorState};
use super::units::{format_short_duration, format_size, format_total_duration};

/// A size as `render_bytes(value, 1)` prints it.
fn size(bytes: u64) -> String {
    format_size(bytes as f64)
}

/// An optional ` (+ V VFIO-state)`.
fn vfio(bytes: Option<u64>) -> String {
    bytes.map_or(String::new(), |v| format!(" (+ {} VFIO-state)", size(v)))
}

impl LineKind {
    /// The message (no timestamp, no `ERROR: `) as Proxmox writes this
    /// kind: the current form, or the old one for the old-only variants
    /// and for a progress line without elapsed time. Numbers print as Perl
    /// prints them (`100`, `0.5`); sizes in `render_bytes`'s `%.1f`.
    pub fn render(&self) -> String {
        self.render_setup()
            .or_else(|| self.render_storage())
            .or_else(|| self.render_ram())
            .or_else(|| self.render_end())
            .unwrap_or_default()
    }

    /// Phase 1 and the target's start.
    fn render_setup(&self) -> Option<String> {
        Some(match self {
            LineKind::StartingMigration { vmid, node, ip } => {
                format!("starting migration of VM {vmid} to node '{node}' ({ip})")
            }
            LineKind::FoundLocalDisk {
                kind,
                volume,
                reason,
            } => match reason {
                Some(r) => format!("found {kind} disk '{volume}' ({r})"),
                None => format!("found {kind} disk '{volume}'"),
            },
            LineKind::LocalDiskError { volume, reason } => {
                format!("can't migrate local disk '{volume}': {reason}")
            }
            LineKind::StartingRemoteVm { vmid, node } => {
                format!("starting VM {vmid} on remote node '{node}'")
            }
            LineKind::VolumeOnTarget { source, target } => {
                format!("volume '{source}' is '{target}' on the target")
            }
            LineKind::StartRemoteTunnel => "start remote tunnel".into(),
            LineKind::StartingStorageMigration => "starting storage migration".into(),
            _ => return None,
        })
    }

    /// The disks' mirrors.
    fn render_storage(&self) -> Option<String> {
        Some(match self {
            LineKind::DriveMigrationStart { drive, target } => {
                format!("{drive}: start migration to {target}")
            }
            LineKind::DriveMirrorStarting {
                device,
                bwlimit_kib_s,
            } => match bwlimit_kib_s {
                Some(l) => {
                    format!("drive mirror is starting for {device} with bandwidth limit: {l} KiB/s")
                }
                None => format!("drive mirror is starting for {device}"),
            },
            LineKind::MirrorProgress { .. } => self.render_progress(),
            LineKind::AllJobsReady { op } => format!("all '{op}' jobs are ready"),
            LineKind::SwitchingToActiveMode => {
                "switching mirror jobs to actively synced mode".into()
            }
            LineKind::JobSwitchingToActiveMode { job } => {
                format!("{job}: switching to actively synced mode")
            }
            LineKind::JobSwitchedToActiveMode { job } => {
                format!("{job}: successfully switched to actively synced mode")
            }
            LineKind::BlockJobCompleting { job } => format!("{job}: Completing block job..."),
            LineKind::BlockJobCompleted { job } => format!("{job}: Completed successfully."),
            LineKind::BlockJobFinished { job, op } => match op {
                Some(op) => format!("{job}: {op}-job finished"),
                None => format!("{job}: finished"),
            },
            LineKind::BlockJobCancelling { job } => format!("{job}: Cancelling block job"),
            LineKind::BlockJobCancelled { job } => format!("{job}: Done."),
            LineKind::StoppingNbd => "stopping NBD storage migration server on target.".into(),
            _ => return None,
        })
    }

    /// A mirror progress line, in the form its elapsed time says.
    fn render_progress(&self) -> String {
        let LineKind::MirrorProgress {
            job,
            transferred_bytes: t,
            total_bytes: total,
            percent,
            elapsed_s,
            state,
        } = self
        else {
            return String::new();
        };
        let Some(elapsed) = elapsed_s else {
            let (busy, ready) = match state {
                MirrorState::NotReady => (1, 0),
                MirrorState::Ready => (0, 1),
                MirrorState::ReadyButBusy => (1, 1),
            };
            let remaining = total.saturating_sub(*t);
            return format!(
                "{job}: transferred: {t} bytes remaining: {remaining} bytes total: {total} bytes progression: {percent:.2} % busy: {busy} ready: {ready}"
            );
        };
        let suffix = match state {
            MirrorState::NotReady => "",
            MirrorState::Ready => ", ready",
            MirrorState::ReadyButBusy => ", still busy",
        };
        format!(
            "{job}: transferred {} of {} ({percent:.2}%) in {}{suffix}",
            size(*t),
            size(*total),
            format_short_duration(*elapsed)
        )
    }

    /// The RAM migration's setup and progress.
    fn render_ram(&self) -> Option<String> {
        Some(match self {
            LineKind::StartingLiveMigration { uri } => {
                format!("starting online/live migration on {uri}")
            }
            LineKind::SetCapabilities => "set migration capabilities".into(),
            LineKind::SpeedLimit { bytes_per_s } => {
                format!("migration speed limit: {}/s", size(*bytes_per_s))
            }
            LineKind::DowntimeLimit { ms } => format!("migration downtime limit: {ms} ms"),
            LineKind::DowntimeCapped { ms } => {
                format!("capping downtime limit to maximum possible: {ms} ms")
            }
            LineKind::Cachesize { bytes } => format!("migration cachesize: {}", size(*bytes)),
            LineKind::SetParameters => "set migration parameters".into(),
            LineKind::StartMigrateCommand { uri } => format!("start migrate command to {uri}"),
            LineKind::WaitingForTransition { status } => {
                format!("migration in status '{status}' - waiting for transition")
            }
            LineKind::MigrationActive { .. } => self.render_active(),
            LineKind::Xbzrle { .. } | LineKind::XbzrleOld { .. } => self.render_xbzrle(),
            LineKind::DowntimeIncreased { ms } => {
                format!("auto-increased downtime to continue migration: {ms} ms")
            }
            LineKind::OldStatusActive {
                status,
                transferred_bytes,
                remaining_bytes,
                total_bytes,
                expected_downtime_ms,
                status_label,
            } => {
                let label = if *status_label { "status: " } else { "" };
                let expected = expected_downtime_ms
                    .map_or(String::new(), |e| format!(" , expected downtime {e}"));
                format!("migration {label}{status} (transferred {transferred_bytes}, remaining {remaining_bytes}), total {total_bytes}){expected}")
            }
            _ => return None,
        })
    }

    /// `migration active, transferred …`.
    fn render_active(&self) -> String {
        let LineKind::MigrationActive {
            status,
            transferred_bytes,
            total_bytes,
            speed_bytes_s,
            vfio_bytes,
            dirty_rate_bytes_s,
        } = self
        else {
            return String::new();
        };
        let dirty = dirty_rate_bytes_s.map_or(String::new(), |d| {
            format!(", VM dirties lots of memory: {}/s", size(d))
        });
        format!(
            "migration {status}, transferred {} of {} VM-state, {}/s{}{dirty}",
            size(*transferred_bytes),
            size(*total_bytes),
            size(*speed_bytes_s),
            vfio(*vfio_bytes)
        )
    }

    /// Both xbzrle forms.
    fn render_xbzrle(&self) -> String {
        match self {
            LineKind::Xbzrle {
                pages,
                bytes,
                cache_miss_pct,
                overflow,
            } => {
                let miss = cache_miss_pct.map_or(String::new(), |p| format!(", cache-miss {p:.2}%"));
                let over = overflow.map_or(String::new(), |o| format!(", overflow {o}"));
                format!("xbzrle: send updates to {pages} pages in {} encoded memory{miss}{over}", size(*bytes))
            }
            LineKind::XbzrleOld {
                cache_size_bytes,
                bytes,
                pages,
                cache_miss,
                overflow,
            } => format!("migration xbzrle cachesize: {cache_size_bytes} transferred {bytes} pages {pages} cachemiss {cache_miss} overflow {overflow}"),
            _ => String::new(),
        }
    }

    /// From QEMU's `completed` to the task's end.
    fn render_end(&self) -> Option<String> {
        Some(match self {
            LineKind::AverageSpeed {
                bytes_per_s,
                downtime_ms,
            } => format!(
                "average migration speed: {}/s - downtime {downtime_ms} ms",
                size(*bytes_per_s)
            ),
            LineKind::OldMigrationSpeed {
                mb_per_s,
                downtime_ms,
            } => match downtime_ms {
                Some(d) => format!("migration speed: {mb_per_s:.2} MB/s - downtime {d} ms"),
                None => format!("migration speed: {mb_per_s:.2} MB/s"),
            },
            LineKind::MigrationCompleted {
                transferred_bytes,
                vfio_bytes,
            } => format!(
                "migration completed, transferred {} VM-state{}",
                size(*transferred_bytes),
                vfio(*vfio_bytes)
            ),
            LineKind::StatusCompleted => "migration status: completed".into(),
            LineKind::StatusError { message } => format!("migration status error: {message}"),
            LineKind::OnlineMigrateFailure { message } => {
                format!("online migrate failure - {message}")
            }
            LineKind::FinishedSuccessfully { duration_s } => format!(
                "migration finished successfully (duration {})",
                format_total_duration(*duration_s)
            ),
            LineKind::FinishedWithProblems { duration_s } => format!(
                "migration finished with problems (duration {})",
                format_total_duration(*duration_s)
            ),
            LineKind::Aborted { duration_s, reason } => format!(
                "migration aborted (duration {}): {reason}",
                format_total_duration(*duration_s)
            ),
            LineKind::TaskOk => "TASK OK".into(),
            LineKind::TaskError { message } => format!("TASK ERROR: {message}"),
            LineKind::TaskWarnings { count } => format!("TASK WARNINGS: {count}"),
            LineKind::Other(text) => text.clone(),
            _ => return None,
        })
    }
}
