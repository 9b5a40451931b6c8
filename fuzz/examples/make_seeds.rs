//! Writes the seed corpora `fuzz/corpus/<target>/` from the project's own
//! builders and its real records (the `bundle-split-gap` fixture, the
//! captured stress-ng outputs, the ping and irtt samples of the tool
//! parsers' tests, the hand-written Proxmox task logs). Deterministic:
//! running it again rewrites the same files. Run (uninstrumented, from
//! `fuzz/`):
//!
//! ```sh
//! cargo run --release --example make_seeds
//! ```
#![allow(clippy::unwrap_used, reason = "a generator: any failure is fatal")]

use std::fs;
use std::path::{Path, PathBuf};

use measure::probe::csv::REPLIES_CSV_HEADER;
use measure::stream::rtp::testing::{fu_a, nal, rtp_packet, stap_a, PacketSpec, StreamBuilder};
use measure::stream::rtp::RtpArrival;
use serde_json::{json, Value};
use wire::clip::{AccessUnit, Clip};
use wire::probe::{Kind, ProbePacket, HEADER_LEN};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

struct Out {
    dir: PathBuf,
}

impl Out {
    fn new(target: &str) -> Self {
        let dir = root().join("fuzz/corpus").join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }
    fn put(&self, name: &str, bytes: impl AsRef<[u8]>) {
        fs::write(self.dir.join(name), bytes).unwrap();
    }
}

fn fixture(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap()
}

fn probe() {
    let o = Out::new("probe_decode");
    let mut b = [0u8; HEADER_LEN + 8];
    ProbePacket::request(0x0123_4567_89ab_cdef, 42, 1_795_579_025_862_690_917).encode(&mut b);
    o.put("request", &b[..HEADER_LEN]);
    o.put("request-padded", b);
    let reply = ProbePacket {
        kind: Kind::Reply,
        reflector_rx_ns: 1_795_579_024_856_969_654,
        reflector_tx_ns: 1_795_579_024_872_584_158,
        reflector_rx_count: 43,
        ..ProbePacket::request(7, 42, 1_795_579_025_862_690_917)
    };
    reply.encode(&mut b);
    o.put("reply", &b[..HEADER_LEN]);
}

/// The `rtp` target's input: header, then (len u16, rx step i32, bytes).
fn rtp_input(flags: u8, ssrc: u32, gap_us: i32, delay_us: i32, arrivals: &[RtpArrival]) -> Vec<u8> {
    let mut v = vec![flags];
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(&gap_us.to_be_bytes());
    v.extend_from_slice(&delay_us.to_be_bytes());
    v.extend_from_slice(&90_000u32.to_be_bytes());
    let rx0 = arrivals.first().map_or(0, |a| a.rx_ns);
    v.extend_from_slice(&rx0.to_be_bytes());
    let mut rx = rx0;
    for a in arrivals {
        v.extend_from_slice(&(a.bytes.len() as u16).to_be_bytes());
        v.extend_from_slice(&((a.rx_ns - rx) as i32).to_be_bytes());
        rx = a.rx_ns;
        v.extend_from_slice(&a.bytes);
    }
    v
}

/// A short stream of small frames: an IDR (SPS, PPS in a STAP-A; the
/// slice in FU-As), then P frames, `n` in all.
fn small_stream(ssrc: u32, seq: u16, tagged: bool, n: u64) -> Vec<RtpArrival> {
    let mut b = StreamBuilder::new(ssrc, seq);
    b.tagged = tagged;
    b.max_payload = 100;
    let mut out = Vec::new();
    for k in 0..n {
        let payloads = if k % 10 == 0 {
            let mut p = b.packetize(&[nal(7, 12, 1), nal(8, 5, 2)]);
            p.extend(b.packetize(&[nal(5, 250, 3)]));
            p
        } else {
            b.packetize(&[nal(1, 60 + k as usize, 4)])
        };
        out.extend(b.frame(&payloads));
    }
    out
}

