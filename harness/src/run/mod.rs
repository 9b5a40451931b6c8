//! `harness run`: one scenario, start to finish, on one backend.
//!
//! The pipeline reads top to bottom ([`run`], then [`run_on`]): scenario,
//! backend, bundle, VM, probe, streams, repetitions, final check, records,
//! summary. Whatever happens after the bundle exists (a failed migration,
//! a dead QEMU, Ctrl-C), the run ends by writing what it measured and
//! tearing the backend down.
//!
//! - [`repetitions`]: the sweep points and the migrations of each;
//! - [`calibrate`]: known pauses and cuts instead of migrations;
//! - [`probe`]: the client probe, in-process or served;
//! - [`streams`]: the RTP and HTTP video streams;
//! - [`records`]: what the run writes into the bundle at its end.

pub mod calibrate;
pub mod lockstep;
pub mod probe;
mod records;
mod repetitions;
pub mod streams;

use crate::backend::Backend;
use crate::bundle::load::ALIGNMENT_FILE;
use crate::bundle::manifest::{git_describe, HostFacts, Manifest, SCHEMA};
use crate::bundle::Bundle;
use crate::clock::{compact_stamp, now_ns, rfc3339};
use crate::live::Live;
use crate::report::regenerate;
use crate::scenario::{Acceleration, ProbeControl, Scenario};
use anyhow::{Context, Result};
use client_probe::AnnounceWatch;
use lockstep::Lockstep;
use measure::calibration::{Calibration, CalibrationPlan, Trial};
use measure::migration::record::RepRecord;
use measure::summary::Summary;
use probe::ProbeHandle;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use streams::Streams;

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
    /// A fleet's summary (several VMs; then `summary` only counts their
    /// repetitions and joins their verdicts).
    pub fleet: Option<measure::fleet::FleetSummary>,
}

/// Shared with the Ctrl-C handler.
#[derive(Default, Clone)]
pub struct RunControl {
    /// Set on the first Ctrl-C: finish the current step, record, clean up.
    pub cancel: Arc<AtomicBool>,
    /// The run's id once its backend exists, so a second Ctrl-C can remove
    /// what the run made.
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

