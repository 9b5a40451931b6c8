//! The `harness` binary as a user meets it.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic with its message is the failure report"
)]

use std::process::Command;

fn harness(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_malformed_scenario_is_refused_naming_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("lmig-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nrepetitions = 2\n\n[probe]\nrate_hz = 100\nrte = 5\n",
    )
    .unwrap();
    let out = harness(&[
        "run",
        bad.to_str().unwrap(),
        "--out",
        dir.join("res").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:6:", bad.display())), "{err}");
    assert!(err.contains("unknown field `rte`"), "{err}");
    // Nothing was started, so no bundle either.
    assert!(!dir.join("res").exists());

    std::fs::write(&bad, "[vm]\nmemory_mib = \"lots\"\n").unwrap();
    let out = harness(&["run", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(":2:") && err.contains("invalid type"), "{err}");

    let out = harness(&["run", dir.join("missing.toml").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read scenario") && err.contains("missing.toml"),
        "{err}"
    );
    std::fs::write(
        &bad,
        "name = \"x\"\n[assert]\nchecks = [\"client.max_gap < 300\"]\n",
    )
    .unwrap();
    let out = harness(&["run", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("`assert.checks`") && err.contains("unknown metric `client.max_gap`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A copy of the fixture bundle (a real CI run) in a fresh folder.
fn fixture_copy(tag: &str) -> std::path::PathBuf {
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle-split-gap");
    let dst = std::env::temp_dir().join(format!("lmig-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    let status = Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(status.success());
    dst
}

#[test]
fn report_rederives_the_same_summary_every_time() {
    let b = fixture_copy("report");
    let out = harness(&["report", b.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = std::fs::read(b.join("summary.json")).unwrap();
    let s: serde_json::Value = serde_json::from_slice(&first).unwrap();
    // The split gap of repetition 2: 162 ms largest gap, 243.9 ms outage
    // from before STOP to when replies flowed again (the held reply in
    // between does not end it).
    let r2 = &s["repetitions"][1];
    assert_eq!(r2["client"]["max_gap_ms"].as_f64().unwrap().round(), 162.0);
    assert_eq!(
        r2["client"]["max_outage_ms"].as_f64().unwrap().round(),
        244.0
    );
    assert!(r2["outage"]["stop_and_copy_ms"].as_f64().unwrap() > 60.0);
    assert!(text.contains("outage"), "{text}");
    for _ in 0..2 {
        assert!(harness(&["report", b.to_str().unwrap()]).status.success());
        assert!(
            std::fs::read(b.join("summary.json")).unwrap() == first,
            "summary.json changed"
        );
    }
    for f in [
        "summary.csv",
        "timeline/rep-001.json",
        "timeline/rep-002.json",
        "probe/gaps.jsonl",
    ] {
        assert!(b.join(f).is_file(), "{f} not written");
    }
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn report_reads_the_bundle_of_a_crashed_run() {
    let b = fixture_copy("crashed");
    // A run killed mid-way: the manifest still says running, the probe's
    // files were never written, the summary neither.
    let m = std::fs::read_to_string(b.join("manifest.json")).unwrap();
    std::fs::write(
        b.join("manifest.json"),
        m.replace("\"complete\"", "\"running\""),
    )
    .unwrap();
    std::fs::remove_dir_all(b.join("probe")).unwrap();
    std::fs::remove_file(b.join("summary.json")).unwrap();
    let out = harness(&["report", b.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("no probe records"), "{text}");
    assert!(text.contains("run incomplete"), "{text}");
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["run_status"], "incomplete");
    assert!(s["error"].as_str().unwrap().contains("killed or crashed"));
    assert_eq!(s["completed"], 2, "the migrations recorded still count");
    assert!(
        s["repetitions"][0]["client"]["max_gap_ms"].is_null(),
        "no probe, no client view"
    );
    // Not a bundle at all: a clear error.
    let out = harness(&["report", "/nonexistent-bundle"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a bundle folder"));
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn every_shipped_scenario_parses() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios");
    let mut n = 0;
    for dir in [root.to_string(), format!("{root}/examples")] {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                harness::scenario::Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
    }
    assert!(n >= 8, "{n} scenarios");
}

#[test]
fn a_backend_key_of_another_kind_or_a_missing_one_is_refused_by_name() {
    let parse = |t: &str| harness::scenario::Scenario::parse(t, "s.toml");
    let e = parse("[backend]\nkind = \"local\"\napi_url = \"https://x\"\n").unwrap_err();
    assert!(
        e.to_string().contains("`backend.api_url` is a proxmox key"),
        "{e}"
    );
    let e = parse("[backend]\nkind = \"proxmox\"\napi_url = \"https://x\"\n").unwrap_err();
    assert!(e.to_string().contains("`backend.vmid` is required"), "{e}");
    let e = parse("[backend]\nkind = \"local\"\ntransport = \"unix\"\n").unwrap_err();
    assert!(e.to_string().contains("libvirt key"), "{e}");
    let e = parse("[backend]\nkind = \"libvirt\"\n[migration]\nflow = \"proxmox\"\n").unwrap_err();
    assert!(e.to_string().contains("migration.flow"), "{e}");
}

#[test]
fn proxmox_over_ssh_or_the_api_is_one_way_and_its_keys_are_checked() {
    let parse = |extra: &str| {
        let t = format!("[backend]\nkind = \"proxmox\"\nnodes = [\"a\", \"b\"]\nvmid = 100\nagent = \"198.18.0.2:7000\"\n{extra}");
        harness::scenario::Scenario::parse(&t, "s.toml")
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(parse("ssh_hosts = [\"root@pve1\", \"pve2:2222\"]\nmigration_type = \"insecure\"\nmigration_network = \"10.0.0.0/24\"\n"), Ok(()));
    assert_eq!(
        parse("ssh_hosts = [\"[fd00::1]:22\", \"fd00::2\"]\n"),
        Ok(())
    );
    let e = parse("api_url = \"https://x\"\ntoken_env = \"T\"\nmigration_type = \"insecure\"\n")
        .unwrap_err();
    assert!(
        e.contains("`backend.migration_type` needs `backend.ssh_hosts`")
            && e.contains("API token cannot set it"),
        "{e}"
    );
    let e = parse("ssh_hosts = [\"a\", \"b\"]\ntoken_env = \"T\"\n").unwrap_err();
    assert!(e.contains("`backend.token_env` is for the API"), "{e}");
    let e = parse("ssh_hosts = [\"a\"]\n").unwrap_err();
    assert!(e.contains("one entry per node (two), not 1"), "{e}");
    let e = parse("ssh_hosts = [\"a\", \"b:ssh\"]\n").unwrap_err();
    assert!(
        e.contains("\"b:ssh\"") && e.contains("port is not a number"),
        "{e}"
    );
    let e = parse("ssh_hosts = [\"a\", \"-oProxyCommand=x\"]\n").unwrap_err();
    assert!(e.contains("unusable"), "{e}");
    let e = parse("ssh_hosts = [\"a\", \"b\"]\nmigration_type = \"fast\"\n").unwrap_err();
    assert!(e.contains("\"secure\" or \"insecure\""), "{e}");
    let e = parse("ssh_hosts = [\"a\", \"b\"]\nmigration_network = \"10.0.0.0\"\n").unwrap_err();
    assert!(e.contains("not a CIDR"), "{e}");
    let e = parse("").unwrap_err();
    assert!(
        e.contains("`backend.api_url` (or `backend.ssh_hosts`) is required"),
        "{e}"
    );
}

#[test]
fn help_explains_the_tool() {
    let out = harness(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for w in ["run", "lab", "doctor", "guest", "live migration"] {
        assert!(text.contains(w), "--help lacks {w}: {text}");
    }
}
