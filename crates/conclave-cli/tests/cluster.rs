//! Cluster mode against real processes: a real `redis-server`, a real PostgreSQL 15 and three
//! `conclave serve` nodes, each with its own data directory and loopback port, sharing the
//! database and the master key. Clients may join through any
//! node (they are redirected to the session's node), REST works on every node (forwarded),
//! kicks hold everywhere, `maxParticipants` is exact across nodes, and when the session's
//! node is killed the session is placed again, its archive does not stay `started` and its
//! undelivered webhooks are delivered once, by a survivor.

mod common;
#[path = "../../conclave-store/tests/pg/mod.rs"]
mod pg;

use common::*;
use conclave_client::media::{BotConfig, publish_routed, receive_routed};
use conclave_client::{Client, PublishOptions};
use conclave_sdk::{Role, SessionOptions, TokenOptions};
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// A redis-server on a free loopback port, stopped by PID on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt install redis-server)");
        let deadline = Instant::now() + T;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis { child, port }
    }
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    nodes: Vec<Option<Server>>,
    ports: Vec<u16>,
    data: PathBuf,
    database_url: String,
    redis: Redis,
    _pg: pg::Postgres,
    key: String,
    p: Project,
    _dir: tempfile::TempDir,
}

const MASTER_KEY: &str = "3b7e1f0c9a2d4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f";

impl Cluster {
    fn start(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nodes");
        std::fs::create_dir_all(&data).unwrap();
        let pg = pg::Postgres::start();
        pg.create_database("conclave");
        let database_url = format!("postgres://{}@127.0.0.1:{}/conclave", pg::USER, pg.port());
        let out = Command::new(BIN)
            .args(["project", "create", "--json", "--database-url", &database_url, "--data-dir"])
            .arg(data.join("admin"))
            .env("CONCLAVE_MASTER_KEY", MASTER_KEY)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let p = Project {
            api_key: v["api_key"].as_str().unwrap().into(),
            api_secret: v["api_secret"].as_str().unwrap().into(),
        };
        remember_secret(&p.api_secret);
        let redis = Redis::start(dir.path());
        let mut c = Cluster {
            nodes: Vec::new(),
            ports: Vec::new(),
            data,
            database_url,
            key: String::new(),
            redis,
            _pg: pg,
            p,
            _dir: dir,
        };
        for i in 0..n {
            c.ports.push(free_port());
            let node = c.node(i);
            c.nodes.push(Some(node));
        }
        c.key = c.p.api_key.clone();
        c
    }

    fn node(&self, i: usize) -> Server {
        let port = self.ports[i];
        let listen = format!("127.0.0.1:{port}");
        let advertise = format!("http://127.0.0.1:{port}");
        let id = format!("node-{i}");
        let redis = self.redis.url();
        let extra = [
            "--database-url",
            &self.database_url,
            "--redis-url",
            &redis,
            "--node-id",
            &id,
            "--advertise-url",
            &advertise,
            "--rtc-host",
            "127.0.0.1",
            "--reconnect-grace",
            "1s",
            "--archive-idle-stop",
            "3s",
            "--drain-delay",
            "3s",
            "--allow-private-callbacks",
            "--allow-http-callbacks",
        ];
        Server::start_with(&self.data.join(&id), &listen, &extra, "http", &[("CONCLAVE_MASTER_KEY", MASTER_KEY)])
    }

    fn base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    fn ws(&self, i: usize) -> String {
        format!("ws://127.0.0.1:{}/v1/signal", self.ports[i])
    }

    fn sdk(&self, i: usize) -> conclave_sdk::Client {
        conclave_sdk::Client::new(&self.p.api_key, &self.p.api_secret, &self.base(i)).unwrap()
    }

    fn token(&self, session: &str, role: Role) -> String {
        self.sdk(0).generate_token(session, &TokenOptions::new(role)).unwrap()
    }

    /// A REST call through node `i` (see `common::rest_call`).
    async fn call(
        &self,
        i: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        rest_call(&self.base(i), &self.p, method, path, body).await
    }