fn rtp(streams: &[(&str, Vec<RtpArrival>)]) {
    let o = Out::new("rtp");
    for (name, s) in streams {
        o.put(name, rtp_input(0, 0, 50_000, 100_000, s));
    }
    // One of each H.264 payload kind, and odd RTP headers.
    let spec = PacketSpec {
        ssrc: 9,
        payload_type: 96,
        seq: 65534,
        timestamp: u32::MAX - 1000,
        marker: false,
        tag: Some((u32::MAX, 5)),
    };
    let n = nal(5, 40, 7);
    let mut odd: Vec<RtpArrival> = Vec::new();
    let mut push = |bytes: Vec<u8>, i: i64| {
        odd.push(RtpArrival {
            rx_ns: 1_000_000 * i,
            kernel_ts: true,
            bytes,
        })
    };
    let frags = fu_a(&n, 16);
    for (i, f) in frags.iter().enumerate() {
        let s = PacketSpec {
            seq: spec.seq.wrapping_add(i as u16),
            marker: i + 1 == frags.len(),
            ..spec
        };
        push(rtp_packet(&s, f), i as i64);
    }
    let s2 = PacketSpec {
        seq: 1,
        timestamp: 2000,
        tag: Some((0, 6)),
        marker: true,
        ..spec
    };
    push(rtp_packet(&s2, &stap_a(&[nal(7, 4, 1), nal(8, 3, 2)])), 10);
    // Padding, CSRCs, a foreign extension profile.
    let mut padded = rtp_packet(
        &PacketSpec {
            seq: 2,
            tag: None,
            ..s2
        },
        &nal(1, 10, 5),
    );
    padded[0] |= 0x20 | 0x02;
    padded.splice(12..12, [0u8; 8]);
    padded.extend_from_slice(&[0, 0, 3]);
    push(padded, 11);
    let mut ext = rtp_packet(&PacketSpec { seq: 3, ..s2 }, &nal(1, 10, 5));
    ext[12] = 0x10;
    ext[13] = 0x00;
    push(ext, 12);
    o.put("odd-headers", rtp_input(1, 9, 0, -1, &odd));
}

fn pcap_of(arrivals: &[RtpArrival], le: bool, nanos: bool, ethernet: bool) -> Vec<u8> {
    let w32 = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let w16 = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let mut out = Vec::new();
    out.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend_from_slice(&w16(2));
    out.extend_from_slice(&w16(4));
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&w32(65535));
    out.extend_from_slice(&w32(if ethernet { 1 } else { 228 }));
    for a in arrivals {
        let sec = (a.rx_ns / 1_000_000_000) as u32;
        let frac = (a.rx_ns % 1_000_000_000) as u32;
        let frac = if nanos { frac } else { frac / 1000 };
        let ip_len = 28 + a.bytes.len();
        let len = ip_len + if ethernet { 14 } else { 0 };
        out.extend_from_slice(&w32(sec));
        out.extend_from_slice(&w32(frac));
        out.extend_from_slice(&w32(len as u32));
        out.extend_from_slice(&w32(len as u32));
        if ethernet {
            out.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
        }
        let mut ip = [
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 10, 198, 18, 0, 1,
        ];
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        out.extend_from_slice(&ip);
        out.extend_from_slice(&5004u16.to_be_bytes());
        out.extend_from_slice(&5004u16.to_be_bytes());
        out.extend_from_slice(&((8 + a.bytes.len()) as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&a.bytes);
    }
    out
}

fn pcap(stream: &[RtpArrival]) {
    let o = Out::new("rtp_pcap");
    let s = &stream[..stream.len().min(12)];
    o.put("ns-le-raw", pcap_of(s, true, true, false));
    o.put("ns-be-raw", pcap_of(s, false, true, false));
    o.put("us-le-ethernet", pcap_of(s, true, false, true));
    o.put("us-be-ethernet", pcap_of(&s[..3], false, false, true));
}

fn clip() {
    let o = Out::new("clip_decode");
    let c = Clip {
        fps_num: 30,
        fps_den: 1,
        width: 320,
        height: 240,
        bitrate: 500_000,
        units: (0..4u32)
            .map(|i| AccessUnit {
                frame: i,
                pts: u64::from(i) * 3000,
                keyframe: i == 0,
                nals: if i == 0 {
                    vec![nal(7, 12, 1), nal(8, 5, 2), nal(5, 64, 3)]
                } else {
                    vec![nal(1, 20 + i as usize, 4)]
                },
            })
            .collect(),
    };
    o.put("four-frames", c.encode());
    o.put(
        "empty",
        Clip {
            units: vec![],
            ..c.clone()
        }
        .encode(),
    );
}

