//! One migration between the lab's libvirt daemons, and a timed pause.
//!
//! `virsh migrate --live --p2p --persistent` runs on the source daemon
//! while the harness polls the source QEMU's `query-migrate` through the
//! daemon (`qemu-monitor-command`: QEMU's own figures, and the live line).
//! Afterwards the record gathers QEMU's events from both daemons (µs
//! stamps: STOP, RESUME, passes), libvirt's domain events, and
//! `domjobinfo --completed` from both sides (libvirt's downtime).

use super::{ensure_running, Cluster, NodeDaemon, VIRSH_DEADLINE};
use crate::backend::local::progress_line;
use crate::backend::MigrationRequest;
use crate::clock::now_ns;
use crate::live::Live;
use crate::scenario::disk::{DiskSpec, DiskStorage};
use anyhow::{bail, Context, Result};
use measure::migration::qmp::MigrationInfo;
use measure::migration::record::{MigrationRecord, RepStatus, Sample, SideEvent, StorageRecord};
use measure::platform::libvirt::{parse_events, parse_job_stats, parse_qemu_event, platform_stats};
use serde_json::{json, Value};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the source QEMU is asked `query-migrate` through its daemon
/// (each ask is a `virsh` process: ~25 ms here).
const POLL: Duration = Duration::from_millis(100);

/// Where each watcher stood before the migration.
struct Marks {
    events: [usize; 2],
    qemu: [usize; 2],
}

/// Migrates the domain to the other node and records what was seen.
/// A failed migration is recorded, not returned; `Err` means the backend
/// broke (a daemon does not answer, the domain is gone).
pub(super) async fn one(
    b: &Cluster,
    req: &MigrationRequest<'_>,
    live: &Live,
) -> Result<MigrationRecord> {
    let (src_node, dst_node) = (b.on, b.on.other());
    let (src, dst) = (b.node(src_node)?, b.node(dst_node)?);
    ensure_running(&src.virsh, &b.domain, src_node).await?;
    let mut rec = MigrationRecord::starting(req.repetition, src_node.letter(), dst_node.letter());
    let marks = Marks {
        events: [src.events.count(), dst.events.count()],
        qemu: [src.qemu_events.count(), dst.qemu_events.count()],
    };
    let limit = b.scenario.migration.downtime_limit_ms.to_string();
    src.virsh
        .run(
            &["migrate-setmaxdowntime", &b.domain, &limit],
            VIRSH_DEADLINE,
        )
        .await
        .context("setting the downtime limit")?;
    let outcome = run_migrate(b, src, dst, &mut rec, req, live).await;
    rec.finished_ns = Some(now_ns());
    match outcome {
        Ok(()) => {
            if let Err(e) = wait_resumed(b, dst, marks.qemu[1]).await {
                rec.error = Some(format!("{e:#}"));
            } else {
                rec.status = RepStatus::Completed;
            }
        }
        Err(e) => {
            if rec.status != RepStatus::Interrupted {
                rec.status = RepStatus::Failed;
            }
            rec.error.get_or_insert(format!("{e:#}"));
        }
    }
    gather(b, src, dst, &marks, &mut rec).await;
    Ok(rec)
}

