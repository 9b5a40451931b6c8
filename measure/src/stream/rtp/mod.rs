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
//!   ([`crate::probe::jitter`]) over the first arrivals in arrival order, with
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
//!
//! # Layout
//! [`analyze_rtp`] is a pipeline, one submodule per step: `select` (parse
//! the datagrams, pick the stream), `extended` (unwrap the numbers),
//! `sequence` (first arrivals, duplicates, reordering, loss), `timing`
//! (gaps, jitter), `frames` (frames and their completeness), `playout`
//! (due times, lateness), `freezes` (lost frames placed, the freeze walk).
//! The readers it uses are public: `header` ([`parse_rtp`]), `h264`
//! ([`parse_h264`]) and `depacketize` ([`depacketize`]).

use serde::{Deserialize, Serialize};

mod depacketize;
mod extended;
mod frames;
mod freezes;
mod h264;
mod header;
mod playout;
mod select;
mod sequence;
pub mod testing;
#[cfg(test)]
mod tests;
mod timing;
mod units;

pub use depacketize::{depacketize, Depacketized};
pub use h264::{parse_h264, H264Payload};
pub use header::{parse_rtp, RtpPacket};

use units::ms;

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

/// Analyses the datagrams a receiver recorded. Every measure is defined in
/// the [module documentation](self).
pub fn analyze_rtp(arrivals: &[RtpArrival], opts: &RtpAnalysisOptions) -> RtpSummary {
    let rate = clock_rate(opts);
    let delay = opts.playout_delay_ns.max(0);
    let selected = select::select_stream(arrivals, opts.ssrc);
    let packets = extended::unwrap_all(selected.stream);
    let first = sequence::first_arrivals(&packets);
    let books = sequence::seq_books(&first.list);
    let ts_1 = packets.first().map_or(0, |k| k.ts);
    let timing = timing::measure(&first.list, ts_1, opts.gap_threshold_ns, rate);
    let shown = frame_measures(&first, rate, delay);
    let frames = shown.frames;
    let count = |s: FrameStatus| frames.iter().filter(|f| f.status == s).count() as u64;
    RtpSummary {
        ssrc: selected.ssrc,
        payload_type: selected.payload_type,
        malformed: selected.malformed,
        foreign_ssrc: selected.foreign_ssrc,
        packets: packets.len() as u64,
        received: books.received,
        duplicates: first.duplicates,
        reordered: first.reordered,
        expected: books.expected,
        lost: books.expected.saturating_sub(books.received),
        seq_range: books.seq_range,
        malformed_payload: books.malformed_payload,
        max_gap_ms: timing.max_gap.as_ref().map_or(0.0, |g| g.len_ms),
        max_gap: timing.max_gap,
        gaps: timing.gaps,
        jitter_ms: timing.jitter_ms,
        frames_complete: count(FrameStatus::Complete),
        frames_incomplete: count(FrameStatus::Incomplete),
        frames_lost: shown.frames_lost,
        frames_late: frames.iter().filter(|f| f.late).count() as u64,
        playout_delay_ms: ms(delay),
        freeze_count: shown.freezes.len() as u64,
        freeze_total_ms: shown.freezes.iter().map(|f| f.len_ms).sum(),
        freeze_longest_ms: shown.freezes.iter().map(|f| f.len_ms).fold(0.0, f64::max),
        freezes: shown.freezes,
        max_frame_gap_ms: ms(shown.max_frame_gap_ns),
        frames,
    }
}

/// The options' clock rate, 0 taken as the H.264 clock.
fn clock_rate(opts: &RtpAnalysisOptions) -> u32 {
    if opts.clock_rate == 0 {
        H264_CLOCK_RATE
    } else {
        opts.clock_rate
    }
}

/// What the frames of the stream gave under the playout model.
struct FrameMeasures {
    /// Every frame that arrived at least in part, due times set.
    frames: Vec<FrameInfo>,
    /// Frames none of whose packets arrived.
    frames_lost: u64,
    /// Every freeze, in time order.
    freezes: Vec<Freeze>,
    /// Largest interval between complete frames' last arrivals, ns.
    max_frame_gap_ns: i64,
}

/// Frames assembled, scheduled by the jitter buffer and walked for
/// freezes, as the [module documentation](self) defines.
fn frame_measures(first: &sequence::FirstArrivals<'_, '_>, rate: u32, delay: i64) -> FrameMeasures {
    let mut frames = frames::assemble(first);
    let playout = playout::schedule(&mut frames, rate, delay);
    let (frames_lost, slots) = freezes::frame_slots(&frames);
    let freezes = freezes::freezes(&slots, &playout);
    let max_frame_gap_ns = frames::max_frame_gap_ns(&frames);
    FrameMeasures {
        frames,
        frames_lost,
        freezes,
        max_frame_gap_ns,
    }
}
