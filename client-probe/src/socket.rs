//! The probe socket: receive with the kernel's CLOCK_REALTIME receive
//! timestamp (`SO_TIMESTAMPNS` via `recvmsg`), falling back to a user-space
//! clock read when the kernel gives none.
//!
//! The socket is always handed in (the harness creates it inside a network
//! namespace); nothing here creates one.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use wire::clock::realtime_ns;

/// One datagram as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffer (a longer datagram is cut to it).
    pub len: usize,
    /// The sender's address, IPv4-mapped IPv6 addresses turned into IPv4.
    pub from: Option<SocketAddr>,
    /// Receive time, ns since the Unix epoch on CLOCK_REALTIME.
    pub rx_ns: i64,
    /// Whether `rx_ns` came from the kernel (`SO_TIMESTAMPNS`) rather than
    /// from reading the clock after `recvmsg` returned.
    pub kernel_ts: bool,
}

/// Asks the kernel for receive timestamps and sets a read timeout, so a
/// receiving thread wakes up at least every `timeout` to check for stop.
///
/// Failing to enable timestamps is not an error: every record says whether
/// its timestamp came from the kernel.
pub fn prepare(socket: &UdpSocket, timeout: Duration) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(timeout))?;
    let _ = setsockopt(socket, sockopt::ReceiveTimestampns, &true);
    Ok(())
}

/// Receives one datagram into `buf`, from a UDP socket or any other
/// datagram socket (the ICMP probe's raw socket).
///
/// Returns `Ok(None)` when the read timeout expired or a signal interrupted
/// the call, so the caller can check its stop flag.
pub fn recv(
    socket: &impl AsRawFd,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> io::Result<Option<Received>> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = match recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::empty(),
    ) {
        Ok(m) => m,
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
        Err(e) => return Err(io::Error::from(e)),
    };
    let (rx_ns, kernel_ts) = rx_time(msg.cmsgs().ok().into_iter().flatten());
    Ok(Some(Received {
        len: msg.bytes,
        from: msg.address.as_ref().and_then(to_std),
        rx_ns,
        kernel_ts,
    }))
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    if let Some(v6) = a.as_sockaddr_in6() {
        return Some(normalize(SocketAddr::V6(SocketAddrV6::from(*v6))));
    }
    None
}

/// Turns an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) into IPv4, so a
/// dual-stack socket's sender compares equal to an IPv4 target.
pub fn normalize(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
            None => a,
        },
        SocketAddr::V4(_) => a,
    }
}

/// A control-message buffer big enough for one `SO_TIMESTAMPNS` message.
pub fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(nix::sys::time::TimeSpec)
}

/// The receive time of a datagram or frame from its control messages: the
/// kernel's `SCM_TIMESTAMPNS` when present and non-zero (`true`), else
/// CLOCK_REALTIME read now (`false`).
pub(crate) fn rx_time(cmsgs: impl Iterator<Item = ControlMessageOwned>) -> (i64, bool) {
    let kernel = cmsgs
        .filter_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(ts) => Some(
                ts.tv_sec()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.tv_nsec()),
            ),
            _ => None,
        })
        .last();
    match kernel {
        // A zero timestamp means the kernel had none for this one.
        Some(ns) if ns > 0 => (ns, true),
        _ => (realtime_ns(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_become_ipv4() {
        let m: SocketAddr = "[::ffff:127.0.0.1]:9".parse().unwrap();
        assert_eq!(normalize(m), "127.0.0.1:9".parse::<SocketAddr>().unwrap());
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        assert_eq!(normalize(v6), v6);
    }

    #[test]
    fn loopback_datagram_carries_a_kernel_timestamp() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        prepare(&a, Duration::from_millis(50)).unwrap();
        let before = realtime_ns();
        b.send_to(b"hello", a.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        let mut cmsg = cmsg_buffer();
        let r = recv(&a, &mut buf, &mut cmsg).unwrap().unwrap();
        assert_eq!(&buf[..r.len], b"hello");
        assert_eq!(r.from, Some(b.local_addr().unwrap()));
        assert!(r.kernel_ts);
        assert!(r.rx_ns >= before - 1_000_000 && r.rx_ns <= realtime_ns());
        // Nothing more to read: the timeout gives None, not an error.
        assert_eq!(recv(&a, &mut buf, &mut cmsg).unwrap(), None);
    }
}
