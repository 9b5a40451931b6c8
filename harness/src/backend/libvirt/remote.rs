//! The libvirt backend on a real cluster: two daemons the tester names by
//! URI (`qemu+ssh://root@host1/system`, …), a domain that already runs on
//! one of them with the guest agent installed, and the agent and
//! reflector reached over plain addresses from this machine.

use super::cluster::{Cluster, NodeDaemon};
use super::virsh::Virsh;
use crate::backend::agent::AgentClient;
use crate::backend::local::lab::Node;
use crate::backend::real_vm::{real_endpoints, Scratch};
use crate::live::Live;
use crate::scenario::Scenario;
use anyhow::{bail, Context, Result};
use std::net::{IpAddr, SocketAddr};

/// A domain on two libvirt daemons of a real cluster.
pub struct LibvirtRemote {
    /// The daemons and the domain.
    pub cluster: Cluster,
    /// The guest agent's client (from this machine).
    pub agent: AgentClient,
    /// The agent's reflector.
    pub reflector: SocketAddr,
    /// This machine as the guest sees it.
    pub client_addr: Option<IpAddr>,
    /// The run's id.
    pub run_id: String,
    /// A scratch folder, removed at teardown.
    pub scratch: Scratch,
    /// libvirt's and QEMU's versions.
    pub version: Option<String>,
}

impl LibvirtRemote {
    /// Reads the URIs and endpoints the scenario names; nothing is asked
    /// of the daemons yet.
    pub fn create(scenario: &Scenario) -> Result<Self> {
        let spec = &scenario.backend;
        let (agent, reflector) = real_endpoints(spec)?;
        let run_id = wire::random::token_hex(3).context("drawing the run id")?;
        Ok(Self {
            cluster: Cluster {
                domain: spec.domain.clone().unwrap_or_default(),
                scenario: scenario.clone(),
                nodes: Vec::new(),
                on: Node::A,
            },
            agent,
            reflector,
            client_addr: spec.client_addr,
            scratch: Scratch::new("libvirt", &run_id)?,
            run_id,
            version: None,
        })
    }

    /// Connects to both daemons, finds the domain, waits for its agent.
    pub async fn bring_up(&mut self, live: &Live) -> Result<wire::control::Health> {
        let spec = self.cluster.scenario.backend.clone();
        if spec.uris.len() != 2 {
            bail!("`backend.uris` must name the two daemons");
        }
        for (i, node) in [Node::A, Node::B].into_iter().enumerate() {
            let virsh = Virsh {
                uri: spec.uris[i].clone(),
            };
            let peer = spec
                .peer_uris
                .get(i)
                .cloned()
                .unwrap_or(spec.uris[i].clone());
            let mig = spec.migrate_uris.get(i).cloned();
            self.cluster
                .nodes
                .push(NodeDaemon::watch(node, virsh, peer, mig)?);
        }
        self.version = Some(self.cluster.version().await?);
        self.cluster.on = self.cluster.find_running().await?;
        live.println(&format!(
            "libvirt: domain {} runs on node-{} ({})",
            self.cluster.domain,
            self.cluster.on.letter(),
            spec.uris[self.cluster.on as usize]
        ));
        let health = crate::backend::real_vm::reach(
            &self.agent,
            self.reflector,
            &mut self.client_addr,
            self.cluster.scenario.vm.boot_timeout_s,
        )
        .await?;
        Ok(health)
    }
}
