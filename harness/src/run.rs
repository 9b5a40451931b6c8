//! `harness run`: one scenario, start to finish.
//!
//! The pipeline reads top to bottom: scenario, lab, guest, probe,
//! workloads, repetitions, final check, records, summary. Whatever happens
//! after the bundle exists (a failed migration, a dead QEMU, Ctrl-C), the
//! run ends by writing what it measured and removing the lab.

use crate::backend::local::LocalLab;
use crate::backend::{Backend, MigrationRequest};
use crate::bundle::Bundle;
use crate::clock::{compact_stamp, now_ns, rfc3339};
use crate::guest::{build_image, find_agent, find_kernel};
use crate::lab::netns::in_netns;
use crate::lab::Lab;
use crate::live::Live;
use crate::manifest::{git_describe, HostFacts, Manifest, SCHEMA};
use crate::probe_handle::ProbeHandle;
use crate::rebuild::regenerate;
use crate::scenario::{Acceleration, ProbeControl, Scenario};
use crate::stream_run::Streams;
use anyhow::{Context, Result};
use client_probe::AnnounceWatch;
use measure::calibration::{evaluate, Calibration, CalibrationPlan, Trial, TrialKind};
use measure::migration::record::{GuestRecord, RepRecord};
use measure::probe::record::ProbeRecord;
use measure::summary::Summary;

/// The client namespace's interface on the guest's LAN.
const CLIENT_IF: &str = "eth0";
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the scenario comes from.
#[derive(Debug, Clone)]
pub enum ScenarioSource {
    /// A TOML file.
    File(PathBuf),
    /// Built by the program (e.g. `harness calibrate`'s defaults).
    Inline(Box<Scenario>),
}

/// What the run does once the guest is up and probed.
#[derive(Debug, Clone, Default)]
pub enum Job {
    /// The scenario's migrations.
    #[default]
    Migrations,
    /// Known pauses and cuts, to check the probe against (no migration).
    Calibrate(CalibrationPlan),
}

/// What `harness run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The scenario.
    pub scenario: ScenarioSource,
    /// What to do.
    pub job: Job,
    /// Where bundles go.
    pub out_dir: PathBuf,
    /// The agent binary, if not the default.
    pub agent: Option<PathBuf>,
    /// Overrides `vm.kernel`.
    pub kernel: Option<String>,
    /// Overrides `acceleration`.
    pub accel: Option<Acceleration>,
    /// Overrides `probe.rate_hz`.
    pub probe_rate: Option<u32>,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// Its summary.
    pub summary: Summary,
    /// The calibration, for [`Job::Calibrate`].
    pub calibration: Option<Calibration>,
}

/// Shared with the Ctrl-C handler.
#[derive(Default, Clone)]
pub struct RunControl {
    /// Set on the first Ctrl-C: finish the current step, record, clean up.
    pub cancel: Arc<AtomicBool>,
    /// The lab's id once it exists, so a second Ctrl-C can remove it.
    pub lab_id: Arc<Mutex<Option<String>>>,
    /// What interrupted the run (`Ctrl-C`, `SIGTERM`, ...), for the bundle.
    pub interrupted_by: Arc<Mutex<Option<String>>>,
}

impl RunControl {
    /// Asks the run to stop after its current step, saying what asked.
    pub fn interrupt(&self, by: &str) {
        *self
            .interrupted_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(by.to_string());
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Why the run was interrupted, as the bundle records it.
    pub fn interruption(&self) -> String {
        match self
            .interrupted_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_deref()
        {
            Some(by) => format!("interrupted by {by}"),
            None => "interrupted by the user".into(),
        }
    }
}

/// Runs `fut` unless the run is cancelled first (checked every 25 ms); a
/// cancellation drops `fut` and fails with "interrupted while {what}".
/// For long steps that have no cancellation of their own, such as booting
/// (up to 12 s of proving KVM, then the TCG boot).
pub async fn unless_cancelled<T>(
    fut: impl std::future::Future<Output = Result<T>>,
    cancel: &AtomicBool,
    what: &str,
) -> Result<T> {
    let watch = async {
        while !cancel.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    tokio::select! {
        r = fut => r,
        () = watch => anyhow::bail!("interrupted while {what}"),
    }
}

async fn sleep_unless_cancelled(d: Duration, cancel: &AtomicBool) {
    let end = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < end && !cancel.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(25).min(end - tokio::time::Instant::now())).await;
    }
}

