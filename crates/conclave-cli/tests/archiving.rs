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
    let mut v = vec![
        "--rtc-host",
        "127.0.0.1",
        "--rtc-port",
        "0",
        "--metrics-allow",
        "127.0.0.1",
        "--allow-private-callbacks",
        "--allow-http-callbacks",
    ];
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
        self.sdk
            .create_session(&SessionOptions { media_mode: conclave_sdk::MediaMode::Routed, ..Default::default() })
            .await
            .unwrap()
            .session_id
    }

    async fn publisher(&self, session: &str) -> (Client, MediaBot) {
        let (c, bot, _) = self.publisher_with(session, self.clip.clone(), &[]).await;
        (c, bot)
    }

    /// A publisher of `clip` whose token carries `classes` (its streams' layout classes), and
    /// its stream ID.
    async fn publisher_with(
        &self,
        session: &str,
        clip: Arc<EncodedClip>,
        classes: &[&str],
    ) -> (Client, MediaBot, String) {
        let mut options = TokenOptions::new(Role::Publisher);
        options.initial_layout_classes = classes.iter().map(|c| c.to_string()).collect();
        let t = self.sdk.generate_token(session, &options).unwrap();
        let mut c = Client::connect(&self.ws, session, &t).await.unwrap();
        let stream = c.publish(PublishOptions::default()).await.unwrap();
        let bot = publish_routed(
            &mut c,
            &stream.stream_id,
            BotConfig { clip: Some(clip), keep_frames: false, ..BotConfig::default() },
        )
        .await
        .unwrap();
        bot.wait_connected(T).await.unwrap();
        (c, bot, stream.stream_id)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/project/{}/{path}", self.server.base, self.p.api_key)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        rest_call(&self.server.base, &self.p, method, path, body).await
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
            assert!(
                Instant::now() < end,
                "archive still {}: {}",
                v["status"],
                self.server.logs().lines().rev().take(30).collect::<Vec<_>>().join("\n")
            );
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
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,duration:format=duration",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .unwrap();
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
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
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
    let requests_before: Vec<usize> = pubs.iter().map(|(_, b)| b.with_stats(|s| s.keyframe_requests.len())).collect();
    let started = e.start(body).await;
    assert_eq!(started["status"], "started");
    tokio::time::sleep(Duration::from_secs(secs)).await;
    for ((_, b), before) in pubs.iter().zip(requests_before) {
        assert!(b.with_stats(|s| s.keyframe_requests.len()) > before, "recording asks each publisher for a keyframe");
    }
    let stopped = e.stop(started["id"].as_str().unwrap()).await;
    drop(pubs);
    (started, stopped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn individual_archive_is_a_zip_of_decodable_webms_in_the_fallback_store() {
    let e = env(&[]);
    let session = e.routed().await;
    let (started, stopped) =
        record(&e, &session, json!({"sessionId": session, "outputMode": "individual", "name": "weekly"}), 1, 4).await;
    assert_eq!(started["outputMode"], "individual");
    assert_eq!(started["name"], "weekly");
    assert!(started["createdAt"].as_u64().unwrap() > 1_700_000_000_000, "createdAt in ms");
    assert_eq!(stopped["status"], "stopped");
    let id = started["id"].as_str().unwrap();
    let done = e.until_done(id).await;
    assert_eq!(done["status"], "available", "{done}");
    assert!(
        done["expiresAt"].as_u64().unwrap() >= done["createdAt"].as_u64().unwrap() + 71 * 3600 * 1000,
        "72 h retention"
    );
    let metrics = reqwest::get(format!("{}/metrics", e.server.base)).await.unwrap().text().await.unwrap();
    for line in [
        "conclave_archives{status=\"available\"} 1",
        "conclave_archives_started_total 1",
        "conclave_archives_available_total 1",
        "conclave_archives_recording 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line} in\n{metrics}");
    }
    let bytes = e.download(&done).await;
    assert_eq!(bytes.len() as u64, done["size"].as_u64().unwrap());
    assert!(bytes.starts_with(b"PK"), "a ZIP");
    assert_eq!(conclave_archive::digest::sha256_bytes(&bytes), done["sha256sum"].as_str().unwrap());
    let zip = e.dir.path().join("a.zip");
    std::fs::write(&zip, &bytes).unwrap();
    let files = unzip(&zip, &e.dir.path().join("unz"));
    let webms: Vec<&PathBuf> = files.iter().filter(|f| f.extension().is_some_and(|x| x == "webm")).collect();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(files.iter().find(|f| f.extension().is_some_and(|x| x == "json")).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(webms.len(), 1, "{files:?}");
    assert_eq!(manifest["files"].as_array().unwrap().len(), 1);
    let (codecs, dur, _) = probe(webms[0]);
    assert_eq!(codecs, ["opus", "vp8"]);
    let entry = &manifest["files"][0];
    let span = (entry["stopTimeOffset"].as_u64().unwrap() - entry["startTimeOffset"].as_u64().unwrap()) as f64 / 1000.0;
    assert!((dur - span).abs() <= 1.0, "ffprobe {dur} s vs manifest {span} s");
    let duration = done["duration"].as_u64().unwrap() as f64;
    assert!(
        duration >= span && duration - dur <= 1.0 + entry["startTimeOffset"].as_u64().unwrap() as f64 / 1000.0,
        "archive {duration} s vs file {dur} s"
    );
    assert!(dur >= 2.5, "recorded {dur} s of a 4 s run");
    assert_eq!(decode_errors(webms[0]), "", "decodes cleanly");
    // The local copy goes at once on DELETE, and a later GET says so.
    let listed = std::process::Command::new(BIN)
        .args(["archive", "list", "--status", "available", "--data-dir"])
        .arg(e.data())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(id), "archive list shows it");
    let (s, _) = e.call(reqwest::Method::DELETE, &format!("archive/{id}"), None).await;
    assert_eq!(s, 204);
    let gone = e.get(id).await;
    assert_eq!(gone["status"], "deleted");
    assert!(gone["url"].is_null());
    assert_eq!(std::fs::read_dir(e.data().join("archives/fallback")).unwrap().count(), 0, "the file is gone");
    assert!(
        !e.call(reqwest::Method::GET, "archive", None).await.1["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composed_archive_uploads_with_a_put_object_only_user() {
    let moto = moto::Moto::start_with_auth(7);
    moto.create_bucket("archives");
    let (key, secret) = moto.put_only_user("archives");
    let (admin_key, admin_secret) = moto.admin_user();
    remember_secret(&secret);
    remember_secret(&admin_secret);
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
    let bytes =
        admin.store().get(&object_store::path::Path::parse(&object).unwrap()).await.unwrap().bytes().await.unwrap();
    assert_eq!(conclave_archive::digest::sha256_bytes(&bytes), done["sha256sum"].as_str().unwrap());
    let mp4 = e.dir.path().join("composed.mp4");
    std::fs::write(&mp4, &bytes).unwrap();
    let (codecs, dur, size) = probe(&mp4);
    assert_eq!(codecs, ["aac", "h264"]);
    assert_eq!(size, Some((640, 480)));
    assert!((dur - done["duration"].as_u64().unwrap() as f64).abs() <= 1.0, "ffprobe {dur} vs {}", done["duration"]);
    assert_eq!(decode_errors(&mp4), "");
    assert!(
        std::fs::read_dir(e.data().join("archives/work")).unwrap().next().is_none(),
        "local files deleted after the confirmed upload"
    );
    assert_eq!(std::fs::read_dir(e.data().join("archives/fallback")).unwrap().count(), 0);
}

/// A minimal SMTP server on loopback that keeps each message's DATA.
async fn smtp_sink() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(std::sync::Mutex::new(Vec::new()));
    let m = mails.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let m = m.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(d) = data.as_mut() {
                        if line == "." {
                            m.lock().unwrap().push(data.take().unwrap());
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            d.push_str(&line);
                            d.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mails)
}

async fn register_archive_callback(e: &Env, url: &str) {
    let (s, v) = register_callback(&e.server.base, &e.p, "archive", "status", url).await;
    assert_eq!(s, 200, "{v}");
}

fn statuses(calls: &[(u16, String, Vec<u8>)]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.0 == 200)
        .map(|c| serde_json::from_slice::<Value>(&c.2).unwrap()["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_falls_back_raises_alerts_and_is_downloadable_then_deletable() {
    let moto = moto::Moto::start();
    moto.create_bucket("archives");
    let (smtp_port, mails) = smtp_sink().await;
    let port = smtp_port.to_string();
    let e = env(&[
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port,
        "--smtp-security",
        "none",
        "--smtp-to",
        "ops@example.com",
    ]);
    let (hook, received) = receiver(0).await;
    register_archive_callback(&e, &hook).await;
    let (s, v) = e.set_storage(&moto, "testing", "testing", "conclave").await;
    assert_eq!(s, 200, "{v}");
    let session = e.routed().await;
    let mut pubs = vec![e.publisher(&session).await];
    let started = e.start(json!({"sessionId": session, "outputMode": "individual"})).await;
    let id = started["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(moto); // the bucket goes away before the upload
    e.stop(&id).await;
    pubs.clear();
    let done = e.until_done(&id).await;
    assert_eq!(done["status"], "available", "{done}");
    assert!(done["reason"].as_str().unwrap().contains("upload failed"), "{done}");
    // Alert: callback with the reason, an error log line, an email.
    let end = Instant::now() + T;
    while !statuses(&received.lock().unwrap().calls).contains(&"available".to_owned()) {
        assert!(Instant::now() < end, "no available callback: {:?}", statuses(&received.lock().unwrap().calls));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = received.lock().unwrap().calls.clone();
    assert_eq!(statuses(&calls), ["started", "stopped", "available"]);
    let last: Value = serde_json::from_slice(&calls.last().unwrap().2).unwrap();
    assert!(last["reason"].as_str().unwrap().contains("upload failed"));
    assert_eq!(last["event"], "archive");
    assert!(calls.iter().all(|c| c.1.starts_with("Bearer ")), "signed like the session webhooks");
    assert!(
        e.server.logs().lines().any(|l| l.contains("ERROR") && l.contains("ALERT") && l.contains(&id)),
        "alert logged at error level"
    );
    let metrics = reqwest::get(format!("{}/metrics", e.server.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "conclave_archive_upload_failures_total 1"), "{metrics}");
    let end = Instant::now() + T;
    while mails.lock().unwrap().is_empty() {
        assert!(Instant::now() < end, "no alert email");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(mails.lock().unwrap()[0].contains(&id), "the email names the archive");
    // Download works (signed URL and CLI), then delete removes it at once.
    let bytes = e.download(&done).await;
    assert!(bytes.starts_with(b"PK"));
    let out = e.dir.path().join("cli.zip");
    let dl = std::process::Command::new(BIN)
        .args(["archive", "download", &id, "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(e.data())
        .output()
        .unwrap();
    assert!(dl.status.success(), "{}", String::from_utf8_lossy(&dl.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let tampered = done["url"].as_str().unwrap().replace("signature=", "signature=0");
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
    let (s, _) = e.call(reqwest::Method::DELETE, &format!("archive/{id}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(e.get(&id).await["status"], "deleted");
    assert_eq!(reqwest::get(done["url"].as_str().unwrap()).await.unwrap().status(), 404, "the old URL serves nothing");
    let audit = String::from_utf8(
        std::process::Command::new(BIN).args(["audit", "--data-dir"]).arg(e.data()).output().unwrap().stdout,
    )
    .unwrap();
    assert!(audit.contains("archive.storage_set") && audit.contains("archive.delete"), "{audit}");
    assert!(!audit.contains("testing\""), "no secret key in the audit detail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_copies_expire_after_the_retention_period() {
    let e = env(&["--archive-retention", "4s", "--archive-sweep-every", "1s"]);
    let session = e.routed().await;
    let (started, _) = record(&e, &session, json!({"sessionId": session, "outputMode": "individual"}), 1, 2).await;
    let id = started["id"].as_str().unwrap();
    let done = e.until_done(id).await;
    assert_eq!(done["status"], "available");
    let file = e.data().join("archives/fallback").join(format!("{id}.zip"));
    assert!(file.exists());
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let v = e.get(id).await;
        if v["status"] == "expired" {
            assert!(v["url"].is_null());
            break;
        }
        assert!(Instant::now() < end, "not expired: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!file.exists(), "the expired file is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_recording_is_recovered_on_the_next_start() {
    let mut e = env(&[]);
    let session = e.routed().await;
    let pubs = e.publisher(&session).await;
    let started = e.start(json!({"sessionId": session, "outputMode": "individual"})).await;
    let id = started["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(4)).await;
    e.server.child.kill().unwrap(); // SIGKILL
    e.server.child.wait().unwrap();
    drop(pubs);
    e.server = Server::start(&e.data(), &rtc_args(&[]));
    let done = e.until_done(&id).await;
    assert_eq!(done["status"], "available", "{done}");
    assert!(done["reason"].as_str().unwrap().contains("restart"), "{done}");
    let zip = e.dir.path().join("recovered.zip");
    std::fs::write(&zip, e.download(&done).await).unwrap();
    let files = unzip(&zip, &e.dir.path().join("rec"));
    let webm = files.iter().find(|f| f.extension().is_some_and(|x| x == "webm")).unwrap();
    let (codecs, dur, _) = probe(webm);
    assert_eq!(codecs, ["opus", "vp8"]);
    assert!(dur >= 1.5, "most of the 4 s survived: {dur}");
    assert_eq!(decode_errors(webm), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_callbacks_arrive_later_in_order_when_the_receiver_was_down() {
    let e = env(&[]);
    let addr = format!("127.0.0.1:{}", free_port());
    register_archive_callback(&e, &format!("http://{addr}/hook")).await;
    let session = e.routed().await;
    let (started, _) = record(&e, &session, json!({"sessionId": session, "outputMode": "individual"}), 1, 2).await;
    let done = e.until_done(started["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "available");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, received) = receiver_on(&addr, 0).await;
    let end = Instant::now() + Duration::from_secs(30);
    while statuses(&received.lock().unwrap().calls).len() < 3 {
        assert!(Instant::now() < end, "callbacks did not arrive: {:?}", statuses(&received.lock().unwrap().calls));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(statuses(&received.lock().unwrap().calls), ["started", "stopped", "available"]);
}

/// True when `bytes` holds a WebM/Matroska, MP4 or ZIP signature anywhere.
fn has_plaintext_media(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == [0x1a, 0x45, 0xdf, 0xa3] || w == b"ftyp" || w == b"PK\x03\x04" || w == b"OpusHead")
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()) {
        if entry.file_type().unwrap().is_dir() {
            all_files(&entry.path(), out);
        } else {
            out.push(entry.path());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_archives_never_exist_in_plaintext_and_decrypt_with_the_customer_key() {
    let e = env(&[]);
    let key = e.dir.path().join("customer.key");
    let keygen =
        std::process::Command::new("age-keygen").arg("-o").arg(&key).output().expect("age-keygen (apt install age)");
    assert!(keygen.status.success());
    let public =
        String::from_utf8(std::process::Command::new("age-keygen").arg("-y").arg(&key).output().unwrap().stdout)
            .unwrap();
    let (s, v) = e.call(reqwest::Method::PUT, "archive/encryption", Some(json!({"publicKey": "age1notakey"}))).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = e.call(reqwest::Method::PUT, "archive/encryption", Some(json!({"publicKey": public.trim()}))).await;
    assert_eq!(s, 200, "{v}");
    let session = e.routed().await;
    let pubs = vec![e.publisher(&session).await];
    let started = e.start(json!({"sessionId": session, "resolution": "640x480"})).await;
    assert_eq!(started["encrypted"], true);
    let id = started["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // While recording: only ciphertext on disk.
    let mut files = Vec::new();
    all_files(&e.data(), &mut files);
    for f in &files {
        assert!(!has_plaintext_media(&std::fs::read(f).unwrap()), "plaintext media in {} while recording", f.display());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    e.stop(&id).await;
    drop(pubs);
    let done = e.until_done(&id).await;
    assert_eq!(done["status"], "available", "{done}");
    let bytes = e.download(&done).await;
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    assert!(!has_plaintext_media(&bytes), "the delivered object is not a readable MP4/WebM/ZIP");
    let mut files = Vec::new();
    all_files(&e.data(), &mut files);
    for f in &files {
        assert!(!has_plaintext_media(&std::fs::read(f).unwrap()), "plaintext media left in {}", f.display());
    }
    let enc = e.dir.path().join("archive.mp4.age");
    std::fs::write(&enc, &bytes).unwrap();
    let by_cli = e.dir.path().join("by-conclave.mp4");
    let out = std::process::Command::new(BIN)
        .args(["archive", "decrypt", "--identity"])
        .arg(&key)
        .arg(&enc)
        .arg(&by_cli)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let by_age = e.dir.path().join("by-age.mp4");
    let out = std::process::Command::new("age")
        .args(["-d", "-i"])
        .arg(&key)
        .arg("-o")
        .arg(&by_age)
        .arg(&enc)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&by_cli).unwrap(), std::fs::read(&by_age).unwrap());
    let (codecs, dur, size) = probe(&by_age);
    assert_eq!(codecs, ["aac", "h264"]);
    assert_eq!(size, Some((640, 480)));
    assert!(dur >= 2.5, "{dur}");
    assert_eq!(decode_errors(&by_age), "");
    let wrong = e.dir.path().join("other.key");
    std::process::Command::new("age-keygen").arg("-o").arg(&wrong).output().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["archive", "decrypt", "--identity"])
        .arg(&wrong)
        .arg(&enc)
        .arg(e.dir.path().join("x.mp4"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "another key cannot decrypt");
}

/// Encrypted individual archives: each stream was recorded live through age (no Duration), and
/// packaging writes the Duration back, so the decrypted ZIP's WebM says how long it is, as a
/// plain archive's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_individual_archives_keep_each_streams_duration() {
    let e = env(&[]);
    let key = e.dir.path().join("customer.key");
    let keygen =
        std::process::Command::new("age-keygen").arg("-o").arg(&key).output().expect("age-keygen (apt install age)");
    assert!(keygen.status.success());
    let public =
        String::from_utf8(std::process::Command::new("age-keygen").arg("-y").arg(&key).output().unwrap().stdout)
            .unwrap();
    let (s, v) = e.call(reqwest::Method::PUT, "archive/encryption", Some(json!({"publicKey": public.trim()}))).await;
    assert_eq!(s, 200, "{v}");
    let session = e.routed().await;
    let (started, _) = record(&e, &session, json!({"sessionId": session, "outputMode": "individual"}), 1, 4).await;
    assert_eq!(started["encrypted"], true);
    let done = e.until_done(started["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "available", "{done}");
    let enc = e.dir.path().join("archive.zip.age");
    std::fs::write(&enc, e.download(&done).await).unwrap();
    let zip = e.dir.path().join("archive.zip");
    let out =
        std::process::Command::new("age").args(["-d", "-i"]).arg(&key).arg("-o").arg(&zip).arg(&enc).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files = unzip(&zip, &e.dir.path().join("unz"));
    let webm = files.iter().find(|f| f.extension().is_some_and(|x| x == "webm")).expect("a WebM in the ZIP");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(files.iter().find(|f| f.extension().is_some_and(|x| x == "json")).unwrap()).unwrap(),
    )
    .unwrap();
    let entry = &manifest["files"][0];
    let span = (entry["stopTimeOffset"].as_u64().unwrap() - entry["startTimeOffset"].as_u64().unwrap()) as f64 / 1000.0;
    let (codecs, dur, _) = probe(webm);
    assert_eq!(codecs, ["opus", "vp8"]);
    assert!(dur >= 2.5, "the decrypted WebM carries its duration: {dur} s of a 4 s run");
    assert!((dur - span).abs() <= span * 0.1, "ffprobe {dur} s vs manifest {span} s");
    assert_eq!(decode_errors(webm), "", "decodes cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_rules_conflicts_and_bad_input() {
    let e = env(&[]);
    let routed = e.routed().await;
    let relayed = e.sdk.create_session(&SessionOptions::default()).await.unwrap().session_id;
    let e2ee = e
        .sdk
        .create_session(&SessionOptions {
            media_mode: conclave_sdk::MediaMode::Routed,
            e2ee: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .session_id;
    let post = |b: Value| e.call(reqwest::Method::POST, "archive", Some(b));
    let (s, v) = post(json!({"sessionId": relayed})).await;
    assert_eq!(s, 409, "relayed: {v}");
    assert!(v["message"].as_str().unwrap().contains("routed"));
    let (s, v) = post(json!({"sessionId": e2ee})).await;
    assert_eq!(s, 409, "e2ee: {v}");
    let (s, _) = post(json!({"sessionId": "1_MX4xMjM0NTZ-fjE2OTk5OTk5OTk5OTl-bm9wZQ-fg"})).await;
    assert_eq!(s, 404);
    for bad in [
        json!({}),
        json!({"sessionId": routed, "hasAudio": false, "hasVideo": false}),
        json!({"sessionId": routed, "outputMode": "individual", "resolution": "640x480"}),
        json!({"sessionId": routed, "outputMode": "3d"}),
    ] {
        let (s, v) = post(bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(v["message"].is_string());
    }
    let first = e.start(json!({"sessionId": routed})).await;
    let (s, v) = post(json!({"sessionId": routed})).await;
    assert_eq!(s, 409, "already recording: {v}");
    let (s, _) = post(json!({"sessionId": routed, "multiArchiveTag": "backup"})).await;
    assert_eq!(s, 200, "a distinct multiArchiveTag records twice");
    let (s, _) = post(json!({"sessionId": routed, "multiArchiveTag": "backup"})).await;
    assert_eq!(s, 409, "but not thrice with the same tag");
    let id = first["id"].as_str().unwrap();
    let (s, _) = e.call(reqwest::Method::DELETE, &format!("archive/{id}"), None).await;
    assert_eq!(s, 409, "cannot delete while recording");
    let (s, _) =
        e.call(reqwest::Method::PATCH, &format!("archive/{id}/streams"), Some(json!({"addStream": "x"}))).await;
    assert_eq!(s, 405, "auto mode");
    // A client token of any role is never a REST credential.
    let moderator = e.sdk.generate_token(&routed, &TokenOptions::new(Role::Moderator)).unwrap();
    let resp = e
        .http
        .post(e.url("archive"))
        .header("X-OPENTOK-AUTH", moderator)
        .json(&json!({"sessionId": routed}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Hostile IDs are refused before the store or the file system sees them.
    for hostile in [
        "..%2F..%2Fetc%2Fpasswd",
        "../../etc/passwd",
        "E85741CE-D280-4EFA-A3BA-93379A68BE06",
        "e85741ce-d280-4efa-a3ba-93379a68be06%00",
    ] {
        let (s, v) = e.call(reqwest::Method::GET, &format!("archive/{hostile}"), None).await;
        assert!(s == 404, "{hostile}: {s} {v}");
    }
    // Another project's archive does not exist for this caller.
    let other = create_project(&e.data());
    let (s, _) = rest_call(&e.server.base, &other, reqwest::Method::GET, &format!("archive/{id}"), None).await;
    assert_eq!(s, 404);
    assert_eq!(e.stop(id).await["status"], "stopped");
    let (s, _) = e.call(reqwest::Method::POST, &format!("archive/{id}/stop"), None).await;
    assert_eq!(s, 409, "stop twice");
    let (s, v) = e.call(reqwest::Method::GET, "archive?count=1&offset=0", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["count"], 2, "count is the total: {v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (s, _) = e.call(reqwest::Method::GET, "archive?count=1001", None).await;
    assert_eq!(s, 400);
    let audit = String::from_utf8(
        std::process::Command::new(BIN).args(["audit", "--data-dir"]).arg(e.data()).output().unwrap().stdout,
    )
    .unwrap();
    assert!(audit.contains("archive.start") && audit.contains("archive.stop"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_stream_mode_records_only_the_chosen_streams() {
    let e = env(&[]);
    let session = e.routed().await;
    let _a = e.publisher(&session).await;
    let _b = e.publisher(&session).await;
    let listed = e.sdk.list_streams(&session).await.unwrap();
    let streams: Vec<String> =
        listed["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(streams.len(), 2);
    let started = e.start(json!({"sessionId": session, "outputMode": "individual", "streamMode": "manual"})).await;
    let id = started["id"].as_str().unwrap();
    let (s, v) = e
        .call(
            reqwest::Method::PATCH,
            &format!("archive/{id}/streams"),
            Some(json!({"addStream": streams[0], "hasAudio": true, "hasVideo": true})),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (s, _) = e
        .call(reqwest::Method::PATCH, &format!("archive/{id}/streams"), Some(json!({"addStream": "no-such-stream"})))
        .await;
    assert_eq!(s, 404);
    let got = e.get(id).await;
    assert_eq!(got["streams"][0]["streamId"], streams[0].as_str(), "{got}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    e.stop(id).await;
    let done = e.until_done(id).await;
    assert_eq!(done["status"], "available", "{done}");
    let zip = e.dir.path().join("m.zip");
    std::fs::write(&zip, e.download(&done).await).unwrap();
    let files = unzip(&zip, &e.dir.path().join("m"));
    let webms: Vec<String> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "webm"))
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(webms, [streams[0].clone()], "only the added stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_mode_always_starts_with_the_first_stream() {
    let e = env(&["--archive-idle-stop", "2s"]);
    let session = e
        .sdk
        .create_session(&SessionOptions {
            media_mode: conclave_sdk::MediaMode::Routed,
            archive_mode: conclave_sdk::ArchiveMode::Always,
            ..Default::default()
        })
        .await
        .unwrap()
        .session_id;
    let (s, v) = e.call(reqwest::Method::GET, &format!("archive?sessionId={session}"), None).await;
    assert_eq!((s, v["count"].as_u64()), (200, Some(0)), "nothing before a stream");
    let pubs = e.publisher(&session).await;
    let end = Instant::now() + T;
    let archive = loop {
        let (_, v) = e.call(reqwest::Method::GET, &format!("archive?sessionId={session}"), None).await;
        if let Some(a) = v["items"].as_array().and_then(|i| i.first()).cloned() {
            break a;
        }
        assert!(Instant::now() < end, "no automatic archive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(archive["status"], "started");
    assert_eq!(archive["outputMode"], "composed");
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(pubs); // nothing published: it stops by itself after --archive-idle-stop
    let done = e.until_done(archive["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "available", "{done}");
    assert!(done["duration"].as_u64().unwrap() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_and_delivers_recordings_before_exit() {
    let mut e = env(&[]);
    let session = e.routed().await;
    let pubs = e.publisher(&session).await;
    let started = e.start(json!({"sessionId": session, "outputMode": "individual"})).await;
    let id = started["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(e.server.stop(), "graceful exit: {}", e.server.logs());
    drop(pubs);
    // The next start finds nothing to recover: the archive was finished before exit.
    e.server = Server::start(&e.data(), &rtc_args(&[]));
    let v = e.get(&id).await;
    assert_eq!(v["status"], "available", "{v}");
    assert_eq!(v["reason"], "server shutting down");
    assert!(!e.server.logs().contains("recovering an archive"));
    // A download URL handed out before a restart still works after it (the signing key is
    // derived from the master key, not made up at start-up).
    let url = v["url"].as_str().unwrap().to_owned();
    let path = &url[url.find("/v2/").unwrap()..];
    assert!(e.server.stop());
    e.server = Server::start(&e.data(), &rtc_args(&[]));
    let resp = reqwest::get(format!("{}{path}", e.server.base)).await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    assert!(resp.bytes().await.unwrap().starts_with(b"PK"), "the individual archive's ZIP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_endpoints_obey_the_ssrf_policy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, &["--rtc-host", "127.0.0.1"]);
    for endpoint in [
        "http://127.0.0.1:9000",
        "https://127.0.0.1:9000",
        "https://169.254.169.254",
        "https://[::1]:9000",
        "https://localhost:9000",
    ] {
        let body =
            json!({"type": "s3", "config": {"bucket": "b", "accessKey": "a", "secretKey": "s", "endpoint": endpoint}});
        let resp = reqwest::Client::new()
            .put(format!("{}/v2/project/{}/archive/storage", server.base, p.api_key))
            .header("X-OPENTOK-AUTH", rest_jwt(&p))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{endpoint}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["message"].as_str().unwrap().contains("endpoint refused"), "{endpoint}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_fallback_none_a_failed_upload_is_failed_but_its_bytes_wait_for_an_operator() {
    let moto = moto::Moto::start();
    moto.create_bucket("archives");
    let e = env(&[]);
    let (s, v) = e.set_storage(&moto, "testing", "testing", "none").await;
    assert_eq!(s, 200, "{v}");
    drop(moto);
    let session = e.routed().await;
    let (started, _) = record(&e, &session, json!({"sessionId": session, "outputMode": "individual"}), 1, 2).await;
    let id = started["id"].as_str().unwrap();
    let done = e.until_done(id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["reason"].as_str().unwrap().contains("fallback is none"), "{done}");
    assert!(done["url"].is_null(), "not served");
    let kept = e.data().join("archives/fallback").join(format!("{id}.zip"));
    assert!(kept.exists(), "the bytes are kept");
    let listed = std::process::Command::new(BIN)
        .args(["archive", "list", "--status", "failed", "--json", "--data-dir"])
        .arg(e.data())
        .output()
        .unwrap();
    let line: Value = serde_json::from_slice(listed.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["id"], id);
    // The operator takes the file, then acknowledges by deleting.
    let out = e.dir.path().join("kept.zip");
    let dl = std::process::Command::new(BIN)
        .args(["archive", "download", id, "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(e.data())
        .output()
        .unwrap();
    assert!(dl.status.success(), "{}", String::from_utf8_lossy(&dl.stderr));
    assert!(std::fs::read(&out).unwrap().starts_with(b"PK"));
    let (s, _) = e.call(reqwest::Method::DELETE, &format!("archive/{id}"), None).await;
    assert_eq!(s, 204);
    assert!(!kept.exists());
}

/// The RGB pixel at (x, y) of a video's frame at `at` seconds.
fn pixel(file: &Path, at: f64, width: u32, x: u32, y: u32) -> [u8; 3] {
    let rgb = conclave_archive::ffmpeg::frame_rgb24(file, at).unwrap();
    let i = ((y * width + x) * 3) as usize;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composed_layout_changes_when_the_layout_or_the_focus_class_changes_while_recording() {
    let e = env(&[]);
    let session = e.routed().await;
    let clip = |colour: &str| {
        let dir = e.dir.path().join(colour);
        std::fs::create_dir_all(&dir).unwrap();
        Arc::new(EncodedClip::generate_colour(&dir, 4, 15, colour).unwrap())
    };
    // Blue's token gives its stream the `focus` class; red is a plain participant.
    let red = e.publisher_with(&session, clip("red"), &[]).await;
    let blue = e.publisher_with(&session, clip("blue"), &["focus"]).await;
    let started = e.start(json!({"sessionId": session, "outputMode": "composed", "resolution": "640x480", "layout": {"type": "bestFit"}})).await;
    let id = started["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (s, v) = e.call(reqwest::Method::PUT, &format!("archive/{id}/layout"), Some(json!({"type": "pip"}))).await;
    assert_eq!(s, 200, "{v}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    e.stop(&id).await;
    drop((red, blue));
    let done = e.until_done(&id).await;
    assert_eq!(done["status"], "available", "{done}");
    let mp4 = e.dir.path().join("pip.mp4");
    std::fs::write(&mp4, e.download(&done).await).unwrap();
    let (codecs, secs, size) = probe(&mp4);
    assert_eq!((codecs.contains(&"h264".to_owned()), size), (true, Some((640, 480))));
    // A grid first (two tiles side by side, letterboxed: the top left corner is black)...
    let [r, g, b] = pixel(&mp4, 1.0, 640, 40, 40);
    assert!(r < 40 && g < 40 && b < 40, "a grid before the layout changed: {:?}", [r, g, b]);
    // ...then picture-in-picture from when it was set: the focus (blue) fills the frame, the
    // other (red) is the inset in the lower right corner.
    let at = secs - 0.5;
    let [r, g, b] = pixel(&mp4, at, 640, 40, 40);
    assert!(b > 180 && r < 70 && g < 70, "the focus fills the frame: {:?}", [r, g, b]);
    let [r, g, b] = pixel(&mp4, at, 640, 640 - 20 - 80, 480 - 20 - 60);
    assert!(r > 180 && g < 70 && b < 70, "the inset is the other stream: {:?}", [r, g, b]);

    // Classes changed over REST while recording: the focus moves to red.
    let red = e.publisher_with(&session, clip("red"), &[]).await;
    let blue = e.publisher_with(&session, clip("blue"), &["focus"]).await;
    let started = e
        .start(
            json!({"sessionId": session, "outputMode": "composed", "resolution": "640x480", "layout": {"type": "pip"}}),
        )
        .await;
    let id = started["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let items = json!({"items": [{"id": red.2, "layoutClassList": ["focus"]}, {"id": blue.2, "layoutClassList": []}]});
    let (s, v) = e.call(reqwest::Method::PUT, &format!("session/{session}/stream"), Some(items)).await;
    assert_eq!(s, 200, "{v}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    e.stop(&id).await;
    drop((red, blue));
    let done = e.until_done(&id).await;
    let mp4 = e.dir.path().join("pip2.mp4");
    std::fs::write(&mp4, e.download(&done).await).unwrap();
    let (_, secs, _) = probe(&mp4);
    let [r, g, b] = pixel(&mp4, 1.0, 640, 40, 40);
    assert!(b > 180 && r < 70 && g < 70, "blue is the focus until the classes change: {:?}", [r, g, b]);
    let [r, g, b] = pixel(&mp4, secs - 0.5, 640, 40, 40);
    assert!(r > 180 && g < 70 && b < 70, "then the new focus (red) fills the frame: {:?}", [r, g, b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_publishers_are_recorded_to_matroska_and_composed() {
    let e = env(&[]);
    let session = e.routed().await;
    let dir = e.dir.path().join("h264clip");
    std::fs::create_dir_all(&dir).unwrap();
    let clip = Arc::new(EncodedClip::generate_h264(&dir, 4, 15).unwrap());
    // An H.264 publisher (what Safari and many phones send).
    let publisher = e.publisher_with(&session, clip, &[]).await;
    let individual = e.start(json!({"sessionId": session, "outputMode": "individual", "multiArchiveTag": "i"})).await;
    let composed = e
        .start(json!({"sessionId": session, "outputMode": "composed", "multiArchiveTag": "c", "resolution": "640x480"}))
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    for a in [&individual, &composed] {
        e.stop(a["id"].as_str().unwrap()).await;
    }
    drop(publisher);
    // Individual: the stream is `<streamId>.mkv` (Matroska, as OpenTok names H.264 streams).
    let done = e.until_done(individual["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "available", "{done}");
    let zip = e.dir.path().join("h264.zip");
    std::fs::write(&zip, e.download(&done).await).unwrap();
    let files = unzip(&zip, &e.dir.path().join("h264"));
    let mkv: Vec<&PathBuf> = files.iter().filter(|f| f.extension().is_some_and(|x| x == "mkv")).collect();
    assert_eq!(mkv.len(), 1, "{files:?}");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(files.iter().find(|f| f.extension().is_some_and(|x| x == "json")).unwrap()).unwrap(),
    )
    .unwrap();
    assert!(manifest["files"][0]["filename"].as_str().unwrap().ends_with(".mkv"));
    let (codecs, secs, size) = probe(mkv[0]);
    assert_eq!(codecs, ["h264", "opus"]);
    assert_eq!(size, Some((320, 240)));
    assert!(secs >= 2.5, "recorded {secs} s of a 4 s run");
    assert_eq!(decode_errors(mkv[0]), "", "decodes cleanly");
    // Composed: the H.264 stream is in the MP4's picture (the test pattern is not black).
    let done = e.until_done(composed["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "available", "{done}");
    let mp4 = e.dir.path().join("h264.mp4");
    std::fs::write(&mp4, e.download(&done).await).unwrap();
    let (codecs, secs, size) = probe(&mp4);
    assert_eq!((codecs, size), (vec!["aac".to_owned(), "h264".to_owned()], Some((640, 480))));
    let rgb = conclave_archive::ffmpeg::frame_rgb24(&mp4, secs / 2.0).unwrap();
    let lit = rgb.chunks(3).filter(|p| p.iter().any(|c| *c > 100)).count();
    assert!(lit > rgb.len() / 3 / 4, "the stream's picture is in the composed video ({lit} lit pixels)");
}
