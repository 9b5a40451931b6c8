//! JSON bodies of the guest agent's HTTP control API.
//!
//! Every request carries `Authorization: Bearer <token>`; the token is
//! given to the agent on the kernel command line (lab guests) or by flag
//! (real VMs).
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/health` | | [`Health`] |
//! | `PUT /v1/workloads/{name}` | [`WorkloadSpec`] | [`WorkloadReport`] (just started) |
//! | `DELETE /v1/workloads/{name}` | | [`WorkloadReport`] (final, with an [`IntegrityReport`] for a dirty or disk workload) |
//! | `POST /v1/workloads/{name}/verify` | none, or [`VerifyRequest`] | [`IntegrityReport`] (dirty and disk workloads that run; 409 otherwise; `hold` only for disk workloads, 400 otherwise) |
//! | `POST /v1/workloads/{name}/resume` | | [`WorkloadReport`]: a held disk workload writes again (409 if it is not held) |
//! | `GET /v1/report` | | [`AgentReport`] |
//!
//! Every field added after the first version is optional with a default,
//! so older JSON still parses.
//!
//! Errors answer with a status code and an [`ApiError`] body.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The agent's answer to `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    /// The agent's version (its crate version).
    pub agent_version: String,
    /// Milliseconds since the agent started (guest monotonic clock).
    pub uptime_ms: u64,
    /// The guest kernel's release (`uname -r`).
    pub kernel: String,
    /// UDP port of the probe reflector.
    pub reflector_port: u16,
    /// Whether the agent runs as PID 1 (lab guest) or as a service.
    pub pid1: bool,
    /// What runs as the guest's PID 1: `guest-agent` (the lab's
    /// initramfs guest), `systemd` (a real distribution, the agent a
    /// service of it), or PID 1's name; `None` from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
}

