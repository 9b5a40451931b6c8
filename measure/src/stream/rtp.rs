//! Receiver-side analysis of an RTP H.264 video stream: pure functions from
//! the packets a client received ([`RtpArrival`]) to an [`RtpSummary`]. No
//! I/O, no clock reads: analysing the same packets always gives the same
//! numbers. This module doc is the single definition of each measure;
//! everything else refers here.
//!
//! All times are on the client's clock (`rx_ns`, CLOCK_REALTIME ns); the
//! sender's send time in our extension ([`wire::rtp_ext`]) is never used as
//! a time, since the guest's clock is not the client's and stops while the
//! VM is paused.
//!
//! # Packets
//! - **RTP header** (RFC 3550 section 5.1): a datagram is **malformed** and
//!   skipped (counted in `malformed`, nowhere else) when it is shorter than
//!   12 bytes, its version is not 2, its CSRC list or its header extension
//!   (4-byte header plus `length` 32-bit words) runs past the end, or its
//!   padding bit is set with a padding count (the last byte) of 0 or longer
//!   than what is left after the header. The payload is what lies between
//!   the header (CSRCs and extension included) and the padding.
//! - **Frame tag**: our extension ([`wire::rtp_ext::parse`]), when the
//!   packet has one; absent or unreadable, the packet is *untagged*.
//! - **Stream**: the packets of one SSRC: the caller's
//!   [`RtpAnalysisOptions::ssrc`], or else the SSRC with the most
//!   well-formed packets (on a tie, the one whose first packet came first in
//!   the input). Well-formed packets of any other SSRC are `foreign_ssrc`.
//!   Everything below is about the stream only.
//! - **Arrival order**: by `rx_ns`, packets with equal `rx_ns` in input
//!   order.
//!
//! # Extended numbers
//! Each packet's 16-bit sequence number, 32-bit timestamp and 32-bit frame
//! number are unwrapped, in arrival order, to 64-bit *extended* values. A
//! value `v` of `b` bits is unwrapped *near* a reference `r` to the value
//! `x ≡ v (mod 2^b)` with `x - r` in `[-2^(b-1), 2^(b-1))`. The first
//! packet keeps its numbers as they are. Let `h` be the highest extended
//! seq so far and `ts_h` the extended timestamp of that packet, `f_h` the
//! extended frame number of the highest-seq *tagged* packet so far.
//! - The timestamp is unwrapped near `ts_h`; the frame number near `f_h`
//!   (the first tagged packet keeps its number).
//! - The seq is unwrapped near a *prediction* `p`, so that an
//!   outage of any length is counted as loss (no RFC 3550 "restart"
//!   heuristic; plain unwrapping near `h` would lose 2^16 packets for every
//!   wrap during an outage). With `(s0, t0)` the extended seq and timestamp
//!   of the stream's first packet, `(s0', f0)` the seq and frame number of
//!   its first tagged packet and `h'` the seq of the highest-seq tagged
//!   packet so far: for a tagged packet with frame `f` when `f_h > f0`,
//!   `p = h' + round((h' - s0') / (f_h - f0) × (f - f_h))`; else, when
//!   `ts_h > t0`, `p = h + round((h - s0) / (ts_h - t0) × (ts - ts_h))`;
//!   else `p = h`. That is: the stream's packet rate so far (per frame, or
//!   per timestamp tick) times how far the packet is past the highest one.
//!   So seqs are exact whenever the prediction is within 2^15 packets of
//!   the truth: always for reordering and short outages, and for long
//!   outages while the packet rate during the outage is close to the rate
//!   before it.
//!
//! # Packet measures
//! - **Received** (`received`): distinct extended seqs. **Packets**
//!   (`packets`): datagrams of the stream, duplicates included.
//!   **Duplicates**: datagrams whose extended seq was already received.
//!   The first datagram of each seq is its *first arrival*.
//! - **Expected**: `max - min + 1` over the extended seqs received (0 with
//!   none); **lost** = `expected - received`, so `received + lost ==
//!   expected`. Packets lost before the first or after the last received
//!   one are not seen.
//! - **Reordered**: first arrivals whose extended seq is lower than the
//!   highest received before them.
//! - **Inter-arrival gap**: between consecutive first arrivals `a`, `b` in
//!   arrival order, `b.rx_ns - a.rx_ns`. `max_gap_ms` is the largest (the
//!   first among equals), `gaps` every one strictly longer than
//!   `gap_threshold_ns`, in time order, each with the extended seqs of `a`
//!   and `b`. An outage still going on when the record ends is no gap.
//! - **Jitter** (`jitter_ms`): RFC 3550 interarrival jitter
//!   ([`crate::jitter`]) over the first arrivals in arrival order, with
//!   `R = rx_ns` and `S = floor((ts - ts_1) × 10^9 / clock_rate)` ns, where
//!   `ts` is the packet's extended timestamp and `ts_1` that of the stream's
//!   first packet: `D = (Rj - Ri) - (Sj - Si)`, `J += (|D| - J) / 16`, kept
//!   in floating-point ns. As in RFC 3550, the packets of one frame share a
//!   timestamp, so the spread over which a frame's packets arrive counts as
//!   jitter.
//!
//! # H.264 (RFC 6184, packetization mode 1)
//! The payload's first byte is a NAL unit header; its type (low 5 bits):
//! - 1–23: a single NAL unit, the whole payload.
//! - 24 (STAP-A): after the header, NAL units each preceded by a 16-bit
//!   big-endian size. A size of 0, a size running past the end, or a lone
//!   byte left over makes the payload *malformed*: the units before it are
//!   kept, the rest is discarded. A STAP-A with no unit is malformed.
//! - 28 (FU-A): FU indicator, FU header (S = start, E = end bits, the NAL
//!   type), then a fragment. Fewer than 3 bytes, or S and E both set, is
//!   malformed. The NAL header is rebuilt as `(indicator & 0xE0) | (FU
//!   header & 0x1F)`.
//! - Empty, type 0, 25–27 (STAP-B, MTAP: not in mode 1), 29 (FU-B), 30,
//!   31: malformed.
//!
//! `malformed_payload` counts first arrivals of the stream whose payload
//! is malformed; the packet still counts as received.
//!
//! **Depacketization** ([`depacketize`]) of a frame walks its packets in
//! extended seq order. An FU-A *run* is a start fragment followed by
//! fragments of consecutive seqs with the same rebuilt NAL header up to an
//! end fragment; only a whole run yields its NAL unit. A fragment without
//! the start before it (a missing start, or a seq hole inside the run), a
//! run cut by another packet or by the end of the frame's packets, and a
//! malformed payload make the frame's NAL units *not whole*. Fragments are
//! never joined across a missing seq.
//!
//! # Frames
//! - A **frame** is the set of first arrivals with the same extended
//!   timestamp and the same extended frame number (or both untagged).
//!   Frames are ordered by (timestamp, frame number). A frame's *last
//!   arrival* is the latest `rx_ns` among its packets.
//! - A frame is **complete** when: its packets cover every seq from its
//!   lowest to its highest (no hole); its highest-seq packet has the marker
//!   bit; no packet is known to be missing before its lowest seq; and its
//!   depacketization is whole. A packet is *known to be missing before*
//!   it when the packet just before its lowest seq was received without
//!   the marker bit, or was not received while the highest-seq packet
//!   received before it has the marker bit and the frame number one less
//!   than this frame's (so the packets lost in between can only be this
//!   frame's). When frames were lost entirely in between, or without tags,
//!   lost packets just before a frame are taken as belonging to the frames
//!   before it; a frame whose first packets were lost is then still found
//!   incomplete when its first packet received is an FU-A fragment without
//!   the S bit, but not when it starts with a whole NAL unit. The first
//!   frame of the record is not checked this way. Otherwise a frame is
//!   **incomplete** (some of its packets arrived).
//! - **Lost** frames (`frames_lost`): none of their packets arrived. Only
//!   our frame tag shows them: the frame numbers skipped between
//!   consecutive tagged frames (`b - a - 1` for consecutive extended
//!   numbers `a < b` seen). Without tags, frames lost entirely go uncounted
//!   (their packets still count as lost).
//!
//! # Playout
//! A jitter buffer of delay `D` (`playout_delay_ns`, negative taken as 0)
//! is anchored at the *anchor*: the first complete frame in frame order.
//! With `A` its last arrival and `ts_A` its extended timestamp, frame `n`
//! is **due** at `A + floor((ts_n - ts_A) × 10^9 / clock_rate) + D`.
//! A complete frame whose last arrival is after its due time is **late**
//! (`frames_late`; its `lateness_ns` = last arrival - due, positive when
//! late); late frames also count in `frames_complete`. A late frame makes
//! the player rebuffer, as real players do: the playout clock is
//! re-anchored at it (`A` := its last arrival, `ts_A` := its timestamp),
//! so it is shown `D` after it arrived and the frames after it are due
//! relative to it. (Without this, a sender whose clock stopped with the VM
//! would stay late for ever and never end a freeze.) A frame is *shown*
//! when it is complete; its due time is the one under the anchor in force
//! at its timestamp. With no complete frame there is no anchor: no due
//! times, no lateness, no freezes.
//!
//! A frame lost entirely has no timestamp of its own: it gets one by linear
//! interpolation in frame number between the tagged frames that arrived
//! around it (`ts_a + floor((ts_b - ts_a) × (n - a) / (b - a))`), and so a
//! due time. (The frames lost between two tagged frames always fall in one
//! run of frames not shown; only the first one's due time is used.)
//!
//! - **Freeze**: an interval in which no new frame could be shown. Taking
//!   every frame (arrived or lost) in frame order after the anchor: a
//!   maximal run of frames not shown (incomplete or lost) followed by a
//!   shown frame `b` is a freeze from the due time of the run's first frame
//!   (`start_ns`) to `b`'s due time (`end_ns`); `frames` is the run's
//!   length. A late frame `b` with no such run before it is a freeze of 0
//!   frames from its due time under the anchor before it to its due time
//!   after rebuffering (its arrival + `D`). `picture_since_ns` is the due time of the last frame
//!   shown before it: the picture on screen during the freeze has been
//!   there since then (so `end_ns - picture_since_ns` is how long it
//!   stayed, one frame interval more than the freeze at a steady rate). A
//!   run with no shown frame after it (the record ends first) is no freeze.
//!   `freeze_count`, `freeze_total_ms` (sum of `end_ns - start_ns`) and
//!   `freeze_longest_ms` summarise `freezes`.
//! - **Frame gap** (`max_frame_gap_ms`): order the complete frames by their
//!   last arrival; the largest difference between consecutive ones. It
//!   needs no playout model.
//!
//! `clock_rate` 0 is taken as 90000 (the H.264 RTP clock).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::probe::jitter::Jitter;

