//! The receiver: reads replies with kernel timestamps, classifies every
//! datagram through the stream's [`Codec`], and records the valid replies
//! of this session.
//!
//! The codec says which datagrams are not ours (dropped unseen), which are
//! malformed and which foreign; here a reply that answers a seq never sent
//! counts as malformed too. No input can make it panic.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::codec::{Codec, Decoded, Transport, UdpCodec};
use crate::handover::{Cursor, Handover};
use crate::live::LiveCounters;
use crate::socket;
use measure::probe::record::ReplyRecord;
#[cfg(test)] // the tests build the reflector's datagrams
use wire::probe::{Kind, ProbePacket};

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not from the target: dropped.
    Ignored,
    /// From the target but not a reply to a probe sent.
    Malformed,
    /// A reply of another session.
    Foreign,
    /// A reply of this session; `first` unless its seq was seen before.
    Reply { first: bool },
}

/// The receiver's records.
#[derive(Debug)]
pub(crate) struct ReceiverState<C = UdpCodec> {
    codec: C,
    seen: Vec<bool>,
    pub replies: Vec<ReplyRecord>,
    pub malformed: u64,
    pub foreign_session: u64,
}

#[cfg(test)] // the engine builds its receivers from a codec
impl ReceiverState<UdpCodec> {
    /// The reflector's stream of session `session` probing `target`.
    pub fn new(session: u64, target: SocketAddr) -> Self {
        Self::with_codec(UdpCodec::new(session, target))
    }
}

impl<C: Codec> ReceiverState<C> {
    /// A receiver of the stream `codec` decodes.
    pub fn with_codec(codec: C) -> Self {
        Self {
            codec,
            seen: Vec::new(),
            replies: Vec::new(),
            malformed: 0,
            foreign_session: 0,
        }
    }

    /// Classifies and records one datagram. `sent` is the number of probes
    /// handed to the socket so far: a seq at or above it was never sent.
    pub fn handle(
        &mut self,
        data: &[u8],
        from: Option<SocketAddr>,
        rx_ns: i64,
        kernel_ts: bool,
        sent: u64,
        live: &LiveCounters,
    ) -> Outcome {
        let p = match self.codec.decode(data, from) {
            Decoded::Ignored => return Outcome::Ignored,
            Decoded::Malformed => {
                self.malformed += 1;
                return Outcome::Malformed;
            }
            Decoded::Foreign => {
                self.foreign_session += 1;
                return Outcome::Foreign;
            }
            Decoded::Reply(p) => p,
        };
        let Some(idx) = usize::try_from(p.seq).ok().filter(|_| p.seq < sent) else {
            self.malformed += 1;
            return Outcome::Malformed;
        };
        if self.seen.len() <= idx {
            self.seen.resize(idx + 1, false);
        }
        let first = !self.seen[idx];
        self.seen[idx] = true;
        self.replies.push(ReplyRecord {
            seq: p.seq,
            send_ns: p.send_ns,
            rx_ns,
            kernel_ts,
            guest_rx_ns: p.guest_rx_ns,
            guest_tx_ns: p.guest_tx_ns,
            reflector_rx_count: p.reflector_rx_count,
        });
        if first {
            live.first_reply(rx_ns);
        }
        Outcome::Reply { first }
    }
}

/// Receives until `stop` has been set for `linger` (late replies still
/// count), backing off briefly after socket errors instead of failing.
pub(crate) fn run<S: Transport, C: Codec>(
    sock: &S,
    mut state: ReceiverState<C>,
    live: &LiveCounters,
    stop: &AtomicBool,
    linger: Duration,
    handover: &Handover<ReplyRecord>,
) -> ReceiverState<C> {
    let mut buf = vec![0u8; 65_536];
    let mut cmsg = socket::cmsg_buffer();
    let mut drain_until: Option<Instant> = None;
    let mut handed = Cursor::default();
    loop {
        handover.serve(&state.replies, &mut handed);
        match drain_until {
            None if stop.load(Ordering::Acquire) => drain_until = Some(Instant::now() + linger),
            Some(t) if Instant::now() >= t => break,
            _ => {}
        }
        match sock.recv(&mut buf, &mut cmsg) {
            Ok(Some(r)) => {
                let data = buf.get(..r.len).unwrap_or(&buf);
                let sent = live.sent.load(Ordering::Acquire);
                state.handle(data, r.from, r.rx_ns, r.kernel_ts, sent, live);
            }
            Ok(None) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::probe::HEADER_LEN;

    fn reply(session: u64, seq: u64, count: u64) -> Vec<u8> {
        let mut p = ProbePacket::request(session, seq, 1000 + seq as i64);
        p.kind = Kind::Reply;
        p.reflector_rx_count = count;
        p.reflector_rx_ns = 5;
        p.reflector_tx_ns = 6;
        let mut b = vec![0u8; 64];
        p.encode(&mut b);
        b
    }

    #[test]
    fn classifies_every_kind_of_datagram() {
        let target: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:7000".parse().unwrap();
        let live = LiveCounters::new(0);
        let mut s = ReceiverState::new(42, target);
        let t = Some(target);
        assert_eq!(
            s.handle(&reply(42, 0, 1), Some(other), 10, true, 5, &live),
            Outcome::Ignored
        );
        assert_eq!(
            s.handle(&reply(42, 0, 1), None, 10, true, 5, &live),
            Outcome::Ignored
        );
        assert_eq!(
            s.handle(&reply(42, 0, 1), t, 10, true, 5, &live),
            Outcome::Reply { first: true }
        );
        assert_eq!(
            s.handle(&reply(42, 0, 1), Some(mapped), 11, false, 5, &live),
            Outcome::Reply { first: false }
        );
        assert_eq!(
            s.handle(&reply(42, 5, 2), t, 12, true, 5, &live),
            Outcome::Malformed
        );
        assert_eq!(
            s.handle(&reply(42, u64::MAX, 2), t, 12, true, 5, &live),
            Outcome::Malformed
        );
        assert_eq!(
            s.handle(&reply(41, 1, 2), t, 12, true, 5, &live),
            Outcome::Foreign
        );
        let mut req = vec![0u8; HEADER_LEN];
        ProbePacket::request(42, 1, 0).encode(&mut req);
        assert_eq!(s.handle(&req, t, 12, true, 5, &live), Outcome::Malformed);
        assert_eq!(s.handle(b"", t, 12, true, 5, &live), Outcome::Malformed);
        assert_eq!(
            s.handle(&reply(42, 4, 2), t, 20, true, 5, &live),
            Outcome::Reply { first: true }
        );
        assert_eq!((s.malformed, s.foreign_session, s.replies.len()), (4, 1, 3));
        let r = &s.replies[0];
        assert_eq!(
            (
                r.seq,
                r.send_ns,
                r.rx_ns,
                r.kernel_ts,
                r.guest_rx_ns,
                r.guest_tx_ns,
                r.reflector_rx_count
            ),
            (0, 1000, 10, true, 5, 6, 1)
        );
        assert_eq!(live.replies.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let target: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let live = LiveCounters::new(0);
        let mut s = ReceiverState::new(42, target);
        let base = reply(42, 3, 9);
        for len in 0..base.len() {
            for pos in 0..len {
                for v in [0u8, 1, 2, 0x7f, 0xff] {
                    let mut b = base.clone();
                    b[pos] = v;
                    s.handle(&b[..len], Some(target), 1, true, 10, &live);
                }
            }
        }
    }
}
