//! Freezes: every frame, arrived or lost, placed in frame order, and the
//! runs of frames not shown between shown ones (see the [RTP
//! module](super), "Playout").

use super::playout::Playout;
use super::units::{clamp_i64, ms};
use super::{FrameInfo, FrameStatus, Freeze};

/// A place in frame order for the freeze walk: an arrived frame, or the
/// frames lost between two tagged ones (one slot, placed at the first).
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    /// Extended timestamp (interpolated for lost frames).
    ts: i64,
    /// Extended frame number (of the first, for lost frames).
    frame: Option<i64>,
    /// The frame is shown (complete).
    shown: bool,
    /// Frames in the slot.
    frames: u64,
    /// For a late frame: its due time under the anchor before it.
    late_due: Option<i64>,
}

/// Frames lost entirely (from our tags), and every slot in frame order.
pub(super) fn frame_slots(frames: &[FrameInfo]) -> (u64, Vec<Slot>) {
    let mut slots: Vec<Slot> = frames
        .iter()
        .map(|f| Slot {
            ts: f.ts,
            frame: f.frame,
            shown: f.status == FrameStatus::Complete,
            frames: 1,
            late_due: f.due_ns.filter(|_| f.late),
        })
        .collect();
    let (frames_lost, lost) = lost_slots(frames);
    slots.extend(lost);
    // Stable: an arrived frame stays before lost ones placed with it.
    slots.sort_by_key(|s| (s.ts, s.frame));
    (frames_lost, slots)
}

/// The frame numbers skipped between consecutive tagged frames, counted
/// and placed by linear interpolation of the timestamp.
fn lost_slots(frames: &[FrameInfo]) -> (u64, Vec<Slot>) {
    let mut tagged: Vec<(i64, i64)> = frames
        .iter()
        .filter_map(|f| f.frame.map(|n| (n, f.ts)))
        .collect();
    tagged.sort_unstable();
    tagged.dedup_by_key(|&mut (n, _)| n);
    let mut frames_lost = 0u64;
    let mut slots = Vec::new();
    for w in tagged.windows(2) {
        let [(a, ts_a), (b, ts_b)] = *w else { continue };
        let missing = (i128::from(b) - i128::from(a) - 1).max(0);
        if missing == 0 {
            continue;
        }
        let missing = u64::try_from(missing).unwrap_or(u64::MAX);
        frames_lost = frames_lost.saturating_add(missing);
        let span_ts = i128::from(ts_b) - i128::from(ts_a);
        let ts = i128::from(ts_a) + span_ts.div_euclid(i128::from(b) - i128::from(a));
        slots.push(Slot {
            ts: clamp_i64(ts),
            frame: Some(a.saturating_add(1)),
            shown: false,
            frames: missing,
            late_due: None,
        });
    }
    (frames_lost, slots)
}

/// The freezes of `slots` (in frame order) after the anchor, with due
/// times from `playout`; none without an anchor.
pub(super) fn freezes(slots: &[Slot], playout: &Playout) -> Vec<Freeze> {
    let mut freezes: Vec<Freeze> = Vec::new();
    let Some(ts_anchor) = playout.anchor_ts else {
        return freezes;
    };
    let mut last_shown: Option<i64> = None; // its due time
    let mut run: Option<(i64, u64)> = None; // due of first not shown, count
    for s in slots.iter().filter(|s| s.ts >= ts_anchor) {
        let d = playout.due(s.ts).unwrap_or_default();
        match (s.shown, last_shown) {
            (true, since) => {
                // A late frame: the picture froze from when it was due.
                let run_now = run.take().or(s.late_due.map(|due| (due, 0)));
                if let (Some((start, frames)), Some(since)) = (run_now, since) {
                    freezes.push(Freeze {
                        start_ns: start,
                        end_ns: d,
                        len_ms: ms(d.saturating_sub(start)),
                        frames,
                        picture_since_ns: since,
                    });
                }
                last_shown = Some(d);
            }
            (false, Some(_)) => {
                let r = run.get_or_insert((d, 0));
                r.1 = r.1.saturating_add(s.frames);
            }
            (false, None) => {} // before the anchor is shown
        }
    }
    freezes
}
