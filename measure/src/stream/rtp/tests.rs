//! The analysis end to end: streams built with [`super::testing`], impaired,
//! and the summary checked against the module's definitions.

use super::testing::*;
use super::*;
use proptest::prelude::*;

const MS: i64 = 1_000_000;
/// One frame at 30 fps, ns: floor(3000 × 10^9 / 90000).
const FRAME_NS: i64 = 33_333_333;

fn opts(delay_ms: i64) -> RtpAnalysisOptions {
    RtpAnalysisOptions {
        playout_delay_ns: delay_ms * MS,
        ..RtpAnalysisOptions::default()
    }
}

fn flat(frames: &[Vec<RtpArrival>]) -> Vec<RtpArrival> {
    frames.iter().flatten().cloned().collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn a_clean_stream_is_all_complete_with_no_loss_freeze_or_jitter() {
    let mut b = StreamBuilder::new(0xCAFE, 100);
    let frames = b.frames(60, 2500); // 2 s at 30 fps; P frames in 3 FU-As
    let pkts = flat(&frames);
    assert_eq!(frames[0].len(), 1 + 4); // STAP-A + 4 FU-A
    assert_eq!(frames[1].len(), 3);
    let s = analyze_rtp(&pkts, &opts(100));
    assert_eq!(s.ssrc, Some(0xCAFE));
    assert_eq!(s.payload_type, Some(96));
    assert_eq!(
        (s.packets, s.received, s.expected),
        (pkts.len() as u64, pkts.len() as u64, pkts.len() as u64)
    );
    assert_eq!(
        (
            s.lost,
            s.duplicates,
            s.reordered,
            s.malformed,
            s.foreign_ssrc,
            s.malformed_payload
        ),
        (0, 0, 0, 0, 0, 0)
    );
    assert_eq!(
        (
            s.frames_complete,
            s.frames_incomplete,
            s.frames_lost,
            s.frames_late
        ),
        (60, 0, 0, 0)
    );
    assert_eq!((s.freeze_count, s.freeze_total_ms), (0, 0.0));
    assert_eq!(s.jitter_ms, 0.0);
    assert!(close(s.max_gap_ms, 33.333334), "{}", s.max_gap_ms);
    assert!(
        close(s.max_frame_gap_ms, 33.333334),
        "{}",
        s.max_frame_gap_ms
    );
    assert!(s.gaps.is_empty());
    // Due times: each frame arrives exactly D before it is due.
    assert!(s.frames.iter().all(|f| f.lateness_ns == Some(-100 * MS)));
    assert_eq!(s.frames[1].frame, Some(1001));
    // The depacketizer gives back the NAL units that were sent.
    let f0: Vec<_> = frames[0]
        .iter()
        .map(|a| parse_rtp(&a.bytes).unwrap())
        .collect();
    let payloads: Vec<(i64, &[u8])> = f0.iter().map(|p| (i64::from(p.seq), p.payload)).collect();
    let d = depacketize(&payloads);
    assert!(d.whole);
    assert_eq!(d.nals, vec![nal(7, 12, 1), nal(8, 5, 2), nal(5, 4000, 3)]);
    // Round trip through JSON.
    let back: RtpSummary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn an_outage_of_300_ms_is_loss_a_gap_lost_frames_and_one_freeze() {
    let mut b = StreamBuilder::new(7, 1);
    let frames = b.frames(90, 2500);
    let t0 = b.start_rx_ns;
    let out = (t0 + 1000 * MS)..(t0 + 1300 * MS);
    let dropped_frames: Vec<usize> = (0..90)
        .filter(|&k| out.contains(&b.rx_of(k as u64)))
        .collect();
    let dropped_pkts: usize = dropped_frames.iter().map(|&k| frames[k].len()).sum();
    let pkts: Vec<RtpArrival> = flat(&frames)
        .into_iter()
        .filter(|a| !out.contains(&a.rx_ns))
        .collect();
    let (lo, hi) = (
        dropped_frames[0] as u64,
        *dropped_frames.last().unwrap() as u64,
    );
    assert_eq!((lo, hi), (30, 38)); // 9 frames, the IDR of frame 30 among them

    let s = analyze_rtp(&pkts, &opts(100));
    assert_eq!(s.lost, dropped_pkts as u64);
    assert_eq!(s.received + s.lost, s.expected);
    assert_eq!(s.frames_lost, 9);
    assert_eq!(
        (s.frames_complete, s.frames_incomplete, s.frames_late),
        (81, 0, 0)
    );
    let g = s.max_gap.clone().unwrap();
    assert_eq!((g.start_ns, g.end_ns), (b.rx_of(lo - 1), b.rx_of(hi + 1)));
    assert!((s.max_gap_ms - 333.333).abs() < 0.001, "{}", s.max_gap_ms);
    assert_eq!(s.gaps, vec![g.clone()]);
    assert_eq!(s.max_frame_gap_ms, s.max_gap_ms);
    // One freeze: from the due time of the first lost frame to that of
    // the first frame after the outage; the picture on screen dates from
    // the last frame before it, so the hold is exactly the gap, shifted
    // by D, and the freeze is one frame interval shorter.
    assert_eq!(s.freeze_count, 1);
    let f = &s.freezes[0];
    let d = 100 * MS;
    assert_eq!(
        (f.start_ns, f.end_ns, f.frames),
        (b.rx_of(lo) + d, b.rx_of(hi + 1) + d, 9)
    );
    assert_eq!(f.picture_since_ns, g.start_ns + d);
    assert_eq!(f.end_ns - f.picture_since_ns, g.end_ns - g.start_ns);
    assert!(f.start_ns - d < out.start + FRAME_NS && f.end_ns - d >= out.end);
    assert_eq!(
        (s.freeze_total_ms, s.freeze_longest_ms),
        (f.len_ms, f.len_ms)
    );
    assert!((f.len_ms - 300.0).abs() < 0.001, "{}", f.len_ms);
}

#[test]
fn a_lost_fu_a_middle_fragment_loses_exactly_its_frame() {
    let mut b = StreamBuilder::new(7, 1);
    let mut frames = b.frames(60, 2500);
    assert_eq!(frames[10].len(), 3);
    frames[10].remove(1);
    let pkts = flat(&frames);
    for delay in [0, 5, 1000] {
        let s = analyze_rtp(&pkts, &opts(delay));
        assert_eq!(s.lost, 1);
        assert_eq!(
            (
                s.frames_complete,
                s.frames_incomplete,
                s.frames_lost,
                s.frames_late
            ),
            (59, 1, 0, 0)
        );
        let bad: Vec<_> = s
            .frames
            .iter()
            .filter(|f| f.status == FrameStatus::Incomplete)
            .collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].frame, Some(1010));
        // An incomplete frame is never shown, whatever D: a freeze of one
        // frame interval, from its due time to the next frame's.
        assert_eq!(s.freeze_count, 1);
        let f = &s.freezes[0];
        let d = delay * MS;
        assert_eq!(
            (f.start_ns, f.end_ns, f.frames),
            (b.rx_of(10) + d, b.rx_of(11) + d, 1)
        );
        assert!((f.len_ms - 33.333333).abs() < 1e-6, "{}", f.len_ms);
        // Packets kept flowing: no inter-arrival gap beyond a frame.
        assert!(close(s.max_gap_ms, 33.333334));
        assert!((s.max_frame_gap_ms - 66.666667).abs() < 1e-6);
    }
}

