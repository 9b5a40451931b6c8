//! Workloads the harness starts and stops through the control API: the
//! registry ([`Workload`]) that starts a spec as one of five kinds and
//! reports, verifies and stops it.
//!
//! Five kinds:
//!
//! - *dirty memory* ([`dirty`]): a working set pre-touched with
//!   non-zero data (so QEMU's zero-page detection cannot skip it), split
//!   among 1 to 64 writer threads that rewrite whole 4 KiB pages with
//!   verifiable content, in a `sequential`, `random` or `hotcold` pattern,
//!   paced with absolute deadlines in 2 ms ticks so that pages written per
//!   second times 4 KiB matches the target rate (rate 0: as fast as
//!   possible); its integrity can be checked while it runs and is checked
//!   when it stops;
//! - *disk* ([`disk`]): a region of a block device (or a regular file)
//!   pre-filled with stamped blocks ([`wire::disk_block`]), then rewritten
//!   block by block by one writer thread, paced like the dirty memory;
//!   its integrity is checked by reading the region back (while the
//!   writer pauses, and when it stops), and a check can *hold* the writer
//!   so the host can read the image in a known state;
//! - *command* (`command`): a program started as a child process (output
//!   to `/tmp/<name>.log`, whose last 16 KiB every report carries in
//!   `output`), ended by its PID with SIGTERM, then SIGKILL after
//!   [`TERM_GRACE`]. As PID 1 the agent also runs a reaper thread that
//!   waits for every child: whoever reaps a program of ours (that thread
//!   through [`note_reaped`], or the workload itself) stores its exit
//!   status in one shared table, so it is never lost and never reaped
//!   twice;
//! - *rtp* ([`stream_rtp`]): an uploaded clip streamed over UDP as
//!   H.264 RTP in real time, looping, on its own thread;
//! - *http* ([`stream_http`]): an uploaded file served as a paced
//!   progressive download, on its own thread and runtime.
//!
//! The streaming kinds take their file from the agent's uploaded files
//! ([`Workload::start_with_files`]).
//!
//! **Module layout.** This module (the registry) uses the kinds; the kinds
//! use only `shared` (the error type, page size, uploaded files, panic
//! text, per-second counters, the random-pattern generator) and never this
//! module nor each other, so the imports form a DAG: `workload` →
//! {`dirty`, `disk`, `command`, `stream_rtp`, `stream_http`} → `shared`.

mod command;
pub mod dirty;
pub mod disk;
mod shared;
pub mod stream_http;
pub mod stream_rtp;

use wire::control::{IntegrityReport, WorkloadReport, WorkloadSpec};

use self::command::Child;
pub use self::command::{note_reaped, START_WATCH, TERM_GRACE};
use self::dirty::{DirtyParams, DirtyWorkload, Verifier, VerifyError};
use self::disk::{DiskParams, DiskVerifier, DiskVerifyError, DiskWorkload};
pub use self::shared::{Files, WorkloadError, MEMORY_RESERVE_MIB, PAGE_SIZE};
use self::stream_http::{HttpParams, HttpWorkload};
use self::stream_rtp::{RtpParams, RtpWorkload};

/// A started workload (running, or stopped with its final numbers).
#[derive(Debug)]
pub struct Workload {
    name: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Dirty(DirtyWorkload),
    Disk(DiskWorkload),
    Command(Child),
    Rtp(RtpWorkload),
    Http(HttpWorkload),
}

