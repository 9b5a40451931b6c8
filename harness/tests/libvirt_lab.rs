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
    let text = shipped_scenario("libvirt-lab.toml");
    let (out, token) = run_scenario_with_token(&text, "libvirt");
    let s = &out.summary;
    assert_eq!(s.repetitions.len(), 3);
    let manifest = json_file(&out.bundle.join("manifest.json"));
    assert_eq!(manifest["backend"], "libvirt");
    let version = manifest["host"]["qemu_version"].as_str().unwrap();
    assert!(
        version.contains("QEMU") && version.contains("libvirt"),
        "{version}"
    );
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

/// `backend.uris` mode against two real daemons: the lab's, started by a
/// `LibvirtLab` here and then driven by URI, as a real cluster's would be,
/// by a harness run in the lab's client namespace (where the guest's
/// agent is, as on a cluster's LAN).
#[test]
fn a_cluster_named_by_uris_is_migrated_by_a_harness_on_its_lan() {
    use harness::backend::Backend;
    let _guard = LAB.lock().unwrap_or_else(|e| e.into_inner());
    require_libvirt();
    let dir = temp_dir("libvirt-remote");
    let lab_scenario = harness::scenario::Scenario::parse(
        "[backend]\nkind = \"libvirt\"\n[vm]\nmemory_mib = 256\n",
        "lab",
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut lab = harness::backend::libvirt::LibvirtLab::create(&lab_scenario, None).unwrap();
    let live = harness::live::Live::new();
    let prepared = rt.block_on(Backend::prepare(&mut lab, &lab_scenario, &live));
    let result = prepared.map(|_| {
        let ep = lab.endpoints();
        let token = dir.join("agent-token");
        std::fs::write(&token, &ep.agent.token).unwrap();
        let nodes = &lab.cluster.nodes;
        let list = |f: &dyn Fn(&harness::backend::libvirt::NodeDaemon) -> String| {
            nodes.iter().map(|n| format!("{:?}", f(n))).collect::<Vec<_>>().join(", ")
        };
        let text = format!(
            "name = \"libvirt-remote\"\nrepetitions = 2\n[backend]\nkind = \"libvirt\"\nuris = [{}]\npeer_uris = [{}]\nmigrate_uris = [{}]\ndomain = \"{}\"\nagent = \"{}\"\nagent_token_file = \"{}\"\n",
            list(&|n| n.virsh.uri.clone()),
            list(&|n| n.peer_uri.clone()),
            list(&|n| n.migrate_uri.clone().unwrap_or_default()),
            lab.cluster.domain,
            ep.agent.addr,
            token.display()
        );
        let file = dir.join("remote.toml");
        std::fs::write(&file, text).unwrap();
        let ns = harness::backend::local::lab::Lab::client_ns(&lab.lab);
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(env!("CARGO_BIN_EXE_harness"))
            .arg("run")
            .arg("--out")
            .arg(dir.join("results"))
            .arg(&file)
            .output()
            .unwrap();
        (out, ep.agent.token.clone())
    });
    let down = rt.block_on(lab.teardown());
    let (out, agent_token) = result.unwrap();
    down.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let bundle = std::fs::read_dir(dir.join("results"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let sum: measure::summary::Summary =
        serde_json::from_value(json_file(&bundle.join("summary.json"))).unwrap();
    assert_eq!(sum.repetitions.len(), 2);
    for r in &sum.repetitions {
        assert_eq!(r.status, RepStatus::Completed, "{:?}", r.error);
        assert!(r.platform.as_ref().unwrap().downtime_ms.is_some());
        assert!(r.host.stop_to_resume_ms.is_some() && r.client.max_outage_ms.is_some());
    }
    assert_eq!(
        json_file(&bundle.join("manifest.json"))["backend"],
        "libvirt"
    );
    let leaks = files_containing(&bundle, &agent_token);
    assert!(leaks.is_empty(), "the agent's token is in {leaks:?}");
}

#[test]
fn libvirt_copies_a_local_disk_while_the_guest_writes_and_it_arrives_intact() {
    let _guard = LAB.lock().unwrap_or_else(|e| e.into_inner());
    require_libvirt();
    let text = shipped_scenario("libvirt-lab.toml")
        .replace("repetitions = 3", "repetitions = 2")
        .replace(
            "nic = \"virtio-net\"\n",
            "nic = \"virtio-net\"\n\n[vm.disk]\nsize_mib = 128\nbus = \"scsi\"\n",
        )
        + "\n[workload.disk]\nrate_mib_s = 2.0\nregion_mib = 16\npattern = \"random\"\n";
    let (out, _) = run_scenario_with_token(&text, "libvirt-disk");
    assert_eq!(out.summary.repetitions.len(), 2);
    for r in &out.summary.repetitions {
        assert_eq!(r.status, RepStatus::Completed, "{:?}", r.error);
        assert_eq!(r.guest.corrupted_blocks, Some(0));
        assert_eq!(
            r.guest.host_disk_check_agrees,
            Some(true),
            "the host's read of the destination's image"
        );
        let s = r.storage.as_ref().unwrap();
        assert!(s.bytes_mirrored.unwrap() >= 128 * 1048576, "{s:?}");
        assert!(s.time_to_ready_ms.unwrap() > 0.0 && s.ram_completed_to_resume_ms.unwrap() > 0.0);
        let p = r.platform.as_ref().unwrap();
        assert!(
            p.disk_transferred_bytes.unwrap() >= 128 * 1048576,
            "libvirt's disk_processed: {p:?}"
        );
    }
    let _ = daemon_pids(&out.bundle);
    assert_lab_gone(&out.bundle);
}
