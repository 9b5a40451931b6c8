//! A user-space delay line: a forwarder between two interfaces of one
//! network namespace that passes every Ethernet frame (both directions,
//! ARP and all) after shaping it like a WAN link: rate, queue, delay,
//! jitter, loss.
//!
//! Why in user space: the lab's kernel may lack `sch_netem`, and `tbf` or
//! `htb` alone cannot delay, jitter or lose; one mechanism doing all of
//! it also counts what it forwarded, 100 ms bin by bin, for the bundle.
//!
//! ```text
//!  peer --veth-- [a] DelayLine [b] --veth-- peer      (inside one netns)
//!               rx a -> Shaper -> queue -> tx b
//!               rx b -> Shaper -> queue -> tx a
//! ```
//!
//! - [`shaper`]: the link model, pure (times come in as arguments);
//! - [`forwarder`]: [`DelayLine`], the sockets and threads;
//! - [`stats`]: [`LinkStats`], what it forwarded and dropped;
//! - `frames`: cutting the GSO super-packets a veth hands over into the
//!   frames a real link would carry; `sys`: the system calls.

pub mod forwarder;
mod frames;
pub mod shaper;
pub mod stats;
mod sys;

pub use forwarder::DelayLine;
pub use shaper::{LinkShape, Reason, ShapeError, Shaper, Verdict};
pub use stats::{Bin, DirectionStats, LinkStats, BIN_NS};
