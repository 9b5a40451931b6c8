//! The reflector on loopback with real sockets.
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::UdpSocket;
use std::time::Duration;

use guest_agent::reflector::Reflector;
use wire::control::ReflectorStats;
use wire::probe::{Kind, ProbePacket, HEADER_LEN};

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s
}

fn request(session: u64, seq: u64, padding: usize) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER_LEN + padding];
    for (i, b) in buf[HEADER_LEN..].iter_mut().enumerate() {
        *b = (i % 251) as u8 ^ 0xa5;
    }
    ProbePacket::request(session, seq, 1_700_000_000_000_000_000 + seq as i64).encode(&mut buf);
    buf
}

fn exchange(sock: &UdpSocket, to: std::net::SocketAddr, req: &[u8]) -> Vec<u8> {
    sock.send_to(req, to).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(from, to);
    buf[..n].to_vec()
}

fn expect_silence(sock: &UdpSocket) {
    let mut buf = [0u8; 2048];
    let e = sock.recv_from(&mut buf).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );
}

#[test]
fn reflects_requests_and_counts_per_session() {
    let r = Reflector::spawn_on("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = r.local_addr();
    let c = client();

    let before = guest_agent::reflector::realtime_ns();
    let req = request(0xabcd, 0, 100);
    let reply = exchange(&c, to, &req);
    let after = guest_agent::reflector::realtime_ns();
    assert_eq!(reply.len(), req.len(), "total length is kept");
    assert_eq!(
        reply[HEADER_LEN..],
        req[HEADER_LEN..],
        "padding echoed unchanged"
    );
    let p = ProbePacket::decode(&reply).unwrap();
    assert_eq!(p.kind, Kind::Reply);
    assert_eq!(p.session, 0xabcd);
    assert_eq!(p.seq, 0);
    assert_eq!(p.client_send_ns, 1_700_000_000_000_000_000);
    assert_eq!(p.reflector_rx_count, 1);
    assert!(
        p.reflector_rx_ns >= before && p.reflector_rx_ns <= after,
        "{p:?}"
    );
    assert!(
        p.reflector_tx_ns >= p.reflector_rx_ns && p.reflector_tx_ns <= after,
        "{p:?}"
    );

    // The count goes up per session, independently for each session.
    for seq in 1..=3 {
        let p = ProbePacket::decode(&exchange(&c, to, &request(0xabcd, seq, 0))).unwrap();
        assert_eq!((p.seq, p.reflector_rx_count), (seq, seq + 1));
    }
    let other = client();
    let p = ProbePacket::decode(&exchange(&other, to, &request(0xbeef, 0, 8))).unwrap();
    assert_eq!(p.reflector_rx_count, 1);
    let p = ProbePacket::decode(&exchange(&c, to, &request(0xabcd, 4, 0))).unwrap();
    assert_eq!(p.reflector_rx_count, 5);

    // On Linux loopback the kernel timestamps every datagram.
    assert_eq!(r.counters().kernel_timestamps(), 6);
    assert_eq!(
        r.counters().snapshot(),
        ReflectorStats {
            echoed: 6,
            malformed: 0,
            sessions: 2
        }
    );
    r.stop();
}

#[test]
fn garbage_is_counted_and_never_answered() {
    let r = Reflector::spawn_on("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = r.local_addr();
    let c = client();
    let full = request(1, 0, 0);
    let mut reply_kind = full.clone();
    ProbePacket {
        kind: Kind::Reply,
        ..ProbePacket::request(1, 0, 0)
    }
    .encode(&mut reply_kind);
    let mut bad_version = full.clone();
    bad_version[4] = 99;
    let bad: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        full[..HEADER_LEN - 1].to_vec(),
        full[..3].to_vec(),
        reply_kind,
        bad_version,
        vec![0xff; 1400],
    ];
    for b in &bad {
        c.send_to(b, to).unwrap();
    }
    expect_silence(&c);
    assert!(r.is_running());
    // Still alive and answering.
    let p = ProbePacket::decode(&exchange(&c, to, &full)).unwrap();
    assert_eq!(p.reflector_rx_count, 1);
    assert_eq!(
        r.counters().snapshot(),
        ReflectorStats {
            echoed: 1,
            malformed: bad.len() as u64,
            sessions: 1
        }
    );
    r.stop();
}

#[test]
fn large_padded_request_is_echoed_whole() {
    let r = Reflector::spawn_on("127.0.0.1:0".parse().unwrap()).unwrap();
    let c = client();
    let req = request(5, 9, 1400 - HEADER_LEN);
    let reply = exchange(&c, r.local_addr(), &req);
    assert_eq!(reply.len(), 1400);
    assert_eq!(reply[HEADER_LEN..], req[HEADER_LEN..]);
}
