//! A real distribution as the lab's guest (`vm.image = "debian"`): Debian
//! 12 with systemd, built from Debian's own packages by `debootstrap`,
//! booting from its disk (ext4 on `/dev/vda`, the distribution's kernel
//! and initramfs), its NIC configured by systemd-networkd, and the guest
//! agent installed as the shipped service (`guest-agent/dist/`): the unit,
//! its config file and a root-only token file. The agent is then not PID 1
//! and configures nothing; systemd does.
//!
//! Cached under [`crate::cache::dir`]`/debian-bookworm/`: the debootstrap
//! tree once (`root/`), and one disk image per agent binary and address
//! (`image-<hash>.raw`, made with `mke2fs -d`, no loop mount). Each run
//! copies the image (sparse) and writes its own token into the copy with
//! `debugfs`, so the cache never holds a token.

use super::image::sha256_file;
use crate::live::Live;
use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The release.
pub const SUITE: &str = "bookworm";
/// Where its packages come from.
pub const MIRROR: &str = "http://deb.debian.org/debian";
/// What a minimal system with systemd, networkd and a kernel needs.
const PACKAGES: &str = "systemd,systemd-sysv,udev,iproute2,kmod,linux-image-amd64";
/// The root file system's size.
pub const IMAGE_MIB: u64 = 1536;

/// The shipped unit and config (the ones a tester installs on a real VM).
const UNIT: &str = include_str!("../../../../../guest-agent/dist/lmig-agent.service");
const CONFIG: &str = include_str!("../../../../../guest-agent/dist/lmig-agent.toml");

/// A built Debian guest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DebianImage {
    /// The cached disk image (no token in it).
    pub image: PathBuf,
    /// The distribution's kernel.
    pub kernel: PathBuf,
    /// The distribution's initramfs.
    pub initrd: PathBuf,
    /// The image's size, bytes.
    pub size_bytes: u64,
    /// How long debootstrap took, if this run ran it.
    pub debootstrap_s: Option<f64>,
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    crate::backend::local::tool::run(cmd, what).map(|_| ())
}

/// The debootstrap tree, made once (`root/.lmig-complete` marks a whole one).
fn rootfs(cache: &Path, live: &Live) -> Result<(PathBuf, Option<f64>)> {
    let root = cache.join("root");
    if root.join(".lmig-complete").exists() {
        return Ok((root, None));
    }
    let partial = cache.join("root.partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(cache)?;
    live.println(&format!(
        "building the Debian {SUITE} guest with debootstrap (once; a few minutes)..."
    ));
    let t0 = Instant::now();
    run(
        Command::new("debootstrap")
            .args(["--variant=minbase", &format!("--include={PACKAGES}"), SUITE])
            .arg(&partial)
            .arg(MIRROR),
        "debootstrap",
    )?;
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&partial, &root)?;
    std::fs::write(root.join(".lmig-complete"), "")?;
    Ok((root, Some(t0.elapsed().as_secs_f64())))
}

fn write(root: &Path, rel: &str, text: &str, mode: u32) -> Result<()> {
    let path = root.join(rel.trim_start_matches('/'));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// `wants/NAME` → the unit, as `systemctl enable` would link it.
fn enable(root: &Path, target: &str, unit: &str, unit_path: &str) -> Result<()> {
    let dir = root.join(format!("etc/systemd/system/{target}.wants"));
    std::fs::create_dir_all(&dir)?;
    let link = dir.join(unit);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(unit_path, &link)?;
    Ok(())
}

/// The lab's settings in the tree: the NIC by systemd-networkd at `addr`
/// (`198.18.0.10/24`, no gateway: the lab has no default route), the agent
/// as the shipped service, the root file system, and timers that would
/// wake during a measurement masked.
fn configure(root: &Path, agent: &Path, addr: &str) -> Result<()> {
    write(root, "etc/hostname", "lmig-guest\n", 0o644)?;
    write(
        root,
        "etc/fstab",
        "LABEL=lmig-root / ext4 defaults 0 1\n",
        0o644,
    )?;
    write(
        root,
        "etc/systemd/network/10-lab.network",
        &format!("[Match]\nName=eth0\n\n[Network]\nAddress={addr}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"),
        0o644,
    )?;
    enable(
        root,
        "multi-user.target",
        "systemd-networkd.service",
        "/lib/systemd/system/systemd-networkd.service",
    )?;
    let bin = root.join("usr/local/bin/guest-agent");
    std::fs::create_dir_all(bin.parent().unwrap_or(root))?;
    std::fs::copy(agent, &bin).with_context(|| format!("copying {}", agent.display()))?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    write(root, "etc/systemd/system/lmig-agent.service", UNIT, 0o644)?;
    write(root, "etc/lmig-agent.toml", CONFIG, 0o644)?;
    write(root, "etc/lmig-agent.token", "replaced-per-run\n", 0o600)?;
    enable(
        root,
        "multi-user.target",
        "lmig-agent.service",
        "/etc/systemd/system/lmig-agent.service",
    )?;
    for t in [
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "dpkg-db-backup.timer",
        "e2scrub_all.timer",
        "fstrim.timer",
    ] {
        let link = root.join("etc/systemd/system").join(t);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/dev/null", &link)?;
    }
    Ok(())
}

/// The newest file in `root/boot` starting with `prefix`.
fn boot_file(root: &Path, prefix: &str) -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found
        .pop()
        .with_context(|| format!("no {prefix}* in {}/boot", root.display()))
}