/// A workload the harness asks the agent to run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkloadSpec {
    /// Dirty memory: make distinct 4 KiB pages of a working set dirty at a
    /// paced rate, each write rewriting a whole page with verifiable
    /// content (see [`IntegrityReport`]).
    Dirty {
        /// Working set in MiB, pre-touched with non-zero data.
        working_set_mib: u64,
        /// Target rate in MiB/s of pages made dirty (page writes per second
        /// times 4 KiB); 0 means as fast as possible.
        rate_mib_s: f64,
        /// Which pages each write goes to; default `sequential`.
        #[serde(default)]
        pattern: DirtyPattern,
        /// With `hotcold`: the fraction of the working set that is hot,
        /// in (0, 1]; default 0.1.
        #[serde(default = "default_hot_fraction")]
        hot_fraction: f64,
        /// With `hotcold`: the share of writes going to the hot part, in
        /// [0, 1]; default 0.9.
        #[serde(default = "default_hot_share")]
        hot_share: f64,
        /// Writer threads, 1 to 64; default 1. Each owns a disjoint slice
        /// of the working set and writes `rate_mib_s / threads`.
        #[serde(default = "default_threads")]
        threads: u32,
    },
    /// Run a program: `argv[0]` is its absolute path in the guest, the
    /// rest its arguments. Its stdout and stderr go to `/tmp/<name>.log`
    /// in the guest; the end of it is in the report's `output`. The report says `running` while it runs, `stopped`
    /// once it exited with status 0 or was ended by `DELETE` (SIGTERM,
    /// then SIGKILL after 1 s), `failed` (with its exit status in `error`)
    /// otherwise. A program that cannot be started is refused with 400.
    Command {
        /// The program and its arguments; at least the program.
        argv: Vec<String>,
    },
    /// Stream a clip over RTP to the client: the file `clip` (uploaded
    /// with `PUT /v1/files/{clip}`, in the [`crate::clip`] format) is
    /// packetized as H.264 (RFC 6184: single NAL units, FU-A fragments up
    /// to `mtu` bytes of RTP payload), one access unit every frame interval
    /// on an absolute schedule, looping; 90 kHz timestamps continuing
    /// across loops, the marker bit on each frame's last packet, a fixed
    /// `ssrc`, and on every packet our frame tag ([`crate::rtp_ext`]) with
    /// a frame number that keeps counting across loops. The report's
    /// `pages_written` counts packets sent.
    Rtp {
        /// Name of the uploaded clip file.
        clip: String,
        /// Where to send (the client's receiver).
        dest: std::net::SocketAddr,
        /// Synchronization source.
        ssrc: u32,
        /// Largest RTP payload, bytes; default 1200.
        #[serde(default = "default_rtp_mtu")]
        mtu: usize,
        /// RTP payload type; default 96.
        #[serde(default = "default_payload_type")]
        payload_type: u8,
    },
    /// Serve a file over HTTP as a progressive video download: `GET
    /// /{file}` on `port` answers 200 with the uploaded file's bytes (or
    /// 206 for a `Range: bytes=N-` request), sent no faster than
    /// `rate_bytes_s` (the media's own byte rate, as a video site paces
    /// it), looping the file `loops` times so the stream outlasts the run.
    Http {
        /// Name of the uploaded file (e.g. an MPEG-TS of the clip).
        file: String,
        /// TCP port to listen on (all addresses).
        port: u16,
        /// Pacing, bytes per second.
        rate_bytes_s: u64,
        /// How many times the file is sent back to back; default 1000.
        #[serde(default = "default_loops")]
        loops: u32,
    },
    /// Write a disk: one writer thread first pre-fills every block of a
    /// region of `device` with its version-0 stamp ([`crate::disk_block`])
    /// and flushes it (`fdatasync`), then rewrites blocks, each with its
    /// next version, at a paced rate. The agent keeps each block's
    /// expected version, so `verify` (and `DELETE`) can read the region
    /// back and find torn, stale, misplaced or lost writes; `verify` with
    /// `hold` leaves the writer paused so the host can check the image.
    /// The report's `pages_written` counts blocks written.
    ///
    /// A block device is opened exclusively (`O_EXCL`): one that is
    /// mounted or otherwise in use is refused. A regular file (for tests)
    /// must exist; it grows to the end of the region if it is shorter.
    Disk {
        /// Absolute path of the block device (e.g. `/dev/vdb`) or regular
        /// file to write.
        device: String,
        /// Where the region starts on the device, MiB; default 0.
        #[serde(default)]
        offset_mib: u64,
        /// Size of the region, MiB; at least 1.
        region_mib: u64,
        /// Target rate in MiB/s of blocks written (blocks per second
        /// times the block size); 0 means as fast as possible.
        rate_mib_s: f64,
        /// Block size in KiB: a power of two from 4 to 1024; default 4.
        #[serde(default = "default_disk_block_kib")]
        block_kib: u32,
        /// Which block each write goes to: `sequential` (default) or
        /// `random` over the region; `hotcold` is refused.
        #[serde(default)]
        pattern: DirtyPattern,
        /// Open the device with `O_DIRECT` (default true), so writes and
        /// the checks' reads bypass the guest's page cache. A file system
        /// that refuses `O_DIRECT` (tmpfs) is an error unless this is
        /// false.
        #[serde(default = "default_direct")]
        direct: bool,
    },
}

/// Default of [`WorkloadSpec::Disk`]'s `block_kib`.
pub const DEFAULT_DISK_BLOCK_KIB: u32 = 4;

fn default_disk_block_kib() -> u32 {
    DEFAULT_DISK_BLOCK_KIB
}

fn default_direct() -> bool {
    true
}

/// Default of [`WorkloadSpec::Rtp`]'s `mtu`.
pub const DEFAULT_RTP_MTU: usize = 1200;

fn default_rtp_mtu() -> usize {
    DEFAULT_RTP_MTU
}

fn default_payload_type() -> u8 {
    96
}

fn default_loops() -> u32 {
    1000
}

/// Default of [`WorkloadSpec::Dirty`]'s `hot_fraction`.
pub const DEFAULT_HOT_FRACTION: f64 = 0.1;
/// Default of [`WorkloadSpec::Dirty`]'s `hot_share`.
pub const DEFAULT_HOT_SHARE: f64 = 0.9;
/// Default of [`WorkloadSpec::Dirty`]'s `threads`.
pub const DEFAULT_THREADS: u32 = 1;

fn default_hot_fraction() -> f64 {
    DEFAULT_HOT_FRACTION
}

fn default_hot_share() -> f64 {
    DEFAULT_HOT_SHARE
}

fn default_threads() -> u32 {
    DEFAULT_THREADS
}

