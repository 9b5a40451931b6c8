//! Batched UDP receive and send (`recvmmsg(2)`, `sendmmsg(2)`) for the
//! probe reflector, with each datagram's kernel receive timestamp
//! (`SO_TIMESTAMPNS` control message), and the one socket option nix does
//! not wrap (`SO_BUSY_POLL`).
//!
//! This is one of the crate's two modules with `unsafe` code (the other is
//! [`crate::netif`]): these system calls and the reading of their control
//! messages. Every buffer the kernel writes into is owned by [`Batch`],
//! allocated once and never resized, so the raw pointers handed to the
//! kernel stay valid for the whole call; the header arrays are rebuilt from
//! those buffers before every call, so no pointer outlives a borrow.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Datagrams received or sent per system call at most.
pub(crate) const BATCH: usize = 64;

/// Bytes of each receive slot: the largest UDP payload over IPv4 fits, so a
/// datagram is never truncated and is echoed whole, as before batching.
/// The slots are allocated zeroed (`calloc`, so lazily mapped by the
/// kernel): only the pages datagrams are written into become resident.
pub(crate) const SLOT_LEN: usize = 65_536;

/// Control-message buffer of one datagram, in 8-byte words so that it is
/// aligned for `cmsghdr`: room for an `SCM_TIMESTAMPNS` (`CMSG_SPACE` of a
/// 16-byte `timespec` is 32 bytes on x86-64) with spare space for any other
/// control message the kernel may add.
const CMSG_WORDS: usize = 16;

/// What [`Batch::recv`] learnt about one datagram.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Received {
    /// Bytes of the datagram.
    pub len: usize,
    /// The sender, if the kernel gave an IPv4 address.
    pub from: Option<SocketAddrV4>,
    /// The kernel's receive timestamp (CLOCK_REALTIME, ns since the epoch),
    /// if it came with the datagram.
    pub kernel_rx_ns: Option<i64>,
}

