//! Archiving against a real `conclave serve`: str0m bots publish a real VP8/Opus clip through
//! the SFU; archives are recorded, packaged or composed, uploaded to a real S3 server (moto,
//! PutObject-only IAM user, SigV4 on) or kept in the fallback store; checked with ffprobe
//! and ffmpeg. Faults: S3 down, retention, kill -9, callback receiver down.

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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn rtc_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--rtc-host", "127.0.0.1", "--rtc-port", "0", "--metrics-allow", "127.0.0.1", "--allow-private-callbacks", "--allow-http-callbacks"];
    v.extend(extra);
    v
}

struct Env {
    server: Server,
    p: Project,
    sdk: conclave_sdk::Client,
    ws: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
    clip: Arc<EncodedClip>,
}

fn env(extra: &[&str]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &rtc_args(extra));
    Env::around(server, p, dir)
}

impl Env {
    fn around(server: Server, p: Project, dir: tempfile::TempDir) -> Env {
        let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
        let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
        let clip_dir = dir.path().join("clip");
        std::fs::create_dir_all(&clip_dir).unwrap();
        let clip = Arc::new(EncodedClip::generate(&clip_dir, 4, 15).unwrap());
        Env { server, p, sdk, ws, http: reqwest::Client::new(), dir, clip }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn routed(&self) -> String {
        self.sdk.create_session(&SessionOptions { media_mode: conclave_sdk::MediaMode::Routed, ..Default::default() }).await.unwrap().session_id
    }

    async fn publisher(&self, session: &str) -> (Client, MediaBot) {
        let t = self.sdk.generate_token(session, &TokenOptions::new(Role::Publisher)).unwrap();
        let mut c = Client::connect(&self.ws, session, &t).await.unwrap();
        let stream = c.publish(PublishOptions::default()).await.unwrap();
        let bot = publish_routed(&mut c, &stream.stream_id, BotConfig { clip: Some(self.clip.clone()), keep_frames: false, ..BotConfig::default() }).await.unwrap();
        bot.wait_connected(T).await.unwrap();
        (c, bot)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/project/{}/{path}", self.server.base, self.p.api_key)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).header("X-OPENTOK-AUTH", rest_jwt(&self.p));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn start(&self, body: Value) -> Value {
        let (s, v) = self.call(reqwest::Method::POST, "archive", Some(body)).await;
        assert_eq!(s, 200, "start: {v}");
        v
    }

    async fn stop(&self, id: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::POST, &format!("archive/{id}/stop"), None).await;
        assert_eq!(s, 200, "stop: {v}");
        v
    }

