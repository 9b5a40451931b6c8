//! One timeline per repetition, and the attribution of the client's gaps
//! to the phases of the migration. Pure: computed from the raw records
//! alone, so `harness report` gets the same answer as the run.
//!
//! # Clocks
//! QEMU's event timestamps and the client's kernel receive timestamps are
//! both the lab host's `CLOCK_REALTIME` (the client namespace shares the
//! host's clock), so they sit on one axis with no offset to estimate; the
//! bundle says so (`clock` in `summary.json`). The guest's clock is never
//! used for times on this axis: it stops while the VM is paused.
//!
//! # Phases
//! The phases tile the time axis, so a gap's overlaps with them add up to
//! its length:
//! - **before**: until `migrate` was sent;
//! - **setup**: `migrate` to the first `MIGRATION_PASS` event;
//! - **pre-copy pass N**: `MIGRATION_PASS` N to the next pass, or to the
//!   source's `STOP` (passes that start after STOP belong to the next phase);
//! - **stop-and-copy**: the source's `STOP` to its `MIGRATION` event with
//!   status `completed` (QEMU's own `downtime` ends about here);
//! - **resume**: `completed` to the destination's `RESUME`;
//! - **switchover**: `RESUME` to the client seeing the service back: the
//!   first reply after RESUME from which replies keep flowing for the
//!   outage measure's recovery span (`client_probe::first_sustained_arrival`;
//!   the same rule that ends an outage): the network learning where the
//!   guest went (QEMU's RARP announce, marked when seen) and the guest
//!   catching up;
//! - **after**: from then on.
//!
//! A phase whose bounding events are missing (a failed migration has no
//! `completed`, no `RESUME`) is left out and its time falls to the phase
//! before it, which then runs until the harness saw the end.
//!
//! # The kernel's outage
//! Beside the probe's gaps, a timeline carries the longest outage of the
//! ICMP echo stream, when it ran (`icmp_outage`): the same measure over
//! echoes answered by the guest's kernel instead of the agent, taken apart
//! along the same phases. The phases themselves (the switchover's end) stay
//! the reflector's: the service being back is what a user waits for.

use crate::migration::marker::MarkerKind;
use crate::migration::record::RepRecord;
use crate::probe::gaps::{analyze, first_sustained_arrival, GapSummary};
use crate::probe::record::ProbeRecord;
use serde::{Deserialize, Serialize};

/// What a stretch of the timeline was.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseKind {
    /// Before `migrate`.
    Before,
    /// `migrate` to the first pass.
    Setup,
    /// A pre-copy pass, the VM running.
    PreCopy,
    /// Source stopped, last dirty pages and device state copied.
    StopAndCopy,
    /// Source done, destination loading and starting.
    Resume,
    /// Destination running, replies not yet flowing again.
    Switchover,
    /// From the client's recovery after RESUME on.
    After,
}

/// A stretch of one repetition's timeline (host clock, ns).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Phase {
    /// What it was.
    pub kind: PhaseKind,
    /// The pass number for pre-copy passes.
    pub pass: Option<u32>,
    /// Start, ns (`i64::MIN` for `before`).
    pub start_ns: i64,
    /// End, ns (`i64::MAX` for `after`).
    pub end_ns: i64,
}

impl Phase {
    /// `pre-copy pass 2`, `stop-and-copy`, ...
    pub fn label(&self) -> String {
        match (self.kind, self.pass) {
            (PhaseKind::PreCopy, Some(n)) => format!("pre-copy pass {n}"),
            (kind, _) => kind_label(kind).to_string(),
        }
    }
}

fn kind_label(kind: PhaseKind) -> &'static str {
    match kind {
        PhaseKind::Before => "before",
        PhaseKind::Setup => "setup",
        PhaseKind::PreCopy => "pre-copy",
        PhaseKind::StopAndCopy => "stop-and-copy",
        PhaseKind::Resume => "resume",
        PhaseKind::Switchover => "switchover",
        PhaseKind::After => "after",
    }
}

/// A moment worth marking on a plot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Marker {
    /// `migrate`, `STOP`, `completed`, `RESUME`, `announce`, `client recovered`.
    pub label: String,
    /// When, host clock ns.
    pub ns: i64,
}

