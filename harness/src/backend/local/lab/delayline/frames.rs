//! What one received message stands for on the wire (pure: bytes in,
//! bytes out).
//!
//! Why this exists: a veth passes the sender's TCP segmentation offload
//! through untouched, so a packet socket on it receives 64 KiB TCP
//! "super-packets" with a partial checksum, not the frames a real link
//! would carry. The sockets use `PACKET_VNET_HDR`, which prefixes every
//! message with a `virtio_net_hdr` saying how the kernel would have cut
//! and checksummed it; [`wire_frames`] does that cut here, so that the
//! shaper sees, delays and loses real MTU-sized frames, and each one is
//! sent on with its checksum left to the kernel (`NEEDS_CSUM`) as before.
//!
//! Every message handled here is a `virtio_net_hdr` ([`VNET_HDR_LEN`]
//! bytes, native endian as AF_PACKET uses it) followed by the Ethernet
//! frame.

/// Bytes of the `virtio_net_hdr` before each frame.
pub(crate) const VNET_HDR_LEN: usize = 10;

const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// The fields of a `struct virtio_net_hdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// The header at the start of `msg`, if it is long enough.
    pub(crate) fn parse(msg: &[u8]) -> Option<VnetHdr> {
        let h = msg.get(..VNET_HDR_LEN)?;
        let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
        Some(VnetHdr {
            flags: h[0],
            gso_type: h[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    pub(crate) fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

/// What [`wire_frames`] made of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// An ordinary frame, passed on as it came.
    Plain,
    /// A GSO super-packet cut into this many frames.
    Split(usize),
    /// A GSO super-packet of a kind not cut here (UDP fragmentation
    /// offload, extension headers, tunnels), passed on whole: the kernel
    /// segments it on the far side, but the shaper saw it as one frame.
    Whole,
}

/// Appends to `out` the messages (header and frame) that `msg` stands for
/// on a real link. A message too short to hold a header yields nothing.
pub(crate) fn wire_frames(msg: &[u8], out: &mut Vec<Vec<u8>>) -> Option<Cut> {
    let hdr = VnetHdr::parse(msg)?;
    if hdr.gso_type == GSO_NONE {
        out.push(msg.to_vec());
        return Some(Cut::Plain);
    }
    let before = out.len();
    match split(&hdr, &msg[VNET_HDR_LEN..], out) {
        Some(()) => Some(Cut::Split(out.len() - before)),
        None => {
            out.truncate(before);
            out.push(msg.to_vec());
            Some(Cut::Whole)
        }
    }
}

/// Where a super-packet's headers are.
#[derive(Debug, Clone, Copy)]
struct Layout {
    l3: usize,
    v6: bool,
    l4: usize,
    l4_hdr: usize,
    /// End of the IP packet (any bytes after it are link padding).
    end: usize,
    /// Offset of the L4 checksum within the L4 header.
    csum_offset: usize,
    tcp: bool,
}

impl Layout {
    fn headers(&self) -> usize {
        self.l4 + self.l4_hdr
    }
}

/// Offset of the L3 header and its ethertype, past up to two VLAN tags.
fn l3_of(frame: &[u8]) -> Option<(usize, u16)> {
    let mut at = ETH_HLEN - 2;
    for _ in 0..3 {
        let ethertype = be16(frame, at)?;
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            return Some((at + 2, ethertype));
        }
        at += 4;
    }
    None
}

fn layout(frame: &[u8], gso_type: u8) -> Option<Layout> {
    let (l3, ethertype) = l3_of(frame)?;
    let (v6, l4, proto, end) = match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(frame.get(l3)? & 0x0f) * 4;
            let total = usize::from(be16(frame, l3 + 2)?);
            (false, l3 + ihl, *frame.get(l3 + 9)?, l3 + total)
        }
        ETHERTYPE_IPV6 => {
            let payload = usize::from(be16(frame, l3 + 4)?);
            (true, l3 + 40, *frame.get(l3 + 6)?, l3 + 40 + payload)
        }
        _ => return None,
    };
    let (tcp, l4_hdr, csum_offset) = match (gso_type & !GSO_ECN, proto, v6) {
        (GSO_TCPV4, PROTO_TCP, false) | (GSO_TCPV6, PROTO_TCP, true) => {
            (true, usize::from(frame.get(l4 + 12)? >> 4) * 4, 16)
        }
        (GSO_UDP_L4, PROTO_UDP, _) => (false, 8, 6),
        _ => return None,
    };
    let ok = l4_hdr >= 8 && l4 + l4_hdr <= end && end <= frame.len() && l4 > l3;
    ok.then_some(Layout {
        l3,
        v6,
        l4,
        l4_hdr,
        end,
        csum_offset,
        tcp,
    })
}