    /// Records the run's id for the second Ctrl-C.
    pub fn set_run_id(&self, id: &str) {
        *self
            .lab_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id.to_string());
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

/// Sleeps for `d`, or less if the run is cancelled.
pub(crate) async fn sleep_unless_cancelled(d: Duration, cancel: &AtomicBool) {
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
    /// `kvm`/`tcg` and why, once the VM is up.
    acceleration: Option<(String, String)>,
}

/// Runs a scenario on the backend it names and writes its bundle.
pub async fn run(opts: &RunOptions, ctl: &RunControl) -> Result<RunOutcome> {
    let (scenario, scenario_file) = resolve_scenario(opts)?;
    if scenario.is_fleet() {
        anyhow::bail!(
            "{scenario_file} has several VMs or conditions: `harness run` runs those (this runs one VM)"
        );
    }
    crate::backend::check_scenario(&scenario, matches!(opts.job, Job::Calibrate(_)))?;
    let mut backend = crate::backend::open(&scenario, opts.agent.as_deref(), Vec::new())?;
    run_on(
        &mut backend,
        &scenario,
        &scenario_file,
        &opts.job,
        &opts.out_dir,
        ctl,
    )
    .await
}

/// The scenario with the command line's overrides, and where it came from.
pub(crate) fn resolve_scenario(opts: &RunOptions) -> Result<(Scenario, String)> {
    let (mut scenario, file) = match &opts.scenario {
        ScenarioSource::File(p) => (Scenario::load(p)?, p.display().to_string()),
        ScenarioSource::Inline(s) => ((**s).clone(), "(built in)".to_string()),
    };
    if let Some(k) = &opts.kernel {
        for vm in scenario.vm.iter_mut() {
            vm.kernel = k.clone();
        }
    }
    if let Some(a) = opts.accel {
        scenario.acceleration = a;
    }
    if let Some(r) = opts.probe_rate {
        scenario.probe.rate_hz = r;
    }
    Ok((scenario, file))
}

/// Runs `scenario` on `backend` (created, nothing started yet) and writes
/// its bundle under `out_dir`.
pub async fn run_on<B: Backend>(
    backend: &mut B,
    scenario: &Scenario,
    scenario_file: &str,
    job: &Job,
    out_dir: &std::path::Path,
    ctl: &RunControl,
) -> Result<RunOutcome> {
    let live = Live::new();
    for line in backend.notices() {
        live.println(&line);
    }
    ctl.set_run_id(backend.run_id());
    let bundle = match Bundle::create(
        out_dir,
        &scenario.name,
        &compact_stamp(now_ns()),
        backend.run_id(),
    ) {
        Ok(b) => b,
        Err(e) => {
            let _ = backend.teardown().await;
            return Err(e);
        }
    };
    live.println(&format!("bundle: {}", bundle.dir.display()));
    run_into(
        backend,
        scenario,
        scenario_file,
        job,
        bundle,
        ctl,
        &live,
        None,
    )
    .await
}

/// [`run_on`] into a bundle folder made already (a fleet member's, under
/// the fleet's). With `step`, each migration waits until every member
/// still running reaches its own (a node evacuated at once).
#[expect(clippy::too_many_arguments, reason = "the run's parts, each used once")]
pub(crate) async fn run_into<B: Backend>(
    backend: &mut B,
    scenario: &Scenario,
    scenario_file: &str,
    job: &Job,
    bundle: Bundle,
    ctl: &RunControl,
    live: &Live,
    step: Option<&Lockstep>,
) -> Result<RunOutcome> {
    // A member that ends, however, stops holding the others back.
    let _member = step.map(Lockstep::join);
    let started_ns = now_ns();
    bundle.write("scenario.toml", scenario.resolved_toml().as_bytes())?;
    let mut manifest = Manifest {
        schema: SCHEMA.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        tool_git: git_describe(),
        command: std::env::args().collect(),
        scenario_file: scenario_file.into(),
        run_id: backend.run_id().into(),
        status: "running".into(),
        error: None,
        started: rfc3339(started_ns),
        ended: None,
        backend: backend.name().into(),
        acceleration: None,
        acceleration_note: String::new(),
        host: HostFacts::read(backend.hypervisor_version()),
        guest: None,
        agent_answered_at_end: None,
    };
    bundle.write_json("manifest.json", &manifest)?;
    bundle.write_json(ALIGNMENT_FILE, &backend.clock_alignment())?;

    let mut g = Gathered::default();
    let body = run_body(scenario, job, backend, &bundle, &mut g, ctl, live, step).await;
    // A platform's clock is bounded only once it has been asked (during
    // preparation and each migration): the alignment is written again.
    bundle.write_json(ALIGNMENT_FILE, &backend.clock_alignment())?;
    let calibration = records::write_gathered(job, backend, &bundle, &mut g, live).await?;
    let (run_status, error) = run_status(&body, &g, ctl);
    manifest.status = run_status.into();
    manifest.error = error;
    manifest.ended = Some(rfc3339(now_ns()));
    manifest.guest = backend.vm_facts();
    // A platform's backend knows its hypervisor's version once prepared.
    if let Some(v) = backend.hypervisor_version() {
        manifest.host.qemu_version = v;
    }
    if let Some((accel, note)) = g.acceleration.take() {
        manifest.acceleration = g.health_ok.then_some(accel);
        manifest.acceleration_note = note;
    }
    manifest.agent_answered_at_end = g.final_health;
    bundle.write_json("manifest.json", &manifest)?;
    // Everything derived comes from the records just written, as
    // `harness report` would derive it.
    let (summary, _) = regenerate(&bundle.dir).context("analysing the bundle")?;
    let teardown = backend.teardown().await;
    // Last: the checksum list `harness verify` checks the bundle against.
    crate::bundle::verify::write_checksums(&bundle.dir).context("writing SHA256SUMS")?;
    teardown.context("tearing the backend down")?;
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
        fleet: None,
    })
}

