//! The memory-dirtying workload: paced writes of whole, verifiable 4 KiB
//! pages.
//!
//! **Working set.** Split into `threads` disjoint slices, one per writer
//! thread. Each thread allocates its own slice as page-aligned 4 KiB pages
//! (so one page of the workload is exactly one page of the guest) and
//! pre-touches it, in parallel, by writing every page in full with its
//! version-0 content, which is never all zeros (QEMU's zero-page detection
//! cannot skip it).
//!
//! **Page content.** Little-endian `u64` words: word 0 is the page's
//! version (0 after the pre-touch, +1 at each rewrite), word 1 its index in
//! the working set, words 2 to 511 an xorshift64 sequence seeded with a
//! splitmix64 hash of (index, version). Every dirtying write rewrites the
//! whole page: a real write of 4 KiB, not one byte per page, so each page
//! sent by a migration is checkable in full. (Filling 4 KiB costs about
//! 510 xorshift steps; see the README for the rates this reaches.) The
//! writer keeps each page's expected version in a separate table, so a
//! page that a migration left stale (an older but self-consistent
//! version) is found too.
//!
//! **Patterns.** Which page of its slice a thread writes next:
//! `sequential` (in order, wrapping), `random` (uniform over the slice) or
//! `hotcold` (the first `hot_fraction` of the slice is hot and receives
//! `hot_share` of the writes). Each thread has its own deterministic
//! random generator.
//!
//! **Rate.** `rate_mib_s` counts page writes: MiB/s = pages written per
//! second × 4 KiB. With `sequential` every write in a second is to a
//! distinct page as long as the rate does not exceed the working set per
//! second; with `random` and `hotcold` some writes of a second may hit a
//! page already dirtied in that second. Pacing uses absolute deadlines:
//! every [`TICK`] each thread writes the pages that fell due since the
//! common start (thread `t` of `n` owns the share
//! `floor(P·τ·(t+1)/n) − floor(P·τ·t/n)` of the `floor(P·τ)` pages due at
//! time `τ`, so the total is exact whatever the number of threads). A
//! thread that falls more than [`MAX_CATCH_UP`] behind drops the older lag
//! (it shows in the achieved rate). Rate 0 writes as fast as possible.
//!
//! **Per-second figures.** Each burst is counted in the whole second (from
//! the common start) in which it began; a second is reported once every
//! thread has moved past it.
//!
//! **Verification** (`verify`, and at stop): each writer stops writing,
//! checks every page of its own slice, and reports; the writers resume
//! together once every slice is checked, without catching up the pause
//! (seconds that overlap a pause are marked and left out of
//! [`WorkloadReport::max_reachable_mib_s`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;
use wire::clock::realtime_ns;
use wire::control::{DirtyPattern, IntegrityReport, WorkloadReport};

use super::shared::{lock, panic_text, splitmix64, xorshift64, Rng, WorkloadError, PAGE_SIZE};
pub use super::shared::{max_reachable, REACH_TOLERANCE};

/// `u64` words in a page.
const WORDS: usize = PAGE_SIZE / 8;
/// Pages in one MiB.
pub const PAGES_PER_MIB: f64 = (1 << 20) as f64 / PAGE_SIZE as f64;
/// Pacing tick: each thread wakes up this often (at absolute deadlines
/// from the common start) and writes the pages that fell due.
pub const TICK: Duration = Duration::from_millis(2);
/// At most this much lag is caught up in a burst; older lag is dropped.
pub const MAX_CATCH_UP: Duration = Duration::from_millis(100);
/// Pages a flat-out (rate 0) writer writes between looks at its flags.
const FLAT_OUT_CHUNK: u64 = 64;
/// At most this many writer threads.
pub const MAX_THREADS: u32 = 64;
/// At most this many corrupted page indices are listed.
pub const MAX_LISTED: usize = 16;

/// A dirty workload's parameters, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirtyParams {
    /// Pages in the working set.
    pub pages: u64,
    /// Target MiB/s; 0: as fast as possible.
    pub rate_mib_s: f64,
    /// Which pages are written.
    pub pattern: DirtyPattern,
    /// Hot fraction of each slice (`hotcold`).
    pub hot_fraction: f64,
    /// Share of the writes that go to the hot part (`hotcold`).
    pub hot_share: f64,
    /// Writer threads.
    pub threads: u32,
}

