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
//! | `DELETE /v1/workloads/{name}` | | [`WorkloadReport`] (final) |
//! | `GET /v1/report` | | [`AgentReport`] |
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
}

/// A workload the harness asks the agent to run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkloadSpec {
    /// Dirty memory: write to distinct 4 KiB pages of a working set at a
    /// paced rate.
    Dirty {
        /// Working set in MiB, pre-touched with non-zero data.
        working_set_mib: u64,
        /// Target rate in MiB/s of distinct pages made dirty; 0 means as
        /// fast as possible.
        rate_mib_s: f64,
    },
    /// Run a program: `argv[0]` is its absolute path in the guest, the
    /// rest its arguments. Its stdout and stderr go to `/tmp/<name>.log`
    /// in the guest. The report says `running` while it runs, `stopped`
    /// once it exited with status 0 or was ended by `DELETE` (SIGTERM,
    /// then SIGKILL after 1 s), `failed` (with its exit status in `error`)
    /// otherwise. A program that cannot be started is refused with 400.
    Command {
        /// The program and its arguments; at least the program.
        argv: Vec<String>,
    },
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
    /// 4 KiB pages written.
    pub pages_written: u64,
    /// Mean achieved rate, MiB/s of pages written.
    pub achieved_mib_s: f64,
    /// Achieved MiB/s in each whole second since start.
    pub per_second_mib_s: Vec<f64>,
    /// The error, when `state` is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

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

/// The answer to `GET /v1/report`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentReport {
    /// Same as [`Health`].
    pub health: Health,
    /// The reflector's counters.
    pub reflector: ReflectorStats,
    /// Every workload started since boot, by name.
    pub workloads: BTreeMap<String, WorkloadReport>,
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
        assert_eq!(
            s,
            WorkloadSpec::Dirty {
                working_set_mib: 64,
                rate_mib_s: 8.0
            }
        );
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
}
