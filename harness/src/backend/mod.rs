//! Where migrations happen.
//!
//! A [`Backend`] owns one VM on two hosts for the whole run: it prepares
//! it (builds or finds it), says how to reach it ([`Endpoints`]) and what
//! it can do ([`Capabilities`]), migrates it back and forth recording what
//! the hypervisor and the platform saw ([`MigrationRecord`]: markers and
//! statistics), hands its logs and facts to the bundle, and tears down
//! what it made. The run loop, streams, sweeps, calibration and faults know
//! only this interface.
//!
//! The local QEMU lab ([`local::LocalLab`]: namespaces, taps, QMP) is the
//! first backend; [`libvirt::LibvirtLab`] runs the same guest between two
//! real libvirt daemons in the same lab. A new one is a module beside them
//! implementing [`Backend`], and a variant of [`AnyBackend`]; nothing
//! outside `backend/` knows about namespaces, taps, QMP sockets or virsh.

pub mod agent;
mod any;
pub mod libvirt;
pub mod local;
pub mod proxmox;
pub mod real_vm;
mod site;

pub use any::AnyBackend;

pub use site::Site;

use crate::bundle::Bundle;
use crate::live::Live;
use crate::scenario::{BackendKind, FaultSpec, Scenario};
use agent::AgentClient;
use measure::migration::record::MigrationRecord;
use measure::summary::ClockAlignment;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What the scenario's backend is and can do, known before anything is
/// made.
pub fn described(scenario: &Scenario) -> (&'static str, Capabilities) {
    match scenario.backend.kind {
        BackendKind::Local => (local::NAME, local::CAPABILITIES),
        BackendKind::Libvirt if !scenario.backend.uris.is_empty() => {
            (libvirt::NAME, libvirt::REMOTE_CAPABILITIES)
        }
        BackendKind::Libvirt => (libvirt::NAME, libvirt::CAPABILITIES),
        BackendKind::Proxmox => (proxmox::NAME, proxmox::CAPABILITIES),
    }
}

/// Refuses a scenario that asks for something its backend cannot do,
/// naming the scenario key and the backend. `calibrate` is whether the run
/// pauses the guest and cuts its network instead of migrating.
pub fn check_scenario(scenario: &Scenario, calibrate: bool) -> anyhow::Result<()> {
    let (name, caps) = described(scenario);
    check_against(scenario, name, caps, calibrate)
}

fn check_against(
    scenario: &Scenario,
    name: &str,
    caps: Capabilities,
    calibrate: bool,
) -> anyhow::Result<()> {
    let refuse = |key: &str, what: &str| {
        anyhow::anyhow!("scenario key `{key}`: the {name} backend cannot {what}")
    };
    if !scenario.fault.is_empty() && !caps.kill_qemu {
        return Err(refuse("fault", "kill a QEMU mid-migration"));
    }
    if !caps.qmp_knobs {
        if !scenario.migration.capabilities.is_empty() {
            return Err(refuse(
                "migration.capabilities",
                "set QMP migration capabilities",
            ));
        }
        if !scenario.migration.parameters.is_empty() {
            return Err(refuse(
                "migration.parameters",
                "set QMP migration parameters",
            ));
        }
    }
    if calibrate && !caps.pause {
        return Err(refuse(
            "(harness calibrate)",
            "pause the guest for a set time",
        ));
    }
    if calibrate && !caps.network_cut {
        return Err(refuse("(harness calibrate)", "cut the guest's network"));
    }
    Ok(())
}

/// The backend the scenario's `[backend]` names, created (nothing started
/// yet). `agent` overrides the guest agent binary, `extras` are host
/// programs to ship into the guest image (the local lab only).
pub fn open(
    scenario: &Scenario,
    agent: Option<&std::path::Path>,
    extras: Vec<std::path::PathBuf>,
) -> anyhow::Result<AnyBackend> {
    Ok(match scenario.backend.kind {
        BackendKind::Local => {
            AnyBackend::Local(Box::new(local::LocalLab::create(scenario, agent, extras)?))
        }
        BackendKind::Libvirt => {
            if !extras.is_empty() {
                anyhow::bail!("the libvirt backend does not ship extra programs into the guest (the benchmarks run on the local lab)");
            }
            if scenario.backend.uris.is_empty() {
                AnyBackend::Libvirt(Box::new(libvirt::LibvirtLab::create(scenario, agent)?))
            } else {
                AnyBackend::LibvirtRemote(Box::new(libvirt::LibvirtRemote::create(scenario)?))
            }
        }
        BackendKind::Proxmox => {
            if !extras.is_empty() || agent.is_some() {
                anyhow::bail!("the proxmox backend migrates a VM that exists: it ships no agent or programs into it (install the agent in the VM, docs/agent-on-a-real-vm.md)");
            }
            AnyBackend::Proxmox(Box::new(proxmox::ProxmoxBackend::create(scenario)?))
        }
    })
}

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

/// How the measurement reaches the VM and where the client's side runs.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The guest agent's control API (address, token, and where to
    /// connect from).
    pub agent: AgentClient,
    /// The agent's UDP reflector, for the probe.
    pub reflector: SocketAddr,
    /// The guest's address, for the streams it serves.
    pub guest: IpAddr,
    /// Where the probe, the stream receivers and the announce watcher run.
    pub client: Site,
    /// The client's own address as the guest sees it (where the guest
    /// sends its RTP stream).
    pub client_addr: IpAddr,
    /// The client's interface on the guest's LAN, where QEMU's RARP
    /// announces can be captured; `None` when the backend cannot say.
    pub announce_interface: Option<String>,
}

