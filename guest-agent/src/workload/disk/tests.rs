//! The disk workload on regular files in temporary directories.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;

use super::*;

/// A directory of its own under `base`, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new_in(base: &Path, tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("lmig-disk-{}-{n}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn new(tag: &str) -> Self {
        Self::new_in(Path::new("/tmp"), tag)
    }

    /// An empty file in the directory (the workload grows it).
    fn file(&self, name: &str) -> String {
        let p = self.0.join(name);
        File::create(&p).unwrap();
        p.to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spec(device: &str, region_mib: u64, rate: f64, block_kib: u32, direct: bool) -> WorkloadSpec {
    WorkloadSpec::Disk {
        device: device.into(),
        offset_mib: 0,
        region_mib,
        rate_mib_s: rate,
        block_kib,
        pattern: DirtyPattern::Sequential,
        direct,
    }
}

fn params(device: &str, region_mib: u64, rate: f64) -> DiskParams {
    DiskParams::new(&spec(device, region_mib, rate, 4, false)).unwrap()
}

fn blocks_written(w: &DiskWorkload) -> u64 {
    w.report("t").blocks_written.unwrap()
}

/// What the host-side check does: the digest of the stamps read from the
/// image, in block order (a block without a stamp counts as index and
/// version `u64::MAX`).
fn stamps_digest(path: &str, offset: u64, blocks: usize, block_size: usize) -> u64 {
    let data = std::fs::read(path).unwrap();
    let stamps = (0..blocks).map(|i| {
        let at = offset as usize + i * block_size;
        disk_block::read_stamp(&data[at..at + block_size]).unwrap_or((u64::MAX, u64::MAX))
    });
    disk_block::versions_digest(stamps.enumerate().map(|(i, (_, v))| (i as u64, v)))
}

/// A disk spec from its JSON with the fields of `over` replaced.
fn spec_with(over: &[(&str, serde_json::Value)]) -> WorkloadSpec {
    let mut v = serde_json::json!({
        "kind": "disk", "device": "/tmp/x", "region_mib": 1, "rate_mib_s": 1.0,
    });
    for (k, x) in over {
        v[*k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

#[test]
fn validation_names_the_field() {
    use serde_json::json;
    for (over, name) in [
        (("block_kib", json!(3)), "block_kib"),
        (("block_kib", json!(2)), "block_kib"),
        (("block_kib", json!(2048)), "block_kib"),
        (("block_kib", json!(0)), "block_kib"),
        (("region_mib", json!(0)), "region_mib"),
        (("region_mib", json!(u64::MAX)), "region_mib"),
        (("offset_mib", json!(u64::MAX / 2)), "offset_mib"),
        (("rate_mib_s", json!(-1.0)), "rate_mib_s"),
        (("pattern", json!("hotcold")), "hotcold"),
        (("device", json!("disk.img")), "device"),
        (("device", json!("")), "device"),
    ] {
        let e = DiskParams::new(&spec_with(&[over])).unwrap_err();
        assert!(matches!(e, WorkloadError::Invalid(_)), "{e}");
        assert!(e.to_string().contains(name), "{name}: {e}");
    }
    let mut nan = spec_with(&[]);
    if let WorkloadSpec::Disk { rate_mib_s, .. } = &mut nan {
        *rate_mib_s = f64::NAN;
    }
    assert!(DiskParams::new(&nan)
        .unwrap_err()
        .to_string()
        .contains("rate_mib_s"));
    let p = DiskParams::new(&spec_with(&[("block_kib", json!(1024))])).unwrap();
    assert_eq!((p.blocks, p.block_size), (1, 1 << 20));
    let p = DiskParams::new(&spec_with(&[("pattern", json!("random"))])).unwrap();
    assert_eq!((p.blocks, p.block_size, p.offset), (256, 4096, 0));
    assert!(p.direct, "direct by default");
    assert_eq!(p.hold_limit, HOLD_LIMIT);
    assert_eq!(p.table_mib(), 1);
}

#[test]
fn devices_that_cannot_be_written_are_refused_naming_them() {
    let dir = TempDir::new("refused");
    let missing = dir.0.join("no-such-disk");
    let missing = missing.to_str().unwrap();
    let e = DiskWorkload::start("t", params(missing, 1, 1.0)).unwrap_err();
    assert!(matches!(e, WorkloadError::Invalid(_)), "{e}");
    let text = e.to_string();
    assert!(text.contains("device") && text.contains(missing), "{text}");
    assert!(text.contains("ENOENT"), "{text}");
    let e = DiskWorkload::start("t", params(dir.0.to_str().unwrap(), 1, 1.0)).unwrap_err();
    assert!(
        e.to_string()
            .contains("neither a block device nor a regular file"),
        "{e}"
    );
    let e = DiskWorkload::start("t", params("/dev/null", 1, 1.0)).unwrap_err();
    assert!(e.to_string().contains("/dev/null"), "{e}");
}

#[test]
fn a_prefill_that_fails_names_device_offset_and_errno() {
    let dir = TempDir::new("prefill");
    let f = dir.file("disk.img");
    // The region ends 1 MiB before 2^63: beyond the largest file of the
    // usual file systems (EFBIG), cut short at tmpfs's (a short write).
    let offset = (1u64 << 63) - 2 * MIB;
    let mut p = params(&f, 1, 1.0);
    p.offset = offset;
    let e = match DiskWorkload::start("t", p) {
        Err(e) => e,
        Ok(w) => {
            // Some file systems (XFS, btrfs) take files this large: the
            // pre-fill then succeeds and there is no failure to name here.
            eprintln!("skipped: the file system under {f} takes a region ending 1 MiB before 2^63");
            drop(w);
            return;
        }
    };
    assert!(matches!(e, WorkloadError::Io(_)), "{e}");
    let text = e.to_string();
    assert!(text.contains(&f), "{text}");
    assert!(text.contains(&format!("byte offset {offset}")), "{text}");
    assert!(
        text.contains("EFBIG") || text.contains("short write"),
        "{text}"
    );
}

#[test]
fn prefill_stamps_every_block_with_version_zero() {
    let dir = TempDir::new("prefill0");
    let f = dir.file("disk.img");
    let mut p = params(&f, 2, 1.0);
    p.offset = MIB;
    let region = Region::open(&p).unwrap();
    let mut buf = AlignedBuf::new(CHUNK).unwrap();
    region.prefill(buf.as_mut_slice()).unwrap();
    let data = std::fs::read(&f).unwrap();
    assert_eq!(data.len() as u64, 3 * MIB);
    assert!(
        data[..MIB as usize].iter().all(|b| *b == 0),
        "before the region"
    );
    for i in 0..512 {
        let at = MIB as usize + i * 4096;
        assert!(
            disk_block::matches(&data[at..at + 4096], i as u64, 0),
            "block {i}"
        );
    }
    let table = vec![0u64; 512];
    let r = region.check(buf.as_mut_slice(), &table).unwrap();
    assert_eq!((r.checked_pages, r.corrupted_pages), (512, 0));
    assert_eq!(r.versions_digest, Some(stamps_digest(&f, MIB, 512, 4096)));
}

#[test]
fn paced_writes_verify_clean() {
    let dir = TempDir::new("clean");
    let f = dir.file("disk.img");
    let mut w = DiskWorkload::start("t", params(&f, 2, 8.0)).unwrap();
    assert!(w.is_running());
    std::thread::sleep(Duration::from_millis(1150));
    let v = w.verifier();
    let r = v.verify(false).unwrap();
    assert_eq!((r.checked_pages, r.corrupted_pages), (512, 0), "{r:?}");
    assert!(r.first_corrupted.is_empty());
    assert!(r.versions_digest.is_some());
    assert!(!v.is_held());
    let rep = w.report("t");
    assert_eq!(rep.state, "running", "{rep:?}");
    assert_eq!(rep.integrity.as_ref(), Some(&r));
    let blocks = rep.blocks_written.unwrap();
    assert_eq!(rep.pages_written, blocks);
    assert_eq!(rep.bytes_written, Some(blocks * 4096));
    assert_eq!(rep.target_mib_s, Some(8.0));
    // 8 MiB/s of 4 KiB blocks is 2048 per second.
    assert!((1800..=2700).contains(&blocks), "{rep:?}");
    assert_eq!(rep.per_second_mib_s.len(), 1, "{rep:?}");
    assert!(
        (rep.per_second_mib_s[0] - 8.0).abs() <= 8.0 * 0.15,
        "{rep:?}"
    );
    let fin = w.stop("t");
    assert_eq!(fin.state, "stopped", "{fin:?}");
    let i = fin.integrity.clone().unwrap();
    assert_eq!((i.checked_pages, i.corrupted_pages), (512, 0));
    assert!(i.checked_at_realtime_ns >= r.checked_at_realtime_ns);
    // The final check's digest is the file's.
    assert_eq!(i.versions_digest, Some(stamps_digest(&f, 0, 512, 4096)));
    assert_eq!(w.stop("t"), fin);
    assert_eq!(v.verify(false), Err(DiskVerifyError::NotRunning));
}

#[test]
fn hold_freezes_the_image_finds_corruption_and_resumes() {
    let dir = TempDir::new("hold");
    let f = dir.file("disk.img");
    // 16 MiB/s over 2 MiB: every block is rewritten 8 times a second.
    let mut w = DiskWorkload::start("t", params(&f, 2, 16.0)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let v = w.verifier();
    let held = v.verify(true).unwrap();
    assert_eq!((held.checked_pages, held.corrupted_pages), (512, 0));
    assert!(v.is_held());
    let before = (blocks_written(&w), std::fs::read(&f).unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let after = (blocks_written(&w), std::fs::read(&f).unwrap());
    assert_eq!(before.0, after.0, "no write while held");
    assert!(before.1 == after.1, "the image did not change while held");
    // The host-side check: the image's stamps have the agent's digest.
    assert_eq!(held.versions_digest, Some(stamps_digest(&f, 0, 512, 4096)));

    // Corrupt block 37 behind the workload's back.
    let file = OpenOptions::new().write(true).open(&f).unwrap();
    file.write_at(b"not what the agent wrote", 37 * 4096 + 100)
        .unwrap();
    drop(file);
    let found = v.verify(false).unwrap();
    assert_eq!(found.corrupted_pages, 1, "{found:?}");
    assert_eq!(found.first_corrupted, vec![37]);
    assert_eq!(found.versions_digest, held.versions_digest, "same table");
    assert!(v.is_held(), "a verify without hold leaves the hold");
    assert_eq!(blocks_written(&w), before.0);

    v.resume().unwrap();
    assert!(!v.is_held());
    assert_eq!(v.resume(), Err(DiskVerifyError::NotHeld));
    std::thread::sleep(Duration::from_millis(400));
    assert!(blocks_written(&w) > before.0 + 100, "writes again");
    // Block 37 was rewritten since, with its next version.
    let fin = w.stop("t");
    let i = fin.integrity.unwrap();
    assert_eq!((i.checked_pages, i.corrupted_pages), (512, 0), "{i:?}");
    assert_ne!(i.versions_digest, held.versions_digest);
    // The hold's seconds are left out of the reachable rate's figure.
    assert_eq!(fin.max_reachable_mib_s, None, "{:?}", fin.per_second_mib_s);
}

#[test]
fn a_hold_without_resume_is_released_after_its_limit() {
    let dir = TempDir::new("limit");
    let f = dir.file("disk.img");
    let mut p = params(&f, 1, 4.0);
    p.hold_limit = Duration::from_millis(300);
    let mut w = DiskWorkload::start("t", p).unwrap();
    let v = w.verifier();
    v.verify(true).unwrap();
    assert!(v.is_held());
    let held_at = blocks_written(&w);
    std::thread::sleep(Duration::from_millis(700));
    assert!(!v.is_held());
    assert!(blocks_written(&w) > held_at, "writes again on its own");
    assert_eq!(v.resume(), Err(DiskVerifyError::NotHeld));
    // A hold renewed by a verify with hold lasts from that verify.
    v.verify(true).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    v.verify(true).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(v.is_held(), "renewed 200 ms ago, limit 300 ms");
    let fin = w.stop("t");
    assert_eq!(fin.state, "stopped");
    assert_eq!(fin.integrity.unwrap().corrupted_pages, 0);
    assert!(!v.is_held());
}

#[test]
fn stop_ends_a_hold_and_checks() {
    let dir = TempDir::new("stopheld");
    let f = dir.file("disk.img");
    let mut w = DiskWorkload::start("t", params(&f, 1, 4.0)).unwrap();
    let v = w.verifier();
    let held = v.verify(true).unwrap();
    let t = Instant::now();
    let fin = w.stop("t");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(fin.state, "stopped", "{fin:?}");
    let i = fin.integrity.unwrap();
    assert_eq!(i.corrupted_pages, 0);
    assert_eq!(
        i.versions_digest, held.versions_digest,
        "nothing written since"
    );
    assert_eq!(v.resume(), Err(DiskVerifyError::NotRunning));
}

#[test]
fn random_flat_out_with_large_blocks() {
    let dir = TempDir::new("random");
    let f = dir.file("disk.img");
    let mut s = spec(&f, 4, 0.0, 64, false);
    if let WorkloadSpec::Disk { pattern, .. } = &mut s {
        *pattern = DirtyPattern::Random;
    }
    let mut w = DiskWorkload::start("t", DiskParams::new(&s).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let fin = w.stop("t");
    assert_eq!(fin.target_mib_s, None);
    let blocks = fin.blocks_written.unwrap();
    assert!(blocks > 64, "{fin:?}");
    assert_eq!(fin.bytes_written, Some(blocks * 65536));
    let i = fin.integrity.unwrap();
    assert_eq!((i.checked_pages, i.corrupted_pages), (64, 0));
    assert_eq!(i.versions_digest, Some(stamps_digest(&f, 0, 64, 65536)));
}

#[test]
fn a_write_error_fails_the_workload_naming_device_offset_and_errno() {
    let dir = TempDir::new("eio");
    let f = dir.file("disk.img");
    let mut w = DiskWorkload::start("t", params(&f, 1, 4.0)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    w.fail_next_write();
    let t = Instant::now();
    while w.is_running() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = w.report("t");
    assert_eq!(r.state, "failed", "{r:?}");
    let e = r.error.unwrap();
    assert!(
        e.contains(&f) && e.contains("byte offset") && e.contains("EIO"),
        "{e}"
    );
    assert_eq!(w.verifier().verify(false), Err(DiskVerifyError::NotRunning));
    let fin = w.stop("t");
    assert_eq!(fin.state, "failed");
}

/// A directory on a file system that takes `O_DIRECT`, if one is found.
fn direct_io_dir() -> Option<TempDir> {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    for base in [Path::new("/var/tmp"), target.as_path()] {
        if !base.is_dir() {
            continue;
        }
        let dir = TempDir::new_in(base, "direct");
        let probe = dir.file("probe");
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&probe);
        match opened {
            Ok(_) => return Some(dir),
            Err(e) => eprintln!("{}: no O_DIRECT ({e})", base.display()),
        }
    }
    None
}

#[test]
fn direct_io_on_a_file_system_that_allows_it() {
    let Some(dir) = direct_io_dir() else {
        eprintln!("skipped: no file system here accepts O_DIRECT");
        return;
    };
    let f = dir.file("disk.img");
    let mut s = spec(&f, 2, 8.0, 16, true);
    if let WorkloadSpec::Disk { offset_mib, .. } = &mut s {
        *offset_mib = 1;
    }
    let mut w = DiskWorkload::start("t", DiskParams::new(&s).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let v = w.verifier();
    let held = v.verify(true).unwrap();
    assert_eq!((held.checked_pages, held.corrupted_pages), (128, 0));
    assert_eq!(
        held.versions_digest,
        Some(stamps_digest(&f, MIB, 128, 16384))
    );
    let file = OpenOptions::new().write(true).open(&f).unwrap();
    file.write_at(&[0xa5; 16], MIB + 5 * 16384 + 16000).unwrap();
    file.sync_data().unwrap();
    drop(file);
    let found = v.verify(false).unwrap();
    assert_eq!(found.first_corrupted, vec![5], "{found:?}");
    v.resume().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let fin = w.stop("t");
    assert_eq!(fin.state, "stopped", "{fin:?}");
    assert!(fin.blocks_written.unwrap() > 0);
}

#[test]
fn direct_io_refused_is_a_clear_error() {
    // /dev/shm is a tmpfs; kernels before 6.6 refuse O_DIRECT there.
    let base = Path::new("/dev/shm");
    if !base.is_dir() {
        eprintln!("skipped: no /dev/shm");
        return;
    }
    let dir = TempDir::new_in(base, "shm");
    let f = dir.file("disk.img");
    match DiskWorkload::start("t", DiskParams::new(&spec(&f, 1, 1.0, 4, true)).unwrap()) {
        Ok(mut w) => {
            eprintln!("skipped: this kernel's tmpfs accepts O_DIRECT");
            w.stop("t");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains(&f) && text.contains("direct=false"), "{text}");
        }
    }
    // Without O_DIRECT it works there.
    let mut w = DiskWorkload::start("t", params(&f, 1, 1.0)).unwrap();
    assert_eq!(w.stop("t").integrity.unwrap().corrupted_pages, 0);
}

#[test]
fn open_errors_say_what_to_do() {
    let einval = io::Error::from_raw_os_error(libc::EINVAL);
    let e = open_error("/dev/shm/d", true, &einval);
    assert!(e.contains("/dev/shm/d") && e.contains("O_DIRECT"), "{e}");
    assert!(e.contains("set direct=false"), "{e}");
    let e = open_error(
        "/dev/vdb",
        false,
        &io::Error::from_raw_os_error(libc::EBUSY),
    );
    assert!(
        e.contains("/dev/vdb") && e.contains("busy") && e.contains("EBUSY"),
        "{e}"
    );
    let e = open_error(
        "/dev/vdb",
        true,
        &io::Error::from_raw_os_error(libc::EACCES),
    );
    assert!(e.contains("/dev/vdb") && e.contains("EACCES"), "{e}");
}
