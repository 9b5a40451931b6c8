//! The timeline of the committed fixture bundle (a real CI run whose
//! repetition 2 has a reply gap split by a reply held through the pause),
//! re-derived through `harness report`'s loader.
#![allow(clippy::unwrap_used, reason = "tests")]

use measure::migration::marker::MarkerKind;
use measure::timeline::*;

/// The fixture: a real CI bundle whose repetition 2 has a reply gap
/// split by a reply held through the pause.
fn fixture() -> (harness::bundle::load::BundleRecords, Vec<RepTimeline>) {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle-split-gap");
    let rec = harness::bundle::load::load(&dir).unwrap();
    let a = rec.analyze();
    (rec, a.timelines)
}

#[test]
fn phases_tile_the_axis_in_order() {
    let (_, tls) = fixture();
    for t in &tls {
        let kinds: Vec<PhaseKind> = t.phases.iter().map(|p| p.kind).collect();
        assert_eq!(kinds.first(), Some(&PhaseKind::Before));
        assert_eq!(kinds.last(), Some(&PhaseKind::After));
        for k in [
            PhaseKind::Setup,
            PhaseKind::StopAndCopy,
            PhaseKind::Resume,
            PhaseKind::Switchover,
        ] {
            assert_eq!(
                kinds.iter().filter(|&&x| x == k).count(),
                1,
                "{k:?} once: {kinds:?}"
            );
        }
        assert!(kinds.contains(&PhaseKind::PreCopy));
        for w in t.phases.windows(2) {
            assert_eq!(w[0].end_ns, w[1].start_ns, "no hole, no overlap");
            assert!(w[0].start_ns <= w[0].end_ns);
        }
        let labels: Vec<&str> = t.markers.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(
            labels,
            ["migrate", "STOP", "completed", "RESUME", "client recovered"]
        );
    }
}

#[test]
fn the_outage_is_taken_apart_without_losing_a_millisecond() {
    let (rec, tls) = fixture();
    for (rep, t) in rec.reps.iter().zip(&tls) {
        let o = t.outage.as_ref().unwrap();
        let parts =
            o.before_stop_ms + o.stop_and_copy_ms + o.resume_ms + o.switchover_ms + o.other_ms;
        assert!((parts - o.outage_ms).abs() < 1e-6, "{o:?}");
        // The guest ran nowhere from STOP to RESUME: all of it is outage.
        let stop_resume = measure::summary::stop_to_resume_ns(rep).unwrap().0 as f64 / 1e6;
        assert!(
            (o.stop_and_copy_ms + o.resume_ms - stop_resume).abs() < 1e-6,
            "{o:?}"
        );
        assert!(o.switchover_ms > 0.0);
        assert_eq!(
            o.qemu_downtime_ms,
            rep.migration
                .final_info
                .as_ref()
                .unwrap()
                .downtime
                .map(|d| d as f64)
        );
        // Every gap's overlaps add up to its length.
        for g in &t.gaps {
            let sum: f64 = g.phases.iter().map(|p| p.ms).sum();
            assert!((sum - g.len_ms).abs() < 1e-6, "{g:?}");
        }
        assert_eq!(t.gaps.iter().filter(|g| g.is_outage).count(), 1);
    }
    // Repetition 2: the outage spans both halves of the split gap.
    let t = &tls[1];
    let halves: Vec<&GapAttribution> = t
        .gaps
        .iter()
        .filter(|g| !g.is_outage && g.len_ms > 50.0)
        .collect();
    assert_eq!(halves.len(), 2, "{:?}", t.gaps);
    let o = t.gaps.iter().find(|g| g.is_outage).unwrap();
    assert!(o.start_ns <= halves[0].start_ns && o.end_ns >= halves[1].end_ns);
}

#[test]
fn a_failed_migration_has_no_resume_and_ends_when_the_harness_saw_it() {
    let (rec, _) = fixture();
    let mut rep = rec.reps[0].clone();
    rep.migration.markers.retain(|m| {
        !matches!(
            m.kind,
            MarkerKind::DestinationResumed | MarkerKind::SourceStopped | MarkerKind::RamCompleted
        )
    });
    let p = phases(&rep, None);
    let kinds: Vec<PhaseKind> = p.iter().map(|p| p.kind).collect();
    assert!(!kinds.contains(&PhaseKind::StopAndCopy) && !kinds.contains(&PhaseKind::Switchover));
    assert_eq!(
        p.last().unwrap().start_ns,
        rep.migration.finished_ns.unwrap()
    );
}
