//! What a backend recorded of a migration.
//!
//! - [`marker`]: timed markers (requested, pass N, source stopped, RAM
//!   completed, destination resumed, ...), each with its clock,
//!   uncertainty and source;
//! - [`record`]: one repetition's record: the migration's markers and
//!   statistics, the backend's raw data, the window of probing around it,
//!   the guest agent's reports;
//! - [`qmp`]: lenient readings of QEMU's QMP replies and events;
//! - [`from_qmp`]: markers and QEMU's statistics from QMP events and
//!   samples.

pub mod from_qmp;
pub mod marker;
pub mod qmp;
pub mod record;
