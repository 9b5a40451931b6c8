//! QEMU processes: started inside a node's namespace, ended by their PID.

use super::cmdline::QemuSpec;
use super::qmp::Qmp;
use crate::backend::local::lab::Node;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// A running QEMU that the harness started.
pub struct QemuProcess {
    /// Where it runs.
    pub node: Node,
    /// Its PID.
    pub pid: u32,
    /// Its spec.
    pub spec: QemuSpec,
    /// Its stderr log.
    pub stderr_log: PathBuf,
    /// Its monitor, once connected.
    pub qmp: Option<Qmp>,
    child: tokio::process::Child,
    exit: Option<std::process::ExitStatus>,
}

impl QemuProcess {
    /// Starts QEMU in namespace `ns` (via `ip netns exec`, which execs QEMU
    /// itself, so the PID we hold is QEMU's).
    pub fn spawn(ns: &str, node: Node, spec: QemuSpec, stderr_log: PathBuf) -> Result<QemuProcess> {
        let log = std::fs::File::create(&stderr_log)
            .with_context(|| format!("cannot create {}", stderr_log.display()))?;
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args(["netns", "exec", ns, QEMU])
            .args(spec.args())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C in the terminal goes to the
            // harness, which then stops the run in order, and not straight
            // to QEMU, which would quit and lose the VM mid-measurement.
            .process_group(0)
            // The last line of defence: a harness that unwinds or is dropped
            // takes its QEMUs with it.
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {QEMU} (install qemu-system-x86)"))?;
        let pid = child.id().context("QEMU exited at once")?;
        Ok(QemuProcess {
            node,
            pid,
            spec,
            stderr_log,
            qmp: None,
            child,
            exit: None,
        })
    }

    /// Connects the monitor (QEMU creates the socket after it starts).
    pub async fn connect_qmp(&mut self) -> Result<&Qmp> {
        let res = tokio::select! {
            r = Qmp::connect(&self.spec.qmp, Duration::from_secs(20)) => r,
            st = self.child.wait() => {
                let st = st.ok();
                self.exit = st;
                anyhow::bail!("QEMU {} (pid {}) exited while starting ({}): {}", self.spec.name, self.pid,
                    st.map_or("unknown status".into(), |s| s.to_string()), self.stderr_tail());
            }
        };
        let qmp = res.with_context(|| {
            format!(
                "QEMU {} (pid {}): {}",
                self.spec.name,
                self.pid,
                self.stderr_tail()
            )
        })?;
        self.qmp = Some(qmp);
        self.qmp.as_ref().context("unreachable: QMP just set")
    }

    /// The monitor, or an error saying it is not connected.
    pub fn qmp(&self) -> Result<&Qmp> {
        self.qmp
            .as_ref()
            .with_context(|| format!("QEMU {} has no monitor connection", self.spec.name))
    }

    /// Whether it has exited, and how.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// The last lines QEMU wrote to stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        if lines.is_empty() {
            "(QEMU printed nothing)".into()
        } else {
            lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
        }
    }

    /// SIGKILL by PID, then reap.
    pub async fn kill(&mut self) {
        if self.exit_status().is_none() {
            kill_pid(self.pid as i32);
            self.exit = self.child.wait().await.ok();
        }
        self.qmp = None;
    }

    /// Asks QEMU to quit, and kills it if it has not within 3 s.
    pub async fn quit(&mut self) {
        if let Some(q) = &self.qmp {
            let _ = q
                .execute_timeout("quit", None, Duration::from_secs(2))
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .map(|r| r.ok())
            .ok()
            .flatten()
            .map(|s| self.exit = Some(s))
            .is_none()
        {
            self.kill().await;
        }
        self.qmp = None;
    }
}

/// Sends SIGKILL to `pid`; true if the process existed.
pub fn kill_pid(pid: i32) -> bool {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .is_ok()
}

/// The first line of `qemu-system-x86_64 --version`.
pub fn qemu_version() -> Option<String> {
    let out = std::process::Command::new(QEMU)
        .arg("--version")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_string)
}
