//! The default backend: two QEMU processes per VM in the embedded lab,
//! migrated over QMP.

pub mod doctor;
pub mod guest;
pub mod kvm_proof;
pub mod lab;
pub mod links;
pub mod proxmox_flow;
pub mod qemu;
pub mod storage;
pub mod tool;

use super::{Backend, Capabilities, Endpoints, MigrationRequest, Prepared, Site};
use crate::backend::agent::AgentClient;
use crate::backend::local::guest::debian::{self, DebianImage};
use crate::backend::local::guest::{
    build_image_with, find_agent, find_kernel, GuestImage, KernelChoice,
};
use crate::backend::local::lab::netlink::cut_tap;
use crate::backend::local::lab::{Lab, Node, Wan};
use crate::backend::local::qemu::cmdline::{kernel_append, QemuSpec};
use crate::backend::local::qemu::process::{kill_pid, QemuProcess};
use crate::bundle::Bundle;
use crate::clock::now_ns;
use crate::live::Live;
use crate::scenario::disk::DiskStorage;
use crate::scenario::{Acceleration, FaultKind, FaultSpec, GuestKind, MigrationFlow, Scenario};
use anyhow::{bail, Context, Result};
use measure::migration::qmp::MigrationInfo;
use measure::migration::record::{MigrationRecord, RepStatus, Sample, SideEvent};
use measure::summary::ClockAlignment;
use proxmox_flow::{PollAction, ProxmoxPoll, TaskLogWriter};
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// TCP port the destination QEMU listens on for the migration stream.
pub const MIGRATION_PORT: u16 = 4444;
/// The agent's control port in lab guests.
pub const CONTROL_PORT: u16 = 7000;
/// The agent's reflector port in lab guests.
pub const REFLECTOR_PORT: u16 = 7001;
/// How often the source is asked `query-migrate` (20 Hz).
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(50);
/// The backend's name in manifests.
pub const NAME: &str = "local-qemu";

/// What the lab can do: everything but disks (not yet).
pub const CAPABILITIES: Capabilities = Capabilities {
    pause: true,
    network_cut: true,
    kill_qemu: true,
    qmp_knobs: true,
    disks: false,
};

/// The client namespace's interface on the guest's LAN.
const CLIENT_IF: &str = "eth0";
/// How long `auto` gives a KVM guest to answer before falling back to TCG.
pub const KVM_PROOF_DEADLINE: Duration = Duration::from_secs(12);

/// One VM in the lab, with its running QEMU and a standby destination.
/// A fleet's VMs share one lab (its namespaces and links), each with its
/// own tap, address, ports and state folder.
pub struct LocalLab {
    /// The lab's namespaces and links (removed when the last VM on it is
    /// torn down).
    pub lab: Arc<Lab>,
    /// The VM's position in the lab: its tap, address and ports.
    index: usize,
    /// The VM's own state folder (images, sockets, consoles).
    dir: PathBuf,
    /// `kvm` or `tcg`, once booted.
    pub accel: &'static str,
    /// Why that acceleration (e.g. the KVM attempt that failed).
    pub accel_note: String,
    /// The guest agent's control client.
    pub agent: AgentClient,
    /// The guest's LAN address.
    pub guest_addr: Ipv4Addr,
    /// Every QEMU command line started, in order, for the bundle.
    pub qemu_cmdlines: Vec<String>,
    scenario: Scenario,
    kernel: KernelChoice,
    agent_binary: PathBuf,
    extras: Vec<PathBuf>,
    image: Option<GuestImage>,
    token: String,
    running: Option<QemuProcess>,
    standby: Option<QemuProcess>,
    generation: u32,
    /// Where the next `migration.flow = "proxmox"` migration writes its
    /// task log (the Proxmox stand-in serves it while it is written).
    next_task_log: Option<TaskLogWriter>,
    /// The Debian guest, with `vm.image = "debian"`.
    debian: Option<DebianImage>,
    /// The shaped links' delay lines.
    links: links::ShapedLinks,
}

/// Where a VM sits in a lab.
struct Placement {
    lab: Arc<Lab>,
    index: usize,
    dir: PathBuf,
    links: links::ShapedLinks,
}

/// The guest agent's control token: 16 random bytes as 32 hex digits
/// ([`wire::random`]; no fallback).
pub(crate) fn random_token() -> Result<String> {
    wire::random::token_hex(16).context("drawing the guest agent's control token")
}

pub(crate) fn tail_of(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().rev().take(lines).collect();
    if v.is_empty() {
        return "(the guest wrote nothing to its console)".into();
    }
    v.into_iter().rev().collect::<Vec<_>>().join("\n    ")
}

/// What every backend that runs the lab's guest starts from: the guest
/// kernel and agent (found before anything is made), the lab's namespaces
/// and links, and the agent's token.
pub(crate) fn lab_parts(
    scenario: &Scenario,
    agent: Option<&Path>,
) -> Result<(KernelChoice, PathBuf, Lab, String)> {
    let kernel = find_kernel(&scenario.vm.kernel)?;
    let agent_binary = find_agent(agent)?;
    let lab = Lab::create(1, wan_for(scenario))
        .context("building the lab (are you root? is iproute2 installed?)")?;
    Ok((kernel, agent_binary, lab, random_token()?))
}

/// The links a lab for `scenario` routes through its WAN namespace: those
/// any of its sweep points shapes (a fleet's one shape serves every VM:
/// they share the link).
pub(crate) fn wan_for(scenario: &Scenario) -> Wan {
    let points = scenario.sweep_points().unwrap_or_default();
    Wan {
        migration: points.iter().any(|(_, p)| p.link.migration.is_some()),
        client: points.iter().any(|(_, p)| p.link.client.is_some()),
    }
}

