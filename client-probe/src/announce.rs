//! Watches a link for the frames that announce a migrated VM's new place:
//! the "network switchover" markers on the harness's timeline.
//!
//! After a live migration the guest's MAC sits behind another port, and the
//! switches on the way only learn it when a frame from that MAC passes. Two
//! kinds of frames do that, and this module records both:
//!
//! - **RARP self-announce** ([`AnnounceKind::Rarp`]), sent by QEMU itself
//!   on the destination (`qemu_announce_self`) for every NIC, as soon as the
//!   guest runs there: by default 5 rounds, the first 50 ms after resume and
//!   each next one 100 ms later than the step before. Ethertype `0x8035`,
//!   destination `ff:ff:ff:ff:ff:ff`, source = the guest's MAC, RARP
//!   "request reverse" (opcode 3) with the guest's MAC as sender and target
//!   hardware address and both protocol addresses 0, padded to 60 bytes.
//!   The announced MAC is the target hardware address.
//! - **Gratuitous ARP** ([`AnnounceKind::GratuitousArp`]), sent by the
//!   guest's kernel when QEMU asks it to (virtio-net with the
//!   `GUEST_ANNOUNCE` feature; also by any host that announces an address):
//!   ethertype `0x0806`, an ARP request or reply whose sender and target
//!   protocol addresses are the same, non-zero IPv4 address. The announced
//!   MAC is the sender hardware address, the IP the sender protocol address.
//!
//! Every other frame with one of these two ethertypes (ordinary ARP
//! requests and replies, ARP probes from 0.0.0.0, RARP replies) is counted
//! as *other*; a frame with one of them whose body cannot be an
//! ARP/RARP over Ethernet and IPv4 (too short, other lengths or address
//! types) is counted as *malformed*. Frames with any other ethertype are
//! dropped after looking at their two ethertype bytes, and not counted.
//! Not seen: IPv6 unsolicited neighbour advertisements, and VLAN-tagged
//! frames whose tag the kernel did not strip.
//!
//! # How it captures
//!
//! [`AnnounceWatch::start`] opens an `AF_PACKET` socket on the calling
//! thread, so a caller that has entered a network namespace (`setns`)
//! watches that namespace's interface, and reads it on a background thread.
//! The interface is looked up and the socket bound to it by `pnet_datalink`
//! (not in promiscuous mode: announces are broadcast, and the link's state
//! is left as it was); frames are parsed with `pnet_packet`. The socket
//! stays in blocking mode with a 50 ms receive timeout
//! ([`READ_TIMEOUT`]), so [`AnnounceWatch::stop`] and `Drop` end the thread
//! within about that.
//!
//! The filter is in user space: every frame on the link (on the client's
//! link, mostly the probe stream, 2 frames per probe) is copied up to
//! [`SNAP_LEN`] bytes and dropped after its two ethertype bytes are read,
//! without taking a lock. A kernel (BPF) filter would spare that copy but
//! needs `unsafe` code, which this crate keeps to one audited call.
//!
//! # Timestamps
//!
//! [`AnnounceFrame::rx_ns`] is CLOCK_REALTIME in ns since the Unix epoch,
//! the clock of the probe's replies. It is the **kernel's** receive
//! timestamp (`SO_TIMESTAMPNS`), taken as the frame came in on the
//! interface, precise to about a microsecond and unaffected by when the
//! watcher thread gets to run. pnet's own receiver (`recvfrom`) throws that
//! timestamp away, so the watcher hands pnet a duplicate of a socket it
//! created itself for the bind and reads the frames with `recvmsg`. Should
//! the kernel give no timestamp, the clock is read after `recvmsg` returns
//! (a user-space timestamp: typically tens of µs late, more when the
//! machine is busy), and [`AnnounceFrame::kernel_ts`] says so.
//!
//! The raw bytes of every frame with an announce ethertype are kept (up to
//! [`MAX_RAW_FRAMES`]) and can be written as a pcap file
//! ([`AnnounceLog::write_pcap_file`], [`write_pcap`]).

use std::io::{self, IoSliceMut, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    recvmsg, setsockopt, socket, sockopt, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType,
};
use nix::sys::time::{TimeVal, TimeValLike};
use pnet_datalink::{Channel, NetworkInterface};
use pnet_packet::arp::{ArpHardwareTypes, ArpOperation, ArpOperations, ArpPacket};
use pnet_packet::ethernet::EtherTypes;
use serde::{Deserialize, Serialize};

