//! Fuzz target: our RTP frame tag (`wire::rtp_ext::parse`, `parse_block`).
//! Never a panic; a tag found is really in the bytes (an element header
//! 0x1B followed by its frame and send time) and encodes to a block that
//! parses back to it; `parse_block` agrees with `parse` on the data words.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::rtp_ext::{encode, parse, parse_block, ELEMENT_ID, ELEMENT_LEN, PROFILE_ONE_BYTE};

fuzz_target!(|data: &[u8]| {
    // `parse` with the first two bytes as the profile, the rest as data.
    if data.len() >= 2 {
        let profile = u16::from_be_bytes([data[0], data[1]]);
        let ext = &data[2..];
        if let Some(t) = parse(profile, ext) {
            assert_eq!(profile, PROFILE_ONE_BYTE);
            let h = (ELEMENT_ID << 4) | (ELEMENT_LEN as u8 - 1);
            let mut body = t.frame.to_be_bytes().to_vec();
            body.extend_from_slice(&t.send_ns.to_be_bytes());
            assert!(
                ext.windows(1 + ELEMENT_LEN)
                    .any(|w| w[0] == h && w[1..] == body[..]),
                "the tag found is in the data"
            );
            let b = encode(t.frame, t.send_ns);
            assert_eq!(parse_block(&b), Some(t));
        }
        // The same data under our profile, for coverage of the walk.
        let _ = parse(PROFILE_ONE_BYTE, ext);
    }
    // `parse_block` is `parse` on the declared words.
    let got = parse_block(data);
    if data.len() >= 4 {
        let words = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let want = data
            .get(4..4 + 4 * words)
            .and_then(|d| parse(u16::from_be_bytes([data[0], data[1]]), d));
        assert_eq!(got, want);
    } else {
        assert_eq!(got, None);
    }
});
