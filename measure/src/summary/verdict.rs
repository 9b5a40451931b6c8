//! The verdict: what "transparent" means for a scenario, checked against
//! the summary. Pure.
//!
//! A scenario states it in its `[assert]` table:
//!
//! ```toml
//! [assert]
//! checks = [
//!     "client.max_outage_ms < 300",       # every completed repetition
//!     "p95(client.max_outage_ms) < 250",  # over the completed repetitions
//!     "guest.corrupted_pages == 0",
//! ]
//! all_completed = true                    # the default
//! ```
//!
//! A check is `METRIC OP VALUE` or `AGG(METRIC) OP VALUE`:
//! - `METRIC` is a dotted field of a repetition in `summary.json`
//!   (`qemu.downtime_ms`, `client.max_gap_ms`, ...; see docs/summary.md);
//!   an unknown name is an error when the scenario is read.
//! - `OP` is one of `<`, `<=`, `>`, `>=`, `==`, `!=`.
//! - `VALUE` is a number, `true`, `false` or a double-quoted string.
//! - Without `AGG`, the check holds when it holds for every completed
//!   repetition. A repetition without a value for the metric (not
//!   measured) fails it: what was not measured was not shown.
//! - `AGG` is `max`, `min`, `mean`, `p50`, `p95` or `p99` (nearest rank)
//!   over the completed repetitions' values; with no value at all it fails.
//! - `all_completed` (default `true`) adds the check that every repetition
//!   completed: a failed migration is not transparent.

use crate::migration::record::RepStatus;
use crate::summary::rep::RepSummary;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The `[assert]` table of a scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AssertSpec {
    /// Check expressions (see the [module documentation](self)).
    pub checks: Vec<String>,
    /// Every repetition must complete.
    pub all_completed: bool,
}

impl Default for AssertSpec {
    fn default() -> Self {
        Self {
            checks: Vec::new(),
            all_completed: true,
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// An aggregate over the completed repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Agg {
    /// Largest.
    Max,
    /// Smallest.
    Min,
    /// Arithmetic mean.
    Mean,
    /// Median, nearest rank.
    P50,
    /// 95th percentile, nearest rank.
    P95,
    /// 99th percentile, nearest rank.
    P99,
}

impl Agg {
    fn parse(s: &str) -> Option<Agg> {
        Some(match s {
            "max" => Agg::Max,
            "min" => Agg::Min,
            "mean" => Agg::Mean,
            "p50" => Agg::P50,
            "p95" => Agg::P95,
            "p99" => Agg::P99,
            _ => return None,
        })
    }

    /// Applies it to values (not empty).
    fn apply(self, values: &[f64]) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let k = (p * v.len() as f64).ceil() as usize;
            v[k.clamp(1, v.len()) - 1]
        };
        match self {
            Agg::Max => v[v.len() - 1],
            Agg::Min => v[0],
            Agg::Mean => v.iter().sum::<f64>() / v.len() as f64,
            Agg::P50 => rank(0.50),
            Agg::P95 => rank(0.95),
            Agg::P99 => rank(0.99),
        }
    }
}

/// One parsed check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The text as written.
    pub text: String,
    /// The aggregate, if any.
    pub agg: Option<Agg>,
    /// Dotted metric path.
    pub metric: String,
    /// Operator.
    pub op: Op,
    /// Right-hand side.
    pub value: Value,
}

/// Every dotted leaf path of a repetition in `summary.json`.
pub fn known_metrics() -> Vec<String> {
    let v = serde_json::to_value(RepSummary::example()).unwrap_or(Value::Null);
    let mut out = Vec::new();
    leaves(&v, String::new(), &mut out);
    out
}