/// Ethertype of RARP, which QEMU's self-announce uses.
pub const ETHERTYPE_RARP: u16 = 0x8035;
/// Ethertype of ARP, which gratuitous ARP uses.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// RARP "request reverse", the opcode of QEMU's self-announce.
pub const RARP_OP_REQUEST_REVERSE: u16 = 3;
/// How long the capture thread blocks in one read before it checks whether
/// it should stop: the bound on how long [`AnnounceWatch::stop`] takes.
pub const READ_TIMEOUT: Duration = Duration::from_millis(50);
/// At most this many raw frames are kept for the pcap; later ones are
/// counted in [`AnnounceLog::raw_dropped`]. Announces themselves are
/// always recorded in [`AnnounceLog::frames`].
pub const MAX_RAW_FRAMES: usize = 10_000;
/// Bytes of each frame read (and kept): announces are 42 to 60 bytes;
/// longer frames are cut, and their real length is kept for the pcap.
pub const SNAP_LEN: usize = 256;

/// Length of an Ethernet header without VLAN tag.
const ETH_HEADER_LEN: usize = 14;

/// What kind of announce a frame is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AnnounceKind {
    /// QEMU's RARP self-announce (ethertype 0x8035, opcode 3).
    Rarp,
    /// A gratuitous ARP (ethertype 0x0806, sender IP == target IP), sent by
    /// the guest's kernel.
    GratuitousArp,
}

/// One announce frame seen on the link.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AnnounceFrame {
    /// Receive time, ns since the Unix epoch on CLOCK_REALTIME: the
    /// kernel's timestamp (µs precision) when `kernel_ts`, else the clock
    /// read after the frame was read (user space, ~tens of µs late).
    pub rx_ns: i64,
    /// Whether `rx_ns` came from the kernel (`SO_TIMESTAMPNS`).
    #[serde(default)]
    pub kernel_ts: bool,
    /// RARP self-announce or gratuitous ARP.
    pub kind: AnnounceKind,
    /// The announced MAC, lower-case, e.g. `"52:54:00:12:34:56"`: for RARP
    /// the target hardware address, for gratuitous ARP the sender's.
    pub mac: String,
    /// For gratuitous ARP the announced (sender) IPv4 address; `None` for
    /// RARP, which announces no IP.
    pub ip: Option<String>,
}

/// Why a frame with an announce ethertype (0x8035, 0x0806) was not read as
/// ARP/RARP: counted in [`AnnounceLog::malformed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Shorter than an Ethernet header.
    #[error("frame of {len} bytes is shorter than an Ethernet header (14)")]
    ShortFrame {
        /// Bytes in the frame.
        len: usize,
    },
    /// The ARP/RARP body is shorter than the 28 bytes of Ethernet/IPv4 ARP.
    #[error("ethertype {ethertype:#06x} with a {len}-byte body, shorter than ARP's 28")]
    Truncated {
        /// The frame's ethertype.
        ethertype: u16,
        /// Bytes after the Ethernet header.
        len: usize,
    },
    /// The body is not ARP for Ethernet and IPv4 (hardware type 1, protocol
    /// 0x0800, address lengths 6 and 4).
    #[error(
        "ethertype {ethertype:#06x}: not ARP over Ethernet/IPv4 (hardware type {hardware_type}, \
         protocol {protocol_type:#06x}, address lengths {hw_len}/{proto_len})"
    )]
    NotEthernetIpv4 {
        /// The frame's ethertype.
        ethertype: u16,
        /// ARP hardware type (1 = Ethernet).
        hardware_type: u16,
        /// ARP protocol type (0x0800 = IPv4).
        protocol_type: u16,
        /// Hardware address length (6 for Ethernet).
        hw_len: u8,
        /// Protocol address length (4 for IPv4).
        proto_len: u8,
    },
}

/// What [`classify`] found in an announce frame: kind, announced MAC,
/// announced IP (gratuitous ARP only).
pub type Announce = (AnnounceKind, String, Option<String>);

