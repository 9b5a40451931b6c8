//! The UDP probe reflector: echoes [`wire::probe`] requests with the
//! guest's timestamps and per-session receive count.
//!
//! It runs on a dedicated OS thread with a blocking socket, not as a tokio
//! task, for the lowest latency on a one-vCPU emulated guest.
//!
//! Receive time: the kernel's `SO_TIMESTAMPNS` receive timestamp
//! (CLOCK_REALTIME, taken when the packet entered the guest's network
//! stack), read through `recvmsg`. If a datagram arrives without that
//! control message, the user-space CLOCK_REALTIME right after `recvmsg`
//! returns is used instead. Send time: user-space CLOCK_REALTIME just
//! before `sendto`.

use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};
use thiserror::Error;
use wire::control::ReflectorStats;
use wire::probe::{Kind, ProbePacket, HEADER_LEN};

/// Sessions remembered at most; beyond that the table is cleared.
pub const MAX_SESSIONS: usize = 1024;

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
}

/// A running reflector thread.
#[derive(Debug)]
pub struct Reflector {
    local_addr: SocketAddr,
    counters: Arc<ReflectorCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// CLOCK_REALTIME in ns since the Unix epoch (0 if the clock is unreadable,
/// which Linux never does for this clock).
pub fn realtime_ns() -> i64 {
    clock_gettime(ClockId::CLOCK_REALTIME).map_or(0, |t| timespec_ns(&t))
}

fn timespec_ns(t: &TimeSpec) -> i64 {
    t.tv_sec()
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec())
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
#[derive(Debug, Default)]
struct Sessions {
    counts: HashMap<u64, u64>,
}

impl Sessions {
    /// Counts one request of `session`; returns its count (this one
    /// included) and whether the session is new.
    fn count(&mut self, session: u64) -> (u64, bool) {
        if !self.counts.contains_key(&session) && self.counts.len() >= MAX_SESSIONS {
            self.counts.clear();
        }
        let mut new = false;
        let c = self.counts.entry(session).or_insert_with(|| {
            new = true;
            0
        });
        *c += 1;
        (*c, new)
    }
}

fn run(sock: UdpSocket, counters: &ReflectorCounters, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut sessions = Sessions::default();
    let fd = sock.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        let (len, from, kernel_rx) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match socket::recvmsg::<SockaddrIn>(
                fd,
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) {
                Ok(m) => m,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    crate::say!("reflector: recvmsg failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let mut kernel_rx = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(ts) = c {
                        kernel_rx = Some(timespec_ns(&ts));
                    }
                }
            }
            (msg.bytes, msg.address, kernel_rx)
        };
        let rx_ns = kernel_rx.unwrap_or_else(realtime_ns);
        let Some(from) = from else {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let packet = &mut buf[..len];
        let req = match ProbePacket::decode(packet) {
            Ok(p) if p.kind == Kind::Request => p,
            _ => {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        if kernel_rx.is_some() {
            counters.kernel_timestamps.fetch_add(1, Ordering::Relaxed);
        }
        let (count, new) = sessions.count(req.session);
        if new {
            counters.sessions.fetch_add(1, Ordering::Relaxed);
        }
        let mut reply = ProbePacket {
            kind: Kind::Reply,
            reflector_rx_ns: rx_ns,
            reflector_rx_count: count,
            ..req
        };
        reply.reflector_tx_ns = realtime_ns();
        reply.encode(&mut packet[..HEADER_LEN]);
        let to = SocketAddrV4::new(from.ip(), from.port());
        // Counted before sending, so a client that got the reply sees it
        // counted; taken back if the send fails.
        counters.echoed.fetch_add(1, Ordering::Relaxed);
        if sock.send_to(packet, to).is_err() {
            counters.echoed.fetch_sub(1, Ordering::Relaxed);
            counters.send_errors.fetch_add(1, Ordering::Relaxed);
        }
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
}
