//! `harness`: measure what a VM's live migration does to its users.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use harness::bench::probe::BenchOptions;
use harness::fleet::run_any;
use harness::run::{Job, RunControl, RunOptions, ScenarioSource};
use harness::scenario::{Acceleration, Nic, Scenario};
use measure::calibration::CalibrationPlan;
use std::path::{Path, PathBuf};

/// Measure what a VM's live migration does to the people using the VM.
///
/// `harness run` builds a lab of network namespaces on this machine, boots
/// a small guest running the guest agent under QEMU, migrates it back and
/// forth between two QEMU "nodes" with real pre-copy migration, measures
/// from a client how long the guest was unreachable, and writes a result
/// bundle (summary.json, summary.csv, raw records). Needs root.
#[derive(Parser, Debug)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a scenario file and write a result bundle.
    Run {
        /// The scenario (TOML), e.g. scenarios/quickstart.toml.
        scenario: PathBuf,
        /// Also write the verdict as JUnit XML to FILE, outside the bundle,
        /// for a CI system to show (one test case per check and
        /// repetition; README, "The verdict in CI").
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Check the probe against ground truth: pause the guest (QMP
    /// stop/cont) and cut its network (tap down/up) for known durations
    /// while probing, and compare each host-timed outage with the gap the
    /// probe measured. Writes calibration.json into a bundle.
    Calibrate {
        /// Scenario for the VM's shape (memory, NIC, kernel); defaults if omitted.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Probes per second.
        #[arg(long, default_value_t = 10_000)]
        rate: u32,
        /// Pause lengths in ms, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "20,100,500,2000")]
        pauses: Vec<u64>,
        /// Network cut lengths in ms, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,500")]
        cuts: Vec<u64>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Benchmarks: figures about the tools themselves, not about a
    /// migration.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
    /// Manage the lab.
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
    },
    /// Build the guest image (kernel + initramfs with the agent as /init).
    Guest {
        #[command(subcommand)]
        cmd: GuestCmd,
    },
    /// Re-derive everything in a bundle from its raw records: summary.json,
    /// summary.csv, timelines, the verdict and report.html. Works on
    /// bundles of interrupted or crashed runs too. Exits 3 when the
    /// scenario's [assert] checks fail, 0 otherwise.
    Report {
        /// The bundle folder.
        bundle: PathBuf,
        /// Also write the verdict as JUnit XML to FILE, outside the bundle,
        /// for a CI system to show (one test case per check and
        /// repetition; README, "The verdict in CI").
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Make a bundle from records a platform already wrote about
    /// migrations it ran (no lab, no root): summary.json, summary.csv and
    /// report.html as for a run, with the views the records cannot give
    /// left empty and saying why.
    Import {
        #[command(subcommand)]
        cmd: ImportCmd,
    },
    /// Check that this machine can run the lab, and say what to fix.
    Doctor,
    /// Check a result bundle against its SHA256SUMS: every listed file
    /// present and unchanged, and no other file added. Prints a report
    /// naming every bad file. Exit status: 0 passed; 1 a file was
    /// modified, missing or added, or the check could not be done (e.g. no
    /// SHA256SUMS: the run did not finish), with the reason on stderr.
    Verify {
        /// The bundle folder.
        bundle: PathBuf,
    },
    /// Compare two bundles' summary.json, metric by metric, over their
    /// completed repetitions: mean ± sd of A and B, the difference, and
    /// whether it exceeds the spread (Welch's t-test, p < 0.05). Exit
    /// status 0, or 1 if a summary cannot be read.
    Compare {
        /// Bundle A, the baseline (folder or its summary.json).
        a: PathBuf,
        /// Bundle B (folder or its summary.json).
        b: PathBuf,
        /// Print the comparison as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Options shared by the commands that run a lab.
#[derive(clap::Args, Debug)]
struct CommonArgs {
    /// Folder in which the bundle folder is created.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// The statically linked guest agent to use as the guest's /init.
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Guest kernel: a bzImage or a Debian linux-image-*.deb, overriding
    /// the scenario's `vm.kernel`.
    #[arg(long)]
    kernel: Option<String>,
    /// Acceleration, overriding the scenario's.
    #[arg(long, value_enum)]
    accel: Option<AccelArg>,
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// How fast can the probe go in the lab? Boots a guest and, from the
    /// client's namespace, sends to it at each rate in turn with three
    /// tools: this project's probe (to the agent's UDP reflector), `ping`
    /// (answered by the guest's kernel) and Debian's `irtt` (to an irtt
    /// server the guest runs; skipped if `/usr/bin/irtt` is missing). It
    /// prints, per rate and tool, the replies per second achieved, the
    /// loss, the median round trip and the client's CPU use, then each
    /// tool's highest rate with no loss; bench.json in a bundle holds the
    /// same. Takes about (3 tools x rates x seconds) plus the boot.
    Probe {
        /// Rates to try, packets per second, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1000,2000,5000,10000,15000,20000"
        )]
        rates: Vec<u32>,
        /// Seconds of sending per tool and rate.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// How well does the agent's memory dirtier hold a rate? At each
    /// target: `stress-ng --memrate` on the host, then, in a booted guest,
    /// the agent's dirtier (mean MiB/s and worst second against the
    /// target) and the same stress-ng (shipped in the initramfs, run as a
    /// command workload; skipped if `/usr/bin/stress-ng` is missing).
    /// Prints a table; bench-dirty.json in a bundle holds every figure
    /// (docs/bench.md says what each tool's MiB/s counts).
    Dirty {
        /// Target rates in MiB/s (whole numbers), comma-separated; `max`:
        /// as fast as possible.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,128,512,max")]
        targets: Vec<harness::bench::dirty::Target>,
        /// Seconds per run (stress-ng's are lengthened to one pass over
        /// its buffer where needed, up to 20 s).
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// The dirtier's working set and stress-ng's buffer, MiB.
        #[arg(long, default_value_t = 64)]
        working_set_mib: u64,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Subcommand, Debug)]
enum ImportCmd {
    /// Proxmox VE migration task logs, one repetition per log in the order
    /// given: files from /var/log/pve/tasks/ (their UPID name gives the
    /// source node), the web UI's task viewer saved as text, or the API's
    /// /tasks/{upid}/log JSON. A migration that failed is a failed
    /// repetition with the log's error; a file that is not a migration's
    /// task log stops the import, and no bundle is written.
    Proxmox {
        /// The task logs.
        #[arg(required = true, value_name = "TASKLOG")]
        tasklogs: Vec<PathBuf>,
        /// Folder in which the bundle folder is created.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// The node's offset from UTC (+HH:MM or -HH:MM): the logs print
        /// its local time without a zone.
        #[arg(long, default_value = "+00:00", allow_hyphen_values = true)]
        utc_offset: harness::import::offset::UtcOffset,
        /// The bundle's name (its folder's first part, the report's title).
        #[arg(long, default_value = "proxmox-import")]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum LabCmd {
    /// Remove the namespaces, links, QEMU processes and state files that
    /// runs which ended without cleaning up (crashed, killed) left behind.
    /// Only the lab's own are touched (names starting `lmig-`); labs of
    /// runs still going on are left alone unless `--all`. Every run does
    /// this for ended runs before it builds its own lab.
    Clean {
        /// Only the run with this id, even if its harness still runs.
        #[arg(long, conflicts_with = "all")]
        run: Option<String>,
        /// Every lab, also those of runs still going on.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
enum GuestCmd {
    /// Write initramfs.cpio for a NIC model and report what went in.
    Build {
        /// Output folder.
        #[arg(long, default_value = "target/guest")]
        out: PathBuf,
        /// NIC model whose driver the image carries.
        #[arg(long, value_enum, default_value = "virtio-net")]
        nic: NicArg,
        /// Guest kernel (bzImage) or `auto`.
        #[arg(long, default_value = "auto")]
        kernel: String,
        /// The statically linked guest agent.
        #[arg(long)]
        agent: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

impl From<AccelArg> for Acceleration {
    fn from(a: AccelArg) -> Self {
        match a {
            AccelArg::Auto => Acceleration::Auto,
            AccelArg::Kvm => Acceleration::Kvm,
            AccelArg::Tcg => Acceleration::Tcg,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum NicArg {
    VirtioNet,
    E1000,
}

fn main() {
    let cli = Cli::parse();
    let code = match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

/// Runs `job` on a tokio runtime with the lab's signal handling: the first
/// Ctrl-C (or SIGTERM, or SIGHUP when the terminal goes away) sets
/// `cancel` (the job finishes its step, writes its bundle and removes the
/// lab); a second removes the lab at once and exits 128 + the signal.
fn with_lab_runtime<F, Fut>(job: F) -> Result<i32>
where
    F: FnOnce(RunControl) -> Fut,
    Fut: std::future::Future<Output = Result<i32>>,
{
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let ctl = RunControl::default();
        let c2 = ctl.clone();
        let (mut int, mut term, mut hup) = (
            signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        );
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let (kind, name) = tokio::select! {
                    Some(()) = int.recv() => (SignalKind::interrupt(), "Ctrl-C"),
                    Some(()) = term.recv() => (SignalKind::terminate(), "SIGTERM"),
                    Some(()) = hup.recv() => (SignalKind::hangup(), "SIGHUP"),
                    else => return,
                };
                if first {
                    first = false;
                    eprintln!("\n{name}: finishing the current step, writing the bundle and removing the lab (again to stop at once)");
                    c2.interrupt(name);
                    continue;
                }
                let id = c2.lab_id.lock().ok().and_then(|g| g.clone());
                if let Some(id) = id {
                    let _ = harness::backend::local::lab::topology::clean(&harness::backend::local::lab::topology::CleanScope::Run(id));
                }
                std::process::exit(128 + kind.as_raw_value());
            }
        });
        job(ctl).await
    })
}

/// Runs a job with Ctrl-C handling, prints its outcome, and returns the
/// exit code: 0 all good; 2 some repetition failed, a calibration bound
/// did not hold or the run was interrupted; 3 the scenario's `[assert]`
/// verdict failed. With `junit`, writes the JUnit XML there once the
/// run's summary exists (an error writing it exits 1).
fn execute(opts: RunOptions, junit: Option<PathBuf>) -> Result<i32> {
    with_lab_runtime(|ctl| async move {
        let started = std::time::Instant::now();
        let outcome = run_any(&opts, &ctl).await?;
        if let Some(f) = &outcome.fleet {
            return fleet_done(
                f,
                &outcome,
                started.elapsed().as_secs_f64(),
                junit.as_deref(),
            );
        }
        let s = &outcome.summary;
        let mut ok = s.run_status == "complete" && s.failed == 0;
        if let Some(c) = &outcome.calibration {
            println!("{}", measure::calibration::to_table(c));
            ok &= c.all_within;
        } else {
            println!("{}", measure::summary::to_table(s));
        }
        println!(
            "run {} in {:.1} s: {} completed, {} failed; bundle {}",
            s.run_status,
            started.elapsed().as_secs_f64(),
            s.completed,
            s.failed,
            outcome.bundle.display()
        );
        if let Some(e) = &s.error {
            println!("error: {e}");
        }
        let code = verdict_code(s).unwrap_or(if ok { 0 } else { 2 });
        if let Some(path) = &junit {
            write_junit(path, &measure::summary::junit::to_junit(s), &outcome.bundle)?;
        }
        Ok(code)
    })
}

/// A fleet's run or report: its table, its wall time, its verdict (the
/// members' checks, each named with its member).
fn fleet_done(
    f: &measure::fleet::FleetSummary,
    outcome: &harness::run::RunOutcome,
    secs: f64,
    junit: Option<&Path>,
) -> Result<i32> {
    println!("{}", measure::fleet::to_table(f));
    println!(
        "fleet {} in {secs:.1} s: {} members, {} repetitions completed, {} failed; bundle {}",
        f.run_status,
        f.members.len(),
        f.completed,
        f.failed,
        outcome.bundle.display()
    );
    let ok = f.run_status == "complete" && f.failed == 0;
    let code = verdict_code(&outcome.summary).unwrap_or(if ok { 0 } else { 2 });
    if let Some(path) = junit {
        write_junit(path, &measure::fleet::to_junit(f), &outcome.bundle)?;
    }
    Ok(code)
}

/// `--junit FILE`: the summary's verdict as JUnit XML, written after the
/// bundle is (its SHA256SUMS never names it).
fn write_junit(path: &Path, xml: &str, bundle: &Path) -> Result<()> {
    std::fs::write(path, xml)
        .with_context(|| format!("writing JUnit XML to {}", path.display()))?;
    println!("wrote JUnit XML to {}", path.display());
    if let (Ok(f), Ok(b)) = (path.canonicalize(), bundle.canonicalize()) {
        if f.starts_with(&b) {
            println!("note: it is inside the bundle, so `harness verify` will list it as added");
        }
    }
    Ok(())
}

/// Prints the verdict, if the scenario has one; `Some(3)` when it failed.
fn verdict_code(s: &measure::summary::Summary) -> Option<i32> {
    let v = s.verdict.as_ref()?;
    print!("{v}");
    (!v.passed).then_some(3)
}

/// `harness bench probe`, with the same Ctrl-C handling as [`execute`].
fn bench_probe(opts: BenchOptions) -> Result<i32> {
    with_lab_runtime(|ctl| async move {
        let (report, bundle) = harness::bench::probe::bench_probe(&opts, &ctl).await?;
        print!("{}", harness::bench::probe::to_table(&report));
        println!("bundle {}", bundle.display());
        if let Some(e) = &report.error {
            println!("error: {e}");
            return Ok(2);
        }
        Ok(0)
    })
}

/// `harness bench dirty`, with the same Ctrl-C handling as [`execute`].
fn bench_dirty(opts: harness::bench::dirty::DirtyBenchOptions) -> Result<i32> {
    with_lab_runtime(|ctl| async move {
        let (report, bundle) = harness::bench::dirty::bench_dirty(&opts, &ctl).await?;
        print!("{}", harness::bench::dirty::to_table(&report));
        println!("bundle {}", bundle.display());
        if let Some(e) = &report.error {
            println!("error: {e}");
            return Ok(2);
        }
        Ok(0)
    })
}

/// Prints `text` and a newline; a reader that went away (`| head`) is not
/// an error.
fn print_ignoring_closed_pipe(text: &str) -> Result<()> {
    use std::io::Write as _;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing to standard output")
        }
        _ => Ok(()),
    }
}

fn real_main(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Run {
            scenario,
            junit,
            common,
        } => execute(
            RunOptions {
                scenario: ScenarioSource::File(scenario),
                job: Job::Migrations,
                out_dir: common.out,
                agent: common.agent,
                kernel: common.kernel,
                accel: common.accel.map(AccelArg::into),
                probe_rate: None,
            },
            junit,
        ),
        Cmd::Calibrate {
            scenario,
            rate,
            pauses,
            cuts,
            common,
        } => calibrate(scenario, rate, pauses, cuts, common),
        Cmd::Bench {
            cmd:
                BenchCmd::Probe {
                    rates,
                    seconds,
                    common,
                },
        } => bench_probe(BenchOptions {
            rates,
            seconds,
            accel: common.accel.map_or(Acceleration::Auto, AccelArg::into),
            out_dir: common.out,
            agent: common.agent,
            kernel: common.kernel,
        }),
        Cmd::Bench {
            cmd:
                BenchCmd::Dirty {
                    targets,
                    seconds,
                    working_set_mib,
                    common,
                },
        } => bench_dirty(harness::bench::dirty::DirtyBenchOptions {
            targets,
            seconds,
            working_set_mib,
            accel: common.accel.map_or(Acceleration::Auto, AccelArg::into),
            out_dir: common.out,
            agent: common.agent,
            kernel: common.kernel,
        }),
        Cmd::Lab {
            cmd: LabCmd::Clean { run, all },
        } => lab_clean(run, all),
        Cmd::Guest {
            cmd:
                GuestCmd::Build {
                    out,
                    nic,
                    kernel,
                    agent,
                },
        } => guest_build(&out, nic, &kernel, agent.as_deref()),
        Cmd::Verify { bundle } => {
            let report = harness::bundle::verify::verify_bundle(&bundle)?;
            print_ignoring_closed_pipe(&report.to_string())?;
            Ok(if report.passed() { 0 } else { 1 })
        }
        Cmd::Compare { a, b, json } => compare(&a, &b, json),
        Cmd::Report { bundle, junit } => report(&bundle, junit.as_deref()),
        Cmd::Import {
            cmd:
                ImportCmd::Proxmox {
                    tasklogs,
                    out,
                    utc_offset,
                    name,
                },
        } => import_proxmox(harness::import::proxmox::Options {
            logs: tasklogs,
            out,
            utc_offset,
            name,
            command: std::env::args().collect(),
        }),
        Cmd::Doctor => doctor(),
    }
}

/// `harness calibrate`: the scenario's guest (or a default one), paused
/// and cut off for known times instead of migrated.
fn calibrate(
    scenario: Option<PathBuf>,
    rate: u32,
    pauses: Vec<u64>,
    cuts: Vec<u64>,
    common: CommonArgs,
) -> Result<i32> {
    let source = match scenario {
        Some(p) => ScenarioSource::File(p),
        None => ScenarioSource::Inline(Box::new(Scenario {
            name: "calibrate".into(),
            description: "QMP stop/cont pauses and tap link cuts of known length, probed".into(),
            ..Scenario::default()
        })),
    };
    execute(
        RunOptions {
            scenario: source,
            job: Job::Calibrate(CalibrationPlan {
                pauses_ms: pauses,
                cuts_ms: cuts,
                ..CalibrationPlan::default()
            }),
            out_dir: common.out,
            agent: common.agent,
            kernel: common.kernel,
            accel: common.accel.map(AccelArg::into),
            probe_rate: Some(rate),
        },
        None,
    )
}

/// `harness lab clean`: removes what ended (or, with `--all`, every) lab left.
fn lab_clean(run: Option<String>, all: bool) -> Result<i32> {
    use harness::backend::local::lab::topology::{clean, CleanScope};
    let scope = match (run, all) {
        (Some(id), _) => CleanScope::Run(id),
        (None, true) => CleanScope::All,
        (None, false) => CleanScope::Abandoned,
    };
    let r = clean(&scope)?;
    for line in r.lines() {
        println!("{line}");
    }
    if r.is_empty() {
        println!("nothing to clean");
    }
    Ok(0)
}

/// `harness guest build`: writes the lab's guest image and says what is in it.
fn guest_build(out: &Path, nic: NicArg, kernel: &str, agent: Option<&Path>) -> Result<i32> {
    let k = harness::backend::local::guest::find_kernel(kernel)?;
    let a = harness::backend::local::guest::find_agent(agent)?;
    let nic = match nic {
        NicArg::VirtioNet => Nic::VirtioNet,
        NicArg::E1000 => Nic::E1000,
    };
    let img = harness::backend::local::guest::build_image(&k, &a, nic, out)?;
    println!(
        "kernel    {} ({})",
        img.kernel.vmlinuz.display(),
        img.kernel.release
    );
    println!("initramfs {}", img.initramfs.display());
    println!("agent     {}", img.agent.display());
    println!("modules   {}", img.modules.join(" "));
    Ok(0)
}

/// `harness compare A B [--json]`.
fn compare(a: &Path, b: &Path, json: bool) -> Result<i32> {
    let c = harness::report::compare::compare(a, b)?;
    let text = if json {
        serde_json::to_string_pretty(&c).context("serialising the comparison")?
    } else {
        c.to_string()
    };
    print_ignoring_closed_pipe(&text)?;
    Ok(0)
}

/// `harness report BUNDLE [--junit FILE]`: re-derives everything from the
/// raw records.
fn report(bundle: &Path, junit: Option<&Path>) -> Result<i32> {
    if harness::fleet::derive::is_fleet(bundle) {
        let started = std::time::Instant::now();
        let outcome = harness::fleet::derive::regenerate(bundle)?;
        if let Some(f) = &outcome.fleet {
            return fleet_done(f, &outcome, started.elapsed().as_secs_f64(), junit);
        }
    }
    let (s, rec) = harness::report::regenerate(bundle)?;
    for n in &rec.notes {
        println!("note: {n}");
    }
    println!("{}", measure::summary::to_table(&s));
    println!(
        "run {}: {} completed, {} failed; rewrote summary.json, summary.csv, timeline/ and report.html in {}",
        s.run_status,
        s.completed,
        s.failed,
        bundle.display()
    );
    if let Some(e) = &s.error {
        println!("error: {e}");
    }
    let code = verdict_code(&s).unwrap_or(0);
    if let Some(path) = junit {
        write_junit(path, &measure::summary::junit::to_junit(&s), bundle)?;
    }
    Ok(code)
}

/// `harness import proxmox`: prints what the times are, the table and
/// where the bundle is.
fn import_proxmox(opts: harness::import::proxmox::Options) -> Result<i32> {
    let imported = harness::import::proxmox::import(&opts)?;
    let s = &imported.summary;
    println!("note: {}", imported.times);
    for n in &imported.notes {
        println!("note: {n}");
    }
    println!("{}", measure::summary::to_table(s));
    println!(
        "imported {} task log(s): {} completed, {} failed; no client probe ran, so the client's view is not measured; bundle {}",
        s.repetitions.len(),
        s.completed,
        s.failed,
        imported.bundle.display()
    );
    Ok(0)
}

/// `harness doctor`: can this machine run the lab?
fn doctor() -> Result<i32> {
    let checks = harness::backend::local::doctor::run_checks();
    let mut bad = 0;
    for c in &checks {
        let mark = if c.ok {
            "ok "
        } else if c.optional {
            "-- "
        } else {
            "NO "
        };
        println!("{mark} {:<22} {}", c.what, c.detail);
        if !c.ok && !c.optional {
            bad += 1;
        }
    }
    println!(
        "{}",
        if bad == 0 {
            "this machine can run the lab".to_string()
        } else {
            format!("{bad} problem(s) to fix first")
        }
    );
    Ok(if bad == 0 { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_and_report_take_junit() {
        let junit = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.cmd) {
            Ok(Cmd::Run { junit, .. } | Cmd::Report { junit, .. }) => junit,
            other => panic!("{other:?}"),
        };
        let want = Some(PathBuf::from("ci/junit.xml"));
        assert_eq!(
            junit(&["harness", "run", "s.toml", "--junit", "ci/junit.xml"]),
            want
        );
        assert_eq!(
            junit(&["harness", "report", "b", "--junit", "ci/junit.xml"]),
            want
        );
        assert_eq!(junit(&["harness", "report", "b"]), None);
        assert!(Cli::try_parse_from(["harness", "calibrate", "--junit", "j.xml"]).is_err());
    }
}
