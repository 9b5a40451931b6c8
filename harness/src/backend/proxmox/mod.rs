//! The Proxmox VE backend: a real cluster's VM, migrated through the REST
//! API (`POST /nodes/{node}/qemu/{vmid}/migrate`, [`task`]) or, for
//! clusters without API tokens, by `qm migrate` on the VM's node over ssh
//! ([`ssh`]); the task log is read while it runs and turned into the
//! record's markers and figures by the same parser `harness import
//! proxmox` uses.
//!
//! The VM's guest agent and reflector are reached over plain TCP/UDP
//! addresses from this machine (the tester's laptop on the VM's network),
//! and the probe runs in the harness's own process. The nodes' clock is
//! bounded from the API's `Date` headers (whole seconds), or over ssh from
//! `date +%s%N`; the task log stamps whole seconds, so its markers carry
//! ±0.5 s.
//!
//! What it cannot do: pause the guest or cut its network for a set time
//! (`harness calibrate`), kill a QEMU, or set QMP knobs. `migration_type` and
//! `migration_network` are sent over ssh only: an API token can set neither.

pub mod api;
pub mod ssh;
pub mod standin;
pub mod task;
pub mod tls;

use super::{Backend, Capabilities, Endpoints, MigrationRequest, Prepared};
use crate::backend::agent::AgentClient;
use crate::backend::real_vm::{real_endpoints, Scratch};
use crate::bundle::Bundle;
use crate::clock::now_ns;
use crate::live::Live;
use crate::scenario::backend::parse_utc_offset;
use crate::scenario::{BackendSpec, Scenario};
use anyhow::{bail, Context, Result};
use api::{Api, ApiToken, ClockBounds};
use measure::migration::marker::HOST_CLOCK;
use measure::migration::record::{HypervisorStats, MigrationRecord, RepStatus};
use measure::platform::proxmox::outcome::{outcome, Outcome};
use measure::platform::proxmox::tasklog::TaskLog;
use measure::summary::ClockAlignment;
use serde_json::{json, Value};
use ssh::Ssh;
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

/// How the harness reaches the cluster.
enum Way {
    /// The REST API, with an API token.
    Api(Api),
    /// `qm` on the nodes over ssh; the clock as `date` readings bound it.
    Ssh(Ssh, Option<ClockBounds>),
}

