//! The HTML of `report.html`: sections in reading order, each saying what
//! it could not show and why. All text from the bundle goes through
//! [`esc`]; the only markup is ours.

use super::plots::{self, BreakdownRow, Group, ThreeWays, Timeline};
use super::{esc, num, ReportInput};
use measure::migration::marker::MarkerKind;
use measure::migration::record::{RepRecord, RepStatus};
use measure::summary::RepSummary;
use measure::timeline::{GapAttribution, OutageBreakdown, RepTimeline};
use plotters::style::RGBColor;
use serde_json::Value;
use std::fmt::Write as _;

/// About this many reply points at most in a repetition's full timeline,
/// and in its zoom on the outage: ~0.3 MB of SVG per repetition, so a
/// 30-repetition 10 kHz run stays under 10 MB.
const TIMELINE_BUDGET: usize = 2500;
const ZOOM_BUDGET: usize = 1200;
/// The gap threshold when the scenario cannot be read (the scenario default).
const DEFAULT_THRESHOLD_MS: f64 = 5.0;
/// The marker of the client seeing the service back, by its names old and
/// new (bundles analysed before the outage measure was renamed).
const RECOVERED: [&str; 2] = ["client recovered", "first prompt reply"];

const CSS: &str = r#"
:root { --fg:#1d1d1f; --muted:#5f6368; --line:#d9d9de; --bg:#ffffff; --soft:#f5f6f8;
  --ok:#0b7a3e; --okbg:#e6f4ea; --bad:#b3261e; --badbg:#fce8e6; --warnbg:#fff4d6; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 36px 0 10px; padding-top: 10px; border-top: 2px solid var(--line); }
h3 { font-size: 16px; margin: 18px 0 6px; }
p { margin: 6px 0; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 13px; }
.kicker { color: var(--muted); font-size: 13px; letter-spacing: .04em; text-transform: uppercase; margin: 0; }
.desc { color: var(--muted); margin: 2px 0 12px; }
.banner { border-radius: 8px; padding: 12px 16px; margin: 12px 0; font-size: 16px; }
.banner.bad { background: var(--badbg); border: 2px solid var(--bad); color: #601410; }
.banner.warn { background: var(--warnbg); border: 1px solid #e0b000; }
.chip { display:inline-block; padding: 1px 10px; border-radius: 12px; font-weight: 600; font-size: 13px; }
.chip.ok { background: var(--okbg); color: var(--ok); }
.chip.bad { background: var(--badbg); color: var(--bad); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 10px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.clock { font-size: 13px; color: var(--muted); }
.verdict { display: flex; gap: 22px; align-items: flex-start; border-radius: 10px; padding: 14px 18px; margin: 18px 0; }
.verdict.pass { background: var(--okbg); border: 2px solid var(--ok); }
.verdict.fail { background: var(--badbg); border: 2px solid var(--bad); }
.verdict .big { font-size: 40px; font-weight: 800; letter-spacing: .03em; min-width: 120px; }
.verdict.pass .big { color: var(--ok); }
.verdict.fail .big { color: var(--bad); }
.verdict ul { list-style: none; padding: 0; margin: 4px 0 0; }
.verdict li { margin: 3px 0; }
.mark { display:inline-block; width: 3.2em; font-weight: 700; }
.mark.ok { color: var(--ok); }
.mark.bad { color: var(--bad); }
.explain { background: var(--soft); border-left: 4px solid #0072B2; padding: 10px 16px; margin: 14px 0; }
.missing { color: #7a4b00; background: var(--warnbg); border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
ul.missing-list { margin: 4px 0; }
.grid3 { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 12px; }
.narrow { max-width: 640px; }
figure.plot { margin: 10px 0 18px; }
figure.plot svg { max-width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.l, th.l { text-align: left; }
tr.failed td { background: #fff3f2; }
.scroll { overflow-x: auto; }
details { margin: 10px 0; }
pre { background: var(--soft); padding: 10px 12px; border-radius: 6px; overflow-x: auto; }
footer { margin-top: 40px; border-top: 2px solid var(--line); padding-top: 10px; color: var(--muted); font-size: 14px; }
"#;

/// One repetition with what belongs to it.
struct RepView<'a> {
    s: &'a RepSummary,
    rec: Option<&'a RepRecord>,
    tl: Option<&'a RepTimeline>,
    /// Time zero of its plots: `migrate`, else the window's start.
    t0_ns: i64,
    t0_is_migrate: bool,
    /// `(rx ns, RTT ms)` of replies in the window, by receive time.
    replies: Vec<(i64, f64)>,
    /// Send times of probes in the window never answered.
    lost: Vec<i64>,
}

/// What the whole page needs, read once.
struct Ctx<'a> {
    input: &'a ReportInput<'a>,
    name: String,
    description: String,
    threshold_ms: f64,
    interval_ms: Option<f64>,
    sweep_param: Option<String>,
    reps: Vec<RepView<'a>>,
    /// What the page cannot show, for the list near the top.
    missing: Vec<String>,
}

fn toml_get<'t>(v: &'t toml::Value, path: &[&str]) -> Option<&'t toml::Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn mstr(m: &Value, pointer: &str) -> Option<String> {
    match m.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl<'a> Ctx<'a> {
    fn new(input: &'a ReportInput<'a>) -> Self {
        let mut missing = Vec::new();
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
        let probe = input.probe;
        let interval_ms = probe
            .filter(|p| p.rate_hz > 0)
            .map(|p| 1000.0 / f64::from(p.rate_hz));
        if probe.is_none() {
            missing.push(
                "no probe record: the client's view (round-trip times, reply gaps, outages, loss) is missing from every plot and table".into(),
            );
        }
        let replied: Vec<bool> = probe.map_or_else(Vec::new, |p| {
            let mut v = vec![false; p.send_ns.len()];
            for r in &p.replies {
                if let Some(x) = usize::try_from(r.seq).ok().and_then(|i| v.get_mut(i)) {
                    *x = true;
                }
            }
            v
        });
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
            .map(|s| {
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
                if let (Some(r), Some(p)) = (rec, probe) {
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
            })
            .collect();
        Ctx {
            input,
            name,
            description,
            threshold_ms,
            interval_ms,
            sweep_param,
            reps,
            missing,
        }
    }
}

/// The whole page.
pub(super) fn render(input: &ReportInput<'_>) -> String {
    let mut cx = Ctx::new(input);
    let mut body = String::new();
    header(&mut body, &cx);
    verdict(&mut body, &cx);
    three_downtimes(&mut body);
    let mut rest = String::new();
    across(&mut rest, &cx);
    per_rep(&mut rest, &mut cx);
    rep_table(&mut rest, &cx);
    footer(&mut rest, &cx);
    // The list of what is missing goes near the top but is known only
    // after every section has looked.
    let mut h = String::with_capacity(body.len() + rest.len() + 8192);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{} — live migration report</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&cx.name)
    );
    h.push_str(&body);
    if !cx.missing.is_empty() {
        h.push_str("<section id=\"missing\" class=\"missing\"><b>Not in this report:</b><ul class=\"missing-list\">");
        for m in &cx.missing {
            let _ = write!(h, "<li>{}</li>", esc(m));
        }
        h.push_str("</ul></section>\n");
    }
    h.push_str(&rest);
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn header(h: &mut String, cx: &Ctx<'_>) {
    let s = cx.input.summary;
    let m = cx.input.manifest;
    h.push_str("<header>\n<p class=\"kicker\">live-migration-lab · what a live migration did to the VM's users</p>\n");
    let _ = writeln!(h, "<h1>{}</h1>", esc(&cx.name));
    if cx.description.trim().is_empty() {
        h.push_str("<p class=\"desc\">(the scenario has no description)</p>\n");
    } else {
        let _ = writeln!(h, "<p class=\"desc\">{}</p>", esc(&cx.description));
    }
    if s.run_status != "complete" {
        let _ = writeln!(
            h,
            "<div class=\"banner bad\" id=\"run-status\"><b>Run {}</b>{}</div>",
            esc(&s.run_status.to_uppercase()),
            s.error
                .as_deref()
                .map_or(String::new(), |e| format!(": {}", esc(e)))
        );
    }
    h.push_str("<dl class=\"facts\">\n");
    let mut fact = |k: &str, v: String| {
        let _ = writeln!(h, "<dt>{}</dt><dd>{v}</dd>", esc(k));
    };
    let chip = if s.run_status == "complete" {
        "ok"
    } else {
        "bad"
    };
    fact(
        "run status",
        format!("<span class=\"chip {chip}\">{}</span>", esc(&s.run_status)),
    );
    let interrupted = s
        .repetitions
        .iter()
        .filter(|r| r.status == RepStatus::Interrupted)
        .count();
    let mut reps = format!(
        "{} ran: {} completed, {} failed",
        s.repetitions.len(),
        s.completed,
        s.failed
    );
    if interrupted > 0 {
        let _ = write!(reps, ", {interrupted} interrupted");
    }
    fact("repetitions", esc(&reps));
    let accel = s
        .acceleration
        .clone()
        .or_else(|| mstr(m, "/acceleration"))
        .unwrap_or_else(|| "unknown (the VM never came up)".into());
    let note = mstr(m, "/acceleration_note").map_or(String::new(), |n| format!(" — {}", esc(&n)));
    fact("acceleration", format!("<b>{}</b>{note}", esc(&accel)));
    fact(
        "QEMU",
        esc(&mstr(m, "/host/qemu_version").unwrap_or_else(|| "not recorded".into())),
    );
    let host: Vec<String> = [
        mstr(m, "/host/cpu"),
        mstr(m, "/host/cpus").map(|c| format!("{c} CPUs")),
        mstr(m, "/host/kernel").map(|k| format!("kernel {k}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    fact(
        "host",
        esc(&if host.is_empty() {
            "not recorded".into()
        } else {
            host.join(", ")
        }),
    );
    if let Some(g) = mstr(m, "/guest/kernel/release") {
        fact("guest kernel", esc(&g));
    }
    if let Some(b) = mstr(m, "/backend") {
        fact("backend", esc(&b));
    }
    let probe = match (cx.input.probe, cx.interval_ms) {
        (Some(p), _) => format!(
            "{} probes/s ({} ms apart), {} B, gap threshold {} ms",
            p.rate_hz,
            cx.interval_ms.map_or("?".into(), plots::short),
            p.payload_len,
            plots::short(cx.threshold_ms)
        ),
        (None, _) => "no probe record".into(),
    };
    fact("client probe", esc(&probe));
    let when = match (mstr(m, "/started"), mstr(m, "/ended")) {
        (Some(a), Some(b)) => format!("{a} → {b}"),
        (Some(a), None) => format!("{a} → (no end recorded)"),
        _ => "not recorded".into(),
    };
    fact("run", esc(&when));
    let tool = [
        mstr(m, "/tool_version"),
        mstr(m, "/tool_git").map(|g| format!("git {g}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    if !tool.is_empty() {
        fact("harness", esc(&tool));
    }
    if let Some(id) = mstr(m, "/run_id") {
        fact("run id", esc(&id));
    }
    h.push_str("</dl>\n");
    match &s.clock {
        Some(c) => {
            let _ = writeln!(
                h,
                "<p class=\"clock\" id=\"clock\"><b>Clocks.</b> {} (client offset {} ms ± {} ms). Guest clock: {}.</p>",
                esc(&c.method),
                num(Some(c.client_offset_ns as f64 / 1e6), 3),
                num(Some(c.client_uncertainty_ns as f64 / 1e6), 3),
                esc(&c.guest)
            );
        }
        None => h.push_str(
            "<p class=\"clock missing\" id=\"clock\">The summary does not say how clocks were aligned.</p>\n",
        ),
    }
    h.push_str("</header>\n");
}

fn verdict(h: &mut String, cx: &Ctx<'_>) {
    let Some(v) = &cx.input.summary.verdict else {
        h.push_str("<p id=\"verdict\" class=\"missing\">No verdict: the scenario has no <code>[assert]</code> checks.</p>\n");
        return;
    };
    let (class, word) = if v.passed {
        ("pass", "PASS")
    } else {
        ("fail", "FAIL")
    };
    let failed = v.checks.iter().filter(|c| !c.passed).count();
    let _ = write!(
        h,
        "<section id=\"verdict\" class=\"verdict {class}\"><div class=\"big\">{word}</div><div><b>{}</b><ul>",
        if failed == 0 {
            format!("all {} checks held", v.checks.len())
        } else {
            format!("{failed} of {} checks failed", v.checks.len())
        }
    );
    for c in &v.checks {
        let (mc, mw) = if c.passed {
            ("ok", "pass")
        } else {
            ("bad", "FAIL")
        };
        let _ = write!(
            h,
            "<li><span class=\"mark {mc}\">{mw}</span> <code>{}</code> ({}): {}</li>",
            esc(&c.check),
            esc(&c.scope),
            esc(&c.message)
        );
    }
    h.push_str("</ul></div></section>\n");
}

fn three_downtimes(h: &mut String) {
    h.push_str(
        "<section id=\"three-downtimes\" class=\"explain\"><b>The three downtimes.</b> \
QEMU's downtime is timed by the source from stopping the guest to sending its last byte, so it leaves out the destination resuming the guest and the network learning where the guest went. \
STOP → RESUME runs from the source's STOP event to the destination's RESUME event, the time in which the guest's CPUs run nowhere, so it is at least QEMU's downtime. \
The client's outage ends only when the probe's replies flow again, after RESUME, QEMU's announce and a round trip, so as a rule QEMU's downtime ≤ STOP → RESUME ≤ the client's outage, and the last is what a user feels (to within one probe interval).</section>\n",
    );
}

/// A figure with an id, a title, the plot (or why there is none) and a
/// caption.
fn figure(h: &mut String, id: &str, title: &str, plot: Result<String, String>, caption: &str) {
    let _ = write!(
        h,
        "<figure class=\"plot\" id=\"{}\"><h3>{}</h3>",
        esc(id),
        esc(title)
    );
    match plot {
        Ok(svg) => {
            h.push_str(&svg);
            if !caption.is_empty() {
                let _ = write!(h, "<figcaption>{caption}</figcaption>");
            }
        }
        // Without the plot its caption would describe nothing.
        Err(why) => {
            let _ = write!(h, "<p class=\"missing\">{}</p>", esc(&why));
        }
    }
    h.push_str("</figure>\n");
}

fn drawn(r: anyhow::Result<String>) -> Result<String, String> {
    r.map_err(|e| format!("plot not drawn: {e:#}"))
}

fn completed<'b>(cx: &'b Ctx<'_>) -> Vec<&'b RepView<'b>> {
    cx.reps
        .iter()
        .filter(|r| r.s.status == RepStatus::Completed)
        .collect()
}

/// Groups of completed repetitions: by swept value when the scenario
/// sweeps, else by direction, with "all" first when there are several.
fn groups(cx: &Ctx<'_>, value: impl Fn(&RepSummary) -> Option<f64>) -> Vec<Group> {
    let done = completed(cx);
    let key = |r: &RepSummary| -> String {
        match &r.guest.sweep_value {
            Some(v) => match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            None => r.direction.clone(),
        }
    };
    // First-appearance order: a sweep's values in the order they ran.
    let mut keys: Vec<String> = Vec::new();
    for r in &done {
        let k = key(r.s);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut out = Vec::new();
    if keys.len() > 1 {
        out.push(Group {
            label: "all".into(),
            values: done.iter().filter_map(|r| value(r.s)).collect(),
        });
    }
    for k in keys {
        out.push(Group {
            values: done
                .iter()
                .filter(|r| key(r.s) == k)
                .filter_map(|r| value(r.s))
                .collect(),
            label: k,
        });
    }
    out
}

struct Stat {
    name: &'static str,
    decimals: usize,
    values: Vec<f64>,
}

fn across(h: &mut String, cx: &Ctx<'_>) {
    h.push_str("<section id=\"across\"><h2>Across repetitions</h2>\n");
    if cx.reps.is_empty() {
        h.push_str(
            "<p class=\"missing\">No repetition ran: there is nothing to compare.</p></section>\n",
        );
        return;
    }
    let done = completed(cx);
    let n_done = done.len();
    // At a glance: min / mean / max of the three downtimes.
    let stats = [
        Stat {
            name: "QEMU downtime, ms",
            decimals: 1,
            values: done.iter().filter_map(|r| r.s.qemu.downtime_ms).collect(),
        },
        Stat {
            name: "STOP → RESUME, ms",
            decimals: 1,
            values: done
                .iter()
                .filter_map(|r| r.s.host.stop_to_resume_ms)
                .collect(),
        },
        Stat {
            name: "client outage, ms",
            decimals: 1,
            values: done
                .iter()
                .filter_map(|r| r.s.client.max_outage_ms)
                .collect(),
        },
        Stat {
            name: "largest reply gap, ms",
            decimals: 1,
            values: done.iter().filter_map(|r| r.s.client.max_gap_ms).collect(),
        },
        Stat {
            name: "lost probes",
            decimals: 0,
            values: done
                .iter()
                .filter_map(|r| r.s.client.lost_probes.map(|v| v as f64))
                .collect(),
        },
    ];
    let _ = write!(
        h,
        "<div class=\"scroll\"><table id=\"table-glance\"><tr><th class=\"l\">over {n_done} completed repetition{}</th><th>n</th><th>min</th><th>mean</th><th>max</th></tr>",
        if n_done == 1 { "" } else { "s" }
    );
    for st in &stats {
        let (lo, mean, hi) = min_mean_max(&st.values);
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(st.name),
            st.values.len(),
            num(lo, st.decimals),
            num(mean, 1),
            num(hi, st.decimals)
        );
    }
    h.push_str("</table></div>\n");
    let ratios: Vec<f64> = done
        .iter()
        .filter_map(|r| {
            let q = r.s.qemu.downtime_ms.filter(|q| *q > 0.0)?;
            Some(r.s.client.max_outage_ms? / q)
        })
        .collect();
    if let (Some(lo), Some(hi)) = (
        ratios.iter().copied().reduce(f64::min),
        ratios.iter().copied().reduce(f64::max),
    ) {
        let _ = writeln!(
            h,
            "<p id=\"ratio\">Per repetition, the client's outage was <b>{}× to {}×</b> the downtime QEMU reported.</p>",
            num(Some(lo), 1),
            num(Some(hi), 1)
        );
    }

    // The study's three bar charts.
    let by = match &cx.sweep_param {
        Some(p) if done.iter().any(|r| r.s.guest.sweep_value.is_some()) => {
            format!("by value of <code>{}</code>", esc(p))
        }
        _ => "by direction".into(),
    };
    let bar_caption = format!(
        "Completed repetitions only, {by}: bar = mean, whisker = min to max, circles = each repetition."
    );
    h.push_str("<div class=\"grid3\">\n");
    type Metric = fn(&RepSummary) -> Option<f64>;
    let charts: [(&str, &str, &str, RGBColor, Metric); 3] = [
        (
            "plot-bars-transferred",
            "Data transferred",
            "MiB",
            plots::C_BEFORE,
            |r| r.qemu.transferred_bytes.map(|b| b as f64 / 1048576.0),
        ),
        (
            "plot-bars-downtime",
            "QEMU downtime",
            "ms",
            plots::C_QEMU,
            |r| r.qemu.downtime_ms,
        ),
        (
            "plot-bars-total-time",
            "Total migration time",
            "ms",
            plots::C_OTHER,
            |r| r.qemu.total_time_ms,
        ),
    ];
    for (id, title, unit, color, value) in charts {
        let g = groups(cx, value);
        let plot = if g.iter().all(|g| g.values.is_empty()) {
            Err(format!("{title}: no completed repetition has a value"))
        } else {
            drawn(plots::bars_with_whiskers(
                &format!("{title} per group of repetitions, {unit}"),
                unit,
                &g,
                color,
            ))
        };
        figure(h, id, &format!("{title}, {unit}"), plot, &bar_caption);
    }
    h.push_str("</div>\n");

    // Downtime three ways.
    let rows: Vec<ThreeWays> = cx
        .reps
        .iter()
        .map(|r| ThreeWays {
            label: format!("{} {}", r.s.repetition, r.s.direction),
            values: [
                r.s.qemu.downtime_ms,
                r.s.host.stop_to_resume_ms,
                r.s.client.max_outage_ms,
                r.s.client.max_gap_ms,
                r.s.stream.rtp.as_ref().and_then(|v| v.picture_stale_max_ms),
            ],
        })
        .collect();
    figure(
        h,
        "plot-downtime-three-ways",
        "Downtime three ways, per repetition",
        drawn(plots::downtime_three_ways(
            "Per repetition: QEMU downtime, STOP to RESUME, client outage and largest reply gap, ms",
            &rows,
        )),
        "Each group is one repetition (number and direction). The client's outage is the longest stretch in which replies did not flow (<code>client.max_outage_ms</code>); the largest reply gap is shorter when a reply held over the pause splits it. With an RTP video stream, the fifth bar is how long its viewer's picture stayed frozen at worst (<code>stream.rtp.picture_stale_max_ms</code>, under the jitter-buffer model). n/a: not measured (a failed migration, no probe).",
    );

    // Outage breakdown.
    let rows: Vec<BreakdownRow> = cx
        .reps
        .iter()
        .map(|r| BreakdownRow {
            label: format!("rep {} {}", r.s.repetition, r.s.direction),
            breakdown: r
                .tl
                .and_then(|t| t.outage.clone())
                .or_else(|| r.s.outage.clone()),
        })
        .collect();
    let bd = if rows.iter().all(|r| r.breakdown.is_none()) {
        Err("No repetition has a measured client outage to take apart.".to_string())
    } else {
        drawn(plots::outage_breakdown(
            "Per repetition: the client's longest outage taken apart by migration phase, with QEMU's downtime",
            &rows,
        ))
    };
    figure(
        h,
        "plot-outage-breakdown",
        "Where the client's outage went",
        bd,
        "Each bar is a repetition's longest client outage split by the phase it fell in: before STOP (the guest still on the source), stop-and-copy (STOP to QEMU's completed), resume (completed to RESUME on the destination), switchover (RESUME until the client's replies flow again). The thin black bar is QEMU's downtime, drawn from STOP: what QEMU reports covers about the stop-and-copy part only.",
    );
    // CDF of every gap over the threshold.
    let gaps: Vec<f64> = match &cx.input.summary.probe_overall {
        Some(g) => g.gaps.iter().map(|x| x.len_ms).collect(),
        None => cx
            .reps
            .iter()
            .filter_map(|r| r.tl)
            .flat_map(|t| t.gaps.iter().map(|g| g.len_ms))
            .collect(),
    };
    let cdf = if cx.input.probe.is_none() && cx.input.summary.probe_overall.is_none() {
        Err("No probe record: no client gaps to plot.".to_string())
    } else if gaps.is_empty() {
        Err(format!(
            "No reply gap exceeded the {} ms threshold.",
            plots::short(cx.threshold_ms)
        ))
    } else {
        drawn(plots::gap_cdf(
            "Cumulative distribution of the client's reply gaps over the threshold",
            &gaps,
            cx.threshold_ms,
        ))
    };
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let pick = |p: f64| -> Option<f64> {
        let k = (p * sorted.len() as f64).ceil() as usize;
        sorted.get(k.clamp(1, sorted.len().max(1)) - 1).copied()
    };
    h.push_str("<div class=\"narrow\">");
    figure(
        h,
        "plot-gap-cdf",
        "Client reply gaps over the threshold (CDF)",
        cdf,
        &format!(
            "Every gap between consecutive probe replies longer than {} ms, over the whole probe record ({} gaps; median {} ms, p95 {} ms, max {} ms). Read: the fraction of gaps (y) that were at most x ms long.",
            plots::short(cx.threshold_ms),
            sorted.len(),
            num(pick(0.5), 1),
            num(pick(0.95), 1),
            num(sorted.last().copied(), 1)
        ),
    );
    h.push_str("</div>\n");
    h.push_str("</section>\n");
}

fn min_mean_max(v: &[f64]) -> (Option<f64>, Option<f64>, Option<f64>) {
    if v.is_empty() {
        return (None, None, None);
    }
    (
        v.iter().copied().reduce(f64::min),
        Some(v.iter().sum::<f64>() / v.len() as f64),
        v.iter().copied().reduce(f64::max),
    )
}

fn per_rep(h: &mut String, cx: &mut Ctx<'_>) {
    if cx.reps.is_empty() {
        return;
    }
    h.push_str("<section id=\"repetitions\">\n");
    // A few probe intervals either side: the replies that show a gap's edges.
    let near_ns = (cx.interval_ms.unwrap_or(1.0) * 5.0).max(2.0) * 1e6;
    let mut notes = Vec::new();
    for r in &cx.reps {
        rep_section(h, cx, r, near_ns as i64, &mut notes);
    }
    cx.missing.extend(notes);
    h.push_str("</section>\n");
}

fn rep_section(
    h: &mut String,
    cx: &Ctx<'_>,
    r: &RepView<'_>,
    near_ns: i64,
    notes: &mut Vec<String>,
) {
    let s = r.s;
    let n = s.repetition;
    let _ = write!(
        h,
        "<section class=\"rep\" id=\"rep-{n}\"><h2>Repetition {n}: {}, {}</h2>",
        esc(&s.direction),
        esc(s.status.as_str())
    );
    if s.status != RepStatus::Completed {
        let _ = writeln!(
            h,
            "<div class=\"banner bad\">This migration {}{}</div>",
            esc(s.status.as_str()),
            s.error
                .as_deref()
                .map_or(String::new(), |e| format!(": {}", esc(e)))
        );
    }
    let _ = writeln!(
        h,
        "<p>QEMU downtime <b>{}</b> ms · STOP → RESUME <b>{}</b> ms · client outage <b>{}</b> ms · largest reply gap <b>{}</b> ms · lost probes <b>{}</b> ({} on the way to the guest, {} back) · total time {} ms · {} MiB sent in {} passes</p>",
        num(s.qemu.downtime_ms, 0),
        num(s.host.stop_to_resume_ms, 1),
        num(s.client.max_outage_ms, 1),
        num(s.client.max_gap_ms, 1),
        s.client.lost_probes.map_or("—".into(), |v| v.to_string()),
        s.client.lost_forward.map_or("—".into(), |v| v.to_string()),
        s.client.lost_return.map_or("—".into(), |v| v.to_string()),
        num(s.qemu.total_time_ms, 0),
        num(s.qemu.transferred_bytes.map(|b| b as f64 / 1048576.0), 1),
        s.qemu.passes.map_or("—".into(), |v| v.to_string()),
    );
    let Some(rec) = r.rec else {
        let _ = writeln!(
            h,
            "<p class=\"missing\">No raw record for repetition {n}: no timeline.</p></section>"
        );
        notes.push(format!("repetition {n}: no raw record, so no timeline"));
        return;
    };
    if !rec.migration.faults.is_empty() {
        h.push_str("<p>Faults injected:</p><ul>");
        for f in &rec.migration.faults {
            let _ = write!(h, "<li>{}</li>", esc(f));
        }
        h.push_str("</ul>\n");
    }
    let m = &rec.migration;
    let mut gone = Vec::new();
    if m.marker(MarkerKind::SourceStopped).is_none() {
        gone.push("source-stopped");
    }
    if m.marker(MarkerKind::DestinationResumed).is_none() {
        gone.push("destination-resumed");
    }
    if !gone.is_empty() {
        let what = gone.join(" and ");
        let _ = writeln!(
            h,
            "<p class=\"missing\">No {what} marker was recorded: the phases after it are not drawn, and their time falls to the phase before.</p>"
        );
        notes.push(format!(
            "repetition {n}: no {what} event, so no complete phase breakdown"
        ));
    }
    let empty_tl;
    let tl = match r.tl {
        Some(t) => t,
        None => {
            notes.push(format!(
                "repetition {n}: no timeline given, phases and gaps not drawn"
            ));
            empty_tl = RepTimeline {
                phases: Vec::new(),
                markers: Vec::new(),
                gaps: Vec::new(),
                outage: None,
                remaining: Vec::new(),
            };
            &empty_tl
        }
    };
    let outage = s
        .client
        .max_outage_start_ns
        .zip(s.client.max_outage_end_ns)
        .or_else(|| {
            let g = tl.gaps.iter().find(|g| g.is_outage)?;
            Some((g.start_ns, g.end_ns))
        });
    let origin = if r.t0_is_migrate {
        "seconds since the migrate command"
    } else {
        "seconds since the start of the window (no migrate command was recorded)"
    };
    let t = Timeline {
        aria: format!("Repetition {n} timeline: probe round-trip times, client gaps, migration phases, markers and bytes remaining"),
        t0_ns: r.t0_ns,
        range_ns: (rec.window_start_ns, rec.window_end_ns),
        replies: &r.replies,
        lost: &r.lost,
        threshold_ms: cx.threshold_ms,
        phases: &tl.phases,
        gaps: &tl.gaps,
        outage,
        markers: &tl.markers,
        remaining: Some(&tl.remaining),
        near_ns,
        budget: TIMELINE_BUDGET,
        legend: true,
        has_probe: cx.input.probe.is_some(),
    };
    let main = plots::timeline(&t);
    let caption = timeline_caption(cx, &main, origin, near_ns, "the repetition's whole window");
    figure(
        h,
        &format!("plot-rep-{n}-timeline"),
        &format!("Repetition {n}: timeline"),
        main.map(|d| d.svg)
            .map_err(|e| format!("plot not drawn: {e:#}")),
        &caption,
    );
    // Zoom on the end of the migration, where the markers crowd.
    let focus: Vec<i64> = [
        m.marker_ns(MarkerKind::SourceStopped),
        m.marker_ns(MarkerKind::DestinationResumed),
        outage.map(|o| o.0),
        outage.map(|o| o.1),
        s.client.max_gap_start_ns,
        s.client.max_gap_end_ns,
    ]
    .into_iter()
    .flatten()
    .chain(
        tl.markers
            .iter()
            .filter(|k| RECOVERED.contains(&k.label.as_str()) || k.label == "completed")
            .map(|k| k.ns),
    )
    .collect();
    if let (Some(a), Some(b)) = (focus.iter().min(), focus.iter().max()) {
        let span = (b - a) as f64;
        let pad = (span * 0.3)
            .max(15e6)
            .max(cx.interval_ms.unwrap_or(1.0) * 3e6) as i64;
        let range = (
            (a - pad).max(rec.window_start_ns),
            (b + pad).min(rec.window_end_ns),
        );
        let z = Timeline {
            aria: format!("Repetition {n}, zoomed on the stop, resume and switchover"),
            range_ns: range,
            remaining: None,
            budget: ZOOM_BUDGET,
            legend: false,
            ..t
        };
        let zd = plots::timeline(&z);
        let caption = timeline_caption(cx, &zd, origin, near_ns, "the stop, resume and switchover");
        figure(
            h,
            &format!("plot-rep-{n}-zoom"),
            &format!(
                "Repetition {n}: around the switchover ({} ms)",
                num(Some((range.1 - range.0) as f64 / 1e6), 0)
            ),
            zd.map(|d| d.svg)
                .map_err(|e| format!("plot not drawn: {e:#}")),
            &caption,
        );
    }
    gap_table(h, cx, r, tl);
    breakdown_table(h, s, tl.outage.as_ref().or(s.outage.as_ref()));
    h.push_str("</section>\n");
}

fn timeline_caption(
    cx: &Ctx<'_>,
    d: &anyhow::Result<plots::DrawnTimeline>,
    origin: &str,
    near_ns: i64,
    what: &str,
) -> String {
    let mut c = if cx.input.probe.is_some() {
        format!(
            "x: {origin} (host clock), over {what}. Top: round-trip time of each probe reply on a <b>log scale</b>; replies with a round trip over {} ms in vermillion (a reply held over the pause shows as one); grey ticks (bars, for runs of them) along the bottom: probes never answered, at their send time; shaded red: reply gaps over the threshold; the vermillion bar on top: the longest outage (<code>client.max_outage_ms</code>). Background colours: migration phases, named in the strip above. Vertical lines: events.",
            plots::short(cx.threshold_ms)
        )
    } else {
        format!("x: {origin} (host clock), over {what}. No probe record: no replies, gaps or outage to draw. Background colours: migration phases, named in the strip above. Vertical lines: events.")
    };
    if what.contains("window") {
        c.push_str(" Bottom: bytes QEMU still had to send (<code>query-migrate</code> samples).");
    }
    match d {
        Ok(_) if cx.input.probe.is_none() => {}
        Ok(d) => {
            let _ = write!(
                c,
                " Drawn: {} of {} replies ({} fell on an already drawn pixel",
                d.drawn, d.replies, d.same_pixel
            );
            if d.step > 0 {
                let _ = write!(
                    c,
                    "; every reply within {} ms of a gap or an event, and every slow reply, is drawn, and one in {} of the others",
                    num(Some(near_ns as f64 / 1e6), 0),
                    d.step
                );
            }
            c.push_str(").");
        }
        Err(_) => {}
    }
    c
}

fn rel_s(ns: i64, t0: i64) -> String {
    format!("{:.3}", (ns - t0) as f64 / 1e9)
}

fn gap_table(h: &mut String, cx: &Ctx<'_>, r: &RepView<'_>, tl: &RepTimeline) {
    let s = r.s;
    let _ = write!(
        h,
        "<h3>Client gaps of repetition {} and the phases they fell in</h3>",
        s.repetition
    );
    if cx.input.probe.is_none() {
        h.push_str("<p class=\"missing\">No probe record: no gaps.</p>\n");
        return;
    }
    if tl.gaps.is_empty() {
        let _ = writeln!(
            h,
            "<p>No reply gap over the {} ms threshold in this repetition's window.</p>",
            plots::short(cx.threshold_ms)
        );
        return;
    }
    let _ = write!(
        h,
        "<div class=\"scroll\"><table class=\"gaps\" id=\"table-rep-{}-gaps\"><tr><th>start, s</th><th>end, s</th><th>length, ms</th><th class=\"l\">what</th><th class=\"l\">phases it overlaps, ms in each</th></tr>",
        s.repetition
    );
    for g in &tl.gaps {
        let mut what = Vec::new();
        if is_reply_gap(&r.replies, g) {
            what.push("reply gap");
        }
        if Some(g.start_ns) == s.client.max_gap_start_ns
            && Some(g.end_ns) == s.client.max_gap_end_ns
        {
            what.push("largest reply gap");
        }
        if g.is_outage
            || (Some(g.start_ns) == s.client.max_outage_start_ns
                && Some(g.end_ns) == s.client.max_outage_end_ns)
        {
            what.push("longest outage");
        }
        let phases = g
            .phases
            .iter()
            .map(|o| format!("{} {}", esc(&o.phase), num(Some(o.ms), 1)))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            rel_s(g.start_ns, r.t0_ns),
            rel_s(g.end_ns, r.t0_ns),
            num(Some(g.len_ms), 1),
            esc(&what.join(", ")),
            phases
        );
    }
    h.push_str("</table></div>\n");
}

/// Same test as the plot's: no reply arrived strictly inside.
fn is_reply_gap(replies: &[(i64, f64)], g: &GapAttribution) -> bool {
    let i = replies.partition_point(|r| r.0 <= g.start_ns);
    replies.get(i).is_none_or(|r| r.0 >= g.end_ns)
}

fn breakdown_table(h: &mut String, s: &RepSummary, b: Option<&OutageBreakdown>) {
    let _ = writeln!(
        h,
        "<h3>The outage of repetition {} taken apart</h3>",
        s.repetition
    );
    let Some(b) = b else {
        h.push_str("<p class=\"missing\">No client outage was measured in this repetition (no probe, or no reply on both sides of one): nothing to take apart.</p>\n");
        return;
    };
    let _ = write!(
        h,
        "<div class=\"scroll\"><table id=\"table-rep-{}-breakdown\"><tr><th class=\"l\">client outage</th><th>before STOP</th><th>stop-and-copy</th><th>resume</th><th>switchover</th><th>other</th><th>QEMU downtime</th><th>STOP → RESUME</th><th>announce after RESUME</th></tr>",
        s.repetition
    );
    let _ = write!(
        h,
        "<tr><td class=\"l\"><b>{} ms</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table></div>",
        num(Some(b.outage_ms), 1),
        num(Some(b.before_stop_ms), 1),
        num(Some(b.stop_and_copy_ms), 1),
        num(Some(b.resume_ms), 1),
        num(Some(b.switchover_ms), 1),
        num(Some(b.other_ms), 1),
        num(b.qemu_downtime_ms, 0),
        num(s.host.stop_to_resume_ms, 1),
        b.announce_after_resume_ms.map_or("not seen".into(), |v| num(Some(v), 1)),
    );
}

fn rep_table(h: &mut String, cx: &Ctx<'_>) {
    h.push_str("<section id=\"all-repetitions\"><h2>Every repetition</h2>\n");
    if cx.reps.is_empty() {
        h.push_str("<p class=\"missing\">No repetition ran.</p></section>\n");
        return;
    }
    let sweep = cx.reps.iter().any(|r| r.s.guest.sweep_value.is_some());
    h.push_str("<div class=\"scroll\"><table id=\"table-reps\"><tr><th>rep</th><th class=\"l\">direction</th>");
    if sweep {
        let _ = write!(
            h,
            "<th class=\"l\">{}</th>",
            esc(cx.sweep_param.as_deref().unwrap_or("sweep value"))
        );
    }
    h.push_str("<th class=\"l\">status</th><th>QEMU downtime, ms</th><th>STOP → RESUME, ms</th><th>client outage, ms</th><th>largest gap, ms</th><th>lost probes</th><th>total time, ms</th><th>MiB sent</th><th>passes</th><th>dirty rate, MiB/s</th><th>corrupted pages</th><th class=\"l\">error</th></tr>\n");
    for r in &cx.reps {
        let s = r.s;
        let class = if s.status == RepStatus::Completed {
            ""
        } else {
            " class=\"failed\""
        };
        let _ = write!(
            h,
            "<tr{class}><td><a href=\"#rep-{n}\">{n}</a></td><td class=\"l\">{}</td>",
            esc(&s.direction),
            n = s.repetition
        );
        if sweep {
            let v = s
                .guest
                .sweep_value
                .as_ref()
                .map_or("—".into(), |v| match v {
                    Value::String(x) => x.clone(),
                    other => other.to_string(),
                });
            let _ = write!(h, "<td class=\"l\">{}</td>", esc(&v));
        }
        let _ = writeln!(
            h,
            "<td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            esc(s.status.as_str()),
            num(s.qemu.downtime_ms, 0),
            num(s.host.stop_to_resume_ms, 1),
            num(s.client.max_outage_ms, 1),
            num(s.client.max_gap_ms, 1),
            s.client.lost_probes.map_or("—".into(), |v| v.to_string()),
            num(s.qemu.total_time_ms, 0),
            num(s.qemu.transferred_bytes.map(|b| b as f64 / 1048576.0), 1),
            s.qemu.passes.map_or("—".into(), |v| v.to_string()),
            num(s.guest.dirty_rate_mib_s, 1),
            s.guest.corrupted_pages.map_or("—".into(), |v| v.to_string()),
            esc(s.error.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table></div>\n<p>— : not measured. The same numbers, and more, are in <code>summary.csv</code> and <code>summary.json</code> (defined in <code>docs/summary.md</code>).</p></section>\n");
}

fn footer(h: &mut String, cx: &Ctx<'_>) {
    h.push_str("<footer id=\"footer\"><details><summary>The scenario (<code>scenario.toml</code> as stored in the bundle)</summary>");
    let _ = writeln!(h, "<pre>{}</pre></details>", esc(cx.input.scenario_toml));
    h.push_str(
        "<p><b>Re-checking this bundle.</b> Every number here is derived from the bundle's raw records (<code>reps/</code>, <code>probe/</code>). \
<code>harness report BUNDLE</code> recomputes <code>summary.json</code>, <code>summary.csv</code> and this page from them; \
<code>harness verify BUNDLE</code> checks that every file is present and unchanged against <code>SHA256SUMS</code>.</p>\n\
<p>How to read each plot: <code>docs/report.md</code> in the live-migration-lab repository. Field definitions: <code>docs/summary.md</code>.</p>\n</footer>\n",
    );
}
