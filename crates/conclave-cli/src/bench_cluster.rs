//! `conclave bench cluster`: what cluster mode adds. Starts a `redis-server` and three
//! `conclave serve` nodes on loopback (sharing one data directory's SQLite here; PostgreSQL in
//! production), places a session on node 0, then measures joins and REST commands sent to the
//! session's own node against the same sent to another node (a signaling redirect, a REST
//! forward). Must not touch: server internals.

use super::percentile;
use conclave_client::Client as Participant;
use conclave_sdk::{Client, Role, SessionOptions, TokenOptions};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_port(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "nothing listens on {port} after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn summary(name: &str, lat: &mut [Duration]) {
    lat.sort();
    let total: Duration = lat.iter().sum();
    println!(
        "| {name} | {} | {:.0} | {:.2} | {:.2} |",
        lat.len(),
        lat.len() as f64 / total.as_secs_f64(),
        percentile(lat, 0.5),
        percentile(lat, 0.99)
    );
}

pub async fn run(joins: usize, commands: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("conclave-bench-cluster-{}", std::process::id()));
    let (key, secret) = {
        let store = crate::open_store(&dir).await?;
        let p = conclave_server::provision::create_project(&store, "bench", None).await?;
        (p.api_key, p.api_secret)
    };
    let redis_port = free_port()?;
    let mut redis = tokio::process::Command::new("redis-server")
        .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start redis-server: {e}"))?;
    wait_port(redis_port).await?;
    let mut nodes = Vec::new();
    let mut ports = Vec::new();
    for i in 0..3 {
        let port = free_port()?;
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(&dir)
            .args([
                "--redis-url",
                &format!("redis://127.0.0.1:{redis_port}"),
                "--node-id",
                &format!("bench-{i}"),
                "--advertise-url",
                &format!("http://127.0.0.1:{port}"),
            ])
            .args(["--rest-rate-per-ip", "0", "--rest-rate-per-key", "0", "--connect-rate-per-ip", "0"])
            .env("CONCLAVE_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        wait_port(port).await?;
        nodes.push(child);
        ports.push(port);
    }
    let base = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let ws = |i: usize| format!("ws://127.0.0.1:{}/v1/signal", ports[i]);
    let sdk0 = Client::new(&key, &secret, &base(0))?;
    let session = sdk0.create_session(&SessionOptions::routed()).await?.session_id;
    // The first participant places the session on node 0 and stays.
    let anchor =
        Participant::connect(&ws(0), &session, &sdk0.generate_token(&session, &TokenOptions::new(Role::Publisher))?)
            .await?;
    anyhow::ensure!(anchor.url == ws(0), "the session was not placed on node 0");
    println!("| operation | n | per second (sequential) | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    for (name, via) in [("join through the session's node", 0), ("join through another node (redirect)", 1)] {
        let mut lat = Vec::with_capacity(joins);
        for _ in 0..joins {
            let token = sdk0.generate_token(&session, &TokenOptions::new(Role::Subscriber))?;
            let t = Instant::now();
            let c = Participant::connect(&ws(via), &session, &token).await?;
            lat.push(t.elapsed());
            c.disconnect().await?;
        }
        summary(name, &mut lat);
    }
    for (name, via) in [("REST signal on the session's node", 0), ("REST signal through another node (forwarded)", 2)] {
        let sdk = Client::new(&key, &secret, &base(via))?;
        let mut lat = Vec::with_capacity(commands);
        for _ in 0..commands {
            let t = Instant::now();
            sdk.signal(&session, None, "bench", "x").await?;
            lat.push(t.elapsed());
        }
        summary(name, &mut lat);
    }
    drop(anchor);
    for n in &mut nodes {
        let _ = n.kill().await;
    }
    let _ = redis.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
