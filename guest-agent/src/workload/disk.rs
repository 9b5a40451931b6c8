//! The disk-writing workload: paced rewrites of whole, verifiable blocks
//! of a region of a block device (or of a regular file, for tests).
//!
//! **Device.** A block device is opened with `O_EXCL`, which the kernel
//! refuses while it (or a partition of it) is mounted or claimed, so the
//! workload cannot write over a live file system; a regular file must
//! exist and grows to the end of the region if it is shorter. With
//! `direct` (the default) it is opened with `O_DIRECT`, so writes reach
//! the (virtual) disk at once and checks read the disk, not the guest's
//! page cache; that needs 4096-aligned buffers (`aligned`). Without it,
//! checks drop the flushed pages from the cache before reading, which
//! brings them from the disk on file systems that keep no other copy.
//!
//! **Blocks.** The region is split into blocks of `block_kib`, each
//! stamped as [`wire::disk_block`] describes: magic, index, version, then
//! bytes that depend on (index, version). Starting the workload pre-fills
//! every block with version 0 and flushes (`fdatasync`) before it returns,
//! so the disk is in a known state when writing starts.
//!
//! **Writer.** One thread rewrites blocks (`sequential`, wrapping, or
//! `random` over the region), each with its next version, with `pwrite`
//! at `offset + index × block size`. The expected version of each block
//! lives in a table that is updated only once the write returned, so a
//! write the disk lost or tore is found by the next check. A write error
//! ends the workload (`failed`, naming device, offset and errno).
//!
//! **Rate.** Blocks per second × block size = `rate_mib_s`, paced with
//! absolute deadlines from the start in [`TICK`] ticks, as the dirty
//! workload does; at most [`MAX_CATCH_UP`] of lag is caught up, and rate
//! 0 writes as fast as the disk takes it. Each write counts in the whole
//! second in which it returned.
//!
//! **Verification.** A verifier posts a request; the writer takes it
//! between two writes, flushes, reads the whole region back and compares
//! every block with its expected stamp, and records the result (with the
//! digest of its table). With `hold` it then stays paused until resumed,
//! or for at most [`HOLD_LIMIT`], so that the host can read the image
//! while it holds exactly the versions of that digest. The pause is not
//! caught up afterwards; the seconds it overlaps are left out of
//! [`WorkloadReport::max_reachable_mib_s`]. Stopping runs a final check.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;
use wire::clock::realtime_ns;
use wire::control::{DirtyPattern, IntegrityReport, WorkloadReport, WorkloadSpec, HOLD_LIMIT_S};
use wire::disk_block;

use self::aligned::AlignedBuf;
use super::shared::{lock, max_reachable, panic_text, Rng, WorkloadError};

/// Bytes in a MiB.
const MIB: u64 = 1 << 20;
/// Pacing tick: the writer wakes up this often (at absolute deadlines
/// from the start) and writes the blocks that fell due.
pub const TICK: Duration = Duration::from_millis(2);
/// At most this much lag is caught up in a burst; older lag is dropped.
pub const MAX_CATCH_UP: Duration = Duration::from_millis(100);
/// A held writer writes again on its own after this long without resume.
pub const HOLD_LIMIT: Duration = Duration::from_secs(HOLD_LIMIT_S);
/// At most this many corrupted block indices are listed.
pub const MAX_LISTED: usize = 16;
/// Smallest and largest `block_kib`.
pub const BLOCK_KIB_RANGE: std::ops::RangeInclusive<u32> = 4..=1024;
/// Alignment of the I/O buffer: what `O_DIRECT` needs on any Linux disk.
const ALIGN: usize = 4096;
/// The pre-fill and the checks move this many bytes per system call
/// (fewer calls than one per block; a multiple of every block size).
const CHUNK: usize = 1 << 20;
/// Blocks a flat-out (rate 0) writer writes between looks at the clock.
const FLAT_OUT_BURST: u64 = 64;

/// The buffer `O_DIRECT` needs: heap memory aligned to [`ALIGN`].
#[allow(unsafe_code)]
mod aligned {
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::ptr::NonNull;

    use super::ALIGN;

    /// A zeroed byte buffer aligned to 4096, owned like a `Box<[u8]>`.
    pub(super) struct AlignedBuf {
        ptr: NonNull<u8>,
        layout: Layout,
    }

    // SAFETY: the buffer owns its allocation exclusively (no aliasing
    // pointer exists outside it), exactly like `Box<[u8]>`, which is Send.
    unsafe impl Send for AlignedBuf {}

