//! One repetition built by hand, with every expected figure worked out on
//! paper from the numbers below (not from the code under test).
//!
//! The probe sends at 1 kHz for 3 s from T = 1000 s; every reply arrives
//! 0.2 ms after its send, except the 150 probes sent at T+1000..T+1149 ms,
//! which never reach the guest. The migration's markers (host clock):
//!
//! | marker              | at (ms after T) |
//! |---------------------|-----------------|
//! | migration requested | 200             |
//! | pass 1 (setup done) | 202             |
//! | pass 2              | 800             |
//! | source stopped      | 1010            |
//! | RAM completed       | 1040            |
//! | destination resumed | 1060            |
//!
//! So the largest gap between replies runs from the reply to probe 999
//! (T+999.2) to the reply to probe 1150 (T+1150.2): 151.0 ms, and it is
//! also the outage. The client recovers at T+1150.2 (replies flow from
//! there on). The outage's parts: 999.2..1010 before STOP = 10.8 ms,
//! 1010..1040 stop-and-copy = 30 ms, 1040..1060 resume = 20 ms,
//! 1060..1150.2 switchover = 90.2 ms. STOP to RESUME is 50 ms, give or take
//! the two QMP markers' 1 µs each.
#![allow(clippy::unwrap_used, reason = "tests")]

use measure::migration::marker::{Marker, MarkerKind, MarkerSource, HOST_CLOCK};
use measure::migration::record::{
    HypervisorStats, MigrationRecord, PlatformStats, RepRecord, RepStatus,
};
use measure::probe::record::{ProbeRecord, ReplyRecord};
use measure::summary::{summarize, to_csv, to_table, ClockAlignment, RunRecords, CSV_HEADER};
use measure::timeline::{rep_timeline, rep_timelines, PhaseKind};

const T: i64 = 1_000_000_000_000;
const MS: i64 = 1_000_000;
const THRESHOLD: i64 = 5 * MS;

fn probe(client_offset_ns: i64) -> ProbeRecord {
    let mut p = ProbeRecord {
        rate_hz: 1000,
        payload_len: 64,
        target: "198.18.0.10:7001".into(),
        ..ProbeRecord::default()
    };
    let mut reached = 0;
    for seq in 0..3000u64 {
        let send = T + seq as i64 * MS + client_offset_ns;
        p.send_ns.push(send);
        if (1000..1150).contains(&seq) {
            continue;
        }
        reached += 1;
        p.replies.push(ReplyRecord {
            seq,
            send_ns: send,
            rx_ns: send + 200_000,
            kernel_ts: true,
            guest_rx_ns: 0,
            guest_tx_ns: 0,
            reflector_rx_count: reached,
        });
    }
    p
}

fn marker(kind: MarkerKind, pass: Option<u32>, at_ms: i64) -> Marker {
    Marker {
        kind,
        pass,
        t_ns: T + at_ms * MS,
        clock: HOST_CLOCK.into(),
        uncertainty_ns: 1_000,
        source: MarkerSource::QmpEvent,
    }
}

