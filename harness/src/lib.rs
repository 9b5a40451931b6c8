//! The harness: builds the embedded lab, boots guests running the agent,
//! triggers pre-copy live migration over QMP, measures it from the client,
//! the guest and the host, and writes result bundles.
//!
//! Pure parts (scenario parsing, summaries, QMP readings) are separate
//! from the I/O shells (lab, QEMU processes, sockets).

pub mod agent_client;
pub mod backend;
pub mod bench;
pub mod bench_dirty;
pub mod bundle;
pub mod clock;
pub mod compare;
pub mod decode;
pub mod doctor;
pub mod guest;
pub mod lab;
pub mod live;
pub mod manifest;
pub mod qemu;
pub mod rebuild;
pub mod remote_probe;
pub mod report_html;
pub mod run;
pub mod scenario;
pub mod verify;
