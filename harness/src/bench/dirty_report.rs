//! `harness bench dirty`'s figures, pure: the targets, the agent's and
//! stress-ng's runs reduced to rates, and the report and its table. The
//! shell that runs them is [`super::dirty`].

use crate::bundle::manifest::HostFacts;
use measure::tools::stress_ng::{parse_memrate, MemrateMetrics};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use wire::control::WorkloadReport;

/// Where Debian's `stress-ng` package puts the program.
pub const STRESS_NG: &str = "/usr/bin/stress-ng";
/// A stress-ng run is lengthened to at most this many seconds so that one
/// write test can finish a pass over its buffer.
pub const STRESS_MAX_S: u64 = 20;
/// Guest memory on top of the working set (kernel, initramfs with
/// stress-ng and its libraries, the agent, stress-ng's own buffer).
pub const GUEST_MEMORY_BASE_MIB: u64 = 256;

/// A target rate: MiB/s, or as fast as possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// This many MiB/s (> 0).
    Rate(f64),
    /// As fast as the tool goes (the agent's rate 0; stress-ng without
    /// `--memrate-wr-mbs`).
    Max,
}

impl Target {
    /// The rate, `None` for [`Target::Max`].
    pub fn mib_s(self) -> Option<f64> {
        match self {
            Target::Rate(r) => Some(r),
            Target::Max => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Rate(r) => write!(f, "{r}"),
            Target::Max => f.write_str("max"),
        }
    }
}

impl FromStr for Target {
    type Err = String;

    /// `max`, or a rate in MiB/s: a finite number > 0. stress-ng takes
    /// whole MB/s only, so a fraction is refused.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Target::Max);
        }
        let r: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is neither a rate in MiB/s nor `max`"))?;
        if !(r.is_finite() && r >= 1.0 && r.fract() == 0.0 && r <= 1_000_000.0) {
            return Err(format!(
                "target {s:?} must be a whole number of MiB/s from 1 to 1000000 (stress-ng's range), or `max`"
            ));
        }
        Ok(Target::Rate(r))
    }
}

impl Serialize for Target {
    /// A number, or the string `"max"`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Target::Rate(r) => s.serialize_f64(*r),
            Target::Max => s.serialize_str("max"),
        }
    }
}

/// The agent's dirtier at one target.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentRun {
    /// The target.
    pub target: Target,
    /// Seconds from the first write to the stop.
    pub window_s: f64,
    /// 4 KiB pages written.
    pub pages_written: u64,
    /// Mean over the window, MiB/s of page writes (pages × 4 KiB / s).
    pub mean_mib_s: f64,
    /// `mean_mib_s` against the target, percent (`None` for `max`).
    pub mean_error_pct: Option<f64>,
    /// The agent's rate in each whole second.
    pub per_second_mib_s: Vec<f64>,
    /// The second farthest from the target, MiB/s (`None` for `max` or
    /// when no whole second was run).
    pub worst_second_mib_s: Option<f64>,
    /// That second against the target, percent (signed).
    pub worst_second_error_pct: Option<f64>,
    /// The agent's `max_reachable_mib_s` (set when the target was not
    /// reached, and for `max`).
    pub max_reachable_mib_s: Option<f64>,
    /// Pages that failed the integrity check at the stop.
    pub corrupted_pages: Option<u64>,
    /// What failed, if the run could not be done.
    pub error: Option<String>,
}

impl AgentRun {
    /// A run that failed with `e`: no figures.
    pub(crate) fn failed(target: Target, e: &anyhow::Error) -> Self {
        Self {
            target,
            window_s: 0.0,
            pages_written: 0,
            mean_mib_s: 0.0,
            mean_error_pct: None,
            per_second_mib_s: Vec::new(),
            worst_second_mib_s: None,
            worst_second_error_pct: None,
            max_reachable_mib_s: None,
            corrupted_pages: None,
            error: Some(format!("{e:#}")),
        }
    }
}

/// `(value - target) / target`, percent.
fn error_pct(value: f64, target: f64) -> f64 {
    (value - target) * 100.0 / target
}

/// The second of `per_second` farthest from `target` and its signed error
/// in percent; `None` when there is no second.
pub fn worst_second(per_second: &[f64], target: f64) -> Option<(f64, f64)> {
    per_second
        .iter()
        .copied()
        .max_by(|a, b| (a - target).abs().total_cmp(&(b - target).abs()))
        .map(|s| (s, error_pct(s, target)))
}