/// How much of a gap fell in one phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Overlap {
    /// The phase's label ([`Phase::label`]).
    pub phase: String,
    /// ms of the gap inside it.
    pub ms: f64,
}

/// A client gap and the phases it overlaps, in time order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GapAttribution {
    /// Start of the gap, host ns.
    pub start_ns: i64,
    /// End, host ns.
    pub end_ns: i64,
    /// Length, ms.
    pub len_ms: f64,
    /// The phases it overlaps, with the ms in each (they sum to `len_ms`).
    pub phases: Vec<Overlap>,
    /// This is the repetition's longest outage (reply gaps joined until
    /// replies flow again),
    /// which may span several reply gaps listed beside it.
    #[serde(default)]
    pub is_outage: bool,
}

/// The client's longest outage, taken apart along the migration.
///
/// The parts are the outage's overlaps with the phases: `before_stop_ms`
/// (outage start to STOP: the guest still ran on the source but did not
/// answer, e.g. a slow last pass or lost probes), `stop_and_copy_ms`,
/// `resume_ms` and `switchover_ms`; `other_ms` is what falls in no phase of
/// the migration's end (before `migrate` or after the client recovered).
/// They add up to `outage_ms`. QEMU's `downtime` is shown beside them: it
/// covers roughly `stop_and_copy_ms` only.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OutageBreakdown {
    /// The client's longest outage, ms (`client.max_outage_ms`).
    pub outage_ms: f64,
    /// QEMU's reported downtime, for comparison, ms.
    pub qemu_downtime_ms: Option<f64>,
    /// Outage start to the source's STOP (setup and pre-copy passes), ms.
    pub before_stop_ms: f64,
    /// Within STOP..completed, ms.
    pub stop_and_copy_ms: f64,
    /// Within completed..RESUME, ms.
    pub resume_ms: f64,
    /// Within RESUME..client recovered, ms.
    pub switchover_ms: f64,
    /// The rest, ms.
    pub other_ms: f64,
    /// RESUME to the first announce frame seen on the client's link, ms.
    pub announce_after_resume_ms: Option<f64>,
}

/// Everything on one repetition's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepTimeline {
    /// The phases in time order, tiling the axis.
    pub phases: Vec<Phase>,
    /// Marked moments in time order.
    pub markers: Vec<Marker>,
    /// Every client gap over the threshold in the window, and the outage.
    pub gaps: Vec<GapAttribution>,
    /// The longest outage taken apart, when there was one.
    pub outage: Option<OutageBreakdown>,
    /// `(host ns, bytes remaining)` from the source's `query-migrate` samples.
    pub remaining: Vec<(i64, i64)>,
    /// The ICMP echo stream's longest outage in the window and the phases
    /// it overlaps, when that stream ran (older bundles: absent).
    #[serde(default)]
    pub icmp_outage: Option<GapAttribution>,
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// The phases of one repetition; `switchover_end_ns` is when the client
/// saw the service back after RESUME, if the probe saw that.
pub fn phases(rep: &RepRecord, switchover_end_ns: Option<i64>) -> Vec<Phase> {
    let m = &rep.migration;
    let stop = m.marker_ns(MarkerKind::SourceStopped);
    let completed = m.marker_ns(MarkerKind::RamCompleted);
    let resume = m.marker_ns(MarkerKind::DestinationResumed);
    let mut passes: Vec<(u32, i64)> = m
        .markers
        .iter()
        .filter(|k| k.kind == MarkerKind::Pass)
        .filter_map(|k| Some((k.pass?, k.t_ns)))
        .filter(|&(_, t)| stop.is_none_or(|s| t < s))
        .collect();
    passes.sort_by_key(|&(_, t)| t);
    let requested = m.marker_ns(MarkerKind::MigrationRequested);

    // Boundaries in order; each phase runs to the next boundary.
    let mut starts: Vec<(PhaseKind, Option<u32>, i64)> = vec![(PhaseKind::Before, None, i64::MIN)];
    if let Some(cmd) = requested {
        starts.push((PhaseKind::Setup, None, cmd));
    }
    for &(n, t) in &passes {
        starts.push((PhaseKind::PreCopy, Some(n), t));
    }
    if let Some(s) = stop {
        starts.push((PhaseKind::StopAndCopy, None, s));
        if let Some(c) = completed.filter(|&c| c >= s) {
            starts.push((PhaseKind::Resume, None, c));
        }
        if let Some(r) = resume.filter(|&r| r >= s) {
            starts.push((PhaseKind::Switchover, None, r));
            if let Some(e) = switchover_end_ns.filter(|&e| e >= r) {
                starts.push((PhaseKind::After, None, e));
            }
        }
    }
    if !starts.iter().any(|s| s.0 == PhaseKind::After) {
        // A failed or unfinished migration: what follows the harness
        // seeing the end is "after".
        let end = m.finished_ns.or(resume).unwrap_or(i64::MAX);
        if starts.last().is_some_and(|l| end > l.2) {
            starts.push((PhaseKind::After, None, end));
        }
    }
    // Events out of order (clock steps) must not make negative phases.
    let mut out: Vec<Phase> = Vec::with_capacity(starts.len());
    for (i, &(kind, pass, start)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(i64::MAX, |n| n.2);
        if end < start {
            continue;
        }
        out.push(Phase {
            kind,
            pass,
            start_ns: start,
            end_ns: end,
        });
    }
    out
}

