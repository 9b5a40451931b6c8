//! The video streams as a repetition's summary sees them: the RTP stream's
//! packets and frames (`client_probe::rtp_analysis`), what a real H.264
//! decoder made of the frames that arrived (`media::Decoder`), and the HTTP
//! progressive download through a player model (`client_probe::playout`).
//! Pure apart from the decoder, which is deterministic for the same input.
//!
//! A repetition's streams are judged over its window (the pause before,
//! the migration, the pause after), like the probe: RTP packets received
//! in it, HTTP stalls and connection breaks that overlap it.

use crate::stream::record::HttpMeta;
use crate::stream::rtp::{analyze_rtp, parse_rtp, RtpAnalysisOptions, RtpArrival, RtpSummary};
use crate::summary::{HttpView, RtpView};
use std::collections::BTreeMap;

/// The arrivals of a window `[from, to]`, whole frames at a time: a frame
/// (an SSRC's RTP timestamp) belongs to the window its last packet arrived
/// in, with all its packets, as [`rtp_view`] counts the decoder's frames.
/// Cutting at packets instead would make a frame that straddles the
/// window's start "incomplete" in the analysis while the decoder, which saw
/// all of it, accepted it. Datagrams that are not RTP count by their own
/// arrival.
pub fn in_window(arrivals: &[RtpArrival], from: i64, to: i64) -> Vec<RtpArrival> {
    // The 32-bit timestamp as the key: it recurs only after 13 h at 90 kHz.
    let mut last: std::collections::HashMap<(u32, u32), i64> = std::collections::HashMap::new();
    for a in arrivals {
        if let Some(p) = parse_rtp(&a.bytes) {
            let t = last.entry((p.ssrc, p.timestamp)).or_insert(a.rx_ns);
            *t = (*t).max(a.rx_ns);
        }
    }
    arrivals
        .iter()
        .filter(|a| {
            let t = parse_rtp(&a.bytes)
                .and_then(|p| last.get(&(p.ssrc, p.timestamp)).copied())
                .unwrap_or(a.rx_ns);
            t >= from && t <= to
        })
        .cloned()
        .collect()
}

/// One frame's packets: `(extended seq, payload)` in seq order.
pub type FramePackets = Vec<(i64, Vec<u8>)>;

/// The stream's frames as the decoder gets them: per RTP timestamp (in
/// timestamp order), the payloads in sequence order, and when the frame's
/// last packet arrived.
pub fn frames_for_decoder(arrivals: &[RtpArrival], ssrc: Option<u32>) -> Vec<(i64, FramePackets)> {
    // Unwrap 32-bit timestamps and 16-bit seqs near the previous packet's:
    // consecutive packets move far less than half their range.
    let mut frames: BTreeMap<i64, (i64, FramePackets)> = BTreeMap::new();
    let (mut last_ts, mut last_seq): (Option<i64>, Option<i64>) = (None, None);
    for a in arrivals {
        let Some(p) = parse_rtp(&a.bytes) else {
            continue;
        };
        if ssrc.is_some_and(|s| s != p.ssrc) {
            continue;
        }
        let ts = unwrap_near(i64::from(p.timestamp), last_ts, 32);
        let seq = unwrap_near(i64::from(p.seq), last_seq, 16);
        last_ts = Some(ts);
        last_seq = Some(seq);
        let f = frames.entry(ts).or_insert((a.rx_ns, Vec::new()));
        f.0 = f.0.max(a.rx_ns);
        f.1.push((seq, p.payload.to_vec()));
    }
    frames
        .into_values()
        .map(|(t, mut pk)| {
            pk.sort_by_key(|(s, _)| *s);
            pk.dedup_by_key(|(s, _)| *s);
            (t, pk)
        })
        .collect()
}

fn unwrap_near(v: i64, near: Option<i64>, bits: u32) -> i64 {
    let Some(r) = near else { return v };
    let m = 1i64 << bits;
    let base = r - r.rem_euclid(m) + v;
    [base - m, base, base + m]
        .into_iter()
        .min_by_key(|x| (x - r).abs())
        .unwrap_or(base)
}

