//! Builders of RTP H.264 packets with our frame tag, for tests (here and in
//! the harness): not a packetizer for real streams.

use super::units::ticks_to_ns;
use super::{RtpArrival, H264_CLOCK_RATE};

/// The fields of one RTP packet to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSpec {
    /// Synchronization source.
    pub ssrc: u32,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// Our frame tag (frame number, send time), if any.
    pub tag: Option<(u32, i64)>,
}

/// An RTP packet: 12-byte header, no CSRC, our extension when tagged,
/// then `payload`, no padding.
pub fn rtp_packet(spec: &PacketSpec, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(12 + wire::rtp_ext::BLOCK_LEN + payload.len());
    b.push(0x80 | if spec.tag.is_some() { 0x10 } else { 0 });
    b.push((spec.payload_type & 0x7f) | if spec.marker { 0x80 } else { 0 });
    b.extend_from_slice(&spec.seq.to_be_bytes());
    b.extend_from_slice(&spec.timestamp.to_be_bytes());
    b.extend_from_slice(&spec.ssrc.to_be_bytes());
    if let Some((frame, send_ns)) = spec.tag {
        b.extend_from_slice(&wire::rtp_ext::encode(frame, send_ns));
    }
    b.extend_from_slice(payload);
    b
}

/// A NAL unit of `nal_type` (NRI 3) and `len` bytes in all, header
/// included (at least 1), filled with `fill`.
pub fn nal(nal_type: u8, len: usize, fill: u8) -> Vec<u8> {
    let mut n = vec![fill; len.max(1)];
    if let Some(h) = n.first_mut() {
        *h = 0x60 | (nal_type & 0x1f);
    }
    n
}

/// A STAP-A payload aggregating `nals` (each shorter than 64 KiB).
pub fn stap_a(nals: &[Vec<u8>]) -> Vec<u8> {
    let nri = nals
        .iter()
        .filter_map(|n| n.first())
        .fold(0, |a, h| a | (h & 0x60));
    let mut p = vec![nri | 24];
    for n in nals {
        p.extend_from_slice(&(n.len() as u16).to_be_bytes());
        p.extend_from_slice(n);
    }
    p
}

/// FU-A payloads carrying `nal` (header included) in fragments of at
/// most `max_fragment` bytes (at least 2 fragments).
pub fn fu_a(nal: &[u8], max_fragment: usize) -> Vec<Vec<u8>> {
    let Some((&h, body)) = nal.split_first() else {
        return Vec::new();
    };
    let size = max_fragment.max(1).min(body.len().div_ceil(2)).max(1);
    let chunks: Vec<&[u8]> = body.chunks(size).collect();
    let last = chunks.len().saturating_sub(1);
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let s = if i == 0 { 0x80 } else { 0 };
            let e = if i == last { 0x40 } else { 0 };
            let mut p = vec![(h & 0xe0) | 28, s | e | (h & 0x1f)];
            p.extend_from_slice(c);
            p
        })
        .collect()
}

/// A perfectly paced video stream: frame `k` has timestamp
/// `ts0 + k × ts_step`, and all its packets arrive at `start_rx_ns +
/// floor(k × ts_step × 10^9 / 90000)`.
#[derive(Debug, Clone)]
pub struct StreamBuilder {
    /// Synchronization source.
    pub ssrc: u32,
    /// Payload type (96).
    pub payload_type: u8,
    /// Next sequence number.
    pub seq: u16,
    /// Timestamp of frame 0.
    pub ts0: u32,
    /// Timestamp step per frame (3000: 30 frames/s at 90 kHz).
    pub ts_step: u32,
    /// Frame number of frame 0 in our tag.
    pub frame0: u32,
    /// Put our tag on every packet.
    pub tagged: bool,
    /// Arrival time of frame 0, ns.
    pub start_rx_ns: i64,
    /// Largest payload: larger NAL units are sent as FU-A.
    pub max_payload: usize,
    /// Frames built so far.
    pub frames: u64,
}

impl StreamBuilder {
    /// A tagged 30 fps stream with SSRC `ssrc` starting at `seq`.
    pub fn new(ssrc: u32, seq: u16) -> Self {
        Self {
            ssrc,
            payload_type: 96,
            seq,
            ts0: 0x1234_5678,
            ts_step: 3000,
            frame0: 1000,
            tagged: true,
            start_rx_ns: 1_700_000_000_000_000_000,
            max_payload: 1200,
            frames: 0,
        }
    }

    /// Timestamp of frame `k`.
    pub fn ts_of(&self, k: u64) -> u32 {
        self.ts0.wrapping_add((k as u32).wrapping_mul(self.ts_step))
    }

    /// Arrival time of frame `k`, ns.
    pub fn rx_of(&self, k: u64) -> i64 {
        self.start_rx_ns + ticks_to_ns(k as i64 * i64::from(self.ts_step), H264_CLOCK_RATE)
    }

    /// The payloads of the next frame: several NAL units each no
    /// larger than `max_payload` go in one STAP-A; otherwise each NAL
    /// unit goes alone, or as FU-A when it is larger.
    pub fn packetize(&self, nals: &[Vec<u8>]) -> Vec<Vec<u8>> {
        if nals.len() > 1 && nals.iter().map(|n| n.len() + 2).sum::<usize>() < self.max_payload {
            return vec![stap_a(nals)];
        }
        nals.iter()
            .flat_map(|n| {
                if n.len() <= self.max_payload {
                    vec![n.clone()]
                } else {
                    fu_a(n, self.max_payload.saturating_sub(2))
                }
            })
            .collect()
    }

    /// The next frame's packets from its payloads, marker on the last.
    pub fn frame(&mut self, payloads: &[Vec<u8>]) -> Vec<RtpArrival> {
        let k = self.frames;
        self.frames += 1;
        let (ts, rx) = (self.ts_of(k), self.rx_of(k));
        let frame = self.frame0.wrapping_add(k as u32);
        let last = payloads.len().saturating_sub(1);
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let spec = PacketSpec {
                    ssrc: self.ssrc,
                    payload_type: self.payload_type,
                    seq: self.seq,
                    timestamp: ts,
                    marker: i == last,
                    tag: self.tagged.then_some((frame, 5_000 + rx)),
                };
                self.seq = self.seq.wrapping_add(1);
                RtpArrival {
                    rx_ns: rx,
                    kernel_ts: true,
                    bytes: rtp_packet(&spec, p),
                }
            })
            .collect()
    }

    /// `n` frames of a typical stream: every 30th an IDR (SPS and PPS
    /// in a STAP-A, then a 4000-byte IDR slice), the others a
    /// `p_len`-byte P slice; each frame's packets in a `Vec`.
    pub fn frames(&mut self, n: u64, p_len: usize) -> Vec<Vec<RtpArrival>> {
        (0..n)
            .map(|_| {
                let mut payloads = Vec::new();
                if self.frames % 30 == 0 {
                    payloads.extend(self.packetize(&[nal(7, 12, 1), nal(8, 5, 2)]));
                    payloads.extend(self.packetize(&[nal(5, 4000, 3)]));
                } else {
                    payloads.extend(self.packetize(&[nal(1, p_len, 4)]));
                }
                self.frame(&payloads)
            })
            .collect()
    }
}
