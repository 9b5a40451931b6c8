//! `report.html` of a fleet: its members side by side. The study's
//! charts (data transferred, downtime, migration time) per VM and
//! condition, with ours beside them (STOP → RESUME, the client's outage,
//! the kernel's, picture freezes); the evacuation rounds on one clock;
//! what failed. Each member's own report (`vms/<id>/report.html`) has the
//! rest. Pure, like the one-VM page.

use super::plots::{bars_with_whiskers_sized, overlap, Group, OverlapRow};
use super::plots::{C_BEFORE, C_CLIENT, C_HOST, C_OTHER, C_QEMU, C_SWITCH};
use super::text::{esc, num};
use measure::fleet::{completed_reps, member_mean, FleetSummary, RepMetric, Round, MEMBER_MEANS};
use plotters::style::RGBColor;
use std::fmt::Write as _;

/// A figure of one repetition, in the chart's unit.
type Metric = RepMetric;

/// One chart across the members.
struct Chart {
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    color: RGBColor,
    metric: Metric,
    caption: &'static str,
}

const CHARTS: [Chart; 8] = [
    Chart {
        id: "fleet-data",
        title: "Data transferred (the study's chart)",
        unit: "MiB",
        color: C_BEFORE,
        metric: |r| r.qemu.transferred_bytes.map(|b| b as f64 / 1048576.0),
        caption: "QEMU's <code>ram.transferred</code> at the end of each migration (<code>qemu.transferred_bytes</code>).",
    },
    Chart {
        id: "fleet-downtime",
        title: "Downtime as QEMU reports it (the study's chart)",
        unit: "ms",
        color: C_QEMU,
        metric: |r| r.qemu.downtime_ms,
        caption: "<code>qemu.downtime_ms</code>: what the study reported (Proxmox logs QEMU's figure).",
    },
    Chart {
        id: "fleet-time",
        title: "Migration time (the study's chart)",
        unit: "s",
        color: C_OTHER,
        metric: |r| r.qemu.total_time_ms.map(|t| t / 1e3),
        caption: "<code>qemu.total_time_ms</code>: from the migrate command to completion.",
    },
    Chart {
        id: "fleet-paused",
        title: "Source STOP → destination RESUME",
        unit: "ms",
        color: C_HOST,
        metric: |r| r.host.stop_to_resume_ms,
        caption: "<code>host.stop_to_resume_ms</code>: how long the guest's CPUs really stood still, by QEMU's events on both sides.",
    },
    Chart {
        id: "fleet-outage",
        title: "The client's outage (the service, in user space)",
        unit: "ms",
        color: C_CLIENT,
        metric: |r| r.client.max_outage_ms,
        caption: "<code>client.max_outage_ms</code>: the longest time the client's probes went unanswered by the agent's reflector.",
    },
    Chart {
        id: "fleet-kernel",
        title: "The kernel's outage (ICMP echoes)",
        unit: "ms",
        color: C_QEMU,
        metric: |r| r.client.icmp_outage_ms,
        caption: "<code>client.icmp_outage_ms</code>: the longest time the guest's kernel left the client's pings unanswered; beside the client's outage, it shows how much of the pause the service added.",
    },
    Chart {
        id: "fleet-picture",
        title: "Longest frozen picture",
        unit: "ms",
        color: C_SWITCH,
        metric: |r| r.stream.rtp.as_ref().and_then(|v| v.picture_stale_max_ms),
        caption: "<code>stream.rtp.picture_stale_max_ms</code>: how long the RTP viewer's picture stayed the same (members that stream).",
    },
    Chart {
        id: "fleet-rep-time",
        title: "Wall time per repetition",
        unit: "s",
        color: C_OTHER,
        metric: |r| Some(r.wall_time_ms / 1e3),
        caption: "<code>wall_time_ms</code>: the pause before, the migration, the pause after.",
    },
];

/// The whole page.
pub fn render_fleet_html(f: &FleetSummary, scenario_toml: &str) -> anyhow::Result<String> {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{} — fleet live migration report</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n",
        esc(&f.scenario),
        super::page::CSS
    );
    header(&mut h, f);
    members_table(&mut h, f);
    h.push_str("<h2>Side by side</h2>\n<p>Each bar is a member's mean over its completed repetitions, the whisker its smallest and largest, each dot one repetition.</p>\n<div class=\"plots\">\n");
    for c in &CHARTS {
        chart(&mut h, f, c);
    }
    h.push_str("</div>\n");
    rounds(&mut h, f);
    failures(&mut h, f);
    let _ = write!(
        h,
        "<h2>Scenario</h2>\n<pre>{}</pre>\n</main>\n</body>\n</html>\n",
        esc(scenario_toml)
    );
    Ok(h)
}

fn header(h: &mut String, f: &FleetSummary) {
    let accel = f
        .members
        .iter()
        .find_map(|m| m.summary.as_ref()?.acceleration.clone())
        .unwrap_or_else(|| "not known".into());
    let _ = writeln!(
        h,
        "<header><p class=\"kicker\">live migration fleet report</p><h1>{}</h1>",
        esc(&f.scenario)
    );
    if f.run_status != "complete" {
        let _ = writeln!(
            h,
            "<div class=\"banner bad\">The fleet's run is <b>{}</b>: see <a href=\"#failures\">what failed</a>.</div>",
            esc(&f.run_status)
        );
    }
    let _ = writeln!(
        h,
        "<dl class=\"facts\"><dt>mode</dt><dd>{}</dd><dt>members</dt><dd>{}</dd><dt>repetitions</dt><dd>{} completed, {} failed</dd><dt>wall time</dt><dd>{} s</dd><dt>acceleration</dt><dd>{}{}</dd></dl></header>",
        esc(&f.mode),
        f.members.len(),
        f.completed,
        f.failed,
        num(f.wall_s, 1),
        esc(&accel),
        if accel == "tcg" {
            " (figures measured under TCG: software emulation, slower than KVM)"
        } else {
            ""
        }
    );
}

