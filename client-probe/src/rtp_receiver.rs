//! The RTP receiver: the I/O shell around [`crate::rtp_analysis`]. It reads
//! every datagram on a socket the caller made (the harness binds it inside
//! the client's network namespace) on a background thread, with the
//! kernel's receive timestamp (`SO_TIMESTAMPNS` via `recvmsg`, see
//! [`crate::socket`]), and keeps each one as an [`RtpArrival`] for the pure
//! analysis ([`measure::stream::rtp::analyze_rtp`]).
//!
//! Nothing is parsed here: every datagram is kept, whatever it holds and
//! whoever sent it, cut to [`MAX_DATAGRAM_BYTES`] (the cut ones are
//! counted in [`RtpCapture::truncated`]). [`write_rtp_pcap`] writes a
//! capture as a nanosecond pcap that Wireshark and `tshark -z rtp,streams`
//! read, so an independent analyser can check ours.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use wire::clock::realtime_ns;

use crate::socket;
use measure::stream::rtp::RtpArrival;

/// Bytes kept of each datagram; longer ones are cut and counted in
/// [`RtpCapture::truncated`]. An RTP packet of a 1500-byte MTU fits.
pub const MAX_DATAGRAM_BYTES: usize = 2048;

/// How often the receiving thread wakes up to check for stop.
const READ_TIMEOUT: Duration = Duration::from_millis(50);

/// Where one kept datagram came from and how long it really was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatagramMeta {
    /// The sender's address as `recvmsg` gave it (IPv4-mapped IPv6
    /// addresses turned into IPv4), if it gave one.
    pub from: Option<SocketAddr>,
    /// The datagram's length before any cut, bytes.
    pub len: usize,
}

/// Everything a [`RtpReceiver`] received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtpCapture {
    /// Every datagram in receive order, cut to [`MAX_DATAGRAM_BYTES`].
    pub arrivals: Vec<RtpArrival>,
    /// For each of `arrivals` (same index): sender and original length.
    pub meta: Vec<DatagramMeta>,
    /// The socket's local address (may be unspecified, e.g. `0.0.0.0:port`,
    /// when the caller bound it so).
    pub local_addr: SocketAddr,
    /// Datagrams longer than [`MAX_DATAGRAM_BYTES`], kept cut.
    pub truncated: u64,
    /// `recvmsg` errors (each followed by a 10 ms pause).
    pub read_errors: u64,
}

/// The receiver's counters while it runs; see [`RtpReceiver::live`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpLive {
    /// Datagrams received so far (any sender, any content).
    pub packets: u64,
    /// Largest interval between consecutive datagrams so far, ns (by
    /// receive time in receive order; 0 with fewer than two).
    pub max_gap_ns: i64,
    /// Time since the last datagram, ns (CLOCK_REALTIME now minus its
    /// receive time; 0 before the first).
    pub current_gap_ns: i64,
}

#[derive(Debug, Default)]
struct Counters {
    packets: AtomicU64,
    last_rx_ns: AtomicI64,
    max_gap_ns: AtomicI64,
}

/// A running RTP receiver: a background thread reading the socket.
/// [`RtpReceiver::stop`] returns what it received; dropping it stops the
/// thread too (and discards the capture).
#[derive(Debug)]
pub struct RtpReceiver {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<RtpCapture>>,
}

impl RtpReceiver {
    /// Starts receiving on `socket`, already bound by the caller (possibly
    /// inside a network namespace). Turns on kernel receive timestamps
    /// (`SO_TIMESTAMPNS`; without them each arrival says so) and a read
    /// timeout so that [`RtpReceiver::stop`] returns within about 50 ms.
    ///
    /// Fails when the socket cannot be set up or the thread not started.
    pub fn start(socket: UdpSocket) -> anyhow::Result<RtpReceiver> {
        let local_addr = socket
            .local_addr()
            .context("the RTP receiver's socket has no local address")?;
        socket::prepare(&socket, READ_TIMEOUT)
            .context("cannot set up the RTP receiver's socket")?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let thread = std::thread::Builder::new()
            .name(format!("rtp-rx-{}", local_addr.port()))
            .spawn({
                let stop = stop.clone();
                let counters = counters.clone();
                move || receive_loop(&socket, local_addr, &stop, &counters)
            })
            .context("cannot start the RTP receiver thread")?;
        Ok(RtpReceiver {
            stop,
            counters,
            thread: Some(thread),
        })
    }

    /// The counters so far (cheap: a few atomic loads and a clock read).
    pub fn live(&self) -> RtpLive {
        let packets = self.counters.packets.load(Ordering::Acquire);
        let last = self.counters.last_rx_ns.load(Ordering::Acquire);
        RtpLive {
            packets,
            max_gap_ns: self.counters.max_gap_ns.load(Ordering::Acquire),
            current_gap_ns: if packets == 0 {
                0
            } else {
                realtime_ns().saturating_sub(last).max(0)
            },
        }
    }