/// Classifies one Ethernet frame (starting at the destination MAC, no FCS).
///
/// `Ok(None)` when it is not an announce: another ethertype, or an ARP/RARP
/// frame that announces nothing (an ordinary request or reply, an ARP probe
/// from 0.0.0.0, a RARP reply). `Err` when it has an announce ethertype but
/// cannot be ARP/RARP over Ethernet and IPv4. Pure; never panics, whatever
/// the bytes.
pub fn classify(frame: &[u8]) -> Result<Option<Announce>, Malformed> {
    let Some(ethertype) = ethertype_of(frame) else {
        return Err(Malformed::ShortFrame { len: frame.len() });
    };
    if ethertype != ETHERTYPE_RARP && ethertype != ETHERTYPE_ARP {
        return Ok(None);
    }
    let body = frame.get(ETH_HEADER_LEN..).unwrap_or_default();
    let Some(arp) = ArpPacket::new(body) else {
        return Err(Malformed::Truncated {
            ethertype,
            len: body.len(),
        });
    };
    let hardware_type = arp.get_hardware_type();
    let protocol_type = arp.get_protocol_type();
    let (hw_len, proto_len) = (arp.get_hw_addr_len(), arp.get_proto_addr_len());
    if hardware_type != ArpHardwareTypes::Ethernet
        || protocol_type != EtherTypes::Ipv4
        || hw_len != 6
        || proto_len != 4
    {
        return Err(Malformed::NotEthernetIpv4 {
            ethertype,
            hardware_type: hardware_type.0,
            protocol_type: protocol_type.0,
            hw_len,
            proto_len,
        });
    }
    let op = arp.get_operation();
    if ethertype == ETHERTYPE_RARP {
        if op == ArpOperation(RARP_OP_REQUEST_REVERSE) {
            return Ok(Some((
                AnnounceKind::Rarp,
                arp.get_target_hw_addr().to_string(),
                None,
            )));
        }
        return Ok(None);
    }
    let sender_ip = arp.get_sender_proto_addr();
    let is_request_or_reply = op == ArpOperations::Request || op == ArpOperations::Reply;
    if is_request_or_reply
        && sender_ip == arp.get_target_proto_addr()
        && sender_ip != Ipv4Addr::UNSPECIFIED
    {
        return Ok(Some((
            AnnounceKind::GratuitousArp,
            arp.get_sender_hw_addr().to_string(),
            Some(sender_ip.to_string()),
        )));
    }
    Ok(None)
}

/// The frame's ethertype (bytes 12..14), if it has an Ethernet header.
fn ethertype_of(frame: &[u8]) -> Option<u16> {
    match frame.get(12..ETH_HEADER_LEN) {
        Some(&[hi, lo]) => Some(u16::from_be_bytes([hi, lo])),
        _ => None,
    }
}

/// Whether a frame has one of the two ethertypes the watcher looks at.
fn is_announce_ethertype(frame: &[u8]) -> bool {
    matches!(ethertype_of(frame), Some(ETHERTYPE_RARP | ETHERTYPE_ARP))
}

/// A captured frame's bytes, for the pcap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// Receive time, as [`AnnounceFrame::rx_ns`].
    pub rx_ns: i64,
    /// The frame's length on the wire (without FCS); may exceed
    /// `bytes.len()` when the frame was cut at [`SNAP_LEN`].
    pub orig_len: usize,
    /// The frame's first bytes, from the destination MAC.
    pub bytes: Vec<u8>,
}

/// Everything an [`AnnounceWatch`] saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AnnounceLog {
    /// The interface watched.
    pub ifname: String,
    /// Every announce, in the order read.
    pub frames: Vec<AnnounceFrame>,
    /// Frames with an announce ethertype that were not ARP/RARP over
    /// Ethernet and IPv4 (see [`Malformed`]).
    pub malformed: u64,
    /// ARP/RARP frames that announce nothing (ordinary requests and
    /// replies, probes, RARP replies).
    pub other: u64,
    /// Reads that failed with something other than the timeout.
    pub read_errors: u64,
    /// The first such failure, as text.
    pub first_read_error: Option<String>,
    /// Frames with an announce ethertype not kept in `raw` because it
    /// already held [`MAX_RAW_FRAMES`].
    pub raw_dropped: u64,
    /// The bytes of every frame with an announce ethertype (announces,
    /// other and malformed), up to [`MAX_RAW_FRAMES`], for
    /// [`AnnounceLog::write_pcap_file`]. Not serialized.
    #[serde(skip)]
    pub raw: Vec<RawFrame>,
}