/// The H.264 RTP clock rate, Hz.
pub const H264_CLOCK_RATE: u32 = 90_000;

/// One received datagram, as the receiver recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtpArrival {
    /// Receive time on the client's clock, ns.
    pub rx_ns: i64,
    /// `rx_ns` is the kernel's receive timestamp (else a user-space read).
    pub kernel_ts: bool,
    /// The UDP payload as received: RTP header and payload.
    pub bytes: Vec<u8>,
}

/// What to analyse and with which model; see the [module
/// documentation](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtpAnalysisOptions {
    /// The stream's SSRC; `None` = the SSRC with the most packets.
    pub ssrc: Option<u32>,
    /// Inter-arrival gaps strictly longer than this are listed, ns.
    pub gap_threshold_ns: i64,
    /// The jitter buffer's playout delay `D`, ns.
    pub playout_delay_ns: i64,
    /// The RTP clock rate, Hz (90000 for H.264).
    pub clock_rate: u32,
}

impl Default for RtpAnalysisOptions {
    /// Any SSRC, gaps over 50 ms, a 100 ms playout delay, 90 kHz.
    fn default() -> Self {
        Self {
            ssrc: None,
            gap_threshold_ns: 50_000_000,
            playout_delay_ns: 100_000_000,
            clock_rate: H264_CLOCK_RATE,
        }
    }
}

/// One inter-arrival gap, as defined in the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtpGap {
    /// Receive time of the packet before the gap, ns.
    pub start_ns: i64,
    /// Receive time of the packet after it, ns.
    pub end_ns: i64,
    /// `end_ns - start_ns`, ms.
    pub len_ms: f64,
    /// Extended seq of the packet before the gap.
    pub seq_before: i64,
    /// Extended seq of the packet after it.
    pub seq_after: i64,
}

/// A place in frame order for the freeze walk: (ts, frame, shown, frames,
/// due under the anchor before it for a late frame).
type Slot = (i64, Option<i64>, bool, u64, Option<i64>);

/// One freeze, as defined in the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Freeze {
    /// Due time of the first frame not shown, ns (client clock).
    pub start_ns: i64,
    /// Due time of the next frame shown, ns.
    pub end_ns: i64,
    /// `end_ns - start_ns`, ms.
    pub len_ms: f64,
    /// Frames not shown in it (incomplete, lost or late).
    pub frames: u64,
    /// Due time of the last frame shown before it, ns.
    pub picture_since_ns: i64,
}

/// Whether a frame that arrived at least in part can be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameStatus {
    /// Every packet arrived and every NAL unit is whole.
    Complete,
    /// Some packets arrived, not all (or a NAL unit is broken).
    Incomplete,
}

/// One frame that arrived at least in part, as defined in the [module
/// documentation](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameInfo {
    /// Extended frame number from our tag (`None`: untagged).
    pub frame: Option<i64>,
    /// Extended RTP timestamp.
    pub ts: i64,
    /// Packets received (first arrivals).
    pub packets: u64,
    /// Lowest extended seq received.
    pub first_seq: i64,
    /// Highest extended seq received.
    pub last_seq: i64,
    /// Earliest receive time among its packets, ns.
    pub first_rx_ns: i64,
    /// Latest receive time among its packets (its last arrival), ns.
    pub last_rx_ns: i64,
    /// Complete or incomplete.
    pub status: FrameStatus,
    /// Due time under the playout model (`None` without an anchor), ns.
    pub due_ns: Option<i64>,
    /// `last_rx_ns - due_ns` (positive: late), ns.
    pub lateness_ns: Option<i64>,
    /// Complete but arrived after its due time.
    pub late: bool,
}

/// What the receiver of an RTP H.264 stream saw; each field is defined in
/// the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtpSummary {
    /// The stream analysed (`None`: no well-formed packet of it).
    pub ssrc: Option<u32>,
    /// Payload type of the stream's first packet.
    pub payload_type: Option<u8>,
    /// Datagrams skipped as malformed RTP (any SSRC).
    pub malformed: u64,
    /// Well-formed datagrams of other SSRCs.
    pub foreign_ssrc: u64,
    /// Datagrams of the stream, duplicates included.
    pub packets: u64,
    /// Distinct extended seqs received.
    pub received: u64,
    /// Datagrams whose seq was already received.
    pub duplicates: u64,
    /// First arrivals below the highest seq received before them.
    pub reordered: u64,
    /// `max - min + 1` over the extended seqs received.
    pub expected: u64,
    /// `expected - received`.
    pub lost: u64,
    /// Lowest and highest extended seq received.
    pub seq_range: Option<(i64, i64)>,
    /// First arrivals whose H.264 payload is malformed.
    pub malformed_payload: u64,
    /// Largest inter-arrival gap, ms.
    pub max_gap_ms: f64,
    /// That gap.
    pub max_gap: Option<RtpGap>,
    /// Every gap over the threshold, in time order.
    pub gaps: Vec<RtpGap>,
    /// RFC 3550 interarrival jitter, ms.
    pub jitter_ms: f64,
    /// Frames whose packets all arrived, whole (late ones included).
    pub frames_complete: u64,
    /// Frames of which some packets arrived, not all.
    pub frames_incomplete: u64,
    /// Frames none of whose packets arrived (from frame tags).
    pub frames_lost: u64,
    /// Complete frames that arrived after their due time.
    pub frames_late: u64,
    /// The playout delay `D` used, ms.
    pub playout_delay_ms: f64,
    /// Number of freezes.
    pub freeze_count: u64,
    /// Sum of the freezes' lengths, ms.
    pub freeze_total_ms: f64,
    /// Longest freeze, ms.
    pub freeze_longest_ms: f64,
    /// Every freeze, in time order.
    pub freezes: Vec<Freeze>,
    /// Largest interval between last arrivals of consecutive complete
    /// frames, ms.
    pub max_frame_gap_ms: f64,
    /// Every frame that arrived at least in part, in frame order.
    pub frames: Vec<FrameInfo>,
}

