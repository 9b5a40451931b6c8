//! What the whole page needs, read once from the [`ReportInput`]: the
//! scenario's facts, and each repetition with its record, timeline and
//! probe replies.

use crate::report::html::input::ReportInput;
use measure::migration::record::{RepRecord, RepStatus};
use measure::probe::record::ProbeRecord;
use measure::summary::RepSummary;
use measure::timeline::RepTimeline;

/// The gap threshold when the scenario cannot be read (the scenario default).
const DEFAULT_THRESHOLD_MS: f64 = 5.0;

/// One repetition with what belongs to it.
pub(super) struct RepView<'a> {
    /// Its summary.
    pub s: &'a RepSummary,
    /// Its raw record, if the bundle has one.
    pub rec: Option<&'a RepRecord>,
    /// Its timeline, if one was given.
    pub tl: Option<&'a RepTimeline>,
    /// Time zero of its plots: `migrate`, else the window's start.
    pub t0_ns: i64,
    /// Whether `t0_ns` is the `migrate` command.
    pub t0_is_migrate: bool,
    /// `(rx ns, RTT ms)` of replies in the window, by receive time.
    pub replies: Vec<(i64, f64)>,
    /// Send times of probes in the window never answered.
    pub lost: Vec<i64>,
}

/// What the whole page needs, read once.
pub(super) struct Ctx<'a> {
    /// The records and summary.
    pub input: &'a ReportInput<'a>,
    /// The scenario's name.
    pub name: String,
    /// The scenario's description (may be empty).
    pub description: String,
    /// Reply gaps over this are counted, ms.
    pub threshold_ms: f64,
    /// Time between probes, ms, when the probe ran.
    pub interval_ms: Option<f64>,
    /// The swept parameter, when the scenario sweeps.
    pub sweep_param: Option<String>,
    /// Every repetition in the summary, in its order.
    pub reps: Vec<RepView<'a>>,
    /// What the page cannot show, for the list near the top.
    pub missing: Vec<String>,
    /// What was read, when the bundle is an import (`harness import`).
    pub imported: Option<Imported>,
}

/// What an imported bundle's manifest says it was made from.
pub(super) struct Imported {
    /// The kind of record (`Proxmox VE migration task logs`).
    pub from: String,
    /// The files' names, in repetition order.
    pub files: Vec<String>,
    /// What the records' times are, in a sentence.
    pub times: String,
    /// Why there is no client view.
    pub no_probe: String,
}

/// What the page takes from `scenario.toml`.
struct ScenarioFacts {
    name: String,
    description: String,
    threshold_ms: f64,
    sweep_param: Option<String>,
}

/// The value at `path` in a TOML table.
fn toml_get<'t>(v: &'t toml::Value, path: &[&str]) -> Option<&'t toml::Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

impl<'a> Ctx<'a> {
    /// Reads everything the page needs from `input`, noting what is missing.
    pub fn new(input: &'a ReportInput<'a>) -> Self {
        let mut missing = Vec::new();
        let sc = scenario_facts(input, &mut missing);
        let probe = input.probe;
        let interval_ms = probe
            .filter(|p| p.rate_hz > 0)
            .map(|p| 1000.0 / f64::from(p.rate_hz));
        let imported = imported(input.manifest);
        if probe.is_none() {
            let why = imported
                .as_ref()
                .map_or("no probe record", |i| i.no_probe.as_str());
            missing.push(format!(
                "{why}: the client's view (round-trip times, reply gaps, outages, loss) is missing from every plot and table"
            ));
        }
        let replied = replied_mask(probe);
        if input.summary.repetitions.is_empty() {
            missing.push("no repetition ran: there is nothing to plot or tabulate".into());
        }
        if input.reps.len() != input.summary.repetitions.len()
            || input.timelines.len() != input.reps.len()
        {
            missing.push(format!(
                "the summary lists {} repetitions, the bundle has {} raw records and {} timelines: repetitions without a record or timeline are shown from the summary alone",
                input.summary.repetitions.len(),
                input.reps.len(),
                input.timelines.len()
            ));
        }
        let reps = input
            .summary
            .repetitions
            .iter()
            .map(|s| rep_view(input, s, &replied))
            .collect();
        Ctx {
            input,
            name: sc.name,
            description: sc.description,
            threshold_ms: sc.threshold_ms,
            interval_ms,
            sweep_param: sc.sweep_param,
            reps,
            missing,
            imported,
        }
    }