/// The run's status for the manifest: `complete`, `incomplete` (stopped
/// or broken after it measured something) or `failed`, and why.
fn run_status(body: &Result<()>, g: &Gathered, ctl: &RunControl) -> (&'static str, Option<String>) {
    let interrupted = ctl.cancel.load(Ordering::SeqCst);
    match body {
        Ok(()) if interrupted => ("incomplete", Some(ctl.interruption())),
        Ok(()) => ("complete", None),
        Err(e) if interrupted => ("incomplete", Some(format!("{}: {e:#}", ctl.interruption()))),
        Err(e) if g.reps.is_empty() && !g.health_ok => ("failed", Some(format!("{e:#}"))),
        Err(e) => ("incomplete", Some(format!("{e:#}"))),
    }
}

/// The fallible part: the VM, the probe, then the job.
#[expect(clippy::too_many_arguments, reason = "the run's parts, each used once")]
async fn run_body<B: Backend>(
    scenario: &Scenario,
    job: &Job,
    backend: &mut B,
    bundle: &Bundle,
    g: &mut Gathered,
    ctl: &RunControl,
    live: &Live,
    step: Option<&Lockstep>,
) -> Result<()> {
    let t_boot = std::time::Instant::now();
    live.println(&format!(
        "booting the guest ({} MiB, {} vCPU)...",
        scenario.vm.memory_mib, scenario.vm.vcpus
    ));
    let prepared = unless_cancelled(
        backend.prepare(scenario, live),
        &ctl.cancel,
        "the guest booted",
    )
    .await?;
    g.health_ok = true;
    live.println(&format!(
        "guest up under {} in {:.1} s: agent {} on kernel {}{} ({})",
        prepared.acceleration,
        t_boot.elapsed().as_secs_f64(),
        prepared.health.agent_version,
        prepared.health.kernel,
        match prepared.health.init.as_deref() {
            Some("guest-agent") | None => String::new(),
            Some(init) => format!(", a service of {init} (not PID 1)"),
        },
        prepared.acceleration_note
    ));
    g.acceleration = Some((prepared.acceleration, prepared.acceleration_note));
    start_probe(scenario, backend, g, live).await?;
    if let Job::Calibrate(plan) = job {
        return calibrate::trials(plan, backend, g, ctl, live).await;
    }
    g.streams = Some(Streams::start(scenario, &backend.endpoints(), live).await?);
    repetitions::run(scenario, backend, bundle, g, ctl, live, step).await
}

/// Starts the client probe where the backend places it, and the watch for
/// QEMU's RARP self-announce (and the guest's gratuitous ARP) on the
/// client's link, which marks the network switchover on the timeline.
async fn start_probe<B: Backend>(
    scenario: &Scenario,
    backend: &B,
    g: &mut Gathered,
    live: &Live,
) -> Result<()> {
    let ep = backend.endpoints();
    let (rate, size) = (scenario.probe.rate_hz, scenario.probe.payload_bytes);
    let prober = match scenario.probe.control {
        ProbeControl::InProcess => {
            let rates = (rate, scenario.probe.icmp_rate_hz);
            ProbeHandle::start_local(&ep.client, ep.reflector, ep.guest, rates, size)?
        }
        ProbeControl::Serve => {
            let std::net::IpAddr::V4(ip) = ep.client_addr else {
                anyhow::bail!(
                    "a served probe listens on IPv4; the client's address is {}",
                    ep.client_addr
                );
            };
            ProbeHandle::start_served(&ep.client, ip, ep.reflector, rate, size)
                .await
                .with_context(|| {
                    format!("starting client-probe serve at {}", ep.client.describe())
                })?
        }
    };
    if let Some(note) = prober.note() {
        live.println(note);
    }
    g.prober = Some(prober);
    let Some(iface) = ep.announce_interface else {
        live.println("note: the backend names no client link to watch for announce frames");
        return Ok(());
    };
    match ep.client.enter(move || {
        AnnounceWatch::start(&iface).map_err(|e| std::io::Error::other(format!("{e:#}")))
    }) {
        Ok(w) => g.announces = Some(w),
        Err(e) => live.println(&format!(
            "warning: not watching for announce frames on the client's link: {e:#}"
        )),
    }
    Ok(())
}
