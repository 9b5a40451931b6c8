//! The video streams during a run (the I/O shell around
//! `measure::stream`): makes the clip (cached), hands it to the guest
//! agent, starts the agent's RTP and HTTP workloads and the client's
//! receivers at the client's site, and at the end writes what the
//! client received into the bundle as raw records:
//!
//! ```text
//! stream/rtp.pcap    every RTP datagram the client received (nanosecond pcap,
//!                    kernel receive timestamps; opens in Wireshark/tshark)
//! stream/rtp.json    the receiver's counters and the stream's parameters
//! stream/http.csv    every read of the HTTP download: rx_ns,bytes
//! stream/http.json   connection breaks and resumptions, status, byte rate
//! ```

use crate::backend::agent::AgentClient;
use crate::backend::Endpoints;
use crate::bundle::Bundle;
use crate::live::Live;
use crate::scenario::{ClipParams, Scenario};
use anyhow::{Context, Result};
use client_probe::http_stream::HttpStream;
use client_probe::rtp_receiver::{write_rtp_pcap, RtpReceiver};
use measure::stream::record::{HttpMeta, RtpMeta};
use std::net::SocketAddr;

/// The RTP stream's fixed SSRC ("LMIG").
pub const SSRC: u32 = 0x4c4d_4947;
/// Workload names in the agent.
const RTP: &str = "rtp";
const HTTP: &str = "http";

/// Streams running during a run.
#[derive(Default)]
pub struct Streams {
    rtp: Option<(RtpReceiver, RtpMeta)>,
    http: Option<(HttpStream, HttpMeta)>,
}

fn clip_spec(p: &ClipParams) -> media::ClipSpec {
    media::ClipSpec {
        width: p.width,
        height: p.height,
        fps: p.fps,
        bitrate_bps: p.bitrate_kbps.saturating_mul(1000),
        gop: p.gop,
        seconds: p.seconds,
    }
}

impl Streams {
    /// Starts the scenario's streams, if it has any.
    pub async fn start(scenario: &Scenario, ep: &Endpoints, live: &Live) -> Result<Streams> {
        let mut s = Streams::default();
        let client_ip = ep.client_addr;
        if let Some(r) = &scenario.workload.rtp {
            live.println("making the RTP clip (cached after the first time)...");
            let (clip, path) = media::clip_cached(&clip_spec(&r.clip), &crate::cache::dir())
                .context("making the test clip for the RTP stream")?;
            ep.agent
                .put_file("clip.lmc", clip.encode())
                .await
                .with_context(|| format!("handing the clip {} to the agent", path.display()))?;
            let port = r.port;
            let socket = ep
                .client
                .enter(move || std::net::UdpSocket::bind(("0.0.0.0", port)))
                .with_context(|| {
                    format!(
                        "opening the RTP receiver's socket at {}",
                        ep.client.describe()
                    )
                })?;
            let rx = RtpReceiver::start(socket).context("starting the RTP receiver")?;
            ep.agent
                .start_workload(
                    RTP,
                    &wire::control::WorkloadSpec::Rtp {
                        clip: "clip.lmc".into(),
                        dest: SocketAddr::from((client_ip, port)),
                        ssrc: SSRC,
                        mtu: r.mtu,
                        payload_type: 96,
                    },
                )
                .await
                .context("starting the guest's RTP stream")?;
            let meta = RtpMeta {
                local_addr: SocketAddr::from((client_ip, port)).to_string(),
                ssrc: SSRC,
                playout_delay_ms: r.playout_delay_ms,
                gap_threshold_ms: r.gap_threshold_ms,
                ..RtpMeta::default()
            };
            s.rtp = Some((rx, meta));
        }
        if let Some(h) = &scenario.workload.http {
            live.println("making the HTTP clip (MPEG-TS)...");
            let (clip, _) = media::clip_cached(&clip_spec(&h.clip), &crate::cache::dir())
                .context("making the test clip for the HTTP stream")?;
            let ts = media::mpegts(&clip).context("muxing the clip to MPEG-TS")?;
            let byte_rate = ts.bytes.len() as f64 / ts.duration_s.max(0.001);
            ep.agent
                .put_file("clip.ts", ts.bytes)
                .await
                .context("handing the MPEG-TS clip to the agent")?;
            ep.agent
                .start_workload(
                    HTTP,
                    &wire::control::WorkloadSpec::Http {
                        file: "clip.ts".into(),
                        port: h.port,
                        rate_bytes_s: byte_rate.ceil() as u64,
                        loops: 1000,
                    },
                )
                .await
                .context("starting the guest's HTTP server")?;
            let guest = SocketAddr::from((ep.guest, h.port));
            let site = ep.client.clone();
            let connect = move || {
                site.enter(move || {
                    std::net::TcpStream::connect_timeout(&guest, std::time::Duration::from_secs(2))
                })
                .map_err(|e| std::io::Error::other(format!("{e:#}")))
            };
            let dl = HttpStream::start(connect, &guest.to_string(), "/clip.ts")
                .context("starting the HTTP download")?;
            let meta = HttpMeta {
                url: format!("http://{guest}/clip.ts"),
                byte_rate,
                start_s: h.start_s,
                resume_s: h.resume_s,
                ..HttpMeta::default()
            };
            s.http = Some((dl, meta));
        }
        Ok(s)
    }

    /// Stops the workloads (best effort: the guest may be gone) and the
    /// receivers, and writes what was received into the bundle.
    pub async fn finish(self, agent: &AgentClient, bundle: &Bundle, live: &Live) -> Result<()> {
        if let Some((rx, mut meta)) = self.rtp {
            meta.sender = agent.stop_workload(RTP).await.ok();
            let cap = rx.stop();
            meta.datagrams = cap.arrivals.len() as u64;
            meta.without_kernel_ts = cap.arrivals.iter().filter(|a| !a.kernel_ts).count() as u64;
            meta.truncated = cap.truncated;
            meta.read_errors = cap.read_errors;
            let mut pcap = Vec::new();
            match write_rtp_pcap(&cap, &mut pcap) {
                Ok(()) => {
                    bundle.write("stream/rtp.pcap", &pcap)?;
                }
                Err(e) => live.println(&format!("warning: cannot write stream/rtp.pcap: {e}")),
            }
            bundle.write_json("stream/rtp.json", &meta)?;
            // The decoder's verdict is recorded with the capture, so that
            // re-deriving the bundle needs no decoder.
            match crate::bundle::decode::decoded_frames(&cap.arrivals, Some(meta.ssrc)) {
                Some(d) => {
                    bundle.write_json(crate::bundle::decode::DECODED_FILE, &d)?;
                }
                None => live.println("warning: no H.264 decoder: frames not judged"),
            }
        }
        if let Some((dl, mut meta)) = self.http {
            meta.sender = agent.stop_workload(HTTP).await.ok();
            let mut cap = dl.stop();
            let mut csv = String::from("rx_ns,bytes\n");
            for (t, n) in &cap.samples {
                csv.push_str(&format!("{t},{n}\n"));
            }
            bundle.write("stream/http.csv", csv.as_bytes())?;
            cap.samples.clear();
            meta.capture = Some(cap);
            bundle.write_json("stream/http.json", &meta)?;
        }
        Ok(())
    }
}
