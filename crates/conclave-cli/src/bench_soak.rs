//! `conclave bench soak`: a bounded soak run against a `conclave serve` child process on
//! loopback. Waves of participants join routed sessions, publish (some with real media
//! through the SFU), subscribe, signal, leave, and are kicked over REST, for `--seconds`.
//! It then checks that nothing leaked: no connection, stream or live session left, the
//! server's file descriptors back to their start, memory roughly flat, and zero errors.
//! Exits non-zero on any of those. Owns: the soak workload. Must not touch: server internals.

use super::{nix_kill, rss_kib, spawn_server};
use crate::open_store;
use conclave_client::media::{BotConfig, MediaBot};
use conclave_client::signal::{ClientMessage, ServerMessage};
use conclave_client::{Client as Participant, PublishOptions};
use conclave_sdk::{Client, Role, SessionOptions, TokenOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

async fn metric(base: &str, name: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{base}/metrics")).await?.text().await?;
    Ok(text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(u64::MAX))
}

#[derive(Default)]
struct Tally {
    joins: AtomicU64,
    kicks: AtomicU64,
    media: AtomicU64,
    errors: AtomicU64,
    archives: std::sync::Mutex<Vec<String>>,
}

/// Records one session over and over while `running`: start, a few seconds, stop.
async fn archivist(
    k: u64,
    sdk: Arc<Client>,
    base: String,
    session: String,
    tally: Arc<Tally>,
    running: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let api = format!("{base}/v2/project/{}/archive", sdk.api_key());
    let mut n = 0u64;
    while running.load(Ordering::Relaxed) {
        let mode = if (k + n).is_multiple_of(2) { "individual" } else { "composed" };
        let r = http
            .post(&api)
            .header("X-OPENTOK-AUTH", sdk.rest_credential())
            .json(&serde_json::json!({"sessionId": session, "outputMode": mode}))
            .send()
            .await?;
        anyhow::ensure!(
            r.status() == 200,
            "archive start answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
        let id = r.json::<serde_json::Value>().await?["id"].as_str().unwrap_or_default().to_owned();
        tally.archives.lock().unwrap().push(id.clone());
        tokio::time::sleep(Duration::from_millis(2000 + (k * 311 + n * 97) % 3000)).await;
        let r = http.post(format!("{api}/{id}/stop")).header("X-OPENTOK-AUTH", sdk.rest_credential()).send().await?;
        // 409: it stopped by itself meanwhile (idle), which is fine.
        anyhow::ensure!(r.status() == 200 || r.status() == 409, "archive stop answered {}", r.status());
        n += 1;
    }
    Ok(())
}

/// Waits until every archive has left started/paused/stopped; returns the count per status.
async fn archive_outcomes(
    sdk: &Client,
    base: &str,
    ids: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = std::collections::BTreeMap::new();
    for id in ids {
        let status = loop {
            let v: serde_json::Value = http
                .get(format!("{base}/v2/project/{}/archive/{id}", sdk.api_key()))
                .header("X-OPENTOK-AUTH", sdk.rest_credential())
                .send()
                .await?
                .json()
                .await?;
            let s = v["status"].as_str().unwrap_or("?").to_owned();
            if s == "failed" && !v["reason"].as_str().unwrap_or("").starts_with("nothing was recorded") {
                // Anything but "nobody published while it ran" is a real failure.
                break format!("failed: {}", v["reason"]);
            }
            if !matches!(s.as_str(), "started" | "paused" | "stopped") || Instant::now() > deadline {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        *out.entry(status).or_insert(0) += 1;
    }
    Ok(out)
}

/// One participant's life: join, publish (sometimes with media), subscribe, signal, then
/// leave or be kicked.
async fn life(
    i: u64,
    sdk: Arc<Client>,
    ws: String,
    base: String,
    session: String,
    tally: Arc<Tally>,
    clip: Arc<conclave_client::clip::EncodedClip>,
) -> anyhow::Result<()> {
    let token = sdk.generate_token(&session, &TokenOptions::new(Role::Publisher))?;
    let mut c = Participant::connect(&ws, &session, &token).await?;
    tally.joins.fetch_add(1, Ordering::Relaxed);
    let stream = c.publish(PublishOptions::default()).await?;
    let mut _media: Option<MediaBot> = None;
    if i.is_multiple_of(4) {
        // Real media through the SFU for a quarter of the publishers.
        let bot = MediaBot::start(BotConfig { keep_frames: false, clip: Some(clip), ..BotConfig::default() }).await?;
        c.send(ClientMessage::MediaOffer { stream_id: Some(stream.stream_id.clone()), sdp: bot.offer(true, false)? })?;
        let answer = c.wait_for(|m| matches!(m, ServerMessage::MediaAnswer { .. }), Duration::from_secs(10)).await?;
        if let ServerMessage::MediaAnswer { sdp, .. } = answer {
            bot.accept_answer(&sdp)?;
            bot.start_sending();
        }
        tally.media.fetch_add(1, Ordering::Relaxed);
        _media = Some(bot);
    }
    for s in c.initial_streams().into_iter().take(2) {
        match c.subscribe(&s.stream_id).await {
            // Its publisher left meanwhile: a normal race in a churning session.
            Err(conclave_client::ClientError::Refused {
                code: conclave_client::signal::ErrorCode::NotFound, ..
            }) => {}
            other => other?,
        }
    }
    c.signal(None, "soak", "hello").await?;
    tokio::time::sleep(Duration::from_millis(300 + (i * 37) % 1500)).await;
    if i.is_multiple_of(5) {
        let r = reqwest::Client::new()
            .delete(format!("{base}/v2/project/{}/session/{session}/connection/{}", sdk.api_key(), c.connection_id))
            .header("X-OPENTOK-AUTH", sdk.rest_credential())
            .send()
            .await?;
        anyhow::ensure!(r.status() == 204, "force disconnect answered {}", r.status());
        c.wait_disconnected(Duration::from_secs(10)).await?;
        tally.kicks.fetch_add(1, Ordering::Relaxed);
    } else {
        c.disconnect().await?;
    }
    Ok(())
}

/// Keeps `concurrent` participants alive for `length`, then waits for all of them to finish.
#[allow(clippy::too_many_arguments)]
async fn wave(
    i: &mut u64,
    length: Duration,
    concurrent: usize,
    ids: &[String],
    sdk: &Arc<Client>,
    ws: &str,
    base: &str,
    tally: &Arc<Tally>,
    mut rss: Option<&mut Vec<u64>>,
    pid: u32,
    clip: &Arc<conclave_client::clip::EncodedClip>,
) {
    let deadline = Instant::now() + length;
    let mut set = tokio::task::JoinSet::new();
    let record = |r: Result<anyhow::Result<()>, tokio::task::JoinError>| {
        if let Err(e) | Ok(Err(e)) = r.map_err(anyhow::Error::from) {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("soak error: {e:#}");
        }
    };
    while Instant::now() < deadline {
        while set.len() < concurrent {
            let session = ids[(*i as usize) % ids.len()].clone();
            set.spawn(life(*i, sdk.clone(), ws.to_owned(), base.to_owned(), session, tally.clone(), clip.clone()));
            *i += 1;
        }
        if let Some(r) = set.join_next().await {
            record(r);
        }
        if (*i).is_multiple_of(50)
            && let Some(rss) = rss.as_deref_mut()
        {
            rss.push(rss_kib(pid));
        }
    }
    while let Some(r) = set.join_next().await {
        record(r);
    }
}

pub async fn run(seconds: u64, sessions: usize, concurrent: usize) -> anyhow::Result<bool> {
    let dir = std::env::temp_dir().join(format!("conclave-soak-{}", std::process::id()));
    let (key, secret) = {
        let store = open_store(&dir).await?;
        let p = conclave_server::provision::create_project(&store, "soak", None).await?;
        (p.api_key, p.api_secret)
    };
    let flags = [
        "--metrics-allow",
        "127.0.0.1",
        "--connect-rate-per-ip",
        "0",
        "--rest-rate-per-ip",
        "0",
        "--rest-rate-per-key",
        "0",
        "--reconnect-grace",
        "1s",
        "--rtc-host",
        "127.0.0.1",
        "--rtc-port",
        "0",
    ];
    let (mut child, base) = spawn_server(&dir, &flags).await?;
    let pid = child.id().unwrap_or(0);
    let sdk = Arc::new(Client::new(&key, &secret, &base)?);
    let ws = format!("{}/v1/signal", base.replace("http://", "ws://"));
    let mut ids = Vec::new();
    for _ in 0..sessions {
        ids.push(sdk.create_session(&SessionOptions::routed()).await?.session_id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tally = Arc::new(Tally::default());
    // Media bots send a real encoded clip, so that composed archives of them decode.
    std::fs::create_dir_all(dir.join("clip"))?;
    let clip =
        Arc::new(conclave_client::clip::EncodedClip::generate(&dir.join("clip"), 4, 15).map_err(anyhow::Error::msg)?);
    // Half the sessions are recorded, over and over, during both waves.
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut archivists = tokio::task::JoinSet::new();
    for (k, session) in ids.iter().enumerate().filter(|(k, _)| k % 2 == 0) {
        archivists.spawn(archivist(
            k as u64,
            sdk.clone(),
            base.clone(),
            session.clone(),
            tally.clone(),
            running.clone(),
        ));
    }
    let mut i = 0u64;
    // Warm-up: a quarter of the run, then everyone leaves and the server is measured idle.
    // Pools (SQLite connections, runtime threads) have reached their working size by then.
    wave(
        &mut i,
        Duration::from_secs((seconds / 4).max(5)),
        concurrent,
        &ids,
        &sdk,
        &ws,
        &base,
        &tally,
        None,
        pid,
        &clip,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (fds_before, rss_before) = (fd_count(pid), rss_kib(pid));
    let mut rss_mid = Vec::new();
    wave(
        &mut i,
        Duration::from_secs(seconds - (seconds / 4).max(5).min(seconds)),
        concurrent,
        &ids,
        &sdk,
        &ws,
        &base,
        &tally,
        Some(&mut rss_mid),
        pid,
        &clip,
    )
    .await;
    running.store(false, Ordering::Relaxed);
    while let Some(r) = archivists.join_next().await {
        if let Err(e) | Ok(Err(e)) = r.map_err(anyhow::Error::from) {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("soak archive error: {e:#}");
        }
    }
    let archive_ids = tally.archives.lock().unwrap().clone();
    let outcomes = archive_outcomes(&sdk, &base, &archive_ids).await?;
    let stuck = outcomes
        .iter()
        .filter(|(s, _)| matches!(s.as_str(), "started" | "paused" | "stopped" | "?"))
        .map(|(_, n)| n)
        .sum::<u64>();
    let available = outcomes.get("available").copied().unwrap_or(0);
    let fallback_files = std::fs::read_dir(dir.join("archives/fallback")).map(|d| d.count() as u64).unwrap_or(0);
    let work_left = std::fs::read_dir(dir.join("archives/work")).map(|d| d.count() as u64).unwrap_or(0);
    // Let suspended connections and media peers run out.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (fds_after, rss_after) = (fd_count(pid), rss_kib(pid));
    let connections = metric(&base, "conclave_connections").await?;
    let streams = metric(&base, "conclave_streams").await?;
    let live = metric(&base, "conclave_sessions_live").await?;
    let errors = tally.errors.load(Ordering::Relaxed);
    let half = rss_mid.get(rss_mid.len() / 2).copied().unwrap_or(rss_before);
    println!(
        "| seconds | participants | with media | kicked | errors | connections left | streams left | live sessions left | server fds idle after warm-up → idle at end | server RSS MiB idle after warm-up → mid → end |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {seconds} | {} | {} | {} | {errors} | {connections} | {streams} | {live} | {fds_before} → {fds_after} | {:.1} → {:.1} → {:.1} |",
        tally.joins.load(Ordering::Relaxed),
        tally.media.load(Ordering::Relaxed),
        tally.kicks.load(Ordering::Relaxed),
        rss_before as f64 / 1024.0,
        half as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    let _ = nix_kill(&child);
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    // Memory: after warm-up, the second half of the run must not keep growing.
    let leaked_memory = rss_after > half + 32 * 1024;
    println!(
        "archives: {} started; by final status {outcomes:?}; fallback files {fallback_files}; work dirs left {work_left}",
        archive_ids.len()
    );
    // Accounted for: none stuck, none failed for a real reason ("failed" alone means nobody
    // published media while it ran), every available archive has its file, no work files.
    let real_failures = outcomes.keys().filter(|k| k.starts_with("failed: ")).count();
    let archives_ok =
        stuck == 0 && real_failures == 0 && fallback_files == available && work_left == 0 && !archive_ids.is_empty();
    let ok = errors == 0
        && connections == 0
        && streams == 0
        && live == 0
        && fds_after <= fds_before + 2
        && !leaked_memory
        && archives_ok;
    if !ok {
        eprintln!(
            "soak FAILED: errors {errors}, connections {connections}, streams {streams}, live sessions {live}, fds {fds_before} → {fds_after}, RSS mid {half} KiB → end {rss_after} KiB, archives {outcomes:?} (fallback files {fallback_files}, work dirs {work_left})"
        );
    }
    Ok(ok)
}
