//! The `rtp` workload: streams an uploaded clip ([`wire::clip`]) to a
//! client over UDP as H.264 RTP (RFC 6184), in real time, looping.
//!
//! **Packets.** Each access unit's NAL units go out in decoding order: a NAL
//! unit of at most `mtu` bytes as a single NAL unit packet, a larger one as
//! FU-A fragments of at most `mtu` bytes of RTP payload ([`packetize`]; no
//! STAP-A aggregation). The RTP header and its serialization are the `rtp`
//! crate's (webrtc-rs): version 2, no padding, no CSRC, the spec's payload
//! type and fixed `ssrc`, and the RFC 8285 one-byte header extension
//! (`0xBEDE`) carrying our frame tag ([`wire::rtp_ext`]) on every packet,
//! byte for byte the block of [`wire::rtp_ext::encode`].
//!
//! - **Sequence number**: +1 per packet, wrapping; the first is
//!   pseudo-random (a hash of the SSRC and the guest's clock at start), as
//!   RFC 3550 asks, so receivers must not assume it starts at 0.
//! - **Timestamp**: 90 kHz, the access unit's `pts` plus `k` × the clip's
//!   duration in loop `k` (from 0), where the duration is the number of
//!   access units × the frame interval in ticks; no random offset, so
//!   timestamps map back to the clip's `pts` (modulo 2^32).
//! - **Marker bit**: on the last packet of each access unit.
//! - **Frame tag**: `frame` = the count of frames sent before this one
//!   (loop `k`, unit `i` of `n`: `k × n + i`, wrapping at 2^32); `send_ns` =
//!   the guest's CLOCK_REALTIME read just before the frame's first packet
//!   is handed to the socket (all packets of a frame carry the same value).
//!
//! **Pacing.** On an absolute schedule: frame `n` (counted across loops) is
//! due at start + `n × fps_den / fps_num` s; when it is due its packets are
//! sent back to back. A frame whose first packet leaves more than
//! [`LATE_AFTER`] after its due time counts as late; late frames are sent at
//! once, and the schedule never shifts, so a stall is caught up with a burst
//! (the client sees what a real-time sender would send).
//!
//! **Socket.** An unconnected UDP socket (so an ICMP port unreachable from a
//! receiver that is not up yet does not make later sends fail); a send
//! that fails is counted in `send_errors` and skipped.
//!
//! **Report.** `pages_written` is reused for the packets sent (as are
//! `packets_sent`); `per_second_mib_s[i]` is the UDP payload bytes (RTP
//! header and payload) of the frames sent in [start + i s, start +
//! (i + 1) s) in MiB, whole seconds only; `achieved_mib_s` the mean;
//! `bytes_sent`, `frames_sent`, `late_frames`, `loops` (complete passes)
//! and `send_errors` as named.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtp::header::{Extension, Header};
use rtp::packet::Packet;
use webrtc_util::marshal::{Marshal, MarshalSize};
use wire::clip::Clip;
use wire::clock::realtime_ns;
use wire::control::{WorkloadReport, WorkloadSpec};

use super::shared::{count_second, panic_text, rates, uploaded, WorkloadError};

/// A frame whose first packet leaves more than this after its due time is
/// counted as late.
pub const LATE_AFTER: Duration = Duration::from_millis(5);
/// Smallest accepted `mtu` (RTP payload bytes).
pub const MIN_MTU: usize = 64;
/// Largest accepted `mtu`: a UDP datagram's payload over IPv4 (65,507
/// bytes) less the RTP header with our extension (12 + 20 bytes).
pub const MAX_MTU: usize = 65_507 - 12 - wire::rtp_ext::BLOCK_LEN;
/// Longest single sleep, so that a stop is noticed quickly.
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// FU-A's NAL unit type (RFC 6184 section 5.8).
pub const FU_A: u8 = 28;
/// FU header bit: first fragment.
pub const FU_START: u8 = 0x80;
/// FU header bit: last fragment.
pub const FU_END: u8 = 0x40;

/// What an `rtp` workload needs, checked.
#[derive(Debug, Clone)]
pub struct RtpParams {
    /// The parsed clip.
    pub clip: Arc<Clip>,
    /// Where to send.
    pub dest: SocketAddr,
    /// Synchronization source.
    pub ssrc: u32,
    /// Largest RTP payload, bytes.
    pub mtu: usize,
    /// RTP payload type.
    pub payload_type: u8,
}