/// Cuts a GSO super-packet into frames of `gso_size` payload bytes, the
/// way the kernel's `tcp_gso_segment`/`__udp_gso_segment` do: lengths,
/// IPv4 ids and header checksums, TCP sequence numbers and flags (FIN and
/// PSH on the last segment only, CWR on the first only), and each L4
/// checksum field primed with its pseudo-header sum for `NEEDS_CSUM`.
fn split(hdr: &VnetHdr, frame: &[u8], out: &mut Vec<Vec<u8>>) -> Option<()> {
    let lay = layout(frame, hdr.gso_type)?;
    let mss = usize::from(hdr.gso_size);
    let partial = hdr.flags & F_NEEDS_CSUM != 0;
    if mss == 0 || !partial || usize::from(hdr.csum_start) != lay.l4 {
        return None;
    }
    let headers = &frame[..lay.headers()];
    let payload = &frame[lay.headers()..lay.end];
    let count = payload.len().div_ceil(mss);
    let seg_hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_NONE,
        hdr_len: u16::try_from(lay.headers()).ok()?,
        gso_size: 0,
        csum_start: hdr.csum_start,
        csum_offset: u16::try_from(lay.csum_offset).ok()?,
    };
    for (i, chunk) in payload.chunks(mss).enumerate() {
        let mut m = Vec::with_capacity(VNET_HDR_LEN + headers.len() + chunk.len());
        m.extend_from_slice(&seg_hdr.to_bytes());
        m.extend_from_slice(headers);
        m.extend_from_slice(chunk);
        let f = &mut m[VNET_HDR_LEN..];
        fix_ip(f, &lay, chunk.len(), i)?;
        if lay.tcp {
            fix_tcp(f, &lay, mss, i, i + 1 == count)?;
        } else {
            put16(f, lay.l4 + 4, u16::try_from(lay.l4_hdr + chunk.len()).ok()?);
        }
        prime_checksum(f, &lay, lay.l4_hdr + chunk.len())?;
        out.push(m);
    }
    Some(())
}

fn fix_ip(f: &mut [u8], lay: &Layout, chunk: usize, i: usize) -> Option<()> {
    let l3 = lay.l3;
    if lay.v6 {
        put16(f, l3 + 4, u16::try_from(lay.l4_hdr + chunk).ok()?);
        return Some(());
    }
    put16(f, l3 + 2, u16::try_from(lay.headers() - l3 + chunk).ok()?);
    // Consecutive ids, as Linux's TSO emulation gives them.
    let id = be16(f, l3 + 4)?.wrapping_add(i as u16);
    put16(f, l3 + 4, id);
    put16(f, l3 + 10, 0);
    let sum = !fold(sum16(f.get(l3..lay.l4)?, 0));
    put16(f, l3 + 10, sum);
    Some(())
}

fn fix_tcp(f: &mut [u8], lay: &Layout, mss: usize, i: usize, last: bool) -> Option<()> {
    let seq = be32(f, lay.l4 + 4)?.wrapping_add((i * mss) as u32);
    f.get_mut(lay.l4 + 4..lay.l4 + 8)?
        .copy_from_slice(&seq.to_be_bytes());
    let flags = f.get_mut(lay.l4 + 13)?;
    if !last {
        *flags &= !(TCP_FIN | TCP_PSH);
    }
    if i > 0 {
        *flags &= !TCP_CWR;
    }
    Some(())
}