#[test]
fn a_frame_whose_first_packet_is_lost_is_incomplete() {
    // Frame 30 is an IDR: STAP-A (SPS, PPS), then the IDR in 4 FU-As.
    let mut b = StreamBuilder::new(7, 1);
    let mut frames = b.frames(40, 2500);
    frames[30].remove(0);
    let s = analyze_rtp(&flat(&frames), &opts(100));
    assert_eq!((s.lost, s.frames_incomplete, s.freeze_count), (1, 1, 1));
    assert_eq!(
        s.frames
            .iter()
            .find(|f| f.status == FrameStatus::Incomplete)
            .and_then(|f| f.frame),
        Some(1030)
    );
    // Untagged, nothing says the lost packet was frame 30's rather
    // than a frame lost entirely: as documented, it counts as complete.
    b = StreamBuilder::new(7, 1);
    b.tagged = false;
    let mut frames = b.frames(40, 2500);
    frames[30].remove(0);
    let s = analyze_rtp(&flat(&frames), &opts(100));
    assert_eq!((s.lost, s.frames_incomplete, s.frames_complete), (1, 0, 40));
    // A lost marker packet leaves the frame without its end.
    b = StreamBuilder::new(7, 1);
    let mut frames = b.frames(40, 2500);
    frames[20].pop();
    let s = analyze_rtp(&flat(&frames), &opts(100));
    assert_eq!((s.lost, s.frames_incomplete, s.frames_complete), (1, 1, 39));
}

