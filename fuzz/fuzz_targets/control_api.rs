//! Fuzz target: the JSON request bodies of the guest agent's control API
//! (`PUT /v1/workloads/{name}`: `wire::control::WorkloadSpec`) and of the
//! client probe's API (`POST /v1/probe/start`:
//! `client_probe::serve::StartRequest`), and the agent's answers the
//! harness reads back (`WorkloadReport`, `AgentReport`, `IntegrityReport`,
//! `Health`, `ApiError`). Whatever deserializes must serialize, and
//! deserialize again to an equal value that serializes to the same text.
#![no_main]

use client_probe::serve::StartRequest;
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use wire::control::{AgentReport, ApiError, Health, IntegrityReport, WorkloadReport, WorkloadSpec};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let text = serde_json::to_string(&v).expect("what parsed serializes");
    let back: T = match serde_json::from_str(&text) {
        Ok(b) => b,
        Err(e) => panic!("{text} does not parse back: {e}"),
    };
    assert_eq!(back, v, "round trip through {text}");
    assert_eq!(serde_json::to_string(&back).expect("serializes"), text);
}

fuzz_target!(|data: &[u8]| {
    round_trip::<WorkloadSpec>(data);
    round_trip::<StartRequest>(data);
    round_trip::<WorkloadReport>(data);
    round_trip::<AgentReport>(data);
    round_trip::<IntegrityReport>(data);
    round_trip::<Health>(data);
    round_trip::<ApiError>(data);
});
