//! The libvirt backend: the lab's guest as a libvirt domain, migrated
//! between two real libvirt daemons with `virsh migrate --live --p2p`.
//!
//! The lab's namespaces and links are the local backend's ([`Lab`]); on
//! top of them each node runs its own `libvirtd` ([`daemon`]), and the
//! guest is a defined domain ([`domain`]) on the node's tap. Each
//! migration ([`migrate`]) records three views beside the client's: QEMU's
//! own events and `query-migrate` (relayed by the daemon), libvirt's domain
//! events, and libvirt's completed-job statistics from both daemons.

pub mod daemon;
pub mod domain;
mod migrate;
pub mod virsh;

use super::{Backend, Capabilities, Endpoints, MigrationRequest, Prepared, Site};
use crate::backend::agent::AgentClient;
use crate::backend::local::guest::{
    build_image_with, find_agent, find_kernel, GuestImage, KernelChoice,
};
use crate::backend::local::lab::netlink::cut_tap;
use crate::backend::local::lab::{Lab, Node};
use crate::backend::local::qemu::cmdline::kernel_append;
use crate::backend::local::{random_token, tail_of, CONTROL_PORT, REFLECTOR_PORT};
use crate::bundle::Bundle;
use crate::live::Live;
use crate::scenario::{LibvirtTransport, Scenario};
use anyhow::{bail, Context, Result};
use daemon::{Daemon, DaemonSpec};
use domain::DomainSpec;
use measure::migration::record::MigrationRecord;
use measure::summary::ClockAlignment;
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use virsh::{Virsh, Watcher};

/// The backend's name in manifests.
pub const NAME: &str = "libvirt";

/// What it can do: pause (`virsh suspend`/`resume`) and cut the lab's tap;
/// libvirt sets QEMU's capabilities and parameters itself, and killing its
/// QEMUs mid-migration is not offered yet.
pub const CAPABILITIES: Capabilities = Capabilities {
    pause: true,
    network_cut: true,
    kill_qemu: false,
    qmp_knobs: false,
    disks: false,
};

/// How long one `virsh` command may take (the first call to a daemon
/// probes QEMU's capabilities: ~8 s under TCG here).
const VIRSH_DEADLINE: Duration = Duration::from_secs(60);

/// One node's daemon, its `virsh`, and its two event watchers.
struct NodeDaemon {
    node: Node,
    daemon: Daemon,
    virsh: Virsh,
    /// `virsh event --all --loop --timestamp`: libvirt's domain events.
    events: Watcher,
    /// `virsh qemu-monitor-event --loop`: QEMU's own events, µs stamps.
    qemu_events: Watcher,
}

/// The lab's guest on two libvirt daemons.
pub struct LibvirtLab {
    lab: Lab,
    scenario: Scenario,
    kernel: KernelChoice,
    agent_binary: PathBuf,
    image: Option<GuestImage>,
    token: String,
    agent: AgentClient,
    guest_addr: Ipv4Addr,
    domain: String,
    transport: LibvirtTransport,
    nodes: Vec<NodeDaemon>,
    /// Where the domain runs now.
    on: Node,
    /// The domain's XML with the agent's token redacted, for the bundle.
    xml_redacted: String,
    libvirt_version: Option<String>,
}

impl LibvirtLab {
    /// Finds the guest kernel and the agent and builds the lab's
    /// namespaces and links; no daemon runs yet.
    pub fn create(scenario: &Scenario, agent: Option<&Path>) -> Result<Self> {
        let kernel = find_kernel(&scenario.vm.kernel)?;
        let agent_binary = find_agent(agent)?;
        let lab =
            Lab::create(1).context("building the lab (are you root? is iproute2 installed?)")?;
        let guest_addr = lab.addrs.guest(0);
        let token = random_token()?;
        let agent = AgentClient {
            site: Site::lab_namespace(&lab.client_ns()),
            addr: SocketAddr::from((guest_addr, CONTROL_PORT)),
            token: token.clone(),
        };
        Ok(Self {
            domain: format!("lmig-{}-vm0", lab.id),
            lab,
            scenario: scenario.clone(),
            kernel,
            agent_binary,
            image: None,
            token,
            agent,
            guest_addr,
            transport: scenario.backend.transport.unwrap_or_default(),
            nodes: Vec::new(),
            on: Node::A,
            xml_redacted: String::new(),
            libvirt_version: None,
        })
    }

    fn node(&self, n: Node) -> Result<&NodeDaemon> {
        self.nodes
            .iter()
            .find(|d| d.node == n)
            .with_context(|| format!("no libvirt daemon on node-{}", n.letter()))
    }

    fn redact(&self, text: &str) -> String {
        text.replace(&self.token, "<redacted>")
    }