    /// The clock the plots' times are on, for a caption.
    pub fn clock_name(&self) -> &'static str {
        if self.imported.is_some() {
            "the platform node's clock, as its records stamped it"
        } else {
            "host clock"
        }
    }

    /// The repetitions that completed.
    pub fn completed(&self) -> Vec<&RepView<'a>> {
        self.reps
            .iter()
            .filter(|r| r.s.status == RepStatus::Completed)
            .collect()
    }
}

/// What an imported bundle was made from, if its manifest has an
/// `import` table.
fn imported(m: &serde_json::Value) -> Option<Imported> {
    let imp = m.get("import")?;
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).unwrap_or("").to_string();
    let files = imp
        .get("files")
        .and_then(|f| f.as_array())
        .map(|a| a.iter().map(|f| text(f.get("name"))).collect())
        .unwrap_or_default();
    let no_probe = m
        .get("client_not_measured")
        .and_then(|v| v.as_str())
        .unwrap_or("imported: no client probe ran");
    Some(Imported {
        from: text(imp.get("from")),
        files,
        times: text(imp.get("times")),
        no_probe: no_probe.to_string(),
    })
}

/// The scenario's name, description, gap threshold and swept parameter,
/// noting in `missing` when `scenario.toml` cannot be read.
fn scenario_facts(input: &ReportInput<'_>, missing: &mut Vec<String>) -> ScenarioFacts {
    let scenario = match toml::from_str::<toml::Value>(input.scenario_toml) {
        Ok(v) => Some(v),
        Err(e) => {
            missing.push(format!(
                "scenario.toml could not be read ({}); the gap threshold is taken as {DEFAULT_THRESHOLD_MS} ms",
                e.message()
            ));
            None
        }
    };
    let sget = |path: &[&str]| scenario.as_ref().and_then(|v| toml_get(v, path));
    let name = if input.summary.scenario.is_empty() {
        sget(&["name"])
            .and_then(|v| v.as_str())
            .unwrap_or("(unnamed)")
            .to_string()
    } else {
        input.summary.scenario.clone()
    };
    let description = sget(&["description"])
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let threshold_ms = sget(&["probe", "gap_threshold_ms"])
        .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
        .filter(|v| *v > 0.0)
        .unwrap_or(DEFAULT_THRESHOLD_MS);
    let sweep_param = sget(&["sweep", "parameter"])
        .and_then(|v| v.as_str())
        .map(str::to_string);
    ScenarioFacts {
        name,
        description,
        threshold_ms,
        sweep_param,
    }
}

/// For each probe sent (by sequence number), whether a reply came back.
fn replied_mask(probe: Option<&ProbeRecord>) -> Vec<bool> {
    probe.map_or_else(Vec::new, |p| {
        let mut v = vec![false; p.send_ns.len()];
        for r in &p.replies {
            if let Some(x) = usize::try_from(r.seq).ok().and_then(|i| v.get_mut(i)) {
                *x = true;
            }
        }
        v
    })
}

/// Repetition `s` with its record, timeline, time zero, and the probe's
/// replies and losses in its window.
fn rep_view<'a>(input: &'a ReportInput<'a>, s: &'a RepSummary, replied: &[bool]) -> RepView<'a> {
    let idx = input.reps.iter().position(|r| r.repetition == s.repetition);
    let rec = idx.and_then(|i| input.reps.get(i));
    let tl = idx.and_then(|i| input.timelines.get(i));
    let (t0_ns, t0_is_migrate) = match rec {
        Some(r) => r
            .migration
            .migrate_cmd_ns
            .map_or((r.window_start_ns, false), |t| (t, true)),
        None => (0, false),
    };
    let (mut replies, mut lost) = (Vec::new(), Vec::new());
    if let (Some(r), Some(p)) = (rec, input.probe) {
        let (a, b) = (r.window_start_ns, r.window_end_ns);
        for x in p.replies.iter().filter(|x| x.rx_ns >= a && x.rx_ns <= b) {
            let sent = usize::try_from(x.seq)
                .ok()
                .and_then(|i| p.send_ns.get(i))
                .copied()
                .unwrap_or(x.send_ns);
            replies.push((x.rx_ns, (x.rx_ns - sent) as f64 / 1e6));
        }
        replies.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
        for (seq, &t) in p.send_ns.iter().enumerate() {
            if t >= a && t <= b && !replied.get(seq).copied().unwrap_or(false) {
                lost.push(t);
            }
        }
    }
    RepView {
        s,
        rec,
        tl,
        t0_ns,
        t0_is_migrate,
        replies,
        lost,
    }
}
