//! The migration link shaped like a WAN by the lab's delay line
//! (`scenarios/wan.toml`: 1000, 100 and 20 Mbit/s at 0, 20 and 80 ms):
//! real migrations of a real guest through it. Needs what the lab needs.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic with its message is the failure report"
)]

mod common;
use common::*;
use measure::migration::record::{RepRecord, RepStatus};

/// The most QEMU's `ram.transferred` grew over any 2 s or more of its
/// samples, beyond `rate` and a socket buffer's worth of slack, bytes.
fn excess_over_rate(rec: &RepRecord, rate_mbit: f64) -> f64 {
    let pts: Vec<(i64, i64)> = rec
        .migration
        .samples
        .iter()
        .filter_map(|s| Some((s.host_ns, s.info.ram.as_ref()?.transferred?)))
        .collect();
    let slack = 8.0 * 1048576.0;
    let mut worst = f64::MIN;
    for (i, a) in pts.iter().enumerate() {
        for b in pts[i..].iter().filter(|b| b.0 - a.0 >= 2_000_000_000) {
            let allowed = rate_mbit * 1e6 / 8.0 * (b.0 - a.0) as f64 / 1e9 + slack;
            worst = worst.max((b.1 - a.1) as f64 - allowed);
        }
    }
    worst
}

#[test]
fn migration_time_rises_as_the_link_thins_and_the_link_holds_its_rate() {
    let _guard = LAB.lock().unwrap_or_else(|e| e.into_inner());
    require_lab();
    let text = shipped_scenario("wan.toml");
    let (out, _) = run_scenario_with_token(&text, "wan");
    let reps = &out.summary.repetitions;
    assert_eq!(reps.len(), 3);
    let mut last_total = 0.0;
    for r in reps {
        assert_eq!(r.status, RepStatus::Completed, "{:?}", r.error);
        let link = r.links.iter().find(|l| l.link == "migration").unwrap();
        let rate = link.rate_mbit.unwrap();
        // One 9000-byte frame more than the rate allows in a 100 ms bin.
        let frame_mbit = 9014.0 * 8.0 / 0.1 / 1e6;
        assert!(link.peak_mbit.unwrap() <= rate + frame_mbit, "{link:?}");
        assert!(link.throughput_mbit.unwrap() > 0.5 * rate, "{link:?}");
        assert!(
            link.qemu_limit_mbit.unwrap() > rate,
            "QEMU's limit is not what holds it"
        );
        let total = r.qemu.total_time_ms.unwrap();
        assert!(
            total > last_total,
            "{total} ms at {rate} Mbit/s after {last_total} ms"
        );
        last_total = total;
        let rec: RepRecord = serde_json::from_value(json_file(
            &out.bundle
                .join(format!("reps/rep-{:03}.json", r.repetition)),
        ))
        .unwrap();
        let excess = excess_over_rate(&rec, rate);
        assert!(
            excess <= 0.0,
            "QEMU sent {excess} bytes more than the link carries"
        );
        assert!(r.host.stop_to_resume_ms.unwrap() >= r.qemu.downtime_ms.unwrap());
    }
    let stats = json_file(&out.bundle.join("links/migration.json"));
    assert_eq!(stats["shape"]["rate_mbit"], 20.0, "the last point's shape");
    assert_lab_gone(&out.bundle);
}