/// The agent's client for the lab's guest `vm`: from the client namespace.
pub(crate) fn lab_agent(lab: &Lab, vm: usize, token: &str) -> AgentClient {
    AgentClient {
        site: Site::lab_namespace(&lab.client_ns()),
        addr: SocketAddr::from((lab.addrs.guest(vm), CONTROL_PORT)),
        token: token.to_string(),
    }
}

/// How the lab's guest `vm` is reached: everything from the client
/// namespace.
pub(crate) fn lab_endpoints(lab: &Lab, vm: usize, agent: &AgentClient) -> Endpoints {
    let guest = lab.addrs.guest(vm);
    Endpoints {
        agent: agent.clone(),
        reflector: SocketAddr::from((guest, REFLECTOR_PORT)),
        guest: guest.into(),
        client: Site::lab_namespace(&lab.client_ns()),
        client_addr: lab.addrs.client.into(),
        announce_interface: Some(CLIENT_IF.into()),
    }
}

impl LocalLab {
    /// Finds the guest kernel and the agent for `scenario` (failing before
    /// anything is made if one is missing) and builds the lab's
    /// namespaces and links; no QEMU runs yet. `extras` are host programs
    /// to ship into the guest image (the benchmarks' tools).
    pub fn create(scenario: &Scenario, agent: Option<&Path>, extras: Vec<PathBuf>) -> Result<Self> {
        let (kernel, agent_binary, lab, token) = lab_parts(scenario, agent)?;
        let dir = lab.state_dir.clone();
        let member = Placement {
            links: links::ShapedLinks::new(&lab),
            lab: Arc::new(lab),
            index: 0,
            dir,
        };
        Ok(Self::new(
            member,
            scenario,
            kernel,
            agent_binary,
            extras,
            token,
        ))
    }

    /// VM `index` of a fleet on the shared `lab`, its files in the lab's
    /// state folder under `id`, its traffic on the lab's shaped `links`
    /// (one set for all its VMs); no QEMU runs yet.
    pub fn on_shared_lab(
        lab: Arc<Lab>,
        links: links::ShapedLinks,
        index: usize,
        id: &str,
        scenario: &Scenario,
        kernel: KernelChoice,
        agent_binary: PathBuf,
    ) -> Result<Self> {
        let dir = lab.state_dir.join(id);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let member = Placement {
            lab,
            index,
            dir,
            links,
        };
        Ok(Self::new(
            member,
            scenario,
            kernel,
            agent_binary,
            Vec::new(),
            random_token()?,
        ))
    }

    fn new(
        at: Placement,
        scenario: &Scenario,
        kernel: KernelChoice,
        agent_binary: PathBuf,
        extras: Vec<PathBuf>,
        token: String,
    ) -> Self {
        let Placement {
            lab,
            index,
            dir,
            links,
        } = at;
        let guest_addr = lab.addrs.guest(index);
        let agent = lab_agent(&lab, index, &token);
        Self {
            index,
            dir,
            accel: "tcg",
            accel_note: String::new(),
            agent,
            guest_addr,
            qemu_cmdlines: Vec::new(),
            scenario: scenario.clone(),
            kernel,
            agent_binary,
            extras,
            image: None,
            token,
            running: None,
            standby: None,
            generation: 0,
            next_task_log: None,
            debian: None,
            links,
            lab,
        }
    }

    /// The port the destination QEMU listens on for this VM's migration.
    fn migration_port(&self) -> u16 {
        MIGRATION_PORT + self.index as u16
    }

    /// The reflector's address, for the probe.
    pub fn reflector(&self) -> SocketAddr {
        SocketAddr::from((self.guest_addr, REFLECTOR_PORT))
    }

    /// Has the next Proxmox-flow migration write its task log to `log`.
    pub fn set_task_log(&mut self, log: TaskLogWriter) {
        self.next_task_log = Some(log);
    }

    /// Node a's and node b's addresses on the migration link.
    pub fn migration_addrs(&self) -> [std::net::Ipv4Addr; 2] {
        [Node::A, Node::B].map(|n| self.lab.addrs.migration_addr(n))
    }

    /// The shaped links' record of this migration (from its start, the
    /// mirror's included, to the harness seeing its end), and a migration
    /// that could not finish over a rate-limited link said to be that.
    fn record_links(&self, rec: &mut MigrationRecord, started_ns: i64) {
        let qemu_limit = self.scenario.migration.max_bandwidth_mib_s * 8.388608;
        rec.links = self.links.record(
            started_ns,
            rec.finished_ns.unwrap_or_else(now_ns),
            qemu_limit,
        );
        let Some(rate) = self.links.migration_rate() else {
            return;
        };
        if let Some(e) = rec
            .error
            .as_mut()
            .filter(|e| e.contains("did not finish within"))
        {
            let dirty = rec.hypervisor.as_ref().and_then(|h| h.dirty_rate_mib_s);
            e.push_str(&format!(
                "; it could not converge over the {rate} Mbit/s migration link{}",
                dirty.map_or(String::new(), |d| format!(
                    " while the guest dirtied {d:.1} MiB/s ({:.0} Mbit/s)",
                    d * 8.388608
                ))
            ));
        }
    }

    /// The VM's disk: the scenario's, or the Debian guest's root disk
    /// (its image's size, raw; shared storage unless `[vm.disk]` says).
    fn disk(&self) -> Option<crate::scenario::disk::DiskSpec> {
        let d = self.scenario.vm.disk.clone();
        if self.scenario.vm.image != GuestKind::Debian {
            return d;
        }
        let mut d = d.unwrap_or(crate::scenario::disk::DiskSpec {
            storage: DiskStorage::Shared,
            ..Default::default()
        });
        d.size_mib = debian::IMAGE_MIB;
        Some(d)
    }

    /// The node the VM runs on.
    pub fn vm_node(&self) -> Option<Node> {
        self.running.as_ref().map(|q| q.node)
    }