fn leaves(v: &Value, prefix: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(x, p, out);
            }
        }
        _ if !prefix.is_empty() => out.push(prefix),
        _ => {}
    }
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// Parses one check, naming what is wrong.
pub fn parse_check(text: &str) -> Result<Check, String> {
    let t = text.trim();
    let ops = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let (pos, sym, op) = ops
        .iter()
        .filter_map(|&(s, op)| t.find(s).map(|p| (p, s, op)))
        .min_by_key(|&(p, s, _)| (p, std::cmp::Reverse(s.len())))
        .ok_or_else(|| format!("check \"{text}\" has no comparison (<, <=, >, >=, ==, !=)"))?;
    let lhs = t[..pos].trim();
    let rhs = t[pos + sym.len()..].trim();
    let (agg, metric) = match lhs.split_once('(') {
        Some((a, rest)) => {
            let agg = Agg::parse(a.trim()).ok_or_else(|| {
                format!(
                    "check \"{text}\": unknown aggregate `{}` (use max, min, mean, p50, p95 or p99)",
                    a.trim()
                )
            })?;
            let m = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("check \"{text}\": missing `)` after the metric"))?;
            (Some(agg), m.trim())
        }
        None => (None, lhs),
    };
    if metric.is_empty() {
        return Err(format!("check \"{text}\" names no metric"));
    }
    let known = known_metrics();
    if !known.iter().any(|k| k == metric) {
        let near: Vec<&String> = known
            .iter()
            .filter(|k| k.split('.').next() == metric.split('.').next())
            .collect();
        let hint = if near.is_empty() {
            format!(
                "{} and more",
                known.iter().take(6).cloned().collect::<Vec<_>>().join(", ")
            )
        } else {
            near.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!(
            "check \"{text}\": unknown metric `{metric}`; known ones include {hint}"
        ));
    }
    let value = if rhs == "true" || rhs == "false" {
        Value::Bool(rhs == "true")
    } else if let Some(s) = rhs.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Value::String(s.to_string())
    } else {
        let x: f64 = rhs.parse().map_err(|_| {
            format!("check \"{text}\": `{rhs}` is not a number, true, false or a \"string\"")
        })?;
        serde_json::Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| format!("check \"{text}\": `{rhs}` is not a finite number"))?
    };
    if agg.is_some() && !value.is_number() {
        return Err(format!(
            "check \"{text}\": an aggregate compares with a number, not `{rhs}`"
        ));
    }
    if value.is_number() || matches!(op, Op::Eq | Op::Ne) {
        Ok(Check {
            text: text.to_string(),
            agg,
            metric: metric.to_string(),
            op,
            value,
        })
    } else {
        Err(format!(
            "check \"{text}\": `{}` compares numbers; use == or != with `{rhs}`",
            op.symbol()
        ))
    }
}

fn holds(lhs: &Value, op: Op, rhs: &Value) -> bool {
    match (lhs.as_f64(), rhs.as_f64()) {
        (Some(a), Some(b)) => match op {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        },
        _ => match op {
            Op::Eq => lhs == rhs,
            Op::Ne => lhs != rhs,
            _ => false,
        },
    }
}

/// A repetition that failed a check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepFailure {
    /// 1-based repetition.
    pub repetition: u32,
    /// Its value (null when not measured).
    pub value: Value,
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckResult {
    /// The check as written.
    pub check: String,
    /// Whether it held.
    pub passed: bool,
    /// `every completed repetition` or the aggregate's name.
    pub scope: String,
    /// For an aggregate: its value over the completed repetitions.
    pub value: Option<Value>,
    /// Repetitions that failed a per-repetition check.
    pub failures: Vec<RepFailure>,
    /// One line for a person, with the numbers.
    pub message: String,
}

