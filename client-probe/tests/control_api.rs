//! The control API served in process on 127.0.0.1, driven with a hyper
//! client: clock exchange, start, status, stop, and the refusals.
#![expect(clippy::unwrap_used, reason = "test helpers: a failure should panic")]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use client_probe::serve::{CheckpointReply, ErrorReply, StartReply, TimeReply};
use client_probe::LiveStats;
use guest_agent::reflector::Reflector;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use measure::probe::gaps::analyze;
use measure::probe::record::ProbeRecord;
use tokio::net::TcpStream;
use wire::clock::realtime_ns;
use wire::clocksync::{estimate_offset, TimeSample};

const TOKEN: &str = "test-token-0123456789";

/// One HTTP/1.1 client connection.
struct Client {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Client { send }
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, Bytes) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "probe");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        self.send.ready().await.unwrap();
        let resp = self.send.send_request(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, bytes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_end_to_end_on_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(client_probe::serve::serve(
        listener,
        TOKEN.to_owned(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let mut c = Client::connect(addr).await;

    // Refusals: no token, a wrong one, unknown path, wrong method.
    let (st, body) = c.call(Method::GET, "/v1/time", None, "").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(serde_json::from_slice::<ErrorReply>(&body).is_ok());
    let (st, _) = c
        .call(Method::GET, "/v1/time", Some("test-token-0123456788"), "")
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = c.call(Method::GET, "/v1/nope", Some(TOKEN), "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = c.call(Method::POST, "/v1/time", Some(TOKEN), "").await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    let (st, _) = c
        .call(Method::GET, "/v1/probe/status", Some(TOKEN), "")
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "no probe yet");
    let (st, _) = c
        .call(Method::POST, "/v1/probe/stop", Some(TOKEN), "")
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "no probe yet");

    // Eight time exchanges: one machine, one clock, so the offset is ~0.
    let mut samples = Vec::new();
    for _ in 0..8 {
        let t0 = realtime_ns();
        let (st, body) = c.call(Method::GET, "/v1/time", Some(TOKEN), "").await;
        let t3 = realtime_ns();
        assert_eq!(st, StatusCode::OK);
        let t: TimeReply = serde_json::from_slice(&body).unwrap();
        assert!(t.t_ns <= t.t2_ns);
        samples.push(TimeSample {
            t0_ns: t0,
            t1_ns: t.t_ns,
            t2_ns: t.t2_ns,
            t3_ns: t3,
        });
    }
    let est = estimate_offset(&samples).unwrap();
    eprintln!("offset estimate on one machine: {est:?}");
    assert_eq!(est.samples, 8);
    assert!(est.offset_ns.abs() < 1_000_000, "{est:?}");
    // The true offset (0) lies within the bound, by construction.
    assert!(est.offset_ns.abs() <= est.uncertainty_ns, "{est:?}");

    // Bad start requests.
    let (st, _) = c
        .call(Method::POST, "/v1/probe/start", Some(TOKEN), "{")
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // The guest agent's own reflector, on loopback.
    let refl = Reflector::spawn_on("127.0.0.1:0".parse().unwrap()).unwrap();
    let bad_rate = format!(
        r#"{{"target":"{}","rate_hz":0,"payload_len":64}}"#,
        refl.local_addr()
    );
    let (st, _) = c
        .call(Method::POST, "/v1/probe/start", Some(TOKEN), &bad_rate)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // A real probe through the loopback reflector.
    let start = format!(
        r#"{{"target":"{}","rate_hz":500,"payload_len":64}}"#,
        refl.local_addr()
    );
    let (st, body) = c
        .call(Method::POST, "/v1/probe/start", Some(TOKEN), &start)
        .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let started: StartReply = serde_json::from_slice(&body).unwrap();
    let (st, _) = c
        .call(Method::POST, "/v1/probe/start", Some(TOKEN), &start)
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "one probe at a time");

    // Wait (bounded) until replies come back, reading the status.
    let mut live = LiveStats::default();
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (st, body) = c
            .call(Method::GET, "/v1/probe/status", Some(TOKEN), "")
            .await;
        assert_eq!(st, StatusCode::OK);
        live = serde_json::from_slice(&body).unwrap();
        if live.replies >= 20 {
            break;
        }
    }
    assert!(live.replies >= 20, "{live:?}");
    assert!(live.sent >= live.replies);

    // A checkpoint hands over what was recorded so far, once.
    let (st, body) = c
        .call(Method::POST, "/v1/probe/checkpoint", Some(TOKEN), "")
        .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let cp: CheckpointReply = serde_json::from_slice(&body).unwrap();
    assert_eq!(cp.meta.session, started.session);
    assert_eq!(cp.delta.first_seq, 0);
    assert!(cp.delta.replies.len() >= 20, "{}", cp.delta.replies.len());
    let (st, _) = c
        .call(Method::GET, "/v1/probe/checkpoint", Some(TOKEN), "")
        .await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);

    let (st, body) = c
        .call(Method::POST, "/v1/probe/stop", Some(TOKEN), "")
        .await;
    assert_eq!(st, StatusCode::OK);
    let rec: ProbeRecord = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        rec.replies[..cp.delta.replies.len()],
        cp.delta.replies[..],
        "the checkpoint was a prefix of the whole record"
    );
    assert_eq!(rec.send_ns[..cp.delta.send_ns.len()], cp.delta.send_ns[..]);
    let target = refl.local_addr();
    refl.stop();
    assert_eq!(rec.session, started.session);
    assert_eq!(rec.target, target.to_string());
    assert_eq!((rec.rate_hz, rec.payload_len), (500, 64));
    assert!(rec.replies.len() >= 20, "{}", rec.replies.len());
    assert!(rec.replies.iter().all(|r| r.kernel_ts));
    let s = analyze(&rec, None, 50_000_000);
    assert!(s.probes_sent >= 20);
    let (st, _) = c
        .call(Method::POST, "/v1/probe/stop", Some(TOKEN), "")
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "already stopped");
    let (st, _) = c
        .call(Method::POST, "/v1/probe/checkpoint", Some(TOKEN), "")
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "no probe to checkpoint");

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_empty_token_is_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = client_probe::serve::serve(listener, String::new(), async {}).await;
    assert!(r.is_err());
}