    /// Starts both daemons and their event watchers, and waits until each
    /// answers (its first answer probes QEMU).
    async fn start_daemons(&mut self, live: &Live) -> Result<()> {
        live.println("libvirt: starting a daemon in each node's namespace...");
        let specs: Vec<DaemonSpec> = [Node::A, Node::B]
            .into_iter()
            .map(|n| DaemonSpec {
                netns: self.lab.node_ns(n),
                hostname: format!("lmig-{}-node-{}", self.lab.id, n.letter()),
                root: self.lab.state_dir.join(format!("libvirt-{}", n.letter())),
                listen: self.lab.addrs.migration_addr(n),
            })
            .collect();
        let (a, b) = tokio::join!(
            Daemon::start(specs[0].clone()),
            Daemon::start(specs[1].clone())
        );
        for (node, d) in [(Node::A, a), (Node::B, b)] {
            let daemon =
                d.with_context(|| format!("starting node-{}'s libvirtd", node.letter()))?;
            let virsh = Virsh { uri: daemon.uri() };
            let events = Watcher::start(&virsh, &["event", "--all", "--loop", "--timestamp"])?;
            let qemu_events = Watcher::start(&virsh, &["qemu-monitor-event", "--loop"])?;
            self.nodes.push(NodeDaemon {
                node,
                daemon,
                virsh,
                events,
                qemu_events,
            });
        }
        let (va, vb) = tokio::join!(
            self.nodes[0].virsh.run(&["version"], VIRSH_DEADLINE),
            self.nodes[1].virsh.run(&["version"], VIRSH_DEADLINE)
        );
        let version = va.context("asking node-a's libvirtd its version")?;
        vb.context("asking node-b's libvirtd its version")?;
        self.libvirt_version = Some(one_line_version(&version));
        Ok(())
    }

    fn domain_spec(&self) -> Result<DomainSpec> {
        let image = self.image.as_ref().context("no guest image yet")?;
        Ok(DomainSpec {
            name: self.domain.clone(),
            domain_type: "qemu",
            memory_mib: self.scenario.vm.memory_mib,
            vcpus: self.scenario.vm.vcpus,
            nic: self.scenario.vm.nic,
            mac: format!("52:54:00:4c:4d:{:02x}", self.guest_addr.octets()[3]),
            tap: self.lab.tap(0),
            kernel: image.kernel.vmlinuz.clone(),
            initrd: image.initramfs.clone(),
            cmdline: kernel_append(
                &format!("{}/{}", self.guest_addr, self.lab.addrs.lan_prefix),
                &self.token,
                CONTROL_PORT,
                REFLECTOR_PORT,
            ),
            console: self.console_path(),
        })
    }

    fn console_path(&self) -> PathBuf {
        self.lab.state_dir.join("vm0.console.log")
    }

    /// Defines the domain on node-a, starts it, and waits for its agent.
    async fn boot(&mut self) -> Result<wire::control::Health> {
        let xml = self.domain_spec()?.xml();
        self.xml_redacted = self.redact(&xml);
        let file = self.lab.state_dir.join("domain.xml");
        std::fs::write(&file, &xml).with_context(|| format!("cannot write {}", file.display()))?;
        let path = file.display().to_string();
        let a = self.node(Node::A)?.virsh.clone();
        a.run(&["define", &path], VIRSH_DEADLINE)
            .await
            .context("defining the lab's domain on node-a")?;
        a.run(&["start", &self.domain], VIRSH_DEADLINE)
            .await
            .context("starting the lab's domain on node-a")?;
        self.on = Node::A;
        let deadline = Duration::from_secs_f64(self.scenario.vm.boot_timeout_s);
        let console = self.console_path();
        let agent = self.agent.clone();
        agent
            .wait_ready(deadline, || Ok(()))
            .await
            .with_context(|| {
                format!(
                    "the guest under libvirt did not answer; last console lines:\n    {}",
                    tail_of(&console, 8)
                )
            })
    }

    /// Ends the domain on both daemons, any QEMU they leave (by PID), the
    /// watchers and the daemons, then removes the lab.
    async fn shutdown(&mut self) -> Result<()> {
        for n in &self.nodes {
            let _ = n
                .virsh
                .run(&["destroy", &self.domain], Duration::from_secs(10))
                .await;
        }
        for n in &mut self.nodes {
            for pid in n.daemon.qemu_pids() {
                crate::backend::local::qemu::process::kill_pid(pid);
            }
            n.events.stop().await;
            n.qemu_events.stop().await;
            n.daemon.stop().await;
        }
        self.nodes.clear();
        self.lab.teardown()
    }
}

/// `Using library: libvirt 11.3.0` and `Running hypervisor: QEMU 10.0.2`
/// from `virsh version`, on one line.
fn one_line_version(text: &str) -> String {
    let pick = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string()))
    };
    match (pick("Using library:"), pick("Running hypervisor:")) {
        (Some(l), Some(h)) => format!("{h} (under {l})"),
        (Some(l), None) => l,
        _ => text.lines().next().unwrap_or("").trim().to_string(),
    }
}

