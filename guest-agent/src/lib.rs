//! The live-migration lab's guest agent.
//!
//! It runs inside each VM: as PID 1 (`/init` of the initramfs) in lab
//! guests, as an ordinary service on real VMs. It offers
//! - a UDP probe reflector ([`reflector`]) that echoes
//!   [`wire::probe`] requests with the guest's timestamps and per-session
//!   receive counts, on its own OS thread;
//! - workloads ([`workload`]): paced memory dirtying with integrity checks
//!   ([`workload::dirty`]), paced disk writes of stamped blocks with
//!   integrity checks and holds ([`workload::disk`]), programs run as
//!   commands, and video streams of
//!   an uploaded clip over RTP ([`workload::stream_rtp`]) and HTTP
//!   ([`workload::stream_http`]);
//! - the guest's own view of its clocks ([`clock`]), which is expected to
//!   hide the migration pause (guest clocks stop while the VM is stopped);
//! - a token-protected HTTP control API ([`control`]) with the contract of
//!   [`wire::control`].
//!
//! In lab guests it also does PID 1's duties ([`pid1`]) and sets up the
//! network ([`network`]) from `lmig.*` keys of the kernel command line
//! ([`config`]). [`agent`] ties it all together.
#![deny(unsafe_code)]

pub mod agent;
pub mod clock;
pub mod config;
pub mod control;
#[allow(unsafe_code)]
mod mmsg;
#[allow(unsafe_code)]
pub mod netif;
pub mod network;
pub mod pid1;
pub mod reflector;
pub mod workload;

pub use agent::{run, run_lab, AgentError, Ready};
pub use config::{AgentConfig, Cli, ConfigError, NetworkConfig};

/// Prefix of every line the agent prints to stderr (the serial console in
/// lab guests).
pub const LOG_PREFIX: &str = "lmig-agent:";

/// Prints one `lmig-agent: ...` line to stderr; never panics, even when
/// stderr is closed.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(
            ::std::io::stderr().lock(),
            "{} {}",
            $crate::LOG_PREFIX,
            ::std::format_args!($($arg)*)
        );
    }};
}
