//! `harness compare A B`: did a change move the numbers, beyond their
//! spread?
//!
//! Reads the `summary.json` of two bundles as JSON values (not as
//! [`measure::summary::Summary`]), so that fields added later compare too and
//! unknown ones are harmless; only the `schema` must be the same,
//! [`measure::summary::SCHEMA`]. Only repetitions with `status ==
//! "completed"` count. For each metric (a dotted path inside a repetition,
//! e.g. `qemu.downtime_ms`) and bundle it gives n, mean, sample standard
//! deviation, min, max and the nearest-rank 95th percentile; then B − A,
//! the relative change, Welch's two-sided t-test (p < 0.05 = beyond the
//! spread) when both sides have n ≥ 2, and whether the [min, max] ranges
//! overlap.
//!
//! The statistics are pure functions over `&[f64]` ([`describe`],
//! [`welch_t_test`], [`student_t_two_sided_p`]).

use anyhow::{bail, Context, Result};
use measure::stats::{compare_samples, MetricComparison, Stats, ALPHA, TEST_NAME};
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// The metrics shown first, in this order (when either bundle has them);
/// any other numeric field both bundles have follows, sorted by name.
pub const WELL_KNOWN_METRICS: &[&str] = &[
    "qemu.downtime_ms",
    "host.stop_to_resume_ms",
    "client.max_outage_ms",
    "client.max_gap_ms",
    "client.lost_probes",
    "qemu.total_time_ms",
    "qemu.transferred_bytes",
    "qemu.passes",
    "guest.dirty_rate_mib_s",
    "guest.corrupted_pages",
    "guest.corrupted_blocks",
    "storage.bytes_mirrored",
    "storage.time_to_ready_ms",
    "storage.ram_completed_to_resume_ms",
];

/// Whether a numeric leaf is a measure worth comparing: not the repetition
/// number, not an absolute timestamp (`*_ns`), not the swept setting.
fn is_comparable(path: &str) -> bool {
    path != "repetition" && path != "guest.sweep_value" && !path.ends_with("_ns")
}

/// What a compared bundle is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BundleInfo {
    /// The `summary.json` read.
    pub summary: PathBuf,
    /// `scenario`.
    pub scenario: String,
    /// `run_status`: `complete`, `incomplete` or `failed`.
    pub run_status: String,
    /// `acceleration`: `kvm` or `tcg`, if known.
    pub acceleration: Option<String>,
    /// Repetitions in the summary.
    pub repetitions: usize,
    /// Of those, `completed` (the ones compared).
    pub completed: usize,
}

/// The result of [`compare`]. Its `Display` is the table `harness compare`
/// prints; `--json` prints this serialised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Bundle A (the baseline).
    pub a: BundleInfo,
    /// Bundle B.
    pub b: BundleInfo,
    /// [`TEST_NAME`].
    pub test: String,
    /// [`ALPHA`].
    pub alpha: f64,
    /// Reasons to distrust the comparison (different scenarios, runs not
    /// complete, ...).
    pub warnings: Vec<String>,
    /// Per metric, well-known ones first.
    pub metrics: Vec<MetricComparison>,
}

/// `summary.json` of a bundle folder, or the path itself if it is a file.
fn summary_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("summary.json")
    } else {
        p.to_path_buf()
    }
}

/// A loaded summary: its description and its completed repetitions.
struct Loaded {
    info: BundleInfo,
    reps: Vec<Value>,
}

fn load(p: &Path) -> Result<Loaded> {
    let path = summary_path(p);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let schema = v.get("schema").and_then(Value::as_str);
    if schema != Some(measure::summary::SCHEMA) {
        bail!(
            "{} has schema {}, expected {:?} (is it a bundle's summary.json?)",
            path.display(),
            schema.map_or("(none)".to_string(), |s| format!("{s:?}")),
            measure::summary::SCHEMA
        );
    }
    let Some(all) = v.get("repetitions").and_then(Value::as_array) else {
        bail!("{} has no `repetitions` array", path.display());
    };
    let text_of = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let reps: Vec<Value> = all
        .iter()
        .filter(|r| r.get("status").and_then(Value::as_str) == Some("completed"))
        .cloned()
        .collect();
    Ok(Loaded {
        info: BundleInfo {
            summary: path.clone(),
            scenario: text_of("scenario").unwrap_or_default(),
            run_status: text_of("run_status").unwrap_or_default(),
            acceleration: text_of("acceleration"),
            repetitions: all.len(),
            completed: reps.len(),
        },
        reps,
    })
}

/// The value at a dotted path, if it is a number.
fn number_at(v: &Value, path: &str) -> Option<f64> {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_f64)
}

/// Every numeric leaf's dotted path in `v` (objects only; arrays skipped).
fn numeric_leaves(v: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    if let Value::Object(m) = v {
        for (k, x) in m {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match x {
                Value::Number(_) => {
                    out.insert(p);
                }
                Value::Object(_) => numeric_leaves(x, &p, out),
                _ => {}
            }
        }
    }
}

fn leaves_of(reps: &[Value]) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for r in reps {
        numeric_leaves(r, "", &mut out);
    }
    out.retain(|p| is_comparable(p));
    out
}

