//! The prober against a tiny reflector on 127.0.0.1 (loopback only).
#![expect(clippy::unwrap_used, reason = "test helpers: a failure should panic")]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use client_probe::{ProbeConfig, Prober};
use measure::probe::gaps::analyze;
use wire::clock::realtime_ns;
use wire::probe::{Kind, ProbePacket, HEADER_LEN};

/// A minimal reflector: echoes requests as replies with its counts and
/// timestamps, except during `pause` (measured from the first request),
/// when it drops them unseen, as a stopped VM would. If `garbage`, it also
/// sends junk to the prober 100 ms after the first request.
struct Reflector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Reflector {
    fn start(pause: Option<(Duration, Duration)>, garbage: bool) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut counts: HashMap<u64, u64> = HashMap::new();
            let mut first: Option<Instant> = None;
            let mut junk_sent = false;
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let rx = realtime_ns();
                let Ok(mut p) = ProbePacket::decode(&buf[..len]) else {
                    continue;
                };
                if p.kind != Kind::Request {
                    continue;
                }
                let t0 = *first.get_or_insert_with(Instant::now);
                let since = t0.elapsed();
                if let Some((a, b)) = pause {
                    if since >= a && since < b {
                        continue;
                    }
                }
                if garbage && !junk_sent && since >= Duration::from_millis(100) {
                    junk_sent = true;
                    send_junk(&sock, from, p.session);
                }
                let c = counts.entry(p.session).or_insert(0);
                *c += 1;
                p.kind = Kind::Reply;
                p.reflector_rx_ns = rx;
                p.reflector_rx_count = *c;
                p.reflector_tx_ns = realtime_ns();
                p.encode(&mut buf);
                let _ = sock.send_to(&buf[..len], from);
            }
        });
        Reflector { addr, stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
    }
}

/// Six malformed datagrams and one reply of another session.
fn send_junk(sock: &UdpSocket, to: SocketAddr, session: u64) {
    let mut good = [0u8; HEADER_LEN];
    let mut reply = ProbePacket::request(session, 1_000_000_000_000, 0);
    reply.kind = Kind::Reply;
    reply.encode(&mut good); // a reply to a seq never sent
    let mut bad_version = good;
    bad_version[4] = 99;
    let mut request = [0u8; HEADER_LEN];
    ProbePacket::request(session, 0, 0).encode(&mut request);
    let mut foreign = [0u8; HEADER_LEN];
    let mut f = ProbePacket::request(session ^ 1, 0, 0);
    f.kind = Kind::Reply;
    f.encode(&mut foreign);
    let junk: [&[u8]; 7] = [
        b"",
        b"GET / HTTP/1.1\r\n\r\n",
        &good[..HEADER_LEN - 1],
        &bad_version,
        &request,
        &good,
        &foreign,
    ];
    for j in junk {
        sock.send_to(j, to).unwrap();
    }
}

fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