impl WorkloadSpec {
    /// A dirty workload with the default pattern (`sequential`), hot
    /// fraction, hot share and one thread.
    pub fn dirty(working_set_mib: u64, rate_mib_s: f64) -> Self {
        Self::Dirty {
            working_set_mib,
            rate_mib_s,
            pattern: DirtyPattern::default(),
            hot_fraction: DEFAULT_HOT_FRACTION,
            hot_share: DEFAULT_HOT_SHARE,
            threads: DEFAULT_THREADS,
        }
    }

    /// A disk workload on `device` from offset 0 with the default block
    /// size (4 KiB), pattern (`sequential`) and `O_DIRECT`.
    pub fn disk(device: impl Into<String>, region_mib: u64, rate_mib_s: f64) -> Self {
        Self::Disk {
            device: device.into(),
            offset_mib: 0,
            region_mib,
            rate_mib_s,
            block_kib: DEFAULT_DISK_BLOCK_KIB,
            pattern: DirtyPattern::default(),
            direct: true,
        }
    }
}

/// The optional body of `POST /v1/workloads/{name}/verify`; an empty body
/// is the default (no hold).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Disk workloads only: after the check, keep the writer paused (its
    /// writes flushed) until `POST /v1/workloads/{name}/resume`, or until
    /// [`HOLD_LIMIT_S`] seconds have passed, so that the disk holds
    /// exactly the versions of the returned report's `versions_digest`
    /// while the host reads it. A verify while held checks again; with
    /// `hold` it restarts the limit, without it leaves the hold as it is.
    #[serde(default)]
    pub hold: bool,
}

/// A held disk workload writes again on its own after this many seconds
/// without `resume`, so a harness that died cannot freeze the guest's
/// writes for ever; `resume` then answers 409.
pub const HOLD_LIMIT_S: u64 = 30;

/// Which pages of its slice of the working set a writer thread dirties.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DirtyPattern {
    /// In order, wrapping around: every page of the slice before any twice.
    #[default]
    Sequential,
    /// Uniformly at random over the slice.
    Random,
    /// The first `hot_fraction` of each thread's slice is hot and gets
    /// `hot_share` of the writes (uniformly within it); the rest of the
    /// slice gets the others (uniformly within it).
    Hotcold,
}

/// The result of checking every page of a dirty workload's working set.
///
/// Each page holds, as little-endian `u64` words: its version (the number
/// of times it has been rewritten since the pre-touch, which wrote version
/// 0), its index in the working set, then 510 words that are a
/// deterministic function of (index, version). The writer keeps each
/// page's expected version apart from the page. A page is corrupted when
/// its version is not the expected one (a lost or stale write), its index
/// is wrong, or any of its other bytes differs. The check runs while the
/// writers are paused, so no page is caught mid-write.
///
/// For a `disk` workload the same fields count *blocks* of its region
/// (stamped as [`crate::disk_block`] describes; index 0 is the region's
/// first block): the writer is paused between two writes, the region is
/// flushed (`fdatasync`) and read back (with `O_DIRECT` when `direct`),
/// and a block is corrupted unless it equals what
/// [`crate::disk_block::fill`] writes for its index and expected version.
/// `versions_digest` is then set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct IntegrityReport {
    /// Pages checked (the whole working set).
    pub checked_pages: u64,
    /// Pages whose content was wrong.
    pub corrupted_pages: u64,
    /// The indices (in the working set, from 0) of the first corrupted
    /// pages, in ascending order, at most 16.
    pub first_corrupted: Vec<u64>,
    /// Guest CLOCK_REALTIME (ns since the Unix epoch) when the check
    /// finished.
    pub checked_at_realtime_ns: i64,
    /// A disk workload's expected versions, as
    /// [`crate::disk_block::versions_digest`] of `(index, version)` for
    /// every block of the region in index order; `None` for other kinds.
    /// The host compares it with the digest of the stamps in the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions_digest: Option<u64>,
}

