//! Duties of the agent as PID 1 of a lab guest: mounting the pseudo file
//! systems, loading kernel modules, reaping zombies and powering off.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::kmod::{finit_module, ModuleInitFlags};
use nix::mount::{mount, MsFlags};
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{dup2, Pid};
use thiserror::Error;

use crate::say;

/// The file listing the kernel modules to load, one absolute path a line,
/// in dependency order.
pub const MODULES_LIST: &str = "/etc/lmig/modules";

/// Why a PID 1 duty failed.
#[derive(Debug, Error)]
pub enum Pid1Error {
    /// A mount failed (other than "already mounted").
    #[error("cannot mount {fstype} on {target}: {errno}")]
    Mount {
        /// The file system type.
        fstype: &'static str,
        /// The mount point.
        target: &'static str,
        /// The error.
        errno: Errno,
    },
    /// A mount point could not be created.
    #[error("cannot create {target}")]
    MountPoint {
        /// The mount point.
        target: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Mounts proc on /proc, sysfs on /sys, devtmpfs on /dev and tmpfs on
/// /tmp, creating the directories if missing; an already-mounted file
/// system (EBUSY) is fine.
pub fn mount_filesystems() -> Result<(), Pid1Error> {
    let nosuid = MsFlags::MS_NOSUID;
    let table: [(&'static str, &'static str, MsFlags); 4] = [
        (
            "proc",
            "/proc",
            nosuid | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        ),
        (
            "sysfs",
            "/sys",
            nosuid | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        ),
        ("devtmpfs", "/dev", nosuid),
        ("tmpfs", "/tmp", nosuid | MsFlags::MS_NODEV),
    ];
    for (fstype, target, flags) in table {
        std::fs::create_dir_all(target)
            .map_err(|source| Pid1Error::MountPoint { target, source })?;
        match mount(Some(fstype), target, Some(fstype), flags, None::<&str>) {
            Ok(()) | Err(Errno::EBUSY) => {}
            Err(errno) => {
                return Err(Pid1Error::Mount {
                    fstype,
                    target,
                    errno,
                })
            }
        }
    }
    Ok(())
}

/// If the kernel found no `/dev/console` in the initramfs, fds 0 to 2 are
/// closed: open the console from the freshly mounted devtmpfs and make it
/// stdin, stdout and stderr, so progress lines reach the serial console.
pub fn ensure_console() {
    if fcntl(2, FcntlArg::F_GETFD).is_ok() {
        return;
    }
    let Ok(fd) = nix::fcntl::open(
        "/dev/console",
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        Mode::empty(),
    ) else {
        return;
    };
    for target in 0..=2 {
        if fd != target {
            let _ = dup2(fd, target);
        }
    }
    if fd > 2 {
        let _ = nix::unistd::close(fd);
    }
}

/// Outcome of loading one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleOutcome {
    /// Loaded now.
    Loaded,
    /// Already loaded (EEXIST).
    AlreadyLoaded,
    /// Failed; the message says why.
    Failed(String),
}

/// The module paths of a modules list: one path per line, blank lines
/// and `#` comments skipped.
pub fn parse_modules_list(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Loads one uncompressed `.ko` file with `finit_module`.
pub fn load_module(path: &Path) -> ModuleOutcome {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return ModuleOutcome::Failed(format!("cannot open: {e}")),
    };
    let no_params: &CStr = c"";
    match finit_module(&file, no_params, ModuleInitFlags::empty()) {
        Ok(()) => ModuleOutcome::Loaded,
        Err(Errno::EEXIST) => ModuleOutcome::AlreadyLoaded,
        // The kernel says ENOENT for an unresolved symbol.
        Err(Errno::ENOENT) => ModuleOutcome::Failed(
            "finit_module: ENOENT: unknown symbol (is a module it depends on listed after it?)"
                .into(),
        ),
        Err(e) => ModuleOutcome::Failed(format!("finit_module: {e}")),
    }
}

/// Loads every module of [`MODULES_LIST`] in order, printing each outcome;
/// a failure is printed and the next module tried. A missing list is
/// not an error (a kernel with built-in drivers needs none).
pub fn load_modules() {
    let text = match std::fs::read_to_string(MODULES_LIST) {
        Ok(t) => t,
        Err(e) => {
            say!("no modules loaded ({MODULES_LIST}: {e})");
            return;
        }
    };
    for path in parse_modules_list(&text) {
        match load_module(Path::new(path)) {
            ModuleOutcome::Loaded => say!("module {path} loaded"),
            ModuleOutcome::AlreadyLoaded => say!("module {path} already loaded"),
            ModuleOutcome::Failed(why) => say!("module {path} failed: {why}"),
        }
    }
}

/// Starts a thread that reaps every child that exits (orphans are
/// re-parented to PID 1) and hands each exit status to
/// [`crate::workload::note_reaped`], which keeps those of command
/// workloads.
pub fn spawn_reaper() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(|| loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) {
                Ok(ws) => crate::workload::note_reaped(ws),
                Err(Errno::EINTR) => {}
                // No children at all: look again later.
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        })
        .map(|_| ())
}

/// Flushes file systems and powers the VM off. Never returns: if the
/// power-off call fails, sleeps forever (PID 1 must not exit).
pub fn power_off() -> ! {
    nix::unistd::sync();
    let Err(e) = reboot(RebootMode::RB_POWER_OFF);
    say!("power off failed: {e}; halting here");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Prints `lmig-agent: fatal: <message>` and powers off.
pub fn fatal(message: &str) -> ! {
    say!("fatal: {message}");
    power_off()
}

/// Makes a panic of the main thread print a `fatal:` line and power the
/// VM off instead of killing PID 1 (which would panic the kernel). A
/// panic of another thread is printed and unwinds that thread only (the
/// agent watches its threads).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        match thread.name() {
            Some("main") => fatal(&format!("panic: {info}")),
            name => say!("panic in thread {}: {info}", name.unwrap_or("?")),
        }
    }));
}

/// Whether fd 2 is open (used by tests and diagnostics).
pub fn stderr_is_open() -> bool {
    fcntl(std::io::stderr().as_raw_fd(), FcntlArg::F_GETFD).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_list() {
        let text = "# virtio\n/lib/modules/virtio.ko\n\n  /lib/modules/virtio_ring.ko  \n";
        assert_eq!(
            parse_modules_list(text),
            vec!["/lib/modules/virtio.ko", "/lib/modules/virtio_ring.ko"]
        );
    }

    #[test]
    fn missing_module_fails_cleanly() {
        assert!(matches!(
            load_module(Path::new("/nonexistent/x.ko")),
            ModuleOutcome::Failed(_)
        ));
    }

    #[test]
    fn stderr_open_in_tests() {
        assert!(stderr_is_open());
    }
}
