//! `harness import proxmox`, through the binary as a user runs it, on the
//! task-log fixtures of `measure/tests/fixtures/proxmox/`. The expected
//! figures are read off the fixtures' text by hand (sizes are `%.1f` of
//! units of 1024, as the parser documents).
#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic with its message is the failure report"
)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const NO_PROBE: &str = "imported from a Proxmox task log: no client probe ran";
/// 2025-03-14 00:00:00 UTC (`date -u -d 2025-03-14 +%s`).
const MARCH_14_2025: i64 = 1_741_910_400;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../measure/tests/fixtures/proxmox")
        .join(name)
}

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `harness import proxmox LOGS... --out OUT EXTRA...`.
fn import(logs: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["import".to_string(), "proxmox".to_string()];
    args.extend(logs.iter().map(|p| p.display().to_string()));
    args.extend(["--out".to_string(), out.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    harness(&args)
}

/// The one bundle folder under `out`.
fn only_bundle(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// ok-local-disks.log then aborted.log, imported into a fresh folder:
/// the bundle and what the command printed.
fn two_fixtures() -> (tempfile::TempDir, PathBuf, String) {
    let out = tempfile::tempdir().unwrap();
    let o = import(
        &[&fixture("ok-local-disks.log"), &fixture("aborted.log")],
        out.path(),
        &[],
    );
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let dir = only_bundle(out.path());
    (out, dir, stdout)
}

#[test]
fn two_logs_make_one_completed_and_one_failed_repetition_with_the_logs_figures() {
    let (_out, dir, _) = two_fixtures();
    let s = json(&dir.join("summary.json"));
    assert_eq!(s["run_status"], "complete");
    assert_eq!(
        (s["completed"].as_u64(), s["failed"].as_u64()),
        (Some(1), Some(1))
    );
    let reps = s["repetitions"].as_array().unwrap();
    assert_eq!(reps.len(), 2);

    let ok = &reps[0];
    assert_eq!(ok["status"], "completed");
    assert_eq!(ok["direction"], "?->pve2");
    assert_eq!(ok["error"], Value::Null);
    let p = &ok["platform"];
    assert_eq!(p["platform"], "proxmox");
    // "average migration speed: 455.1 MiB/s - downtime 87 ms"
    assert_eq!(p["downtime_ms"].as_f64(), Some(87.0));
    // "migration finished successfully (duration 00:00:33)"
    assert_eq!(p["duration_ms"].as_f64(), Some(33_000.0));
    // "migration completed, transferred 7.6 GiB VM-state"
    let ram = (7.6 * GIB).round() as i64;
    assert_eq!(ram, 8_160_437_862);
    assert_eq!(p["ram_transferred_bytes"].as_i64(), Some(ram));
    // The mirrors' last lines: "transferred 8.0 GiB of 8.0 GiB" (scsi0)
    // and "transferred 2.0 GiB of 2.0 GiB" (scsi1).
    let disk = ((8.0 + 2.0) * GIB) as i64;
    assert_eq!(p["disk_transferred_bytes"].as_i64(), Some(disk));
    // The log's downtime and RAM are QEMU's, relayed.
    assert_eq!(ok["qemu"]["downtime_ms"].as_f64(), Some(87.0));
    assert_eq!(ok["qemu"]["transferred_bytes"].as_i64(), Some(ram));
    assert!(ok["qemu"]["downtime_note"]
        .as_str()
        .unwrap()
        .contains("task log"));
    // First to last stamped second: 10:15:02 to the end of 10:15:35.
    assert_eq!(ok["wall_time_ms"].as_f64(), Some(34_000.0));

    let failed = &reps[1];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["direction"], "?->pve3");
    assert_eq!(
        failed["error"],
        "Problem found while scanning volumes - can't migrate VM - check log (can't migrate local disk 'local-zfs:vm-101-disk-0': can't live migrate attached local disks without with-local-disks option)"
    );
    // "migration aborted (duration 00:00:01)"; nothing reached QEMU.
    assert_eq!(failed["platform"]["duration_ms"].as_f64(), Some(1000.0));
    assert_eq!(failed["platform"]["downtime_ms"], Value::Null);
    assert_eq!(failed["qemu"]["downtime_ms"], Value::Null);
    assert!(failed["not_measured"]["qemu"].is_string());
}

#[test]
fn the_clients_view_is_null_and_says_why() {
    let (_out, dir, stdout) = two_fixtures();
    let s = json(&dir.join("summary.json"));
    for r in s["repetitions"].as_array().unwrap() {
        let client = r["client"].as_object().unwrap();
        assert!(!client.is_empty());
        assert!(client.values().all(Value::is_null), "{client:?}");
        assert_eq!(r["not_measured"]["client"], NO_PROBE);
        assert_eq!(r["outage"], Value::Null);
    }
    assert_eq!(s["probe_overall"], Value::Null);
    assert!(!dir.join("probe").exists());
    assert!(stdout.contains("client's view is not measured"), "{stdout}");
}

#[test]
fn the_bundle_holds_records_manifest_and_the_logs_lines() {
    let (_out, dir, stdout) = two_fixtures();
    for f in [
        "manifest.json",
        "scenario.toml",
        "alignment.json",
        "reps/rep-001.json",
        "reps/rep-002.json",
        "summary.json",
        "summary.csv",
        "timeline/rep-001.json",
        "timeline/rep-002.json",
        "report.html",
        "SHA256SUMS",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let m = json(&dir.join("manifest.json"));
    assert_eq!(m["backend"], "proxmox-import");
    assert_eq!(m["status"], "complete");
    assert_eq!(m["tool_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m["import"]["utc_offset"], "+00:00");
    assert!(m["import"]["times"]
        .as_str()
        .unwrap()
        .contains("local time"));
    assert_eq!(m["import"]["files"][0]["name"], "ok-local-disks.log");
    assert_eq!(m["import"]["files"][1]["name"], "aborted.log");
    // Paths are cut to names: a home folder must not end up in a bundle.
    let command: Vec<&str> = m["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&command[..3], ["harness", "import", "proxmox"]);
    assert!(command.iter().all(|a| !a.contains('/')), "{command:?}");
    let all = std::fs::read_to_string(dir.join("reps/rep-001.json")).unwrap()
        + &std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert!(!all.contains(fixture("").to_str().unwrap()));

    let rep = json(&dir.join("reps/rep-001.json"));
    let mig = &rep["migration"];
    let markers = mig["markers"].as_array().unwrap();
    assert!(markers.iter().all(|k| k["clock"] == "proxmox-node"));
    // "2025-03-14 10:15:02 starting migration…", read as UTC: the middle of
    // that second.
    let requested = markers
        .iter()
        .find(|k| k["kind"] == "migration-requested")
        .unwrap();
    let t = (MARCH_14_2025 + 10 * 3600 + 15 * 60 + 2) * 1_000_000_000 + 500_000_000;
    assert_eq!(requested["t_ns"].as_i64(), Some(t));
    let raw = &mig["platform_raw"];
    assert_eq!(raw["file"], "ok-local-disks.log");
    assert_eq!(raw["figures"]["vmid"], 100);
    assert_eq!(raw["figures"]["target_node"], "pve2");
    assert_eq!(raw["figures"]["downtime_limit_ms"].as_f64(), Some(100.0));
    assert_eq!(
        raw["figures"]["downtime_increases_ms"][0].as_f64(),
        Some(200.0)
    );
    assert_eq!(raw["figures"]["exit_status"], "OK");
    let fixture_lines = std::fs::read_to_string(fixture("ok-local-disks.log")).unwrap();
    let lines = raw["lines"].as_array().unwrap();
    assert_eq!(lines.len(), fixture_lines.lines().count());
    assert_eq!(lines[0]["t"], fixture_lines.lines().next().unwrap());
    // What was printed: the times' meaning, the table, the bundle.
    assert!(stdout.contains("node's local time") && stdout.contains("UTC+00:00"));
    assert!(
        stdout.contains("proxmox: downtime 87 ms, migration 33000 ms"),
        "{stdout}"
    );
    assert!(stdout.contains(&dir.display().to_string()));
}

#[test]
fn the_report_shows_the_studys_three_charts() {
    let (_out, dir, _) = two_fixtures();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for id in [
        "plot-study-data",
        "plot-study-downtime",
        "plot-study-duration",
    ] {
        let at = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no figure {id}"));
        let end = at + html[at..].find("</figure>").unwrap();
        assert!(html[at..end].contains("<svg"), "{id} has no plot");
    }
    assert!(html.contains(NO_PROBE));
}

#[test]
fn verify_passes_and_report_gives_the_same_summary() {
    let (_out, dir, _) = two_fixtures();
    let d = dir.to_str().unwrap();
    let v = harness(&["verify", d]);
    assert_eq!(v.status.code(), Some(0), "{:?}", text(&v));
    let before = std::fs::read(dir.join("summary.json")).unwrap();
    let r = harness(&["report", d]);
    assert!(r.status.success(), "{:?}", text(&r));
    assert_eq!(std::fs::read(dir.join("summary.json")).unwrap(), before);
}

#[test]
fn a_file_that_is_no_migration_log_is_refused_by_name_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("vzdump-backup.log");
    std::fs::write(
        &other,
        "INFO: starting new backup job: vzdump 100 --mode snapshot\nINFO: Finished Backup of VM 100 (00:01:02)\nTASK OK\n",
    )
    .unwrap();
    let out = tmp.path().join("results");
    let o = import(&[&fixture("ok-local-disks.log"), &other], &out, &[]);
    let (_, stderr) = text(&o);
    assert!(!o.status.success());
    assert!(stderr.contains(&other.display().to_string()), "{stderr}");
    assert!(stderr.contains("not a migration task log"), "{stderr}");
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());

    let missing = tmp.path().join("gone.log");
    let o = import(&[&missing], &out, &[]);
    let (_, stderr) = text(&o);
    assert!(!o.status.success());
    assert!(
        stderr.contains("cannot read task log") && stderr.contains("gone.log"),
        "{stderr}"
    );

    let bad_json = tmp.path().join("log.json");
    std::fs::write(&bad_json, "{\"data\": 5}").unwrap();
    let o = import(&[&bad_json], &out, &[]);
    let (_, stderr) = text(&o);
    assert!(!o.status.success());
    assert!(
        stderr.contains("log.json") && stderr.contains("\"data\""),
        "{stderr}"
    );
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
}

#[test]
fn the_apis_json_reads_like_text() {
    let out = tempfile::tempdir().unwrap();
    let o = import(
        &[&fixture("api-log.json")],
        out.path(),
        &["--name", "vm 102"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let dir = only_bundle(out.path());
    assert!(dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("vm_102-"));
    let s = json(&dir.join("summary.json"));
    let p = &s["repetitions"][0]["platform"];
    assert_eq!(s["repetitions"][0]["status"], "completed");
    // "downtime 23 ms", "(duration 00:00:10)", "transferred 1.0 GiB VM-state".
    assert_eq!(p["downtime_ms"].as_f64(), Some(23.0));
    assert_eq!(p["duration_ms"].as_f64(), Some(10_000.0));
    assert_eq!(p["ram_transferred_bytes"].as_i64(), Some(GIB as i64));
    assert_eq!(p["disk_transferred_bytes"], Value::Null);
    let m = json(&dir.join("manifest.json"));
    assert_eq!(m["import"]["files"][0]["format"], "api-json");
    assert_eq!(s["scenario"], "vm 102");
}

#[test]
fn a_upid_file_name_gives_the_source_node_and_checks_the_offset() {
    let tmp = tempfile::tempdir().unwrap();
    // The task started at 09:15:01 UTC; its first line reads 10:15:02
    // local: the node was on UTC+01:00.
    let start = MARCH_14_2025 + 9 * 3600 + 15 * 60 + 1;
    let name = format!("UPID:pve1:0003A2F1:0151C8A4:{start:08X}:qmigrate:100:root@pam:");
    let log = tmp.path().join(&name);
    std::fs::copy(fixture("ok-local-disks.log"), &log).unwrap();

    let out = tmp.path().join("utc");
    let o = import(&[&log], &out, &[]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains("looks like UTC+01:00") && stdout.contains("--utc-offset +01:00"),
        "{stdout}"
    );
    let s = json(&only_bundle(&out).join("summary.json"));
    assert_eq!(s["repetitions"][0]["direction"], "pve1->pve2");

    let out = tmp.path().join("cet");
    let o = import(&[&log], &out, &["--utc-offset", "+01:00"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(!stdout.contains("looks like"), "{stdout}");
    assert!(stdout.contains("UTC+01:00"), "{stdout}");
    let dir = only_bundle(&out);
    let rep = json(&dir.join("reps/rep-001.json"));
    let first = &rep["migration"]["markers"][0];
    assert_eq!(first["kind"], "migration-requested");
    assert_eq!(
        first["t_ns"].as_i64(),
        Some((start + 1) * 1_000_000_000 + 500_000_000)
    );
    let m = json(&dir.join("manifest.json"));
    assert_eq!(m["import"]["utc_offset"], "+01:00");
    assert_eq!(m["import"]["files"][0]["node"], "pve1");
}

#[test]
fn a_bad_offset_is_refused_with_the_form_to_use() {
    let out = tempfile::tempdir().unwrap();
    let o = import(
        &[&fixture("ok-local-disks.log")],
        out.path(),
        &["--utc-offset", "CET"],
    );
    let (_, stderr) = text(&o);
    assert!(!o.status.success());
    assert!(stderr.contains("+HH:MM"), "{stderr}");
    let o = import(
        &[&fixture("ok-local-disks.log")],
        out.path(),
        &["--utc-offset", "-05:00"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
}
