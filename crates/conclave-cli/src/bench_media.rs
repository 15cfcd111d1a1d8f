//! `conclave bench media`: routed media through the SFU of a `conclave serve` child process.
//!
//! Owns: the media load run. S routed sessions, each with N publishing bots and M receiving
//! bots subscribed to every publisher (`conclave_client::media`), real-rate synthetic Opus
//! (50 packets/s) and VP8 (`--fps`, one `--video-bytes` frame per packet, a keyframe on
//! request). Measures at the receivers and from `/proc/<server pid>`. Must not touch: the
//! server's internals (it is a black box on loopback) or the other bench modes.

use super::{nix_kill, percentile, rss_kib, spawn_server};
use crate::open_store;
use conclave_client::Client as Participant;
use conclave_client::PublishOptions;
use conclave_client::media::{BotConfig, MediaBot, publish_routed, receive_routed};
use conclave_sdk::{Client, Role, SessionOptions, TokenOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// utime + stime of a process, in microseconds.
pub(crate) fn cpu_us(pid: u32) -> u64 {
    stat_cpu_us(pid, 11)
}

/// cutime + cstime: CPU of a process's waited-for children (ffmpeg), in microseconds.
pub(crate) fn children_cpu_us(pid: u32) -> u64 {
    stat_cpu_us(pid, 13)
}

/// Two consecutive tick fields of `/proc/<pid>/stat` (counted after the command name), in µs.
fn stat_cpu_us(pid: u32, first: usize) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(first).and_then(|s| s.parse().ok()).unwrap_or(0)
        + f.get(first + 1).and_then(|s| s.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000 / hz
}

#[derive(Default, Clone, Copy)]
struct Totals {
    rx_pkts: u64,
    rx_bytes: u64,
    tx_pkts: u64,
    tx_bytes: u64,
    frames: u64,
    frames_sent: u64,
    /// Received RTP datagrams on the payload types that carried media (no RTX).
    media_pkts: u64,
}

fn totals(pubs: &[MediaBot], subs: &[Arc<MediaBot>]) -> Totals {
    let mut t = Totals::default();
    for p in pubs {
        p.with_stats(|s| {
            t.tx_pkts += s.rtp_out;
            t.tx_bytes += s.rtp_out_bytes;
            t.frames_sent += u64::from(s.audio_sent + s.video_sent);
        });
    }
    for b in subs {
        b.with_stats(|s| {
            t.rx_pkts += s.rtp_in;
            t.rx_bytes += s.rtp_in_bytes;
            t.frames += s.audio_frames + s.video_frames;
            t.media_pkts += s.media_pts.iter().filter_map(|pt| s.rtp_in_by_pt.get(pt)).sum::<u64>();
        });
    }
    t
}

/// One server's numbers for one run (see the header in [`Row::HEADER`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    pub pkt_s: f64,
    pub media_pkt_s: f64,
    pub frames_s: f64,
    pub avg_bytes: f64,
    /// Server CPU per forwarded media packet (the headline figure) and per RTP packet.
    pub cpu_us_media_pkt: f64,
    pub cpu_us_pkt: f64,
    pub cpu_pct: f64,
    pub bench_pct: f64,
    /// Context switches of all server threads per forwarded media packet.
    pub ctxsw_per_pkt: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub loss_pct: f64,
    pub rss_kib_sub: f64,
    pub errors: f64,
}

impl Row {
    pub const HEADER: &str = "| forwarded media pkt/s | RTP pkt/s | frames/s | avg pkt bytes | server CPU µs/media pkt | µs/RTP pkt | server CPU % | bench CPU % | ctx switches/pkt | latency p50 ms | p99 ms | loss % | server RSS KiB/subscriber | errors |";
    pub const RULE: &str = "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

    pub fn cells(&self) -> String {
        format!(
            "| {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {:.3} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |",
            self.media_pkt_s,
            self.pkt_s,
            self.frames_s,
            self.avg_bytes,
            self.cpu_us_media_pkt,
            self.cpu_us_pkt,
            self.cpu_pct,
            self.bench_pct,
            self.ctxsw_per_pkt,
            self.p50_ms,
            self.p99_ms,
            self.loss_pct,
            self.rss_kib_sub,
            self.errors
        )
    }

    pub fn fields(&self) -> [f64; 14] {
        [
            self.media_pkt_s,
            self.pkt_s,
            self.frames_s,
            self.avg_bytes,
            self.cpu_us_media_pkt,
            self.cpu_us_pkt,
            self.cpu_pct,
            self.bench_pct,
            self.ctxsw_per_pkt,
            self.p50_ms,
            self.p99_ms,
            self.loss_pct,
            self.rss_kib_sub,
            self.errors,
        ]
    }

