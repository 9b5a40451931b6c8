//! The jitter buffer: each frame's due time and lateness, the playout
//! clock re-anchored at every late frame (see the [RTP module](super),
//! "Playout").

use super::units::ticks_to_ns;
use super::{FrameInfo, FrameStatus};

/// The playout clock once every frame is scheduled.
pub(super) struct Playout {
    /// Timestamp of the anchor, the first complete frame (`None`: none).
    pub(super) anchor_ts: Option<i64>,
    /// Anchors in force, by timestamp: `(ts_A, A)` for the first complete
    /// frame, then for every late one (the player rebuffers at it).
    anchors: Vec<(i64, i64)>,
    /// RTP clock rate, Hz.
    rate: u32,
    /// Playout delay `D`, ns (not negative).
    delay: i64,
}

impl Playout {
    /// Due time of a frame of timestamp `ts` under the anchor in force at
    /// it (`None` without an anchor), ns.
    pub(super) fn due(&self, ts: i64) -> Option<i64> {
        due_at(&self.anchors, ts, self.rate, self.delay)
    }
}

/// Sets every frame's due time, lateness and `late` (in timestamp order,
/// each late frame re-anchoring the clock for the frames after it).
pub(super) fn schedule(frames: &mut [FrameInfo], rate: u32, delay: i64) -> Playout {
    let anchor = frames
        .iter()
        .find(|f| f.status == FrameStatus::Complete)
        .map(|f| (f.last_rx_ns, f.ts));
    let mut anchors: Vec<(i64, i64)> = anchor.map(|(a, ts)| vec![(ts, a)]).unwrap_or_default();
    let mut order: Vec<usize> = (0..frames.len()).collect();
    order.sort_by_key(|&i| frames.get(i).map(|f| f.ts));
    for i in order {
        let Some(f) = frames.get_mut(i) else { continue };
        f.due_ns = due_at(&anchors, f.ts, rate, delay);
        f.lateness_ns = f.due_ns.map(|d| f.last_rx_ns.saturating_sub(d));
        f.late = f.status == FrameStatus::Complete && f.lateness_ns.is_some_and(|l| l > 0);
        if f.late {
            anchors.push((f.ts, f.last_rx_ns));
        }
    }
    Playout {
        anchor_ts: anchor.map(|(_, ts)| ts),
        anchors,
        rate,
        delay,
    }
}

/// `A + floor((ts - ts_A) × 10^9 / rate) + D` under the last anchor at or
/// before `ts` (the first one for a frame before every anchor).
fn due_at(anchors: &[(i64, i64)], ts: i64, rate: u32, delay: i64) -> Option<i64> {
    anchors
        .iter()
        .rev()
        .find(|(t, _)| *t <= ts)
        .or_else(|| anchors.first())
        .map(|&(ts_a, a)| {
            a.saturating_add(ticks_to_ns(ts.saturating_sub(ts_a), rate))
                .saturating_add(delay)
        })
}