impl RtpParams {
    /// Checks an `rtp` spec against the uploaded file `file` (`None`: not
    /// uploaded), naming the field or the clip's parse error at fault.
    pub fn new(spec: &WorkloadSpec, file: Option<&Bytes>) -> Result<Self, WorkloadError> {
        let WorkloadSpec::Rtp {
            clip,
            dest,
            ssrc,
            mtu,
            payload_type,
        } = spec
        else {
            return Err(WorkloadError::Invalid("not an rtp workload".into()));
        };
        let bytes = uploaded(file, "clip", clip)?;
        let parsed = Clip::decode(bytes)
            .map_err(|e| WorkloadError::Invalid(format!("clip {clip:?} is not a clip: {e}")))?;
        if parsed.units.is_empty() {
            return Err(WorkloadError::Invalid(format!(
                "clip {clip:?} has no access units"
            )));
        }
        if !(MIN_MTU..=MAX_MTU).contains(mtu) {
            return Err(WorkloadError::Invalid(format!(
                "mtu {mtu} is out of range: use {MIN_MTU} to {MAX_MTU}"
            )));
        }
        if *payload_type > 127 {
            return Err(WorkloadError::Invalid(format!(
                "payload_type {payload_type} is out of range: use 0 to 127"
            )));
        }
        if dest.port() == 0 || dest.ip().is_unspecified() {
            return Err(WorkloadError::Invalid(format!(
                "dest {dest} is not a destination"
            )));
        }
        Ok(Self {
            clip: Arc::new(parsed),
            dest: *dest,
            ssrc: *ssrc,
            mtu: *mtu,
            payload_type: *payload_type,
        })
    }
}

/// The RTP payloads of one NAL unit (RFC 6184), each at most `mtu` bytes:
/// the NAL unit itself as a single NAL unit packet when it fits, else FU-A
/// fragments. An empty NAL unit gives nothing.
///
/// FU-A: the FU indicator keeps the NAL header's F and NRI bits with type
/// 28; the FU header has S on the first fragment, E on the last, R = 0 and
/// the NAL's type; the fragments carry the NAL unit without its header
/// byte, so their concatenation after that byte is the NAL unit.
///
/// Written here rather than taken from the `rtp` crate's
/// `H264Payloader` (0.17), which does things a test stream must not: it
/// holds SPS and PPS back and sends them as a STAP-A before the next NAL
/// unit (and drops them silently when that STAP-A exceeds the MTU); it
/// drops access unit delimiters and filler data; it scans its input for
/// Annex B start codes, so a NAL unit containing `00 00 01` would be split;
/// and it clears the F bit in the FU indicator. Our packets must carry
/// exactly the clip's NAL units, one frame's packets together, so that the
/// receiver's frame accounting matches what was sent.
pub fn packetize(nal: &[u8], mtu: usize, out: &mut Vec<Bytes>) {
    let Some((&head, body)) = nal.split_first() else {
        return;
    };
    if nal.len() <= mtu {
        out.push(Bytes::copy_from_slice(nal));
        return;
    }
    let indicator = (head & 0xE0) | FU_A;
    let chunk = mtu.saturating_sub(2).max(1);
    let count = body.len().div_ceil(chunk);
    for (i, part) in body.chunks(chunk).enumerate() {
        let mut fu = head & 0x1F;
        if i == 0 {
            fu |= FU_START;
        }
        if i + 1 == count {
            fu |= FU_END;
        }
        let mut p = Vec::with_capacity(2 + part.len());
        p.push(indicator);
        p.push(fu);
        p.extend_from_slice(part);
        out.push(Bytes::from(p));
    }
}

/// One serialized RTP packet: the `rtp` crate's [`Header`] with our frame
/// tag as an RFC 8285 one-byte extension element, then `payload`.
pub fn serialize(
    header: &RtpFields,
    marker: bool,
    tag: wire::rtp_ext::FrameTag,
    payload: Bytes,
) -> Result<Bytes, String> {
    let block = wire::rtp_ext::encode(tag.frame, tag.send_ns);
    // The element's data: after the 4-byte extension header and the
    // element's one-byte header.
    let data = Bytes::copy_from_slice(&block[5..5 + wire::rtp_ext::ELEMENT_LEN]);
    let packet = Packet {
        header: Header {
            version: 2,
            padding: false,
            extension: true,
            marker,
            payload_type: header.payload_type,
            sequence_number: header.sequence_number,
            timestamp: header.timestamp,
            ssrc: header.ssrc,
            csrc: Vec::new(),
            extension_profile: wire::rtp_ext::PROFILE_ONE_BYTE,
            extensions: vec![Extension {
                id: wire::rtp_ext::ELEMENT_ID,
                payload: data,
            }],
            extensions_padding: 0,
        },
        payload,
    };
    let mut buf = vec![0u8; packet.marshal_size()];
    let n = packet.marshal_to(&mut buf).map_err(|e| e.to_string())?;
    buf.truncate(n);
    Ok(Bytes::from(buf))
}

/// The per-packet header fields [`serialize`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpFields {
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// 90 kHz timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
}