    /// PIDs of the QEMU processes alive now (running, standby).
    pub fn qemu_pids(&self) -> Vec<u32> {
        self.running
            .iter()
            .chain(self.standby.iter())
            .map(|q| q.pid)
            .collect()
    }

    async fn spawn(
        &mut self,
        node: Node,
        incoming: bool,
        accel: &'static str,
    ) -> Result<QemuProcess> {
        self.generation += 1;
        let tag = format!("vm{}-{}-{}", self.index, node.letter(), self.generation);
        let dir = &self.dir;
        let image = self.image.as_ref().context("no guest image yet")?;
        let disk = self.disk();
        let disk = disk.as_ref();
        if let Some(d) = disk {
            let path = storage::image_path(dir, d, node);
            // A destination on local storage gets an empty volume each time;
            // the first source and shared storage, one made once (the
            // Debian guest's: a copy of its image with the run's token).
            if incoming && d.storage == DiskStorage::Local {
                storage::create_image(&path, d)?;
            } else if !path.exists() {
                match &self.debian {
                    Some(img) => debian::copy_for_run(img, &path, &self.token, dir)?,
                    None => storage::create_image(&path, d)?,
                }
            }
        }
        let (kernel, initrd, append) = match &self.debian {
            Some(d) => (d.kernel.clone(), d.initrd.clone(), debian::kernel_cmdline()),
            None => (
                image.kernel.vmlinuz.clone(),
                image.initramfs.clone(),
                kernel_append(
                    &format!("{}/{}", self.guest_addr, self.lab.addrs.lan_prefix),
                    &self.token,
                    CONTROL_PORT,
                    REFLECTOR_PORT,
                ),
            ),
        };
        let mirrored = disk.is_some_and(|d| d.storage == DiskStorage::Local);
        let spec = QemuSpec {
            name: format!("lmig-{}-{tag}", self.lab.id),
            accel,
            memory_mib: self.scenario.vm.memory_mib,
            vcpus: self.scenario.vm.vcpus,
            nic: self.scenario.vm.nic,
            mac: format!("52:54:00:4c:4d:{:02x}", self.guest_addr.octets()[3]),
            tap: self.lab.tap(self.index),
            kernel,
            initrd,
            append,
            qmp: dir.join(format!("{tag}.qmp")),
            console: dir.join(format!("{tag}.console.log")),
            incoming,
            paused: incoming
                && (self.scenario.migration.flow == MigrationFlow::Proxmox || mirrored),
            disk: disk.map(|d| storage::qemu_disk(dir, d, node)),
        };
        let cmdline = format!(
            "ip netns exec {} {} {}",
            self.lab.node_ns(node),
            crate::backend::local::qemu::process::QEMU,
            spec.args()
                .iter()
                .map(|a| if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    a.clone()
                })
                .collect::<Vec<_>>()
                .join(" ")
        );
        self.qemu_cmdlines.push(self.redact(&cmdline));
        let mut q = QemuProcess::spawn(
            &self.lab.node_ns(node),
            node,
            spec,
            dir.join(format!("{tag}.stderr.log")),
        )?;
        q.connect_qmp().await?;
        Ok(q)
    }

    async fn boot_with(
        &mut self,
        accel: &'static str,
        deadline: Duration,
    ) -> Result<wire::control::Health> {
        let q = self.spawn(Node::A, false, accel).await?;
        self.running = Some(q);
        let agent = self.agent.clone();
        let running = self
            .running
            .as_mut()
            .context("unreachable: VM just started")?;
        let console = running.spec.console.clone();
        let health = agent
            .wait_ready(deadline, || {
                if let Some(st) = running.exit_status() {
                    bail!(
                        "QEMU exited while the guest booted ({st}); last console lines:\n    {}\n  QEMU said: {}",
                        tail_of(&console, 8),
                        running.stderr_tail()
                    );
                }
                Ok(())
            })
            .await;
        match health {
            Ok(h) => {
                self.accel = accel;
                Ok(h)
            }
            Err(e) => {
                let tail = tail_of(&console, 8);
                if let Some(mut q) = self.running.take() {
                    q.kill().await;
                }
                Err(e.context(format!(
                    "booting under {accel}; last console lines:\n    {tail}"
                )))
            }
        }
    }

    /// Boots the guest on node-a and starts a standby destination on
    /// node-b. `auto` tries KVM first and keeps it only if the guest really
    /// answers within [`KVM_PROOF_DEADLINE`].
    pub async fn boot(
        &mut self,
        accel: Acceleration,
        live: &Live,
    ) -> Result<wire::control::Health> {
        let boot_deadline = Duration::from_secs_f64(self.scenario.vm.boot_timeout_s);
        let health = match accel {
            Acceleration::Tcg => {
                self.accel_note = "tcg requested".into();
                self.boot_with("tcg", boot_deadline).await?
            }
            Acceleration::Kvm => {
                self.accel_note = "kvm requested".into();
                self.boot_with("kvm", boot_deadline).await?
            }
            Acceleration::Auto => self.boot_auto(boot_deadline, live).await?,
        };
        self.ensure_standby().await?;
        Ok(health)
    }

    /// `auto`: KVM if `/dev/kvm` opens, no failed proof is remembered for
    /// this boot ([`kvm_proof`]), and a guest answers under it within
    /// [`KVM_PROOF_DEADLINE`]; TCG otherwise, saying why in one line (the
    /// failed proof's whole error goes to `logs/kvm-proof.log`).
    async fn boot_auto(
        &mut self,
        boot_deadline: Duration,
        live: &Live,
    ) -> Result<wire::control::Health> {
        let kvm_usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if !kvm_usable {
            self.accel_note = "auto: /dev/kvm cannot be opened, so tcg".into();
            return self.boot_with("tcg", boot_deadline).await;
        }
        let boot = kvm_proof::boot_id();
        let file = kvm_proof::path();
        if let Some(f) = boot
            .as_deref()
            .and_then(|b| kvm_proof::remembered(&file, b))
        {
            self.accel_note = format!(
                "auto: kvm failed earlier in this boot ({}), so tcg without trying again (delete {} to try)",
                f.reason,
                file.display()
            );
            live.println(&format!("acceleration {}", self.accel_note));
            return self.boot_with("tcg", boot_deadline).await;
        }
        live.println("acceleration auto: trying kvm (a guest must answer within 12 s)...");
        match self.boot_with("kvm", KVM_PROOF_DEADLINE).await {
            Ok(h) => {
                self.accel_note = "auto: the guest came up under kvm".into();
                Ok(h)
            }
            Err(e) => {
                let reason = kvm_proof::one_line(&e);
                let log = self.dir.join("kvm-proof.log");
                let _ = std::fs::write(&log, format!("{e:?}\n"));
                if let Some(b) = boot {
                    kvm_proof::remember(
                        &file,
                        &kvm_proof::Failure {
                            boot_id: b,
                            reason: reason.clone(),
                        },
                    );
                }
                self.accel_note = format!(
                    "auto: /dev/kvm opens but {reason}; fell back to tcg (the whole error is in logs/kvm-proof.log; later runs in this boot skip the proof)"
                );
                live.println(&format!("acceleration auto: {reason}; falling back to tcg"));
                self.boot_with("tcg", boot_deadline).await
            }
        }
    }

    /// Makes sure a destination QEMU waits on the node the VM is not on.
    pub async fn ensure_standby(&mut self) -> Result<()> {
        let target = self.running.as_ref().context("no running VM")?.node.other();
        if let Some(s) = self.standby.as_mut() {
            if s.exit_status().is_none() && s.node == target {
                return Ok(());
            }
            s.kill().await;
        }
        self.standby = None;
        let q = self.spawn(target, true, self.accel).await?;
        self.standby = Some(q);
        Ok(())
    }

    /// Pauses the running guest with QMP `stop`, waits until `d` has
    /// passed since its `STOP` event, then `cont`. Returns QEMU's
    /// timestamps of `STOP` and `RESUME`: the pause as the host timed it.
    pub async fn pause_guest(&self, d: Duration) -> Result<(i64, i64)> {
        let q = self.running.as_ref().context("no running VM")?.qmp()?;
        let from = q.event_count();
        q.execute("stop", None).await.context("QMP stop")?;
        let stop = q
            .wait_event("STOP", from, Duration::from_secs(5))
            .await
            .context("QEMU sent no STOP event after `stop`")?;
        let stop_ns = stop.qemu_ts_ns.unwrap_or(stop.host_rx_ns);
        let left = stop_ns + d.as_nanos() as i64 - now_ns();
        if left > 0 {
            tokio::time::sleep(Duration::from_nanos(left as u64)).await;
        }
        let from = q.event_count();
        q.execute("cont", None).await.context("QMP cont")?;
        let resume = q
            .wait_event("RESUME", from, Duration::from_secs(5))
            .await
            .context("QEMU sent no RESUME event after `cont`")?;
        Ok((stop_ns, resume.qemu_ts_ns.unwrap_or(resume.host_rx_ns)))
    }

    /// Cuts the guest off the network for about `d` ([`cut_tap`] on the
    /// running node's tap): start, end and their uncertainty, ns.
    pub async fn cut_network(&self, d: Duration) -> Result<(i64, i64, i64)> {
        let node = self.running.as_ref().context("no running VM")?.node;
        cut_tap(self.lab.node_ns(node), self.lab.tap(self.index), d).await
    }

    /// Ends every QEMU of this lab (by PID) and removes the lab.
    pub async fn shutdown(&mut self) -> Result<()> {
        for q in [self.running.take(), self.standby.take()]
            .into_iter()
            .flatten()
        {
            let mut q = q;
            q.quit().await;
        }
        self.links.stop();
        // The last VM on a shared lab removes it (dropping the lab does
        // too, when another VM's teardown failed before).
        match Arc::get_mut(&mut self.lab) {
            Some(lab) => lab.teardown(),
            None => Ok(()),
        }
    }

    /// `text` with the agent's token replaced by `<redacted>`.
    fn redact(&self, text: &str) -> String {
        if self.token.is_empty() {
            return text.to_string();
        }
        text.replace(&self.token, "<redacted>")
    }

    /// Builds the guest image (the agent as `/init`, the NIC modules and
    /// the extras) in the lab's state folder.
    fn build_image(&mut self) -> Result<()> {
        let image = build_image_with(
            &self.kernel,
            &self.agent_binary,
            self.scenario.vm.nic,
            &self.dir,
            &self.extras,
            self.scenario
                .vm
                .disk
                .as_ref()
                .map_or(&[], |d| d.bus.kernel_modules()),
        )
        .context("building the guest image")?;
        self.image = Some(image);
        Ok(())
    }

    /// The guest image's provenance (kernel, initramfs, agent, hashes), once built.
    pub fn guest_image(&self) -> Option<&GuestImage> {
        self.image.as_ref()
    }

    /// Copies consoles and QEMU logs into `dest`, with the agent's token
    /// redacted.
    pub fn collect_logs(&self, dest: &Path) -> Result<()> {
        std::fs::create_dir_all(dest)
            .with_context(|| format!("cannot create {}", dest.display()))?;
        for e in std::fs::read_dir(&self.dir)?.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".log") {
                // The guest's kernel prints its command line, which
                // carries the agent's token.
                let bytes =
                    std::fs::read(e.path()).with_context(|| format!("cannot read {name}"))?;
                let text = String::from_utf8_lossy(&bytes);
                std::fs::write(dest.join(&name), self.redact(&text))
                    .with_context(|| format!("cannot write {name}"))?;
            }
        }
        Ok(())
    }

    fn qmp_capabilities(&self) -> Value {
        let mut caps = vec![json!({"capability": "events", "state": true})];
        for (name, on) in &self.scenario.migration.capabilities {
            if name != "events" {
                caps.push(json!({"capability": name, "state": on}));
            }
        }
        json!({ "capabilities": caps })
    }

    fn extra_parameters(&self) -> serde_json::Map<String, Value> {
        self.scenario
            .migration
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
            .collect()
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the pieces are independent"
    )]
    async fn drive(
        &self,
        src: &mut QemuProcess,
        dst: &mut QemuProcess,
        rec: &mut MigrationRecord,
        req: &MigrationRequest<'_>,
        dst_events_from: usize,
        live: &Live,
        pve: Option<&mut ProxmoxPoll>,
    ) -> Result<()> {
        let disk = self.disk();
        if let Some(p) = pve.as_deref() {
            self.proxmox_preamble(p, src.node, dst.node);
        }
        let mut mirror = match &disk {
            Some(d) if d.storage == DiskStorage::Local => Some(
                storage::Mirror::start(
                    src,
                    dst,
                    &storage::qemu_disk(&self.dir, d, src.node),
                    d,
                    std::net::SocketAddrV4::new(
                        self.lab.addrs.migration_addr(dst.node),
                        storage::NBD_PORT + self.index as u16,
                    ),
                    (self.scenario.migration.max_bandwidth_mib_s * 1048576.0) as u64,
                    pve.as_deref().map(|p| p.log.clone()),
                )
                .await?,
            ),
            _ => None,
        };
        let moved = self
            .move_and_switch(src, dst, rec, req, live, pve, mirror.as_mut())
            .await;
        if let Some(d) = &disk {
            rec.storage = Some(match mirror {
                Some(m) => {
                    if moved.is_err() || !completed(rec) {
                        m.abandon(src).await;
                    }
                    let cont = moved.as_ref().ok().copied().flatten();
                    let mut r = m.record(d);
                    r.cont_ns = cont;
                    r
                }
                None => storage::shared_record(d),
            });
        }
        moved?;
        conclude(dst, rec, dst_events_from).await
    }

    /// The mirror made ready and synced, then RAM, then the switchover:
    /// the mirror completed, the NBD server stopped, and `cont` (when the
    /// destination waits paused). Returns when `cont` was sent.
    #[expect(clippy::too_many_arguments, reason = "one migration's parts")]
    async fn move_and_switch(
        &self,
        src: &mut QemuProcess,
        dst: &mut QemuProcess,
        rec: &mut MigrationRecord,
        req: &MigrationRequest<'_>,
        live: &Live,
        mut pve: Option<&mut ProxmoxPoll>,
        mut mirror: Option<&mut storage::Mirror>,
    ) -> Result<Option<i64>> {
        let timeout = Duration::from_secs_f64(self.scenario.migration.timeout_s);
        if let Some(m) = mirror.as_deref_mut() {
            m.wait_ready(src, timeout, req.cancel).await?;
            m.actively_sync(src).await?;
        }
        let uri = format!(
            "tcp:{}:{}",
            self.lab.addrs.migration_addr(dst.node),
            self.migration_port()
        );
        match pve.as_deref() {
            Some(p) => self.configure_proxmox(src, dst, &uri, p).await?,
            None => self.configure(src, dst, &uri).await?,
        }
        let t0 = Instant::now();
        rec.migrate_cmd_ns = Some(now_ns());
        if let Some(p) = pve.as_deref_mut() {
            p.migrate_sent();
        }
        src.qmp()?
            .execute("migrate", Some(json!({ "uri": uri })))
            .await
            .context("starting the migration")?;
        self.poll_until_finished(src, dst, rec, req, t0, live, pve.as_deref_mut())
            .await?;
        rec.finished_ns = Some(now_ns());
        settle_final_stats(src, rec).await?;
        let ended = match pve.as_deref_mut() {
            Some(p) => proxmox_notice_end(p, src, t0).await?,
            None => completed(rec),
        };
        if !ended {
            return Ok(None); // conclude() says what QEMU said
        }
        if let Some(m) = mirror {
            m.complete(src).await?;
            m.stop_nbd(dst).await?;
        }
        if !dst.spec.paused {
            return Ok(None);
        }
        // Proxmox's phase 3: the config moves to the target node, then the
        // tunnel's `resume` makes the target `cont`.
        let cont_ns = now_ns();
        if let Some(p) = pve {
            p.cont_ns = Some(cont_ns);
        }
        dst.qmp()?
            .execute("cont", None)
            .await
            .context("resuming the destination (`cont`)")?;
        Ok(Some(cont_ns))
    }

    /// qemu-server's first lines: the migration, its local disks and their
    /// volumes on the target, the target VM started, the tunnel.
    fn proxmox_preamble(&self, p: &ProxmoxPoll, src: Node, dst: Node) {
        use measure::platform::proxmox::tasklog::LineKind as L;
        let log = &p.log;
        let node = format!("node-{}", dst.letter());
        let vmid = proxmox_flow::VMID;
        log.log(&L::StartingMigration {
            vmid,
            node: node.clone(),
            ip: self.lab.addrs.migration_addr(dst).to_string(),
        });
        let disk = self.disk();
        let disk = disk.as_ref();
        let local = disk.filter(|d| d.storage == DiskStorage::Local);
        let volume = |n: Node| {
            format!(
                "local:{vmid}/vm-{vmid}-disk-{}.{}",
                n.letter(),
                local.map_or("raw", |d| d.format.as_str())
            )
        };
        if local.is_some() {
            log.log(&L::FoundLocalDisk {
                kind: "local".into(),
                volume: volume(src),
                reason: Some("attached".into()),
            });
        }
        log.log(&L::StartingRemoteVm { vmid, node });
        if local.is_some() {
            log.log(&L::VolumeOnTarget {
                source: volume(src),
                target: volume(dst),
            });
        }
        log.log(&L::StartRemoteTunnel);
    }

    /// qemu-server's phase-2 setup: its capabilities and parameters, each
    /// step in the task log as it writes it.
    async fn configure_proxmox(
        &self,
        src: &QemuProcess,
        dst: &QemuProcess,
        uri: &str,
        p: &ProxmoxPoll,
    ) -> Result<()> {
        use measure::platform::proxmox::tasklog::LineKind as L;
        let log = &p.log;
        log.log(&L::StartingLiveMigration { uri: uri.into() });
        log.log(&L::SetCapabilities);
        let caps = json!({ "capabilities": [
            {"capability": "events", "state": true},
            {"capability": "auto-converge", "state": true},
            {"capability": "xbzrle", "state": true},
        ]});
        for (q, side) in [(src, "source"), (dst, "destination")] {
            q.qmp()?
                .execute("migrate-set-capabilities", Some(caps.clone()))
                .await
                .with_context(|| format!("setting qemu-server's capabilities on the {side}"))?;
        }
        let bandwidth = (self.scenario.migration.max_bandwidth_mib_s * 1048576.0) as u64;
        let cache = proxmox_flow::xbzrle_cache_bytes(self.scenario.vm.memory_mib);
        log.log(&L::SpeedLimit {
            bytes_per_s: bandwidth,
        });
        log.log(&L::DowntimeLimit { ms: p.downtime_ms });
        log.log(&L::Cachesize { bytes: cache });
        log.log(&L::SetParameters);
        let params = json!({"max-bandwidth": bandwidth, "downtime-limit": p.downtime_ms as u64, "xbzrle-cache-size": cache});
        src.qmp()?
            .execute("migrate-set-parameters", Some(params))
            .await
            .context("setting qemu-server's parameters on the source")?;
        dst.qmp()?
            .execute("migrate-incoming", Some(json!({ "uri": uri })))
            .await
            .context("starting the destination's listener")?;
        log.log(&L::StartMigrateCommand { uri: uri.into() });
        Ok(())
    }

    /// Sets the scenario's capabilities and parameters on both sides and
    /// starts the destination's listener on `uri`.
    async fn configure(&self, src: &QemuProcess, dst: &QemuProcess, uri: &str) -> Result<()> {
        let caps = self.qmp_capabilities();
        let extra = self.extra_parameters();
        let d = dst.qmp()?;
        d.execute("migrate-set-capabilities", Some(caps.clone()))
            .await
            .context("setting capabilities on the destination")?;
        if !extra.is_empty() {
            d.execute("migrate-set-parameters", Some(Value::Object(extra.clone())))
                .await
                .context("setting parameters on the destination")?;
        }
        d.execute("migrate-incoming", Some(json!({ "uri": uri })))
            .await
            .context("starting the destination's listener")?;
        let mut params = extra;
        params.insert(
            "max-bandwidth".into(),
            json!((self.scenario.migration.max_bandwidth_mib_s * 1048576.0) as u64),
        );
        params.insert(
            "downtime-limit".into(),
            json!(self.scenario.migration.downtime_limit_ms),
        );
        let s = src.qmp()?;
        s.execute("migrate-set-capabilities", Some(caps))
            .await
            .context("setting capabilities on the source")?;
        s.execute("migrate-set-parameters", Some(Value::Object(params)))
            .await
            .context("setting parameters on the source")?;
        Ok(())
    }

    /// Samples `query-migrate` every [`SAMPLE_INTERVAL`] until QEMU says the
    /// migration ended, injecting the repetition's faults when they are due
    /// and cancelling on the user's request or after `migration.timeout_s`.
    #[expect(clippy::too_many_arguments, reason = "one migration's parts")]
    async fn poll_until_finished(
        &self,
        src: &mut QemuProcess,
        dst: &QemuProcess,
        rec: &mut MigrationRecord,
        req: &MigrationRequest<'_>,
        t0: Instant,
        live: &Live,
        mut pve: Option<&mut ProxmoxPoll>,
    ) -> Result<()> {
        let of = req.of;
        let mut faults: Vec<_> = req.faults.clone();
        let timeout = Duration::from_secs_f64(self.scenario.migration.timeout_s);
        let mut next = tokio::time::Instant::from_std(t0) + SAMPLE_INTERVAL;
        let mut cancel_sent = false;
        loop {
            tokio::time::sleep_until(next).await;
            next += SAMPLE_INTERVAL;
            let elapsed = t0.elapsed();
            inject_due_faults(&mut faults, elapsed, src, dst, rec, live);
            if req.cancel.load(Ordering::SeqCst) && !cancel_sent {
                cancel_sent = true;
                rec.status = RepStatus::Interrupted;
                let _ = src.qmp()?.execute("migrate_cancel", None).await;
            }
            let raw = match src.qmp()?.execute("query-migrate", None).await {
                Ok(v) => v,
                Err(e) => {
                    if let Some(st) = src.exit_status() {
                        rec.vm_lost = true;
                        bail!("the source QEMU (pid {}) exited during the migration ({st}); the VM is lost", src.pid);
                    }
                    return Err(e).context("query-migrate on the source");
                }
            };
            let info = MigrationInfo::from_value(&raw);
            let host_ns = now_ns();
            live.update(&progress_line(
                req.repetition,
                of,
                rec,
                &info,
                (req.status_suffix)(),
            ));
            if let Some(p) = pve.as_deref_mut().filter(|p| p.due(elapsed)) {
                if let PollAction::SetDowntime(ms) = p.observe(&raw, elapsed) {
                    let set = json!({ "downtime-limit": ms });
                    let _ = src
                        .qmp()?
                        .execute("migrate-set-parameters", Some(set))
                        .await;
                }
            }
            let finished = info.is_finished();
            rec.samples.push(Sample { host_ns, info, raw });
            if finished {
                return Ok(());
            }
            if elapsed > timeout && !cancel_sent {
                cancel_sent = true;
                let _ = src.qmp()?.execute("migrate_cancel", None).await;
                rec.error = Some(format!(
                    "the migration did not finish within {:.0} s (migration.timeout_s); cancelled",
                    timeout.as_secs_f64()
                ));
            }
        }
    }
}