/// The `virsh migrate` arguments: to the destination daemon as the
/// source daemon reaches it (`--p2p`), QEMU's stream where the node says.
fn migrate_args(b: &Cluster, dst: &NodeDaemon) -> Vec<String> {
    let bandwidth = b.scenario.migration.max_bandwidth_mib_s.ceil().max(1.0) as u64;
    let mut args: Vec<String> = [
        "migrate",
        "--live",
        "--p2p",
        "--persistent",
        &b.domain,
        &dst.peer_uri,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(m) = &dst.migrate_uri {
        args.extend(["--migrateuri".to_string(), m.clone()]);
    }
    if b.scenario
        .vm
        .disk
        .as_ref()
        .is_some_and(|d| d.storage == DiskStorage::Local)
    {
        // libvirt's NBD mirror of every disk onto the destination's image,
        // over the same way as QEMU's stream (a UNIX socket beside the
        // migration's when that is the transport).
        args.push("--copy-storage-all".into());
        if let Some(sock) = dst
            .migrate_uri
            .as_deref()
            .and_then(|u| u.strip_prefix("unix://"))
        {
            args.extend(["--disks-uri".into(), format!("unix://{sock}.nbd")]);
        }
    }
    args.extend(["--bandwidth".to_string(), bandwidth.to_string()]);
    args
}

/// Runs `virsh migrate` and polls the source until it returns; cancels
/// (`domjobabort`) on the user's request or after `migration.timeout_s`.
async fn run_migrate(
    b: &Cluster,
    src: &NodeDaemon,
    dst: &NodeDaemon,
    rec: &mut MigrationRecord,
    req: &MigrationRequest<'_>,
    live: &Live,
) -> Result<()> {
    let args = migrate_args(b, dst);
    let mut cmd = tokio::process::Command::new("virsh");
    cmd.args(["-q", "-c", &src.virsh.uri])
        .args(&args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    rec.migrate_cmd_ns = Some(now_ns());
    let t0 = tokio::time::Instant::now();
    let mut run = Box::pin(cmd.output());
    let timeout = Duration::from_secs_f64(b.scenario.migration.timeout_s);
    let mut aborted = false;
    let out = loop {
        tokio::select! {
            out = &mut run => break out.context("cannot run `virsh migrate`")?,
            () = tokio::time::sleep(poll_pause(rec)) => {}
        }
        if let Some(s) = poll_source(b, src).await.filter(|s| belongs(rec, s)) {
            live.update(&progress_line(
                req.repetition,
                req.of,
                rec,
                &s.info,
                (req.status_suffix)(),
            ));
            rec.samples.push(s);
        }
        let cancel = req.cancel.load(Ordering::SeqCst);
        if (cancel || t0.elapsed() > timeout) && !aborted {
            aborted = true;
            if cancel {
                rec.status = RepStatus::Interrupted;
                rec.error = Some("interrupted; migration aborted (virsh domjobabort)".into());
            } else {
                rec.error = Some(format!(
                    "the migration did not finish within {:.0} s (migration.timeout_s); aborted (virsh domjobabort)",
                    timeout.as_secs_f64()
                ));
            }
            let _ = src
                .virsh
                .run(&["domjobabort", &b.domain], VIRSH_DEADLINE)
                .await;
        }
    };
    rec.final_info = rec.samples.last().map(|s| s.info.clone());
    if !out.status.success() {
        bail!(
            "`virsh migrate` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The pause before the next `query-migrate`: none once the source has
/// stopped the guest, so the final reading (with QEMU's `downtime`) has a
/// chance before libvirt ends the source.
fn poll_pause(rec: &MigrationRecord) -> Duration {
    let last = rec.samples.last().and_then(|s| s.info.status.as_deref());
    match last {
        Some("pre-switchover" | "device") => Duration::ZERO,
        _ => POLL,
    }
}

/// Whether a reading is of this migration: a source that was itself the
/// last migration's destination still answers `completed` (for the
/// incoming one) until this one starts.
fn belongs(rec: &MigrationRecord, s: &Sample) -> bool {
    let started = !rec.samples.is_empty();
    started || s.info.status.as_deref() != Some("completed")
}

/// One `query-migrate` of the source QEMU through its daemon; `None` once
/// the source has gone (libvirt ends it after the switchover).
async fn poll_source(b: &Cluster, src: &NodeDaemon) -> Option<Sample> {
    let q = r#"{"execute":"query-migrate"}"#;
    let text = src
        .virsh
        .run(
            &["qemu-monitor-command", &b.domain, q],
            Duration::from_secs(5),
        )
        .await
        .ok()?;
    let reply: Value = serde_json::from_str(text.trim()).ok()?;
    let raw = reply.get("return")?.clone();
    Some(Sample {
        host_ns: now_ns(),
        info: MigrationInfo::from_value(&raw),
        raw,
    })
}

/// Waits (10 s at most) for the destination QEMU's RESUME.
async fn wait_resumed(b: &Cluster, dst: &NodeDaemon, from: usize) -> Result<()> {
    for _ in 0..200 {
        let resumed = dst.qemu_events.since(from).iter().any(|l| {
            parse_qemu_event(&l.text, l.host_rx_ns)
                .is_some_and(|(d, e)| d == b.domain && e.event == "RESUME")
        });
        if resumed {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "virsh reported the migration done, but the destination QEMU (node-{}) sent no RESUME within 10 s",
        dst.node.letter()
    )
}

/// QEMU's events, libvirt's events and both sides' completed-job
/// statistics into the record; markers and QEMU's figures from them.
async fn gather(
    b: &Cluster,
    src: &NodeDaemon,
    dst: &NodeDaemon,
    marks: &Marks,
    rec: &mut MigrationRecord,
) {
    for (i, (n, side)) in [(src, "source"), (dst, "destination")]
        .into_iter()
        .enumerate()
    {
        rec.events.extend(qemu_events(b, n, side, marks.qemu[i]));
    }
    rec.events
        .sort_by_key(|e| e.event.qemu_ts_ns.unwrap_or(e.event.host_rx_ns));
    let dst_job = job_stats(b, dst).await;
    let src_job = job_stats(b, src).await;
    let domain_events: Vec<Value> = [(src, marks.events[0]), (dst, marks.events[1])]
        .into_iter()
        .map(|(n, from)| {
            let text: Vec<String> = n.events.since(from).into_iter().map(|l| l.text).collect();
            let parsed = parse_events(&text.join("\n"));
            json!({ "node": n.node.letter(), "events": parsed })
        })
        .collect();
    let ok = |r: &Result<_, String>| r.as_ref().ok().cloned();
    rec.platform = Some(platform_stats(ok(&src_job).as_ref(), ok(&dst_job).as_ref()));
    rec.platform_raw = Some(json!({
        "source_jobinfo": raw_or_error(&src_job),
        "destination_jobinfo": raw_or_error(&dst_job),
        "domain_events": domain_events,
    }));
    rec.storage = b
        .scenario
        .vm
        .disk
        .as_ref()
        .map(|d| storage_record(d, &rec.events));
    measure::migration::from_qmp::complete(rec);
    fill_qemu_downtime(rec);
}

/// The disk as libvirt moved it: its mirror's job and what it copied,
/// from the source QEMU's block-job events (libvirt names the job
/// `drive-<alias>`).
fn storage_record(d: &DiskSpec, events: &[SideEvent]) -> StorageRecord {
    let mut r = crate::backend::local::storage::shared_record(d);
    if d.storage == DiskStorage::Local {
        let done = events
            .iter()
            .rfind(|e| e.side == "source" && e.event.event == "BLOCK_JOB_COMPLETED");
        if let Some(m) = r.disks.first_mut() {
            m.job = done.and_then(|e| e.event.data["device"].as_str().map(str::to_string));
            m.mirrored_bytes = done.and_then(|e| e.event.data["offset"].as_u64());
        }
    }
    r
}

/// libvirt ends the source QEMU some 25 ms after it completes, often
/// before a `query-migrate` through the daemon can read its final
/// `downtime`; then the downtime is read off QEMU's own events instead,
/// and the record says so.
fn fill_qemu_downtime(rec: &mut MigrationRecord) {
    let Some(h) = rec.hypervisor.as_mut() else {
        return;
    };
    if h.downtime_ms.is_some() {
        return;
    }
    if let Some(d) = measure::migration::from_qmp::downtime_from_events(&rec.events) {
        h.downtime_ms = Some(d);
        h.downtime_note = Some(
            "from QEMU's events (source STOP to source MIGRATION completed): libvirt ended the source QEMU before its final query-migrate could be read".into(),
        );
    }
}

fn raw_or_error(r: &Result<measure::platform::libvirt::JobStats, String>) -> Value {
    match r {
        Ok(s) => json!(s),
        Err(e) => json!({ "error": e }),
    }
}

fn qemu_events(b: &Cluster, n: &NodeDaemon, side: &str, from: usize) -> Vec<SideEvent> {
    n.qemu_events
        .since(from)
        .iter()
        .filter_map(|l| parse_qemu_event(&l.text, l.host_rx_ns))
        .filter(|(d, _)| *d == b.domain)
        .map(|(_, event)| SideEvent {
            side: side.into(),
            node: n.node.letter().into(),
            event,
        })
        .collect()
}

/// `domjobinfo --completed --keep-completed --rawstats` on one daemon.
async fn job_stats(
    b: &Cluster,
    n: &NodeDaemon,
) -> Result<measure::platform::libvirt::JobStats, String> {
    let args = [
        "domjobinfo",
        "--completed",
        "--keep-completed",
        "--rawstats",
        &b.domain,
    ];
    let text = n
        .virsh
        .run(&args, VIRSH_DEADLINE)
        .await
        .map_err(|e| format!("{e:#}"))?;
    parse_job_stats(&text).map_err(|e| format!("node-{}: {e}", n.node.letter()))
}

/// Pauses the guest with `virsh suspend` for `d` from QEMU's STOP, then
/// `virsh resume`; returns QEMU's STOP and RESUME stamps.
pub(super) async fn pause(b: &Cluster, d: Duration) -> Result<(i64, i64)> {
    let n = b.node(b.on)?;
    let from = n.qemu_events.count();
    n.virsh.run(&["suspend", &b.domain], VIRSH_DEADLINE).await?;
    let stop = wait_event(b, n, "STOP", from).await?;
    let left = stop + d.as_nanos() as i64 - now_ns();
    if left > 0 {
        tokio::time::sleep(Duration::from_nanos(left as u64)).await;
    }
    let from = n.qemu_events.count();
    n.virsh.run(&["resume", &b.domain], VIRSH_DEADLINE).await?;
    let resume = wait_event(b, n, "RESUME", from).await?;
    Ok((stop, resume))
}

async fn wait_event(b: &Cluster, n: &NodeDaemon, name: &str, from: usize) -> Result<i64> {
    for _ in 0..100 {
        let found = n.qemu_events.since(from).iter().find_map(|l| {
            let (d, e) = parse_qemu_event(&l.text, l.host_rx_ns)?;
            (d == b.domain && e.event == name).then(|| e.qemu_ts_ns.unwrap_or(e.host_rx_ns))
        });
        if let Some(t) = found {
            return Ok(t);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "QEMU on node-{} sent no {name} event within 5 s",
        n.node.letter()
    )
}
