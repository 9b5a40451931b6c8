//! The harness: runs a scenario's migrations on a backend, measures them
//! from the client, the guest and the host, and writes result bundles.
//!
//! Where to look (the measurement itself is the `measure` crate, with no
//! I/O):
//! - [`backend`]: where migrations happen; [`backend::local`] is the
//!   embedded lab (namespaces, QEMU, QMP, the guest image, `doctor`),
//!   [`backend::libvirt`] the lab's guest between two libvirt daemons,
//!   [`backend::proxmox`] a Proxmox VE cluster through its API (and
//!   `proxmox::standin`, a stand-in cluster for testing it);
//!   [`backend::agent`] is the guest agent's control client;
//! - [`run`]: `harness run`'s pipeline over any backend;
//! - [`clients`]: the harness's client of a served probe;
//! - [`bundle`]: the result folder: writing, loading, checksums, manifest;
//! - [`report`]: `report.html`, `harness report`, `harness compare`;
//! - [`bench`]: `harness bench probe` and `harness bench dirty`;
//! - [`import`]: `harness import`: a platform's own records of migrations
//!   it ran (Proxmox's task logs) made into a bundle;
//! - [`scenario`], [`clock`], [`live`], [`cache`]: the scenario file, the
//!   host's clock, the live progress line, what is kept between runs.

pub mod backend;
pub mod bench;
pub mod bundle;
pub mod cache;
pub mod clients;
pub mod clock;
pub mod fleet;
pub mod import;
pub mod live;
pub mod report;
pub mod run;
pub mod scenario;
