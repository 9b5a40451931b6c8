//! `harness doctor`: can this machine run the lab, and if not, what to do.

use crate::guest::{find_agent, find_kernel};
use crate::lab::netns::ip;
use crate::manifest::qemu_version;

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
    out.push(check(
        "QEMU",
        qemu_version().ok_or_else(|| "install it: apt-get install qemu-system-x86".into()),
    ));
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
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    out.push(Check {
        what: "KVM",
        ok: kvm.is_ok(),
        optional: true,
        detail: match kvm {
            Ok(_) => "/dev/kvm opens; `acceleration = \"auto\"` still proves a guest boots under it before trusting it".into(),
            Err(e) => format!("/dev/kvm: {e}; guests will run under TCG (slower, but migrations work)"),
        },
    });
    out
}