/// The overlaps of `[start, end]` with `phases`, non-empty ones only.
pub fn attribute(phases: &[Phase], start_ns: i64, end_ns: i64) -> Vec<Overlap> {
    phases
        .iter()
        .filter_map(|p| {
            let lo = p.start_ns.max(start_ns);
            let hi = p.end_ns.min(end_ns);
            (hi > lo).then(|| Overlap {
                phase: p.label(),
                ms: ms(hi - lo),
            })
        })
        .collect()
}

/// The timeline of one repetition. `gaps` is the probe's analysis of the
/// repetition's window (if there was a probe); `announces` the receive
/// times of announce frames seen on the client's link (any order).
pub fn rep_timeline(
    rep: &RepRecord,
    probe: Option<&ProbeRecord>,
    gaps: Option<&GapSummary>,
    announces: &[i64],
    gap_threshold_ns: i64,
) -> RepTimeline {
    let m = &rep.migration;
    let resume = m.marker_ns(MarkerKind::DestinationResumed);
    let recovered = resume
        .zip(probe)
        .and_then(|(r, p)| first_sustained_arrival(p, r, gap_threshold_ns));
    let phases = phases(rep, recovered);

    let mut markers = Vec::new();
    let mut mark = |label: &str, ns: Option<i64>| {
        if let Some(ns) = ns {
            markers.push(Marker {
                label: label.into(),
                ns,
            });
        }
    };
    // A storage migration's steps (before `migrate`, and between RAM's
    // completion and RESUME, where the guest waits paused for them).
    mark("mirror", m.marker_ns(MarkerKind::MirrorStarted));
    mark("mirror ready", m.marker_ns(MarkerKind::MirrorReady));
    mark(
        "write-blocking",
        m.marker_ns(MarkerKind::MirrorActivelySynced),
    );
    mark("mirror done", m.marker_ns(MarkerKind::MirrorCompleted));
    mark("cont", m.marker_ns(MarkerKind::PlatformCleanupDone));
    mark("migrate", m.marker_ns(MarkerKind::MigrationRequested));
    mark("STOP", m.marker_ns(MarkerKind::SourceStopped));
    for p in phases.iter().filter(|p| p.kind == PhaseKind::Resume) {
        mark("completed", Some(p.start_ns));
    }
    mark("RESUME", resume);
    let in_window = |t: &i64| *t >= rep.window_start_ns && *t <= rep.window_end_ns;
    let first_announce = announces
        .iter()
        .copied()
        .filter(in_window)
        .filter(|&t| resume.is_none_or(|r| t >= r - 1_000_000_000))
        .min();
    mark("announce", first_announce);
    mark("client recovered", recovered);
    markers.sort_by_key(|k| k.ns);

    let outage_span = gaps
        .and_then(|g| g.max_outage.as_ref())
        .map(|o| (o.start_ns, o.end_ns));
    let attribution = |start_ns: i64, end_ns: i64| GapAttribution {
        start_ns,
        end_ns,
        len_ms: ms(end_ns - start_ns),
        phases: attribute(&phases, start_ns, end_ns),
        is_outage: outage_span == Some((start_ns, end_ns)),
    };
    let mut gap_list: Vec<GapAttribution> = gaps
        .map(|g| {
            g.gaps
                .iter()
                .map(|x| attribution(x.start_ns, x.end_ns))
                .collect()
        })
        .unwrap_or_default();
    let outage = gaps.and_then(|g| g.max_outage.as_ref()).map(|o| {
        let sum = |kinds: &[PhaseKind]| -> f64 {
            phases
                .iter()
                .filter(|p| kinds.contains(&p.kind))
                .map(|p| {
                    let lo = p.start_ns.max(o.start_ns);
                    let hi = p.end_ns.min(o.end_ns);
                    ms((hi - lo).max(0))
                })
                .sum()
        };
        OutageBreakdown {
            outage_ms: o.len_ms,
            qemu_downtime_ms: m.hypervisor.as_ref().and_then(|h| h.downtime_ms),
            before_stop_ms: sum(&[PhaseKind::Setup, PhaseKind::PreCopy]),
            stop_and_copy_ms: sum(&[PhaseKind::StopAndCopy]),
            resume_ms: sum(&[PhaseKind::Resume]),
            switchover_ms: sum(&[PhaseKind::Switchover]),
            other_ms: sum(&[PhaseKind::Before, PhaseKind::After]),
            announce_after_resume_ms: first_announce.zip(resume).map(|(a, r)| ms(a - r)),
        }
    });
    if let Some(o) = gaps.and_then(|g| g.max_outage.as_ref()) {
        if !gap_list
            .iter()
            .any(|g| g.start_ns == o.start_ns && g.end_ns == o.end_ns)
        {
            gap_list.push(attribution(o.start_ns, o.end_ns));
            gap_list.sort_by_key(|g| g.start_ns);
        }
    }
    let remaining = m
        .samples
        .iter()
        .filter_map(|s| Some((s.host_ns, s.info.ram.as_ref()?.remaining?)))
        .collect();
    RepTimeline {
        phases,
        markers,
        gaps: gap_list,
        outage,
        remaining,
        icmp_outage: None,
    }
}

