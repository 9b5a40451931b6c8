//! Driving libvirt through `virsh`: one command at a time with a deadline,
//! and event watchers that run for the whole run.
//!
//! Why `virsh` and not the `virt` crate: the crate needs `libvirt-dev` at
//! build time, pins an exact `libc` version against the workspace's, and
//! has no safe wrapper for event registration, which this backend lives
//! on. `virsh` needs nothing at build time, prints what a tester can run
//! by hand, and every line it printed is kept in the bundle.

use crate::clock::now_ns;
use anyhow::{bail, Context, Result};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// One libvirt daemon, as `virsh -c URI` reaches it.
#[derive(Debug, Clone)]
pub struct Virsh {
    /// The connection URI.
    pub uri: String,
}

impl Virsh {
    /// Runs `virsh -c URI ARGS` and returns its stdout; fails with its
    /// stderr, naming the command, or when it takes longer than `deadline`.
    pub async fn run(&self, args: &[&str], deadline: Duration) -> Result<String> {
        let mut cmd = tokio::process::Command::new("virsh");
        cmd.args(["-q", "-c", &self.uri])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let shown = format!("virsh -c {} {}", self.uri, args.join(" "));
        let out = tokio::time::timeout(deadline, cmd.output())
            .await
            .with_context(|| format!("`{shown}` did not finish within {deadline:?}"))?
            .with_context(|| format!("cannot run `{shown}` (install libvirt-clients)"))?;
        if !out.status.success() {
            bail!(
                "`{shown}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A line a watcher read, with when the harness read it.
#[derive(Debug, Clone)]
pub struct Line {
    /// Host CLOCK_REALTIME when read, ns.
    pub host_rx_ns: i64,
    /// The line, without its newline.
    pub text: String,
}

/// A `virsh` that prints events until it is stopped (`event --loop`,
/// `qemu-monitor-event --loop`), and every line it printed so far.
pub struct Watcher {
    /// What it runs, for messages.
    pub what: String,
    lines: Arc<Mutex<Vec<Line>>>,
    child: tokio::process::Child,
}

impl Watcher {
    /// Starts `virsh -c URI ARGS` and reads its lines in the background.
    pub fn start(v: &Virsh, args: &[&str]) -> Result<Watcher> {
        let what = format!("virsh -c {} {}", v.uri, args.join(" "));
        let mut child = tokio::process::Command::new("virsh")
            .args(["-c", &v.uri])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start `{what}`"))?;
        let stdout = child.stdout.take().context("watcher has no stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(text)) = r.next_line().await {
                let line = Line {
                    host_rx_ns: now_ns(),
                    text,
                };
                if let Ok(mut v) = sink.lock() {
                    v.push(line);
                }
            }
        });
        Ok(Watcher { what, lines, child })
    }

    /// How many lines it has read.
    pub fn count(&self) -> usize {
        self.lines.lock().map_or(0, |v| v.len())
    }

    /// The lines read since the `from`-th.
    pub fn since(&self, from: usize) -> Vec<Line> {
        self.lines
            .lock()
            .map(|v| v.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }

    /// Ends it (it was started by us; by its PID through tokio).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}
