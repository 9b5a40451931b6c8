//! The table a run prints at its end: one row per repetition.

use super::Summary;

fn cell(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{:.prec$}", x + 0.0))
}

/// The table printed at the end of a run.
pub fn to_table(s: &Summary) -> String {
    let mut out = format!(
        "{:>3} {:<5} {:<11} {:>10} {:>10} {:>10} {:>8} {:>6} {:>9} {:>9} {:>6} {:>7} {:>9} {:>7}\n",
        "rep",
        "dir",
        "status",
        "qemu_dt_ms",
        "stop_res",
        "client_gap",
        "outage",
        "lost",
        "total_ms",
        "MiB_sent",
        "passes",
        "wall_s",
        "dirty_MBs",
        "corrupt"
    );
    for r in &s.repetitions {
        out.push_str(&format!(
            "{:>3} {:<5} {:<11} {:>10} {:>10} {:>10} {:>8} {:>6} {:>9} {:>9} {:>6} {:>7.1} {:>9} {:>7}\n",
            r.repetition,
            r.direction,
            r.status.as_str(),
            cell(r.qemu.downtime_ms, 0),
            cell(r.host.stop_to_resume_ms, 1),
            cell(r.client.max_gap_ms, 1),
            cell(r.client.max_outage_ms, 1),
            r.client.lost_probes.map_or("-".into(), |v| v.to_string()),
            cell(r.qemu.total_time_ms, 0),
            cell(r.qemu.transferred_bytes.map(|b| b as f64 / 1048576.0), 1),
            r.qemu.passes.map_or("-".into(), |v| v.to_string()),
            r.wall_time_ms / 1000.0,
            cell(r.guest.dirty_rate_mib_s, 1),
            r.guest
                .corrupted_pages
                .map_or("-".into(), |v| v.to_string()),
        ));
        if let Some(k) = r.client.icmp_outage_ms {
            out.push_str(&format!(
                "    icmp: kernel outage {} ms (largest gap {} ms); the service was back {} ms after the kernel\n",
                cell(Some(k), 1),
                cell(r.client.icmp_max_gap_ms, 1),
                cell(r.client.service_lag_ms, 1),
            ));
        }
        if let Some(p) = &r.platform {
            out.push_str(&format!(
                "    {}: downtime {} ms, migration {} ms, RAM {} MiB\n",
                p.platform,
                cell(p.downtime_ms, 0),
                cell(p.duration_ms, 0),
                cell(p.ram_transferred_bytes.map(|b| b as f64 / 1048576.0), 1),
            ));
        }
        for l in &r.links {
            out.push_str(&format!(
                "    link {}: {} Mbit/s, {} ms: carried {} Mbit/s during the migration (busiest 100 ms: {}), {} frames dropped{}\n",
                l.link,
                cell(l.rate_mbit, 0),
                cell(l.delay_ms, 0),
                cell(l.throughput_mbit, 1),
                cell(l.peak_mbit, 1),
                l.dropped_frames.map_or("-".into(), |x| x.to_string()),
                l.qemu_limit_mbit
                    .map_or(String::new(), |q| format!("; QEMU's limit {q:.0} Mbit/s")),
            ));
        }
        if let Some(v) = &r.storage {
            out.push_str(&format!(
                "    disk ({}): {} MiB mirrored, ready after {} ms at {} MiB/s, RAM completed to resume {} ms; corrupted blocks {}, host check {}\n",
                v.storage.as_deref().unwrap_or("?"),
                cell(v.bytes_mirrored.map(|b| b as f64 / 1048576.0), 1),
                cell(v.time_to_ready_ms, 0),
                cell(v.mirror_throughput_mib_s, 1),
                cell(v.ram_completed_to_resume_ms, 1),
                r.guest.corrupted_blocks.map_or("-".into(), |x| x.to_string()),
                match r.guest.host_disk_check_agrees {
                    Some(true) => "agrees",
                    Some(false) => "DISAGREES",
                    None => "-",
                },
            ));
        }
        if let Some(v) = &r.stream.rtp {
            out.push_str(&format!(
                "    rtp: largest gap {} ms, {} lost, freezes {} ({} ms in all, picture stale up to {} ms), frames complete {} / decoded {}\n",
                cell(v.max_gap_ms, 1),
                v.lost_packets.map_or("-".into(), |x| x.to_string()),
                v.freezes.map_or("-".into(), |x| x.to_string()),
                cell(v.freeze_total_ms, 1),
                cell(v.picture_stale_max_ms, 1),
                v.frames_complete.map_or("-".into(), |x| x.to_string()),
                v.decoder_accepted.map_or("-".into(), |x| x.to_string()),
            ));
        }
        if let Some(v) = &r.stream.http {
            out.push_str(&format!(
                "    http: stalls {} ({} ms), connection {}, largest read gap {} ms\n",
                v.stalls.map_or("-".into(), |x| x.to_string()),
                cell(v.stall_total_ms, 1),
                match v.connection_survived {
                    Some(true) => "survived",
                    Some(false) => "BROKE",
                    None => "-",
                },
                cell(v.max_read_gap_ms, 1),
            ));
        }
        if let Some(e) = &r.error {
            out.push_str(&format!("    error: {e}\n"));
        }
    }
    out
}
