//! The VM's disk in the lab and its storage migration, the way qemu-server
//! does it with QEMU for `--with-local-disks` (`../shared/platforms.md`):
//!
//! 1. the destination, started paused (`-S`) with an empty image of the
//!    same size, runs `nbd-server-start` on its migration address and a
//!    writable `block-export-add` of its disk;
//! 2. the source adds an NBD client node for that export and runs
//!    `blockdev-mirror` (`sync=full`, no auto-dismiss) onto it, limited to
//!    the migration's bandwidth; the harness polls `query-block-jobs`
//!    until the job is ready, while the guest keeps writing;
//! 3. the job is switched to `write-blocking` (a guest write completes
//!    only once the destination has it) and must say `actively-synced`;
//! 4. RAM migrates;
//! 5. with the source stopped, `block-job-cancel` on the ready mirror
//!    completes it at that point in time, and the job is dismissed;
//! 6. the destination's NBD server stops, and only then does the
//!    destination get `cont`.
//!
//! Each step is a QMP event or a harness marker on the timeline; with
//! `migration.flow = "proxmox"` each also writes qemu-server's task-log
//! line. The NBD stream goes over the lab's migration link, as
//! `migration_type=insecure` sends it.
//!
//! On shared storage both nodes open one image and nothing is copied.

use super::lab::Node;
use super::proxmox_flow::TaskLogWriter;
use super::qemu::cmdline::QemuDisk;
use super::qemu::process::QemuProcess;
use crate::clock::now_ns;
use crate::scenario::disk::{DiskFormat, DiskSpec, DiskStorage};
use anyhow::{bail, Context, Result};
use measure::migration::record::{DiskMirror, MirrorSample, StorageRecord};
use measure::platform::proxmox::tasklog::{LineKind as L, MirrorState};
use serde_json::{json, Value};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The NBD server's port on the destination's migration address.
pub const NBD_PORT: u16 = 10809;
/// How often the mirror is polled in QEMU's flow; qemu-server polls every
/// second ([`PROXMOX_POLL`]).
const POLL: Duration = Duration::from_millis(100);
/// qemu-server's pace while it waits for the mirrors.
const PROXMOX_POLL: Duration = Duration::from_secs(1);

/// The image a node's QEMU opens.
pub fn image_path(state_dir: &Path, disk: &DiskSpec, node: Node) -> PathBuf {
    let who = match disk.storage {
        DiskStorage::Local => node.letter(),
        DiskStorage::Shared => "shared",
    };
    state_dir.join(format!("disk-{who}.{}", disk.format.as_str()))
}

/// The disk as `node`'s QEMU gets it.
pub fn qemu_disk(state_dir: &Path, disk: &DiskSpec, node: Node) -> QemuDisk {
    QemuDisk {
        image: image_path(state_dir, disk, node),
        format: disk.format,
        bus: disk.bus,
    }
}

/// Makes an empty image (`qemu-img create`), replacing one that is there:
/// a destination gets a fresh volume for each migration, as Proxmox
/// allocates one.
pub fn create_image(path: &Path, disk: &DiskSpec) -> Result<()> {
    super::tool::run(
        std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", disk.format.as_str()])
            .arg(path)
            .arg(format!("{}M", disk.size_mib)),
        &format!("qemu-img create {}", path.display()),
    )?;
    Ok(())
}

/// A storage migration under way: one disk's mirror.
pub struct Mirror {
    disk: QemuDisk,
    size_bytes: u64,
    job: String,
    log: Option<TaskLogWriter>,
    samples: Vec<MirrorSample>,
    /// When the job said `actively-synced` (host clock), ns.
    pub synced_ns: Option<i64>,
    mirrored_bytes: Option<u64>,
}

/// The job's entry in a `query-block-jobs` answer.
fn job_entry<'a>(jobs: &'a Value, job: &str) -> Option<&'a Value> {
    jobs.as_array()?.iter().find(|j| j["device"] == job)
}

