//! Fuzz target: Proxmox's migration task log
//! (`measure::platform::proxmox`: `TaskLog::parse`, `TaskLog::from_api_json`,
//! `outcome`, `outcome_checked`). Never a panic; lines are numbered in
//! order; a line read as a known kind is written back (`LineKind::render`)
//! as a message that reads as the same variant, and writing that again is
//! stable; the outcome is Completed exactly when it has no error, and only
//! with a `migration finished successfully` line and no `TASK ERROR`; its
//! markers are in time order, each at least ±0.5 s. The UTC offset comes
//! from the input's length (±14 h in half hours), so the seeds stay plain
//! task logs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use measure::migration::record::RepStatus;
use measure::platform::proxmox::outcome::{outcome, outcome_checked};
use measure::platform::proxmox::tasklog::{parse_message, LineKind, TaskLine, TaskLog};
use std::mem::discriminant;

fuzz_target!(|data: &[u8]| {
    let offset = ((data.len() % 57) as i64 - 28) * 1800;
    let text = String::from_utf8_lossy(data);
    let log = TaskLog::parse(&text);
    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    assert_eq!(log.lines.len(), body.lines().count());
    for (line, n) in log.lines.iter().zip(1u64..) {
        assert_eq!(line.number, n);
        check_line(line);
    }
    check_outcome(&log, offset);
    if let Ok(api) = TaskLog::from_api_json(&text) {
        let v: serde_json::Value = serde_json::from_str(&text).expect("it read as JSON");
        let entries = v.get("data").unwrap_or(&v).as_array().map_or(0, Vec::len);
        assert_eq!(api.lines.len(), entries);
        api.lines.iter().for_each(check_line);
        check_outcome(&api, offset);
    }
});

/// A line's message is the end of its text, and what it read as writes
/// back to a message of the same variant whose writing is stable.
fn check_line(line: &TaskLine) {
    assert!(line.text.ends_with(line.message()));
    assert!(line.timestamp.is_some() || !line.error_prefix);
    if matches!(line.kind, LineKind::Other(_)) {
        return;
    }
    let written = line.kind.render();
    let again = parse_message(&written);
    assert_eq!(
        discriminant(&again),
        discriminant(&line.kind),
        "{:?} wrote {written:?}, read {again:?}",
        line.kind
    );
    assert_eq!(parse_message(&again.render()), again, "{written:?}");
}

/// The outcome's invariants.
fn check_outcome(log: &TaskLog, offset: i64) {
    let o = outcome(log, offset, "host");
    assert_eq!(o.status == RepStatus::Completed, o.error.is_none());
    if o.status == RepStatus::Completed {
        let has = |f: fn(&LineKind) -> bool| log.lines.iter().any(|l| f(&l.kind));
        assert!(has(|k| matches!(k, LineKind::FinishedSuccessfully { .. })));
        assert!(!has(|k| matches!(k, LineKind::TaskError { .. })));
    }
    assert!(o.markers.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
    assert!(o.markers.iter().all(|m| m.uncertainty_ns >= 500_000_000));
    assert_eq!(o.platform.platform, "proxmox");
    assert_eq!(
        o.platform.downtime_ms.is_some(),
        o.platform.downtime_source.is_some()
    );
    let progress = log
        .lines
        .iter()
        .filter(|l| matches!(l.kind, LineKind::MirrorProgress { .. }))
        .count();
    assert_eq!(o.mirror_progress.len(), progress);
    assert_eq!(
        outcome_checked(log, offset, "host").is_ok(),
        log.is_migration_log()
    );
}
