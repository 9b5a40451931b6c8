//! The subset of Proxmox VE's API the stand-in answers, on its state: the
//! VM's node, its lock, and the migration tasks with their logs.
//!
//! Answers and errors follow Proxmox's shapes (`{"data": …}`, a `message`
//! on errors, the same texts for the same refusals), so the backend reads
//! the stand-in exactly as it reads a cluster.

use crate::backend::local::proxmox_flow::TaskLogWriter;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A migration task.
pub struct Task {
    /// Its UPID.
    pub upid: String,
    /// The node it runs on (the source).
    pub node: String,
    /// Its log, as the migration writes it.
    pub log: TaskLogWriter,
    /// `Some(exitstatus)` once stopped.
    pub exit: Mutex<Option<String>>,
    /// Set by `DELETE` (stop the task).
    pub stop: Arc<AtomicBool>,
}

/// A migration the lab is asked to perform (to the other node: the
/// stand-in has two).
pub struct Job {
    /// The task that follows it.
    pub task: Arc<Task>,
}

/// What the stand-in knows.
pub struct State {
    /// The API token it accepts, `USER@REALM!TOKENID=SECRET`.
    pub token: String,
    /// The two nodes' names.
    pub nodes: [String; 2],
    /// The VM's id.
    pub vmid: u64,
    /// The node the VM's config is on (where it runs).
    pub on: Mutex<usize>,
    /// Whether a migration holds the VM's lock.
    pub locked: AtomicBool,
    /// Every task, by UPID.
    pub tasks: Mutex<BTreeMap<String, Arc<Task>>>,
    /// Where migrations go to the lab.
    pub jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    /// Each node's address on the migration link (`migration_network`
    /// must hold the target's).
    pub migration_addrs: [std::net::Ipv4Addr; 2],
}

/// Who asks.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// Over HTTPS, with this `Authorization` header (if any).
    Header(Option<&'a str>),
    /// A node's own `qm`, as root, over the local socket.
    Root,
}

/// An answer: HTTP status and JSON body.
pub type Answer = (u16, Value);

fn ok(data: Value) -> Answer {
    (200, json!({ "data": data }))
}

fn err(status: u16, message: &str) -> Answer {
    (
        status,
        json!({ "data": null, "message": format!("{message}\n") }),
    )
}

/// `%3A` → `:` in a path segment or form value (`+` → space in forms).
pub fn percent_decode(s: &str, form: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
                continue;
            }
            (b'+', _) if form => out.push(b' '),
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers one request.
pub fn answer(state: &State, method: &str, path: &str, caller: Caller, body: &str) -> Answer {
    let expected = format!("PVEAPIToken={}", state.token);
    if let Caller::Header(auth) = caller {
        if auth != Some(expected.as_str()) {
            return err(401, "authentication failure");
        }
    }
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let Some(rest) = path.strip_prefix("/api2/json") else {
        return err(404, "not found");
    };
    let seg: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    match (method, seg.as_slice()) {
        ("GET", ["version"]) => ok(json!({"version": "8.3-standin", "release": "standin"})),
        ("GET", ["nodes", node, "qemu", vmid, "status", "current"]) => vm_status(state, node, vmid),
        ("POST", ["nodes", node, "qemu", vmid, "migrate"]) => {
            migrate(state, node, vmid, caller, body)
        }
        ("GET", ["nodes", _, "tasks", upid, "status"]) => task_status(state, upid),
        ("GET", ["nodes", _, "tasks", upid, "log"]) => task_log(state, upid, query),
        ("DELETE", ["nodes", _, "tasks", upid]) => stop_task(state, upid),
        _ => err(501, &format!("Method '{method} {path}' not implemented")),
    }
}

/// The VM's config, if `node` holds it: errors as Proxmox words them.
fn check_vm(state: &State, node: &str, vmid: &str) -> Result<(), Answer> {
    if !state.nodes.iter().any(|n| n == node) {
        return Err(err(500, &format!("no such cluster node '{node}'")));
    }
    let on = *state.on.lock().map_err(|_| err(500, "state poisoned"))?;
    if vmid != state.vmid.to_string() || state.nodes[on] != node {
        return Err(err(
            500,
            &format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"),
        ));
    }
    Ok(())
}

fn vm_status(state: &State, node: &str, vmid: &str) -> Answer {
    if let Err(a) = check_vm(state, node, vmid) {
        return a;
    }
    let lock = state.locked.load(Ordering::SeqCst).then_some("migrate");
    ok(json!({"status": "running", "vmid": state.vmid, "lock": lock}))
}

fn form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k, true), percent_decode(v, true)))
        .collect()
}

