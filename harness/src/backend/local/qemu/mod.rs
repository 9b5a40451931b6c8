//! QEMU: the command line, the process, and its QMP monitor.

pub mod cmdline;
pub mod process;
pub mod qmp;
