//! Fuzz target: the parsers of other tools' output
//! (`measure::tools::ping::parse_ping`, `irtt::parse_irtt` on JSON from the
//! input, `stress_ng::parse_memrate`). Never a panic; what parses is
//! consistent with the text it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use measure::tools::{irtt::parse_irtt, ping::parse_ping, stress_ng::parse_memrate};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(p) = parse_ping(&text) {
        assert!(text.contains("packets transmitted"));
        assert!(!p.time_ms.is_nan() || text.to_lowercase().contains("nan"));
        if let Some(a) = p.rtt_avg_ms {
            assert!(text.contains("rtt min/avg/max/mdev = "), "{a}");
        }
    }
    match parse_memrate(&text) {
        Ok(m) => {
            assert!(text.contains("memrate"));
            assert!(m.tests.len() <= text.lines().count());
            for t in &m.tests {
                assert!(!t.test.is_empty() && !t.test.contains(char::is_whitespace));
                let _ = t.is_write();
            }
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(s) = parse_irtt(&v, 0.001) {
            assert_eq!(
                Some(s.sent),
                v.pointer("/stats/packets_sent").and_then(|x| x.as_u64())
            );
            assert_eq!(
                Some(s.received),
                v.pointer("/stats/packets_received")
                    .and_then(|x| x.as_u64())
            );
            assert_eq!(s.rtt_p50_ms.is_some(), s.rtt_p99_ms.is_some());
            assert_eq!(s.rtt_p50_ms.is_some(), s.rtt_mean_ms.is_some());
            if let (Some(a), Some(b)) = (s.rtt_p50_ms, s.rtt_p99_ms) {
                assert!(a <= b, "p50 {a} <= p99 {b}");
            }
            assert!(s.send_span_s.is_finite());
        }
    }
});