    impl AlignedBuf {
        /// `len` (> 0) zeroed bytes, or why they cannot be had.
        pub(super) fn new(len: usize) -> Result<Self, String> {
            let layout = Layout::from_size_align(len, ALIGN)
                .map_err(|e| format!("cannot lay out a {len}-byte buffer: {e}"))?;
            if layout.size() == 0 {
                return Err("an I/O buffer cannot be empty".into());
            }
            // SAFETY: the layout's size is not zero (checked above).
            let raw = unsafe { alloc_zeroed(layout) };
            let ptr = NonNull::new(raw)
                .ok_or_else(|| format!("cannot allocate a {len}-byte I/O buffer"))?;
            Ok(Self { ptr, layout })
        }

        /// The whole buffer.
        pub(super) fn as_mut_slice(&mut self) -> &mut [u8] {
            // SAFETY: `ptr` points to `layout.size()` initialised (zeroed,
            // then only written as bytes) bytes that this value owns, and
            // `&mut self` makes the borrow unique.
            unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
        }
    }

    impl Drop for AlignedBuf {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this very layout, freed once.
            unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
        }
    }
}

/// A disk workload's parameters, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskParams {
    /// The block device or regular file.
    pub device: String,
    /// Where the region starts, bytes.
    pub offset: u64,
    /// Blocks in the region.
    pub blocks: usize,
    /// Bytes per block.
    pub block_size: usize,
    /// Target MiB/s; 0: as fast as possible.
    pub rate_mib_s: f64,
    /// `sequential` or `random`.
    pub pattern: DirtyPattern,
    /// Open with `O_DIRECT`.
    pub direct: bool,
    /// How long a hold lasts without resume ([`HOLD_LIMIT`]; shorter in
    /// tests).
    pub hold_limit: Duration,
}

fn invalid<T>(msg: String) -> Result<T, WorkloadError> {
    Err(WorkloadError::Invalid(msg))
}

impl DiskParams {
    /// Checks every field of a `disk` spec, naming the field at fault (the
    /// device itself is checked when it is opened).
    pub fn new(spec: &WorkloadSpec) -> Result<Self, WorkloadError> {
        let WorkloadSpec::Disk {
            device,
            offset_mib,
            region_mib,
            rate_mib_s,
            block_kib,
            pattern,
            direct,
        } = spec
        else {
            return invalid("not a disk workload".into());
        };
        if !device.starts_with('/') {
            return invalid(format!("device must be an absolute path, not {device:?}"));
        }
        if *region_mib == 0 {
            return invalid("region_mib must be at least 1".into());
        }
        if !BLOCK_KIB_RANGE.contains(block_kib) || !block_kib.is_power_of_two() {
            return invalid(format!(
                "block_kib must be a power of two from 4 to 1024, not {block_kib}"
            ));
        }
        if !rate_mib_s.is_finite() || *rate_mib_s < 0.0 {
            return invalid(format!(
                "rate_mib_s must be a finite number >= 0 (0: as fast as possible), not {rate_mib_s}"
            ));
        }
        if *pattern == DirtyPattern::Hotcold {
            return invalid(
                "pattern hotcold is not supported by a disk workload: use sequential or random"
                    .into(),
            );
        }
        let block_size = *block_kib as usize * 1024;
        let (Some(offset), Some(region)) =
            (offset_mib.checked_mul(MIB), region_mib.checked_mul(MIB))
        else {
            return invalid(format!(
                "offset_mib {offset_mib} or region_mib {region_mib} is too large"
            ));
        };
        let Some(blocks) = offset
            .checked_add(region)
            .and_then(|_| usize::try_from(region / block_size as u64).ok())
        else {
            return invalid(format!(
                "offset_mib {offset_mib} + region_mib {region_mib} is too large"
            ));
        };
        Ok(Self {
            device: device.clone(),
            offset,
            blocks,
            block_size,
            rate_mib_s: *rate_mib_s,
            pattern: *pattern,
            direct: *direct,
            hold_limit: HOLD_LIMIT,
        })
    }

    /// Bytes of the region.
    pub fn region_bytes(&self) -> u64 {
        self.blocks as u64 * self.block_size as u64
    }

    /// MiB of memory the version table takes (8 bytes per block), rounded
    /// up.
    pub fn table_mib(&self) -> u64 {
        (self.blocks as u64 * 8).div_ceil(MIB)
    }
}

/// The text of an I/O error: the errno's name and meaning when there is
/// one (`EIO: I/O error`).
fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).to_string(),
        None => e.to_string(),
    }
}

