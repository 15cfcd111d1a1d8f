//! `conclave bench archive`: what recording costs and how fast a stopped archive is ready.
//!
//! Owns: one routed session on a `conclave serve` child with N bots publishing a real VP8/Opus
//! clip. Measures the server's CPU over a window without recording and over one with an
//! archive running (the difference per stream is the recording cost), then the time from
//! stop to `available` (or `uploaded`, with `--s3-endpoint`) and the resulting throughput.
//! Must not touch: the server's internals (a black box on loopback).

use super::bench_media::{children_cpu_us, cpu_us};
use super::{nix_kill, spawn_server};
use crate::open_store;
use conclave_client::Client as Participant;
use conclave_client::PublishOptions;
use conclave_client::clip::EncodedClip;
use conclave_client::media::{BotConfig, publish_routed};
use conclave_sdk::{Client, Role, SessionOptions, TokenOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct ArchiveBench {
    pub streams: usize,
    pub seconds: u64,
    pub output_mode: String,
    /// An S3-compatible endpoint with bucket `archives` (keys from AWS_ACCESS_KEY_ID /
    /// AWS_SECRET_ACCESS_KEY, default `testing`), e.g. a local moto server.
    pub s3_endpoint: Option<String>,
}

pub async fn run(b: ArchiveBench) -> anyhow::Result<()> {
    crate::raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("conclave-bench-archive-{}", std::process::id()));
    let (key, secret) = {
        let store = open_store(&dir).await?;
        let p = conclave_server::provision::create_project(&store, "bench", None).await?;
        (p.api_key, p.api_secret)
    };
    let flags = ["--rtc-host", "127.0.0.1", "--rtc-port", "0", "--rest-rate-per-ip", "0", "--rest-rate-per-key", "0"];
    let (mut child, base) = spawn_server(&dir, &flags).await?;
    let pid = child.id().unwrap_or(0);
    let sdk = Client::new(&key, &secret, &base)?;
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{base}/v2/project/{key}/{path}");
    if let Some(ep) = &b.s3_endpoint {
        let ak = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "testing".into());
        let sk = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "testing".into());
        let body = serde_json::json!({"type": "s3", "config": {"bucket": "archives", "accessKey": ak, "secretKey": sk, "endpoint": ep}});
        let r =
            http.put(api("archive/storage")).header("X-OPENTOK-AUTH", sdk.rest_credential()).json(&body).send().await?;
        anyhow::ensure!(r.status().is_success(), "setting the S3 target failed: {}", r.text().await?);
    }
    let clip_dir = dir.join("clip");
    std::fs::create_dir_all(&clip_dir)?;
    let clip = Arc::new(EncodedClip::generate(&clip_dir, 10, 30).map_err(anyhow::Error::msg)?);
    let ws = format!("{}/v1/signal", base.replace("http://", "ws://"));
    let sid = sdk.create_session(&SessionOptions::routed()).await?.session_id;
    let mut keep = Vec::new();
    for _ in 0..b.streams {
        let t = sdk.generate_token(&sid, &TokenOptions::new(Role::Publisher))?;
        let mut c = Participant::connect(&ws, &sid, &t).await?;
        let stream = c.publish(PublishOptions::default()).await?;
        let bot = publish_routed(
            &mut c,
            &stream.stream_id,
            BotConfig { clip: Some(clip.clone()), keep_frames: false, ..BotConfig::default() },
        )
        .await?;
        bot.wait_connected(Duration::from_secs(10)).await?;
        keep.push((c, bot));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let window = Duration::from_secs(b.seconds);
    let (c0, t0) = (cpu_us(pid), Instant::now());
    tokio::time::sleep(window).await;
    let idle_cpu = (cpu_us(pid) - c0) as f64 / t0.elapsed().as_micros() as f64;

    let body = serde_json::json!({"sessionId": sid, "outputMode": b.output_mode});
    let started: serde_json::Value = http
        .post(api("archive"))
        .header("X-OPENTOK-AUTH", sdk.rest_credential())
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let id = started["id"].as_str().ok_or_else(|| anyhow::anyhow!("start failed: {started}"))?.to_owned();
    let (c1, t1) = (cpu_us(pid), Instant::now());
    tokio::time::sleep(window).await;
    let rec_cpu = (cpu_us(pid) - c1) as f64 / t1.elapsed().as_micros() as f64;
    let stop_at = Instant::now();
    let cpu_stop = cpu_us(pid) + children_cpu_us(pid);
    http.post(api(&format!("archive/{id}/stop"))).header("X-OPENTOK-AUTH", sdk.rest_credential()).send().await?;
    drop(keep);
    let done = loop {
        let v: serde_json::Value = http
            .get(api(&format!("archive/{id}")))
            .header("X-OPENTOK-AUTH", sdk.rest_credential())
            .send()
            .await?
            .json()
            .await?;
        if matches!(v["status"].as_str(), Some("available" | "uploaded" | "failed")) {
            break v;
        }
        anyhow::ensure!(stop_at.elapsed() < Duration::from_secs(600), "archive not ready after 10 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ready = stop_at.elapsed().as_secs_f64();
    let processing_cpu = (cpu_us(pid) + children_cpu_us(pid) - cpu_stop) as f64 / 1e6;
    let size = done["size"].as_u64().unwrap_or(0);
    println!(
        "archive bench: {} streams of VP8 320x240 30 fps + Opus, {} output, {} s windows",
        b.streams, b.output_mode, b.seconds
    );
    println!("server CPU without recording: {:.1}% of a core", idle_cpu * 100.0);
    println!("server CPU while recording:   {:.1}% of a core", rec_cpu * 100.0);
    println!(
        "recording cost per stream:    {:.2}% of a core",
        (rec_cpu - idle_cpu).max(0.0) * 100.0 / b.streams as f64
    );
    println!(
        "stop -> {}: {:.2} s ({} bytes, {:.1} MB/s, {:.2} s of CPU incl. ffmpeg)",
        done["status"].as_str().unwrap_or("?"),
        ready,
        size,
        size as f64 / ready / 1e6,
        processing_cpu
    );
    nix_kill(&child)?;
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
