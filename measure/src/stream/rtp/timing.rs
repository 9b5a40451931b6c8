//! Arrival timing of the first arrivals: inter-arrival gaps and RFC 3550
//! jitter (see the [RTP module](super), "Packet measures").

use super::extended::Pkt;
use super::units::{ms, ticks_to_ns};
use super::RtpGap;
use crate::probe::jitter::Jitter;

/// The gaps and the jitter of the stream.
pub(super) struct Timing {
    /// Every gap over the threshold, in time order.
    pub(super) gaps: Vec<RtpGap>,
    /// The largest gap (the first among equals).
    pub(super) max_gap: Option<RtpGap>,
    /// RFC 3550 interarrival jitter, ms.
    pub(super) jitter_ms: f64,
}

/// Gaps (longer than `gap_threshold_ns` listed) and jitter over the first
/// arrivals `firsts`, in arrival order; `ts_1` is the extended timestamp
/// of the stream's first packet.
pub(super) fn measure(firsts: &[&Pkt<'_>], ts_1: i64, gap_threshold_ns: i64, rate: u32) -> Timing {
    let (gaps, max_gap) = gaps(firsts, gap_threshold_ns);
    let mut jitter = Jitter::new();
    for k in firsts {
        jitter.push(ticks_to_ns(k.ts.saturating_sub(ts_1), rate), k.rx_ns);
    }
    Timing {
        gaps,
        max_gap,
        jitter_ms: jitter.ns() / 1e6,
    }
}

/// The gaps longer than `threshold_ns`, and the largest one.
fn gaps(firsts: &[&Pkt<'_>], threshold_ns: i64) -> (Vec<RtpGap>, Option<RtpGap>) {
    let mut gaps = Vec::new();
    let mut max_gap: Option<RtpGap> = None;
    for w in firsts.windows(2) {
        let [a, b] = w else { continue };
        let len = b.rx_ns.saturating_sub(a.rx_ns);
        let gap = RtpGap {
            start_ns: a.rx_ns,
            end_ns: b.rx_ns,
            len_ms: ms(len),
            seq_before: a.seq,
            seq_after: b.seq,
        };
        if len > threshold_ns {
            gaps.push(gap.clone());
        }
        if max_gap
            .as_ref()
            .is_none_or(|m| len > m.end_ns.saturating_sub(m.start_ns))
        {
            max_gap = Some(gap);
        }
    }
    (gaps, max_gap)
}