/// `pwrite` of all of `buf` at `offset`; a short write is an error (it
/// only happens at the end of a device or a full file system).
fn write_full_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    loop {
        match file.write_at(buf, offset) {
            Ok(n) if n == buf.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "short write: {n} of {} bytes",
                    buf.len()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `pread` into `buf` from `offset` until it is full or the end of the
/// file; returns the bytes read. With `O_DIRECT` a short read ends it (the
/// next offset would not be aligned, and only the end of the file gives
/// one).
fn read_full_at(file: &File, buf: &mut [u8], offset: u64, direct: bool) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if direct {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The open device and where the region lies on it.
struct Region {
    file: File,
    device: String,
    offset: u64,
    blocks: usize,
    block_size: usize,
    direct: bool,
}

impl Region {
    /// Opens the device of `p`, refusing what cannot be written safely,
    /// and checks that the region fits on a block device.
    fn open(p: &DiskParams) -> Result<Self, WorkloadError> {
        let dev = &p.device;
        let kind = std::fs::metadata(dev)
            .map_err(|e| WorkloadError::Invalid(format!("device {dev:?}: {}", errno_text(&e))))?
            .file_type();
        let block_device = kind.is_block_device();
        if !block_device && !kind.is_file() {
            return invalid(format!(
                "device {dev:?} is neither a block device nor a regular file"
            ));
        }
        let mut flags = 0;
        if block_device {
            flags |= libc::O_EXCL;
        }
        if p.direct {
            flags |= libc::O_DIRECT;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags)
            .open(dev)
            .map_err(|e| WorkloadError::Invalid(open_error(dev, p.direct, &e)))?;
        let region = Self {
            file,
            device: dev.clone(),
            offset: p.offset,
            blocks: p.blocks,
            block_size: p.block_size,
            direct: p.direct,
        };
        if block_device {
            region.fits(p.region_bytes())?;
        }
        Ok(region)
    }

    /// Whether the region lies within the device.
    fn fits(&self, region_bytes: u64) -> Result<(), WorkloadError> {
        let size = {
            use std::io::Seek as _;
            (&self.file).seek(io::SeekFrom::End(0)).map_err(|e| {
                WorkloadError::Invalid(format!(
                    "device {:?}: cannot read its size: {}",
                    self.device,
                    errno_text(&e)
                ))
            })?
        };
        let end = self.offset.saturating_add(region_bytes);
        if end > size {
            return invalid(format!(
                "offset_mib + region_mib ({} MiB) go beyond the end of device {:?} ({} MiB)",
                end / MIB,
                self.device,
                size / MIB
            ));
        }
        Ok(())
    }

    /// The error of an I/O at byte `offset` (of the device) for `what`.
    fn io_error(&self, what: &str, offset: u64, e: &io::Error) -> String {
        let hint = if self.direct && e.raw_os_error() == Some(libc::EINVAL) {
            " (O_DIRECT: the device or file system may not support direct I/O; try direct=false)"
        } else {
            ""
        };
        format!(
            "{what} {:?} at byte offset {offset}: {}{hint}",
            self.device,
            errno_text(e)
        )
    }

    fn block_offset(&self, index: usize) -> u64 {
        self.offset + index as u64 * self.block_size as u64
    }

    /// Writes block `index` at `version` (through `buf`, at least one
    /// block long).
    fn write_block(&self, buf: &mut [u8], index: usize, version: u64) -> Result<(), String> {
        let block = &mut buf[..self.block_size];
        disk_block::fill(block, index as u64, version);
        let at = self.block_offset(index);
        write_full_at(&self.file, block, at)
            .map_err(|e| self.io_error(&format!("writing block {index} of"), at, &e))
    }

    /// Flushes the device's writes to stable storage.
    fn flush(&self) -> Result<(), String> {
        self.file
            .sync_data()
            .map_err(|e| format!("flushing {:?} (fdatasync): {}", self.device, errno_text(&e)))
    }

    /// Writes version 0 of every block, in chunks of `buf`'s size, then
    /// flushes.
    fn prefill(&self, buf: &mut [u8]) -> Result<(), String> {
        let per = (buf.len() / self.block_size).max(1);
        let mut first = 0;
        while first < self.blocks {
            let n = per.min(self.blocks - first);
            let chunk = &mut buf[..n * self.block_size];
            for (j, block) in chunk.chunks_exact_mut(self.block_size).enumerate() {
                disk_block::fill(block, (first + j) as u64, 0);
            }
            let at = self.block_offset(first);
            write_full_at(&self.file, chunk, at)
                .map_err(|e| self.io_error("pre-filling", at, &e))?;
            first += n;
        }
        self.flush()
    }

    /// Flushes, reads every block back and compares it with its expected
    /// version in `table`.
    fn check(&self, buf: &mut [u8], table: &[u64]) -> Result<IntegrityReport, String> {
        self.flush()?;
        if !self.direct {
            // Flushed pages are clean: dropping them makes the reads below
            // come from the disk. Only advice, so a refusal changes nothing.
            let _ = nix::fcntl::posix_fadvise(
                self.file.as_raw_fd(),
                i64::try_from(self.offset).unwrap_or(i64::MAX),
                i64::try_from(self.blocks as u64 * self.block_size as u64).unwrap_or(0),
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
        }
        let mut r = IntegrityReport::default();
        let per = (buf.len() / self.block_size).max(1);
        let mut first = 0;
        while first < self.blocks {
            let n = per.min(self.blocks - first);
            let chunk = &mut buf[..n * self.block_size];
            let at = self.block_offset(first);
            let got = read_full_at(&self.file, chunk, at, self.direct)
                .map_err(|e| self.io_error("reading back", at, &e))?;
            for (j, block) in chunk.chunks_exact(self.block_size).enumerate() {
                let index = first + j;
                let whole = (j + 1) * self.block_size <= got;
                let expected = table.get(index).copied().unwrap_or(0);
                r.checked_pages += 1;
                if !(whole && disk_block::matches(block, index as u64, expected)) {
                    r.corrupted_pages += 1;
                    if r.first_corrupted.len() < MAX_LISTED {
                        r.first_corrupted.push(index as u64);
                    }
                }
            }
            first += n;
        }
        let pairs = table.iter().enumerate().map(|(i, v)| (i as u64, *v));
        r.versions_digest = Some(disk_block::versions_digest(pairs));
        r.checked_at_realtime_ns = realtime_ns();
        Ok(r)
    }
}

/// The error text of opening `dev`, with what to do about the usual ones.
fn open_error(dev: &str, direct: bool, e: &io::Error) -> String {
    let why = errno_text(e);
    match e.raw_os_error() {
        Some(libc::EINVAL) if direct => format!(
            "device {dev:?} refuses O_DIRECT (direct=true): {why}; its file system (tmpfs?) has no direct I/O: set direct=false"
        ),
        Some(libc::EBUSY) => {
            format!("device {dev:?} is busy (mounted, or in use by the kernel or another workload): {why}")
        }
        _ => format!("device {dev:?}: cannot open it for writing: {why}"),
    }
}

/// Chooses the next block to write.
#[derive(Debug, Clone)]
enum Picker {
    /// In order, wrapping.
    Sequential { next: usize },
    /// Uniform over the region.
    Random(Rng),
}

impl Picker {
    fn new(pattern: DirtyPattern) -> Self {
        match pattern {
            DirtyPattern::Random => Self::Random(Rng::new(0x6c6d_6967_6469_736b)),
            // Hotcold is refused by validation; sequential is the default.
            DirtyPattern::Sequential | DirtyPattern::Hotcold => Self::Sequential { next: 0 },
        }
    }

    /// The next block (of `blocks` > 0).
    fn pick(&mut self, blocks: usize) -> usize {
        match self {
            Self::Sequential { next } => {
                let b = *next % blocks;
                *next = b + 1;
                b
            }
            Self::Random(rng) => rng.below(blocks),
        }
    }
}

/// Blocks written in one whole second.
#[derive(Debug, Clone, Copy, Default)]
struct Second {
    blocks: u64,
    /// A verification pause or hold overlapped this second.
    paused: bool,
}

/// What the verifiers and the workload tell the writer, and what it
/// answers; under [`Shared::ctl`].
#[derive(Debug, Default)]
struct Ctl {
    /// Stop writing (and, with `final_check`, check before ending).
    stop: bool,
    final_check: bool,
    /// A verification asked for and not yet taken: (id, hold).
    request: Option<(u64, bool)>,
    /// The last verification done: (id, outcome).
    served: Option<(u64, Result<IntegrityReport, String>)>,
    next_id: u64,
    /// The writer is held until then.
    held_until: Option<Instant>,
    /// A resume asked for.
    resume: bool,
    /// The writer thread has ended.
    ended: bool,
    /// When it ended.
    ended_at: Option<Instant>,
}

/// State shared by the writer, the workload and its verifiers.
#[derive(Debug, Default)]
struct Shared {
    ctl: Mutex<Ctl>,
    /// Signals every change of `ctl`.
    changed: Condvar,
    /// Set (under `ctl`) whenever `ctl` has something for the writer, so
    /// that it looks at the lock only then.
    attention: AtomicBool,
    /// Serialises verifications and resumes.
    verify_lock: Mutex<()>,
    blocks_written: AtomicU64,
    seconds: Mutex<Vec<Second>>,
    /// Every second before this one is fully counted (`u64::MAX` once the
    /// writer ended).
    cursor: AtomicU64,
    integrity: Mutex<Option<IntegrityReport>>,
    failure: Mutex<Option<String>>,
    /// Test hook: the next write fails with EIO.
    #[cfg(test)]
    fail_next_write: AtomicBool,
}

impl Shared {
    fn ctl(&self) -> MutexGuard<'_, Ctl> {
        lock(&self.ctl)
    }

    /// Waits for a change of `ctl`, at most `d`.
    fn wait<'a>(&self, g: MutexGuard<'a, Ctl>, d: Duration) -> MutexGuard<'a, Ctl> {
        self.changed
            .wait_timeout(g, d)
            .map_or_else(|p| p.into_inner().0, |(g, _)| g)
    }

    /// Wakes the writer up for what was just put into `ctl` (held by the
    /// caller, so the writer cannot clear the flag before seeing it).
    fn poke(&self, _held: &MutexGuard<'_, Ctl>) {
        self.attention.store(true, Ordering::Release);
        self.changed.notify_all();
    }
}

/// Why a disk verification or resume was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DiskVerifyError {
    /// The workload is stopped, failed, or stopped meanwhile.
    #[error("the workload is not running")]
    NotRunning,
    /// `resume` of a writer that is not held (never held, resumed, or
    /// released by the hold limit).
    #[error("the workload is not held (never held, already resumed, or released after {HOLD_LIMIT_S} s)")]
    NotHeld,
    /// Flushing or reading the device failed; the workload failed with it.
    #[error("{0}")]
    Failed(String),
}