/// One VM on a Proxmox cluster, for the length of a run.
pub struct ProxmoxBackend {
    spec: BackendSpec,
    scenario: Scenario,
    way: Way,
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
        let way = if spec.ssh_hosts.is_empty() {
            Way::Api(api_of(&spec)?)
        } else {
            Way::Ssh(Ssh::new(&spec)?, None)
        };
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
            way,
            on: 0,
            run_id,
            utc_offset_s,
            version: None,
        })
    }

    fn vmid(&self) -> u64 {
        self.spec.vmid.unwrap_or(0)
    }

    /// The VM's status on node `i`: `running`, `stopped`, ….
    async fn vm_status(&self, i: usize) -> Result<String> {
        let node = &self.spec.nodes[i];
        match &self.way {
            Way::Api(api) => {
                let path = format!("/nodes/{node}/qemu/{}/status/current", self.vmid());
                let d = api.get(&path).await?;
                Ok(d["status"].as_str().unwrap_or("unknown").to_string())
            }
            Way::Ssh(ssh, _) => {
                let out = ssh
                    .run(i, &["qm", "status", &self.vmid().to_string()])
                    .await?;
                let status = out.trim().strip_prefix("status:").map(str::trim);
                Ok(status.unwrap_or(out.trim()).to_string())
            }
        }
    }

    /// The node the VM runs on, asked of each node in turn.
    async fn find_vm(&self) -> Result<usize> {
        let mut seen = Vec::new();
        for (i, node) in self.spec.nodes.iter().enumerate() {
            match self.vm_status(i).await {
                Ok(s) if s == "running" => return Ok(i),
                Ok(s) => seen.push(format!("{node}: {s}")),
                Err(e) => seen.push(format!("{node}: {e:#}")),
            }
        }
        bail!(
            "VM {} is running on neither node ({})",
            self.vmid(),
            seen.join("; ")
        )
    }

    /// The migrate call's options beside its target, as the API's form
    /// and `qm migrate`'s `--options` both name them.
    fn migrate_options(&self) -> Vec<(&'static str, String)> {
        let mut o = vec![("online", "1".to_string())];
        if self.spec.with_local_disks == Some(true) {
            o.push(("with-local-disks", "1".into()));
        }
        if let Some(t) = &self.spec.targetstorage {
            o.push(("targetstorage", t.clone()));
        }
        let kib = (self.scenario.migration.max_bandwidth_mib_s * 1024.0) as u64;
        o.push(("bwlimit", kib.to_string()));
        if let Some(t) = &self.spec.migration_type {
            o.push(("migration_type", t.clone()));
        }
        if let Some(n) = &self.spec.migration_network {
            o.push(("migration_network", n.clone()));
        }
        o
    }

    /// The platform's version: the API's, or `pveversion`'s first line.
    async fn ask_version(&self) -> Result<String> {
        match &self.way {
            Way::Api(api) => {
                let v = api
                    .get("/version")
                    .await
                    .context("asking the Proxmox API its version")?;
                Ok(format!(
                    "Proxmox VE {}",
                    v["version"].as_str().unwrap_or("?")
                ))
            }
            Way::Ssh(ssh, _) => {
                let out = ssh.run(0, &["pveversion"]).await?;
                Ok(format!(
                    "Proxmox VE ({})",
                    out.lines().next().unwrap_or("").trim()
                ))
            }
        }
    }

    /// Over ssh, one more reading of the clock of `node`.
    async fn read_clock(&mut self, node: usize, live: &Live) {
        if let Way::Ssh(ssh, bounds) = &mut self.way {
            match ssh.clock(node).await {
                Ok(b) => *bounds = Some(bounds.map_or(b, |old| old.narrow(b))),
                Err(e) => live.println(&format!("warning: reading the node's clock: {e:#}")),
            }
        }
    }

    /// Starts the migration from `src` and follows it to its end.
    async fn start_and_follow(
        &self,
        src: usize,
        req: &MigrationRequest<'_>,
        live: &Live,
    ) -> Followed {
        let (sn, dn) = (&self.spec.nodes[src], &self.spec.nodes[1 - src]);
        let deadline = Duration::from_secs_f64(self.scenario.migration.timeout_s);
        match &self.way {
            Way::Api(api) => {
                let path = format!("/nodes/{sn}/qemu/{}/migrate", self.vmid());
                let mut form = vec![("target", dn.clone())];
                form.extend(self.migrate_options());
                match api.post(&path, &form).await {
                    Ok(v) => {
                        let upid = v.as_str().unwrap_or_default().to_string();
                        let mut f = task::follow(api, sn, &upid, req, live, deadline).await;
                        f.id = upid;
                        f
                    }
                    Err(e) => Followed::refused(format!("{e:#}")),
                }
            }
            Way::Ssh(ssh, _) => {
                let mut args = vec!["migrate".to_string(), self.vmid().to_string(), dn.clone()];
                for (k, v) in self.migrate_options() {
                    args.extend([format!("--{k}"), v]);
                }
                let mut f = ssh.follow_qm(src, &args, req, live, deadline).await;
                f.id = format!("qm migrate on {sn} over ssh ({})", ssh.describe(src));
                f
            }
        }
    }
}

/// The API client the scenario names, with its token and trust.
fn api_of(spec: &BackendSpec) -> Result<Api> {
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
    Api::new(&url, &trust, token)
}