/// `MemAvailable` from `/proc/meminfo`, in MiB (`None` if unreadable).
pub fn mem_available_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Checks a dirty spec, naming the field at fault, and that the working
/// set fits in the guest's available memory.
fn validate(spec: &WorkloadSpec) -> Result<DirtyParams, WorkloadError> {
    let WorkloadSpec::Dirty {
        working_set_mib,
        rate_mib_s,
        pattern,
        hot_fraction,
        hot_share,
        threads,
    } = *spec
    else {
        return Err(WorkloadError::Invalid("not a dirty-memory workload".into()));
    };
    let params = DirtyParams::new(
        working_set_mib,
        rate_mib_s,
        pattern,
        hot_fraction,
        hot_share,
        threads,
    )?;
    if let Some(available_mib) = mem_available_mib() {
        // The page-version table costs 8 bytes per 4 KiB page.
        let needed = working_set_mib.saturating_add(working_set_mib / 512 + 1);
        if needed.saturating_add(MEMORY_RESERVE_MIB) > available_mib {
            return Err(WorkloadError::InsufficientMemory {
                asked: working_set_mib,
                available_mib,
            });
        }
    }
    Ok(params)
}

/// Checks a disk spec, naming the field at fault, and that its version
/// table fits in the guest's available memory.
fn validate_disk(spec: &WorkloadSpec) -> Result<DiskParams, WorkloadError> {
    let params = DiskParams::new(spec)?;
    if let Some(available_mib) = mem_available_mib() {
        let table_mib = params.table_mib();
        if table_mib.saturating_add(MEMORY_RESERVE_MIB) > available_mib {
            return Err(WorkloadError::Invalid(format!(
                "region_mib and block_kib need a version table of {table_mib} MiB (8 bytes per block): MemAvailable is {available_mib} MiB and {MEMORY_RESERVE_MIB} MiB stay reserved; use a larger block_kib or a smaller region_mib"
            )));
        }
    }
    Ok(params)
}

/// Why a workload could not be verified, held or resumed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyRefused {
    /// Only dirty-memory and disk workloads can be verified.
    #[error("workload {0:?} is not a dirty-memory or disk workload")]
    NotDirty(String),
    /// The workload is stopped (or stopped meanwhile), or failed.
    #[error("workload {0:?} is not running")]
    NotRunning(String),
    /// `hold` asked of a workload that cannot be held (dirty memory).
    #[error("workload {0:?} is a dirty-memory workload: only a disk workload can be held (verify without \"hold\")")]
    HoldUnsupported(String),
    /// `resume` of a workload that is not held.
    #[error("workload {name:?} is not held: {why}")]
    NotHeld {
        /// The workload.
        name: String,
        /// Why (never held, resumed, released after the limit, not a
        /// disk workload).
        why: String,
    },
    /// A writer thread died, or a disk workload's device failed.
    #[error("workload {name:?}: {why}")]
    Failed {
        /// The workload.
        name: String,
        /// What happened.
        why: String,
    },
}

/// Verifies one dirty or disk workload without holding the workload
/// itself (see [`Workload::verifier`]).
#[derive(Debug, Clone)]
pub struct WorkloadVerifier {
    name: String,
    inner: VerifierKind,
}

#[derive(Debug, Clone)]
enum VerifierKind {
    Dirty(Verifier),
    Disk(DiskVerifier),
}

impl WorkloadVerifier {
    /// Pauses the writers, checks every page (or block), resumes them;
    /// with `hold` (disk workloads only) leaves the writer paused until
    /// [`WorkloadVerifier::resume`] or the hold limit. Blocks: call it
    /// from a blocking context.
    pub fn verify(&self, hold: bool) -> Result<IntegrityReport, VerifyRefused> {
        match &self.inner {
            VerifierKind::Dirty(_) if hold => {
                Err(VerifyRefused::HoldUnsupported(self.name.clone()))
            }
            VerifierKind::Dirty(v) => v.verify().map_err(|why| match why {
                VerifyError::NotRunning => VerifyRefused::NotRunning(self.name.clone()),
                why => VerifyRefused::Failed {
                    name: self.name.clone(),
                    why: why.to_string(),
                },
            }),
            VerifierKind::Disk(v) => v.verify(hold).map_err(|e| self.disk_refusal(e)),
        }
    }

