//! What `acceleration = "auto"` learnt about KVM in this boot.
//!
//! Proving KVM costs up to 12 s (a guest must answer under it). On a
//! machine where it failed once it fails again until the host reboots
//! (say, a nested hypervisor that lets `/dev/kvm` open but cannot run our
//! guest), so the failure is remembered with the boot's id
//! (`/proc/sys/kernel/random/boot_id`) and later runs of the same boot go
//! straight to TCG, saying so. A reboot, or deleting the file, tries again.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const FILE: &str = "kvm-proof.json";

/// A failed proof, as remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The boot it failed in.
    pub boot_id: String,
    /// Why, in one line.
    pub reason: String,
}

/// This boot's id, if the kernel says.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Where the failure is remembered.
pub fn path() -> PathBuf {
    crate::cache::dir().join(FILE)
}

/// The failure remembered in `file` for boot `boot`, if any.
pub fn remembered(file: &Path, boot: &str) -> Option<Failure> {
    let text = std::fs::read_to_string(file).ok()?;
    let f: Failure = serde_json::from_str(&text).ok()?;
    (f.boot_id == boot).then_some(f)
}

/// Remembers a failure in `file` (best effort: a cache that cannot be
/// written only costs the next run its 12 s).
pub fn remember(file: &Path, failure: &Failure) {
    if let Some(parent) = file.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Ok(text) = serde_json::to_string(failure) {
        let _ = std::fs::write(file, text);
    }
}

/// Why a proof failed, on one line, for a person: the error's causes below
/// its outermost context (which only says "booting under kvm" and carries
/// the console), each by its first line.
pub fn one_line(e: &anyhow::Error) -> String {
    let causes: Vec<String> = e
        .chain()
        .skip(1)
        .map(|c| {
            c.to_string()
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|l| !l.is_empty())
        .collect();
    let why = if causes.is_empty() {
        e.to_string().lines().next().unwrap_or("").to_string()
    } else {
        causes.join(": ")
    };
    format!("the guest did not come up under kvm: {why}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_failure_counts_for_its_own_boot_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub").join(FILE);
        assert_eq!(remembered(&file, "boot-1"), None);
        let f = Failure {
            boot_id: "boot-1".into(),
            reason: "no answer within 12 s".into(),
        };
        remember(&file, &f);
        assert_eq!(remembered(&file, "boot-1"), Some(f));
        assert_eq!(remembered(&file, "boot-2"), None, "a reboot tries again");
        std::fs::write(&file, "garbled").unwrap();
        assert_eq!(remembered(&file, "boot-1"), None);
    }

    #[test]
    fn the_line_names_the_causes_without_the_console() {
        let e = anyhow::anyhow!("no answer within 3.0 s\nmore")
            .context("the guest agent did not answer within 12 s")
            .context("booting under kvm; last console lines:\n    (nothing)");
        assert_eq!(
            one_line(&e),
            "the guest did not come up under kvm: the guest agent did not answer within 12 s: no answer within 3.0 s"
        );
    }
}