/// A well-formed RTP packet (RFC 3550 section 5.1), borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The marker bit (for H.264: the last packet of a frame).
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// 16-bit sequence number.
    pub seq: u16,
    /// 32-bit RTP timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Number of CSRCs in the header.
    pub csrc_count: u8,
    /// Header extension: its profile and data (after its 4-byte header).
    pub extension: Option<(u16, &'a [u8])>,
    /// The payload, padding removed.
    pub payload: &'a [u8],
}

/// Parses an RTP header; `None` when the datagram is malformed as the
/// [module documentation](self) defines it. Never panics.
pub fn parse_rtp(b: &[u8]) -> Option<RtpPacket<'_>> {
    let fixed = b.get(..12)?;
    let (b0, b1) = (fixed.first()?, fixed.get(1)?);
    if b0 >> 6 != 2 {
        return None;
    }
    let be16 =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?)) };
    let be32 =
        |i: usize| -> Option<u32> { Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?)) };
    let csrc_count = b0 & 0x0f;
    let mut off = 12 + 4 * usize::from(csrc_count);
    if off > b.len() {
        return None;
    }
    let extension = if b0 & 0x10 != 0 {
        let profile = be16(off)?;
        let words = usize::from(be16(off + 2)?);
        let start = off + 4;
        let end = start + 4 * words;
        let data = b.get(start..end)?;
        off = end;
        Some((profile, data))
    } else {
        None
    };
    let mut end = b.len();
    if b0 & 0x20 != 0 {
        let pad = usize::from(*b.last()?);
        if pad == 0 || pad > end - off {
            return None;
        }
        end -= pad;
    }
    Some(RtpPacket {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        seq: be16(2)?,
        timestamp: be32(4)?,
        ssrc: be32(8)?,
        csrc_count,
        extension,
        payload: b.get(off..end)?,
    })
}

/// An H.264 RTP payload (RFC 6184), as the [module documentation](self)
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H264Payload<'a> {
    /// One NAL unit (types 1–23), header included.
    Single(&'a [u8]),
    /// An aggregation packet (type 24).
    StapA {
        /// The NAL units read before the end or the first bad size.
        nals: Vec<&'a [u8]>,
        /// A bad size or a leftover byte cut it short (malformed).
        truncated: bool,
    },
    /// A fragment of a NAL unit (type 28).
    FuA {
        /// The S bit.
        start: bool,
        /// The E bit.
        end: bool,
        /// The fragmented NAL unit's rebuilt header.
        nal_header: u8,
        /// The fragment's bytes.
        fragment: &'a [u8],
    },
    /// Empty, too short, or a type not allowed in packetization mode 1.
    Malformed,
}

impl H264Payload<'_> {
    /// The payload is malformed (including a truncated STAP-A).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            H264Payload::Malformed
                | H264Payload::StapA {
                    truncated: true,
                    ..
                }
        )
    }
}

/// Reads an H.264 RTP payload. Never panics.
pub fn parse_h264(payload: &[u8]) -> H264Payload<'_> {
    let Some((&hdr, body)) = payload.split_first() else {
        return H264Payload::Malformed;
    };
    match hdr & 0x1f {
        1..=23 => H264Payload::Single(payload),
        24 => {
            let mut nals = Vec::new();
            let mut rest = body;
            let mut truncated = false;
            while !rest.is_empty() {
                let Some(size) = rest
                    .get(..2)
                    .and_then(|s| s.try_into().ok())
                    .map(|s: [u8; 2]| usize::from(u16::from_be_bytes(s)))
                else {
                    truncated = true;
                    break;
                };
                match rest.get(2..2 + size) {
                    Some(nal) if size > 0 => {
                        nals.push(nal);
                        rest = rest.get(2 + size..).unwrap_or_default();
                    }
                    _ => {
                        truncated = true;
                        break;
                    }
                }
            }
            if nals.is_empty() {
                truncated = true;
            }
            H264Payload::StapA { nals, truncated }
        }
        28 => match body.split_first() {
            Some((&fu, fragment)) if !fragment.is_empty() => {
                let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
                if start && end {
                    return H264Payload::Malformed;
                }
                H264Payload::FuA {
                    start,
                    end,
                    nal_header: (hdr & 0xe0) | (fu & 0x1f),
                    fragment,
                }
            }
            _ => H264Payload::Malformed,
        },
        _ => H264Payload::Malformed,
    }
}

/// The NAL units of one frame, from [`depacketize`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Depacketized {
    /// Every NAL unit recovered whole, header included, in order.
    pub nals: Vec<Vec<u8>>,
    /// No fragment or payload was lost or malformed (see the [module
    /// documentation](self)); the frame may still miss whole packets.
    pub whole: bool,
}

/// Depacketizes one frame's packets, given as `(extended seq, payload)` in
/// increasing seq order, as the [module documentation](self) defines.
/// Never joins fragments across a missing seq; never panics.
pub fn depacketize(packets: &[(i64, &[u8])]) -> Depacketized {
    let mut out = Depacketized {
        nals: Vec::new(),
        whole: true,
    };
    // The open FU-A run: last seq, rebuilt header, bytes so far.
    let mut run: Option<(i64, u8, Vec<u8>)> = None;
    for &(seq, payload) in packets {
        let p = parse_h264(payload);
        if !matches!(p, H264Payload::FuA { start: false, .. }) && run.take().is_some() {
            out.whole = false; // a run cut short
        }
        match p {
            H264Payload::Single(nal) => out.nals.push(nal.to_vec()),
            H264Payload::StapA { nals, truncated } => {
                out.nals.extend(nals.into_iter().map(<[u8]>::to_vec));
                out.whole &= !truncated;
            }
            H264Payload::FuA {
                start: true,
                nal_header,
                fragment,
                ..
            } => {
                let mut nal = Vec::with_capacity(fragment.len() + 1);
                nal.push(nal_header);
                nal.extend_from_slice(fragment);
                run = Some((seq, nal_header, nal));
            }
            H264Payload::FuA {
                start: false,
                end,
                nal_header,
                fragment,
            } => match run.take() {
                Some((last, h, mut nal)) if last.checked_add(1) == Some(seq) && h == nal_header => {
                    nal.extend_from_slice(fragment);
                    if end {
                        out.nals.push(nal);
                    } else {
                        run = Some((seq, h, nal));
                    }
                }
                _ => out.whole = false, // no start before it: dropped
            },
            H264Payload::Malformed => out.whole = false,
        }
    }
    if run.is_some() {
        out.whole = false;
    }
    out
}

