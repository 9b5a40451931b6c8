//! The benchmarks: our probe against ping and irtt ([`probe`]), the
//! agent's memory dirtier against stress-ng ([`dirty`]), each on a booted
//! lab guest through the backend.

pub mod dirty;
pub mod dirty_report;
pub mod probe;
