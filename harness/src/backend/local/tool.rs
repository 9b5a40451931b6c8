//! Running one of the host's tools (`qemu-img`, `mke2fs`, `ssh-keygen`,
//! …) to its end: its output, or an error naming what was run and the end
//! of what it said.

use anyhow::{bail, Context, Result};
use std::process::{Command, Output};

/// How many of the tool's last stderr lines an error quotes.
const TAIL_LINES: usize = 8;

/// Runs `cmd` (described as `what`) and waits; a failed start or a non-zero
/// exit is an error with the tool's last stderr lines.
pub fn run(cmd: &mut Command, what: &str) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let mut tail: Vec<&str> = err.lines().rev().take(TAIL_LINES).collect();
        tail.reverse();
        bail!(
            "{what} failed ({}): {}",
            out.status,
            tail.join(" | ").trim()
        );
    }
    Ok(out)
}
