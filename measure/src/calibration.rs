//! `harness calibrate`: the probe checked against pauses of known length.
//!
//! The guest is paused with QMP `stop`/`cont` for set durations, and cut
//! off the network by taking its tap device down for set durations, while
//! the client probes it. The host times each pause (QEMU's `STOP` and
//! `RESUME` event timestamps) or cut (before and after the `ip link`
//! commands); the probe measures the gap it saw. A probe that can be
//! trusted measures each within one probe interval plus 0.5 ms.
//!
//! How to read `calibration.json`: for every trial, `host_ms` is the
//! ground truth, `measured_gap_ms` the probe's largest reply gap around it,
//! `error_ms` their difference, `tolerance_ms` the bound the probe
//! promises (one interval + 0.5 ms, plus the host's own timing uncertainty
//! for cuts), and `within` whether it held. A pause is seen slightly longer
//! than the host times it (the reply to the first probe after `cont` must
//! still travel back) or up to one interval shorter (the last reply before
//! `stop` may come back a little after it).

use crate::ms;
use crate::probe::gaps::analyze;
use crate::probe::record::ProbeRecord;
use serde::{Deserialize, Serialize};

/// Version tag of `calibration.json`.
pub const SCHEMA: &str = "lmig-calibration/1";

/// What to calibrate against.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CalibrationPlan {
    /// Pause lengths (QMP stop/cont), ms.
    pub pauses_ms: Vec<u64>,
    /// Network cut lengths (tap link down/up), ms.
    pub cuts_ms: Vec<u64>,
    /// Quiet time between trials, ms.
    pub settle_ms: u64,
}

impl Default for CalibrationPlan {
    fn default() -> Self {
        Self {
            pauses_ms: vec![20, 100, 500, 2000],
            cuts_ms: vec![100, 500],
            settle_ms: 700,
        }
    }
}

/// How the guest was made unreachable.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TrialKind {
    /// QMP `stop` then `cont`: the whole VM is paused.
    Pause,
    /// The guest's tap device down then up: the VM runs, its network is cut.
    Cut,
}

/// One trial as recorded (raw).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trial {
    /// Pause or cut.
    pub kind: TrialKind,
    /// The length asked for, ms.
    pub requested_ms: u64,
    /// Host-timed start (best estimate), ns.
    pub host_start_ns: i64,
    /// Host-timed end (best estimate), ns.
    pub host_end_ns: i64,
    /// Half-width of the host's own uncertainty about the length, ns
    /// (0 for pauses: QEMU stamps both events on one clock).
    pub host_uncertainty_ns: i64,
    /// Probing window that surrounds the trial, ns.
    pub window_start_ns: i64,
    /// End of that window, ns.
    pub window_end_ns: i64,
}

/// One trial evaluated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrialResult {
    /// Pause or cut.
    pub kind: TrialKind,
    /// Requested, ms.
    pub requested_ms: u64,
    /// Host-timed length: the ground truth, ms.
    pub host_ms: f64,
    /// The host's timing uncertainty (±), ms.
    pub host_uncertainty_ms: f64,
    /// The probe's largest reply gap in the trial's window, ms.
    pub measured_gap_ms: f64,
    /// measured − host, ms.
    pub error_ms: f64,
    /// The bound the error must stay within, ms.
    pub tolerance_ms: f64,
    /// |error| ≤ tolerance.
    pub within: bool,
    /// Probes lost in the window.
    pub lost_probes: u64,
    /// Whether the prober itself fell behind during the gap.
    pub prober_stalled: bool,
    /// Gap start − host-timed start of the outage, ms: how precisely the
    /// probe saw the outage begin (the guest's recovery afterwards cannot
    /// blur this end).
    pub onset_error_ms: Option<f64>,
    /// |onset error| ≤ tolerance.
    pub onset_within: bool,
    /// From the end of the outage (host-timed) to the first reply, ms: how
    /// long the guest took to answer again.
    pub end_to_first_reply_ms: Option<f64>,
    /// How long the reflector held that first reply (its send minus
    /// receive timestamp, on the guest's clock, which runs again by then), ms.
    pub first_reply_guest_service_ms: Option<f64>,
    /// The reflector's median hold time before the trial, ms.
    pub typical_guest_service_ms: Option<f64>,
}

