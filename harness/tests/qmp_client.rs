//! The QMP client against a fake QMP peer on a UNIX socket that replays a
//! conversation captured from the QEMU the project installs
//! (`fixtures/qmp/qemu-10.0.2-migrate.jsonl`): greeting, replies, errors,
//! events with QEMU's timestamps, a garbled line, and the peer going away.
#![allow(clippy::unwrap_used, reason = "tests")]

use harness::backend::local::qemu::qmp::{Qmp, QmpError};
use measure::migration::marker::MarkerKind;
use measure::migration::qmp::MigrationInfo;
use measure::migration::record::SideEvent;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn transcript() -> Vec<(String, Value)> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qmp/qemu-10.0.2-migrate.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let line: Value = serde_json::from_str(v["line"].as_str().unwrap()).unwrap();
            (v["from"].as_str().unwrap().to_string(), line)
        })
        .collect()
}

/// Plays QEMU's side: sends its lines in order; at each harness line, waits
/// for the client's command, checks it is the same command, and answers
/// with the client's own id. Sends one garbled line before the reply to
/// `query-migrate`, then closes.
async fn fake_qemu(listener: tokio::net::UnixListener) {
    let (stream, _) = listener.accept().await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut id = Value::Null;
    for (from, line) in transcript() {
        if from == "harness" {
            let got: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            assert_eq!(got["execute"], line["execute"], "the client sent {got}");
            id = got["id"].clone();
            if line["execute"] == "query-migrate" {
                write.write_all(b"this is not JSON\n").await.unwrap();
            }
            continue;
        }
        let mut out = line.clone();
        if out.get("id").is_some() {
            out["id"] = id.clone();
        }
        write
            .write_all(format!("{out}\n").as_bytes())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_captured_qemu_conversation_is_read_as_qemu_meant_it() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let peer = tokio::spawn(fake_qemu(tokio::net::UnixListener::bind(&sock).unwrap()));
    let qmp = Qmp::connect(&sock, Duration::from_secs(5)).await.unwrap();

    match qmp.execute("no-such-command", None).await {
        Err(QmpError::Command { cmd, class, desc }) => {
            assert_eq!(
                (cmd.as_str(), class.as_str()),
                ("no-such-command", "CommandNotFound")
            );
            assert!(desc.contains("has not been found"), "{desc}");
        }
        other => panic!("expected QEMU's error, got {other:?}"),
    }
    let caps = serde_json::json!({"capabilities": [{"capability": "events", "state": true}]});
    qmp.execute("migrate-set-capabilities", Some(caps))
        .await
        .unwrap();
    qmp.execute("cont", None).await.unwrap();
    let resume = qmp
        .wait_event("RESUME", 0, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(resume.qemu_ts_ns, Some(1_796_164_311_831_079_000));
    let from = qmp.event_count();
    qmp.execute(
        "migrate",
        Some(serde_json::json!({"uri": "exec:cat > /dev/null"})),
    )
    .await
    .unwrap();
    let stop = qmp
        .wait_event("STOP", from, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(stop.qemu_ts_ns, Some(1_796_164_311_859_616_000));
    let info = MigrationInfo::from_value(&qmp.execute("query-migrate", None).await.unwrap());
    assert_eq!(info.status.as_deref(), Some("completed"));
    assert_eq!(
        (info.downtime, info.total_time, info.setup_time),
        (Some(4), Some(28), Some(8))
    );
    assert!(info.ram.unwrap().transferred.unwrap() > 0);

    // Every event, in order, with QEMU's timestamps: the markers the local
    // backend derives from them.
    let events: Vec<SideEvent> = qmp
        .events_since(0)
        .into_iter()
        .map(|event| SideEvent {
            side: "source".into(),
            node: "a".into(),
            event,
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|e| e.event.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "RESUME",
            "MIGRATION",
            "MIGRATION_PASS",
            "MIGRATION",
            "STOP",
            "MIGRATION",
            "MIGRATION_PASS",
            "MIGRATION"
        ]
    );
    let markers = measure::migration::from_qmp::markers(Some(1_796_164_311_834_000_000), &events);
    let kinds: Vec<(MarkerKind, Option<u32>, i64)> =
        markers.iter().map(|m| (m.kind, m.pass, m.t_ns)).collect();
    assert_eq!(
        kinds,
        [
            (
                MarkerKind::MigrationRequested,
                None,
                1_796_164_311_834_000_000
            ),
            (MarkerKind::SetupDone, None, 1_796_164_311_848_835_000),
            (MarkerKind::Pass, Some(1), 1_796_164_311_848_835_000),
            (MarkerKind::SourceStopped, None, 1_796_164_311_859_616_000),
            (MarkerKind::Pass, Some(2), 1_796_164_311_860_105_000),
            (MarkerKind::RamCompleted, None, 1_796_164_311_862_190_000),
        ]
    );

    // The peer hangs up: the client says so instead of waiting.
    peer.await.unwrap();
    for _ in 0..100 {
        if qmp.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(qmp.is_closed());
    assert!(matches!(
        qmp.execute("query-status", None).await,
        Err(QmpError::Closed { .. })
    ));
}

#[tokio::test]
async fn a_peer_that_is_not_qemu_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"{\"hello\": \"I am not QEMU\"}\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    match Qmp::connect(&sock, Duration::from_secs(2)).await {
        Err(QmpError::Greeting { greeting, .. }) => assert!(greeting.contains("not QEMU")),
        Err(e) => panic!("expected a greeting error, got {e}"),
        Ok(_) => panic!("connected to something that is not QEMU"),
    }
}
