//! Extended numbers: each packet's 16-bit seq, 32-bit timestamp and 32-bit
//! frame number unwrapped, in arrival order, to 64 bits, the seq near a
//! prediction from the stream's packet rate so that an outage of any
//! length counts as loss (see the [RTP module](super)).

use super::header::RtpPacket;
use super::units::clamp_i64;

/// A packet of the stream with its extended numbers.
pub(super) struct Pkt<'a> {
    /// Receive time, ns.
    pub(super) rx_ns: i64,
    /// The packet as parsed.
    pub(super) p: RtpPacket<'a>,
    /// Extended sequence number.
    pub(super) seq: i64,
    /// Extended RTP timestamp.
    pub(super) ts: i64,
    /// Extended frame number from our tag (`None`: untagged).
    pub(super) frame: Option<i64>,
}

/// The value `≡ v (mod 2^bits)` nearest `reference`, with the difference
/// in `[-2^(bits-1), 2^(bits-1))`.
fn unwrap_near(v: u64, bits: u32, reference: i64) -> i64 {
    let m = 1i128 << bits;
    let r = i128::from(reference);
    let mut delta = (i128::from(v) - r).rem_euclid(m);
    if delta >= m / 2 {
        delta -= m;
    }
    clamp_i64(r + delta)
}

/// Unwraps seq, timestamp and frame number of `arrivals` (in arrival
/// order) as the [module documentation](super) defines.
pub(super) fn unwrap_all<'a>(arrivals: Vec<(i64, RtpPacket<'a>)>) -> Vec<Pkt<'a>> {
    let mut out: Vec<Pkt<'a>> = Vec::with_capacity(arrivals.len());
    let mut seen = Seen::default();
    for (rx_ns, p) in arrivals {
        let tag = p
            .extension
            .and_then(|(profile, data)| wire::rtp_ext::parse(profile, data));
        let (seq, ts, frame) = seen.extend(&p, tag.map(|t| t.frame));
        seen.note(seq, ts, frame);
        out.push(Pkt {
            rx_ns,
            p,
            seq,
            ts,
            frame,
        });
    }
    out
}

/// What unwrapping remembers of the packets before: extended numbers of
/// the first and the highest-seq packets, tagged or not.
#[derive(Debug, Default)]
struct Seen {
    /// Highest extended seq so far and its timestamp (`h`, `ts_h`).
    high: Option<(i64, i64)>,
    /// Seq and frame of the highest-seq tagged packet (`h'`, `f_h`).
    high_tagged: Option<(i64, i64)>,
    /// Seq and timestamp of the first packet (`s0`, `t0`).
    first: Option<(i64, i64)>,
    /// Seq and frame of the first tagged packet (`s0'`, `f0`).
    first_tagged: Option<(i64, i64)>,
}

impl Seen {
    /// The packet's extended (seq, timestamp, frame); the first packet
    /// keeps its numbers as they are.
    fn extend(&self, p: &RtpPacket<'_>, tag_frame: Option<u32>) -> (i64, i64, Option<i64>) {
        let Some((h, ts_h)) = self.high else {
            return (
                i64::from(p.seq),
                i64::from(p.timestamp),
                tag_frame.map(i64::from),
            );
        };
        let ts = unwrap_near(u64::from(p.timestamp), 32, ts_h);
        let frame = tag_frame.map(|f| {
            // The first tagged packet keeps its number.
            let r = self.high_tagged.map_or(i64::from(f), |(_, fh)| fh);
            unwrap_near(u64::from(f), 32, r)
        });
        let predicted = self.predict(frame, ts, h, ts_h);
        (unwrap_near(u64::from(p.seq), 16, predicted), ts, frame)
    }

    /// The prediction `p` of the packet's seq: the packet rate so far
    /// times how far it is past the highest one, by frame number when
    /// tagged, else by timestamp.
    fn predict(&self, frame: Option<i64>, ts: i64, h: i64, ts_h: i64) -> i64 {
        let by_frame = match (frame, self.high_tagged, self.first_tagged) {
            (Some(f), Some((ht, fh)), Some((s0, f0))) if fh > f0 => Some((
                ht,
                ht.saturating_sub(s0) as f64 / fh.saturating_sub(f0) as f64
                    * f.saturating_sub(fh) as f64,
            )),
            _ => None,
        };
        let (base, advance) = by_frame.unwrap_or_else(|| match self.first {
            Some((s0, t0)) if ts_h > t0 => (
                h,
                h.saturating_sub(s0) as f64 / ts_h.saturating_sub(t0) as f64
                    * ts.saturating_sub(ts_h) as f64,
            ),
            _ => (h, 0.0),
        });
        // A rate over a zero or huge span can be infinite or NaN.
        let advance = if advance.is_finite() {
            advance.round().clamp(-1e15, 1e15) as i64
        } else {
            0
        };
        base.saturating_add(advance)
    }

    /// Takes the packet's extended numbers into account.
    fn note(&mut self, seq: i64, ts: i64, frame: Option<i64>) {
        if self.first.is_none() {
            self.first = Some((seq, ts));
        }
        if let Some(f) = frame {
            if self.first_tagged.is_none() {
                self.first_tagged = Some((seq, f));
            }
            if self.high_tagged.is_none_or(|(hs, _)| seq > hs) {
                self.high_tagged = Some((seq, f));
            }
        }
        if self.high.is_none_or(|(h, _)| seq > h) {
            self.high = Some((seq, ts));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwrapping_picks_the_nearest_value() {
        assert_eq!(unwrap_near(0, 16, 65535), 65536);
        assert_eq!(unwrap_near(65535, 16, 65536), 65535);
        assert_eq!(unwrap_near(5, 16, 5 + 32768), 5); // a tie goes back
        assert_eq!(unwrap_near(5, 16, 6 + 32768), 5 + 65536);
        assert_eq!(unwrap_near(u64::from(u32::MAX), 32, 0), -1);
    }
}
