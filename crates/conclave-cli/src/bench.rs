//! `conclave bench`: reports numbers, never passes or fails.
//!
//! - `tokens`: client-token verifications per second on one core (T1 and JWT), with the
//!   secret already in memory, i.e. the cost of the verifier itself.
//! - `rest`: session creates per second through the real REST API of a `conclave serve`
//!   child process on loopback, with latency percentiles, using the Rust SDK as the client.

use crate::open_store;
use conclave_core::Role;
use conclave_core::token::{TokenParams, mint_jwt, mint_t1, verify};
use conclave_sdk::{Client, SessionOptions};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Client-token verifications per second per core.
    Tokens {
        #[arg(long, default_value_t = 1_000_000)]
        iterations: u32,
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
        println!("| {name} | {} | {:.0} | {:.0} |", token.len(), f64::from(iterations) / secs, secs * 1e9 / f64::from(iterations));
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
    let (mut child, base) = spawn_server(&dir, &[]).await?;
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
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
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
