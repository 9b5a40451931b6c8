//! Workloads the harness starts and stops through the control API.
//!
//! Two kinds:
//!
//! - *dirty memory*: a working set pre-touched with non-zero data (so
//!   QEMU's zero-page detection cannot skip it), then one thread writing
//!   an incrementing `u64` stamp at the start of distinct 4 KiB pages,
//!   sequentially and wrapping, paced with absolute deadlines in 10 ms
//!   ticks so that pages per second times 4 KiB matches the target rate
//!   (rate 0: as fast as possible);
//! - *command*: a program started as a child process (output to
//!   `/tmp/<name>.log`), ended by its PID with SIGTERM, then SIGKILL after
//!   [`TERM_GRACE`]. As PID 1 the agent also runs a reaper thread that
//!   waits for every child: whoever reaps a program of ours (that thread
//!   through [`note_reaped`], or the workload itself) stores its exit
//!   status in one shared table, so it is never lost and never reaped
//!   twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use thiserror::Error;
use wire::control::{WorkloadReport, WorkloadSpec};

/// Size of the pages the workload dirties.
pub const PAGE_SIZE: usize = 4096;
/// Pages in one MiB.
const PAGES_PER_MIB: f64 = (1 << 20) as f64 / PAGE_SIZE as f64;
/// Pacing tick.
pub const TICK: Duration = Duration::from_millis(10);
/// At most this much lag is caught up in a burst; older lag is dropped
/// (it shows in the achieved rate).
const MAX_CATCH_UP: Duration = Duration::from_millis(100);
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
    /// The worker thread could not be started or died while starting.
    #[error("cannot start the workload thread: {0}")]
    Thread(String),
    /// The program of a command workload could not be started.
    #[error("cannot start {program}: {why}")]
    Spawn {
        /// `argv[0]`.
        program: String,
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
            ..WorkloadReport::default()
        }
    }
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

/// Progress shared between the worker thread and the reporter.
#[derive(Debug, Default)]
struct Progress {
    pages_written: AtomicU64,
    per_second_mib_s: Mutex<Vec<f64>>,
    started: OnceLock<Instant>,
    ended: OnceLock<Instant>,
}

/// A started workload (running, or stopped with its final numbers).
#[derive(Debug)]
pub struct Workload {
    name: String,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    failure: Option<String>,
    /// The program, for a command workload (the fields above then stay
    /// unused).
    child: Option<Child>,
}

/// `MemAvailable` from `/proc/meminfo`, in MiB (`None` if unreadable).
pub fn mem_available_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn validate(spec: &WorkloadSpec) -> Result<(usize, f64), WorkloadError> {
    let WorkloadSpec::Dirty {
        working_set_mib,
        rate_mib_s,
    } = *spec
    else {
        return Err(WorkloadError::Invalid("not a dirty-memory workload".into()));
    };
    if working_set_mib == 0 {
        return Err(WorkloadError::Invalid(
            "working_set_mib must be at least 1".into(),
        ));
    }
    if !rate_mib_s.is_finite() || rate_mib_s < 0.0 {
        return Err(WorkloadError::Invalid(format!(
            "rate_mib_s must be a finite number >= 0 (0: as fast as possible), not {rate_mib_s}"
        )));
    }
    let bytes = usize::try_from(working_set_mib)
        .ok()
        .and_then(|m| m.checked_mul(1 << 20))
        .ok_or_else(|| {
            WorkloadError::Invalid(format!("working_set_mib {working_set_mib} is too large"))
        })?;
    if let Some(available_mib) = mem_available_mib() {
        if working_set_mib.saturating_add(MEMORY_RESERVE_MIB) > available_mib {
            return Err(WorkloadError::InsufficientMemory {
                asked: working_set_mib,
                available_mib,
            });
        }
    }
    Ok((bytes, rate_mib_s))
}

