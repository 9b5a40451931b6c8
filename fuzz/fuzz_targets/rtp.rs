//! Fuzz target: the RTP receiver's analysis (`measure::stream::rtp`).
//!
//! The input is a small header and a list of datagrams (layout below).
//! Three things are checked on every input:
//!
//! 1. `parse_rtp` on each datagram: never panics, and what it returns
//!    agrees with the bytes (fixed header fields, payload inside the
//!    datagram after the header); `parse_h264` on each payload.
//! 2. `depacketize` on the parsed payloads: every NAL unit it returns is
//!    non-empty and together they are no bigger than the payloads. Then a
//!    round trip: the datagrams' bytes, taken as NAL units (their type
//!    forced into 1..=23), are packetized by `rtp::testing` (single NAL
//!    units, STAP-A, FU-A) into a clean stream, and `depacketize` must give
//!    back exactly those NAL units, whole, and `analyze_rtp` must find
//!    every frame complete, nothing lost, late, frozen or jittered.
//! 3. `analyze_rtp` over the datagrams as arrivals: the books balance
//!    (`received + lost == expected`, every datagram counted once as
//!    malformed, foreign or the stream's, ...), and (flag bit 2) analysing
//!    again with the SSRC it picked gives the same summary.
//!
//! Input layout (big-endian):
//!
//! ```text
//! flags u8        bit 0: choose the SSRC below; bit 1: tag the clean stream;
//!                 bit 2: analyse again with the SSRC picked
//! ssrc u32
//! gap  i32        gap threshold, µs
//! delay i32       playout delay, µs
//! rate u32        clock rate (0 = 90 kHz)
//! rx0  i64        receive time of the first datagram, ns
//! then datagrams (at most 96): len u16, rx step i32 (ns, may go back), `len` bytes
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use measure::stream::rtp::testing::{fu_a, stap_a, StreamBuilder};
use measure::stream::rtp::{
    analyze_rtp, depacketize, parse_h264, parse_rtp, FrameStatus, H264Payload, RtpAnalysisOptions,
    RtpArrival,
};

struct Input<'a> {
    b: &'a [u8],
}

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (h, t) = self.b.split_at(n.min(self.b.len()));
        self.b = t;
        h
    }
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let h = self.take(N);
        a[..h.len()].copy_from_slice(h);
        a
    }
}

fn check_parse(bytes: &[u8]) {
    let Some(p) = parse_rtp(bytes) else { return };
    assert!(bytes.len() >= 12);
    assert_eq!(bytes[0] >> 6, 2);
    assert_eq!(p.marker, bytes[1] & 0x80 != 0);
    assert_eq!(p.payload_type, bytes[1] & 0x7f);
    assert_eq!(p.seq, u16::from_be_bytes([bytes[2], bytes[3]]));
    assert_eq!(
        p.timestamp,
        u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])
    );
    assert_eq!(
        p.ssrc,
        u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]])
    );
    assert_eq!(p.csrc_count, bytes[0] & 0x0f);
    assert_eq!(p.extension.is_some(), bytes[0] & 0x10 != 0);
    // The payload lies inside the datagram, after the header (CSRCs and
    // extension), and before the padding.
    let base = bytes.as_ptr() as usize;
    let start = p.payload.as_ptr() as usize - base;
    let header = 12 + 4 * usize::from(p.csrc_count) + p.extension.map_or(0, |(_, d)| 4 + d.len());
    assert_eq!(start, header, "payload starts right after the header");
    let end = start + p.payload.len();
    assert!(end <= bytes.len());
    if bytes[0] & 0x20 != 0 {
        assert_eq!(bytes.len() - end, usize::from(bytes[bytes.len() - 1]));
    } else {
        assert_eq!(end, bytes.len());
    }
    if let Some((profile, data)) = p.extension {
        let off = 12 + 4 * usize::from(p.csrc_count);
        assert_eq!(profile, u16::from_be_bytes([bytes[off], bytes[off + 1]]));
        let words = u16::from_be_bytes([bytes[off + 2], bytes[off + 3]]);
        assert_eq!(data.len(), 4 * usize::from(words));
    }
    match parse_h264(p.payload) {
        H264Payload::Single(n) => assert_eq!(n, p.payload),
        H264Payload::StapA { nals, .. } => {
            assert!(nals.iter().all(|n| !n.is_empty()));
            let sum: usize = nals.iter().map(|n| n.len() + 2).sum();
            assert!(sum < p.payload.len());
        }
        H264Payload::FuA { fragment, .. } => {
            assert!(!fragment.is_empty());
            assert_eq!(fragment.len() + 2, p.payload.len());
        }
        H264Payload::Malformed => {}
    }
}

