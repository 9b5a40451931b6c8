//! Finding a kernel and the agent, and writing the initramfs.

use super::cpio::CpioWriter;
use crate::scenario::Nic;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// What to do when no kernel is found.
pub const KERNEL_HINT: &str = "install one with `apt-get install linux-image-amd64` (Debian), \
or fetch the package without installing it (`apt-get download linux-image-$(uname -r)` or any linux-image-*-amd64) \
and name the .deb with `vm.kernel` / --kernel, or name a bzImage whose modules are in /lib/modules/<release>";

/// Where kernels unpacked from Debian packages are kept.
pub const KERNEL_CACHE: &str = "/var/cache/lmig/kernels";

/// Unpacks a Debian `linux-image-*` package (without installing it) into
/// [`KERNEL_CACHE`] and indexes its modules with `depmod -b`, since the
/// package ships no `modules.dep`. Reused on later runs.
pub fn unpack_kernel_deb(deb: &Path) -> Result<KernelChoice> {
    let stem = deb
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{} has no usable file name", deb.display()))?;
    let dest = Path::new(KERNEL_CACHE).join(stem);
    if !dest.join("boot").is_dir() {
        let partial = dest.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        run_tool(
            "dpkg-deb",
            &[OsStr::new("-x"), deb.as_os_str(), partial.as_os_str()],
        )?;
        std::fs::rename(&partial, &dest)
            .with_context(|| format!("cannot create {}", dest.display()))?;
    }
    let vmlinuz = std::fs::read_dir(dest.join("boot"))
        .ok()
        .and_then(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| release_of(p).is_some())
        })
        .with_context(|| format!("{} holds no boot/vmlinuz-*: is it a linux-image-<release> package (not the linux-image-amd64 meta package)?", deb.display()))?;
    let release = release_of(&vmlinuz).context("unreachable: checked above")?;
    let modules_dir = dest.join("lib/modules").join(&release);
    if !modules_dir.join("modules.dep").is_file() {
        run_tool(
            "depmod",
            &[OsStr::new("-b"), dest.as_os_str(), OsStr::new(&release)],
        )?;
    }
    Ok(KernelChoice {
        vmlinuz,
        release,
        modules_dir,
    })
}

fn run_tool(tool: &str, args: &[&OsStr]) -> Result<()> {
    crate::backend::local::tool::run(std::process::Command::new(tool).args(args), tool)?;
    Ok(())
}

fn newest_cached_kernel_deb() -> Option<PathBuf> {
    let mut debs: Vec<PathBuf> = std::fs::read_dir("/var/cache/apt/archives")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("linux-image-")
                    && n.ends_with(".deb")
                    && n.as_bytes().get(12).is_some_and(u8::is_ascii_digit)
            })
        })
        .collect();
    debs.sort_by_key(|p| version_key(&p.to_string_lossy()));
    debs.pop()
}

/// The guest kernel and its modules.
#[derive(Debug, Clone, Serialize)]
pub struct KernelChoice {
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// Its release string (`6.1.0-26-amd64`).
    pub release: String,
    /// `/lib/modules/<release>`.
    pub modules_dir: PathBuf,
}

/// A bootable guest.
#[derive(Debug, Clone, Serialize)]
pub struct GuestImage {
    /// The kernel.
    pub kernel: KernelChoice,
    /// The initramfs the harness wrote.
    pub initramfs: PathBuf,
    /// The agent binary that became `/init`.
    pub agent: PathBuf,
    /// Kernel modules in the image, in load order.
    pub modules: Vec<String>,
    /// SHA-256 of the kernel, the initramfs and the agent, for provenance.
    pub sha256: HashMap<String, String>,
    /// Host programs copied into the image at the same absolute path,
    /// followed by the shared libraries they need (see
    /// [`build_image_with`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<PathBuf>,
}

fn release_of(vmlinuz: &Path) -> Option<String> {
    vmlinuz
        .file_name()?
        .to_str()?
        .strip_prefix("vmlinuz-")
        .map(str::to_string)
}