impl Mirror {
    /// Steps 1 and 2: the destination's export and the source's mirror.
    pub async fn start(
        src: &QemuProcess,
        dst: &QemuProcess,
        disk: &QemuDisk,
        spec: &DiskSpec,
        dst_addr: SocketAddrV4,
        speed_bytes_s: u64,
        log: Option<TaskLogWriter>,
    ) -> Result<Mirror> {
        let node = disk.node_name();
        let (host, port) = (dst_addr.ip().to_string(), dst_addr.port().to_string());
        let server = json!({"type": "inet", "host": host, "port": port});
        let d = dst.qmp()?;
        // nbd-server-start still takes the legacy (nested) address form.
        let legacy = json!({"type": "inet", "data": {"host": host, "port": port}});
        d.execute("nbd-server-start", Some(json!({ "addr": legacy })))
            .await
            .context("starting the destination's NBD server")?;
        d.execute(
            "block-export-add",
            Some(json!({"type": "nbd", "id": node, "node-name": node, "writable": true, "name": node})),
        )
        .await
        .context("exporting the destination's disk over NBD")?;
        let target = format!("nbd-{}", disk.bus.drive());
        let job = format!("mirror-{}", disk.bus.drive());
        if let Some(l) = &log {
            l.log(&L::StartingStorageMigration);
            l.log(&L::DriveMigrationStart {
                drive: disk.bus.drive().into(),
                target: format!("nbd:{dst_addr}:exportname={node}"),
            });
            l.log(&L::DriveMirrorStarting {
                device: node.clone(),
                bwlimit_kib_s: Some(speed_bytes_s / 1024),
            });
        }
        let s = src.qmp()?;
        s.execute(
            "blockdev-add",
            Some(json!({"driver": "nbd", "node-name": target, "server": server, "export": node})),
        )
        .await
        .context("connecting the source to the destination's NBD export")?;
        let started = s
            .execute(
                "blockdev-mirror",
                Some(
                    json!({"job-id": job, "device": node, "target": target, "sync": "full",
                    "auto-dismiss": false, "speed": speed_bytes_s}),
                ),
            )
            .await;
        if let Err(e) = started {
            let _ = s
                .execute("blockdev-del", Some(json!({ "node-name": target })))
                .await;
            return Err(e).context("starting the disk mirror");
        }
        Ok(Mirror {
            disk: disk.clone(),
            size_bytes: spec.size_mib * 1048576,
            job,
            log,
            samples: Vec::new(),
            synced_ns: None,
            mirrored_bytes: None,
        })
    }

    /// One `query-block-jobs` reading of the job, kept as a sample.
    async fn sample(&mut self, src: &QemuProcess) -> Result<Value> {
        let jobs = src
            .qmp()?
            .execute("query-block-jobs", None)
            .await
            .context("query-block-jobs on the source")?;
        let Some(j) = job_entry(&jobs, &self.job).cloned() else {
            bail!(
                "the disk mirror {} is gone from the source's block jobs",
                self.job
            );
        };
        self.samples.push(MirrorSample {
            host_ns: now_ns(),
            job: self.job.clone(),
            offset: j["offset"].as_u64().unwrap_or(0),
            len: j["len"].as_u64().unwrap_or(0),
            ready: j["ready"].as_bool().unwrap_or(false),
            actively_synced: j["actively-synced"].as_bool().unwrap_or(false),
        });
        if let Some(e) = j["error"].as_str() {
            bail!("the disk mirror {} failed: {e}", self.job);
        }
        Ok(j)
    }

    /// Polls until the mirror is ready (every 100 ms, or every second with
    /// qemu-server's progress lines), while the guest keeps writing.
    pub async fn wait_ready(
        &mut self,
        src: &QemuProcess,
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let t0 = Instant::now();
        let pace = if self.log.is_some() {
            PROXMOX_POLL
        } else {
            POLL
        };
        loop {
            let j = self.sample(src).await?;
            let ready = j["ready"].as_bool().unwrap_or(false);
            self.log_progress(&j, t0.elapsed());
            if ready {
                if let Some(l) = &self.log {
                    l.log(&L::AllJobsReady {
                        op: "mirror".into(),
                    });
                }
                return Ok(());
            }
            if cancel.load(Ordering::SeqCst) {
                bail!("interrupted while the disk mirror copied");
            }
            if t0.elapsed() > timeout {
                bail!(
                    "the disk mirror was not ready within {:.0} s (migration.timeout_s): {} of {} bytes copied",
                    timeout.as_secs_f64(),
                    j["offset"],
                    j["len"]
                );
            }
            tokio::time::sleep(pace).await;
        }
    }

    fn log_progress(&self, j: &Value, elapsed: Duration) {
        let Some(l) = &self.log else { return };
        let (done, total) = (
            j["offset"].as_u64().unwrap_or(0),
            j["len"].as_u64().unwrap_or(0),
        );
        let ready = j["ready"].as_bool().unwrap_or(false);
        l.plain(&L::MirrorProgress {
            job: self.job.clone(),
            transferred_bytes: done,
            total_bytes: total,
            percent: if total > 0 {
                (done as f64 * 10000.0 / total as f64).round() / 100.0
            } else {
                0.0
            },
            elapsed_s: Some(elapsed.as_secs()),
            state: if ready {
                MirrorState::Ready
            } else {
                MirrorState::NotReady
            },
        });
    }

