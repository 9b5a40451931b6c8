//! `irtt client -o FILE.json`: its statistics and round trips.

use super::ToolError;

/// What an irtt client's JSON output says, reduced to what the bench
/// compares.
#[derive(Debug, Clone, PartialEq)]
pub struct IrttSummary {
    /// `stats.packets_sent`.
    pub sent: u64,
    /// `stats.packets_received`.
    pub received: u64,
    /// First to last client send time plus one interval, s.
    pub send_span_s: f64,
    /// Median round trip of the replies, ms.
    pub rtt_p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub rtt_p99_ms: Option<f64>,
    /// Mean, ms.
    pub rtt_mean_ms: Option<f64>,
}

/// Parses `irtt client -o file.json` output (irtt 0.9).
pub fn parse_irtt(json: &serde_json::Value, interval_s: f64) -> Result<IrttSummary, ToolError> {
    let stats = json
        .get("stats")
        .ok_or_else(|| ToolError("irtt's JSON has no `stats`".into()))?;
    let num = |k: &str| {
        stats
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| ToolError(format!("irtt's JSON has no stats.{k}")))
    };
    let sent = num("packets_sent")?;
    let received = num("packets_received")?;
    let trips = json
        .get("round_trips")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut first: Option<i64> = None;
    let mut last: Option<i64> = None;
    let mut rtts: Vec<f64> = Vec::new();
    for t in trips {
        if let Some(w) = t
            .pointer("/timestamps/client/send/wall")
            .and_then(serde_json::Value::as_i64)
        {
            first = Some(first.map_or(w, |f| f.min(w)));
            last = Some(last.map_or(w, |l| l.max(w)));
        }
        let lost = t.get("lost").and_then(serde_json::Value::as_str) != Some("false");
        if !lost {
            if let Some(r) = t.pointer("/delay/rtt").and_then(serde_json::Value::as_f64) {
                rtts.push(r / 1e6);
            }
        }
    }
    let send_span_s = match (first, last) {
        (Some(f), Some(l)) => (i128::from(l) - i128::from(f)) as f64 / 1e9 + interval_s,
        _ => 0.0,
    };
    rtts.sort_by(f64::total_cmp);
    let pct = |p: f64| -> Option<f64> {
        let n = rtts.len();
        (n > 0).then(|| rtts[((p * n as f64).ceil() as usize).clamp(1, n) - 1])
    };
    let mean = (!rtts.is_empty()).then(|| rtts.iter().sum::<f64>() / rtts.len() as f64);
    Ok(IrttSummary {
        sent,
        received,
        send_span_s,
        rtt_p50_ms: pct(0.5),
        rtt_p99_ms: pct(0.99),
        rtt_mean_ms: mean,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn irtt_json_is_parsed() {
        let v = serde_json::json!({
            "stats": {"packets_sent": 3, "packets_received": 2},
            "round_trips": [
                {"lost": "false", "delay": {"rtt": 100_000},
                 "timestamps": {"client": {"send": {"wall": 1_000_000_000i64}}}},
                {"lost": "true", "delay": {},
                 "timestamps": {"client": {"send": {"wall": 1_001_000_000i64}}}},
                {"lost": "false", "delay": {"rtt": 300_000},
                 "timestamps": {"client": {"send": {"wall": 1_002_000_000i64}}}}
            ]
        });
        let s = parse_irtt(&v, 0.001).unwrap();
        assert_eq!((s.sent, s.received), (3, 2));
        assert!((s.send_span_s - 0.003).abs() < 1e-9, "{s:?}");
        assert_eq!(s.rtt_p50_ms, Some(0.1));
        assert_eq!(s.rtt_p99_ms, Some(0.3));
        assert_eq!(s.rtt_mean_ms, Some(0.2));
        assert!(parse_irtt(&serde_json::json!({}), 0.001).is_err());
    }

    #[test]
    fn send_times_far_apart_do_not_overflow() {
        // Wall clocks at both ends of i64: their difference overflowed.
        let v = serde_json::json!({
            "stats": {"packets_sent": 2, "packets_received": 0},
            "round_trips": [
                {"lost": "true", "timestamps": {"client": {"send": {"wall": i64::MIN}}}},
                {"lost": "true", "timestamps": {"client": {"send": {"wall": i64::MAX}}}}
            ]
        });
        let s = parse_irtt(&v, 0.0).unwrap();
        assert!((s.send_span_s - 1.8446744073709552e10).abs() < 1.0, "{s:?}");
    }
}