fn rtp_ext() {
    let o = Out::new("rtp_ext");
    o.put(
        "block",
        wire::rtp_ext::encode(1000, 1_795_579_026_439_407_000),
    );
    // Padding and another element before ours.
    let tag = wire::rtp_ext::encode(7, -5);
    let mut b = vec![0xBE, 0xDE, 0, 5, 0, 0, 0x31, 0xAA, 0xBB];
    b.extend_from_slice(&tag[4..17]);
    b.extend_from_slice(&[0, 0]);
    o.put("padding-and-other", b);
    o.put(
        "two-byte-profile",
        [0x10, 0x00, 0, 1, 0x01, 0x02, 0xAA, 0xBB],
    );
}

fn qmp() {
    let o = Out::new("qmp");
    let mut i = 0;
    for rep in ["rep-001.json", "rep-002.json"] {
        let v: Value = serde_json::from_str(&fixture(&format!(
            "harness/tests/fixtures/bundle-split-gap/reps/{rep}"
        )))
        .unwrap();
        let m = &v["migration"];
        for s in m["samples"].as_array().unwrap().iter().step_by(4) {
            o.put(
                &format!("query-migrate-{i}"),
                json!({ "return": s["raw"] }).to_string(),
            );
            i += 1;
        }
        for e in m["events"].as_array().unwrap().iter().step_by(3) {
            // As QMP sends it, and as the bundle records it (QmpEvent).
            let ns = e["qemu_ts_ns"].as_i64().unwrap();
            let wire_form = json!({
                "event": e["event"],
                "data": e["data"],
                "timestamp": {"seconds": ns / 1_000_000_000, "microseconds": ns % 1_000_000_000 / 1000},
            });
            o.put(&format!("event-{i}"), wire_form.to_string());
            o.put(&format!("record-{i}"), e.to_string());
            i += 1;
        }
    }
}

