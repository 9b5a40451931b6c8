//! Where migrations happen.
//!
//! A [`Backend`] moves one VM between two hosts and records what the
//! hypervisor saw. The local QEMU lab ([`local::LocalLab`]) is the first
//! implementation; libvirt (`virsh migrate --live` + `domjobinfo`) and
//! Proxmox (`POST /nodes/{node}/qemu/{vmid}/migrate` + task log) fit the
//! same shape: they produce a [`MigrationRecord`] from their own sources.

pub mod local;

use crate::scenario::FaultSpec;
use measure::migration::record::MigrationRecord;

/// What the run loop asks of a backend for one repetition.
pub struct MigrationRequest<'a> {
    /// 1-based repetition.
    pub repetition: u32,
    /// Repetitions in the run, for the live line.
    pub of: u32,
    /// Faults to inject in it.
    pub faults: Vec<&'a FaultSpec>,
    /// Extra text for the live line (the probe's gap so far).
    pub status_suffix: &'a (dyn Fn() -> String + Sync),
    /// Set when the user asked to stop.
    pub cancel: &'a std::sync::atomic::AtomicBool,
}

/// A place where a VM can be live-migrated.
pub trait Backend {
    /// Short name for manifests (`local-qemu`, `libvirt`, `proxmox`).
    fn name(&self) -> &'static str;
    /// Migrates the VM to the other host and records everything seen.
    /// Failures of the migration are recorded in the result, not returned
    /// as errors; an `Err` means the backend itself broke.
    #[expect(
        async_fn_in_trait,
        reason = "used with concrete types only, never as dyn"
    )]
    async fn migrate(
        &mut self,
        req: &MigrationRequest<'_>,
        live: &crate::live::Live,
    ) -> anyhow::Result<MigrationRecord>;
}
