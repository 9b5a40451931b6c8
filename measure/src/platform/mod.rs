//! What virtualisation platforms write about a migration they ran, read
//! into the figures and markers a migration record holds.
//!
//! - [`proxmox`]: Proxmox VE's migration task log (`qm migrate`, the
//!   `qmigrate` task of the API);
//! - [`libvirt`]: what `virsh` prints (completed-job statistics, domain
//!   events, QEMU's events relayed by the daemon).

pub mod libvirt;
pub mod proxmox;