/// Everything gathered while the run goes, kept outside the fallible part
/// so that an error cannot lose it.
#[derive(Default)]
struct Gathered {
    reps: Vec<RepRecord>,
    prober: Option<ProbeHandle>,
    announces: Option<AnnounceWatch>,
    streams: Option<Streams>,
    health_ok: bool,
    final_health: Option<bool>,
    trials: Vec<Trial>,
    /// Probe checkpoint segments saved so far.
    probe_segments: usize,
}

/// Runs a scenario and writes its bundle.
pub async fn run(opts: &RunOptions, ctl: &RunControl) -> Result<RunOutcome> {
    let live = Live::new();
    let (mut scenario, scenario_file) = match &opts.scenario {
        ScenarioSource::File(p) => (Scenario::load(p)?, p.display().to_string()),
        ScenarioSource::Inline(s) => ((**s).clone(), "(built in)".to_string()),
    };
    if let Some(k) = &opts.kernel {
        scenario.vm.kernel = k.clone();
    }
    if let Some(a) = opts.accel {
        scenario.acceleration = a;
    }
    if let Some(r) = opts.probe_rate {
        scenario.probe.rate_hz = r;
    }
    let kernel = find_kernel(&scenario.vm.kernel)?;
    let agent = find_agent(opts.agent.as_deref())?;
    let started_ns = now_ns();
    let lab = Lab::create(1).context("building the lab (are you root? is iproute2 installed?)")?;
    for line in lab.swept.sweep_lines() {
        live.println(&line);
    }
    *ctl.lab_id
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(lab.id.clone());
    let bundle = Bundle::create(
        &opts.out_dir,
        &scenario.name,
        &compact_stamp(started_ns),
        &lab.id,
    )?;
    live.println(&format!("bundle: {}", bundle.dir.display()));
    bundle.write("scenario.toml", scenario.resolved_toml().as_bytes())?;
    let mut manifest = Manifest {
        schema: SCHEMA.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        tool_git: git_describe(),
        command: std::env::args().collect(),
        scenario_file,
        run_id: lab.id.clone(),
        status: "running".into(),
        error: None,
        started: rfc3339(started_ns),
        ended: None,
        backend: "local-qemu".into(),
        acceleration: None,
        acceleration_note: String::new(),
        host: HostFacts::read(),
        guest: None,
        agent_answered_at_end: None,
    };
    bundle.write_json("manifest.json", &manifest)?;

    let image = match build_image(&kernel, &agent, scenario.vm.nic, &lab.state_dir) {
        Ok(i) => i,
        Err(e) => {
            manifest.status = "failed".into();
            manifest.error = Some(format!("{e:#}"));
            manifest.ended = Some(rfc3339(now_ns()));
            bundle.write_json("manifest.json", &manifest)?;
            return Err(e.context("building the guest image"));
        }
    };
    manifest.guest = Some(image.clone());
    let mut local = LocalLab::new(lab, &scenario, image);
    let mut g = Gathered::default();
    let body = run_body(
        &scenario, &opts.job, &mut local, &bundle, &mut g, ctl, &live,
    )
    .await;

    // Whatever happened, record it all and clean up.
    let probe_record: Option<ProbeRecord> = match g.prober.take() {
        Some(p) => match p.finish().await {
            Ok((r, clock)) => {
                if let Some(c) = clock {
                    bundle.write_json(crate::remote_probe::CLOCK_FILE, &c)?;
                }
                Some(r)
            }
            Err(e) => {
                live.println(&format!("warning: the probe failed: {e:#}"));
                None
            }
        },
        None => None,
    };
    if let Some(p) = &probe_record {
        write_probe(&bundle, p)?;
        // The whole record is written: the segments saved on the way are
        // redundant now.
        crate::probe_checkpoint::remove(&bundle)?;
    }
    if let Some(st) = g.streams.take() {
        if let Err(e) = st.finish(&local, &bundle, &live).await {
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
    let calibration = match (&opts.job, &probe_record) {
        (Job::Calibrate(_), Some(p)) => {
            bundle.write_json("calibration/trials.json", &g.trials)?;
            let c = evaluate(&g.trials, p);
            bundle.write_json("calibration.json", &c)?;
            Some(c)
        }
        _ => None,
    };
    if g.health_ok {
        match local.agent.report().await {
            Ok(r) => {
                bundle.write_json("agent/report.json", &r)?;
            }
            Err(e) => live.println(&format!("warning: no agent report: {e:#}")),
        }
    }
    if let Err(e) = local.collect_logs(&bundle.dir.join("logs")) {
        live.println(&format!("warning: cannot copy logs: {e:#}"));
    }
    bundle.write(
        "qemu-cmdlines.txt",
        (local.qemu_cmdlines.join("\n\n") + "\n").as_bytes(),
    )?;
    let interrupted = ctl.cancel.load(Ordering::SeqCst);
    let (run_status, error) = match &body {
        Ok(()) if interrupted => ("incomplete", Some(ctl.interruption())),
        Ok(()) => ("complete", None),
        Err(e) if interrupted => ("incomplete", Some(format!("{}: {e:#}", ctl.interruption()))),
        Err(e) if g.reps.is_empty() && !g.health_ok => ("failed", Some(format!("{e:#}"))),
        Err(e) => ("incomplete", Some(format!("{e:#}"))),
    };
    manifest.status = run_status.into();
    manifest.error = error;
    manifest.ended = Some(rfc3339(now_ns()));
    manifest.acceleration = g.health_ok.then(|| local.accel.to_string());
    manifest.acceleration_note = local.accel_note.clone();
    manifest.agent_answered_at_end = g.final_health;
    bundle.write_json("manifest.json", &manifest)?;
    // Everything derived comes from the records just written, as
    // `harness report` would derive it.
    let (summary, _) = regenerate(&bundle.dir).context("analysing the bundle")?;
    let shutdown = local.shutdown().await;
    // Last: the checksum list `harness verify` checks the bundle against.
    crate::verify::write_checksums(&bundle.dir).context("writing SHA256SUMS")?;
    shutdown.context("removing the lab")?;
    if run_status == "failed" {
        if let Err(e) = body {
            return Err(e.context(format!(
                "the run failed; what it recorded is in {}",
                bundle.dir.display()
            )));
        }
    }
    Ok(RunOutcome {
        bundle: bundle.dir.clone(),
        summary,
        calibration,
    })
}

async fn run_body(
    scenario: &Scenario,
    job: &Job,
    local: &mut LocalLab,
    bundle: &Bundle,
    g: &mut Gathered,
    ctl: &RunControl,
    live: &Live,
) -> Result<()> {
    let t_boot = std::time::Instant::now();
    live.println(&format!(
        "booting the guest ({} MiB, {} vCPU)...",
        scenario.vm.memory_mib, scenario.vm.vcpus
    ));
    let health = unless_cancelled(
        local.boot(scenario.acceleration, live),
        &ctl.cancel,
        "the guest booted",
    )
    .await?;
    g.health_ok = true;
    live.println(&format!(
        "guest up under {} in {:.1} s: agent {} on kernel {} ({})",
        local.accel,
        t_boot.elapsed().as_secs_f64(),
        health.agent_version,
        health.kernel,
        local.accel_note
    ));

    let ns = local.lab.client_ns();
    let (target, rate, size) = (
        local.reflector(),
        scenario.probe.rate_hz,
        scenario.probe.payload_bytes,
    );
    let prober = match scenario.probe.control {
        ProbeControl::InProcess => ProbeHandle::start_local(&ns, target, rate, size)?,
        ProbeControl::Serve => {
            let ip = local.lab.addrs.client;
            ProbeHandle::start_served(&ns, ip, target, rate, size)
                .await
                .context("starting client-probe serve in the client namespace")?
        }
    };
    g.prober = Some(prober);
    // QEMU's RARP self-announce (and the guest's gratuitous ARP) on the
    // client's link mark the network switchover on the timeline.
    match in_netns(&ns, || {
        AnnounceWatch::start(CLIENT_IF).map_err(|e| std::io::Error::other(format!("{e:#}")))
    }) {
        Ok(w) => g.announces = Some(w),
        Err(e) => live.println(&format!(
            "warning: not watching for announce frames on the client's link: {e:#}"
        )),
    }

    if let Job::Calibrate(plan) = job {
        return calibrate(plan, local, g, ctl, live).await;
    }
    g.streams = Some(Streams::start(scenario, local, live).await?);
    let run_start = std::time::Instant::now();
    let points = scenario.sweep_points().map_err(anyhow::Error::msg)?;
    let total: u32 = points.iter().map(|(_, p)| p.repetitions).sum();
    let mut rep = 0u32;
    let mut dirty_running = false;
    'points: for (step, (value, point)) in points.iter().enumerate() {
        if let Some(v) = value {
            let parameter = scenario.sweep.as_ref().map_or("", |s| s.parameter.as_str());
            live.println(&format!("sweep point {}: {parameter} = {v}", step + 1));
        }
        local.set_scenario(point);
        if dirty_running {
            let r = local
                .agent
                .stop_workload("dirty")
                .await
                .context("stopping the dirty workload")?;
            bundle.write_json(&format!("agent/dirty-{:02}.json", step), &r)?;
            dirty_running = false;
        }
        if let Some(spec) = point.workload.dirty.as_ref().and_then(|d| d.to_wire()) {
            local
                .agent
                .start_workload("dirty", &spec)
                .await
                .context("starting the dirty workload")?;
            dirty_running = true;
        }
        for _ in 0..point.repetitions {
            if ctl.cancel.load(Ordering::SeqCst) {
                break 'points;
            }
            rep += 1;
            let window_start_ns = now_ns();
            sleep_unless_cancelled(Duration::from_secs_f64(point.pause_before_s), &ctl.cancel)
                .await;
            let prober = g.prober.as_ref().context("probe not running")?;
            let suffix = || {
                let l = prober.live();
                format!(
                    "probe gap now {:.1} ms, largest {:.1} ms",
                    l.current_gap_ms, l.max_gap_ms
                )
            };
            let before = local.agent.report().await;
            let req = MigrationRequest {
                repetition: rep,
                of: total,
                faults: scenario.faults_for(rep).collect(),
                status_suffix: &suffix,
                cancel: &ctl.cancel,
            };
            let rec = local.migrate(&req, live).await?;
            sleep_unless_cancelled(Duration::from_secs_f64(point.pause_after_s), &ctl.cancel).await;
            // The window closes before the agent is asked about the
            // repetition: its integrity check keeps the guest's one vCPU
            // busy, which the probe would otherwise count as an outage.
            let window_end_ns = now_ns();
            let guest = if rec.vm_lost {
                None
            } else {
                Some(guest_record(local, value.clone(), before, dirty_running).await)
            };
            let rep_rec = RepRecord {
                repetition: rep,
                window_start_ns,
                window_end_ns,
                migration: rec,
                guest,
            };
            bundle.write_json(&format!("reps/rep-{rep:03}.json"), &rep_rec)?;
            match prober.checkpoint().await {
                Ok((meta, delta)) => {
                    g.probe_segments += 1;
                    crate::probe_checkpoint::save(bundle, g.probe_segments, &meta, &delta)?;
                }
                Err(e) => live.println(&format!("warning: {e:#}")),
            }
            let m = &rep_rec.migration;
            let l = prober.live();
            live.println(&format!(
                "rep {rep}/{total}: {}->{} {}{} in {:.1} s; probe: largest gap so far {:.1} ms",
                m.source,
                m.destination,
                m.status.as_str(),
                m.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" ({e})")),
                (rep_rec.window_end_ns - rep_rec.window_start_ns) as f64 / 1e9,
                l.max_gap_ms
            ));
            let lost = m.vm_lost;
            g.reps.push(rep_rec);
            if lost {
                anyhow::bail!("the VM was lost in repetition {rep}; no further repetitions");
            }
        }
    }
    live.println(&format!(
        "{} repetitions in {:.1} s",
        g.reps.len(),
        run_start.elapsed().as_secs_f64()
    ));
    // Is the guest still there?
    sleep_unless_cancelled(Duration::from_millis(200), &ctl.cancel).await;
    if let Err(e) = local.agent.health().await {
        g.health_ok = false;
        g.final_health = Some(false);
        return Err(e.context("the guest agent does not answer after the last migration"));
    }
    g.final_health = Some(true);
    if dirty_running {
        let r = local
            .agent
            .stop_workload("dirty")
            .await
            .context("stopping the dirty workload")?;
        bundle.write_json("agent/dirty-final.json", &r)?;
    }
    Ok(())
}

