//! Our per-frame RTP header extension: on every packet of a video stream,
//! the number of the video frame it carries and when the sender sent it.
//!
//! The receiver uses it to know which frame a packet belongs to without
//! decoding pixels, and to count frames that were lost entirely (numbers
//! skipped between the frames it saw).
//!
//! # Format
//! An RFC 3550 header extension (section 5.3.1) in the RFC 8285 one-byte
//! header form:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |       0xBE    |    0xDE       |           length = 4          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | ID=1  | L=11  |            frame (u32, big-endian) ...         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  ... frame    |          send_ns (i64, big-endian) ...         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      ... send_ns ...                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  ... send_ns  |  0 (padding)  |  0 (padding)  |  0 (padding)  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! - profile `0xBEDE`, length 4 (32-bit words of data after this word);
//! - one element, ID [`ELEMENT_ID`] = 1, 12 data bytes (the one-byte header
//!   stores `L = 12 - 1 = 11`): `frame` then `send_ns`, both big-endian;
//! - three zero padding bytes up to the 32-bit boundary.
//!
//! So the block is 20 bytes ([`BLOCK_LEN`]): 4 bytes of extension header,
//! 13 bytes of element, 3 of padding. (13 bytes of element do not fit in
//! 12, so the block cannot be 16 bytes.)
//!
//! # Fields
//! - **frame**: the sender's count of video frames *sent* in this session,
//!   +1 per frame (a frame the sender skips takes no number), wrapping at
//!   2^32. Every packet of a frame carries the same number. Not the index
//!   of the frame in the clip, which repeats when the clip loops.
//! - **send_ns**: the guest's CLOCK_REALTIME, ns, when the sender handed
//!   the frame's first packet to the socket. Untrusted for absolute time
//!   (the guest's clock is not the client's and stops while the VM is
//!   paused); useful for ordering and for the spacing between frames as the
//!   sender saw it.
//!
//! # Parsing
//! [`parse`] takes the profile and the data words of a packet's extension
//! (what follows the 4-byte extension header) and returns the first element
//! with ID 1 and 12 data bytes. It follows RFC 8285 section 4.2: zero bytes
//! are padding; ID 15 stops the parse; other elements are skipped by their
//! length. It never panics: garbage, a wrong profile, an element running
//! past the end or no element of ours all give `None`.
//!
//! Pure: no I/O, no clock reads.

use serde::{Deserialize, Serialize};

/// The RFC 8285 one-byte-header profile, `0xBEDE`.
pub const PROFILE_ONE_BYTE: u16 = 0xBEDE;
/// The element ID of our frame tag.
pub const ELEMENT_ID: u8 = 1;
/// Data bytes of our element: frame (4) and send time (8).
pub const ELEMENT_LEN: usize = 12;
/// The whole extension block written by [`encode`]: header, element, padding.
pub const BLOCK_LEN: usize = 20;

/// What our extension carries on every packet of a frame; each field is
/// defined in the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FrameTag {
    /// The sender's frame count (wraps at 2^32).
    pub frame: u32,
    /// The guest's CLOCK_REALTIME when the frame was sent, ns (untrusted).
    pub send_ns: i64,
}

/// The extension block for a packet of frame `frame` sent at `send_ns`:
/// the `0xBEDE` profile, the length in words, our element and padding, to
/// be placed right after the RTP header's CSRC list with the X bit set.
pub fn encode(frame: u32, send_ns: i64) -> [u8; BLOCK_LEN] {
    let mut b = [0u8; BLOCK_LEN];
    let words = ((BLOCK_LEN - 4) / 4) as u16;
    b[0..2].copy_from_slice(&PROFILE_ONE_BYTE.to_be_bytes());
    b[2..4].copy_from_slice(&words.to_be_bytes());
    b[4] = (ELEMENT_ID << 4) | (ELEMENT_LEN as u8 - 1);
    b[5..9].copy_from_slice(&frame.to_be_bytes());
    b[9..17].copy_from_slice(&send_ns.to_be_bytes());
    b
}