/// All checks of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// Every check held.
    pub passed: bool,
    /// Each check's outcome, in the scenario's order.
    pub checks: Vec<CheckResult>,
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "not measured".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.fract() != 0.0 => format!("{x:.3}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Evaluates `spec` against the repetitions of a summary. Checks that do
/// not parse are reported as failed checks (the scenario reader rejects
/// them earlier, so this only happens for a hand-edited bundle).
pub fn evaluate(spec: &AssertSpec, reps: &[RepSummary]) -> Verdict {
    let done: Vec<(u32, Value)> = reps
        .iter()
        .filter(|r| r.status == RepStatus::Completed)
        .map(|r| (r.repetition, serde_json::to_value(r).unwrap_or(Value::Null)))
        .collect();
    let mut checks = Vec::new();
    if spec.all_completed {
        let bad: Vec<RepFailure> = reps
            .iter()
            .filter(|r| r.status != RepStatus::Completed)
            .map(|r| RepFailure {
                repetition: r.repetition,
                value: Value::String(r.status.as_str().into()),
            })
            .collect();
        let message = if bad.is_empty() {
            format!("all {} repetitions completed", reps.len())
        } else {
            format!(
                "{} of {} repetitions did not complete: {}",
                bad.len(),
                reps.len(),
                bad.iter()
                    .map(|f| format!("#{} {}", f.repetition, show(&f.value)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        checks.push(CheckResult {
            check: "all_completed".into(),
            passed: bad.is_empty() && !reps.is_empty(),
            scope: "every repetition".into(),
            value: None,
            failures: bad,
            message: if reps.is_empty() {
                "no repetition ran".into()
            } else {
                message
            },
        });
    }
    for text in &spec.checks {
        checks.push(match parse_check(text) {
            Err(e) => CheckResult {
                check: text.clone(),
                passed: false,
                scope: "-".into(),
                value: None,
                failures: Vec::new(),
                message: e,
            },
            Ok(c) => evaluate_check(&c, &done),
        });
    }
    Verdict {
        passed: checks.iter().all(|c| c.passed),
        checks,
    }
}

fn evaluate_check(c: &Check, done: &[(u32, Value)]) -> CheckResult {
    let values: Vec<(u32, Value)> = done
        .iter()
        .map(|(n, v)| (*n, lookup(v, &c.metric).cloned().unwrap_or(Value::Null)))
        .collect();
    match c.agg {
        None => {
            let failures: Vec<RepFailure> = values
                .iter()
                .filter(|(_, v)| v.is_null() || !holds(v, c.op, &c.value))
                .map(|(n, v)| RepFailure {
                    repetition: *n,
                    value: v.clone(),
                })
                .collect();
            let passed = failures.is_empty() && !values.is_empty();
            let message = if values.is_empty() {
                format!("{}: no completed repetition to check", c.text)
            } else if passed {
                format!(
                    "{}: held in all {} completed repetitions",
                    c.text,
                    values.len()
                )
            } else {
                format!(
                    "{}: failed in {} of {} completed repetitions: {}",
                    c.text,
                    failures.len(),
                    values.len(),
                    failures
                        .iter()
                        .map(|f| format!("#{} {} = {}", f.repetition, c.metric, show(&f.value)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            CheckResult {
                check: c.text.clone(),
                passed,
                scope: "every completed repetition".into(),
                value: None,
                failures,
                message,
            }
        }
        Some(agg) => {
            let nums: Vec<f64> = values.iter().filter_map(|(_, v)| v.as_f64()).collect();
            let scope = format!("{agg:?}").to_lowercase();
            if nums.is_empty() {
                return CheckResult {
                    check: c.text.clone(),
                    passed: false,
                    scope,
                    value: None,
                    failures: Vec::new(),
                    message: format!(
                        "{}: {} was not measured in any completed repetition",
                        c.text, c.metric
                    ),
                };
            }
            let x = agg.apply(&nums);
            let xv = serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
            let passed = holds(&xv, c.op, &c.value);
            CheckResult {
                check: c.text.clone(),
                passed,
                message: format!(
                    "{}: {scope}({}) = {} over {} repetitions{}",
                    c.text,
                    c.metric,
                    show(&xv),
                    nums.len(),
                    if passed { "" } else { " -- FAILED" }
                ),
                scope,
                value: Some(xv),
                failures: Vec::new(),
            }
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "verdict: {}", if self.passed { "PASS" } else { "FAIL" })?;
        for c in &self.checks {
            writeln!(
                f,
                "  [{}] {}",
                if c.passed { "pass" } else { "FAIL" },
                c.message
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn rep(n: u32, status: RepStatus, outage: Option<f64>) -> RepSummary {
        let mut r = RepSummary::example();
        r.repetition = n;
        r.status = status;
        r.client.max_outage_ms = outage;
        r
    }

    fn spec(checks: &[&str]) -> AssertSpec {
        AssertSpec {
            checks: checks.iter().map(|s| s.to_string()).collect(),
            all_completed: true,
        }
    }

    #[test]
    fn checks_parse_or_say_what_is_wrong() {
        let c = parse_check("p95(client.max_outage_ms) <= 250").unwrap();
        assert_eq!(
            (c.agg, c.op, c.metric.as_str()),
            (Some(Agg::P95), Op::Le, "client.max_outage_ms")
        );
        assert_eq!(
            parse_check("status == \"completed\"").unwrap().value,
            Value::String("completed".into())
        );
        for (bad, says) in [
            ("client.max_outage_ms", "no comparison"),
            ("client.max_gap < 3", "unknown metric `client.max_gap`"),
            ("p90(client.max_gap_ms) < 3", "unknown aggregate `p90`"),
            ("client.max_gap_ms < fast", "is not a number"),
            ("client.max_gap_ms < \"x\"", "compares numbers"),
            ("max(client.max_gap_ms < 3", "missing `)`"),
            (" < 3", "names no metric"),
        ] {
            let e = parse_check(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        // The hint lists the metrics of the section named.
        let e = parse_check("client.nope < 1").unwrap_err();
        assert!(e.contains("client.max_outage_ms"), "{e}");
    }

    #[test]
    fn per_repetition_and_aggregate_checks_with_numbers() {
        let reps = [
            rep(1, RepStatus::Completed, Some(100.0)),
            rep(2, RepStatus::Completed, Some(400.0)),
            rep(3, RepStatus::Completed, Some(200.0)),
        ];
        let v = evaluate(
            &spec(&[
                "client.max_outage_ms < 300",
                "mean(client.max_outage_ms) < 300",
                "p50(client.max_outage_ms) == 200",
            ]),
            &reps,
        );
        assert!(!v.passed);
        assert!(v.checks[0].passed, "all completed");
        let c = &v.checks[1];
        assert!(!c.passed);
        assert_eq!(
            c.failures,
            vec![RepFailure {
                repetition: 2,
                value: serde_json::json!(400.0)
            }]
        );
        assert!(
            c.message.contains("#2 client.max_outage_ms = 400"),
            "{}",
            c.message
        );
        assert!(v.checks[2].passed, "{}", v.checks[2].message);
        assert_eq!(
            v.checks[2].value,
            Some(serde_json::json!(233.33333333333334))
        );
        assert!(v.checks[3].passed, "{}", v.checks[3].message);
        let shown = v.to_string();
        assert!(shown.starts_with("verdict: FAIL"), "{shown}");
    }

    #[test]
    fn failed_repetitions_and_missing_values_fail_the_verdict() {
        let reps = [
            rep(1, RepStatus::Completed, None),
            rep(2, RepStatus::Failed, Some(1.0)),
        ];
        let v = evaluate(
            &spec(&[
                "client.max_outage_ms < 300",
                "max(client.max_outage_ms) < 300",
            ]),
            &reps,
        );
        assert!(!v.passed);
        assert!(
            v.checks[0].message.contains("#2 failed"),
            "{}",
            v.checks[0].message
        );
        assert!(
            v.checks[1].message.contains("not measured"),
            "{}",
            v.checks[1].message
        );
        assert!(
            v.checks[2].message.contains("not measured"),
            "{}",
            v.checks[2].message
        );
        // Without all_completed, a failed repetition is left out, not failed.
        let lenient = AssertSpec {
            all_completed: false,
            ..spec(&[])
        };
        assert!(evaluate(&lenient, &reps).passed);
        // No repetition at all shows nothing.
        assert!(!evaluate(&spec(&[]), &[]).passed);
    }
}