    /// Ends a disk workload's hold; returns once it writes again. Blocks.
    pub fn resume(&self) -> Result<(), VerifyRefused> {
        match &self.inner {
            VerifierKind::Dirty(_) => Err(VerifyRefused::NotHeld {
                name: self.name.clone(),
                why: "a dirty-memory workload is never held".into(),
            }),
            VerifierKind::Disk(v) => v.resume().map_err(|e| self.disk_refusal(e)),
        }
    }

    fn disk_refusal(&self, e: DiskVerifyError) -> VerifyRefused {
        let name = self.name.clone();
        match e {
            DiskVerifyError::NotRunning => VerifyRefused::NotRunning(name),
            e @ DiskVerifyError::NotHeld => VerifyRefused::NotHeld {
                name,
                why: e.to_string(),
            },
            DiskVerifyError::Failed(why) => VerifyRefused::Failed { name, why },
        }
    }
}

impl Workload {
    /// Validates `spec`, allocates and pre-touches the working set, and
    /// starts dirtying. Returns once the pre-touch is done, so the
    /// workload is really running when this returns. Blocks: call it from
    /// a blocking context.
    pub fn start(name: &str, spec: &WorkloadSpec) -> Result<Self, WorkloadError> {
        Self::start_with_files(name, spec, &Files::new())
    }

    /// [`Workload::start`] with the agent's uploaded files, which the
    /// streaming kinds (`rtp`, `http`) take their clip or file from. An
    /// `rtp` workload returns once its socket is open (its first frame is
    /// due at once), an `http` one once it listens.
    pub fn start_with_files(
        name: &str,
        spec: &WorkloadSpec,
        files: &Files,
    ) -> Result<Self, WorkloadError> {
        if let WorkloadSpec::Rtp { clip, .. } = spec {
            let params = RtpParams::new(spec, files.get(clip))?;
            return Ok(Self {
                name: name.to_string(),
                kind: Kind::Rtp(RtpWorkload::start(name, params)?),
            });
        }
        if let WorkloadSpec::Http { file, .. } = spec {
            let params = HttpParams::new(spec, files.get(file))?;
            return Ok(Self {
                name: name.to_string(),
                kind: Kind::Http(HttpWorkload::start(name, params)?),
            });
        }
        if let WorkloadSpec::Disk { .. } = spec {
            let params = validate_disk(spec)?;
            return Ok(Self {
                name: name.to_string(),
                kind: Kind::Disk(DiskWorkload::start(name, params)?),
            });
        }
        if let WorkloadSpec::Command { argv } = spec {
            let child = Child::spawn(name, argv)?;
            let _ = child.wait_for(START_WATCH);
            return Ok(Self {
                name: name.to_string(),
                kind: Kind::Command(child),
            });
        }
        let params = validate(spec)?;
        Ok(Self {
            name: name.to_string(),
            kind: Kind::Dirty(DirtyWorkload::start(name, params)?),
        })
    }

    /// The workload's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the writer threads are still dirtying memory (or the
    /// disk), or the program still runs.
    pub fn is_running(&self) -> bool {
        match &self.kind {
            Kind::Dirty(d) => d.is_running(),
            Kind::Disk(d) => d.is_running(),
            Kind::Command(c) => c.exit().is_none(),
            Kind::Rtp(r) => r.is_running(),
            Kind::Http(h) => h.is_running(),
        }
    }

    /// A handle that verifies (and for a disk workload holds and resumes)
    /// this workload while it runs, without holding the workload: refused
    /// unless it is a running dirty or disk workload.
    pub fn verifier(&self) -> Result<WorkloadVerifier, VerifyRefused> {
        let inner = match &self.kind {
            Kind::Dirty(d) if d.is_running() => VerifierKind::Dirty(d.verifier()),
            Kind::Disk(d) if d.is_running() => VerifierKind::Disk(d.verifier()),
            Kind::Dirty(_) | Kind::Disk(_) => {
                return Err(VerifyRefused::NotRunning(self.name.clone()))
            }
            Kind::Command(_) | Kind::Rtp(_) | Kind::Http(_) => {
                return Err(VerifyRefused::NotDirty(self.name.clone()))
            }
        };
        Ok(WorkloadVerifier {
            name: self.name.clone(),
            inner,
        })
    }

