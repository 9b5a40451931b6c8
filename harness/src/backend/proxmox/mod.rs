//! The Proxmox VE backend: a real cluster's VM, migrated through the REST
//! API (`POST /nodes/{node}/qemu/{vmid}/migrate`), its task log read while
//! it runs and turned into the record's markers and figures by the same
//! parser `harness import proxmox` uses.
//!
//! The VM's guest agent and reflector are reached over plain TCP/UDP
//! addresses from this machine (the tester's laptop on the VM's network),
//! and the probe runs in the harness's own process. The nodes' clock is
//! bounded from the API's `Date` headers; the task log stamps whole
//! seconds, so its markers carry ±0.5 s.
//!
//! What it cannot do: pause the guest or cut its network for a set time
//! (`harness calibrate`), kill a QEMU, or set QMP knobs (an API token can
//! set neither `migration_type` nor `migration_network`).

pub mod api;
pub mod standin;
pub mod tls;

use super::{Backend, Capabilities, Endpoints, MigrationRequest, Prepared};
use crate::backend::agent::AgentClient;
use crate::backend::real_vm::{local_addr_toward, real_endpoints, Scratch};
use crate::bundle::Bundle;
use crate::clock::now_ns;
use crate::live::Live;
use crate::scenario::backend::parse_utc_offset;
use crate::scenario::{BackendSpec, Scenario};
use anyhow::{bail, Context, Result};
use api::{form_escape, Api, ApiToken};
use measure::migration::marker::HOST_CLOCK;
use measure::migration::record::{HypervisorStats, MigrationRecord, RepStatus};
use measure::platform::proxmox::outcome::{outcome, Outcome};
use measure::platform::proxmox::tasklog::TaskLog;
use measure::summary::ClockAlignment;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tls::Trust;

/// The backend's name in manifests.
pub const NAME: &str = "proxmox";

/// A platform, not a lab: it only migrates.
pub const CAPABILITIES: Capabilities = Capabilities {
    pause: false,
    network_cut: false,
    kill_qemu: false,
    qmp_knobs: false,
    disks: false,
};

/// How often the task's status and new log lines are asked for.
const POLL: Duration = Duration::from_millis(500);

/// One VM on a Proxmox cluster, for the length of a run.
pub struct ProxmoxBackend {
    spec: BackendSpec,
    scenario: Scenario,
    api: Api,
    agent: AgentClient,
    reflector: SocketAddr,
    client_addr: Option<IpAddr>,
    /// Index into `spec.nodes` of the node the VM runs on.
    on: usize,
    run_id: String,
    utc_offset_s: i64,
    version: Option<String>,
    scratch: Scratch,
}

/// Reads a secret from a file, or else from an environment variable.
fn secret(file: Option<&PathBuf>, env: Option<&str>, what: &str) -> Result<(String, String)> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the {what} from {}", f.display()))?;
        return Ok((text.trim().to_string(), format!("file {}", f.display())));
    }
    if let Some(var) = env {
        let text = std::env::var(var)
            .with_context(|| format!("the {what}'s environment variable {var} is not set"))?;
        return Ok((
            text.trim().to_string(),
            format!("environment variable {var}"),
        ));
    }
    bail!("no {what}: name a file or an environment variable")
}

impl ProxmoxBackend {
    /// Reads the tokens and addresses the scenario names; nothing is asked
    /// of the cluster yet.
    pub fn create(scenario: &Scenario) -> Result<Self> {
        let spec = scenario.backend.clone();
        let (text, origin) = secret(
            spec.token_file.as_ref(),
            spec.token_env.as_deref(),
            "API token",
        )?;
        let token = ApiToken::parse(&text, &origin)?;
        let trust = match &spec.fingerprint {
            Some(f) => Trust::Fingerprint(tls::parse_fingerprint(f)?),
            None => Trust::SystemRoots,
        };
        let url = spec
            .api_url
            .clone()
            .context("`backend.api_url` is required")?;
        let api = Api::new(&url, &trust, token)?;
        let (agent, reflector) = real_endpoints(&spec)?;
        let utc_offset_s = match &spec.utc_offset {
            Some(o) => parse_utc_offset(o).map_err(anyhow::Error::msg)?,
            None => 0,
        };
        let run_id = wire::random::token_hex(3).context("drawing the run id")?;
        Ok(Self {
            scratch: Scratch::new("proxmox", &run_id).context("a scratch folder")?,
            agent,
            reflector,
            client_addr: spec.client_addr,
            spec,
            scenario: scenario.clone(),
            api,
            on: 0,
            run_id,
            utc_offset_s,
            version: None,
        })
    }