impl DirtyParams {
    /// Checks every field except memory, naming the field at fault.
    pub fn new(
        working_set_mib: u64,
        rate_mib_s: f64,
        pattern: DirtyPattern,
        hot_fraction: f64,
        hot_share: f64,
        threads: u32,
    ) -> Result<Self, WorkloadError> {
        let invalid = |m: String| Err(WorkloadError::Invalid(m));
        if working_set_mib == 0 {
            return invalid("working_set_mib must be at least 1".into());
        }
        let Some(pages) = working_set_mib
            .checked_mul(1 << 20)
            .map(|b| b / PAGE_SIZE as u64)
            .filter(|p| usize::try_from(*p).is_ok())
        else {
            return invalid(format!("working_set_mib {working_set_mib} is too large"));
        };
        if !rate_mib_s.is_finite() || rate_mib_s < 0.0 {
            return invalid(format!(
                "rate_mib_s must be a finite number >= 0 (0: as fast as possible), not {rate_mib_s}"
            ));
        }
        if !(hot_fraction > 0.0 && hot_fraction <= 1.0) {
            return invalid(format!(
                "hot_fraction must be in (0, 1], not {hot_fraction}"
            ));
        }
        if !(0.0..=1.0).contains(&hot_share) {
            return invalid(format!("hot_share must be in [0, 1], not {hot_share}"));
        }
        if !(1..=MAX_THREADS).contains(&threads) {
            return invalid(format!(
                "threads must be from 1 to {MAX_THREADS}, not {threads}"
            ));
        }
        Ok(Self {
            pages,
            rate_mib_s,
            pattern,
            hot_fraction,
            hot_share,
            threads,
        })
    }
}

/// One page of the working set, aligned so that it is one guest page.
#[derive(Clone)]
#[repr(C, align(4096))]
pub(crate) struct Page([u64; WORDS]);

const _: () = assert!(std::mem::size_of::<Page>() == PAGE_SIZE);

impl Page {
    const ZERO: Page = Page([0; WORDS]);
}

/// The xorshift64 seed of a page's content; never 0.
fn page_seed(index: u64, version: u64) -> u64 {
    splitmix64(splitmix64(index) ^ version.rotate_left(32)) | 1
}

/// Writes the whole content of page `index` at `version`.
pub(crate) fn fill_page(page: &mut Page, index: u64, version: u64) {
    page.0[0] = version.to_le();
    page.0[1] = index.to_le();
    let mut x = page_seed(index, version);
    for w in &mut page.0[2..] {
        *w = xorshift64(&mut x).to_le();
    }
}

/// Whether page `index` holds exactly its content at `version`.
pub(crate) fn page_ok(page: &Page, index: u64, version: u64) -> bool {
    if u64::from_le(page.0[0]) != version || u64::from_le(page.0[1]) != index {
        return false;
    }
    let mut x = page_seed(index, version);
    // Fold the differences instead of returning early: branch-free, and a
    // clean page (the usual case) is checked in full anyway.
    let mut diff = 0u64;
    for w in &page.0[2..] {
        diff |= u64::from_le(*w) ^ xorshift64(&mut x);
    }
    diff == 0
}

/// The outcome of checking one slice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SliceCheck {
    checked: u64,
    corrupted: u64,
    /// Up to [`MAX_LISTED`] indices, ascending.
    first: Vec<u64>,
}

/// One thread's slice of the working set and the expected version of
/// each of its pages.
pub(crate) struct Slice {
    pages: Vec<Page>,
    versions: Vec<u64>,
    /// Index in the working set of `pages[0]`.
    base: u64,
}

impl Slice {
    /// Allocates `n` pages and pre-touches them with their version-0
    /// content.
    pub(crate) fn new(base: u64, n: usize) -> Result<Self, String> {
        let mut pages = Vec::new();
        pages
            .try_reserve_exact(n)
            .map_err(|e| format!("cannot allocate {n} pages: {e}"))?;
        let mut versions = Vec::new();
        versions
            .try_reserve_exact(n)
            .map_err(|e| format!("cannot allocate {n} page versions: {e}"))?;
        pages.resize(n, Page::ZERO);
        versions.resize(n, 0);
        for (i, p) in pages.iter_mut().enumerate() {
            fill_page(p, base + i as u64, 0);
        }
        Ok(Self {
            pages,
            versions,
            base,
        })
    }

    fn len(&self) -> usize {
        self.pages.len()
    }

    /// Rewrites page `local` of the slice at its next version.
    fn write(&mut self, local: usize) {
        let (Some(page), Some(v)) = (self.pages.get_mut(local), self.versions.get_mut(local))
        else {
            return;
        };
        *v = v.wrapping_add(1);
        fill_page(page, self.base + local as u64, *v);
    }

    /// Checks every page against its expected version.
    pub(crate) fn check(&self) -> SliceCheck {
        let mut c = SliceCheck::default();
        for (i, (p, v)) in self.pages.iter().zip(&self.versions).enumerate() {
            c.checked += 1;
            let index = self.base + i as u64;
            if !page_ok(p, index, *v) {
                c.corrupted += 1;
                if c.first.len() < MAX_LISTED {
                    c.first.push(index);
                }
            }
        }
        std::hint::black_box(&self.pages);
        c
    }

