//! Statistics for comparing two bundles: descriptive statistics of one
//! sample, Welch's two-sided t-test, and the verdict on one metric. Pure
//! functions over `&[f64]`.
//!
//! The Student-t tail comes from `statrs` (its CDF, without its default
//! `nalgebra` and `rand` features). Welch's statistic and its
//! Welch–Satterthwaite degrees of freedom are ours: no well-kept crate
//! offers the test itself, and it is five lines, checked here against a
//! textbook example and hand computations.

use serde::Serialize;

/// Significance level of the test.
pub const ALPHA: f64 = 0.05;

/// Name of the test, as printed and serialised.
pub const TEST_NAME: &str = "Welch's t-test (two-sided, unequal variances)";

/// Descriptive statistics of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); `None` if n < 2.
    pub sd: Option<f64>,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// 95th percentile, nearest rank: the ⌈0.95·n⌉-th smallest value.
    pub p95: f64,
}

/// Arithmetic mean; `None` for an empty sample.
pub fn mean(x: &[f64]) -> Option<f64> {
    (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64)
}

/// Sample variance (n − 1 in the denominator); `None` if n < 2.
pub fn sample_variance(x: &[f64]) -> Option<f64> {
    if x.len() < 2 {
        return None;
    }
    let m = mean(x)?;
    Some(x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64)
}

/// Nearest-rank percentile (`p` in 0..=100): the ⌈p/100·n⌉-th smallest
/// value (the smallest for p = 0); `None` for an empty sample.
pub fn percentile_nearest_rank(x: &[f64], p: f64) -> Option<f64> {
    if x.is_empty() {
        return None;
    }
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    Some(s[rank.clamp(1, s.len()) - 1])
}

/// n, mean, sd, min, max and p95 of a sample; `None` if it is empty.
pub fn describe(x: &[f64]) -> Option<Stats> {
    Some(Stats {
        n: x.len(),
        mean: mean(x)?,
        sd: sample_variance(x).map(f64::sqrt),
        min: x.iter().copied().fold(f64::INFINITY, f64::min),
        max: x.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        p95: percentile_nearest_rank(x, 95.0)?,
    })
}

/// The result of [`welch_t_test`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WelchTest {
    /// t = (mean B − mean A) / √(s²A/nA + s²B/nB).
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value from Student's t distribution with `df`.
    pub p: f64,
}

/// Welch's unequal-variances t-test of B against A. `None` when either
/// sample has fewer than 2 values, or both have no spread at all (the
/// statistic is then undefined).
pub fn welch_t_test(a: &[f64], b: &[f64]) -> Option<WelchTest> {
    let (va, vb) = (sample_variance(a)?, sample_variance(b)?);
    let (qa, qb) = (va / a.len() as f64, vb / b.len() as f64);
    let se2 = qa + qb;
    if se2 <= 0.0 || !se2.is_finite() {
        return None;
    }
    let t = (mean(b)? - mean(a)?) / se2.sqrt();
    let df = se2 * se2 / (qa * qa / (a.len() - 1) as f64 + qb * qb / (b.len() - 1) as f64);
    Some(WelchTest {
        t,
        df,
        p: student_t_two_sided_p(t, df),
    })
}

/// P(|T| ≥ |t|) for Student's t distribution with `df` degrees of freedom
/// (`df` > 0, need not be an integer), from `statrs`' Student-t CDF.
pub fn student_t_two_sided_p(t: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return 0.0;
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(d) => (2.0 * d.cdf(-t.abs())).clamp(0.0, 1.0),
        Err(_) => f64::NAN,
    }
}

/// Whether the difference between A and B exceeds their spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Welch's p < [`ALPHA`], or the means differ and neither side varies
    /// at all.
    Beyond,
    /// Welch's p ≥ [`ALPHA`], or both sides are the same constant.
    Within,
    /// A side has fewer than 2 values: no test.
    NTooSmall,
    /// A side has no value at all for this metric.
    Missing,
}

