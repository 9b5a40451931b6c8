//! The verdict as JUnit XML, the test report format GitLab, Jenkins and
//! GitHub (through a JUnit reporting action) show natively. Pure: a
//! [`Summary`] in, the document out.
//!
//! One `<testsuites>` holds one `<testsuite>` for the run, named after the
//! scenario (a fleet's holds one per member, each its own run:
//! `measure::fleet::to_junit`). One suite, not one per repetition: the run is what a CI job
//! produces and what the verdict judges, an aggregate check
//! (`mean(...) < 300`) belongs to no repetition, and so the suite's counts
//! are the verdict's own.
//!
//! Its test cases, in this order (classnames `lmig.<scenario>.run`,
//! `.migrations` and `.checks`, the scenario's name with every character
//! other than a letter, digit, `-` or `_` made `_`, so a CI's
//! package/class tree shows one package per scenario):
//! - `run complete`: an `<error>` with the run's error when the run was
//!   interrupted, aborted or could not start.
//! - `rep N: migration completed`, one per repetition, timed by the
//!   repetition's wall time: a `<failure>` with its error when it did not
//!   complete; `<skipped>` instead when the scenario's `[assert]` says
//!   `all_completed = false`, which leaves such a repetition out of the
//!   verdict.
//! - for each `[assert]` check, in the scenario's order: a per-repetition
//!   check gives `rep N: CHECK` for every repetition, a `<failure>` where
//!   the value fails the check and `<skipped>` where the repetition did not
//!   complete (the check applies to completed ones); an aggregate check
//!   gives one `CHECK`. A check that failed with no repetition to blame
//!   (none completed) gives a `CHECK` with that failure too, so a failed
//!   verdict always shows a failure. A check that does not parse (only in
//!   a hand-edited bundle) is an `<error>`.
//!
//! So the document shows a failure or an error exactly when the verdict
//! failed, or (without `[assert]`) a repetition did not complete, or the
//! run is not complete.
//!
//! Everything from the summary is escaped for XML 1.0, and characters XML
//! 1.0 does not allow at all (most control characters, U+FFFE, U+FFFF) are
//! replaced by U+FFFD. The summary has no start times, so the suite has no
//! `timestamp`; check test cases take no time (`time="0.000"`), so the
//! suite's `time` is the sum of the repetitions' wall times.

use crate::migration::record::RepStatus;
use crate::summary::rep::RepSummary;
use crate::summary::verdict::{parse_check, CheckResult, Verdict};
use crate::summary::Summary;
use serde_json::Value;

/// The verdict's scope of a per-repetition check.
const PER_REPETITION: &str = "every completed repetition";

/// How a test case ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Passed,
    /// What was tested did not hold.
    Failure {
        message: String,
        kind: String,
        text: String,
    },
    /// The test could not be done.
    Error {
        message: String,
        kind: String,
    },
    /// The test does not apply.
    Skipped {
        message: String,
    },
}

#[derive(Debug, Clone)]
struct Case {
    classname: String,
    name: String,
    time_s: f64,
    outcome: Outcome,
}

/// One `<testsuite>`: a run's (or a fleet member's) name, properties,
/// test cases and printed verdict.
#[derive(Debug, Clone)]
pub struct Suite {
    name: String,
    properties: Vec<(&'static str, String)>,
    cases: Vec<Case>,
    system_out: String,
}

impl Suite {
    /// The suite of one run's summary, laid out as the
    /// [module documentation](self) says.
    pub fn of(summary: &Summary) -> Suite {
        let mut out = String::new();
        if let Some(v) = &summary.verdict {
            out.push_str(&v.to_string());
        }
        if let Some(e) = &summary.error {
            out.push_str(&format!("error: {e}\n"));
        }
        Suite {
            name: summary.scenario.clone(),
            properties: properties(summary),
            cases: cases(summary),
            system_out: out,
        }
    }

    /// The suite of a run that left no summary (a fleet member that could
    /// not start): its `run complete` case is an `<error>` with `message`.
    pub fn failed_run(name: &str, message: &str) -> Suite {
        Suite {
            name: name.into(),
            properties: vec![("run_status", "failed".into())],
            cases: vec![Case {
                classname: format!("lmig.{}.run", class_part(name)),
                name: "run complete".into(),
                time_s: 0.0,
                outcome: Outcome::Error {
                    message: message.into(),
                    kind: "run failed".into(),
                },
            }],
            system_out: format!("error: {message}\n"),
        }
    }

    fn count(&self, f: fn(&Outcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.outcome)).count()
    }

    fn time_s(&self) -> f64 {
        self.cases.iter().map(|c| c.time_s).sum()
    }

