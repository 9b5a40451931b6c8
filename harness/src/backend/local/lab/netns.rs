//! Thin wrappers over `ip` and `setns(2)`.

use anyhow::{bail, Context, Result};
use std::process::Command;

/// Prefix of every namespace the harness creates: `lmig-<run id>-<role>`.
pub const NS_PREFIX: &str = "lmig-";

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `ip -n NS ARGS`.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<()> {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    ip(&full)
}

/// Names of the network namespaces that exist now.
pub fn list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// PIDs of processes whose network namespace is `ns`.
pub fn pids(ns: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `f` on a fresh thread that has entered network namespace `ns`, and
/// returns what it returns.
///
/// Sockets created in `f` stay in `ns` for their whole life, wherever they
/// are used afterwards: this is how the harness, running in the host's
/// namespace, opens the client's probe socket and talks to the agent.
pub fn in_netns<T, F>(ns: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path)
        .with_context(|| format!("cannot open network namespace {path}"))?;
    let handle = std::thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || -> Result<T> {
            // Namespace membership is per thread; this thread ends right after.
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .context("setns into the lab namespace (are you root?)")?;
            Ok(f()?)
        })
        .context("cannot spawn a thread")?;
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("thread in namespace {ns} panicked"))?
}
