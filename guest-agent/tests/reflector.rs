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

    let before = wire::clock::realtime_ns();
    let req = request(0xabcd, 0, 100);
    let reply = exchange(&c, to, &req);
    let after = wire::clock::realtime_ns();
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

/// Reads replies until `n` arrived or the socket stays silent.
fn collect(sock: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    let mut buf = [0u8; 2048];
    while out.len() < n {
        match sock.recv_from(&mut buf) {
            Ok((len, _)) => out.push(buf[..len].to_vec()),
            Err(_) => break,
        }
    }
    out
}

fn big_buffers(sock: &UdpSocket) {
    // Room for the whole burst in both directions, so that the test checks
    // the reflector and not the loopback queues (root is not required: the
    // kernel caps the ordinary options at net.core.[rw]mem_max).
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = setsockopt(sock, sockopt::RcvBufForce, &(4 << 20));
    let _ = setsockopt(sock, sockopt::SndBufForce, &(4 << 20));
}

#[test]
fn burst_sent_back_to_back_is_answered_in_batches() {
    const N: u64 = 500;
    let r = Reflector::spawn_on("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = r.local_addr();
    let c = client();
    big_buffers(&c);
    let padding = |seq: u64| (seq as usize * 7) % 300;
    for seq in 0..N {
        c.send_to(&request(0x5eed, seq, padding(seq)), to).unwrap();
    }
    let replies = collect(&c, N as usize);
    let mut seqs = Vec::new();
    for reply in &replies {
        let p = ProbePacket::decode(reply).unwrap();
        assert_eq!(p.kind, Kind::Reply);
        assert_eq!(p.session, 0x5eed);
        assert_eq!(p.client_send_ns, 1_700_000_000_000_000_000 + p.seq as i64);
        let req = request(0x5eed, p.seq, padding(p.seq));
        assert_eq!(reply.len(), req.len(), "seq {}", p.seq);
        assert_eq!(reply[HEADER_LEN..], req[HEADER_LEN..], "seq {}", p.seq);
        assert!(p.reflector_tx_ns >= p.reflector_rx_ns, "{p:?}");
        seqs.push((p.seq, p.reflector_rx_count));
    }
    let stats = r.counters().snapshot();
    // Loopback can drop under memory pressure; whatever arrived was
    // answered, and every reply must be accounted for.
    assert_eq!(stats.echoed, replies.len() as u64);
    assert!(
        replies.len() as u64 >= N * 9 / 10,
        "only {} of {N} replies",
        replies.len()
    );
    // Counts are 1, 2, 3, ... in the order the reflector received the
    // requests, which on loopback is the order they were sent.
    for (i, &(seq, count)) in seqs.iter().enumerate() {
        assert_eq!(count, i as u64 + 1, "reply {i} (seq {seq})");
    }
    if replies.len() as u64 == N {
        let in_order: Vec<u64> = seqs.iter().map(|s| s.0).collect();
        assert_eq!(in_order, (0..N).collect::<Vec<_>>());
    }
    assert_eq!(r.counters().kernel_timestamps(), replies.len() as u64);
    eprintln!(
        "{} requests answered in {} batches",
        replies.len(),
        r.counters().batches()
    );
    assert!(r.counters().batches() <= replies.len() as u64);
    assert_eq!(stats.sessions, 1);
    assert_eq!(stats.malformed, 0);
    r.stop();
}

#[test]
fn garbage_interleaved_in_a_burst_is_counted_and_skipped() {
    let r = Reflector::spawn_on("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = r.local_addr();
    let c = client();
    big_buffers(&c);
    let other = client();
    big_buffers(&other);
    let mut sent_good = 0u64;
    let mut sent_bad = 0u64;
    let mut sent_other = 0u64;
    for seq in 0..300u64 {
        c.send_to(&request(0xa, seq, 16), to).unwrap();
        sent_good += 1;
        match seq % 5 {
            0 => {
                c.send_to(b"junk", to).unwrap();
                sent_bad += 1;
            }
            1 => {
                // A reply sent to the reflector is not answered.
                let mut b = request(0xa, seq, 0);
                b[5] = 2;
                c.send_to(&b, to).unwrap();
                sent_bad += 1;
            }
            2 => {
                // Another session in the same batch counts on its own.
                other.send_to(&request(0xb, seq, 0), to).unwrap();
                sent_other += 1;
            }
            _ => {}
        }
    }
    let mine = collect(&c, sent_good as usize);
    let theirs = collect(&other, sent_other as usize);
    let counts = |replies: &[Vec<u8>], session: u64| -> Vec<u64> {
        replies
            .iter()
            .map(|b| {
                let p = ProbePacket::decode(b).unwrap();
                assert_eq!(p.session, session);
                p.reflector_rx_count
            })
            .collect()
    };
    let a = counts(&mine, 0xa);
    let b = counts(&theirs, 0xb);
    assert_eq!(a, (1..=a.len() as u64).collect::<Vec<_>>());
    assert_eq!(b, (1..=b.len() as u64).collect::<Vec<_>>());
    assert!(a.len() as u64 >= sent_good * 9 / 10, "{} replies", a.len());
    let stats = r.counters().snapshot();
    assert_eq!(stats.echoed, (a.len() + b.len()) as u64);
    assert_eq!(stats.sessions, 2);
    if a.len() as u64 == sent_good && b.len() as u64 == sent_other {
        // Nothing dropped on loopback: every bad datagram reached it too.
        assert_eq!(stats.malformed, sent_bad);
    } else {
        assert!(stats.malformed <= sent_bad);
    }
    assert!(r.is_running());
    r.stop();
}
