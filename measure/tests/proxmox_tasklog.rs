//! Proxmox's migration task log: every line form read with its values,
//! the fixtures (written by hand from qemu-server's format strings, not
//! copied from real logs) read whole, and the outcome's figures and
//! markers checked against numbers worked out by hand from those lines.
#![allow(clippy::unwrap_used, reason = "tests")]

use measure::platform::proxmox::tasklog::{
    parse_line, parse_message, LineKind, MirrorState, TaskLog,
};
use measure::platform::proxmox::timestamp::LocalTimestamp;
use measure::platform::proxmox::units::{
    format_short_duration, format_size, format_total_duration, parse_duration, parse_size,
};
use measure::platform::proxmox::TaskLogError;
use proptest::prelude::*;

const OK_LOCAL_DISKS: &str = include_str!("fixtures/proxmox/ok-local-disks.log");
const ABORTED: &str = include_str!("fixtures/proxmox/aborted.log");
const LOCKED: &str = include_str!("fixtures/proxmox/locked.log");
const OLD_FORMAT: &str = include_str!("fixtures/proxmox/old-format.log");
const FAILED_RAM: &str = include_str!("fixtures/proxmox/failed-ram.log");
const API_LOG: &str = include_str!("fixtures/proxmox/api-log.json");

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// The kind of a line's message.
fn kind(message: &str) -> LineKind {
    parse_message(message)
}

/// `x.y` of `unit` bytes, as `%.1f` printed it, rounded to a byte.
fn of(x: f64, unit: u64) -> u64 {
    (x * unit as f64).round() as u64
}

// ---- the line's prefix ----

#[test]
fn timestamp_and_error_prefix() {
    let l = parse_line("2025-03-14 10:15:02 ERROR: migration aborted (duration 00:00:01): x");
    assert_eq!(l.number, 1);
    assert_eq!(
        l.timestamp,
        Some(LocalTimestamp {
            year: 2025,
            month: 3,
            day: 14,
            hour: 10,
            min: 15,
            sec: 2
        })
    );
    assert!(l.error_prefix);
    assert_eq!(l.message(), "migration aborted (duration 00:00:01): x");
    assert_eq!(
        l.kind,
        LineKind::Aborted {
            duration_s: 1,
            reason: "x".into()
        }
    );

    let plain = parse_line("mirror-scsi0: Completed successfully.\r");
    assert_eq!(plain.timestamp, None);
    assert!(!plain.error_prefix);
    assert_eq!(plain.text, "mirror-scsi0: Completed successfully.");
    // `ERROR: ` counts only after a timestamp; an invalid date is no timestamp.
    assert!(!parse_line("ERROR: x").error_prefix);
    let bad_date = parse_line("2025-02-30 10:00:00 start remote tunnel");
    assert_eq!(bad_date.timestamp, None);
    assert!(matches!(bad_date.kind, LineKind::Other(_)));
}

#[test]
fn unknown_lines_are_other() {
    assert_eq!(
        kind("ssh tunnel ver 1"),
        LineKind::Other("ssh tunnel ver 1".into())
    );
    assert_eq!(kind(""), LineKind::Other(String::new()));
    // Known beginnings with broken values stay Other too.
    assert!(matches!(
        kind("migration downtime limit: fast ms"),
        LineKind::Other(_)
    ));
    assert!(matches!(
        kind("migration cachesize: 1.5 GB"),
        LineKind::Other(_)
    ));
    assert!(matches!(kind("TASK WARNINGS: many"), LineKind::Other(_)));
}

// ---- one test per line form ----

#[test]
fn starting_migration() {
    assert_eq!(
        kind("starting migration of VM 100 to node 'pve2' (10.10.10.2)"),
        LineKind::StartingMigration {
            vmid: 100,
            node: "pve2".into(),
            ip: "10.10.10.2".into()
        }
    );
    assert_eq!(
        kind("starting migration of VM 9001 to node 'b' (fd00::2)"),
        LineKind::StartingMigration {
            vmid: 9001,
            node: "b".into(),
            ip: "fd00::2".into()
        }
    );
}

#[test]
fn found_local_disk() {
    let cases = [
        (
            "found local disk 'local-lvm:vm-100-disk-0' (attached)",
            "local",
            Some("attached"),
        ),
        (
            "found local disk 'local:100/vm-100-disk-1.qcow2' (unused)",
            "local",
            Some("unused"),
        ),
        (
            "found local, replicated disk 'local-zfs:vm-100-disk-0' (referenced by snapshot(s))",
            "local, replicated",
            Some("referenced by snapshot(s)"),
        ),
        (
            "found local disk 'local-lvm:vm-100-disk-2' (pending change)",
            "local",
            Some("pending change"),
        ),
        (
            "found generated disk 'local-lvm:vm-100-cloudinit' (in current VM config)",
            "generated",
            Some("in current VM config"),
        ),
        ("found local disk 'local-lvm:vm-100-disk-3'", "local", None),
    ];
    for (line, k, reason) in cases {
        let LineKind::FoundLocalDisk {
            kind: got_kind,
            volume,
            reason: got,
        } = kind(line)
        else {
            panic!("{line}");
        };
        assert_eq!(got_kind, k);
        assert!(line.contains(&format!("'{volume}'")));
        assert_eq!(got.as_deref(), reason, "{line}");
    }
}

#[test]
fn local_disk_error() {
    assert_eq!(
        kind("can't migrate local disk 'local-zfs:vm-101-disk-0': can't live migrate attached local disks without with-local-disks option"),
        LineKind::LocalDiskError {
            volume: "local-zfs:vm-101-disk-0".into(),
            reason: "can't live migrate attached local disks without with-local-disks option".into()
        }
    );
}

#[test]
fn starting_remote_vm() {
    assert_eq!(
        kind("starting VM 100 on remote node 'pve2'"),
        LineKind::StartingRemoteVm {
            vmid: 100,
            node: "pve2".into()
        }
    );
}

#[test]
fn volume_on_target() {
    assert_eq!(
        kind("volume 'local-lvm:vm-100-disk-0' is 'fast:vm-100-disk-0' on the target"),
        LineKind::VolumeOnTarget {
            source: "local-lvm:vm-100-disk-0".into(),
            target: "fast:vm-100-disk-0".into()
        }
    );
}