/// What a workload has done so far.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct WorkloadReport {
    /// The workload's name as given in the path.
    pub name: String,
    /// `running`, `stopped` or `failed`.
    pub state: String,
    /// Milliseconds the workload has been running.
    pub elapsed_ms: u64,
    /// 4 KiB pages written (a `disk` workload: blocks written, as in
    /// `blocks_written`; an `rtp` workload: packets sent).
    pub pages_written: u64,
    /// Mean achieved rate, MiB/s of pages written (a `disk` workload: of
    /// blocks written).
    pub achieved_mib_s: f64,
    /// Achieved MiB/s in each whole second since start: entry `i` is the
    /// pages written in [start + i s, start + (i + 1) s) times 4 KiB (a
    /// `disk` workload: blocks times the block size), where start is
    /// [`WorkloadReport::started_realtime_ns`]. Only complete seconds are
    /// listed.
    pub per_second_mib_s: Vec<f64>,
    /// The error, when `state` is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The target rate (`rate_mib_s`) of a dirty or disk workload; `None`
    /// for rate 0 (as fast as possible) and for other kinds.
    #[serde(default)]
    pub target_mib_s: Option<f64>,
    /// Set when the target is beyond what the guest reaches (always for
    /// rate 0): the mean of the best half of the whole seconds (seconds
    /// with a verification pause left out). Set exactly when that mean is
    /// below 97 % of the target.
    #[serde(default)]
    pub max_reachable_mib_s: Option<f64>,
    /// Guest CLOCK_REALTIME (ns since the Unix epoch) when writing started
    /// (after the pre-touch, or a disk workload's pre-fill); 0 for other
    /// kinds.
    #[serde(default)]
    pub started_realtime_ns: i64,
    /// The last integrity check of a dirty or disk workload: the one
    /// `DELETE` runs when stopping it, or else the last `verify`; `None`
    /// before any.
    #[serde(default)]
    pub integrity: Option<IntegrityReport>,
    /// A command workload's output so far: the last [`OUTPUT_TAIL_BYTES`]
    /// of its `/tmp/<name>.log` (stdout and stderr together; invalid UTF-8
    /// replaced). `None` for other kinds, and when the log cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// A streaming workload's packets sent: RTP packets (also in
    /// `pages_written`, which an `rtp` workload reuses for them); `None`
    /// for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_sent: Option<u64>,
    /// A streaming workload's bytes sent: UDP payload bytes (RTP header
    /// and payload) of an `rtp` workload, response body bytes of an `http`
    /// workload; `None` for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_sent: Option<u64>,
    /// An `rtp` workload's video frames sent (the last frame number of its
    /// tag plus one); `None` for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames_sent: Option<u64>,
    /// An `rtp` workload's frames that went out late (their first packet
    /// more than the agent's lateness threshold after the frame's due
    /// time); `None` for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_frames: Option<u64>,
    /// An `rtp` workload's complete passes through the clip; `None` for
    /// other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loops: Option<u64>,
    /// A streaming workload's failed sends (datagrams of an `rtp`
    /// workload the socket refused; they are skipped, not retried);
    /// `None` for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_errors: Option<u64>,
    /// An `http` workload's TCP connections accepted; `None` for other
    /// kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// A `disk` workload's block writes since the pre-fill (which is not
    /// counted); `None` for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks_written: Option<u64>,
    /// A `disk` workload's bytes written since the pre-fill:
    /// `blocks_written` times the block size; `None` for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
}

/// At most this many bytes of a command's output (the end of it) are in
/// [`WorkloadReport::output`].
pub const OUTPUT_TAIL_BYTES: usize = 16 * 1024;

/// The reflector's counters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReflectorStats {
    /// Probe requests received and echoed.
    pub echoed: u64,
    /// Datagrams that were not probe requests (foreign, truncated, replies).
    pub malformed: u64,
    /// Distinct sessions seen.
    pub sessions: u64,
}

/// One interval where a guest clock advanced more than 5 ms beyond what
/// the agent's clock thread expected (it sleeps 1 ms per turn).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ClockGap {
    /// Guest CLOCK_REALTIME (ns since the Unix epoch) at the end of the gap.
    pub realtime_ns: i64,
    /// How far CLOCK_MONOTONIC advanced over the turn, ms.
    pub monotonic_gap_ms: f64,
    /// How far CLOCK_REALTIME advanced over the turn, ms (negative when the
    /// clock was set back).
    pub realtime_gap_ms: f64,
}

