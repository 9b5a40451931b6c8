//! What the real-lab tests share: the lab's prerequisites, bundle files,
//! and the checks that a run left nothing behind.
#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "tests: a panic with its message is the failure report; each test binary uses a part"
)]

use harness::run::{Job, RunControl};
use harness::scenario::Acceleration;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Lab tests boot VMs; on two cores they run one at a time.
pub static LAB: Mutex<()> = Mutex::new(());

pub fn require_lab() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab tests need root (namespaces, taps): run them as root"
    );
    let checks = harness::backend::local::doctor::run_checks();
    let missing: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok && !c.optional)
        .map(|c| format!("{}: {}", c.what, c.detail))
        .collect();
    assert!(
        missing.is_empty(),
        "this machine cannot run the lab:\n{}",
        missing.join("\n")
    );
}

/// A JSON file of a bundle, parsed.
pub fn json_file(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// When repetition `rep`'s timeline marks `label` (host ns).
pub fn marker_ns(bundle: &Path, rep: u32, label: &str) -> i64 {
    let tl = json_file(&bundle.join(format!("timeline/rep-{rep:03}.json")));
    tl["markers"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["label"] == label))
        .and_then(|m| m["ns"].as_i64())
        .unwrap_or_else(|| panic!("rep {rep}'s timeline has no {label} marker: {tl}"))
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lmig-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Processes whose command line names this run's id: must be none after a run.
pub fn processes_of_run(id: &str) -> Vec<String> {
    let marker = format!("lmig-{id}-");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(&marker)
                .then(|| format!("{}: {cmd}", e.file_name().to_string_lossy()))
        })
        .collect()
}

pub fn assert_lab_gone(bundle: &Path) {
    let manifest: serde_json::Value = json_file(&bundle.join("manifest.json"));
    let id = manifest["run_id"].as_str().unwrap().to_string();
    let left: Vec<String> = harness::backend::local::lab::netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("lmig-{id}-")))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let procs = processes_of_run(&id);
    assert!(procs.is_empty(), "processes left behind: {procs:?}");
    assert!(
        !Path::new("/run/lmig").join(&id).exists(),
        "state folder left behind"
    );
}

/// Runs `text` on the backend it names, as `harness run` would, and
/// returns the agent's token with the outcome (to look for it in the
/// bundle).
pub fn run_scenario_with_token(text: &str, tag: &str) -> (harness::run::RunOutcome, String) {
    use harness::backend::Backend;
    let dir = temp_dir(tag);
    let file = dir.join(format!("{tag}.toml"));
    std::fs::write(&file, text).unwrap();
    let mut scenario = harness::scenario::Scenario::load(&file).unwrap();
    scenario.acceleration = Acceleration::Tcg;
    let mut backend = harness::backend::open(&scenario, None, Vec::new()).unwrap();
    let token = backend.endpoints().agent.token.clone();
    assert!(token.len() >= 32, "a real token: {token:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt
        .block_on(harness::run::run_on(
            &mut backend,
            &scenario,
            &file.display().to_string(),
            &Job::Migrations,
            &dir.join("results"),
            &RunControl::default(),
        ))
        .expect("the run itself must not fail");
    (out, token)
}

/// Every file of the bundle, as bytes, that contains `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(p);
                }
            }
        }
    }
    found
}

/// A scenario shipped in `scenarios/`, as text.
pub fn shipped_scenario(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `harness run`'s options for scenario `text`, written to a temporary
/// folder named by `tag`, under TCG, the bundle in its `results/`.
pub fn run_options(text: &str, tag: &str) -> harness::run::RunOptions {
    let dir = temp_dir(tag);
    let file = dir.join(format!("{tag}.toml"));
    std::fs::write(&file, text).unwrap();
    harness::run::RunOptions {
        scenario: harness::run::ScenarioSource::File(file),
        job: Job::Migrations,
        out_dir: dir.join("results"),
        agent: None,
        kernel: None,
        accel: Some(Acceleration::Tcg),
        probe_rate: None,
    }
}
