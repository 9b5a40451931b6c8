//! `stress-ng --memrate 1 --metrics`: its rates.

use super::ToolError;
use serde::Serialize;

/// One stress-ng test's reported rate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TestRate {
    /// stress-ng's name of the test, e.g. `write64`, `memset`, `read8`.
    pub test: String,
    /// Its rate, stress-ng's MB/s (2^20 bytes per second).
    pub mib_s: f64,
}

impl TestRate {
    /// Whether the test writes (every test whose name does not start with
    /// `read`: the `write*` tests and `memset`).
    pub fn is_write(&self) -> bool {
        !self.test.starts_with("read")
    }
}

/// What `stress-ng --memrate 1 --metrics` printed, reduced to figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemrateMetrics {
    /// Bogo ops: whole cycles (every test once) completed.
    pub bogo_ops: Option<u64>,
    /// The stressor's run time, s.
    pub real_time_s: Option<f64>,
    /// CPU used per instance, percent of one core.
    pub cpu_pct: Option<f64>,
    /// Largest resident set, KiB.
    pub rss_max_kib: Option<u64>,
    /// Each test that finished at least one pass, in stress-ng's order.
    pub tests: Vec<TestRate>,
}

/// Parses stress-ng 0.15's `--metrics` output for the `memrate`
/// stressor: the line `metrc: [PID] memrate OPS REAL USR SYS OPS/S OPS/S
/// CPU% RSS` and the lines `metrc: [PID] memrate RATE NAME MB per sec
/// (...)`. Other lines (info, the headers) are skipped. Fails, quoting
/// stress-ng, when it reported an error or no memrate line at all.
pub fn parse_memrate(text: &str) -> Result<MemrateMetrics, ToolError> {
    let mut m = MemrateMetrics::default();
    let mut saw_memrate = false;
    for line in text.lines() {
        let Some((_, rest)) = line.split_once("metrc:") else {
            continue;
        };
        // Skip the `[PID]`.
        let rest = rest.trim_start();
        let rest = rest
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map_or(rest, |(_, r)| r);
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.first() != Some(&"memrate") {
            continue;
        }
        saw_memrate = true;
        if words.len() >= 5 && words[3..5] == ["MB", "per"] {
            let mib_s: f64 = words[1].parse().map_err(|_| {
                ToolError(format!("stress-ng's rate {:?} is not a number", words[1]))
            })?;
            m.tests.push(TestRate {
                test: words[2].to_string(),
                mib_s,
            });
        } else if words.len() >= 9 {
            m.bogo_ops = words[1].parse().ok();
            m.real_time_s = words[2].parse().ok();
            m.cpu_pct = words[7].parse().ok();
            m.rss_max_kib = words[8].parse().ok();
        }
    }
    if !saw_memrate {
        let said: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(5)
            .collect();
        return Err(ToolError(format!(
            "stress-ng printed no memrate metrics; it said: {}",
            if said.is_empty() {
                "nothing".to_string()
            } else {
                said.join(" | ")
            }
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const HOST_4M_64: &str = include_str!("../../tests/fixtures/stress-ng/host-4m-64.txt");
    const HOST_64M_8: &str = include_str!("../../tests/fixtures/stress-ng/host-64m-8.txt");
    const HOST_3M_1: &str = include_str!("../../tests/fixtures/stress-ng/host-3m-1.txt");
    const RD_ZERO: &str = include_str!("../../tests/fixtures/stress-ng/rd-zero.txt");

    #[test]
    fn memrate_metrics_are_parsed() {
        let m = parse_memrate(HOST_4M_64).unwrap();
        assert_eq!(m.bogo_ops, Some(3));
        assert_eq!(m.real_time_s, Some(3.02));
        assert_eq!(m.cpu_pct, Some(1.64));
        assert_eq!(m.rss_max_kib, Some(6744));
        assert_eq!(m.tests.len(), 23);
        assert_eq!(
            m.tests[0],
            TestRate {
                test: "write64stoq".into(),
                mib_s: 63.78
            }
        );
        assert_eq!(m.tests.iter().filter(|t| t.is_write()).count(), 13);
        assert_eq!(m.tests[12].test, "memset");
        assert!(m.tests[12].is_write());
        assert_eq!(m.tests[22].test, "read8");
        assert!(!m.tests[22].is_write());

        let none = parse_memrate(HOST_64M_8).unwrap();
        assert_eq!(none.bogo_ops, Some(0));
        assert!(none.tests.is_empty());

        let one = parse_memrate(HOST_3M_1).unwrap();
        assert_eq!(one.tests.len(), 1);
        assert_eq!(one.tests[0].mib_s, 1.0);

        let e = parse_memrate(RD_ZERO).unwrap_err().to_string();
        assert!(e.contains("out of range for memrate-rd-mbs"), "{e}");
        assert!(parse_memrate("")
            .unwrap_err()
            .to_string()
            .contains("nothing"));
    }
}