/// The guest's own view of its clocks: an always-on agent thread reads
/// CLOCK_MONOTONIC and CLOCK_REALTIME, sleeps 1 ms, reads them again, and
/// records every turn where either advanced more than 5 ms beyond the
/// sleep (scheduling delays, a starved vCPU, a clock step).
///
/// Guest clocks usually stop while the VM is stopped (kvm-clock, and
/// TCG's virtual clock), so this view is expected to HIDE the migration
/// pause: it is the guest's own view, reported for comparison with the
/// client's and QEMU's, not a measure of the downtime.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ClockView {
    /// The largest CLOCK_MONOTONIC gap seen since the agent started, ms (0
    /// if none).
    pub max_monotonic_gap_ms: f64,
    /// The largest CLOCK_REALTIME gap seen since the agent started, ms (0
    /// if none).
    pub max_realtime_gap_ms: f64,
    /// The last 1000 gaps in the order they happened, plus the largest of
    /// each clock if it is older.
    pub gaps: Vec<ClockGap>,
}

/// The answer to `GET /v1/report`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentReport {
    /// Same as [`Health`].
    pub health: Health,
    /// The reflector's counters.
    pub reflector: ReflectorStats,
    /// Every workload started since boot, by name.
    pub workloads: BTreeMap<String, WorkloadReport>,
    /// The guest's own view of its clocks (expected to hide the migration
    /// pause).
    #[serde(default)]
    pub clock: ClockView,
}

