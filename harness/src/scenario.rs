//! Scenario files: what to run, in TOML.
//!
//! A scenario is read strictly: an unknown or misspelt key is an error that
//! names the file, the line and the key, never silently ignored. Every
//! field has a default, and [`Scenario::resolved_toml`] writes the scenario
//! back with every default made explicit, which is what a bundle stores.

pub mod backend;
pub mod disk;
pub mod fleet;
pub mod link;

pub use backend::{BackendKind, BackendSpec, LibvirtTransport};
pub use fleet::{Condition, FleetMode, Member, Vms};
use measure::summary::verdict::AssertSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

/// Why a scenario could not be used.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, or a key is unknown or of the wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What toml/serde said, e.g. "unknown field `rate`, expected ...".
        message: String,
    },
    /// The values parse but make no sense together.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// How QEMU executes the guest.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Acceleration {
    /// KVM if a guest really comes up under it within a deadline, else TCG.
    #[default]
    Auto,
    /// Hardware virtualisation; fails if the guest does not come up.
    Kvm,
    /// Software emulation: slow but works everywhere.
    Tcg,
}

/// The guest's network card model.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum Nic {
    /// virtio-net-pci (the default, fastest).
    #[default]
    #[serde(rename = "virtio-net")]
    VirtioNet,
    /// Intel E1000, as in the study.
    #[serde(rename = "e1000")]
    E1000,
}

impl Nic {
    /// The QEMU `-device` model name.
    pub fn qemu_device(self) -> &'static str {
        match self {
            Nic::VirtioNet => "virtio-net-pci",
            Nic::E1000 => "e1000",
        }
    }
    /// The guest kernel module that drives it.
    pub fn kernel_module(self) -> &'static str {
        match self {
            Nic::VirtioNet => "virtio_net",
            Nic::E1000 => "e1000",
        }
    }
}

/// The virtual machine under test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VmSpec {
    /// Its name in a fleet's results (`[[vm]]`; the folder of its bundle).
    pub name: String,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// NIC model.
    pub nic: Nic,
    /// Guest kernel: a path to a bzImage, or `auto` (the host's newest
    /// `/boot/vmlinuz-*`).
    pub kernel: String,
    /// Seconds to wait for the agent to answer after boot.
    pub boot_timeout_s: f64,
    /// A disk, if the VM has one (`[vm.disk]`). With `image = "debian"`
    /// it is the root disk: its bus, format and storage are taken, its
    /// size is the image's.
    pub disk: Option<disk::DiskSpec>,
    /// The guest: `initramfs` (the agent as PID 1, the default) or
    /// `debian` (Debian 12 with systemd, the agent as a service).
    pub image: GuestKind,
    /// This VM's workloads (`[vm.workload]` after its `[[vm]]`), instead
    /// of the scenario's `[workload]`.
    pub workload: Option<WorkloadSpec>,
}

/// What runs in the guest.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum GuestKind {
    /// The agent as `/init` of an initramfs: boots in seconds.
    #[default]
    Initramfs,
    /// Debian 12 from its own packages, booting from its disk with
    /// systemd; the agent is the shipped service.
    Debian,
}

impl Default for VmSpec {
    fn default() -> Self {
        Self {
            name: "vm".into(),
            memory_mib: 256,
            vcpus: 1,
            nic: Nic::VirtioNet,
            kernel: "auto".into(),
            boot_timeout_s: 90.0,
            disk: None,
            image: GuestKind::Initramfs,
            workload: None,
        }
    }
}

/// The client's UDP probe stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSpec {
    /// Probes per second.
    pub rate_hz: u32,
    /// UDP payload size in bytes (at least the probe header, 56).
    pub payload_bytes: usize,
    /// Gaps between replies longer than this are listed one by one.
    pub gap_threshold_ms: f64,
    /// ICMP echoes per second to the guest's kernel beside the UDP probe
    /// (`client.icmp_*`); 0: none. 200 by default: at 1000 a TCG guest
    /// answering both streams paused measurably longer (docs/study.md).
    pub icmp_rate_hz: u32,
    /// How the harness runs the probe: `in-process` (a library call at the
    /// client's site) or `serve` (a `client-probe serve` process started
    /// there, driven over its HTTP control API with a clock
    /// offset exchange, exactly as a probe on a remote laptop would be).
    pub control: ProbeControl,
}