    async fn get(&self, id: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, &format!("archive/{id}"), None).await;
        assert_eq!(s, 200, "get: {v}");
        v
    }

    /// Polls until the archive leaves `stopped` (processing and delivery are asynchronous).
    async fn until_done(&self, id: &str) -> Value {
        let end = Instant::now() + Duration::from_secs(90);
        loop {
            let v = self.get(id).await;
            if !matches!(v["status"].as_str(), Some("started" | "paused" | "stopped")) {
                return v;
            }
            assert!(Instant::now() < end, "archive still {}: {}", v["status"], self.server.logs().lines().rev().take(30).collect::<Vec<_>>().join("\n"));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn set_storage(&self, moto: &moto::Moto, key: &str, secret: &str, fallback: &str) -> (u16, Value) {
        let body = json!({"type": "s3", "config": {"bucket": "archives", "accessKey": key, "secretKey": secret, "endpoint": moto.endpoint(), "region": "us-east-1"}, "fallback": fallback});
        self.call(reqwest::Method::PUT, "archive/storage", Some(body)).await
    }

    async fn download(&self, archive: &Value) -> Vec<u8> {
        let url = archive["url"].as_str().unwrap_or_else(|| panic!("no url: {archive}"));
        let resp = reqwest::get(url).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap().to_vec()
    }
}

/// ffprobe: codec names and the container (or longest stream) duration in seconds.
fn probe(file: &Path) -> (Vec<String>, f64, Option<(u64, u64)>) {
    let out = std::process::Command::new("ffprobe").args(["-v", "error", "-show_entries", "stream=codec_name,width,height,duration:format=duration", "-of", "json"]).arg(file).output().unwrap();
    assert!(out.status.success(), "ffprobe {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let mut codecs: Vec<String> = streams.iter().filter_map(|s| s["codec_name"].as_str().map(str::to_owned)).collect();
    codecs.sort();
    let size = streams.iter().find_map(|s| Some((s["width"].as_u64()?, s["height"].as_u64()?)));
    let dur = v["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
    (codecs, dur, size)
}

/// `ffmpeg -v error -f null`: decode everything, return what it complained about.
fn decode_errors(file: &Path) -> String {
    let out = std::process::Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(file).args(["-f", "null", "-"]).output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn unzip(zip: &Path, into: &Path) -> Vec<PathBuf> {
    let out = std::process::Command::new("python3").args(["-m", "zipfile", "-e"]).arg(zip).arg(into).output().unwrap();
    assert!(out.status.success(), "unzip: {}", String::from_utf8_lossy(&out.stderr));
    let mut files: Vec<PathBuf> = std::fs::read_dir(into).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Records `secs` of one (or two) publishers into a new archive and stops it.
async fn record(e: &Env, session: &str, body: Value, publishers: usize, secs: u64) -> (Value, Value) {
    let mut pubs = Vec::new();
    for _ in 0..publishers {
        pubs.push(e.publisher(session).await);
    }
    let started = e.start(body).await;
    assert_eq!(started["status"], "started");
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let stopped = e.stop(started["id"].as_str().unwrap()).await;
    drop(pubs);
    (started, stopped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn individual_archive_is_a_zip_of_decodable_webms_in_the_fallback_store() {
    let e = env(&[]);
    let session = e.routed().await;
    let (started, stopped) = record(&e, &session, json!({"sessionId": session, "outputMode": "individual", "name": "weekly"}), 1, 4).await;
    assert_eq!(started["outputMode"], "individual");
    assert_eq!(started["name"], "weekly");
    assert!(started["createdAt"].as_u64().unwrap() > 1_700_000_000_000, "createdAt in ms");
    assert_eq!(stopped["status"], "stopped");
    let id = started["id"].as_str().unwrap();
    let done = e.until_done(id).await;
    assert_eq!(done["status"], "available", "{done}");
    assert!(done["expiresAt"].as_u64().unwrap() >= done["createdAt"].as_u64().unwrap() + 71 * 3600 * 1000, "72 h retention");
    let bytes = e.download(&done).await;
    assert_eq!(bytes.len() as u64, done["size"].as_u64().unwrap());
    assert!(bytes.starts_with(b"PK"), "a ZIP");
    assert_eq!(conclave_archive::digest::sha256_bytes(&bytes), done["sha256sum"].as_str().unwrap());
    let zip = e.dir.path().join("a.zip");
    std::fs::write(&zip, &bytes).unwrap();
    let files = unzip(&zip, &e.dir.path().join("unz"));
    let webms: Vec<&PathBuf> = files.iter().filter(|f| f.extension().is_some_and(|x| x == "webm")).collect();
    let manifest: Value = serde_json::from_slice(&std::fs::read(files.iter().find(|f| f.extension().is_some_and(|x| x == "json")).unwrap()).unwrap()).unwrap();
    assert_eq!(webms.len(), 1, "{files:?}");
    assert_eq!(manifest["files"].as_array().unwrap().len(), 1);
    let (codecs, dur, _) = probe(webms[0]);
    assert_eq!(codecs, ["opus", "vp8"]);
    let duration = done["duration"].as_u64().unwrap() as f64;
    assert!((dur - duration).abs() <= 1.0 + 0.5, "ffprobe {dur} s vs archive {duration} s");
    assert!(dur >= 2.5, "recorded {dur} s of a 4 s run");
    assert_eq!(decode_errors(webms[0]), "", "decodes cleanly");
    // The local copy goes at once on DELETE, and a later GET says so.
    let listed = std::process::Command::new(BIN).args(["archive", "list", "--status", "available", "--data-dir"]).arg(e.data()).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(id), "archive list shows it");
    let (s, _) = e.call(reqwest::Method::DELETE, &format!("archive/{id}"), None).await;
    assert_eq!(s, 204);
    let gone = e.get(id).await;
    assert_eq!(gone["status"], "deleted");
    assert!(gone["url"].is_null());
    assert_eq!(std::fs::read_dir(e.data().join("archives/fallback")).unwrap().count(), 0, "the file is gone");
    assert!(!e.call(reqwest::Method::GET, "archive", None).await.1["items"].as_array().unwrap().iter().any(|a| a["id"] == id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composed_archive_uploads_with_a_put_object_only_user() {
    let moto = moto::Moto::start_with_auth(7);
    moto.create_bucket("archives");
    let (key, secret) = moto.put_only_user("archives");
    let (admin_key, admin_secret) = moto.admin_user();
    let e = env(&[]);
    let (s, v) = e.set_storage(&moto, &key, &secret, "conclave").await;
    assert_eq!(s, 200, "{v}");
    assert!(!v.to_string().contains(&secret), "the secret key is never echoed");
    let (s, v) = e.set_storage(&moto, &key, &format!("{secret}x"), "conclave").await;
    assert_eq!(s, 400, "a wrong secret fails the save-time PutObject check: {v}");
    let session = e.routed().await;
    let (started, _) = record(&e, &session, json!({"sessionId": session, "resolution": "640x480"}), 2, 4).await;
    let id = started["id"].as_str().unwrap();
    let done = e.until_done(id).await;
    assert_eq!(done["status"], "uploaded", "{done}");
    assert!(done["url"].is_null(), "no URL for uploaded archives");
    let mut cfg = conclave_archive::upload::S3Config::new("archives", "us-east-1", &admin_key, &admin_secret);
    cfg.endpoint = Some(moto.endpoint());
    cfg.path_style = true;
    let admin = conclave_archive::upload::S3Target::new(&cfg).unwrap();
    use object_store::ObjectStoreExt;
    let object = format!("{}/{id}/archive.mp4", e.p.api_key);
    let bytes = admin.store().get(&object_store::path::Path::parse(&object).unwrap()).await.unwrap().bytes().await.unwrap();
    assert_eq!(conclave_archive::digest::sha256_bytes(&bytes), done["sha256sum"].as_str().unwrap());
    let mp4 = e.dir.path().join("composed.mp4");
    std::fs::write(&mp4, &bytes).unwrap();
    let (codecs, dur, size) = probe(&mp4);
    assert_eq!(codecs, ["aac", "h264"]);
    assert_eq!(size, Some((640, 480)));
    assert!((dur - done["duration"].as_u64().unwrap() as f64).abs() <= 1.5, "ffprobe {dur} vs {}", done["duration"]);
    assert_eq!(decode_errors(&mp4), "");
    assert!(std::fs::read_dir(e.data().join("archives/work")).unwrap().next().is_none(), "local files deleted after the confirmed upload");
    assert_eq!(std::fs::read_dir(e.data().join("archives/fallback")).unwrap().count(), 0);
}