/// What a backend can do beyond migrating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Pause the guest for a set time (`harness calibrate`).
    pub pause: bool,
    /// Cut the guest's network for a set time (`harness calibrate`).
    pub network_cut: bool,
    /// Kill a QEMU mid-migration (`[[fault]]`).
    pub kill_qemu: bool,
    /// Set QMP migration capabilities and parameters
    /// (`migration.capabilities`, `migration.parameters`).
    pub qmp_knobs: bool,
    /// Migrate local disks.
    pub disks: bool,
}

/// What [`Backend::prepare`] found out.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The agent's health answer.
    pub health: wire::control::Health,
    /// `kvm` or `tcg` (or what the platform says).
    pub acceleration: String,
    /// Why that acceleration.
    pub acceleration_note: String,
}

/// A place where a VM can be live-migrated, for the length of one run.
#[expect(
    async_fn_in_trait,
    reason = "used with concrete types only, never as dyn"
)]
pub trait Backend {
    /// Short name for manifests (`local-qemu`, `libvirt`, `proxmox`).
    fn name(&self) -> &'static str;
    /// The run's id (names the bundle).
    fn run_id(&self) -> &str;
    /// What it can do.
    fn capabilities(&self) -> Capabilities;
    /// Lines to show before the run starts (what a sweep of killed runs
    /// removed, say).
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }
    /// Brings the VM up (or finds it) and waits until its agent answers.
    async fn prepare(&mut self, scenario: &Scenario, live: &Live) -> anyhow::Result<Prepared>;
    /// How to reach the VM and where the client runs; valid after
    /// [`Backend::prepare`].
    fn endpoints(&self) -> Endpoints;
    /// How host, client and guest clocks relate, for this backend and
    /// this probe placement.
    fn clock_alignment(&self) -> ClockAlignment;
    /// Uses `s` for the next migrations (a sweep point).
    fn set_scenario(&mut self, s: &Scenario);
    /// Migrates the VM to the other host and records everything seen.
    /// Failures of the migration are recorded in the result, not returned
    /// as errors; an `Err` means the backend itself broke.
    async fn migrate(
        &mut self,
        req: &MigrationRequest<'_>,
        live: &Live,
    ) -> anyhow::Result<MigrationRecord>;
    /// Pauses the guest for `d`; returns the pause as the host timed it
    /// (start, end, ns). Only when [`Capabilities::pause`].
    async fn pause_guest(&self, d: Duration) -> anyhow::Result<(i64, i64)>;
    /// Cuts the guest's network for about `d`; returns start, end and
    /// their uncertainty (ns). Only when [`Capabilities::network_cut`].
    async fn cut_network(&self, d: Duration) -> anyhow::Result<(i64, i64, i64)>;
    /// The hypervisor's version, for the manifest (`QEMU emulator version
    /// 10.0.2 …`).
    fn hypervisor_version(&self) -> Option<String>;
    /// A folder for scratch files, removed at teardown.
    fn scratch_dir(&self) -> std::path::PathBuf;
    /// What the VM is, for the manifest (the local lab: its guest image's
    /// kernel, initramfs, agent and their hashes).
    fn vm_facts(&self) -> Option<serde_json::Value>;
    /// Writes the backend's logs and facts into the bundle (consoles,
    /// command lines, daemon logs), with every secret redacted.
    fn collect(&self, bundle: &Bundle) -> anyhow::Result<()>;
    /// Ends everything the backend started and removes what it made.
    async fn teardown(&mut self) -> anyhow::Result<()>;
    /// The first `len` bytes of the disk the VM runs on now, read from the
    /// host (for the host's check while the agent holds its writes), with
    /// the image's path and node; `None` where the backend cannot reach
    /// the image (a real cluster's storage).
    async fn read_disk(&self, _len: u64) -> anyhow::Result<Option<DiskRead>> {
        Ok(None)
    }
}

/// What [`Backend::read_disk`] read.
pub struct DiskRead {
    /// The image file.
    pub image: String,
    /// The node it is on.
    pub node: String,
    /// Its first bytes.
    pub data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn scenario(text: &str) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, text).unwrap();
        Scenario::load(&p).unwrap()
    }

    #[test]
    fn a_scenario_is_refused_for_what_its_backend_cannot_do() {
        let fault = scenario(
            "name = \"f\"\n[[fault]]\nrepetition = 1\nkill = \"destination\"\nafter_ms = 100\n",
        );
        let knobs = scenario("name = \"k\"\n[migration]\ncapabilities = { xbzrle = true }\n");
        let plain = scenario("name = \"p\"\n");
        let lab = local::CAPABILITIES;
        assert!(check_against(&fault, "local-qemu", lab, true).is_ok());
        assert!(check_against(&knobs, "local-qemu", lab, false).is_ok());
        let none = Capabilities {
            pause: false,
            network_cut: false,
            kill_qemu: false,
            qmp_knobs: false,
            disks: false,
        };
        let e = check_against(&fault, "proxmox", none, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`fault`") && e.contains("proxmox"), "{e}");
        let e = check_against(&knobs, "proxmox", none, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`migration.capabilities`"), "{e}");
        assert!(check_against(&plain, "proxmox", none, false).is_ok());
        let e = check_against(&plain, "proxmox", none, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pause"), "{e}");
        assert!(check_scenario(&fault, true).is_ok());
    }
}
