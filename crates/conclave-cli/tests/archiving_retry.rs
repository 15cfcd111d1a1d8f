//! Upload retries from the fallback store against a real `conclave serve` and a real S3
//! server (moto, SigV4 on, a PutObject-only IAM user). The S3 outage is a TCP forwarder in
//! front of moto that stops listening (connections refused) and listens again on the same
//! port, so the bucket and the credentials survive it: an archive stopped during the outage
//! is `available`; once S3 is back it becomes `uploaded` within seconds (the object holds the
//! archive's sha256, the fallback file is gone, the callback receiver gets `uploaded`), also
//! when the server restarted in between.

mod common;
#[path = "../../conclave-archive/tests/archive/moto.rs"]
#[allow(dead_code)]
mod moto;

use common::*;
use conclave_client::Client;
use conclave_client::PublishOptions;
use conclave_client::clip::EncodedClip;
use conclave_client::media::{BotConfig, MediaBot, publish_routed};
use conclave_sdk::{Role, SessionOptions, TokenOptions};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);
/// Retries 1 s after the failure, then every 2 s at most.
const RETRY: (&str, &str) = ("CONCLAVE_ARCHIVE_UPLOAD_RETRY", "1s,2s");

fn server_args() -> Vec<&'static str> {
    vec![
        "--rtc-host",
        "127.0.0.1",
        "--rtc-port",
        "0",
        "--metrics-allow",
        "127.0.0.1",
        "--allow-private-callbacks",
        "--allow-http-callbacks",
        "--archive-sweep-every",
        "1s",
    ]
}

fn start_server(data: &std::path::Path) -> Server {
    Server::start_with(data, "127.0.0.1:0", &server_args(), "http", &[RETRY])
}

/// A TCP forwarder to `127.0.0.1:to` on a fixed port that can be taken down (listener closed,
/// open connections cut) and brought back.
struct Outage {
    port: u16,
    to: u16,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Outage {
    async fn new(to: u16) -> Outage {
        let o = Outage { port: free_port(), to, tasks: Arc::default() };
        o.up().await;
        o
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn up(&self) {
        let end = Instant::now() + T;
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < end, "cannot listen on {} again: {e}", self.port);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let (to, tasks) = (self.to, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut s3) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut s3).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Stops listening and cuts every open connection.
    fn down(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        self.down();
    }
}

struct Env {
    server: Server,
    p: Project,
    sdk: conclave_sdk::Client,
    dir: tempfile::TempDir,
    clip: Arc<EncodedClip>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let p = create_project(&data);
        let server = start_server(&data);
        let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
        let clip_dir = dir.path().join("clip");
        std::fs::create_dir_all(&clip_dir).unwrap();
        let clip = Arc::new(EncodedClip::generate(&clip_dir, 4, 15).unwrap());
        Env { server, p, sdk, dir, clip }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        rest_call(&self.server.base, &self.p, method, path, body).await
    }