/// Finds the guest kernel: `spec` is a bzImage path, a Debian
/// `linux-image-*.deb` (unpacked, not installed), or `auto`: the newest
/// `/boot/vmlinuz-*` with its modules installed, else the newest kernel
/// package in apt's cache.
pub fn find_kernel(spec: &str) -> Result<KernelChoice> {
    if spec.ends_with(".deb") {
        return unpack_kernel_deb(Path::new(spec));
    }
    if spec != "auto" {
        let vmlinuz = PathBuf::from(spec);
        if !vmlinuz.is_file() {
            bail!("kernel {spec} does not exist; {KERNEL_HINT}");
        }
        let release = release_of(&vmlinuz).with_context(|| {
            format!("cannot tell the release of {spec}: name it vmlinuz-<release> so its modules in /lib/modules/<release> are found")
        })?;
        let modules_dir = Path::new("/lib/modules").join(&release);
        return Ok(KernelChoice {
            vmlinuz,
            release,
            modules_dir,
        });
    }
    let mut found: Vec<KernelChoice> = std::fs::read_dir("/boot")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter_map(|p| {
                    let release = release_of(&p)?;
                    let modules_dir = Path::new("/lib/modules").join(&release);
                    modules_dir
                        .join("modules.dep")
                        .is_file()
                        .then_some(KernelChoice {
                            vmlinuz: p,
                            release,
                            modules_dir,
                        })
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|k| version_key(&k.release));
    if let Some(k) = found.pop() {
        return Ok(k);
    }
    if let Some(deb) = newest_cached_kernel_deb() {
        return unpack_kernel_deb(&deb);
    }
    bail!("no guest kernel: none with modules in /boot, and no linux-image-*.deb in /var/cache/apt/archives; {KERNEL_HINT}")
}

fn version_key(release: &str) -> Vec<u64> {
    release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Parses `modules.dep` into module name -> (path, dependencies' paths).
fn parse_modules_dep(text: &str) -> HashMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let (path, deps) = l.split_once(':')?;
            let name = module_name(path);
            Some((
                name,
                (
                    path.to_string(),
                    deps.split_whitespace().map(str::to_string).collect(),
                ),
            ))
        })
        .collect()
}

fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

/// The modules `wanted` need, dependencies first, as paths relative to the
/// modules folder.
pub fn resolve_modules(modules_dep: &str, wanted: &[&str]) -> Result<Vec<String>> {
    let deps = parse_modules_dep(modules_dep);
    let mut order: Vec<String> = Vec::new();
    fn visit(
        name: &str,
        deps: &HashMap<String, (String, Vec<String>)>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<()> {
        if depth > 64 {
            bail!("module dependency loop at {name}");
        }
        let (path, ds) = deps.get(name).with_context(|| {
            format!("kernel module {name} is not in modules.dep (is it built in, or missing?)")
        })?;
        if order.contains(path) {
            return Ok(());
        }
        for d in ds {
            visit(&module_name(d), deps, order, depth + 1)?;
        }
        if !order.contains(path) {
            order.push(path.clone());
        }
        Ok(())
    }
    for w in wanted {
        visit(w, &deps, &mut order, 0)?;
    }
    Ok(order)
}

/// Finds the statically linked guest agent.
///
/// Order: `explicit`, `$LMIG_AGENT`, then the workspace's
/// `target/x86_64-unknown-linux-gnu/release/guest-agent`.
pub fn find_agent(explicit: Option<&Path>) -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else if let Some(p) = std::env::var_os("LMIG_AGENT") {
        candidates.push(PathBuf::from(p));
    } else {
        let rel = "x86_64-unknown-linux-gnu/release/guest-agent";
        if let Ok(exe) = std::env::current_exe() {
            for up in exe.ancestors().skip(1).take(3) {
                candidates.push(up.join(rel));
            }
        }
        candidates.push(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target")
                .join(rel),
        );
    }
    for c in &candidates {
        if c.is_file() {
            check_static(c)?;
            return Ok(c.clone());
        }
    }
    bail!(
        "the guest agent is not built (looked at {}); build it with:\n  RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target x86_64-unknown-linux-gnu -p guest-agent",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Fails unless `path` is an x86-64 ELF without a program interpreter
/// (statically linked): the initramfs holds no libraries.
pub fn check_static(path: &Path) -> Result<()> {
    let b = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bad = || anyhow::anyhow!("{} is not a 64-bit ELF executable", path.display());
    if b.len() < 64 || &b[0..4] != b"\x7fELF" || b[4] != 2 {
        return Err(bad());
    }
    let u64_at =
        |o: usize| -> Option<u64> { Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?)) };
    let u16_at =
        |o: usize| -> Option<u16> { Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?)) };
    let phoff = u64_at(0x20).ok_or_else(bad)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(bad)? as usize;
    let phnum = u16_at(0x38).ok_or_else(bad)? as usize;
    for i in 0..phnum {
        let p_type = b
            .get(phoff + i * phentsize..phoff + i * phentsize + 4)
            .ok_or_else(bad)?;
        if p_type == 3u32.to_le_bytes() {
            bail!(
                "{} is dynamically linked; the guest has no libraries. Build it with RUSTFLAGS=\"-C target-feature=+crt-static\" and --target x86_64-unknown-linux-gnu",
                path.display()
            );
        }
    }
    Ok(())
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&data)))
}

