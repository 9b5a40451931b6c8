//! The streaming side of the agent over real sockets on loopback: file
//! upload, the `rtp` workload (packets as a receiver sees them) and the
//! `http` workload (pacing, resume).
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use guest_agent::control::{FileInfo, FileList};
use guest_agent::reflector::Reflector;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use wire::clip::{AccessUnit, Clip};
use wire::control::{ApiError, WorkloadReport};

const TOKEN: &str = "stream-token";

async fn start() -> (SocketAddr, Reflector) {
    common::start_agent(TOKEN).await
}

/// One control request on a fresh connection; returns status and body.
async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

fn api_error(body: &[u8]) -> String {
    serde_json::from_slice::<ApiError>(body).unwrap().error
}

fn report(body: &[u8]) -> WorkloadReport {
    serde_json::from_slice(body).unwrap()
}

const SPS: &[u8] = &[0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5, 0x84];
const PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];
const MTU: usize = 1200;

fn idr() -> Vec<u8> {
    let mut v = vec![0x65];
    let mut x: u32 = 12345;
    while v.len() < 5000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        v.push((x >> 16) as u8);
    }
    v
}

fn p_nal(i: u32) -> Vec<u8> {
    let mut v = vec![0x41, i as u8];
    v.extend(std::iter::repeat_n(0xAB, 100 + i as usize));
    v
}

/// 30 fps, 10 frames: frame 0 an IDR (SPS, PPS, a 5000-byte IDR that
/// fragments), the others small P frames.
fn clip() -> Clip {
    Clip {
        fps_num: 30,
        fps_den: 1,
        width: 320,
        height: 240,
        bitrate: 500_000,
        units: (0..10)
            .map(|i| AccessUnit {
                frame: i,
                pts: u64::from(i) * 3000,
                keyframe: i == 0,
                nals: if i == 0 {
                    vec![SPS.to_vec(), PPS.to_vec(), idr()]
                } else {
                    vec![p_nal(i)]
                },
            })
            .collect(),
    }
}

/// An RTP packet as the test reads it.
#[derive(Debug)]
struct Rtp {
    at: Instant,
    marker: bool,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    tag: wire::rtp_ext::FrameTag,
    payload: Vec<u8>,
}

