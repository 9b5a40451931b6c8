//! Fuzz target: no datagram may make the probe packet parser panic, and
//! whatever decodes must encode back to the same header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::probe::{ProbePacket, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ProbePacket::decode(data) {
        let mut buf = [0u8; HEADER_LEN];
        p.encode(&mut buf);
        assert_eq!(ProbePacket::decode(&buf), Ok(p));
        // The reserved bytes are not checked on decode; all else must match.
        assert_eq!(buf[..6], data[..6]);
        assert_eq!(buf[8..HEADER_LEN], data[8..HEADER_LEN]);
    }
});