#[derive(Debug, Default)]
struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    frames: AtomicU64,
    late: AtomicU64,
    loops: AtomicU64,
    send_errors: AtomicU64,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    counters: Counters,
    /// Bytes sent in each whole second since start.
    seconds: Mutex<Vec<u64>>,
    /// A failure that ended the sender.
    failure: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running (or stopped) `rtp` workload.
#[derive(Debug)]
pub struct RtpWorkload {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    start: Instant,
    started_realtime_ns: i64,
    ended: Option<Instant>,
}

/// A 64-bit mix (splitmix64's finalizer).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl RtpWorkload {
    /// Opens the socket and starts the sender thread; the first frame is
    /// due at once.
    pub fn start(name: &str, params: RtpParams) -> Result<Self, WorkloadError> {
        let bind: SocketAddr = if params.dest.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let socket = UdpSocket::bind(bind)
            .map_err(|e| WorkloadError::Thread(format!("cannot open a UDP socket: {e}")))?;
        let shared = Arc::new(Shared::default());
        let start = Instant::now();
        let started_realtime_ns = realtime_ns();
        let first_seq = (mix(u64::from(params.ssrc) ^ started_realtime_ns as u64) & 0xFFFF) as u16;
        let thread = std::thread::Builder::new()
            .name(format!("rtp-{name}"))
            .spawn({
                let shared = shared.clone();
                move || {
                    if let Err(e) = send_loop(&socket, &params, &shared, start, first_seq) {
                        *lock(&shared.failure) = Some(e);
                    }
                }
            })
            .map_err(|e| WorkloadError::Thread(e.to_string()))?;
        Ok(Self {
            shared,
            thread: Some(thread),
            start,
            started_realtime_ns,
            ended: None,
        })
    }

    /// Whether the sender thread still runs.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the sender and waits for it; returns the final report.
    /// Calling it again returns the same report. Blocks.
    pub fn stop(&mut self, name: &str) -> WorkloadReport {
        if let Some(t) = self.thread.take() {
            self.shared.stop.store(true, Ordering::Relaxed);
            self.ended = Some(Instant::now());
            if let Err(p) = t.join() {
                lock(&self.shared.failure).get_or_insert(panic_text(&p));
            }
        }
        self.report(name)
    }

    /// What the workload has done so far.
    pub fn report(&self, name: &str) -> WorkloadReport {
        let c = &self.shared.counters;
        let end = self.ended.unwrap_or_else(Instant::now);
        let elapsed = end.saturating_duration_since(self.start);
        let failure = lock(&self.shared.failure).clone();
        let (state, error) = match (failure, &self.thread) {
            (Some(f), _) => ("failed", Some(f)),
            (None, None) => ("stopped", None),
            (None, Some(t)) if !t.is_finished() => ("running", None),
            (None, Some(_)) => ("failed", Some("the sender thread ended".to_string())),
        };
        let bytes = c.bytes.load(Ordering::Relaxed);
        let packets = c.packets.load(Ordering::Relaxed);
        let (per_second_mib_s, achieved_mib_s) = rates(&lock(&self.shared.seconds), elapsed, bytes);
        WorkloadReport {
            name: name.to_string(),
            state: state.into(),
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            pages_written: packets,
            achieved_mib_s,
            per_second_mib_s,
            error,
            started_realtime_ns: self.started_realtime_ns,
            packets_sent: Some(packets),
            bytes_sent: Some(bytes),
            frames_sent: Some(c.frames.load(Ordering::Relaxed)),
            late_frames: Some(c.late.load(Ordering::Relaxed)),
            loops: Some(c.loops.load(Ordering::Relaxed)),
            send_errors: Some(c.send_errors.load(Ordering::Relaxed)),
            ..WorkloadReport::default()
        }
    }
}

/// Sleeps until `due` or until `stop` is set; returns false on stop.
fn sleep_until(due: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(MAX_SLEEP));
    }
}

