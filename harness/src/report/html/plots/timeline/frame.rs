//! What a timeline is drawn from ([`Timeline`]), what drawing it gave
//! ([`DrawnTimeline`]), and the scales its panels share ([`Frame`]).

use measure::timeline::{GapAttribution, Marker, Phase};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// The RTT panel's plotting area: seconds across, RTT on a log scale up.
pub(super) type RttPlot<'a> =
    DrawingArea<SVGBackend<'a>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>;

/// What a timeline plot shows.
pub(crate) struct Timeline<'a> {
    /// Shown in the `aria-label`.
    pub aria: String,
    /// Time zero of the x axis (the `migrate` command), host ns.
    pub t0_ns: i64,
    /// The x range, host ns.
    pub range_ns: (i64, i64),
    /// `(receive time ns, RTT ms)` of every reply in the range.
    pub replies: &'a [(i64, f64)],
    /// Send times of probes never answered, ns.
    pub lost: &'a [i64],
    /// Replies slower than this are drawn as slow, ms.
    pub threshold_ms: f64,
    /// The repetition's phases.
    pub phases: &'a [Phase],
    /// Reply gaps over the threshold.
    pub gaps: &'a [GapAttribution],
    /// The longest outage `(start, end)` ns, drawn as a bar over the gaps.
    pub outage: Option<(i64, i64)>,
    /// The ICMP echo stream's longest outage `(start, end)` ns (the guest's
    /// kernel not answering), drawn as a bar under the outage's.
    pub icmp_outage: Option<(i64, i64)>,
    /// Marked moments.
    pub markers: &'a [Marker],
    /// `(ns, bytes remaining)`: drawn in a second panel when `Some`.
    pub remaining: Option<&'a [(i64, i64)]>,
    /// Replies this close to a gap edge or a marker are always drawn, ns.
    pub near_ns: i64,
    /// About how many reply points to draw at most.
    pub budget: usize,
    /// Draw the legend on top.
    pub legend: bool,
    /// There is a probe record (else the RTT panel says there is none).
    pub has_probe: bool,
}

/// A drawn timeline and what was left out of it.
pub(crate) struct DrawnTimeline {
    /// The `<svg>`.
    pub svg: String,
    /// Replies in the range.
    pub replies: usize,
    /// Reply points drawn.
    pub drawn: usize,
    /// Replies merged with an identical pixel.
    pub same_pixel: usize,
    /// Away from gaps and markers, every `step`-th reply was drawn (0: all).
    pub step: usize,
}

/// `ns` in seconds since `t0`.
fn secs(ns: i64, t0: i64) -> f64 {
    (ns - t0) as f64 / 1e9
}

/// Decimals of x tick labels for a span of `span_s` seconds (about ten ticks).
fn tick_decimals(span_s: f64) -> usize {
    let d = (-(span_s / 10.0).log10()).ceil();
    if d.is_finite() {
        d.clamp(0.0, 4.0) as usize
    } else {
        1
    }
}

/// The x range (host ns and seconds since `t0`) and the RTT range every
/// panel of one timeline uses.
pub(super) struct Frame {
    /// Time zero of the x axis, host ns.
    pub t0_ns: i64,
    /// First instant drawn, host ns.
    pub lo_ns: i64,
    /// Last instant drawn, host ns.
    pub hi_ns: i64,
    /// `lo_ns` in seconds since `t0_ns`.
    pub x0: f64,
    /// `hi_ns` in seconds since `t0_ns`.
    pub x1: f64,
    /// Decimals of the x tick labels.
    pub dec: usize,
    /// Bottom of the RTT axis, ms.
    pub ylo: f64,
    /// Top of the RTT axis, ms.
    pub yhi: f64,
}

impl Frame {
    /// The ranges for `t`: its window (a second when empty), and RTTs from
    /// well below the fastest reply (or the threshold) to well above the
    /// slowest.
    pub fn new(t: &Timeline<'_>) -> Self {
        let (lo_ns, hi_ns) = if t.range_ns.1 > t.range_ns.0 {
            t.range_ns
        } else {
            (t.range_ns.0, t.range_ns.0 + 1_000_000_000)
        };
        let (x0, x1) = (secs(lo_ns, t.t0_ns), secs(hi_ns, t.t0_ns));
        let rtts = t
            .replies
            .iter()
            .map(|r| r.1)
            .filter(|v| v.is_finite() && *v > 0.0);
        let rmin = rtts.clone().fold(f64::INFINITY, f64::min);
        let rmax = rtts.fold(0.0f64, f64::max);
        let ylo = if rmin.is_finite() {
            rmin.min(t.threshold_ms)
        } else {
            0.1
        }
        .max(0.005)
            / 2.5;
        let yhi = rmax.max(t.threshold_ms).max(ylo * 100.0) * 2.5;
        Frame {
            t0_ns: t.t0_ns,
            lo_ns,
            hi_ns,
            x0,
            x1,
            dec: tick_decimals(x1 - x0),
            ylo,
            yhi,
        }
    }

    /// `ns` in seconds since time zero.
    pub fn secs(&self, ns: i64) -> f64 {
        secs(ns, self.t0_ns)
    }

    /// Whether `ns` is inside the drawn range.
    pub fn in_range(&self, ns: i64) -> bool {
        ns >= self.lo_ns && ns <= self.hi_ns
    }

    /// `ns` moved into the drawn range.
    pub fn clip(&self, ns: i64) -> i64 {
        ns.clamp(self.lo_ns, self.hi_ns)
    }
}

/// Whether `g` is a reply gap: no reply arrived inside it. The timeline
/// also lists the longest outage, which may hold late replies.
/// `replies` is sorted by receive time.
pub(crate) fn is_reply_gap(replies: &[(i64, f64)], g: &GapAttribution) -> bool {
    let i = replies.partition_point(|r| r.0 <= g.start_ns);
    replies.get(i).is_none_or(|r| r.0 >= g.end_ns)
}
