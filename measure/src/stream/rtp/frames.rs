//! Frames assembled from the first arrivals, and whether each is complete
//! (see the [RTP module](super), "Frames").

use std::collections::BTreeMap;

use super::depacketize::depacketize;
use super::extended::Pkt;
use super::sequence::FirstArrivals;
use super::{FrameInfo, FrameStatus};

/// Every frame that arrived at least in part, in frame order (timestamp,
/// then frame number), without due times yet.
pub(super) fn assemble(first: &FirstArrivals<'_, '_>) -> Vec<FrameInfo> {
    let mut by_frame: BTreeMap<(i64, Option<i64>), Vec<&Pkt<'_>>> = BTreeMap::new();
    for &k in &first.list {
        by_frame.entry((k.ts, k.frame)).or_default().push(k);
    }
    let mut frames: Vec<FrameInfo> = Vec::with_capacity(by_frame.len());
    for ((ts, frame), mut pk) in by_frame {
        pk.sort_by_key(|k| k.seq);
        let Some(lo) = pk.first() else { continue };
        let prev = received_before(&first.by_seq, lo.seq);
        let complete = is_whole(&pk) && nothing_missing_before(prev, lo.seq, frame);
        frames.push(frame_info(ts, frame, &pk, complete));
    }
    frames
}

/// The packet received just before `seq` (by seq), from `by_seq`.
fn received_before<'p, 'a>(by_seq: &[&'p Pkt<'a>], seq: i64) -> Option<&'p Pkt<'a>> {
    by_seq
        .partition_point(|k| k.seq < seq)
        .checked_sub(1)
        .and_then(|i| by_seq.get(i))
        .copied()
}

/// A frame's packets `pk` (in seq order) cover every seq from the lowest
/// to the highest, end with the marker bit and depacketize whole.
fn is_whole(pk: &[&Pkt<'_>]) -> bool {
    let (Some(lo), Some(hi)) = (pk.first(), pk.last()) else {
        return false;
    };
    let no_hole = i128::from(hi.seq) - i128::from(lo.seq) + 1 == pk.len() as i128;
    let payloads: Vec<(i64, &[u8])> = pk.iter().map(|k| (k.seq, k.p.payload)).collect();
    no_hole && hi.p.marker && depacketize(&payloads).whole
}

/// No packet is known to be missing before `first_seq`, the lowest seq of
/// frame `frame`, given `prev`, the packet received just before it.
fn nothing_missing_before(prev: Option<&Pkt<'_>>, first_seq: i64, frame: Option<i64>) -> bool {
    match prev {
        None => true, // the first frame of the record
        Some(prev) if prev.seq.checked_add(1) == Some(first_seq) => prev.p.marker,
        // A hole just before: known to be ours only when the packet
        // before it ended the frame numbered one less.
        Some(prev) => {
            !(prev.p.marker
                && prev.frame.is_some()
                && frame.is_some()
                && prev.frame.and_then(|f| f.checked_add(1)) == frame)
        }
    }
}

/// The frame of timestamp `ts` and number `frame` made of `pk` (at least
/// one packet, in seq order).
fn frame_info(ts: i64, frame: Option<i64>, pk: &[&Pkt<'_>], complete: bool) -> FrameInfo {
    FrameInfo {
        frame,
        ts,
        packets: pk.len() as u64,
        first_seq: pk.first().map_or(0, |k| k.seq),
        last_seq: pk.last().map_or(0, |k| k.seq),
        first_rx_ns: pk.iter().map(|k| k.rx_ns).min().unwrap_or_default(),
        last_rx_ns: pk.iter().map(|k| k.rx_ns).max().unwrap_or_default(),
        status: if complete {
            FrameStatus::Complete
        } else {
            FrameStatus::Incomplete
        },
        due_ns: None,
        lateness_ns: None,
        late: false,
    }
}

/// The largest interval between consecutive last arrivals of complete
/// frames, in time order, ns (0 with fewer than two).
pub(super) fn max_frame_gap_ns(frames: &[FrameInfo]) -> i64 {
    let mut done: Vec<i64> = frames
        .iter()
        .filter(|f| f.status == FrameStatus::Complete)
        .map(|f| f.last_rx_ns)
        .collect();
    done.sort_unstable();
    done.windows(2)
        .map(|w| match w {
            [a, b] => b.saturating_sub(*a),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}