impl Workload {
    /// Validates `spec`, allocates and pre-touches the working set, and
    /// starts dirtying. Returns once the pre-touch is done, so the
    /// workload is really running when this returns. Blocks: call it from
    /// a blocking context.
    pub fn start(name: &str, spec: &WorkloadSpec) -> Result<Self, WorkloadError> {
        if let WorkloadSpec::Command { argv } = spec {
            let child = Child::spawn(name, argv)?;
            let _ = child.wait_for(START_WATCH);
            return Ok(Self {
                name: name.to_string(),
                progress: Arc::default(),
                stop: Arc::default(),
                thread: None,
                failure: None,
                child: Some(child),
            });
        }
        let (bytes, rate) = validate(spec)?;
        let progress = Arc::new(Progress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("dirty-{name}"))
            .spawn({
                let progress = progress.clone();
                let stop = stop.clone();
                move || {
                    let mut mem = vec![0u8; bytes];
                    pretouch(&mut mem);
                    let _ = ready_tx.send(());
                    drop(ready_tx);
                    dirty(&mut mem, rate, &progress, &stop);
                    // `mem` is freed here, when the thread ends.
                }
            })
            .map_err(|e| WorkloadError::Thread(e.to_string()))?;
        if ready_rx.recv().is_err() {
            let why = match thread.join() {
                Ok(()) => "the thread ended before it was ready".to_string(),
                Err(p) => panic_text(&p),
            };
            return Err(WorkloadError::Thread(why));
        }
        Ok(Self {
            name: name.to_string(),
            progress,
            stop,
            thread: Some(thread),
            failure: None,
            child: None,
        })
    }

