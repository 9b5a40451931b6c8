//! Building and tearing down one lab.

use super::netns::{self, ip, ip_in, NS_PREFIX};
use anyhow::{Context, Result};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where per-run state (QMP sockets, pid files, consoles) lives.
pub const RUN_ROOT: &str = "/run/lmig";

/// One of the two hypervisor nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    /// node-a, where the VM boots.
    A,
    /// node-b.
    B,
}

impl Node {
    /// The other node.
    pub fn other(self) -> Node {
        match self {
            Node::A => Node::B,
            Node::B => Node::A,
        }
    }
    /// `a` or `b`.
    pub fn letter(self) -> &'static str {
        match self {
            Node::A => "a",
            Node::B => "b",
        }
    }
}

/// The lab's address plan (all in 198.18.0.0/15).
#[derive(Debug, Clone, Copy)]
pub struct LabAddrs {
    /// The client's LAN address.
    pub client: Ipv4Addr,
    /// The LAN prefix length.
    pub lan_prefix: u8,
    /// The migration-link addresses of node-a and node-b.
    pub migration: [Ipv4Addr; 2],
}

impl Default for LabAddrs {
    fn default() -> Self {
        Self {
            client: Ipv4Addr::new(198, 18, 0, 2),
            lan_prefix: 24,
            migration: [Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 0, 2)],
        }
    }
}

impl LabAddrs {
    /// The LAN address of guest number `i` (0-based).
    pub fn guest(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, 10 + (i as u8))
    }
    /// A node's address on the migration link.
    pub fn migration_addr(&self, node: Node) -> Ipv4Addr {
        self.migration[node as usize]
    }
}

/// A lab that exists: dropping it removes every namespace, link and state
/// file it created (QEMU processes belong to [`crate::qemu`], which ends
/// them first).
#[derive(Debug)]
pub struct Lab {
    /// Random id of this run, part of every name.
    pub id: String,
    /// Address plan.
    pub addrs: LabAddrs,
    /// Per-run state folder under [`RUN_ROOT`].
    pub state_dir: PathBuf,
    created: Vec<String>,
    torn_down: bool,
}

impl Lab {
    /// Namespace of the client.
    pub fn client_ns(&self) -> String {
        format!("{NS_PREFIX}{}-client", self.id)
    }
    /// Namespace of the switch.
    pub fn switch_ns(&self) -> String {
        format!("{NS_PREFIX}{}-switch", self.id)
    }
    /// Namespace of a node.
    pub fn node_ns(&self, node: Node) -> String {
        format!("{NS_PREFIX}{}-node-{}", self.id, node.letter())
    }
    /// The tap device of VM `vm` on a node (inside the node's namespace).
    pub fn tap(&self, vm: usize) -> String {
        format!("tap{vm}")
    }

    /// Builds a new lab with `vms` tap devices per node.
    pub fn create(vms: usize) -> Result<Lab> {
        let id = random_id();
        let state_dir = Path::new(RUN_ROOT).join(&id);
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        let mut lab = Lab {
            id,
            addrs: LabAddrs::default(),
            state_dir,
            created: Vec::new(),
            torn_down: false,
        };
        // On error the partly built lab is dropped, which removes what exists.
        lab.build(vms)?;
        Ok(lab)
    }

    fn add_ns(&mut self, ns: &str) -> Result<()> {
        ip(&["netns", "add", ns])?;
        self.created.push(ns.to_string());
        ip_in(ns, &["link", "set", "lo", "up"])
    }