/// Kills the QEMU each fault names once its time after `migrate` has come,
/// and records it.
fn inject_due_faults(
    faults: &mut Vec<&FaultSpec>,
    elapsed: Duration,
    src: &QemuProcess,
    dst: &QemuProcess,
    rec: &mut MigrationRecord,
    live: &Live,
) {
    let (due, later): (Vec<&FaultSpec>, Vec<&FaultSpec>) = faults
        .iter()
        .partition(|f| elapsed >= Duration::from_millis(f.after_ms));
    *faults = later;
    for f in due {
        let (victim, what) = match f.kill {
            FaultKind::Destination => (dst, "destination"),
            FaultKind::Source => (src, "source"),
        };
        kill_pid(victim.pid as i32);
        rec.faults.push(format!(
            "fault injected: killed the {what} QEMU (pid {}) with SIGKILL {} ms after migrate",
            victim.pid,
            elapsed.as_millis()
        ));
        live.println(rec.faults.last().map_or("", |s| s.as_str()));
    }
}

/// QEMU sets the status to `completed` a moment before it fills in
/// `total-time` and `downtime` (seen with 7.2: a completed reply with both
/// 0): asks again until they are there, and keeps the last reading.
async fn settle_final_stats(src: &QemuProcess, rec: &mut MigrationRecord) -> Result<()> {
    for _ in 0..25 {
        let Some(last) = rec.samples.last() else {
            break;
        };
        let done = last.info.status.as_deref() == Some("completed");
        if !done || last.info.total_time.unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Ok(raw) = src.qmp()?.execute("query-migrate", None).await else {
            break;
        };
        rec.samples.push(Sample {
            host_ns: now_ns(),
            info: MigrationInfo::from_value(&raw),
            raw,
        });
    }
    rec.final_info = Some(
        rec.samples
            .last()
            .map(|s| s.info.clone())
            .unwrap_or_default(),
    );
    Ok(())
}

