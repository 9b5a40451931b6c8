//! iputils `ping -q`: its closing summary.

use super::ToolError;

/// What `ping -q` printed at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct PingSummary {
    /// `N packets transmitted`.
    pub transmitted: u64,
    /// `M received`.
    pub received: u64,
    /// `time T ms`: how long ping ran.
    pub time_ms: f64,
    /// The `rtt min/avg/max/mdev` line's average, ms (absent when nothing
    /// came back).
    pub rtt_avg_ms: Option<f64>,
}

/// Parses iputils ping's summary: `N packets transmitted, M received, ...
/// time Tms` and `rtt min/avg/max/mdev = a/b/c/d ms`.
pub fn parse_ping(text: &str) -> Result<PingSummary, ToolError> {
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .ok_or_else(|| ToolError("ping printed no `packets transmitted` line".into()))?;
    let mut transmitted = None;
    let mut received = None;
    let mut time_ms = None;
    for part in line.split(',').map(str::trim) {
        let mut words = part.split_whitespace();
        let (Some(a), Some(b)) = (words.next(), words.next()) else {
            continue;
        };
        match b {
            "packets" => transmitted = a.parse().ok(),
            "received" => received = a.parse().ok(),
            _ if a == "time" => time_ms = b.trim_end_matches("ms").parse().ok(),
            _ => {}
        }
    }
    let rtt_avg_ms = text
        .lines()
        .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
        .and_then(|v| v.split('/').nth(1))
        .and_then(|v| v.parse().ok());
    Ok(PingSummary {
        transmitted: transmitted
            .ok_or_else(|| ToolError(format!("no packet count in {line:?}")))?,
        received: received.ok_or_else(|| ToolError(format!("no received count in {line:?}")))?,
        time_ms: time_ms.ok_or_else(|| ToolError(format!("no run time in {line:?}")))?,
        rtt_avg_ms,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const PING: &str = "PING 198.18.0.10 (198.18.0.10) 56(84) bytes of data.\n\n--- 198.18.0.10 ping statistics ---\n3000 packets transmitted, 2990 received, 0.333333% packet loss, time 3012ms\nrtt min/avg/max/mdev = 0.101/0.232/4.100/0.090 ms, ipg/ewma 1.004/0.210 ms\n";

    #[test]
    fn ping_summary_is_parsed() {
        let p = parse_ping(PING).unwrap();
        assert_eq!(
            p,
            PingSummary {
                transmitted: 3000,
                received: 2990,
                time_ms: 3012.0,
                rtt_avg_ms: Some(0.232)
            }
        );
        // All lost: no rtt line; errors and duplicates in the line.
        let t = "5 packets transmitted, 0 received, +5 errors, 100% packet loss, time 41ms\n";
        let p = parse_ping(t).unwrap();
        assert_eq!((p.transmitted, p.received, p.rtt_avg_ms), (5, 0, None));
        assert!(parse_ping("ping: connect: Network is unreachable").is_err());
    }
}