    fn build(&mut self, vms: usize) -> Result<()> {
        let (sw, cl) = (self.switch_ns(), self.client_ns());
        let (na, nb) = (self.node_ns(Node::A), self.node_ns(Node::B));
        for ns in [&sw, &cl, &na, &nb] {
            self.add_ns(ns)?;
        }
        ip_in(&sw, &["link", "add", "br0", "type", "bridge"])?;
        ip_in(&sw, &["link", "set", "br0", "up"])?;
        for (node, ns) in [(Node::A, &na), (Node::B, &nb)] {
            let port = format!("to-{}", node.letter());
            ip_in(
                &sw,
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", "uplink", "netns", ns,
                ],
            )?;
            ip_in(&sw, &["link", "set", &port, "master", "br0", "up"])?;
            ip_in(ns, &["link", "add", "br0", "type", "bridge"])?;
            ip_in(ns, &["link", "set", "uplink", "master", "br0", "up"])?;
            ip_in(ns, &["link", "set", "br0", "up"])?;
            for vm in 0..vms {
                let tap = self.tap(vm);
                ip_in(ns, &["tuntap", "add", "dev", &tap, "mode", "tap"])?;
                ip_in(ns, &["link", "set", &tap, "master", "br0", "up"])?;
            }
        }
        ip_in(
            &sw,
            &[
                "link", "add", "to-cl", "type", "veth", "peer", "name", "eth0", "netns", &cl,
            ],
        )?;
        ip_in(&sw, &["link", "set", "to-cl", "master", "br0", "up"])?;
        let client = format!("{}/{}", self.addrs.client, self.addrs.lan_prefix);
        ip_in(&cl, &["addr", "add", &client, "dev", "eth0"])?;
        ip_in(&cl, &["link", "set", "eth0", "up"])?;
        // The migration link.
        ip_in(
            &na,
            &[
                "link", "add", "mig0", "type", "veth", "peer", "name", "mig0", "netns", &nb,
            ],
        )?;
        for (node, ns) in [(Node::A, &na), (Node::B, &nb)] {
            let a = format!("{}/24", self.addrs.migration_addr(node));
            ip_in(ns, &["addr", "add", &a, "dev", "mig0"])?;
            ip_in(ns, &["link", "set", "mig0", "up"])?;
        }
        Ok(())
    }

    /// Removes the lab's namespaces (and with them every link and tap in
    /// them) and its state folder. Processes still in the namespaces that
    /// the harness started are ended by their owners before this.
    pub fn teardown(&mut self) -> Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut first_err = None;
        for ns in self.created.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                first_err.get_or_insert(e);
            }
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("warning: lab cleanup: {e:#}");
        }
    }
}

fn random_id() -> String {
    let mut b = [0u8; 3];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    if b == [0, 0, 0] {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        b = [
            (t >> 16) as u8,
            (t >> 8) as u8,
            t as u8 ^ std::process::id() as u8,
        ];
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What `harness lab clean` removed.
#[derive(Debug, Default)]
pub struct CleanReport {
    /// Processes ended (by PID), with the namespace they were in.
    pub killed: Vec<(i32, String)>,
    /// Namespaces removed.
    pub namespaces: Vec<String>,
    /// State folders removed.
    pub state_dirs: Vec<PathBuf>,
}

/// Removes every trace of earlier runs: processes inside lab namespaces
/// (only those: they can only be ours), the namespaces, and state folders.
///
/// `only` limits it to one run id.
pub fn clean_all(only: Option<&str>) -> Result<CleanReport> {
    let mut report = CleanReport::default();
    let wanted = |name: &str| -> bool {
        match only {
            Some(id) => name.starts_with(&format!("{NS_PREFIX}{id}-")),
            None => name.starts_with(NS_PREFIX),
        }
    };
    for ns in netns::list().into_iter().filter(|n| wanted(n)) {
        for pid in netns::pids(&ns) {
            if crate::qemu::process::kill_pid(pid) {
                report.killed.push((pid, ns.clone()));
            }
        }
    }
    for ns in netns::list().into_iter().filter(|n| wanted(n)) {
        ip(&["netns", "del", &ns])?;
        report.namespaces.push(ns);
    }
    if let Ok(dir) = std::fs::read_dir(RUN_ROOT) {
        for e in dir.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if only.is_none_or(|id| id == name) {
                std::fs::remove_dir_all(e.path())
                    .with_context(|| format!("cannot remove {}", e.path().display()))?;
                report.state_dirs.push(e.path());
            }
        }
    }
    Ok(report)
}
