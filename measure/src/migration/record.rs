//! Raw records of a run, as stored in the bundle and re-read by analysis.
//!
//! Records are what was observed, nothing derived: summaries are computed
//! from them by [`crate::summary`].

use crate::migration::qmp::MigrationInfo;
use crate::migration::qmp::QmpEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a repetition ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RepStatus {
    /// QEMU reported `completed` and the destination resumed the guest.
    Completed,
    /// The migration failed, was cancelled, timed out, or a QEMU died.
    Failed,
    /// Stopped by the user (Ctrl-C) before it ended.
    Interrupted,
}

impl RepStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RepStatus::Completed => "completed",
            RepStatus::Failed => "failed",
            RepStatus::Interrupted => "interrupted",
        }
    }
}

/// One `query-migrate` sample of the source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// When the answer arrived (host CLOCK_REALTIME, ns).
    pub host_ns: i64,
    /// The lenient reading.
    pub info: MigrationInfo,
    /// The answer as QEMU sent it.
    pub raw: Value,
}

/// A QMP event and which side of the migration sent it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SideEvent {
    /// `source` or `destination`.
    pub side: String,
    /// `a` or `b`.
    pub node: String,
    /// The event.
    #[serde(flatten)]
    pub event: QmpEvent,
}

/// Everything recorded about one migration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MigrationRecord {
    /// 1-based repetition.
    pub repetition: u32,
    /// Node the VM left (`a` or `b`).
    pub source: String,
    /// Node it went to.
    pub destination: String,
    /// How it ended.
    pub status: RepStatus,
    /// Why it failed, for a person.
    pub error: Option<String>,
    /// When `migrate` was sent (host clock, ns).
    pub migrate_cmd_ns: Option<i64>,
    /// When the harness saw the end (host clock, ns).
    pub finished_ns: Option<i64>,
    /// The source's last `query-migrate` reading.
    pub final_info: Option<MigrationInfo>,
    /// Faults injected, as sentences with times.
    pub faults: Vec<String>,
    /// Whether the VM is gone (its only QEMU died).
    pub vm_lost: bool,
    /// QMP events of both sides during the migration.
    pub events: Vec<SideEvent>,
    /// `query-migrate` samples of the source.
    pub samples: Vec<Sample>,
}

/// A repetition: its migration and the window of probing around it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepRecord {
    /// 1-based.
    pub repetition: u32,
    /// Start of the repetition (the pause before), host ns.
    pub window_start_ns: i64,
    /// End of the repetition (the pause after), host ns.
    pub window_end_ns: i64,
    /// The migration.
    pub migration: MigrationRecord,
    /// What the guest agent said around it.
    #[serde(default)]
    pub guest: Option<GuestRecord>,
}

/// The guest agent's reports around one repetition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GuestRecord {
    /// The sweep parameter's value for this repetition, if the scenario sweeps.
    pub sweep_value: Option<toml::Value>,
    /// The agent's report just before the migration.
    pub before: Option<wire::control::AgentReport>,
    /// Its report after the pause that follows it.
    pub after: Option<wire::control::AgentReport>,
    /// The dirty workload's integrity check after the migration.
    pub integrity: Option<wire::control::IntegrityReport>,
    /// What could not be asked, and why.
    #[serde(default)]
    pub errors: Vec<String>,
}

impl MigrationRecord {
    /// The first event `name` from `side`.
    pub fn event(&self, side: &str, name: &str) -> Option<&SideEvent> {
        self.events
            .iter()
            .find(|e| e.side == side && e.event.event == name)
    }
}
