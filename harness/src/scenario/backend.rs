//! The scenario's `[backend]` table: which platform the run migrates on.
//! Switching platform changes this table and nothing else.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// The platform kinds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// The embedded lab: two QEMU processes driven over QMP.
    #[default]
    Local,
    /// libvirt: the lab's two libvirt daemons, driven through `virsh`.
    Libvirt,
    /// Proxmox VE through its REST API, with the agent in a real VM.
    Proxmox,
}

impl BackendKind {
    /// The name in scenarios and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Libvirt => "libvirt",
            BackendKind::Proxmox => "proxmox",
        }
    }
}

/// How the lab's libvirt daemons carry the migration stream.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LibvirtTransport {
    /// `qemu+tcp://` between the daemons and `tcp://` for QEMU's stream,
    /// over the lab's migration link.
    #[default]
    Tcp,
    /// UNIX sockets in a folder both daemons see (libvirt documents this
    /// for containers on one host).
    Unix,
}

/// `[backend]`. Secrets are never values here: tokens come from the files
/// or environment variables named.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackendSpec {
    /// `local` (the default), `libvirt` or `proxmox`.
    pub kind: BackendKind,
    /// libvirt in the lab only: `tcp` (the default) or `unix`.
    pub transport: Option<LibvirtTransport>,
    /// libvirt on a real cluster: the two daemons as `virsh -c` reaches
    /// them from here (`qemu+ssh://root@host1/system`, …); without it the
    /// harness starts its own two in the lab.
    pub uris: Vec<String>,
    /// libvirt: each daemon as the other reaches it (`virsh migrate
    /// --p2p`'s destination); default: `uris`.
    pub peer_uris: Vec<String>,
    /// libvirt: where QEMU's stream goes to each node (`--migrateuri`,
    /// e.g. `tcp://10.0.0.2` for a migration network); default: libvirt's
    /// choice.
    pub migrate_uris: Vec<String>,
    /// libvirt on a real cluster: the domain's name.
    pub domain: Option<String>,
    /// proxmox: the API, `https://host:8006`.
    pub api_url: Option<String>,
    /// proxmox: the two nodes the VM goes between, in order (the first is
    /// `a` in the bundle, the second `b`).
    pub nodes: Vec<String>,
    /// proxmox: the VM's id.
    pub vmid: Option<u64>,
    /// proxmox: a file holding the API token, `USER@REALM!TOKENID=SECRET`.
    pub token_file: Option<PathBuf>,
    /// proxmox: or an environment variable holding it.
    pub token_env: Option<String>,
    /// proxmox: the API certificate's SHA-256 fingerprint (`AB:CD:…`) to
    /// pin; without it the system's roots must vouch for it.
    pub fingerprint: Option<String>,
    /// proxmox: `with-local-disks` (mirror the VM's local disks).
    pub with_local_disks: Option<bool>,
    /// proxmox: `targetstorage` (`1` = same names, or `src:dst,…`).
    pub targetstorage: Option<String>,
    /// proxmox: the nodes' UTC offset (`+01:00`): their task logs stamp
    /// local time. Default `+00:00`.
    pub utc_offset: Option<String>,
    /// proxmox without API tokens: each node's ssh address, in `nodes`'
    /// order, `[user@]host[:port]` (user `root` by default). With it the
    /// harness runs `qm migrate` on the VM's node over ssh instead of
    /// calling the API.
    pub ssh_hosts: Vec<String>,
    /// proxmox over ssh: the private key file (`ssh -i`); default: ssh's own.
    pub ssh_identity_file: Option<PathBuf>,
    /// proxmox over ssh: the known-hosts file the nodes' keys are checked
    /// against (strictly); default: ssh's own.
    pub ssh_known_hosts: Option<PathBuf>,
    /// proxmox over ssh: `qm migrate --migration_type` (`secure` or
    /// `insecure`); an API token cannot set it.
    pub migration_type: Option<String>,
    /// proxmox over ssh: `qm migrate --migration_network` (a CIDR); an API
    /// token cannot set it.
    pub migration_network: Option<String>,
    /// A real VM's guest agent, `host:port`.
    pub agent: Option<String>,
    /// A file holding the agent's token (or `LMIG_AGENT_TOKEN`).
    pub agent_token_file: Option<PathBuf>,
    /// The agent's reflector, `host:port` (default: the agent's host, 7001).
    pub reflector: Option<String>,
    /// This machine's address as the guest sees it (where its RTP stream
    /// goes); default: the address this machine reaches the agent from.
    pub client_addr: Option<IpAddr>,
}