/// `migration_type` and `migration_network`: root's only, as on Proxmox;
/// the stand-in migrates over its migration link in the clear (what
/// `insecure` does), and has no ssh tunnel for `secure`.
fn check_root_options(
    state: &State,
    caller: Caller,
    f: &BTreeMap<String, String>,
    target: usize,
) -> Result<(), Answer> {
    let asked = ["migration_type", "migration_network"]
        .into_iter()
        .find(|k| f.contains_key(*k));
    if let (Some(key), Caller::Header(_)) = (asked, caller) {
        return Err(err(
            403,
            &format!(
                "Permission check failed (user != root@pam): {key} can only be set by root@pam"
            ),
        ));
    }
    if f.get("migration_type").is_some_and(|t| t != "insecure") {
        return Err(err(500, "the stand-in has no ssh tunnel between its nodes: only migration_type=insecure is offered"));
    }
    if let Some(cidr) = f.get("migration_network") {
        if !in_cidr(state.migration_addrs[target], cidr) {
            return Err(err(500, &format!("could not get migration ip: no IP address configured on local node for network '{cidr}'")));
        }
    }
    Ok(())
}

/// Whether `addr` is inside `cidr` (IPv4 `a.b.c.d/n`).
fn in_cidr(addr: std::net::Ipv4Addr, cidr: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    match (net.parse::<std::net::Ipv4Addr>(), len.parse::<u32>()) {
        (Ok(net), Ok(len)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(addr) & mask == u32::from(net) & mask
        }
        _ => false,
    }
}

fn migrate(state: &State, node: &str, vmid: &str, caller: Caller, body: &str) -> Answer {
    if let Err(a) = check_vm(state, node, vmid) {
        return a;
    }
    let f = form(body);
    let Some(target) = f.get("target") else {
        return err(
            400,
            "Parameter verification failed. target: property is missing and it is not optional",
        );
    };
    if !state.nodes.iter().any(|n| n == target) {
        return err(500, &format!("no such cluster node '{target}'"));
    }
    if target == node {
        return err(500, "target is local node.");
    }
    let target_i = usize::from(state.nodes[1] == *target);
    if let Err(a) = check_root_options(state, caller, &f, target_i) {
        return a;
    }
    if f.get("online").map(String::as_str) != Some("1") {
        return err(
            500,
            "the stand-in migrates its running VM online only (online=1)",
        );
    }
    if state.locked.swap(true, Ordering::SeqCst) {
        return err(500, "VM is locked (migrate)");
    }
    let upid = upid(node, state.vmid);
    let task = Arc::new(Task {
        upid: upid.clone(),
        node: node.to_string(),
        log: TaskLogWriter::default(),
        exit: Mutex::new(None),
        stop: Arc::new(AtomicBool::new(false)),
    });
    if let Ok(mut t) = state.tasks.lock() {
        t.insert(upid.clone(), task.clone());
    }
    let job = Job { task };
    if state.jobs.send(job).is_err() {
        state.locked.store(false, Ordering::SeqCst);
        return err(500, "the stand-in's lab is gone");
    }
    ok(json!(upid))
}

/// `UPID:node:PID:PSTART:STARTTIME:qmigrate:VMID:USER:` (hex fields).
fn upid(node: &str, vmid: u64) -> String {
    let now = crate::clock::now_ns();
    format!(
        "UPID:{node}:{:08X}:{:08X}:{:08X}:qmigrate:{vmid}:root@pam:",
        std::process::id(),
        (now / 10_000_000) as u32,
        (now / 1_000_000_000) as u32
    )
}

fn find(state: &State, upid: &str) -> Option<Arc<Task>> {
    state.tasks.lock().ok()?.get(upid).cloned()
}

fn task_status(state: &State, upid: &str) -> Answer {
    let Some(t) = find(state, upid) else {
        return err(500, &format!("no such task '{upid}'"));
    };
    let exit = t.exit.lock().ok().and_then(|e| e.clone());
    let mut data = json!({"upid": t.upid, "node": t.node, "type": "qmigrate", "id": state.vmid.to_string(),
        "status": if exit.is_some() { "stopped" } else { "running" }});
    if let Some(e) = exit {
        data["exitstatus"] = json!(e);
    }
    ok(data)
}

fn task_log(state: &State, upid: &str, query: &str) -> Answer {
    let Some(t) = find(state, upid) else {
        return err(500, &format!("no such task '{upid}'"));
    };
    let q = form(query);
    let num = |k: &str, d: usize| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (start, limit) = (num("start", 0), num("limit", 50));
    let lines = t.log.lines();
    let data: Vec<Value> = lines
        .iter()
        .enumerate()
        .skip(start)
        .take(limit)
        .map(|(i, l)| json!({"n": i + 1, "t": l}))
        .collect();
    (200, json!({"data": data, "total": lines.len()}))
}

fn stop_task(state: &State, upid: &str) -> Answer {
    match find(state, upid) {
        Some(t) => {
            t.stop.store(true, Ordering::SeqCst);
            ok(Value::Null)
        }
        None => err(500, &format!("no such task '{upid}'")),
    }
}
