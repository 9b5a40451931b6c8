//! What a backend recorded of a migration.
//!
//! - [`record`]: one repetition's record (the migration, the window of
//!   probing around it, the guest agent's reports);
//! - [`qmp`]: lenient readings of QEMU's QMP replies and events.

pub mod qmp;
pub mod record;
