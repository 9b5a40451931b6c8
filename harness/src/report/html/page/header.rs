//! The page's header: the scenario's name and description, a banner when
//! the run did not complete, the run's facts, and how clocks were aligned.

use super::context::{Ctx, Imported};
use crate::report::html::plots;
use crate::report::html::text::{esc, num};
use measure::migration::record::RepStatus;
use serde_json::Value;
use std::fmt::Write as _;

/// One fact of the list: its name and its HTML (already escaped).
type Fact = (&'static str, String);

/// A manifest value at `pointer` as text (strings, numbers, booleans;
/// an empty string is none).
fn mstr(m: &Value, pointer: &str) -> Option<String> {
    match m.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The whole `<header>`.
pub(super) fn header(h: &mut String, cx: &Ctx<'_>) {
    title(h, cx);
    let mut facts = run_facts(cx);
    facts.extend(platform_facts(cx));
    facts.extend(probe_and_provenance_facts(cx));
    h.push_str("<dl class=\"facts\">\n");
    for (k, v) in facts {
        let _ = writeln!(h, "<dt>{}</dt><dd>{v}</dd>", esc(k));
    }
    h.push_str("</dl>\n");
    clocks(h, cx);
    h.push_str("</header>\n");
}

/// The kicker, the scenario's name and description, and the banner of a
/// run that did not complete.
fn title(h: &mut String, cx: &Ctx<'_>) {
    let s = cx.input.summary;
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
}

/// The run's status and how many repetitions ran, completed, failed and
/// were interrupted.
fn run_facts(cx: &Ctx<'_>) -> Vec<Fact> {
    let s = cx.input.summary;
    let chip = if s.run_status == "complete" {
        "ok"
    } else {
        "bad"
    };
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
    vec![
        (
            "run status",
            format!("<span class=\"chip {chip}\">{}</span>", esc(&s.run_status)),
        ),
        ("repetitions", esc(&reps)),
    ]
}

/// Where it ran: acceleration, QEMU, the host, the guest kernel and the
/// backend (the last two only when recorded).
fn platform_facts(cx: &Ctx<'_>) -> Vec<Fact> {
    if let Some(imp) = &cx.imported {
        return import_facts(cx, imp);
    }
    let s = cx.input.summary;
    let m = cx.input.manifest;
    let mut v = Vec::new();
    let accel = s
        .acceleration
        .clone()
        .or_else(|| mstr(m, "/acceleration"))
        .unwrap_or_else(|| "unknown (the VM never came up)".into());
    let note = mstr(m, "/acceleration_note").map_or(String::new(), |n| format!(" — {}", esc(&n)));
    v.push(("acceleration", format!("<b>{}</b>{note}", esc(&accel))));
    v.push((
        "QEMU",
        esc(&mstr(m, "/host/qemu_version").unwrap_or_else(|| "not recorded".into())),
    ));
    let host: Vec<String> = [
        mstr(m, "/host/cpu"),
        mstr(m, "/host/cpus").map(|c| format!("{c} CPUs")),
        mstr(m, "/host/kernel").map(|k| format!("kernel {k}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    v.push((
        "host",
        esc(&if host.is_empty() {
            "not recorded".into()
        } else {
            host.join(", ")
        }),
    ));
    if let Some(g) = mstr(m, "/guest/kernel/release") {
        v.push(("guest kernel", esc(&g)));
    }
    if let Some(b) = mstr(m, "/backend") {
        v.push(("backend", esc(&b)));
    }
    v
}

/// What an imported bundle was made from, its times, and its backend: no
/// lab ran, so there is no acceleration, QEMU or host to name.
fn import_facts(cx: &Ctx<'_>, imp: &Imported) -> Vec<Fact> {
    let mut v = vec![
        (
            "imported from",
            esc(&format!("{}: {}", imp.from, imp.files.join(", "))),
        ),
        ("times", esc(&imp.times)),
    ];
    if let Some(b) = mstr(cx.input.manifest, "/backend") {
        v.push(("backend", esc(&b)));
    }
    v
}

/// The client probe's settings, when the run ran, the harness's version
/// and the run's id (the last two only when recorded).
fn probe_and_provenance_facts(cx: &Ctx<'_>) -> Vec<Fact> {
    let m = cx.input.manifest;
    let mut v = Vec::new();
    let probe = match (cx.input.probe, cx.interval_ms) {
        (Some(p), _) => format!(
            "{} probes/s ({} ms apart), {} B, gap threshold {} ms",
            p.rate_hz,
            cx.interval_ms.map_or("?".into(), plots::short),
            p.payload_len,
            plots::short(cx.threshold_ms)
        ),
        (None, _) => cx
            .imported
            .as_ref()
            .map_or("no probe record".into(), |i| i.no_probe.clone()),
    };
    v.push(("client probe", esc(&probe)));
    let when = match (mstr(m, "/started"), mstr(m, "/ended")) {
        (Some(a), Some(b)) => format!("{a} → {b}"),
        (Some(a), None) => format!("{a} → (no end recorded)"),
        _ => "not recorded".into(),
    };
    v.push(("run", esc(&when)));
    let tool = [
        mstr(m, "/tool_version"),
        mstr(m, "/tool_git").map(|g| format!("git {g}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    if !tool.is_empty() {
        v.push(("harness", esc(&tool)));
    }
    if let Some(id) = mstr(m, "/run_id") {
        v.push(("run id", esc(&id)));
    }
    v
}

/// How the host's, client's and guest's clocks were aligned, or that the
/// summary does not say.
fn clocks(h: &mut String, cx: &Ctx<'_>) {
    match &cx.input.summary.clock {
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
}
