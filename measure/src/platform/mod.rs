//! What virtualisation platforms write about a migration they ran, read
//! into the figures and markers a migration record holds.
//!
//! - [`proxmox`]: Proxmox VE's migration task log (`qm migrate`, the
//!   `qmigrate` task of the API).

pub mod proxmox;
