//! The kernel's probe: ICMP echo requests to the guest's address, answered
//! by the guest's kernel, beside the UDP probe answered by the agent in user
//! space. Each outage then shows both ends: when the guest's network stack
//! was back, and when the service was (in the lab under TCG the kernel's
//! first answer after RESUME came 10 to 335 ms before the reflector's).
//!
//! The same engine as the UDP prober ([`crate::engine`]: schedule, threads,
//! hand-over, live figures) runs it; only the codec and the socket differ.
//! Its record is a [`ProbeRecord`] like the UDP probe's, analysed by the
//! same `measure::probe::gaps::analyze`, with `kernel_ts` receive stamps and
//! the `guest_*` and `reflector_rx_count` fields 0: a kernel gives no times
//! of its own.
//!
//! # The echo
//! Identifier: the low 16 bits of the session; ICMP sequence: the low 16
//! bits of our seq. The data starts with the whole session, the whole
//! 64-bit seq (the ICMP field wraps after 65536 probes, ours never does)
//! and the send time, big-endian, then zeros up to the configured size. A
//! reply counts only when its sequence field agrees with the seq in its
//! data.
//!
//! # The socket: raw, not a ping socket
//! A ping socket (`SOCK_DGRAM`, `IPPROTO_ICMP`) needs the caller's group in
//! `net.ipv4.ping_group_range`, a setting of each network namespace that is
//! off by default (`1 0`); the harness would have to change it in the
//! client's namespace, and for a probe at a real client (`Site::here()`)
//! on the tester's own machine. A raw socket (`SOCK_RAW`, `IPPROTO_ICMP`)
//! needs `CAP_NET_RAW`, which the harness has (it runs as root), and
//! changes no setting. The price: a raw socket receives every ICMP packet
//! arriving in its namespace, IP header included. So the codec drops all
//! but echo replies from the target carrying our identifier (another
//! `ping` in the namespace, ICMP errors, our own requests on loopback),
//! and of those counts as malformed any with a bad checksum or our seq
//! not agreeing, and as foreign any of another session. (The kernel's own
//! `ICMP_FILTER` would drop the other types before waking us, but setting
//! it needs `unsafe` code this crate keeps to one place; at the probe's
//! rates the wake-ups cost nothing measurable.)
//!
//! IPv4 only: ICMPv6 echoes differ in types, checksum and header handling,
//! and every backend's guest address is IPv4 today.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
    SockaddrIn,
};
use nix::sys::time::{TimeVal, TimeValLike};

use crate::codec::{Codec, Decoded, Echo, Transport};
use crate::engine::{
    check_options, random_session, Engine, Names, Plan, ProbeDelta, ProbeOptions, READ_TIMEOUT,
};
use crate::error::ProbeError;
use crate::live::LiveStats;
use crate::prober::MAX_RATE_HZ;
use crate::socket::Received;
use measure::probe::record::ProbeRecord;

/// Bytes of the ICMP header: type, code, checksum, identifier, sequence.
pub const ICMP_HEADER_LEN: usize = 8;
/// Bytes of ours at the start of each echo's data: session, seq, send time.
pub const MIN_ECHO_DATA_LEN: usize = 24;
/// The most echo data an IPv4 packet holds: 65535 bytes less the 20-byte
/// IP header and the ICMP header (so the same limit as a UDP probe's
/// payload, [`crate::MAX_PAYLOAD_LEN`]).
pub const MAX_ECHO_DATA_LEN: usize = 65_507;

const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;
const IPPROTO_ICMP: u8 = 1;

/// What to ping, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpConfig {
    /// The guest's address.
    pub target: Ipv4Addr,
    /// Echoes per second, 1 to [`MAX_RATE_HZ`].
    pub rate_hz: u32,
    /// Bytes of data after the ICMP header: at least [`MIN_ECHO_DATA_LEN`],
    /// at most [`MAX_ECHO_DATA_LEN`]. The UDP probe's payload size gives
    /// packets of the same size on the wire (both headers are 8 bytes).
    pub payload_len: usize,
}

