//! A real VM, reached over plain addresses from this machine (the
//! tester's laptop on the VM's network): its agent and reflector from the
//! scenario's `[backend]`, its token from a file or `LMIG_AGENT_TOKEN`,
//! and what the backends of real platforms share.

use crate::backend::agent::AgentClient;
use crate::backend::Site;
use anyhow::{Context, Result};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// A scratch folder, `/tmp/lmig-<what>-<id>`, removed when dropped.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    /// Creates it.
    pub fn new(what: &str, id: &str) -> std::io::Result<Scratch> {
        let p = std::env::temp_dir().join(format!("lmig-{what}-{id}"));
        std::fs::create_dir_all(&p)?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `host:port` → an address, naming the key.
pub fn resolve(addr: &str, key: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("`backend.{key}` = {addr:?} is not host:port"))?
        .next()
        .with_context(|| format!("`backend.{key}` = {addr:?} resolves to no address"))
}

/// The guest agent's token: from `file`, or from `LMIG_AGENT_TOKEN`.
pub fn agent_token(file: Option<&std::path::Path>) -> Result<String> {
    if let Some(f) = file {
        let t = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the agent's token from {}", f.display()))?;
        return Ok(t.trim().to_string());
    }
    std::env::var("LMIG_AGENT_TOKEN")
        .map(|t| t.trim().to_string())
        .context("no agent token: set `backend.agent_token_file` or LMIG_AGENT_TOKEN")
}

/// The agent's client, reflector and client address a real VM's
/// `[backend]` names.
pub fn real_endpoints(spec: &crate::scenario::BackendSpec) -> Result<(AgentClient, SocketAddr)> {
    let addr = resolve(spec.agent.as_deref().unwrap_or(""), "agent")?;
    let reflector = match &spec.reflector {
        Some(r) => resolve(r, "reflector")?,
        None => SocketAddr::new(addr.ip(), crate::backend::local::REFLECTOR_PORT),
    };
    let agent = AgentClient {
        site: Site::here(),
        addr,
        token: agent_token(spec.agent_token_file.as_deref())?,
    };
    Ok((agent, reflector))
}

/// This machine's address toward `to` (what the guest sees as its peer).
pub fn local_addr_toward(to: SocketAddr) -> Result<IpAddr> {
    let any: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let s = std::net::UdpSocket::bind(any).context("a UDP socket")?;
    s.connect(to).with_context(|| format!("no route to {to}"))?;
    Ok(s.local_addr()?.ip())
}

/// How a real VM is reached: everything from this machine; the client's
/// address as the guest sees it is `client_addr` (found by routing at
/// prepare), else the agent's own as a last resort.
pub fn endpoints(
    agent: &AgentClient,
    reflector: SocketAddr,
    client_addr: Option<IpAddr>,
) -> crate::backend::Endpoints {
    crate::backend::Endpoints {
        agent: agent.clone(),
        reflector,
        guest: agent.addr.ip(),
        client: Site::here(),
        client_addr: client_addr.unwrap_or(agent.addr.ip()),
        announce_interface: None,
    }
}

/// Waits for a real VM's agent (at least 10 s, or `boot_timeout_s`) and,
/// unless the scenario named it, finds this machine's address toward the
/// reflector.
pub async fn reach(
    agent: &AgentClient,
    reflector: SocketAddr,
    client_addr: &mut Option<IpAddr>,
    boot_timeout_s: f64,
) -> Result<wire::control::Health> {
    let deadline = std::time::Duration::from_secs_f64(boot_timeout_s.max(10.0));
    let health = agent
        .wait_ready(deadline, || Ok(()))
        .await
        .with_context(|| format!("the guest agent at {} does not answer", agent.addr))?;
    if client_addr.is_none() {
        *client_addr = Some(local_addr_toward(reflector)?);
    }
    Ok(health)
}