    /// Test hook: flips one byte of page `index` (of the working set)
    /// behind the writer's back, if this slice holds it.
    #[cfg(test)]
    pub(crate) fn corrupt(&mut self, index: u64) {
        if let Some(p) = index
            .checked_sub(self.base)
            .and_then(|l| usize::try_from(l).ok())
            .and_then(|l| self.pages.get_mut(l))
        {
            p.0[100] ^= 0x40;
        }
    }
}

/// Merges slice checks (in ascending slice order) into one report.
fn merge(checks: &[SliceCheck]) -> IntegrityReport {
    let mut r = IntegrityReport {
        checked_at_realtime_ns: realtime_ns(),
        ..IntegrityReport::default()
    };
    for c in checks {
        r.checked_pages += c.checked;
        r.corrupted_pages += c.corrupted;
        for i in &c.first {
            if r.first_corrupted.len() < MAX_LISTED {
                r.first_corrupted.push(*i);
            }
        }
    }
    r
}

/// Chooses the next page of a slice to write.
#[derive(Debug, Clone)]
pub(crate) enum Picker {
    /// In order, wrapping.
    Sequential {
        /// The next page.
        next: usize,
    },
    /// Uniform over the slice.
    Random(Rng),
    /// The first `hot` pages get `share` of the writes.
    HotCold {
        /// The generator.
        rng: Rng,
        /// Hot pages at the start of the slice (at least 1).
        hot: usize,
        /// Share of writes to the hot part.
        share: f64,
    },
}

impl Picker {
    /// The picker of a slice of `len` pages (thread `thread`).
    pub(crate) fn new(p: &DirtyParams, len: usize, thread: u32) -> Self {
        let rng = Rng::new(0x6c6d_6967_0000_0000 ^ u64::from(thread));
        match p.pattern {
            DirtyPattern::Sequential => Self::Sequential { next: 0 },
            DirtyPattern::Random => Self::Random(rng),
            DirtyPattern::Hotcold => Self::HotCold {
                rng,
                hot: ((len as f64 * p.hot_fraction).round() as usize).clamp(1, len.max(1)),
                share: p.hot_share,
            },
        }
    }

    /// The next page (of a slice of `len` > 0 pages).
    pub(crate) fn pick(&mut self, len: usize) -> usize {
        match self {
            Self::Sequential { next } => {
                let p = *next % len;
                *next = p + 1;
                p
            }
            Self::Random(rng) => rng.below(len),
            Self::HotCold { rng, hot, share } => {
                let cold = len - (*hot).min(len);
                if cold == 0 || rng.unit() < *share {
                    rng.below((*hot).min(len))
                } else {
                    *hot + rng.below(cold)
                }
            }
        }
    }
}

/// Pages written in one whole second.
#[derive(Debug, Clone, Copy, Default)]
struct Second {
    pages: u64,
    /// A verification pause overlapped this second.
    paused: bool,
}

/// One verification in progress.
#[derive(Debug)]
struct PauseRequest {
    id: u64,
    /// Each thread's check, by thread.
    results: Mutex<Vec<Option<SliceCheck>>>,
    done: Condvar,
    resumed: AtomicBool,
}

/// State shared by the writers, the workload and its verifiers.
#[derive(Debug)]
struct Shared {
    threads: usize,
    stop: AtomicBool,
    pause_flag: AtomicBool,
    pause: Mutex<Option<Arc<PauseRequest>>>,
    resume: Condvar,
    next_pause_id: AtomicU64,
    /// Serialises verifications.
    verify_lock: Mutex<()>,
    pages_written: AtomicU64,
    seconds: Mutex<Vec<Second>>,
    /// Per thread: every second before this one is fully counted
    /// (`u64::MAX` once the thread ended).
    cursors: Vec<AtomicU64>,
    alive: AtomicUsize,
    integrity: Mutex<Option<IntegrityReport>>,
    /// Test hook: pages to corrupt, applied by their writer.
    #[cfg(test)]
    corrupt: Mutex<Vec<u64>>,
}

/// Why a verification could not run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The workload is stopped (or stopped during the verification).
    #[error("the workload is not running")]
    NotRunning,
    /// A writer thread died, and its slice with it.
    #[error("a writer thread died: its slice cannot be checked")]
    WriterDied,
}

/// A handle that verifies a running dirty workload; cheap to clone, usable
/// without holding the workload.
#[derive(Debug, Clone)]
pub struct Verifier(Arc<Shared>);

