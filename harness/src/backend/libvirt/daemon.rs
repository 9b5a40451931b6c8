//! A libvirt daemon of the lab's own, one per node namespace.
//!
//! A root `libvirtd` has fixed paths (`/run/libvirt`, `/var/lib/libvirt`,
//! `/etc/libvirt`, `/var/log/libvirt`, `/var/cache/libvirt`) and refuses to
//! migrate to a daemon with its own `host_uuid` ("to the same host"). So
//! each lab daemon runs in the node's network namespace, in a mount
//! namespace of its own where private copies of the five folders (in the
//! lab's state folder) are bound over the real paths, and in a UTS
//! namespace with its own hostname. The host's own libvirt, if any, is
//! never touched: the binds are invisible outside the daemon's namespace.
//!
//! `virsh` in the harness's namespaces reaches a daemon through its socket
//! in the private run folder ([`Daemon::uri`]). The daemon is ended by its
//! PID, after the domains it started.

use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The real paths a root libvirtd uses, and the private folder bound over each.
const PRIVATE_DIRS: [(&str, &str); 5] = [
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("etc", "/etc/libvirt"),
    ("log", "/var/log/libvirt"),
    ("cache", "/var/cache/libvirt"),
];

/// The script the daemon's namespace runs before it becomes `libvirtd`:
/// bind the private folders ($1 is their parent), set the hostname ($2),
/// and exec the daemon, so the PID we hold is the daemon's.
const ENTER_SCRIPT: &str = r#"set -e
for pair in run:/run/libvirt lib:/var/lib/libvirt etc:/etc/libvirt log:/var/log/libvirt cache:/var/cache/libvirt; do
  mkdir -p "${pair#*:}"
  mount --bind "$1/${pair%%:*}" "${pair#*:}"
done
hostname "$2"
exec libvirtd --listen --pid-file /run/libvirt/libvirtd.pid
"#;

/// What decides one lab daemon.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// The node's network namespace.
    pub netns: String,
    /// Its hostname.
    pub hostname: String,
    /// The private folders' parent.
    pub root: PathBuf,
    /// The address it listens on for other daemons (the migration link).
    pub listen: Ipv4Addr,
}

/// A running lab daemon.
pub struct Daemon {
    /// What it was started with.
    pub spec: DaemonSpec,
    /// Its PID.
    pub pid: u32,
    /// Its `host_uuid`.
    pub host_uuid: String,
    child: tokio::process::Child,
}

impl DaemonSpec {
    /// The private run folder, as the harness sees it.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    /// The daemon's log folder (QEMU's per-domain logs are in `qemu/`).
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    /// Writes the private folders and the two configuration files.
    fn write_files(&self, host_uuid: &str) -> Result<()> {
        for (sub, _) in PRIVATE_DIRS {
            let d = self.root.join(sub);
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
        }
        let etc = self.root.join("etc");
        write(
            &etc.join("libvirtd.conf"),
            &libvirtd_conf(host_uuid, self.listen),
        )?;
        write(&etc.join("qemu.conf"), QEMU_CONF)
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `libvirtd.conf`: its own host UUID, and plain TCP without auth for the
/// other lab daemon (it listens only on the lab's migration link, inside
/// the node's namespace).
fn libvirtd_conf(host_uuid: &str, listen: Ipv4Addr) -> String {
    format!(
        "host_uuid = \"{host_uuid}\"\nlisten_tls = 0\nlisten_tcp = 1\nlisten_addr = \"{listen}\"\nauth_tcp = \"none\"\nlog_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n"
    )
}

/// `qemu.conf`: consoles to plain files (no virtlogd), QEMU as root (so it
/// may bind the lab's sockets and open the taps the lab made), and no
/// ownership memory (both daemons touch the same console and image files).
const QEMU_CONF: &str = "stdio_handler = \"file\"\nremember_owner = 0\nuser = \"root\"\ngroup = \"root\"\nsecurity_driver = \"none\"\n";

impl Daemon {
    /// Starts the daemon and waits (up to 20 s) for its socket.
    pub async fn start(spec: DaemonSpec) -> Result<Daemon> {
        let host_uuid = uuid_v4()?;
        spec.write_files(&host_uuid)?;
        let log = spec.root.join("libvirtd.stderr.log");
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &spec.netns])
            .args(["unshare", "--mount", "--uts", "--propagation", "private"])
            .args(["sh", "-c", ENTER_SCRIPT, "lmig-libvirtd"])
            .arg(&spec.root)
            .arg(&spec.hostname)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start libvirtd (install libvirt-daemon-driver-qemu)")?;
        let pid = child.id().context("libvirtd exited at once")?;
        let mut d = Daemon {
            spec,
            pid,
            host_uuid,
            child,
        };
        d.wait_socket(Duration::from_secs(20)).await?;
        Ok(d)
    }

    /// The URI `virsh` uses to reach it from the harness's namespaces.
    pub fn uri(&self) -> String {
        format!(
            "qemu:///system?socket={}",
            self.spec.run_dir().join("libvirt-sock").display()
        )
    }

    /// The URI another lab daemon uses to reach it over the migration link.
    pub fn peer_uri(&self) -> String {
        format!("qemu+tcp://{}/system", self.spec.listen)
    }

    async fn wait_socket(&mut self, deadline: Duration) -> Result<()> {
        let sock = self.spec.run_dir().join("libvirt-sock");
        let t0 = Instant::now();
        while !sock.exists() {
            if let Ok(Some(st)) = self.child.try_wait() {
                bail!(
                    "libvirtd in {} exited while starting ({st}): {}",
                    self.spec.netns,
                    self.stderr_tail()
                );
            }
            if t0.elapsed() > deadline {
                bail!(
                    "libvirtd in {} made no socket at {} within {} s: {}",
                    self.spec.netns,
                    sock.display(),
                    deadline.as_secs(),
                    self.stderr_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// The last lines the daemon wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.spec.root.join("libvirtd.stderr.log")).unwrap_or_default();
        let v: Vec<&str> = text.lines().rev().take(4).collect();
        if v.is_empty() {
            return "(it printed nothing)".into();
        }
        v.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// PIDs of the QEMUs this daemon started, from its private pid files.
    pub fn qemu_pids(&self) -> Vec<i32> {
        let dir = self.spec.run_dir().join("qemu");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| t.trim().parse().ok())
            .collect()
    }

    /// Ends the daemon by its PID: SIGTERM, then SIGKILL after 5 s.
    pub async fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// A random version-4 UUID, for the daemon's `host_uuid`.
fn uuid_v4() -> Result<String> {
    let hex = wire::random::token_hex(16).context("drawing a host UUID")?;
    let mut b: Vec<char> = hex.chars().collect();
    b[12] = '4';
    b[16] = ['8', '9', 'a', 'b'][(b[16].to_digit(16).unwrap_or(0) & 3) as usize];
    let s: String = b.into_iter().collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_uuids_are_version_4_and_differ() {
        let (a, b) = (uuid_v4().unwrap(), uuid_v4().unwrap());
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!("89ab".contains(&parts[3][..1]), "{a}");
    }

    #[test]
    fn the_enter_script_binds_every_private_folder() {
        for (sub, real) in PRIVATE_DIRS {
            assert!(ENTER_SCRIPT.contains(&format!("{sub}:{real}")), "{sub}");
        }
    }
}
