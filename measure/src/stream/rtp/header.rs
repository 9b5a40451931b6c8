//! The RTP header (RFC 3550 section 5.1): which datagrams are well-formed
//! and where their payload lies, as the [RTP module](super) defines.

/// A well-formed RTP packet (RFC 3550 section 5.1), borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The marker bit (for H.264: the last packet of a frame).
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// 16-bit sequence number.
    pub seq: u16,
    /// 32-bit RTP timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Number of CSRCs in the header.
    pub csrc_count: u8,
    /// Header extension: its profile and data (after its 4-byte header).
    pub extension: Option<(u16, &'a [u8])>,
    /// The payload, padding removed.
    pub payload: &'a [u8],
}

/// Parses an RTP header; `None` when the datagram is malformed as the
/// [module documentation](super) defines it. Never panics.
pub fn parse_rtp(b: &[u8]) -> Option<RtpPacket<'_>> {
    let fixed = b.get(..12)?;
    let (b0, b1) = (fixed.first()?, fixed.get(1)?);
    if b0 >> 6 != 2 {
        return None;
    }
    let be16 =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?)) };
    let be32 =
        |i: usize| -> Option<u32> { Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?)) };
    let csrc_count = b0 & 0x0f;
    let mut off = 12 + 4 * usize::from(csrc_count);
    if off > b.len() {
        return None;
    }
    let extension = if b0 & 0x10 != 0 {
        let profile = be16(off)?;
        let words = usize::from(be16(off + 2)?);
        let start = off + 4;
        let end = start + 4 * words;
        let data = b.get(start..end)?;
        off = end;
        Some((profile, data))
    } else {
        None
    };
    let mut end = b.len();
    if b0 & 0x20 != 0 {
        let pad = usize::from(*b.last()?);
        if pad == 0 || pad > end - off {
            return None;
        }
        end -= pad;
    }
    Some(RtpPacket {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        seq: be16(2)?,
        timestamp: be32(4)?,
        ssrc: be32(8)?,
        csrc_count,
        extension,
        payload: b.get(off..end)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{rtp_packet, PacketSpec};
    use super::*;

    #[test]
    fn valid_padding_is_removed_from_the_payload() {
        let spec = PacketSpec {
            ssrc: 7,
            payload_type: 96,
            seq: 1,
            timestamp: 0,
            marker: false,
            tag: Some((1003, 0)),
        };
        let mut padded = rtp_packet(&spec, &[0x61, 1, 2]);
        padded[0] |= 0x20;
        padded.extend_from_slice(&[0, 0, 3]);
        assert_eq!(parse_rtp(&padded).unwrap().payload, &[0x61, 1, 2]);
    }
}