    /// Stops the workload and waits for it; a dirty workload checks the
    /// integrity of its whole working set, then frees it; a disk workload
    /// ends any hold and checks its whole region. Returns the final
    /// report. Blocks: call it from a blocking context. Calling it again
    /// returns the same final report.
    pub fn stop(&mut self) -> WorkloadReport {
        match &mut self.kind {
            Kind::Dirty(d) => d.stop(&self.name),
            Kind::Disk(d) => d.stop(&self.name),
            Kind::Command(c) => {
                c.stop();
                c.report(&self.name)
            }
            Kind::Rtp(r) => r.stop(&self.name),
            Kind::Http(h) => h.stop(&self.name),
        }
    }

    /// What the workload has done so far.
    pub fn report(&self) -> WorkloadReport {
        match &self.kind {
            Kind::Dirty(d) => d.report(&self.name),
            Kind::Disk(d) => d.report(&self.name),
            Kind::Command(c) => c.report(&self.name),
            Kind::Rtp(r) => r.report(&self.name),
            Kind::Http(h) => h.report(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use nix::errno::Errno;
    use nix::sys::wait::{waitpid, WaitPidFlag};
    use nix::unistd::Pid;

    use super::*;

    fn dirty_spec(working_set_mib: u64, rate_mib_s: f64) -> WorkloadSpec {
        WorkloadSpec::dirty(working_set_mib, rate_mib_s)
    }

    fn pid_of(w: &Workload) -> Pid {
        match &w.kind {
            Kind::Command(c) => c.pid,
            _ => panic!("not a command"),
        }
    }

    #[test]
    fn paced_rate_is_close_to_target() {
        let mut w = Workload::start("t", &dirty_spec(16, 32.0)).unwrap();
        assert!(w.is_running());
        assert_eq!(w.report().state, "running");
        std::thread::sleep(Duration::from_millis(1100));
        let r = w.stop();
        assert_eq!(r.state, "stopped");
        assert_eq!(r.error, None);
        assert!(r.elapsed_ms >= 1000, "{r:?}");
        assert!(
            (r.achieved_mib_s - 32.0).abs() <= 32.0 * 0.2,
            "achieved {} MiB/s: {r:?}",
            r.achieved_mib_s
        );
        assert_eq!(r.per_second_mib_s.len(), 1, "{r:?}");
        assert!((r.per_second_mib_s[0] - 32.0).abs() <= 32.0 * 0.2, "{r:?}");
        // 32 MiB over a 16 MiB set: the writer wrapped around.
        assert!(r.pages_written > 16 * 256, "{r:?}");
        // Stopping again gives the same final report.
        assert_eq!(w.stop(), r);
    }

    #[test]
    fn rate_zero_runs_flat_out() {
        let mut w = Workload::start("fast", &dirty_spec(4, 0.0)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let r = w.stop();
        assert_eq!(r.state, "stopped");
        assert!(r.pages_written > 1024, "{r:?}");
        assert!(r.achieved_mib_s > 0.0);
    }

    #[test]
    fn invalid_specs_are_refused() {
        assert!(matches!(
            Workload::start("x", &dirty_spec(0, 1.0)),
            Err(WorkloadError::Invalid(_))
        ));
        assert!(matches!(
            Workload::start("x", &dirty_spec(1, -1.0)),
            Err(WorkloadError::Invalid(_))
        ));
        assert!(matches!(
            Workload::start("x", &dirty_spec(1, f64::NAN)),
            Err(WorkloadError::Invalid(_))
        ));
        let e = Workload::start("x", &dirty_spec(u64::MAX / 2, 1.0)).unwrap_err();
        assert!(
            matches!(
                e,
                WorkloadError::Invalid(_) | WorkloadError::InsufficientMemory { .. }
            ),
            "{e}"
        );
        if mem_available_mib().is_some() {
            let e = Workload::start("x", &dirty_spec(1 << 30, 1.0)).unwrap_err();
            assert!(matches!(e, WorkloadError::InsufficientMemory { .. }), "{e}");
        }
    }

    #[test]
    fn invalid_new_fields_are_refused_naming_them() {
        for (spec, field) in [
            (
                r#"{"kind":"dirty","working_set_mib":1,"rate_mib_s":1,"hot_fraction":0}"#,
                "hot_fraction",
            ),
            (
                r#"{"kind":"dirty","working_set_mib":1,"rate_mib_s":1,"hot_share":2}"#,
                "hot_share",
            ),
            (
                r#"{"kind":"dirty","working_set_mib":1,"rate_mib_s":1,"threads":0}"#,
                "threads",
            ),
            (
                r#"{"kind":"dirty","working_set_mib":1,"rate_mib_s":1,"threads":65}"#,
                "threads",
            ),
        ] {
            let spec: WorkloadSpec = serde_json::from_str(spec).unwrap();
            let e = Workload::start("x", &spec).unwrap_err();
            assert!(matches!(e, WorkloadError::Invalid(_)), "{e}");
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn only_running_dirty_workloads_verify() {
        let mut w = Workload::start("wl-unit-verify", &dirty_spec(2, 4.0)).unwrap();
        let v = w.verifier().unwrap();
        let r = v.verify(false).unwrap();
        assert_eq!((r.checked_pages, r.corrupted_pages), (512, 0));
        assert!(matches!(
            v.verify(true),
            Err(VerifyRefused::HoldUnsupported(_))
        ));
        assert!(matches!(v.resume(), Err(VerifyRefused::NotHeld { .. })));
        let fin = w.stop();
        assert_eq!(fin.integrity.unwrap().corrupted_pages, 0);
        assert!(matches!(w.verifier(), Err(VerifyRefused::NotRunning(_))));
        assert!(matches!(v.verify(false), Err(VerifyRefused::NotRunning(_))));
        let c = Workload::start("wl-unit-vcmd", &command(&["/bin/sleep", "5"])).unwrap();
        assert!(matches!(c.verifier(), Err(VerifyRefused::NotDirty(_))));
    }

    /// A disk spec on a fresh file under /tmp (removed by the caller).
    fn disk_file(tag: &str) -> String {
        let p = format!("/tmp/lmig-wl-unit-{}-{tag}.img", std::process::id());
        std::fs::File::create(&p).unwrap();
        p
    }

    fn disk_spec(device: &str, over: serde_json::Value) -> WorkloadSpec {
        let mut v = serde_json::json!({
            "kind": "disk", "device": device, "region_mib": 1, "rate_mib_s": 2.0,
            "direct": false,
        });
        for (k, x) in over.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn disk_workloads_verify_hold_and_resume() {
        let f = disk_file("hold");
        let mut w = Workload::start("wl-unit-disk", &disk_spec(&f, serde_json::json!({}))).unwrap();
        assert!(w.is_running());
        let v = w.verifier().unwrap();
        let held = v.verify(true).unwrap();
        assert_eq!((held.checked_pages, held.corrupted_pages), (256, 0));
        assert!(held.versions_digest.is_some());
        v.resume().unwrap();
        assert!(matches!(v.resume(), Err(VerifyRefused::NotHeld { .. })));
        let fin = w.stop();
        assert_eq!(fin.state, "stopped", "{fin:?}");
        assert_eq!(fin.integrity.unwrap().corrupted_pages, 0);
        assert!(fin.blocks_written.is_some() && fin.bytes_written.is_some());
        assert!(matches!(w.verifier(), Err(VerifyRefused::NotRunning(_))));
        assert!(matches!(v.verify(false), Err(VerifyRefused::NotRunning(_))));
        let _ = std::fs::remove_file(&f);
    }

    #[test]
    fn bad_disk_specs_are_refused_naming_the_field() {
        use serde_json::json;
        let f = disk_file("bad");
        for (over, field) in [
            (json!({"block_kib": 3}), "block_kib"),
            (json!({"region_mib": 0}), "region_mib"),
            (json!({"pattern": "hotcold"}), "hotcold"),
            (
                json!({"device": "/nonexistent/lmig-disk"}),
                "/nonexistent/lmig-disk",
            ),
            (json!({"device": "relative.img"}), "device"),
            (
                json!({"region_mib": 1u64 << 40, "block_kib": 4}),
                "region_mib",
            ),
        ] {
            let e = Workload::start("wl-unit-bad", &disk_spec(&f, over)).unwrap_err();
            assert!(matches!(e, WorkloadError::Invalid(_)), "{e}");
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
        let _ = std::fs::remove_file(&f);
    }

    fn command(argv: &[&str]) -> WorkloadSpec {
        WorkloadSpec::Command {
            argv: argv.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn command_runs_until_stopped_and_is_reaped() {
        let mut w = Workload::start("wl-unit-sleep", &command(&["/bin/sleep", "30"])).unwrap();
        assert!(w.is_running());
        assert_eq!(w.report().state, "running");
        let pid = pid_of(&w);
        let t = Instant::now();
        let r = w.stop();
        assert!(t.elapsed() < TERM_GRACE, "sleep ends on SIGTERM");
        assert_eq!(r.state, "stopped", "{r:?}");
        assert_eq!(r.error, None);
        assert!(!w.is_running());
        // Reaped: no zombie left behind.
        assert_eq!(waitpid(pid, Some(WaitPidFlag::WNOHANG)), Err(Errno::ECHILD));
        assert_eq!(w.stop(), r);
    }

    #[test]
    fn command_that_fails_reports_its_status() {
        let w = Workload::start("wl-unit-false", &command(&["/bin/false"])).unwrap();
        let r = w.report();
        assert_eq!(r.state, "failed", "{r:?}");
        let e = r.error.unwrap();
        assert!(e.contains("/bin/false exited with status 1"), "{e}");
        assert!(e.contains("/tmp/wl-unit-false.log"), "{e}");
    }

    #[test]
    fn command_output_goes_to_its_log() {
        let w = Workload::start("wl-unit-echo", &command(&["/bin/echo", "hello"])).unwrap();
        let r = w.report();
        assert_eq!(r.state, "stopped", "{r:?}");
        assert_eq!(
            std::fs::read_to_string("/tmp/wl-unit-echo.log").unwrap(),
            "hello\n"
        );
        assert_eq!(r.output.as_deref(), Some("hello\n"), "{r:?}");
    }

    #[test]
    fn command_that_cannot_start_is_refused() {
        let e = Workload::start("wl-unit-x", &command(&["/nonexistent/prog"])).unwrap_err();
        assert!(matches!(e, WorkloadError::Spawn { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/prog"), "{e}");
        let e = Workload::start("wl-unit-x", &command(&[])).unwrap_err();
        assert!(matches!(e, WorkloadError::Invalid(_)), "{e}");
    }

    #[test]
    fn reaper_and_workload_share_the_exit_status() {
        let w = Workload::start("wl-unit-reaped", &command(&["/bin/sleep", "0.5"])).unwrap();
        let pid = pid_of(&w);
        // Reap it here, as PID 1's reaper thread would.
        let ws = waitpid(pid, None).unwrap();
        note_reaped(ws);
        let r = w.report();
        assert_eq!(r.state, "stopped", "{r:?}");
    }
}
