//! The client side of the video streams on loopback, with real sockets: an
//! RTP sender thread → [`RtpReceiver`] → `analyze_rtp`, checked against
//! tshark on the pcap we write; a paced HTTP server thread → [`HttpStream`]
//! (a broken connection resumed with `Range`) → the player model.
#![expect(clippy::unwrap_used, reason = "test helpers: a failure should panic")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client_probe::http_stream::HttpStream;
use client_probe::rtp_receiver::{write_rtp_pcap, RtpCapture, RtpReceiver};
use measure::stream::playout::{playout, PlayoutParams};
use measure::stream::rtp::testing::StreamBuilder;
use measure::stream::rtp::{analyze_rtp, RtpAnalysisOptions, RtpArrival};

const MS: i64 = 1_000_000;
const SSRC: u32 = 0x4c4d_4947;
/// One frame at 30 fps.
const FRAME: Duration = Duration::from_nanos(33_333_333);

/// Sends `frames` (each frame's packets) to `to` on an absolute 30 fps
/// schedule, pausing `pause` after frame `pause_after`, leaving out the
/// frames in `drop_frames`. Returns the packets sent.
fn send_stream(
    to: SocketAddr,
    frames: Vec<Vec<RtpArrival>>,
    pause_after: Option<(usize, Duration)>,
    drop_frames: &[usize],
) -> u64 {
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = Instant::now() + Duration::from_millis(20);
    let mut sent = 0;
    for (k, frame) in frames.iter().enumerate() {
        // Frame k's time: k intervals, but after the pause frame the next
        // one comes `pause` after it instead of one interval.
        let mut due = start + FRAME * k as u32;
        if let Some((p, d)) = pause_after {
            if k > p {
                due += d.saturating_sub(FRAME);
            }
        }
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        if drop_frames.contains(&k) {
            continue;
        }
        for p in frame {
            tx.send_to(&p.bytes, to).unwrap();
            sent += 1;
        }
    }
    sent
}

fn receive(
    frames: Vec<Vec<RtpArrival>>,
    pause_after: Option<(usize, Duration)>,
    drop_frames: &'static [usize],
) -> (u64, i64, RtpCapture) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = sock.local_addr().unwrap();
    let rx = RtpReceiver::start(sock).unwrap();
    let sender = std::thread::spawn(move || send_stream(to, frames, pause_after, drop_frames));
    let sent = sender.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while rx.live().packets < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let live = rx.live();
    assert!(live.current_gap_ns >= 0);
    (sent, live.max_gap_ns, rx.stop())
}

#[test]
fn rtp_receiver_captures_a_30_fps_second_with_kernel_timestamps() {
    let frames = StreamBuilder::new(SSRC, 65_500).frames(30, 700);
    let (sent, _, cap) = receive(frames, None, &[]);
    assert_eq!(cap.arrivals.len() as u64, sent);
    assert!(cap.arrivals.iter().all(|a| a.kernel_ts));
    assert_eq!((cap.truncated, cap.read_errors), (0, 0));
    let s = analyze_rtp(&cap.arrivals, &RtpAnalysisOptions::default());
    assert_eq!(s.ssrc, Some(SSRC));
    assert_eq!((s.received, s.lost, s.duplicates), (sent, 0, 0));
    assert_eq!(s.frames_complete, 30);
    let first = s.frames.first().unwrap().first_rx_ns;
    let last = s.frames.last().unwrap().first_rx_ns;
    let fps = 29.0 / ((last - first) as f64 / 1e9);
    println!(
        "30 frames: {sent} packets, {fps:.2} frames/s, max gap {:.3} ms",
        s.max_gap_ms
    );
    assert!((27.0..=33.0).contains(&fps), "{fps} frames/s");
}

/// tshark's row for the stream: (packets, lost, max delta ms).
fn tshark_rtp_streams(pcap: &std::path::Path, port: u16) -> (u64, i64, f64) {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args([
            "-d",
            &format!("udp.port=={port},rtp"),
            "-q",
            "-z",
            "rtp,streams",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run tshark ({e}): install Debian's `tshark` package \
                 (scripts/install-deps.sh does)"
            )
        });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tshark failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    let header = text
        .lines()
        .find(|l| l.contains("Pkts") && l.contains("Lost"))
        .unwrap_or_else(|| panic!("no RTP streams table in tshark's output:\n{text}"));
    assert!(header.contains("Max Delta"), "{header}");
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("0x{SSRC:08X}")) || l.contains(&format!("0x{SSRC:08x}")))
        .collect();
    assert_eq!(rows.len(), 1, "one stream expected:\n{text}");
    let t: Vec<&str> = rows[0].split_whitespace().collect();
    // ... Pkts Lost (x%) MinDelta MeanDelta MaxDelta ...
    let pct = t.iter().position(|x| x.ends_with("%)")).unwrap();
    (
        t[pct - 2].parse().unwrap(),
        t[pct - 1].parse().unwrap(),
        t[pct + 3].parse().unwrap(),
    )
}

