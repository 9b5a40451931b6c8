//! Proxmox without API tokens: `qm` on the VM's node over ssh, as an
//! administrator runs it. `qm migrate` prints its task log on stdout as it
//! goes (not the final `TASK OK`) and exits non-zero when the task fails;
//! it may set `migration_type` and `migration_network`, which an API token
//! never can.
//!
//! The session gets a terminal (`ssh -tt`) so that stopping it (Ctrl-C,
//! `migration.timeout_s`) hangs the remote `qm` up, and qemu-server's
//! worker aborts the migration as it does on a signal; without one, the
//! worker would go on after the ssh client had gone. A terminal merges
//! stderr into stdout and ends lines with `\r\n`: the reader strips the
//! `\r`, and `qm`'s error lines are task-log lines anyway.
//!
//! Host keys are checked strictly (`StrictHostKeyChecking=yes`,
//! `BatchMode=yes`): an unknown or changed key fails the run; nothing is
//! ever asked or accepted.

use super::api::ClockBounds;
use super::Followed;
use crate::backend::MigrationRequest;
use crate::clock::now_ns;
use crate::live::Live;
use crate::scenario::backend::SshHost;
use crate::scenario::BackendSpec;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How many times one clock reading asks the node's `date`.
const CLOCK_ASKS: usize = 5;

/// How long one short command (`qm status`, `pveversion`, `date`) may take.
const SHORT: Duration = Duration::from_secs(30);

/// The two nodes as ssh reaches them.
pub struct Ssh {
    hosts: Vec<SshHost>,
    identity: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
}