fn rep() -> RepRecord {
    let markers = vec![
        marker(MarkerKind::MigrationRequested, None, 200),
        marker(MarkerKind::SetupDone, None, 202),
        marker(MarkerKind::Pass, Some(1), 202),
        marker(MarkerKind::Pass, Some(2), 800),
        marker(MarkerKind::SourceStopped, None, 1010),
        marker(MarkerKind::RamCompleted, None, 1040),
        marker(MarkerKind::DestinationResumed, None, 1060),
    ];
    RepRecord {
        repetition: 1,
        window_start_ns: T,
        window_end_ns: T + 3000 * MS,
        migration: MigrationRecord {
            repetition: 1,
            source: "a".into(),
            destination: "b".into(),
            status: RepStatus::Completed,
            error: None,
            migrate_cmd_ns: Some(T + 200 * MS),
            finished_ns: Some(T + 1061 * MS),
            final_info: None,
            faults: Vec::new(),
            vm_lost: false,
            markers,
            hypervisor: Some(HypervisorStats {
                downtime_ms: Some(33.0),
                total_time_ms: Some(861.0),
                transferred_bytes: Some(140_000_000),
                passes: Some(2),
                ..HypervisorStats::default()
            }),
            platform: Some(PlatformStats {
                platform: "proxmox".into(),
                downtime_ms: Some(33.0),
                ..PlatformStats::default()
            }),
            platform_raw: None,
            storage: None,
            links: Vec::new(),
            events: Vec::new(),
            samples: Vec::new(),
        },
        guest: None,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn the_timeline_matches_the_hand_derivation() {
    let (r, p) = (rep(), probe(0));
    let g =
        measure::probe::gaps::analyze(&p, Some((r.window_start_ns, r.window_end_ns)), THRESHOLD);
    assert!(close(g.max_gap_ms, 151.0), "{}", g.max_gap_ms);
    assert!(close(g.max_outage_ms, 151.0), "{}", g.max_outage_ms);
    assert_eq!((g.lost, g.lost_forward, g.lost_return), (150, 150, 0));
    let t = rep_timeline(&r, Some(&p), Some(&g), &[], THRESHOLD);
    let bounds: Vec<(PhaseKind, Option<u32>, i64)> = t
        .phases
        .iter()
        .map(|ph| (ph.kind, ph.pass, ph.start_ns))
        .collect();
    assert_eq!(
        bounds,
        vec![
            (PhaseKind::Before, None, i64::MIN),
            (PhaseKind::Setup, None, T + 200 * MS),
            (PhaseKind::PreCopy, Some(1), T + 202 * MS),
            (PhaseKind::PreCopy, Some(2), T + 800 * MS),
            (PhaseKind::StopAndCopy, None, T + 1010 * MS),
            (PhaseKind::Resume, None, T + 1040 * MS),
            (PhaseKind::Switchover, None, T + 1060 * MS),
            (PhaseKind::After, None, T + 1150 * MS + 200_000),
        ]
    );
    let o = t.outage.unwrap();
    assert!(close(o.outage_ms, 151.0));
    assert!(close(o.before_stop_ms, 10.8), "{o:?}");
    assert!(close(o.stop_and_copy_ms, 30.0), "{o:?}");
    assert!(close(o.resume_ms, 20.0), "{o:?}");
    assert!(close(o.switchover_ms, 90.2), "{o:?}");
    assert!(close(o.other_ms, 0.0), "{o:?}");
    assert_eq!(o.qemu_downtime_ms, Some(33.0));
}

/// `probe_ahead_ns`: how far the probe's clock runs ahead of the host's;
/// `stated_ns`: what the clock alignment says it is.
fn summary_with(probe_ahead_ns: i64, stated_ns: i64) -> measure::summary::Summary {
    let reps = [rep()];
    let p = probe(probe_ahead_ns);
    let clock = ClockAlignment {
        client_offset_ns: stated_ns,
        client_uncertainty_ns: 250_000,
        method: "by hand".into(),
        guest: "untrusted".into(),
    };
    summarize(&RunRecords {
        scenario: "by-hand",
        acceleration: Some("tcg"),
        reps: &reps,
        probe: Some(&p),
        icmp: None,
        gap_threshold_ns: THRESHOLD,
        announces: &[],
        asserts: None,
        agent_answered_at_end: Some(true),
        run_status: "complete",
        error: None,
        clock: Some(&clock),
    })
}

fn summary(offset_ns: i64) -> measure::summary::Summary {
    summary_with(offset_ns, offset_ns)
}

#[test]
fn the_summary_table_and_csv_give_the_hand_figures() {
    let s = summary(0);
    let r = &s.repetitions[0];
    assert_eq!(r.client.max_gap_ms, Some(151.0));
    assert_eq!(r.client.lost_probes, Some(150));
    assert!(close(r.host.stop_to_resume_ms.unwrap(), 50.0));
    // Two markers of 1 µs each, and each carries the clock's 0.25 ms.
    assert!(close(r.host.stop_to_resume_uncertainty_ms.unwrap(), 0.502));
    assert!(close(r.host.command_to_end_ms.unwrap(), 861.0));
    assert_eq!(r.qemu.downtime_ms, Some(33.0));
    assert_eq!(r.platform.as_ref().unwrap().downtime_ms, Some(33.0));
    assert_eq!(
        s.final_check.as_ref().unwrap().replies_after_last_migration,
        1850
    );

    let csv = to_csv(&s);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER));
    let line = lines.next().unwrap();
    let row: Vec<&str> = line.split(',').collect();
    assert_eq!(row.len(), CSV_HEADER.split(',').count(), "{line}");
    let col = |name: &str| {
        let i = CSV_HEADER.split(',').position(|c| c == name).unwrap();
        row[i]
    };
    assert_eq!(col("repetition"), "1");
    assert_eq!(col("direction"), "a->b");
    assert_eq!(col("qemu.downtime_ms"), "33");
    assert_eq!(col("host.stop_to_resume_ms"), "50.000");
    assert_eq!(col("host.stop_to_resume_uncertainty_ms"), "0.502");
    assert_eq!(col("client.max_outage_ms"), "151.000");
    assert_eq!(col("client.lost_probes"), "150");
    assert_eq!(col("error"), "");
    // An error with a comma and a quote is one field, read back whole.
    let mut failed = s.clone();
    failed.repetitions[0].error = Some("QEMU said \"no\", then died".into());
    let text = to_csv(&failed);
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let rec = rd.records().next().unwrap().unwrap();
    assert_eq!(rec.len(), CSV_HEADER.split(',').count());
    assert_eq!(&rec[rec.len() - 1], "QEMU said \"no\", then died");

    let table = to_table(&s);
    let row = table.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..6],
        ["1", "a->b", "completed", "33", "50.0", "151.0"],
        "{table}"
    );
}