    fn render(&self, x: &mut String) {
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">\n",
            attr(&self.name),
            self.cases.len(),
            self.count(is_failure),
            self.count(is_error),
            self.count(|o| matches!(o, Outcome::Skipped { .. })),
            seconds(self.time_s())
        ));
        x.push_str("    <properties>\n");
        for (name, value) in &self.properties {
            x.push_str(&format!(
                "      <property name=\"{}\" value=\"{}\"/>\n",
                attr(name),
                attr(value)
            ));
        }
        x.push_str("    </properties>\n");
        for c in &self.cases {
            render_case(x, c);
        }
        if !self.system_out.is_empty() {
            x.push_str(&format!(
                "    <system-out>{}</system-out>\n",
                text(&self.system_out)
            ));
        }
        x.push_str("  </testsuite>\n");
    }
}

fn is_failure(o: &Outcome) -> bool {
    matches!(o, Outcome::Failure { .. })
}

fn is_error(o: &Outcome) -> bool {
    matches!(o, Outcome::Error { .. })
}

/// The summary's verdict (or, without `[assert]`, its repetitions' and
/// the run's outcome) as a JUnit XML document, laid out as the
/// [module documentation](self) says.
pub fn to_junit(summary: &Summary) -> String {
    to_junit_suites(&[Suite::of(summary)])
}

/// Several suites in one document (a fleet: one per member), the
/// `<testsuites>` counts their sums.
pub fn to_junit_suites(suites: &[Suite]) -> String {
    let sum = |f: fn(&Suite) -> usize| suites.iter().map(f).sum::<usize>();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"lmig\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{}\">\n",
        sum(|s| s.cases.len()),
        sum(|s| s.count(is_failure)),
        sum(|s| s.count(is_error)),
        seconds(suites.iter().map(Suite::time_s).sum())
    ));
    for s in suites {
        s.render(&mut x);
    }
    x.push_str("</testsuites>\n");
    x
}

fn properties(s: &Summary) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("schema", s.schema.clone()),
        ("run_status", s.run_status.clone()),
        (
            "verdict",
            match &s.verdict {
                Some(v) if v.passed => "pass".into(),
                Some(_) => "fail".into(),
                None => "none (no [assert] checks)".into(),
            },
        ),
    ];
    if let Some(a) = &s.acceleration {
        p.push(("acceleration", a.clone()));
    }
    p
}

fn render_case(x: &mut String, c: &Case) {
    let open = format!(
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
        attr(&c.classname),
        attr(&c.name),
        seconds(c.time_s)
    );
    match &c.outcome {
        Outcome::Passed => x.push_str(&format!("{open}/>\n")),
        Outcome::Failure {
            message,
            kind,
            text: body,
        } => x.push_str(&format!(
            "{open}>\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
            attr(message),
            attr(kind),
            text(body)
        )),
        Outcome::Error { message, kind } => x.push_str(&format!(
            "{open}>\n      <error message=\"{}\" type=\"{}\"/>\n    </testcase>\n",
            attr(message),
            attr(kind)
        )),
        Outcome::Skipped { message } => x.push_str(&format!(
            "{open}>\n      <skipped message=\"{}\"/>\n    </testcase>\n",
            attr(message)
        )),
    }
}

/// Seconds with three decimals, as the readers' `time` pattern wants
/// (digits, a point, digits: no sign, no exponent).
fn seconds(s: f64) -> String {
    format!("{:.3}", if s.is_finite() && s > 0.0 { s } else { 0.0 })
}