impl IcmpConfig {
    /// Checks the rate and the size.
    pub fn validate(&self) -> Result<(), ProbeError> {
        if self.rate_hz == 0 || self.rate_hz > MAX_RATE_HZ {
            return Err(ProbeError::Config(format!(
                "ICMP rate {} per second is outside 1..={MAX_RATE_HZ}",
                self.rate_hz
            )));
        }
        if !(MIN_ECHO_DATA_LEN..=MAX_ECHO_DATA_LEN).contains(&self.payload_len) {
            return Err(ProbeError::Config(format!(
                "ICMP echo data of {} bytes is outside {MIN_ECHO_DATA_LEN}..={MAX_ECHO_DATA_LEN}",
                self.payload_len
            )));
        }
        Ok(())
    }
}

/// A raw IPv4 ICMP socket (see the [module documentation](self) for why
/// raw).
#[derive(Debug)]
pub struct IcmpSocket(OwnedFd);

impl IcmpSocket {
    /// Opens a raw ICMP socket in the calling thread's network namespace
    /// (call it inside the client's: `Site::enter`). Needs `CAP_NET_RAW`.
    pub fn open() -> io::Result<IcmpSocket> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::Icmp,
        )?;
        Ok(IcmpSocket(fd))
    }

    /// Sets the read timeout (so the receiver notices a stop request) and
    /// asks for kernel receive timestamps; the socket is blocking as made.
    /// Failing to enable timestamps is not an error: every reply says
    /// whether its time came from the kernel.
    fn prepare(&self, timeout: Duration) -> io::Result<()> {
        let us = i64::try_from(timeout.as_micros()).unwrap_or(i64::MAX);
        setsockopt(&self.0, sockopt::ReceiveTimeout, &TimeVal::microseconds(us))?;
        let _ = setsockopt(&self.0, sockopt::ReceiveTimestampns, &true);
        Ok(())
    }
}

impl AsFd for IcmpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Transport for IcmpSocket {
    fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let SocketAddr::V4(v4) = target else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        Ok(sendto(
            self.0.as_raw_fd(),
            buf,
            &SockaddrIn::from(v4),
            MsgFlags::empty(),
        )?)
    }

    fn recv(&self, buf: &mut [u8], cmsg: &mut Vec<u8>) -> io::Result<Option<Received>> {
        crate::socket::recv(&self.0, buf, cmsg)
    }
}

/// The Internet checksum (RFC 1071) of `b`: the ones' complement of the
/// ones' complement sum of its 16-bit big-endian words. A message carrying
/// its checksum sums to 0.
pub(crate) fn checksum(b: &[u8]) -> u16 {
    let mut words = b.chunks_exact(2);
    let mut sum: u64 = words
        .by_ref()
        .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16) // folded to 16 bits just above
}