/// A handle that verifies, holds and resumes a running disk workload;
/// cheap to clone, usable without holding the workload.
#[derive(Debug, Clone)]
pub struct DiskVerifier(Arc<Shared>);

impl DiskVerifier {
    /// Has the writer pause between two writes, flush, check every block
    /// and record the result; with `hold` the writer then stays paused
    /// (see [`DiskVerifier::resume`]), else it resumes (unless an earlier
    /// hold still lasts). Blocks: call it from a blocking context.
    pub fn verify(&self, hold: bool) -> Result<IntegrityReport, DiskVerifyError> {
        let s = &self.0;
        let _one_at_a_time = lock(&s.verify_lock);
        let mut ctl = s.ctl();
        if ctl.stop || ctl.ended {
            return Err(DiskVerifyError::NotRunning);
        }
        ctl.next_id += 1;
        let id = ctl.next_id;
        ctl.request = Some((id, hold));
        s.poke(&ctl);
        loop {
            if let Some((_, outcome)) = ctl.served.as_ref().filter(|(sid, _)| *sid == id) {
                return outcome.clone().map_err(DiskVerifyError::Failed);
            }
            if ctl.ended {
                return Err(DiskVerifyError::NotRunning);
            }
            ctl = s.wait(ctl, Duration::from_millis(50));
        }
    }

