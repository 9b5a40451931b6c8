//! The Proxmox backend end to end against the stand-in (`pve-standin`):
//! not Proxmox, but an HTTPS server speaking the API subset the backend
//! uses, whose migrations are real lab migrations performed the way
//! qemu-server performs them, with the task log written in Proxmox's
//! formats as they go. The harness runs in the lab's client namespace, as
//! a tester's laptop sits on a cluster's LAN. Needs what the lab needs.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic with its message is the failure report"
)]

mod common;
use common::*;
use measure::migration::record::RepStatus;
use measure::platform::proxmox::units::{parse_duration, parse_size};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The stand-in, ended by its PID (SIGTERM: it removes its lab) when dropped.
struct Standin {
    child: Child,
    ready: serde_json::Value,
}

impl Standin {
    fn start(dir: &Path) -> Standin {
        let log = std::fs::File::create(dir.join("standin.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pve-standin"))
            .arg(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let ready = dir.join("ready.json");
        while !ready.exists() {
            if let Some(st) = child.try_wait().unwrap() {
                panic!(
                    "pve-standin exited ({st}): {}",
                    std::fs::read_to_string(dir.join("standin.log")).unwrap_or_default()
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(180),
                "pve-standin not ready"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Standin {
            child,
            ready: json_file(&ready),
        }
    }

    fn get(&self, key: &str) -> String {
        self.ready[key].as_str().unwrap().to_string()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn scenario(s: &Standin, reps: u32, nodes: [&str; 2], token_file: &str) -> String {
    format!(
        "name = \"proxmox-standin\"\nrepetitions = {reps}\n[probe]\nrate_hz = 1000\n[backend]\nkind = \"proxmox\"\napi_url = \"{}\"\nnodes = [\"{}\", \"{}\"]\nvmid = 100\ntoken_file = \"{token_file}\"\nfingerprint = \"{}\"\nagent = \"{}\"\nagent_token_file = \"{}\"\n",
        s.get("api_url"),
        nodes[0],
        nodes[1],
        s.get("fingerprint"),
        s.get("agent"),
        s.get("agent_token_file"),
    )
}

/// The same VM reached by `qm migrate` over ssh: the stand-in's two real
/// sshd, its client key and its nodes' host keys.
fn ssh_scenario(s: &Standin, reps: u32, known_hosts: &str, network: &str) -> String {
    let hosts = s.ready["ssh_hosts"]
        .as_array()
        .unwrap_or_else(|| panic!("the stand-in has no ssh nodes: {}", s.ready["ssh_error"]));
    format!(
        "name = \"proxmox-ssh-standin\"\nrepetitions = {reps}\n[probe]\nrate_hz = 1000\n[backend]\nkind = \"proxmox\"\nnodes = [\"node-a\", \"node-b\"]\nvmid = 100\nssh_hosts = [{}, {}]\nssh_identity_file = \"{}\"\nssh_known_hosts = \"{known_hosts}\"\nmigration_type = \"insecure\"\nmigration_network = \"{network}\"\nagent = \"{}\"\nagent_token_file = \"{}\"\n",
        hosts[0],
        hosts[1],
        s.get("ssh_identity_file"),
        s.get("agent"),
        s.get("agent_token_file"),
    )
}

/// `harness run` in the stand-in's client namespace: exit code, output,
/// and the bundle it wrote (if any).
fn run_in_lan(s: &Standin, dir: &Path, tag: &str, text: &str) -> (i32, String, Option<PathBuf>) {
    let file = dir.join(format!("{tag}.toml"));
    std::fs::write(&file, text).unwrap();
    let out_dir = dir.join(format!("results-{tag}"));
    let out = Command::new("ip")
        .args(["netns", "exec", &s.get("client_netns")])
        .arg(env!("CARGO_BIN_EXE_harness"))
        .arg("run")
        .arg("--out")
        .arg(&out_dir)
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = std::fs::read_dir(&out_dir)
        .ok()
        .and_then(|mut d| d.next())
        .map(|e| e.unwrap().path());
    (out.status.code().unwrap_or(-1), text, bundle)
}

/// A bundle of `n` repetitions, each failed with an error saying every one
/// of `words`: none is dropped.
fn every_rep_failed_saying(bundle: Option<PathBuf>, out: &str, n: usize, words: &[&str]) {
    let b = bundle.unwrap_or_else(|| panic!("no bundle: {out}"));
    let sum = json_file(&b.join("summary.json"));
    let reps = sum["repetitions"].as_array().unwrap();
    assert_eq!(reps.len(), n, "{out}");
    for r in reps {
        assert_eq!(r["status"], "failed");
        let e = r["error"].as_str().unwrap();
        assert!(words.iter().all(|w| e.contains(w)), "{r}");
    }
}

/// The log line's number after `prefix` and before `suffix`.
fn between<'a>(lines: &'a [String], prefix: &str, suffix: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| {
            let i = l.find(prefix)? + prefix.len();
            let rest = &l[i..];
            Some(&rest[..rest.find(suffix)?])
        })
        .unwrap_or_else(|| panic!("no line with {prefix:?}…{suffix:?} in {lines:?}"))
}

#[test]
fn the_proxmox_backend_migrates_through_the_api_and_reads_the_task_log() {
    let _guard = LAB.lock().unwrap_or_else(|e| e.into_inner());
    require_lab();
    let dir = temp_dir("pve");
    let s = Standin::start(&dir);
    let api_token = std::fs::read_to_string(s.get("api_token_file")).unwrap();
    let secret = api_token.split_once('=').unwrap().1.to_string();
    let agent_token = std::fs::read_to_string(s.get("agent_token_file")).unwrap();

    // A wrong token: refused at the first call, said so, secret not shown.
    let bad = dir.join("bad-token");
    std::fs::write(&bad, "root@pam!standin=00000000-wrong").unwrap();
    let text = scenario(&s, 1, ["node-a", "node-b"], &bad.display().to_string());
    let (code, out, _) = run_in_lan(&s, &dir, "badtoken", &text);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("401") && out.contains("authentication failure"),
        "{out}"
    );
    assert!(!out.contains("wrong") && !out.contains(&secret), "{out}");

    // A certificate that is not the pinned one, or not vouched for by the
    // system's roots (the stand-in's is self-signed): refused at the
    // handshake, naming why.
    let good = scenario(&s, 1, ["node-a", "node-b"], &s.get("api_token_file"));
    let fp = s.get("fingerprint");
    let wrong_fp = format!(
        "{}{}",
        if fp.starts_with('0') { "1" } else { "0" },
        &fp[1..]
    );
    let (code, out, _) = run_in_lan(&s, &dir, "wrongfp", &good.replace(&fp, &wrong_fp));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("not the pinned one"), "{out}");
    let unpinned = good.replace(&format!("fingerprint = \"{fp}\"\n"), "");
    let (code, out, _) = run_in_lan(&s, &dir, "nofp", &unpinned);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("TLS handshake"), "{out}");

    // A node that does not exist: each repetition fails with Proxmox's
    // refusal, none is dropped.
    let text = scenario(&s, 2, ["node-a", "node-x"], &s.get("api_token_file"));
    let (_, out, bundle) = run_in_lan(&s, &dir, "nonode", &text);
    every_rep_failed_saying(bundle, &out, 2, &["no such cluster node 'node-x'"]);

    // Three real migrations.
    let text = scenario(&s, 3, ["node-a", "node-b"], &s.get("api_token_file"));
    let (code, out, bundle) = run_in_lan(&s, &dir, "ok", &text);
    assert_eq!(code, 0, "{out}");
    let b = bundle.unwrap();
    three_reps_equal_the_log(&b, &[secret.as_str(), agent_token.trim()]);

    // The same cluster without a token: `qm migrate` over ssh.
    let known = s.get("ssh_known_hosts");
    let net = s.get("migration_network");
    ssh_is_checked_and_migrates(&s, &dir, &known, &net, agent_token.trim());
    drop(s);
    let left: Vec<String> = harness::backend::local::lab::netns::list()
        .into_iter()
        .filter(|n| n.starts_with("lmig-") && n.ends_with("-client"))
        .collect();
    assert!(left.is_empty(), "the stand-in's lab is left: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bundle of three completed repetitions: each one's parsed downtime,
/// RAM transferred and duration equal the numbers in its task log, the
/// client's outage exceeds the logged downtime, and no secret is in any
/// file.
fn three_reps_equal_the_log(b: &Path, secrets: &[&str]) {
    let manifest = json_file(&b.join("manifest.json"));
    assert_eq!(manifest["backend"], "proxmox");
    let sum: measure::summary::Summary =
        serde_json::from_value(json_file(&b.join("summary.json"))).unwrap();
    assert_eq!(sum.repetitions.len(), 3);
    for r in &sum.repetitions {
        assert_eq!(r.status, RepStatus::Completed, "{:?}", r.error);
        let rec = json_file(&b.join(format!("reps/rep-{:03}.json", r.repetition)));
        let lines: Vec<String> = rec["migration"]["platform_raw"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["t"].as_str().unwrap().to_string())
            .collect();
        let p = r.platform.as_ref().unwrap();
        let logged: f64 = between(&lines, "- downtime ", " ms").parse().unwrap();
        let ram = parse_size(between(
            &lines,
            "migration completed, transferred ",
            " VM-state",
        ));
        let duration = parse_duration(between(&lines, "(duration ", ")")).unwrap();
        assert_eq!(p.downtime_ms, Some(logged));
        assert_eq!(r.qemu.downtime_ms, Some(logged));
        assert_eq!(p.ram_transferred_bytes, ram.map(|v| v as i64));
        assert_eq!(p.duration_ms, Some(duration as f64 * 1000.0));
        // What the log does not show: the destination waited paused for
        // qemu-server's poll and cleanup, and the client saw all of it.
        let outage = r.client.max_outage_ms.unwrap();
        assert!(outage > logged + 50.0, "outage {outage} vs logged {logged}");
    }
    for token in secrets {
        let leaks = files_containing(b, token);
        assert!(leaks.is_empty(), "a token is in {leaks:?}");
    }
}

/// Over ssh: a node whose host key is not the known one is refused; a
/// migration network that holds neither node fails each repetition with
/// Proxmox's words; three migrations over the right one equal their logs.
fn ssh_is_checked_and_migrates(s: &Standin, dir: &Path, known: &str, net: &str, agent_token: &str) {
    let stranger = dir.join("stranger-known-hosts");
    let other = std::fs::read_to_string(dir.join("known_hosts")).unwrap();
    let foreign_key = std::fs::read_to_string(dir.join("ssh-id.pub")).unwrap();
    let key = foreign_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let forged: String = other
        .lines()
        .map(|l| format!("{} {key}\n", l.split_whitespace().next().unwrap()))
        .collect();
    std::fs::write(&stranger, forged).unwrap();
    let text = ssh_scenario(s, 1, &stranger.display().to_string(), net);
    let (code, out, _) = run_in_lan(s, dir, "ssh-stranger", &text);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Host key verification failed"), "{out}");

    let text = ssh_scenario(s, 2, known, "203.0.113.0/24");
    let (_, out, bundle) = run_in_lan(s, dir, "ssh-nonet", &text);
    every_rep_failed_saying(
        bundle,
        &out,
        2,
        &[
            "no IP address configured on local node for network '203.0.113.0/24'",
            "exited with status 255",
        ],
    );

    // Past migration.timeout_s the session is hung up: the node's qm stops
    // the task, the repetition says so, and the VM stays where it was.
    let text = ssh_scenario(s, 1, known, net) + "[migration]\ntimeout_s = 0.3\n";
    let (_, out, bundle) = run_in_lan(s, dir, "ssh-timeout", &text);
    let b = bundle.unwrap_or_else(|| panic!("no bundle: {out}"));
    let r = &json_file(&b.join("summary.json"))["repetitions"][0];
    assert_eq!(r["status"], "failed", "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("did not finish within 0.3 s"),
        "{r}"
    );
    let stayed_on = json_file(&b.join("reps/rep-001.json"))["migration"]["source"].clone();

    let text = ssh_scenario(s, 3, known, net);
    let (code, out, bundle) = run_in_lan(s, dir, "ssh-ok", &text);
    assert_eq!(code, 0, "{out}");
    let b = bundle.unwrap();
    let key = std::fs::read_to_string(dir.join("ssh-id")).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    three_reps_equal_the_log(&b, &[agent_token, key_body]);
    let next_from = &json_file(&b.join("reps/rep-001.json"))["migration"]["source"];
    assert_eq!(
        next_from, &stayed_on,
        "the stopped migration moved the VM anyway"
    );
    let manifest = json_file(&b.join("manifest.json"));
    assert!(
        manifest["host"]["qemu_version"]
            .as_str()
            .unwrap_or("")
            .contains("pve-manager/"),
        "{manifest}"
    );
    assert_eq!(
        manifest["guest"]["proxmox"]["way"], "ssh (qm migrate)",
        "{manifest}"
    );
    let sum = json_file(&b.join("summary.json"));
    let clock = &sum["clock"];
    assert!(
        clock["method"].as_str().unwrap().contains("date +%s%N"),
        "{clock}"
    );
    let unc = clock["client_uncertainty_ns"].as_i64().unwrap();
    assert!(
        unc > 0 && unc < 50_000_000,
        "`date` asked inside one ssh session bounds the clock to its round trip, far under the API's whole seconds: {clock}"
    );
}
