//! The libvirt backend: a domain migrated between two libvirt daemons with
//! `virsh migrate --live --p2p`.
//!
//! Two modes, one migration ([`migrate`], over a [`cluster::Cluster`]):
//! - [`lab::LibvirtLab`] (no `backend.uris`): the harness starts two real
//!   `libvirtd` in the lab's node namespaces ([`daemon`]) and defines the
//!   lab's guest as a TCG domain on the node's tap ([`domain`]);
//! - [`remote::LibvirtRemote`] (`backend.uris`): two daemons of a real
//!   cluster and a domain already running there, with its agent reached
//!   over plain addresses.
//!
//! Each migration records three views beside the client's: QEMU's own
//! events and `query-migrate` (relayed by the daemons), libvirt's domain
//! events, and libvirt's completed-job statistics from both daemons.

pub mod cluster;
pub mod daemon;
pub mod domain;
pub mod lab;
mod migrate;
pub mod remote;
pub mod virsh;

use super::{Backend, Capabilities, Endpoints, MigrationRequest, Prepared};
use crate::backend::local::lab::netlink::cut_tap;
use crate::backend::local::lab_endpoints;
use crate::bundle::Bundle;
use crate::live::Live;
use crate::scenario::Scenario;
use anyhow::Result;
pub use cluster::{ensure_running, Cluster, NodeDaemon};
pub use lab::LibvirtLab;
use measure::migration::record::{MigrationRecord, RepStatus};
use measure::summary::ClockAlignment;
pub use remote::LibvirtRemote;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// The backend's name in manifests.
pub const NAME: &str = "libvirt";

/// What it can do in the lab: pause (`virsh suspend`/`resume`) and cut the
/// lab's tap; libvirt sets QEMU's capabilities and parameters itself, and
/// killing its QEMUs mid-migration is not offered yet.
pub const CAPABILITIES: Capabilities = Capabilities {
    pause: true,
    network_cut: true,
    kill_qemu: false,
    qmp_knobs: false,
    disks: false,
};

/// On a real cluster: pause only (no tap of ours to cut).
pub const REMOTE_CAPABILITIES: Capabilities = Capabilities {
    network_cut: false,
    ..CAPABILITIES
};

/// How long one `virsh` command may take (the first call to a daemon
/// probes QEMU's capabilities: ~8 s under TCG here).
const VIRSH_DEADLINE: Duration = Duration::from_secs(60);

/// One migration on `c`; the domain's node follows a completed one.
async fn migrate_on(
    c: &mut Cluster,
    req: &MigrationRequest<'_>,
    live: &Live,
) -> Result<MigrationRecord> {
    let rec = migrate::one(c, req, live).await?;
    if rec.status == RepStatus::Completed {
        c.on = c.on.other();
    }
    Ok(rec)
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
        self.cluster.scenario = scenario.clone();
        let health = self.bring_up(live).await?;
        Ok(Prepared {
            health,
            acceleration: "tcg".into(),
            acceleration_note: "libvirt domain type 'qemu' (TCG)".into(),
        })
    }
    fn endpoints(&self) -> Endpoints {
        lab_endpoints(&self.lab, 0, &self.agent)
    }
    fn clock_alignment(&self) -> ClockAlignment {
        ClockAlignment::shared_host_clock()
    }
    fn set_scenario(&mut self, s: &Scenario) {
        self.cluster.scenario = s.clone();
    }
    async fn migrate(
        &mut self,
        req: &MigrationRequest<'_>,
        live: &Live,
    ) -> Result<MigrationRecord> {
        migrate_on(&mut self.cluster, req, live).await
    }
    async fn pause_guest(&self, d: Duration) -> Result<(i64, i64)> {
        migrate::pause(&self.cluster, d).await
    }
    async fn cut_network(&self, d: Duration) -> Result<(i64, i64, i64)> {
        cut_tap(self.lab.node_ns(self.cluster.on), self.lab.tap(0), d).await
    }
    fn hypervisor_version(&self) -> Option<String> {
        self.version.clone()
    }
    fn scratch_dir(&self) -> PathBuf {
        self.lab.state_dir.clone()
    }
    fn vm_facts(&self) -> Option<Value> {
        Some(self.facts())
    }
    fn collect(&self, bundle: &Bundle) -> Result<()> {
        bundle.write("libvirt/domain.xml", self.xml_redacted.as_bytes())?;
        self.cluster.collect_events(bundle, &|t| self.redact(t))?;
        for (name, text) in self.qemu_logs() {
            bundle.write(&name, text.as_bytes())?;
        }
        let console = std::fs::read_to_string(self.console_path()).unwrap_or_default();
        bundle.write("logs/vm0.console.log", self.redact(&console).as_bytes())?;
        Ok(())
    }
    async fn teardown(&mut self) -> Result<()> {
        self.shutdown().await
    }
    async fn read_disk(&self, len: u64) -> Result<Option<super::DiskRead>> {
        let (Some(d), Some(image)) = (
            self.cluster.scenario.vm.disk.as_ref(),
            self.disk_image(self.cluster.on),
        ) else {
            return Ok(None);
        };
        let data = crate::backend::local::storage::read_image(&image, d, len, &self.lab.state_dir)?;
        Ok(Some(super::DiskRead {
            image: image.display().to_string(),
            node: self.cluster.on.letter().into(),
            data,
        }))
    }
}