fn members_table(h: &mut String, f: &FleetSummary) {
    h.push_str("<h2>Members</h2>\n<table class=\"reps\"><thead><tr><th>member</th><th>VM</th><th>condition</th><th>status</th><th>done / failed</th><th>wall s</th><th>s per rep</th>");
    for (name, _) in MEMBER_MEANS {
        let _ = write!(h, "<th>{}</th>", esc(name));
    }
    h.push_str("<th>report</th></tr></thead><tbody>\n");
    for m in &f.members {
        let s = m.summary.as_ref();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td>",
            esc(&m.id),
            esc(&m.vm),
            esc(&m.condition),
            esc(s.map_or("not run", |s| s.run_status.as_str())),
            s.map_or(0, |s| s.completed),
            s.map_or(0, |s| s.failed),
            num(m.wall_s, 1),
            num(m.rep_wall_mean_s, 2),
        );
        for (_, metric) in MEMBER_MEANS {
            let _ = write!(h, "<td>{}</td>", num(member_mean(m, metric), 1));
        }
        let _ = writeln!(
            h,
            "<td><a href=\"{}/report.html\">{}</a></td></tr>",
            esc(&m.bundle),
            esc(&m.bundle)
        );
    }
    h.push_str("</tbody></table>\n");
}

fn chart(h: &mut String, f: &FleetSummary, c: &Chart) {
    let groups: Vec<Group> = f
        .members
        .iter()
        .map(|m| Group {
            label: m.id.clone(),
            values: completed_reps(m).filter_map(c.metric).collect(),
        })
        .collect();
    if groups.iter().all(|g| g.values.is_empty()) {
        return;
    }
    let width = (90 + 120 * groups.len() as u32).max(400);
    let _ = write!(
        h,
        "<figure class=\"plot\" id=\"{}\"><h3>{}</h3>",
        c.id,
        esc(c.title)
    );
    match bars_with_whiskers_sized(c.title, c.unit, &groups, c.color, width) {
        Ok(svg) => {
            let _ = write!(h, "{svg}<figcaption>{}</figcaption>", c.caption);
        }
        Err(e) => {
            let _ = write!(
                h,
                "<p class=\"missing\">plot not drawn: {}</p>",
                esc(&format!("{e:#}"))
            );
        }
    }
    h.push_str("</figure>\n");
}

/// The evacuation rounds: the first ones drawn, all in a table.
fn rounds(h: &mut String, f: &FleetSummary) {
    if f.rounds.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"rounds\">Evacuation rounds</h2>\n<p>Each round migrated every VM at once. <i>All at once</i>: how long every migration of the round was running at the same time; <i>round</i>: from the first migrate command to the last migration's end.</p>\n");
    for r in f.rounds.iter().take(4) {
        let rows = round_rows(r);
        let _ = write!(
            h,
            "<figure class=\"plot\" id=\"round-{}\"><h3>Round {}</h3>",
            r.repetition, r.repetition
        );
        match overlap(&format!("evacuation round {}", r.repetition), &rows) {
            Ok(svg) => h.push_str(&svg),
            Err(e) => {
                let _ = write!(
                    h,
                    "<p class=\"missing\">plot not drawn: {}</p>",
                    esc(&format!("{e:#}"))
                );
            }
        }
        h.push_str("</figure>\n");
    }
    h.push_str("<table class=\"reps\"><thead><tr><th>round</th><th>all at once ms</th><th>round ms</th><th>each VM's client outage ms</th></tr></thead><tbody>\n");
    for r in &f.rounds {
        let outages: Vec<String> = r
            .spans
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    esc(&s.member),
                    num(s.outage_ns.map(|(a, b)| (b - a) as f64 / 1e6), 1)
                )
            })
            .collect();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.repetition,
            num(r.all_at_once_ms, 1),
            num(r.round_ms, 1),
            outages.join(", ")
        );
    }
    h.push_str("</tbody></table>\n");
}

fn round_rows(r: &Round) -> Vec<OverlapRow> {
    let t0 = r.spans.iter().filter_map(|s| s.start_ns).min().unwrap_or(0);
    let ms = |p: Option<(i64, i64)>| p.map(|(a, b)| ((a - t0) as f64 / 1e6, (b - t0) as f64 / 1e6));
    r.spans
        .iter()
        .map(|s| OverlapRow {
            label: s.member.clone(),
            migration: ms(s.start_ns.zip(s.end_ns)),
            paused: ms(s.stopped_ns.zip(s.resumed_ns)),
            outage: ms(s.outage_ns),
            icmp: ms(s.icmp_outage_ns),
        })
        .collect()
}

fn failures(h: &mut String, f: &FleetSummary) {
    h.push_str("<h2 id=\"failures\">What failed</h2>\n");
    if f.failures.is_empty() {
        h.push_str("<p>Nothing: every member ran and every repetition completed.</p>\n");
        return;
    }
    h.push_str("<ul>\n");
    for x in &f.failures {
        let _ = writeln!(
            h,
            "<li><b>{}</b>{}: {}</li>",
            esc(&x.member),
            x.repetition
                .map_or(String::new(), |n| format!(", repetition {n}")),
            esc(&x.error)
        );
    }
    h.push_str("</ul>\n");
}