/// See [`ProbeSpec::control`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeControl {
    /// A library call inside the harness.
    #[default]
    InProcess,
    /// A `client-probe serve` subprocess driven over HTTP.
    Serve,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        Self {
            rate_hz: 1000,
            payload_bytes: 64,
            gap_threshold_ms: 5.0,
            icmp_rate_hz: 200,
            control: ProbeControl::InProcess,
        }
    }
}

/// QEMU migration settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationSpec {
    /// `max-bandwidth`, in MiB/s (QEMU's default is 128).
    pub max_bandwidth_mib_s: f64,
    /// `downtime-limit`, in ms (QEMU's default is 300).
    pub downtime_limit_ms: u64,
    /// Migration capabilities to set, by QEMU name (`xbzrle`,
    /// `auto-converge`, ...). `events` is always on.
    pub capabilities: BTreeMap<String, bool>,
    /// Further `migrate-set-parameters` arguments, by QEMU name, passed
    /// as they are (for example `multifd-channels = 2`).
    pub parameters: BTreeMap<String, toml::Value>,
    /// Give up on a migration that has not finished after this long.
    pub timeout_s: f64,
    /// How the local lab switches over: `qemu` (the destination resumes
    /// as soon as QEMU completes) or `proxmox` (qemu-server's way: the
    /// destination waits paused for its poll, its cleanup and `cont`).
    pub flow: MigrationFlow,
}

/// How the local lab performs a migration.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MigrationFlow {
    /// QMP `migrate`; the destination resumes by itself.
    #[default]
    Qemu,
    /// As Proxmox VE's qemu-server does it, with its task log.
    Proxmox,
}

impl Default for MigrationSpec {
    fn default() -> Self {
        Self {
            max_bandwidth_mib_s: 128.0,
            downtime_limit_ms: 300,
            capabilities: BTreeMap::new(),
            parameters: BTreeMap::new(),
            timeout_s: 120.0,
            flow: MigrationFlow::Qemu,
        }
    }
}

/// A dirty rate: MiB/s of distinct pages, or `"max"` (as fast as the guest
/// can). 0 means no dirtying at all (an idle guest), which is what a sweep
/// starting at 0 wants.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DirtyRate {
    /// MiB/s.
    MiBs(f64),
    /// `"max"`.
    Named(MaxRate),
}

/// The word `max`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MaxRate {
    /// As fast as possible.
    Max,
}

/// How the dirtier picks pages: the agent's own type, so the scenario and
/// the wire cannot disagree.
pub use wire::control::DirtyPattern;

fn default_hot_fraction() -> f64 {
    0.1
}
fn default_hot_share() -> f64 {
    0.9
}
fn default_threads() -> u32 {
    1
}

/// Memory dirtying in the guest during the whole run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DirtySpec {
    /// Working set in MiB.
    pub working_set_mib: u64,
    /// Target rate; 0 = idle, `"max"` = as fast as possible.
    pub rate_mib_s: DirtyRate,
    /// Access pattern.
    #[serde(default)]
    pub pattern: DirtyPattern,
    /// `hotcold`: fraction of the working set that is hot.
    #[serde(default = "default_hot_fraction")]
    pub hot_fraction: f64,
    /// `hotcold`: share of writes that go to the hot part.
    #[serde(default = "default_hot_share")]
    pub hot_share: f64,
    /// Writer threads.
    #[serde(default = "default_threads")]
    pub threads: u32,
}

impl DirtySpec {
    /// The agent's workload for this spec; `None` when the rate is 0 (idle).
    pub fn to_wire(&self) -> Option<wire::control::WorkloadSpec> {
        let rate = match self.rate_mib_s {
            DirtyRate::MiBs(r) if r <= 0.0 => return None,
            DirtyRate::MiBs(r) => r,
            DirtyRate::Named(MaxRate::Max) => 0.0,
        };
        Some(wire::control::WorkloadSpec::Dirty {
            working_set_mib: self.working_set_mib,
            rate_mib_s: rate,
            pattern: self.pattern,
            hot_fraction: self.hot_fraction,
            hot_share: self.hot_share,
            threads: self.threads,
        })
    }
}

