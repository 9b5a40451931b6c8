//! The stand-in's nodes as ssh reaches them: one real OpenSSH `sshd` per
//! node, in the lab's client namespace, each on its own port, where `qm`
//! and `pveversion` are the stand-in's own ([`super::qm`]), as they are
//! Proxmox's on a node.
//!
//! Each `sshd` runs in a mount namespace of its own: a tmpfs on `/run`
//! gives it the `/run/sshd` it insists on without touching the host's, and
//! a folder of the stand-in's is bound over `/usr/local/sbin` (first on
//! root's `PATH`), holding `qm` and `pveversion` for that node. `/dev/null`
//! is bound over root's `~/.bashrc`: sshd runs each command through root's
//! shell, and Debian's bash reads `~/.bashrc` for ssh sessions, so the
//! host's (on this machine, a `pyenv init` whose rehash lock, left by a
//! session the timeout test hangs up, stalled every later command for
//! 60 s) would otherwise run on the stand-in's nodes. Host and
//! client keys are made fresh for each stand-in; the client's key, the
//! `known_hosts` file and the config are in the stand-in's folder. Only key
//! logins, only root, no PAM. The daemons are ended by their PIDs.

use anyhow::{bail, Context, Result};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// OpenSSH's server, as Debian installs it.
pub const SSHD: &str = "/usr/sbin/sshd";
/// The first node's port; the second's is the next.
pub const FIRST_PORT: u16 = 2201;

/// The script a daemon's namespace runs: a private `/run`, the node's
/// commands over `/usr/local/sbin` ($1), then the daemon ($2 = config).
const ENTER_SCRIPT: &str = r#"set -e
mount -t tmpfs -o mode=0755 lmig-sshd-run /run
mkdir -m 0755 /run/sshd
if [ -e /root/.bashrc ]; then mount --bind /dev/null /root/.bashrc; fi
mount --bind "$1" /usr/local/sbin
exec /usr/sbin/sshd -D -e -f "$2"
"#;

/// The running daemons and what a client needs to reach them.
pub struct Nodes {
    daemons: Vec<Child>,
    /// `root@addr:port` per node.
    pub hosts: Vec<String>,
    /// The client's private key.
    pub identity: PathBuf,
    /// The nodes' host keys, for `StrictHostKeyChecking`.
    pub known_hosts: PathBuf,
}

fn keygen(path: &Path) -> Result<()> {
    crate::backend::local::tool::run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "pve-standin", "-f"])
            .arg(path),
        &format!("ssh-keygen -f {}", path.display()),
    )?;
    Ok(())
}

fn public_key(path: &Path) -> Result<String> {
    let pubfile = path.with_extension("pub");
    let text = std::fs::read_to_string(&pubfile)
        .with_context(|| format!("reading {}", pubfile.display()))?;
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(kind), Some(key)) => Ok(format!("{kind} {key}")),
        _ => bail!("{} is not a public key", pubfile.display()),
    }
}

/// The `qm` and `pveversion` of node `node`: scripts that run the
/// stand-in's binary against its local socket.
fn commands(dir: &Path, node: &str, socket: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let exe = std::env::current_exe().context("the stand-in's own path")?;
    let bin = dir.join(format!("bin-{node}"));
    std::fs::create_dir_all(&bin)?;
    for cmd in ["qm", "pveversion"] {
        let path = bin.join(cmd);
        let script = format!(
            "#!/bin/sh\nexec '{}' {cmd} --socket '{}' --node '{node}' \"$@\"\n",
            exe.display(),
            socket.display()
        );
        std::fs::write(&path, script)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(bin)
}

fn config(dir: &Path, node: &str, addr: IpAddr, port: u16) -> Result<PathBuf> {
    let conf = dir.join(format!("sshd-{node}.conf"));
    let text = format!(
        "Port {port}\nListenAddress {addr}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\n\
         StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\nAllowUsers root\nX11Forwarding no\nAllowTcpForwarding no\n\
         PrintMotd no\nLogLevel VERBOSE\n",
        dir.join(format!("host-{node}")).display(),
        dir.join("authorized_keys").display(),
    );
    std::fs::write(&conf, text)?;
    Ok(conf)
}

impl Nodes {
    /// Starts one daemon per node in `netns`, on `addr`, ports from
    /// [`FIRST_PORT`]; their commands reach the stand-in at `socket`.
    pub fn start(
        dir: &Path,
        netns: &str,
        addr: IpAddr,
        nodes: &[&str],
        socket: &Path,
    ) -> Result<Nodes> {
        if dir.starts_with("/run") || dir.starts_with("/usr/local/sbin") {
            bail!("the stand-in's folder {} would be hidden from its sshd (a private /run, /usr/local/sbin)", dir.display());
        }
        let identity = dir.join("ssh-id");
        keygen(&identity)?;
        std::fs::write(dir.join("authorized_keys"), public_key(&identity)? + "\n")?;
        let mut n = Nodes {
            daemons: Vec::new(),
            hosts: Vec::new(),
            identity,
            known_hosts: dir.join("known_hosts"),
        };
        let mut known = String::new();
        for (i, node) in nodes.iter().enumerate() {
            let port = FIRST_PORT + i as u16;
            keygen(&dir.join(format!("host-{node}")))?;
            known += &format!(
                "[{addr}]:{port} {}\n",
                public_key(&dir.join(format!("host-{node}")))?
            );
            let bin = commands(dir, node, socket)?;
            let conf = config(dir, node, addr, port)?;
            let log = std::fs::File::create(dir.join(format!("sshd-{node}.log")))?;
            let child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    netns,
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-c",
                    ENTER_SCRIPT,
                    "sshd",
                ])
                .arg(&bin)
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting sshd for {node}"))?;
            n.daemons.push(child);
            n.hosts.push(format!("root@{addr}:{port}"));
        }
        std::fs::write(&n.known_hosts, known)?;
        n.wait_listening(dir, nodes)?;
        Ok(n)
    }

    /// Waits until every daemon says it listens (or one has died).
    fn wait_listening(&mut self, dir: &Path, nodes: &[&str]) -> Result<()> {
        let t0 = Instant::now();
        for (i, node) in nodes.iter().enumerate() {
            let log = dir.join(format!("sshd-{node}.log"));
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("Server listening") {
                    break;
                }
                if let Some(st) = self.daemons[i].try_wait()? {
                    bail!("sshd for {node} exited ({st}): {}", text.trim());
                }
                if t0.elapsed() > Duration::from_secs(10) {
                    bail!(
                        "sshd for {node} does not listen after 10 s: {}",
                        text.trim()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.daemons {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }
}