    fn vmid(&self) -> u64 {
        self.spec.vmid.unwrap_or(0)
    }

    /// The node the VM runs on, asked of each node in turn.
    async fn find_vm(&self) -> Result<usize> {
        let mut seen = Vec::new();
        for (i, node) in self.spec.nodes.iter().enumerate() {
            let path = format!("/nodes/{node}/qemu/{}/status/current", self.vmid());
            match self.api.get(&path).await {
                Ok(d) if d["status"] == "running" => return Ok(i),
                Ok(d) => seen.push(format!("{node}: {}", d["status"])),
                Err(e) => seen.push(format!("{node}: {e:#}")),
            }
        }
        bail!(
            "VM {} is running on neither node ({})",
            self.vmid(),
            seen.join("; ")
        )
    }

    /// The form of the migrate call.
    fn migrate_form(&self, target: &str) -> Vec<(&'static str, String)> {
        let mut form = vec![("target", target.to_string()), ("online", "1".into())];
        if self.spec.with_local_disks == Some(true) {
            form.push(("with-local-disks", "1".into()));
        }
        if let Some(t) = &self.spec.targetstorage {
            form.push(("targetstorage", t.clone()));
        }
        let kib = (self.scenario.migration.max_bandwidth_mib_s * 1024.0) as u64;
        form.push(("bwlimit", kib.to_string()));
        form
    }
}

/// The task's log lines, fetched from `start` on.
async fn log_since(api: &Api, node: &str, upid: &str, lines: &mut Vec<Value>) -> Result<()> {
    let path = format!(
        "/nodes/{node}/tasks/{}/log?start={}&limit=1000",
        form_escape(upid),
        lines.len()
    );
    if let Value::Array(new) = api.get(&path).await? {
        lines.extend(new);
    }
    Ok(())
}

/// What following a task gave: its exit status once stopped, every log
/// line read, whether the harness stopped it, and why it could not be
/// followed to its end (the lines read until then are kept).
struct Followed {
    exit: Option<String>,
    lines: Vec<Value>,
    stopped_by_us: bool,
    error: Option<String>,
}

/// How many polls in a row may fail (an API blip) before the task is given up.
const POLL_FAILURES: u32 = 5;