/// The [`AgentRun`] a dirty workload's final report describes.
pub fn agent_run(target: Target, r: &WorkloadReport) -> AgentRun {
    let worst = target
        .mib_s()
        .and_then(|t| worst_second(&r.per_second_mib_s, t));
    AgentRun {
        target,
        window_s: r.elapsed_ms as f64 / 1000.0,
        pages_written: r.pages_written,
        mean_mib_s: r.achieved_mib_s,
        mean_error_pct: target.mib_s().map(|t| error_pct(r.achieved_mib_s, t)),
        per_second_mib_s: r.per_second_mib_s.clone(),
        worst_second_mib_s: worst.map(|w| w.0),
        worst_second_error_pct: worst.map(|w| w.1),
        max_reachable_mib_s: r.max_reachable_mib_s,
        corrupted_pages: r.integrity.as_ref().map(|i| i.corrupted_pages),
        error: (r.state == "failed").then(|| r.error.clone().unwrap_or_default()),
    }
}

/// stress-ng at one target, on the host or in the guest.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StressRun {
    /// `host` or `guest`.
    pub place: String,
    /// The target.
    pub target: Target,
    /// The command line.
    pub argv: Vec<String>,
    /// Its `--timeout`, s.
    pub timeout_s: u64,
    /// Wall time of the whole command, s (start-up included).
    pub wall_s: f64,
    /// Every figure it printed.
    pub metrics: MemrateMetrics,
    /// Write tests that reported a rate.
    pub write_tests: usize,
    /// Mean of the write tests' rates, MiB/s (`None`: no write test
    /// finished a pass).
    pub write_mean_mib_s: Option<f64>,
    /// The slowest write test, MiB/s.
    pub write_min_mib_s: Option<f64>,
    /// The fastest write test, MiB/s.
    pub write_max_mib_s: Option<f64>,
    /// `write_mean_mib_s` against the target, percent.
    pub write_error_pct: Option<f64>,
    /// Bytes written per second over whole cycles, reads and pauses
    /// included, MiB/s (see [`cycle_write_mib_s`]).
    pub cycle_write_mib_s: Option<f64>,
    /// The bundle file with stress-ng's whole output.
    pub output_file: String,
    /// Why there is no figure, or what to keep in mind.
    pub note: Option<String>,
    /// What failed.
    pub error: Option<String>,
}

/// The number of seconds stress-ng runs at `target`: `seconds` rounded up,
/// lengthened to one write pass over the buffer (plus 10 % and 1 s) when
/// that is longer and at most [`STRESS_MAX_S`]; with a note when no figure
/// can come (a pass takes longer than that).
pub fn stress_timeout_s(
    seconds: f64,
    working_set_mib: u64,
    target: Target,
) -> (u64, Option<String>) {
    let base = (seconds.ceil() as u64).max(1);
    let Some(rate) = target.mib_s() else {
        return (base, None);
    };
    let pass_s = working_set_mib as f64 / rate;
    let need = (pass_s * 1.1 + 1.0).ceil() as u64;
    if need <= base {
        (base, None)
    } else if need <= STRESS_MAX_S.max(base) {
        (
            need,
            Some(format!(
                "run for {need} s instead of {base} s: stress-ng reports a test only after a whole pass, and one pass over {working_set_mib} MiB at {rate} MB/s takes {pass_s:.1} s"
            )),
        )
    } else {
        (
            base,
            Some(format!(
                "no figure expected: stress-ng reports a test only after a whole pass, and one pass over {working_set_mib} MiB at {rate} MB/s takes {pass_s:.0} s (more than {STRESS_MAX_S} s)"
            )),
        )
    }
}

/// The stress-ng command line for one run.
pub fn stress_argv(
    program: &str,
    working_set_mib: u64,
    target: Target,
    timeout_s: u64,
) -> Vec<String> {
    let mut v: Vec<String> = vec![
        program.into(),
        "--memrate".into(),
        "1".into(),
        "--memrate-bytes".into(),
        format!("{working_set_mib}m"),
    ];
    if let Some(r) = target.mib_s() {
        v.push("--memrate-wr-mbs".into());
        v.push(format!("{}", r.round() as u64));
    }
    v.extend([
        "--timeout".into(),
        timeout_s.to_string(),
        "--metrics".into(),
    ]);
    v
}

