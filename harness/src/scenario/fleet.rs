//! Several VMs in one scenario: `[[vm]]` entries instead of one `[vm]`,
//! `[[condition]]` tables (the study's idle and streaming), and `mode`
//! (one after another, or a node evacuated at once).
//!
//! A scenario with several VMs or conditions is a *fleet*: it runs as one
//! *member* per condition and VM, each a plain one-VM scenario
//! ([`Scenario::members`]) measured into its own bundle under the fleet's.
//! So every measure keeps its one definition: a member's bundle is the
//! bundle a one-VM run writes.

use super::{Scenario, VmSpec, WorkloadSpec};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The scenario's VMs: one (`[vm]`) or several (`[[vm]]`). Never empty;
/// it dereferences to the first VM, which is the VM of a one-VM scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Vms {
    list: Vec<VmSpec>,
    /// Written as `[[vm]]` (an array), even with one entry.
    many: bool,
}

impl Vms {
    /// One VM, as `[vm]`.
    pub fn one(vm: VmSpec) -> Vms {
        Vms {
            list: vec![vm],
            many: false,
        }
    }

    /// Every VM, in the file's order.
    pub fn iter(&self) -> impl Iterator<Item = &VmSpec> {
        self.list.iter()
    }

    /// Every VM, to change (e.g. a command line's `--kernel` for all).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut VmSpec> {
        self.list.iter_mut()
    }

    /// How many (at least one).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Never: a scenario has at least one VM.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether the file used `[[vm]]`.
    pub fn is_list(&self) -> bool {
        self.many
    }
}

impl Default for Vms {
    fn default() -> Self {
        Vms::one(VmSpec::default())
    }
}

impl std::ops::Deref for Vms {
    type Target = VmSpec;
    fn deref(&self) -> &VmSpec {
        // `list` is never empty: every constructor puts one in, and the
        // reader refuses an empty array.
        &self.list[0]
    }
}

impl std::ops::DerefMut for Vms {
    fn deref_mut(&mut self) -> &mut VmSpec {
        &mut self.list[0]
    }
}

impl Serialize for Vms {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.many {
            self.list.serialize(s)
        } else {
            self.list[0].serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Vms {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Vms, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vms;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a `[vm]` table or `[[vm]]` entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Vms, A::Error> {
                VmSpec::deserialize(serde::de::value::MapAccessDeserializer::new(m)).map(Vms::one)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Vms, A::Error> {
                let list =
                    Vec::<VmSpec>::deserialize(serde::de::value::SeqAccessDeserializer::new(s))?;
                if list.is_empty() {
                    return Err(serde::de::Error::custom(
                        "`vm` is an empty list: give at least one `[[vm]]`",
                    ));
                }
                Ok(Vms { list, many: true })
            }
        }
        d.deserialize_any(V)
    }
}

/// One condition of a matrix (`[[condition]]`): a name, and the workloads
/// every VM runs under it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Condition {
    /// Short name (`idle`, `streaming`), part of each member's name.
    pub name: String,
    /// The workloads; when given, they replace the VM's and the
    /// scenario's (an empty `[condition.workload]` is an idle guest).
    pub workload: Option<WorkloadSpec>,
}

/// How a fleet's VMs are migrated.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FleetMode {
    /// One VM after another, each alone on the nodes for its repetitions
    /// (as the study did).
    #[default]
    Sequential,
    /// Every VM up at once; each repetition migrates them all together
    /// (node A emptied onto node B, then back), competing for the link.
    Evacuate,
}

impl FleetMode {
    /// As written in the scenario.
    pub fn as_str(self) -> &'static str {
        match self {
            FleetMode::Sequential => "sequential",
            FleetMode::Evacuate => "evacuate",
        }
    }
}

/// One member of a fleet: a VM under a condition, as a one-VM scenario.
#[derive(Debug, Clone)]
pub struct Member {
    /// `<vm>` or `<vm>-<condition>`: its bundle's folder under `vms/`.
    pub id: String,
    /// The VM's name.
    pub vm: String,
    /// The condition's name (empty without conditions).
    pub condition: String,
    /// Its position among the VMs (the lab's tap, address and ports).
    pub index: usize,
    /// The one-VM scenario it runs.
    pub scenario: Scenario,
}

impl Scenario {
    /// Whether the scenario runs as a fleet (several VMs or conditions).
    pub fn is_fleet(&self) -> bool {
        self.vm.is_list() || !self.condition.is_empty()
    }

    /// The fleet's members: each condition (in order) × each VM (in
    /// order), as one-VM scenarios. A scenario that is no fleet is its one
    /// member.
    pub fn members(&self) -> Vec<Member> {
        let none = [Condition::default()];
        let conditions: &[Condition] = if self.condition.is_empty() {
            &none
        } else {
            &self.condition
        };
        let mut out = Vec::new();
        for c in conditions {
            for (index, vm) in self.vm.iter().enumerate() {
                let mut s = self.clone();
                s.workload = c
                    .workload
                    .clone()
                    .or_else(|| vm.workload.clone())
                    .unwrap_or_else(|| self.workload.clone());
                let mut one = vm.clone();
                one.workload = None;
                s.vm = Vms::one(one);
                s.condition = Vec::new();
                // How members run together is the fleet's, not theirs.
                s.mode = FleetMode::default();
                let id = if c.name.is_empty() {
                    vm.name.clone()
                } else {
                    format!("{}-{}", vm.name, c.name)
                };
                s.name = format!("{}/{id}", self.name);
                out.push(Member {
                    id,
                    vm: vm.name.clone(),
                    condition: c.name.clone(),
                    index,
                    scenario: s,
                });
            }
        }
        out
    }