/// One metric, A against B.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricComparison {
    /// Dotted path inside a repetition, e.g. `qemu.downtime_ms`.
    pub metric: String,
    /// A's statistics over its completed repetitions that have the metric.
    pub a: Option<Stats>,
    /// B's.
    pub b: Option<Stats>,
    /// mean B − mean A.
    pub diff: Option<f64>,
    /// (mean B − mean A) / |mean A| × 100; `None` if mean A is 0.
    pub rel_change_pct: Option<f64>,
    /// Welch's t-test, when it could be computed.
    pub welch: Option<WelchTest>,
    /// Whether the difference exceeds the spread.
    pub verdict: Verdict,
    /// Whether A's [min, max] and B's [min, max] overlap.
    pub ranges_overlap: Option<bool>,
}

/// Compares two samples of one metric.
pub fn compare_samples(metric: &str, a: &[f64], b: &[f64]) -> MetricComparison {
    let (sa, sb) = (describe(a), describe(b));
    let diff = sa.zip(sb).map(|(x, y)| y.mean - x.mean);
    let rel_change_pct = sa
        .zip(diff)
        .filter(|(x, _)| x.mean != 0.0)
        .map(|(x, d)| d / x.mean.abs() * 100.0);
    let welch = welch_t_test(a, b);
    let verdict = match (sa, sb) {
        (None, _) | (_, None) => Verdict::Missing,
        (Some(x), Some(y)) if x.n < 2 || y.n < 2 => Verdict::NTooSmall,
        _ => match welch {
            Some(w) if w.p < ALPHA => Verdict::Beyond,
            Some(_) => Verdict::Within,
            // Both samples constant: any difference is beyond a zero spread.
            None if diff.is_some_and(|d| d != 0.0) => Verdict::Beyond,
            None => Verdict::Within,
        },
    };
    MetricComparison {
        metric: metric.to_string(),
        a: sa,
        b: sb,
        diff,
        rel_change_pct,
        welch,
        verdict,
        ranges_overlap: sa.zip(sb).map(|(x, y)| x.min <= y.max && y.min <= x.max),
    }
}

fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p<0.001".into()
    } else {
        format!("p={p:.3}")
    }
}

