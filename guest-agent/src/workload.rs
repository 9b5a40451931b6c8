//! Workloads the harness starts and stops through the control API.
//!
//! Four kinds:
//!
//! - *dirty memory* ([`crate::dirty`]): a working set pre-touched with
//!   non-zero data (so QEMU's zero-page detection cannot skip it), split
//!   among 1 to 64 writer threads that rewrite whole 4 KiB pages with
//!   verifiable content, in a `sequential`, `random` or `hotcold` pattern,
//!   paced with absolute deadlines in 2 ms ticks so that pages written per
//!   second times 4 KiB matches the target rate (rate 0: as fast as
//!   possible); its integrity can be checked while it runs and is checked
//!   when it stops;
//! - *command*: a program started as a child process (output to
//!   `/tmp/<name>.log`, whose last 16 KiB every report carries in
//!   `output`), ended by its PID with SIGTERM, then SIGKILL after
//!   [`TERM_GRACE`]. As PID 1 the agent also runs a reaper thread that
//!   waits for every child: whoever reaps a program of ours (that thread
//!   through [`note_reaped`], or the workload itself) stores its exit
//!   status in one shared table, so it is never lost and never reaped
//!   twice;
//! - *rtp* ([`crate::stream_rtp`]): an uploaded clip streamed over UDP as
//!   H.264 RTP in real time, looping, on its own thread;
//! - *http* ([`crate::stream_http`]): an uploaded file served as a paced
//!   progressive download, on its own thread and runtime.
//!
//! The streaming kinds take their file from the agent's uploaded files
//! ([`Workload::start_with_files`]).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use thiserror::Error;
use wire::control::{IntegrityReport, WorkloadReport, WorkloadSpec, OUTPUT_TAIL_BYTES};

use bytes::Bytes;

use crate::dirty::{DirtyParams, DirtyWorkload, Verifier, VerifyError};
use crate::stream_http::{HttpParams, HttpWorkload};
use crate::stream_rtp::{RtpParams, RtpWorkload};

/// Uploaded files by name (`PUT /v1/files/{name}`); [`Bytes`] shares
/// them without copying.
pub type Files = BTreeMap<String, Bytes>;

/// Size of the pages the workload dirties.
pub const PAGE_SIZE: usize = 4096;
/// Memory left to the rest of the guest when checking a working set
/// against `MemAvailable`.
pub const MEMORY_RESERVE_MIB: u64 = 32;

/// Why a workload could not be started.
#[derive(Debug, Error)]
pub enum WorkloadError {
    /// The spec asks for something impossible.
    #[error("invalid workload: {0}")]
    Invalid(String),
    /// The guest has not enough free memory for the working set.
    #[error(
        "working_set_mib {asked} does not fit: MemAvailable is {available_mib} MiB and {MEMORY_RESERVE_MIB} MiB stay reserved"
    )]
    InsufficientMemory {
        /// MiB asked for.
        asked: u64,
        /// `MemAvailable` in MiB.
        available_mib: u64,
    },
    /// A worker thread could not be started or died while starting.
    #[error("cannot start the workload's threads: {0}")]
    Thread(String),
    /// The program of a command workload could not be started.
    #[error("cannot start {program}: {why}")]
    Spawn {
        /// `argv[0]`.
        program: String,
        /// The operating system's reason.
        why: String,
    },
    /// An `http` workload's port cannot be bound (e.g. in use).
    #[error("cannot listen on {addr}: {why}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The operating system's reason.
        why: String,
    },
}

/// How long a command workload gets to end after SIGTERM before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(1);
/// How long a just-started command is watched, so that a program that
/// fails at once (bad arguments, port in use) shows `failed` in the
/// answer to the request that started it.
pub const START_WATCH: Duration = Duration::from_millis(100);

/// Exit status of each program the agent started, by PID: `None` while it
/// runs, then its status and when it was reaped.
type ExitTable = BTreeMap<i32, Option<(WaitStatus, Instant)>>;

fn exits() -> MutexGuard<'static, ExitTable> {
    static EXITS: OnceLock<Mutex<ExitTable>> = OnceLock::new();
    EXITS
        .get_or_init(|| Mutex::new(BTreeMap::new()))
        .lock()
        // Every change is one insert or remove: still consistent.
        .unwrap_or_else(|p| p.into_inner())
}

/// Called by PID 1's reaper for every child it reaped: keeps the exit
/// status of programs started as command workloads (others are ignored).
pub fn note_reaped(status: WaitStatus) {
    let Some(pid) = status.pid() else { return };
    if matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
        if let Some(slot) = exits().get_mut(&pid.as_raw()) {
            *slot = Some((status, Instant::now()));
        }
    }
}

/// A program started by a command workload.
#[derive(Debug)]
struct Child {
    pid: Pid,
    program: String,
    log: String,
    started: Instant,
    /// Set once `stop` sent a signal: an end by signal is then expected.
    stopped_by_us: bool,
}

