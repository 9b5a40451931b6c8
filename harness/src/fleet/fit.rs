//! Does the fleet fit the machine's memory? Refused before anything is
//! made, saying how much it needs.
//!
//! A VM in the lab is two QEMU processes: the one it runs in and the
//! destination waiting for it. Either can come to hold all the guest's
//! RAM (the guest may touch all of it; the destination receives every
//! page that is not zero), so each counts in full, plus what QEMU itself
//! takes. In `sequential` mode one member is up at a time, so the largest
//! member counts; in `evacuate` mode every member of a condition is up at
//! once.

use crate::scenario::{FleetMode, Member};
use anyhow::{bail, Context, Result};

/// What one QEMU process takes beside the guest's RAM (TCG's translation
/// cache, device state, the binary), MiB: a TCG lab QEMU was seen at
/// 150–230 MiB of its own.
pub const QEMU_OVERHEAD_MIB: u64 = 256;

/// Memory one member needs, MiB.
pub fn member_mib(m: &Member) -> u64 {
    2 * (m.scenario.vm.memory_mib + QEMU_OVERHEAD_MIB)
}

/// Memory the fleet needs at its peak, MiB.
pub fn needed_mib(members: &[Member], mode: FleetMode) -> u64 {
    match mode {
        FleetMode::Sequential => members.iter().map(member_mib).max().unwrap_or(0),
        FleetMode::Evacuate => {
            let mut by_condition: Vec<(&str, u64)> = Vec::new();
            for m in members {
                match by_condition.iter_mut().find(|(c, _)| *c == m.condition) {
                    Some((_, n)) => *n += member_mib(m),
                    None => by_condition.push((&m.condition, member_mib(m))),
                }
            }
            by_condition.iter().map(|(_, n)| *n).max().unwrap_or(0)
        }
    }
}

/// Refuses a fleet that needs more than `available_mib`.
pub fn check(members: &[Member], mode: FleetMode, available_mib: u64) -> Result<()> {
    let need = needed_mib(members, mode);
    if need <= available_mib {
        return Ok(());
    }
    let each: Vec<String> = members
        .iter()
        .map(|m| format!("{} {} MiB", m.id, m.scenario.vm.memory_mib))
        .collect();
    bail!(
        "the scenario's VMs do not fit this machine's memory: {} mode needs {need} MiB at once ({}; each VM twice, as the QEMU it runs in and the destination waiting for it, plus {QEMU_OVERHEAD_MIB} MiB per QEMU), and {available_mib} MiB is available (MemAvailable in /proc/meminfo); lower `vm.memory_mib`{}",
        mode.as_str(),
        each.join(", "),
        if mode == FleetMode::Evacuate {
            " or run them `sequential`"
        } else {
            ""
        }
    )
}

/// `MemAvailable` of `/proc/meminfo`, MiB.
pub fn available_mib() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    parse_available_mib(&text).context("no MemAvailable line in /proc/meminfo")
}

fn parse_available_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn fleet(mode: &str) -> Vec<Member> {
        let text = format!(
            "mode = \"{mode}\"\n[[vm]]\nname = \"a\"\nmemory_mib = 4096\n[[vm]]\nname = \"b\"\nmemory_mib = 2048\n[[condition]]\nname = \"idle\"\n[[condition]]\nname = \"busy\"\n"
        );
        Scenario::parse(&text, "f.toml")
            .map(|s| s.members())
            .unwrap_or_default()
    }

    #[test]
    fn sequential_needs_its_largest_member_and_evacuate_a_whole_condition() {
        let seq = fleet("sequential");
        assert_eq!(seq.len(), 4);
        assert_eq!(needed_mib(&seq, FleetMode::Sequential), 2 * (4096 + 256));
        let evac = fleet("evacuate");
        assert_eq!(
            needed_mib(&evac, FleetMode::Evacuate),
            2 * (4096 + 256) + 2 * (2048 + 256)
        );
    }

    #[test]
    fn a_fleet_too_large_is_refused_saying_what_it_needs() {
        let evac = fleet("evacuate");
        let e = check(&evac, FleetMode::Evacuate, 10_000)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("needs 13312 MiB"), "{e}");
        assert!(e.contains("10000 MiB is available"), "{e}");
        assert!(e.contains("a-idle 4096 MiB"), "{e}");
        assert!(check(&evac, FleetMode::Evacuate, 13_312).is_ok());
    }

    #[test]
    fn meminfo_is_read() {
        let text = "MemTotal:       24683520 kB\nMemFree:        24580000 kB\nMemAvailable:   24477376 kB\n";
        assert_eq!(parse_available_mib(text), Some(23903));
        assert_eq!(parse_available_mib("MemTotal: 1 kB\n"), None);
    }
}