/// The end of qemu-server's phase 2: its next poll notices the completion
/// (up to a poll after QEMU). The guest stays paused on the destination
/// (`-S`) from then through the cleanup. Whether it completed.
async fn proxmox_notice_end(p: &mut ProxmoxPoll, src: &QemuProcess, t0: Instant) -> Result<bool> {
    while p.ended.is_none() {
        tokio::time::sleep(p.until_next(t0.elapsed())).await;
        let raw = src.qmp()?.execute("query-migrate", None).await?;
        p.observe(&raw, t0.elapsed());
    }
    Ok(p.ended == Some(true))
}

/// Whether QEMU's last reading says the migration completed.
fn completed(rec: &MigrationRecord) -> bool {
    rec.final_info.as_ref().and_then(|i| i.status.as_deref()) == Some("completed")
}

/// A completed migration must also see the destination resume the guest;
/// anything else fails with what QEMU said (and whether the destination
/// died).
async fn conclude(
    dst: &mut QemuProcess,
    rec: &mut MigrationRecord,
    dst_events_from: usize,
) -> Result<()> {
    let last = rec.final_info.clone().unwrap_or_default();
    let status = last.status.clone().unwrap_or_else(|| "unknown".into());
    if status == "completed" {
        let resumed = dst
            .qmp()?
            .wait_event("RESUME", dst_events_from, Duration::from_secs(10))
            .await;
        if resumed.is_none() {
            let why = dst.exit_status().map_or("it did not say why".into(), |s| {
                format!("its QEMU exited ({s})")
            });
            bail!("QEMU reported the migration completed, but the destination did not resume the guest within 10 s: {why}");
        }
        rec.status = RepStatus::Completed;
        return Ok(());
    }
    let mut msg = match (&rec.error, rec.status) {
        (Some(e), _) => e.clone(),
        (None, RepStatus::Interrupted) => "interrupted; migration cancelled".into(),
        (None, _) => format!(
            "migration {status}: {}",
            last.error_desc.as_deref().unwrap_or("QEMU gave no reason")
        ),
    };
    // Give a killed destination a moment to be reaped so we can say so.
    tokio::time::sleep(Duration::from_millis(50)).await;
    if let Some(st) = dst.exit_status() {
        msg.push_str(&format!(
            "; the destination QEMU (pid {}) exited ({st})",
            dst.pid
        ));
    }
    bail!(msg)
}

