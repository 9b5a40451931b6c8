//! The "Every repetition" section: one table row per repetition, linked to
//! its section.

use super::context::Ctx;
use crate::report::html::text::{esc, num};
use measure::migration::record::RepStatus;
use serde_json::Value;
use std::fmt::Write as _;

/// The table of every repetition (with the swept value when there is one),
/// failed rows shaded, or a note that none ran.
pub(super) fn rep_table(h: &mut String, cx: &Ctx<'_>) {
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
    h.push_str("<th class=\"l\">status</th><th>QEMU downtime, ms</th><th>STOP → RESUME, ms</th><th>client outage, ms</th><th>kernel (ICMP) outage, ms</th><th>service back after the kernel, ms</th><th>largest gap, ms</th><th>lost probes</th><th>total time, ms</th><th>MiB sent</th><th>passes</th><th>dirty rate, MiB/s</th><th>corrupted pages</th><th class=\"l\">error</th></tr>\n");
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
            "<td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            esc(s.status.as_str()),
            num(s.qemu.downtime_ms, 0),
            num(s.host.stop_to_resume_ms, 1),
            num(s.client.max_outage_ms, 1),
            num(s.client.icmp_outage_ms, 1),
            num(s.client.service_lag_ms, 1),
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

/// The disks' table, when the VM had one: what each storage migration
/// copied, how long the mirror took to be ready, the pause after RAM, and
/// both checks of the disk.
pub(super) fn storage_table(h: &mut String, cx: &Ctx<'_>) {
    if !cx.reps.iter().any(|r| r.s.storage.is_some()) {
        return;
    }
    h.push_str("<section id=\"storage\"><h2>Disk</h2>\n<p>The mirror copies the whole disk to the paused destination over NBD, then every write the guest makes while it runs; once ready it is switched to write-blocking. After RAM completes, the guest stays paused while the mirror completes, the NBD server stops and the destination gets <code>cont</code>: <em>RAM completed → resume</em>, which Proxmox's task log does not report.</p>\n");
    h.push_str("<div class=\"scroll\"><table id=\"table-storage\"><tr><th>rep</th><th class=\"l\">storage</th><th>disk, MiB</th><th>mirrored, MiB</th><th>mirror ready after, ms</th><th>mirror, MiB/s</th><th>ready → synced, ms</th><th>RAM completed → resume, ms</th><th>corrupted blocks</th><th class=\"l\">host's check</th></tr>\n");
    let mib = |b: Option<u64>| num(b.map(|b| b as f64 / 1048576.0), 1);
    for r in &cx.reps {
        let (s, Some(v)) = (r.s, r.s.storage.as_ref()) else {
            continue;
        };
        let host = match s.guest.host_disk_check_agrees {
            Some(true) => "agrees with the agent",
            Some(false) => "DISAGREES",
            None => "—",
        };
        let _ = writeln!(
            h,
            "<tr><td><a href=\"#rep-{n}\">{n}</a></td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{host}</td></tr>",
            esc(v.storage.as_deref().unwrap_or("—")),
            mib(v.disk_bytes),
            mib(v.bytes_mirrored),
            num(v.time_to_ready_ms, 0),
            num(v.mirror_throughput_mib_s, 1),
            num(v.ready_to_synced_ms, 1),
            num(v.ram_completed_to_resume_ms, 1),
            s.guest.corrupted_blocks.map_or("—".into(), |v| v.to_string()),
            n = s.repetition
        );
    }
    h.push_str("</table></div></section>\n");
}
