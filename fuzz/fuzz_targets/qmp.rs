//! Fuzz target: the lenient QMP readings (`measure::migration::qmp`) on
//! JSON from the input: `MigrationInfo::from_value` on the value and on its
//! `return` member, `event_timestamp_ns`, and serde's `QmpEvent`.
//! Never a panic; a reading survives a JSON round trip; a timestamp is
//! exactly `seconds * 10^9 + microseconds * 1000` whenever that fits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use measure::migration::qmp::{event_timestamp_ns, MigrationInfo, QmpEvent};
use serde_json::Value;

fn int(v: &Value) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(|u| i128::from(u as i64)))
        .or_else(|| v.as_f64().map(|x| i128::from(x as i64)))
}

fn check_info(v: &Value) {
    let m = MigrationInfo::from_value(v);
    assert_eq!(m.status.as_deref(), v.get("status").and_then(Value::as_str));
    assert_eq!(m.ram.is_some(), v.get("ram").is_some_and(Value::is_object));
    let text = serde_json::to_string(&m).expect("a reading serializes");
    let back: MigrationInfo = serde_json::from_str(&text).expect("and reads back");
    assert_eq!(back, m);
    let _ = m.is_finished();
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        check_info(&v);
        if let Some(r) = v.get("return") {
            check_info(r);
        }
        let ts = event_timestamp_ns(&v);
        let want = v.get("timestamp").and_then(|t| {
            let s = int(t.get("seconds")?)?;
            let us = int(t.get("microseconds")?)?;
            i64::try_from(s * 1_000_000_000 + us * 1000).ok()
        });
        assert_eq!(ts, want, "event_timestamp_ns of {v}");
    }
    if let Ok(e) = serde_json::from_slice::<QmpEvent>(data) {
        let text = serde_json::to_string(&e).expect("an event serializes");
        let back: QmpEvent = serde_json::from_str(&text).expect("and reads back");
        assert_eq!(back, e);
    }
});