    /// Ends a hold: returns once the writer writes again. Refused when it
    /// is not held. Blocks.
    pub fn resume(&self) -> Result<(), DiskVerifyError> {
        let s = &self.0;
        let _one_at_a_time = lock(&s.verify_lock);
        let mut ctl = s.ctl();
        if ctl.stop || ctl.ended {
            return Err(DiskVerifyError::NotRunning);
        }
        if ctl.held_until.is_none() {
            return Err(DiskVerifyError::NotHeld);
        }
        ctl.resume = true;
        s.poke(&ctl);
        while ctl.held_until.is_some() && !ctl.ended {
            ctl = s.wait(ctl, Duration::from_millis(50));
        }
        Ok(())
    }

    /// Whether the writer is held.
    pub fn is_held(&self) -> bool {
        self.0.ctl().held_until.is_some()
    }
}

/// Marks the writer ended when its thread ends, even by a panic, so no
/// verifier waits for it in vain.
struct EndGuard<'a>(&'a Shared);

impl Drop for EndGuard<'_> {
    fn drop(&mut self) {
        let mut ctl = self.0.ctl();
        ctl.ended = true;
        ctl.ended_at = Some(Instant::now());
        ctl.held_until = None;
        self.0.cursor.store(u64::MAX, Ordering::Relaxed);
        self.0.changed.notify_all();
    }
}

/// What the writer does after looking at `ctl`.
enum Flow {
    /// Write on; `paused` if it was paused (verified or held) meanwhile.
    Go { paused: bool },
    /// Stop (the workload is stopping).
    Stop,
    /// The device failed (recorded in `failure`).
    Fail,
}

/// The writer's count of the current whole second.
struct Counter {
    second: u64,
    blocks: u64,
}

/// The writer's pacing: which blocks are due at absolute deadlines from
/// the start, as for the dirty workload.
struct Pacer {
    /// Blocks per second; 0: as fast as possible.
    bps: f64,
    /// At most this many blocks of lag are caught up at once.
    max_burst: u64,
    written: u64,
    /// Blocks due but not to be written (dropped lag, pauses).
    forgiven: u64,
    tick: u64,
}

impl Pacer {
    fn new(p: &DiskParams) -> Self {
        let bps = p.rate_mib_s * MIB as f64 / p.block_size as f64;
        Self {
            bps,
            max_burst: (bps * MAX_CATCH_UP.as_secs_f64()).max(1.0) as u64,
            written: 0,
            forgiven: 0,
            tick: 0,
        }
    }