/// Removes the images of other agent builds (each is most of a GiB).
fn prune_other_images(cache: &Path, keep: &Path) {
    let Ok(dir) = std::fs::read_dir(cache) else {
        return;
    };
    for e in dir.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p != keep && name.starts_with("image-") && name.ends_with(".raw") {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// The Debian guest for `agent` at `addr`, built or taken from the cache.
pub fn ensure(agent: &Path, addr: &str, live: &Live) -> Result<DebianImage> {
    let cache = crate::cache::dir().join(format!("debian-{SUITE}"));
    let (root, debootstrap_s) = rootfs(&cache, live)?;
    let key = format!("{}{addr}{UNIT}{CONFIG}", sha256_file(agent)?);
    let hash = format!(
        "{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(key.as_bytes())
    );
    let image = cache.join(format!("image-{}.raw", &hash[..16]));
    if !image.exists() {
        configure(&root, agent, addr)?;
        let partial = image.with_extension("partial");
        run(
            Command::new("mke2fs")
                .args(["-q", "-F", "-t", "ext4", "-L", "lmig-root", "-d"])
                .arg(&root)
                .arg(&partial)
                .arg(format!("{IMAGE_MIB}M")),
            "mke2fs -d (the Debian guest's root file system)",
        )?;
        std::fs::rename(&partial, &image)?;
        prune_other_images(&cache, &image);
    }
    Ok(DebianImage {
        kernel: boot_file(&root, "vmlinuz-")?,
        initrd: boot_file(&root, "initrd.img-")?,
        size_bytes: IMAGE_MIB * 1048576,
        image,
        debootstrap_s,
    })
}

/// A run's own copy of the image at `dest`, with its token written in
/// (root-only) by `debugfs`; the token goes through a 0600 file in `scratch`.
pub fn copy_for_run(img: &DebianImage, dest: &Path, token: &str, scratch: &Path) -> Result<()> {
    run(
        Command::new("cp")
            .args(["--sparse=always", "--reflink=auto"])
            .arg(&img.image)
            .arg(dest),
        "copying the Debian guest's image",
    )?;
    let tok = scratch.join("debian-token");
    write(
        Path::new("/"),
        &tok.display().to_string(),
        &format!("{token}\n"),
        0o600,
    )?;
    let cmds = scratch.join("debian-token.debugfs");
    std::fs::write(
        &cmds,
        format!("rm /etc/lmig-agent.token\nwrite {} /etc/lmig-agent.token\nsif /etc/lmig-agent.token mode 0100600\n", tok.display()),
    )?;
    let done = run(
        Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&cmds)
            .arg(dest),
        "debugfs (writing the run's token into the Debian guest)",
    );
    let _ = std::fs::remove_file(&tok);
    let _ = std::fs::remove_file(&cmds);
    done
}

/// The kernel command line: root on the disk, the console on the serial
/// port, classic NIC names (`eth0`, as networkd's file matches).
pub fn kernel_cmdline() -> String {
    "root=LABEL=lmig-root rw console=ttyS0 net.ifnames=0 systemd.show_status=false quiet".into()
}