    /// Stops the thread (within about 50 ms) and returns the capture. If
    /// the thread panicked, the capture is lost and an empty one with
    /// `read_errors = 1` is returned.
    pub fn stop(mut self) -> RtpCapture {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(c)) => c,
            _ => RtpCapture {
                arrivals: Vec::new(),
                meta: Vec::new(),
                local_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                truncated: 0,
                read_errors: 1,
            },
        }
    }
}

impl Drop for RtpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn receive_loop(
    sock: &UdpSocket,
    local_addr: SocketAddr,
    stop: &AtomicBool,
    counters: &Counters,
) -> RtpCapture {
    // A full-size buffer, so the datagram's real length is known even when
    // only MAX_DATAGRAM_BYTES of it are kept.
    let mut buf = vec![0u8; 65_536];
    let mut cmsg = socket::cmsg_buffer();
    let mut cap = RtpCapture {
        arrivals: Vec::new(),
        meta: Vec::new(),
        local_addr,
        truncated: 0,
        read_errors: 0,
    };
    let mut last_rx: Option<i64> = None;
    while !stop.load(Ordering::Acquire) {
        match socket::recv(sock, &mut buf, &mut cmsg) {
            Ok(Some(r)) => {
                let keep = r.len.min(MAX_DATAGRAM_BYTES);
                if r.len > MAX_DATAGRAM_BYTES {
                    cap.truncated += 1;
                }
                let bytes = buf.get(..keep).unwrap_or(&[]).to_vec();
                if let Some(prev) = last_rx {
                    let gap = r.rx_ns.saturating_sub(prev);
                    counters.max_gap_ns.fetch_max(gap, Ordering::AcqRel);
                }
                last_rx = Some(r.rx_ns);
                cap.arrivals.push(RtpArrival {
                    rx_ns: r.rx_ns,
                    kernel_ts: r.kernel_ts,
                    bytes,
                });
                cap.meta.push(DatagramMeta {
                    from: r.from,
                    len: r.len,
                });
                counters.last_rx_ns.store(r.rx_ns, Ordering::Release);
                counters.packets.fetch_add(1, Ordering::AcqRel);
            }
            Ok(None) => {}
            Err(_) => {
                cap.read_errors += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    cap
}

/// pcap link type of raw IP packets (IPv4 or IPv6 by the version nibble).
pub const LINKTYPE_RAW: u32 = 101;

/// Writes `capture` as a pcap file with nanosecond timestamps (magic
/// `0xa1b23c4d`, little-endian, version 2.4, link type [`LINKTYPE_RAW`]):
/// one record per datagram at its `rx_ns`, the payload wrapped in a
/// synthesized IPv4 header (TTL 64, protocol UDP, header checksum
/// computed) and UDP header (checksum 0, "none", allowed in IPv4) from the
/// sender's address ([`DatagramMeta::from`]; `0.0.0.0:0` when unknown) to
/// [`RtpCapture::local_addr`]. When either address is IPv6, the record is
/// IPv6 instead (IPv4 addresses mapped). Length fields carry the
/// datagram's original length; a cut datagram's record is shorter
/// (`incl_len < orig_len`). A timestamp before the epoch is written as 0.
///
/// `tshark -r FILE -d udp.port==PORT,rtp -q -z rtp,streams` then lists
/// the stream.
pub fn write_rtp_pcap<W: Write>(capture: &RtpCapture, mut out: W) -> io::Result<()> {
    out.write_all(&0xa1b2_3c4d_u32.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&0i32.to_le_bytes())?; // thiszone
    out.write_all(&0u32.to_le_bytes())?; // sigfigs
    out.write_all(&65_535u32.to_le_bytes())?; // snaplen
    out.write_all(&LINKTYPE_RAW.to_le_bytes())?;
    let unknown = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    for (i, a) in capture.arrivals.iter().enumerate() {
        let meta = capture.meta.get(i);
        let from = meta.and_then(|m| m.from).unwrap_or(unknown);
        let orig_len = meta.map_or(a.bytes.len(), |m| m.len.max(a.bytes.len()));
        let mut pkt = ip_udp_header(from, capture.local_addr, orig_len);
        let orig = pkt.len() + orig_len;
        pkt.extend_from_slice(&a.bytes);
        let ns = a.rx_ns.max(0);
        let sec = u32::try_from(ns / 1_000_000_000).unwrap_or(u32::MAX);
        let nsec = u32::try_from(ns % 1_000_000_000).unwrap_or(0);
        let incl = u32::try_from(pkt.len()).unwrap_or(u32::MAX);
        let orig = u32::try_from(orig).unwrap_or(u32::MAX);
        out.write_all(&sec.to_le_bytes())?;
        out.write_all(&nsec.to_le_bytes())?;
        out.write_all(&incl.to_le_bytes())?;
        out.write_all(&orig.to_le_bytes())?;
        out.write_all(&pkt)?;
    }
    Ok(())
}

/// IPv4 (or IPv6) and UDP headers for a UDP payload of `len` bytes.
fn ip_udp_header(src: SocketAddr, dst: SocketAddr, len: usize) -> Vec<u8> {
    let udp_len = u16::try_from(8 + len).unwrap_or(u16::MAX);
    let mut udp = Vec::with_capacity(8);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&0u16.to_be_bytes()); // checksum: none
    let mut h = Vec::with_capacity(48);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(20 + 8 + len).unwrap_or(u16::MAX);
            h.extend_from_slice(&[0x45, 0]);
            h.extend_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0x40, 0]); // id 0, don't fragment
            h.extend_from_slice(&[64, 17, 0, 0]); // TTL, UDP, checksum below
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let sum = ipv4_checksum(&h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            h.extend_from_slice(&[0x60, 0, 0, 0]);
            h.extend_from_slice(&udp_len.to_be_bytes());
            h.extend_from_slice(&[17, 64]); // next header UDP, hop limit
            h.extend_from_slice(&v6(s).octets());
            h.extend_from_slice(&v6(d).octets());
        }
    }
    h.extend_from_slice(&udp);
    h
}