    /// The fleet's own rules: names that make folders, unique; what a
    /// fleet cannot do yet.
    pub(super) fn check_fleet(&self) -> Result<(), String> {
        let names = |what: &str, list: Vec<&str>| -> Result<(), String> {
            for (i, n) in list.iter().enumerate() {
                if n.is_empty()
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(format!("`{what}[{}].name` = {n:?}: give each a name of letters, digits, `-` and `_` (it names a folder)", i + 1));
                }
                if list[..i].contains(n) {
                    return Err(format!("`{what}.name` = {n:?} is given twice"));
                }
            }
            Ok(())
        };
        if self.vm.is_list() {
            names("vm", self.vm.iter().map(|v| v.name.as_str()).collect())?;
        }
        if !self.condition.is_empty() {
            names(
                "condition",
                self.condition.iter().map(|c| c.name.as_str()).collect(),
            )?;
        }
        if !self.is_fleet() {
            if self.vm.workload.is_some() {
                return Err(
                    "`vm.workload`: with one `[vm]`, write the workloads as `[workload]`".into(),
                );
            }
            if self.mode != FleetMode::Sequential {
                return Err(format!(
                    "`mode` = {:?} migrates several VMs: give them as `[[vm]]`",
                    self.mode.as_str()
                ));
            }
            return Ok(());
        }
        let refuse = |key: &str, why: &str| {
            Err(format!(
                "`{key}` cannot be used with several VMs or conditions yet: {why}"
            ))
        };
        if self.sweep.is_some() {
            return refuse("sweep", "run the sweep once per VM");
        }
        if !self.fault.is_empty() {
            return refuse("fault", "a fault names a repetition of one VM");
        }
        if self.backend.kind != super::BackendKind::Local {
            return Err(format!(
                "`vm`: several VMs or conditions run in the local lab only; the {} backend migrates one VM per run",
                self.backend.kind.as_str()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUDY: &str = r#"
name = "s"
mode = "evacuate"
[[vm]]
name = "centos"
memory_mib = 512
nic = "e1000"
[vm.disk]
bus = "scsi"
[[vm]]
name = "ubuntu"
[vm.workload.dirty]
working_set_mib = 32
rate_mib_s = 8
[[condition]]
name = "idle"
[[condition]]
name = "streaming"
[condition.workload.rtp]
"#;

    #[test]
    fn vms_times_conditions_make_one_vm_members() {
        let s = Scenario::parse(STUDY, "s.toml").unwrap();
        assert!(s.is_fleet());
        let m = s.members();
        let ids: Vec<&str> = m.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "centos-idle",
                "ubuntu-idle",
                "centos-streaming",
                "ubuntu-streaming"
            ]
        );
        assert_eq!(m[0].scenario.vm.memory_mib, 512);
        assert!(m[0].scenario.vm.disk.is_some());
        // The VM's own workload, unless the condition gives one.
        assert!(m[1].scenario.workload.dirty.is_some());
        assert!(m[3].scenario.workload.rtp.is_some() && m[3].scenario.workload.dirty.is_none());
        assert_eq!((m[1].index, m[3].index), (1, 1));
        assert!(m.iter().all(|m| !m.scenario.is_fleet()));
        // What a bundle stores reads back the same.
        let again = Scenario::parse(&s.resolved_toml(), "r.toml").unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn fleet_mistakes_are_named() {
        let e = |t: &str| Scenario::parse(t, "f.toml").unwrap_err().to_string();
        let twice = e("[[vm]]\nname = \"a\"\n[[vm]]\nname = \"a\"\n");
        assert!(
            twice.contains("`vm.name` = \"a\" is given twice"),
            "{twice}"
        );
        let slash = e("[[vm]]\nname = \"a/b\"\n");
        assert!(slash.contains("`vm[1].name`"), "{slash}");
        let typo = e("[[vm]]\nname = \"a\"\nmemroy_mib = 1\n");
        assert!(
            typo.starts_with("f.toml:3:") && typo.contains("memroy_mib"),
            "{typo}"
        );
        let one = e("mode = \"evacuate\"\n[vm]\nmemory_mib = 256\n");
        assert!(one.contains("`mode`"), "{one}");
        let sweep =
            e("[[vm]]\nname = \"a\"\n[sweep]\nparameter = \"probe.rate_hz\"\nvalues = [10]\n");
        assert!(sweep.contains("`sweep`"), "{sweep}");
        let small = e("[[vm]]\nname = \"a\"\n[[vm]]\nname = \"b\"\nmemory_mib = 8\n");
        assert!(
            small.contains("VM \"b\"") && small.contains("vm.memory_mib"),
            "{small}"
        );
        let empty = e("vm = []\n");
        assert!(empty.contains("empty"), "{empty}");
    }
}