    /// The node a client's signaling connection ended on.
    fn host_of(&self, client: &Client) -> usize {
        self.ports.iter().position(|p| client.url.contains(&format!(":{p}/"))).expect("connected to one of the nodes")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_joining_through_different_nodes_meet_and_media_flows() {
    let c = Cluster::start(3);
    let session = c.sdk(1).create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let mut publisher = Client::connect(&c.ws(0), &session, &c.token(&session, Role::Publisher)).await.unwrap();
    let mut viewer = Client::connect(&c.ws(1), &session, &c.token(&session, Role::Subscriber)).await.unwrap();
    let third = Client::connect(&c.ws(2), &session, &c.token(&session, Role::Subscriber)).await.unwrap();
    assert_eq!(publisher.url, viewer.url, "both ended on the session's node");
    assert_eq!(viewer.url, third.url);
    assert_eq!(third.initial_connections().len(), 2, "the third joiner sees the other two");
    let stream = publisher.publish(PublishOptions::default()).await.unwrap();
    let bot = publish_routed(&mut publisher, &stream.stream_id, BotConfig::default()).await.unwrap();
    bot.wait_connected(T).await.unwrap();
    viewer.subscribe(&stream.stream_id).await.unwrap();
    let rx = receive_routed(&mut viewer, BotConfig::default()).await.unwrap();
    let end = Instant::now() + T;
    while rx.with_stats(|s| s.video_frames) < 10 {
        assert!(Instant::now() < end, "no media through the session's node");
        rx.pump(&mut viewer, Duration::from_millis(50)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_on_any_node_reaches_the_session_and_kicks_hold_everywhere() {
    let c = Cluster::start(3);
    let session = c.sdk(0).create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let token = c.token(&session, Role::Publisher);
    let mut victim = Client::connect(&c.ws(0), &session, &token).await.unwrap();
    let host = c.host_of(&victim);
    let other = (host + 1) % 3;
    let connections = c.sdk(other).list_connections(&session).await.unwrap();
    assert_eq!(connections["items"].as_array().unwrap().len(), 1, "forwarded: {connections}");
    c.sdk(other).force_disconnect(&session, &victim.connection_id).await.unwrap();
    victim.wait_disconnected(T).await.unwrap();
    for i in 0..3 {
        match Client::connect(&c.ws(i), &session, &token).await {
            Err(conclave_client::ClientError::Refused { code, .. }) => {
                assert_eq!(code, conclave_client::signal::ErrorCode::TokenRevoked, "node {i}")
            }
            other => panic!("node {i} admitted a kicked token: {:?}", other.map(|c| c.connection_id)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_participants_is_exact_across_nodes() {
    let c = Cluster::start(3);
    let sdk = c.sdk(2);
    let opts = SessionOptions { max_participants: Some(10), ..SessionOptions::routed() };
    let session = sdk.create_session(&opts).await.unwrap().session_id;
    let mut joins = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (ws, token, session) = (c.ws(i % 3), c.token(&session, Role::Subscriber), session.clone());
        joins.spawn(async move { Client::connect(&ws, &session, &token).await });
    }
    let (mut admitted, mut full, mut kept) = (0, 0, Vec::new());
    while let Some(r) = joins.join_next().await {
        match r.unwrap() {
            Ok(client) => {
                admitted += 1;
                kept.push(client);
            }
            Err(conclave_client::ClientError::Refused {
                code: conclave_client::signal::ErrorCode::SessionFull,
                ..
            }) => full += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!((admitted, full), (10, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_session_node_moves_the_session_and_fails_its_archive_cleanly() {
    let mut c = Cluster::start(3);
    let session = c.sdk(0).create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let token = c.token(&session, Role::Publisher);
    let mut a = Client::connect(&c.ws(0), &session, &token).await.unwrap();
    let stream = a.publish(PublishOptions::default()).await.unwrap();
    let _bot = publish_routed(&mut a, &stream.stream_id, BotConfig::default()).await.unwrap();
    let host = c.host_of(&a);
    let other = (host + 1) % 3;
    // An archive recorded on the session's node, started through another node.
    let (status, archive) = c
        .call(
            other,
            reqwest::Method::POST,
            "archive",
            Some(serde_json::json!({"sessionId": session, "outputMode": "individual"})),
        )
        .await;
    assert_eq!(status, 200);
    let id = archive["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut dead = c.nodes[host].take().unwrap();
    let killed = Instant::now();
    dead.child.kill().unwrap(); // SIGKILL
    dead.child.wait().unwrap();
    // The client's reconnection logic: resume fails (its node is gone), so it joins again
    // through the entry URLs it knows (here: every node, as behind a load balancer) and is
    // redirected to the session's new node.
    let entries: Vec<String> = (0..3).map(|i| c.ws(i)).collect();
    let (back, fresh) =
        Client::reconnect(&a, &entries, &session, &token, Duration::from_secs(30)).await.expect("back within 30 s");
    assert!(fresh, "a fresh join: the old node and its connection are gone");
    let rejoin = killed.elapsed();
    assert_ne!(back.url, a.url, "a new node hosts the session");
    println!("back in the session {} ms after kill -9 of its node", rejoin.as_millis());
    // The archive does not stay started: the dead node's recording ends failed with a reason.
    let end = Instant::now() + Duration::from_secs(30);
    let final_status = loop {
        let (_, v) = c.call(other, reqwest::Method::GET, &format!("archive/{id}"), None).await;
        if !matches!(v["status"].as_str(), Some("started" | "paused" | "stopped")) {
            break v;
        }
        assert!(Instant::now() < end, "archive stuck: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(final_status["status"], "failed", "{final_status}");
    assert!(final_status["reason"].as_str().unwrap().contains("stopped responding"));
    drop(dead);
    let _ = &mut c;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_are_controlled_from_any_node_and_served_by_the_recording_node() {
    let c = Cluster::start(3);
    let session = c.sdk(0).create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let clip_dir = c.data.join("clip");
    std::fs::create_dir_all(&clip_dir).unwrap();
    let clip = std::sync::Arc::new(conclave_client::clip::EncodedClip::generate(&clip_dir, 4, 15).unwrap());
    let mut a = Client::connect(&c.ws(0), &session, &c.token(&session, Role::Publisher)).await.unwrap();
    let stream = a.publish(PublishOptions::default()).await.unwrap();
    let bot = publish_routed(
        &mut a,
        &stream.stream_id,
        BotConfig { clip: Some(clip), keep_frames: false, ..BotConfig::default() },
    )
    .await
    .unwrap();
    bot.wait_connected(T).await.unwrap();
    let host = c.host_of(&a);
    let (b, d) = ((host + 1) % 3, (host + 2) % 3);
    let (_, started) = c
        .call(
            b,
            reqwest::Method::POST,
            "archive",
            Some(serde_json::json!({"sessionId": session, "outputMode": "individual"})),
        )
        .await;
    let id = started["id"].as_str().unwrap_or_else(|| panic!("{started}")).to_owned();
    let (again, _) = c.call(d, reqwest::Method::POST, "archive", Some(serde_json::json!({"sessionId": session}))).await;
    assert_eq!(again, 409, "the conflict check sees the archive started through another node");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (stop, _) = c.call(d, reqwest::Method::POST, &format!("archive/{id}/stop"), None).await;
    assert_eq!(stop, 200, "stopped through a third node");
    let end = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let (_, v) = c.call(b, reqwest::Method::GET, &format!("archive/{id}"), None).await;
        if v["status"] == "available" {
            break v;
        }
        assert!(Instant::now() < end && v["status"] != "failed", "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The signed URL verifies on every node (one key from the shared master key), and the
    // file is served by the node that holds it.
    let url = done["url"].as_str().unwrap();
    let on_other = url.replacen(&format!(":{}/", c.ports[host]), &format!(":{}/", c.ports[d]), 1);
    for u in [url.to_owned(), on_other] {
        let resp = reqwest::get(&u).await.unwrap();
        assert_eq!(resp.status(), 200, "{u}");
        let bytes = resp.bytes().await.unwrap();
        assert!(bytes.starts_with(b"PK"));
        assert_eq!(bytes.len() as u64, done["size"].as_u64().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_are_controlled_and_watched_through_any_node() {
    let c = Cluster::start(3);
    let session = c.sdk(0).create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let clip_dir = c.data.join("clip");
    std::fs::create_dir_all(&clip_dir).unwrap();
    let clip = std::sync::Arc::new(conclave_client::clip::EncodedClip::generate(&clip_dir, 4, 15).unwrap());
    let mut a = Client::connect(&c.ws(0), &session, &c.token(&session, Role::Publisher)).await.unwrap();
    let stream = a.publish(PublishOptions::default()).await.unwrap();
    let config = BotConfig { clip: Some(clip), keep_frames: false, ..BotConfig::default() };
    let bot = publish_routed(&mut a, &stream.stream_id, config).await.unwrap();
    bot.wait_connected(T).await.unwrap();
    let host = c.host_of(&a);
    let (b, d) = ((host + 1) % 3, (host + 2) % 3);
    // Started through another node: composed where the session's media is.
    let body = serde_json::json!({"sessionId": session, "outputs": {"hls": {}}});
    let (s, started) = c.call(b, reqwest::Method::POST, "broadcast", Some(body)).await;
    assert_eq!(s, 200, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let hls = started["broadcastUrls"]["hls"].as_str().unwrap().to_owned();
    assert!(hls.contains(&format!(":{}/", c.ports[host])), "served by the composing node: {hls}");
    // Got, watched and stopped through a third node.
    let (s, got) = c.call(d, reqwest::Method::GET, &format!("broadcast/{id}"), None).await;
    assert_eq!((s, got["status"].as_str()), (200, Some("started")), "{got}");
    let via_d = hls.replacen(&format!(":{}/", c.ports[host]), &format!(":{}/", c.ports[d]), 1);
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let r = reqwest::get(&via_d).await.unwrap();
        if r.status() == 200 && r.text().await.unwrap().contains(".ts") {
            break;
        }
        assert!(Instant::now() < end, "the playlist through another node");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (s, stopped) = c.call(d, reqwest::Method::POST, &format!("broadcast/{id}/stop"), None).await;
    assert_eq!((s, stopped["status"].as_str()), (200, Some("stopped")), "{stopped}");
    assert_eq!(reqwest::get(&via_d).await.unwrap().status(), 404);
    drop(bot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_takes_no_new_sessions_and_exits_cleanly() {
    let mut c = Cluster::start(3);
    let sdk = c.sdk(0);
    let first = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let a = Client::connect(&c.ws(0), &first, &c.token(&first, Role::Publisher)).await.unwrap();
    let host = c.host_of(&a);
    let pid = c.nodes[host].as_ref().unwrap().child.id();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While it drains (--drain-delay 3s) it still answers, but places nothing on itself.
    for _ in 0..5 {
        let s = sdk.create_session(&SessionOptions::routed()).await.unwrap().session_id;
        let joined = Client::connect(&c.ws(host), &s, &c.token(&s, Role::Publisher)).await.unwrap();
        assert!(!joined.url.contains(&format!(":{}/", c.ports[host])), "a new session was placed on the draining node");
    }
    let mut node = c.nodes[host].take().unwrap();
    assert!(node.stop(), "the drained node exits cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_undelivered_webhooks_are_delivered_once_by_a_survivor() {
    let mut c = Cluster::start(2);
    // The receiver is down while the session's node tries to deliver.
    let hook_port = free_port();
    let url = format!("http://127.0.0.1:{hook_port}/hook");
    assert_eq!(register_callback(&c.base(0), &c.p, "connection", "created", &url).await.0, 200);
    let session = c.sdk(0).create_session(&SessionOptions::routed()).await.unwrap().session_id;
    let a = Client::connect(&c.ws(0), &session, &c.token(&session, Role::Publisher)).await.unwrap();
    let host = c.host_of(&a);
    let connection = a.connection_id.clone();
    tokio::time::sleep(Duration::from_secs(1)).await; // in the outbox, first attempts failed
    let mut dead = c.nodes[host].take().unwrap();
    dead.child.kill().unwrap(); // SIGKILL: its retries die with it
    dead.child.wait().unwrap();
    drop(a);
    let (_, received) = receiver_on(&format!("127.0.0.1:{hook_port}"), 0).await;
    let ours = |r: &Received| {
        r.calls.iter().filter(|(_, _, body)| String::from_utf8_lossy(body).contains(&connection)).count()
    };
    // The survivor takes the row over once the dead node's heartbeat lapses, and delivers it.
    let end = Instant::now() + Duration::from_secs(30);
    while ours(&received.lock().unwrap()) == 0 {
        assert!(Instant::now() < end, "the dead node's webhook was never delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The dead node comes back under its ID: its row was taken over and delivered, so it does
    // not send it again (nor does the survivor).
    c.nodes[host] = Some(c.node(host));
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(ours(&received.lock().unwrap()), 1, "delivered exactly once");
    drop(dead);
}