fn cases(s: &Summary) -> Vec<Case> {
    let base = format!("lmig.{}", class_part(&s.scenario));
    let class = |k: &str| format!("{base}.{k}");
    let mut cases = vec![Case {
        classname: class("run"),
        name: "run complete".into(),
        time_s: 0.0,
        outcome: if s.run_status == "complete" {
            Outcome::Passed
        } else {
            Outcome::Error {
                message: s
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("the run is {}", s.run_status)),
                kind: format!("run {}", s.run_status),
            }
        },
    }];
    let all_completed = s.verdict.as_ref().map(all_completed_check);
    // Without [assert], every repetition must complete, as the default
    // `all_completed = true` would have it.
    let must_complete = all_completed.is_none_or(|c| c.is_some());
    for r in &s.repetitions {
        cases.push(Case {
            classname: class("migrations"),
            name: format!("rep {}: migration completed", r.repetition),
            time_s: r.wall_time_ms / 1000.0,
            outcome: migration_outcome(r, must_complete),
        });
    }
    if let Some(Some(c)) = all_completed {
        if !c.passed
            && s.repetitions
                .iter()
                .all(|r| r.status == RepStatus::Completed)
        {
            cases.push(check_case(class("checks"), c));
        }
    }
    if let Some(v) = &s.verdict {
        for c in v.checks.iter().filter(|c| !is_all_completed(c)) {
            let before = cases.len();
            if c.scope == PER_REPETITION {
                for r in &s.repetitions {
                    cases.push(Case {
                        classname: class("checks"),
                        name: format!("rep {}: {}", r.repetition, c.check),
                        time_s: 0.0,
                        outcome: rep_check_outcome(c, r),
                    });
                }
            } else if c.scope == "-" {
                cases.push(Case {
                    classname: class("checks"),
                    name: c.check.clone(),
                    time_s: 0.0,
                    outcome: Outcome::Error {
                        message: c.message.clone(),
                        kind: "invalid check".into(),
                    },
                });
                continue;
            } else {
                cases.push(check_case(class("checks"), c));
            }
            let failed = cases[before..]
                .iter()
                .any(|k| matches!(k.outcome, Outcome::Failure { .. }));
            if !c.passed && !failed {
                cases.push(check_case(class("checks"), c));
            }
        }
    }
    cases
}

fn is_all_completed(c: &CheckResult) -> bool {
    c.check == "all_completed" && c.scope == "every repetition"
}

/// The verdict's `all_completed` check, if the scenario kept it on.
fn all_completed_check(v: &Verdict) -> Option<&CheckResult> {
    v.checks.iter().find(|c| is_all_completed(c))
}

fn migration_outcome(r: &RepSummary, must_complete: bool) -> Outcome {
    if r.status == RepStatus::Completed {
        return Outcome::Passed;
    }
    let status = r.status.as_str();
    let why = r.error.as_deref().unwrap_or("no error recorded");
    if must_complete {
        Outcome::Failure {
            message: format!("repetition {} {status}: {why}", r.repetition),
            kind: format!("migration {status}"),
            text: why.to_string(),
        }
    } else {
        Outcome::Skipped {
            message: format!(
                "repetition {} {status} ({why}); [assert] all_completed = false leaves it out",
                r.repetition
            ),
        }
    }
}

/// A check as one test case: passed, or failed with the verdict's message.
fn check_case(classname: String, c: &CheckResult) -> Case {
    Case {
        classname,
        name: c.check.clone(),
        time_s: 0.0,
        outcome: if c.passed {
            Outcome::Passed
        } else {
            Outcome::Failure {
                message: c.message.clone(),
                kind: "check failed".into(),
                text: match &c.value {
                    Some(v) => format!("{}: {} = {}\n", c.check, c.scope, show(v)),
                    None => format!("{}\n", c.message),
                },
            }
        },
    }
}

fn rep_check_outcome(c: &CheckResult, r: &RepSummary) -> Outcome {
    if r.status != RepStatus::Completed {
        return Outcome::Skipped {
            message: format!(
                "repetition {} {}: the check applies to completed repetitions",
                r.repetition,
                r.status.as_str()
            ),
        };
    }
    match c.failures.iter().find(|f| f.repetition == r.repetition) {
        None => Outcome::Passed,
        Some(f) => {
            let metric = parse_check(&c.check).map_or_else(|_| "value".to_string(), |k| k.metric);
            Outcome::Failure {
                message: format!(
                    "repetition {}: {metric} = {} fails {}",
                    r.repetition,
                    show(&f.value),
                    c.check
                ),
                kind: "check failed".into(),
                text: format!("{}\n", c.message),
            }
        }
    }
}

/// A value as the verdict's messages show it.
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

/// The scenario's name as one part of a dotted classname.
fn class_part(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "unnamed".into()
    } else {
        s
    }
}

/// Whether XML 1.0 allows `c` at all (its `Char` production).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn escape(s: &str, in_attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if in_attribute => out.push_str("&quot;"),
            '\'' if in_attribute => out.push_str("&apos;"),
            // A reader normalises literal white space in an attribute to
            // spaces; a reference keeps it.
            '\n' if in_attribute => out.push_str("&#10;"),
            '\t' if in_attribute => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// `s` escaped for an attribute value in double quotes.
fn attr(s: &str) -> String {
    escape(s, true)
}