/// `calibration.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// [`SCHEMA`].
    pub schema: String,
    /// Probe rate.
    pub rate_hz: u32,
    /// Probe interval, ms.
    pub interval_ms: f64,
    /// Every trial.
    pub trials: Vec<TrialResult>,
    /// Whether every trial was within its tolerance.
    pub all_within: bool,
    /// Probe replies received / probes sent over the whole calibration:
    /// below 1 the guest's reflector could not keep up with the rate.
    pub reply_ratio: f64,
}

/// Evaluates recorded trials against the probe's record (pure).
pub fn evaluate(trials: &[Trial], probe: &ProbeRecord) -> Calibration {
    let interval_ms = 1000.0 / f64::from(probe.rate_hz.max(1));
    let results: Vec<TrialResult> = trials
        .iter()
        .map(|t| {
            let g = analyze(probe, Some((t.window_start_ns, t.window_end_ns)), i64::MAX);
            let first_after = g
                .max_gap
                .as_ref()
                .and_then(|gap| probe.replies.iter().find(|r| r.rx_ns == gap.end_ns));
            let mut before: Vec<i64> = probe
                .replies
                .iter()
                .filter(|r| r.rx_ns >= t.window_start_ns && r.rx_ns < t.host_start_ns)
                .map(|r| r.guest_tx_ns - r.guest_rx_ns)
                .collect();
            before.sort_unstable();
            let host_ms = ms(t.host_end_ns - t.host_start_ns);
            let measured = g.max_gap_ms;
            let error_ms = measured - host_ms;
            let tolerance_ms = interval_ms + 0.5 + ms(t.host_uncertainty_ns);
            TrialResult {
                kind: t.kind,
                requested_ms: t.requested_ms,
                host_ms,
                host_uncertainty_ms: ms(t.host_uncertainty_ns),
                measured_gap_ms: measured,
                error_ms,
                tolerance_ms,
                within: error_ms.abs() <= tolerance_ms,
                lost_probes: g.lost,
                prober_stalled: g.max_gap.as_ref().is_some_and(|x| x.prober_stalled),
                onset_error_ms: g.max_gap.as_ref().map(|x| ms(x.start_ns - t.host_start_ns)),
                onset_within: g
                    .max_gap
                    .as_ref()
                    .is_some_and(|x| ms(x.start_ns - t.host_start_ns).abs() <= tolerance_ms),
                end_to_first_reply_ms: first_after.map(|r| ms(r.rx_ns - t.host_end_ns)),
                first_reply_guest_service_ms: first_after
                    .map(|r| ms(r.guest_tx_ns - r.guest_rx_ns)),
                typical_guest_service_ms: before.get(before.len() / 2).map(|&v| ms(v)),
            }
        })
        .collect();
    let all = analyze(probe, None, i64::MAX);
    Calibration {
        schema: SCHEMA.into(),
        rate_hz: probe.rate_hz,
        interval_ms,
        all_within: !results.is_empty() && results.iter().all(|r| r.within),
        trials: results,
        reply_ratio: if all.probes_sent == 0 {
            0.0
        } else {
            all.replies as f64 / all.probes_sent as f64
        },
    }
}