#[test]
fn tunnel_and_storage_migration_start() {
    assert_eq!(kind("start remote tunnel"), LineKind::StartRemoteTunnel);
    assert_eq!(
        kind("starting storage migration"),
        LineKind::StartingStorageMigration
    );
}

#[test]
fn drive_migration_start() {
    assert_eq!(
        kind("scsi0: start migration to nbd:unix:/run/qemu-server/100_nbd.migrate:exportname=drive-scsi0"),
        LineKind::DriveMigrationStart {
            drive: "scsi0".into(),
            target: "nbd:unix:/run/qemu-server/100_nbd.migrate:exportname=drive-scsi0".into()
        }
    );
}

#[test]
fn drive_mirror_starting() {
    assert_eq!(
        kind("drive mirror is starting for drive-scsi0"),
        LineKind::DriveMirrorStarting {
            device: "drive-scsi0".into(),
            bwlimit_kib_s: None
        }
    );
    assert_eq!(
        kind("drive mirror is starting for drive-virtio1 with bandwidth limit: 512000 KiB/s"),
        LineKind::DriveMirrorStarting {
            device: "drive-virtio1".into(),
            bwlimit_kib_s: Some(512_000)
        }
    );
    // Before 6.4: KB/s.
    assert_eq!(
        kind("drive mirror is starting for drive-scsi0 with bandwidth limit: 51200 KB/s"),
        LineKind::DriveMirrorStarting {
            device: "drive-scsi0".into(),
            bwlimit_kib_s: Some(51_200)
        }
    );
}

#[test]
fn mirror_progress() {
    assert_eq!(
        kind("mirror-scsi0: transferred 1.1 GiB of 32.0 GiB (3.44%) in 1s"),
        LineKind::MirrorProgress {
            job: "mirror-scsi0".into(),
            transferred_bytes: of(1.1, GIB),
            total_bytes: 32 * GIB,
            percent: 3.44,
            elapsed_s: Some(1),
            state: MirrorState::NotReady
        }
    );
    assert_eq!(
        kind("drive-scsi0: transferred 32.0 GiB of 32.0 GiB (100.00%) in 7m 49s, ready"),
        LineKind::MirrorProgress {
            job: "drive-scsi0".into(),
            transferred_bytes: 32 * GIB,
            total_bytes: 32 * GIB,
            percent: 100.0,
            elapsed_s: Some(469),
            state: MirrorState::Ready
        }
    );
    let LineKind::MirrorProgress {
        state, elapsed_s, ..
    } = kind(
        "mirror-efidisk0: transferred 528.0 KiB of 528.0 KiB (100.00%) in 2h 5m 3s, still busy",
    )
    else {
        panic!("still busy");
    };
    assert_eq!((state, elapsed_s), (MirrorState::ReadyButBusy, Some(7503)));
}

#[test]
fn mirror_progress_old_form() {
    assert_eq!(
        kind("drive-scsi0: transferred: 805306368 bytes remaining: 1342177280 bytes total: 2147483648 bytes progression: 37.50 % busy: 1 ready: 0 "),
        LineKind::MirrorProgress {
            job: "drive-scsi0".into(),
            transferred_bytes: 805_306_368,
            total_bytes: 2_147_483_648,
            percent: 37.5,
            elapsed_s: None,
            state: MirrorState::NotReady
        }
    );
    let LineKind::MirrorProgress { state, .. } = kind(
        "drive-scsi0: transferred: 2147483648 bytes remaining: 0 bytes total: 2147483648 bytes progression: 100.00 % busy: 0 ready: 1",
    ) else {
        panic!("old ready");
    };
    assert_eq!(state, MirrorState::Ready);
}

#[test]
fn all_jobs_ready() {
    assert_eq!(
        kind("all 'mirror' jobs are ready"),
        LineKind::AllJobsReady {
            op: "mirror".into()
        }
    );
}

#[test]
fn actively_synced_mode() {
    assert_eq!(
        kind("switching mirror jobs to actively synced mode"),
        LineKind::SwitchingToActiveMode
    );
    assert_eq!(
        kind("mirror-scsi0: switching to actively synced mode"),
        LineKind::JobSwitchingToActiveMode {
            job: "mirror-scsi0".into()
        }
    );
    assert_eq!(
        kind("mirror-scsi0: successfully switched to actively synced mode"),
        LineKind::JobSwitchedToActiveMode {
            job: "mirror-scsi0".into()
        }
    );
}

#[test]
fn starting_live_migration() {
    assert_eq!(
        kind("starting online/live migration on unix:/run/qemu-server/100.migrate"),
        LineKind::StartingLiveMigration {
            uri: "unix:/run/qemu-server/100.migrate".into()
        }
    );
    assert_eq!(
        kind("starting online/live migration on tcp:10.10.10.2:60000"),
        LineKind::StartingLiveMigration {
            uri: "tcp:10.10.10.2:60000".into()
        }
    );
}

#[test]
fn set_capabilities_and_parameters() {
    assert_eq!(
        kind("set migration capabilities"),
        LineKind::SetCapabilities
    );
    assert_eq!(kind("set migration_caps"), LineKind::SetCapabilities);
    assert_eq!(kind("set migration parameters"), LineKind::SetParameters);
}

#[test]
fn speed_limit() {
    assert_eq!(
        kind("migration speed limit: 500.0 MiB/s"),
        LineKind::SpeedLimit {
            bytes_per_s: 500 * MIB
        }
    );
    assert_eq!(
        kind("migration speed limit: 8589934592 B/s"),
        LineKind::SpeedLimit {
            bytes_per_s: 8 * GIB
        }
    );
}

#[test]
fn downtime_limit_and_cap() {
    assert_eq!(
        kind("migration downtime limit: 100 ms"),
        LineKind::DowntimeLimit { ms: 100.0 }
    );
    assert_eq!(
        kind("migration downtime limit: 15 ms"),
        LineKind::DowntimeLimit { ms: 15.0 }
    );
    assert_eq!(
        kind("capping downtime limit to maximum possible: 2000000 ms"),
        LineKind::DowntimeCapped { ms: 2_000_000.0 }
    );
}

#[test]
fn cachesize() {
    assert_eq!(
        kind("migration cachesize: 512.0 MiB"),
        LineKind::Cachesize { bytes: 512 * MIB }
    );
    assert_eq!(
        kind("migration cachesize: 268435456 B"),
        LineKind::Cachesize { bytes: 256 * MIB }
    );
}

