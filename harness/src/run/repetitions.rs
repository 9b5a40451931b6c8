//! The scenario's migrations: each sweep point, its workloads, and its
//! repetitions, back and forth, each saved as soon as it ends.

use super::lockstep::Lockstep;
use super::{sleep_unless_cancelled, Gathered, RunControl};
use crate::backend::agent::AgentClient;
use crate::backend::{Backend, MigrationRequest};
use crate::bundle::Bundle;
use crate::clock::now_ns;
use crate::live::Live;
use crate::scenario::Scenario;
use anyhow::{Context, Result};
use measure::migration::record::{GuestRecord, RepRecord};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Runs every sweep point's repetitions, then checks the guest is still
/// there. With `step`, each migration starts with the other members'.
pub(super) async fn run<B: Backend>(
    scenario: &Scenario,
    backend: &mut B,
    bundle: &Bundle,
    g: &mut Gathered,
    ctl: &RunControl,
    live: &Live,
    lockstep: Option<&Lockstep>,
) -> Result<()> {
    let agent = backend.endpoints().agent;
    let run_start = std::time::Instant::now();
    let points = scenario.sweep_points().map_err(anyhow::Error::msg)?;
    let total: u32 = points.iter().map(|(_, p)| p.repetitions).sum();
    let mut dirty_running = false;
    let disk = DiskLoad::of(scenario);
    if let Some(d) = &disk {
        agent
            .start_workload(DISK, &d.spec)
            .await
            .context("starting the disk workload")?;
    }
    'points: for (step, (value, point)) in points.iter().enumerate() {
        if let Some(v) = value {
            let parameter = scenario.sweep.as_ref().map_or("", |s| s.parameter.as_str());
            live.println(&format!("sweep point {}: {parameter} = {v}", step + 1));
        }
        backend.set_scenario(point);
        if dirty_running {
            let r = agent
                .stop_workload("dirty")
                .await
                .context("stopping the dirty workload")?;
            bundle.write_json(&format!("agent/dirty-{step:02}.json"), &r)?;
            dirty_running = false;
        }
        if let Some(spec) = point.workload.dirty.as_ref().and_then(|d| d.to_wire()) {
            agent
                .start_workload("dirty", &spec)
                .await
                .context("starting the dirty workload")?;
            dirty_running = true;
        }
        for _ in 0..point.repetitions {
            if ctl.cancel.load(Ordering::SeqCst) {
                break 'points;
            }
            let rep = g.reps.len() as u32 + 1;
            let at = Repetition {
                rep,
                of: total,
                sweep_value: value.clone(),
                dirty_running,
                disk: disk.as_ref(),
                step: lockstep,
            };
            let rec = one(scenario, point, &at, backend, &agent, g, ctl, live).await?;
            save(bundle, g, &rec, live).await?;
            let lost = rec.migration.vm_lost;
            g.reps.push(rec);
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
    final_check(&agent, bundle, g, ctl, dirty_running, disk.is_some()).await
}

/// How long the guest agent has to answer after the last migration.
const FINAL_CHECK_WAIT: Duration = Duration::from_secs(10);

/// The disk workload's name at the agent.
const DISK: &str = "disk";

/// The disk workload of a run: the agent's spec and the region the host
/// checks.
struct DiskLoad {
    spec: wire::control::WorkloadSpec,
    region_bytes: u64,
    block_bytes: usize,
}

impl DiskLoad {
    fn of(s: &Scenario) -> Option<DiskLoad> {
        let (w, d) = (s.workload.disk.as_ref()?, s.vm.disk.as_ref()?);
        Some(DiskLoad {
            spec: w.to_wire(d),
            region_bytes: w.region_mib * 1048576,
            block_bytes: w.block_kib as usize * 1024,
        })
    }
}

/// Which repetition, and what it runs under.
struct Repetition<'a> {
    rep: u32,
    of: u32,
    sweep_value: Option<toml::Value>,
    dirty_running: bool,
    disk: Option<&'a DiskLoad>,
    step: Option<&'a Lockstep>,
}

/// One repetition: the pause before, the migration, the pause after, and
/// the agent's reports around it.
#[expect(clippy::too_many_arguments, reason = "the run's parts, each used once")]
async fn one<B: Backend>(
    scenario: &Scenario,
    point: &Scenario,
    at: &Repetition<'_>,
    backend: &mut B,
    agent: &AgentClient,
    g: &Gathered,
    ctl: &RunControl,
    live: &Live,
) -> Result<RepRecord> {
    let window_start_ns = now_ns();
    sleep_unless_cancelled(Duration::from_secs_f64(point.pause_before_s), &ctl.cancel).await;
    let prober = g.prober.as_ref().context("probe not running")?;
    let suffix = || {
        let l = prober.live();
        format!(
            "probe gap now {:.1} ms, largest {:.1} ms",
            l.current_gap_ms, l.max_gap_ms
        )
    };
    let before = agent.report().await;
    let req = MigrationRequest {
        repetition: at.rep,
        of: at.of,
        faults: scenario.faults_for(at.rep).collect(),
        status_suffix: &suffix,
        cancel: &ctl.cancel,
    };
    if let Some(s) = at.step {
        s.arrive().await;
    }
    let migration = backend.migrate(&req, live).await?;
    sleep_unless_cancelled(Duration::from_secs_f64(point.pause_after_s), &ctl.cancel).await;
    // The window closes before the agent is asked about the repetition:
    // its integrity check keeps the guest's one vCPU busy, which the probe
    // would otherwise count as an outage.
    let window_end_ns = now_ns();
    let guest = if migration.vm_lost {
        None
    } else {
        let mut g = guest_record(agent, at.sweep_value.clone(), before, at.dirty_running).await;
        if let Some(d) = at.disk {
            check_disk(backend, agent, d, &mut g).await;
        }
        Some(g)
    };
    Ok(RepRecord {
        repetition: at.rep,
        window_start_ns,
        window_end_ns,
        migration,
        guest,
    })
}