/// A parameter swept over values: the scenario's repetitions run once per
/// value, in order, with the parameter set to it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// The dotted key, e.g. `workload.dirty.rate_mib_s` or
    /// `migration.max_bandwidth_mib_s`.
    pub parameter: String,
    /// The values, each as the key would take it.
    pub values: Vec<toml::Value>,
}

/// Workloads the guest agent runs while migrations happen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadSpec {
    /// Memory dirtying, if any.
    pub dirty: Option<DirtySpec>,
    /// Writes to the VM's disk, if any (`[workload.disk]`).
    pub disk: Option<disk::DiskWorkloadSpec>,
    /// An RTP video stream from the guest to the client, if any.
    pub rtp: Option<RtpSpec>,
    /// An HTTP progressive video download by the client, if any.
    pub http: Option<HttpSpec>,
}

/// The test clip both streams carry (made once with ffmpeg/libx264 and
/// cached; see the `media` crate).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClipParams {
    /// Picture width, pixels.
    pub width: u32,
    /// Picture height, pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bit rate, kbit/s.
    pub bitrate_kbps: u32,
    /// Keyframe interval, frames.
    pub gop: u32,
    /// Clip length, seconds (the agent loops it).
    pub seconds: u32,
}

impl Default for ClipParams {
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            fps: 30,
            bitrate_kbps: 1000,
            gop: 30,
            seconds: 10,
        }
    }
}

/// The RTP stream (guest to client).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RtpSpec {
    /// The clip.
    pub clip: ClipParams,
    /// UDP port of the client's receiver.
    pub port: u16,
    /// Largest RTP payload, bytes.
    pub mtu: usize,
    /// Jitter-buffer playout delay of the receiver model, ms.
    pub playout_delay_ms: f64,
    /// Inter-arrival gaps longer than this are listed, ms.
    pub gap_threshold_ms: f64,
}

impl Default for RtpSpec {
    fn default() -> Self {
        Self {
            clip: ClipParams::default(),
            port: 5004,
            mtu: 1200,
            playout_delay_ms: 100.0,
            gap_threshold_ms: 50.0,
        }
    }
}

/// The HTTP progressive stream (the client downloads from the guest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSpec {
    /// The clip (muxed to MPEG-TS).
    pub clip: ClipParams,
    /// TCP port the agent serves on.
    pub port: u16,
    /// The player starts once this much media is buffered, s.
    pub start_s: f64,
    /// After a stall, it resumes once this much is buffered again, s.
    pub resume_s: f64,
}

impl Default for HttpSpec {
    fn default() -> Self {
        Self {
            clip: ClipParams::default(),
            port: 8080,
            start_s: 2.5,
            resume_s: 5.0,
        }
    }
}

/// What a fault does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Kill (SIGKILL) the destination QEMU.
    Destination,
    /// Kill (SIGKILL) the source QEMU: the VM is lost and the run ends.
    Source,
}

/// A deliberate failure, to check how the system under test (and this
/// tool) behave when a migration breaks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// 1-based repetition in which to inject it.
    pub repetition: u32,
    /// Which QEMU to kill.
    pub kill: FaultKind,
    /// Milliseconds after the `migrate` command.
    pub after_ms: u64,
}

