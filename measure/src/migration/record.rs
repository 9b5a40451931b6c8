//! Records of a run, as stored in the bundle and re-read by analysis.
//!
//! A migration's record is what its backend observed, in a form that does
//! not assume QMP: timed [`Marker`]s, QEMU's and the platform's statistics
//! as optional numbers, and the backend's raw data beside them (QMP events
//! and samples for the QMP backends, task log lines or daemon output for
//! the others). Summaries are computed from markers and statistics by
//! [`crate::summary`]; the raw data is there to re-check them.

use crate::migration::marker::{first, Marker, MarkerKind};
use crate::migration::qmp::MigrationInfo;
use crate::migration::qmp::QmpEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a repetition ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RepStatus {
    /// QEMU reported `completed` and the destination resumed the guest.
    Completed,
    /// The migration failed, was cancelled, timed out, or a QEMU died.
    Failed,
    /// Stopped by the user (Ctrl-C) before it ended.
    Interrupted,
}

impl RepStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RepStatus::Completed => "completed",
            RepStatus::Failed => "failed",
            RepStatus::Interrupted => "interrupted",
        }
    }
}

/// One `query-migrate` sample of the source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// When the answer arrived (host CLOCK_REALTIME, ns).
    pub host_ns: i64,
    /// The lenient reading.
    pub info: MigrationInfo,
    /// The answer as QEMU sent it.
    pub raw: Value,
}

/// A QMP event and which side of the migration sent it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SideEvent {
    /// `source` or `destination`.
    pub side: String,
    /// `a` or `b`.
    pub node: String,
    /// The event.
    #[serde(flatten)]
    pub event: QmpEvent,
}

/// Everything recorded about one migration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MigrationRecord {
    /// 1-based repetition.
    pub repetition: u32,
    /// Node the VM left (`a` or `b`).
    pub source: String,
    /// Node it went to.
    pub destination: String,
    /// How it ended.
    pub status: RepStatus,
    /// Why it failed, for a person.
    pub error: Option<String>,
    /// When `migrate` was sent (host clock, ns).
    pub migrate_cmd_ns: Option<i64>,
    /// When the harness saw the end (host clock, ns).
    pub finished_ns: Option<i64>,
    /// The source's last `query-migrate` reading.
    pub final_info: Option<MigrationInfo>,
    /// Faults injected, as sentences with times.
    pub faults: Vec<String>,
    /// Whether the VM is gone (its only QEMU died).
    pub vm_lost: bool,
    /// The migration's timed markers, in time order ([`crate::migration::marker`]).
    /// Bundles written before markers existed have none stored; the loader
    /// derives them from the QMP events ([`crate::migration::from_qmp`]).
    #[serde(default)]
    pub markers: Vec<Marker>,
    /// QEMU's own statistics, however the backend read them.
    #[serde(default)]
    pub hypervisor: Option<HypervisorStats>,
    /// The platform's (libvirt's, Proxmox's) own statistics, if it has any.
    #[serde(default)]
    pub platform: Option<PlatformStats>,
    /// The platform's raw output for this migration (task log lines, job
    /// statistics as printed), kept to re-check the figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_raw: Option<Value>,
    /// The storage migration, when the VM has a disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageRecord>,
    /// The shaped links during the migration (the lab's delay lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkRecord>,
    /// QMP events of both sides during the migration.
    pub events: Vec<SideEvent>,
    /// `query-migrate` samples of the source.
    pub samples: Vec<Sample>,
}

/// What a migration did with the VM's disks, as the backend recorded it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StorageRecord {
    /// `local`: each node has its own image, mirrored to the destination
    /// over NBD; `shared`: both nodes open one image, nothing is copied.
    pub storage: String,
    /// Each disk.
    pub disks: Vec<DiskMirror>,
    /// The source's `query-block-jobs`, read while the mirrors ran.
    pub samples: Vec<MirrorSample>,
    /// When the harness saw every mirror actively synced (host clock), ns.
    #[serde(default)]
    pub actively_synced_ns: Option<i64>,
    /// When the harness sent the destination `cont`, after the mirrors
    /// completed and the NBD server stopped (host clock), ns.
    #[serde(default)]
    pub cont_ns: Option<i64>,
}