    pub fn from_fields(f: [f64; 14]) -> Row {
        let [
            media_pkt_s,
            pkt_s,
            frames_s,
            avg_bytes,
            cpu_us_media_pkt,
            cpu_us_pkt,
            cpu_pct,
            bench_pct,
            ctxsw_per_pkt,
            p50_ms,
            p99_ms,
            loss_pct,
            rss_kib_sub,
            errors,
        ] = f;
        Row {
            pkt_s,
            media_pkt_s,
            frames_s,
            avg_bytes,
            cpu_us_media_pkt,
            cpu_us_pkt,
            cpu_pct,
            bench_pct,
            ctxsw_per_pkt,
            p50_ms,
            p99_ms,
            loss_pct,
            rss_kib_sub,
            errors,
        }
    }
}

/// Voluntary + involuntary context switches of every live thread of a process.
pub(crate) fn ctx_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// The shared measurement, for any server: waits until every subscriber gets video from every
/// publisher of its session, then measures a `seconds` window at the receivers and from
/// `/proc/<pid>`. `rss_before` is the server's RSS with the publishers alone.
pub(crate) async fn measure(
    pid: u32,
    pub_bots: &[MediaBot],
    sub_bots: &[Arc<MediaBot>],
    publishers: usize,
    subscribers: usize,
    seconds: u64,
    rss_before: u64,
) -> anyhow::Result<Row> {
    // Warm up: every subscriber gets video from every publisher it subscribed to.
    let warm = Instant::now();
    while !sub_bots.iter().all(|b| b.with_stats(|s| s.video_frames >= 10 * publishers as u64)) {
        anyhow::ensure!(warm.elapsed() < Duration::from_secs(30), "subscribers did not all get video within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib(pid);

    let lat_marks: Vec<usize> = sub_bots.iter().map(|b| b.with_stats(|s| s.latency_us.len())).collect();
    let t0 = totals(pub_bots, sub_bots);
    let cpu0 = cpu_us(pid);
    let cs0 = ctx_switches(pid);
    let self0 = cpu_us(std::process::id());
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu1 = cpu_us(pid);
    let cs1 = ctx_switches(pid);
    let self1 = cpu_us(std::process::id());
    let t1 = totals(pub_bots, sub_bots);
    let secs = started.elapsed().as_secs_f64();

    let mut lat: Vec<Duration> = Vec::new();
    for (b, mark) in sub_bots.iter().zip(&lat_marks) {
        b.with_stats(|s| lat.extend(s.latency_us[*mark..].iter().map(|us| Duration::from_micros(*us))));
    }
    lat.sort();
    let errors: usize =
        sub_bots.iter().map(|b| b.with_stats(|s| s.errors.len() + s.damaged_frames as usize)).sum::<usize>()
            + pub_bots.iter().map(|b| b.with_stats(|s| s.errors.len())).sum::<usize>();

    let rx = t1.rx_pkts - t0.rx_pkts;
    let media = (t1.media_pkts - t0.media_pkts).max(1);
    let tx = t1.tx_pkts - t0.tx_pkts;
    // Every publisher's frame goes to each of the M subscribers in its session. Loss is
    // counted in frames: receivers also get RTX/padding packets the publishers never sent.
    let expected = (t1.frames_sent - t0.frames_sent) * subscribers as u64;
    let got = t1.frames - t0.frames;
    let by_pt = sub_bots.iter().fold(std::collections::BTreeMap::new(), |mut m, b| {
        b.with_stats(|s| s.rtp_in_by_pt.iter().for_each(|(pt, n)| *m.entry(*pt).or_insert(0u64) += n));
        m
    });
    eprintln!(
        "publishers sent {tx} RTP packets ({} bytes) in the window; receivers got {rx} ({} media); receiver RTP by payload type (whole run): {by_pt:?}, {} with the padding bit",
        t1.tx_bytes - t0.tx_bytes,
        t1.media_pkts - t0.media_pkts,
        sub_bots.iter().map(|b| b.with_stats(|s| s.rtp_in_padded)).sum::<u64>()
    );
    let cpu = (cpu1 - cpu0) as f64;
    Ok(Row {
        pkt_s: rx as f64 / secs,
        media_pkt_s: media as f64 / secs,
        frames_s: got as f64 / secs,
        avg_bytes: (t1.rx_bytes - t0.rx_bytes) as f64 / rx.max(1) as f64,
        cpu_us_media_pkt: cpu / media as f64,
        cpu_us_pkt: cpu / rx.max(1) as f64,
        cpu_pct: cpu / secs / 1e4,
        bench_pct: (self1 - self0) as f64 / secs / 1e4,
        ctxsw_per_pkt: cs1.saturating_sub(cs0) as f64 / media as f64,
        p50_ms: if lat.is_empty() { 0.0 } else { percentile(&lat, 0.5) },
        p99_ms: if lat.is_empty() { 0.0 } else { percentile(&lat, 0.99) },
        loss_pct: if expected == 0 { 0.0 } else { 100.0 * (1.0 - got as f64 / expected as f64) },
        rss_kib_sub: rss_after.saturating_sub(rss_before) as f64 / (sub_bots.len().max(1)) as f64,
        errors: errors as f64,
    })
}

pub async fn run(
    sessions: usize,
    publishers: usize,
    subscribers: usize,
    seconds: u64,
    fps: u32,
    video_bytes: usize,
    rtc_host: &str,
) -> anyhow::Result<()> {
    let row = conclave(sessions, publishers, subscribers, seconds, fps, video_bytes, rtc_host).await?;
    println!("| sessions | pubs/session | subs/session {}", Row::HEADER);
    println!("|---|---|---{}", Row::RULE);
    println!("| {sessions} | {publishers} | {subscribers} {}", row.cells());
    Ok(())
}

/// The bots' configuration for a source (`u32::MAX`: a receiver), shared with the Janus run.
pub(crate) fn bot_config(source: u32, fps: u32, video_bytes: usize) -> BotConfig {
    BotConfig {
        source,
        audio_bytes: 100,
        video_fps: fps,
        video_bytes,
        keyframe_bytes: 3 * video_bytes,
        drop_every: 0,
        keep_frames: false,
        clip: None,
    }
}

/// What the server shed to stay on time (issue 16: graceful overload), and its memory at the
/// end of the window, on stderr beside the row.
async fn report_shedding(base: &str, pid: u32) {
    let Ok(text) = async { reqwest::get(format!("{base}/metrics")).await?.text().await }.await else {
        eprintln!("metrics unavailable");
        return;
    };
    let wanted = ["conclave_media_shed_", "conclave_media_legs_shedding", "conclave_media_workers_overloaded"];
    let shed: Vec<&str> =
        text.lines().filter(|l| !l.starts_with('#') && wanted.iter().any(|w| l.starts_with(w))).collect();
    eprintln!("server RSS at the end: {} KiB; {}", rss_kib(pid), shed.join(", "));
}

/// One run against a `conclave serve` child whose media binds `rtc_host`.
pub(crate) async fn conclave(
    sessions: usize,
    publishers: usize,
    subscribers: usize,
    seconds: u64,
    fps: u32,
    video_bytes: usize,
    rtc_host: &str,
) -> anyhow::Result<Row> {
    crate::raise_fd_limit();
    static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("conclave-bench-media-{}-{n}", std::process::id()));
    let (key, secret) = {
        let store = open_store(&dir).await?;
        let p = conclave_server::provision::create_project(&store, "bench", None).await?;
        (p.api_key, p.api_secret)
    };
    let flags = [
        "--rtc-host",
        rtc_host,
        "--rtc-port",
        "0",
        "--connect-rate-per-ip",
        "0",
        "--rest-rate-per-ip",
        "0",
        "--rest-rate-per-key",
        "0",
        "--metrics-allow",
        "127.0.0.1/32",
    ];
    let (mut child, base) = spawn_server(&dir, &flags).await?;
    let pid = child.id().unwrap_or(0);
    let sdk = Client::new(&key, &secret, &base)?;
    let ws = format!("{}/v1/signal", base.replace("http://", "ws://"));
    let cfg = |source: u32| bot_config(source, fps, video_bytes);

    // Publishers first, so the RSS step below is the subscribers' alone.
    let mut pub_clients = Vec::new();
    let mut pub_bots = Vec::new();
    let mut streams: Vec<Vec<String>> = Vec::new();
    let mut session_ids = Vec::new();
    for s in 0..sessions {
        let sid = sdk.create_session(&SessionOptions::routed()).await?.session_id;
        let mut ids = Vec::new();
        for p in 0..publishers {
            let t = sdk.generate_token(&sid, &TokenOptions::new(Role::Publisher))?;
            let mut c = Participant::connect(&ws, &sid, &t).await?;
            let stream = c.publish(PublishOptions::default()).await?;
            let bot = publish_routed(&mut c, &stream.stream_id, cfg((s * publishers + p) as u32)).await?;
            bot.wait_connected(Duration::from_secs(10)).await?;
            ids.push(stream.stream_id);
            pub_clients.push(c);
            pub_bots.push(bot);
        }
        streams.push(ids);
        session_ids.push(sid);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let mut sub_bots = Vec::new();
    let mut pumps = tokio::task::JoinSet::new();
    for (s, sid) in session_ids.iter().enumerate() {
        for _ in 0..subscribers {
            let t = sdk.generate_token(sid, &TokenOptions::new(Role::Subscriber))?;
            let mut c = Participant::connect(&ws, sid, &t).await?;
            for id in &streams[s] {
                c.subscribe(id).await?;
            }
            let bot = Arc::new(receive_routed(&mut c, cfg(u32::MAX)).await?);
            sub_bots.push(bot.clone());
            let stop = stop.clone();
            pumps.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    bot.pump(&mut c, Duration::from_millis(200)).await?;
                }
                Ok::<_, conclave_client::media::MediaError>(c)
            });
        }
    }
    let row = measure(pid, &pub_bots, &sub_bots, publishers, subscribers, seconds, rss_before).await;
    report_shedding(&base, pid).await;
    stop.store(true, Ordering::Relaxed);
    while pumps.join_next().await.is_some() {}
    drop(sub_bots);
    drop(pub_bots);
    drop(pub_clients);
    let _ = nix_kill(&child);
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    row
}
