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
    /// What building it removed of earlier runs that had ended without
    /// removing their labs.
    pub swept: CleanReport,
    /// Which links pass through the WAN namespace's delay lines.
    pub wan: Wan,
    created: Vec<String>,
    torn_down: bool,
}

/// Which of the lab's links run through the WAN namespace (where a delay
/// line shapes them) instead of a plain veth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wan {
    /// node-a to node-b: `mig0` ↔ `mig-a` | `mig-b` ↔ `mig0`, MTU 9000.
    pub migration: bool,
    /// switch to client: `to-cl` ↔ `cl-sw` | `cl-cl` ↔ `eth0`.
    pub client: bool,
}

/// The WAN namespace's two ends of the migration link.
pub const WAN_MIGRATION: (&str, &str) = ("mig-a", "mig-b");
/// The WAN namespace's two ends of the client link (switch side, client side).
pub const WAN_CLIENT: (&str, &str) = ("cl-sw", "cl-cl");
/// The shaped migration link's MTU: fewer, larger frames for the delay
/// line to carry at a gigabit.
pub const WAN_MTU: &str = "9000";

impl Lab {
    /// Namespace of the WAN (the delay lines), when a link is shaped.
    pub fn wan_ns(&self) -> String {
        format!("{NS_PREFIX}{}-wan", self.id)
    }
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
    pub fn create(vms: usize, wan: Wan) -> Result<Lab> {
        // Labs of runs that crashed or were killed still hold QEMUs that
        // burn CPU and would skew this run's timings: remove them first.
        let swept = clean(&CleanScope::Abandoned).context("removing labs of ended runs")?;
        let id = random_id()?;
        let state_dir = Path::new(RUN_ROOT).join(&id);
        // The folder appears with its owner file already in it (a rename),
        // so a concurrent `lab clean` never sees it ownerless.
        let staging = Path::new(RUN_ROOT).join(format!(".{id}"));
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let owner = Owner::me().context("reading this process's start time")?;
        std::fs::write(staging.join(OWNER_FILE), owner.to_line())
            .with_context(|| format!("cannot write {}", staging.join(OWNER_FILE).display()))?;
        std::fs::rename(&staging, &state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        let mut lab = Lab {
            id,
            addrs: LabAddrs::default(),
            state_dir,
            swept,
            wan,
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
        let wan = self.wan_ns();
        if self.wan.migration || self.wan.client {
            self.add_ns(&wan)?;
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
            // A fixed MAC: a bridge otherwise takes its ports' lowest, and
            // a node's bridge that takes the guest tap's MAC answers for
            // the guest (libvirt's first TCP migration timed out so).
            let mac = format!("02:6c:6d:00:00:{:02x}", 0x0a + node as u8);
            ip_in(
                ns,
                &["link", "add", "br0", "address", &mac, "type", "bridge"],
            )?;
            ip_in(ns, &["link", "set", "uplink", "master", "br0", "up"])?;
            ip_in(ns, &["link", "set", "br0", "up"])?;
            for vm in 0..vms {
                let tap = self.tap(vm);
                ip_in(ns, &["tuntap", "add", "dev", &tap, "mode", "tap"])?;
                ip_in(ns, &["link", "set", &tap, "master", "br0", "up"])?;
            }
        }
        if self.wan.client {
            let (a, b) = WAN_CLIENT;
            veth(&sw, "to-cl", a, &wan)?;
            veth(&wan, b, "eth0", &cl)?;
            ip_in(&wan, &["link", "set", a, "up"])?;
            ip_in(&wan, &["link", "set", b, "up"])?;
        } else {
            veth(&sw, "to-cl", "eth0", &cl)?;
        }
        ip_in(&sw, &["link", "set", "to-cl", "master", "br0", "up"])?;
        let client = format!("{}/{}", self.addrs.client, self.addrs.lan_prefix);
        ip_in(&cl, &["addr", "add", &client, "dev", "eth0"])?;
        ip_in(&cl, &["link", "set", "eth0", "up"])?;
        // The migration link.
        if self.wan.migration {
            let (a, b) = WAN_MIGRATION;
            veth(&na, "mig0", a, &wan)?;
            veth(&nb, "mig0", b, &wan)?;
            for (ns, dev) in [(&na, "mig0"), (&nb, "mig0"), (&wan, a), (&wan, b)] {
                ip_in(ns, &["link", "set", dev, "mtu", WAN_MTU, "up"])?;
            }
        } else {
            veth(&na, "mig0", "mig0", &nb)?;
        }
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

/// A veth from `dev` in `ns` to `peer` in `peer_ns`.
fn veth(ns: &str, dev: &str, peer: &str, peer_ns: &str) -> Result<()> {
    ip_in(
        ns,
        &[
            "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", peer_ns,
        ],
    )
}

/// A new run id: 3 random bytes as six hex digits ([`wire::random`]; no
/// fallback).
fn random_id() -> Result<String> {
    wire::random::token_hex(3).context("drawing the lab's run id")
}

/// The file in a lab's state folder naming the process that built it.
pub const OWNER_FILE: &str = "owner";

/// The process that built a lab: its PID and its start time (in clock ticks
/// since boot, field 22 of `/proc/PID/stat`), so that a PID reused by an
/// unrelated process is not taken for the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The owner's PID.
    pub pid: i32,
    /// Its start time, in clock ticks since boot.
    pub start_ticks: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Result<Owner> {
        let pid = std::process::id() as i32;
        let start_ticks = start_ticks(pid).context("cannot read /proc/self/stat")?;
        Ok(Owner { pid, start_ticks })
    }

    /// `PID START_TICKS\n`.
    pub fn to_line(self) -> String {
        format!("{} {}\n", self.pid, self.start_ticks)
    }

    /// Parses [`Owner::to_line`]'s format.
    pub fn parse(text: &str) -> Option<Owner> {
        let mut it = text.split_whitespace();
        let pid = it.next()?.parse().ok()?;
        let start_ticks = it.next()?.parse().ok()?;
        Some(Owner { pid, start_ticks })
    }

    /// Whether this very process still runs. A killed process that its
    /// parent has not reaped yet (a zombie) has ended.
    pub fn alive(self) -> bool {
        proc_stat(self.pid).is_some_and(|(state, ticks)| {
            ticks == self.start_ticks && !matches!(state, 'Z' | 'X' | 'x')
        })
    }
}

/// Field 22 (`starttime`) of `/proc/PID/stat`.
fn start_ticks(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(_, ticks)| ticks)
}

/// Fields 3 (`state`) and 22 (`starttime`) of `/proc/PID/stat`.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // The command name (field 2) is in parentheses and may hold spaces, so
    // count fields from the last ')': state is the 1st after it, starttime
    // the 20th.
    let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ticks = rest.nth(18)?.parse().ok()?;
    Some((state, ticks))
}

/// Whether the run `id`'s harness process still runs. A lab with no
/// readable owner file (its state folder gone, or written before owners
/// were recorded) counts as abandoned.
pub fn owner_alive(id: &str) -> bool {
    std::fs::read_to_string(Path::new(RUN_ROOT).join(id).join(OWNER_FILE))
        .ok()
        .and_then(|t| Owner::parse(&t))
        .is_some_and(Owner::alive)
}

/// Run ids of labs whose harness has ended without removing them.
pub fn abandoned_labs() -> Vec<String> {
    let mut ids = lab_ids();
    ids.retain(|id| !owner_alive(id));
    ids
}

/// Run ids of every lab that exists: from namespace names and state folders.
fn lab_ids() -> Vec<String> {
    let mut ids: Vec<String> = netns::list()
        .iter()
        .filter_map(|n| run_id_of_ns(n).map(str::to_string))
        .collect();
    if let Ok(dir) = std::fs::read_dir(RUN_ROOT) {
        ids.extend(
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // Not `.ID`: a lab being created right now.
                .filter(|n| is_run_id(n)),
        );
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Which labs [`clean`] removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanScope {
    /// Labs whose harness process has ended (crashed or killed): the
    /// default, safe while other runs are going on.
    Abandoned,
    /// Every lab, running ones too.
    All,
    /// The lab of this run id, whether its harness still runs or not.
    Run(String),
}

/// What `harness lab clean` removed, and what it left because it is in use.
#[derive(Debug, Default)]
pub struct CleanReport {
    /// Processes ended (by PID), with the namespace they were in.
    pub killed: Vec<(i32, String)>,
    /// Namespaces removed.
    pub namespaces: Vec<String>,
    /// State folders removed.
    pub state_dirs: Vec<PathBuf>,
    /// Run ids left alone because their harness still runs.
    pub in_use: Vec<String>,
}

impl CleanReport {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.killed.is_empty() && self.namespaces.is_empty() && self.state_dirs.is_empty()
    }

    /// One line per thing removed or left, as `harness lab clean` prints.
    pub fn lines(&self) -> Vec<String> {
        let mut out = self.removed_lines();
        for id in &self.in_use {
            out.push(format!(
                "left run {id}: its harness is still running (--all removes it too)"
            ));
        }
        out
    }

    /// What a run prints about the sweep before it builds its own lab.
    pub fn sweep_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .removed_lines()
            .into_iter()
            .map(|l| format!("a killed run's lab: {l}"))
            .collect();
        for id in &self.in_use {
            out.push(format!(
                "note: run {id} is going on beside this one; the two share this machine's CPUs, so both measure more noise"
            ));
        }
        out
    }

    fn removed_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (pid, ns) in &self.killed {
            out.push(format!("ended process {pid} (in {ns})"));
        }
        for ns in &self.namespaces {
            out.push(format!("removed namespace {ns}"));
        }
        for d in &self.state_dirs {
            out.push(format!("removed {}", d.display()));
        }
        out
    }
}

