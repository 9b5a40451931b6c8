//! The UDP probe reflector: echoes [`wire::probe`] requests with the
//! guest's timestamps and per-session receive count.
//!
//! It runs on a dedicated OS thread with a blocking socket, not as a tokio
//! task, for the lowest latency on a one-vCPU emulated guest.
//!
//! It works in batches, to spend as little of the guest's CPU per packet as
//! possible: one `recvmmsg` takes up to 64 datagrams (it blocks for the
//! first, then takes only what is already queued), each reply is written in
//! place over its request (padding untouched), and one `sendmmsg` sends
//! them all. Counters are updated once per batch, and the session counted
//! last is cached outside the session table. The socket asks for 256 KiB
//! receive and send buffers (`SO_RCVBUFFORCE`, as root): short bursts are
//! queued, a sustained overload is dropped rather than queued for long.
//!
//! Receive time: each datagram's own kernel `SO_TIMESTAMPNS` receive
//! timestamp (CLOCK_REALTIME, taken when the packet entered the guest's
//! network stack), from its control message in the batch. If a datagram
//! arrives without one, the user-space CLOCK_REALTIME read once right after
//! `recvmmsg` returns is used instead. Send time: user-space
//! CLOCK_REALTIME read once per batch, just before `sendmmsg`, after every
//! reply of the batch is ready; all replies of a batch carry it, and each
//! leaves the guest no earlier than that.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{self, sockopt};
use thiserror::Error;
use wire::clock::realtime_ns;
use wire::control::ReflectorStats;
use wire::probe::{Kind, ProbePacket, HEADER_LEN};

use crate::mmsg::{Batch, BATCH};

/// Sessions remembered at most; beyond that the table is cleared.
pub const MAX_SESSIONS: usize = 1024;

/// Requested `SO_RCVBUF` and `SO_SNDBUF` of the reflector's socket, bytes
/// (the kernel accounts twice this). Room for a few hundred small probes:
/// enough to ride out a short hiccup of the guest, small enough that a
/// guest slower than the probe rate drops probes instead of queueing them
/// for hundreds of ms. A standing queue would delay every reply and blur
/// where a gap ends; a dropped probe only costs one interval of resolution
/// (measured with 4 MiB: replies held up to 0.5 s in the guest at 10,000/s).
pub const SOCKET_BUFFER: usize = 256 << 10;

/// `SO_BUSY_POLL` of the reflector's socket, microseconds.
pub const BUSY_POLL_US: u32 = 50;

/// How often the blocked thread wakes up to check whether it must stop.
const STOP_POLL: Duration = Duration::from_millis(200);

