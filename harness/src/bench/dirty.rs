//! `harness bench dirty`: how well the guest agent's memory dirtier holds
//! a target rate, side by side with `stress-ng --memrate` on the host and
//! in the same guest, in one run.
//!
//! At each target (MiB/s, or `max`: as fast as it goes):
//!
//! 1. **stress-ng on the host**: `stress-ng --memrate 1 --memrate-bytes
//!    <working set>m --memrate-wr-mbs <target> --timeout <s> --metrics`,
//!    before the guest boots (so that the guest's vCPU does not compete);
//! 2. **the agent's dirtier in the guest**: a `dirty` workload
//!    (`sequential`, one thread) over the working set for `--seconds`,
//!    stopped through the control API; its final report gives the mean
//!    rate over the window and the rate of each whole second;
//! 3. **stress-ng in the guest**: the same command, run through the
//!    agent's `command` workload (the harness copies `/usr/bin/stress-ng`
//!    and its shared libraries into the initramfs), its output read back
//!    from the workload's report (`output`).
//!
//! **The two tools do not count the same thing.** The agent's rate is
//! *page writes*: 4 KiB pages rewritten per second × 4 KiB; each write
//! rewrites a whole page, and with `sequential` every write of a second
//! hits a distinct page while the rate stays under the working set per
//! second. That is what pre-copy migration sees: it re-sends pages that
//! were dirtied, whatever was written in them. stress-ng's `memrate`
//! reports bytes written per second of each *write test* (its `MB` is
//! 2^20 bytes): in a cycle it runs 13 write tests (different store widths,
//! `rep stos`, `memset`) and 10 read tests, each one whole pass over its
//! buffer, pacing its writes per 1 MiB chunk (write 1 MiB flat out, then
//! sleep until the chunk is due). Each write test's figure is that test's
//! bytes over its own time, so the reads between write tests (they cannot
//! be switched off: `--memrate-rd-mbs` must be at least 1, and at 1 MB/s a
//! read pass over 64 MiB would last a minute) and the pauses are not in it.
//! This module adds `cycle_write_mib_s`: the bytes written per second over
//! whole cycles, reads included. stress-ng reports a test only once it
//! finished a whole pass over the buffer, so at low targets its run is
//! lengthened to one pass (see [`stress_timeout_s`]), or gives no figure.
//!
//! The parsers and the table are pure functions, tested here on stress-ng
//! 0.15.06's real output; the rest is a thin shell around the lab.

pub use super::dirty_report::*;
use crate::backend::Backend;
use crate::bench::probe::{finish_bench_lab, prepare_bench_lab, version_of, BenchLab};
use crate::bundle::manifest::HostFacts;
use crate::bundle::Bundle;
use crate::clock::{now_ns, rfc3339};
use crate::live::Live;
use crate::run::RunControl;
use crate::scenario::{Acceleration, Scenario};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wire::control::WorkloadSpec;

/// What `harness bench dirty` was asked to do.
#[derive(Debug, Clone)]
pub struct DirtyBenchOptions {
    /// Targets, in the order given.
    pub targets: Vec<Target>,
    /// Seconds of each run (stress-ng's may be lengthened, see
    /// [`stress_timeout_s`]).
    pub seconds: f64,
    /// The agent's working set and stress-ng's buffer, MiB.
    pub working_set_mib: u64,
    /// Acceleration of the guest.
    pub accel: Acceleration,
    /// Folder in which the bundle folder is created.
    pub out_dir: PathBuf,
    /// The guest agent binary, if not the default.
    pub agent: Option<PathBuf>,
    /// Guest kernel, if not `auto`.
    pub kernel: Option<String>,
}