/// What following a task gave: its exit status once stopped, every log
/// line read (`{n, t}` as the API gives them), whether the harness stopped
/// it, and why it could not be followed to its end (the lines read until
/// then are kept).
#[derive(Default)]
pub struct Followed {
    /// The task's UPID, or what ran it.
    id: String,
    /// Set once refused before it ran (the migrate call failed).
    refused: Option<String>,
    exit: Option<String>,
    lines: Vec<Value>,
    stopped_by_us: bool,
    error: Option<String>,
}

impl Followed {
    fn refused(why: String) -> Followed {
        Followed {
            refused: Some(why),
            ..Default::default()
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
        if exit != "OK" {
            rec.status = RepStatus::Failed;
            rec.error = Some(match &o.error {
                Some(e) if !lines.is_empty() => format!("{e} (the task ended with {exit:?})"),
                _ => format!("the task ended with {exit:?}"),
            });
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
        self.version = Some(self.ask_version().await?);
        self.on = self.find_vm().await?;
        self.read_clock(self.on, live).await;
        live.println(&format!(
            "proxmox: VM {} runs on {}",
            self.vmid(),
            self.spec.nodes[self.on]
        ));
        let health = crate::backend::real_vm::reach(
            &self.agent,
            self.reflector,
            &mut self.client_addr,
            scenario.vm.boot_timeout_s,
        )
        .await?;
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
        let (b, method) = match &self.way {
            Way::Api(api) => (api.clock(), "the node's clock bounded by the Date headers of the API's answers (whole seconds) between the harness's send and receive times; the task log's own stamps are whole seconds too"),
            Way::Ssh(_, b) => (*b, "the nodes' clock bounded by `date +%s%N` over ssh between the harness's send and receive times (the fastest of 5 asks in one session, before each migration); the task log's own stamps are whole seconds"),
        };
        ClockAlignment {
            client_offset_ns: b.map_or(0, |b| (b.lo_ns + b.hi_ns) / 2),
            client_uncertainty_ns: b.map_or(1_000_000_000, |b| (b.hi_ns - b.lo_ns) / 2),
            method: method.into(),
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
        self.read_clock(src, live).await;
        let mut rec = MigrationRecord::starting(req.repetition, ["a", "b"][src], ["a", "b"][dst]);
        rec.migrate_cmd_ns = Some(now_ns());
        let f = self.start_and_follow(src, req, live).await;
        if let Some(why) = f.refused {
            rec.error = Some(why);
            rec.finished_ns = Some(now_ns());
            return Ok(rec);
        }
        let deadline = Duration::from_secs_f64(self.scenario.migration.timeout_s);
        let exit = f
            .exit
            .clone()
            .unwrap_or_else(|| "unknown (not followed to its end)".into());
        self.fill(&mut rec, &f.id, &exit, f.lines);
        if let Some(e) = f.error {
            rec.status = RepStatus::Failed;
            rec.error = Some(e);
        }
        if f.stopped_by_us && req.cancel.load(Ordering::SeqCst) {
            rec.status = RepStatus::Interrupted;
        } else if f.stopped_by_us && rec.status != RepStatus::Completed {
            rec.error = Some(format!(
                "the task did not finish within {} s (migration.timeout_s) and was stopped; the log says: {}",
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
                "way": match self.way { Way::Api(_) => "api", Way::Ssh(..) => "ssh (qm migrate)" },
                "ssh_hosts": self.spec.ssh_hosts,
                "migration_type": self.spec.migration_type,
                "migration_network": self.spec.migration_network,
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
        let (file, bounds) = match &self.way {
            Way::Api(api) => ("proxmox/api.json", api.clock()),
            Way::Ssh(_, b) => ("proxmox/ssh.json", *b),
        };
        let clock = bounds.map(|b| json!({"lo_ns": b.lo_ns, "hi_ns": b.hi_ns}));
        bundle.write_json(file, &json!({"clock_bounds": clock}))?;
        Ok(())
    }

    async fn teardown(&mut self) -> Result<()> {
        Ok(())
    }
}