#[test]
fn start_migrate_command() {
    assert_eq!(
        kind("start migrate command to unix:/run/qemu-server/100.migrate"),
        LineKind::StartMigrateCommand {
            uri: "unix:/run/qemu-server/100.migrate".into()
        }
    );
}

#[test]
fn waiting_for_transition() {
    assert_eq!(
        kind("migration in status 'setup' - waiting for transition"),
        LineKind::WaitingForTransition {
            status: "setup".into()
        }
    );
}

#[test]
fn migration_active() {
    assert_eq!(
        kind("migration active, transferred 351.5 MiB of 4.0 GiB VM-state, 342.7 MiB/s"),
        LineKind::MigrationActive {
            status: "active".into(),
            transferred_bytes: of(351.5, MIB),
            total_bytes: 4 * GIB,
            speed_bytes_s: of(342.7, MIB),
            vfio_bytes: None,
            dirty_rate_bytes_s: None
        }
    );
    assert_eq!(
        kind("migration device, transferred 4.1 GiB of 4.0 GiB VM-state, 1.0 GiB/s (+ 12.5 MiB VFIO-state), VM dirties lots of memory: 1.2 GiB/s"),
        LineKind::MigrationActive {
            status: "device".into(),
            transferred_bytes: of(4.1, GIB),
            total_bytes: 4 * GIB,
            speed_bytes_s: GIB,
            vfio_bytes: Some(of(12.5, MIB)),
            dirty_rate_bytes_s: Some(of(1.2, GIB))
        }
    );
}

#[test]
fn xbzrle() {
    assert_eq!(
        kind("xbzrle: send updates to 2048 pages in 1.2 MiB encoded memory, cache-miss 18.75%, overflow 3"),
        LineKind::Xbzrle {
            pages: 2048,
            bytes: of(1.2, MIB),
            cache_miss_pct: Some(18.75),
            overflow: Some(3)
        }
    );
    assert_eq!(
        kind("xbzrle: send updates to 7 pages in 28.0 KiB encoded memory"),
        LineKind::Xbzrle {
            pages: 7,
            bytes: 28 * 1024,
            cache_miss_pct: None,
            overflow: None
        }
    );
    assert_eq!(
        kind("xbzrle: send updates to 7 pages in 28.0 KiB encoded memory, overflow 1"),
        LineKind::Xbzrle {
            pages: 7,
            bytes: 28 * 1024,
            cache_miss_pct: None,
            overflow: Some(1)
        }
    );
}

#[test]
fn xbzrle_old_form() {
    assert_eq!(
        kind("migration xbzrle cachesize: 268435456 transferred 9830400 pages 3412 cachemiss 15110 overflow 2"),
        LineKind::XbzrleOld {
            cache_size_bytes: 268_435_456,
            bytes: 9_830_400,
            pages: 3412,
            cache_miss: 15_110,
            overflow: 2
        }
    );
}

#[test]
fn downtime_increased() {
    assert_eq!(
        kind("auto-increased downtime to continue migration: 200 ms"),
        LineKind::DowntimeIncreased { ms: 200.0 }
    );
}

#[test]
fn average_speed() {
    assert_eq!(
        kind("average migration speed: 455.1 MiB/s - downtime 87 ms"),
        LineKind::AverageSpeed {
            bytes_per_s: of(455.1, MIB),
            downtime_ms: 87.0
        }
    );
}

#[test]
fn old_migration_speed() {
    assert_eq!(
        kind("migration speed: 113.78 MB/s - downtime 42 ms"),
        LineKind::OldMigrationSpeed {
            mb_per_s: 113.78,
            downtime_ms: Some(42.0)
        }
    );
    assert_eq!(
        kind("migration speed: 64.00 MB/s"),
        LineKind::OldMigrationSpeed {
            mb_per_s: 64.0,
            downtime_ms: None
        }
    );
}

#[test]
fn migration_completed() {
    assert_eq!(
        kind("migration completed, transferred 7.6 GiB VM-state"),
        LineKind::MigrationCompleted {
            transferred_bytes: of(7.6, GIB),
            vfio_bytes: None
        }
    );
    assert_eq!(
        kind("migration completed, transferred 4.2 GiB VM-state (+ 12.5 MiB VFIO-state)"),
        LineKind::MigrationCompleted {
            transferred_bytes: of(4.2, GIB),
            vfio_bytes: Some(of(12.5, MIB))
        }
    );
}

#[test]
fn status_completed_and_error() {
    assert_eq!(
        kind("migration status: completed"),
        LineKind::StatusCompleted
    );
    assert_eq!(
        kind("migration status error: failed - Unable to write to socket: Broken pipe"),
        LineKind::StatusError {
            message: "failed - Unable to write to socket: Broken pipe".into()
        }
    );
    assert_eq!(
        kind("migration status error: cancelled"),
        LineKind::StatusError {
            message: "cancelled".into()
        }
    );
}

#[test]
fn old_status_active() {
    assert_eq!(
        kind("migration status: active (transferred 117902353, remaining 2012770304), total 2165121024)"),
        LineKind::OldStatusActive {
            status: "active".into(),
            transferred_bytes: 117_902_353,
            remaining_bytes: 2_012_770_304,
            total_bytes: 2_165_121_024,
            expected_downtime_ms: None,
            status_label: true
        }
    );
    // April 2021, briefly: no `status:`.
    assert_eq!(
        kind("migration active (transferred 5, remaining 6), total 11)"),
        LineKind::OldStatusActive {
            status: "active".into(),
            transferred_bytes: 5,
            remaining_bytes: 6,
            total_bytes: 11,
            expected_downtime_ms: None,
            status_label: false
        }
    );
    // Early 2013: the expected downtime after.
    assert_eq!(
        kind("migration status: active (transferred 5, remaining 6), total 11) , expected downtime 30"),
        LineKind::OldStatusActive {
            status: "active".into(),
            transferred_bytes: 5,
            remaining_bytes: 6,
            total_bytes: 11,
            expected_downtime_ms: Some(30),
            status_label: true
        }
    );
}