fn control_api() {
    let o = Out::new("control_api");
    o.put(
        "dirty",
        r#"{"kind":"dirty","working_set_mib":64,"rate_mib_s":8}"#,
    );
    o.put(
        "dirty-hotcold",
        r#"{"kind":"dirty","working_set_mib":64,"rate_mib_s":8.5,"pattern":"hotcold","hot_fraction":0.25,"hot_share":0.75,"threads":4}"#,
    );
    o.put(
        "command",
        r#"{"kind":"command","argv":["/bin/sleep","30"]}"#,
    );
    o.put(
        "rtp",
        r#"{"kind":"rtp","clip":"clip.bin","dest":"198.18.0.1:5004","ssrc":3405691582,"mtu":1200,"payload_type":96}"#,
    );
    o.put(
        "http",
        r#"{"kind":"http","file":"clip.ts","port":8080,"rate_bytes_s":62500,"loops":3}"#,
    );
    o.put(
        "start",
        r#"{"target":"198.18.0.10:7001","rate_hz":1000,"payload_len":64}"#,
    );
    o.put("start-v6", r#"{"target":"[fe80::1%2]:7001"}"#);
    o.put(
        "report",
        fixture("harness/tests/fixtures/bundle-split-gap/agent/report.json"),
    );
    o.put(
        "workload-report",
        r#"{"name":"d","state":"stopped","elapsed_ms":5,"pages_written":1,"achieved_mib_s":1.0,"per_second_mib_s":[1.5,2.25],"target_mib_s":8.0,"integrity":{"checked_pages":256,"corrupted_pages":1,"first_corrupted":[7],"checked_at_realtime_ns":1700000001000000000},"packets_sent":9}"#,
    );
    o.put("error", r#"{"error":"no such workload"}"#);
}

fn tool_output() {
    let o = Out::new("tool_output");
    o.put(
        "ping",
        "PING 198.18.0.10 (198.18.0.10) 56(84) bytes of data.\n\n--- 198.18.0.10 ping statistics ---\n3000 packets transmitted, 2990 received, 0.333333% packet loss, time 3012ms\nrtt min/avg/max/mdev = 0.101/0.232/4.100/0.090 ms, ipg/ewma 1.004/0.210 ms\n",
    );
    o.put(
        "ping-all-lost",
        "5 packets transmitted, 0 received, +5 errors, 100% packet loss, time 41ms\n",
    );
    o.put(
        "irtt",
        json!({
            "stats": {"packets_sent": 3, "packets_received": 2},
            "round_trips": [
                {"lost": "false", "delay": {"rtt": 100_000},
                 "timestamps": {"client": {"send": {"wall": 1_000_000_000i64}}}},
                {"lost": "true", "delay": {},
                 "timestamps": {"client": {"send": {"wall": 1_001_000_000i64}}}},
                {"lost": "false", "delay": {"rtt": 300_000},
                 "timestamps": {"client": {"send": {"wall": 1_002_000_000i64}}}}
            ]
        })
        .to_string(),
    );
    // The regression input of measure's irtt `send_times_far_apart_do_not_overflow`.
    o.put(
        "irtt-far-apart",
        json!({
            "stats": {"packets_sent": 2, "packets_received": 0},
            "round_trips": [
                {"lost": "true", "timestamps": {"client": {"send": {"wall": i64::MIN}}}},
                {"lost": "true", "timestamps": {"client": {"send": {"wall": i64::MAX}}}}
            ]
        })
        .to_string(),
    );
    for f in ["host-3m-1", "host-4m-64", "host-64m-8", "rd-zero"] {
        o.put(
            &format!("stress-ng-{f}"),
            fixture(&format!("measure/tests/fixtures/stress-ng/{f}.txt")),
        );
    }
}

fn replies_csv() {
    let o = Out::new("replies_csv");
    let text = fixture("harness/tests/fixtures/bundle-split-gap/probe/replies.csv");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], REPLIES_CSV_HEADER);
    o.put("head", format!("{}\n", lines[..40].join("\n")));
    // The rows around the record's largest receive gap, CRLF line ends.
    let rx = |l: &str| {
        l.split(',')
            .nth(2)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let at = (2..lines.len())
        .max_by_key(|&i| rx(lines[i]) - rx(lines[i - 1]))
        .unwrap();
    let mut s = format!("{REPLIES_CSV_HEADER}\r\n");
    for l in &lines[at.saturating_sub(10)..(at + 10).min(lines.len())] {
        s.push_str(l);
        s.push_str("\r\n");
    }
    o.put("gap-crlf", s);
    o.put("header-only", format!("{REPLIES_CSV_HEADER}\n\n"));
}

fn agent_config() {
    let o = Out::new("agent_config");
    o.put(
        "service-toml",
        "# comment\nlisten = \"127.0.0.1:7100\"\nreflector = \"127.0.0.1:7101\"\ntoken_file = \"token\"\n",
    );
    o.put(
        "service-token",
        "token = \"hunter2\"\nlisten = \"[::]:7000\"\n",
    );
    o.put(
        "cmdline-lab",
        "BOOT_IMAGE=/vmlinuz console=ttyS0 lmig.addr=198.18.0.10/24 lmig.token=\"s3cret\" lmig.control_port=7000 lmig.reflector_port=7001 lmig.iface=eth0 lmig.extra=1\n",
    );
}

fn proxmox_tasklog() {
    let o = Out::new("proxmox_tasklog");
    for f in [
        "ok-local-disks.log",
        "aborted.log",
        "locked.log",
        "old-format.log",
        "failed-ram.log",
        "api-log.json",
    ] {
        o.put(f, fixture(&format!("measure/tests/fixtures/proxmox/{f}")));
    }
}

fn main() {
    probe();
    let tagged = small_stream(0xCAFE, 65500, true, 12);
    let untagged = small_stream(0xBEEF, 100, false, 6);
    // A loss (packets 5..9 dropped), a reordering and a duplicate.
    let mut lossy = tagged.clone();
    lossy.drain(5..9);
    lossy.swap(10, 11);
    let dup = lossy[3].clone();
    lossy.insert(4, dup);
    // Two SSRCs interleaved.
    let mut mixed: Vec<RtpArrival> = untagged.clone();
    mixed.extend(small_stream(0x1234, 7, true, 3));
    mixed.sort_by_key(|a| a.rx_ns);
    rtp(&[
        ("clean-tagged", tagged.clone()),
        ("clean-untagged", untagged),
        ("loss-reorder-dup", lossy),
        ("two-ssrcs", mixed),
    ]);
    pcap(&tagged);
    clip();
    rtp_ext();
    qmp();
    control_api();
    tool_output();
    replies_csv();
    agent_config();
    proxmox_tasklog();
}
