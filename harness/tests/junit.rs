//! `--junit FILE`: the verdict as JUnit XML, validated against the schema
//! CI systems read it with (`tests/data/junit.xsd`, by `xmllint`), read
//! back with Python's XML parser to check its test cases and counts, and
//! written by the built binary from a real bundle.
//!
//! Needs `xmllint` (Debian's libxml2-utils) and `python3`, both installed
//! by scripts/install-deps.sh; fails without them.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic with its message is the failure report"
)]

use measure::fleet::{FleetSummary, MemberResult};
use measure::migration::record::RepStatus;
use measure::summary::junit::to_junit;
use measure::summary::verdict::{evaluate, AssertSpec};
use measure::summary::{RepSummary, Summary, SCHEMA};
use serde_json::Value;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "lmig-junit-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/junit.xsd")
}

/// `xmllint --noout --schema junit.xsd FILE`: `Ok` or its complaint.
fn validate(file: &Path) -> Result<(), String> {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema())
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run xmllint ({e}): install libxml2-utils (scripts/install-deps.sh)")
        });
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The document as Python's `xml.etree` reads it: the root's and the
/// suites' attributes, and each test case with its outcome.
fn read_back(file: &Path) -> Value {
    const SCRIPT: &str = r#"
import json, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
def case(c):
    kids = [k for k in c if k.tag in ("failure", "error", "skipped")]
    out = {"name": c.get("name"), "classname": c.get("classname"), "time": c.get("time")}
    if kids:
        k = kids[0]
        out.update(outcome=k.tag, message=k.get("message"), type=k.get("type"), text=k.text or "")
    else:
        out["outcome"] = "passed"
    return out
print(json.dumps({
    "tag": root.tag,
    "attrs": dict(root.attrib),
    "suites": [
        {"attrs": dict(s.attrib),
         "properties": {p.get("name"): p.get("value") for p in s.iter("property")},
         "cases": [case(c) for c in s.findall("testcase")]}
        for s in root.findall("testsuite")
    ],
}))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e})"));
    assert!(
        out.status.success(),
        "python3 could not read {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// There are `n_suites` suites; each one's counts agree with its test
/// cases, and the root's with their sums.
fn assert_counts_match(doc: &Value, n_suites: usize) {
    let suites = doc["suites"].as_array().unwrap();
    assert_eq!(suites.len(), n_suites, "{doc:#}");
    let mut totals = [0usize; 3];
    for s in suites {
        let cases = s["cases"].as_array().unwrap();
        let n = |o: &str| cases.iter().filter(|c| c["outcome"] == o).count();
        assert_eq!(s["attrs"]["tests"], cases.len().to_string().as_str());
        assert_eq!(s["attrs"]["failures"], n("failure").to_string().as_str());
        assert_eq!(s["attrs"]["errors"], n("error").to_string().as_str());
        assert_eq!(s["attrs"]["skipped"], n("skipped").to_string().as_str());
        for (t, k) in totals
            .iter_mut()
            .zip([cases.len(), n("failure"), n("error")])
        {
            *t += k;
        }
        let times: f64 = cases
            .iter()
            .map(|c| c["time"].as_str().unwrap().parse::<f64>().unwrap())
            .sum();
        let suite_time: f64 = s["attrs"]["time"].as_str().unwrap().parse().unwrap();
        assert!(
            (times - suite_time).abs() < 0.002 * cases.len() as f64,
            "{times} vs {suite_time}"
        );
    }
    for (key, total) in ["tests", "failures", "errors"].iter().zip(totals) {
        assert_eq!(doc["attrs"][key], total.to_string().as_str(), "{key}");
    }
}

fn case<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["suites"][0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no test case {name:?} in {doc:#}"))
}

fn harness(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A copy of the fixture bundle (a real CI run: 2 completed migrations,
/// repetition 2's outage 244 ms), with an `[assert]` table of `checks`
/// added if there are any.
fn fixture_with_checks(dir: &Path, checks: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle-split-gap");
    let dst = dir.join("bundle");
    let status = Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(status.success());
    if checks.is_empty() {
        return dst;
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dst.join("scenario.toml"))
        .unwrap();
    let list: Vec<String> = checks.iter().map(|c| format!("{c:?}")).collect();
    writeln!(f, "\n[assert]\nchecks = [{}]", list.join(", ")).unwrap();
    dst
}

#[test]
fn report_writes_junit_that_validates_with_the_failing_check_a_failure() {
    let t = TempDir::new("report");
    let bundle = fixture_with_checks(
        &t.0,
        &[
            "client.max_outage_ms < 230",
            "max(client.max_gap_ms) < 10000",
        ],
    );
    let xml = t.0.join("ci").join("junit.xml");
    std::fs::create_dir_all(xml.parent().unwrap()).unwrap();
    let out = harness(&[
        "report".as_ref(),
        bundle.as_os_str(),
        "--junit".as_ref(),
        xml.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the verdict failed, so report exits 3 as without --junit: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("wrote JUnit XML to"), "{stdout}");
    assert!(!stdout.contains("inside the bundle"), "{stdout}");
    validate(&xml).unwrap();
    let doc = read_back(&xml);
    assert_eq!(doc["tag"], "testsuites");
    assert_counts_match(&doc, 1);
    let suite = &doc["suites"][0];
    assert_eq!(suite["attrs"]["name"], "it-basic");
    assert_eq!(suite["properties"]["verdict"], "fail");
    // run, 2 migrations, the per-repetition check twice, the aggregate once.
    assert_eq!(suite["attrs"]["tests"], "6", "{doc:#}");
    assert_eq!(suite["attrs"]["failures"], "1", "{doc:#}");
    let failed = case(&doc, "rep 2: client.max_outage_ms < 230");
    assert_eq!(failed["outcome"], "failure", "{failed:#}");
    assert_eq!(failed["classname"], "lmig.it-basic.checks");
    assert_eq!(failed["type"], "check failed");
    let m = failed["message"].as_str().unwrap();
    assert!(
        m.starts_with("repetition 2: client.max_outage_ms = 243.")
            && m.ends_with(" fails client.max_outage_ms < 230"),
        "{m}"
    );
    assert!(
        failed["text"]
            .as_str()
            .unwrap()
            .contains("failed in 1 of 2 completed repetitions"),
        "{failed:#}"
    );
    for passed in [
        "run complete",
        "rep 1: migration completed",
        "rep 2: migration completed",
        "rep 1: client.max_outage_ms < 230",
        "max(client.max_gap_ms) < 10000",
    ] {
        assert_eq!(case(&doc, passed)["outcome"], "passed", "{passed}");
    }
    let wall: f64 = case(&doc, "rep 1: migration completed")["time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wall > 0.5, "the repetition's wall time: {wall}");
    // Nothing was added to the bundle.
    assert!(!bundle.join("junit.xml").exists());
    // A file that cannot be written: an error that names it, exit 1.
    let bad = t.0.join("no-such-folder").join("junit.xml");
    let out = harness(&[
        "report".as_ref(),
        bundle.as_os_str(),
        "--junit".as_ref(),
        bad.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("writing JUnit XML to {}", bad.display())),
        "{err}"
    );
}

#[test]
fn report_without_checks_gives_one_case_per_repetition() {
    let t = TempDir::new("nochecks");
    let bundle = fixture_with_checks(&t.0, &[]);
    let xml = t.0.join("junit.xml");
    let out = harness(&[
        "report".as_ref(),
        bundle.as_os_str(),
        "--junit".as_ref(),
        xml.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    validate(&xml).unwrap();
    let doc = read_back(&xml);
    assert_counts_match(&doc, 1);
    assert_eq!(doc["suites"][0]["attrs"]["tests"], "3", "{doc:#}");
    assert_eq!(doc["suites"][0]["attrs"]["failures"], "0", "{doc:#}");
    assert_eq!(
        case(&doc, "rep 2: migration completed")["classname"],
        "lmig.it-basic.migrations"
    );
    // Inside the bundle: written, with a note that verify will see it.
    let inside = bundle.join("junit.xml");
    let out = harness(&[
        "report".as_ref(),
        bundle.as_os_str(),
        "--junit".as_ref(),
        inside.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("inside the bundle"));
    assert_eq!(
        std::fs::read(&inside).unwrap(),
        std::fs::read(&xml).unwrap()
    );
}

fn rep(n: u32, status: RepStatus, outage: Option<f64>, error: Option<&str>) -> RepSummary {
    let mut r = RepSummary::example();
    r.repetition = n;
    r.status = status;
    r.wall_time_ms = 2_000.0 + f64::from(n);
    r.client.max_outage_ms = outage;
    r.error = error.map(str::to_string);
    r
}

/// A summary built here, with what a hostile or broken run can put into
/// the strings: markup, quotes, control characters, a CDATA end.
fn awkward_summary() -> Summary {
    let reps = vec![
        rep(1, RepStatus::Completed, Some(120.0), None),
        rep(
            2,
            RepStatus::Failed,
            None,
            Some("QEMU said <\"no\"> & left\u{0}\u{1b}[31m ]]> \u{FFFE} \n\ttab"),
        ),
        rep(3, RepStatus::Completed, Some(900.0), None),
        rep(4, RepStatus::Interrupted, None, None),
    ];
    let spec = AssertSpec {
        checks: vec![
            "client.max_outage_ms < 500".into(),
            "mean(client.max_outage_ms) < 600".into(),
            "p95(client.max_outage_ms) < 300".into(),
        ],
        all_completed: true,
    };
    Summary {
        schema: SCHEMA.into(),
        scenario: "ci \"nightly\" <&> run.1".into(),
        run_status: "incomplete".into(),
        error: Some("interrupted by Ctrl-C\u{7}".into()),
        acceleration: None,
        completed: 2,
        failed: 1,
        verdict: Some(evaluate(&spec, &reps)),
        repetitions: reps,
        probe_overall: None,
        final_check: None,
        clock: None,
    }
}

#[test]
fn a_summary_with_awkward_strings_validates_and_reads_back() {
    let t = TempDir::new("awkward");
    let xml = t.0.join("junit.xml");
    std::fs::write(&xml, to_junit(&awkward_summary())).unwrap();
    validate(&xml).unwrap();
    let doc = read_back(&xml);
    assert_counts_match(&doc, 1);
    let s = &doc["suites"][0]["attrs"];
    assert_eq!(s["name"], "ci \"nightly\" <&> run.1");
    // run (error), 4 migrations (2 failures), the per-repetition check over
    // 4 repetitions (rep 3 fails, 2 and 4 skipped), 2 aggregates (p95 fails).
    assert_eq!(
        (&s["tests"], &s["failures"], &s["errors"], &s["skipped"]),
        (&"11".into(), &"4".into(), &"1".into(), &"2".into()),
        "{doc:#}"
    );
    let run = case(&doc, "run complete");
    assert_eq!(run["outcome"], "error");
    assert_eq!(run["message"], "interrupted by Ctrl-C\u{FFFD}");
    assert_eq!(run["classname"], "lmig.ci__nightly______run_1.run");
    let failed = case(&doc, "rep 2: migration completed");
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["type"], "migration failed");
    assert_eq!(
        failed["text"],
        "QEMU said <\"no\"> & left\u{FFFD}\u{FFFD}[31m ]]> \u{FFFD} \n\ttab"
    );
    assert_eq!(
        failed["message"],
        "repetition 2 failed: QEMU said <\"no\"> & left\u{FFFD}\u{FFFD}[31m ]]> \u{FFFD} \n\ttab",
        "attribute white space survives as references"
    );
    assert_eq!(
        case(&doc, "rep 4: migration completed")["message"],
        "repetition 4 interrupted: no error recorded"
    );
    assert_eq!(
        case(&doc, "rep 3: client.max_outage_ms < 500")["outcome"],
        "failure"
    );
    assert_eq!(
        case(&doc, "rep 4: client.max_outage_ms < 500")["outcome"],
        "skipped"
    );
    assert_eq!(
        case(&doc, "mean(client.max_outage_ms) < 600")["outcome"],
        "passed"
    );
    let p95 = case(&doc, "p95(client.max_outage_ms) < 300");
    assert_eq!(p95["outcome"], "failure");
    assert!(
        p95["message"].as_str().unwrap().contains("= 900"),
        "{p95:#}"
    );
}

fn member(id: &str, summary: Option<Summary>, error: Option<&str>) -> MemberResult {
    MemberResult {
        id: id.into(),
        vm: id.into(),
        condition: String::new(),
        bundle: format!("vms/{id}"),
        wall_s: None,
        rep_wall_mean_s: None,
        error: error.map(str::to_string),
        summary,
    }
}

#[test]
fn a_fleet_gives_a_suite_per_member_and_a_member_that_never_ran_an_error() {
    let t = TempDir::new("fleet");
    let mut clean = awkward_summary();
    clean.scenario = "evac/web".into();
    clean.run_status = "complete".into();
    clean.error = None;
    clean.verdict = None;
    clean.repetitions = vec![rep(1, RepStatus::Completed, Some(80.0), None)];
    let f = FleetSummary {
        schema: measure::fleet::SCHEMA.into(),
        scenario: "evac".into(),
        mode: "evacuate".into(),
        run_status: "incomplete".into(),
        wall_s: Some(12.0),
        completed: 3,
        failed: 1,
        members: vec![
            member("db", Some(awkward_summary()), None),
            member("web", Some(clean), None),
            member("video", None, Some("the guest <video> did not boot")),
        ],
        failures: Vec::new(),
        rounds: Vec::new(),
    };
    let xml = t.0.join("junit.xml");
    std::fs::write(&xml, measure::fleet::to_junit(&f)).unwrap();
    validate(&xml).unwrap();
    let doc = read_back(&xml);
    assert_counts_match(&doc, 3);
    let suites = doc["suites"].as_array().unwrap();
    let names: Vec<&str> = suites
        .iter()
        .map(|s| s["attrs"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ci \"nightly\" <&> run.1", "evac/web", "evac/video"]
    );
    // The awkward member keeps its own failures; the clean one passes.
    assert_eq!(suites[0]["attrs"]["failures"], "4");
    assert_eq!(
        (
            &suites[1]["attrs"]["tests"],
            &suites[1]["attrs"]["failures"]
        ),
        (&"2".into(), &"0".into())
    );
    let never = &suites[2]["cases"][0];
    assert_eq!(
        (&never["name"], &never["outcome"]),
        (&"run complete".into(), &"error".into())
    );
    assert_eq!(never["message"], "the guest <video> did not boot");
    assert_eq!(never["classname"], "lmig.evac_video.run");
    assert_eq!(doc["attrs"]["tests"], "14");
}

/// The schema is not a rubber stamp: documents a reader would trip on
/// are rejected.
#[test]
fn the_schema_rejects_broken_documents() {
    let t = TempDir::new("broken");
    let good = to_junit(&awkward_summary());
    let first_case =
        "<testcase classname=\"lmig.ci__nightly______run_1.run\" name=\"run complete\"";
    assert!(good.contains(first_case));
    let broken = [
        (
            "no name",
            good.replacen(first_case, "<testcase classname=\"x\"", 1),
        ),
        (
            "count not a number",
            good.replacen("tests=\"11\"", "tests=\"eleven\"", 1),
        ),
        (
            "time with a sign",
            good.replacen("time=\"0.000\"", "time=\"-1\"", 1),
        ),
        (
            "two outcomes",
            good.replacen("<error ", "<skipped/><error ", 1),
        ),
        (
            "outcome outside a test case",
            good.replacen("<properties>", "<failure message=\"x\"/><properties>", 1),
        ),
        ("unescaped markup", good.replacen("&lt;", "<", 1)),
        ("a control character", good.replacen('\u{FFFD}', "\u{1}", 1)),
        (
            "missing failures count",
            good.replacen(
                " failures=\"4\" errors=\"1\" skipped",
                " errors=\"1\" skipped",
                1,
            ),
        ),
    ];
    for (what, doc) in broken {
        assert_ne!(doc, good, "{what}: the edit did not apply");
        let f = t.0.join("broken.xml");
        std::fs::write(&f, doc).unwrap();
        assert!(validate(&f).is_err(), "{what}: xmllint accepted it");
    }
    let f = t.0.join("good.xml");
    std::fs::write(&f, good).unwrap();
    validate(&f).unwrap();
}