impl Child {
    fn spawn(name: &str, argv: &[String]) -> Result<Self, WorkloadError> {
        let Some(program) = argv.first().filter(|p| !p.is_empty()) else {
            return Err(WorkloadError::Invalid(
                "argv must hold at least the program to run".into(),
            ));
        };
        let log = format!("/tmp/{name}.log");
        let out = std::fs::File::create(&log).map_err(|e| WorkloadError::Spawn {
            program: program.clone(),
            why: format!("cannot create {log}: {e}"),
        })?;
        let err = out.try_clone().map_err(|e| WorkloadError::Spawn {
            program: program.clone(),
            why: format!("cannot share {log}: {e}"),
        })?;
        let mut cmd = std::process::Command::new(program);
        cmd.args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        // Register under the table's lock, so a reaper that reaps the
        // child at once finds it registered when it records the status.
        let mut table = exits();
        let child = cmd.spawn().map_err(|e| WorkloadError::Spawn {
            program: program.clone(),
            why: e.to_string(),
        })?;
        let raw = i32::try_from(child.id()).map_err(|_| WorkloadError::Spawn {
            program: program.clone(),
            why: format!("PID {} out of range", child.id()),
        })?;
        table.insert(raw, None);
        drop(table);
        // `child` is dropped without waiting: the PID is ours to reap.
        drop(child);
        Ok(Self {
            pid: Pid::from_raw(raw),
            program: program.clone(),
            log,
            started: Instant::now(),
            stopped_by_us: false,
        })
    }

