//! `summary.csv`: one row per repetition, dotted column names as in
//! `summary.json`. Written with the `csv` crate, so a field with a comma,
//! a quote or a line break (an error message, a swept value) is quoted
//! the way every CSV reader expects.

use super::Summary;

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or(String::new(), T::to_string)
}

/// The CSV columns, in order.
pub const CSV_HEADER: &str = "repetition,status,direction,guest.sweep_value,wall_time_ms,qemu.total_time_ms,qemu.downtime_ms,qemu.setup_time_ms,qemu.transferred_bytes,qemu.passes,qemu.mbps,host.stop_to_resume_ms,host.stop_to_resume_uncertainty_ms,client.max_gap_ms,client.max_outage_ms,client.max_forward_gap_ms,client.lost_probes,client.lost_forward,client.lost_return,client.probes_sent,client.probe_interval_ms,guest.dirty_rate_mib_s,guest.corrupted_pages,guest.max_monotonic_gap_ms,stream.rtp.max_gap_ms,stream.rtp.lost_packets,stream.rtp.freezes,stream.rtp.freeze_total_ms,stream.rtp.jitter_ms,stream.http.stalls,stream.http.stall_total_ms,stream.http.connection_survived,guest.corrupted_blocks,storage.bytes_mirrored,storage.time_to_ready_ms,storage.ram_completed_to_resume_ms,client.icmp_max_gap_ms,client.icmp_outage_ms,client.service_lag_ms,error";

/// `summary.csv`: one row per repetition, dotted column names as in JSON.
pub fn to_csv(s: &Summary) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing into memory cannot fail; a record of the wrong length would
    // be a bug caught by the tests.
    let _ = w.write_record(CSV_HEADER.split(','));
    for r in &s.repetitions {
        let row = [
            r.repetition.to_string(),
            r.status.as_str().into(),
            r.direction.clone(),
            r.guest
                .sweep_value
                .as_ref()
                .map_or(String::new(), ToString::to_string),
            format!("{:.3}", r.wall_time_ms),
            opt(&r.qemu.total_time_ms),
            opt(&r.qemu.downtime_ms),
            opt(&r.qemu.setup_time_ms),
            opt(&r.qemu.transferred_bytes),
            opt(&r.qemu.passes),
            opt(&r.qemu.mbps),
            opt(&r.host.stop_to_resume_ms.map(|v| format!("{v:.3}"))),
            opt(&r
                .host
                .stop_to_resume_uncertainty_ms
                .map(|v| format!("{v:.3}"))),
            opt(&r.client.max_gap_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.max_outage_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.max_forward_gap_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.lost_probes),
            opt(&r.client.lost_forward),
            opt(&r.client.lost_return),
            opt(&r.client.probes_sent),
            opt(&r.client.probe_interval_ms),
            opt(&r.guest.dirty_rate_mib_s.map(|v| format!("{v:.2}"))),
            opt(&r.guest.corrupted_pages),
            opt(&r.guest.max_monotonic_gap_ms.map(|v| format!("{v:.3}"))),
            opt(&r
                .stream
                .rtp
                .as_ref()
                .and_then(|v| v.max_gap_ms)
                .map(|v| format!("{v:.3}"))),
            opt(&r.stream.rtp.as_ref().and_then(|v| v.lost_packets)),
            opt(&r.stream.rtp.as_ref().and_then(|v| v.freezes)),
            opt(&r
                .stream
                .rtp
                .as_ref()
                .and_then(|v| v.freeze_total_ms)
                .map(|v| format!("{v:.3}"))),
            opt(&r
                .stream
                .rtp
                .as_ref()
                .and_then(|v| v.jitter_ms)
                .map(|v| format!("{v:.3}"))),
            opt(&r.stream.http.as_ref().and_then(|v| v.stalls)),
            opt(&r
                .stream
                .http
                .as_ref()
                .and_then(|v| v.stall_total_ms)
                .map(|v| format!("{v:.3}"))),
            opt(&r.stream.http.as_ref().and_then(|v| v.connection_survived)),
            opt(&r.guest.corrupted_blocks),
            opt(&r.storage.as_ref().and_then(|v| v.bytes_mirrored)),
            opt(&r
                .storage
                .as_ref()
                .and_then(|v| v.time_to_ready_ms)
                .map(|v| format!("{v:.3}"))),
            opt(&r
                .storage
                .as_ref()
                .and_then(|v| v.ram_completed_to_resume_ms)
                .map(|v| format!("{v:.3}"))),
            opt(&r.client.icmp_max_gap_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.icmp_outage_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.service_lag_ms.map(|v| format!("{v:.3}"))),
            r.error.clone().unwrap_or_default(),
        ];
        let _ = w.write_record(&row);
    }
    w.into_inner()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