#[test]
fn sequence_numbers_unwrap_across_65535() {
    let mut b = StreamBuilder::new(7, 65500);
    let pkts = flat(&b.frames(60, 2500));
    assert!(pkts.len() > 36);
    let s = analyze_rtp(&pkts, &opts(100));
    assert_eq!(s.seq_range, Some((65500, 65500 + pkts.len() as i64 - 1)));
    assert_eq!((s.lost, s.reordered, s.frames_complete), (0, 0, 60));
    // A loss right at the wrap.
    let holed: Vec<RtpArrival> = pkts
        .iter()
        .filter(|a| parse_rtp(&a.bytes).map(|p| p.seq) != Some(0))
        .cloned()
        .collect();
    let s = analyze_rtp(&holed, &opts(100));
    assert_eq!((s.lost, s.frames_incomplete), (1, 1));
}

/// 10 packets per frame (a 950-byte P slice in 100-byte fragments).
fn ten_packet_frames(b: &mut StreamBuilder, n: u64) -> Vec<Vec<RtpArrival>> {
    (0..n)
        .map(|_| {
            let p = b.packetize(&[nal(1, 951, 4)]);
            b.frame(&p)
        })
        .collect()
}

#[test]
fn an_outage_longer_than_65536_packets_is_counted_in_full() {
    for tagged in [true, false] {
        let mut b = StreamBuilder::new(7, 65000);
        b.tagged = tagged;
        b.max_payload = 102;
        let before = ten_packet_frames(&mut b, 60);
        assert!(before.iter().all(|f| f.len() == 10));
        let gone = ten_packet_frames(&mut b, 7000); // 70000 packets, 233 s
        drop(gone);
        let after = ten_packet_frames(&mut b, 60);
        let mut pkts = flat(&before);
        pkts.extend(flat(&after));
        let s = analyze_rtp(&pkts, &opts(100));
        assert_eq!(s.lost, 70_000, "tagged {tagged}");
        assert_eq!(s.received, 1200);
        assert_eq!(s.seq_range, Some((65000, 65000 + 71_200 - 1)));
        assert_eq!(s.frames_complete, 120);
        assert_eq!(s.frames_lost, if tagged { 7000 } else { 0 });
        // Tagged, the lost frames are placed and the freeze spans them.
        let want = u64::from(tagged);
        assert_eq!(s.freeze_count, want);
        if tagged {
            assert_eq!(s.freezes[0].frames, 7000);
            assert!((s.freeze_total_ms - 7000.0 * 1000.0 / 30.0).abs() < 1e-3);
        }
    }
}

#[test]
fn reordering_and_duplicates_are_counted() {
    let mut b = StreamBuilder::new(7, 1);
    let mut pkts = flat(&b.frames(30, 2500));
    // Swap the arrival times of packets 40 and 41 (same frame or not),
    // and deliver packet 50 twice.
    let (r40, r41) = (pkts[40].rx_ns, pkts[41].rx_ns);
    pkts[40].rx_ns = r41 + 1;
    pkts[41].rx_ns = r40;
    let dup = RtpArrival {
        rx_ns: pkts[50].rx_ns + 1,
        ..pkts[50].clone()
    };
    pkts.push(dup);
    let s = analyze_rtp(&pkts, &opts(100));
    assert_eq!((s.reordered, s.duplicates, s.lost), (1, 1, 0));
    assert_eq!(s.packets, s.received + 1);
    assert_eq!(s.frames_complete, 30);
}

/// Broken RTP made from the well-formed `good` (12-byte header, tagged):
/// short, empty, wrong version, CSRCs, extension and padding past the end.
fn broken_headers(good: &[u8]) -> Vec<Vec<u8>> {
    let mut bad = vec![good[..11].to_vec(), vec![]];
    let mut v1 = good.to_vec();
    v1[0] = 0x40;
    bad.push(v1);
    let mut cc = good.to_vec();
    cc[0] |= 0x0f;
    bad.push(cc);
    let mut ext = good.to_vec();
    ext[15] = 0xff; // extension length 0x00ff words
    bad.push(ext);
    let mut pad = good.to_vec();
    pad[0] |= 0x20;
    *pad.last_mut().unwrap() = 0; // padding count 0
    bad.push(pad.clone());
    *pad.last_mut().unwrap() = 200; // longer than the packet
    bad.push(pad);
    bad
}

