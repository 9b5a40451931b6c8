//! The libvirt backend in the real lab: two real libvirt daemons, one per
//! node namespace, migrating a real TCG guest with `virsh migrate`. Needs
//! root, QEMU, libvirt (`scripts/install-deps.sh`), a guest kernel and the
//! static guest agent; without them it fails, saying what is missing.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic with its message is the failure report"
)]

mod common;
use common::*;
use measure::migration::record::RepStatus;
use std::path::Path;

fn require_libvirt() {
    require_lab();
    for tool in ["libvirtd", "virsh", "unshare"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false)
            || Path::new("/usr/sbin").join(tool).exists();
        assert!(
            found,
            "{tool} is not installed: run scripts/install-deps.sh (libvirt from bookworm-backports)"
        );
    }
}

/// What the daemons were, from the manifest: their PIDs must be gone.
fn daemon_pids(bundle: &Path) -> Vec<u64> {
    let m = json_file(&bundle.join("manifest.json"));
    m["guest"]["libvirt"]["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pid"].as_u64().unwrap())
        .collect()
}

#[test]
fn the_libvirt_lab_scenario_migrates_three_times_between_two_real_daemons() {
    let _guard = LAB.lock().unwrap_or_else(|e| e.into_inner());
    require_libvirt();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/libvirt-lab.toml"),
    )
    .unwrap();
    let (out, token) = run_scenario_with_token(&text, "libvirt");
    let s = &out.summary;
    assert_eq!(s.repetitions.len(), 3);
    let manifest = json_file(&out.bundle.join("manifest.json"));
    assert_eq!(manifest["backend"], "libvirt");
    let daemons = &manifest["guest"]["libvirt"]["daemons"];
    assert_ne!(
        daemons[0]["host_uuid"], daemons[1]["host_uuid"],
        "each daemon has its own host UUID"
    );
    for r in &s.repetitions {
        assert_eq!(r.status, RepStatus::Completed, "{:?}", r.error);
        let qemu = r.qemu.downtime_ms.expect("QEMU's downtime");
        let stop_resume = r.host.stop_to_resume_ms.expect("STOP -> RESUME");
        let outage = r.client.max_outage_ms.expect("the client's outage");
        let p = r.platform.as_ref().expect("libvirt's view");
        assert_eq!(p.platform, "libvirt");
        let libvirt = p.downtime_ms.expect("libvirt's downtime");
        // libvirt's downtime runs to the destination's resume, after
        // QEMU's own stop-and-copy; the client cannot see less than the
        // guest was paused.
        assert!(libvirt >= qemu, "libvirt {libvirt} < QEMU {qemu}");
        assert!(
            outage + 2.0 >= stop_resume,
            "outage {outage} < STOP->RESUME {stop_resume}"
        );
        assert!(p.duration_ms.unwrap() > 0.0 && p.ram_transferred_bytes.unwrap() > 0);
    }
    for rep in 1..=3 {
        let rec = json_file(&out.bundle.join(format!("reps/rep-{rep:03}.json")));
        let raw = &rec["migration"]["platform_raw"];
        for side in ["source_jobinfo", "destination_jobinfo"] {
            for key in [
                "downtime",
                "downtime_net",
                "time_elapsed",
                "setup_time",
                "data_processed",
                "memory_dirty_rate",
                "memory_iteration",
            ] {
                assert!(
                    raw[side][key].is_i64(),
                    "rep {rep} {side} has no {key}: {raw}"
                );
            }
        }
    }
    for f in [
        "libvirt/events-a.txt",
        "libvirt/qemu-events-b.txt",
        "libvirt/domain.xml",
    ] {
        assert!(out.bundle.join(f).exists(), "{f}");
    }
    let leaks = files_containing(&out.bundle, &token);
    assert!(leaks.is_empty(), "the agent's token is in {leaks:?}");
    assert_lab_gone(&out.bundle);
    for pid in daemon_pids(&out.bundle) {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "libvirtd {pid} is still running"
        );
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("/run/lmig/"),
        "a lab folder is still mounted here"
    );
}
