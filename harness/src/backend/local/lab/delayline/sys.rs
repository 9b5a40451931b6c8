//! The system calls of the delay line: AF_PACKET sockets, batched sends,
//! the socket's drop counter, CLOCK_MONOTONIC, and real-time scheduling.
//!
//! The delay line's only `unsafe` code. Every pointer handed to the kernel
//! comes from a reference or a slice that outlives the call, and every
//! struct passed by pointer is a plain C struct built here.

use super::frames::VNET_HDR_LEN;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Bytes of each socket's kernel buffers: a few ms of a 10 Gbit/s burst,
/// so a receiver thread that is descheduled for a moment loses nothing.
const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// How long a blocking receive waits before it returns to look at the
/// stop flag: well inside the 100 ms in which a stop must be noticed.
pub(crate) const RECV_TIMEOUT: Duration = Duration::from_millis(50);
/// How long a send may block on a full socket buffer.
const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// Now on CLOCK_MONOTONIC, ns.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusive timespec for the call. This clock
    // cannot fail with a valid pointer (it would read 0 if it did).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

fn check(rc: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(rc)
}

fn set_opt<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the size given, which is
    // what the option `name` reads.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    check(rc, what).map(|_| ())
}

fn timeval(d: Duration) -> libc::timeval {
    libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    }
}

/// An AF_PACKET socket on interface `ifname` of the calling thread's
/// network namespace, receiving every frame that arrives on it (not those
/// it sends itself), each behind a `virtio_net_hdr`, with offloaded VLAN
/// tags beside it.
pub(crate) fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name holds a NUL"))?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("no interface {ifname}: {e}"),
        ));
    }
    // Protocol 0: the socket receives nothing until it is bound to the one
    // interface, so no frame of another interface slips in before.
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = check(
        unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) },
        "socket(AF_PACKET) (are you root?)",
    )?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by no one
    // else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    configure(sock.as_fd())?;
    bind(sock.as_fd(), ifindex)?;
    Ok(sock)
}

fn configure(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one: libc::c_int = 1;
    set_opt(
        fd,
        libc::SOL_PACKET,
        libc::PACKET_VNET_HDR,
        &one,
        "PACKET_VNET_HDR",
    )?;
    set_opt(
        fd,
        libc::SOL_PACKET,
        libc::PACKET_IGNORE_OUTGOING,
        &one,
        "PACKET_IGNORE_OUTGOING",
    )?;
    set_opt(
        fd,
        libc::SOL_PACKET,
        libc::PACKET_AUXDATA,
        &one,
        "PACKET_AUXDATA",
    )?;
    // The FORCE variants pass net.core.[rw]mem_max (root only); fall back
    // to what the limit allows.
    for (force, plain, what) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, "SO_RCVBUF"),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, "SO_SNDBUF"),
    ] {
        if set_opt(fd, libc::SOL_SOCKET, force, &SOCKET_BUFFER, what).is_err() {
            set_opt(fd, libc::SOL_SOCKET, plain, &SOCKET_BUFFER, what)?;
        }
    }
    set_opt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_RCVTIMEO,
        &timeval(RECV_TIMEOUT),
        "SO_RCVTIMEO",
    )?;
    set_opt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_SNDTIMEO,
        &timeval(SEND_TIMEOUT),
        "SO_SNDTIMEO",
    )
}

fn bind(fd: BorrowedFd<'_>, ifindex: libc::c_uint) -> io::Result<()> {
    // SAFETY: `sockaddr_ll` is a plain C struct of integers and a byte
    // array; all-zero bytes are a valid value of it.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as libc::c_ushort;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: `addr` is a valid sockaddr_ll for the call, with its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    check(rc, "bind").map(|_| ())
}

/// One message [`recv`] took off the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// Bytes written into the buffer (header and frame).
    pub len: usize,
    /// Whether the message was longer than the buffer (and is cut).
    pub truncated: bool,
    /// The offloaded VLAN tag (TPID, TCI), if the frame had one.
    pub vlan: Option<(u16, u16)>,
}

/// Control-message room for one `tpacket_auxdata`, in 8-byte words so it
/// is aligned for `cmsghdr`.
const CMSG_WORDS: usize = 8;

/// Receives one message into `buf`; with `wait` it blocks up to
/// [`RECV_TIMEOUT`], without it returns `WouldBlock` when nothing is there.
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], wait: bool) -> io::Result<Received> {
    let mut cmsg = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `msghdr` is a plain C struct; all-zero bytes (null pointers,
    // zero lengths) are a valid value of it.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg);
    let flags = libc::MSG_TRUNC | if wait { 0 } else { libc::MSG_DONTWAIT };
    // SAFETY: `msg` points at `iov` (over `buf`) and `cmsg`, all of which
    // outlive the call and are exclusively borrowed for it.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    Ok(Received {
        len: n.min(buf.len()),
        truncated: n > buf.len() || msg.msg_flags & libc::MSG_TRUNC != 0,
        vlan: vlan_of(&msg),
    })
}

fn vlan_of(msg: &libc::msghdr) -> Option<(u16, u16)> {
    // SAFETY: `msg` was filled by recvmsg(2); the CMSG_* macros walk its
    // control buffer within `msg_controllen`, and the data of a
    // SOL_PACKET/PACKET_AUXDATA message is a `tpacket_auxdata` (read
    // unaligned: the buffer guarantees only cmsghdr's alignment).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                let aux: libc::tpacket_auxdata =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID == 0 {
                    return None;
                }
                let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    aux.tp_vlan_tpid
                } else {
                    0x8100
                };
                return Some((tpid, aux.tp_vlan_tci));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// Sends `msgs` (each a `virtio_net_hdr` and a frame) in one
/// `sendmmsg(2)`; returns how many went, or the error of the first that
/// did not when none went.
pub(crate) fn send_batch(fd: BorrowedFd<'_>, msgs: &[&[u8]]) -> io::Result<usize> {
    if msgs.is_empty() {
        return Ok(0);
    }
    let mut iovs: Vec<libc::iovec> = msgs
        .iter()
        .map(|m| libc::iovec {
            // The kernel only reads through it.
            iov_base: m.as_ptr().cast_mut().cast(),
            iov_len: m.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: as in `recv`: all-zero is a valid `msghdr`.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            }
        })
        .collect();
    // SAFETY: every header points at one iovec of `iovs`, each over a
    // message slice; all of them outlive the call.
    let n = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            hdrs.len() as libc::c_uint,
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Frames the kernel dropped on this socket since the last call because
/// its receive buffer was full (`PACKET_STATISTICS`, which resets it).
pub(crate) fn take_drops(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `st` and `len` are valid and exclusive for the call; `len`
    // holds the size of `st`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    check(rc, "PACKET_STATISTICS")?;
    Ok(u64::from(st.tp_drops))
}

/// Gives the calling thread `SCHED_FIFO` at `priority` (1 to 99).
pub(crate) fn set_realtime(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pthread_self() is always a valid handle to the calling
    // thread, and `param` is an initialised sched_param that outlives the
    // call, which only reads it.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// The receive buffer a message needs: a 64 KiB GSO super-packet (the
/// veth default; BIG TCP would allow more) with its header and a margin.
pub(crate) const RECV_BUFFER: usize = VNET_HDR_LEN + 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(a > 0 && b >= a + 2_000_000, "{a} {b}");
    }
}