/// Preallocated buffers and headers for up to [`BATCH`] datagrams.
///
/// Not `Send` (it holds raw pointers): create it on the thread that uses it.
pub(crate) struct Batch {
    /// [`BATCH`] slots of [`SLOT_LEN`] bytes.
    bufs: Vec<u8>,
    /// The sender of each slot's datagram; also the destination of its reply.
    addrs: Box<[libc::sockaddr_in; BATCH]>,
    cmsgs: Box<[[u64; CMSG_WORDS]; BATCH]>,
    iovs: Box<[libc::iovec; BATCH]>,
    hdrs: Box<[libc::mmsghdr; BATCH]>,
    received: [Received; BATCH],
    count: usize,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// An all-zero value of a plain C struct.
fn zeroed<T: Copy>() -> T {
    // SAFETY: only used for `sockaddr_in`, `iovec` and `mmsghdr`: C structs
    // of integers and raw pointers, for which all-zero bytes are a valid
    // value (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

impl Batch {
    /// Allocates the buffers (about 4 MiB of address space, see
    /// [`SLOT_LEN`]).
    pub(crate) fn new() -> Self {
        Self {
            bufs: vec![0u8; BATCH * SLOT_LEN],
            addrs: Box::new([zeroed(); BATCH]),
            cmsgs: Box::new([[0u64; CMSG_WORDS]; BATCH]),
            iovs: Box::new([zeroed(); BATCH]),
            hdrs: Box::new([zeroed(); BATCH]),
            received: [Received::default(); BATCH],
            count: 0,
        }
    }

    /// What is known about datagram `i` of the last receive (`i` below what
    /// [`Batch::recv`] returned).
    pub(crate) fn received(&self, i: usize) -> Received {
        self.received[i]
    }

    /// The bytes of datagram `i` of the last receive, to be rewritten in
    /// place into its reply.
    pub(crate) fn datagram_mut(&mut self, i: usize) -> &mut [u8] {
        let start = i * SLOT_LEN;
        let len = self.received[i].len.min(SLOT_LEN);
        &mut self.bufs[start..start + len]
    }

    /// Receives up to [`BATCH`] datagrams: blocks (within the socket's
    /// `SO_RCVTIMEO`) for the first, then takes only what is already queued
    /// (`MSG_WAITFORONE`). Returns how many arrived.
    pub(crate) fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.count = 0;
        let base = self.bufs.as_mut_ptr();
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                // SAFETY: `i * SLOT_LEN + SLOT_LEN <= bufs.len()`, so the
                // offset stays inside the allocation.
                iov_base: unsafe { base.add(i * SLOT_LEN) }.cast(),
                iov_len: SLOT_LEN,
            };
            let h = &mut self.hdrs[i];
            h.msg_len = 0;
            h.msg_hdr.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_iov = std::ptr::from_mut(&mut self.iovs[i]);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = std::mem::size_of::<[u64; CMSG_WORDS]>() as _;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: `hdrs` holds BATCH headers, each pointing at its own
        // name, iovec (one slot of `bufs`) and control buffer, all owned by
        // `self`, alive and not otherwise borrowed during the call; the
        // lengths given are those of the buffers. The timeout is null (the
        // socket's SO_RCVTIMEO bounds the wait instead).
        let rc = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (rc as usize).min(BATCH);
        for i in 0..n {
            let h = &self.hdrs[i];
            let from = if h.msg_hdr.msg_namelen as usize >= std::mem::size_of::<libc::sockaddr_in>()
                && self.addrs[i].sin_family == libc::AF_INET as libc::sa_family_t
            {
                let a = &self.addrs[i];
                Some(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                ))
            } else {
                None
            };
            self.received[i] = Received {
                len: (h.msg_len as usize).min(SLOT_LEN),
                from,
                kernel_rx_ns: timestamp_ns(&h.msg_hdr),
            };
        }
        self.count = n;
        Ok(n)
    }

    /// Sends datagram `i` of the last receive back to its sender, for each
    /// `i` in `slots` (each below what [`Batch::recv`] returned,
    /// with a sender), in as few
    /// `sendmmsg` calls as the kernel allows. Returns how many could not be
    /// sent.
    pub(crate) fn send_back(&mut self, fd: BorrowedFd<'_>, slots: &[usize]) -> usize {
        let k = slots.len().min(BATCH);
        let base = self.bufs.as_mut_ptr();
        for (j, &i) in slots[..k].iter().enumerate() {
            let i = i.min(BATCH - 1);
            self.iovs[j] = libc::iovec {
                // SAFETY: `i < BATCH`, so the offset stays inside `bufs`.
                iov_base: unsafe { base.add(i * SLOT_LEN) }.cast(),
                iov_len: self.received[i].len.min(SLOT_LEN),
            };
            let h = &mut self.hdrs[j];
            h.msg_len = 0;
            h.msg_hdr.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_iov = std::ptr::from_mut(&mut self.iovs[j]);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
        }
        let mut failed = 0;
        let mut done = 0;
        while done < k {
            // SAFETY: headers `done..k` are initialised above and point at
            // buffers owned by `self` (an address the kernel filled in, one
            // slot of `bufs` with its received length), alive and not
            // otherwise borrowed during the call.
            let rc = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    self.hdrs.as_mut_ptr().add(done),
                    (k - done) as libc::c_uint,
                    0,
                )
            };
            if rc > 0 {
                done += rc as usize;
            } else if rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            } else {
                // sendmmsg reports an error only when the first datagram
                // could not be sent: skip that one and go on.
                failed += 1;
                done += 1;
            }
        }
        failed
    }
}

/// The `SCM_TIMESTAMPNS` control message of a received header, in ns.
fn timestamp_ns(h: &libc::msghdr) -> Option<i64> {
    let mut found = None;
    // SAFETY: `h` is a header the kernel has just filled in: its
    // `msg_control` points at that datagram's control buffer (aligned for
    // `cmsghdr`) and `msg_controllen` is the length the kernel wrote. The
    // CMSG_* macros stay within those bounds; the timespec is read
    // unaligned from inside a message whose length was checked.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let need = libc::CMSG_LEN(std::mem::size_of::<libc::timespec>() as u32) as usize;
            if (*c).cmsg_level == libc::SOL_SOCKET
                && (*c).cmsg_type == libc::SCM_TIMESTAMPNS
                && (*c).cmsg_len as usize >= need
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                found = Some(
                    (ts.tv_sec as i64)
                        .saturating_mul(1_000_000_000)
                        .saturating_add(ts.tv_nsec as i64),
                );
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    found
}

/// Sets `SO_BUSY_POLL`: a blocking receive on an empty queue first polls
/// the NIC's queue for up to `usec` microseconds before sleeping. Values
/// above `net.core.busy_read` need CAP_NET_ADMIN (PID 1 has it).
pub(crate) fn set_busy_poll(fd: BorrowedFd<'_>, usec: u32) -> io::Result<()> {
    let val = libc::c_int::try_from(usec).unwrap_or(libc::c_int::MAX);
    // SAFETY: the option value is a c_int on the stack, alive for the call,
    // and its exact size is given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL,
            std::ptr::from_ref(&val).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