/// Follows a task until it stops.
async fn follow(
    api: &Api,
    node: &str,
    upid: &str,
    req: &MigrationRequest<'_>,
    live: &Live,
    deadline: Duration,
) -> Followed {
    let mut f = Followed {
        exit: None,
        lines: Vec::new(),
        stopped_by_us: false,
        error: None,
    };
    let t0 = tokio::time::Instant::now();
    let task = format!("/nodes/{node}/tasks/{}", form_escape(upid));
    let mut failures = 0;
    loop {
        tokio::time::sleep(POLL).await;
        let polled = async {
            let status = api.get(&format!("{task}/status")).await?;
            log_since(api, node, upid, &mut f.lines).await?;
            anyhow::Ok(status)
        }
        .await;
        let status = match polled {
            Ok(s) => s,
            Err(e) if failures + 1 < POLL_FAILURES => {
                failures += 1;
                live.println(&format!(
                    "warning: following task {upid}: {e:#}; trying again"
                ));
                continue;
            }
            Err(e) => {
                f.error = Some(format!(
                    "following task {upid}: {e:#} ({POLL_FAILURES} polls in a row failed)"
                ));
                return f;
            }
        };
        failures = 0;
        let last = f.lines.last().and_then(|l| l["t"].as_str()).unwrap_or("");
        live.update(&format!(
            "rep {}/{} task {} | {last} | {}",
            req.repetition,
            req.of,
            status["status"].as_str().unwrap_or("?"),
            (req.status_suffix)()
        ));
        if status["status"] == "stopped" {
            if let Err(e) = log_since(api, node, upid, &mut f.lines).await {
                f.error = Some(format!("reading the end of task {upid}'s log: {e:#}"));
            }
            f.exit = Some(
                status["exitstatus"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string(),
            );
            return f;
        }
        let cancel = req.cancel.load(Ordering::SeqCst);
        if (cancel || t0.elapsed() > deadline) && !f.stopped_by_us {
            f.stopped_by_us = true;
            let _ = api.delete(&task).await;
        }
    }
}

impl ProxmoxBackend {
    /// The record from a stopped task: the log's reading, and the exit
    /// status where the log alone would not fail it.
    fn fill(&self, rec: &mut MigrationRecord, upid: &str, exit: &str, lines: Vec<Value>) {
        let log = TaskLog::from_api_value(&Value::Array(lines.clone()));
        let o = match log {
            Ok(l) => outcome(&l, self.utc_offset_s, HOST_CLOCK),
            Err(e) => {
                rec.error = Some(format!("the task log of {upid} could not be read: {e}"));
                return;
            }
        };
        rec.status = o.status;
        rec.error = o.error.clone();
        if exit != "OK" && rec.status == RepStatus::Completed {
            rec.status = RepStatus::Failed;
            rec.error = Some(format!("the task ended with {exit:?}"));
        }
        rec.markers = o.markers.clone();
        rec.hypervisor = Some(HypervisorStats {
            downtime_ms: o.platform.downtime_ms,
            downtime_note: o
                .platform
                .downtime_ms
                .map(|_| "QEMU's source-side downtime, as Proxmox's task log relays it".into()),
            transferred_bytes: o.platform.ram_transferred_bytes,
            ..Default::default()
        });
        rec.platform = Some(o.platform.clone());
        rec.platform_raw = Some(raw(upid, exit, &lines, &o));
    }
}

fn raw(upid: &str, exit: &str, lines: &[Value], o: &Outcome) -> Value {
    json!({
        "upid": upid,
        "exitstatus": exit,
        "lines": lines,
        "downtime_limit_ms": o.downtime_limit_ms,
        "downtime_increases_ms": o.downtime_increases_ms,
        "average_speed_bytes_s": o.average_speed_bytes_s,
        "target_node": o.target_node,
    })
}

impl Backend for ProxmoxBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn prepare(&mut self, scenario: &Scenario, live: &Live) -> Result<Prepared> {
        self.scenario = scenario.clone();
        let v = self
            .api
            .get("/version")
            .await
            .context("asking the Proxmox API its version")?;
        self.version = v["version"].as_str().map(|s| format!("Proxmox VE {s}"));
        self.on = self.find_vm().await?;
        live.println(&format!(
            "proxmox: VM {} runs on {}",
            self.vmid(),
            self.spec.nodes[self.on]
        ));
        let deadline = Duration::from_secs_f64(scenario.vm.boot_timeout_s.max(10.0));
        let health = self
            .agent
            .wait_ready(deadline, || Ok(()))
            .await
            .with_context(|| format!("the guest agent at {} does not answer", self.agent.addr))?;
        if self.client_addr.is_none() {
            self.client_addr = Some(local_addr_toward(self.reflector)?);
        }
        Ok(Prepared {
            health,
            acceleration: "unknown".into(),
            acceleration_note: "the Proxmox API does not say (the VM's `kvm` option)".into(),
        })
    }

    fn endpoints(&self) -> Endpoints {
        crate::backend::real_vm::endpoints(&self.agent, self.reflector, self.client_addr)
    }

    fn clock_alignment(&self) -> ClockAlignment {
        let b = self.api.clock();
        ClockAlignment {
            client_offset_ns: b.map_or(0, |b| (b.lo_ns + b.hi_ns) / 2),
            client_uncertainty_ns: b.map_or(1_000_000_000, |b| (b.hi_ns - b.lo_ns) / 2),
            method: "the node's clock bounded by the Date headers of the API's answers (whole seconds) between the harness's send and receive times; the task log's own stamps are whole seconds too".into(),
            guest: ClockAlignment::shared_host_clock().guest,
        }
    }

    fn set_scenario(&mut self, s: &Scenario) {
        self.scenario = s.clone();
    }

    async fn migrate(
        &mut self,
        req: &MigrationRequest<'_>,
        live: &Live,
    ) -> Result<MigrationRecord> {
        let (src, dst) = (self.on, 1 - self.on);
        let (sn, dn) = (self.spec.nodes[src].clone(), self.spec.nodes[dst].clone());
        let mut rec = MigrationRecord::starting(req.repetition, ["a", "b"][src], ["a", "b"][dst]);
        rec.migrate_cmd_ns = Some(now_ns());
        let path = format!("/nodes/{sn}/qemu/{}/migrate", self.vmid());
        let upid = match self.api.post(&path, &self.migrate_form(&dn)).await {
            Ok(v) => v.as_str().unwrap_or_default().to_string(),
            Err(e) => {
                rec.error = Some(format!("{e:#}"));
                rec.finished_ns = Some(now_ns());
                return Ok(rec);
            }
        };
        let deadline = Duration::from_secs_f64(self.scenario.migration.timeout_s);
        let f = follow(&self.api, &sn, &upid, req, live, deadline).await;
        let exit = f
            .exit
            .clone()
            .unwrap_or_else(|| "unknown (not followed to its end)".into());
        self.fill(&mut rec, &upid, &exit, f.lines);
        if let Some(e) = f.error {
            rec.status = RepStatus::Failed;
            rec.error = Some(e);
        }
        if f.stopped_by_us && req.cancel.load(Ordering::SeqCst) {
            rec.status = RepStatus::Interrupted;
        } else if f.stopped_by_us && rec.status != RepStatus::Completed {
            rec.error = Some(format!(
                "the task did not finish within {:.0} s (migration.timeout_s) and was stopped; the log says: {}",
                deadline.as_secs_f64(),
                rec.error.as_deref().unwrap_or("nothing more")
            ));
        }
        rec.finished_ns = Some(now_ns());
        if rec.status == RepStatus::Completed {
            self.on = dst;
        }
        Ok(rec)
    }

    async fn pause_guest(&self, _d: Duration) -> Result<(i64, i64)> {
        bail!("the proxmox backend cannot pause the guest for a set time")
    }

    async fn cut_network(&self, _d: Duration) -> Result<(i64, i64, i64)> {
        bail!("the proxmox backend cannot cut the guest's network")
    }

    fn hypervisor_version(&self) -> Option<String> {
        self.version.clone()
    }

    fn scratch_dir(&self) -> PathBuf {
        self.scratch.0.clone()
    }

    fn vm_facts(&self) -> Option<Value> {
        Some(json!({
            "proxmox": {
                "api_url": self.spec.api_url,
                "nodes": self.spec.nodes,
                "vmid": self.spec.vmid,
                "fingerprint_pinned": self.spec.fingerprint,
                "utc_offset_s": self.utc_offset_s,
                "agent": self.agent.addr.to_string(),
                "reflector": self.reflector.to_string(),
            }
        }))
    }

    fn collect(&self, bundle: &Bundle) -> Result<()> {
        let clock = self
            .api
            .clock()
            .map(|b| json!({"lo_ns": b.lo_ns, "hi_ns": b.hi_ns}));
        bundle.write_json("proxmox/api.json", &json!({"clock_bounds": clock}))?;
        Ok(())
    }

    async fn teardown(&mut self) -> Result<()> {
        Ok(())
    }
}