/// One shaped link during one migration: its shape and what it carried.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LinkRecord {
    /// `migration` or `client`.
    pub link: String,
    /// Its rate, Mbit/s (`None`: unlimited).
    pub rate_mbit: Option<f64>,
    /// One-way delay, ms.
    pub delay_ms: f64,
    /// Jitter (half-width), ms.
    pub jitter_ms: f64,
    /// Loss, percent.
    pub loss_pct: f64,
    /// QEMU's own limit (`max-bandwidth`), Mbit/s, for the migration link.
    pub qemu_limit_mbit: Option<f64>,
    /// Width of each bin, ns.
    pub bin_ns: i64,
    /// Bytes carried per bin from the migration's start to its end.
    pub bins: Vec<LinkBin>,
    /// Frames it had dropped by the migration's end, since the link was
    /// set up (loss, a full queue, overrun).
    pub dropped_frames: u64,
}

/// Bytes one link carried in one bin, each way.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkBin {
    /// The bin's start (host clock), ns.
    pub start_ns: i64,
    /// Bytes from side a (node-a, or the switch) to side b.
    pub a_to_b: u64,
    /// Bytes back.
    pub b_to_a: u64,
}

/// One disk and its mirror.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DiskMirror {
    /// The drive's name (`virtio0`, `scsi0`, `ide0`).
    pub drive: String,
    /// `virtio-blk`, `scsi` or `ide`.
    pub bus: String,
    /// `raw` or `qcow2`.
    pub format: String,
    /// The disk's size, bytes.
    pub size_bytes: u64,
    /// The mirror's job id (`mirror-virtio0`); `None` on shared storage.
    pub job: Option<String>,
    /// Bytes the mirror copied: its progress at completion (the whole
    /// disk, plus what the guest rewrote while it ran).
    pub mirrored_bytes: Option<u64>,
}

/// One reading of a mirror's progress.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MirrorSample {
    /// When the answer arrived (host clock), ns.
    pub host_ns: i64,
    /// The job.
    pub job: String,
    /// Bytes copied so far (`offset`).
    pub offset: u64,
    /// Bytes to copy in all, so far (`len`; it grows as the guest writes).
    pub len: u64,
    /// Whether the job was ready.
    pub ready: bool,
    /// Whether it was copying writes synchronously.
    pub actively_synced: bool,
}

/// The host's own check of the disk after a migration, independent of
/// the agent's: the image's stamps read from the host while the agent
/// holds its writes, against the agent's table of what it wrote.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HostDiskCheck {
    /// The image read.
    pub image: String,
    /// The node it is on.
    pub node: String,
    /// Blocks of the workload's region read.
    pub blocks_checked: u64,
    /// Blocks whose stamp was missing, misplaced or whose content did not
    /// match their stamp (torn or foreign data).
    pub bad_blocks: u64,
    /// The first bad blocks' indices, at most 16.
    pub first_bad: Vec<u64>,
    /// The digest of (index, version) of every block as the image has them.
    pub image_digest: u64,
    /// The agent's digest of what it wrote.
    pub agent_digest: Option<u64>,
    /// No bad block, and the image's digest equals the agent's: every
    /// acknowledged write is on the disk the guest now runs on.
    pub agrees: bool,
}

/// A repetition: its migration and the window of probing around it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepRecord {
    /// 1-based.
    pub repetition: u32,
    /// Start of the repetition (the pause before), host ns.
    pub window_start_ns: i64,
    /// End of the repetition (the pause after), host ns.
    pub window_end_ns: i64,
    /// The migration.
    pub migration: MigrationRecord,
    /// What the guest agent said around it.
    #[serde(default)]
    pub guest: Option<GuestRecord>,
}

