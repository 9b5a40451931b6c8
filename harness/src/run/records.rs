//! What a run writes into its bundle at the end, whatever happened: the
//! probe's records (the reflector's stream in `probe/`, the ICMP stream in
//! `probe-icmp/`, in the same files), the streams, the announces, the calibration, the
//! agent's last report and the backend's logs.

use super::{Gathered, Job};
use crate::backend::Backend;
use crate::bundle::Bundle;
use crate::live::Live;
use anyhow::{Context, Result};
use measure::calibration::{evaluate, Calibration};
use measure::probe::record::ProbeRecord;

/// Stops what is still running and writes what it gathered. Only a
/// bundle that cannot be written is an error: anything else is a warning,
/// so that nothing already measured is lost.
pub(super) async fn write_gathered<B: Backend>(
    job: &Job,
    backend: &B,
    bundle: &Bundle,
    g: &mut Gathered,
    live: &Live,
) -> Result<Option<Calibration>> {
    let endpoints = backend.endpoints();
    let probe = finish_probe(bundle, g, live).await?;
    if let Some(st) = g.streams.take() {
        if let Err(e) = st.finish(&endpoints.agent, bundle, live).await {
            live.println(&format!(
                "warning: the streams' records are incomplete: {e:#}"
            ));
        }
    }
    if let Some(w) = g.announces.take() {
        let log = w.stop();
        bundle.write_json("probe/announces.json", &log)?;
        let mut pcap = Vec::new();
        match client_probe::announce::write_pcap(&mut pcap, &log.raw) {
            Ok(()) => {
                bundle.write("probe/announces.pcap", &pcap)?;
            }
            Err(e) => live.println(&format!("warning: cannot write announces.pcap: {e}")),
        }
    }
    let calibration = match (job, &probe) {
        (Job::Calibrate(_), Some(p)) => {
            bundle.write_json("calibration/trials.json", &g.trials)?;
            let c = evaluate(&g.trials, p);
            bundle.write_json("calibration.json", &c)?;
            Some(c)
        }
        _ => None,
    };
    if g.health_ok {
        match endpoints.agent.report().await {
            Ok(r) => {
                bundle.write_json("agent/report.json", &r)?;
            }
            Err(e) => live.println(&format!("warning: no agent report: {e:#}")),
        }
    }
    if let Err(e) = backend.collect(bundle) {
        live.println(&format!("warning: cannot copy the backend's logs: {e:#}"));
    }
    Ok(calibration)
}

/// Stops the probe and writes its whole records (replacing the checkpoint
/// segments saved on the way); returns the reflector stream's.
async fn finish_probe(
    bundle: &Bundle,
    g: &mut Gathered,
    live: &Live,
) -> Result<Option<ProbeRecord>> {
    use crate::bundle::checkpoint::{remove_in, DIR, ICMP_DIR};
    let Some(p) = g.prober.take() else {
        return Ok(None);
    };
    let f = match p.finish().await {
        Ok(f) => f,
        Err(e) => {
            live.println(&format!("warning: the probe failed: {e:#}"));
            return Ok(None);
        }
    };
    if let Some(c) = &f.clock {
        bundle.write_json(crate::clients::probe::CLOCK_FILE, c)?;
    }
    if let Some(w) = &f.icmp_warning {
        live.println(w);
    }
    match &f.icmp {
        Some(Ok(icmp)) => {
            write_probe(bundle, ICMP_PROBE_DIR, icmp)?;
            remove_in(bundle, ICMP_DIR)?;
        }
        Some(Err(e)) => live.println(&format!(
            "warning: the ICMP probe failed: {e:#}; what its checkpoints saved is kept"
        )),
        None => {}
    }
    write_probe(bundle, PROBE_DIR, &f.record)?;
    remove_in(bundle, DIR)?;
    Ok(Some(f.record))
}

/// Where the reflector stream's whole record goes.
const PROBE_DIR: &str = "probe";
/// Where the ICMP stream's goes, in the same files.
const ICMP_PROBE_DIR: &str = "probe-icmp";

/// Writes one stream's whole record into `dir`: `meta.json`, `sends.csv`,
/// `replies.csv` and `rtt.hlog`.
fn write_probe(bundle: &Bundle, dir: &str, p: &ProbeRecord) -> Result<()> {
    let mut replies = Vec::new();
    measure::probe::csv::write_replies_csv(p, &mut replies)
        .with_context(|| format!("writing {dir}/replies.csv"))?;
    bundle.write(&format!("{dir}/replies.csv"), &replies)?;
    let sends = crate::bundle::checkpoint::sends_csv(0, &p.send_ns, true);
    bundle.write(&format!("{dir}/sends.csv"), sends.as_bytes())?;
    // Everything but the two big arrays, which are in the CSVs.
    let meta = ProbeRecord {
        send_ns: Vec::new(),
        replies: Vec::new(),
        ..p.clone()
    };
    bundle.write_json(&format!("{dir}/meta.json"), &meta)?;
    let mut hlog = Vec::new();
    client_probe::write_rtt_hdr_log(p, 1_000_000_000, &mut hlog)
        .context("writing the RTT histogram log")?;
    bundle.write(&format!("{dir}/rtt.hlog"), &hlog)?;
    Ok(())
}