impl BackendSpec {
    /// Refuses keys that belong to another kind and missing required keys,
    /// naming key and kind.
    pub fn check(&self) -> Result<(), String> {
        let owner = |keys: &[(&'static str, bool)], owner: &str, ok: bool| match keys
            .iter()
            .find(|(_, set)| *set)
        {
            Some((key, _)) if !ok => Err(format!(
                "`backend.{key}` is a {owner} key; this scenario's backend is `{}`{}",
                self.kind.as_str(),
                if self.kind == BackendKind::Libvirt && owner.contains("real") {
                    " in the lab (no `backend.uris`)"
                } else {
                    ""
                }
            )),
            _ => Ok(()),
        };
        let libvirt = self.kind == BackendKind::Libvirt;
        let remote = libvirt && !self.uris.is_empty();
        owner(
            &self.proxmox_keys(),
            "proxmox",
            self.kind == BackendKind::Proxmox,
        )?;
        owner(&self.libvirt_keys(), "libvirt", libvirt)?;
        owner(
            &self.real_vm_keys(),
            "real-VM",
            self.kind == BackendKind::Proxmox || remote,
        )?;
        if remote && self.transport.is_some() {
            return Err("`backend.transport` is for the lab's own daemons; with `backend.uris` use `backend.migrate_uris`".into());
        }
        match self.kind {
            BackendKind::Proxmox => self.check_proxmox(),
            BackendKind::Libvirt if remote => self.check_libvirt_remote(),
            _ => Ok(()),
        }
    }

    fn proxmox_keys(&self) -> [(&'static str, bool); 14] {
        [
            ("api_url", self.api_url.is_some()),
            ("nodes", !self.nodes.is_empty()),
            ("vmid", self.vmid.is_some()),
            ("token_file", self.token_file.is_some()),
            ("token_env", self.token_env.is_some()),
            ("fingerprint", self.fingerprint.is_some()),
            ("with_local_disks", self.with_local_disks.is_some()),
            ("targetstorage", self.targetstorage.is_some()),
            ("utc_offset", self.utc_offset.is_some()),
            ("ssh_hosts", !self.ssh_hosts.is_empty()),
            ("ssh_identity_file", self.ssh_identity_file.is_some()),
            ("ssh_known_hosts", self.ssh_known_hosts.is_some()),
            ("migration_type", self.migration_type.is_some()),
            ("migration_network", self.migration_network.is_some()),
        ]
    }

    fn libvirt_keys(&self) -> [(&'static str, bool); 5] {
        [
            ("transport", self.transport.is_some()),
            ("uris", !self.uris.is_empty()),
            ("peer_uris", !self.peer_uris.is_empty()),
            ("migrate_uris", !self.migrate_uris.is_empty()),
            ("domain", self.domain.is_some()),
        ]
    }

    fn real_vm_keys(&self) -> [(&'static str, bool); 4] {
        [
            ("agent", self.agent.is_some()),
            ("agent_token_file", self.agent_token_file.is_some()),
            ("reflector", self.reflector.is_some()),
            ("client_addr", self.client_addr.is_some()),
        ]
    }

    fn check_proxmox(&self) -> Result<(), String> {
        let need = |key: &str, set: bool| {
            if set {
                Ok(())
            } else {
                Err(format!(
                    "`backend.{key}` is required for the proxmox backend"
                ))
            }
        };
        need("vmid", self.vmid.is_some())?;
        need("agent", self.agent.is_some())?;
        if self.nodes.len() != 2 || self.nodes[0] == self.nodes[1] {
            return Err(format!(
                "`backend.nodes` must name two different nodes, not {:?}",
                self.nodes
            ));
        }
        if self.ssh_hosts.is_empty() {
            self.check_proxmox_api(need)?;
        } else {
            self.check_proxmox_ssh()?;
        }
        if let Some(o) = &self.utc_offset {
            parse_utc_offset(o)?;
        }
        Ok(())
    }

    fn check_proxmox_api(
        &self,
        need: impl Fn(&str, bool) -> Result<(), String>,
    ) -> Result<(), String> {
        if self.api_url.is_none() {
            return Err(
                "`backend.api_url` (or `backend.ssh_hosts`) is required for the proxmox backend"
                    .into(),
            );
        }
        need(
            "token_file` or `backend.token_env",
            self.token_file.is_some() || self.token_env.is_some(),
        )?;
        for (key, set) in [
            ("ssh_identity_file", self.ssh_identity_file.is_some()),
            ("ssh_known_hosts", self.ssh_known_hosts.is_some()),
            ("migration_type", self.migration_type.is_some()),
            ("migration_network", self.migration_network.is_some()),
        ] {
            if set {
                return Err(format!("`backend.{key}` needs `backend.ssh_hosts` (`qm migrate` over ssh): through the API an API token cannot set it"));
            }
        }
        Ok(())
    }

    fn check_proxmox_ssh(&self) -> Result<(), String> {
        for (key, set) in [
            ("api_url", self.api_url.is_some()),
            ("token_file", self.token_file.is_some()),
            ("token_env", self.token_env.is_some()),
            ("fingerprint", self.fingerprint.is_some()),
        ] {
            if set {
                return Err(format!("`backend.{key}` is for the API; with `backend.ssh_hosts` the harness runs `qm migrate` over ssh (choose one way)"));
            }
        }
        if self.ssh_hosts.len() != 2 {
            return Err(format!(
                "`backend.ssh_hosts` must have one entry per node (two), not {}",
                self.ssh_hosts.len()
            ));
        }
        for h in &self.ssh_hosts {
            SshHost::parse(h)?;
        }
        match self.migration_type.as_deref() {
            None | Some("secure") | Some("insecure") => {}
            Some(t) => {
                return Err(format!(
                    "`backend.migration_type` = {t:?} must be \"secure\" or \"insecure\""
                ))
            }
        }
        if let Some(n) = &self.migration_network {
            let ok = n.split_once('/').is_some_and(|(a, p)| {
                a.parse::<IpAddr>().is_ok() && p.parse::<u8>().is_ok_and(|p| p <= 128)
            });
            if !ok {
                return Err(format!(
                    "`backend.migration_network` = {n:?} is not a CIDR (10.0.0.0/24)"
                ));
            }
        }
        Ok(())
    }

    fn check_libvirt_remote(&self) -> Result<(), String> {
        if self.uris.len() != 2 {
            return Err(format!(
                "`backend.uris` must name two daemons, not {}",
                self.uris.len()
            ));
        }
        for (key, v) in [
            ("peer_uris", &self.peer_uris),
            ("migrate_uris", &self.migrate_uris),
        ] {
            if !v.is_empty() && v.len() != 2 {
                return Err(format!(
                    "`backend.{key}` must have one entry per daemon (two)"
                ));
            }
        }
        if self.domain.is_none() {
            return Err("`backend.domain` is required with `backend.uris`".into());
        }
        if self.agent.is_none() {
            return Err(
                "`backend.agent` is required with `backend.uris`: the real VM's agent, host:port"
                    .into(),
            );
        }
        Ok(())
    }
}

/// One node's ssh address, `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    /// The login (`root` by default: `qm migrate` needs it).
    pub user: String,
    /// The host name or address (IPv6 in brackets when a port follows).
    pub host: String,
    /// The port (22 by default).
    pub port: u16,
}

impl SshHost {
    /// Parses `[user@]host[:port]`, naming the entry when it is bad.
    pub fn parse(text: &str) -> Result<SshHost, String> {
        let bad = |why: &str| format!("`backend.ssh_hosts` entry {text:?}: {why}");
        let (user, rest) = match text.split_once('@') {
            Some((u, r)) => (u, r),
            None => ("root", text),
        };
        let (host, port) = match rest.strip_prefix('[') {
            Some(r) => {
                let (h, after) = r.split_once(']').ok_or_else(|| bad("no closing `]`"))?;
                (h, after.strip_prefix(':'))
            }
            None if rest.matches(':').count() == 1 => {
                let (h, p) = rest.split_once(':').unwrap_or((rest, ""));
                (h, Some(p))
            }
            None => (rest, None),
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
            None => 22,
        };
        let clean =
            |s: &str| !s.is_empty() && !s.starts_with('-') && !s.contains(char::is_whitespace);
        if !clean(user) || !clean(host) {
            return Err(bad("an empty or unusable user or host"));
        }
        Ok(SshHost {
            user: user.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

/// `+01:00`, `-05:30`, `Z` → seconds east of UTC.
pub fn parse_utc_offset(text: &str) -> Result<i64, String> {
    let bad = || format!("`backend.utc_offset` = {text:?} is not of the form +HH:MM");
    if text == "Z" {
        return Ok(0);
    }
    let sign = match text.chars().next() {
        Some('+') => 1,
        Some('-') => -1,
        _ => return Err(bad()),
    };
    let (h, m) = text[1..].split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}