#[test]
fn block_job_completing_completed_finished() {
    let job = || "mirror-scsi0".to_string();
    assert_eq!(
        kind("mirror-scsi0: Completing block job..."),
        LineKind::BlockJobCompleting { job: job() }
    );
    assert_eq!(
        kind("mirror-scsi0: Completing block job_id..."),
        LineKind::BlockJobCompleting { job: job() }
    );
    assert_eq!(
        kind("mirror-scsi0: Completed successfully."),
        LineKind::BlockJobCompleted { job: job() }
    );
    assert_eq!(
        kind("mirror-scsi0: mirror-job finished"),
        LineKind::BlockJobFinished {
            job: job(),
            op: Some("mirror".into())
        }
    );
    assert_eq!(
        kind("drive-scsi0: finished"),
        LineKind::BlockJobFinished {
            job: "drive-scsi0".into(),
            op: None
        }
    );
}

#[test]
fn block_job_cancel() {
    assert_eq!(
        kind("mirror-scsi0: Cancelling block job"),
        LineKind::BlockJobCancelling {
            job: "mirror-scsi0".into()
        }
    );
    assert_eq!(
        kind("mirror-scsi0: Done."),
        LineKind::BlockJobCancelled {
            job: "mirror-scsi0".into()
        }
    );
}

#[test]
fn stopping_nbd() {
    assert_eq!(
        kind("stopping NBD storage migration server on target."),
        LineKind::StoppingNbd
    );
}

#[test]
fn online_migrate_failure() {
    assert_eq!(
        kind("online migrate failure - aborting"),
        LineKind::OnlineMigrateFailure {
            message: "aborting".into()
        }
    );
}

#[test]
fn finished_successfully() {
    assert_eq!(
        kind("migration finished successfully (duration 00:01:01)"),
        LineKind::FinishedSuccessfully { duration_s: 61 }
    );
    assert_eq!(
        kind("migration finished successfully (duration 125:00:09)"),
        LineKind::FinishedSuccessfully {
            duration_s: 450_009
        }
    );
}

#[test]
fn finished_with_problems() {
    assert_eq!(
        kind("migration finished with problems (duration 00:00:07)"),
        LineKind::FinishedWithProblems { duration_s: 7 }
    );
}

#[test]
fn aborted() {
    assert_eq!(
        kind("migration aborted (duration 00:00:00): VM is locked (migrate)"),
        LineKind::Aborted {
            duration_s: 0,
            reason: "VM is locked (migrate)".into()
        }
    );
    assert_eq!(
        kind("migration aborted (duration 00:00:02): storage 'fast' does not exist"),
        LineKind::Aborted {
            duration_s: 2,
            reason: "storage 'fast' does not exist".into()
        }
    );
}

#[test]
fn task_end() {
    assert_eq!(kind("TASK OK"), LineKind::TaskOk);
    assert_eq!(
        kind("TASK ERROR: no such cluster node 'pve9'"),
        LineKind::TaskError {
            message: "no such cluster node 'pve9'".into()
        }
    );
    assert_eq!(
        kind("TASK WARNINGS: 2"),
        LineKind::TaskWarnings { count: 2 }
    );
}

// ---- sizes and durations ----

#[test]
fn sizes_and_durations_by_hand() {
    assert_eq!(parse_size("1.5 GiB"), Some(1_610_612_736));
    assert_eq!(parse_size("0.0 B"), Some(0));
    assert_eq!(parse_size("1.0 TiB"), Some(1 << 40));
    assert_eq!(parse_duration("0s"), Some(0));
    assert_eq!(parse_duration("9s"), Some(9));
    assert_eq!(parse_duration("7m 49s"), Some(469));
    assert_eq!(parse_duration("2h 5m 3s"), Some(7503));
    assert_eq!(parse_duration("00:00:33"), Some(33));
}

// ---- whole logs ----

#[test]
fn fixtures_read_line_by_line() {
    let log = TaskLog::parse(OK_LOCAL_DISKS);
    assert_eq!(log.lines.len(), 67);
    assert!(log.lines.iter().zip(1u64..).all(|(l, n)| l.number == n));
    // Only the block-job code's lines (and TASK OK) have no timestamp.
    let unstamped = log.lines.iter().filter(|l| l.timestamp.is_none()).count();
    assert_eq!(unstamped, 1 + 9 + 1 + 1 + 5 + 1 + 4 + 7 + 1);
    // Every line but `ssh tunnel ver 1` is a known form.
    let other: Vec<&str> = log
        .lines
        .iter()
        .filter(|l| matches!(l.kind, LineKind::Other(_)))
        .map(|l| l.message())
        .collect();
    assert_eq!(other, ["ssh tunnel ver 1"]);
    assert!(log.is_migration_log());

    let old = TaskLog::parse(OLD_FORMAT);
    let old_other: Vec<&str> = old
        .lines
        .iter()
        .filter(|l| matches!(l.kind, LineKind::Other(_)))
        .map(|l| l.message())
        .collect();
    assert_eq!(old_other, ["ssh tunnel ver 1"]);
    for text in [ABORTED, LOCKED, FAILED_RAM] {
        assert!(TaskLog::parse(text).is_migration_log());
    }
}

#[test]
fn api_json_reads_like_text() {
    let log = TaskLog::from_api_json(API_LOG).unwrap();
    assert_eq!(log.lines.len(), 19);
    assert_eq!(log.lines[18].number, 19);
    assert_eq!(log.lines[18].kind, LineKind::TaskOk);
    assert_eq!(
        log.lines[0].kind,
        LineKind::StartingMigration {
            vmid: 102,
            node: "pve2".into(),
            ip: "10.10.10.2".into()
        }
    );
    // The same lines as text read the same (but for the numbers, equal here).
    let v: serde_json::Value = serde_json::from_str(API_LOG).unwrap();
    let text: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["t"].as_str().unwrap())
        .collect();
    assert_eq!(TaskLog::parse(&text.join("\n")), log);
    // A bare array, and entries without "n".
    let bare = TaskLog::from_api_json(r#"[{"t":"TASK OK"},{"n":7,"t":"x"}]"#).unwrap();
    assert_eq!((bare.lines[0].number, bare.lines[1].number), (1, 7));
}

