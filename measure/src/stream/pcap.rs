//! The RTP capture a run wrote (`stream/rtp.pcap`), read back.

use crate::stream::rtp::RtpArrival;

/// Why a capture could not be read: what is wrong, and at which byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PcapError(pub String);

/// Reads the RTP capture the run wrote (`stream/rtp.pcap`: nanosecond
/// pcap, raw IPv4 or Ethernet link type, one UDP datagram per record) back
/// into arrivals: the receive time is the record's timestamp, the bytes the
/// UDP payload. `kernel_ts` is what the run recorded for the capture as a
/// whole. Records that are not IPv4/UDP are skipped; a truncated file is an
/// error naming the offset.
pub fn read_rtp_pcap(bytes: &[u8], kernel_ts: bool) -> Result<Vec<RtpArrival>, PcapError> {
    let u32_at = |o: usize, le: bool| -> Option<u32> {
        let b: [u8; 4] = bytes.get(o..o + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let (le, nanos) = match bytes.get(0..4) {
        Some([0x4d, 0x3c, 0xb2, 0xa1]) => (true, true),
        Some([0xa1, 0xb2, 0x3c, 0x4d]) => (false, true),
        Some([0xd4, 0xc3, 0xb2, 0xa1]) => (true, false),
        Some([0xa1, 0xb2, 0xc3, 0xd4]) => (false, false),
        _ => return Err(PcapError("not a pcap file (unknown magic)".into())),
    };
    let linktype = u32_at(20, le).ok_or_else(|| PcapError("pcap header truncated".into()))?;
    let mut out = Vec::new();
    let mut o = 24;
    while o < bytes.len() {
        let (Some(sec), Some(frac), Some(incl)) =
            (u32_at(o, le), u32_at(o + 4, le), u32_at(o + 8, le))
        else {
            return Err(PcapError(format!(
                "pcap record header truncated at byte {o}"
            )));
        };
        let start = o + 16;
        let end = start + incl as usize;
        let Some(frame) = bytes.get(start..end) else {
            return Err(PcapError(format!(
                "pcap record at byte {o} runs past the end"
            )));
        };
        o = end;
        let ip = match linktype {
            101 | 228 => frame,
            1 if frame.get(12..14) == Some(&[0x08, 0x00]) => &frame[14..],
            _ => continue,
        };
        let Some(&vihl) = ip.first() else { continue };
        let ihl = usize::from(vihl & 0x0f) * 4;
        if vihl >> 4 != 4 || ip.get(9) != Some(&17) || ip.len() < ihl + 8 {
            continue;
        }
        let rx_ns = i64::from(sec) * 1_000_000_000 + i64::from(frac) * if nanos { 1 } else { 1000 };
        out.push(RtpArrival {
            rx_ns,
            kernel_ts,
            bytes: ip[ihl + 8..].to_vec(),
        });
    }
    Ok(out)
}