fn write_probe(bundle: &Bundle, p: &ProbeRecord) -> Result<()> {
    let mut replies = Vec::new();
    measure::probe::csv::write_replies_csv(p, &mut replies).context("writing probe replies")?;
    bundle.write("probe/replies.csv", &replies)?;
    let sends = crate::probe_checkpoint::sends_csv(0, &p.send_ns, true);
    bundle.write("probe/sends.csv", sends.as_bytes())?;
    // Everything but the two big arrays, which are in the CSVs.
    let meta = ProbeRecord {
        send_ns: Vec::new(),
        replies: Vec::new(),
        ..p.clone()
    };
    bundle.write_json("probe/meta.json", &meta)?;
    let mut hlog = Vec::new();
    client_probe::write_rtt_hdr_log(p, 1_000_000_000, &mut hlog)
        .context("writing the RTT histogram log")?;
    bundle.write("probe/rtt.hlog", &hlog)?;
    Ok(())
}

async fn calibrate(
    plan: &CalibrationPlan,
    local: &mut LocalLab,
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
                let (a, b) = local.pause_guest(d).await?;
                (a, b, 0)
            }
            TrialKind::Cut => local.cut_network(d).await?,
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
    g.final_health = Some(local.agent.health().await.is_ok());
    Ok(())
}

/// What the guest agent says about one repetition: its reports before and
/// after, and an integrity check of the dirtied memory after it. Failures
/// to ask are recorded as absent, never fatal: the migration's record
/// matters more.
async fn guest_record(
    local: &LocalLab,
    sweep_value: Option<toml::Value>,
    before: Result<wire::control::AgentReport>,
    dirty_running: bool,
) -> GuestRecord {
    fn keep<T>(errors: &mut Vec<String>, what: &str, r: Result<T>) -> Option<T> {
        r.map_err(|e| errors.push(format!("{what}: {e:#}"))).ok()
    }
    let mut errors = Vec::new();
    let before = keep(&mut errors, "report before", before);
    let after = keep(&mut errors, "report after", local.agent.report().await);
    let integrity = if dirty_running {
        keep(
            &mut errors,
            "integrity check",
            local.agent.verify_workload("dirty").await,
        )
    } else {
        None
    };
    GuestRecord {
        sweep_value,
        before,
        after,
        integrity,
        errors,
    }
}
