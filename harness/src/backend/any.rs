//! One type for every backend, so the run loop stays generic over
//! [`Backend`] while the scenario picks the platform at run time (the
//! trait's async methods rule out `dyn Backend`).

use super::{Backend, Capabilities, Endpoints, MigrationRequest, Prepared};
use crate::bundle::Bundle;
use crate::live::Live;
use crate::scenario::Scenario;
use anyhow::Result;
use measure::migration::record::MigrationRecord;
use measure::summary::ClockAlignment;
use std::path::PathBuf;
use std::time::Duration;

/// The backend a scenario names.
pub enum AnyBackend {
    /// The embedded QEMU lab.
    Local(Box<super::local::LocalLab>),
    /// The lab's guest between two libvirt daemons.
    Libvirt(Box<super::libvirt::LibvirtLab>),
    /// A domain between two daemons of a real cluster.
    LibvirtRemote(Box<super::libvirt::LibvirtRemote>),
    /// A VM on a Proxmox VE cluster, through its API.
    Proxmox(Box<super::proxmox::ProxmoxBackend>),
}

/// Calls the same method on whichever backend it is.
macro_rules! each {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            AnyBackend::Local($b) => $call,
            AnyBackend::Libvirt($b) => $call,
            AnyBackend::LibvirtRemote($b) => $call,
            AnyBackend::Proxmox($b) => $call,
        }
    };
}

impl Backend for AnyBackend {
    fn name(&self) -> &'static str {
        each!(self, b => b.name())
    }
    fn run_id(&self) -> &str {
        each!(self, b => b.run_id())
    }
    fn capabilities(&self) -> Capabilities {
        each!(self, b => b.capabilities())
    }
    fn notices(&self) -> Vec<String> {
        each!(self, b => b.notices())
    }
    async fn prepare(&mut self, scenario: &Scenario, live: &Live) -> Result<Prepared> {
        each!(self, b => b.prepare(scenario, live).await)
    }
    fn endpoints(&self) -> Endpoints {
        each!(self, b => b.endpoints())
    }
    fn clock_alignment(&self) -> ClockAlignment {
        each!(self, b => b.clock_alignment())
    }
    fn set_scenario(&mut self, s: &Scenario) {
        each!(self, b => b.set_scenario(s))
    }
    async fn migrate(
        &mut self,
        req: &MigrationRequest<'_>,
        live: &Live,
    ) -> Result<MigrationRecord> {
        each!(self, b => b.migrate(req, live).await)
    }
    async fn pause_guest(&self, d: Duration) -> Result<(i64, i64)> {
        each!(self, b => b.pause_guest(d).await)
    }
    async fn cut_network(&self, d: Duration) -> Result<(i64, i64, i64)> {
        each!(self, b => b.cut_network(d).await)
    }
    fn hypervisor_version(&self) -> Option<String> {
        each!(self, b => b.hypervisor_version())
    }
    fn scratch_dir(&self) -> PathBuf {
        each!(self, b => b.scratch_dir())
    }
    fn vm_facts(&self) -> Option<serde_json::Value> {
        each!(self, b => b.vm_facts())
    }
    fn collect(&self, bundle: &Bundle) -> Result<()> {
        each!(self, b => b.collect(bundle))
    }
    async fn teardown(&mut self) -> Result<()> {
        each!(self, b => b.teardown().await)
    }
    async fn read_disk(&self, len: u64) -> Result<Option<super::DiskRead>> {
        each!(self, b => b.read_disk(len).await)
    }
}
