//! The libvirt backend in the lab: two real `libvirtd` the harness starts,
//! one per node namespace ([`super::daemon`]), and the lab's guest as a
//! defined TCG domain on the node's tap ([`super::domain`]).

use super::cluster::{Cluster, NodeDaemon, TEARDOWN_DEADLINE};
use super::daemon::{Daemon, DaemonSpec};
use super::domain::DomainSpec;
use super::virsh::Virsh;
use super::VIRSH_DEADLINE;
use crate::backend::agent::AgentClient;
use crate::backend::local::guest::{build_image_with, GuestImage, KernelChoice};
use crate::backend::local::lab::{Lab, Node};
use crate::backend::local::qemu::cmdline::kernel_append;
use crate::backend::local::{lab_agent, lab_parts, tail_of, CONTROL_PORT, REFLECTOR_PORT};
use crate::live::Live;
use crate::scenario::disk::DiskSpec;
use crate::scenario::{LibvirtTransport, Scenario};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lab's guest on two libvirt daemons of the lab's own.
pub struct LibvirtLab {
    /// The lab's namespaces and links.
    pub lab: Lab,
    /// The daemons and the domain.
    pub cluster: Cluster,
    /// The guest agent's client (from the client namespace).
    pub agent: AgentClient,
    kernel: KernelChoice,
    agent_binary: PathBuf,
    image: Option<GuestImage>,
    token: String,
    guest_addr: Ipv4Addr,
    transport: LibvirtTransport,
    daemons: Vec<Daemon>,
    /// The domain's XML with the agent's token redacted, for the bundle.
    pub xml_redacted: String,
    /// libvirt's and QEMU's versions.
    pub version: Option<String>,
}

impl LibvirtLab {
    /// Finds the guest kernel and the agent and builds the lab's
    /// namespaces and links; no daemon runs yet.
    pub fn create(scenario: &Scenario, agent: Option<&Path>) -> Result<Self> {
        let (kernel, agent_binary, lab, token) = lab_parts(scenario, agent)?;
        Ok(Self {
            cluster: Cluster {
                domain: format!("lmig-{}-vm0", lab.id),
                scenario: scenario.clone(),
                nodes: Vec::new(),
                on: Node::A,
            },
            agent: lab_agent(&lab, 0, &token),
            guest_addr: lab.addrs.guest(0),
            lab,
            kernel,
            agent_binary,
            image: None,
            token,
            transport: scenario.backend.transport.unwrap_or_default(),
            daemons: Vec::new(),
            xml_redacted: String::new(),
            version: None,
        })
    }