impl Verifier {
    /// Pauses the writers, checks every page of the working set, resumes
    /// the writers and returns the result (also kept as the workload's last
    /// integrity report). Blocks: call it from a blocking context.
    pub fn verify(&self) -> Result<IntegrityReport, VerifyError> {
        let s = &self.0;
        let _one_at_a_time = lock(&s.verify_lock);
        if s.stop.load(Ordering::Relaxed) || s.alive.load(Ordering::Relaxed) < s.threads {
            return Err(VerifyError::NotRunning);
        }
        let req = Arc::new(PauseRequest {
            id: s.next_pause_id.fetch_add(1, Ordering::Relaxed) + 1,
            results: Mutex::new(vec![None; s.threads]),
            done: Condvar::new(),
            resumed: AtomicBool::new(false),
        });
        *lock(&s.pause) = Some(req.clone());
        s.pause_flag.store(true, Ordering::Release);
        let outcome = {
            let mut results = lock(&req.results);
            loop {
                if results.iter().all(Option::is_some) {
                    let checks: Vec<SliceCheck> = results.iter().flatten().cloned().collect();
                    break Ok(merge(&checks));
                }
                if s.alive.load(Ordering::Relaxed) < s.threads {
                    break Err(if s.stop.load(Ordering::Relaxed) {
                        VerifyError::NotRunning
                    } else {
                        VerifyError::WriterDied
                    });
                }
                results = req
                    .done
                    .wait_timeout(results, Duration::from_millis(50))
                    .map_or_else(|p| p.into_inner().0, |(g, _)| g);
            }
        };
        {
            let mut pause = lock(&s.pause);
            req.resumed.store(true, Ordering::Release);
            *pause = None;
            s.pause_flag.store(false, Ordering::Release);
        }
        s.resume.notify_all();
        if let Ok(r) = &outcome {
            *lock(&s.integrity) = Some(r.clone());
        }
        outcome
    }
}

/// What a writer thread returns.
#[derive(Debug)]
struct WriterEnd {
    check: SliceCheck,
}

/// A running (or stopped) dirty workload.
#[derive(Debug)]
pub struct DirtyWorkload {
    params: DirtyParams,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<WriterEnd>>,
    start: Instant,
    started_realtime_ns: i64,
    ended: Option<Instant>,
    failure: Option<String>,
}

/// Decrements the live-writer count when a writer ends, even by a panic.
struct AliveGuard<'a>(&'a Shared);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Slice `t` of `n` over `pages`: (first page, number of pages).
fn slice_bounds(pages: u64, n: u64, t: u64) -> (u64, u64) {
    let (each, extra) = (pages / n, pages % n);
    let first = t * each + t.min(extra);
    (first, each + u64::from(t < extra))
}