fn parse(at: Instant, b: &[u8]) -> Rtp {
    assert!(b.len() >= 16, "short packet");
    assert_eq!(b[0] >> 6, 2, "version 2");
    assert_eq!(b[0] & 0x20, 0, "no padding");
    assert_eq!(b[0] & 0x10, 0x10, "extension bit");
    assert_eq!(b[0] & 0x0F, 0, "no CSRC");
    let profile = u16::from_be_bytes([b[12], b[13]]);
    let words = usize::from(u16::from_be_bytes([b[14], b[15]]));
    let end = 16 + 4 * words;
    let tag = wire::rtp_ext::parse(profile, &b[16..end]).expect("our frame tag");
    Rtp {
        at,
        marker: b[1] & 0x80 != 0,
        pt: b[1] & 0x7F,
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        tag,
        payload: b[end..].to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_stream_is_correct_and_paced() {
    let (addr, _r) = start().await;
    let c = clip();
    let (s, body) = call(addr, Method::PUT, "/v1/files/test.clip", c.encode()).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let info: FileInfo = serde_json::from_slice(&body).unwrap();
    assert_eq!(info.bytes, c.encode().len() as u64);

    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let dest = rx.local_addr().unwrap();
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let mut first: Option<Instant> = None;
        loop {
            if first.is_some_and(|f| f.elapsed() > Duration::from_millis(1150)) {
                break;
            }
            match rx.recv(&mut buf) {
                Ok(n) => {
                    let at = Instant::now();
                    first.get_or_insert(at);
                    got.push((at, buf[..n].to_vec()));
                }
                Err(_) if first.is_none() => {}
                Err(e) => panic!("receive: {e}"),
            }
        }
        got
    });
    let spec = format!(
        r#"{{"kind":"rtp","clip":"test.clip","dest":"{dest}","ssrc":305419896,"mtu":{MTU}}}"#
    );
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/video", spec.into_bytes()).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(report(&body).state, "running");
    let got = tokio::task::spawn_blocking(move || receiver.join().unwrap())
        .await
        .unwrap();
    let (s, body) = call(addr, Method::DELETE, "/v1/workloads/video", vec![]).await;
    assert_eq!(s, StatusCode::OK);
    let fin = report(&body);
    assert_eq!(fin.state, "stopped", "{fin:?}");

    let pkts: Vec<Rtp> = got.iter().map(|(at, b)| parse(*at, b)).collect();
    assert!(pkts.len() >= 50, "{} packets", pkts.len());
    assert_eq!(pkts[0].tag.frame, 0, "starts with frame 0");
    for w in pkts.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "consecutive seqs");
    }
    for p in &pkts {
        assert_eq!(p.ssrc, 0x1234_5678);
        assert_eq!(p.pt, 96);
        assert!(p.payload.len() <= MTU, "payload {} > mtu", p.payload.len());
    }
    // Group by frame; every frame but the last seen must be complete.
    let mut frames: Vec<Vec<&Rtp>> = Vec::new();
    for p in &pkts {
        match frames.last_mut() {
            Some(f) if f[0].tag.frame == p.tag.frame => f.push(p),
            _ => frames.push(vec![p]),
        }
    }
    let complete = &frames[..frames.len() - 1];
    assert!(complete.len() >= 30, "{} frames", complete.len());
    let ts0 = complete[0][0].ts;
    let mut worst_ms: f64 = 0.0;
    for (n, f) in complete.iter().enumerate() {
        let n32 = n as u32;
        assert_eq!(f[0].tag.frame, n32, "frame numbers keep counting");
        for p in f {
            assert_eq!(p.ts, ts0.wrapping_add(3000 * n32), "90 kHz timestamps");
            assert_eq!(p.tag, f[0].tag, "one tag per frame");
        }
        for (i, p) in f.iter().enumerate() {
            assert_eq!(p.marker, i + 1 == f.len(), "marker on the last packet only");
        }
        // Pacing against the schedule (frame n at first + n/30 s).
        let want = Duration::from_nanos(n as u64 * 1_000_000_000 / 30);
        let off = f[0].at.duration_since(complete[0][0].at).as_secs_f64() - want.as_secs_f64();
        worst_ms = worst_ms.max(off.abs() * 1000.0);
        let sent = (f[0].tag.send_ns - complete[0][0].tag.send_ns) as f64 / 1e6;
        assert!(
            (sent - want.as_secs_f64() * 1000.0).abs() < 15.0,
            "frame {n} sent at {sent} ms"
        );
        let unit = &c.units[n % 10];
        if n % 10 == 0 {
            // SPS and PPS as single NAL unit packets, then the IDR in FU-A.
            assert_eq!(f[0].payload, SPS);
            assert_eq!(f[1].payload, PPS);
            let frags = &f[2..];
            assert_eq!(frags.len(), 5000_usize.div_ceil(MTU - 2), "fragments");
            let mut nal = vec![(frags[0].payload[0] & 0xE0) | (frags[0].payload[1] & 0x1F)];
            for (i, p) in frags.iter().enumerate() {
                assert_eq!(
                    p.payload[0],
                    0x60 | 28,
                    "FU indicator: NRI of the IDR, type 28"
                );
                assert_eq!(p.payload[1] & 0x1F, 5, "FU header: type 5");
                assert_eq!(p.payload[1] & 0x80 != 0, i == 0, "S bit");
                assert_eq!(p.payload[1] & 0x40 != 0, i + 1 == frags.len(), "E bit");
                assert_eq!(p.payload[1] & 0x20, 0, "R bit");
                nal.extend_from_slice(&p.payload[2..]);
            }
            assert_eq!(nal, unit.nals[2], "the IDR reassembles byte-exactly");
        } else {
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].payload, unit.nals[0]);
        }
    }
    eprintln!(
        "rtp: {} packets, {} frames, worst arrival off schedule {worst_ms:.2} ms",
        pkts.len(),
        complete.len()
    );
    assert!(worst_ms < 10.0, "arrival {worst_ms} ms off schedule");
    // After frame 9 comes frame 10 (second loop), with the IDR again.
    assert_eq!(complete[10][0].tag.frame, 10);
    assert_eq!(complete[10][0].ts, ts0.wrapping_add(30_000));

    // The report.
    let sent = fin.packets_sent.unwrap();
    assert_eq!(fin.pages_written, sent, "pages_written reused for packets");
    assert!(sent >= pkts.len() as u64, "{fin:?}");
    assert!(fin.frames_sent.unwrap() >= complete.len() as u64, "{fin:?}");
    assert!(fin.loops.unwrap() >= 3, "{fin:?}");
    assert_eq!(fin.send_errors, Some(0), "{fin:?}");
    assert!(fin.bytes_sent.unwrap() > 3 * 5000, "{fin:?}");
    assert_eq!(fin.per_second_mib_s.len(), 1, "{fin:?}");
    assert!(fin.started_realtime_ns > 0);
}