impl AnnounceLog {
    /// Writes [`AnnounceLog::raw`] as a nanosecond pcap file (see
    /// [`write_pcap`]).
    pub fn write_pcap_file(&self, path: &Path) -> anyhow::Result<()> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = io::BufWriter::new(file);
        write_pcap(&mut out, &self.raw)
            .and_then(|()| out.flush())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Writes frames as a pcap file with nanosecond timestamps (magic
/// `0xa1b23c4d`, little-endian, version 2.4, link type 1 = Ethernet), which
/// Wireshark and tcpdump read. A timestamp before the epoch is written as 0.
pub fn write_pcap<W: Write>(mut out: W, frames: &[RawFrame]) -> io::Result<()> {
    let snaplen = u32::try_from(SNAP_LEN).unwrap_or(u32::MAX);
    out.write_all(&0xa1b2_3c4d_u32.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&0i32.to_le_bytes())?; // thiszone
    out.write_all(&0u32.to_le_bytes())?; // sigfigs
    out.write_all(&snaplen.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?; // LINKTYPE_ETHERNET
    for f in frames {
        let ns = f.rx_ns.max(0);
        let sec = u32::try_from(ns / 1_000_000_000).unwrap_or(u32::MAX);
        let nsec = u32::try_from(ns % 1_000_000_000).unwrap_or(0);
        let incl = u32::try_from(f.bytes.len()).unwrap_or(u32::MAX);
        let orig = u32::try_from(f.orig_len.max(f.bytes.len())).unwrap_or(u32::MAX);
        out.write_all(&sec.to_le_bytes())?;
        out.write_all(&nsec.to_le_bytes())?;
        out.write_all(&incl.to_le_bytes())?;
        out.write_all(&orig.to_le_bytes())?;
        out.write_all(&f.bytes)?;
    }
    Ok(())
}

/// A running announce watcher: a capture socket on one interface and the
/// thread that reads it. [`AnnounceWatch::stop`] returns what it saw;
/// dropping it stops the thread too.
#[derive(Debug)]
pub struct AnnounceWatch {
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<AnnounceLog>>,
    thread: Option<JoinHandle<()>>,
}

impl AnnounceWatch {
    /// Starts watching `ifname` in the CALLER's current network namespace:
    /// the capture socket is opened and bound on the calling thread (so a
    /// caller that has `setns()`'d into a namespace gets that namespace's
    /// interface), then read on a background thread.
    ///
    /// Needs root or CAP_NET_RAW. Fails, naming the interface, when there
    /// is no such interface in the namespace or the socket cannot be opened
    /// or bound.
    pub fn start(ifname: &str) -> anyhow::Result<AnnounceWatch> {
        let socket = open_capture(ifname)?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(AnnounceLog {
            ifname: ifname.to_owned(),
            ..AnnounceLog::default()
        }));
        let thread = std::thread::Builder::new()
            .name(format!("announce-{ifname}"))
            .spawn({
                let stop = stop.clone();
                let shared = shared.clone();
                move || capture_loop(&socket.fd, socket.ifindex, &stop, &shared)
            })
            .with_context(|| format!("cannot start the announce watcher thread for {ifname}"))?;
        Ok(AnnounceWatch {
            stop,
            shared,
            thread: Some(thread),
        })
    }

    /// Announces seen so far (a copy), for live progress.
    pub fn frames(&self) -> Vec<AnnounceFrame> {
        lock(&self.shared).frames.clone()
    }

    /// Stops the thread (within about [`READ_TIMEOUT`]) and returns every
    /// announce seen, the counts of other and malformed frames, and the raw
    /// frames for a pcap.
    pub fn stop(mut self) -> AnnounceLog {
        self.halt();
        std::mem::take(&mut *lock(&self.shared))
    }

    /// Tells the thread to stop and waits for it.
    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                let mut log = lock(&self.shared);
                log.read_errors += 1;
                log.first_read_error
                    .get_or_insert_with(|| "the capture thread panicked".to_owned());
            }
        }
    }
}