impl Backend for LibvirtRemote {
    fn name(&self) -> &'static str {
        NAME
    }
    fn run_id(&self) -> &str {
        &self.run_id
    }
    fn capabilities(&self) -> Capabilities {
        REMOTE_CAPABILITIES
    }
    async fn prepare(&mut self, scenario: &Scenario, live: &Live) -> Result<Prepared> {
        self.cluster.scenario = scenario.clone();
        let health = self.bring_up(live).await?;
        Ok(Prepared {
            health,
            acceleration: "unknown".into(),
            acceleration_note: "the domain's own (libvirt domain type)".into(),
        })
    }
    fn endpoints(&self) -> Endpoints {
        crate::backend::real_vm::endpoints(&self.agent, self.reflector, self.client_addr)
    }
    fn clock_alignment(&self) -> ClockAlignment {
        ClockAlignment {
            client_offset_ns: 0,
            client_uncertainty_ns: 0,
            method: "assumed: this machine and the hosts keep the same time (NTP); QEMU's event stamps are the hosts' clocks, the probe's this machine's".into(),
            guest: ClockAlignment::shared_host_clock().guest,
        }
    }
    fn set_scenario(&mut self, s: &Scenario) {
        self.cluster.scenario = s.clone();
    }
    async fn migrate(
        &mut self,
        req: &MigrationRequest<'_>,
        live: &Live,
    ) -> Result<MigrationRecord> {
        migrate_on(&mut self.cluster, req, live).await
    }
    async fn pause_guest(&self, d: Duration) -> Result<(i64, i64)> {
        migrate::pause(&self.cluster, d).await
    }
    async fn cut_network(&self, _d: Duration) -> Result<(i64, i64, i64)> {
        anyhow::bail!("the libvirt backend cannot cut a real VM's network")
    }
    fn hypervisor_version(&self) -> Option<String> {
        self.version.clone()
    }
    fn scratch_dir(&self) -> PathBuf {
        self.scratch.0.clone()
    }
    fn vm_facts(&self) -> Option<Value> {
        let uris: Vec<&str> = self
            .cluster
            .nodes
            .iter()
            .map(|n| n.virsh.uri.as_str())
            .collect();
        Some(
            json!({"libvirt": {"domain": self.cluster.domain, "uris": uris, "version": self.version}}),
        )
    }
    fn collect(&self, bundle: &Bundle) -> Result<()> {
        let token = self.agent.token.clone();
        self.cluster
            .collect_events(bundle, &move |t| t.replace(&token, "<redacted>"))
    }
    async fn teardown(&mut self) -> Result<()> {
        self.cluster.stop_watchers().await;
        Ok(())
    }
}