    /// The workload's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the worker thread is still dirtying memory, or the program
    /// still runs.
    pub fn is_running(&self) -> bool {
        if let Some(c) = &self.child {
            return c.exit().is_none();
        }
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the worker, waits for it and frees the working set; returns
    /// the final report. Blocks: call it from a blocking context. Calling
    /// it again returns the same final report.
    pub fn stop(&mut self) -> WorkloadReport {
        if let Some(c) = self.child.as_mut() {
            c.stop();
            return c.report(&self.name);
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if let Err(p) = t.join() {
                self.failure = Some(panic_text(&p));
            }
        }
        let _ = self.progress.ended.set(Instant::now());
        self.report()
    }

    /// What the workload has done so far.
    pub fn report(&self) -> WorkloadReport {
        if let Some(c) = &self.child {
            return c.report(&self.name);
        }
        let p = &self.progress;
        let pages = p.pages_written.load(Ordering::Relaxed);
        let elapsed = match (p.started.get(), p.ended.get()) {
            (Some(s), Some(e)) => e.saturating_duration_since(*s),
            (Some(s), None) => s.elapsed(),
            _ => Duration::ZERO,
        };
        let secs = elapsed.as_secs_f64();
        let state = if self.failure.is_some() {
            "failed"
        } else if self.thread.is_some() {
            if self.is_running() {
                "running"
            } else {
                "failed"
            }
        } else {
            "stopped"
        };
        let error = match (&self.failure, state) {
            (Some(f), _) => Some(f.clone()),
            (None, "failed") => Some("the workload thread ended unexpectedly".into()),
            _ => None,
        };
        WorkloadReport {
            name: self.name.clone(),
            state: state.into(),
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            pages_written: pages,
            achieved_mib_s: if secs > 0.0 {
                pages as f64 / PAGES_PER_MIB / secs
            } else {
                0.0
            },
            per_second_mib_s: p
                .per_second_mib_s
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
            error,
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("workload thread panicked: {msg}")
}

/// Writes a non-zero word at the start of every page.
fn pretouch(mem: &mut [u8]) {
    for (i, page) in mem.chunks_mut(PAGE_SIZE).enumerate() {
        let mark = 0x5a5a_0000_0000_0000u64 | i as u64;
        let n = page.len().min(8);
        page[..n].copy_from_slice(&mark.to_le_bytes()[..n]);
    }
    std::hint::black_box(&mut *mem);
}

/// Sequential page writer with a stamp per write.
struct Writer<'a> {
    mem: &'a mut [u8],
    pages: usize,
    next: usize,
    stamp: u64,
    written: u64,
}

impl Writer<'_> {
    fn write(&mut self, n: u64) {
        for _ in 0..n {
            self.stamp = self.stamp.wrapping_add(1);
            let off = self.next * PAGE_SIZE;
            let end = (off + 8).min(self.mem.len());
            let len = end - off;
            self.mem[off..end].copy_from_slice(&self.stamp.to_le_bytes()[..len]);
            self.next += 1;
            if self.next == self.pages {
                self.next = 0;
            }
        }
        self.written += n;
        // Keep the stores: the buffer is never read in this program.
        std::hint::black_box(&mut *self.mem);
    }
}

/// Closes the whole seconds that ended by `now`.
struct Seconds {
    start: Instant,
    closed: u64,
    written_at_last: u64,
}

impl Seconds {
    fn update(&mut self, now: Instant, written: u64, progress: &Progress) {
        let whole = now.saturating_duration_since(self.start).as_secs();
        if whole <= self.closed {
            return;
        }
        if let Ok(mut v) = progress.per_second_mib_s.lock() {
            v.push((written - self.written_at_last) as f64 / PAGES_PER_MIB);
            for _ in self.closed + 1..whole {
                v.push(0.0);
            }
        }
        self.closed = whole;
        self.written_at_last = written;
    }
}

fn dirty(mem: &mut [u8], rate_mib_s: f64, progress: &Progress, stop: &AtomicBool) {
    let pages = mem.len().div_ceil(PAGE_SIZE);
    if pages == 0 {
        return;
    }
    let start = Instant::now();
    let _ = progress.started.set(start);
    let mut w = Writer {
        mem,
        pages,
        next: 0,
        stamp: 0,
        written: 0,
    };
    let mut seconds = Seconds {
        start,
        closed: 0,
        written_at_last: 0,
    };
    if rate_mib_s == 0.0 {
        while !stop.load(Ordering::Relaxed) {
            w.write(256);
            progress.pages_written.store(w.written, Ordering::Relaxed);
            seconds.update(Instant::now(), w.written, progress);
        }
        return;
    }
    let pages_per_s = rate_mib_s * PAGES_PER_MIB;
    let max_burst = (pages_per_s * MAX_CATCH_UP.as_secs_f64()).max(1.0) as u64;
    // Pages forgiven after stalls longer than MAX_CATCH_UP.
    let mut forgiven = 0u64;
    let mut tick = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        seconds.update(now, w.written, progress);
        let since = now.saturating_duration_since(start).as_secs_f64();
        let mut due = ((pages_per_s * since) as u64).saturating_sub(forgiven);
        if due > w.written + max_burst {
            forgiven += due - w.written - max_burst;
            due = w.written + max_burst;
        }
        if due > w.written {
            w.write(due - w.written);
            progress.pages_written.store(w.written, Ordering::Relaxed);
        }
        tick = tick.saturating_add(1);
        let mut deadline = start + TICK * tick;
        let now = Instant::now();
        if deadline <= now {
            // Late: skip the missed ticks, the next one is in the future.
            let ticks = now.saturating_duration_since(start).as_nanos() / TICK.as_nanos();
            tick = u32::try_from(ticks + 1).unwrap_or(u32::MAX);
            deadline = start + TICK * tick;
        }
        std::thread::sleep(deadline.saturating_duration_since(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirty_spec(working_set_mib: u64, rate_mib_s: f64) -> WorkloadSpec {
        WorkloadSpec::Dirty {
            working_set_mib,
            rate_mib_s,
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
    fn writer_wraps_and_stamps() {
        let mut mem = vec![0u8; 3 * PAGE_SIZE];
        let mut w = Writer {
            mem: &mut mem,
            pages: 3,
            next: 0,
            stamp: 0,
            written: 0,
        };
        w.write(4);
        assert_eq!(w.written, 4);
        assert_eq!(w.next, 1);
        let word = |m: &[u8], p: usize| {
            u64::from_le_bytes(m[p * PAGE_SIZE..p * PAGE_SIZE + 8].try_into().unwrap())
        };
        assert_eq!(word(&mem, 0), 4);
        assert_eq!(word(&mem, 1), 2);
        assert_eq!(word(&mem, 2), 3);
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
        let pid = w.child.as_ref().unwrap().pid;
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
        let pid = w.child.as_ref().unwrap().pid;
        // Reap it here, as PID 1's reaper thread would.
        let ws = waitpid(pid, None).unwrap();
        note_reaped(ws);
        let r = w.report();
        assert_eq!(r.state, "stopped", "{r:?}");
    }
}