#[test]
fn rtp_pause_and_loss_agree_with_tshark() {
    // 45 frames, a 300 ms pause after frame 20, frames 10 and 11 never
    // sent. P slices of 2000 bytes go as two FU-A fragments, so every
    // frame's first packet has no marker bit: tshark's "Max Delta" leaves
    // out packets with the marker bit set (Wireshark's RTP analysis counts
    // only "regular" packets in it), so a gap ending at a single-packet
    // frame would be invisible to it.
    let frames = StreamBuilder::new(SSRC, 65_520).frames(45, 2000);
    let lost_packets: u64 = frames[10].len() as u64 + frames[11].len() as u64;
    let pause = Duration::from_millis(300);
    let (sent, live_max_gap, cap) = receive(frames, Some((20, pause)), &[10, 11]);
    assert_eq!(cap.arrivals.len() as u64, sent);
    let s = analyze_rtp(&cap.arrivals, &RtpAnalysisOptions::default());
    assert_eq!(s.received, sent);
    assert_eq!(s.lost, lost_packets);
    let live_ms = live_max_gap as f64 / 1e6;
    println!(
        "ours: {} packets, {} lost, max gap {:.3} ms (live {live_ms:.3} ms)",
        s.packets, s.lost, s.max_gap_ms
    );
    assert!(
        (295.0..=345.0).contains(&live_ms),
        "live max gap {live_ms} ms"
    );
    assert!((s.max_gap_ms - live_ms).abs() < 0.001);
    let g = s.max_gap.as_ref().unwrap();
    assert_eq!(g.seq_after - g.seq_before, 1);

    let dir = std::env::temp_dir().join(format!("lmig-streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rtp.pcap");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    write_rtp_pcap(&cap, &mut f).unwrap();
    f.flush().unwrap();
    drop(f);
    let (pkts, lost, max_delta) = tshark_rtp_streams(&path, cap.local_addr.port());
    std::fs::remove_dir_all(&dir).unwrap();
    println!(
        "tshark: {pkts} packets, {lost} lost, max delta {max_delta:.3} ms; \
         ours: {} packets, {} lost, max gap {:.3} ms",
        s.packets, s.lost, s.max_gap_ms
    );
    assert!(
        pkts.abs_diff(s.packets) <= 1,
        "packets: tshark {pkts}, ours {}",
        s.packets
    );
    assert!(
        lost.abs_diff(s.lost as i64) <= 1,
        "lost: tshark {lost}, ours {}",
        s.lost
    );
    assert!(
        (max_delta - s.max_gap_ms).abs() <= 1.0,
        "max gap: tshark {max_delta} ms, ours {} ms",
        s.max_gap_ms
    );
}

/// The test file: byte `i` is `i % 251`.
fn body(from: usize, to: usize) -> Vec<u8> {
    (from..to).map(|i| (i % 251) as u8).collect()
}

/// A paced HTTP server: `total` bytes in `chunk`-byte writes every
/// `every`; the first connection is closed after `cut_at` body bytes.
/// Serves `conns` connections, then returns the request heads it got.
fn serve(
    listener: TcpListener,
    total: usize,
    chunk: usize,
    every: Duration,
    cut_at: usize,
    conns: usize,
) -> Vec<String> {
    let mut requests = Vec::new();
    for n in 0..conns {
        let (mut c, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let k = c.read(&mut b).unwrap();
            assert!(k > 0, "client closed before its request");
            head.extend_from_slice(&b[..k]);
        }
        let head = String::from_utf8(head).unwrap();
        let from = head
            .lines()
            .find_map(|l| l.strip_prefix("Range: bytes="))
            .map(|r| r.trim_end_matches('-').parse::<usize>().unwrap());
        requests.push(head);
        let start = from.unwrap_or(0);
        let resp = match from {
            None => format!("HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: {total}\r\n\r\n"),
            Some(a) => format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Type: video/mp2t\r\nContent-Range: bytes {a}-{}/{total}\r\nContent-Length: {}\r\n\r\n",
                total - 1,
                total - a
            ),
        };
        c.write_all(resp.as_bytes()).unwrap();
        let end = if n == 0 { cut_at } else { total };
        let t0 = Instant::now();
        let mut pos = start;
        let mut k = 0u32;
        while pos < end {
            let next = (pos + chunk).min(end);
            if let Some(w) = (t0 + every * k).checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            if c.write_all(&body(pos, next)).is_err() {
                break;
            }
            pos = next;
            k += 1;
        }
        // Dropping `c` closes the connection (mid-body the first time).
    }
    requests
}

