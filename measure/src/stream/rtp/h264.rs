//! Reading one H.264 RTP payload (RFC 6184, packetization mode 1): a
//! single NAL unit, a STAP-A or an FU-A fragment, as the [RTP
//! module](super) defines.

/// An H.264 RTP payload (RFC 6184), as the [module documentation](super)
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H264Payload<'a> {
    /// One NAL unit (types 1–23), header included.
    Single(&'a [u8]),
    /// An aggregation packet (type 24).
    StapA {
        /// The NAL units read before the end or the first bad size.
        nals: Vec<&'a [u8]>,
        /// A bad size or a leftover byte cut it short (malformed).
        truncated: bool,
    },
    /// A fragment of a NAL unit (type 28).
    FuA {
        /// The S bit.
        start: bool,
        /// The E bit.
        end: bool,
        /// The fragmented NAL unit's rebuilt header.
        nal_header: u8,
        /// The fragment's bytes.
        fragment: &'a [u8],
    },
    /// Empty, too short, or a type not allowed in packetization mode 1.
    Malformed,
}

impl H264Payload<'_> {
    /// The payload is malformed (including a truncated STAP-A).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            H264Payload::Malformed
                | H264Payload::StapA {
                    truncated: true,
                    ..
                }
        )
    }
}

/// Reads an H.264 RTP payload. Never panics.
pub fn parse_h264(payload: &[u8]) -> H264Payload<'_> {
    let Some((&hdr, body)) = payload.split_first() else {
        return H264Payload::Malformed;
    };
    match hdr & 0x1f {
        1..=23 => H264Payload::Single(payload),
        24 => read_stap_a(body),
        28 => read_fu_a(hdr, body),
        _ => H264Payload::Malformed,
    }
}

/// A STAP-A's NAL units, from the bytes after its header: each is kept
/// until a bad size or a lone byte cuts the rest off.
fn read_stap_a(body: &[u8]) -> H264Payload<'_> {
    let mut nals = Vec::new();
    let mut rest = body;
    let mut truncated = false;
    while !rest.is_empty() {
        let Some(size) = rest
            .get(..2)
            .and_then(|s| s.try_into().ok())
            .map(|s: [u8; 2]| usize::from(u16::from_be_bytes(s)))
        else {
            truncated = true;
            break;
        };
        match rest.get(2..2 + size) {
            Some(nal) if size > 0 => {
                nals.push(nal);
                rest = rest.get(2 + size..).unwrap_or_default();
            }
            _ => {
                truncated = true;
                break;
            }
        }
    }
    if nals.is_empty() {
        truncated = true;
    }
    H264Payload::StapA { nals, truncated }
}

/// An FU-A fragment, from its indicator `hdr` and the bytes after it.
fn read_fu_a(hdr: u8, body: &[u8]) -> H264Payload<'_> {
    match body.split_first() {
        Some((&fu, fragment)) if !fragment.is_empty() => {
            let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
            if start && end {
                return H264Payload::Malformed;
            }
            H264Payload::FuA {
                start,
                end,
                nal_header: (hdr & 0xe0) | (fu & 0x1f),
                fragment,
            }
        }
        _ => H264Payload::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{nal, stap_a};
    use super::*;

    #[test]
    fn malformed_payloads_are_as_documented() {
        // A STAP-A whose second size points past the end.
        let mut stap = stap_a(&[nal(1, 10, 1)]);
        stap.extend_from_slice(&[0x01, 0x00, 0x61, 0x62]); // 256 bytes claimed, 2 present
        match parse_h264(&stap) {
            H264Payload::StapA { nals, truncated } => {
                assert_eq!((nals.len(), truncated), (1, true))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_h264(&[0x7c]), H264Payload::Malformed);
        assert_eq!(parse_h264(&[0x7c, 0x81]), H264Payload::Malformed);
        assert_eq!(parse_h264(&[0x7c, 0xc1, 1]), H264Payload::Malformed); // S and E
        assert_eq!(parse_h264(&[]), H264Payload::Malformed);
        assert_eq!(
            parse_h264(&[0x78, 0, 1]),
            H264Payload::StapA {
                nals: vec![],
                truncated: true
            }
        );
    }
}