/// Why the reflector could not start.
#[derive(Debug, Error)]
pub enum ReflectorError {
    /// The UDP port could not be bound.
    #[error("cannot bind the reflector's UDP socket to {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Setting up the socket or starting the thread failed.
    #[error("cannot set up the reflector: {what}")]
    Setup {
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// The reflector's live counters, shared with the control API.
#[derive(Debug, Default)]
pub struct ReflectorCounters {
    echoed: AtomicU64,
    malformed: AtomicU64,
    sessions: AtomicU64,
    send_errors: AtomicU64,
    kernel_timestamps: AtomicU64,
    batches: AtomicU64,
}

impl ReflectorCounters {
    /// A snapshot in the control API's form.
    pub fn snapshot(&self) -> ReflectorStats {
        ReflectorStats {
            echoed: self.echoed.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            sessions: self.sessions.load(Ordering::Relaxed),
        }
    }

    /// Replies that could not be sent (not part of [`ReflectorStats`]).
    pub fn send_errors(&self) -> u64 {
        self.send_errors.load(Ordering::Relaxed)
    }

    /// Requests whose receive time came from the kernel (`SO_TIMESTAMPNS`)
    /// rather than from user space.
    pub fn kernel_timestamps(&self) -> u64 {
        self.kernel_timestamps.load(Ordering::Relaxed)
    }

    /// `recvmmsg` calls that returned datagrams; `echoed + malformed`
    /// divided by this is the mean batch size (not part of
    /// [`ReflectorStats`]).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
}

/// A running reflector thread.
#[derive(Debug)]
pub struct Reflector {
    local_addr: SocketAddr,
    counters: Arc<ReflectorCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reflector {
    /// Binds `0.0.0.0:port` (0 picks a free port) and starts the thread.
    pub fn spawn(port: u16) -> Result<Self, ReflectorError> {
        Self::spawn_on(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
    }

    /// Binds `addr` (IPv4 only) and starts the thread.
    pub fn spawn_on(addr: SocketAddr) -> Result<Self, ReflectorError> {
        let sock = UdpSocket::bind(addr).map_err(|source| ReflectorError::Bind { addr, source })?;
        let local_addr = sock.local_addr().map_err(|source| ReflectorError::Setup {
            what: "local address",
            source,
        })?;
        sock.set_read_timeout(Some(STOP_POLL))
            .map_err(|source| ReflectorError::Setup {
                what: "read timeout",
                source,
            })?;
        // Without kernel timestamps the reflector still works, with
        // user-space receive times.
        let _ = socket::setsockopt(&sock, sockopt::ReceiveTimestampns, &true);
        set_buffers(&sock);
        // Only an optimisation: without it the reflector sleeps until the
        // NIC's interrupt.
        let _ = crate::mmsg::set_busy_poll(sock.as_fd(), BUSY_POLL_US);
        let counters = Arc::new(ReflectorCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("reflector".into())
            .spawn({
                let counters = counters.clone();
                let stop = stop.clone();
                move || run(sock, &counters, &stop)
            })
            .map_err(|source| ReflectorError::Setup {
                what: "thread",
                source,
            })?;
        Ok(Self {
            local_addr,
            counters,
            stop,
            thread: Some(thread),
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The live counters.
    pub fn counters(&self) -> Arc<ReflectorCounters> {
        self.counters.clone()
    }

    /// Whether the thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the thread and waits for it (within about 200 ms).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Per-session receive counts.
///
/// The session seen last is cached outside the map: a probe stream is one
/// session, so nearly every packet is counted without hashing.
#[derive(Debug, Default)]
struct Sessions {
    /// Every remembered session; the cached one's value may be stale.
    counts: HashMap<u64, u64>,
    /// The session counted last and its up-to-date count; always also a
    /// key of `counts`.
    last: Option<(u64, u64)>,
}

impl Sessions {
    /// Counts one request of `session`; returns its count (this one
    /// included) and whether the session is new.
    fn count(&mut self, session: u64) -> (u64, bool) {
        if let Some((s, c)) = &mut self.last {
            if *s == session {
                *c += 1;
                return (*c, false);
            }
        }
        // Write the cached count back before touching the map.
        if let Some((s, c)) = self.last.take() {
            if let Some(v) = self.counts.get_mut(&s) {
                *v = c;
            }
        }
        if !self.counts.contains_key(&session) && self.counts.len() >= MAX_SESSIONS {
            self.counts.clear();
        }
        let mut new = false;
        let c = self.counts.entry(session).or_insert_with(|| {
            new = true;
            0
        });
        *c += 1;
        let c = *c;
        self.last = Some((session, c));
        (c, new)
    }
}

/// Byte offset of the reflector send time in the probe header (see the
/// layout in [`wire::probe`]); patched in after the header is encoded, so
/// the send time is taken as late as possible.
const TX_NS_AT: usize = 40;

/// Sets the socket buffer sizes to [`SOCKET_BUFFER`]: the `*FORCE` options
/// (root, which PID 1 is) ignore `net.core.[rw]mem_max`; otherwise the
/// ordinary ones, capped by those sysctls. Failures only cost capacity.
fn set_buffers(sock: &UdpSocket) {
    if socket::setsockopt(sock, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
        let _ = socket::setsockopt(sock, sockopt::RcvBuf, &SOCKET_BUFFER);
    }
    if socket::setsockopt(sock, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
        let _ = socket::setsockopt(sock, sockopt::SndBuf, &SOCKET_BUFFER);
    }
}

fn run(sock: UdpSocket, counters: &ReflectorCounters, stop: &AtomicBool) {
    let mut batch = Batch::new();
    let mut sessions = Sessions::default();
    // Slots of the batch that get a reply; never grows past BATCH.
    let mut replies: Vec<usize> = Vec::with_capacity(BATCH);
    let fd = sock.as_fd();
    while !stop.load(Ordering::Relaxed) {
        let n = match batch.recv(fd) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                crate::say!("reflector: recvmmsg failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // User-space receive time for datagrams without a kernel timestamp:
        // read once per batch, on first need, right after the receive.
        let mut user_rx: Option<i64> = None;
        let (mut malformed, mut kernel, mut new_sessions) = (0u64, 0u64, 0u64);
        replies.clear();
        for i in 0..n {
            let got = batch.received(i);
            let rx_ns = match got.kernel_rx_ns {
                Some(t) => t,
                None => *user_rx.get_or_insert_with(realtime_ns),
            };
            if got.from.is_none() {
                malformed += 1;
                continue;
            }
            let packet = batch.datagram_mut(i);
            let req = match ProbePacket::decode(packet) {
                Ok(p) if p.kind == Kind::Request => p,
                _ => {
                    malformed += 1;
                    continue;
                }
            };
            if got.kernel_rx_ns.is_some() {
                kernel += 1;
            }
            let (count, new) = sessions.count(req.session);
            if new {
                new_sessions += 1;
            }
            ProbePacket {
                kind: Kind::Reply,
                reflector_rx_ns: rx_ns,
                reflector_tx_ns: 0,
                reflector_rx_count: count,
                ..req
            }
            .encode(&mut packet[..HEADER_LEN]);
            replies.push(i);
        }
        add(&counters.batches, 1);
        add(&counters.malformed, malformed);
        add(&counters.kernel_timestamps, kernel);
        add(&counters.sessions, new_sessions);
        if replies.is_empty() {
            continue;
        }
        // One send time for the whole batch, taken just before sendmmsg.
        let tx = realtime_ns().to_be_bytes();
        for &i in &replies {
            batch.datagram_mut(i)[TX_NS_AT..TX_NS_AT + 8].copy_from_slice(&tx);
        }
        // Counted before sending, so a client that got the reply sees it
        // counted; failures are taken back.
        add(&counters.echoed, replies.len() as u64);
        let failed = batch.send_back(fd, &replies) as u64;
        if failed > 0 {
            counters.echoed.fetch_sub(failed, Ordering::Relaxed);
            add(&counters.send_errors, failed);
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_count_and_clear() {
        let mut s = Sessions::default();
        assert_eq!(s.count(7), (1, true));
        assert_eq!(s.count(7), (2, false));
        assert_eq!(s.count(8), (1, true));
        for i in 100..(100 + MAX_SESSIONS as u64) {
            s.count(i);
        }
        assert!(s.counts.len() <= MAX_SESSIONS);
        // Session 7 was forgotten when the table overflowed.
        assert_eq!(s.count(7), (1, true));
    }

    #[test]
    fn cached_session_is_written_back_when_another_comes() {
        let mut s = Sessions::default();
        for i in 1..=5 {
            assert_eq!(s.count(1), (i, i == 1));
        }
        assert_eq!(s.count(2), (1, true));
        assert_eq!(s.count(1), (6, false));
        assert_eq!(s.count(2), (2, false));
        assert_eq!(s.count(2), (3, false));
        assert_eq!(s.count(1), (7, false));
    }

    #[test]
    fn tx_offset_is_the_send_time_field() {
        let mut buf = [0u8; HEADER_LEN];
        ProbePacket::request(1, 2, 3).encode(&mut buf);
        buf[TX_NS_AT..TX_NS_AT + 8].copy_from_slice(&0x0102_0304_0506_0708i64.to_be_bytes());
        let p = ProbePacket::decode(&buf).unwrap();
        assert_eq!(p.reflector_tx_ns, 0x0102_0304_0506_0708);
        assert_eq!((p.session, p.seq, p.client_send_ns), (1, 2, 3));
        assert_eq!((p.reflector_rx_ns, p.reflector_rx_count), (0, 0));
    }
}