/// The ICMP stream's longest outage, `icmp_gaps` being its analysis of the
/// repetition's window, attributed to `phases`.
pub fn icmp_outage(phases: &[Phase], icmp_gaps: &GapSummary) -> Option<GapAttribution> {
    let o = icmp_gaps.max_outage.as_ref()?;
    Some(GapAttribution {
        start_ns: o.start_ns,
        end_ns: o.end_ns,
        len_ms: o.len_ms,
        phases: attribute(phases, o.start_ns, o.end_ns),
        is_outage: true,
    })
}

/// One timeline per repetition, each from the probe's analysis of the
/// repetition's window ([`rep_timeline`]), with the ICMP stream's outage
/// ([`icmp_outage`]) when `icmp` is given.
pub fn rep_timelines(
    reps: &[RepRecord],
    probe: Option<&ProbeRecord>,
    icmp: Option<&ProbeRecord>,
    announces: &[i64],
    gap_threshold_ns: i64,
) -> Vec<RepTimeline> {
    reps.iter()
        .map(|rep| {
            let window = Some((rep.window_start_ns, rep.window_end_ns));
            let gaps = probe.map(|p| analyze(p, window, gap_threshold_ns));
            let mut t = rep_timeline(rep, probe, gaps.as_ref(), announces, gap_threshold_ns);
            t.icmp_outage = icmp
                .map(|p| {
                    let t = crate::probe::gaps::threshold_for(probe, p, gap_threshold_ns);
                    analyze(p, window, t)
                })
                .and_then(|g| icmp_outage(&t.phases, &g));
            t
        })
        .collect()
}
