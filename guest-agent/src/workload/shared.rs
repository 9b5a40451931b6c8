//! What every workload kind shares, and nothing else: the error a start
//! fails with, the page size, the uploaded files and the lookup of one,
//! the text of a worker thread's panic, the per-second byte counts of
//! the streaming kinds, and for the writing kinds (`dirty`, `disk`) the
//! generator of their random patterns and the rule of their maximum
//! reachable rate. It uses no other workload module: the kinds (`dirty`,
//! `disk`, `command`, `stream_rtp`, `stream_http`) and the registry
//! (`workload`) depend on it, never the other way round.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

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
    /// A disk workload's device failed while it was pre-filled (the text
    /// names the device, the byte offset and the errno).
    #[error("disk workload: {0}")]
    Io(String),
}

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

/// The text of a thread's panic payload.
pub(crate) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("workload thread panicked: {msg}")
}

/// Locks `m`, poisoned or not: every critical section of the workloads
/// leaves its data consistent, so a poisoned lock only means a panic
/// elsewhere.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A second whose rate is below this share of the target is short.
pub const REACH_TOLERANCE: f64 = 0.97;

/// The mean of the best half (rounded up) of `seconds`, when the target is
/// `None` (as fast as possible) or that mean is below
/// [`REACH_TOLERANCE`] of the target; else `None`.
pub fn max_reachable(target: Option<f64>, seconds: &[f64]) -> Option<f64> {
    if seconds.is_empty() {
        return None;
    }
    let mut v = seconds.to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    let best = &v[..v.len().div_ceil(2)];
    let mean = best.iter().sum::<f64>() / best.len() as f64;
    match target {
        Some(t) if mean >= t * REACH_TOLERANCE => None,
        _ => Some(mean),
    }
}

/// splitmix64: a well-mixed 64-bit hash, used to seed generators.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One xorshift64 step (`x` must not be 0).
pub(crate) fn xorshift64(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// A small, fast generator for the random patterns (xorshift64*).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(splitmix64(seed) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        xorshift64(&mut self.0).wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, n)` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Whole seconds of `seconds` (bytes per second) in MiB/s, and the mean
/// MiB/s of `bytes` over `elapsed`.
pub(crate) fn rates(seconds: &[u64], elapsed: Duration, bytes: u64) -> (Vec<f64>, f64) {
    const MIB: f64 = 1024.0 * 1024.0;
    let complete = usize::try_from(elapsed.as_secs()).unwrap_or(usize::MAX);
    // Seconds in which nothing was sent have no entry yet.
    let per: Vec<f64> = (0..complete)
        .map(|i| seconds.get(i).copied().unwrap_or(0) as f64 / MIB)
        .collect();
    let secs = elapsed.as_secs_f64();
    let mean = if secs > 0.0 {
        bytes as f64 / MIB / secs
    } else {
        0.0
    };
    (per, mean)
}

/// Adds `bytes` to the second of `at` since `start`.
pub(crate) fn count_second(seconds: &Mutex<Vec<u64>>, start: Instant, at: Instant, bytes: u64) {
    let i = usize::try_from(at.saturating_duration_since(start).as_secs()).unwrap_or(usize::MAX);
    let mut v = lock(seconds);
    if i >= v.len() {
        // A stall longer than a day would not be worth a huge vector.
        if i > 86_400 * 7 {
            return;
        }
        v.resize(i + 1, 0);
    }
    v[i] += bytes;
}