/// The printed table.
pub fn to_table(c: &Calibration) -> String {
    let mut out = format!(
        "probe at {}/s (interval {:.3} ms), replies/sent {:.3}\n{:<6} {:>9} {:>10} {:>12} {:>9} {:>9} {:>6} {:>4} {:>9} {:>12} {:>13}\n",
        c.rate_hz, c.interval_ms, c.reply_ratio, "kind", "asked_ms", "host_ms", "measured_ms", "error_ms", "bound_ms", "lost", "ok",
        "onset_ms", "end>reply_ms", "guest_hold_ms"
    );
    for t in &c.trials {
        out.push_str(&format!(
            "{:<6} {:>9} {:>10.3} {:>12.3} {:>+9.3} {:>9.3} {:>6} {:>4} {:>9} {:>12} {:>13}\n",
            match t.kind {
                TrialKind::Pause => "pause",
                TrialKind::Cut => "cut",
            },
            t.requested_ms,
            t.host_ms,
            t.measured_gap_ms,
            t.error_ms,
            t.tolerance_ms,
            t.lost_probes,
            if t.within { "yes" } else { "NO" },
            t.onset_error_ms.map_or("-".into(), |v| format!(
                "{v:+.3}{}",
                if t.onset_within { "" } else { "!" }
            )),
            t.end_to_first_reply_ms
                .map_or("-".into(), |v| format!("{v:.3}")),
            t.first_reply_guest_service_ms
                .map_or("-".into(), |v| format!("{v:.3}")),
        ));
    }
    out.push_str(if c.all_within {
        "every gap within its bound\n"
    } else {
        "some gaps are NOT within their bound\n"
    });
    if c.trials.iter().any(|t| !t.within && t.onset_within) {
        out.push_str(
            "where a gap is longer than the outage but its onset is right, the excess is the guest's\n\
             recovery: end>reply_ms is how long after the outage the first reply came, guest_hold_ms how\n\
             long the reflector held it (docs/calibration.md)\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::record::ReplyRecord;

    /// A 1 kHz stream from t=0 with replies 0.2 ms after sending, silent
    /// between `from` and `to` (ns).
    fn record(from: i64, to: i64) -> ProbeRecord {
        let send_ns: Vec<i64> = (0..3000).map(|i| i * 1_000_000).collect();
        let replies = send_ns
            .iter()
            .enumerate()
            .filter(|(_, &s)| !(from..to).contains(&(s + 200_000)))
            .map(|(i, &s)| ReplyRecord {
                seq: i as u64,
                send_ns: s,
                rx_ns: s + 200_000,
                kernel_ts: true,
                guest_rx_ns: 0,
                guest_tx_ns: 0,
                reflector_rx_count: i as u64 + 1,
            })
            .collect();
        ProbeRecord {
            rate_hz: 1000,
            send_ns,
            replies,
            ..ProbeRecord::default()
        }
    }

    fn trial(start: i64, end: i64) -> Trial {
        Trial {
            kind: TrialKind::Pause,
            requested_ms: ((end - start) / 1_000_000) as u64,
            host_start_ns: start,
            host_end_ns: end,
            host_uncertainty_ns: 0,
            window_start_ns: start - 100_000_000,
            window_end_ns: end + 300_000_000,
        }
    }

    #[test]
    fn an_accurate_probe_is_within_and_a_wrong_host_time_is_not() {
        // Silent from 1000.1 ms to 1100.1 ms: the host says 1000..1100.
        let rec = record(1_000_100_000, 1_100_100_000);
        let c = evaluate(&[trial(1_000_000_000, 1_100_000_000)], &rec);
        let t = &c.trials[0];
        assert!((t.host_ms - 100.0).abs() < 1e-9);
        assert!((t.measured_gap_ms - 101.0).abs() < 1e-6, "{t:?}");
        assert!(t.within && c.all_within);
        assert_eq!(t.lost_probes, 100);
        // The same record against a host claim of 90 ms is outside.
        let c = evaluate(&[trial(1_000_000_000, 1_090_000_000)], &rec);
        assert!(!c.trials[0].within);
        assert!(!c.all_within);
        assert!(to_table(&c).contains("NO"));
    }
}
