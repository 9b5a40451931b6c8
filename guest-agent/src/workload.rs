//! Workloads the harness starts and stops through the control API.
//!
//! The only kind so far is *dirty memory*: a working set pre-touched with
//! non-zero data (so QEMU's zero-page detection cannot skip it), then one
//! thread writing an incrementing `u64` stamp at the start of distinct
//! 4 KiB pages, sequentially and wrapping, paced with absolute deadlines in
//! 10 ms ticks so that pages per second times 4 KiB matches the target
//! rate (rate 0: as fast as possible).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    } = *spec;
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
        })
    }

    /// The workload's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the worker thread is still dirtying memory.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the worker, waits for it and frees the working set; returns
    /// the final report. Blocks: call it from a blocking context. Calling
    /// it again returns the same final report.
    pub fn stop(&mut self) -> WorkloadReport {
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
}