/// The Internet checksum (RFC 1071) of an IPv4 header.
fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(
        from: Option<SocketAddr>,
        local: SocketAddr,
        payload: &[u8],
        len: usize,
    ) -> RtpCapture {
        RtpCapture {
            arrivals: vec![RtpArrival {
                rx_ns: 1_700_000_000_123_456_789,
                kernel_ts: true,
                bytes: payload.to_vec(),
            }],
            meta: vec![DatagramMeta { from, len }],
            local_addr: local,
            truncated: 0,
            read_errors: 0,
        }
    }

    #[test]
    fn pcap_record_wraps_the_payload_in_ipv4_and_udp() {
        let from: SocketAddr = "198.18.0.2:40000".parse().unwrap();
        let local: SocketAddr = "198.18.0.1:5004".parse().unwrap();
        let mut out = Vec::new();
        write_rtp_pcap(&capture(Some(from), local, b"abcd", 4), &mut out).unwrap();
        assert_eq!(&out[..4], &0xa1b2_3c4d_u32.to_le_bytes());
        assert_eq!(&out[20..24], &101u32.to_le_bytes());
        let rec = &out[24..];
        assert_eq!(&rec[..4], &1_700_000_000u32.to_le_bytes());
        assert_eq!(&rec[4..8], &123_456_789u32.to_le_bytes());
        assert_eq!(&rec[8..12], &32u32.to_le_bytes());
        assert_eq!(&rec[12..16], &32u32.to_le_bytes());
        let ip = &rec[16..];
        assert_eq!(ip.len(), 32);
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 32);
        assert_eq!(ip[9], 17);
        assert_eq!(&ip[12..16], &[198, 18, 0, 2]);
        assert_eq!(&ip[16..20], &[198, 18, 0, 1]);
        // A correct header checksum sums to 0xffff (checksum 0 after !).
        assert_eq!(ipv4_checksum(&ip[..20]), 0);
        assert_eq!(u16::from_be_bytes([ip[20], ip[21]]), 40000);
        assert_eq!(u16::from_be_bytes([ip[22], ip[23]]), 5004);
        assert_eq!(u16::from_be_bytes([ip[24], ip[25]]), 12);
        assert_eq!(&ip[28..], b"abcd");
    }

    #[test]
    fn cut_datagram_keeps_its_original_length_and_ipv6_works() {
        let local: SocketAddr = "[::1]:5004".parse().unwrap();
        let mut out = Vec::new();
        write_rtp_pcap(&capture(None, local, b"ab", 3000), &mut out).unwrap();
        let rec = &out[24..];
        assert_eq!(&rec[8..12], &(40u32 + 8 + 2).to_le_bytes());
        assert_eq!(&rec[12..16], &(40u32 + 8 + 3000).to_le_bytes());
        assert_eq!(rec[16] >> 4, 6);
    }

    #[test]
    fn receives_with_kernel_timestamps_and_stops_promptly() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let r = RtpReceiver::start(rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"one", to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        tx.send_to(&vec![7u8; 3000], to).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while r.live().packets < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let live = r.live();
        assert_eq!(live.packets, 2);
        assert!(live.max_gap_ns >= 15_000_000, "{live:?}");
        let t = std::time::Instant::now();
        let cap = r.stop();
        assert!(t.elapsed() < Duration::from_millis(500));
        assert_eq!(cap.arrivals.len(), 2);
        assert_eq!(cap.arrivals[0].bytes, b"one");
        assert_eq!(cap.arrivals[1].bytes.len(), MAX_DATAGRAM_BYTES);
        assert_eq!(cap.meta[1].len, 3000);
        assert_eq!(cap.meta[0].from, Some(tx.local_addr().unwrap()));
        assert_eq!((cap.truncated, cap.read_errors), (1, 0));
        assert!(cap.arrivals.iter().all(|a| a.kernel_ts));
        assert_eq!(cap.local_addr, to);
    }
}
