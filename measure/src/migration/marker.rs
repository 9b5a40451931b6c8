//! Timed markers: the moments of a migration that every backend can state,
//! whatever it read them from.
//!
//! A QMP backend reads them from QEMU's events (µs timestamps on the
//! node's clock), a libvirt backend from the daemon's events, a Proxmox
//! backend from its task log (1 s timestamps, and none at all on the mirror
//! lines), the harness from its own clock when it sends a command. Each
//! marker says which clock it was read on, how far off it may be, and
//! where it came from, so the timeline and the summary can work from
//! markers alone and carry a value's uncertainty (or leave it out, with
//! the reason) when the backend only has coarse times.

use serde::{Deserialize, Serialize};

/// What happened at a marker.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum MarkerKind {
    /// The migration was asked for (`migrate`, `virsh migrate`, the API call).
    MigrationRequested,
    /// Setup finished and the first pass over memory began.
    SetupDone,
    /// A pre-copy pass over memory began (its number in [`Marker::pass`]).
    Pass,
    /// The source stopped the guest's CPUs.
    SourceStopped,
    /// The source finished sending RAM and device state.
    RamCompleted,
    /// The destination resumed the guest's CPUs.
    DestinationResumed,
    /// The disk mirrors began copying (`blockdev-mirror`).
    MirrorStarted,
    /// Every disk mirror reached the ready state.
    MirrorReady,
    /// Every mirror copies guest writes synchronously (`write-blocking`:
    /// a write completes only once it is on the destination too).
    MirrorActivelySynced,
    /// The disk mirrors completed.
    MirrorCompleted,
    /// The platform finished its own work after the migration (config
    /// moved, NBD stopped, `cont` sent).
    PlatformCleanupDone,
}

impl MarkerKind {
    /// The kebab-case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            MarkerKind::MigrationRequested => "migration-requested",
            MarkerKind::SetupDone => "setup-done",
            MarkerKind::Pass => "pass",
            MarkerKind::SourceStopped => "source-stopped",
            MarkerKind::RamCompleted => "ram-completed",
            MarkerKind::DestinationResumed => "destination-resumed",
            MarkerKind::MirrorStarted => "mirror-started",
            MarkerKind::MirrorReady => "mirror-ready",
            MarkerKind::MirrorActivelySynced => "mirror-actively-synced",
            MarkerKind::MirrorCompleted => "mirror-completed",
            MarkerKind::PlatformCleanupDone => "platform-cleanup-done",
        }
    }
}

/// Where a marker's time was read.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MarkerSource {
    /// A QMP event's own timestamp.
    QmpEvent,
    /// When the harness received a `query-migrate` answer.
    QmpSample,
    /// A libvirt daemon's event.
    LibvirtEvent,
    /// A line of the platform's task log.
    TaskLog,
    /// The harness's own clock, read when it acted or saw the result.
    Harness,
}

/// One timed marker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Marker {
    /// What happened.
    pub kind: MarkerKind,
    /// The pass number, for [`MarkerKind::Pass`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<u32>,
    /// When, ns since the epoch on [`Marker::clock`].
    pub t_ns: i64,
    /// The clock it was read on, as the run's clock alignment names it
    /// (`host` in the lab: one machine, one CLOCK_REALTIME).
    pub clock: String,
    /// How far the true moment may lie from `t_ns`, ns (half the
    /// timestamp's resolution, plus what the source adds).
    pub uncertainty_ns: i64,
    /// Where the time was read.
    pub source: MarkerSource,
}

/// The clock of the machine the harness and the lab run on.
pub const HOST_CLOCK: &str = "host";

/// Finds the first marker of `kind` in `markers`.
pub fn first(markers: &[Marker], kind: MarkerKind) -> Option<&Marker> {
    markers.iter().find(|m| m.kind == kind)
}

/// The interval from marker `a` to marker `b`, ns, with its uncertainty
/// (the two markers' added), when both are there and on one clock.
pub fn interval(markers: &[Marker], a: MarkerKind, b: MarkerKind) -> Option<(i64, i64)> {
    let (x, y) = (first(markers, a)?, first(markers, b)?);
    (x.clock == y.clock).then(|| (y.t_ns - x.t_ns, x.uncertainty_ns + y.uncertainty_ns))
}