/// The shared libraries a dynamically linked program needs, as `ldd`
/// lists them: the `name => /path (addr)` lines and the program
/// interpreter's line (`/lib64/ld-linux-x86-64.so.2 (addr)`); the vDSO,
/// which the kernel provides, is skipped. A library `ldd` cannot find is
/// an error naming it.
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("shared library {} not found", name.trim());
                }
                match rest.split_whitespace().next() {
                    Some(p) if p.starts_with('/') => p,
                    _ => continue, // e.g. `linux-vdso.so.1 =>  (0x...)`
                }
            }
            None => match line.split_whitespace().next() {
                Some(p) if p.starts_with('/') => p,
                _ => continue, // vDSO, `statically linked`
            },
        };
        let p = PathBuf::from(path);
        if !libs.contains(&p) {
            libs.push(p);
        }
    }
    Ok(libs)
}

/// `program` followed by every shared library it needs (none for a
/// statically linked program).
pub fn program_with_libraries(program: &Path) -> Result<Vec<PathBuf>> {
    if !program.is_absolute() || !program.is_file() {
        bail!(
            "{} is not an absolute path to a program on this machine",
            program.display()
        );
    }
    let out = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .context("cannot run ldd (it comes with libc-bin)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut files = vec![program.to_path_buf()];
    // ldd fails with "not a dynamic executable" for a static program.
    if out.status.success() {
        files.extend(
            parse_ldd(&stdout)
                .with_context(|| format!("resolving the libraries of {}", program.display()))?,
        );
    }
    Ok(files)
}

/// Writes `out_dir/initramfs.cpio` for `nic` with `agent` as `/init`.
pub fn build_image(
    kernel: &KernelChoice,
    agent: &Path,
    nic: Nic,
    out_dir: &Path,
) -> Result<GuestImage> {
    build_image_with(kernel, agent, nic, out_dir, &[], &[])
}

/// [`build_image`], plus host programs: each of `extra` (an absolute
/// path) goes into the image at the same path, with the shared libraries
/// `ldd` lists for it at theirs (parent folders created, each file once).
/// This is how a dynamically linked tool such as Debian's `/usr/bin/irtt`
/// runs in the guest.
pub fn build_image_with(
    kernel: &KernelChoice,
    agent: &Path,
    nic: Nic,
    out_dir: &Path,
    extra: &[PathBuf],
    extra_modules: &[&str],
) -> Result<GuestImage> {
    let mut extras: Vec<PathBuf> = Vec::new();
    for program in extra {
        for f in program_with_libraries(program)? {
            if !extras.contains(&f) {
                extras.push(f);
            }
        }
    }
    let dep_path = kernel.modules_dir.join("modules.dep");
    let dep = std::fs::read_to_string(&dep_path)
        .with_context(|| format!("cannot read {}; {KERNEL_HINT}", dep_path.display()))?;
    let mut wanted = vec![nic.kernel_module()];
    if nic == Nic::VirtioNet || extra_modules.iter().any(|m| m.starts_with("virtio")) {
        wanted.insert(0, "virtio_pci");
    }
    wanted.extend(extra_modules);
    let modules = resolve_modules(&dep, &wanted)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let initramfs = out_dir.join("initramfs.cpio");
    let file = std::fs::File::create(&initramfs)
        .with_context(|| format!("cannot create {}", initramfs.display()))?;
    let mut w = CpioWriter::new(std::io::BufWriter::new(file));
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for d in [
        "dev",
        "proc",
        "sys",
        "tmp",
        "etc",
        "etc/lmig",
        "lib",
        "lib/modules",
    ] {
        w.dir(d)?;
        dirs.insert(d.to_string());
    }
    for f in &extras {
        let rel = f.to_string_lossy().trim_start_matches('/').to_string();
        // Parents first, each once.
        let mut parent = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if dirs.insert(parent.clone()) {
                w.dir(&parent)?;
            }
        }
        // Read through symlinks (Debian's /lib64 is one): the file itself
        // goes in.
        let data = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        w.file(&rel, 0o755, &data)?;
    }
    let agent_bytes =
        std::fs::read(agent).with_context(|| format!("cannot read {}", agent.display()))?;
    w.file("init", 0o755, &agent_bytes)?;
    let mut list = String::new();
    let mut names = Vec::new();
    for rel in &modules {
        let src = kernel.modules_dir.join(rel);
        let data =
            std::fs::read(&src).with_context(|| format!("cannot read module {}", src.display()))?;
        let base = rel.rsplit('/').next().unwrap_or(rel);
        w.file(&format!("lib/modules/{base}"), 0o644, &data)?;
        list.push_str(&format!("/lib/modules/{base}\n"));
        names.push(module_name(rel));
    }
    w.file("etc/lmig/modules", 0o644, list.as_bytes())?;
    w.finish()?;
    let mut sha256 = HashMap::new();
    sha256.insert("kernel".into(), sha256_file(&kernel.vmlinuz)?);
    sha256.insert("initramfs".into(), sha256_file(&initramfs)?);
    sha256.insert(
        "agent".into(),
        format!("{:x}", Sha256::digest(&agent_bytes)),
    );
    Ok(GuestImage {
        kernel: kernel.clone(),
        initramfs,
        agent: agent.to_path_buf(),
        modules: names,
        sha256,
        extras,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
";

    #[test]
    fn dependencies_come_before_their_users_and_only_once() {
        let order = resolve_modules(DEP, &["virtio_pci", "virtio_net"]).unwrap();
        let pos = |n: &str| order.iter().position(|p| p.ends_with(n)).unwrap();
        assert!(
            pos("/virtio_ring.ko") < pos("/virtio.ko"),
            "virtio needs virtio_ring"
        );
        assert!(pos("/virtio.ko") < pos("/virtio_pci.ko"));
        assert!(pos("/failover.ko") < pos("/net_failover.ko"));
        assert!(pos("/net_failover.ko") < pos("/virtio_net.ko"));
        assert_eq!(order.len(), 8);
        assert_eq!(resolve_modules(DEP, &["e1000"]).unwrap().len(), 1);
        let e = resolve_modules(DEP, &["rtl8139"]).unwrap_err();
        assert!(e.to_string().contains("rtl8139"));
    }

    #[test]
    fn a_dynamic_binary_is_refused_with_the_build_command() {
        // The test binary itself is dynamically linked.
        let exe = std::env::current_exe().unwrap();
        let e = check_static(&exe).unwrap_err().to_string();
        assert!(e.contains("crt-static"), "{e}");
        let e = check_static(Path::new("/etc/hostname"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a 64-bit ELF") || e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn ldd_output_is_parsed() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f54)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f54)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
        let e = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(e.to_string().contains("libfoo.so.1"), "{e}");
    }

    /// A prerequisite of this test is missing: under `CI=true` that fails the
    /// test, naming it; elsewhere the test is skipped with a note.
    fn missing_prerequisite(what: &str) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true, and {what}: scripts/install-deps.sh installs it"
        );
        eprintln!("skipped: {what}");
    }

    #[test]
    fn extra_programs_go_in_with_their_libraries() {
        // Only where there is a kernel with modules and cpio to list with.
        let kernel = match find_kernel("auto") {
            Ok(k) => k,
            Err(e) => return missing_prerequisite(&format!("no guest kernel: {e:#}")),
        };
        let dir = std::env::temp_dir().join(format!("lmig-image-test-{}", std::process::id()));
        // Any file serves as the agent here: nothing boots it.
        let agent = Path::new("/bin/true");
        let img = build_image_with(
            &kernel,
            agent,
            Nic::VirtioNet,
            &dir,
            &[PathBuf::from("/bin/true"), PathBuf::from("/bin/true")],
            crate::scenario::disk::DiskBus::Scsi.kernel_modules(),
        )
        .unwrap();
        let data = std::fs::read(&img.initramfs).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let mut child = match std::process::Command::new("cpio")
            .args(["-it", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return missing_prerequisite(&format!("cannot run cpio: {e}")),
        };
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&data).unwrap();
        let out = child.wait_with_output().unwrap();
        let list = String::from_utf8_lossy(&out.stdout);
        let names: Vec<&str> = list.lines().collect();
        for want in [
            "bin",
            "bin/true",
            "lib64/ld-linux-x86-64.so.2",
            "lib/x86_64-linux-gnu/libc.so.6",
            "lib/x86_64-linux-gnu",
            "init",
        ] {
            assert_eq!(
                names.iter().filter(|n| **n == want).count(),
                1,
                "{want} once in {names:?}"
            );
        }
        assert_eq!(img.extras[0], PathBuf::from("/bin/true"));
        assert_eq!(img.extras.len(), 3, "{:?}", img.extras);
    }

    #[test]
    fn kernel_releases_sort_by_number_not_text() {
        assert!(version_key("6.1.0-10-amd64") > version_key("6.1.0-9-amd64"));
    }
}
