//! The client's clock: CLOCK_REALTIME in nanoseconds since the Unix epoch,
//! the clock of the kernel's receive timestamps.

use nix::time::{clock_gettime, ClockId};

/// Reads CLOCK_REALTIME, in ns since the Unix epoch.
///
/// `clock_gettime(CLOCK_REALTIME)` cannot fail on Linux; should it ever,
/// the standard library's wall clock (the same clock) answers instead.
pub fn realtime_ns() -> i64 {
    match clock_gettime(ClockId::CLOCK_REALTIME) {
        Ok(ts) => ts
            .tv_sec()
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec()),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0),
    }
}