    /// The exit status and when it was seen, once the program ended.
    fn exit(&self) -> Option<(WaitStatus, Instant)> {
        let raw = self.pid.as_raw();
        {
            let mut table = exits();
            if let Some(Some(done)) = table.get(&raw) {
                return Some(*done);
            }
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                Ok(ws @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    let done = (ws, Instant::now());
                    table.insert(raw, Some(done));
                    return Some(done);
                }
                Err(Errno::ECHILD) => {} // reaped by the reaper: see below
                _ => return None,        // still running
            }
        }
        // The reaper has it and records it as soon as it gets the lock.
        for _ in 0..200 {
            if let Some(Some(done)) = exits().get(&raw) {
                return Some(*done);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }

    /// Waits up to `d` for the program to end.
    fn wait_for(&self, d: Duration) -> Option<(WaitStatus, Instant)> {
        let end = Instant::now() + d;
        loop {
            if let Some(done) = self.exit() {
                return Some(done);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` unless the program has already ended (a reaped PID may
    /// belong to someone else by now).
    fn signal(&self, sig: Signal) {
        if self.exit().is_none() {
            let _ = kill(self.pid, sig);
        }
    }

    /// SIGTERM, then SIGKILL after [`TERM_GRACE`]; waits until reaped.
    fn stop(&mut self) {
        if self.exit().is_some() {
            return;
        }
        self.stopped_by_us = true;
        self.signal(Signal::SIGTERM);
        if self.wait_for(TERM_GRACE).is_none() {
            self.signal(Signal::SIGKILL);
            let _ = self.wait_for(Duration::from_secs(5));
        }
    }

    fn report(&self, name: &str) -> WorkloadReport {
        let exit = self.exit();
        let end = exit.map_or_else(Instant::now, |(_, at)| at);
        let (state, error) = match exit {
            None => ("running", None),
            Some((WaitStatus::Exited(_, 0), _)) => ("stopped", None),
            Some(_) if self.stopped_by_us => ("stopped", None),
            Some((ws, _)) => (
                "failed",
                Some(format!(
                    "{} {} (its output is in {} in the guest)",
                    self.program,
                    describe(ws),
                    self.log
                )),
            ),
        };
        WorkloadReport {
            name: name.to_string(),
            state: state.into(),
            elapsed_ms: u64::try_from(end.saturating_duration_since(self.started).as_millis())
                .unwrap_or(u64::MAX),
            error,
            output: log_tail(&self.log, OUTPUT_TAIL_BYTES),
            ..WorkloadReport::default()
        }
    }
}

/// The last `max` bytes of the file at `path` as text (invalid UTF-8
/// replaced; a character cut at the start is dropped), or `None` if it
/// cannot be read.
/// The uploaded file `name` a streaming workload needs (`what` is `file`
/// or `clip`), or the error saying to upload it first.
pub(crate) fn uploaded<'a>(
    file: Option<&'a Bytes>,
    what: &str,
    name: &str,
) -> Result<&'a Bytes, WorkloadError> {
    file.ok_or_else(|| {
        WorkloadError::Invalid(format!(
            "{what} {name:?} is not uploaded (PUT /v1/files/{name} first)"
        ))
    })
}

fn log_tail(path: &str, max: usize) -> Option<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let max = u64::try_from(max).unwrap_or(u64::MAX);
    let skip = len.saturating_sub(max);
    f.seek(SeekFrom::Start(skip)).ok()?;
    let mut bytes = Vec::new();
    f.take(max).read_to_end(&mut bytes).ok()?;
    let mut start = 0;
    if skip > 0 {
        // Continuation bytes of a character cut in two.
        while start < bytes.len() && start < 3 && (bytes[start] & 0xc0) == 0x80 {
            start += 1;
        }
    }
    Some(String::from_utf8_lossy(&bytes[start..]).into_owned())
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
        if self.exit().is_some() {
            exits().remove(&self.pid.as_raw());
        }
    }
}

/// `exited with status N` or `was killed by signal SIGX`.
fn describe(ws: WaitStatus) -> String {
    match ws {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("was killed by signal {sig}"),
        other => format!("ended ({other:?})"),
    }
}

/// A started workload (running, or stopped with its final numbers).
#[derive(Debug)]
pub struct Workload {
    name: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Dirty(DirtyWorkload),
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

/// Why a workload could not be verified.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyRefused {
    /// Only dirty workloads can be verified.
    #[error("workload {0:?} is not a dirty-memory workload")]
    NotDirty(String),
    /// The dirty workload is stopped (or stopped meanwhile).
    #[error("workload {0:?} is not running")]
    NotRunning(String),
    /// A writer thread died.
    #[error("workload {name:?}: {why}")]
    Failed {
        /// The workload.
        name: String,
        /// What happened.
        why: VerifyError,
    },
}

/// Verifies one dirty workload without holding it (see
/// [`Workload::verifier`]).
#[derive(Debug, Clone)]
pub struct WorkloadVerifier {
    name: String,
    inner: Verifier,
}

impl WorkloadVerifier {
    /// Pauses the writers, checks every page, resumes them. Blocks: call it
    /// from a blocking context.
    pub fn verify(&self) -> Result<IntegrityReport, VerifyRefused> {
        self.inner.verify().map_err(|why| match why {
            VerifyError::NotRunning => VerifyRefused::NotRunning(self.name.clone()),
            why => VerifyRefused::Failed {
                name: self.name.clone(),
                why,
            },
        })
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

    /// Whether the writer threads are still dirtying memory, or the
    /// program still runs.
    pub fn is_running(&self) -> bool {
        match &self.kind {
            Kind::Dirty(d) => d.is_running(),
            Kind::Command(c) => c.exit().is_none(),
            Kind::Rtp(r) => r.is_running(),
            Kind::Http(h) => h.is_running(),
        }
    }

    /// A handle that verifies this workload while it runs, without holding
    /// it: refused unless it is a running dirty workload.
    pub fn verifier(&self) -> Result<WorkloadVerifier, VerifyRefused> {
        match &self.kind {
            Kind::Dirty(d) if d.is_running() => Ok(WorkloadVerifier {
                name: self.name.clone(),
                inner: d.verifier(),
            }),
            Kind::Dirty(_) => Err(VerifyRefused::NotRunning(self.name.clone())),
            Kind::Command(_) | Kind::Rtp(_) | Kind::Http(_) => {
                Err(VerifyRefused::NotDirty(self.name.clone()))
            }
        }
    }

    /// Stops the workload and waits for it; a dirty workload checks the
    /// integrity of its whole working set, then frees it. Returns the
    /// final report. Blocks: call it from a blocking context. Calling it
    /// again returns the same final report.
    pub fn stop(&mut self) -> WorkloadReport {
        match &mut self.kind {
            Kind::Dirty(d) => d.stop(&self.name),
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
            Kind::Command(c) => c.report(&self.name),
            Kind::Rtp(r) => r.report(&self.name),
            Kind::Http(h) => h.report(&self.name),
        }
    }
}

/// The text of a thread's panic payload.
pub(crate) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("workload thread panicked: {msg}")
}

#[cfg(test)]
mod tests {
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
        let r = v.verify().unwrap();
        assert_eq!((r.checked_pages, r.corrupted_pages), (512, 0));
        let fin = w.stop();
        assert_eq!(fin.integrity.unwrap().corrupted_pages, 0);
        assert!(matches!(w.verifier(), Err(VerifyRefused::NotRunning(_))));
        assert!(matches!(v.verify(), Err(VerifyRefused::NotRunning(_))));
        let c = Workload::start("wl-unit-vcmd", &command(&["/bin/sleep", "5"])).unwrap();
        assert!(matches!(c.verifier(), Err(VerifyRefused::NotDirty(_))));
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
    fn log_tail_keeps_the_end_and_whole_characters() {
        let path = std::env::temp_dir().join(format!("wl-unit-tail-{}", std::process::id()));
        let p = path.to_str().unwrap();
        std::fs::write(&path, "abcdef").unwrap();
        assert_eq!(log_tail(p, 100).as_deref(), Some("abcdef"));
        assert_eq!(log_tail(p, 3).as_deref(), Some("def"));
        // "é" is two bytes: a tail starting inside it drops the half.
        std::fs::write(&path, "xé!").unwrap();
        assert_eq!(log_tail(p, 2).as_deref(), Some("!"));
        assert_eq!(log_tail(p, 3).as_deref(), Some("é!"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(log_tail(p, 3), None);
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