    async fn get(&self, id: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, &format!("archive/{id}"), None).await;
        assert_eq!(s, 200, "get: {v}");
        v
    }

    async fn publisher(&self, session: &str) -> (Client, MediaBot) {
        let t = self.sdk.generate_token(session, &TokenOptions::new(Role::Publisher)).unwrap();
        let ws = format!("{}/v1/signal", self.server.base.replace("http://", "ws://"));
        let mut c = Client::connect(&ws, session, &t).await.unwrap();
        let stream = c.publish(PublishOptions::default()).await.unwrap();
        let config = BotConfig { clip: Some(self.clip.clone()), keep_frames: false, ..BotConfig::default() };
        let bot = publish_routed(&mut c, &stream.stream_id, config).await.unwrap();
        bot.wait_connected(T).await.unwrap();
        (c, bot)
    }

    /// Polls until the archive is `status` (within `within`).
    async fn until(&self, id: &str, status: &str, within: Duration) -> Value {
        let end = Instant::now() + within;
        loop {
            let v = self.get(id).await;
            if v["status"] == status {
                return v;
            }
            assert!(
                Instant::now() < end,
                "archive {} after {within:?}, not {status}: {v}\n{}",
                v["status"],
                self.server.logs().lines().rev().take(30).collect::<Vec<_>>().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Records an individual archive for 3 s; `s3.down()` before the stop, so its upload
    /// fails and it ends `available` in the fallback store.
    async fn record_during_outage(&self, s3: &Outage) -> Value {
        let session = self
            .sdk
            .create_session(&SessionOptions { media_mode: conclave_sdk::MediaMode::Routed, ..Default::default() })
            .await
            .unwrap()
            .session_id;
        let publisher = self.publisher(&session).await;
        let (s, started) = self
            .call(reqwest::Method::POST, "archive", Some(json!({"sessionId": session, "outputMode": "individual"})))
            .await;
        assert_eq!(s, 200, "start: {started}");
        let id = started["id"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_secs(3)).await;
        s3.down();
        let (s, v) = self.call(reqwest::Method::POST, &format!("archive/{id}/stop"), None).await;
        assert_eq!(s, 200, "stop: {v}");
        drop(publisher);
        let kept = self.until(&id, "available", Duration::from_secs(90)).await;
        assert!(kept["reason"].as_str().unwrap().contains("upload failed"), "{kept}");
        assert!(self.fallback_file(&id).exists());
        kept
    }

    fn fallback_file(&self, id: &str) -> PathBuf {
        self.data().join("archives/fallback").join(format!("{id}.zip"))
    }
}

fn statuses(calls: &[(u16, String, Vec<u8>)]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.0 == 200)
        .map(|c| serde_json::from_slice::<Value>(&c.2).unwrap()["status"].as_str().unwrap().to_owned())
        .collect()
}

struct S3 {
    moto: moto::Moto,
    outage: Outage,
    admin: conclave_archive::upload::S3Target,
}

/// moto with SigV4, a bucket, a PutObject-only uploader (for Conclave, through the outage
/// forwarder) and an admin (for the test, straight to moto).
async fn s3(e: &Env) -> S3 {
    let moto = moto::Moto::start_with_auth(7);
    moto.create_bucket("archives");
    let (key, secret) = moto.put_only_user("archives");
    let (admin_key, admin_secret) = moto.admin_user();
    remember_secret(&secret);
    remember_secret(&admin_secret);
    let outage = Outage::new(moto.port).await;
    let body = json!({"type": "s3", "config": {"bucket": "archives", "accessKey": key, "secretKey": secret,
        "endpoint": outage.endpoint(), "region": "us-east-1"}, "fallback": "conclave"});
    let (s, v) = e.call(reqwest::Method::PUT, "archive/storage", Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let mut cfg = conclave_archive::upload::S3Config::new("archives", "us-east-1", &admin_key, &admin_secret);
    cfg.endpoint = Some(moto.endpoint());
    cfg.path_style = true;
    let admin = conclave_archive::upload::S3Target::new(&cfg).unwrap();
    S3 { moto, outage, admin }
}

/// The uploaded archive: its object holds the archive's bytes, the local copy is gone, the
/// callback receiver got `uploaded` (after `available`).
async fn assert_uploaded(e: &Env, s3: &S3, done: &Value, kept: &Value, received: &Mutex<Received>) {
    let id = done["id"].as_str().unwrap();
    assert!(done["url"].is_null(), "no URL for uploaded archives: {done}");
    assert_eq!(done["sha256sum"], kept["sha256sum"]);
    assert_eq!(done["size"], kept["size"]);
    use object_store::ObjectStoreExt;
    let object = format!("{}/{id}/archive.zip", e.p.api_key);
    let path = object_store::path::Path::parse(&object).unwrap();
    let bytes = s3.admin.store().get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(conclave_archive::digest::sha256_bytes(&bytes), done["sha256sum"].as_str().unwrap());
    assert!(bytes.starts_with(b"PK"), "the ZIP");
    assert!(!e.fallback_file(id).exists(), "the fallback copy is deleted after the confirmed upload");
    let end = Instant::now() + T;
    loop {
        let calls = received.lock().unwrap().calls.clone();
        let got = statuses(&calls);
        if got.last().map(String::as_str) == Some("uploaded") {
            assert_eq!(got, ["started", "stopped", "available", "uploaded"]);
            let last: Value = serde_json::from_slice(&calls.last().unwrap().2).unwrap();
            assert_eq!(last["id"], id);
            assert_eq!(last["event"], "archive");
            assert_eq!(last["sha256sum"], done["sha256sum"]);
            assert!(last["url"].is_null());
            break;
        }
        assert!(Instant::now() < end, "no uploaded callback: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = reqwest::get(format!("{}/metrics", e.server.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "conclave_archives_uploaded_total 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_failed_is_retried_from_the_fallback_store_when_s3_is_back() {
    let e = Env::new();
    let (hook, received) = receiver(0).await;
    let (s, v) = register_callback(&e.server.base, &e.p, "archive", "status", &hook).await;
    assert_eq!(s, 200, "{v}");
    let s3 = s3(&e).await;
    let kept = e.record_during_outage(&s3.outage).await;
    let id = kept["id"].as_str().unwrap();
    // Retries fail while S3 is down; the archive stays available and downloadable.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let still = e.get(id).await;
    assert_eq!(still["status"], "available", "{still}");
    assert!(e.fallback_file(id).exists());
    assert!(
        e.server.logs().lines().any(|l| l.contains("retrying an archive upload") && l.contains(id)),
        "failed retries are logged"
    );
    s3.outage.up().await;
    let done = e.until(id, "uploaded", Duration::from_secs(8)).await;
    assert_uploaded(&e, &s3, &done, &kept, &received).await;
    drop(s3.moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_retries_the_uploads_its_fallback_store_holds() {
    let mut e = Env::new();
    let (hook, received) = receiver(0).await;
    let (s, v) = register_callback(&e.server.base, &e.p, "archive", "status", &hook).await;
    assert_eq!(s, 200, "{v}");
    let s3 = s3(&e).await;
    let kept = e.record_during_outage(&s3.outage).await;
    let id = kept["id"].as_str().unwrap();
    assert!(e.server.stop(), "graceful stop");
    s3.outage.up().await;
    e.server = start_server(&e.data());
    let done = e.until(id, "uploaded", Duration::from_secs(8)).await;
    assert_uploaded(&e, &s3, &done, &kept, &received).await;
    drop(s3.moto);
}