#[test]
fn a_client_clock_offset_moves_the_markers_not_the_figures() {
    // The probe's clock runs 5 ms ahead of the host's; the alignment says
    // so. Every figure stays what it was with one clock.
    let (a, b) = (summary(0), summary(5 * MS));
    let (ra, rb) = (&a.repetitions[0], &b.repetitions[0]);
    assert_eq!(ra.client.max_outage_ms, rb.client.max_outage_ms);
    let (oa, ob) = (ra.outage.as_ref().unwrap(), rb.outage.as_ref().unwrap());
    assert!(close(ob.switchover_ms, 90.2), "{ob:?}");
    assert!(close(oa.before_stop_ms, ob.before_stop_ms));
    assert_eq!(b.clock.as_ref().unwrap().client_offset_ns, 5 * MS);
    // Misaligned (the offset not stated), the markers land 5 ms early on
    // the probe's axis: the switchover reads 95.2 ms, before-STOP 5.8 ms.
    let wrong = summary_with(5 * MS, 0);
    let ow = wrong.repetitions[0].outage.as_ref().unwrap();
    assert!(close(ow.switchover_ms, 95.2), "{ow:?}");
    assert!(close(ow.before_stop_ms, 5.8), "{ow:?}");
}

#[test]
fn what_a_backend_could_not_measure_is_null_with_its_reason() {
    assert!(summary(0).repetitions[0].not_measured.is_empty());
    // A failed migration: the destination never resumed, and the backend
    // (a task log, say) gave no QEMU statistics.
    let mut r = rep();
    r.migration.status = RepStatus::Failed;
    r.migration
        .markers
        .retain(|m| m.kind != MarkerKind::DestinationResumed);
    r.migration.hypervisor = None;
    let s = measure::summary::summarize_rep(&r, None, &[], THRESHOLD);
    assert_eq!(s.host.stop_to_resume_ms, None);
    assert_eq!(
        s.not_measured
            .get("host.stop_to_resume_ms")
            .map(String::as_str),
        Some("no destination-resumed marker")
    );
    assert_eq!(s.qemu.downtime_ms, None);
    assert!(s.not_measured["qemu"].contains("no hypervisor statistics"));
    assert_eq!(s.not_measured["client"], "no probe record");
    // Markers on two clocks cannot be subtracted.
    let mut r = rep();
    for m in &mut r.migration.markers {
        if m.kind == MarkerKind::DestinationResumed {
            m.clock = "node-b".into();
        }
    }
    let s = measure::summary::summarize_rep(&r, None, &[], THRESHOLD);
    assert_eq!(s.host.stop_to_resume_ms, None);
    assert!(s.not_measured["host.stop_to_resume_ms"].contains("node-b"));
}

/// The ICMP echo stream beside the probe: 1 kHz from T like the probe,
/// answered by the guest's kernel 0.1 ms after each send, except echoes
/// `lost` (none of the guest's answers to them came back), as
/// the ICMP prober (`client_probe::icmp`) records them: no guest times.
fn icmp(lost: std::ops::Range<u64>) -> ProbeRecord {
    let mut p = ProbeRecord {
        rate_hz: 1000,
        payload_len: 64,
        target: "198.18.0.10".into(),
        ..ProbeRecord::default()
    };
    for seq in 0..3000u64 {
        let send = T + seq as i64 * MS;
        p.send_ns.push(send);
        if !lost.contains(&seq) {
            p.replies.push(ReplyRecord {
                seq,
                send_ns: send,
                rx_ns: send + 100_000,
                kernel_ts: true,
                guest_rx_ns: 0,
                guest_tx_ns: 0,
                reflector_rx_count: 0,
            });
        }
    }
    p
}

