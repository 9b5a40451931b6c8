//! `manifest.json`: where, with what and when a bundle was made.

use serde::Serialize;
use std::process::Command;

/// Version tag of the manifest format.
pub const SCHEMA: &str = "lmig-manifest/1";

/// Facts about the host.
#[derive(Debug, Clone, Serialize, Default)]
pub struct HostFacts {
    /// `uname -r`.
    pub kernel: String,
    /// CPU model name.
    pub cpu: String,
    /// Online CPUs.
    pub cpus: usize,
    /// The hypervisor's version as the backend reads it (the first line of
    /// `qemu-system-x86_64 --version` for the local lab).
    pub qemu_version: String,
}

impl HostFacts {
    /// Reads them from this machine; `hypervisor` is the backend's
    /// [`crate::backend::Backend::hypervisor_version`].
    pub fn read(hypervisor: Option<String>) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self {
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            cpu: cpuinfo
                .lines()
                .find_map(|l| {
                    l.strip_prefix("model name")
                        .and_then(|r| r.split(':').nth(1))
                })
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            qemu_version: hypervisor.unwrap_or_else(|| "not found".into()),
        }
    }
}

/// `git describe --always --dirty` of the source tree, if it is one.
pub fn git_describe() -> String {
    Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// [`SCHEMA`].
    pub schema: String,
    /// This tool's version.
    pub tool_version: String,
    /// `git describe` of the tool's source.
    pub tool_git: String,
    /// The command line that made the bundle.
    pub command: Vec<String>,
    /// The scenario file as given.
    pub scenario_file: String,
    /// The lab's run id.
    pub run_id: String,
    /// `running`, `complete`, `incomplete` or `failed`.
    pub status: String,
    /// The run's error, if any.
    pub error: Option<String>,
    /// Start, RFC 3339 UTC.
    pub started: String,
    /// End, RFC 3339 UTC.
    pub ended: Option<String>,
    /// Which backend migrated.
    pub backend: String,
    /// `kvm` or `tcg`.
    pub acceleration: Option<String>,
    /// How the acceleration was chosen.
    pub acceleration_note: String,
    /// The host.
    pub host: HostFacts,
    /// The guest image, with hashes.
    pub guest: Option<serde_json::Value>,
    /// Whether the guest agent answered its health check after the last
    /// migration (absent when the run never got that far).
    pub agent_answered_at_end: Option<bool>,
}