/// `nals` packetized into one frame's payloads as the sender would:
/// `how` picks, per NAL unit, single / STAP-A with the next ones / FU-A.
fn packetize(nals: &[Vec<u8>], how: &[u8], max_payload: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < nals.len() {
        let h = how.get(i).copied().unwrap_or(0);
        let n = &nals[i];
        if h % 3 == 1 && n.len() >= 3 {
            out.extend(fu_a(n, usize::from(h >> 2).max(1)));
            i += 1;
        } else if h % 3 == 2 && i + 1 < nals.len() {
            let k = (usize::from(h >> 2) % 4 + 2).min(nals.len() - i);
            out.push(stap_a(&nals[i..i + k]));
            i += k;
        } else if n.len() > max_payload {
            out.extend(fu_a(n, max_payload - 2));
            i += 1;
        } else {
            out.push(n.clone());
            i += 1;
        }
    }
    out
}

fn round_trip(dgrams: &[(i64, &[u8])], hdr: &[u8; 25]) {
    // NAL units from the datagrams (at most 2000 bytes each, so a STAP-A
    // of six stays below 64 KiB), their type forced into 1..=23.
    let nals: Vec<Vec<u8>> = dgrams
        .iter()
        .filter(|(_, b)| !b.is_empty())
        .take(64)
        .map(|(_, b)| {
            let mut n = b[..b.len().min(2000)].to_vec();
            n[0] = (n[0] & 0xe0) | (n[0] % 23 + 1);
            n
        })
        .collect();
    if nals.is_empty() {
        return;
    }
    let how: Vec<u8> = dgrams.iter().map(|(rx, _)| *rx as u8).collect();
    let max_payload = 3 + usize::from(u16::from_be_bytes([hdr[1], hdr[2]]) % 1500);

    // One frame: depacketize gives the NAL units back, whole.
    let payloads = packetize(&nals, &how, max_payload);
    let seq0 = i64::from(u16::from_be_bytes([hdr[3], hdr[4]]));
    let with_seq: Vec<(i64, &[u8])> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (seq0 + i as i64, p.as_slice()))
        .collect();
    let d = depacketize(&with_seq);
    assert!(d.whole, "a clean frame is whole");
    assert_eq!(d.nals, nals, "depacketize undoes packetize");

    // A clean stream of frames (a few NAL units each): all complete.
    let mut b = StreamBuilder::new(
        u32::from_be_bytes([hdr[5], hdr[6], hdr[7], hdr[8]]),
        u16::from_be_bytes([hdr[3], hdr[4]]),
    );
    b.tagged = hdr[0] & 2 != 0;
    b.ts0 = u32::from_be_bytes([hdr[9], hdr[10], hdr[11], hdr[12]]);
    b.ts_step = (u32::from_be_bytes([hdr[13], hdr[14], hdr[15], hdr[16]]) % (1 << 20)).max(1);
    b.frame0 = u32::from_be_bytes([hdr[17], hdr[18], hdr[19], hdr[20]]);
    b.max_payload = max_payload;
    let mut arrivals: Vec<RtpArrival> = Vec::new();
    let mut frames = 0u64;
    for (k, chunk) in nals.chunks(3).enumerate() {
        let payloads = packetize(chunk, &how[k.min(how.len())..], max_payload);
        arrivals.extend(b.frame(&payloads));
        frames += 1;
    }
    let s = analyze_rtp(&arrivals, &RtpAnalysisOptions::default());
    let n = arrivals.len() as u64;
    assert_eq!((s.malformed, s.foreign_ssrc, s.packets), (0, 0, n));
    assert_eq!((s.received, s.expected, s.lost), (n, n, 0));
    assert_eq!((s.duplicates, s.reordered, s.malformed_payload), (0, 0, 0));
    assert_eq!(s.frames_complete, frames, "{s:#?}");
    assert_eq!(
        (s.frames_incomplete, s.frames_lost, s.frames_late),
        (0, 0, 0)
    );
    assert_eq!(s.freeze_count, 0);
    assert_eq!(s.jitter_ms, 0.0);
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input { b: data };
    let hdr: [u8; 25] = inp.array();
    let flags = hdr[0];
    let ssrc = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]);
    let gap_us = i32::from_be_bytes([hdr[5], hdr[6], hdr[7], hdr[8]]);
    let delay_us = i32::from_be_bytes([hdr[9], hdr[10], hdr[11], hdr[12]]);
    let rate = u32::from_be_bytes([hdr[13], hdr[14], hdr[15], hdr[16]]);
    let mut rx = i64::from_be_bytes([
        hdr[17], hdr[18], hdr[19], hdr[20], hdr[21], hdr[22], hdr[23], hdr[24],
    ]);
    let mut dgrams: Vec<(i64, &[u8])> = Vec::new();
    // At most 96 datagrams: enough for every rule of the analysis, and
    // fast enough (sorting under comparison tracing dominates) for a
    // million inputs in reasonable time.
    while !inp.b.is_empty() && dgrams.len() < 96 {
        let len = usize::from(u16::from_be_bytes(inp.array()));
        let step = i32::from_be_bytes(inp.array());
        rx = rx.wrapping_add(i64::from(step));
        dgrams.push((rx, inp.take(len)));
    }

    // 1. The header parser.
    for (_, b) in &dgrams {
        check_parse(b);
    }

    // 2. The depacketizer on whatever parsed, then the round trip.
    let parsed: Vec<(i64, &[u8])> = dgrams
        .iter()
        .filter_map(|(_, b)| parse_rtp(b))
        .map(|p| (i64::from(p.seq), p.payload))
        .collect();
    let d = depacketize(&parsed);
    assert!(d.nals.iter().all(|n| !n.is_empty()));
    let out: usize = d.nals.iter().map(Vec::len).sum();
    let inb: usize = parsed.iter().map(|(_, p)| p.len()).sum();
    assert!(out <= inb, "depacketize made bytes: {out} > {inb}");
    round_trip(&dgrams, &hdr);

    // 3. The analysis.
    let arrivals: Vec<RtpArrival> = dgrams
        .iter()
        .map(|&(rx_ns, b)| RtpArrival {
            rx_ns,
            kernel_ts: true,
            bytes: b.to_vec(),
        })
        .collect();
    let opts = RtpAnalysisOptions {
        ssrc: (flags & 1 != 0).then_some(ssrc),
        gap_threshold_ns: i64::from(gap_us) * 1000,
        playout_delay_ns: i64::from(delay_us) * 1000,
        clock_rate: rate,
    };
    let s = analyze_rtp(&arrivals, &opts);
    let n = arrivals.len() as u64;
    let malformed = arrivals
        .iter()
        .filter(|a| parse_rtp(&a.bytes).is_none())
        .count() as u64;
    assert_eq!(s.malformed, malformed);
    assert_eq!(s.malformed + s.foreign_ssrc + s.packets, n);
    assert_eq!(s.received + s.duplicates, s.packets);
    assert_eq!(s.received + s.lost, s.expected);
    assert!(s.reordered <= s.received);
    assert!(s.malformed_payload <= s.received);
    if opts.ssrc.is_some() {
        assert_eq!(s.ssrc, opts.ssrc);
    }
    assert_eq!(s.seq_range.is_some(), s.received > 0);
    if let Some((lo, hi)) = s.seq_range {
        assert!(lo <= hi);
        assert!(u128::from(s.received) <= (i128::from(hi) - i128::from(lo) + 1) as u128);
    }
    assert_eq!(
        s.frames_complete + s.frames_incomplete,
        s.frames.len() as u64
    );
    assert_eq!(
        s.frames.iter().map(|f| f.packets).sum::<u64>(),
        s.received,
        "every first arrival is in one frame"
    );
    for f in &s.frames {
        assert!(f.first_seq <= f.last_seq);
        assert!(
            u128::from(f.packets) <= (i128::from(f.last_seq) - i128::from(f.first_seq) + 1) as u128
        );
        assert!(f.first_rx_ns <= f.last_rx_ns);
        assert!(!f.late || f.status == FrameStatus::Complete);
    }
    assert!(s.frames_late <= s.frames_complete);
    assert_eq!(s.freeze_count, s.freezes.len() as u64);
    assert!(s
        .gaps
        .iter()
        .all(|g| g.end_ns.saturating_sub(g.start_ns) > opts.gap_threshold_ns));
    assert!(s.gaps.windows(2).all(|w| w[0].start_ns <= w[1].start_ns));
    assert!(s.jitter_ms >= 0.0 && s.jitter_ms.is_finite());
    if flags & 4 != 0 && opts.ssrc.is_none() && s.ssrc.is_some() {
        let again = analyze_rtp(
            &arrivals,
            &RtpAnalysisOptions {
                ssrc: s.ssrc,
                ..opts
            },
        );
        assert_eq!(again, s, "the SSRC it picked gives the same analysis");
    }
});
