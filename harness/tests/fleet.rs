//! Several VMs in one run, in the real lab: a node evacuated at once
//! (three VMs migrating together, each measured apart, their overlap on
//! one clock) and a matrix of VMs × conditions run one VM at a time; and
//! a fleet too large for the machine refused before anything is made;
//! and VMs evacuated together over one shaped migration link sharing it.
//! Needs what the lab needs.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic with its message is the failure report"
)]

mod common;
use common::*;
use harness::run::{RunControl, RunOutcome};
use measure::fleet::FleetSummary;
use measure::migration::record::RepStatus;

fn run_fleet(text: &str, tag: &str) -> Result<RunOutcome, String> {
    let opts = run_options(text, tag);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(harness::fleet::run_any(&opts, &RunControl::default()))
        .map_err(|e| format!("{e:#}"))
}

fn fleet_summary(out: &RunOutcome) -> FleetSummary {
    let f = out
        .fleet
        .clone()
        .expect("a fleet's outcome has its summary");
    let on_disk: FleetSummary =
        serde_json::from_value(json_file(&out.bundle.join("summary.json"))).unwrap();
    assert_eq!(on_disk, f, "summary.json is what the run returned");
    f
}

/// The bundle re-derives to the same bytes, verifies, and left no lab.
fn bundle_is_whole(out: &RunOutcome, members: &[&str]) {
    let before = std::fs::read(out.bundle.join("summary.json")).unwrap();
    harness::fleet::derive::regenerate(&out.bundle).unwrap();
    assert_eq!(
        std::fs::read(out.bundle.join("summary.json")).unwrap(),
        before
    );
    let v = harness::bundle::verify::verify_bundle(&out.bundle).unwrap();
    assert!(v.passed(), "{v}");
    for m in members {
        let dir = out.bundle.join("vms").join(m);
        assert!(dir.join("summary.json").is_file(), "{m} has its own bundle");
        assert!(dir.join("report.html").is_file());
        assert_lab_gone(&dir);
    }
}

#[test]
fn three_vms_evacuated_at_once_overlap_and_are_measured_apart() {
    let _g = LAB.lock().unwrap_or_else(|p| p.into_inner());
    require_lab();
    let out = run_fleet(
        r#"
name = "evac-test"
mode = "evacuate"
repetitions = 2
pause_before_s = 1.0
pause_after_s = 0.8
[probe]
rate_hz = 500
[[vm]]
name = "one"
memory_mib = 256
[[vm]]
name = "two"
memory_mib = 256
[vm.workload.dirty]
working_set_mib = 64
rate_mib_s = 8
[[vm]]
name = "three"
memory_mib = 320
"#,
        "fleet-evac",
    )
    .unwrap();
    let f = fleet_summary(&out);
    assert_eq!(f.run_status, "complete", "{:?}", f.failures);
    assert_eq!((f.completed, f.failed), (6, 0));
    assert_eq!(f.members.len(), 3);
    for m in &f.members {
        let s = m.summary.as_ref().unwrap();
        assert_eq!(s.completed, 2, "{}", m.id);
        for r in &s.repetitions {
            assert_eq!(r.status, RepStatus::Completed);
            // Each VM's own probe saw its own outage.
            assert!(r.client.max_outage_ms.unwrap() > 0.0, "{} {r:?}", m.id);
            assert!(r.host.stop_to_resume_ms.is_some(), "{}", m.id);
        }
    }
    // Each member's guest answered at its own address: three agents.
    let dirty = f.members[1].summary.as_ref().unwrap();
    assert!(dirty.repetitions[0].guest.dirty_rate_mib_s.is_some());
    assert_eq!(f.rounds.len(), 2);
    for r in &f.rounds {
        assert_eq!(r.spans.len(), 3, "round {}", r.repetition);
        let together = r.all_at_once_ms.unwrap();
        assert!(
            together > 0.0,
            "round {}: the three migrations overlapped: {r:?}",
            r.repetition
        );
        // They started together: within a second of each other.
        let starts: Vec<i64> = r.spans.iter().map(|s| s.start_ns.unwrap()).collect();
        let spread = starts.iter().max().unwrap() - starts.iter().min().unwrap();
        assert!(
            spread < 1_000_000_000,
            "round {}: starts {starts:?}",
            r.repetition
        );
        assert!(r.spans.iter().all(|s| s.outage_ns.is_some()));
    }
    let html = std::fs::read_to_string(out.bundle.join("report.html")).unwrap();
    assert!(
        html.contains("id=\"round-1\"") && html.contains("<svg"),
        "the rounds are drawn"
    );
    assert!(html.contains("vms/one/report.html"));
    bundle_is_whole(&out, &["one", "two", "three"]);
}

