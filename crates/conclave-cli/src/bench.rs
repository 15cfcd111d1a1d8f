//! `conclave bench`: reports numbers, never passes or fails.
//!
//! - `tokens`: client-token verifications per second on one core (T1 and HS256 JWT, with the
//!   secret already in memory; RS256 application tokens and REST credentials, with the parsed
//!   public key from the server's cache), i.e. the cost of the verifier itself.
//! - `rest`: session creates per second through the real REST API of a `conclave serve`
//!   child process on loopback, with latency percentiles, using the Rust SDK as the client.

#[path = "bench_archive.rs"]
mod bench_archive;
#[path = "bench_broadcast.rs"]
mod bench_broadcast;
#[path = "bench_cluster.rs"]
mod bench_cluster;
#[path = "bench_janus.rs"]
mod bench_janus;
#[path = "bench_media.rs"]
mod bench_media;
#[path = "bench_otjs.rs"]
mod bench_otjs;
#[path = "bench_soak.rs"]
mod bench_soak;
#[path = "bench_udp.rs"]
mod bench_udp;

use crate::open_store;
use conclave_core::Role;
use conclave_core::token::{TokenParams, mint_jwt, mint_t1, verify};
use conclave_sdk::{Client, SessionOptions};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Client-token verifications per second per core: T1 and HS256 (projects), RS256
    /// (Vonage applications: client tokens and REST credentials).
    Tokens {
        #[arg(long, default_value_t = 1_000_000)]
        iterations: u32,
    },
    /// Concurrent signaling connections held by one server: memory per idle connection, and
    /// join latency at a steady join rate.
    Signal {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Participants per session (every join is announced to the whole session).
        #[arg(long, default_value_t = 10)]
        per_session: usize,
        /// Joins per second during the latency run.
        #[arg(long, default_value_t = 200)]
        join_rate: u32,
        /// Joins measured during the latency run.
        #[arg(long, default_value_t = 2000)]
        latency_joins: usize,
        /// Idle connections of the OpenTok.js wire protocol held afterwards, for its memory
        /// per connection next to protocol v1's (0: skip).
        #[arg(long, default_value_t = 2000)]
        opentok_connections: usize,
    },
    /// Cluster mode: joins and REST commands through the session's node against the same
    /// through another node (redirect, forward), with a local redis-server and 3 nodes.
    Cluster {
        #[arg(long, default_value_t = 200)]
        joins: usize,
        #[arg(long, default_value_t = 500)]
        commands: usize,
    },
    /// Archiving: server CPU per recorded stream, and time and throughput from stop to
    /// available (or uploaded with --s3-endpoint).
    Archive {
        #[arg(long, default_value_t = 4)]
        streams: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// composed or individual.
        #[arg(long, default_value = "composed")]
        output_mode: String,
        #[arg(long)]
        s3_endpoint: Option<String>,
    },
    /// A bounded soak run: waves of participants (some with media) join, publish, signal,
    /// leave and get kicked; fails unless nothing leaked and nothing failed.
    Soak {
        #[arg(long, default_value_t = 180)]
        seconds: u64,
        #[arg(long, default_value_t = 10)]
        sessions: usize,
        /// Participants alive at once.
        #[arg(long, default_value_t = 24)]
        concurrent: usize,
    },
    /// Routed media through the SFU: forwarded packets/s, server CPU per forwarded packet,
    /// added latency, loss and server memory per subscriber (see `bench_media.rs`).
    Media {
        #[arg(long, default_value_t = 4)]
        sessions: usize,
        /// Publishers per session (each sends Opus at 50 packets/s and VP8 at `--fps`).
        #[arg(long, default_value_t = 2)]
        publishers: usize,
        /// Subscribers per session, each subscribed to every publisher of its session.
        #[arg(long, default_value_t = 4)]
        subscribers: usize,
        /// Length of the measured run, after warm-up.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Bytes per VP8 delta frame (one RTP packet each; keyframes are 3x).
        #[arg(long, default_value_t = 1100)]
        video_bytes: usize,
        /// `janus`: also drive Janus 1.1.2's VideoRoom with the same bots and traffic, runs
        /// alternating, and print both and their ratio (see `bench_janus.rs`).
        #[arg(long, value_parser = ["janus"])]
        against: Option<String>,
        /// With `--against`: runs of each server (medians are reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Address the servers' media bind to. Janus needs one on a non-loopback interface.
        #[arg(long, default_value = "127.0.0.1")]
        rtc_host: String,
        /// Janus's `event_loops` (default: the number of cores; 0: a thread per handle).
        #[arg(long)]
        janus_event_loops: Option<usize>,
    },
    /// The kernel's floor under forwarding: CPU of one thread that only sends datagrams to
    /// many loopback sockets with `sendmmsg` (no SFU, no crypto), per datagram, split into
    /// system and user time (see `bench_udp.rs`).
    UdpFloor {
        /// Receiving sockets (the datagrams go to them in turn, as an SFU's go to its subscribers).
        #[arg(long, default_value_t = 80)]
        receivers: usize,
        /// Datagrams per second, sent in 1 ms ticks; 0 sends flat out.
        #[arg(long, default_value_t = 10_000)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 1200)]
        bytes: usize,
    },
    /// Live broadcasts: CPU per broadcast and glass-to-playlist latency of HLS (see
    /// `bench_broadcast.rs`).
    Broadcast {
        #[arg(long, default_value_t = 1)]
        broadcasts: usize,
        /// Streams composed in each broadcast.
        #[arg(long, default_value_t = 2)]
        streams: usize,
        #[arg(long, default_value = "640x480")]
        resolution: String,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// One-second segments and keyframes (the broadcast's `lowLatency`).
        #[arg(long)]
        low_latency: bool,
    },
    /// Session creates per second through the REST API, with p50/p99 latency.
    Rest {
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Concurrent in-flight requests for the throughput run (latency run uses 1).
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Tokens { iterations } => tokens(iterations),
        BenchCommand::Rest { requests, concurrency } => rest(requests, concurrency).await?,
        BenchCommand::Signal { connections, per_session, join_rate, latency_joins, opentok_connections } => {
            signal(connections, per_session, join_rate, latency_joins, opentok_connections).await?
        }
        BenchCommand::Soak { seconds, sessions, concurrent } => {
            if !bench_soak::run(seconds, sessions, concurrent).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        BenchCommand::Media {
            sessions,
            publishers,
            subscribers,
            seconds,
            fps,
            video_bytes,
            against,
            runs,
            rtc_host,
            janus_event_loops,
        } => match against {
            Some(_) => {
                let a = bench_janus::SideBySide {
                    sessions,
                    publishers,
                    subscribers,
                    seconds,
                    fps,
                    video_bytes,
                    rtc_host,
                    runs,
                    event_loops: janus_event_loops,
                };
                bench_janus::run(a).await?
            }
            None => bench_media::run(sessions, publishers, subscribers, seconds, fps, video_bytes, &rtc_host).await?,
        },
        BenchCommand::UdpFloor { receivers, rate, seconds, bytes } => bench_udp::run(receivers, rate, seconds, bytes)?,
        BenchCommand::Broadcast { broadcasts, streams, resolution, seconds, low_latency } => {
            let (width, height) = conclave_core::archive::parse_resolution(&resolution)
                .ok_or_else(|| anyhow::anyhow!("--resolution must look like 640x480"))?;
            let b = bench_broadcast::BroadcastBench { broadcasts, streams, width, height, seconds, low_latency };
            tokio::task::spawn_blocking(move || bench_broadcast::run(b)).await??
        }
        BenchCommand::Cluster { joins, commands } => bench_cluster::run(joins, commands).await?,
        BenchCommand::Archive { streams, seconds, output_mode, s3_endpoint } => {
            bench_archive::run(bench_archive::ArchiveBench { streams, seconds, output_mode, s3_endpoint }).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tokens(iterations: u32) {
    const KEY: &str = "47000001";
    const SECRET: &[u8] = b"5e8ff9bf55ba3508199d22e984129be6f0e1c3d2";
    let session = "1_MX40NzAwMDAwMX5-MTcwMDAwMDAwMDAwMH5rUTNuVDh2WDJwTG05WnJZNHNXYzZIYkp-UH5-";
    let now = 1_700_000_000;
    let classes = vec!["focus".to_owned()];
    let p = TokenParams {
        session_id: session,
        role: Role::Publisher,
        create_time: now,
        expire_time: now + 3600,
        nonce: 424_242,
        connection_data: Some("userId=8c1f2e"),
        initial_layout_classes: &classes,
    };
    println!("| format | token bytes | verifications/s (1 core) | ns/verification |");
    println!("|---|---|---|---|");
    for (name, token) in [("T1", mint_t1(KEY, SECRET, &p)), ("JWT", mint_jwt(KEY, SECRET, &p))] {
        let lookup = |k: &str| (k == KEY).then_some([SECRET]);
        for _ in 0..10_000 {
            assert!(verify(&token, now, lookup).is_ok());
        }
        let started = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(verify(std::hint::black_box(&token), now, lookup).is_ok());
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "| {name} | {} | {:.0} | {:.0} |",
            token.len(),
            f64::from(iterations) / secs,
            secs * 1e9 / f64::from(iterations)
        );
    }
    rs256_tokens(session, now, &classes, (iterations / 20).max(1000));
}

/// RS256 rows: a Vonage application's client token and REST credential, verified as the server
/// does (public key from the parsed-key cache), plus the cost the cache avoids (parsing the key
/// on every verification).
fn rs256_tokens(session: &str, now: u64, classes: &[String], iterations: u32) {
    use conclave_core::app_jwt::{AppPublicKey, UnverifiedAppCredential};
    use conclave_core::token::UnverifiedToken;
    use conclave_server::application::{ClientTokenParams, Signer, generate_key_pair};
    use conclave_server::auth::parsed_public_key;
    const APP: &str = "29f760f8-7ce1-46c9-ade3-f2dedee4ed5f";
    let (private, der) = generate_key_pair().expect("RSA key generation");
    let signer = Signer::from_pem(&private).expect("a generated key parses");
    let p = ClientTokenParams {
        session_id: session,
        role: Role::Publisher,
        issued_at: now,
        expires_at: now + 3600,
        connection_data: Some("userId=8c1f2e"),
        initial_layout_classes: classes,
    };
    let client = signer.client_token(APP, &p);
    let rest = signer.rest_credential(APP, now, 900);
    let verify_client = |token: &str, key: &AppPublicKey| {
        let t = UnverifiedToken::parse(token).ok()?;
        t.key_matches(key).then_some(())?;
        t.into_claims(now).ok().map(|_| ())
    };
    let verify_rest = |token: &str, key: &AppPublicKey| {
        let c = UnverifiedAppCredential::parse(token).ok()?;
        c.signature_matches(key).then_some(())?;
        c.into_credential(now).ok().map(|_| ())
    };
    type Verify<'a> = Box<dyn Fn(&str) -> Option<()> + 'a>;
    let rows: [(&str, &str, Verify<'_>); 3] = [
        ("RS256 JWT (application client token)", &client, Box::new(|t| verify_client(t, &*parsed_public_key(&der)?))),
        ("RS256 JWT (application REST credential)", &rest, Box::new(|t| verify_rest(t, &*parsed_public_key(&der)?))),
        (
            "RS256 JWT, key parsed every time (what the cache avoids)",
            &client,
            Box::new(|t| verify_client(t, &AppPublicKey::from_der(&der).ok()?)),
        ),
    ];
    for (name, token, verify) in rows {
        let n = if name.contains("parsed every time") { (iterations / 5).max(200) } else { iterations };
        for _ in 0..200 {
            assert!(verify(token).is_some(), "{name}");
        }
        let started = Instant::now();
        for _ in 0..n {
            std::hint::black_box(verify(std::hint::black_box(token)).is_some());
        }
        let secs = started.elapsed().as_secs_f64();
        println!("| {name} | {} | {:.0} | {:.0} |", token.len(), f64::from(n) / secs, secs * 1e9 / f64::from(n));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn rest(requests: usize, concurrency: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("conclave-bench-{}", std::process::id()));
    let (key, secret) = {
        let store = open_store(&dir).await?;
        let p = conclave_server::provision::create_project(&store, "bench", None).await?;
        (p.api_key, p.api_secret)
    };
    let (mut child, base) = spawn_server(&dir, &["--rest-rate-per-ip", "0", "--rest-rate-per-key", "0"]).await?;
    let client = std::sync::Arc::new(Client::new(&key, &secret, &base)?);
    let opts = SessionOptions::routed();
    for _ in 0..100 {
        client.create_session(&opts).await?;
    }
    println!("| run | requests | concurrency | creates/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    for c in [1, concurrency] {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..c {
            let client = client.clone();
            let opts = opts.clone();
            let n = requests / c + usize::from(w < requests % c);
            tasks.spawn(async move {
                let mut lat = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    client.create_session(&opts).await?;
                    lat.push(t.elapsed());
                }
                Ok::<_, conclave_sdk::SdkError>(lat)
            });
        }
        let mut lat = Vec::with_capacity(requests);
        while let Some(r) = tasks.join_next().await {
            lat.extend(r??);
        }
        let secs = started.elapsed().as_secs_f64();
        lat.sort();
        println!(
            "| session create | {} | {c} | {:.0} | {:.2} | {:.2} | {:.2} |",
            lat.len(),
            lat.len() as f64 / secs,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0)
        );
    }
    let _ = nix_kill(&child);
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Starts `conclave serve` on a free loopback port; returns the child and its base URL.
pub async fn spawn_server(dir: &std::path::Path, extra: &[&str]) -> anyhow::Result<(tokio::process::Child, String)> {
    use tokio::io::AsyncBufReadExt;
    // `CONCLAVE_BENCH_WRAP=heaptrack` (or `perf record -g --`, …) runs the server under a
    // profiler: where its memory and time go, with the bench's own traffic.
    let exe = std::env::current_exe()?;
    let wrap: Vec<String> =
        std::env::var("CONCLAVE_BENCH_WRAP").unwrap_or_default().split_whitespace().map(String::from).collect();
    let mut command = match wrap.split_first() {
        Some((program, args)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args).arg(exe);
            c
        }
        None => tokio::process::Command::new(exe),
    };
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        // Every bench client comes from one loopback address: the per-address cap (a
        // slowloris defence) would measure itself instead of the server.
        .args(["--max-connections-per-ip", "0"])
        .args(extra)
        .env("CONCLAVE_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("listening on ") {
                return Some(url.to_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| anyhow::anyhow!("server did not start"))?;
    Ok((child, base))
}

/// SIGTERM so the server shuts down gracefully.
fn nix_kill(child: &tokio::process::Child) -> std::io::Result<()> {
    if let Some(pid) = child.id() {
        std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    }
    Ok(())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn signal(
    connections: usize,
    per_session: usize,
    join_rate: u32,
    latency_joins: usize,
    opentok_connections: usize,
) -> anyhow::Result<()> {
    use conclave_client::Client as Participant;
    use conclave_sdk::{Role, TokenOptions};
    crate::raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("conclave-bench-signal-{}", std::process::id()));
    let (key, secret) = {
        let store = open_store(&dir).await?;
        let p = conclave_server::provision::create_project(&store, "bench", None).await?;
        (p.api_key, p.api_secret)
    };
    // The bench joins far faster than one client IP is allowed to by default.
    let (mut child, base) =
        spawn_server(&dir, &["--connect-rate-per-ip", "0", "--rest-rate-per-ip", "0", "--rest-rate-per-key", "0"])
            .await?;
    let pid = child.id().unwrap_or(0);
    let sdk = Client::new(&key, &secret, &base)?;
    let ws = format!("{}/v1/signal", base.replace("http://", "ws://"));
    let sessions_needed = connections.div_ceil(per_session)
        + latency_joins.div_ceil(per_session)
        + opentok_connections.div_ceil(per_session);
    let mut sessions = Vec::with_capacity(sessions_needed);
    for _ in 0..sessions_needed {
        sessions.push(sdk.create_session(&SessionOptions::routed()).await?.session_id);
    }
    let token_for = |i: usize| -> anyhow::Result<(String, String)> {
        let s = sessions[i / per_session].clone();
        let t = sdk.generate_token(&s, &TokenOptions::new(Role::Publisher))?;
        Ok((s, t))
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid);

    // Phase 1: hold `connections` idle participants (joined 64 at a time).
    let mut held = Vec::with_capacity(connections);
    let started = Instant::now();
    for chunk in (0..connections).collect::<Vec<_>>().chunks(64) {
        let mut set = tokio::task::JoinSet::new();
        for &i in chunk {
            let (s, t) = token_for(i)?;
            let ws = ws.clone();
            set.spawn(async move { Participant::connect(&ws, &s, &t).await });
        }
        while let Some(r) = set.join_next().await {
            held.push(r??);
        }
    }
    let fill_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib(pid);
    let per_conn = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / connections as f64;

    // Phase 2: join latency at a steady rate, while the others stay connected.
    let interval = Duration::from_secs_f64(1.0 / f64::from(join_rate));
    let mut ticker = tokio::time::interval(interval);
    let mut set = tokio::task::JoinSet::new();
    for j in 0..latency_joins {
        ticker.tick().await;
        let (s, t) = token_for(connections + j)?;
        let ws = ws.clone();
        set.spawn(async move {
            let t0 = Instant::now();
            let c = Participant::connect(&ws, &s, &t).await;
            (t0.elapsed(), c)
        });
    }
    let mut lat = Vec::with_capacity(latency_joins);
    let mut late = Vec::new();
    while let Some(r) = set.join_next().await {
        let (d, c) = r?;
        late.push(c?);
        lat.push(d);
    }
    lat.sort();
    println!(
        "| connections held | sessions | fill time s | server RSS before MiB | after MiB | bytes per idle connection | join rate/s | joins | join p50 ms | join p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {} | {} | {:.2} | {:.2} |",
        held.len(),
        connections.div_ceil(per_session),
        fill_secs,
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        per_conn,
        join_rate,
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    // Phase 3: idle OpenTok.js-protocol connections, measured the same way.
    if opentok_connections > 0 {
        drop(held);
        drop(late);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_before = rss_kib(pid);
        let first = connections + latency_joins;
        let mut idle = Vec::with_capacity(opentok_connections);
        for chunk in (first..first + opentok_connections).collect::<Vec<_>>().chunks(64) {
            let mut set = tokio::task::JoinSet::new();
            for &i in chunk {
                let (s, t) = token_for(i)?;
                let (base, key) = (base.clone(), key.clone());
                set.spawn(async move { bench_otjs::join(&base, &key, &s, &t).await });
            }
            while let Some(r) = set.join_next().await {
                idle.push(r??);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_after = rss_kib(pid);
        let per_conn = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / opentok_connections as f64;
        println!();
        println!(
            "| protocol | idle connections held | server RSS before MiB | after MiB | bytes per idle connection |"
        );
        println!("|---|---|---|---|---|");
        println!(
            "| OpenTok.js (Rumor) | {} | {:.1} | {:.1} | {:.0} |",
            idle.len(),
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0,
            per_conn
        );
        drop(idle);
    }
    let _ = nix_kill(&child);
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