    /// `text` with the agent's token replaced.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.token, "<redacted>")
    }

    /// Builds the guest image, starts the daemons, boots the domain.
    pub async fn bring_up(&mut self, live: &Live) -> Result<wire::control::Health> {
        let image = build_image_with(
            &self.kernel,
            &self.agent_binary,
            self.cluster.scenario.vm.nic,
            &self.lab.state_dir,
            &[],
            self.cluster
                .scenario
                .vm
                .disk
                .as_ref()
                .map_or(&[], |d| d.bus.kernel_modules()),
        )
        .context("building the guest image")?;
        self.image = Some(image);
        self.start_daemons(live).await?;
        self.create_disks()?;
        self.version = Some(self.cluster.version().await?);
        self.boot().await
    }

    fn daemon_spec(&self, n: Node) -> DaemonSpec {
        DaemonSpec {
            netns: self.lab.node_ns(n),
            hostname: format!("lmig-{}-node-{}", self.lab.id, n.letter()),
            root: self.lab.state_dir.join(format!("libvirt-{}", n.letter())),
            listen: self.lab.addrs.migration_addr(n),
        }
    }

    /// How the other daemon and QEMU reach node `n` over the lab's transport.
    fn peer(&self, d: &Daemon, n: Node) -> (String, String) {
        match self.transport {
            LibvirtTransport::Tcp => (
                d.peer_uri(),
                format!("tcp://{}", self.lab.addrs.migration_addr(n)),
            ),
            LibvirtTransport::Unix => (
                d.uri().replace("qemu:///", "qemu+unix:///"),
                format!(
                    "unix://{}",
                    self.lab.state_dir.join("libvirt-migration.sock").display()
                ),
            ),
        }
    }

    /// Starts both daemons and their event watchers.
    async fn start_daemons(&mut self, live: &Live) -> Result<()> {
        live.println("libvirt: starting a daemon in each node's namespace...");
        let (a, b) = tokio::join!(
            Daemon::start(self.daemon_spec(Node::A)),
            Daemon::start(self.daemon_spec(Node::B))
        );
        for (node, d) in [(Node::A, a), (Node::B, b)] {
            let daemon =
                d.with_context(|| format!("starting node-{}'s libvirtd", node.letter()))?;
            let (peer, mig) = self.peer(&daemon, node);
            let virsh = Virsh { uri: daemon.uri() };
            self.daemons.push(daemon);
            self.cluster
                .nodes
                .push(NodeDaemon::watch(node, virsh, peer, Some(mig))?);
        }
        Ok(())
    }

    fn domain_spec(&self) -> Result<DomainSpec> {
        let image = self.image.as_ref().context("no guest image yet")?;
        let vm = &self.cluster.scenario.vm;
        Ok(DomainSpec {
            name: self.cluster.domain.clone(),
            domain_type: "qemu",
            memory_mib: vm.memory_mib,
            vcpus: vm.vcpus,
            nic: vm.nic,
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
            disk: vm.disk.clone().map(|d| {
                let p = self.disk_path_in_daemon(&d);
                (d, p)
            }),
        })
    }

    /// The disk image's path as both daemons see it: under their private
    /// `/var/lib/libvirt`, so the same path is a different file on each
    /// node, as on two hosts.
    fn disk_path_in_daemon(&self, d: &DiskSpec) -> PathBuf {
        PathBuf::from(format!(
            "/var/lib/libvirt/images/lmig-disk.{}",
            d.format.as_str()
        ))
    }

    /// The disk image of node `n`, as the host sees it.
    pub fn disk_image(&self, n: Node) -> Option<PathBuf> {
        let d = self.cluster.scenario.vm.disk.as_ref()?;
        let inner = self.disk_path_in_daemon(d);
        let rel = inner.strip_prefix("/var/lib/libvirt").ok()?;
        Some(self.daemon_spec(n).root.join("lib").join(rel))
    }

    /// An empty image on each node (libvirt's `--copy-storage-all` needs
    /// the destination's to exist; it copies every block onto it).
    fn create_disks(&self) -> Result<()> {
        let Some(d) = self.cluster.scenario.vm.disk.as_ref() else {
            return Ok(());
        };
        for n in [Node::A, Node::B] {
            if let Some(path) = self.disk_image(n) {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                crate::backend::local::storage::create_image(&path, d)?;
            }
        }
        Ok(())
    }

    /// The serial console's file (both nodes' QEMUs append to it).
    pub fn console_path(&self) -> PathBuf {
        self.lab.state_dir.join("vm0.console.log")
    }

    /// Defines the domain on node-a, starts it, and waits for its agent.
    async fn boot(&mut self) -> Result<wire::control::Health> {
        let xml = self.domain_spec()?.xml();
        self.xml_redacted = self.redact(&xml);
        let file = self.lab.state_dir.join("domain.xml");
        std::fs::write(&file, &xml).with_context(|| format!("cannot write {}", file.display()))?;
        let path = file.display().to_string();
        let a = self.cluster.node(Node::A)?.virsh.clone();
        let dom = self.cluster.domain.clone();
        a.run(&["define", &path], VIRSH_DEADLINE)
            .await
            .context("defining the lab's domain on node-a")?;
        a.run(&["start", &dom], VIRSH_DEADLINE)
            .await
            .context("starting the lab's domain on node-a")?;
        self.cluster.on = Node::A;
        let deadline = Duration::from_secs_f64(self.cluster.scenario.vm.boot_timeout_s);
        let console = self.console_path();
        self.agent
            .wait_ready(deadline, || Ok(()))
            .await
            .with_context(|| {
                format!(
                    "the guest under libvirt did not answer; last console lines:\n    {}",
                    tail_of(&console, 8)
                )
            })
    }

    /// What the manifest says of the VM and the daemons.
    pub fn facts(&self) -> Value {
        let image = self
            .image
            .as_ref()
            .and_then(|i| serde_json::to_value(i).ok());
        let daemons: Vec<Value> = self
            .daemons
            .iter()
            .zip(&self.cluster.nodes)
            .map(|(d, n)| {
                json!({
                    "node": n.node.letter(),
                    "hostname": d.spec.hostname,
                    "host_uuid": d.host_uuid,
                    "uri": n.virsh.uri,
                    "pid": d.pid,
                })
            })
            .collect();
        json!({
            "image": image,
            "libvirt": {
                "domain": self.cluster.domain,
                "transport": self.transport,
                "daemons": daemons,
                "version": self.version,
            }
        })
    }

    /// The QEMU logs the daemons kept, for the bundle.
    pub fn qemu_logs(&self) -> Vec<(String, String)> {
        self.daemons
            .iter()
            .zip(&self.cluster.nodes)
            .filter_map(|(d, n)| {
                let log = d
                    .spec
                    .log_dir()
                    .join("qemu")
                    .join(format!("{}.log", self.cluster.domain));
                let text = std::fs::read_to_string(log).ok()?;
                Some((
                    format!("libvirt/qemu-{}.log", n.node.letter()),
                    self.redact(&text),
                ))
            })
            .collect()
    }

    /// Ends the domain on both daemons, any QEMU they leave (by PID), the
    /// watchers and the daemons, then removes the lab.
    pub async fn shutdown(&mut self) -> Result<()> {
        for n in &self.cluster.nodes {
            let _ = n
                .virsh
                .run(&["destroy", &self.cluster.domain], TEARDOWN_DEADLINE)
                .await;
        }
        self.cluster.stop_watchers().await;
        for d in &mut self.daemons {
            for pid in d.qemu_pids() {
                crate::backend::local::qemu::process::kill_pid(pid);
            }
            d.stop().await;
        }
        self.daemons.clear();
        self.cluster.nodes.clear();
        self.lab.teardown()
    }
}