#[test]
fn malformed_packets_are_counted_and_survived() {
    let mut b = StreamBuilder::new(7, 1);
    let mut frames = b.frames(10, 2500);
    // Frame 3: a STAP-A whose second size points past the end.
    let spec = |seq, marker| PacketSpec {
        ssrc: 7,
        payload_type: 96,
        seq,
        timestamp: b.ts_of(3),
        marker,
        tag: Some((1003, 0)),
    };
    let first_seq = parse_rtp(&frames[3][0].bytes).unwrap().seq;
    let mut stap = stap_a(&[nal(1, 10, 1)]);
    stap.extend_from_slice(&[0x01, 0x00, 0x61, 0x62]); // 256 bytes claimed, 2 present
    let rx = frames[3][0].rx_ns;
    frames[3] = vec![RtpArrival {
        rx_ns: rx,
        kernel_ts: true,
        bytes: rtp_packet(&spec(first_seq, false), &stap),
    }];
    // ... then a truncated FU-A: one byte, then a bare FU header.
    frames[3].push(RtpArrival {
        rx_ns: rx,
        kernel_ts: true,
        bytes: rtp_packet(&spec(first_seq + 1, false), &[0x7c]),
    });
    frames[3].push(RtpArrival {
        rx_ns: rx,
        kernel_ts: true,
        bytes: rtp_packet(&spec(first_seq + 2, true), &[0x7c, 0x81]),
    });
    // Frame 4 starts where frame 3's original packets ended; renumber.
    let mut pkts = flat(&frames);
    let bad = broken_headers(&rtp_packet(&spec(60000, false), &[0x61, 1, 2]));
    for b in bad {
        assert!(parse_rtp(&b).is_none(), "{b:?}");
        pkts.push(RtpArrival {
            rx_ns: rx,
            kernel_ts: false,
            bytes: b,
        });
    }
    let s = analyze_rtp(&pkts, &opts(100));
    assert_eq!(s.malformed, 7);
    assert_eq!(s.malformed_payload, 3);
    // Frame 3 had 3 packets and still has 3: no loss, but incomplete.
    assert_eq!(s.lost, 0);
    assert_eq!((s.frames_complete, s.frames_incomplete), (9, 1));
    assert_eq!(s.freeze_count, 1);
    // The payloads themselves: `h264`'s tests; valid padding: `header`'s.
}

#[test]
fn other_ssrcs_are_foreign_unless_chosen() {
    let mut main = StreamBuilder::new(1, 1);
    let mut other = StreamBuilder::new(2, 5000);
    let mut pkts = flat(&main.frames(30, 2500));
    pkts.extend(flat(&other.frames(5, 100)));
    let s = analyze_rtp(&pkts, &opts(100));
    assert_eq!(s.ssrc, Some(1));
    assert_eq!(s.foreign_ssrc, 9); // an IDR in a STAP-A and 4 FU-As, 4 P frames
    assert_eq!((s.lost, s.frames_complete), (0, 30));
    let s = analyze_rtp(
        &pkts,
        &RtpAnalysisOptions {
            ssrc: Some(2),
            ..opts(100)
        },
    );
    assert_eq!((s.ssrc, s.frames_complete, s.lost), (Some(2), 5, 0));
    let s = analyze_rtp(
        &pkts,
        &RtpAnalysisOptions {
            ssrc: Some(3),
            ..opts(100)
        },
    );
    assert_eq!(
        (s.packets, s.foreign_ssrc, s.max_gap),
        (0, pkts.len() as u64, None)
    );
    assert_eq!(s.frames_complete, 0);
}

#[test]
fn jitter_is_rfc3550_over_rtp_timestamps() {
    let mut b = StreamBuilder::new(7, 1);
    let mut frames = b.frames(3, 500); // one packet per P frame
                                       // Frame 2 arrives 1.6 ms late: D = +1.6 ms, J = 0.1 ms.
    for a in &mut frames[2] {
        a.rx_ns += 1_600_000;
    }
    let s = analyze_rtp(&flat(&frames[1..]), &opts(100));
    assert!(close(s.jitter_ms, 0.1), "{}", s.jitter_ms);
    // Frame 2 is then late with D = 1 ms, not with D = 2 ms.
    let s = analyze_rtp(&flat(&frames[1..]), &opts(1));
    // The player rebuffers at it: a freeze from when it was due to its
    // arrival + D, 0.6 + 1 ms.
    assert_eq!((s.frames_late, s.freeze_count), (1, 1));
    assert_eq!(s.frames[1].lateness_ns, Some(600_000));
    assert!(close(s.freeze_total_ms, 1.6), "{}", s.freeze_total_ms);
    assert_eq!(s.freezes[0].frames, 0);
    assert_eq!(analyze_rtp(&flat(&frames[1..]), &opts(2)).frames_late, 0);
}