    fn flat_out(&self) -> bool {
        self.bps == 0.0
    }

    fn due_at(&self, since_start: Duration) -> u64 {
        (self.bps * since_start.as_secs_f64()).floor().max(0.0) as u64
    }

    /// Blocks to write now, `since_start` after the start.
    fn todo(&mut self, since_start: Duration) -> u64 {
        if self.flat_out() {
            return FLAT_OUT_BURST;
        }
        let mut due = self.due_at(since_start).saturating_sub(self.forgiven);
        if due > self.written + self.max_burst {
            self.forgiven += due - self.written - self.max_burst;
            due = self.written + self.max_burst;
        }
        due.saturating_sub(self.written)
    }

    /// After a pause: what fell due meanwhile is not caught up.
    fn forgive(&mut self, since_start: Duration) {
        self.forgiven = self.due_at(since_start).saturating_sub(self.written);
    }
}

/// The writer thread's state.
struct Writer<'a> {
    region: Region,
    table: Vec<u64>,
    buf: AlignedBuf,
    picker: Picker,
    params: DiskParams,
    shared: &'a Shared,
    start: Instant,
    counter: Counter,
}

impl Writer<'_> {
    /// Writes until stopped or failed; returns the final check, when asked
    /// for.
    fn run(mut self) -> Option<Result<IntegrityReport, String>> {
        let mut pace = Pacer::new(&self.params);
        loop {
            if self.shared.attention.load(Ordering::Acquire) {
                match self.attend() {
                    Flow::Stop => break,
                    Flow::Fail => return None,
                    Flow::Go { paused } => {
                        if paused {
                            pace.forgive(self.start.elapsed());
                        }
                    }
                }
            }
            let now = Instant::now();
            if now.saturating_duration_since(self.start).as_secs() != self.counter.second {
                // Seconds without a write are complete too.
                self.flush_counter(now);
            }
            let todo = pace.todo(self.start.elapsed());
            pace.written += self.burst(todo).ok()?;
            if !pace.flat_out() {
                pace.tick = self.sleep_to_next_tick(pace.tick);
            }
        }
        let final_check = self.shared.ctl().final_check;
        final_check.then(|| self.check_and_record())
    }

    /// Writes up to `todo` blocks, stopping early when the writer is
    /// wanted; the number written, or `Err` once a write failed.
    fn burst(&mut self, todo: u64) -> Result<u64, ()> {
        let mut n = 0;
        while n < todo && !self.shared.attention.load(Ordering::Acquire) {
            let index = self.picker.pick(self.params.blocks);
            let version = self.table[index].wrapping_add(1);
            if let Err(e) = self.write_block(index, version) {
                self.fail(e);
                return Err(());
            }
            self.table[index] = version;
            n += 1;
            self.shared.blocks_written.fetch_add(1, Ordering::Relaxed);
            self.count(Instant::now());
        }
        Ok(n)
    }

    fn write_block(&mut self, index: usize, version: u64) -> Result<(), String> {
        #[cfg(test)]
        if self.shared.fail_next_write.swap(false, Ordering::Relaxed) {
            let at = self.region.block_offset(index);
            let eio = io::Error::from_raw_os_error(libc::EIO);
            return Err(self
                .region
                .io_error(&format!("writing block {index} of"), at, &eio));
        }
        self.region
            .write_block(self.buf.as_mut_slice(), index, version)
    }

    /// Sleeps until the tick after `tick` (or after now, if late); returns
    /// that tick.
    fn sleep_to_next_tick(&self, tick: u64) -> u64 {
        let after = Instant::now();
        let late = after.saturating_duration_since(self.start).as_nanos() / TICK.as_nanos();
        let next = (tick + 1).max(u64::try_from(late).unwrap_or(u64::MAX - 1) + 1);
        let deadline = self.start + TICK * u32::try_from(next).unwrap_or(u32::MAX);
        std::thread::sleep(deadline.saturating_duration_since(after));
        next
    }

    /// Counts one block written at `at`.
    fn count(&mut self, at: Instant) {
        if at.saturating_duration_since(self.start).as_secs() != self.counter.second {
            self.flush_counter(at);
        }
        self.counter.blocks += 1;
    }

    /// Adds the current second's count to the shared table and moves the
    /// cursor to the second of `now`.
    fn flush_counter(&mut self, now: Instant) {
        let sec = now.saturating_duration_since(self.start).as_secs();
        let i = usize::try_from(self.counter.second).unwrap_or(usize::MAX);
        if i < (1 << 24) {
            let mut v = lock(&self.shared.seconds);
            if v.len() <= i {
                v.resize(i + 1, Second::default());
            }
            v[i].blocks += self.counter.blocks;
        }
        self.counter = Counter {
            second: sec,
            blocks: 0,
        };
        self.shared.cursor.store(sec, Ordering::Relaxed);
    }

    /// Marks the seconds from `from` to now as paused.
    fn mark_paused(&self, from: Instant) {
        let sec = |t: Instant| {
            usize::try_from(t.saturating_duration_since(self.start).as_secs()).unwrap_or(usize::MAX)
        };
        let (from, to) = (sec(from), sec(Instant::now()));
        if to >= (1 << 24) {
            return;
        }
        let mut v = lock(&self.shared.seconds);
        if v.len() <= to {
            v.resize(to + 1, Second::default());
        }
        for s in &mut v[from.min(to)..=to] {
            s.paused = true;
        }
    }

    /// Serves what `ctl` asks for: verifications, a hold, a resume, a stop.
    fn attend(&mut self) -> Flow {
        let began = Instant::now();
        self.flush_counter(began);
        let mut paused = false;
        let mut ctl = self.shared.ctl();
        let flow = loop {
            if ctl.stop {
                break Flow::Stop;
            }
            if let Some((id, hold)) = ctl.request.take() {
                drop(ctl);
                paused = true;
                let ok = self.serve(id, hold);
                ctl = self.shared.ctl();
                if !ok {
                    break Flow::Fail;
                }
                continue;
            }
            if let Some(left) = self.hold_left(&mut ctl) {
                ctl = self.shared.wait(ctl, left);
                continue;
            }
            ctl.resume = false;
            // Cleared under the lock: whatever is posted after this sets it
            // again.
            self.shared.attention.store(false, Ordering::Release);
            break Flow::Go { paused };
        };
        drop(ctl);
        if paused {
            self.mark_paused(began);
        }
        // The pause's seconds count as written-nothing, not as pending.
        self.flush_counter(Instant::now());
        flow
    }

    /// Runs verification `id`, holds if asked, and posts the outcome;
    /// `false` if the device failed.
    fn serve(&mut self, id: u64, hold: bool) -> bool {
        let outcome = self.check_and_record();
        let mut ctl = self.shared.ctl();
        let ok = outcome.is_ok();
        if hold && ok {
            // Set with the outcome, so a resume that follows the answer
            // always finds the hold.
            ctl.held_until = Some(Instant::now() + self.params.hold_limit);
        }
        ctl.served = Some((id, outcome));
        self.shared.changed.notify_all();
        ok
    }

    /// How long the hold still lasts, or `None` once it is over (ending it
    /// now if resumed or past its limit) or if there is none.
    fn hold_left(&self, ctl: &mut Ctl) -> Option<Duration> {
        let until = ctl.held_until?;
        let now = Instant::now();
        if !ctl.resume && now < until {
            return Some(until - now);
        }
        if !ctl.resume {
            crate::say!(
                "disk workload on {:?}: hold released after {} s without resume",
                self.params.device,
                self.params.hold_limit.as_secs_f64()
            );
        }
        ctl.held_until = None;
        self.shared.changed.notify_all();
        None
    }

    /// Checks the region and records the outcome: the integrity report,
    /// or the failure of the workload.
    fn check_and_record(&mut self) -> Result<IntegrityReport, String> {
        let outcome = self.region.check(self.buf.as_mut_slice(), &self.table);
        match &outcome {
            Ok(r) => *lock(&self.shared.integrity) = Some(r.clone()),
            Err(e) => self.fail(e.clone()),
        }
        outcome
    }

    fn fail(&self, why: String) {
        lock(&self.shared.failure).get_or_insert(why);
    }
}

