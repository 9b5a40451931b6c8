//! The client probe's view: its raw record and everything measured from it.
//!
//! - [`record`]: what the probe recorded (sends, replies, sender lateness);
//! - [`gaps`]: gaps between replies, the outage, loss per direction, RTT;
//!   its module doc is the one definition of each measure;
//! - [`jitter`]: RFC 3550 interarrival jitter;
//! - [`guest_clock`]: the guest's clock against the client's, from the
//!   reflector's timestamps;
//! - [`csv`]: the replies CSV, written and read back.

pub mod csv;
pub mod gaps;
pub mod guest_clock;
pub mod jitter;
pub mod record;
