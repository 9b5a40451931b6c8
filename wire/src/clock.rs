//! The one clock every program of the lab stamps its times with:
//! CLOCK_REALTIME, in ns since the Unix epoch.
//!
//! Why the realtime clock and not a monotonic one: it is the clock the
//! other sources of times already use. QEMU stamps its QMP events with
//! CLOCK_REALTIME (`timestamp.seconds`/`microseconds`), and the kernel's
//! receive timestamps (`SO_TIMESTAMPNS`, the ones the probe and the
//! reflector read from `recvmsg`'s control data) are CLOCK_REALTIME too.
//! Reading the same clock in user space puts all of them on one timeline
//! on one machine without any offset estimation (between machines,
//! [`crate::clocksync`] estimates the offset). Its price: it can jump when
//! it is set (NTP, by hand), and in a guest it stops while the VM is
//! paused, which is what the guest agent's clock watch looks for.
//!
//! The guest agent, the client probe and the harness all read it here, so
//! they cannot disagree about its unit, its epoch or what a time before the
//! epoch looks like.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now on CLOCK_REALTIME, ns since the Unix epoch; negative before it
/// (a clock set that far back), saturating at `i64::MIN`/`i64::MAX` (the
/// year 2262).
///
/// [`SystemTime::now`] is `clock_gettime(CLOCK_REALTIME)` on Linux (a
/// vDSO call, no system call), which cannot fail for this clock.
pub fn realtime_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_is_the_wall_clock_in_ns_since_the_epoch() {
        let ours = realtime_ns();
        let std_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        // After 2020-09-13 (1.6e18 ns): ns, not µs or s.
        assert!(ours > 1_600_000_000_000_000_000, "{ours}");
        // The standard library's wall clock, read just after (within a
        // second, should the clock be stepped in between).
        assert!((std_ns - ours).abs() < 1_000_000_000, "{ours} vs {std_ns}");
    }
}