/// A GET to the http workload on 127.0.0.1:`port`.
async fn get(port: u16, path: &str, range: Option<&str>) -> hyper::Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    send.send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn file_byte(i: u64) -> u8 {
    ((i * 7) % 251) as u8
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_stream_is_paced_and_resumes() {
    const LEN: u64 = 150_000;
    const RATE: u64 = 200_000;
    const LOOPS: u64 = 10;
    let (addr, _r) = start().await;
    let file: Vec<u8> = (0..LEN).map(file_byte).collect();
    let (s, _) = call(addr, Method::PUT, "/v1/files/clip.ts", file).await;
    assert_eq!(s, StatusCode::OK);
    let port = free_port();
    let spec = format!(
        r#"{{"kind":"http","file":"clip.ts","port":{port},"rate_bytes_s":{RATE},"loops":{LOOPS}}}"#
    );
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/web", spec.into_bytes()).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));

    // The whole stream, read for 2 s.
    let resp = get(port, "/clip.ts", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h["content-type"], "video/mp2t");
    assert_eq!(h["content-length"], (LEN * LOOPS).to_string().as_str());
    assert_eq!(h["accept-ranges"], "bytes");
    let mut body = resp.into_body();
    let t0 = Instant::now();
    let mut received: u64 = 0;
    while t0.elapsed() < Duration::from_secs(2) {
        let left = Duration::from_secs(2).saturating_sub(t0.elapsed());
        let Ok(Some(frame)) = tokio::time::timeout(left, body.frame()).await else {
            break;
        };
        if let Ok(data) = frame.unwrap().into_data() {
            for (j, b) in data.iter().enumerate() {
                assert_eq!(
                    *b,
                    file_byte((received + j as u64) % LEN),
                    "byte {}",
                    received + j as u64
                );
            }
            received += data.len() as u64;
        }
    }
    let rate = received as f64 / 2.0;
    eprintln!("http: {received} bytes in 2 s: {rate:.0} B/s (target {RATE})");
    assert!(
        (rate - RATE as f64).abs() <= RATE as f64 * 0.10,
        "rate {rate} B/s, target {RATE}"
    );
    assert!(received > LEN, "crossed a loop boundary");
    drop(body); // the client "loses" its connection

    // Resume where it was.
    let resp = get(port, "/clip.ts", Some(&format!("bytes={received}-"))).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes {received}-{}/{}", LEN * LOOPS - 1, LEN * LOOPS).as_str()
    );
    assert_eq!(
        resp.headers()["content-length"],
        (LEN * LOOPS - received).to_string().as_str()
    );
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while got.len() < 10_000 {
        let frame = body.frame().await.unwrap().unwrap();
        if let Ok(d) = frame.into_data() {
            got.extend_from_slice(&d);
        }
    }
    for (j, b) in got.iter().enumerate() {
        assert_eq!(
            *b,
            file_byte((received + j as u64) % LEN),
            "resumed byte {j}"
        );
    }
    drop(body);

    // Past the end, other paths, other methods.
    let resp = get(port, "/clip.ts", Some(&format!("bytes={}-", LEN * LOOPS))).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let resp = get(port, "/other.ts", None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // Another workload on the same port is refused while this one runs.
    let spec2 = format!(r#"{{"kind":"http","file":"clip.ts","port":{port},"rate_bytes_s":1}}"#);
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/web2", spec2.into_bytes()).await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "{}",
        String::from_utf8_lossy(&body)
    );

    let (s, body) = call(addr, Method::DELETE, "/v1/workloads/web", vec![]).await;
    assert_eq!(s, StatusCode::OK);
    let fin = report(&body);
    assert_eq!(fin.state, "stopped", "{fin:?}");
    assert!(fin.connections.unwrap() >= 4, "{fin:?}");
    assert!(fin.bytes_sent.unwrap() >= received + 10_000, "{fin:?}");
    // The port is free again.
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
}

#[tokio::test]
async fn upload_and_start_errors_name_the_reason() {
    let (addr, _r) = start().await;
    for bad in ["/v1/files/bad%20name", "/v1/files/", "/v1/files/a/b"] {
        let (s, body) = call(addr, Method::PUT, bad, b"x".to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert!(api_error(&body).contains("invalid"), "{bad}");
    }
    let long = format!("/v1/files/{}", "x".repeat(65));
    let (s, _) = call(addr, Method::PUT, &long, b"x".to_vec()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(addr, Method::POST, "/v1/files/a", b"x".to_vec()).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);

    let (s, _) = call(
        addr,
        Method::PUT,
        "/v1/files/junk.bin",
        b"not a clip".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(addr, Method::GET, "/v1/files", vec![]).await;
    assert_eq!(s, StatusCode::OK);
    let list: FileList = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        list.files,
        vec![FileInfo {
            name: "junk.bin".into(),
            bytes: 10
        }]
    );

    let rtp = |clip: &str| {
        format!(r#"{{"kind":"rtp","clip":"{clip}","dest":"127.0.0.1:9","ssrc":1}}"#).into_bytes()
    };
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/v", rtp("junk.bin")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let e = api_error(&body);
    assert!(e.contains("not a clip") && e.contains("magic"), "{e}");
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/v", rtp("missing.clip")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(api_error(&body).contains("not uploaded"), "{body:?}");
    let http = br#"{"kind":"http","file":"missing.ts","port":8080,"rate_bytes_s":1000}"#;
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/w", http.to_vec()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(api_error(&body).contains("not uploaded"), "{body:?}");
    let http = br#"{"kind":"http","file":"junk.bin","port":8080,"rate_bytes_s":0}"#;
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/w", http.to_vec()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(api_error(&body).contains("rate_bytes_s"), "{body:?}");

    let (s, _) = call(addr, Method::PUT, "/v1/files/c.clip", clip().encode()).await;
    assert_eq!(s, StatusCode::OK);
    let spec = br#"{"kind":"rtp","clip":"c.clip","dest":"127.0.0.1:9","ssrc":1,"mtu":10}"#;
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/v", spec.to_vec()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(api_error(&body).contains("mtu"), "{body:?}");

    let (s, _) = call(addr, Method::DELETE, "/v1/files/junk.bin", vec![]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(addr, Method::DELETE, "/v1/files/junk.bin", vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
