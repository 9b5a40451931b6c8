//! Starting the agent: the lab (PID 1) sequence and the common part that
//! runs the reflector and the control API.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::config::{AgentConfig, ConfigError};
use crate::control::{self, AgentState};
use crate::network::{self, NetworkError};
use crate::pid1::{self, Pid1Error};
use crate::reflector::{Reflector, ReflectorError};
use crate::say;

/// Why the agent stopped (as PID 1, each of these powers the VM off).
#[derive(Debug, Error)]
pub enum AgentError {
    /// A PID 1 duty failed.
    #[error(transparent)]
    Pid1(#[from] Pid1Error),
    /// `/proc/cmdline` could not be read.
    #[error("cannot read /proc/cmdline")]
    Cmdline(#[source] std::io::Error),
    /// The configuration is unusable.
    #[error("bad configuration")]
    Config(#[from] ConfigError),
    /// The network could not be set up.
    #[error("network set-up failed")]
    Network(#[from] NetworkError),
    /// The reflector could not start.
    #[error(transparent)]
    Reflector(#[from] ReflectorError),
    /// The reflector thread ended.
    #[error("the reflector thread died")]
    ReflectorDied,
    /// The async runtime could not be built.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The control API's port could not be bound.
    #[error("cannot listen on {addr} for the control API")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The control API's listener failed.
    #[error("the control API's listener failed")]
    Serve(#[source] std::io::Error),
}

/// The line the agent prints once the control API and the reflector are
/// listening: `lmig-agent: ready control=7000 reflector=7001 addr=198.18.0.10`.
///
/// `addr` is the NIC's address in lab mode (without the prefix length),
/// the control API's listen address in service mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// TCP port of the control API.
    pub control_port: u16,
    /// UDP port of the reflector.
    pub reflector_port: u16,
    /// The guest's address.
    pub addr: IpAddr,
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ready control={} reflector={} addr={}",
            crate::LOG_PREFIX,
            self.control_port,
            self.reflector_port,
            self.addr
        )
    }
}

impl Ready {
    /// Finds a ready line in one line of console output (anything before
    /// `lmig-agent: ready`, such as kernel log noise or `\r`, is skipped).
    pub fn parse(line: &str) -> Option<Self> {
        let marker = format!("{} ready ", crate::LOG_PREFIX);
        let rest = &line[line.find(&marker)? + marker.len()..];
        let (mut control, mut reflector, mut addr) = (None, None, None);
        for word in rest.split_whitespace() {
            match word.split_once('=')? {
                ("control", v) => control = v.parse().ok(),
                ("reflector", v) => reflector = v.parse().ok(),
                ("addr", v) => addr = v.parse().ok(),
                _ => {}
            }
        }
        Some(Self {
            control_port: control?,
            reflector_port: reflector?,
            addr: addr?,
        })
    }
}

/// The lab-guest sequence: mounts, console, zombie reaper, configuration
/// from the kernel command line (`cmdline`, or `/proc/cmdline` if `None`),
/// kernel modules, loopback and NIC, then [`run`]. Returns only on a fatal
/// error, which the caller (PID 1) prints before powering off.
pub fn run_lab(cmdline: Option<String>) -> Result<Infallible, AgentError> {
    pid1::mount_filesystems()?;
    pid1::ensure_console();
    say!("starting, version {} (PID 1)", env!("CARGO_PKG_VERSION"));
    if let Err(e) = pid1::spawn_reaper() {
        say!("cannot start the zombie reaper: {e}");
    }
    let text = match cmdline {
        Some(t) => t,
        None => std::fs::read_to_string("/proc/cmdline").map_err(AgentError::Cmdline)?,
    };
    let config = AgentConfig::from_cmdline(&text)?;
    for w in &config.warnings {
        say!("warning: {w}");
    }
    pid1::load_modules();
    network::setup_loopback()?;
    say!("lo up with 127.0.0.1/8");
    if let Some(net) = &config.network {
        let iface = network::setup_nic(net)?;
        say!("{iface} up with {}/{}", net.addr, net.prefix_len);
    }
    run(config, true)
}

/// Starts the reflector thread and the control API (on a one-thread tokio
/// runtime), prints the [`Ready`] line and serves until something fails.
/// Does not touch networking.
pub fn run(config: AgentConfig, pid1: bool) -> Result<Infallible, AgentError> {
    let reflector = Reflector::spawn_on(SocketAddr::from((
        config.reflector_ip,
        config.reflector_port,
    )))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .thread_name("agent-blocking")
        .build()
        .map_err(AgentError::Runtime)?;
    runtime.block_on(async move {
        let addr = config.control_listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Bind { addr, source })?;
        let control_port = listener.local_addr().map_or(addr.port(), |a| a.port());
        let state = Arc::new(AgentState::new(
            config.token.clone(),
            reflector.local_addr().port(),
            pid1,
            reflector.counters(),
        ));
        let ready = Ready {
            control_port,
            reflector_port: reflector.local_addr().port(),
            addr: config
                .network
                .as_ref()
                .map_or(addr.ip(), |n| IpAddr::V4(n.addr)),
        };
        {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr().lock(), "{ready}");
        }
        let watch = async {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if !reflector.is_running() {
                    return AgentError::ReflectorDied;
                }
            }
        };
        let err = tokio::select! {
            e = control::serve(listener, state) => AgentError::Serve(e),
            e = watch => e,
        };
        Err(err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_round_trips() {
        let r = Ready {
            control_port: 7000,
            reflector_port: 7001,
            addr: "198.18.0.10".parse().unwrap(),
        };
        let line = r.to_string();
        assert_eq!(
            line,
            "lmig-agent: ready control=7000 reflector=7001 addr=198.18.0.10"
        );
        assert_eq!(Ready::parse(&line), Some(r));
        assert_eq!(Ready::parse(&format!("[    7.1] x {line}\r")), Some(r));
        assert_eq!(Ready::parse("lmig-agent: starting"), None);
        assert_eq!(
            Ready::parse("lmig-agent: ready control=x reflector=1 addr=1.2.3.4"),
            None
        );
    }
}
