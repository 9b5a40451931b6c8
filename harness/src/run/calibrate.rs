//! `harness calibrate`'s job: pauses and network cuts the backend times on
//! the host, for the probe to be checked against (`measure::calibration`).

use super::{sleep_unless_cancelled, Gathered, RunControl};
use crate::backend::Backend;
use crate::clock::now_ns;
use crate::live::Live;
use anyhow::{Context, Result};
use measure::calibration::{CalibrationPlan, Trial, TrialKind};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Runs the plan's pauses, then its cuts, each in a window of its own.
pub(super) async fn trials<B: Backend>(
    plan: &CalibrationPlan,
    backend: &B,
    g: &mut Gathered,
    ctl: &RunControl,
    live: &Live,
) -> Result<()> {
    let settle = Duration::from_millis(plan.settle_ms);
    // Let the probe reach a steady state first.
    sleep_unless_cancelled(Duration::from_secs(1), &ctl.cancel).await;
    let trials = plan
        .pauses_ms
        .iter()
        .map(|&m| (TrialKind::Pause, m))
        .chain(plan.cuts_ms.iter().map(|&m| (TrialKind::Cut, m)));
    for (kind, requested_ms) in trials {
        if ctl.cancel.load(Ordering::SeqCst) {
            break;
        }
        let window_start_ns = now_ns();
        sleep_unless_cancelled(Duration::from_millis(200), &ctl.cancel).await;
        let d = Duration::from_millis(requested_ms);
        let (host_start_ns, host_end_ns, host_uncertainty_ns) = match kind {
            TrialKind::Pause => {
                let (a, b) = backend.pause_guest(d).await?;
                (a, b, 0)
            }
            TrialKind::Cut => backend.cut_network(d).await?,
        };
        sleep_unless_cancelled(settle, &ctl.cancel).await;
        let prober = g.prober.as_ref().context("probe not running")?;
        live.println(&format!(
            "{kind:?} of {requested_ms} ms: host timed {:.3} ms; probe's largest gap so far {:.3} ms",
            (host_end_ns - host_start_ns) as f64 / 1e6,
            prober.live().max_gap_ms
        ));
        g.trials.push(Trial {
            kind,
            requested_ms,
            host_start_ns,
            host_end_ns,
            host_uncertainty_ns,
            window_start_ns,
            window_end_ns: now_ns(),
        });
    }
    g.final_health = Some(backend.endpoints().agent.health().await.is_ok());
    Ok(())
}