/// `s` escaped for character data.
fn text(s: &str) -> String {
    escape(s, false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::summary::verdict::{evaluate, AssertSpec};
    use crate::summary::SCHEMA;

    fn rep(n: u32, status: RepStatus, outage: Option<f64>) -> RepSummary {
        let mut r = RepSummary::example();
        r.repetition = n;
        r.status = status;
        r.wall_time_ms = 1500.0;
        r.client.max_outage_ms = outage;
        if status != RepStatus::Completed {
            r.error = Some("destination QEMU exited".into());
        }
        r
    }

    fn summary(reps: Vec<RepSummary>, spec: Option<AssertSpec>) -> Summary {
        Summary {
            schema: SCHEMA.into(),
            scenario: "quick.start".into(),
            run_status: "complete".into(),
            error: None,
            acceleration: Some("tcg".into()),
            completed: reps
                .iter()
                .filter(|r| r.status == RepStatus::Completed)
                .count() as u32,
            failed: reps
                .iter()
                .filter(|r| r.status == RepStatus::Failed)
                .count() as u32,
            verdict: spec.map(|s| evaluate(&s, &reps)),
            repetitions: reps,
            probe_overall: None,
            final_check: None,
            clock: None,
        }
    }

    fn spec(checks: &[&str], all_completed: bool) -> AssertSpec {
        AssertSpec {
            checks: checks.iter().map(|s| s.to_string()).collect(),
            all_completed,
        }
    }

    /// (tests, failures, errors, skipped) by counting elements.
    fn counted(x: &str) -> (usize, usize, usize, usize) {
        (
            x.matches("<testcase ").count(),
            x.matches("<failure ").count(),
            x.matches("<error ").count(),
            x.matches("<skipped ").count(),
        )
    }

    fn suite_counts(x: &str) -> String {
        let line = x.lines().find(|l| l.contains("<testsuite ")).unwrap();
        let at = line.find("tests=").unwrap();
        line[at..line.find(" time=").unwrap()].to_string()
    }

    #[test]
    fn escapes_markup_and_replaces_what_xml_does_not_allow() {
        assert_eq!(
            attr("a<b & \"c\" 'd' > e\n\tf"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos; &gt; e&#10;&#9;f"
        );
        assert_eq!(text("x\n\"y\" ]]> z\r"), "x\n\"y\" ]]&gt; z&#13;");
        assert_eq!(
            text("nul\0 bel\u{7} esc\u{1b} \u{FFFE}\u{FFFF} ok \u{10FFFF}é"),
            "nul\u{FFFD} bel\u{FFFD} esc\u{FFFD} \u{FFFD}\u{FFFD} ok \u{10FFFF}é"
        );
        assert_eq!(class_part("a.b c/ü-_9"), "a_b_c__-_9");
        assert_eq!(class_part(""), "unnamed");
        assert_eq!(seconds(1.23456), "1.235");
        assert_eq!(seconds(f64::NAN), "0.000");
        assert_eq!(seconds(-2.0), "0.000");
    }

    #[test]
    fn a_failing_check_is_a_failure_with_the_verdict_message_and_the_value() {
        let s = summary(
            vec![
                rep(1, RepStatus::Completed, Some(100.0)),
                rep(2, RepStatus::Completed, Some(400.0)),
                rep(3, RepStatus::Completed, Some(200.0)),
            ],
            Some(spec(
                &[
                    "client.max_outage_ms < 300",
                    "mean(client.max_outage_ms) < 300",
                    "max(client.max_outage_ms) < 300",
                ],
                true,
            )),
        );
        let x = to_junit(&s);
        // run + 3 migrations + 3 per-repetition + 2 aggregates.
        assert_eq!(counted(&x), (9, 2, 0, 0), "{x}");
        assert_eq!(
            suite_counts(&x),
            "tests=\"9\" failures=\"2\" errors=\"0\" skipped=\"0\"",
            "{x}"
        );
        assert!(x.contains("time=\"4.500\">"), "{x}");
        assert!(
            x.contains(
                "<testcase classname=\"lmig.quick_start.checks\" name=\"rep 2: client.max_outage_ms &lt; 300\" time=\"0.000\">\n      \
                 <failure message=\"repetition 2: client.max_outage_ms = 400.0 fails client.max_outage_ms &lt; 300\" type=\"check failed\">\
                 client.max_outage_ms &lt; 300: failed in 1 of 3 completed repetitions: #2 client.max_outage_ms = 400.0\n</failure>"
            ),
            "{x}"
        );
        assert!(
            x.contains("name=\"rep 1: client.max_outage_ms &lt; 300\" time=\"0.000\"/>"),
            "{x}"
        );
        assert!(
            x.contains(
                "<failure message=\"max(client.max_outage_ms) &lt; 300: max(client.max_outage_ms) = 400.0 over 3 repetitions -- FAILED\" type=\"check failed\">\
                 max(client.max_outage_ms) &lt; 300: max = 400.0\n</failure>"
            ),
            "{x}"
        );
        assert!(
            x.contains("name=\"mean(client.max_outage_ms) &lt; 300\" time=\"0.000\"/>"),
            "{x}"
        );
        assert!(
            x.contains("<property name=\"verdict\" value=\"fail\"/>"),
            "{x}"
        );
        assert!(x.contains("<system-out>verdict: FAIL\n"), "{x}");
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"lmig\" tests=\"9\" failures=\"2\" errors=\"0\" time=\"4.500\">"));
        assert!(x.ends_with("  </testsuite>\n</testsuites>\n"));
    }

    #[test]
    fn a_failed_migration_fails_and_its_repetition_is_skipped_by_the_checks() {
        let reps = vec![
            rep(1, RepStatus::Completed, Some(100.0)),
            rep(2, RepStatus::Failed, None),
        ];
        let x = to_junit(&summary(
            reps.clone(),
            Some(spec(&["client.max_outage_ms < 300"], true)),
        ));
        // run, 2 migrations, 2 per-repetition checks.
        assert_eq!(counted(&x), (5, 1, 0, 1), "{x}");
        assert!(
            x.contains(
                "name=\"rep 2: migration completed\" time=\"1.500\">\n      \
                 <failure message=\"repetition 2 failed: destination QEMU exited\" type=\"migration failed\">destination QEMU exited</failure>"
            ),
            "{x}"
        );
        assert!(
            x.contains(
                "name=\"rep 2: client.max_outage_ms &lt; 300\" time=\"0.000\">\n      \
                 <skipped message=\"repetition 2 failed: the check applies to completed repetitions\"/>"
            ),
            "{x}"
        );
        // all_completed = false: the verdict passes, and the document
        // shows no failure.
        let s = summary(
            reps.clone(),
            Some(spec(&["client.max_outage_ms < 300"], false)),
        );
        assert!(s.verdict.as_ref().unwrap().passed);
        let x = to_junit(&s);
        assert_eq!(counted(&x), (5, 0, 0, 2), "{x}");
        assert!(x.contains("all_completed = false leaves it out"), "{x}");
        // Without [assert]: one test case per repetition (and the run's).
        let x = to_junit(&summary(reps, None));
        assert_eq!(counted(&x), (3, 1, 0, 0), "{x}");
        assert!(x.contains("<property name=\"verdict\" value=\"none (no [assert] checks)\"/>"));
        assert!(!x.contains("<system-out>"), "{x}");
    }

    #[test]
    fn a_verdict_that_failed_always_shows_a_failure() {
        // No completed repetition: the per-repetition check failed with
        // no repetition to blame.
        let s = summary(
            vec![rep(1, RepStatus::Interrupted, None)],
            Some(spec(&["client.max_outage_ms < 300"], false)),
        );
        assert!(!s.verdict.as_ref().unwrap().passed);
        let x = to_junit(&s);
        assert_eq!(counted(&x), (4, 1, 0, 2), "{x}");
        assert!(
            x.contains("name=\"client.max_outage_ms &lt; 300\" time=\"0.000\">\n      <failure message=\"client.max_outage_ms &lt; 300: no completed repetition to check\""),
            "{x}"
        );
        // No repetition at all, and a run that could not start.
        let mut s = summary(Vec::new(), Some(spec(&[], true)));
        s.run_status = "failed".into();
        s.error = Some("no KVM & no \"tcg\"\u{1}".into());
        let x = to_junit(&s);
        assert_eq!(counted(&x), (2, 1, 1, 0), "{x}");
        assert!(
            x.contains(
                "<error message=\"no KVM &amp; no &quot;tcg&quot;\u{FFFD}\" type=\"run failed\"/>"
            ),
            "{x}"
        );
        assert!(x.contains("name=\"all_completed\""), "{x}");
        assert!(
            x.contains("error: no KVM &amp; no \"tcg\"\u{FFFD}\n</system-out>"),
            "{x}"
        );
    }

    #[test]
    fn a_check_that_does_not_parse_is_an_error() {
        let mut s = summary(vec![rep(1, RepStatus::Completed, Some(1.0))], None);
        s.verdict = Some(evaluate(&spec(&["client.nope < 1"], true), &s.repetitions));
        let x = to_junit(&s);
        assert_eq!(counted(&x), (3, 0, 1, 0), "{x}");
        assert!(x.contains("type=\"invalid check\""), "{x}");
        assert_eq!(
            suite_counts(&x),
            "tests=\"3\" failures=\"0\" errors=\"1\" skipped=\"0\""
        );
    }
}
