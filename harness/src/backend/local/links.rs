//! The lab's shaped links (`[link.migration]`, `[link.client]`): a delay
//! line each in the WAN namespace, started before the guest boots,
//! restarted when a sweep point changes the shape, and read for each
//! migration's record.

use super::lab::delayline::{DelayLine, LinkShape, LinkStats};
use super::lab::topology::{WAN_CLIENT, WAN_MIGRATION};
use super::lab::{Lab, Wan};
use crate::scenario::link::Links;
use anyhow::{Context, Result};
use measure::migration::record::{LinkBin, LinkRecord};
use std::sync::{Arc, Mutex, MutexGuard};

/// One running delay line and the shape it applies.
struct Line {
    name: &'static str,
    shape: LinkShape,
    line: DelayLine,
}

/// The lab's delay lines: one set per lab, shared by every VM on it (a
/// fleet's VMs compete for the same shaped link). Clones are handles to
/// the same lines; the lines stop with [`ShapedLinks::stop`] on the last
/// handle, or when the last handle is dropped.
#[derive(Clone)]
pub struct ShapedLinks {
    wan_ns: String,
    wan: Wan,
    lines: Arc<Mutex<Vec<Line>>>,
}

impl ShapedLinks {
    /// None yet; the lab's topology says which links can be shaped.
    pub fn new(lab: &Lab) -> ShapedLinks {
        ShapedLinks {
            wan_ns: lab.wan_ns(),
            wan: lab.wan,
            lines: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The lines, also after a thread that held them panicked (a line's
    /// state is its threads' and counters', never half-written here).
    fn lines(&self) -> MutexGuard<'_, Vec<Line>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the running lines match `links` (a link the scenario leaves
    /// unshaped but the lab routes through the WAN gets a transparent line).
    pub fn apply(&self, links: &Links) -> Result<()> {
        let wanted = [
            (
                self.wan.migration,
                "migration",
                links.migration,
                WAN_MIGRATION,
                1u64,
            ),
            (self.wan.client, "client", links.client, WAN_CLIENT, 2u64),
        ];
        let mut lines = self.lines();
        for (routed, name, shape, (a, b), seed) in wanted {
            if !routed {
                continue;
            }
            let shape = shape.unwrap_or_default();
            if lines.iter().any(|l| l.name == name && l.shape == shape) {
                continue;
            }
            if let Some(i) = lines.iter().position(|l| l.name == name) {
                lines.remove(i).line.stop();
            }
            let line = DelayLine::start(&self.wan_ns, a, b, shape, seed)
                .with_context(|| format!("starting the {name} link's delay line"))?;
            lines.push(Line { name, shape, line });
        }
        Ok(())
    }

    /// The migration link's rate, Mbit/s, when it has one.
    pub fn migration_rate(&self) -> Option<f64> {
        self.lines()
            .iter()
            .find(|l| l.name == "migration")
            .and_then(|l| l.shape.rate_mbit)
    }

    /// What each link carried between `from_ns` and `to_ns` (host clock):
    /// everything on it, every VM's traffic when several share the lab.
    pub fn record(&self, from_ns: i64, to_ns: i64, qemu_limit_mbit: f64) -> Vec<LinkRecord> {
        self.lines()
            .iter()
            .map(|l| one_record(l, &l.line.stats(), from_ns, to_ns, qemu_limit_mbit))
            .collect()
    }

    /// Every line's whole record so far, by link name.
    pub fn stats(&self) -> Vec<(&'static str, LinkStats)> {
        self.lines()
            .iter()
            .map(|l| (l.name, l.line.stats()))
            .collect()
    }

    /// Stops every line, when no other VM on the lab holds them.
    pub fn stop(&mut self) {
        if Arc::strong_count(&self.lines) > 1 {
            return;
        }
        for l in self.lines().drain(..) {
            l.line.stop();
        }
    }
}

fn one_record(
    l: &Line,
    s: &LinkStats,
    from_ns: i64,
    to_ns: i64,
    qemu_limit_mbit: f64,
) -> LinkRecord {
    let bin = s.bin_ns as i64;
    let within = |start: i64| start + bin > from_ns && start < to_ns;
    let mut bins: Vec<LinkBin> = s
        .a_to_b
        .bins
        .iter()
        .filter(|b| within(b.start_real_ns))
        .map(|b| LinkBin {
            start_ns: b.start_real_ns,
            a_to_b: b.bytes,
            b_to_a: 0,
        })
        .collect();
    for b in s.b_to_a.bins.iter().filter(|b| within(b.start_real_ns)) {
        match bins.iter_mut().find(|x| x.start_ns == b.start_real_ns) {
            Some(x) => x.b_to_a = b.bytes,
            None => bins.push(LinkBin {
                start_ns: b.start_real_ns,
                a_to_b: 0,
                b_to_a: b.bytes,
            }),
        }
    }
    bins.sort_by_key(|b| b.start_ns);
    let dropped = |d: &super::lab::delayline::DirectionStats| {
        d.dropped_loss + d.dropped_queue + d.dropped_overrun + d.dropped_kernel + d.dropped_error
    };
    LinkRecord {
        link: l.name.into(),
        rate_mbit: l.shape.rate_mbit,
        delay_ms: l.shape.delay_ms,
        jitter_ms: l.shape.jitter_ms,
        loss_pct: l.shape.loss_pct,
        qemu_limit_mbit: (l.name == "migration").then_some(qemu_limit_mbit),
        bin_ns: bin,
        bins,
        // Counters are cumulative: the drops of the whole run so far.
        dropped_frames: dropped(&s.a_to_b) + dropped(&s.b_to_a),
    }
}
