//! The `command` workload: a program started as a child process, its
//! output in `/tmp/<name>.log`, ended by its PID with SIGTERM, then
//! SIGKILL after [`TERM_GRACE`]. Whoever reaps it (PID 1's reaper thread
//! through [`note_reaped`], or the workload itself) stores its exit status
//! in one shared table, so it is never lost and never reaped twice.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use wire::control::{WorkloadReport, OUTPUT_TAIL_BYTES};

use super::shared::WorkloadError;

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
pub(super) struct Child {
    pub(super) pid: Pid,
    program: String,
    log: String,
    started: Instant,
    /// Set once `stop` sent a signal: an end by signal is then expected.
    stopped_by_us: bool,
}

impl Child {
    pub(super) fn spawn(name: &str, argv: &[String]) -> Result<Self, WorkloadError> {
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
    pub(super) fn exit(&self) -> Option<(WaitStatus, Instant)> {
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
    pub(super) fn wait_for(&self, d: Duration) -> Option<(WaitStatus, Instant)> {
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
    pub(super) fn stop(&mut self) {
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

    pub(super) fn report(&self, name: &str) -> WorkloadReport {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