/// The live line during a migration: pass, MiB sent and left.
pub(crate) fn progress_line(
    rep: u32,
    of: u32,
    rec: &MigrationRecord,
    info: &MigrationInfo,
    suffix: String,
) -> String {
    let ram = info.ram.clone().unwrap_or_default();
    let mib = |b: Option<i64>| b.map_or("?".into(), |v| format!("{:.1}", v as f64 / 1048576.0));
    format!(
        "rep {rep}/{of} {}->{} {:<9} pass {} sent {} MiB left {} MiB | {suffix}",
        rec.source,
        rec.destination,
        info.status.as_deref().unwrap_or("?"),
        ram.dirty_sync_count.map_or("?".into(), |p| p.to_string()),
        mib(ram.transferred),
        mib(ram.remaining),
    )
}

impl Backend for LocalLab {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run_id(&self) -> &str {
        &self.lab.id
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn notices(&self) -> Vec<String> {
        self.lab.swept.sweep_lines()
    }

    async fn prepare(&mut self, scenario: &Scenario, live: &Live) -> Result<Prepared> {
        self.scenario = scenario.clone();
        self.build_image()?;
        self.links.apply(&scenario.link)?;
        if scenario.vm.image == GuestKind::Debian {
            let addr = format!("{}/{}", self.guest_addr, self.lab.addrs.lan_prefix);
            self.debian = Some(debian::ensure(&self.agent_binary, &addr, live)?);
        }
        let health = self.boot(scenario.acceleration, live).await?;
        Ok(Prepared {
            health,
            acceleration: self.accel.to_string(),
            acceleration_note: self.accel_note.clone(),
        })
    }