fn send_loop(
    socket: &UdpSocket,
    p: &RtpParams,
    shared: &Shared,
    start: Instant,
    first_seq: u16,
) -> Result<(), String> {
    let clip = &p.clip;
    let n_units = clip.units.len() as u64;
    let frame_ticks = clip.frame_ticks();
    let clip_ticks = n_units.wrapping_mul(frame_ticks);
    let (num, den) = (u128::from(clip.fps_num), u128::from(clip.fps_den));
    let c = &shared.counters;
    let mut seq = first_seq;
    let mut payloads = Vec::new();
    let mut frame: u64 = 0;
    loop {
        let due = start
            + Duration::from_nanos(
                u64::try_from(u128::from(frame) * 1_000_000_000 * den / num)
                    .map_err(|_| "the schedule ran past u64 nanoseconds".to_string())?,
            );
        if !sleep_until(due, &shared.stop) {
            return Ok(());
        }
        let k = frame / n_units;
        let unit = &clip.units[(frame % n_units) as usize];
        payloads.clear();
        for nal in &unit.nals {
            packetize(nal, p.mtu, &mut payloads);
        }
        let timestamp = unit.pts.wrapping_add(k.wrapping_mul(clip_ticks)) as u32;
        let send_ns = realtime_ns();
        let sent_at = Instant::now();
        if sent_at.saturating_duration_since(due) > LATE_AFTER {
            c.late.fetch_add(1, Ordering::Relaxed);
        }
        let tag = wire::rtp_ext::FrameTag {
            frame: frame as u32,
            send_ns,
        };
        let last = payloads.len().saturating_sub(1);
        let mut frame_bytes = 0u64;
        for (i, payload) in payloads.drain(..).enumerate() {
            let fields = RtpFields {
                payload_type: p.payload_type,
                sequence_number: seq,
                timestamp,
                ssrc: p.ssrc,
            };
            let packet = serialize(&fields, i == last, tag, payload)?;
            seq = seq.wrapping_add(1);
            match socket.send_to(&packet, p.dest) {
                Ok(n) => {
                    c.packets.fetch_add(1, Ordering::Relaxed);
                    frame_bytes += n as u64;
                }
                Err(_) => {
                    c.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        c.bytes.fetch_add(frame_bytes, Ordering::Relaxed);
        count_second(&shared.seconds, start, sent_at, frame_bytes);
        frame += 1;
        c.frames.store(frame, Ordering::Relaxed);
        c.loops.store(frame / n_units, Ordering::Relaxed);
    }
}

impl Drop for RtpWorkload {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc_util::marshal::Unmarshal;

    #[test]
    fn small_nal_is_a_single_packet_and_big_one_fragments() {
        let mut out = Vec::new();
        packetize(&[0x41, 1, 2, 3], 100, &mut out);
        assert_eq!(out, vec![Bytes::from_static(&[0x41, 1, 2, 3])]);
        out.clear();
        // 1 header byte + 250 bytes at mtu 100: 98-byte fragments, 3 of them.
        let nal: Vec<u8> = std::iter::once(0x65)
            .chain((0..250u32).map(|i| i as u8))
            .collect();
        packetize(&nal, 100, &mut out);
        assert_eq!(out.len(), 3);
        let mut back = vec![0x65];
        for (i, p) in out.iter().enumerate() {
            assert!(p.len() <= 100);
            assert_eq!(p[0], 0x60 | FU_A, "F and NRI kept, type 28");
            assert_eq!(p[1] & 0x1F, 5);
            assert_eq!(p[1] & FU_START != 0, i == 0);
            assert_eq!(p[1] & FU_END != 0, i == 2);
            assert_eq!(p[1] & 0x20, 0, "R bit");
            back.extend_from_slice(&p[2..]);
        }
        assert_eq!(back, nal);
        // Exactly mtu: single packet; one byte over: two fragments.
        out.clear();
        packetize(&[0x41; 100], 100, &mut out);
        assert_eq!(out.len(), 1);
        out.clear();
        packetize(&[0x41; 101], 100, &mut out);
        assert_eq!(out.len(), 2);
        out.clear();
        packetize(&[], 100, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn serialized_packet_has_our_extension_block() {
        let fields = RtpFields {
            payload_type: 96,
            sequence_number: 0xFFFF,
            timestamp: 123_456,
            ssrc: 0xDEAD_BEEF,
        };
        let tag = wire::rtp_ext::FrameTag {
            frame: 42,
            send_ns: 1_700_000_000_123_456_789,
        };
        let bytes = serialize(&fields, true, tag, Bytes::from_static(&[0x41, 9, 9])).unwrap();
        assert_eq!(bytes[0], 0x90, "V=2, X=1, CC=0");
        assert_eq!(bytes[1], 0x80 | 96);
        assert_eq!(&bytes[2..4], &[0xFF, 0xFF]);
        assert_eq!(&bytes[8..12], &0xDEAD_BEEFu32.to_be_bytes());
        assert_eq!(
            &bytes[12..12 + wire::rtp_ext::BLOCK_LEN],
            &wire::rtp_ext::encode(42, 1_700_000_000_123_456_789)
        );
        assert_eq!(&bytes[12 + wire::rtp_ext::BLOCK_LEN..], &[0x41, 9, 9]);
        assert_eq!(
            wire::rtp_ext::parse_block(&bytes[12..]),
            Some(tag),
            "parses back"
        );
        let mut buf = bytes.clone();
        let p = Packet::unmarshal(&mut buf).unwrap();
        assert_eq!(p.header.extension_profile, 0xBEDE);
        assert_eq!(p.payload, Bytes::from_static(&[0x41, 9, 9]));
    }
}