/// `floor(ticks × 10^9 / rate)`, saturated to `i64`.
fn ticks_to_ns(ticks: i64, rate: u32) -> i64 {
    let ns = (i128::from(ticks) * 1_000_000_000).div_euclid(i128::from(rate.max(1)));
    clamp_i64(ns)
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
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

/// A packet of the stream with its extended numbers.
struct Pkt<'a> {
    rx_ns: i64,
    p: RtpPacket<'a>,
    seq: i64,
    ts: i64,
    frame: Option<i64>,
}

/// Unwraps seq, timestamp and frame number of `pkts` (in arrival order) as
/// the [module documentation](self) defines.
fn unwrap_all<'a>(arrivals: Vec<(i64, RtpPacket<'a>)>) -> Vec<Pkt<'a>> {
    let mut out: Vec<Pkt<'a>> = Vec::with_capacity(arrivals.len());
    // Highest seq so far and its timestamp; frame of the highest tagged.
    let mut high: Option<(i64, i64)> = None;
    let mut high_tagged: Option<(i64, i64)> = None; // (seq, frame)
    let mut first: Option<(i64, i64)> = None; // (seq, ts) of the first packet
    let mut first_tagged: Option<(i64, i64)> = None; // (seq, frame)
    for (rx_ns, p) in arrivals {
        let tag = p
            .extension
            .and_then(|(profile, data)| wire::rtp_ext::parse(profile, data));
        let (seq, ts, frame) = match high {
            None => (
                i64::from(p.seq),
                i64::from(p.timestamp),
                tag.map(|t| i64::from(t.frame)),
            ),
            Some((h, ts_h)) => {
                let ts = unwrap_near(u64::from(p.timestamp), 32, ts_h);
                let frame = tag.map(|t| {
                    let r = high_tagged.map_or(i64::from(t.frame), |(_, f)| f);
                    unwrap_near(u64::from(t.frame), 32, r)
                });
                // The prediction: by frame number when tagged, else by timestamp.
                let by_frame = match (frame, high_tagged, first_tagged) {
                    (Some(f), Some((ht, fh)), Some((s0, f0))) if fh > f0 => Some((
                        ht,
                        ht.saturating_sub(s0) as f64 / fh.saturating_sub(f0) as f64
                            * f.saturating_sub(fh) as f64,
                    )),
                    _ => None,
                };
                let (base, advance) = by_frame.unwrap_or_else(|| match first {
                    Some((s0, t0)) if ts_h > t0 => (
                        h,
                        h.saturating_sub(s0) as f64 / ts_h.saturating_sub(t0) as f64
                            * ts.saturating_sub(ts_h) as f64,
                    ),
                    _ => (h, 0.0),
                });
                let advance = if advance.is_finite() {
                    advance.round().clamp(-1e15, 1e15) as i64
                } else {
                    0
                };
                let seq = unwrap_near(u64::from(p.seq), 16, base.saturating_add(advance));
                (seq, ts, frame)
            }
        };
        if first.is_none() {
            first = Some((seq, ts));
        }
        if let Some(f) = frame {
            if first_tagged.is_none() {
                first_tagged = Some((seq, f));
            }
            if high_tagged.is_none_or(|(hs, _)| seq > hs) {
                high_tagged = Some((seq, f));
            }
        }
        if high.is_none_or(|(h, _)| seq > h) {
            high = Some((seq, ts));
        }
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

/// Analyses the datagrams a receiver recorded. Every measure is defined in
/// the [module documentation](self).
pub fn analyze_rtp(arrivals: &[RtpArrival], opts: &RtpAnalysisOptions) -> RtpSummary {
    let rate = if opts.clock_rate == 0 {
        H264_CLOCK_RATE
    } else {
        opts.clock_rate
    };
    let delay = opts.playout_delay_ns.max(0);

    // Parse; pick the stream.
    let mut malformed = 0u64;
    let mut parsed: Vec<(i64, RtpPacket<'_>)> = Vec::with_capacity(arrivals.len());
    let mut per_ssrc: HashMap<u32, (u64, usize)> = HashMap::new(); // count, first index
    for a in arrivals {
        match parse_rtp(&a.bytes) {
            Some(p) => {
                let n = parsed.len();
                let e = per_ssrc.entry(p.ssrc).or_insert((0, n));
                e.0 += 1;
                parsed.push((a.rx_ns, p));
            }
            None => malformed += 1,
        }
    }
    let ssrc = opts.ssrc.or_else(|| {
        per_ssrc
            .iter()
            .max_by_key(|(_, &(count, first))| (count, std::cmp::Reverse(first)))
            .map(|(&s, _)| s)
    });
    let mut stream: Vec<(i64, RtpPacket<'_>)> = Vec::new();
    let mut foreign_ssrc = 0u64;
    for (rx, p) in parsed {
        if Some(p.ssrc) == ssrc {
            stream.push((rx, p));
        } else {
            foreign_ssrc += 1;
        }
    }
    stream.sort_by_key(|&(rx, _)| rx); // stable: ties keep input order
    let payload_type = stream.first().map(|(_, p)| p.payload_type);
    let packets = unwrap_all(stream);

    // First arrivals, duplicates, reordering.
    let mut first_of: HashMap<i64, usize> = HashMap::new();
    let mut firsts: Vec<usize> = Vec::new(); // indices into `packets`, arrival order
    let (mut duplicates, mut reordered) = (0u64, 0u64);
    let mut highest: Option<i64> = None;
    for (i, k) in packets.iter().enumerate() {
        if first_of.contains_key(&k.seq) {
            duplicates += 1;
            continue;
        }
        first_of.insert(k.seq, i);
        if highest.is_some_and(|h| k.seq < h) {
            reordered += 1;
        }
        highest = Some(highest.map_or(k.seq, |h| h.max(k.seq)));
        firsts.push(i);
    }
    let fa = |i: usize| packets.get(i);
    let first_arrivals: Vec<&Pkt<'_>> = firsts.iter().filter_map(|&i| fa(i)).collect();
    let received = first_arrivals.len() as u64;
    let seq_range = first_arrivals
        .iter()
        .map(|k| k.seq)
        .min()
        .zip(first_arrivals.iter().map(|k| k.seq).max());
    let expected = seq_range.map_or(0, |(lo, hi)| {
        u64::try_from(i128::from(hi) - i128::from(lo) + 1).unwrap_or(u64::MAX)
    });
    let malformed_payload = first_arrivals
        .iter()
        .filter(|k| parse_h264(k.p.payload).is_malformed())
        .count() as u64;

    // Gaps and jitter (arrival order).
    let mut gaps = Vec::new();
    let mut max_gap: Option<RtpGap> = None;
    for w in first_arrivals.windows(2) {
        let [a, b] = w else { continue };
        let len = b.rx_ns.saturating_sub(a.rx_ns);
        let gap = RtpGap {
            start_ns: a.rx_ns,
            end_ns: b.rx_ns,
            len_ms: ms(len),
            seq_before: a.seq,
            seq_after: b.seq,
        };
        if len > opts.gap_threshold_ns {
            gaps.push(gap.clone());
        }
        if max_gap
            .as_ref()
            .is_none_or(|m| len > m.end_ns.saturating_sub(m.start_ns))
        {
            max_gap = Some(gap);
        }
    }
    let ts_1 = packets.first().map_or(0, |k| k.ts);
    let mut jitter = Jitter::new();
    for k in &first_arrivals {
        jitter.push(ticks_to_ns(k.ts.saturating_sub(ts_1), rate), k.rx_ns);
    }

    // Frames.
    let mut by_frame: BTreeMap<(i64, Option<i64>), Vec<&Pkt<'_>>> = BTreeMap::new();
    for &k in &first_arrivals {
        by_frame.entry((k.ts, k.frame)).or_default().push(k);
    }
    let mut sorted_seqs: Vec<(i64, usize)> = first_of.iter().map(|(&s, &i)| (s, i)).collect();
    sorted_seqs.sort_unstable();
    let mut frames: Vec<FrameInfo> = Vec::with_capacity(by_frame.len());
    for ((ts, frame), mut pk) in by_frame {
        pk.sort_by_key(|k| k.seq);
        let (Some(lo), Some(hi)) = (pk.first(), pk.last()) else {
            continue;
        };
        let (first_seq, last_seq) = (lo.seq, hi.seq);
        let no_hole = i128::from(last_seq) - i128::from(first_seq) + 1 == pk.len() as i128;
        let ends = hi.p.marker;
        // The packet received just before this frame (by seq).
        let prev = sorted_seqs
            .partition_point(|&(s, _)| s < first_seq)
            .checked_sub(1)
            .and_then(|i| sorted_seqs.get(i))
            .and_then(|&(_, i)| fa(i));
        let starts = match prev {
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
        };
        let payloads: Vec<(i64, &[u8])> = pk.iter().map(|k| (k.seq, k.p.payload)).collect();
        let whole = depacketize(&payloads).whole;
        let complete = no_hole && ends && starts && whole;
        frames.push(FrameInfo {
            frame,
            ts,
            packets: pk.len() as u64,
            first_seq,
            last_seq,
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
        });
    }

    // Playout. Anchors in force, by timestamp: the first complete frame,
    // then every late frame (the player rebuffers at it).
    let anchor = frames
        .iter()
        .find(|f| f.status == FrameStatus::Complete)
        .map(|f| (f.last_rx_ns, f.ts));
    let mut anchors: Vec<(i64, i64)> = anchor.map(|(a, ts)| vec![(ts, a)]).unwrap_or_default();
    let due_at = |anchors: &[(i64, i64)], ts: i64| {
        anchors
            .iter()
            .rev()
            .find(|(t, _)| *t <= ts)
            .or_else(|| anchors.first())
            .map(|&(ts_a, a)| {
                a.saturating_add(ticks_to_ns(ts.saturating_sub(ts_a), rate))
                    .saturating_add(delay)
            })
    };
    let mut order: Vec<usize> = (0..frames.len()).collect();
    order.sort_by_key(|&i| frames.get(i).map(|f| f.ts));
    for i in order {
        let Some(f) = frames.get_mut(i) else { continue };
        f.due_ns = due_at(&anchors, f.ts);
        f.lateness_ns = f.due_ns.map(|d| f.last_rx_ns.saturating_sub(d));
        f.late = f.status == FrameStatus::Complete && f.lateness_ns.is_some_and(|l| l > 0);
        if f.late {
            anchors.push((f.ts, f.last_rx_ns));
        }
    }
    let due = |ts: i64| due_at(&anchors, ts);

    // Lost frames, placed by interpolation: (ts, frame) of each.
    let mut tagged: Vec<(i64, i64)> = frames
        .iter()
        .filter_map(|f| f.frame.map(|n| (n, f.ts)))
        .collect();
    tagged.sort_unstable();
    tagged.dedup_by_key(|&mut (n, _)| n);
    let mut frames_lost = 0u64;
    // Slots in frame order: (ts, frame, shown, frames, due under the
    // anchor before it for a late frame). The frames lost between two
    // tagged ones are one slot, placed at the first of them.
    let mut slots: Vec<Slot> = frames
        .iter()
        .map(|f| {
            let shown = f.status == FrameStatus::Complete;
            (f.ts, f.frame, shown, 1, f.due_ns.filter(|_| f.late))
        })
        .collect();
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
        slots.push((
            clamp_i64(ts),
            Some(a.saturating_add(1)),
            false,
            missing,
            None,
        ));
    }
    slots.sort_by_key(|&(ts, n, _, _, _)| (ts, n));

    // Freezes.
    let mut freezes: Vec<Freeze> = Vec::new();
    if let Some((_, ts_anchor)) = anchor {
        let mut last_shown: Option<i64> = None; // its due time
        let mut run: Option<(i64, u64)> = None; // due of first not shown, count
        for &(ts, _, shown, n, late_due) in slots.iter().filter(|s| s.0 >= ts_anchor) {
            let d = due(ts).unwrap_or_default();
            match (shown, last_shown) {
                (true, since) => {
                    // A late frame: the picture froze from when it was due.
                    let run_now = run.take().or(late_due.map(|due| (due, 0)));
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
                    r.1 = r.1.saturating_add(n);
                }
                (false, None) => {} // before the anchor is shown
            }
        }
    }

    // Frame gap.
    let mut done: Vec<i64> = frames
        .iter()
        .filter(|f| f.status == FrameStatus::Complete)
        .map(|f| f.last_rx_ns)
        .collect();
    done.sort_unstable();
    let max_frame_gap_ns = done
        .windows(2)
        .map(|w| match w {
            [a, b] => b.saturating_sub(*a),
            _ => 0,
        })
        .max()
        .unwrap_or(0);

    let count = |s: FrameStatus| frames.iter().filter(|f| f.status == s).count() as u64;
    RtpSummary {
        ssrc,
        payload_type,
        malformed,
        foreign_ssrc,
        packets: packets.len() as u64,
        received,
        duplicates,
        reordered,
        expected,
        lost: expected.saturating_sub(received),
        seq_range,
        malformed_payload,
        max_gap_ms: max_gap.as_ref().map_or(0.0, |g| g.len_ms),
        max_gap,
        gaps,
        jitter_ms: jitter.ns() / 1e6,
        frames_complete: count(FrameStatus::Complete),
        frames_incomplete: count(FrameStatus::Incomplete),
        frames_lost,
        frames_late: frames.iter().filter(|f| f.late).count() as u64,
        playout_delay_ms: ms(delay),
        freeze_count: freezes.len() as u64,
        freeze_total_ms: freezes.iter().map(|f| f.len_ms).sum(),
        freeze_longest_ms: freezes.iter().map(|f| f.len_ms).fold(0.0, f64::max),
        freezes,
        max_frame_gap_ms: ms(max_frame_gap_ns),
        frames,
    }
}

/// Builders of RTP H.264 packets with our frame tag, for tests (here and in
/// the harness): not a packetizer for real streams.
pub mod testing {
    use super::{ticks_to_ns, RtpArrival, H264_CLOCK_RATE};

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
            if nals.len() > 1 && nals.iter().map(|n| n.len() + 2).sum::<usize>() < self.max_payload
            {
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
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use proptest::prelude::*;

    const MS: i64 = 1_000_000;
    /// One frame at 30 fps, ns: floor(3000 × 10^9 / 90000).
    const FRAME_NS: i64 = 33_333_333;

    fn opts(delay_ms: i64) -> RtpAnalysisOptions {
        RtpAnalysisOptions {
            playout_delay_ns: delay_ms * MS,
            ..RtpAnalysisOptions::default()
        }
    }

    fn flat(frames: &[Vec<RtpArrival>]) -> Vec<RtpArrival> {
        frames.iter().flatten().cloned().collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn a_clean_stream_is_all_complete_with_no_loss_freeze_or_jitter() {
        let mut b = StreamBuilder::new(0xCAFE, 100);
        let frames = b.frames(60, 2500); // 2 s at 30 fps; P frames in 3 FU-As
        let pkts = flat(&frames);
        assert_eq!(frames[0].len(), 1 + 4); // STAP-A + 4 FU-A
        assert_eq!(frames[1].len(), 3);
        let s = analyze_rtp(&pkts, &opts(100));
        assert_eq!(s.ssrc, Some(0xCAFE));
        assert_eq!(s.payload_type, Some(96));
        assert_eq!(
            (s.packets, s.received, s.expected),
            (pkts.len() as u64, pkts.len() as u64, pkts.len() as u64)
        );
        assert_eq!(
            (
                s.lost,
                s.duplicates,
                s.reordered,
                s.malformed,
                s.foreign_ssrc,
                s.malformed_payload
            ),
            (0, 0, 0, 0, 0, 0)
        );
        assert_eq!(
            (
                s.frames_complete,
                s.frames_incomplete,
                s.frames_lost,
                s.frames_late
            ),
            (60, 0, 0, 0)
        );
        assert_eq!((s.freeze_count, s.freeze_total_ms), (0, 0.0));
        assert_eq!(s.jitter_ms, 0.0);
        assert!(close(s.max_gap_ms, 33.333334), "{}", s.max_gap_ms);
        assert!(
            close(s.max_frame_gap_ms, 33.333334),
            "{}",
            s.max_frame_gap_ms
        );
        assert!(s.gaps.is_empty());
        // Due times: each frame arrives exactly D before it is due.
        assert!(s.frames.iter().all(|f| f.lateness_ns == Some(-100 * MS)));
        assert_eq!(s.frames[1].frame, Some(1001));
        // The depacketizer gives back the NAL units that were sent.
        let f0: Vec<_> = frames[0]
            .iter()
            .map(|a| parse_rtp(&a.bytes).unwrap())
            .collect();
        let payloads: Vec<(i64, &[u8])> =
            f0.iter().map(|p| (i64::from(p.seq), p.payload)).collect();
        let d = depacketize(&payloads);
        assert!(d.whole);
        assert_eq!(d.nals, vec![nal(7, 12, 1), nal(8, 5, 2), nal(5, 4000, 3)]);
        // Round trip through JSON.
        let back: RtpSummary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn an_outage_of_300_ms_is_loss_a_gap_lost_frames_and_one_freeze() {
        let mut b = StreamBuilder::new(7, 1);
        let frames = b.frames(90, 2500);
        let t0 = b.start_rx_ns;
        let out = (t0 + 1000 * MS)..(t0 + 1300 * MS);
        let dropped_frames: Vec<usize> = (0..90)
            .filter(|&k| out.contains(&b.rx_of(k as u64)))
            .collect();
        let dropped_pkts: usize = dropped_frames.iter().map(|&k| frames[k].len()).sum();
        let pkts: Vec<RtpArrival> = flat(&frames)
            .into_iter()
            .filter(|a| !out.contains(&a.rx_ns))
            .collect();
        let (lo, hi) = (
            dropped_frames[0] as u64,
            *dropped_frames.last().unwrap() as u64,
        );
        assert_eq!((lo, hi), (30, 38)); // 9 frames, the IDR of frame 30 among them

        let s = analyze_rtp(&pkts, &opts(100));
        assert_eq!(s.lost, dropped_pkts as u64);
        assert_eq!(s.received + s.lost, s.expected);
        assert_eq!(s.frames_lost, 9);
        assert_eq!(
            (s.frames_complete, s.frames_incomplete, s.frames_late),
            (81, 0, 0)
        );
        let g = s.max_gap.clone().unwrap();
        assert_eq!((g.start_ns, g.end_ns), (b.rx_of(lo - 1), b.rx_of(hi + 1)));
        assert!((s.max_gap_ms - 333.333).abs() < 0.001, "{}", s.max_gap_ms);
        assert_eq!(s.gaps, vec![g.clone()]);
        assert_eq!(s.max_frame_gap_ms, s.max_gap_ms);
        // One freeze: from the due time of the first lost frame to that of
        // the first frame after the outage; the picture on screen dates from
        // the last frame before it, so the hold is exactly the gap, shifted
        // by D, and the freeze is one frame interval shorter.
        assert_eq!(s.freeze_count, 1);
        let f = &s.freezes[0];
        let d = 100 * MS;
        assert_eq!(
            (f.start_ns, f.end_ns, f.frames),
            (b.rx_of(lo) + d, b.rx_of(hi + 1) + d, 9)
        );
        assert_eq!(f.picture_since_ns, g.start_ns + d);
        assert_eq!(f.end_ns - f.picture_since_ns, g.end_ns - g.start_ns);
        assert!(f.start_ns - d < out.start + FRAME_NS && f.end_ns - d >= out.end);
        assert_eq!(
            (s.freeze_total_ms, s.freeze_longest_ms),
            (f.len_ms, f.len_ms)
        );
        assert!((f.len_ms - 300.0).abs() < 0.001, "{}", f.len_ms);
    }

    #[test]
    fn a_lost_fu_a_middle_fragment_loses_exactly_its_frame() {
        let mut b = StreamBuilder::new(7, 1);
        let mut frames = b.frames(60, 2500);
        assert_eq!(frames[10].len(), 3);
        frames[10].remove(1);
        let pkts = flat(&frames);
        for delay in [0, 5, 1000] {
            let s = analyze_rtp(&pkts, &opts(delay));
            assert_eq!(s.lost, 1);
            assert_eq!(
                (
                    s.frames_complete,
                    s.frames_incomplete,
                    s.frames_lost,
                    s.frames_late
                ),
                (59, 1, 0, 0)
            );
            let bad: Vec<_> = s
                .frames
                .iter()
                .filter(|f| f.status == FrameStatus::Incomplete)
                .collect();
            assert_eq!(bad.len(), 1);
            assert_eq!(bad[0].frame, Some(1010));
            // An incomplete frame is never shown, whatever D: a freeze of one
            // frame interval, from its due time to the next frame's.
            assert_eq!(s.freeze_count, 1);
            let f = &s.freezes[0];
            let d = delay * MS;
            assert_eq!(
                (f.start_ns, f.end_ns, f.frames),
                (b.rx_of(10) + d, b.rx_of(11) + d, 1)
            );
            assert!((f.len_ms - 33.333333).abs() < 1e-6, "{}", f.len_ms);
            // Packets kept flowing: no inter-arrival gap beyond a frame.
            assert!(close(s.max_gap_ms, 33.333334));
            assert!((s.max_frame_gap_ms - 66.666667).abs() < 1e-6);
        }
    }

    #[test]
    fn a_frame_whose_first_packet_is_lost_is_incomplete() {
        // Frame 30 is an IDR: STAP-A (SPS, PPS), then the IDR in 4 FU-As.
        let mut b = StreamBuilder::new(7, 1);
        let mut frames = b.frames(40, 2500);
        frames[30].remove(0);
        let s = analyze_rtp(&flat(&frames), &opts(100));
        assert_eq!((s.lost, s.frames_incomplete, s.freeze_count), (1, 1, 1));
        assert_eq!(
            s.frames
                .iter()
                .find(|f| f.status == FrameStatus::Incomplete)
                .and_then(|f| f.frame),
            Some(1030)
        );
        // Untagged, nothing says the lost packet was frame 30's rather
        // than a frame lost entirely: as documented, it counts as complete.
        b = StreamBuilder::new(7, 1);
        b.tagged = false;
        let mut frames = b.frames(40, 2500);
        frames[30].remove(0);
        let s = analyze_rtp(&flat(&frames), &opts(100));
        assert_eq!((s.lost, s.frames_incomplete, s.frames_complete), (1, 0, 40));
        // A lost marker packet leaves the frame without its end.
        b = StreamBuilder::new(7, 1);
        let mut frames = b.frames(40, 2500);
        frames[20].pop();
        let s = analyze_rtp(&flat(&frames), &opts(100));
        assert_eq!((s.lost, s.frames_incomplete, s.frames_complete), (1, 1, 39));
    }

    #[test]
    fn fragments_are_never_joined_across_a_loss() {
        let n = nal(5, 50, 9);
        let frags = fu_a(&n, 10);
        assert_eq!(frags.len(), 5);
        let all: Vec<(i64, &[u8])> = frags
            .iter()
            .enumerate()
            .map(|(i, f)| (i as i64, f.as_slice()))
            .collect();
        assert_eq!(
            depacketize(&all),
            Depacketized {
                nals: vec![n.clone()],
                whole: true
            }
        );
        // Middle missing: no NAL at all, not a shorter one.
        let mut holed = all.clone();
        holed.remove(2);
        assert_eq!(
            depacketize(&holed),
            Depacketized {
                nals: vec![],
                whole: false
            }
        );
        // Start or end missing.
        assert!(!depacketize(&all[1..]).whole);
        assert!(depacketize(&all[1..]).nals.is_empty());
        assert!(!depacketize(&all[..4]).whole);
        // Two runs interleaved by seq gaps: the second start begins afresh.
        let other = nal(1, 30, 8);
        let f2 = fu_a(&other, 10);
        let mut mixed: Vec<(i64, &[u8])> = vec![(0, frags[0].as_slice()), (1, frags[1].as_slice())];
        mixed.extend(
            f2.iter()
                .enumerate()
                .map(|(i, f)| (10 + i as i64, f.as_slice())),
        );
        let d = depacketize(&mixed);
        assert_eq!((d.nals, d.whole), (vec![other], false));
    }

    #[test]
    fn sequence_numbers_unwrap_across_65535() {
        let mut b = StreamBuilder::new(7, 65500);
        let pkts = flat(&b.frames(60, 2500));
        assert!(pkts.len() > 36);
        let s = analyze_rtp(&pkts, &opts(100));
        assert_eq!(s.seq_range, Some((65500, 65500 + pkts.len() as i64 - 1)));
        assert_eq!((s.lost, s.reordered, s.frames_complete), (0, 0, 60));
        // A loss right at the wrap.
        let holed: Vec<RtpArrival> = pkts
            .iter()
            .filter(|a| parse_rtp(&a.bytes).map(|p| p.seq) != Some(0))
            .cloned()
            .collect();
        let s = analyze_rtp(&holed, &opts(100));
        assert_eq!((s.lost, s.frames_incomplete), (1, 1));
    }

    /// 10 packets per frame (a 950-byte P slice in 100-byte fragments).
    fn ten_packet_frames(b: &mut StreamBuilder, n: u64) -> Vec<Vec<RtpArrival>> {
        (0..n)
            .map(|_| {
                let p = b.packetize(&[nal(1, 951, 4)]);
                b.frame(&p)
            })
            .collect()
    }

    #[test]
    fn an_outage_longer_than_65536_packets_is_counted_in_full() {
        for tagged in [true, false] {
            let mut b = StreamBuilder::new(7, 65000);
            b.tagged = tagged;
            b.max_payload = 102;
            let before = ten_packet_frames(&mut b, 60);
            assert!(before.iter().all(|f| f.len() == 10));
            let gone = ten_packet_frames(&mut b, 7000); // 70000 packets, 233 s
            drop(gone);
            let after = ten_packet_frames(&mut b, 60);
            let mut pkts = flat(&before);
            pkts.extend(flat(&after));
            let s = analyze_rtp(&pkts, &opts(100));
            assert_eq!(s.lost, 70_000, "tagged {tagged}");
            assert_eq!(s.received, 1200);
            assert_eq!(s.seq_range, Some((65000, 65000 + 71_200 - 1)));
            assert_eq!(s.frames_complete, 120);
            assert_eq!(s.frames_lost, if tagged { 7000 } else { 0 });
            // Tagged, the lost frames are placed and the freeze spans them.
            let want = u64::from(tagged);
            assert_eq!(s.freeze_count, want);
            if tagged {
                assert_eq!(s.freezes[0].frames, 7000);
                assert!((s.freeze_total_ms - 7000.0 * 1000.0 / 30.0).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn reordering_and_duplicates_are_counted() {
        let mut b = StreamBuilder::new(7, 1);
        let mut pkts = flat(&b.frames(30, 2500));
        // Swap the arrival times of packets 40 and 41 (same frame or not),
        // and deliver packet 50 twice.
        let (r40, r41) = (pkts[40].rx_ns, pkts[41].rx_ns);
        pkts[40].rx_ns = r41 + 1;
        pkts[41].rx_ns = r40;
        let dup = RtpArrival {
            rx_ns: pkts[50].rx_ns + 1,
            ..pkts[50].clone()
        };
        pkts.push(dup);
        let s = analyze_rtp(&pkts, &opts(100));
        assert_eq!((s.reordered, s.duplicates, s.lost), (1, 1, 0));
        assert_eq!(s.packets, s.received + 1);
        assert_eq!(s.frames_complete, 30);
    }

    #[test]
    fn malformed_packets_are_counted_and_survived() {
        let mut b = StreamBuilder::new(7, 1);
        let mut frames = b.frames(10, 2500);
        // Frame 3: a STAP-A whose second size points past the end.
        let spec = |seq, marker| PacketSpec {
            ssrc: 7,
            payload_type: 96,
            seq,
            timestamp: b.ts_of(3),
            marker,
            tag: Some((1003, 0)),
        };
        let first_seq = parse_rtp(&frames[3][0].bytes).unwrap().seq;
        let mut stap = stap_a(&[nal(1, 10, 1)]);
        stap.extend_from_slice(&[0x01, 0x00, 0x61, 0x62]); // 256 bytes claimed, 2 present
        let rx = frames[3][0].rx_ns;
        frames[3] = vec![RtpArrival {
            rx_ns: rx,
            kernel_ts: true,
            bytes: rtp_packet(&spec(first_seq, false), &stap),
        }];
        // ... then a truncated FU-A: one byte, then a bare FU header.
        frames[3].push(RtpArrival {
            rx_ns: rx,
            kernel_ts: true,
            bytes: rtp_packet(&spec(first_seq + 1, false), &[0x7c]),
        });
        frames[3].push(RtpArrival {
            rx_ns: rx,
            kernel_ts: true,
            bytes: rtp_packet(&spec(first_seq + 2, true), &[0x7c, 0x81]),
        });
        // Frame 4 starts where frame 3's original packets ended; renumber.
        let mut pkts = flat(&frames);
        // Broken RTP: short, wrong version, CSRCs, extension and padding
        // past the end.
        let good = rtp_packet(&spec(60000, false), &[0x61, 1, 2]);
        let mut bad = vec![good[..11].to_vec(), vec![]];
        let mut v1 = good.clone();
        v1[0] = 0x40;
        bad.push(v1);
        let mut cc = good.clone();
        cc[0] |= 0x0f;
        bad.push(cc);
        let mut ext = good.clone();
        ext[15] = 0xff; // extension length 0x00ff words
        bad.push(ext);
        let mut pad = good.clone();
        pad[0] |= 0x20;
        *pad.last_mut().unwrap() = 0; // padding count 0
        bad.push(pad.clone());
        *pad.last_mut().unwrap() = 200; // longer than the packet
        bad.push(pad);
        for b in bad {
            assert!(parse_rtp(&b).is_none(), "{b:?}");
            pkts.push(RtpArrival {
                rx_ns: rx,
                kernel_ts: false,
                bytes: b,
            });
        }
        let s = analyze_rtp(&pkts, &opts(100));
        assert_eq!(s.malformed, 7);
        assert_eq!(s.malformed_payload, 3);
        // Frame 3 had 3 packets and still has 3: no loss, but incomplete.
        assert_eq!(s.lost, 0);
        assert_eq!((s.frames_complete, s.frames_incomplete), (9, 1));
        assert_eq!(s.freeze_count, 1);
        match parse_h264(&stap) {
            H264Payload::StapA { nals, truncated } => {
                assert_eq!((nals.len(), truncated), (1, true))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_h264(&[0x7c]), H264Payload::Malformed);
        assert_eq!(parse_h264(&[0x7c, 0x81]), H264Payload::Malformed);
        assert_eq!(parse_h264(&[0x7c, 0xc1, 1]), H264Payload::Malformed); // S and E
        assert_eq!(parse_h264(&[]), H264Payload::Malformed);
        assert_eq!(
            parse_h264(&[0x78, 0, 1]),
            H264Payload::StapA {
                nals: vec![],
                truncated: true
            }
        );
        // Padding removed from the payload when valid.
        let mut padded = rtp_packet(&spec(1, false), &[0x61, 1, 2]);
        padded[0] |= 0x20;
        padded.extend_from_slice(&[0, 0, 3]);
        assert_eq!(parse_rtp(&padded).unwrap().payload, &[0x61, 1, 2]);
    }

    #[test]
    fn other_ssrcs_are_foreign_unless_chosen() {
        let mut main = StreamBuilder::new(1, 1);
        let mut other = StreamBuilder::new(2, 5000);
        let mut pkts = flat(&main.frames(30, 2500));
        pkts.extend(flat(&other.frames(5, 100)));
        let s = analyze_rtp(&pkts, &opts(100));
        assert_eq!(s.ssrc, Some(1));
        assert_eq!(s.foreign_ssrc, 9); // an IDR in a STAP-A and 4 FU-As, 4 P frames
        assert_eq!((s.lost, s.frames_complete), (0, 30));
        let s = analyze_rtp(
            &pkts,
            &RtpAnalysisOptions {
                ssrc: Some(2),
                ..opts(100)
            },
        );
        assert_eq!((s.ssrc, s.frames_complete, s.lost), (Some(2), 5, 0));
        let s = analyze_rtp(
            &pkts,
            &RtpAnalysisOptions {
                ssrc: Some(3),
                ..opts(100)
            },
        );
        assert_eq!(
            (s.packets, s.foreign_ssrc, s.max_gap),
            (0, pkts.len() as u64, None)
        );
        assert_eq!(s.frames_complete, 0);
    }

    #[test]
    fn jitter_is_rfc3550_over_rtp_timestamps() {
        let mut b = StreamBuilder::new(7, 1);
        let mut frames = b.frames(3, 500); // one packet per P frame
                                           // Frame 2 arrives 1.6 ms late: D = +1.6 ms, J = 0.1 ms.
        for a in &mut frames[2] {
            a.rx_ns += 1_600_000;
        }
        let s = analyze_rtp(&flat(&frames[1..]), &opts(100));
        assert!(close(s.jitter_ms, 0.1), "{}", s.jitter_ms);
        // Frame 2 is then late with D = 1 ms, not with D = 2 ms.
        let s = analyze_rtp(&flat(&frames[1..]), &opts(1));
        // The player rebuffers at it: a freeze from when it was due to its
        // arrival + D, 0.6 + 1 ms.
        assert_eq!((s.frames_late, s.freeze_count), (1, 1));
        assert_eq!(s.frames[1].lateness_ns, Some(600_000));
        assert!(close(s.freeze_total_ms, 1.6), "{}", s.freeze_total_ms);
        assert_eq!(s.freezes[0].frames, 0);
        assert_eq!(analyze_rtp(&flat(&frames[1..]), &opts(2)).frames_late, 0);
    }

    #[test]
    fn unwrapping_picks_the_nearest_value() {
        assert_eq!(unwrap_near(0, 16, 65535), 65536);
        assert_eq!(unwrap_near(65535, 16, 65536), 65535);
        assert_eq!(unwrap_near(5, 16, 5 + 32768), 5); // a tie goes back
        assert_eq!(unwrap_near(5, 16, 6 + 32768), 5 + 65536);
        assert_eq!(unwrap_near(u64::from(u32::MAX), 32, 0), -1);
        assert_eq!(ticks_to_ns(3000, 90_000), FRAME_NS);
        assert_eq!(ticks_to_ns(-1, 90_000), -11112);
    }

    #[test]
    fn a_hostile_stream_driving_numbers_to_the_limits_does_not_panic() {
        // Frame numbers and seqs leap as far forward as unwrapping allows,
        // so predictions grow without bound; nothing may overflow.
        let pkts: Vec<RtpArrival> = (0..20_000u32)
            .map(|i| RtpArrival {
                rx_ns: i64::from(i),
                kernel_ts: false,
                bytes: rtp_packet(
                    &PacketSpec {
                        ssrc: 1,
                        payload_type: 96,
                        seq: (i.wrapping_mul(32767) & 0xffff) as u16,
                        timestamp: i.wrapping_mul(0x7fff_ffff),
                        marker: true,
                        tag: Some((i.wrapping_mul(0x7fff_ffff), 0)),
                    },
                    &[0x61, 0],
                ),
            })
            .collect();
        let s = analyze_rtp(&pkts, &opts(100));
        assert_eq!(s.received + s.lost, s.expected);
        assert_eq!(s.packets, 20_000);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            dgrams in proptest::collection::vec(
                (any::<i64>(), proptest::collection::vec(any::<u8>(), 0..80)), 0..40),
            ssrc in proptest::option::of(any::<u32>()),
            delay in any::<i64>(), thr in any::<i64>(), rate in any::<u32>(),
        ) {
            let pkts: Vec<RtpArrival> = dgrams.into_iter().map(|(rx_ns, bytes)| RtpArrival { rx_ns, kernel_ts: false, bytes }).collect();
            let o = RtpAnalysisOptions { ssrc, gap_threshold_ns: thr, playout_delay_ns: delay, clock_rate: rate };
            let s = analyze_rtp(&pkts, &o);
            prop_assert_eq!(s.received + s.lost, s.expected);
            prop_assert_eq!(s.malformed + s.foreign_ssrc + s.packets, pkts.len() as u64);
        }

        #[test]
        fn valid_rtp_headers_with_garbage_payloads_never_panic(
            payloads in proptest::collection::vec(
                (any::<u16>(), any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..60),
        ) {
            let pkts: Vec<RtpArrival> = payloads.iter().enumerate().map(|(i, (seq, ts, m, p))| RtpArrival {
                rx_ns: i as i64,
                kernel_ts: true,
                bytes: rtp_packet(&PacketSpec { ssrc: 1, payload_type: 96, seq: *seq, timestamp: *ts, marker: *m, tag: Some((*ts, 0)) }, p),
            }).collect();
            let s = analyze_rtp(&pkts, &opts(100));
            prop_assert_eq!(s.received + s.lost, s.expected);
        }

        #[test]
        fn drop_reorder_duplicate_keeps_the_books(
            seq0 in any::<u16>(),
            tagged in any::<bool>(),
            fates in proptest::collection::vec(0u8..8, 200),
        ) {
            let mut b = StreamBuilder::new(9, seq0);
            b.tagged = tagged;
            let sent = flat(&b.frames(60, 2500));
            // Per packet: 0 drop, 1 duplicate, 2 move 3 ms later, else keep.
            let mut got = Vec::new();
            let mut kept = Vec::new();
            for (i, a) in sent.iter().enumerate() {
                match fates.get(i % fates.len()).copied().unwrap_or(7) {
                    0 => continue,
                    1 => got.extend([a.clone(), a.clone()]),
                    2 => got.push(RtpArrival { rx_ns: a.rx_ns + 3 * MS, ..a.clone() }),
                    _ => got.push(a.clone()),
                }
                kept.push(i);
            }
            let s = analyze_rtp(&got, &opts(100));
            prop_assert_eq!(s.received + s.lost, s.expected);
            prop_assert_eq!(s.received, kept.len() as u64);
            if let (Some(&lo), Some(&hi)) = (kept.first(), kept.last()) {
                // Exactly the packets dropped between the first and last kept.
                prop_assert_eq!(s.lost, (hi - lo + 1 - kept.len()) as u64);
                prop_assert_eq!(s.seq_range.map(|(a, z)| z - a), Some((hi - lo) as i64));
            }
            prop_assert_eq!(s.packets, got.len() as u64);
            prop_assert!(s.frames_complete + s.frames_incomplete <= 60);
        }
    }
}