impl Drop for AnnounceWatch {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Locks the shared log; a poisoned lock (a panic while holding it, which
/// the capture thread never does on purpose) still yields the data.
fn lock(shared: &Mutex<AnnounceLog>) -> MutexGuard<'_, AnnounceLog> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A bound capture socket.
struct Capture {
    fd: OwnedFd,
    ifindex: u32,
}

/// Opens an `AF_PACKET` socket in the calling thread's namespace, bound to
/// `ifname` for every ethertype, blocking with [`READ_TIMEOUT`] and kernel
/// receive timestamps.
fn open_capture(ifname: &str) -> anyhow::Result<Capture> {
    let iface = find_interface(ifname)?;
    // Protocol 0: the socket receives nothing until pnet binds it to the
    // interface (with ETH_P_ALL), so no frame of another interface queues.
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
    .with_context(|| {
        format!("cannot open a capture socket on {ifname} (needs root / CAP_NET_RAW)")
    })?;
    // pnet binds the socket (and owns, then closes, this duplicate): the
    // binding belongs to the socket, which `fd` keeps open.
    let dup = nix::unistd::dup(fd.as_raw_fd())
        .map_err(io::Error::from)
        .with_context(|| format!("cannot duplicate the capture socket on {ifname}"))?;
    let config = pnet_datalink::Config {
        read_buffer_size: SNAP_LEN,
        write_buffer_size: 64,
        promiscuous: false,
        socket_fd: Some(dup),
        ..pnet_datalink::Config::default()
    };
    match pnet_datalink::channel(&iface, config) {
        Ok(Channel::Ethernet(tx, rx)) => drop((tx, rx)),
        Ok(_) => bail!("pnet gave no Ethernet channel on {ifname}"),
        Err(e) => {
            return Err(anyhow!(e).context(format!(
                "cannot bind a capture socket to {ifname} (needs root / CAP_NET_RAW)"
            )))
        }
    }
    // pnet made the socket non-blocking; block with a timeout instead.
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)
        .map(OFlag::from_bits_truncate)
        .map_err(io::Error::from)
        .with_context(|| format!("cannot read the capture socket's flags on {ifname}"))?;
    fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_SETFL(flags.difference(OFlag::O_NONBLOCK)),
    )
    .map_err(io::Error::from)
    .with_context(|| format!("cannot make the capture socket on {ifname} blocking"))?;
    let timeout = TimeVal::microseconds(i64::try_from(READ_TIMEOUT.as_micros()).unwrap_or(50_000));
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)
        .map_err(io::Error::from)
        .with_context(|| format!("cannot set a read timeout on the capture socket on {ifname}"))?;
    // Without timestamps every frame falls back to a user-space clock read
    // and says so (`kernel_ts`): not an error.
    let _ = setsockopt(&fd, sockopt::ReceiveTimestampns, &true);
    Ok(Capture {
        fd,
        ifindex: iface.index,
    })
}

/// The interface named `ifname` in the calling thread's namespace.
fn find_interface(ifname: &str) -> anyhow::Result<NetworkInterface> {
    if ifname.is_empty() {
        bail!("cannot watch for announces: no interface name given");
    }
    let all = pnet_datalink::interfaces();
    match all.into_iter().find(|i| i.name == ifname) {
        Some(iface) if iface.index != 0 => Ok(iface),
        Some(_) => bail!("cannot watch {ifname} for announces: it has no interface index"),
        None => bail!(
            "cannot watch {ifname} for announces: no interface of that name in this network \
             namespace"
        ),
    }
}

/// The capture thread: reads until `stop`, records into `shared`. Never
/// panics on frame data.
fn capture_loop(fd: &OwnedFd, ifindex: u32, stop: &AtomicBool, shared: &Mutex<AnnounceLog>) {
    let mut buf = [0u8; SNAP_LEN];
    let mut cmsg = crate::socket::cmsg_buffer();
    while !stop.load(Ordering::Relaxed) {
        match read_frame(fd, &mut buf, &mut cmsg) {
            Ok(None) => {}
            Ok(Some(read)) => {
                if read.ifindex.is_some_and(|i| i != ifindex) {
                    continue;
                }
                let bytes = buf.get(..read.len.min(SNAP_LEN)).unwrap_or_default();
                if is_announce_ethertype(bytes) {
                    record(&mut lock(shared), bytes, &read);
                }
            }
            Err(e) => {
                {
                    let mut log = lock(shared);
                    log.read_errors += 1;
                    log.first_read_error.get_or_insert_with(|| e.to_string());
                }
                // Do not spin on an error that repeats.
                std::thread::sleep(READ_TIMEOUT);
            }
        }
    }
}