/// A running (or stopped) disk workload.
#[derive(Debug)]
pub struct DiskWorkload {
    params: DiskParams,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Option<Result<IntegrityReport, String>>>>,
    start: Instant,
    started_realtime_ns: i64,
    ended: Option<Instant>,
}

impl DiskWorkload {
    /// Opens the device, pre-fills the region with version 0 of every
    /// block and flushes it, then starts the writer. Returns once the
    /// writer runs. Blocks (the pre-fill writes the whole region).
    pub fn start(name: &str, params: DiskParams) -> Result<Self, WorkloadError> {
        let region = Region::open(&params)?;
        let mut table = Vec::new();
        table.try_reserve_exact(params.blocks).map_err(|e| {
            WorkloadError::Thread(format!(
                "cannot allocate the version table of {} blocks: {e}",
                params.blocks
            ))
        })?;
        table.resize(params.blocks, 0u64);
        let mut buf =
            AlignedBuf::new(CHUNK.max(params.block_size)).map_err(WorkloadError::Thread)?;
        region
            .prefill(buf.as_mut_slice())
            .map_err(WorkloadError::Io)?;
        let shared = Arc::new(Shared::default());
        let start = Instant::now();
        let started_realtime_ns = realtime_ns();
        let writer_shared = shared.clone();
        let writer_params = params.clone();
        let thread = std::thread::Builder::new()
            .name(format!("disk-{name}"))
            .spawn(move || {
                let shared = writer_shared;
                let _end = EndGuard(&shared);
                Writer {
                    region,
                    table,
                    buf,
                    picker: Picker::new(writer_params.pattern),
                    params: writer_params,
                    shared: &shared,
                    start,
                    counter: Counter {
                        second: 0,
                        blocks: 0,
                    },
                }
                .run()
            })
            .map_err(|e| WorkloadError::Thread(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            params,
            shared,
            thread: Some(thread),
            start,
            started_realtime_ns,
            ended: None,
        })
    }