/// Whether `s` has the form of a run id ([`random_id`]: six hex digits), so
/// that namespaces others named `lmig-...` (tests, `harness doctor`'s
/// probe) are never taken for a lab.
fn is_run_id(s: &str) -> bool {
    s.len() == 6
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The run id of a lab namespace (`lmig-<id>-<role>`).
fn run_id_of_ns(name: &str) -> Option<&str> {
    name.strip_prefix(NS_PREFIX)?
        .split('-')
        .next()
        .filter(|id| is_run_id(id))
}

/// Removes what runs left behind: processes inside lab namespaces (only
/// those: they can only be ours), the namespaces, and state folders.
pub fn clean(scope: &CleanScope) -> Result<CleanReport> {
    let mut report = CleanReport::default();
    let wanted: Vec<String> = lab_ids()
        .into_iter()
        .filter(|id| match scope {
            CleanScope::Run(only) => only == id,
            CleanScope::All => true,
            CleanScope::Abandoned => {
                let alive = owner_alive(id);
                if alive {
                    report.in_use.push(id.clone());
                }
                !alive
            }
        })
        .collect();
    let ours = |ns: &str| run_id_of_ns(ns).is_some_and(|id| wanted.iter().any(|w| w == id));
    for ns in netns::list().into_iter().filter(|n| ours(n)) {
        for pid in netns::pids(&ns) {
            if crate::backend::local::qemu::process::kill_pid(pid) {
                report.killed.push((pid, ns.clone()));
            }
        }
    }
    for ns in netns::list().into_iter().filter(|n| ours(n)) {
        ip(&["netns", "del", &ns])?;
        report.namespaces.push(ns);
    }
    for id in &wanted {
        let dir = Path::new(RUN_ROOT).join(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
            report.state_dirs.push(dir);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod owner_tests {
    use super::*;

    #[test]
    fn this_process_is_its_own_live_owner_and_a_changed_start_time_is_not() {
        let me = Owner::me().unwrap();
        assert_eq!(Owner::parse(&me.to_line()), Some(me));
        assert!(me.alive());
        let reused = Owner {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(
            !reused.alive(),
            "a PID with another start time is not the owner"
        );
        assert_eq!(Owner::parse("12 x"), None);
        // A zombie (killed, not yet reaped) has ended; a name with spaces
        // and parentheses does not shift the fields.
        let stat = "42 (a) b) Z 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0";
        assert_eq!(parse_stat(stat), Some(('Z', 777)));
        assert_eq!(parse_stat(&stat.replace(" Z ", " S ")), Some(('S', 777)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(Owner::parse(""), None);
    }

    #[test]
    fn run_ids_come_from_namespace_names() {
        assert_eq!(run_id_of_ns("lmig-a1b2c3-node-a"), Some("a1b2c3"));
        assert_eq!(run_id_of_ns("lmig-a1b2c3-client"), Some("a1b2c3"));
        assert_eq!(run_id_of_ns("other-ns"), None);
        // Others' namespaces that share the prefix are not labs.
        assert_eq!(run_id_of_ns("lmig-doctor-1234"), None);
        assert_eq!(run_id_of_ns("lmig-t-ann-99a"), None);
        assert!(is_run_id(&random_id().unwrap()));
        assert!(!is_run_id(".a1b2c3"));
    }
}