impl Backend for LibvirtLab {
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
        let image = build_image_with(
            &self.kernel,
            &self.agent_binary,
            self.scenario.vm.nic,
            &self.lab.state_dir,
            &[],
        )
        .context("building the guest image")?;
        self.image = Some(image);
        self.start_daemons(live).await?;
        let health = self.boot().await?;
        Ok(Prepared {
            health,
            acceleration: "tcg".into(),
            acceleration_note: "libvirt domain type 'qemu' (TCG)".into(),
        })
    }

    fn endpoints(&self) -> Endpoints {
        Endpoints {
            agent: self.agent.clone(),
            reflector: SocketAddr::from((self.guest_addr, REFLECTOR_PORT)),
            guest: self.guest_addr.into(),
            client: Site::lab_namespace(&self.lab.client_ns()),
            client_addr: self.lab.addrs.client.into(),
            announce_interface: Some("eth0".into()),
        }
    }

    fn clock_alignment(&self) -> ClockAlignment {
        ClockAlignment::shared_host_clock()
    }

    fn set_scenario(&mut self, s: &Scenario) {
        self.scenario = s.clone();
    }

    async fn migrate(
        &mut self,
        req: &MigrationRequest<'_>,
        live: &Live,
    ) -> Result<MigrationRecord> {
        let rec = migrate::one(self, req, live).await?;
        if rec.status == measure::migration::record::RepStatus::Completed {
            self.on = self.on.other();
        }
        Ok(rec)
    }

    async fn pause_guest(&self, d: Duration) -> Result<(i64, i64)> {
        migrate::pause(self, d).await
    }

    async fn cut_network(&self, d: Duration) -> Result<(i64, i64, i64)> {
        cut_tap(self.lab.node_ns(self.on), self.lab.tap(0), d).await
    }

    fn hypervisor_version(&self) -> Option<String> {
        self.libvirt_version.clone()
    }

    fn scratch_dir(&self) -> PathBuf {
        self.lab.state_dir.clone()
    }

    fn vm_facts(&self) -> Option<Value> {
        let image = self
            .image
            .as_ref()
            .and_then(|i| serde_json::to_value(i).ok());
        let daemons: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "node": n.node.letter(),
                    "hostname": n.daemon.spec.hostname,
                    "host_uuid": n.daemon.host_uuid,
                    "uri": n.virsh.uri,
                    "pid": n.daemon.pid,
                })
            })
            .collect();
        Some(json!({
            "image": image,
            "libvirt": {
                "domain": self.domain,
                "transport": self.transport,
                "daemons": daemons,
                "version": self.libvirt_version,
            }
        }))
    }

    fn collect(&self, bundle: &Bundle) -> Result<()> {
        bundle.write("libvirt/domain.xml", self.xml_redacted.as_bytes())?;
        for n in &self.nodes {
            let l = n.node.letter();
            let events: Vec<String> = n.events.since(0).into_iter().map(|x| x.text).collect();
            bundle.write(
                &format!("libvirt/events-{l}.txt"),
                (events.join("\n") + "\n").as_bytes(),
            )?;
            let q: Vec<String> = n.qemu_events.since(0).into_iter().map(|x| x.text).collect();
            bundle.write(
                &format!("libvirt/qemu-events-{l}.txt"),
                (q.join("\n") + "\n").as_bytes(),
            )?;
            let log = n
                .daemon
                .spec
                .log_dir()
                .join("qemu")
                .join(format!("{}.log", self.domain));
            if let Ok(text) = std::fs::read_to_string(&log) {
                bundle.write(
                    &format!("libvirt/qemu-{l}.log"),
                    self.redact(&text).as_bytes(),
                )?;
            }
        }
        let console = std::fs::read_to_string(self.console_path()).unwrap_or_default();
        bundle.write("logs/vm0.console.log", self.redact(&console).as_bytes())?;
        Ok(())
    }

    async fn teardown(&mut self) -> Result<()> {
        self.shutdown().await
    }
}

/// Refuses to go on when the domain's QEMU on `node` is not running.
async fn ensure_running(v: &Virsh, domain: &str, node: Node) -> Result<()> {
    let state = v.run(&["domstate", domain], VIRSH_DEADLINE).await?;
    if state.trim() != "running" {
        bail!(
            "the domain on node-{} is {:?}, not running",
            node.letter(),
            state.trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_names_qemu_and_libvirt() {
        let text = "Compiled against library: libvirt 11.3.0\nUsing library: libvirt 11.3.0\nUsing API: QEMU 11.3.0\nRunning hypervisor: QEMU 10.0.2\n";
        assert_eq!(one_line_version(text), "QEMU 10.0.2 (under libvirt 11.3.0)");
    }
}
