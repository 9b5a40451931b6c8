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

/// `manifest.json` of a bundle made from records a platform already wrote
/// (`harness import`): no lab ran, so it has no host, guest or
/// acceleration facts, and says what was read instead.
#[derive(Debug, Clone, Serialize)]
pub struct ImportManifest {
    /// [`SCHEMA`].
    pub schema: String,
    /// This tool's version.
    pub tool_version: String,
    /// `git describe` of the tool's source.
    pub tool_git: String,
    /// The command line, every path cut to its last part: full paths can
    /// name the user's home folder ([`without_folders`]).
    pub command: Vec<String>,
    /// The import's id: a hash of the files read.
    pub run_id: String,
    /// `complete`: every file was read. A migration that failed is its
    /// repetition's status, not the import's.
    pub status: String,
    /// Always `None`: an import that fails writes no bundle.
    pub error: Option<String>,
    /// When the import began, RFC 3339 UTC.
    pub started: String,
    /// When it wrote the records, RFC 3339 UTC.
    pub ended: Option<String>,
    /// `proxmox-import`.
    pub backend: String,
    /// What was read.
    pub import: ImportFacts,
    /// Why no repetition has a client view; the analysis gives it as each
    /// repetition's `not_measured.client`.
    pub client_not_measured: String,
    /// What a person should know about the files (an offset a file's
    /// UPID contradicts).
    pub notes: Vec<String>,
}

/// What an import read.
#[derive(Debug, Clone, Serialize)]
pub struct ImportFacts {
    /// What kind of record (`Proxmox VE migration task logs`).
    pub from: String,
    /// The files, in repetition order.
    pub files: Vec<ImportedFile>,
    /// The UTC offset the records' local times were read with, `+HH:MM`.
    pub utc_offset: String,
    /// What the times in the records are, in a sentence.
    pub times: String,
}

/// One file an import read.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedFile {
    /// The repetition it became.
    pub repetition: u32,
    /// Its file name only (never its folder).
    pub name: String,
    /// How it was stored (`text`, `api-json`).
    pub format: String,
    /// The node it ran on, when its name says (a UPID).
    pub node: Option<String>,
}

/// `arg` with any path in it cut to its last part (`/home/u/a.log` →
/// `a.log`, `--out=/tmp/r` → `--out=r`), for a command line to store.
pub fn without_folders(arg: &str) -> String {
    let last = |p: &str| {
        p.rsplit('/')
            .find(|s| !s.is_empty())
            .unwrap_or(p)
            .to_string()
    };
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => format!("{flag}={}", last(value)),
        _ if arg.contains('/') => last(arg),
        _ => arg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_command_lines_name_no_folder() {
        assert_eq!(without_folders("/home/u/logs/a.log"), "a.log");
        assert_eq!(without_folders("target/debug/harness"), "harness");
        assert_eq!(without_folders("--out=/tmp/r/"), "--out=r");
        assert_eq!(without_folders("--utc-offset"), "--utc-offset");
        assert_eq!(without_folders("+01:00"), "+01:00");
        assert_eq!(without_folders("/"), "/");
    }
}
