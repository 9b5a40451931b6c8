//! The legend on top of a repetition's full timeline.

use super::frame::Timeline;
use crate::report::html::plots::common::{
    marker_color, phase_color, short, Key, C_BAND, C_CLIENT, C_KERNEL, C_OTHER, C_REPLY,
};
use measure::timeline::PhaseKind;

/// Legend entries of a timeline: the reply marks, and the phases and
/// markers this timeline has.
pub(super) fn timeline_legend(t: &Timeline<'_>) -> Vec<(Key, String)> {
    let (threshold_ms, phases, markers) = (t.threshold_ms, t.phases, t.markers);
    let mut v = vec![
        (
            Key::Dot(C_REPLY),
            format!("reply, RTT ≤ {} ms", short(threshold_ms)),
        ),
        (
            Key::Dot(C_CLIENT),
            format!("reply, RTT > {} ms", short(threshold_ms)),
        ),
        (
            Key::Line(C_OTHER),
            "probe never answered (at send)".to_string(),
        ),
        (Key::Box(C_BAND), "reply gap over threshold".to_string()),
        (Key::Bar(C_CLIENT), "longest outage".to_string()),
    ];
    if t.icmp_outage.is_some() {
        v.push((
            Key::Bar(C_KERNEL),
            "kernel outage (ICMP echoes)".to_string(),
        ));
    }
    if !t.has_probe {
        v.clear();
    }
    for (k, p, s) in [
        (PhaseKind::Setup, None, "setup"),
        (PhaseKind::PreCopy, Some(1), "pre-copy pass"),
        (PhaseKind::StopAndCopy, None, "stop-and-copy"),
        (PhaseKind::Resume, None, "resume"),
        (PhaseKind::Switchover, None, "switchover"),
    ] {
        if phases.iter().any(|x| x.kind == k) {
            v.push((Key::Box(phase_color(k, p, true)), s.to_string()));
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for m in markers {
        if !seen.contains(&m.label.as_str()) {
            seen.push(&m.label);
            v.push((Key::Line(marker_color(&m.label)), m.label.clone()));
        }
    }
    v
}