/// The guest agent's reports around one repetition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GuestRecord {
    /// The sweep parameter's value for this repetition, if the scenario sweeps.
    pub sweep_value: Option<toml::Value>,
    /// The agent's report just before the migration.
    pub before: Option<wire::control::AgentReport>,
    /// Its report after the pause that follows it.
    pub after: Option<wire::control::AgentReport>,
    /// The dirty workload's integrity check after the migration.
    pub integrity: Option<wire::control::IntegrityReport>,
    /// The disk workload's check after the migration (its blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_integrity: Option<wire::control::IntegrityReport>,
    /// The host's check of the same disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_host_check: Option<HostDiskCheck>,
    /// What could not be asked, and why.
    #[serde(default)]
    pub errors: Vec<String>,
}

impl MigrationRecord {
    /// A record of a migration about to start: failed until the backend
    /// says otherwise, nothing seen yet.
    pub fn starting(repetition: u32, source: &str, destination: &str) -> MigrationRecord {
        MigrationRecord {
            repetition,
            source: source.into(),
            destination: destination.into(),
            status: RepStatus::Failed,
            error: None,
            migrate_cmd_ns: None,
            finished_ns: None,
            final_info: None,
            faults: Vec::new(),
            vm_lost: false,
            markers: Vec::new(),
            hypervisor: None,
            platform: None,
            platform_raw: None,
            storage: None,
            links: Vec::new(),
            events: Vec::new(),
            samples: Vec::new(),
        }
    }

    /// The first marker of `kind`.
    pub fn marker(&self, kind: MarkerKind) -> Option<&Marker> {
        first(&self.markers, kind)
    }

    /// The time of the first marker of `kind`, ns.
    pub fn marker_ns(&self, kind: MarkerKind) -> Option<i64> {
        self.marker(kind).map(|m| m.t_ns)
    }
}

/// QEMU's own view of a migration (source side, `query-migrate` or what the
/// platform relays of it). Every field is optional: a backend gives what it
/// can read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HypervisorStats {
    /// `total-time`: from `migrate` to completion, ms.
    pub total_time_ms: Option<f64>,
    /// `downtime`: source stop to completion, as QEMU measures it, ms.
    pub downtime_ms: Option<f64>,
    /// Where `downtime_ms` came from when it is not the source's last
    /// `query-migrate` (a backend whose platform ends the source QEMU too
    /// soon after completion to ask it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_note: Option<String>,
    /// `setup-time`, ms.
    pub setup_time_ms: Option<f64>,
    /// `ram.transferred`, bytes.
    pub transferred_bytes: Option<i64>,
    /// Passes over memory: the highest `MIGRATION_PASS` seen, else
    /// `ram.dirty-sync-count`.
    pub passes: Option<i64>,
    /// `ram.mbps` at the end.
    pub mbps: Option<f64>,
    /// The last `expected-downtime` QEMU reported while active, ms.
    pub expected_downtime_ms: Option<f64>,
    /// The guest's dirty rate as QEMU measured it during the migration:
    /// the last non-zero `ram.dirty-pages-rate` × page size, MiB/s. QEMU
    /// updates it at bitmap syncs at least 1 s apart, counting distinct
    /// pages dirtied since the previous one.
    pub dirty_rate_mib_s: Option<f64>,
}

/// The platform's own view of a migration: what libvirt's job statistics
/// or Proxmox's task log say. The fourth view of the pause, beside QEMU's
/// downtime, STOP → RESUME and the client's outage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PlatformStats {
    /// `libvirt`, `proxmox`.
    pub platform: String,
    /// The downtime the platform reports, ms.
    pub downtime_ms: Option<f64>,
    /// What that downtime is, in the platform's terms (e.g. "libvirt
    /// domjobinfo downtime: source pause to destination resume").
    pub downtime_source: Option<String>,
    /// The migration's duration as the platform reports it, ms.
    pub duration_ms: Option<f64>,
    /// RAM transferred as the platform reports it, bytes.
    pub ram_transferred_bytes: Option<i64>,
    /// Disk data transferred, bytes.
    pub disk_transferred_bytes: Option<i64>,
}