/// The kernel stops answering with the probe (echoes from T+1000 ms lost)
/// but answers again from T+1080: its outage runs from the reply to echo
/// 999 (T+999.1) to the reply to echo 1080 (T+1080.1), 81.0 ms, ending
/// 20.1 ms after RESUME (T+1060), while the reflector's runs to T+1150.2:
/// the service was back 70.1 ms after the kernel. Its parts: 999.1..1010
/// in pass 2 = 10.9 ms, 30 ms stop-and-copy, 20 ms resume, 1060..1080.1 of
/// the switchover = 20.1 ms.
#[test]
fn the_kernels_outage_ends_before_the_services_by_the_hand_figures() {
    let (reps, p, k) = ([rep()], probe(0), icmp(1000..1080));
    let s = summarize(&RunRecords {
        scenario: "by-hand",
        acceleration: Some("tcg"),
        reps: &reps,
        probe: Some(&p),
        icmp: Some(&k),
        gap_threshold_ns: THRESHOLD,
        announces: &[],
        asserts: None,
        agent_answered_at_end: Some(true),
        run_status: "complete",
        error: None,
        clock: None,
    });
    let c = &s.repetitions[0].client;
    assert!(close(c.icmp_max_gap_ms.unwrap(), 81.0), "{c:?}");
    assert!(close(c.icmp_outage_ms.unwrap(), 81.0), "{c:?}");
    assert_eq!(c.icmp_outage_start_ns, Some(T + 999 * MS + 100_000));
    assert_eq!(c.icmp_outage_end_ns, Some(T + 1080 * MS + 100_000));
    assert!(close(c.service_lag_ms.unwrap(), 70.1), "{c:?}");
    // The reflector's figures are untouched by the second stream.
    assert_eq!(c.max_outage_ms, Some(151.0));
    assert!(s.repetitions[0].not_measured.is_empty());

    let t = &rep_timelines(&reps, Some(&p), Some(&k), &[], THRESHOLD)[0];
    let o = t.icmp_outage.as_ref().unwrap();
    assert!(close(o.len_ms, 81.0));
    let parts: Vec<(&str, f64)> = o.phases.iter().map(|x| (x.phase.as_str(), x.ms)).collect();
    let want = [
        ("pre-copy pass 2", 10.9),
        ("stop-and-copy", 30.0),
        ("resume", 20.0),
        ("switchover", 20.1),
    ];
    assert_eq!(parts.len(), want.len(), "{parts:?}");
    for ((p, ms), (wp, wms)) in parts.iter().zip(want) {
        assert!(*p == wp && close(*ms, wms), "{parts:?}");
    }
    // The phases stay the reflector's: the switchover ends when the
    // service is back, not the kernel.
    assert_eq!(t.phases.last().unwrap().start_ns, T + 1150 * MS + 200_000);
    // Without an ICMP record, no kernel outage on the timeline.
    assert!(rep_timelines(&reps, Some(&p), None, &[], THRESHOLD)[0]
        .icmp_outage
        .is_none());

    let csv = to_csv(&s);
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let col = |name: &str| row[CSV_HEADER.split(',').position(|c| c == name).unwrap()];
    assert_eq!(col("client.icmp_max_gap_ms"), "81.000");
    assert_eq!(col("client.icmp_outage_ms"), "81.000");
    assert_eq!(col("client.service_lag_ms"), "70.100");
    let table = to_table(&s);
    assert!(
        table.contains("    icmp: kernel outage 81.0 ms (largest gap 81.0 ms); the service was back 70.1 ms after the kernel"),
        "{table}"
    );
    // Older summaries, without the fields, still read.
    let mut v = serde_json::to_value(&s).unwrap();
    for k in [
        "icmp_max_gap_ms",
        "icmp_outage_ms",
        "icmp_outage_start_ns",
        "icmp_outage_end_ns",
        "service_lag_ms",
    ] {
        v["repetitions"][0]["client"]
            .as_object_mut()
            .unwrap()
            .remove(k);
    }
    let old: measure::summary::Summary = serde_json::from_value(v).unwrap();
    assert_eq!(old.repetitions[0].client.service_lag_ms, None);
}

/// A kernel outage that is not the reflector's (here: the kernel did not
/// answer for 50 ms long after the migration) gives no lag.
#[test]
fn no_service_lag_between_outages_that_do_not_overlap() {
    let (r, k) = (rep(), icmp(2000..2050));
    let mut s = measure::summary::summarize_rep(&r, Some(&probe(0)), &[], THRESHOLD);
    measure::summary::join_icmp(&mut s, &r, Some(&k), THRESHOLD);
    assert!(close(s.client.icmp_outage_ms.unwrap(), 51.0));
    assert_eq!(s.client.service_lag_ms, None);
    assert!(s.not_measured["client.service_lag_ms"].contains("do not overlap"));
    // No ICMP record: nothing measured, nothing said.
    let mut s = measure::summary::summarize_rep(&r, Some(&probe(0)), &[], THRESHOLD);
    measure::summary::join_icmp(&mut s, &r, None, THRESHOLD);
    assert_eq!(s.client.icmp_outage_ms, None);
    assert!(s.not_measured.is_empty());
}