/// Runs `argv` on the host to its end and returns its output (stdout then
/// stderr) and wall time; ended by its PID (SIGTERM, then SIGKILL) if it
/// outlives `limit`.
fn run_on_host(argv: &[String], limit: Duration) -> Result<(String, f64)> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let (program, args) = argv.split_first().context("empty command line")?;
    let start = Instant::now();
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", argv.join(" ")))?;
    // Read both pipes on threads so a chatty child never blocks on them.
    let mut out = child.stdout.take().context("no stdout pipe")?;
    let mut err = child.stderr.take().context("no stderr pipe")?;
    let read_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let read_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let pid = Pid::from_raw(i32::try_from(child.id()).context("PID out of range")?);
    let mut killed = None;
    let status = loop {
        if let Some(st) = child.try_wait().context("waiting for stress-ng")? {
            break st;
        }
        let waited = start.elapsed();
        if waited > limit + Duration::from_secs(3) {
            let _ = kill(pid, Signal::SIGKILL);
            killed = Some("SIGKILL");
            break child.wait().context("waiting for stress-ng")?;
        } else if waited > limit && killed.is_none() {
            let _ = kill(pid, Signal::SIGTERM);
            killed = Some("SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed().as_secs_f64();
    let text = format!(
        "{}{}",
        read_out.join().unwrap_or_default(),
        read_err.join().unwrap_or_default()
    );
    if let Some(sig) = killed {
        bail!(
            "{program} did not end within {:.0} s and was ended with {sig}; it said: {}",
            limit.as_secs_f64(),
            text.trim()
        );
    }
    if !status.success() {
        bail!("{program} failed ({status}): {}", text.trim());
    }
    Ok((text, wall))
}

/// Everything the body measured, kept outside it so an error loses none.
#[derive(Default)]
struct Gathered {
    agent: Vec<AgentRun>,
    host: Vec<StressRun>,
    guest: Vec<StressRun>,
    notes: Vec<String>,
    booted: bool,
    agent_version: Option<String>,
    /// `kvm`/`tcg` and why, once booted.
    acceleration: Option<(String, String)>,
}

fn file_name(place: &str, target: Target) -> String {
    format!("stress-ng/{place}-{target}.log")
}

async fn host_runs(
    opts: &DirtyBenchOptions,
    bundle: &Bundle,
    g: &mut Gathered,
    ctl: &RunControl,
    live: &Live,
) {
    for &target in &opts.targets {
        if ctl.cancel.load(Ordering::SeqCst) {
            return;
        }
        let (timeout_s, note) = stress_timeout_s(opts.seconds, opts.working_set_mib, target);
        let argv = stress_argv(STRESS_NG, opts.working_set_mib, target, timeout_s);
        live.println(&format!("host:  {}", argv.join(" ")));
        let a2 = argv.clone();
        let limit = Duration::from_secs(timeout_s + 30);
        let res = tokio::task::spawn_blocking(move || run_on_host(&a2, limit))
            .await
            .context("the stress-ng task failed")
            .and_then(|r| r);
        let rel = file_name("host", target);
        let mut run = match res {
            Ok((text, wall)) => {
                if let Err(e) = bundle.write(&rel, text.as_bytes()) {
                    live.println(&format!("warning: {e:#}"));
                }
                stress_run("host", target, argv, timeout_s, wall, &text, &rel)
            }
            Err(e) => StressRun {
                error: Some(format!("{e:#}")),
                ..stress_run("host", target, argv, timeout_s, 0.0, "", "")
            },
        };
        // Why the run was lengthened, or why no figure could come, says
        // more than "no write test finished".
        if note.is_some() {
            run.note = note;
        }
        progress_stress(live, &run);
        g.host.push(run);
    }
}

fn progress_stress(live: &Live, r: &StressRun) {
    match (&r.error, r.write_mean_mib_s) {
        (Some(e), _) => live.println(&format!("  failed: {e}")),
        (None, Some(m)) => live.println(&format!(
            "  {} write tests: mean {m:.2} MB/s ({}..{}), cycle {} MB/s",
            r.write_tests,
            opt(r.write_min_mib_s, 0, 2),
            opt(r.write_max_mib_s, 0, 2),
            opt(r.cycle_write_mib_s, 0, 2)
        )),
        (None, None) => live.println("  no write test finished a pass: no figure"),
    }
}

async fn guest_agent_run<B: Backend>(
    local: &B,
    opts: &DirtyBenchOptions,
    i: usize,
    target: Target,
) -> Result<AgentRun> {
    let name = format!("bench-dirty-{i}");
    let spec = WorkloadSpec::dirty(opts.working_set_mib, target.mib_s().unwrap_or(0.0));
    let started = local
        .endpoints()
        .agent
        .start_workload(&name, &spec)
        .await
        .with_context(|| format!("starting the dirtier at {target}"))?;
    if started.state != "running" {
        bail!(
            "the dirtier is {}: {}",
            started.state,
            started.error.unwrap_or_default()
        );
    }
    // A little over the window, so its last whole second is listed.
    tokio::time::sleep(Duration::from_secs_f64(opts.seconds + 0.3)).await;
    let done = local
        .endpoints()
        .agent
        .stop_workload(&name)
        .await
        .with_context(|| format!("stopping the dirtier at {target}"))?;
    Ok(agent_run(target, &done))
}

async fn guest_stress_run<B: Backend>(
    local: &B,
    opts: &DirtyBenchOptions,
    bundle: &Bundle,
    i: usize,
    target: Target,
) -> Result<StressRun> {
    let (timeout_s, note) = stress_timeout_s(opts.seconds, opts.working_set_mib, target);
    let argv = stress_argv(STRESS_NG, opts.working_set_mib, target, timeout_s);
    let name = format!("stress-ng-{i}");
    let t0 = Instant::now();
    let started = local
        .endpoints()
        .agent
        .start_workload(&name, &WorkloadSpec::Command { argv: argv.clone() })
        .await
        .context("starting stress-ng in the guest")?;
    if started.state == "failed" {
        bail!(
            "stress-ng in the guest failed at once: {} {}",
            started.error.unwrap_or_default(),
            started.output.unwrap_or_default().trim()
        );
    }
    // It ends on its own after --timeout; start-up under TCG takes a while.
    let deadline = Duration::from_secs(timeout_s + 60);
    tokio::time::sleep(Duration::from_secs(timeout_s)).await;
    loop {
        let rep = local
            .endpoints()
            .agent
            .report()
            .await
            .context("asking the agent")?;
        let state = rep.workloads.get(&name).map(|w| w.state.clone());
        if state.as_deref() != Some("running") {
            break;
        }
        if t0.elapsed() > deadline {
            break; // DELETE below ends it.
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let done = local
        .endpoints()
        .agent
        .stop_workload(&name)
        .await
        .context("collecting stress-ng's report in the guest")?;
    let text = done.output.clone().context(
        "the agent's report has no `output`: the guest agent is older than this harness; rebuild it",
    )?;
    let rel = file_name("guest", target);
    bundle.write(&rel, text.as_bytes())?;
    let mut run = stress_run("guest", target, argv, timeout_s, wall, &text, &rel);
    if done.state == "failed" {
        let e = done.error.unwrap_or_default();
        run.error = Some(match run.error {
            Some(p) => format!("{e}; {p}"),
            None => e,
        });
    } else if wall > deadline.as_secs_f64() {
        run.error = Some(format!(
            "did not end within {} s; stopped",
            deadline.as_secs()
        ));
    }
    if note.is_some() {
        run.note = note;
    }
    Ok(run)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the benchmark's parts, each used once"
)]
async fn bench_body<B: Backend>(
    opts: &DirtyBenchOptions,
    scenario: &Scenario,
    local: &mut B,
    bundle: &Bundle,
    with_stress: bool,
    g: &mut Gathered,
    ctl: &RunControl,
    live: &Live,
) -> Result<()> {
    let cancelled = || ctl.cancel.load(Ordering::SeqCst);
    if with_stress {
        live.println("stress-ng on the host (the guest is not running yet)...");
        host_runs(opts, bundle, g, ctl, live).await;
    }
    if cancelled() {
        return Ok(());
    }
    let t_boot = Instant::now();
    live.println("booting the guest...");
    let prepared = crate::run::unless_cancelled(
        local.prepare(scenario, live),
        &ctl.cancel,
        "the guest booted",
    )
    .await?;
    g.booted = true;
    g.agent_version = Some(prepared.health.agent_version.clone());
    live.println(&crate::bench::probe::booted_line(&prepared, t_boot));
    g.acceleration = Some((prepared.acceleration, prepared.acceleration_note));
    // Let the freshly booted guest settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (i, &target) in opts.targets.iter().enumerate() {
        if cancelled() {
            return Ok(());
        }
        let r = guest_agent_run(local, opts, i, target)
            .await
            .unwrap_or_else(|e| AgentRun::failed(target, &e));
        match &r.error {
            Some(e) => live.println(&format!("agent {target:>6}: failed: {e}")),
            None => live.println(&format!(
                "agent {target:>6}: mean {:.2} MiB/s, worst second {} ({}%), corrupted {}",
                r.mean_mib_s,
                opt(r.worst_second_mib_s, 0, 2),
                opt(r.worst_second_error_pct, 0, 2),
                r.corrupted_pages.map_or("-".into(), |c| c.to_string())
            )),
        }
        g.agent.push(r);
    }
    if !with_stress {
        return Ok(());
    }
    for (i, &target) in opts.targets.iter().enumerate() {
        if cancelled() {
            return Ok(());
        }
        live.println(&format!(
            "guest: {}",
            stress_argv(
                STRESS_NG,
                opts.working_set_mib,
                target,
                stress_timeout_s(opts.seconds, opts.working_set_mib, target).0
            )
            .join(" ")
        ));
        let r = match guest_stress_run(local, opts, bundle, i, target).await {
            Ok(r) => r,
            Err(e) => {
                let (timeout_s, _) = stress_timeout_s(opts.seconds, opts.working_set_mib, target);
                StressRun {
                    error: Some(format!("{e:#}")),
                    ..stress_run(
                        "guest",
                        target,
                        stress_argv(STRESS_NG, opts.working_set_mib, target, timeout_s),
                        timeout_s,
                        0.0,
                        "",
                        "",
                    )
                }
            }
        };
        progress_stress(live, &r);
        g.guest.push(r);
    }
    Ok(())
}

/// Runs the benchmark, prints only progress (on stderr), writes
/// `bench-dirty.json` and `bench-dirty.txt` (the table) and stress-ng's
/// outputs into a new bundle, and returns the report and the bundle
/// folder. The lab is removed on every path.
pub async fn bench_dirty(
    opts: &DirtyBenchOptions,
    ctl: &RunControl,
) -> Result<(DirtyBenchReport, PathBuf)> {
    if opts.targets.is_empty() {
        bail!("no targets to try");
    }
    if !(opts.seconds.is_finite() && opts.seconds >= 1.0) {
        bail!(
            "--seconds must be at least 1 (the agent reports whole seconds), not {}",
            opts.seconds
        );
    }
    if opts.working_set_mib == 0 || opts.working_set_mib > 4096 {
        bail!(
            "--working-set-mib must be from 1 to 4096, not {}",
            opts.working_set_mib
        );
    }
    let live = Live::new();
    let guest_memory_mib = GUEST_MEMORY_BASE_MIB + opts.working_set_mib;
    let mut scenario = Scenario {
        name: "bench-dirty".into(),
        description: "the agent's dirtier and stress-ng --memrate at target rates".into(),
        acceleration: opts.accel,
        ..Scenario::default()
    };
    scenario.vm.memory_mib = guest_memory_mib;
    let BenchLab {
        mut local,
        bundle,
        notes,
        with_tool: with_stress,
        started_ns,
    } = prepare_bench_lab(
        &mut scenario,
        opts.kernel.as_ref(),
        opts.agent.as_deref(),
        &opts.out_dir,
        (STRESS_NG, "stress-ng"),
        ctl,
        &live,
    )
    .await?;
    let mut g = Gathered {
        notes,
        ..Gathered::default()
    };
    let body = bench_body(
        opts,
        &scenario,
        &mut local,
        &bundle,
        with_stress,
        &mut g,
        ctl,
        &live,
    )
    .await;

    // Whatever happened: record, then remove the lab.
    let shutdown = finish_bench_lab(&mut local, &bundle, &mut g.notes, ctl, &live).await;
    let mut tool_versions = BTreeMap::new();
    tool_versions.insert(
        "agent".into(),
        g.agent_version.clone().map_or_else(
            || "unknown (the guest did not come up)".into(),
            |v| format!("guest-agent {v}"),
        ),
    );
    if with_stress {
        tool_versions.insert("stress-ng".into(), version_of(STRESS_NG, &["--version"]));
    }
    let report = DirtyBenchReport {
        schema: "bench-dirty/1".into(),
        command: std::env::args().collect(),
        started: rfc3339(started_ns),
        ended: rfc3339(now_ns()),
        lab_id: local.run_id().to_string(),
        host: HostFacts::read(local.hypervisor_version()),
        acceleration: g.acceleration.clone().filter(|_| g.booted).map(|a| a.0),
        acceleration_note: g.acceleration.clone().map(|a| a.1).unwrap_or_default(),
        guest_memory_mib,
        seconds: opts.seconds,
        working_set_mib: opts.working_set_mib,
        targets: opts.targets.clone(),
        tool_versions,
        units: UNITS.iter().map(|u| u.to_string()).collect(),
        agent: g.agent,
        stress_ng_host: g.host,
        stress_ng_guest: g.guest,
        notes: g.notes,
        error: body.as_ref().err().map(|e| format!("{e:#}")),
    };
    bundle.write_json("bench-dirty.json", &report)?;
    bundle.write("bench-dirty.txt", to_table(&report).as_bytes())?;
    shutdown.context("removing the lab")?;
    if let Err(e) = body {
        if report.agent.is_empty() && report.stress_ng_host.is_empty() {
            return Err(e.context(format!(
                "the benchmark failed; what it recorded is in {}",
                bundle.dir.display()
            )));
        }
    }
    Ok((report, bundle.dir.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use measure::tools::stress_ng::{MemrateMetrics, TestRate};
    use wire::control::IntegrityReport;
    use wire::control::WorkloadReport;

    /// `stress-ng --memrate 1 --memrate-bytes 4m --memrate-wr-mbs 64
    /// --timeout 3 --metrics` on the project's host (stress-ng 0.15.06,
    /// Debian 12), stdout and stderr together.
    const HOST_4M_64: &str =
        include_str!("../../../measure/tests/fixtures/stress-ng/host-4m-64.txt");

    /// `--memrate-bytes 64m --memrate-wr-mbs 8 --timeout 3`: one write
    /// pass takes 8 s, so no test finished and nothing is reported.
    const HOST_64M_8: &str =
        include_str!("../../../measure/tests/fixtures/stress-ng/host-64m-8.txt");

    /// `--memrate-bytes 3m --memrate-wr-mbs 1 --timeout 5`: only the
    /// first write test finished its pass (3 s), the second did not (6 s).
    const HOST_3M_1: &str = include_str!("../../../measure/tests/fixtures/stress-ng/host-3m-1.txt");

    /// The same command run in the lab's TCG guest (1 vCPU, 320 MiB)
    /// through the agent's command workload, as its report's `output`
    /// gave it back: `--memrate-bytes 64m --timeout 3`, flat out.
    const GUEST_64M_MAX: &str = "\
stress-ng: info:  [106] setting to a 3 second run per stressor
stress-ng: info:  [106] dispatching hogs: 1 memrate
stress-ng: info:  [107] memrate: using buffer size of 65536K, cache flushing disabled
stress-ng: info:  [107] memrate: cache flushing can be enabled with --memrate-flush option
stress-ng: metrc: [106] stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s CPU used per       RSS Max
stress-ng: metrc: [106]                           (secs)    (secs)    (secs)   (real time) (usr+sys time) instance (%)          (KB)
stress-ng: metrc: [106] memrate               1      3.04      2.39      0.34         0.33           0.37        89.69         67124
stress-ng: metrc: [106] miscellaneous metrics:
stress-ng: metrc: [106] memrate             1817.43 write64stoq MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             1087.67 write32stow MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate              579.73 write16stod MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate              288.36 write8stob MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             2752.59 write1024 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             3319.04 write512 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             3178.71 write256 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             4157.99 write128 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             3978.86 write64 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             3802.50 write32 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             3395.21 write16 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             2595.45 write8 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             3877.56 memset MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             1640.89 read128pf MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             4577.84 read64pf MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate              931.88 read1024 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate              939.73 read512 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate              924.33 read256 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             1428.71 read128 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             4384.55 read64 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             2609.67 read32 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate             1562.81 read16 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [106] memrate              685.70 read8 MB per sec (geometic mean of 1 instances)
stress-ng: info:  [106] successful run completed in 3.05s
";

    /// In the guest at `--memrate-wr-mbs 512`: the `rep stos` byte and
    /// word stores are too slow under TCG to reach it, and the 13th write
    /// test (memset) did not finish in 3 s.
    const GUEST_64M_512: &str = "\
stress-ng: info:  [103] setting to a 3 second run per stressor
stress-ng: info:  [103] dispatching hogs: 1 memrate
stress-ng: info:  [104] memrate: using buffer size of 65536K, cache flushing disabled
stress-ng: info:  [104] memrate: cache flushing can be enabled with --memrate-flush option
stress-ng: metrc: [103] stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s CPU used per       RSS Max
stress-ng: metrc: [103]                           (secs)    (secs)    (secs)   (real time) (usr+sys time) instance (%)          (KB)
stress-ng: metrc: [103] memrate               0      3.10      1.47      0.48         0.00           0.00        62.85         67180
stress-ng: metrc: [103] miscellaneous metrics:
stress-ng: metrc: [103] memrate              509.83 write64stoq MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [103] memrate              509.78 write32stow MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [103] memrate              420.44 write16stod MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [103] memrate              212.37 write8stob MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [103] memrate              507.38 write1024 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [103] memrate              506.43 write512 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [103] memrate              507.86 write256 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [103] memrate              507.67 write128 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [103] memrate              504.32 write64 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [103] memrate              507.68 write32 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [103] memrate              509.22 write16 MB per sec (geometic mean of 1 instances)
stress-ng: metrc: [103] memrate              506.75 write8 MB per sec (geometic mean of 1 instances)
stress-ng: info:  [103] successful run completed in 3.12s
";

    /// `--memrate-rd-mbs 0`: refused before anything runs.
    const RD_ZERO: &str = include_str!("../../../measure/tests/fixtures/stress-ng/rd-zero.txt");

    #[test]
    fn stress_runs_are_summarised() {
        let argv = stress_argv(STRESS_NG, 4, Target::Rate(64.0), 3);
        let r = stress_run("host", Target::Rate(64.0), argv, 3, 3.1, HOST_4M_64, "f");
        assert_eq!(r.error, None);
        assert_eq!(r.write_tests, 13);
        let mean = r.write_mean_mib_s.unwrap();
        assert!((mean - 61.577).abs() < 0.01, "{mean}");
        assert_eq!(r.write_min_mib_s, Some(46.69));
        assert_eq!(r.write_max_mib_s, Some(63.91));
        assert!((r.write_error_pct.unwrap() - (mean - 64.0) / 0.64).abs() < 1e-9);
        // The reads are fast on the host: the cycle rate is close to the
        // write tests' (13 / Σ 1/rate).
        let cycle = r.cycle_write_mib_s.unwrap();
        assert!(cycle > 60.0 && cycle < mean, "{cycle}");

        let r = stress_run("host", Target::Rate(8.0), vec![], 3, 3.0, HOST_64M_8, "f");
        assert_eq!(
            (r.write_tests, r.write_mean_mib_s, r.error.as_deref()),
            (0, None, None)
        );
        assert!(r.note.unwrap().contains("no write test finished"));
        assert_eq!(r.cycle_write_mib_s, None);

        // One write test finished, but not a whole cycle: no cycle rate.
        let r = stress_run("guest", Target::Rate(1.0), vec![], 5, 5.0, HOST_3M_1, "f");
        assert_eq!(r.write_mean_mib_s, Some(1.0));
        assert_eq!(r.write_error_pct, Some(0.0));
        assert_eq!(r.cycle_write_mib_s, None);

        let r = stress_run("guest", Target::Max, vec![], 3, 0.0, RD_ZERO, "");
        assert!(r.error.unwrap().contains("memrate-rd-mbs"));
    }

    #[test]
    fn guest_output_is_summarised() {
        let r = stress_run("guest", Target::Max, vec![], 3, 4.2, GUEST_64M_MAX, "f");
        assert_eq!((r.error.as_deref(), r.write_tests), (None, 13));
        assert_eq!(r.metrics.bogo_ops, Some(1));
        assert_eq!(r.metrics.cpu_pct, Some(89.69));
        assert_eq!(r.write_min_mib_s, Some(288.36), "write8stob");
        assert_eq!(r.write_max_mib_s, Some(4157.99), "write128");
        assert_eq!(r.write_error_pct, None, "no target");
        // A whole cycle ran: 13 writes over the time of all 23 tests.
        let cycle = r.cycle_write_mib_s.unwrap();
        assert!((cycle - 774.24).abs() < 0.01, "{cycle}");

        let r = stress_run(
            "guest",
            Target::Rate(512.0),
            vec![],
            3,
            4.0,
            GUEST_64M_512,
            "f",
        );
        assert_eq!(r.write_tests, 12);
        assert_eq!(r.write_min_mib_s, Some(212.37));
        let err = r.write_error_pct.unwrap();
        assert!((err - -7.07).abs() < 0.01, "{err}");
        assert_eq!(r.cycle_write_mib_s, None, "no whole cycle");
    }

    #[test]
    fn cycle_rate_counts_the_reads() {
        // 2 writes at 100, 1 read at 50 over B MiB: 2B written in
        // B/100 + B/100 + B/50 = B/25 s, so 50 MiB/s.
        let m = MemrateMetrics {
            bogo_ops: Some(1),
            tests: vec![
                TestRate {
                    test: "write64".into(),
                    mib_s: 100.0,
                },
                TestRate {
                    test: "memset".into(),
                    mib_s: 100.0,
                },
                TestRate {
                    test: "read8".into(),
                    mib_s: 50.0,
                },
            ],
            ..MemrateMetrics::default()
        };
        assert!((cycle_write_mib_s(&m).unwrap() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn targets_parse_and_print() {
        assert_eq!("8".parse::<Target>(), Ok(Target::Rate(8.0)));
        assert_eq!(" MAX ".parse::<Target>(), Ok(Target::Max));
        for bad in ["0", "-1", "1.5", "nan", "fast", "", "2000000"] {
            let e = bad.parse::<Target>().unwrap_err();
            assert!(e.contains(bad.trim()), "{e}");
        }
        assert_eq!(Target::Rate(512.0).to_string(), "512");
        assert_eq!(
            serde_json::to_string(&vec![Target::Rate(1.0), Target::Max]).unwrap(),
            "[1.0,\"max\"]"
        );
    }

    #[test]
    fn stress_command_and_timeout() {
        assert_eq!(
            stress_argv("/usr/bin/stress-ng", 64, Target::Rate(32.0), 3).join(" "),
            "/usr/bin/stress-ng --memrate 1 --memrate-bytes 64m --memrate-wr-mbs 32 --timeout 3 --metrics"
        );
        assert_eq!(
            stress_argv("/usr/bin/stress-ng", 64, Target::Max, 3).join(" "),
            "/usr/bin/stress-ng --memrate 1 --memrate-bytes 64m --timeout 3 --metrics"
        );
        // 64 MiB at 512, 128 MB/s: a pass takes 0.125, 0.5 s.
        for r in [512.0, 128.0] {
            assert_eq!(stress_timeout_s(3.0, 64, Target::Rate(r)), (3, None));
        }
        // At 32 MB/s a pass takes 2 s: with 10 % and 1 s for the start
        // (stress-ng fills its buffer first), 4 s.
        assert_eq!(stress_timeout_s(3.0, 64, Target::Rate(32.0)).0, 4);
        assert_eq!(stress_timeout_s(2.5, 64, Target::Max), (3, None));
        // At 8 MB/s a pass takes 8 s: lengthened to 8 × 1.1 + 1 → 10 s.
        let (t, note) = stress_timeout_s(3.0, 64, Target::Rate(8.0));
        assert_eq!(t, 10);
        assert!(note.unwrap().contains("instead of 3 s"));
        // At 1 MB/s it would take 64 s: not lengthened, and said so.
        let (t, note) = stress_timeout_s(3.0, 64, Target::Rate(1.0));
        assert_eq!(t, 3);
        assert!(note.unwrap().contains("no figure expected"));
    }

    fn report(per_second: Vec<f64>, achieved: f64) -> WorkloadReport {
        WorkloadReport {
            name: "d".into(),
            state: "stopped".into(),
            elapsed_ms: 3300,
            pages_written: 2534,
            achieved_mib_s: achieved,
            per_second_mib_s: per_second,
            target_mib_s: Some(3.0),
            integrity: Some(IntegrityReport {
                checked_pages: 16384,
                ..IntegrityReport::default()
            }),
            ..WorkloadReport::default()
        }
    }

    #[test]
    fn agent_runs_take_the_worst_second() {
        let r = agent_run(Target::Rate(3.0), &report(vec![3.0, 2.97, 3.06], 3.0));
        assert_eq!(r.worst_second_mib_s, Some(3.06));
        assert!((r.worst_second_error_pct.unwrap() - 2.0).abs() < 1e-9);
        assert!(r.mean_error_pct.unwrap().abs() < 1e-9);
        assert_eq!(r.corrupted_pages, Some(0));
        assert_eq!(r.window_s, 3.3);
        assert_eq!(r.error, None);
        let m = agent_run(Target::Max, &report(vec![2800.0], 2790.0));
        assert_eq!((m.worst_second_mib_s, m.mean_error_pct), (None, None));
        assert_eq!(worst_second(&[], 1.0), None);
        let mut failed = report(vec![], 0.0);
        failed.state = "failed".into();
        failed.error = Some("a writer thread ended unexpectedly".into());
        assert!(agent_run(Target::Max, &failed)
            .error
            .unwrap()
            .contains("writer"));
    }

    #[test]
    fn table_has_a_block_per_tool_and_explains_the_units() {
        let host = stress_run(
            "host",
            Target::Rate(64.0),
            stress_argv(STRESS_NG, 4, Target::Rate(64.0), 3),
            3,
            3.1,
            HOST_4M_64,
            "stress-ng/host-64.log",
        );
        let mut none = stress_run("host", Target::Rate(8.0), vec![], 3, 3.0, HOST_64M_8, "f");
        none.note = stress_timeout_s(3.0, 64, Target::Rate(1.0)).1;
        let report = DirtyBenchReport {
            schema: "bench-dirty/1".into(),
            command: vec![],
            started: String::new(),
            ended: String::new(),
            lab_id: "t".into(),
            host: HostFacts::default(),
            acceleration: Some("tcg".into()),
            acceleration_note: String::new(),
            guest_memory_mib: 320,
            seconds: 3.0,
            working_set_mib: 64,
            targets: vec![Target::Rate(64.0), Target::Max],
            tool_versions: BTreeMap::new(),
            units: vec![],
            agent: vec![
                agent_run(Target::Rate(3.0), &report(vec![3.0, 2.97, 3.06], 3.0)),
                AgentRun::failed(Target::Max, &anyhow::anyhow!("boom")),
            ],
            stress_ng_host: vec![host, none],
            stress_ng_guest: vec![],
            notes: vec!["n".into()],
            error: None,
        };
        let t = to_table(&report);
        assert!(t.contains("agent dirtier in the guest"), "{t}");
        assert!(t.contains("stress-ng --memrate on the host"), "{t}");
        assert!(t.contains("in the guest: MB/s"), "{t}");
        assert!(t.contains("not run"), "{t}");
        assert!(t.contains("    max failed: boom"), "{t}");
        assert!(t.contains("3.00 2.97 3.06"), "{t}");
        assert!(t.contains("61.58"), "{t}");
        assert!(t.contains("(no write test finished a pass)"), "{t}");
        assert!(t.contains("no figure expected"), "{t}");
        assert!(t.contains("pre-copy migration"), "{t}");
        assert!(t.contains("note: n"), "{t}");
    }
}
