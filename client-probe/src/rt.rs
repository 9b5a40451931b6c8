//! Scheduling of the probe threads: real-time priority and timer slack.
//!
//! On a busy machine (two QEMU processes on two cores during a migration)
//! a normal-priority sender can be kept off the CPU for over 100 ms, which
//! hides exactly the outage it is there to measure. A `SCHED_FIFO` thread
//! runs as soon as it is runnable. It needs root (or `CAP_SYS_NICE`, or an
//! `RLIMIT_RTPRIO`); without them the prober carries on at normal priority
//! and the record says so.
//!
//! This is the crate's only unsafe code: one libc call, below.

use std::io;

/// Gives the calling thread `SCHED_FIFO` at `priority` (1 to 99).
pub(crate) fn set_realtime(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pthread_self() is always a valid handle to the calling
    // thread, and `param` is a fully initialised sched_param that lives
    // across the call, which only reads it. No memory is shared or kept.
    #[expect(
        unsafe_code,
        reason = "libc has no safe wrapper for pthread_setschedparam"
    )]
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Asks for 1 ns of timer slack on the calling thread, so its sleeps end
/// when asked rather than up to 50 µs later (the default slack of normal
/// threads; real-time threads have none). Best effort.
pub(crate) fn tight_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1);
}

/// CPU time the calling thread has used, ns (0 if it cannot be read).
pub(crate) fn thread_cpu_ns() -> i64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| {
            t.tv_sec()
                .saturating_mul(1_000_000_000)
                .saturating_add(t.tv_nsec())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_is_granted_or_refused_cleanly() {
        // Root gets it, others get EPERM: either way no panic, and the
        // thread keeps running.
        let r = std::thread::spawn(|| set_realtime(10).map_err(|e| e.raw_os_error()))
            .join()
            .unwrap();
        assert!(matches!(r, Ok(()) | Err(Some(libc::EPERM))), "{r:?}");
        assert!(std::thread::spawn(|| set_realtime(1000))
            .join()
            .unwrap()
            .is_err());
    }

    #[test]
    fn thread_cpu_time_advances() {
        let a = thread_cpu_ns();
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(thread_cpu_ns() > a, "{x}");
    }
}
