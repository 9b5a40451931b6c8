//! Property tests of the probe packet parser: no input makes it panic, and
//! every valid packet survives encode then decode.

use proptest::prelude::*;
use wire::probe::{DecodeError, Kind, ProbePacket, HEADER_LEN, MAGIC};

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Request), Just(Kind::Reply)]
}

prop_compose! {
    fn packet()(
        kind in kind(),
        session in any::<u64>(),
        seq in any::<u64>(),
        client_send_ns in any::<i64>(),
        reflector_rx_ns in any::<i64>(),
        reflector_tx_ns in any::<i64>(),
        reflector_rx_count in any::<u64>(),
    ) -> ProbePacket {
        ProbePacket { kind, session, seq, client_send_ns, reflector_rx_ns, reflector_tx_ns, reflector_rx_count }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        match ProbePacket::decode(&bytes) {
            Ok(_) => prop_assert!(bytes.len() >= HEADER_LEN && bytes[..4] == MAGIC),
            Err(DecodeError::Truncated { len }) => prop_assert_eq!(len, bytes.len()),
            Err(_) => {}
        }
    }

    #[test]
    fn bytes_behind_a_valid_magic_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..196)) {
        // Random bytes rarely start with the magic: make sure the deeper
        // checks see random input too.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&tail);
        let _ = ProbePacket::decode(&bytes);
    }

    #[test]
    fn valid_packets_round_trip(p in packet(), padding in 0usize..144, fill in any::<u8>()) {
        let mut buf = vec![fill; HEADER_LEN + padding];
        prop_assert_eq!(p.encode(&mut buf), HEADER_LEN);
        prop_assert_eq!(ProbePacket::decode(&buf), Ok(p));
    }
}