/// Bytes written per second over whole cycles: each cycle runs every test
/// once over the same buffer of B MiB, test `i` taking B / rate_i s, so
/// the cycle writes (write tests × B) MiB in Σ B / rate_i s; B cancels
/// out. Only meaningful once a whole cycle ran (`bogo_ops` ≥ 1: every test
/// reported), else `None`.
pub fn cycle_write_mib_s(m: &MemrateMetrics) -> Option<f64> {
    if m.bogo_ops.unwrap_or(0) == 0 || m.tests.iter().any(|t| t.mib_s <= 0.0) {
        return None;
    }
    let writes = m.tests.iter().filter(|t| t.is_write()).count();
    let inv: f64 = m.tests.iter().map(|t| 1.0 / t.mib_s).sum();
    (writes > 0 && inv > 0.0).then(|| writes as f64 / inv)
}

/// The derived figures of a stress-ng run from its output.
pub fn stress_run(
    place: &str,
    target: Target,
    argv: Vec<String>,
    timeout_s: u64,
    wall_s: f64,
    output: &str,
    output_file: &str,
) -> StressRun {
    let mut run = StressRun {
        place: place.into(),
        target,
        argv,
        timeout_s,
        wall_s,
        metrics: MemrateMetrics::default(),
        write_tests: 0,
        write_mean_mib_s: None,
        write_min_mib_s: None,
        write_max_mib_s: None,
        write_error_pct: None,
        cycle_write_mib_s: None,
        output_file: output_file.into(),
        note: None,
        error: None,
    };
    match parse_memrate(output) {
        Err(e) => run.error = Some(format!("{e:#}")),
        Ok(m) => {
            let writes: Vec<f64> = m
                .tests
                .iter()
                .filter(|t| t.is_write())
                .map(|t| t.mib_s)
                .collect();
            run.write_tests = writes.len();
            if !writes.is_empty() {
                let mean = writes.iter().sum::<f64>() / writes.len() as f64;
                run.write_mean_mib_s = Some(mean);
                run.write_min_mib_s = writes.iter().copied().min_by(f64::total_cmp);
                run.write_max_mib_s = writes.iter().copied().max_by(f64::total_cmp);
                run.write_error_pct = target.mib_s().map(|t| error_pct(mean, t));
            } else {
                run.note = Some(format!(
                    "no write test finished a pass over the buffer in {timeout_s} s, so stress-ng gave no rate"
                ));
            }
            run.cycle_write_mib_s = cycle_write_mib_s(&m);
            run.metrics = m;
        }
    }
    run
}

/// Everything `bench-dirty.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct DirtyBenchReport {
    /// `bench-dirty/1`.
    pub schema: String,
    /// The command line.
    pub command: Vec<String>,
    /// When it started (UTC).
    pub started: String,
    /// When it ended (UTC).
    pub ended: String,
    /// The lab's run id.
    pub lab_id: String,
    /// The host.
    pub host: HostFacts,
    /// `kvm` or `tcg` (`None` if the guest never came up).
    pub acceleration: Option<String>,
    /// Why that acceleration.
    pub acceleration_note: String,
    /// The guest's memory, MiB (1 vCPU).
    pub guest_memory_mib: u64,
    /// Seconds per run (the agent's; stress-ng's see `timeout_s`).
    pub seconds: f64,
    /// The agent's working set and stress-ng's buffer, MiB.
    pub working_set_mib: u64,
    /// Targets, in order.
    pub targets: Vec<Target>,
    /// Versions of the tools compared.
    pub tool_versions: BTreeMap<String, String>,
    /// What each tool's rate counts.
    pub units: Vec<String>,
    /// The agent's dirtier in the guest, one per target.
    pub agent: Vec<AgentRun>,
    /// stress-ng on the host, one per target.
    pub stress_ng_host: Vec<StressRun>,
    /// stress-ng in the guest, one per target.
    pub stress_ng_guest: Vec<StressRun>,
    /// Things a reader should know.
    pub notes: Vec<String>,
    /// What stopped the benchmark early, if anything.
    pub error: Option<String>,
}

