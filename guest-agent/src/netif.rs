//! IPv4 interface configuration through the classic `SIOCSIF*` ioctls.
//!
//! One of the crate's two modules with `unsafe` code (the other is the
//! reflector's batched socket calls): each block is one
//! `ioctl` on a `struct ifreq` that lives on the stack for the whole call.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// An `AF_INET` datagram socket, the handle the interface ioctls act on.
fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments; no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2), is valid and owned by
    // nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a valid interface name"),
        ));
    }
    // SAFETY: `ifreq` is a plain C struct (a name array and a union of
    // plain C types); all-zero bytes are a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

/// A `struct sockaddr` holding the AF_INET address `addr` (port 0): the
/// layout of `struct sockaddr_in`, built without any cast.
fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let mut data = [0 as libc::c_char; 14];
    // sa_data[0..2] is the port (0), sa_data[2..6] the address, network order.
    for (dst, src) in data[2..6].iter_mut().zip(addr.octets()) {
        *dst = src as libc::c_char;
    }
    libc::sockaddr {
        sa_family: libc::AF_INET as libc::sa_family_t,
        sa_data: data,
    }
}

fn ioctl(
    sock: &OwnedFd,
    request: libc::Ioctl,
    req: &mut libc::ifreq,
    what: &str,
) -> io::Result<()> {
    // SAFETY: every request used here (SIOCSIFADDR, SIOCSIFNETMASK,
    // SIOCGIFFLAGS, SIOCSIFFLAGS) takes a pointer to a `struct ifreq`;
    // `req` is a valid, exclusive reference that outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, req as *mut libc::ifreq) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// The netmask of a prefix length (0 to 32; larger counts as 32).
pub fn prefix_to_netmask(prefix_len: u8) -> Ipv4Addr {
    let p = u32::from(prefix_len.min(32));
    Ipv4Addr::from(if p == 0 { 0 } else { u32::MAX << (32 - p) })
}

/// Gives interface `name` the address `addr/prefix_len` and brings it up.
///
/// The kernel adds the route to the connected subnet by itself; no other
/// route (and no default route) is added.
pub fn configure_ipv4(name: &str, addr: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
    let sock = inet_socket()?;

    let mut req = ifreq_for(name)?;
    req.ifr_ifru.ifru_addr = sockaddr_in(addr);
    ioctl(&sock, libc::SIOCSIFADDR, &mut req, "SIOCSIFADDR")?;

    let mut req = ifreq_for(name)?;
    req.ifr_ifru.ifru_netmask = sockaddr_in(prefix_to_netmask(prefix_len));
    ioctl(&sock, libc::SIOCSIFNETMASK, &mut req, "SIOCSIFNETMASK")?;

    set_up(&sock, name)
}

/// Brings interface `name` up without touching its addresses.
pub fn bring_up(name: &str) -> io::Result<()> {
    set_up(&inet_socket()?, name)
}

fn set_up(sock: &OwnedFd, name: &str) -> io::Result<()> {
    let mut req = ifreq_for(name)?;
    ioctl(sock, libc::SIOCGIFFLAGS, &mut req, "SIOCGIFFLAGS")?;
    // SAFETY: SIOCGIFFLAGS just filled the `ifru_flags` member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    ioctl(sock, libc::SIOCSIFFLAGS, &mut req, "SIOCSIFFLAGS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks() {
        assert_eq!(prefix_to_netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(prefix_to_netmask(8), Ipv4Addr::new(255, 0, 0, 0));
        assert_eq!(prefix_to_netmask(15), Ipv4Addr::new(255, 254, 0, 0));
        assert_eq!(prefix_to_netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_to_netmask(32), Ipv4Addr::new(255, 255, 255, 255));
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(configure_ipv4("", Ipv4Addr::LOCALHOST, 8).is_err());
        assert!(configure_ipv4("0123456789abcdefg", Ipv4Addr::LOCALHOST, 8).is_err());
        assert!(bring_up("no-such-if0").is_err());
    }

    /// Configures one end of a veth pair and `lo` inside a fresh network
    /// namespace (of this test's thread only). Needs root and `ip`;
    /// skipped otherwise.
    #[test]
    fn configures_interfaces_in_a_private_netns() {
        let t = std::thread::spawn(|| {
            if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                eprintln!("skipped: cannot unshare a network namespace (not root?)");
                return;
            }
            let added = std::process::Command::new("ip")
                .args([
                    "link",
                    "add",
                    "lmigtest0",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "lmigtest1",
                ])
                .status();
            if !matches!(added, Ok(s) if s.success()) {
                eprintln!("skipped: cannot add a veth pair");
                return;
            }
            configure_ipv4("lo", Ipv4Addr::LOCALHOST, 8).unwrap();
            configure_ipv4("lmigtest0", Ipv4Addr::new(198, 18, 7, 10), 24).unwrap();
            bring_up("lmigtest1").unwrap();
            let out = std::process::Command::new("ip")
                .args(["-4", "-o", "addr", "show"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("127.0.0.1/8"), "{text}");
            assert!(text.contains("198.18.7.10/24"), "{text}");
            let out = std::process::Command::new("ip")
                .args(["-4", "route", "show"])
                .output()
                .unwrap();
            let routes = String::from_utf8_lossy(&out.stdout);
            assert!(routes.contains("198.18.7.0/24"), "{routes}");
            assert!(!routes.contains("default"), "{routes}");
            // Loopback really works in the new namespace.
            let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            a.send_to(b"x", b.local_addr().unwrap()).unwrap();
            let mut buf = [0u8; 4];
            b.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            assert_eq!(b.recv(&mut buf).unwrap(), 1);
        });
        t.join().unwrap();
    }
}
