//! Two libvirt daemons and one domain between them: what the lab mode and
//! a real cluster share, and all that a migration needs ([`super::migrate`]).

use super::virsh::{Virsh, Watcher};
use super::VIRSH_DEADLINE;
use crate::backend::local::lab::Node;
use crate::bundle::Bundle;
use crate::scenario::Scenario;
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// One node's daemon as the harness reaches it, and its event watchers.
pub struct NodeDaemon {
    /// `a` or `b` in the bundle.
    pub node: Node,
    /// Its `virsh`.
    pub virsh: Virsh,
    /// How the other daemon reaches this one (`virsh migrate --p2p`'s
    /// destination URI when this node is the destination).
    pub peer_uri: String,
    /// Where QEMU's migration stream goes when this node is the
    /// destination (`--migrateuri`), if not libvirt's choice.
    pub migrate_uri: Option<String>,
    /// `virsh event --all --loop --timestamp`: libvirt's domain events.
    pub events: Watcher,
    /// `virsh qemu-monitor-event --loop`: QEMU's own events, µs stamps.
    pub qemu_events: Watcher,
}

impl NodeDaemon {
    /// Starts the node's two watchers.
    pub fn watch(
        node: Node,
        virsh: Virsh,
        peer_uri: String,
        migrate_uri: Option<String>,
    ) -> Result<Self> {
        let events = Watcher::start(&virsh, &["event", "--all", "--loop", "--timestamp"])?;
        let qemu_events = Watcher::start(&virsh, &["qemu-monitor-event", "--loop"])?;
        Ok(NodeDaemon {
            node,
            virsh,
            peer_uri,
            migrate_uri,
            events,
            qemu_events,
        })
    }
}

/// The domain, its two daemons, and where it runs.
pub struct Cluster {
    /// The domain's name.
    pub domain: String,
    /// The scenario of the next migrations.
    pub scenario: Scenario,
    /// Node a's and node b's daemons.
    pub nodes: Vec<NodeDaemon>,
    /// Where the domain runs now.
    pub on: Node,
}

impl Cluster {
    /// The daemon of node `n`.
    pub fn node(&self, n: Node) -> Result<&NodeDaemon> {
        self.nodes
            .iter()
            .find(|d| d.node == n)
            .with_context(|| format!("no libvirt daemon on node-{}", n.letter()))
    }

    /// Asks both daemons their version at once (the first call to a
    /// daemon probes QEMU: seconds), as one line for the manifest.
    pub async fn version(&self) -> Result<String> {
        let ask = |i: usize| async move {
            let n = self.nodes.get(i).context("two daemons")?;
            n.virsh
                .run(&["version"], VIRSH_DEADLINE)
                .await
                .with_context(|| format!("asking node-{}'s libvirtd its version", n.node.letter()))
        };
        let (a, b) = tokio::join!(ask(0), ask(1));
        b?;
        Ok(one_line_version(&a?))
    }

    /// The node whose daemon says the domain is running.
    pub async fn find_running(&self) -> Result<Node> {
        let mut seen = Vec::new();
        for n in &self.nodes {
            match n
                .virsh
                .run(&["domstate", &self.domain], VIRSH_DEADLINE)
                .await
            {
                Ok(s) if s.trim() == "running" => return Ok(n.node),
                Ok(s) => seen.push(format!("node-{}: {}", n.node.letter(), s.trim())),
                Err(e) => seen.push(format!("node-{}: {e:#}", n.node.letter())),
            }
        }
        bail!(
            "domain {} runs on neither daemon ({})",
            self.domain,
            seen.join("; ")
        )
    }

    /// Writes every watcher's lines into the bundle, through `redact`.
    pub fn collect_events(&self, bundle: &Bundle, redact: &dyn Fn(&str) -> String) -> Result<()> {
        for n in &self.nodes {
            let l = n.node.letter();
            for (name, w) in [("events", &n.events), ("qemu-events", &n.qemu_events)] {
                let lines: Vec<String> = w.since(0).into_iter().map(|x| x.text).collect();
                let text = redact(&(lines.join("\n") + "\n"));
                bundle.write(&format!("libvirt/{name}-{l}.txt"), text.as_bytes())?;
            }
        }
        Ok(())
    }

    /// Ends the watchers.
    pub async fn stop_watchers(&mut self) {
        for n in &mut self.nodes {
            n.events.stop().await;
            n.qemu_events.stop().await;
        }
    }
}

/// Refuses to go on when the domain on `node` is not running.
pub async fn ensure_running(v: &Virsh, domain: &str, node: Node) -> Result<()> {
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

/// How long one `virsh` command of a teardown may take.
pub const TEARDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// `Using library: libvirt 11.3.0` and `Running hypervisor: QEMU 10.0.2`
/// from `virsh version`, on one line.
pub fn one_line_version(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_names_qemu_and_libvirt() {
        let text = "Compiled against library: libvirt 11.3.0\nUsing library: libvirt 11.3.0\nUsing API: QEMU 11.3.0\nRunning hypervisor: QEMU 10.0.2\n";
        assert_eq!(one_line_version(text), "QEMU 10.0.2 (under libvirt 11.3.0)");
    }
}