/// One argument quoted for the remote shell.
fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@".contains(&b))
    {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

impl Ssh {
    /// The nodes of `spec.ssh_hosts`, checked.
    pub fn new(spec: &BackendSpec) -> Result<Ssh> {
        let hosts = spec
            .ssh_hosts
            .iter()
            .map(|h| SshHost::parse(h).map_err(anyhow::Error::msg))
            .collect::<Result<Vec<_>>>()?;
        if hosts.len() != 2 {
            bail!("`backend.ssh_hosts` must name the two nodes");
        }
        Ok(Ssh {
            hosts,
            identity: spec.ssh_identity_file.clone(),
            known_hosts: spec.ssh_known_hosts.clone(),
        })
    }

    /// `user@host:port`, for messages.
    pub fn describe(&self, node: usize) -> String {
        let h = &self.hosts[node];
        format!("{}@{}:{}", h.user, h.host, h.port)
    }

    fn command(&self, node: usize, remote: &[String], tty: bool) -> tokio::process::Command {
        let h = &self.hosts[node];
        let mut c = tokio::process::Command::new("ssh");
        c.arg(if tty { "-tt" } else { "-T" });
        for o in [
            "BatchMode=yes",
            "StrictHostKeyChecking=yes",
            "ConnectTimeout=10",
            "ServerAliveInterval=5",
            "ServerAliveCountMax=3",
            "LogLevel=ERROR",
        ] {
            c.args(["-o", o]);
        }
        if let Some(k) = &self.known_hosts {
            c.arg("-o")
                .arg(format!("UserKnownHostsFile={}", k.display()));
        }
        if let Some(i) = &self.identity {
            c.arg("-i").arg(i).args(["-o", "IdentitiesOnly=yes"]);
        }
        c.args(["-p", &h.port.to_string(), "-l", &h.user, &h.host, "--"]);
        c.args(remote.iter().map(|a| quote(a)));
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    /// Runs a short command on `node` → its stdout; an error names the
    /// host, the command and what it printed.
    pub async fn run(&self, node: usize, remote: &[&str]) -> Result<String> {
        let args: Vec<String> = remote.iter().map(|s| s.to_string()).collect();
        let what = format!("`ssh {} {}`", self.describe(node), args.join(" "));
        let out = tokio::time::timeout(SHORT, self.command(node, &args, false).output())
            .await
            .with_context(|| format!("{what} did not finish within {SHORT:?}"))?
            .with_context(|| format!("cannot start {what}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let said = String::from_utf8_lossy(&out.stdout);
            bail!(
                "{what} failed ({}): {}",
                out.status,
                format!("{} {}", err.trim(), said.trim()).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The node's clock against ours: `date +%s%N` asked [`CLOCK_ASKS`]
    /// times in one session (so the connection's set-up is not in the
    /// span), the reading with the shortest round trip kept, bounded by
    /// its send and receive times.
    pub async fn clock(&self, node: usize) -> Result<ClockBounds> {
        let what = format!("`date +%s%N` on {}", self.describe(node));
        let ask = async {
            let script = ["while read x; do date +%s%N; done".to_string()];
            let mut child = self
                .command(node, &[], false)
                .args(&script)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            let (Some(mut input), Some(out)) = (child.stdin.take(), child.stdout.take()) else {
                bail!("no pipes");
            };
            let mut lines = BufReader::new(out).lines();
            let mut best: Option<(i64, ClockBounds)> = None;
            for _ in 0..CLOCK_ASKS {
                let t0 = now_ns();
                tokio::io::AsyncWriteExt::write_all(&mut input, b"\n").await?;
                let Some(line) = lines.next_line().await? else {
                    let err = child.wait_with_output().await?;
                    bail!(
                        "the session ended: {}",
                        String::from_utf8_lossy(&err.stderr).trim()
                    );
                };
                let t1 = now_ns();
                let node_ns: i64 = line
                    .trim()
                    .parse()
                    .with_context(|| format!("it said {line:?}"))?;
                if best.is_none_or(|(rtt, _)| t1 - t0 < rtt) {
                    best = Some((t1 - t0, ClockBounds::of_reading(t0, t1, node_ns)));
                }
            }
            drop(input);
            let _ = child.wait().await;
            best.map(|(_, b)| b).context("no reading")
        };
        tokio::time::timeout(SHORT, ask)
            .await
            .with_context(|| format!("{what} did not answer within {SHORT:?}"))?
            .with_context(|| what.clone())
    }

    /// Runs `qm migrate` (`args` after `qm`) on `node`, reading its log as
    /// it prints it, until it exits; stopped (the session hung up) on
    /// cancel or past `deadline`.
    pub async fn follow_qm(
        &self,
        node: usize,
        args: &[String],
        req: &MigrationRequest<'_>,
        live: &Live,
        deadline: Duration,
    ) -> Followed {
        let mut f = Followed::default();
        let mut remote = vec!["qm".to_string()];
        remote.extend(args.iter().cloned());
        let what = format!("`ssh {} {}`", self.describe(node), remote.join(" "));
        let mut child = match self
            .command(node, &remote, true)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                f.error = Some(format!("cannot start {what}: {e}"));
                return f;
            }
        };
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            f.error = Some(format!("{what}: no pipes"));
            return f;
        };
        let mut lines = BufReader::new(out).lines();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let mut r = BufReader::new(err);
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut r, &mut text).await;
            text
        });
        let t0 = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(l)) => {
                        let l = l.trim_end_matches('\r').to_string();
                        live.update(&format!("rep {}/{} qm | {l} | {}", req.repetition, req.of, (req.status_suffix)()));
                        f.lines.push(json!({"n": f.lines.len() + 1, "t": l}));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        f.error = Some(format!("reading {what}'s output: {e}"));
                        break;
                    }
                },
                _ = tick.tick() => {
                    let cancel = req.cancel.load(Ordering::SeqCst);
                    if (cancel || t0.elapsed() > deadline) && !f.stopped_by_us {
                        f.stopped_by_us = true;
                        hang_up(&child);
                    }
                }
            }
        }
        let status = child.wait().await;
        let stderr = stderr.await.unwrap_or_default();
        f.exit = Some(match status {
            Ok(s) if s.success() => "OK".to_string(),
            Ok(s) => format!(
                "{what} exited with {}{}",
                s.code()
                    .map_or("a signal".to_string(), |c| format!("status {c}")),
                last_words(&stderr, &f.lines)
            ),
            Err(e) => format!("{what}: {e}"),
        });
        f
    }
}

/// Ends our ssh client (by its PID): its session's terminal hangs up the
/// remote `qm`.
fn hang_up(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// What the session said last: ssh's own complaint, or the log's last line.
fn last_words(stderr: &str, lines: &[serde_json::Value]) -> String {
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string)
        .or_else(|| {
            lines
                .last()
                .and_then(|l| l["t"].as_str())
                .map(str::to_string)
        });
    last.map_or(String::new(), |l| format!(": {}", l.trim()))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn arguments_are_quoted_for_the_remote_shell_only_when_needed() {
        assert_eq!(quote("--targetstorage"), "--targetstorage");
        assert_eq!(quote("10.0.0.0/24"), "10.0.0.0/24");
        assert_eq!(quote("local-lvm:fast"), "local-lvm:fast");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("x;rm -rf /"), "'x;rm -rf /'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