impl DirtyWorkload {
    /// Allocates and pre-touches the working set (each thread its slice,
    /// in parallel) and starts the writers on a common start. Returns once
    /// every slice is pre-touched. Blocks.
    pub fn start(name: &str, params: DirtyParams) -> Result<Self, WorkloadError> {
        let n = params.threads as usize;
        let shared = Arc::new(Shared {
            threads: n,
            stop: AtomicBool::new(false),
            pause_flag: AtomicBool::new(false),
            pause: Mutex::new(None),
            resume: Condvar::new(),
            next_pause_id: AtomicU64::new(0),
            verify_lock: Mutex::new(()),
            pages_written: AtomicU64::new(0),
            seconds: Mutex::new(Vec::new()),
            cursors: (0..n).map(|_| AtomicU64::new(0)).collect(),
            alive: AtomicUsize::new(n),
            integrity: Mutex::new(None),
            #[cfg(test)]
            corrupt: Mutex::new(Vec::new()),
        });
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let mut gos = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        let mut spawn_error = None;
        for t in 0..params.threads {
            let (first, len) = slice_bounds(params.pages, u64::from(params.threads), u64::from(t));
            let (go_tx, go_rx) = mpsc::channel::<Option<Instant>>();
            let ready = ready_tx.clone();
            let shared_t = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("dirty-{name}-{t}"))
                .spawn(move || {
                    let _alive = AliveGuard(&shared_t);
                    let slice = match usize::try_from(len)
                        .map_err(|e| e.to_string())
                        .and_then(|len| Slice::new(first, len))
                    {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return WriterEnd {
                                check: SliceCheck::default(),
                            };
                        }
                    };
                    let _ = ready.send(Ok(()));
                    drop(ready);
                    let Ok(Some(start)) = go_rx.recv() else {
                        return WriterEnd {
                            check: SliceCheck::default(),
                        };
                    };
                    let picker = Picker::new(&params, slice.len(), t);
                    Writer {
                        index: t as usize,
                        slice,
                        picker,
                        params,
                        shared: &shared_t,
                        start,
                    }
                    .run()
                });
            match spawned {
                Ok(h) => {
                    threads.push(h);
                    gos.push(go_tx);
                }
                Err(e) => {
                    spawn_error = Some(format!("cannot start writer thread {t}: {e}"));
                    break;
                }
            }
        }
        drop(ready_tx);
        let mut failure = spawn_error;
        if failure.is_none() {
            for _ in 0..n {
                match ready_rx.recv() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        failure = Some(e);
                        break;
                    }
                    Err(_) => {
                        failure = Some("a writer thread ended before it was ready".into());
                        break;
                    }
                }
            }
        }
        if let Some(why) = failure {
            for g in &gos {
                let _ = g.send(None);
            }
            let mut why = why;
            for h in threads {
                if let Err(p) = h.join() {
                    why = panic_text(&p);
                }
            }
            return Err(WorkloadError::Thread(why));
        }
        let start = Instant::now();
        let started_realtime_ns = realtime_ns();
        for g in &gos {
            let _ = g.send(Some(start));
        }
        Ok(Self {
            params,
            shared,
            threads,
            start,
            started_realtime_ns,
            ended: None,
            failure: None,
        })
    }

    /// A handle that can verify the workload while it runs.
    pub fn verifier(&self) -> Verifier {
        Verifier(self.shared.clone())
    }

    /// Whether every writer is still running.
    pub fn is_running(&self) -> bool {
        !self.threads.is_empty() && self.threads.iter().all(|t| !t.is_finished())
    }

    /// Stops the writers; each checks its slice before it ends. Returns the
    /// final report, with that integrity check. Calling it again returns
    /// the same report. Blocks.
    pub fn stop(&mut self, name: &str) -> WorkloadReport {
        if !self.threads.is_empty() {
            self.shared.stop.store(true, Ordering::Relaxed);
            self.shared.resume.notify_all();
            self.ended = Some(Instant::now());
            let mut checks = Vec::with_capacity(self.threads.len());
            let mut died = 0;
            for t in self.threads.drain(..) {
                match t.join() {
                    Ok(end) => checks.push(end.check),
                    Err(p) => {
                        died += 1;
                        self.failure.get_or_insert(panic_text(&p));
                    }
                }
            }
            if died == 0 {
                *lock(&self.shared.integrity) = Some(merge(&checks));
            }
        }
        self.report(name)
    }

    /// What the workload has done so far.
    pub fn report(&self, name: &str) -> WorkloadReport {
        let s = &self.shared;
        let pages = s.pages_written.load(Ordering::Relaxed);
        let end = self.ended.unwrap_or_else(Instant::now);
        let elapsed = end.saturating_duration_since(self.start);
        let complete = s
            .cursors
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
            .min(elapsed.as_secs());
        let seconds: Vec<Second> = {
            let v = lock(&s.seconds);
            let n = usize::try_from(complete).unwrap_or(usize::MAX).min(v.len());
            let mut out = v[..n].to_vec();
            // Seconds in which no thread wrote have no entry yet.
            out.resize(usize::try_from(complete).unwrap_or(n), Second::default());
            out
        };
        let per_second_mib_s: Vec<f64> = seconds
            .iter()
            .map(|x| x.pages as f64 / PAGES_PER_MIB)
            .collect();
        let target = (self.params.rate_mib_s > 0.0).then_some(self.params.rate_mib_s);
        let unpaused: Vec<f64> = seconds
            .iter()
            .filter(|x| !x.paused)
            .map(|x| x.pages as f64 / PAGES_PER_MIB)
            .collect();
        let (state, error) = if let Some(f) = &self.failure {
            ("failed", Some(f.clone()))
        } else if self.threads.is_empty() {
            ("stopped", None)
        } else if self.is_running() {
            ("running", None)
        } else {
            (
                "failed",
                Some("a writer thread ended unexpectedly".to_string()),
            )
        };
        let secs = elapsed.as_secs_f64();
        WorkloadReport {
            name: name.to_string(),
            state: state.into(),
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            pages_written: pages,
            achieved_mib_s: if secs > 0.0 {
                pages as f64 / PAGES_PER_MIB / secs
            } else {
                0.0
            },
            per_second_mib_s,
            error,
            target_mib_s: target,
            max_reachable_mib_s: max_reachable(target, &unpaused),
            started_realtime_ns: self.started_realtime_ns,
            integrity: lock(&s.integrity).clone(),
            ..WorkloadReport::default()
        }
    }

    /// Test hook: has the writer owning page `index` flip one of its bytes
    /// (without a new version) at its next turn; returns once it did.
    #[cfg(test)]
    pub(crate) fn corrupt(&self, index: u64) {
        lock(&self.shared.corrupt).push(index);
        while !lock(&self.shared.corrupt).is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for DirtyWorkload {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.resume.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One writer thread.
struct Writer<'a> {
    index: usize,
    slice: Slice,
    picker: Picker,
    params: DirtyParams,
    shared: &'a Shared,
    start: Instant,
}

/// Counts a thread's pages per whole second, flushing to the shared table
/// when the second changes.
struct Counter {
    second: u64,
    pages: u64,
}

impl Writer<'_> {
    fn run(mut self) -> WriterEnd {
        let n = self.params.threads as usize;
        let total_pps = self.params.rate_mib_s * PAGES_PER_MIB;
        let flat_out = total_pps == 0.0;
        // Thread t's pages due at time τ: floor(P·τ·(t+1)/n) − floor(P·τ·t/n).
        let (lo, hi) = (
            self.index as f64 / n as f64,
            (self.index + 1) as f64 / n as f64,
        );
        let due_at = |secs: f64| -> u64 {
            let total = total_pps * secs;
            ((total * hi).floor() - (total * lo).floor()).max(0.0) as u64
        };
        let max_burst = ((total_pps / n as f64) * MAX_CATCH_UP.as_secs_f64()).max(1.0) as u64;
        let mut written = 0u64;
        let mut forgiven = 0u64;
        let mut counter = Counter {
            second: 0,
            pages: 0,
        };
        let mut tick: u64 = 0;
        let mut served = 0u64;
        let len = self.slice.len();
        loop {
            if self.shared.pause_flag.load(Ordering::Acquire) {
                // Bound first: the guard must not live through the block.
                let current = lock(&self.shared.pause).clone();
                if let Some(req) = current {
                    if req.id != served {
                        served = req.id;
                        self.flush(&mut counter, Instant::now());
                        self.serve_pause(&req);
                        // Do not catch up the pause.
                        let due = due_at(self.start.elapsed().as_secs_f64());
                        forgiven = due.saturating_sub(written);
                        continue;
                    }
                }
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            #[cfg(test)]
            self.apply_corruptions();
            let now = Instant::now();
            if counter.second != now.saturating_duration_since(self.start).as_secs() {
                self.flush(&mut counter, now);
            }
            let todo = if flat_out {
                FLAT_OUT_CHUNK
            } else {
                let mut due = due_at(now.saturating_duration_since(self.start).as_secs_f64())
                    .saturating_sub(forgiven);
                if due > written + max_burst {
                    forgiven += due - written - max_burst;
                    due = written + max_burst;
                }
                due.saturating_sub(written)
            };
            if len > 0 {
                for _ in 0..todo {
                    let p = self.picker.pick(len);
                    self.slice.write(p);
                }
                written += todo;
                counter.pages += todo;
                self.shared.pages_written.fetch_add(todo, Ordering::Relaxed);
            }
            if flat_out {
                continue;
            }
            let after = Instant::now();
            let late = after.saturating_duration_since(self.start).as_nanos() / TICK.as_nanos();
            tick = (tick + 1).max(u64::try_from(late).unwrap_or(u64::MAX - 1) + 1);
            let deadline = self.start + TICK * u32::try_from(tick).unwrap_or(u32::MAX);
            std::thread::sleep(deadline.saturating_duration_since(after));
        }
        self.flush(&mut counter, Instant::now());
        self.shared.cursors[self.index].store(u64::MAX, Ordering::Relaxed);
        WriterEnd {
            check: self.slice.check(),
        }
    }

    /// Adds this thread's count to its second and moves its cursor to the
    /// second of `now`.
    fn flush(&self, counter: &mut Counter, now: Instant) {
        let sec = now.saturating_duration_since(self.start).as_secs();
        {
            let mut v = lock(&self.shared.seconds);
            let i = usize::try_from(counter.second).unwrap_or(usize::MAX);
            if i < (1 << 24) {
                if v.len() <= i {
                    v.resize(i + 1, Second::default());
                }
                v[i].pages += counter.pages;
            }
        }
        counter.second = sec;
        counter.pages = 0;
        self.shared.cursors[self.index].store(sec, Ordering::Relaxed);
    }

    /// Checks the slice for `req`, then waits until the verifier resumes
    /// the writers (or the workload stops).
    fn serve_pause(&self, req: &PauseRequest) {
        let from = self.start.elapsed().as_secs();
        let check = self.slice.check();
        {
            let mut r = lock(&req.results);
            if let Some(slot) = r.get_mut(self.index) {
                *slot = Some(check);
            }
        }
        req.done.notify_all();
        let mut pause = lock(&self.shared.pause);
        while !req.resumed.load(Ordering::Acquire) && !self.shared.stop.load(Ordering::Relaxed) {
            pause = self
                .shared
                .resume
                .wait_timeout(pause, Duration::from_millis(50))
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        drop(pause);
        let to = self.start.elapsed().as_secs();
        let mut v = lock(&self.shared.seconds);
        let (from, to) = (
            usize::try_from(from).unwrap_or(usize::MAX),
            usize::try_from(to).unwrap_or(usize::MAX),
        );
        if to < (1 << 24) {
            if v.len() <= to {
                v.resize(to + 1, Second::default());
            }
            for s in &mut v[from.min(to)..=to] {
                s.paused = true;
            }
        }
    }

    #[cfg(test)]
    fn apply_corruptions(&mut self) {
        let mut c = lock(&self.shared.corrupt);
        let base = self.slice.base;
        let end = base + self.slice.len() as u64;
        c.retain(|&i| {
            if (base..end).contains(&i) {
                self.slice.corrupt(i);
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mib: u64, rate: f64, pattern: DirtyPattern, threads: u32) -> DirtyParams {
        DirtyParams::new(mib, rate, pattern, 0.1, 0.9, threads).unwrap()
    }

    #[test]
    fn validation_names_the_field() {
        let p = |f: f64, s: f64, t: u32| DirtyParams::new(1, 1.0, DirtyPattern::Hotcold, f, s, t);
        for (r, field) in [
            (p(0.0, 0.9, 1), "hot_fraction"),
            (p(1.5, 0.9, 1), "hot_fraction"),
            (p(f64::NAN, 0.9, 1), "hot_fraction"),
            (p(0.1, -0.1, 1), "hot_share"),
            (p(0.1, 1.01, 1), "hot_share"),
            (p(0.1, f64::NAN, 1), "hot_share"),
            (p(0.1, 0.9, 0), "threads"),
            (p(0.1, 0.9, 65), "threads"),
            (
                DirtyParams::new(1, -1.0, DirtyPattern::Random, 0.1, 0.9, 1),
                "rate_mib_s",
            ),
            (
                DirtyParams::new(0, 1.0, DirtyPattern::Random, 0.1, 0.9, 1),
                "working_set_mib",
            ),
            (
                DirtyParams::new(u64::MAX, 1.0, DirtyPattern::Random, 0.1, 0.9, 1),
                "working_set_mib",
            ),
        ] {
            let e = r.unwrap_err();
            assert!(matches!(e, WorkloadError::Invalid(_)), "{e}");
            assert!(e.to_string().contains(field), "{e}");
        }
        assert!(p(1.0, 0.0, 64).is_ok());
        assert!(p(1.0, 1.0, 1).is_ok());
    }

    #[test]
    fn page_content_checks_in_full() {
        let mut page = Page::ZERO;
        fill_page(&mut page, 7, 3);
        assert!(page_ok(&page, 7, 3));
        assert!(!page_ok(&page, 7, 2), "stale version");
        assert!(!page_ok(&page, 8, 3), "wrong index");
        assert!(page.0[2..].iter().all(|w| *w != 0));
        for byte in [16usize, 100, 2048, 4095] {
            let mut bad = page.clone();
            bad.0[byte / 8] ^= 1 << (byte % 8 * 8);
            assert!(!page_ok(&bad, 7, 3), "byte {byte}");
        }
        // Content changes with the version: a rewrite really changes it.
        let mut next = Page::ZERO;
        fill_page(&mut next, 7, 4);
        let same = page.0[2..]
            .iter()
            .zip(&next.0[2..])
            .filter(|(a, b)| a == b)
            .count();
        assert_eq!(same, 0);
    }

    #[test]
    fn slices_cover_the_set() {
        for (pages, n) in [(256u64, 1u64), (256, 3), (257, 64), (64, 64)] {
            let mut next = 0;
            for t in 0..n {
                let (first, len) = slice_bounds(pages, n, t);
                assert_eq!(first, next);
                assert!(len >= pages / n);
                next += len;
            }
            assert_eq!(next, pages);
        }
    }

    #[test]
    fn clean_slice_checks_clean_and_corruption_is_found() {
        let mut s = Slice::new(100, 64).unwrap();
        for i in 0..200 {
            s.write(i % 64);
        }
        let c = s.check();
        assert_eq!((c.checked, c.corrupted), (64, 0));
        s.corrupt(105);
        s.corrupt(160);
        let c = s.check();
        assert_eq!(c.corrupted, 2);
        assert_eq!(c.first, vec![105, 160]);
        // A stale page (older but self-consistent) is found too.
        let mut s = Slice::new(0, 4).unwrap();
        s.write(2);
        fill_page(&mut s.pages[2], 2, 0);
        assert_eq!(s.check().first, vec![2]);
    }

    fn versions_after(pattern: DirtyPattern, writes: usize) -> Vec<u64> {
        let p = params(1, 1.0, pattern, 1);
        let mut s = Slice::new(0, 1000).unwrap();
        let mut picker = Picker::new(&p, 1000, 0);
        for _ in 0..writes {
            let i = picker.pick(1000);
            s.write(i);
        }
        assert_eq!(s.check().corrupted, 0);
        s.versions
    }

    #[test]
    fn patterns_touch_the_expected_pages() {
        let seq = versions_after(DirtyPattern::Sequential, 2500);
        assert!(seq[..500].iter().all(|v| *v == 3));
        assert!(seq[500..].iter().all(|v| *v == 2));
        let random = versions_after(DirtyPattern::Random, 20_000);
        assert!(random.iter().all(|v| *v > 0), "every page written");
        assert_eq!(random.iter().sum::<u64>(), 20_000);
        let halves = (
            random[..500].iter().sum::<u64>(),
            random[500..].iter().sum::<u64>(),
        );
        assert!(halves.0.abs_diff(halves.1) < 2_000, "{halves:?}");
        let hot = versions_after(DirtyPattern::Hotcold, 20_000);
        // Hot part: the first 10 % of the slice, 90 % of the writes.
        let in_hot: u64 = hot[..100].iter().sum();
        assert!(in_hot >= 16_000, "{in_hot} of 20000 in the hot part");
        assert!(hot[..100].iter().all(|v| *v > 0));
        assert!(hot[100..].iter().filter(|v| **v > 0).count() > 800);
    }

    #[test]
    fn hot_share_extremes() {
        let p = DirtyParams::new(1, 1.0, DirtyPattern::Hotcold, 0.5, 1.0, 1).unwrap();
        let mut picker = Picker::new(&p, 10, 0);
        assert!((0..1000).all(|_| picker.pick(10) < 5));
        let p = DirtyParams::new(1, 1.0, DirtyPattern::Hotcold, 0.5, 0.0, 1).unwrap();
        let mut picker = Picker::new(&p, 10, 0);
        assert!((0..1000).all(|_| picker.pick(10) >= 5));
        let p = DirtyParams::new(1, 1.0, DirtyPattern::Hotcold, 1.0, 0.0, 1).unwrap();
        let mut picker = Picker::new(&p, 10, 0);
        assert!((0..1000).all(|_| picker.pick(10) < 10));
    }

    #[test]
    fn max_reachable_rule() {
        assert_eq!(max_reachable(Some(10.0), &[]), None);
        assert_eq!(max_reachable(Some(10.0), &[10.0, 9.9, 10.1]), None);
        assert_eq!(max_reachable(Some(10.0), &[10.0, 5.0, 9.8, 4.0]), None);
        assert_eq!(
            max_reachable(Some(100.0), &[50.0, 60.0, 10.0, 40.0]),
            Some(55.0)
        );
        assert_eq!(max_reachable(None, &[50.0, 60.0, 10.0]), Some(55.0));
    }

    #[test]
    fn paced_multithreaded_run_hits_its_target() {
        let mut w =
            DirtyWorkload::start("t", params(16, 32.0, DirtyPattern::Sequential, 3)).unwrap();
        std::thread::sleep(Duration::from_millis(2200));
        let r = w.stop("t");
        assert_eq!(r.state, "stopped", "{r:?}");
        assert_eq!(r.target_mib_s, Some(32.0));
        assert_eq!(r.per_second_mib_s.len(), 2, "{r:?}");
        for s in &r.per_second_mib_s {
            assert!((s - 32.0).abs() <= 32.0 * 0.15, "{r:?}");
        }
        assert_eq!(r.max_reachable_mib_s, None, "{r:?}");
        assert!(r.started_realtime_ns > 1_600_000_000_000_000_000);
        let i = r.integrity.clone().unwrap();
        assert_eq!(i.checked_pages, 16 * 256);
        assert_eq!(i.corrupted_pages, 0, "{i:?}");
        assert!(i.checked_at_realtime_ns >= r.started_realtime_ns);
        assert_eq!(w.stop("t"), r);
    }

    #[test]
    fn verify_pauses_checks_and_finds_a_corrupted_page() {
        let p = DirtyParams::new(8, 0.1, DirtyPattern::Sequential, 0.1, 0.9, 2).unwrap();
        let mut w = DirtyWorkload::start("v", p).unwrap();
        let v = w.verifier();
        let clean = v.verify().unwrap();
        assert_eq!(clean.checked_pages, 8 * 256);
        assert_eq!(clean.corrupted_pages, 0);
        assert!(w.is_running());
        // Page 2000 is in the second thread's slice and is not rewritten for
        // minutes at 0.1 MiB/s.
        w.corrupt(2000);
        let found = v.verify().unwrap();
        assert_eq!(found.corrupted_pages, 1, "{found:?}");
        assert_eq!(found.first_corrupted, vec![2000]);
        assert_eq!(w.report("v").integrity, Some(found));
        let fin = w.stop("v");
        let i = fin.integrity.unwrap();
        assert_eq!(i.first_corrupted, vec![2000]);
        assert_eq!(v.verify(), Err(VerifyError::NotRunning));
    }

    #[test]
    fn flat_out_reports_its_maximum() {
        let mut w = DirtyWorkload::start("f", params(4, 0.0, DirtyPattern::Random, 1)).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        let r = w.stop("f");
        assert_eq!(r.target_mib_s, None);
        assert!(r.pages_written > 1024, "{r:?}");
        assert_eq!(r.per_second_mib_s.len(), 1);
        assert_eq!(r.max_reachable_mib_s, Some(r.per_second_mib_s[0]));
        assert_eq!(r.integrity.unwrap().corrupted_pages, 0);
    }
}