/// Writes the folded pseudo-header sum into the L4 checksum field: what a
/// `CHECKSUM_PARTIAL` packet carries there, to be completed over the L4
/// bytes by whoever needs the full checksum.
fn prime_checksum(f: &mut [u8], lay: &Layout, l4_len: usize) -> Option<()> {
    let proto = f
        .get(if lay.v6 { lay.l3 + 6 } else { lay.l3 + 9 })
        .copied()?;
    let mut acc = u64::from(proto);
    if lay.v6 {
        acc = sum16(f.get(lay.l3 + 8..lay.l3 + 40)?, acc);
        acc += l4_len as u64;
    } else {
        acc = sum16(f.get(lay.l3 + 12..lay.l3 + 20)?, acc);
        acc += u64::from(u16::try_from(l4_len).ok()?);
    }
    put16(f, lay.l4 + lay.csum_offset, fold(acc));
    Some(())
}

/// Puts an offloaded VLAN tag (which AF_PACKET hands over beside the
/// frame, not in it) back after the MAC addresses, moving the checksum
/// offsets along, so the frame leaves tagged as it came.
pub(crate) fn insert_vlan(msg: &mut Vec<u8>, tpid: u16, tci: u16) {
    let at = VNET_HDR_LEN + 12;
    if msg.len() < at {
        return;
    }
    let mut tag = [0u8; 4];
    tag[..2].copy_from_slice(&tpid.to_be_bytes());
    tag[2..].copy_from_slice(&tci.to_be_bytes());
    msg.splice(at..at, tag);
    if let Some(mut hdr) = VnetHdr::parse(msg) {
        if hdr.flags & F_NEEDS_CSUM != 0 {
            hdr.csum_start = hdr.csum_start.saturating_add(4);
        }
        if hdr.hdr_len != 0 {
            hdr.hdr_len = hdr.hdr_len.saturating_add(4);
        }
        msg[..VNET_HDR_LEN].copy_from_slice(&hdr.to_bytes());
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// The one's-complement sum of `data` as 16-bit big-endian words (an odd
/// last byte padded with zero), added to `acc`, unfolded.
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]
    use super::*;

    /// What the receiver's kernel does with `NEEDS_CSUM`: the full
    /// checksum over the L4 bytes, folded and inverted.
    fn complete(f: &mut [u8], start: usize, offset: usize) {
        let sum = !fold(sum16(&f[start..], 0));
        put16(f, start + offset, sum);
    }

    /// The L4 checksum computed from scratch, as a receiver verifies it.
    fn verify_l4(f: &[u8], l3: usize, v6: bool, l4: usize) -> bool {
        let (proto, mut acc, len) = if v6 {
            (f[l3 + 6], sum16(&f[l3 + 8..l3 + 40], 0), f.len() - l4)
        } else {
            (f[l3 + 9], sum16(&f[l3 + 12..l3 + 20], 0), f.len() - l4)
        };
        acc += u64::from(proto) + len as u64;
        fold(sum16(&f[l4..], acc)) == 0xffff
    }

    fn eth(ethertype: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn tcp_header(seq: u32, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 32]; // 20 bytes and 12 of options
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&4444u16.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[12] = 8 << 4;
        t[13] = flags;
        t[20] = 1;
        t
    }

    fn ipv4(proto: u8, l4_len: usize) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
        ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        ip.extend_from_slice(&[198, 19, 0, 1, 198, 19, 0, 2]);
        ip
    }

    fn ipv6(proto: u8, l4_len: usize) -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0, 0, 0, proto, 64];
        ip[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        ip.extend((0..32).map(|i| i as u8));
        ip
    }

    fn msg(hdr: VnetHdr, frame: &[u8]) -> Vec<u8> {
        let mut m = hdr.to_bytes().to_vec();
        m.extend_from_slice(frame);
        m
    }

    fn gso_hdr(gso_type: u8, mss: u16, l4: usize, csum_offset: u16) -> VnetHdr {
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type,
            hdr_len: 0,
            gso_size: mss,
            csum_start: l4 as u16,
            csum_offset,
        }
    }

    fn tcp_super_packet(v6: bool, data: &[u8], flags: u8) -> (Vec<u8>, usize) {
        let tcp = tcp_header(1_000_000, flags);
        let l4_len = tcp.len() + data.len();
        let mut f = eth(if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 });
        f.extend(if v6 {
            ipv6(PROTO_TCP, l4_len)
        } else {
            ipv4(PROTO_TCP, l4_len)
        });
        let l4 = f.len();
        f.extend(tcp);
        f.extend_from_slice(data);
        (f, l4)
    }

    fn check_tcp_split(v6: bool) {
        let mss = 1448;
        let data = payload(3 * mss + 500);
        let flags = TCP_PSH | TCP_FIN | TCP_CWR | 0x10;
        let (frame, l4) = tcp_super_packet(v6, &data, flags);
        let gso = if v6 { GSO_TCPV6 } else { GSO_TCPV4 };
        let m = msg(gso_hdr(gso | GSO_ECN, mss as u16, l4, 16), &frame);
        let mut out = Vec::new();
        assert_eq!(wire_frames(&m, &mut out), Some(Cut::Split(4)));
        let mut rebuilt = Vec::new();
        for (i, seg) in out.iter().enumerate() {
            let h = VnetHdr::parse(seg).unwrap();
            assert_eq!((h.flags, h.gso_type), (F_NEEDS_CSUM, GSO_NONE));
            assert_eq!((h.csum_start as usize, h.csum_offset), (l4, 16));
            assert_eq!(h.hdr_len as usize, l4 + 32);
            let mut f = seg[VNET_HDR_LEN..].to_vec();
            let chunk = if i < 3 { mss } else { 500 };
            assert_eq!(f.len(), l4 + 32 + chunk);
            if v6 {
                assert_eq!(be16(&f, 18).unwrap() as usize, 32 + chunk);
            } else {
                assert_eq!(be16(&f, 16).unwrap() as usize, 20 + 32 + chunk);
                assert_eq!(be16(&f, 18).unwrap(), 0x1234 + i as u16);
                assert_eq!(fold(sum16(&f[14..34], 0)), 0xffff, "IPv4 header checksum");
            }
            assert_eq!(be32(&f, l4 + 4).unwrap(), 1_000_000 + (i * mss) as u32);
            let fl = f[l4 + 13];
            assert_eq!(
                fl & (TCP_FIN | TCP_PSH) != 0,
                i == 3,
                "FIN/PSH on the last only"
            );
            assert_eq!(fl & TCP_CWR != 0, i == 0, "CWR on the first only");
            assert_eq!(fl & 0x10, 0x10, "ACK on all");
            complete(&mut f, l4, 16);
            assert!(verify_l4(&f, 14, v6, l4), "segment {i}'s TCP checksum");
            rebuilt.extend_from_slice(&f[l4 + 32..]);
        }
        assert_eq!(rebuilt, data);
    }

    #[test]
    fn tcp_over_ipv4_is_cut_the_way_the_kernel_cuts_it() {
        check_tcp_split(false);
    }

    #[test]
    fn tcp_over_ipv6_is_cut_the_way_the_kernel_cuts_it() {
        check_tcp_split(true);
    }

    #[test]
    fn udp_gso_is_cut_into_datagrams() {
        let data = payload(2 * 1000 + 1);
        let mut f = eth(ETHERTYPE_IPV4);
        f.extend(ipv4(PROTO_UDP, 8 + data.len()));
        let l4 = f.len();
        f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 0, 0, 0]);
        f.extend_from_slice(&data);
        let mut out = Vec::new();
        let m = msg(gso_hdr(GSO_UDP_L4, 1000, l4, 6), &f);
        assert_eq!(wire_frames(&m, &mut out), Some(Cut::Split(3)));
        for (i, seg) in out.iter().enumerate() {
            let mut f = seg[VNET_HDR_LEN..].to_vec();
            let chunk = [1000, 1000, 1][i];
            assert_eq!(be16(&f, l4 + 4).unwrap() as usize, 8 + chunk);
            complete(&mut f, l4, 6);
            assert!(verify_l4(&f, 14, false, l4));
        }
    }

    #[test]
    fn a_vlan_tagged_super_packet_is_cut_too() {
        let (plain, l4) = tcp_super_packet(false, &payload(3000), 0x10);
        let mut f = plain[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        f.extend_from_slice(&plain[12..]);
        let mut out = Vec::new();
        let m = msg(gso_hdr(GSO_TCPV4, 1448, l4 + 4, 16), &f);
        assert_eq!(wire_frames(&m, &mut out), Some(Cut::Split(3)));
        let mut seg = out[2][VNET_HDR_LEN..].to_vec();
        complete(&mut seg, l4 + 4, 16);
        assert!(verify_l4(&seg, 18, false, l4 + 4));
    }

    #[test]
    fn plain_frames_pass_unchanged() {
        let m = msg(VnetHdr::default(), &payload(60));
        let mut out = Vec::new();
        assert_eq!(wire_frames(&m, &mut out), Some(Cut::Plain));
        assert_eq!(out, vec![m]);
        assert_eq!(wire_frames(&[0u8; 5], &mut out), None);
    }

    #[test]
    fn kinds_not_cut_here_pass_whole() {
        let (frame, l4) = tcp_super_packet(false, &payload(5000), 0x10);
        let mut out = Vec::new();
        // UFO (IP fragmentation), and a checksum start that is not the L4
        // header.
        for hdr in [
            gso_hdr(3, 1448, l4, 6),
            gso_hdr(GSO_TCPV4, 1448, l4 + 2, 16),
        ] {
            out.clear();
            let m = msg(hdr, &frame);
            assert_eq!(wire_frames(&m, &mut out), Some(Cut::Whole));
            assert_eq!(out, vec![m]);
        }
    }

    #[test]
    fn truncated_or_garbled_super_packets_never_panic() {
        let (frame, l4) = tcp_super_packet(false, &payload(4000), 0x10);
        let m = msg(gso_hdr(GSO_TCPV4, 1448, l4, 16), &frame);
        let mut out = Vec::new();
        for len in 0..m.len() {
            out.clear();
            let _ = wire_frames(&m[..len], &mut out);
        }
        let mut r = super::super::shaper::SplitMix64::new(3);
        for _ in 0..20_000 {
            let mut g = m.clone();
            for _ in 0..4 {
                let at = (r.next_u64() as usize) % 80;
                g[at] = r.next_u64() as u8;
            }
            out.clear();
            let _ = wire_frames(&g, &mut out);
        }
    }

    #[test]
    fn an_offloaded_vlan_tag_is_put_back_and_offsets_follow() {
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            hdr_len: 54,
            csum_start: 34,
            csum_offset: 16,
            ..Default::default()
        };
        let frame = payload(80);
        let mut m = msg(hdr, &frame);
        insert_vlan(&mut m, ETHERTYPE_VLAN, 0x2005);
        let h = VnetHdr::parse(&m).unwrap();
        assert_eq!((h.csum_start, h.hdr_len, h.csum_offset), (38, 58, 16));
        let f = &m[VNET_HDR_LEN..];
        assert_eq!(&f[..12], &frame[..12]);
        assert_eq!(&f[12..16], &[0x81, 0x00, 0x20, 0x05]);
        assert_eq!(&f[16..], &frame[12..]);
    }

    #[test]
    fn the_header_round_trips() {
        let h = VnetHdr {
            flags: 1,
            gso_type: 4,
            hdr_len: 86,
            gso_size: 1428,
            csum_start: 54,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::parse(&h.to_bytes()), Some(h));
    }
}