    /// A handle that verifies, holds and resumes the workload while it
    /// runs.
    pub fn verifier(&self) -> DiskVerifier {
        DiskVerifier(self.shared.clone())
    }

    /// Whether the writer still runs.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the writer (ending a hold); it checks the region before it
    /// ends. Returns the final report, with that check. Calling it again
    /// returns the same report. Blocks.
    pub fn stop(&mut self, name: &str) -> WorkloadReport {
        if let Some(t) = self.thread.take() {
            self.signal_stop(true);
            self.ended = Some(Instant::now());
            match t.join() {
                Ok(Some(Ok(_))) | Ok(None) => {}
                Ok(Some(Err(e))) => {
                    lock(&self.shared.failure).get_or_insert(e);
                }
                Err(p) => {
                    lock(&self.shared.failure).get_or_insert(panic_text(&p));
                }
            }
        }
        self.report(name)
    }

    fn signal_stop(&self, final_check: bool) {
        let mut ctl = self.shared.ctl();
        ctl.stop = true;
        ctl.final_check = final_check;
        self.shared.poke(&ctl);
    }

    /// What the workload has done so far.
    pub fn report(&self, name: &str) -> WorkloadReport {
        let s = &self.shared;
        let blocks = s.blocks_written.load(Ordering::Relaxed);
        let block_mib = self.params.block_size as f64 / MIB as f64;
        // A stopped workload's time ends at the stop, a failed one's when
        // its writer ended.
        let end = self.ended.or(s.ctl().ended_at);
        let elapsed = end
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(self.start);
        let seconds = self.complete_seconds(elapsed);
        let mib_s = |x: &Second| x.blocks as f64 * block_mib;
        let target = (self.params.rate_mib_s > 0.0).then_some(self.params.rate_mib_s);
        let unpaused: Vec<f64> = seconds.iter().filter(|x| !x.paused).map(mib_s).collect();
        let (state, error) = self.state();
        let secs = elapsed.as_secs_f64();
        WorkloadReport {
            name: name.to_string(),
            state: state.into(),
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            pages_written: blocks,
            achieved_mib_s: if secs > 0.0 {
                blocks as f64 * block_mib / secs
            } else {
                0.0
            },
            per_second_mib_s: seconds.iter().map(mib_s).collect(),
            error,
            target_mib_s: target,
            max_reachable_mib_s: max_reachable(target, &unpaused),
            started_realtime_ns: self.started_realtime_ns,
            integrity: lock(&s.integrity).clone(),
            blocks_written: Some(blocks),
            bytes_written: Some(blocks.saturating_mul(self.params.block_size as u64)),
            ..WorkloadReport::default()
        }
    }

    /// The whole seconds the writer has fully counted, up to `elapsed`.
    fn complete_seconds(&self, elapsed: Duration) -> Vec<Second> {
        let complete = self
            .shared
            .cursor
            .load(Ordering::Relaxed)
            .min(elapsed.as_secs());
        let n = usize::try_from(complete).unwrap_or(usize::MAX).min(1 << 24);
        let v = lock(&self.shared.seconds);
        let mut out = v[..n.min(v.len())].to_vec();
        // Seconds in which nothing was written have no entry yet.
        out.resize(n, Second::default());
        out
    }

    /// `running`, `stopped` or `failed`, with the error.
    fn state(&self) -> (&'static str, Option<String>) {
        if let Some(f) = lock(&self.shared.failure).clone() {
            ("failed", Some(f))
        } else if self.thread.is_none() {
            ("stopped", None)
        } else if self.is_running() {
            ("running", None)
        } else {
            (
                "failed",
                Some("the writer thread ended unexpectedly".into()),
            )
        }
    }
}

#[cfg(test)]
impl DiskWorkload {
    /// Test hook: the writer's next write fails with EIO.
    fn fail_next_write(&self) {
        self.shared.fail_next_write.store(true, Ordering::Relaxed);
    }
}

impl Drop for DiskWorkload {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            // Dropped without stop: end quickly, without the final check.
            self.signal_stop(false);
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