    fn endpoints(&self) -> Endpoints {
        lab_endpoints(&self.lab, self.index, &self.agent)
    }

    fn clock_alignment(&self) -> ClockAlignment {
        ClockAlignment::shared_host_clock()
    }

    fn set_scenario(&mut self, s: &Scenario) {
        self.scenario = s.clone();
    }

    async fn pause_guest(&self, d: Duration) -> Result<(i64, i64)> {
        LocalLab::pause_guest(self, d).await
    }

    async fn cut_network(&self, d: Duration) -> Result<(i64, i64, i64)> {
        LocalLab::cut_network(self, d).await
    }

    fn hypervisor_version(&self) -> Option<String> {
        qemu::process::qemu_version()
    }

    fn scratch_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    fn vm_facts(&self) -> Option<Value> {
        let mut v = self
            .image
            .as_ref()
            .and_then(|i| serde_json::to_value(i).ok())?;
        if let Some(d) = &self.debian {
            v["debian"] = serde_json::to_value(d).ok()?;
        }
        Some(v)
    }

    fn collect(&self, bundle: &Bundle) -> Result<()> {
        bundle.write(
            "qemu-cmdlines.txt",
            (self.qemu_cmdlines.join("\n\n") + "\n").as_bytes(),
        )?;
        for (name, stats) in self.links.stats() {
            bundle.write_json(&format!("links/{name}.json"), &stats)?;
        }
        self.collect_logs(&bundle.dir.join("logs"))
    }