/// Compares bundle B against bundle A. Each argument is a bundle folder or
/// its `summary.json`. Errors name the file when it is missing, not JSON,
/// or not of schema [`measure::summary::SCHEMA`].
pub fn compare(a: &Path, b: &Path) -> Result<Comparison> {
    let la = load(a)?;
    let lb = load(b)?;
    let mut names: Vec<String> = WELL_KNOWN_METRICS.iter().map(|s| s.to_string()).collect();
    let (fa, fb) = (leaves_of(&la.reps), leaves_of(&lb.reps));
    names.extend(
        fa.intersection(&fb)
            .filter(|p| !WELL_KNOWN_METRICS.contains(&p.as_str()))
            .cloned(),
    );
    let sample = |reps: &[Value], m: &str| -> Vec<f64> {
        reps.iter().filter_map(|r| number_at(r, m)).collect()
    };
    let metrics = names
        .iter()
        .map(|m| compare_samples(m, &sample(&la.reps, m), &sample(&lb.reps, m)))
        .filter(|c| c.a.is_some() || c.b.is_some())
        .collect();
    let mut warnings = Vec::new();
    let (ia, ib) = (la.info, lb.info);
    if ia.scenario != ib.scenario {
        warnings.push(format!(
            "the scenarios differ (A: {:?}, B: {:?}): make sure that is the change you mean to measure",
            ia.scenario, ib.scenario
        ));
    }
    if ia.acceleration != ib.acceleration {
        warnings.push(format!(
            "the acceleration differs (A: {}, B: {})",
            ia.acceleration.as_deref().unwrap_or("?"),
            ib.acceleration.as_deref().unwrap_or("?")
        ));
    }
    for (label, i) in [("A", &ia), ("B", &ib)] {
        if i.run_status != "complete" {
            warnings.push(format!(
                "run {label} is {:?}, not \"complete\": only its {} completed repetition(s) count",
                i.run_status, i.completed
            ));
        }
        if i.completed == 0 {
            warnings.push(format!("run {label} has no completed repetition"));
        }
    }
    Ok(Comparison {
        a: ia,
        b: ib,
        test: TEST_NAME.into(),
        alpha: ALPHA,
        warnings,
        metrics,
    })
}

/// Decimals for values of this magnitude.
fn precision(magnitude: f64) -> usize {
    if magnitude >= 1000.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else {
        2
    }
}

fn side(s: &Option<Stats>, prec: usize) -> String {
    match s {
        None => "-".into(),
        Some(s) => match s.sd {
            Some(sd) => format!("{:.prec$} ± {:.prec$} ({})", s.mean, sd, s.n),
            None => format!("{:.prec$} (1)", s.mean),
        },
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (label, i) in [("A", &self.a), ("B", &self.b)] {
            writeln!(
                f,
                "{label}: {}  scenario {}, run {}, {}, {} of {} repetitions completed",
                i.summary.display(),
                i.scenario,
                i.run_status,
                i.acceleration.as_deref().unwrap_or("acceleration unknown"),
                i.completed,
                i.repetitions
            )?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        writeln!(
            f,
            "Only completed repetitions count. \"beyond spread?\": {}, p < {}; needs n >= 2 on both sides.",
            self.test, self.alpha
        )?;
        writeln!(f)?;
        let header = [
            "metric".to_string(),
            "A mean ± sd (n)".into(),
            "B mean ± sd (n)".into(),
            "Δ (B−A)".into(),
            "Δ%".into(),
            "beyond spread?".into(),
            "ranges overlap?".into(),
        ];
        let mut rows = vec![header];
        for m in &self.metrics {
            let mag = [m.a, m.b]
                .iter()
                .flatten()
                .map(|s| s.mean.abs())
                .fold(0.0, f64::max);
            let prec = precision(mag);
            rows.push([
                m.metric.clone(),
                side(&m.a, prec),
                side(&m.b, prec),
                m.diff.map_or("-".into(), |d| format!("{d:+.prec$}")),
                m.rel_change_pct.map_or("-".into(), |r| format!("{r:+.1}%")),
                m.verdict_text(),
                m.ranges_overlap
                    .map_or("-".into(), |o| if o { "yes" } else { "no" }.into()),
            ]);
        }
        let mut widths = [0usize; 7];
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        for (i, r) in rows.iter().enumerate() {
            let line = format!(
                "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:<w5$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
                w5 = widths[5],
            );
            write!(f, "{}", line.trim_end())?;
            if i + 1 < rows.len() {
                writeln!(f)?;
            }
        }
        if self.metrics.is_empty() {
            write!(f, "\n(no metric with data in either bundle)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_paths() {
        let v = serde_json::json!({
            "repetition": 1, "wall_time_ms": 3.0, "status": "completed",
            "qemu": {"downtime_ms": 12.5, "passes": 3},
            "client": {"max_gap_start_ns": 5, "lost_probes": null},
            "guest": {"sweep_value": 4, "x": [1, 2]}
        });
        assert_eq!(number_at(&v, "qemu.downtime_ms"), Some(12.5));
        assert_eq!(number_at(&v, "qemu.passes"), Some(3.0));
        assert_eq!(number_at(&v, "client.lost_probes"), None);
        assert_eq!(number_at(&v, "nope.x"), None);
        let leaves: Vec<String> = leaves_of(&[v]).into_iter().collect();
        assert_eq!(
            leaves,
            ["qemu.downtime_ms", "qemu.passes", "wall_time_ms"].map(String::from)
        );
    }
}
