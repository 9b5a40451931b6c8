//! Fuzz target: the clip container (`wire::clip::Clip::decode`). No input
//! may make it panic; whatever decodes encodes back to the same bytes
//! (except the flags byte's unused bits) and decodes again to the same clip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::clip::{Clip, MAGIC};

fuzz_target!(|data: &[u8]| {
    let Ok(c) = Clip::decode(data) else { return };
    assert!(data.starts_with(MAGIC));
    assert!(c.fps_num > 0 && c.fps_den > 0);
    let back = c.encode();
    assert_eq!(back.len(), data.len(), "encode keeps the length");
    assert_eq!(
        Clip::decode(&back).as_ref(),
        Ok(&c),
        "decode(encode(c)) == c"
    );
    // Byte for byte, except the flags byte of each unit (only bit 0 is read).
    let mut at = 32;
    let mut flags = Vec::new();
    for u in &c.units {
        flags.push(at + 12);
        at += 15;
        for n in &u.nals {
            at += 4 + n.len();
        }
    }
    assert_eq!(at, data.len());
    for (i, (a, b)) in back.iter().zip(data).enumerate() {
        if flags.binary_search(&i).is_ok() {
            assert_eq!(a & 1, b & 1, "keyframe bit at {i}");
        } else {
            assert_eq!(a, b, "byte {i}");
        }
    }
    assert_eq!(
        c.payload_bytes(),
        c.units
            .iter()
            .flat_map(|u| &u.nals)
            .map(Vec::len)
            .sum::<usize>()
    );
    let _ = c.frame_ticks();
});
