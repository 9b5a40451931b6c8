//! The ICMP prober against a real kernel: echoes to 127.0.0.1, answered by
//! this machine's own kernel, on a raw socket. Needs root (`CAP_NET_RAW`):
//! without it the test fails saying so rather than pass without testing
//! anything.

use std::net::Ipv4Addr;
use std::time::Duration;

use client_probe::{IcmpConfig, IcmpProber, IcmpSocket};

#[test]
fn the_kernel_answers_every_echo_with_kernel_timestamps() {
    let socket = IcmpSocket::open()
        .expect("a raw ICMP socket needs root (CAP_NET_RAW): run the tests as root");
    let ignore_all = std::fs::read_to_string("/proc/sys/net/ipv4/icmp_echo_ignore_all").unwrap();
    assert_eq!(
        ignore_all.trim(),
        "0",
        "this machine's kernel ignores pings (net.ipv4.icmp_echo_ignore_all)"
    );
    let p = IcmpProber::start(
        socket,
        IcmpConfig {
            target: Ipv4Addr::LOCALHOST,
            rate_hz: 500,
            payload_len: 64,
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let delta = p.checkpoint().unwrap();
    assert!(!delta.replies.is_empty(), "no reply in 300 ms");
    std::thread::sleep(Duration::from_millis(200));
    let session = p.session();
    let live = p.live();
    let rec = p.stop().unwrap();
    assert!(live.sent > 100 && live.replies > 100, "{live:?}");
    assert_eq!(rec.session, session);
    assert_eq!(rec.target, "127.0.0.1");
    assert_eq!(rec.payload_len, 64);
    let n = rec.send_ns.len();
    assert!(n > 150, "sent {n} echoes in 0.5 s at 500/s");
    // Loopback loses nothing; our own requests, seen on the same raw
    // socket, are neither replies nor malformed.
    let mut seen = vec![false; n];
    for r in &rec.replies {
        seen[r.seq as usize] = true;
        assert!(r.kernel_ts, "{r:?}");
        assert_eq!(r.send_ns, rec.send_ns[r.seq as usize], "{r:?}");
        assert!(r.rx_ns >= r.send_ns && r.rx_ns - r.send_ns < 100_000_000);
        assert_eq!(
            (r.guest_rx_ns, r.guest_tx_ns, r.reflector_rx_count),
            (0, 0, 0)
        );
    }
    assert!(seen.iter().all(|&s| s), "every echo answered");
    assert_eq!(
        (rec.malformed, rec.foreign_session, rec.send_errors),
        (0, 0, 0)
    );
    // The checkpoint handed over a prefix of the same record.
    assert_eq!(delta.first_seq, 0);
    assert_eq!(delta.send_ns[..], rec.send_ns[..delta.send_ns.len()]);
    assert_eq!(delta.replies[..], rec.replies[..delta.replies.len()]);
    // The analysis is the UDP probe's: no gap on loopback.
    let g = measure::probe::gaps::analyze(&rec, None, 5_000_000);
    assert_eq!(g.lost, 0);
    assert!(g.max_gap_ms < 50.0, "{g:?}");
}