/// The body of an error answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiError {
    /// What went wrong, for a person.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_spec_is_tagged_and_strict() {
        let s: WorkloadSpec =
            serde_json::from_str(r#"{"kind":"dirty","working_set_mib":64,"rate_mib_s":8}"#)
                .unwrap();
        assert_eq!(s, WorkloadSpec::dirty(64, 8.0));
        let e = serde_json::from_str::<WorkloadSpec>(
            r#"{"kind":"dirty","working_set_mib":64,"rate_mib_s":8,"oops":1}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("oops"), "{e}");
    }

    #[test]
    fn command_spec_round_trips_and_is_strict() {
        let s: WorkloadSpec =
            serde_json::from_str(r#"{"kind":"command","argv":["/bin/sleep","30"]}"#).unwrap();
        assert_eq!(
            s,
            WorkloadSpec::Command {
                argv: vec!["/bin/sleep".into(), "30".into()]
            }
        );
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"kind":"command","argv":["/bin/sleep","30"]}"#
        );
        let e = serde_json::from_str::<WorkloadSpec>(
            r#"{"kind":"command","argv":["/bin/true"],"env":{}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("env"), "{e}");
    }

    #[test]
    fn dirty_spec_defaults_and_new_fields() {
        let s: WorkloadSpec = serde_json::from_str(
            r#"{"kind":"dirty","working_set_mib":64,"rate_mib_s":8,"pattern":"hotcold","hot_fraction":0.25,"hot_share":0.75,"threads":4}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            WorkloadSpec::Dirty {
                working_set_mib: 64,
                rate_mib_s: 8.0,
                pattern: DirtyPattern::Hotcold,
                hot_fraction: 0.25,
                hot_share: 0.75,
                threads: 4,
            }
        );
        let back: WorkloadSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        for (text, p) in [
            ("sequential", DirtyPattern::Sequential),
            ("random", DirtyPattern::Random),
            ("hotcold", DirtyPattern::Hotcold),
        ] {
            let s: WorkloadSpec = serde_json::from_str(&format!(
                r#"{{"kind":"dirty","working_set_mib":1,"rate_mib_s":1,"pattern":"{text}"}}"#
            ))
            .unwrap();
            assert!(matches!(s, WorkloadSpec::Dirty { pattern, .. } if pattern == p));
        }
        let e = serde_json::from_str::<WorkloadSpec>(
            r#"{"kind":"dirty","working_set_mib":1,"rate_mib_s":1,"pattern":"Random"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Random"), "{e}");
        let e = serde_json::from_str::<WorkloadSpec>(
            r#"{"kind":"dirty","working_set_mib":1,"rate_mib_s":1,"thread":2}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("thread"), "{e}");
    }

    #[test]
    fn disk_spec_defaults_and_strictness() {
        let s: WorkloadSpec = serde_json::from_str(
            r#"{"kind":"disk","device":"/dev/vdb","region_mib":64,"rate_mib_s":8}"#,
        )
        .unwrap();
        assert_eq!(s, WorkloadSpec::disk("/dev/vdb", 64, 8.0));
        let full = WorkloadSpec::Disk {
            device: "/tmp/f".into(),
            offset_mib: 16,
            region_mib: 1,
            rate_mib_s: 0.0,
            block_kib: 64,
            pattern: DirtyPattern::Random,
            direct: false,
        };
        let text = serde_json::to_string(&full).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"disk","device":"/tmp/f","offset_mib":16,"region_mib":1,"rate_mib_s":0.0,"block_kib":64,"pattern":"random","direct":false}"#
        );
        assert_eq!(serde_json::from_str::<WorkloadSpec>(&text).unwrap(), full);
        for (text, field) in [
            (
                r#"{"kind":"disk","device":"/dev/vdb","region_mib":1,"rate_mib_s":1,"block":4}"#,
                "block",
            ),
            (r#"{"kind":"disk","region_mib":1,"rate_mib_s":1}"#, "device"),
            (
                r#"{"kind":"disk","device":"/d","rate_mib_s":1}"#,
                "region_mib",
            ),
        ] {
            let e = serde_json::from_str::<WorkloadSpec>(text).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn verify_request_is_optional_and_strict() {
        let r: VerifyRequest = serde_json::from_str("{}").unwrap();
        assert!(!r.hold);
        let r: VerifyRequest = serde_json::from_str(r#"{"hold":true}"#).unwrap();
        assert!(r.hold);
        let e = serde_json::from_str::<VerifyRequest>(r#"{"hld":true}"#).unwrap_err();
        assert!(e.to_string().contains("hld"), "{e}");
    }

    #[test]
    fn disk_fields_are_left_out_for_other_kinds() {
        let i = IntegrityReport::default();
        let text = serde_json::to_string(&i).unwrap();
        assert_eq!(
            text,
            r#"{"checked_pages":0,"corrupted_pages":0,"first_corrupted":[],"checked_at_realtime_ns":0}"#
        );
        let r = serde_json::to_string(&WorkloadReport::default()).unwrap();
        assert!(
            !r.contains("blocks_written") && !r.contains("bytes_written"),
            "{r}"
        );
        let d = IntegrityReport {
            versions_digest: Some(u64::MAX - 1),
            ..IntegrityReport::default()
        };
        let text = serde_json::to_string(&d).unwrap();
        assert!(
            text.contains(r#""versions_digest":18446744073709551614"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<IntegrityReport>(&text).unwrap(), d);
        let r = WorkloadReport {
            blocks_written: Some(3),
            bytes_written: Some(3 * 4096),
            integrity: Some(d),
            ..WorkloadReport::default()
        };
        let back: WorkloadReport =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn old_reports_still_parse() {
        let r: WorkloadReport = serde_json::from_str(
            r#"{"name":"d","state":"running","elapsed_ms":5,"pages_written":1,"achieved_mib_s":1.0,"per_second_mib_s":[]}"#,
        )
        .unwrap();
        assert_eq!(r.target_mib_s, None);
        assert_eq!(r.max_reachable_mib_s, None);
        assert_eq!(r.started_realtime_ns, 0);
        assert_eq!(r.integrity, None);
        let a: AgentReport = serde_json::from_str(
            r#"{"health":{"agent_version":"0","uptime_ms":1,"kernel":"k","reflector_port":7001,"pid1":true},
                "reflector":{"echoed":0,"malformed":0,"sessions":0},"workloads":{}}"#,
        )
        .unwrap();
        assert_eq!(a.clock, ClockView::default());
    }

    #[test]
    fn new_reports_round_trip() {
        let r = WorkloadReport {
            name: "d".into(),
            state: "stopped".into(),
            target_mib_s: Some(8.0),
            max_reachable_mib_s: Some(6.5),
            started_realtime_ns: 1_700_000_000_000_000_000,
            integrity: Some(IntegrityReport {
                checked_pages: 256,
                corrupted_pages: 1,
                first_corrupted: vec![7],
                checked_at_realtime_ns: 1_700_000_001_000_000_000,
                versions_digest: None,
            }),
            ..WorkloadReport::default()
        };
        let back: WorkloadReport =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