    /// Step 3: `write-blocking`, until QEMU says the job is actively synced.
    pub async fn actively_sync(&mut self, src: &QemuProcess) -> Result<()> {
        if let Some(l) = &self.log {
            l.log(&L::SwitchingToActiveMode);
            l.log(&L::JobSwitchingToActiveMode {
                job: self.job.clone(),
            });
        }
        src.qmp()?
            .execute(
                "block-job-change",
                Some(json!({"id": self.job, "type": "mirror", "copy-mode": "write-blocking"})),
            )
            .await
            .context("switching the disk mirror to write-blocking")?;
        let t0 = Instant::now();
        loop {
            let j = self.sample(src).await?;
            if j["actively-synced"].as_bool().unwrap_or(false) {
                self.synced_ns = Some(now_ns());
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("the disk mirror did not become actively synced within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(l) = &self.log {
            l.log(&L::JobSwitchedToActiveMode {
                job: self.job.clone(),
            });
        }
        Ok(())
    }

    /// Step 5: the source is stopped; the ready mirror is completed at this
    /// point in time (`block-job-cancel`), awaited and dismissed.
    pub async fn complete(&mut self, src: &QemuProcess) -> Result<()> {
        if let Some(l) = &self.log {
            l.log(&L::BlockJobCompleting {
                job: self.job.clone(),
            });
        }
        let s = src.qmp()?;
        s.execute("block-job-cancel", Some(json!({ "device": self.job })))
            .await
            .context("completing the disk mirror (block-job-cancel)")?;
        let t0 = Instant::now();
        loop {
            let j = self.sample(src).await?;
            if j["status"] == "concluded" {
                self.mirrored_bytes = j["offset"].as_u64();
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("the disk mirror did not conclude within 30 s of block-job-cancel");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s.execute("job-dismiss", Some(json!({ "id": self.job })))
            .await
            .context("dismissing the disk mirror")?;
        if let Some(l) = &self.log {
            l.log(&L::BlockJobCompleted {
                job: self.job.clone(),
            });
            l.log(&L::BlockJobFinished {
                job: self.job.clone(),
                op: Some("mirror".into()),
            });
        }
        Ok(())
    }

    /// Step 6's first half: the destination's NBD server stops.
    pub async fn stop_nbd(&self, dst: &QemuProcess) -> Result<()> {
        if let Some(l) = &self.log {
            l.log(&L::StoppingNbd);
        }
        dst.qmp()?
            .execute("nbd-server-stop", None)
            .await
            .context("stopping the destination's NBD server")?;
        Ok(())
    }

    /// After a failed migration: the mirror is cancelled (the source keeps
    /// its disk) and its NBD node removed; best effort, the destination is
    /// going anyway.
    pub async fn abandon(&self, src: &QemuProcess) {
        let Ok(s) = src.qmp() else { return };
        let _ = s
            .execute(
                "block-job-cancel",
                Some(json!({"device": self.job, "force": true})),
            )
            .await;
        for _ in 0..100 {
            let jobs = s.execute("query-block-jobs", None).await;
            match jobs.as_ref().ok().and_then(|j| job_entry(j, &self.job)) {
                Some(j) if j["status"] == "concluded" => break,
                None => break,
                Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let _ = s
            .execute("job-dismiss", Some(json!({ "id": self.job })))
            .await;
        let target = format!("nbd-{}", self.disk.bus.drive());
        let _ = s
            .execute("blockdev-del", Some(json!({ "node-name": target })))
            .await;
    }

    /// What the record keeps of it.
    pub fn record(self, spec: &DiskSpec) -> StorageRecord {
        StorageRecord {
            storage: spec.storage.as_str().into(),
            disks: vec![DiskMirror {
                drive: self.disk.bus.drive().into(),
                bus: spec.bus.as_str().into(),
                format: spec.format.as_str().into(),
                size_bytes: self.size_bytes,
                job: Some(self.job),
                mirrored_bytes: self.mirrored_bytes,
            }],
            samples: self.samples,
            actively_synced_ns: self.synced_ns,
            cont_ns: None,
        }
    }
}

/// The record of a migration on shared storage: the disk, nothing copied.
pub fn shared_record(spec: &DiskSpec) -> StorageRecord {
    StorageRecord {
        storage: spec.storage.as_str().into(),
        disks: vec![DiskMirror {
            drive: spec.bus.drive().into(),
            bus: spec.bus.as_str().into(),
            format: spec.format.as_str().into(),
            size_bytes: spec.size_mib * 1048576,
            job: None,
            mirrored_bytes: None,
        }],
        samples: Vec::new(),
        actively_synced_ns: None,
        cont_ns: None,
    }
}

/// The first `len` bytes of a disk as the guest sees them, read from the
/// host while QEMU has the image open (`-U`: no lock taken): a raw image
/// directly, a qcow2 one through `qemu-img convert` into `scratch`.
pub fn read_image(path: &Path, disk: &DiskSpec, len: u64, scratch: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let read = |p: &Path| -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        std::fs::File::open(p)
            .with_context(|| format!("opening {}", p.display()))?
            .take(len)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {}", p.display()))?;
        Ok(buf)
    };
    if disk.format == DiskFormat::Raw {
        return read(path);
    }
    let tmp = scratch.join("disk-check.raw");
    super::tool::run(
        std::process::Command::new("qemu-img")
            .args(["convert", "-U", "-f", disk.format.as_str(), "-O", "raw"])
            .arg(path)
            .arg(&tmp),
        &format!("qemu-img convert {}", path.display()),
    )?;
    let data = read(&tmp);
    let _ = std::fs::remove_file(&tmp);
    data
}