#[test]
fn a_200_ms_outage_is_measured_and_junk_is_counted() {
    let refl = Reflector::start(
        Some((Duration::from_millis(300), Duration::from_millis(500))),
        true,
    );
    let target = refl.addr;
    let cfg = ProbeConfig {
        target,
        rate_hz: 1000,
        payload_len: 100,
    };
    let prober = Prober::start(client(), cfg).unwrap();
    std::thread::sleep(Duration::from_millis(450));
    let mid = prober.live();
    assert!(mid.sent > 300, "{mid:?}");
    assert!(mid.current_gap_ms > 50.0, "inside the outage: {mid:?}");
    std::thread::sleep(Duration::from_millis(350));
    let live = prober.live();
    let rec = prober.stop().unwrap();
    refl.stop();

    assert!(live.max_gap_ms >= 190.0, "{live:?}");
    assert!(rec.send_ns.len() >= 700, "sent {}", rec.send_ns.len());
    assert_eq!(rec.payload_len, 100);
    assert_eq!(rec.target, target.to_string());
    assert!(!rec.replies.is_empty());
    assert!(
        rec.replies.iter().all(|r| r.kernel_ts),
        "kernel timestamps on every reply"
    );
    assert!(rec
        .replies
        .iter()
        .all(|r| r.rx_ns > r.send_ns && r.rx_ns - r.send_ns < 100_000_000));
    assert_eq!(rec.malformed, 6);
    assert_eq!(rec.foreign_session, 1);
    assert_eq!(rec.send_errors, 0);

    let s = analyze(&rec, None, 50_000_000);
    eprintln!(
        "sent {} replies {} lost {} (forward {}) max gap {:.2} ms, forward {:.2} ms, rtt p50 {:.3} ms, sender late {}",
        s.probes_sent, s.replies, s.lost, s.lost_forward, s.max_gap_ms, s.max_forward_gap_ms, s.rtt_ms.p50, s.sender_late
    );
    assert!((190.0..260.0).contains(&s.max_gap_ms), "{s:#?}");
    assert_eq!(s.gaps.len(), 1, "{s:#?}");
    assert!((190.0..260.0).contains(&s.max_forward_gap_ms), "{s:#?}");
    assert!((180..=230).contains(&s.lost), "{s:#?}");
    assert_eq!(
        s.lost_forward, s.lost,
        "the reflector never saw the lost probes"
    );
    assert_eq!(s.duplicates, 0);
    let g = &s.gaps[0];
    assert_eq!(g.lost_in_gap, g.first_seq_after - g.last_seq_before - 1);
}

#[test]
fn replies_from_another_address_are_ignored() {
    let refl = Reflector::start(None, false);
    let cfg = ProbeConfig {
        target: refl.addr,
        rate_hz: 500,
        payload_len: HEADER_LEN,
    };
    let sock = client();
    let me = sock.local_addr().unwrap();
    let prober = Prober::start(sock, cfg).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // A forged but otherwise perfect reply from elsewhere.
    let mut p = ProbePacket::request(prober.session(), 0, 0);
    p.kind = Kind::Reply;
    p.reflector_rx_count = 999_999;
    let mut buf = [0u8; HEADER_LEN];
    p.encode(&mut buf);
    client().send_to(&buf, me).unwrap();
    client().send_to(b"junk", me).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let rec = prober.stop().unwrap();
    refl.stop();
    assert!(rec.replies.iter().all(|r| r.reflector_rx_count != 999_999));
    assert_eq!((rec.malformed, rec.foreign_session), (0, 0));
    let s = analyze(&rec, None, 50_000_000);
    assert_eq!(s.lost, 0, "{s:#?}");
    assert_eq!(s.probes_sent, rec.send_ns.len() as u64);
}

#[test]
fn stop_is_prompt_at_a_low_rate() {
    // Nothing listens at the target: probes are simply lost.
    let silent = client();
    let cfg = ProbeConfig {
        target: silent.local_addr().unwrap(),
        rate_hz: 1,
        payload_len: 64,
    };
    let prober = Prober::start(client(), cfg).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let rec = prober.stop().unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(rec.send_ns.len(), 1);
    assert!(rec.replies.is_empty());
    let s = analyze(&rec, None, 5_000_000);
    assert_eq!((s.probes_sent, s.lost, s.max_gap), (1, 1, None));
}

#[test]
fn checkpoints_hand_over_every_record_once_and_in_order_while_probing() {
    let refl = Reflector::start(None, false);
    let cfg = ProbeConfig {
        target: refl.addr,
        rate_hz: 1000,
        payload_len: 64,
    };
    let prober = Prober::start(client(), cfg).unwrap();
    let (mut sends, mut replies) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(80));
        let d = prober.checkpoint().unwrap();
        assert_eq!(d.first_seq, sends.len() as u64, "deltas follow each other");
        sends.extend(d.send_ns);
        replies.extend(d.replies);
    }
    assert!(sends.len() > 200, "{} sends handed over", sends.len());
    assert!(replies.len() > 200, "{} replies handed over", replies.len());
    assert_eq!(prober.meta().session, prober.session());
    let rec = prober.stop().unwrap();
    refl.stop();
    assert_eq!(
        sends[..],
        rec.send_ns[..sends.len()],
        "a prefix of the whole record"
    );
    assert_eq!(replies[..], rec.replies[..replies.len()]);
}
