//! A guest with a disk in the real lab, migrated with its disk the way
//! Proxmox moves `--with-local-disks` (NBD export on the paused
//! destination, `blockdev-mirror` from the source, write-blocking, RAM,
//! the mirror completed, NBD stopped, `cont`), while the agent writes
//! stamped blocks; and the shared-storage baseline. After every migration
//! the agent checks its blocks and the host reads the image the VM now
//! runs on. Needs what the lab needs.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic with its message is the failure report"
)]

mod common;
use common::*;
use measure::migration::marker::MarkerKind;
use measure::migration::record::{RepRecord, RepStatus};
use std::path::Path;

fn rep_record(bundle: &Path, n: u32) -> RepRecord {
    serde_json::from_value(json_file(&bundle.join(format!("reps/rep-{n:03}.json")))).unwrap()
}

/// Bytes the agent wrote between its reports before and after the migration.
fn written_during(rec: &RepRecord) -> u64 {
    let g = rec.guest.as_ref().unwrap();
    let bytes = |r: &Option<wire::control::AgentReport>| {
        r.as_ref().unwrap().workloads["disk"].bytes_written.unwrap()
    };
    bytes(&g.after) - bytes(&g.before)
}

/// Every repetition completed with its disk intact by both checks.
fn disk_intact_after_each(out: &harness::run::RunOutcome, reps: usize) {
    assert_eq!(out.summary.repetitions.len(), reps);
    for r in &out.summary.repetitions {
        assert_eq!(r.status, RepStatus::Completed, "{:?}", r.error);
        assert_eq!(r.guest.corrupted_blocks, Some(0), "rep {}", r.repetition);
        let rec = rep_record(&out.bundle, r.repetition);
        let host = rec.guest.as_ref().unwrap().disk_host_check.clone().unwrap();
        assert!(
            host.agrees && host.bad_blocks == 0 && host.blocks_checked == 32 * 256,
            "the host's read of {} disagrees: {host:?}",
            host.image
        );
        assert_eq!(host.node, rec.migration.destination);
        assert!(
            written_during(&rec) > 0,
            "the guest wrote during the migration"
        );
    }
}

#[test]
fn a_local_disk_is_mirrored_while_the_guest_writes_and_arrives_intact() {
    let _guard = LAB.lock().unwrap_or_else(|e| e.into_inner());
    require_lab();
    let (out, _) = run_scenario_with_token(&shipped_scenario("local-disk.toml"), "local-disk");
    disk_intact_after_each(&out, 3);
    for r in &out.summary.repetitions {
        let rec = rep_record(&out.bundle, r.repetition);
        let s = r.storage.as_ref().unwrap();
        let disk = s.disk_bytes.unwrap();
        assert_eq!(disk, 256 * 1048576);
        let mirrored = s.bytes_mirrored.unwrap();
        assert!(mirrored >= disk, "mirrored {mirrored} < disk {disk}");
        assert!(mirrored >= written_during(&rec));
        assert!(s.time_to_ready_ms.unwrap() > 0.0 && s.mirror_throughput_mib_s.unwrap() > 0.0);
        // The order qemu-server keeps, on one host clock.
        let m = &rec.migration;
        let t = |k| m.marker_ns(k).unwrap_or_else(|| panic!("no {k:?} marker"));
        let order = [
            MarkerKind::MirrorStarted,
            MarkerKind::MirrorReady,
            MarkerKind::MirrorActivelySynced,
            MarkerKind::MigrationRequested,
            MarkerKind::SourceStopped,
            MarkerKind::RamCompleted,
            MarkerKind::MirrorCompleted,
            MarkerKind::PlatformCleanupDone,
            MarkerKind::DestinationResumed,
        ];
        for w in order.windows(2) {
            assert!(t(w[0]) <= t(w[1]), "{:?} after {:?}", w[0], w[1]);
        }
        // The guest stays paused through the mirror's completion and the
        // NBD stop: the client sees at least that.
        let tail = s.ram_completed_to_resume_ms.unwrap();
        assert!(tail > 0.0);
        assert!(r.client.max_outage_ms.unwrap() + 2.0 >= r.host.stop_to_resume_ms.unwrap());
    }
    let html = std::fs::read_to_string(out.bundle.join("report.html")).unwrap();
    assert!(
        html.contains("mirror-ready") || html.contains("mirror ready"),
        "the timeline shows the mirror"
    );
    assert_lab_gone(&out.bundle);
}

#[test]
fn qcow2_on_ide_proxmox_style_and_shared_storage_baseline() {
    let _guard = LAB.lock().unwrap_or_else(|e| e.into_inner());
    require_lab();
    let base = shipped_scenario("local-disk.toml").replace("repetitions = 3", "repetitions = 2");
    let text = base
        .replace("format = \"raw\"", "format = \"qcow2\"")
        .replace("bus = \"scsi\"", "bus = \"ide\"")
        .replace("[migration]\n", "[migration]\nflow = \"proxmox\"\n");
    let (out, _) = run_scenario_with_token(&text, "disk-pve");
    disk_intact_after_each(&out, 2);
    for r in &out.summary.repetitions {
        let p = r.platform.as_ref().unwrap();
        let s = r.storage.as_ref().unwrap();
        // The task log tells the mirror's copy, and QEMU's downtime up to
        // RAM's completion; not the pause after it (the mirror completed,
        // NBD stopped, `cont`), which the guest spends paused too.
        assert!(p.disk_transferred_bytes.unwrap() > 0, "{p:?}");
        let tail = s.ram_completed_to_resume_ms.unwrap();
        let paused = r.host.stop_to_resume_ms.unwrap();
        let logged = p.downtime_ms.unwrap();
        assert!(
            tail > 0.0 && paused > logged + 0.5 * tail,
            "paused {paused}, logged {logged}, tail {tail}"
        );
        let rec = rep_record(&out.bundle, r.repetition);
        let kinds: Vec<_> = rec.migration.markers.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == MarkerKind::PlatformCleanupDone)
                .count(),
            1,
            "{kinds:?}"
        );
    }
    assert_lab_gone(&out.bundle);

    let shared = base
        .replace("storage = \"local\"", "storage = \"shared\"")
        .replace("bus = \"scsi\"", "bus = \"virtio-blk\"");
    let (out, _) = run_scenario_with_token(&shared, "disk-shared");
    disk_intact_after_each(&out, 2);
    for r in &out.summary.repetitions {
        let s = r.storage.as_ref().unwrap();
        assert_eq!(s.storage.as_deref(), Some("shared"));
        assert_eq!(
            s.bytes_mirrored, None,
            "nothing is copied on shared storage"
        );
    }
    assert_lab_gone(&out.bundle);
}
