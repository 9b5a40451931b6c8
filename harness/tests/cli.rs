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
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            harness::scenario::Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn help_explains_the_tool() {
    let out = harness(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for w in ["run", "lab", "doctor", "guest", "live migration"] {
        assert!(text.contains(w), "--help lacks {w}: {text}");
    }
}
