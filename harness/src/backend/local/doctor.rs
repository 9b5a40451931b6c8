//! `harness doctor`: can this machine run the lab, and if not, what to do.

use crate::backend::local::guest::{find_agent, find_kernel};
use crate::backend::local::lab::netns::ip;
use crate::backend::local::qemu::process::qemu_version;

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub what: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// Only informational: a failure here does not stop a run.
    pub optional: bool,
    /// What was found, or what to do about it.
    pub detail: String,
}

fn check(what: &'static str, r: Result<String, String>) -> Check {
    match r {
        Ok(detail) => Check {
            what,
            ok: true,
            optional: false,
            detail,
        },
        Err(detail) => Check {
            what,
            ok: false,
            optional: false,
            detail,
        },
    }
}

/// Runs every check.
pub fn run_checks() -> Vec<Check> {
    let mut out = Vec::new();
    out.push(check(
        "running as root",
        if nix::unistd::geteuid().is_root() {
            Ok("yes".into())
        } else {
            Err("the lab creates namespaces and taps: run as root (sudo)".into())
        },
    ));
    out.push(check(
        "iproute2 (ip)",
        std::process::Command::new("ip")
            .arg("-V")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .map_err(|_| "install it: apt-get install iproute2".into()),
    ));
    let qemu = qemu_version();
    out.push(check(
        "QEMU",
        qemu.clone()
            .ok_or_else(|| "install it: apt-get install qemu-system-x86".into()),
    ));
    if let Some(major) = qemu.as_deref().and_then(qemu_major) {
        out.push(Check {
            what: "QEMU version",
            ok: major >= 10,
            optional: true,
            detail: if major >= 10 {
                format!("{major}: migrates TCG guests cleanly here")
            } else {
                format!("{major}: QEMU 7.2's TCG live migration corrupted guests' memory on machines like this (docs/findings.md); install 10 from bookworm-backports (scripts/install-deps.sh does)")
            },
        });
    }
    out.push(check(
        "guest kernel",
        find_kernel("auto")
            .map(|k| format!("{} ({})", k.vmlinuz.display(), k.release))
            .map_err(|e| format!("{e:#}")),
    ));
    out.push(check(
        "guest agent (static)",
        find_agent(None)
            .map(|p| p.display().to_string())
            .map_err(|e| format!("{e:#}")),
    ));
    out.push(check(
        "/dev/net/tun",
        if std::path::Path::new("/dev/net/tun").exists() {
            Ok("present".into())
        } else {
            Err("missing: load the tun module (modprobe tun)".into())
        },
    ));
    let ns = format!("lmig-doctor-{}", std::process::id());
    out.push(check(
        "network namespaces",
        ip(&["netns", "add", &ns])
            .and_then(|_| ip(&["netns", "del", &ns]))
            .map(|_| "can create and remove them".into())
            .map_err(|e| format!("{e:#}")),
    ));
    let leftovers = crate::backend::local::lab::topology::abandoned_labs();
    out.push(Check {
        what: "labs of ended runs",
        ok: leftovers.is_empty(),
        optional: true,
        detail: if leftovers.is_empty() {
            "none left behind".into()
        } else {
            format!(
                "{} left by runs that were killed ({}): `harness lab clean` removes them (the next run does too)",
                leftovers.len(),
                leftovers.join(", ")
            )
        },
    });
    let libvirtd = std::process::Command::new("libvirtd")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    out.push(Check {
        what: "libvirt (for `[backend] kind = \"libvirt\"`)",
        ok: libvirtd.is_some(),
        optional: true,
        detail: libvirtd.unwrap_or_else(|| {
            "not installed: scripts/install-deps.sh installs it from bookworm-backports".into()
        }),
    });
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    let failed_proof = super::kvm_proof::boot_id()
        .and_then(|b| super::kvm_proof::remembered(&super::kvm_proof::path(), &b));
    out.push(Check {
        what: "KVM",
        ok: kvm.is_ok() && failed_proof.is_none(),
        optional: true,
        detail: match (kvm, failed_proof) {
            (Ok(_), Some(f)) => format!(
                "/dev/kvm opens, but in this boot {}; `auto` goes straight to TCG until a reboot (or delete {})",
                f.reason,
                super::kvm_proof::path().display()
            ),
            (Ok(_), None) => "/dev/kvm opens; `acceleration = \"auto\"` still proves a guest boots under it before trusting it".into(),
            (Err(e), _) => format!("/dev/kvm: {e}; guests will run under TCG (slower, but migrations work)"),
        },
    });
    out
}

/// The major version in `QEMU emulator version 10.0.2 (...)`.
fn qemu_major(line: &str) -> Option<u32> {
    line.strip_prefix("QEMU emulator version ")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn qemu_major_reads_the_version_line() {
        assert_eq!(
            super::qemu_major(
                "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)"
            ),
            Some(10)
        );
        assert_eq!(
            super::qemu_major("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u13)"),
            Some(7)
        );
        assert_eq!(super::qemu_major("something else"), None);
    }
}
