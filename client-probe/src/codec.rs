//! What distinguishes one probe stream from another, and nothing else: how
//! probe `n` goes on the wire, how a received datagram is classified, and
//! how it is sent and received. The threads, the schedule, the hand-over
//! and the live figures ([`crate::engine`]) are the same for every stream.
//!
//! Two streams implement it: the reflector's UDP probe ([`UdpCodec`] on a
//! [`UdpSocket`]) and the kernel's ICMP echo ([`crate::icmp`]).

use std::io;
use std::net::{SocketAddr, UdpSocket};

use wire::probe::{Kind, ProbePacket};

use crate::socket::{self, normalize, Received};

/// What one received datagram is to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Not ours to look at (another sender, another kind of packet).
    Ignored,
    /// From the target but not a valid reply.
    Malformed,
    /// A valid reply of another session (e.g. a previous run).
    Foreign,
    /// A reply of this session (its seq not yet checked against the sends).
    Reply(Echo),
}

/// The fields of a reply that go into its [`measure::probe::record::ReplyRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Echo {
    /// The probe's sequence number.
    pub seq: u64,
    /// The client's send time carried back, ns.
    pub send_ns: i64,
    /// The reflector's receive time (guest clock), 0 when the answerer
    /// gives none.
    pub guest_rx_ns: i64,
    /// The reflector's send time (guest clock), 0 when none.
    pub guest_tx_ns: i64,
    /// The reflector's count of requests received, 0 when none.
    pub reflector_rx_count: u64,
}

/// How one stream writes its probes and reads its replies. Pure: no I/O,
/// so both directions are unit-tested on bytes.
pub(crate) trait Codec: Clone + Send + 'static {
    /// The session id its probes carry.
    fn session(&self) -> u64;
    /// Writes probe `seq`, sent at `sent_ns`, into `buf` (the whole
    /// datagram, already sized; bytes beyond what it writes stay as they
    /// are, zero).
    fn encode(&self, seq: u64, sent_ns: i64, buf: &mut [u8]);
    /// Classifies one datagram received from `from`. Never panics.
    fn decode(&self, data: &[u8], from: Option<SocketAddr>) -> Decoded;
}

/// The socket a stream runs on, as its threads use it.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Sends one datagram.
    fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize>;
    /// Receives one datagram with its receive time; `Ok(None)` when the
    /// read timeout expired.
    fn recv(&self, buf: &mut [u8], cmsg: &mut Vec<u8>) -> io::Result<Option<Received>>;
}

impl Transport for UdpSocket {
    fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        UdpSocket::send_to(self, buf, target)
    }

    fn recv(&self, buf: &mut [u8], cmsg: &mut Vec<u8>) -> io::Result<Option<Received>> {
        socket::recv(self, buf, cmsg)
    }
}

/// The reflector's protocol ([`wire::probe`]): only datagrams from the
/// target are looked at; from it, a datagram that does not decode or is
/// not a reply is malformed, and a reply of another session foreign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UdpCodec {
    session: u64,
    target: SocketAddr,
}

impl UdpCodec {
    /// The codec of session `session` probing `target`.
    pub fn new(session: u64, target: SocketAddr) -> Self {
        Self {
            session,
            target: normalize(target),
        }
    }
}

impl Codec for UdpCodec {
    fn session(&self) -> u64 {
        self.session
    }

    fn encode(&self, seq: u64, sent_ns: i64, buf: &mut [u8]) {
        ProbePacket::request(self.session, seq, sent_ns).encode(buf);
    }

    fn decode(&self, data: &[u8], from: Option<SocketAddr>) -> Decoded {
        if from.map(normalize) != Some(self.target) {
            return Decoded::Ignored;
        }
        let p = match ProbePacket::decode(data) {
            Ok(p) if p.kind == Kind::Reply => p,
            _ => return Decoded::Malformed,
        };
        if p.session != self.session {
            return Decoded::Foreign;
        }
        Decoded::Reply(Echo {
            seq: p.seq,
            send_ns: p.client_send_ns,
            guest_rx_ns: p.reflector_rx_ns,
            guest_tx_ns: p.reflector_tx_ns,
            reflector_rx_count: p.reflector_rx_count,
        })
    }
}
