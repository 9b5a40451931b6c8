//! Taking a link down and up with one netlink message each, so the host
//! can time a network cut to tens of microseconds (an `ip` command costs a
//! fork and exec: milliseconds of uncertainty).

use nix::sys::socket::{
    recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
};
use std::io;
use std::os::fd::AsRawFd;

const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const IFF_UP: u32 = 1;

/// A route-netlink socket in the calling thread's network namespace.
pub struct LinkControl {
    fd: std::os::fd::OwnedFd,
    seq: u32,
}

impl LinkControl {
    /// Opens the socket (call it in the namespace whose links to change).
    pub fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        let kernel = nix::sys::socket::NetlinkAddr::new(0, 0);
        nix::sys::socket::connect(fd.as_raw_fd(), &kernel)?;
        Ok(Self { fd, seq: 0 })
    }

    /// Sets `ifindex` up or down and waits for the kernel's acknowledgement:
    /// when this returns, the change has been made.
    pub fn set_up(&mut self, ifindex: u32, up: bool) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let msg = link_message(self.seq, ifindex, up);
        send(self.fd.as_raw_fd(), &msg, MsgFlags::empty())?;
        let mut buf = [0u8; 1024];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            match parse_ack(&buf[..n], self.seq) {
                Some(0) => return Ok(()),
                Some(errno) => return Err(io::Error::from_raw_os_error(-errno)),
                None => continue,
            }
        }
    }
}

/// An RTM_NEWLINK request that changes only the IFF_UP flag.
fn link_message(seq: u32, ifindex: u32, up: bool) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0..4].copy_from_slice(&32u32.to_ne_bytes());
    m[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // ifinfomsg: family 0, pad, type 0, index, flags, change.
    m[20..24].copy_from_slice(&ifindex.to_ne_bytes());
    m[24..28].copy_from_slice(&(if up { IFF_UP } else { 0 }).to_ne_bytes());
    m[28..32].copy_from_slice(&IFF_UP.to_ne_bytes());
    m
}

/// The error code of the NLMSG_ERROR answer to `seq` (0 = success).
fn parse_ack(buf: &[u8], seq: u32) -> Option<i32> {
    let u32_at = |o: usize| {
        buf.get(o..o + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
    };
    let ty = buf
        .get(4..6)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_ne_bytes)?;
    if ty != NLMSG_ERROR || u32_at(8)? != seq {
        return None;
    }
    u32_at(16).map(|e| e as i32)
}

/// Cuts a guest off the network for about `d` by taking its tap device
/// `tap` (in namespace `ns`) down and up again: both directions stop (the
/// bridge drops frames to a down port, and QEMU's writes to a down tap
/// fail). Each change is one netlink message, acknowledged by the kernel;
/// returns the midpoints of the two exchanges as the cut's start and end,
/// and half their durations as the uncertainty (±, ns).
pub async fn cut_tap(
    ns: String,
    tap: String,
    d: std::time::Duration,
) -> anyhow::Result<(i64, i64, i64)> {
    use crate::clock::now_ns;
    use anyhow::Context;
    let times = tokio::task::spawn_blocking(move || {
        super::netns::in_netns(&ns, move || {
            let index = nix::net::if_::if_nametoindex(tap.as_str())?;
            let mut link = LinkControl::open()?;
            let t0 = now_ns();
            link.set_up(index, false)?;
            let t1 = now_ns();
            std::thread::sleep(d);
            let t2 = now_ns();
            link.set_up(index, true)?;
            let t3 = now_ns();
            Ok((t0, t1, t2, t3))
        })
    })
    .await
    .context("the link-control thread")?
    .context("taking the guest's tap down and up")?;
    let (t0, t1, t2, t3) = times;
    Ok(((t0 + t1) / 2, (t2 + t3) / 2, ((t1 - t0) + (t3 - t2)) / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_changes_only_the_up_flag() {
        let m = link_message(7, 42, false);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 42);
        assert_eq!(u32::from_ne_bytes(m[24..28].try_into().unwrap()), 0);
        assert_eq!(u32::from_ne_bytes(m[28..32].try_into().unwrap()), IFF_UP);
        let mut ack = [0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[8..12].copy_from_slice(&7u32.to_ne_bytes());
        assert_eq!(parse_ack(&ack, 7), Some(0));
        assert_eq!(parse_ack(&ack, 8), None);
        ack[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(parse_ack(&ack, 7), Some(-1));
        assert_eq!(parse_ack(&ack[..3], 7), None);
    }
}