/// Writes the repetition and the probe's checkpoint, and says how it went.
async fn save(bundle: &Bundle, g: &mut Gathered, rec: &RepRecord, live: &Live) -> Result<()> {
    let rep = rec.repetition;
    bundle.write_json(&format!("reps/rep-{rep:03}.json"), rec)?;
    let prober = g.prober.as_ref().context("probe not running")?;
    match prober.checkpoint().await {
        Ok((meta, delta)) => {
            g.probe_segments += 1;
            crate::bundle::checkpoint::save(bundle, g.probe_segments, &meta, &delta)?;
        }
        Err(e) => live.println(&format!("warning: {e:#}")),
    }
    let m = &rec.migration;
    live.println(&format!(
        "rep {rep}: {}->{} {}{} in {:.1} s; probe: largest gap so far {:.1} ms",
        m.source,
        m.destination,
        m.status.as_str(),
        m.error
            .as_ref()
            .map_or(String::new(), |e| format!(" ({e})")),
        (rec.window_end_ns - rec.window_start_ns) as f64 / 1e9,
        prober.live().max_gap_ms
    ));
    Ok(())
}

/// Is the guest still there after the last migration? Then the dirty
/// workload's final report.
async fn final_check(
    agent: &AgentClient,
    bundle: &Bundle,
    g: &mut Gathered,
    ctl: &RunControl,
    dirty_running: bool,
    disk_running: bool,
) -> Result<()> {
    sleep_unless_cancelled(Duration::from_millis(200), &ctl.cancel).await;
    // Asked for a while, not once: a guest starved of CPU (other VMs of a
    // fleet still migrating beside it, under TCG) answers late but is there.
    if let Err(e) = agent.wait_ready(FINAL_CHECK_WAIT, || Ok(())).await {
        g.health_ok = false;
        g.final_health = Some(false);
        return Err(e.context("the guest agent does not answer after the last migration"));
    }
    g.final_health = Some(true);
    if dirty_running {
        let r = agent
            .stop_workload("dirty")
            .await
            .context("stopping the dirty workload")?;
        bundle.write_json("agent/dirty-final.json", &r)?;
    }
    if disk_running {
        let r = agent
            .stop_workload(DISK)
            .await
            .context("stopping the disk workload")?;
        bundle.write_json("agent/disk-final.json", &r)?;
    }
    Ok(())
}

/// The disk after a repetition, checked twice: by the agent, reading its
/// blocks back through the guest, and by the host, reading the image the
/// VM now runs on while the agent holds its writes. Failures are
/// recorded, never fatal.
async fn check_disk<B: Backend>(
    backend: &B,
    agent: &AgentClient,
    d: &DiskLoad,
    g: &mut GuestRecord,
) {
    let report = match agent.verify_and_hold(DISK).await {
        Ok(r) => r,
        Err(e) => {
            g.errors.push(format!("disk check: {e:#}"));
            return;
        }
    };
    let digest = report.versions_digest;
    g.disk_integrity = Some(report);
    match backend.read_disk(d.region_bytes).await {
        Ok(Some(read)) => {
            let mut c = measure::storage::host_check(&read.data, d.block_bytes, digest);
            c.image = read.image;
            c.node = read.node;
            g.disk_host_check = Some(c);
        }
        Ok(None) => {}
        Err(e) => g.errors.push(format!("host disk check: {e:#}")),
    }
    if let Err(e) = agent.resume_workload(DISK).await {
        g.errors.push(format!("resuming the disk workload: {e:#}"));
    }
}

/// What the guest agent says about one repetition: its reports before and
/// after, and an integrity check of the dirtied memory after it. Failures
/// to ask are recorded as absent, never fatal: the migration's record
/// matters more.
async fn guest_record(
    agent: &AgentClient,
    sweep_value: Option<toml::Value>,
    before: Result<wire::control::AgentReport>,
    dirty_running: bool,
) -> GuestRecord {
    fn keep<T>(errors: &mut Vec<String>, what: &str, r: Result<T>) -> Option<T> {
        r.map_err(|e| errors.push(format!("{what}: {e:#}"))).ok()
    }
    let mut errors = Vec::new();
    let before = keep(&mut errors, "report before", before);
    let after = keep(&mut errors, "report after", agent.report().await);
    let integrity = if dirty_running {
        keep(
            &mut errors,
            "integrity check",
            agent.verify_workload("dirty").await,
        )
    } else {
        None
    };
    GuestRecord {
        sweep_value,
        before,
        after,
        integrity,
        disk_integrity: None,
        disk_host_check: None,
        errors,
    }
}