impl MetricComparison {
    /// The table's "beyond spread?" cell.
    pub fn verdict_text(&self) -> String {
        match (self.verdict, self.welch) {
            (Verdict::Beyond, Some(w)) => format!("yes ({})", p_text(w.p)),
            (Verdict::Beyond, None) => "yes (no spread)".into(),
            (Verdict::Within, Some(w)) => format!("no ({})", p_text(w.p)),
            (Verdict::Within, None) => "no (identical)".into(),
            (Verdict::NTooSmall, _) => "n too small".into(),
            (Verdict::Missing, _) => {
                if self.a.is_none() {
                    "no data in A".into()
                } else {
                    "no data in B".into()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn descriptive_statistics_by_hand() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squares about the mean sum to 32,
        // sample variance 32/7.
        let x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let s = describe(&x).unwrap();
        assert_eq!(s.n, 8);
        assert_eq!(s.mean, 5.0);
        assert!(close(s.sd.unwrap(), (32.0f64 / 7.0).sqrt(), 1e-12));
        assert_eq!((s.min, s.max), (2.0, 9.0));
        // ⌈0.95·8⌉ = 8th smallest.
        assert_eq!(s.p95, 9.0);
        assert!(describe(&[]).is_none());
        let one = describe(&[3.5]).unwrap();
        assert_eq!((one.n, one.mean, one.sd, one.p95), (1, 3.5, None, 3.5));
        // Nearest rank: 20 values 1..=20, p95 → ⌈19⌉ = 19th = 19; p50 → 10th.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile_nearest_rank(&v, 95.0), Some(19.0));
        assert_eq!(percentile_nearest_rank(&v, 50.0), Some(10.0));
        assert_eq!(percentile_nearest_rank(&v, 0.0), Some(1.0));
        assert_eq!(percentile_nearest_rank(&v, 100.0), Some(20.0));
    }

    #[test]
    fn student_t_p_values_match_closed_forms_and_tables() {
        // df = 1 is Cauchy: P(|T| ≥ 1) = 1/2.
        assert!(close(student_t_two_sided_p(1.0, 1.0), 0.5, 1e-12));
        // df = 2: P(|T| ≥ t) = 1 − t/√(t² + 2).
        for t in [0.5, 2.0, 7.0] {
            let want = 1.0 - t / (t * t + 2.0f64).sqrt();
            assert!(close(student_t_two_sided_p(t, 2.0), want, 1e-12), "t={t}");
        }
        // Table: t(0.975; 10) = 2.228139, t(0.975; 30) = 2.042272,
        // t(0.995; 5) = 4.032143.
        assert!(close(student_t_two_sided_p(2.228139, 10.0), 0.05, 1e-6));
        assert!(close(student_t_two_sided_p(-2.042272, 30.0), 0.05, 1e-6));
        assert!(close(student_t_two_sided_p(4.032143, 5.0), 0.01, 1e-6));
        assert_eq!(student_t_two_sided_p(0.0, 7.0), 1.0);
        assert_eq!(student_t_two_sided_p(f64::INFINITY, 7.0), 0.0);
    }

    #[test]
    fn welch_by_hand() {
        // A = 1,2,3,4: mean 2.5, s² = 5/3. B = 3,5,7: mean 5, s² = 4.
        // s²A/nA = 5/12, s²B/nB = 4/3, sum 7/4.
        // t = 2.5/√(7/4) = 1.889822; df = (7/4)² / ((5/12)²/3 + (4/3)²/2)
        // = 3.0625 / (25/432 + 8/9) = 3.0625 / (409/432) = 3.234719.
        let w = welch_t_test(&[1.0, 2.0, 3.0, 4.0], &[3.0, 5.0, 7.0]).unwrap();
        assert!(close(w.t, 2.5 / 1.75f64.sqrt(), 1e-12));
        assert!(close(w.df, 3.0625 * 432.0 / 409.0, 1e-12));
        // p checked by numerical integration of the t density (Simpson).
        assert!(close(w.p, 0.148471, 1e-5), "{w:?}");
        // Swapping the samples flips t, not p.
        let r = welch_t_test(&[3.0, 5.0, 7.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!(close(r.t, -w.t, 1e-12) && close(r.p, w.p, 1e-12));
    }

    #[test]
    fn welch_textbook_example() {
        // Wikipedia, "Welch's t-test", example 1 (equal n, unequal
        // variances): t = −2.46, ν = 24.99 (Welch), p = 0.021 (0.021378 by
        // numerical integration of the t density).
        let a1 = [
            27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7,
            21.4,
        ];
        let a2 = [
            27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5,
            24.4,
        ];
        let w = welch_t_test(&a2, &a1).unwrap();
        assert!(close(w.t, -2.46, 0.005), "{w:?}");
        assert!(close(w.df, 24.99, 0.005), "{w:?}");
        assert!(close(w.p, 0.021378, 1e-5), "{w:?}");
    }

    #[test]
    fn verdicts() {
        let a = [50.0, 52.0, 48.0, 51.0];
        let shifted = [150.0, 149.0, 152.0, 151.0];
        let c = compare_samples("m", &a, &shifted);
        assert_eq!(c.verdict, Verdict::Beyond);
        assert_eq!(c.ranges_overlap, Some(false));
        assert!(close(c.diff.unwrap(), 100.25, 1e-9));
        assert!(close(
            c.rel_change_pct.unwrap(),
            100.25 / 50.25 * 100.0,
            1e-9
        ));
        let same = compare_samples("m", &a, &a);
        assert_eq!(same.verdict, Verdict::Within);
        assert_eq!(same.diff, Some(0.0));
        assert_eq!(same.ranges_overlap, Some(true));
        assert_eq!(compare_samples("m", &[1.0], &a).verdict, Verdict::NTooSmall);
        assert_eq!(compare_samples("m", &[], &a).verdict, Verdict::Missing);
        // Constant samples: equal → within, different → beyond.
        assert_eq!(
            compare_samples("m", &[3.0, 3.0], &[3.0, 3.0]).verdict,
            Verdict::Within
        );
        assert_eq!(
            compare_samples("m", &[3.0, 3.0], &[4.0, 4.0]).verdict,
            Verdict::Beyond
        );
        assert_eq!(
            compare_samples("m", &[0.0, 0.0], &[1.0, 1.0]).rel_change_pct,
            None
        );
    }
}