#[test]
fn api_json_errors_say_what_is_wrong() {
    let err = |s: &str| TaskLog::from_api_json(s).unwrap_err();
    assert!(matches!(
        err("2025-03-14 10:00:00 x"),
        TaskLogError::NotJson(_)
    ));
    assert!(err("{\"data\":\"UPID:pve1:…\"}")
        .to_string()
        .contains("\"data\" is a string"));
    assert!(err("{\"errors\":{}}")
        .to_string()
        .contains("without \"data\""));
    assert!(err("42").to_string().contains("a number"));
    let e = err(r#"{"data":[{"n":1,"t":"TASK OK"},{"n":2}]}"#);
    assert_eq!(
        e,
        TaskLogError::BadEntry {
            index: 1,
            what: "has no \"t\" (the line's text)".into()
        }
    );
    assert!(err(r#"[{"n":1,"t":5}]"#)
        .to_string()
        .contains("\"t\" that is a number"));
    assert!(err(r#"[{"n":-1,"t":"x"}]"#)
        .to_string()
        .contains("not a line number"));
    assert!(err(r#"["TASK OK"]"#).to_string().contains("is a string"));
}

// ---- properties ----

/// A block-job id.
fn job_id() -> impl Strategy<Value = String> {
    "(mirror|drive)-(scsi|virtio|sata|ide|efidisk)[0-9]"
}

/// A size as Proxmox prints one, and the bytes it reads as.
fn printed_size() -> impl Strategy<Value = (String, u64)> {
    (0u64..(1u64 << 52)).prop_map(|b| {
        let s = format_size(b as f64);
        let v = parse_size(&s).unwrap();
        (s, v)
    })
}

/// A line written the way Proxmox writes one, from generated values, and
/// the kind it must read as.
fn written_line() -> impl Strategy<Value = (String, LineKind)> {
    prop_oneof![
        (
            1u64..1_000_000,
            "[a-z][a-z0-9-]{0,12}",
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"
        )
            .prop_map(|(vmid, node, ip)| (
                format!("starting migration of VM {vmid} to node '{node}' ({ip})"),
                LineKind::StartingMigration { vmid, node, ip }
            )),
        (
            job_id(),
            printed_size(),
            printed_size(),
            0u32..10_000,
            0u64..1_000_000,
            0u8..3
        )
            .prop_map(|(job, (t, tb), (n, nb), pct, secs, st)| {
                let (suffix, state) = match st {
                    0 => ("", MirrorState::NotReady),
                    1 => (", ready", MirrorState::Ready),
                    _ => (", still busy", MirrorState::ReadyButBusy),
                };
                let percent = format!("{}.{:02}", pct / 100, pct % 100);
                (
                    format!(
                        "{job}: transferred {t} of {n} ({percent}%) in {}{suffix}",
                        format_short_duration(secs)
                    ),
                    LineKind::MirrorProgress {
                        job,
                        transferred_bytes: tb,
                        total_bytes: nb,
                        percent: percent.parse().unwrap(),
                        elapsed_s: Some(secs),
                        state,
                    },
                )
            }),
        (
            "active|device",
            printed_size(),
            printed_size(),
            printed_size(),
            prop::option::of(printed_size()),
            prop::option::of(printed_size())
        )
            .prop_map(|(status, (t, tb), (n, nb), (s, sb), vfio, dirty)| {
                let v = vfio
                    .as_ref()
                    .map_or(String::new(), |(v, _)| format!(" (+ {v} VFIO-state)"));
                let d = dirty.as_ref().map_or(String::new(), |(d, _)| {
                    format!(", VM dirties lots of memory: {d}/s")
                });
                (
                    format!("migration {status}, transferred {t} of {n} VM-state, {s}/s{v}{d}"),
                    LineKind::MigrationActive {
                        status,
                        transferred_bytes: tb,
                        total_bytes: nb,
                        speed_bytes_s: sb,
                        vfio_bytes: vfio.map(|x| x.1),
                        dirty_rate_bytes_s: dirty.map(|x| x.1),
                    },
                )
            }),
        (printed_size(), 0u32..100_000).prop_map(|((s, sb), ms)| (
            format!("average migration speed: {s}/s - downtime {ms} ms"),
            LineKind::AverageSpeed {
                bytes_per_s: sb,
                downtime_ms: f64::from(ms)
            }
        )),
        (printed_size()).prop_map(|(s, sb)| (
            format!("migration completed, transferred {s} VM-state"),
            LineKind::MigrationCompleted {
                transferred_bytes: sb,
                vfio_bytes: None
            }
        )),
        (0u64..10_000_000).prop_map(|d| (
            format!(
                "migration finished successfully (duration {})",
                format_total_duration(d)
            ),
            LineKind::FinishedSuccessfully { duration_s: d }
        )),
        (0u64..10_000_000, "[ -~]{1,60}")
            .prop_map(|(d, r)| {
                let reason = r.trim().to_string();
                (
                    format!(
                        "migration aborted (duration {}): {reason}",
                        format_total_duration(d)
                    ),
                    LineKind::Aborted {
                        duration_s: d,
                        reason,
                    },
                )
            })
            .prop_filter(
                "a reason",
                |(_, k)| !matches!(k, LineKind::Aborted { reason, .. } if reason.is_empty())
            ),
        (0u64..u64::MAX, 0u64..u64::MAX, 0u64..u64::MAX).prop_map(|(t, r, n)| (
            format!("migration status: active (transferred {t}, remaining {r}), total {n})"),
            LineKind::OldStatusActive {
                status: "active".into(),
                transferred_bytes: t,
                remaining_bytes: r,
                total_bytes: n,
                expected_downtime_ms: None,
                status_label: true,
            }
        )),
        (
            1u64..100_000,
            printed_size(),
            prop::option::of(0u32..10_000),
            prop::option::of(1u64..1000)
        )
            .prop_map(|(pages, (b, bb), miss, over)| {
                let m = miss.map_or(String::new(), |p| {
                    format!(", cache-miss {}.{:02}%", p / 100, p % 100)
                });
                let o = over.map_or(String::new(), |o| format!(", overflow {o}"));
                (
                    format!("xbzrle: send updates to {pages} pages in {b} encoded memory{m}{o}"),
                    LineKind::Xbzrle {
                        pages,
                        bytes: bb,
                        cache_miss_pct: miss.map(|p| f64::from(p) / 100.0),
                        overflow: over,
                    },
                )
            }),
        (1u32..2_000_000).prop_map(|ms| (
            format!("auto-increased downtime to continue migration: {ms} ms"),
            LineKind::DowntimeIncreased { ms: f64::from(ms) }
        )),
    ]
}

/// A local timestamp that exists.
fn timestamp() -> impl Strategy<Value = LocalTimestamp> {
    (1970u16..2100, 1u8..=12, 1u8..=28, 0u8..24, 0u8..60, 0u8..60).prop_map(
        |(year, month, day, hour, min, sec)| LocalTimestamp {
            year,
            month,
            day,
            hour,
            min,
            sec,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_line_never_panics(text in any::<String>()) {
        let line = parse_line(&text);
        prop_assert!(text.contains(line.message()));
    }

    #[test]
    fn parse_line_never_panics_near_known_forms(
        head in prop::sample::select(vec![
            "2025-03-14 10:00:00 ", "2025-03-14 10:00:00 ERROR: ", "", "mirror-scsi0: ",
            "migration ", "migration status: ", "TASK ", "xbzrle: send updates to ",
        ]),
        body in "[ -~]{0,80}",
    ) {
        let text = format!("{head}{body}");
        let line = parse_line(&text);
        // What parsed renders to a line that parses to the same kind again.
        if !matches!(line.kind, LineKind::Other(_)) {
            let again = parse_message(&line.kind.render());
            prop_assert_eq!(parse_message(&again.render()), again);
        }
    }

    #[test]
    fn written_lines_read_back((message, expected) in written_line(), stamp in prop::option::of(timestamp()), error in any::<bool>()) {
        let prefix = match (stamp, error) {
            (Some(t), true) => format!("{t} ERROR: "),
            (Some(t), false) => format!("{t} "),
            (None, _) => String::new(),
        };
        let line = parse_line(&format!("{prefix}{message}"));
        prop_assert_eq!(line.timestamp, stamp);
        prop_assert_eq!(line.error_prefix, stamp.is_some() && error);
        prop_assert_eq!(&line.kind, &expected);
        // And the library writes it back as it was written.
        prop_assert_eq!(line.kind.render(), message);
    }

    #[test]
    fn sizes_read_back_within_the_printed_digit(bytes in any::<u64>()) {
        let printed = format_size(bytes as f64);
        let read = parse_size(&printed).unwrap();
        let unit = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
            .iter()
            .position(|u| printed.ends_with(&format!(" {u}")))
            .unwrap();
        // %.1f: 0.05 of the unit, plus the byte rounding.
        let tolerance = 0.05 * 1024f64.powi(unit as i32) + 1.0;
        prop_assert!((read as f64 - bytes as f64).abs() <= tolerance, "{} -> {} -> {}", bytes, printed, read);
    }

    #[test]
    fn durations_read_back(seconds in 0u64..(1u64 << 40)) {
        prop_assert_eq!(parse_duration(&format_short_duration(seconds)), Some(seconds));
        prop_assert_eq!(parse_duration(&format_total_duration(seconds)), Some(seconds));
    }
}

// ---- the outcome ----

mod outcome {
    use super::*;
    use measure::migration::marker::{Marker, MarkerKind, MarkerSource};
    use measure::migration::record::RepStatus;
    use measure::platform::proxmox::outcome::{
        outcome, outcome_checked, MirrorLimit, Outcome, DOWNTIME_SOURCE,
    };

    const S: i64 = 1_000_000_000;
    /// CET, the zone every fixture was written in (March and November).
    const CET: i64 = 3600;

    fn read(text: &str) -> Outcome {
        outcome_checked(&TaskLog::parse(text), CET, "host").unwrap()
    }

    /// The markers as (kind, t_ns, uncertainty_ns), all on `host` from the task log.
    fn marks(o: &Outcome) -> Vec<(MarkerKind, i64, i64)> {
        for m in &o.markers {
            assert_eq!(
                (m.clock.as_str(), m.source, m.pass),
                ("host", MarkerSource::TaskLog, None)
            );
        }
        o.markers
            .iter()
            .map(|m: &Marker| (m.kind, m.t_ns, m.uncertainty_ns))
            .collect()
    }

    #[test]
    fn a_migration_with_local_disks() {
        let o = read(OK_LOCAL_DISKS);
        assert_eq!((o.status, o.error.as_deref()), (RepStatus::Completed, None));
        assert_eq!(o.vmid, Some(100));
        assert_eq!(o.target_node.as_deref(), Some("pve2"));
        assert_eq!(o.target_ip.as_deref(), Some("10.10.10.2"));
        assert_eq!(
            o.local_disks,
            ["local-lvm:vm-100-disk-0", "local-zfs:vm-100-disk-1"]
        );
        assert_eq!(o.exit_status.as_deref(), Some("OK"));

        // The numbers written in the log.
        let p = &o.platform;
        assert_eq!(p.platform, "proxmox");
        assert_eq!(p.downtime_ms, Some(87.0));
        assert_eq!(p.downtime_source.as_deref(), Some(DOWNTIME_SOURCE));
        assert_eq!(p.duration_ms, Some(33_000.0));
        // 7.6 GiB = 8160437862.4 bytes.
        assert_eq!(p.ram_transferred_bytes, Some(8_160_437_862));
        // The last line of each mirror: 8.0 GiB + 2.0 GiB.
        assert_eq!(p.disk_transferred_bytes, Some(10 * GIB as i64));
        // 455.1 MiB/s = 477206937.6 bytes/s.
        assert_eq!(o.average_speed_bytes_s, Some(477_206_938));
        assert_eq!(o.downtime_limit_ms, Some(100.0));
        assert_eq!(o.downtime_increases_ms, [200.0]);
        assert_eq!(o.speed_limit_bytes_s, Some(GIB));
        assert_eq!(
            o.mirror_limits,
            [
                MirrorLimit {
                    device: "drive-scsi0".into(),
                    kib_s: 1_048_576
                },
                MirrorLimit {
                    device: "drive-scsi1".into(),
                    kib_s: 512_000
                },
            ]
        );
        assert_eq!(o.cachesize_bytes, Some(512 * MIB));
        assert_eq!(o.mirror_progress.len(), 9 + 5);
        assert_eq!(o.ram_progress.len(), 8);
        let last_ram = o.ram_progress.last().unwrap();
        assert_eq!(
            (last_ram.transferred_bytes, last_ram.speed_bytes_s),
            (of(7.3, GIB), Some(of(1001.9, MIB)))
        );
        assert_eq!(o.ram_progress[3].dirty_rate_bytes_s, Some(of(1.1, GIB)));

        // 10:15:02 CET is 09:15:02 UTC, epoch 1741943702.
        let t0 = 1_741_943_702 * S;
        let h = S / 2;
        assert_eq!(
            marks(&o),
            [
                // starting migration, 10:15:02.
                (MarkerKind::MigrationRequested, t0 + h, h),
                // The second `all 'mirror' jobs are ready` (after scsi1's
                // ready), unstamped between 10:15:15 and 10:15:20: the span
                // [15 s, 21 s), 18.0 s ± 3.0 s.
                (MarkerKind::MirrorReady, t0 + 16 * S, 3 * S),
                // start migrate command, 10:15:21.
                (MarkerKind::SetupDone, t0 + 19 * S + h, h),
                // migration completed, 10:15:30.
                (MarkerKind::RamCompleted, t0 + 28 * S + h, h),
                // mirror-scsi1: mirror-job finished, between 10:15:30 and
                // 10:15:32: [30 s, 33 s), 31.5 s ± 1.5 s.
                (MarkerKind::MirrorCompleted, t0 + 29 * S + h, 3 * h),
                // migration finished successfully, 10:15:35.
                (MarkerKind::PlatformCleanupDone, t0 + 33 * S + h, h),
            ]
        );
        // No line says when the guest stopped or resumed.
        assert!(o.markers.iter().all(|m| !matches!(
            m.kind,
            MarkerKind::SourceStopped | MarkerKind::DestinationResumed | MarkerKind::Pass
        )));

        // The first progress line sits between 10:15:06 and 10:15:15:
        // [6 s, 16 s), 11.0 s ± 5.0 s.
        let first = &o.mirror_progress[0];
        assert_eq!(
            (first.line, first.job.as_str(), first.transferred_bytes),
            (12, "mirror-scsi0", 0)
        );
        let time = first.time.unwrap();
        assert_eq!((time.t_ns, time.uncertainty_ns), (t0 + 9 * S, 5 * S));
        // A stamped RAM line: its own second.
        let ram0 = o.ram_progress[0].time.unwrap();
        assert_eq!((ram0.t_ns, ram0.uncertainty_ns), (t0 + 20 * S + h, h));
    }

    #[test]
    fn the_utc_offset_moves_every_marker() {
        let log = TaskLog::parse(OK_LOCAL_DISKS);
        let utc = outcome(&log, 0, "host");
        let cet = outcome(&log, CET, "host");
        for (a, b) in utc.markers.iter().zip(&cet.markers) {
            assert_eq!(a.t_ns - b.t_ns, CET * S);
            assert_eq!(a.uncertainty_ns, b.uncertainty_ns);
        }
        assert_eq!(outcome(&log, CET, "node-a").markers[0].clock, "node-a");
    }

    #[test]
    fn an_old_format_log() {
        let o = read(OLD_FORMAT);
        assert_eq!((o.status, o.error.as_deref()), (RepStatus::Completed, None));
        assert_eq!(
            (o.vmid, o.target_node.as_deref()),
            (Some(200), Some("node2"))
        );
        let p = &o.platform;
        assert_eq!(p.downtime_ms, Some(42.0));
        assert_eq!(p.duration_ms, Some(31_000.0));
        // The old log has no `migration completed, transferred` line.
        assert_eq!(p.ram_transferred_bytes, None);
        assert_eq!(p.disk_transferred_bytes, Some(2_147_483_648));
        assert_eq!(o.speed_limit_bytes_s, Some(8 * GIB));
        assert_eq!(o.cachesize_bytes, Some(256 * MIB));
        assert_eq!(o.ram_progress.len(), 5);
        let r = &o.ram_progress[4];
        assert_eq!(
            (
                r.transferred_bytes,
                r.remaining_bytes,
                r.total_bytes,
                r.speed_bytes_s
            ),
            (2_005_368_832, Some(118_681_600), 2_165_121_024, None)
        );
        assert_eq!(o.mirror_progress.len(), 5);
        assert_eq!(o.mirror_progress[0].elapsed_s, None);

        // 2020-11-03 14:20:11 CET is 13:20:11 UTC, epoch 1604409611.
        let t1 = 1_604_409_611 * S;
        let h = S / 2;
        assert_eq!(
            marks(&o),
            [
                (MarkerKind::MigrationRequested, t1 + h, h),
                // The ready line before the RAM migration, unstamped between
                // 14:20:14 and 14:20:18: [14 s, 19 s), 16.5 s ± 2.5 s (the
                // one printed again at completion does not count).
                (MarkerKind::MirrorReady, t1 + 5 * S + h, 5 * h),
                (MarkerKind::SetupDone, t1 + 7 * S + h, h),
                // `migration status: completed`, 14:20:36.
                (MarkerKind::RamCompleted, t1 + 25 * S + h, h),
                // `drive-scsi0: finished` between 14:20:36 and 14:20:38.
                (MarkerKind::MirrorCompleted, t1 + 26 * S + h, 3 * h),
                (MarkerKind::PlatformCleanupDone, t1 + 31 * S + h, h),
            ]
        );
    }

    #[test]
    fn an_aborted_migration_says_why() {
        let o = read(ABORTED);
        assert_eq!(o.status, RepStatus::Failed);
        assert_eq!(
            o.error.as_deref(),
            Some("Problem found while scanning volumes - can't migrate VM - check log (can't migrate local disk 'local-zfs:vm-101-disk-0': can't live migrate attached local disks without with-local-disks option)")
        );
        assert_eq!(o.platform.duration_ms, Some(1000.0));
        assert_eq!(
            (
                o.platform.downtime_ms,
                o.platform.downtime_source.as_deref()
            ),
            (None, None)
        );
        assert_eq!(o.exit_status.as_deref(), Some("migration aborted"));
        // 11:02:10 CET = 10:02:10 UTC = 1741946530.
        assert_eq!(
            marks(&o),
            [(
                MarkerKind::MigrationRequested,
                1_741_946_530 * S + S / 2,
                S / 2
            )]
        );
    }

    #[test]
    fn a_locked_vm() {
        let o = read(LOCKED);
        assert_eq!(
            (o.status, o.error.as_deref()),
            (RepStatus::Failed, Some("VM is locked (migrate)"))
        );
        assert_eq!(o.platform.duration_ms, Some(0.0));
        assert_eq!(o.vmid, None);
        assert!(o.markers.is_empty());
    }

    #[test]
    fn a_ram_migration_that_failed() {
        let o = read(FAILED_RAM);
        assert_eq!(o.status, RepStatus::Failed);
        assert_eq!(
            o.error.as_deref(),
            Some("migration status error: failed - Unable to write to socket: Broken pipe")
        );
        assert_eq!(o.platform.duration_ms, Some(7000.0));
        assert_eq!(o.exit_status.as_deref(), Some("migration problems"));
        // 13:10:00 CET = 12:10:00 UTC = 1741954200.
        let t = 1_741_954_200 * S + S / 2;
        assert_eq!(
            marks(&o),
            [
                (MarkerKind::MigrationRequested, t, S / 2),
                (MarkerKind::SetupDone, t + 3 * S, S / 2),
            ]
        );
    }

    #[test]
    fn the_api_s_json() {
        let o = outcome_checked(&TaskLog::from_api_json(API_LOG).unwrap(), CET, "host").unwrap();
        assert_eq!((o.status, o.error.as_deref()), (RepStatus::Completed, None));
        let p = &o.platform;
        assert_eq!(p.downtime_ms, Some(23.0));
        assert_eq!(p.duration_ms, Some(10_000.0));
        assert_eq!(p.ram_transferred_bytes, Some(GIB as i64));
        assert_eq!(p.disk_transferred_bytes, None);
        // 204.8 MiB/s = 1 GiB over 5 s.
        assert_eq!(o.average_speed_bytes_s, Some(214_748_365));
        assert_eq!(o.ram_progress.len(), 4);
        // 12:00:01 CET = 11:00:01 UTC = 1741950001.
        let t = 1_741_950_001 * S + S / 2;
        assert_eq!(
            marks(&o),
            [
                (MarkerKind::MigrationRequested, t, S / 2),
                (MarkerKind::SetupDone, t + 3 * S, S / 2),
                (MarkerKind::RamCompleted, t + 8 * S, S / 2),
                (MarkerKind::PlatformCleanupDone, t + 10 * S, S / 2),
            ]
        );
    }

    #[test]
    fn a_log_that_stops_short() {
        let head: Vec<&str> = OK_LOCAL_DISKS.lines().take(29).collect();
        // It ends on the second `all 'mirror' jobs are ready`: no stamped
        // line after it bounds it, so there is no mirror-ready marker.
        assert_eq!(head.last(), Some(&"all 'mirror' jobs are ready"));
        let o = read(&head.join("\n"));
        assert_eq!(o.status, RepStatus::Failed);
        assert_eq!(
            o.error.as_deref(),
            Some("the task log ends before the migration finished")
        );
        assert_eq!(o.exit_status, None);
        assert_eq!(o.platform.duration_ms, None);
        assert_eq!(
            o.markers.iter().map(|m| m.kind).collect::<Vec<_>>(),
            [MarkerKind::MigrationRequested]
        );
    }

    #[test]
    fn the_task_s_end_decides_too() {
        let ok = OK_LOCAL_DISKS.replace("TASK OK", "\nTASK WARNINGS: 1");
        let o = read(&ok);
        assert_eq!(
            (o.status, o.exit_status.as_deref()),
            (RepStatus::Completed, Some("WARNINGS: 1"))
        );

        let err = OK_LOCAL_DISKS.replace("TASK OK", "\nTASK ERROR: command 'qm unlock 100' failed");
        let o = read(&err);
        assert_eq!(
            (o.status, o.error.as_deref()),
            (RepStatus::Failed, Some("command 'qm unlock 100' failed"))
        );

        let no_verdict = OK_LOCAL_DISKS.replace(
            "2025-03-14 10:15:35 migration finished successfully (duration 00:00:33)\n",
            "",
        );
        assert_eq!(
            read(&no_verdict).error.as_deref(),
            Some("the task ended without a 'migration finished successfully' line")
        );

        let storage = "2025-03-14 09:00:00 ERROR: migration aborted (duration 00:00:00): storage 'fast' does not exist\n\nTASK ERROR: migration aborted\n";
        assert_eq!(
            read(storage).error.as_deref(),
            Some("storage 'fast' does not exist")
        );
    }

    #[test]
    fn a_task_error_alone_is_a_failure_but_not_a_migration_log() {
        let log = TaskLog::parse("\nTASK ERROR: no such cluster node 'pve9'\n");
        let o = outcome(&log, CET, "host");
        assert_eq!(
            (o.status, o.error.as_deref()),
            (RepStatus::Failed, Some("no such cluster node 'pve9'"))
        );
        let e = outcome_checked(&log, CET, "host").unwrap_err();
        assert_eq!(
            e,
            TaskLogError::NotAMigrationLog {
                first_line: "TASK ERROR: no such cluster node 'pve9'".into()
            }
        );
        assert!(e
            .to_string()
            .starts_with("this is not a migration task log: no 'starting migration of VM' line"));
    }

    #[test]
    fn other_logs_are_refused() {
        // A disk move writes the mirror's lines too, but none of a migration.
        let move_disk = "create full clone of drive scsi0 (local-lvm:vm-100-disk-0)\n\
            drive mirror is starting for drive-scsi0\n\
            mirror-scsi0: transferred 8.0 GiB of 8.0 GiB (100.00%) in 8s, ready\n\
            all 'mirror' jobs are ready\n\
            mirror-scsi0: Completing block job...\n\
            mirror-scsi0: Completed successfully.\n\
            mirror-scsi0: mirror-job finished\n\
            TASK OK\n";
        for text in [move_disk, "", "PING 198.18.0.10 56(84) bytes of data.\n"] {
            let e = outcome_checked(&TaskLog::parse(text), CET, "host").unwrap_err();
            assert!(
                matches!(e, TaskLogError::NotAMigrationLog { .. }),
                "{text:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_log_gives_an_outcome(lines in prop::collection::vec(
            prop_oneof![
                any::<String>(),
                (timestamp(), "[ -~]{0,40}").prop_map(|(t, m)| format!("{t} {m}")),
                written_line().prop_map(|(m, _)| m),
                (timestamp(), written_line()).prop_map(|(t, (m, _))| format!("{t} {m}")),
            ],
            0..40,
        ), offset in -50_000i64..50_000) {
            let log = TaskLog::parse(&lines.join("\n"));
            let o = outcome(&log, offset, "host");
            prop_assert_eq!(o.status == RepStatus::Completed, o.error.is_none());
            prop_assert!(o.markers.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
            prop_assert!(o.markers.iter().all(|m| m.uncertainty_ns >= S / 2));
        }
    }
}