/// What each tool's rate counts (printed under the table, kept in the
/// JSON).
pub const UNITS: [&str; 3] = [
    "agent: page writes, i.e. 4 KiB pages rewritten per second x 4 KiB (MiB/s); with `sequential` every write in a second is to a distinct page, so this is the page-dirtying rate pre-copy migration has to re-send",
    "stress-ng: bytes written per second of each write test (its MB = MiB), each test one whole pass over the buffer, paced per 1 MiB chunk; reads between write tests and the pauses are not counted. cycle = bytes written per second over whole cycles (13 write + 10 read tests), reads included",
    "same MiB/s, different things: a sequential writer dirties (bytes written / 4 KiB) pages, but migration sees a page dirtied once per sync however often it is written, and nothing while stress-ng reads",
];

pub(crate) fn opt(v: Option<f64>, width: usize, prec: usize) -> String {
    v.map_or_else(
        || format!("{:>width$}", "-"),
        |x| format!("{x:>width$.prec$}"),
    )
}

/// The table printed at the end: one block per tool, one row per target,
/// then what the units mean and the notes.
pub fn to_table(report: &DirtyBenchReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "working set {} MiB, {} s per run, guest {} ({} MiB, 1 vCPU)\n\n",
        report.working_set_mib,
        report.seconds,
        report.acceleration.as_deref().unwrap_or("not booted"),
        report.guest_memory_mib
    ));
    out.push_str(
        "agent dirtier in the guest (sequential, 1 thread): MiB/s of 4 KiB pages dirtied\n",
    );
    out.push_str(&format!(
        "{:>7} {:>9} {:>7} {:>12} {:>9} {:>8} {:>9}  {}\n",
        "target", "mean", "err%", "worst_second", "err%", "window_s", "corrupted", "per second"
    ));
    for r in &report.agent {
        if let Some(e) = &r.error {
            out.push_str(&format!("{:>7} failed: {e}\n", r.target.to_string()));
            continue;
        }
        let secs: Vec<String> = r
            .per_second_mib_s
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect();
        let mut line = format!(
            "{:>7} {:>9.2} {} {} {} {:>8.2} {}  {}",
            r.target.to_string(),
            r.mean_mib_s,
            opt(r.mean_error_pct, 7, 2),
            opt(r.worst_second_mib_s, 12, 2),
            opt(r.worst_second_error_pct, 9, 2),
            r.window_s,
            r.corrupted_pages
                .map_or_else(|| format!("{:>9}", "-"), |c| format!("{c:>9}")),
            secs.join(" ")
        );
        if let (Target::Max, Some(m)) = (r.target, r.max_reachable_mib_s) {
            line.push_str(&format!("  (best half of the seconds: {m:.1})"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for (title, runs) in [
        ("stress-ng --memrate on the host", &report.stress_ng_host),
        ("stress-ng --memrate in the guest", &report.stress_ng_guest),
    ] {
        out.push_str(&format!(
            "\n{title}: MB/s (= MiB/s) written per write test\n"
        ));
        if runs.is_empty() {
            out.push_str("  not run (see the notes)\n");
            continue;
        }
        out.push_str(&format!(
            "{:>7} {:>6} {:>6} {:>9} {:>7} {:>9} {:>9} {:>9} {:>6}\n",
            "target", "run_s", "tests", "write", "err%", "min", "max", "cycle", "cpu%"
        ));
        for r in runs {
            if let Some(e) = &r.error {
                out.push_str(&format!("{:>7} failed: {e}\n", r.target.to_string()));
                continue;
            }
            let line = format!(
                "{:>7} {:>6} {:>6} {} {} {} {} {} {}",
                r.target.to_string(),
                r.timeout_s,
                r.write_tests,
                opt(r.write_mean_mib_s, 9, 2),
                opt(r.write_error_pct, 7, 2),
                opt(r.write_min_mib_s, 9, 2),
                opt(r.write_max_mib_s, 9, 2),
                opt(r.cycle_write_mib_s, 9, 2),
                opt(r.metrics.cpu_pct, 6, 1),
            );
            out.push_str(&line);
            if r.write_tests == 0 {
                out.push_str("  (no write test finished a pass)");
            }
            out.push('\n');
        }
    }
    out.push('\n');
    for u in UNITS {
        out.push_str(&format!("{u}\n"));
    }
    for r in report.stress_ng_host.iter().chain(&report.stress_ng_guest) {
        if let Some(n) = &r.note {
            out.push_str(&format!(
                "note: stress-ng {} at {}: {n}\n",
                r.place, r.target
            ));
        }
    }
    for n in &report.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