/// The RTP view of a repetition from the packets received in its window
/// `[from, to]` and the whole stream's decoding ([`decode_stream`]; frames
/// count in the window by their last packet's arrival).
pub fn rtp_view(
    window: &[RtpArrival],
    decoded: Option<&[(i64, bool)]>,
    (from, to): (i64, i64),
    opts: &RtpAnalysisOptions,
) -> (RtpView, RtpSummary) {
    let s = analyze_rtp(window, opts);
    let decoded = decoded.map(|d| {
        let inside = d.iter().filter(|(t, _)| *t >= from && *t <= to);
        let ok = inside.clone().filter(|(_, a)| *a).count() as u64;
        (ok, inside.count() as u64 - ok)
    });
    let stale = s
        .freezes
        .iter()
        .max_by_key(|f| f.end_ns - f.picture_since_ns);
    let v = RtpView {
        max_gap_ms: Some(s.max_gap_ms),
        lost_packets: Some(s.lost),
        received_packets: Some(s.received),
        freezes: Some(s.freeze_count),
        freeze_total_ms: Some(s.freeze_total_ms),
        freeze_longest_ms: Some(s.freeze_longest_ms),
        picture_stale_max_ms: stale.map(|f| (f.end_ns - f.picture_since_ns) as f64 / 1e6),
        picture_stale_since_ns: stale.map(|f| f.picture_since_ns),
        picture_stale_until_ns: stale.map(|f| f.end_ns),
        jitter_ms: Some(s.jitter_ms),
        frames_complete: Some(s.frames_complete),
        frames_incomplete: Some(s.frames_incomplete),
        frames_lost: Some(s.frames_lost),
        frames_late: Some(s.frames_late),
        max_frame_gap_ms: Some(s.max_frame_gap_ms),
        decoder_accepted: decoded.map(|d| d.0),
        decoder_rejected: decoded.map(|d| d.1),
    };
    (v, s)
}

/// A break of the HTTP download's TCP connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Break {
    /// When the client saw it break, ns.
    pub broke_ns: i64,
    /// When the resumed download got its first byte, if it did, ns.
    pub resumed_ns: Option<i64>,
}

/// The HTTP view of a repetition's window `[from, to]`: `samples` are the
/// download's reads `(rx_ns, bytes)` over the whole run, `stalls` the
/// player model's stalls over the whole run (`(start, end)`, ns), `breaks`
/// the connection's breaks.
pub fn http_view(
    samples: &[(i64, u64)],
    stalls: &[(i64, i64)],
    breaks: &[Break],
    from: i64,
    to: i64,
) -> HttpView {
    let inside: Vec<&(i64, u64)> = samples
        .iter()
        .filter(|s| s.0 >= from && s.0 <= to)
        .collect();
    let max_read_gap_ms = inside
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) as f64 / 1e6)
        .fold(None::<f64>, |m, x| Some(m.map_or(x, |m| m.max(x))));
    let over: Vec<(i64, i64)> = stalls
        .iter()
        .filter(|(s, e)| *e > from && *s < to)
        .map(|&(s, e)| (s.max(from), e.min(to)))
        .collect();
    let broke = breaks
        .iter()
        .find(|b| b.broke_ns >= from && b.broke_ns <= to);
    HttpView {
        stalls: Some(over.len() as u64),
        stall_total_ms: Some(over.iter().map(|(s, e)| (e - s) as f64 / 1e6).sum::<f64>() + 0.0),
        connection_survived: Some(broke.is_none()),
        broke_ns: broke.map(|b| b.broke_ns),
        reconnect_ms: broke.and_then(|b| b.resumed_ns.map(|r| (r - b.broke_ns) as f64 / 1e6)),
        bytes: Some(inside.iter().map(|s| s.1).sum()),
        max_read_gap_ms,
    }
}

/// The player model's stalls over the whole download, `(start, end)` ns.
pub fn http_stalls(samples: &[(i64, u64)], meta: &HttpMeta, until_ns: i64) -> Vec<(i64, i64)> {
    let params = crate::stream::playout::PlayoutParams {
        start_s: meta.start_s,
        resume_s: meta.resume_s,
        ..crate::stream::playout::PlayoutParams::default()
    };
    crate::stream::playout::playout(samples, meta.byte_rate, &params, until_ns)
        .stalls
        .iter()
        .map(|s| (s.start_ns, s.end_ns))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTP packet of SSRC 7: `seq`, `ts`, marker on a frame's last.
    fn pkt(rx_ns: i64, seq: u16, ts: u32, marker: bool) -> RtpArrival {
        let mut b = vec![0x80, 96 | (u8::from(marker) << 7)];
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&ts.to_be_bytes());
        b.extend_from_slice(&7u32.to_be_bytes());
        b.extend_from_slice(&[0x65, 0x88]);
        RtpArrival {
            rx_ns,
            kernel_ts: true,
            bytes: b,
        }
    }

    #[test]
    fn a_window_takes_whole_frames_by_their_last_packet() {
        let arrivals = vec![
            // Frame 1000 straddles the start (100): its last packet is in,
            // so all of it is.
            pkt(90, 1, 1000, false),
            pkt(95, 2, 1000, false),
            pkt(105, 3, 1000, true),
            pkt(150, 4, 4000, true),
            // Frame 7000 straddles the end (200): its last packet is out.
            pkt(195, 5, 7000, false),
            pkt(205, 6, 7000, true),
            // Not RTP: counts by its own arrival.
            RtpArrival {
                rx_ns: 120,
                kernel_ts: true,
                bytes: vec![1, 2, 3],
            },
        ];
        let w = in_window(&arrivals, 100, 200);
        let got: Vec<i64> = w.iter().map(|a| a.rx_ns).collect();
        assert_eq!(got, vec![90, 95, 105, 150, 120], "in arrival-list order");
    }
}