/// Our [`FrameTag`] from a packet's header extension: `ext_profile` is the
/// extension's 16-bit profile field, `ext_data` the data after its 4-byte
/// header (length × 4 bytes). `None` when the profile is not `0xBEDE` or
/// no well-formed element ID 1 with 12 data bytes comes before the end, a
/// malformed element or an ID 15. Never panics.
pub fn parse(ext_profile: u16, ext_data: &[u8]) -> Option<FrameTag> {
    if ext_profile != PROFILE_ONE_BYTE {
        return None;
    }
    let mut rest = ext_data;
    while let Some((&h, tail)) = rest.split_first() {
        if h == 0 {
            rest = tail; // padding
            continue;
        }
        let id = h >> 4;
        if id == 15 {
            return None; // reserved: stop processing
        }
        let len = usize::from(h & 0x0f) + 1;
        let data = tail.get(..len)?;
        if id == ELEMENT_ID && len == ELEMENT_LEN {
            let frame = u32::from_be_bytes(data.get(0..4)?.try_into().ok()?);
            let send_ns = i64::from_be_bytes(data.get(4..12)?.try_into().ok()?);
            return Some(FrameTag { frame, send_ns });
        }
        rest = tail.get(len..)?;
    }
    None
}

/// [`parse`] on a whole block as [`encode`] writes it (4-byte header
/// included); `None` when the length field runs past the end.
pub fn parse_block(block: &[u8]) -> Option<FrameTag> {
    let profile = u16::from_be_bytes(block.get(0..2)?.try_into().ok()?);
    let words = usize::from(u16::from_be_bytes(block.get(2..4)?.try_into().ok()?));
    parse(profile, block.get(4..4 + words * 4)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_the_documented_layout() {
        let b = encode(0x0102_0304, 0x1112_1314_1516_1718);
        assert_eq!(
            b,
            [
                0xBE, 0xDE, 0x00, 0x04, 0x1B, 0x01, 0x02, 0x03, 0x04, 0x11, 0x12, 0x13, 0x14, 0x15,
                0x16, 0x17, 0x18, 0, 0, 0
            ]
        );
        assert_eq!(
            parse_block(&b),
            Some(FrameTag {
                frame: 0x0102_0304,
                send_ns: 0x1112_1314_1516_1718
            })
        );
    }

    #[test]
    fn skips_padding_and_other_elements_and_stops_at_id_15() {
        let tag = encode(7, -5);
        let ours = &tag[4..17];
        // Padding, then element ID 3 with 2 bytes, then ours.
        let mut data = vec![0, 0, 0x31, 0xAA, 0xBB];
        data.extend_from_slice(ours);
        let want = Some(FrameTag {
            frame: 7,
            send_ns: -5,
        });
        assert_eq!(parse(PROFILE_ONE_BYTE, &data), want);
        // ID 1 with another length is not ours; the next element is.
        let mut data = vec![0x13, 1, 2, 3, 4];
        data.extend_from_slice(ours);
        assert_eq!(parse(PROFILE_ONE_BYTE, &data), want);
        // ID 15 ends the parse before ours.
        let mut data = vec![0xF0];
        data.extend_from_slice(ours);
        assert_eq!(parse(PROFILE_ONE_BYTE, &data), None);
        // Wrong profile (the two-byte form), nothing, truncated.
        assert_eq!(parse(0x1000, ours), None);
        assert_eq!(parse(PROFILE_ONE_BYTE, &[]), None);
        assert_eq!(parse(PROFILE_ONE_BYTE, &ours[..12]), None);
        assert_eq!(parse_block(&tag[..19]), None);
        assert_eq!(parse_block(&[0xBE]), None);
    }

    proptest! {
        #[test]
        fn round_trips(frame in any::<u32>(), send_ns in any::<i64>()) {
            let b = encode(frame, send_ns);
            prop_assert_eq!(parse_block(&b), Some(FrameTag { frame, send_ns }));
            prop_assert_eq!(parse(PROFILE_ONE_BYTE, &b[4..]), Some(FrameTag { frame, send_ns }));
        }

        #[test]
        fn garbage_never_panics(profile in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(profile, &data);
            let _ = parse(PROFILE_ONE_BYTE, &data);
            let _ = parse_block(&data);
        }
    }
}