/// Files one frame with an announce ethertype.
fn record(log: &mut AnnounceLog, bytes: &[u8], read: &ReadFrame) {
    match classify(bytes) {
        Ok(Some((kind, mac, ip))) => log.frames.push(AnnounceFrame {
            rx_ns: read.rx_ns,
            kernel_ts: read.kernel_ts,
            kind,
            mac,
            ip,
        }),
        Ok(None) => log.other += 1,
        Err(_) => log.malformed += 1,
    }
    if log.raw.len() < MAX_RAW_FRAMES {
        log.raw.push(RawFrame {
            rx_ns: read.rx_ns,
            orig_len: read.len,
            bytes: bytes.to_vec(),
        });
    } else {
        log.raw_dropped += 1;
    }
}

/// One frame as read.
struct ReadFrame {
    /// The frame's full length (may exceed the buffer).
    len: usize,
    /// The interface it came in on, when the kernel said.
    ifindex: Option<u32>,
    rx_ns: i64,
    kernel_ts: bool,
}

/// Reads one frame into `buf`; `Ok(None)` on the read timeout or a signal.
fn read_frame(fd: &OwnedFd, buf: &mut [u8], cmsg: &mut Vec<u8>) -> io::Result<Option<ReadFrame>> {
    let mut iov = [IoSliceMut::new(buf)];
    // MSG_TRUNC: packet sockets then return the frame's real length.
    let msg = match recvmsg::<LinkAddr>(fd.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::MSG_TRUNC) {
        Ok(m) => m,
        Err(Errno::EAGAIN | Errno::EINTR) => return Ok(None),
        Err(e) => return Err(io::Error::from(e)),
    };
    let (rx_ns, kernel_ts) = crate::socket::rx_time(msg.cmsgs().ok().into_iter().flatten());
    let ifindex = msg.address.and_then(|a| u32::try_from(a.ifindex()).ok());
    Ok(Some(ReadFrame {
        len: msg.bytes,
        ifindex,
        rx_ns,
        kernel_ts,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    /// QEMU's `announce_self_create`, byte for byte.
    fn qemu_rarp(mac: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0; 4]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0; 4]);
        f.resize(60, 0);
        f
    }

    fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&sha);
        f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&sha);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f
    }

    #[test]
    fn qemu_rarp_is_a_rarp_announce() {
        assert_eq!(
            classify(&qemu_rarp(MAC)),
            Ok(Some((
                AnnounceKind::Rarp,
                "52:54:00:12:34:56".to_owned(),
                None
            )))
        );
    }

    #[test]
    fn rarp_reply_is_other() {
        let mut f = qemu_rarp(MAC);
        f[21] = 4;
        assert_eq!(classify(&f), Ok(None));
    }

    #[test]
    fn gratuitous_arp_request_and_reply() {
        for op in [1, 2] {
            let f = arp(op, MAC, [198, 18, 0, 10], [198, 18, 0, 10]);
            assert_eq!(
                classify(&f),
                Ok(Some((
                    AnnounceKind::GratuitousArp,
                    "52:54:00:12:34:56".to_owned(),
                    Some("198.18.0.10".to_owned())
                )))
            );
        }
    }

    #[test]
    fn ordinary_arp_and_probe_are_other() {
        assert_eq!(
            classify(&arp(1, MAC, [198, 18, 0, 10], [198, 18, 0, 1])),
            Ok(None)
        );
        assert_eq!(classify(&arp(1, MAC, [0; 4], [198, 18, 0, 1])), Ok(None));
        assert_eq!(classify(&arp(1, MAC, [0; 4], [0; 4])), Ok(None));
        assert_eq!(
            classify(&arp(7, MAC, [198, 18, 0, 10], [198, 18, 0, 10])),
            Ok(None)
        );
    }

    #[test]
    fn other_ethertypes_are_not_announces() {
        let mut f = qemu_rarp(MAC);
        f[12] = 0x08;
        f[13] = 0x00;
        assert_eq!(classify(&f), Ok(None));
        assert_eq!(classify(&f[..14]), Ok(None));
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(classify(&[]), Err(Malformed::ShortFrame { len: 0 }));
        assert_eq!(
            classify(&qemu_rarp(MAC)[..13]),
            Err(Malformed::ShortFrame { len: 13 })
        );
        assert_eq!(
            classify(&qemu_rarp(MAC)[..20]),
            Err(Malformed::Truncated {
                ethertype: ETHERTYPE_RARP,
                len: 6
            })
        );
        let garp = arp(1, MAC, [198, 18, 0, 10], [198, 18, 0, 10]);
        assert_eq!(
            classify(&garp[..41]),
            Err(Malformed::Truncated {
                ethertype: ETHERTYPE_ARP,
                len: 27
            })
        );
        let mut odd = garp.clone();
        odd[18] = 8; // hardware address length
        assert!(matches!(
            classify(&odd),
            Err(Malformed::NotEthernetIpv4 { hw_len: 8, .. })
        ));
        let mut ipv6 = garp;
        ipv6[16] = 0x86;
        ipv6[17] = 0xdd;
        assert!(matches!(
            classify(&ipv6),
            Err(Malformed::NotEthernetIpv4 {
                protocol_type: 0x86dd,
                ..
            })
        ));
    }

    #[test]
    fn record_counts_and_keeps_raw() {
        let mut log = AnnounceLog::default();
        let read = |len| ReadFrame {
            len,
            ifindex: None,
            rx_ns: 5,
            kernel_ts: true,
        };
        let rarp = qemu_rarp(MAC);
        record(&mut log, &rarp, &read(rarp.len()));
        let ordinary = arp(1, MAC, [198, 18, 0, 10], [198, 18, 0, 1]);
        record(&mut log, &ordinary, &read(ordinary.len()));
        record(&mut log, &rarp[..20], &read(20));
        assert_eq!(log.frames.len(), 1);
        assert_eq!(log.frames[0].kind, AnnounceKind::Rarp);
        assert!(log.frames[0].kernel_ts);
        assert_eq!((log.other, log.malformed), (1, 1));
        assert_eq!(log.raw.len(), 3);
        assert_eq!(log.raw[0].bytes, rarp);
    }

    #[test]
    fn log_serializes_without_raw() {
        let log = AnnounceLog {
            ifname: "veth0".to_owned(),
            frames: vec![AnnounceFrame {
                rx_ns: 1,
                kernel_ts: true,
                kind: AnnounceKind::GratuitousArp,
                mac: "52:54:00:12:34:56".to_owned(),
                ip: Some("198.18.0.10".to_owned()),
            }],
            raw: vec![RawFrame {
                rx_ns: 1,
                orig_len: 1,
                bytes: vec![1],
            }],
            ..AnnounceLog::default()
        };
        let json = serde_json::to_string(&log).unwrap();
        assert!(json.contains("\"kind\":\"gratuitous_arp\""), "{json}");
        assert!(!json.contains("raw\":["), "{json}");
        let back: AnnounceLog = serde_json::from_str(&json).unwrap();
        assert_eq!(back.frames, log.frames);
        assert!(back.raw.is_empty());
        assert_eq!(
            serde_json::to_string(&AnnounceKind::Rarp).unwrap(),
            "\"rarp\""
        );
    }

    #[test]
    fn pcap_layout() {
        let frames = [RawFrame {
            rx_ns: 1_700_000_000_123_456_789,
            orig_len: 1500,
            bytes: qemu_rarp(MAC),
        }];
        let mut out = Vec::new();
        write_pcap(&mut out, &frames).unwrap();
        assert_eq!(out.len(), 24 + 16 + 60);
        assert_eq!(out[..4], [0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(out[20..24], 1u32.to_le_bytes());
        assert_eq!(out[24..28], 1_700_000_000u32.to_le_bytes());
        assert_eq!(out[28..32], 123_456_789u32.to_le_bytes());
        assert_eq!(out[32..36], 60u32.to_le_bytes());
        assert_eq!(out[36..40], 1500u32.to_le_bytes());
        assert_eq!(out[40..], frames[0].bytes[..]);
    }

    #[test]
    fn start_names_a_missing_interface() {
        let err = AnnounceWatch::start("lmig-no-such-if").unwrap_err();
        assert!(format!("{err:#}").contains("lmig-no-such-if"), "{err:#}");
    }

    proptest! {
        #[test]
        fn classify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = classify(&bytes);
        }

        #[test]
        fn classify_never_panics_on_announce_ethertypes(
            rarp in any::<bool>(),
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut f = vec![0xff; 12];
            f.extend_from_slice(if rarp { &[0x80, 0x35] } else { &[0x08, 0x06] });
            f.extend_from_slice(&body);
            let r = classify(&f);
            // Any body of 28 bytes or more with the Ethernet/IPv4 header
            // values is read; shorter ones are malformed.
            if body.len() < 28 {
                prop_assert!(r.is_err());
            }
        }
    }
}