#[test]
fn http_download_is_paced_survives_a_cut_and_feeds_the_player() {
    const TOTAL: usize = 400_000;
    const CUT: usize = 200_000;
    // 10 kB every 25 ms: 400 kB/s, the whole file in about 1 s.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        serve(listener, TOTAL, 10_000, Duration::from_millis(25), CUT, 2)
    });
    let connects = Arc::new(Mutex::new(0u32));
    let dl = HttpStream::start(
        {
            let connects = connects.clone();
            move || {
                *connects.lock().unwrap() += 1;
                TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            }
        },
        &addr.to_string(),
        "/clip.ts",
    )
    .unwrap();
    let requests = server.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while dl.bytes() < TOTAL as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let cap = dl.stop();

    // The requests: a plain GET, then a Range resuming at the cut.
    assert_eq!(requests.len(), 2);
    assert!(requests[0].starts_with("GET /clip.ts HTTP/1.1\r\n"));
    assert!(requests[0].contains(&format!("Host: {addr}\r\n")));
    assert!(!requests[0].contains("Range:"));
    assert!(requests[1].contains(&format!("Range: bytes={CUT}-\r\n")));

    // What the downloader recorded.
    assert_eq!(cap.status, Some(200));
    assert_eq!(cap.connections, 2);
    assert_eq!(*connects.lock().unwrap(), 2);
    assert!(cap.complete);
    assert_eq!(cap.bytes, TOTAL as u64);
    assert_eq!(cap.samples.iter().map(|s| s.1).sum::<u64>(), TOTAL as u64);
    assert!(cap.samples.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(!cap.connection_survived());
    assert_eq!(cap.events.len(), 1);
    let ev = &cap.events[0];
    assert!(
        ev.error.contains("EOF after 200000 of 400000"),
        "{}",
        ev.error
    );
    let reconnected = ev.reconnected_ns.unwrap();
    let reconnect_ms = (reconnected - ev.broke_ns) as f64 / 1e6;
    assert!((100.0..1000.0).contains(&reconnect_ms), "{reconnect_ms} ms");
    // Bytes at the server's pace: the first 200 kB took about 0.5 s.
    let first = cap.samples[0].0;
    let before_cut: Vec<_> = cap.samples.iter().filter(|s| s.0 <= ev.broke_ns).collect();
    assert_eq!(before_cut.iter().map(|s| s.1).sum::<u64>(), CUT as u64);
    let span_ms = (before_cut.last().unwrap().0 - first) as f64 / 1e6;
    assert!(
        (400.0..800.0).contains(&span_ms),
        "first 200 kB in {span_ms} ms"
    );
    let last = cap.samples.last().unwrap().0;
    println!(
        "http: {} samples, {} bytes, break at +{:.1} ms, reconnected after {reconnect_ms:.1} ms, last byte at +{:.1} ms",
        cap.samples.len(),
        cap.bytes,
        (ev.broke_ns - first) as f64 / 1e6,
        (last - first) as f64 / 1e6
    );

    // A player of a 100 kB/s clip (4 s of media, downloaded at 4x): it
    // starts once 2.5 s (250 kB) are in, some 50 kB after the resumption,
    // never stalls, and plays the whole clip.
    let p = playout(
        &cap.samples,
        100_000.0,
        &PlayoutParams {
            total_bytes: Some(TOTAL as u64),
            ..PlayoutParams::default()
        },
        last + 5_000 * MS,
    );
    println!("player at 4x: {p:?}");
    let start_ms = p.startup_delay_ms.unwrap();
    assert!(
        (reconnect_ms + 500.0..reconnect_ms + 900.0).contains(&start_ms),
        "startup {start_ms} ms"
    );
    assert_eq!(p.stall_count, 0);
    assert_eq!(p.rebuffering_ratio, 0.0);
    assert_eq!(p.media_s_received, 4.0);
    assert_eq!(p.played_s, 4.0);

    // A player of a clip as fast as the download (400 kB/s) that starts
    // at 75 ms buffered runs dry during the reconnection (at least 100 ms):
    // a stall from about 75 ms after the last byte before the break until
    // 100 ms of media are in again after it. (Elsewhere the buffer stays
    // at 50-75 ms, so a badly late read on a loaded machine could add a
    // stall: those are not asserted.)
    let tight = PlayoutParams {
        start_s: 0.075,
        resume_s: 0.1,
        total_bytes: Some(TOTAL as u64),
        ..PlayoutParams::default()
    };
    let p = playout(&cap.samples, 400_000.0, &tight, last + 5_000 * MS);
    println!("player at 1x: {p:?}");
    let last_before = before_cut.last().unwrap().0;
    let st = p
        .stalls
        .iter()
        .find(|st| st.start_ns <= ev.broke_ns + 100 * MS && st.end_ns >= reconnected)
        .unwrap_or_else(|| panic!("no stall over the reconnection: {p:?}"));
    assert!(st.start_ns > last_before, "{st:?}");
    assert!(st.end_ns < reconnected + 300 * MS, "{st:?}");
    assert_eq!(p.played_s, 1.0);
}