/// The ICMP message inside a raw IPv4 packet, bounded by the header's total
/// length; `None` when the header is not a valid IPv4 header of an ICMP
/// packet.
fn icmp_of_ipv4(p: &[u8]) -> Option<&[u8]> {
    let v_ihl = *p.first()?;
    let ihl = usize::from(v_ihl & 0x0f) * 4;
    if v_ihl >> 4 != 4 || ihl < 20 || *p.get(9)? != IPPROTO_ICMP {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
    p.get(ihl..total.min(p.len()))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Echo requests of one session to one address, and the replies to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EchoCodec {
    session: u64,
    ident: u16,
    target: Ipv4Addr,
}

impl EchoCodec {
    /// Session `session`'s echoes to `target`.
    pub fn new(session: u64, target: Ipv4Addr) -> Self {
        Self {
            session,
            // The identifier field holds 16 bits of the session; the whole
            // session is in the data, where a collision is told apart.
            ident: (session & 0xffff) as u16,
            target,
        }
    }
}

impl Codec for EchoCodec {
    fn session(&self) -> u64 {
        self.session
    }

    fn encode(&self, seq: u64, sent_ns: i64, buf: &mut [u8]) {
        let Some(head) = buf.get_mut(..ICMP_HEADER_LEN + MIN_ECHO_DATA_LEN) else {
            return; // shorter than the configuration allows: never sent so
        };
        head[0] = ECHO_REQUEST;
        head[1] = 0;
        head[2..4].fill(0);
        head[4..6].copy_from_slice(&self.ident.to_be_bytes());
        head[6..8].copy_from_slice(&((seq & 0xffff) as u16).to_be_bytes());
        head[8..16].copy_from_slice(&self.session.to_be_bytes());
        head[16..24].copy_from_slice(&seq.to_be_bytes());
        head[24..32].copy_from_slice(&sent_ns.to_be_bytes());
        let sum = checksum(buf);
        buf[2..4].copy_from_slice(&sum.to_be_bytes());
    }

    fn decode(&self, data: &[u8], from: Option<SocketAddr>) -> Decoded {
        // A raw socket names no port; the address alone says who answered.
        if !matches!(from, Some(SocketAddr::V4(a)) if *a.ip() == self.target) {
            return Decoded::Ignored;
        }
        let Some(icmp) = icmp_of_ipv4(data).filter(|m| m.len() >= ICMP_HEADER_LEN) else {
            return Decoded::Malformed;
        };
        if icmp[0] != ECHO_REPLY || icmp[4..6] != self.ident.to_be_bytes() {
            // ICMP errors, requests, another pinger's replies: not ours.
            return Decoded::Ignored;
        }
        if icmp[1] != 0 || checksum(icmp) != 0 {
            return Decoded::Malformed;
        }
        let data = &icmp[ICMP_HEADER_LEN..];
        let (Some(session), Some(seq), Some(sent)) =
            (be_u64(data, 0), be_u64(data, 8), be_u64(data, 16))
        else {
            return Decoded::Malformed;
        };
        if session != self.session {
            return Decoded::Foreign;
        }
        if icmp[6..8] != ((seq & 0xffff) as u16).to_be_bytes() {
            return Decoded::Malformed;
        }
        Decoded::Reply(Echo {
            seq,
            send_ns: sent as i64, // the bits we wrote from an i64
            guest_rx_ns: 0,
            guest_tx_ns: 0,
            reflector_rx_count: 0,
        })
    }
}

/// The ICMP stream's threads.
const NAMES: Names = Names {
    sender: "ICMP sender",
    receiver: "ICMP receiver",
    sender_thread: "icmp-sender",
    receiver_thread: "icmp-receiver",
};

/// A running ICMP echo prober: the interface of [`crate::Prober`], for the
/// guest's kernel. Dropping it without [`IcmpProber::stop`] stops its
/// threads and discards the record.
#[derive(Debug)]
pub struct IcmpProber {
    cfg: IcmpConfig,
    engine: Engine<EchoCodec>,
}

impl IcmpProber {
    /// Starts a sender thread and a receiver thread on `socket` (made by
    /// the caller, possibly in another network namespace: no socket is
    /// created here). The threads are scheduled as
    /// [`ProbeOptions::default`] says.
    pub fn start(socket: IcmpSocket, cfg: IcmpConfig) -> Result<IcmpProber, ProbeError> {
        Self::start_with(socket, cfg, ProbeOptions::default())
    }

    /// [`IcmpProber::start`] with scheduling options.
    pub fn start_with(
        socket: IcmpSocket,
        cfg: IcmpConfig,
        opts: ProbeOptions,
    ) -> Result<IcmpProber, ProbeError> {
        cfg.validate()?;
        check_options(&opts)?;
        socket
            .prepare(READ_TIMEOUT)
            .map_err(|source| ProbeError::Socket {
                what: "set the ICMP socket's read timeout",
                source,
            })?;
        let session = random_session()?;
        let plan = Plan {
            target: SocketAddr::V4(SocketAddrV4::new(cfg.target, 0)),
            target_text: cfg.target.to_string(),
            rate_hz: cfg.rate_hz,
            payload_len: cfg.payload_len,
            datagram_len: ICMP_HEADER_LEN + cfg.payload_len,
            names: NAMES,
        };
        let engine = Engine::start(socket, EchoCodec::new(session, cfg.target), plan, opts)?;
        Ok(IcmpProber { cfg, engine })
    }

    /// Everything recorded since the previous checkpoint, while the probe
    /// goes on (as [`crate::Prober::checkpoint`]). Calls must not overlap.
    pub fn checkpoint(&self) -> Result<ProbeDelta, ProbeError> {
        self.engine.checkpoint()
    }

    /// The record's fields other than the send times and replies, as they
    /// stand now (the threads' counters read as zero until stopped).
    pub fn meta(&self) -> ProbeRecord {
        self.engine.meta()
    }

    /// The random session id; its low 16 bits are the echoes' identifier.
    pub fn session(&self) -> u64 {
        self.engine.session()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &IcmpConfig {
        &self.cfg
    }

    /// Cheap snapshot for a live progress line.
    pub fn live(&self) -> LiveStats {
        self.engine.live()
    }

    /// Stops both threads (the receiver waits [`crate::RECEIVE_LINGER`] for
    /// late replies) and returns everything recorded.
    pub fn stop(self) -> Result<ProbeRecord, ProbeError> {
        self.engine.stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GUEST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

    fn from(ip: Ipv4Addr) -> Option<SocketAddr> {
        Some(SocketAddr::V4(SocketAddrV4::new(ip, 0)))
    }

    /// The raw IPv4 packet of the kernel's answer to `request`: type 0,
    /// checksum redone, behind a 20-byte IP header.
    fn reply_packet(request: &[u8]) -> Vec<u8> {
        let mut icmp = request.to_vec();
        icmp[0] = ECHO_REPLY;
        icmp[2..4].fill(0);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, IPPROTO_ICMP, 0, 0];
        p.extend_from_slice(&GUEST.octets());
        p.extend_from_slice(&[198, 18, 0, 1]);
        let total = (20 + icmp.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&icmp);
        p
    }

    fn request(codec: &EchoCodec, seq: u64, sent_ns: i64, data_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; ICMP_HEADER_LEN + data_len];
        codec.encode(seq, sent_ns, &mut b);
        b
    }

    #[test]
    fn checksum_of_rfc_1071s_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        // An odd length pads with a zero byte.
        assert_eq!(checksum(&[0x01]), !0x0100);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn a_request_is_an_echo_with_our_identifier_seq_and_a_valid_checksum() {
        let c = EchoCodec::new(0x1122_3344_5566_abcd, GUEST);
        let b = request(&c, 0x1_0005, -7, 56);
        assert_eq!(b.len(), 64);
        assert_eq!((b[0], b[1]), (ECHO_REQUEST, 0));
        assert_eq!(
            b[4..6],
            [0xab, 0xcd],
            "identifier: the session's low 16 bits"
        );
        assert_eq!(b[6..8], [0x00, 0x05], "ICMP seq: our seq's low 16 bits");
        assert_eq!(be_u64(&b, 8), Some(0x1122_3344_5566_abcd));
        assert_eq!(be_u64(&b, 16), Some(0x1_0005));
        assert_eq!(be_u64(&b, 24), Some(-7i64 as u64));
        assert!(b[32..].iter().all(|&x| x == 0), "padded with zeros");
        assert_eq!(checksum(&b), 0);
    }

    #[test]
    fn the_kernels_reply_decodes_to_our_seq_and_send_time() {
        let c = EchoCodec::new(42, GUEST);
        // Past the 16-bit wrap: the payload's seq is the one recorded.
        let p = reply_packet(&request(&c, 70_000, 1_700_000_000_123, 24));
        assert_eq!(
            c.decode(&p, from(GUEST)),
            Decoded::Reply(Echo {
                seq: 70_000,
                send_ns: 1_700_000_000_123,
                guest_rx_ns: 0,
                guest_tx_ns: 0,
                reflector_rx_count: 0,
            })
        );
        // IP options (a longer header) are skipped.
        let mut opt = p.clone();
        opt[0] = 0x46;
        opt.splice(20..20, [1, 1, 1, 1]);
        let total = (opt.len() as u16).to_be_bytes();
        opt[2..4].copy_from_slice(&total);
        assert!(matches!(c.decode(&opt, from(GUEST)), Decoded::Reply(_)));
        // Bytes after the IP total length (padding) are not the message's.
        let mut padded = p.clone();
        padded.extend_from_slice(&[0xff; 6]);
        assert!(matches!(c.decode(&padded, from(GUEST)), Decoded::Reply(_)));
    }

    #[test]
    fn what_is_not_ours_is_ignored_and_what_is_broken_malformed() {
        let c = EchoCodec::new(42, GUEST);
        let req = request(&c, 3, 9, 24);
        let good = reply_packet(&req);
        let other_host = Ipv4Addr::new(198, 18, 0, 11);
        assert_eq!(c.decode(&good, from(other_host)), Decoded::Ignored);
        assert_eq!(c.decode(&good, None), Decoded::Ignored);
        // Our own request (seen on loopback), an ICMP error: not replies.
        let mut own = good.clone();
        own[20] = ECHO_REQUEST;
        assert_eq!(c.decode(&own, from(GUEST)), Decoded::Ignored);
        let mut unreachable = good.clone();
        unreachable[20] = 3;
        assert_eq!(c.decode(&unreachable, from(GUEST)), Decoded::Ignored);
        // Another pinger's identifier.
        let other = EchoCodec::new(43, GUEST);
        assert_eq!(other.decode(&good, from(GUEST)), Decoded::Ignored);
        // Same identifier, another session: foreign.
        let same_ident = EchoCodec::new(42 + 0x1_0000, GUEST);
        assert_eq!(same_ident.decode(&good, from(GUEST)), Decoded::Foreign);
        // A flipped bit fails the checksum.
        let mut flipped = good.clone();
        flipped[40] ^= 0x10;
        assert_eq!(c.decode(&flipped, from(GUEST)), Decoded::Malformed);
        // The ICMP seq disagreeing with ours (checksum made right).
        let mut bad_seq = req.clone();
        bad_seq[7] = 4;
        assert_eq!(
            c.decode(&reply_packet(&bad_seq), from(GUEST)),
            Decoded::Malformed
        );
        // Too short for our data; a broken IP header; not ICMP at all.
        assert_eq!(
            c.decode(&reply_packet(&req[..20]), from(GUEST)),
            Decoded::Malformed
        );
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert_eq!(c.decode(&v6, from(GUEST)), Decoded::Malformed);
        let mut udp = good.clone();
        udp[9] = 17;
        assert_eq!(c.decode(&udp, from(GUEST)), Decoded::Malformed);
        assert_eq!(c.decode(&[], from(GUEST)), Decoded::Malformed);
    }

    #[test]
    fn every_truncation_and_byte_change_decodes_without_panicking() {
        let c = EchoCodec::new(42, GUEST);
        let base = reply_packet(&request(&c, 3, 9, 24));
        for len in 0..=base.len() {
            for pos in 0..len {
                for v in [0u8, 1, 0x0f, 0x45, 0x7f, 0xff] {
                    let mut b = base.clone();
                    b[pos] = v;
                    let _ = c.decode(&b[..len], from(GUEST));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let c = EchoCodec::new(42, GUEST);
            let _ = c.decode(&bytes, from(GUEST));
        }

        #[test]
        fn every_request_answered_decodes_to_itself(
            session in any::<u64>(), seq in any::<u64>(), sent in any::<i64>(), extra in 0usize..64,
        ) {
            let c = EchoCodec::new(session, GUEST);
            let p = reply_packet(&request(&c, seq, sent, MIN_ECHO_DATA_LEN + extra));
            prop_assert_eq!(
                c.decode(&p, from(GUEST)),
                Decoded::Reply(Echo { seq, send_ns: sent, guest_rx_ns: 0, guest_tx_ns: 0, reflector_rx_count: 0 })
            );
        }
    }

    #[test]
    fn configuration_limits() {
        let cfg = |rate_hz, payload_len| IcmpConfig {
            target: GUEST,
            rate_hz,
            payload_len,
        };
        assert!(cfg(1000, 64).validate().is_ok());
        assert!(cfg(1, MIN_ECHO_DATA_LEN).validate().is_ok());
        assert!(cfg(MAX_RATE_HZ, MAX_ECHO_DATA_LEN).validate().is_ok());
        for bad in [
            cfg(0, 64),
            cfg(MAX_RATE_HZ + 1, 64),
            cfg(1000, MIN_ECHO_DATA_LEN - 1),
            cfg(1000, MAX_ECHO_DATA_LEN + 1),
        ] {
            assert!(
                matches!(bad.validate(), Err(ProbeError::Config(_))),
                "{bad:?}"
            );
        }
    }
}