/// One scenario file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Short name, used in the bundle's folder name.
    pub name: String,
    /// What the scenario is for, in a sentence.
    pub description: String,
    /// Migrations to run; they alternate A to B, B to A.
    pub repetitions: u32,
    /// `auto`, `kvm` or `tcg`.
    pub acceleration: Acceleration,
    /// Seconds of probing before each migration.
    pub pause_before_s: f64,
    /// Seconds of probing after each migration.
    pub pause_after_s: f64,
    /// The VM (`[vm]`), or several (`[[vm]]`, see [`fleet`]).
    pub vm: Vms,
    /// The conditions each VM runs under (`[[condition]]`), if a matrix.
    pub condition: Vec<Condition>,
    /// How several VMs are migrated: `sequential` or `evacuate`.
    pub mode: FleetMode,
    /// The client's probe.
    pub probe: ProbeSpec,
    /// QEMU migration settings.
    pub migration: MigrationSpec,
    /// Guest workloads.
    pub workload: WorkloadSpec,
    /// Injected faults.
    pub fault: Vec<FaultSpec>,
    /// A parameter to sweep, if any.
    pub sweep: Option<SweepSpec>,
    /// What "transparent" means: checks evaluated into the verdict
    /// (see [`crate::verdict`]).
    #[serde(rename = "assert")]
    pub asserts: Option<AssertSpec>,
    /// The platform the run migrates on (`[backend]`).
    pub backend: BackendSpec,
    /// How the lab's links are shaped (`[link.migration]`, `[link.client]`).
    #[serde(default)]
    pub link: link::Links,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "unnamed".into(),
            description: String::new(),
            repetitions: 3,
            acceleration: Acceleration::Auto,
            pause_before_s: 1.0,
            pause_after_s: 1.0,
            vm: Vms::default(),
            condition: Vec::new(),
            mode: FleetMode::Sequential,
            probe: ProbeSpec::default(),
            migration: MigrationSpec::default(),
            workload: WorkloadSpec::default(),
            fault: Vec::new(),
            sweep: None,
            asserts: None,
            backend: BackendSpec::default(),
            link: link::Links::default(),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            ScenarioError::Parse {
                path: origin.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        s.check().map_err(|message| ScenarioError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(s)
    }

    fn check(&self) -> Result<(), String> {
        self.backend.check()?;
        self.check_fleet()?;
        if self.is_fleet() {
            for m in self.members() {
                let under = match m.condition.as_str() {
                    "" => String::new(),
                    c => format!(" under condition {c:?}"),
                };
                m.scenario
                    .check()
                    .map_err(|e| format!("VM {:?}{under}: {e}", m.vm))?;
            }
            return Ok(());
        }
        if self.backend.kind == BackendKind::Libvirt && self.acceleration == Acceleration::Kvm {
            return Err("`acceleration` = \"kvm\": the libvirt lab runs its domain under TCG (type 'qemu'); use \"tcg\" or \"auto\"".into());
        }
        if self.repetitions == 0 {
            return Err("`repetitions` must be at least 1".into());
        }
        if self.vm.memory_mib < 64 {
            return Err(format!(
                "`vm.memory_mib` = {} is too small: the guest needs at least 64 MiB",
                self.vm.memory_mib
            ));
        }
        if self.vm.vcpus == 0 {
            return Err("`vm.vcpus` must be at least 1".into());
        }
        if !(1..=100_000).contains(&self.probe.rate_hz) {
            return Err(format!(
                "`probe.rate_hz` = {} is out of range 1..=100000",
                self.probe.rate_hz
            ));
        }
        if self.probe.payload_bytes < wire::probe::HEADER_LEN || self.probe.payload_bytes > 1472 {
            return Err(format!(
                "`probe.payload_bytes` = {} must be between {} (the probe header) and 1472 (one Ethernet frame)",
                self.probe.payload_bytes,
                wire::probe::HEADER_LEN
            ));
        }
        if self.migration.max_bandwidth_mib_s <= 0.0 {
            return Err("`migration.max_bandwidth_mib_s` must be positive".into());
        }
        for f in &self.fault {
            if f.repetition == 0 || f.repetition > self.repetitions {
                return Err(format!(
                    "`fault.repetition` = {} is not one of the {} repetitions",
                    f.repetition, self.repetitions
                ));
            }
        }
        if let Some(d) = &self.workload.dirty {
            if d.working_set_mib >= self.vm.memory_mib {
                return Err(format!(
                    "`workload.dirty.working_set_mib` = {} does not fit in `vm.memory_mib` = {}",
                    d.working_set_mib, self.vm.memory_mib
                ));
            }
        }
        self.link.check()?;
        let shaped = self.link.migration.is_some() || self.link.client.is_some();
        if shaped && self.backend.kind != BackendKind::Local {
            return Err(format!(
                "`link` shapes the local lab's links; the {} backend's links are the platform's",
                self.backend.kind.as_str()
            ));
        }
        if let Some(d) = &self.vm.disk {
            d.check()?;
            let lab = self.backend.kind == BackendKind::Local
                || (self.backend.kind == BackendKind::Libvirt && self.backend.uris.is_empty());
            if !lab {
                return Err(format!("`vm.disk` is the lab's own VM's; the {} backend migrates the disks its VM has (`backend.with_local_disks`)", self.backend.kind.as_str()));
            }
        }
        if let Some(w) = &self.workload.disk {
            w.check(self.vm.disk.as_ref())?;
        }
        if self.vm.image == GuestKind::Debian {
            if self.backend.kind != BackendKind::Local {
                return Err("`vm.image` = \"debian\" runs in the local lab only".into());
            }
            if self.workload.disk.is_some() {
                return Err("`workload.disk` writes raw blocks: with `vm.image` = \"debian\" the disk is the guest's root file system".into());
            }
            if self
                .vm
                .disk
                .as_ref()
                .is_some_and(|d| d.format != disk::DiskFormat::Raw)
            {
                return Err("`vm.disk.format`: the Debian guest's root disk is raw".into());
            }
        }
        if let Some(a) = &self.asserts {
            for c in &a.checks {
                measure::summary::verdict::parse_check(c)
                    .map_err(|e| format!("`assert.checks`: {e}"))?;
            }
        }
        if let Some(sw) = &self.sweep {
            if sw.values.is_empty() {
                return Err("`sweep.values` is empty".into());
            }
            if sw.parameter.starts_with("sweep") || sw.parameter == "repetitions" {
                return Err(format!(
                    "`sweep.parameter` = {:?} cannot be swept",
                    sw.parameter
                ));
            }
            // Every point must make a valid scenario.
            self.sweep_points()?;
        }
        if let Some(d) = &self.workload.dirty {
            if !(d.hot_fraction > 0.0 && d.hot_fraction <= 1.0) {
                return Err(format!(
                    "`workload.dirty.hot_fraction` = {} must be in (0, 1]",
                    d.hot_fraction
                ));
            }
            if !(0.0..=1.0).contains(&d.hot_share) {
                return Err(format!(
                    "`workload.dirty.hot_share` = {} must be in [0, 1]",
                    d.hot_share
                ));
            }
            if !(1..=64).contains(&d.threads) {
                return Err(format!(
                    "`workload.dirty.threads` = {} must be 1 to 64",
                    d.threads
                ));
            }
        }
        if self.migration.flow == MigrationFlow::Proxmox {
            if self.backend.kind != BackendKind::Local {
                return Err("`migration.flow` = \"proxmox\" is a choice of the local lab (`backend.kind` = \"local\")".into());
            }
            if !self.migration.capabilities.is_empty() || !self.migration.parameters.is_empty() {
                return Err("`migration.capabilities` and `migration.parameters` cannot be set with `migration.flow` = \"proxmox\": qemu-server sets its own (auto-converge, xbzrle, its cache size)".into());
            }
        }
        for name in self.migration.parameters.keys() {
            if matches!(name.as_str(), "max-bandwidth" | "downtime-limit") {
                return Err(format!(
                    "`migration.parameters.{name}`: set it with `max_bandwidth_mib_s` / `downtime_limit_ms` instead"
                ));
            }
        }
        Ok(())
    }

    /// The scenario with `parameter` (a dotted key) set to `value`, checked
    /// like a file would be: an unknown key or a wrong type is an error.
    pub fn with_parameter(&self, parameter: &str, value: &toml::Value) -> Result<Scenario, String> {
        let mut root = toml::Value::try_from(self).map_err(|e| e.to_string())?;
        let keys: Vec<&str> = parameter.split('.').collect();
        let (last, path) = keys.split_last().ok_or("empty parameter name")?;
        let mut table = &mut root;
        for k in path {
            let t = table
                .as_table_mut()
                .ok_or_else(|| format!("`{parameter}`: `{k}` is not a table"))?;
            table = t
                .entry(k.to_string())
                .or_insert_with(|| toml::Value::Table(toml::map::Map::new()));
        }
        table
            .as_table_mut()
            .ok_or_else(|| format!("`{parameter}` does not name a key"))?
            .insert(last.to_string(), value.clone());
        let mut s: Scenario = root.try_into().map_err(|e: toml::de::Error| {
            format!("`{parameter}` = {value}: {}", e.message().trim())
        })?;
        s.sweep = None;
        s.check()
            .map_err(|e| format!("`{parameter}` = {value}: {e}"))?;
        Ok(s)
    }

    /// The scenario at each point of its sweep (the value with it), or the
    /// scenario itself once when it has no sweep.
    pub fn sweep_points(&self) -> Result<Vec<(Option<toml::Value>, Scenario)>, String> {
        match &self.sweep {
            None => Ok(vec![(None, self.clone())]),
            Some(sw) => sw
                .values
                .iter()
                .map(|v| Ok((Some(v.clone()), self.with_parameter(&sw.parameter, v)?)))
                .collect(),
        }
    }

    /// The scenario with every default written out, as stored in bundles.
    pub fn resolved_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot serialise: {e}\n"))
    }

    /// The faults to inject in repetition `rep` (1-based).
    pub fn faults_for(&self, rep: u32) -> impl Iterator<Item = &FaultSpec> {
        self.fault.iter().filter(move |f| f.repetition == rep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let s = Scenario::parse("", "x.toml").unwrap();
        assert_eq!(s, Scenario::default());
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = "name = \"a\"\n\n[probe]\nrate_hz = 10\nrate = 5\n";
        let e = Scenario::parse(text, "scenarios/bad.toml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("scenarios/bad.toml:5:"), "{msg}");
        assert!(msg.contains("unknown field `rate`"), "{msg}");
    }

    #[test]
    fn wrong_type_and_bad_values_are_named() {
        let e = Scenario::parse("repetitions = \"three\"\n", "s.toml").unwrap_err();
        assert!(e.to_string().starts_with("s.toml:1:"), "{e}");
        let e = Scenario::parse("[vm]\nnic = \"rtl8139\"\n", "s.toml").unwrap_err();
        assert!(e.to_string().contains("rtl8139"), "{e}");
        let e = Scenario::parse("repetitions = 0\n", "s.toml").unwrap_err();
        assert!(e.to_string().contains("repetitions"), "{e}");
        let e = Scenario::parse(
            "[[fault]]\nrepetition = 9\nkill = \"destination\"\nafter_ms = 1\n",
            "s.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("fault.repetition"), "{e}");
    }

    #[test]
    fn a_sweep_gives_one_checked_scenario_per_value() {
        let text = "repetitions = 2\n[workload.dirty]\nworking_set_mib = 64\nrate_mib_s = 0\n[sweep]\nparameter = \"workload.dirty.rate_mib_s\"\nvalues = [0, 8, \"max\"]\n";
        let s = Scenario::parse(text, "s.toml").unwrap();
        let pts = s.sweep_points().unwrap();
        assert_eq!(pts.len(), 3);
        let rate = |i: usize| pts[i].1.workload.dirty.as_ref().unwrap().rate_mib_s;
        assert_eq!(rate(0), DirtyRate::MiBs(0.0));
        assert_eq!(rate(1), DirtyRate::MiBs(8.0));
        assert_eq!(rate(2), DirtyRate::Named(MaxRate::Max));
        assert!(
            pts[0]
                .1
                .workload
                .dirty
                .as_ref()
                .unwrap()
                .to_wire()
                .is_none(),
            "0 is idle"
        );
        assert!(pts
            .iter()
            .all(|(_, p)| p.sweep.is_none() && p.repetitions == 2));
        // A misspelt parameter or a value of the wrong type is refused.
        let e = Scenario::parse(&text.replace("rate_mib_s\"", "rate\""), "s.toml").unwrap_err();
        assert!(e.to_string().contains("workload.dirty.rate"), "{e}");
        let e = Scenario::parse(&text.replace("[0, 8,", "[0, true,"), "s.toml").unwrap_err();
        assert!(e.to_string().contains("= true"), "{e}");
        let bw = "[sweep]\nparameter = \"migration.max_bandwidth_mib_s\"\nvalues = [8, 64]\n";
        let pts = Scenario::parse(bw, "b.toml")
            .unwrap()
            .sweep_points()
            .unwrap();
        assert_eq!(pts[1].1.migration.max_bandwidth_mib_s, 64.0);
    }

    #[test]
    fn resolved_form_parses_back_to_the_same_scenario() {
        let text = "name = \"q\"\n[migration]\ncapabilities = { xbzrle = true }\nparameters = { multifd-channels = 2 }\n[workload.dirty]\nworking_set_mib = 32\nrate_mib_s = 8\n";
        let s = Scenario::parse(text, "q.toml").unwrap();
        let again = Scenario::parse(&s.resolved_toml(), "resolved").unwrap();
        assert_eq!(s, again);
    }
}