#[test]
fn a_hostile_stream_driving_numbers_to_the_limits_does_not_panic() {
    // Frame numbers and seqs leap as far forward as unwrapping allows,
    // so predictions grow without bound; nothing may overflow.
    let pkts: Vec<RtpArrival> = (0..20_000u32)
        .map(|i| RtpArrival {
            rx_ns: i64::from(i),
            kernel_ts: false,
            bytes: rtp_packet(
                &PacketSpec {
                    ssrc: 1,
                    payload_type: 96,
                    seq: (i.wrapping_mul(32767) & 0xffff) as u16,
                    timestamp: i.wrapping_mul(0x7fff_ffff),
                    marker: true,
                    tag: Some((i.wrapping_mul(0x7fff_ffff), 0)),
                },
                &[0x61, 0],
            ),
        })
        .collect();
    let s = analyze_rtp(&pkts, &opts(100));
    assert_eq!(s.received + s.lost, s.expected);
    assert_eq!(s.packets, 20_000);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        dgrams in proptest::collection::vec(
            (any::<i64>(), proptest::collection::vec(any::<u8>(), 0..80)), 0..40),
        ssrc in proptest::option::of(any::<u32>()),
        delay in any::<i64>(), thr in any::<i64>(), rate in any::<u32>(),
    ) {
        let pkts: Vec<RtpArrival> = dgrams.into_iter().map(|(rx_ns, bytes)| RtpArrival { rx_ns, kernel_ts: false, bytes }).collect();
        let o = RtpAnalysisOptions { ssrc, gap_threshold_ns: thr, playout_delay_ns: delay, clock_rate: rate };
        let s = analyze_rtp(&pkts, &o);
        prop_assert_eq!(s.received + s.lost, s.expected);
        prop_assert_eq!(s.malformed + s.foreign_ssrc + s.packets, pkts.len() as u64);
    }

    #[test]
    fn valid_rtp_headers_with_garbage_payloads_never_panic(
        payloads in proptest::collection::vec(
            (any::<u16>(), any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..60),
    ) {
        let pkts: Vec<RtpArrival> = payloads.iter().enumerate().map(|(i, (seq, ts, m, p))| RtpArrival {
            rx_ns: i as i64,
            kernel_ts: true,
            bytes: rtp_packet(&PacketSpec { ssrc: 1, payload_type: 96, seq: *seq, timestamp: *ts, marker: *m, tag: Some((*ts, 0)) }, p),
        }).collect();
        let s = analyze_rtp(&pkts, &opts(100));
        prop_assert_eq!(s.received + s.lost, s.expected);
    }

    #[test]
    fn drop_reorder_duplicate_keeps_the_books(
        seq0 in any::<u16>(),
        tagged in any::<bool>(),
        fates in proptest::collection::vec(0u8..8, 200),
    ) {
        let mut b = StreamBuilder::new(9, seq0);
        b.tagged = tagged;
        let sent = flat(&b.frames(60, 2500));
        // Per packet: 0 drop, 1 duplicate, 2 move 3 ms later, else keep.
        let mut got = Vec::new();
        let mut kept = Vec::new();
        for (i, a) in sent.iter().enumerate() {
            match fates.get(i % fates.len()).copied().unwrap_or(7) {
                0 => continue,
                1 => got.extend([a.clone(), a.clone()]),
                2 => got.push(RtpArrival { rx_ns: a.rx_ns + 3 * MS, ..a.clone() }),
                _ => got.push(a.clone()),
            }
            kept.push(i);
        }
        let s = analyze_rtp(&got, &opts(100));
        prop_assert_eq!(s.received + s.lost, s.expected);
        prop_assert_eq!(s.received, kept.len() as u64);
        if let (Some(&lo), Some(&hi)) = (kept.first(), kept.last()) {
            // Exactly the packets dropped between the first and last kept.
            prop_assert_eq!(s.lost, (hi - lo + 1 - kept.len()) as u64);
            prop_assert_eq!(s.seq_range.map(|(a, z)| z - a), Some((hi - lo) as i64));
        }
        prop_assert_eq!(s.packets, got.len() as u64);
        prop_assert!(s.frames_complete + s.frames_incomplete <= 60);
    }
}