#[test]
fn vms_evacuated_over_one_shaped_link_share_its_rate() {
    let _g = LAB.lock().unwrap_or_else(|p| p.into_inner());
    require_lab();
    let rate = 200.0;
    let out = run_fleet(
        &format!(
            r#"
name = "evac-wan-test"
mode = "evacuate"
repetitions = 1
pause_before_s = 0.8
pause_after_s = 0.5
[probe]
rate_hz = 200
[link.migration]
rate_mbit = {rate}
delay_ms = 2
[[vm]]
name = "left"
memory_mib = 256
[[vm]]
name = "right"
memory_mib = 256
"#
        ),
        "fleet-evac-wan",
    )
    .unwrap();
    let f = fleet_summary(&out);
    assert_eq!(f.run_status, "complete", "{:?}", f.failures);
    let mut bytes = 0i64;
    for m in &f.members {
        let r = &m.summary.as_ref().unwrap().repetitions[0];
        bytes += r.qemu.transferred_bytes.unwrap();
        let link = r.links.iter().find(|l| l.link == "migration").unwrap();
        assert_eq!(link.rate_mbit, Some(rate), "{}", m.id);
        // One frame over the rate in a 100 ms bin is the line's grain: a
        // 9000-byte frame (the migration link's MTU) is 0.72 Mbit/s of it.
        let peak = link.peak_mbit.unwrap();
        assert!(peak <= rate + 0.75, "{}: a bin carried {peak} Mbit/s", m.id);
    }
    // Both VMs' RAM crossed the one link before the last of them resumed:
    // together they cannot have been faster than its rate (each on a link
    // of its own, they would have taken half as long).
    let round = &f.rounds[0];
    assert!(round.all_at_once_ms.unwrap() > 0.0, "{round:?}");
    let first = round.spans.iter().filter_map(|s| s.start_ns).min().unwrap();
    let last = round
        .spans
        .iter()
        .filter_map(|s| s.resumed_ns)
        .max()
        .unwrap();
    let took_s = (last - first) as f64 / 1e9;
    let floor_s = bytes as f64 * 8.0 / (rate * 1e6);
    println!(
        "two VMs over {rate} Mbit/s: {:.1} MiB in {took_s:.2} s (the link's floor {floor_s:.2} s)",
        bytes as f64 / 1048576.0
    );
    assert!(took_s >= 0.97 * floor_s, "{took_s} s < {floor_s} s");
    let stats = json_file(&out.bundle.join("vms/left/links/migration.json"));
    assert!(
        stats.is_object(),
        "each member's bundle has the link's record"
    );
    bundle_is_whole(&out, &["left", "right"]);
}

#[test]
fn a_matrix_runs_each_vm_under_each_condition_one_at_a_time() {
    let _g = LAB.lock().unwrap_or_else(|p| p.into_inner());
    require_lab();
    let out = run_fleet(
        r#"
name = "matrix-test"
repetitions = 1
pause_before_s = 0.8
pause_after_s = 0.5
[probe]
rate_hz = 500
[[vm]]
name = "small"
memory_mib = 256
[[vm]]
name = "e1000"
memory_mib = 320
nic = "e1000"
[[condition]]
name = "idle"
[[condition]]
name = "dirty"
[condition.workload.dirty]
working_set_mib = 32
rate_mib_s = 4
"#,
        "fleet-matrix",
    )
    .unwrap();
    let f = fleet_summary(&out);
    assert_eq!(f.run_status, "complete", "{:?}", f.failures);
    let ids: Vec<&str> = f.members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        ["small-idle", "e1000-idle", "small-dirty", "e1000-dirty"]
    );
    assert!(f.rounds.is_empty());
    // One VM at a time: each member ended before the next began.
    let rec: measure::fleet::FleetRecord =
        serde_json::from_value(json_file(&out.bundle.join("fleet.json"))).unwrap();
    for w in rec.members.windows(2) {
        assert!(w[0].ended_ns.unwrap() <= w[1].started_ns.unwrap(), "{w:?}");
    }
    for m in &f.members {
        let s = m.summary.as_ref().unwrap();
        assert_eq!(s.completed, 1, "{}", m.id);
        let dirty = s.repetitions[0].guest.dirty_rate_mib_s;
        assert_eq!(
            dirty.is_some(),
            m.condition == "dirty",
            "{} {dirty:?}",
            m.id
        );
        assert!(m.wall_s.unwrap() > 0.0);
    }
    let csv = std::fs::read_to_string(out.bundle.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(
        csv.lines()
            .nth(3)
            .unwrap()
            .starts_with("small-dirty,small,dirty,1,completed"),
        "{csv}"
    );
    bundle_is_whole(&out, &ids);
}

#[test]
fn a_fleet_larger_than_the_memory_is_refused_before_anything_is_made() {
    let text = "name = \"huge\"\nmode = \"evacuate\"\n[[vm]]\nname = \"a\"\nmemory_mib = 4000000\n[[vm]]\nname = \"b\"\nmemory_mib = 4000000\n";
    let e = run_fleet(text, "fleet-huge").expect_err("refused");
    assert!(
        e.contains("do not fit") && e.contains("needs 16001024 MiB"),
        "{e}"
    );
    assert!(e.contains("MiB is available"), "{e}");
    let results = std::env::temp_dir()
        .join(format!("lmig-test-fleet-huge-{}", std::process::id()))
        .join("results");
    assert!(!results.exists(), "no bundle was made");
}