    async fn teardown(&mut self) -> Result<()> {
        self.shutdown().await
    }

    async fn read_disk(&self, len: u64) -> Result<Option<super::DiskRead>> {
        let (Some(d), Some(q)) = (&self.disk(), &self.running) else {
            return Ok(None);
        };
        let image = storage::image_path(&self.dir, d, q.node);
        let data = storage::read_image(&image, d, len, &self.dir)?;
        Ok(Some(super::DiskRead {
            image: image.display().to_string(),
            node: q.node.letter().into(),
            data,
        }))
    }

    async fn migrate(
        &mut self,
        req: &MigrationRequest<'_>,
        live: &Live,
    ) -> Result<MigrationRecord> {
        if let Some(q) = self.running.as_mut() {
            if let Some(st) = q.exit_status() {
                let console = tail_of(&q.spec.console, 6);
                bail!(
                    "the VM's QEMU (pid {}) exited before this migration ({st}); the guest's console ends with:\n    {console}",
                    q.pid
                );
            }
        }
        self.links.apply(&self.scenario.link)?;
        self.ensure_standby().await?;
        let mut src = self.running.take().context("no running VM")?;
        let Some(mut dst) = self.standby.take() else {
            self.running = Some(src);
            bail!("no destination QEMU");
        };
        let mut rec =
            MigrationRecord::starting(req.repetition, src.node.letter(), dst.node.letter());
        let started_ns = now_ns();
        let s0 = src.qmp.as_ref().map_or(0, |q| q.event_count());
        let d0 = dst.qmp.as_ref().map_or(0, |q| q.event_count());
        let mut pve = (self.scenario.migration.flow == MigrationFlow::Proxmox).then(|| {
            ProxmoxPoll::new(
                self.next_task_log.take().unwrap_or_default(),
                self.scenario.migration.downtime_limit_ms as f64,
            )
        });
        let outcome = self
            .drive(&mut src, &mut dst, &mut rec, req, d0, live, pve.as_mut())
            .await;
        if let Err(e) = outcome {
            if rec.status != RepStatus::Interrupted {
                rec.status = RepStatus::Failed;
            }
            rec.error = Some(format!("{e:#}"));
            if rec.finished_ns.is_none() {
                rec.finished_ns = Some(now_ns());
            }
        }

        for (q, side, from) in [(&src, "source", s0), (&dst, "destination", d0)] {
            if let Some(qmp) = &q.qmp {
                rec.events
                    .extend(qmp.events_since(from).into_iter().map(|event| SideEvent {
                        side: side.into(),
                        node: q.node.letter().into(),
                        event,
                    }));
            }
        }
        rec.events
            .sort_by_key(|e| e.event.qemu_ts_ns.unwrap_or(e.event.host_rx_ns));
        measure::migration::from_qmp::complete(&mut rec);
        self.record_links(&mut rec, started_ns);
        if let Some(p) = &pve {
            proxmox_flow::record_task_log(p, &mut rec);
        }
        if rec.status == RepStatus::Completed {
            src.quit().await;
            self.running = Some(dst);
        } else {
            dst.kill().await;
            if src.exit_status().is_some() {
                rec.vm_lost = true;
                src.kill().await;
            } else {
                self.running = Some(src);
            }
        }
        if !rec.vm_lost {
            // Prepare the next destination now, during the pause after.
            if let Err(e) = self.ensure_standby().await {
                live.println(&format!(
                    "warning: cannot start the next destination yet: {e:#}"
                ));
            }
        }
        Ok(rec)
    }
}
