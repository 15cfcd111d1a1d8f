//! Live streaming and the Audio Connector against a real `conclave serve` with str0m bots
//! publishing real VP8/Opus (solid colours, a 440 Hz tone): the HLS playlist served at the
//! broadcast's URL grows, its segments are H.264 + AAC with each colour where the layout puts
//! it (and follow a layout change), and go away after stop; an RTMP output reaches a real
//! RTMP server (ffmpeg listening), survives its restart and says so; an audio connection
//! sends 20 ms PCM frames whose peak is at 440 Hz to a WebSocket server and joins the session
//! as a participant; bad input gets a clear 4xx and starts nothing.

mod common;

use common::*;
use conclave_client::Client;
use conclave_client::PublishOptions;
use conclave_client::clip::EncodedClip;
use conclave_client::media::{BotConfig, MediaBot, publish_routed};
use conclave_sdk::{Role, SessionOptions, TokenOptions};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

struct Env {
    server: Server,
    p: Project,
    sdk: conclave_sdk::Client,
    ws: String,
    dir: tempfile::TempDir,
}

fn env(extra: &[&str]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let mut args = vec!["--rtc-host", "127.0.0.1", "--rtc-port", "0"];
    args.extend(extra);
    let server = Server::start(&data, &args);
    let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
    Env { server, p, sdk, ws, dir }
}

const OPEN: &[&str] = &["--allow-private-callbacks", "--allow-http-callbacks"];

impl Env {
    async fn session(&self, mode: conclave_sdk::MediaMode) -> String {
        self.sdk.create_session(&SessionOptions { media_mode: mode, ..Default::default() }).await.unwrap().session_id
    }

    fn clip(&self, colour: &str) -> Arc<EncodedClip> {
        let dir = self.dir.path().join(colour);
        std::fs::create_dir_all(&dir).unwrap();
        Arc::new(EncodedClip::generate_colour(&dir, 4, 15, colour).unwrap())
    }

    async fn publisher(&self, session: &str, colour: &str, classes: &[&str]) -> (Client, MediaBot, String) {
        let mut options = TokenOptions::new(Role::Publisher);
        options.initial_layout_classes = classes.iter().map(|c| c.to_string()).collect();
        let t = self.sdk.generate_token(session, &options).unwrap();
        let mut c = Client::connect(&self.ws, session, &t).await.unwrap();
        let stream = c.publish(PublishOptions::default()).await.unwrap();
        let config = BotConfig { clip: Some(self.clip(colour)), keep_frames: false, ..BotConfig::default() };
        let bot = publish_routed(&mut c, &stream.stream_id, config).await.unwrap();
        bot.wait_connected(T).await.unwrap();
        (c, bot, stream.stream_id)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        rest_call(&self.server.base, &self.p, method, path, body).await
    }

    async fn get(&self, id: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, &format!("broadcast/{id}"), None).await;
        assert_eq!(s, 200, "get: {v}");
        v
    }

    /// Polls the broadcast until `check` holds.
    async fn until(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.get(id).await;
            if check(&v) {
                return v;
            }
            assert!(
                Instant::now() < end,
                "{what}: {v}\n{}",
                self.server.logs().lines().filter(|l| !l.contains("request method")).collect::<Vec<_>>().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn segments(playlist: &str) -> Vec<String> {
    playlist.lines().filter(|l| l.ends_with(".ts")).map(str::to_owned).collect()
}

/// The playlist once it lists at least `n` segments after `after` (a segment name).
async fn playlist_with(url: &str, n: usize, after: Option<&str>) -> String {
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(r) = reqwest::get(url).await
            && r.status() == 200
        {
            let text = r.text().await.unwrap();
            let segs = segments(&text);
            let newer = segs.iter().filter(|s| after.is_none_or(|a| s.as_str() > a)).count();
            if newer >= n {
                return text;
            }
        }
        assert!(Instant::now() < end, "the playlist at {url} never listed {n} new segments");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The first picture of a fetched segment as RGB24.
fn first_frame(file: &Path) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn probe(file: &Path) -> (Vec<String>, Option<(u64, u64)>) {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let mut codecs: Vec<String> = streams.iter().filter_map(|s| s["codec_name"].as_str().map(str::to_owned)).collect();
    codecs.sort();
    (codecs, streams.iter().find_map(|s| Some((s["width"].as_u64()?, s["height"].as_u64()?))))
}

fn colour_at(rgb: &[u8], x: u32, y: u32) -> &'static str {
    let i = ((y * 640 + x) * 3) as usize;
    let [r, g, b] = [rgb[i], rgb[i + 1], rgb[i + 2]].map(i32::from);
    match (r > 170 && g < 80 && b < 80, b > 170 && r < 80 && g < 80, r < 40 && g < 40 && b < 40) {
        (true, _, _) => "red",
        (_, true, _) => "blue",
        (_, _, true) => "black",
        _ => "other",
    }
}

/// Fetches the newest segment of the playlist into a file.
async fn newest_segment(playlist_url: &str, playlist: &str, into: &Path) -> String {
    let name = segments(playlist).pop().unwrap();
    let url = format!("{}/{name}", playlist_url.rsplit_once('/').unwrap().0);
    let bytes = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    std::fs::write(into, &bytes).unwrap();
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_broadcast_follows_the_layout_grows_and_goes_away_after_stop() {
    let e = env(OPEN);
    let (hook, received) = receiver(0).await;
    assert_eq!(register_callback(&e.server.base, &e.p, "broadcast", "status", &hook).await.0, 200);
    let session = e.session(conclave_sdk::MediaMode::Routed).await;
    let red = e.publisher(&session, "red", &[]).await;
    let blue = e.publisher(&session, "blue", &["focus"]).await;
    let body =
        json!({"sessionId": session, "layout": {"type": "pip"}, "resolution": "640x480", "outputs": {"hls": {}}});
    let (s, started) = e.call(reqwest::Method::POST, "broadcast", Some(body)).await;
    assert_eq!(s, 200, "{started}");
    assert_eq!(started["status"], "started");
    assert_eq!(started["broadcastUrls"]["rtmp"], json!([]));
    let id = started["id"].as_str().unwrap().to_owned();
    let url = started["broadcastUrls"]["hls"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&e.server.base) && url.ends_with("/index.m3u8"), "{url}");

    // pip: the focus (blue) fills the picture, red is the inset in the lower right.
    let list = playlist_with(&url, 2, None).await;
    let seg = e.dir.path().join("pip.ts");
    let first = newest_segment(&url, &list, &seg).await;
    assert_eq!(probe(&seg), (vec!["aac".to_owned(), "h264".to_owned()], Some((640, 480))));
    let rgb = first_frame(&seg);
    assert_eq!(colour_at(&rgb, 40, 40), "blue");
    assert_eq!(colour_at(&rgb, 640 - 20 - 80, 480 - 20 - 60), "red");
    assert_eq!(e.get(&id).await["broadcastUrls"]["hlsStatus"], "live");

    // The capability is the whole URL: another secret finds nothing.
    let wrong = url.replace(&url.split('/').nth_back(1).unwrap().to_owned(), &"0".repeat(48));
    assert_eq!(reqwest::get(&wrong).await.unwrap().status(), 404);

    // A new layout from the next frame: a grid, red first (it joined first), blue beside it.
    let (s, v) =
        e.call(reqwest::Method::PUT, &format!("broadcast/{id}/layout"), Some(json!({"type": "bestFit"}))).await;
    assert_eq!(s, 200, "{v}");
    let list = playlist_with(&url, 2, Some(&first)).await;
    let later = newest_segment(&url, &list, &seg).await;
    assert!(later > first, "the playlist grows: {first} then {later}");
    let rgb = first_frame(&seg);
    assert_eq!(
        (colour_at(&rgb, 160, 240), colour_at(&rgb, 480, 240), colour_at(&rgb, 40, 40)),
        ("red", "blue", "black")
    );

    let (s, v) = e.call(reqwest::Method::GET, &format!("broadcast?sessionId={session}"), None).await;
    assert_eq!((s, v["count"].as_u64()), (200, Some(1)), "{v}");
    // The operator's view: `conclave broadcast list` against the running server.
    let data = e.dir.path().join("data");
    let out = conclave(&["broadcast", "list", "--data-dir", data.to_str().unwrap(), "--url", &e.server.base]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&id) && text.contains("started") && text.contains(&url), "{text}");

    let (s, stopped) = e.call(reqwest::Method::POST, &format!("broadcast/{id}/stop"), None).await;
    assert_eq!(s, 200, "{stopped}");
    assert_eq!(
        (stopped["status"].as_str(), stopped["broadcastUrls"]["hlsStatus"].as_str()),
        (Some("stopped"), Some("ended"))
    );
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 404, "segments go after stop without DVR");
    assert!(!e.dir.path().join("data/broadcasts").join(&id).exists());
    let capability = url.rsplit('/').nth(1).unwrap().to_owned();
    assert!(!e.server.logs().contains(&capability), "the HLS capability is never logged");
    let (s, _) = e.call(reqwest::Method::POST, &format!("broadcast/{id}/stop"), None).await;
    assert_eq!(s, 409, "a second stop");
    drop((red, blue));

    // Status callbacks for the start and the stop, signed like the others.
    let end = Instant::now() + T;
    let statuses = loop {
        let calls = received.lock().unwrap().calls.clone();
        let statuses: Vec<String> = calls
            .iter()
            .filter_map(|(_, _, b)| serde_json::from_slice::<Value>(b).ok())
            .filter(|v| v["id"] == id.as_str())
            .map(|v| v["status"].as_str().unwrap_or_default().to_owned())
            .collect();
        if statuses.len() >= 2 || Instant::now() > end {
            assert!(calls.iter().all(|(_, auth, _)| !auth.is_empty()), "signed");
            break statuses;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(statuses, ["started", "stopped"]);
}

/// A real RTMP server: ffmpeg listening, writing what it receives to `out`.
fn rtmp_server(port: u16, out: &Path) -> std::process::Child {
    std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-listen", "1", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/stream-SECRET-key"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(out)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_output_reaches_the_server_and_reconnects_after_it_restarts() {
    let e = env(OPEN);
    let session = e.session(conclave_sdk::MediaMode::Routed).await;
    let red = e.publisher(&session, "red", &[]).await;
    let port = free_port();
    let mut server = rtmp_server(port, &e.dir.path().join("first.flv"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rtmp = json!([{"id": "local", "serverUrl": format!("rtmp://127.0.0.1:{port}/live"), "streamName": "stream-SECRET-key"}]);
    let (s, v) = e
        .call(reqwest::Method::POST, "broadcast", Some(json!({"sessionId": session, "outputs": {"rtmp": rtmp}})))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["broadcastUrls"]["rtmp"][0]["status"], "connecting");
    assert!(v["broadcastUrls"].get("hls").is_none(), "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let status = |v: &Value| v["broadcastUrls"]["rtmp"][0]["status"].as_str().unwrap_or_default().to_owned();
    e.until(&id, "live", |v| status(v) == "live").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = server.kill();
    let _ = server.wait();
    e.until(&id, "offline once the server is gone", |v| status(v) == "offline").await;
    let second = e.dir.path().join("second.flv");
    let mut server = rtmp_server(port, &second);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(server.try_wait().unwrap().is_none(), "the second RTMP server runs");
    e.until(&id, "live again after the server returns", |v| status(v) == "live").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Stopped by the operator: `conclave broadcast stop`.
    let data = e.dir.path().join("data");
    let out = conclave(&["broadcast", "stop", "--data-dir", data.to_str().unwrap(), "--url", &e.server.base, &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{id} stopped"));
    assert_eq!(status(&e.get(&id).await), "offline");
    let end = Instant::now() + T;
    while server.try_wait().unwrap().is_none() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.kill();
    let (codecs, size) = probe(&second);
    assert_eq!((codecs, size), (vec!["aac".to_owned(), "h264".to_owned()], Some((640, 480))));
    drop(red);
    assert!(!e.server.logs().contains("SECRET"), "the stream key is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_broadcasts_and_connections_get_a_clear_4xx_and_start_nothing() {
    // The default policy: public targets only.
    let e = env(&["--max-broadcasts", "1"]);
    let routed = e.session(conclave_sdk::MediaMode::Routed).await;
    let relayed = e.session(conclave_sdk::MediaMode::Relayed).await;
    let hls = json!({"hls": {}});
    let cases = [
        (json!({"sessionId": "1_MX4xMjM0NX5-MTcwMDAwMDAwMDAwMH5ub3BlfjB-", "outputs": hls}), 404),
        (json!({"sessionId": relayed, "outputs": hls}), 409),
        (json!({"sessionId": routed}), 400),
        (json!({"sessionId": routed, "outputs": {"hls": {"dvr": true, "lowLatency": true}}}), 400),
        (
            json!({"sessionId": routed, "outputs": {"rtmp": [{"serverUrl": "rtmp://127.0.0.1/live", "streamName": "k"}]}}),
            400,
        ),
        (
            json!({"sessionId": routed, "outputs": {"rtmp": [{"serverUrl": "rtmp://10.0.0.8/live", "streamName": "k"}]}}),
            400,
        ),
        (
            json!({"sessionId": routed, "outputs": {"rtmp": [{"serverUrl": "rtmp://localhost/live", "streamName": "k"}]}}),
            400,
        ),
        (
            json!({"sessionId": routed, "outputs": hls, "layout": {"type": "custom", "stylesheet": "x".repeat(20_000)}}),
            400,
        ),
        (json!({"sessionId": routed, "outputs": hls, "maxDuration": 10}), 400),
        (json!({"sessionId": routed, "outputs": hls, "resolution": "1x1"}), 400),
    ];
    for (body, want) in cases {
        let (s, v) = e.call(reqwest::Method::POST, "broadcast", Some(body.clone())).await;
        assert_eq!(s, want, "{body}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "a message: {v}");
    }
    let (_, v) = e.call(reqwest::Method::GET, "broadcast", None).await;
    assert_eq!(v["count"], 0, "nothing started: {v}");
    // One per tag per session; a second tag meets the node's cap.
    let (s, first) =
        e.call(reqwest::Method::POST, "broadcast", Some(json!({"sessionId": routed, "outputs": hls}))).await;
    assert_eq!(s, 200, "{first}");
    let (s, v) = e.call(reqwest::Method::POST, "broadcast", Some(json!({"sessionId": routed, "outputs": hls}))).await;
    assert_eq!(s, 409, "{v}");
    let tagged = json!({"sessionId": routed, "outputs": hls, "multiBroadcastTag": "second"});
    let (s, v) = e.call(reqwest::Method::POST, "broadcast", Some(tagged)).await;
    assert_eq!(s, 429, "{v}");
    // Another project's credential finds nothing; a client token is no REST credential.
    let other = create_project(&e.dir.path().join("other"));
    let id = first["id"].as_str().unwrap();
    let (s, _) = rest_call(&e.server.base, &other, reqwest::Method::GET, &format!("broadcast/{id}"), None).await;
    assert_eq!(s, 403, "the path names another project");
    let token = e.sdk.generate_token(&routed, &TokenOptions::new(Role::Moderator)).unwrap();
    let r = reqwest::Client::new()
        .get(format!("{}/v2/project/{}/broadcast/{id}", e.server.base, e.p.api_key))
        .header("X-OPENTOK-AUTH", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (s, v) =
        e.call(reqwest::Method::PATCH, &format!("broadcast/{id}/streams"), Some(json!({"addStream": "x"}))).await;
    assert_eq!(s, 405, "auto mode: {v}");
    let (s, _) = e.call(reqwest::Method::POST, &format!("broadcast/{id}/stop"), None).await;
    assert_eq!(s, 200);
    // Audio Connector: private targets, relayed sessions, bad tokens, bad rates.
    let t = e.sdk.generate_token(&routed, &TokenOptions::new(Role::Publisher)).unwrap();
    let t_relayed = e.sdk.generate_token(&relayed, &TokenOptions::new(Role::Publisher)).unwrap();
    let cases = [
        (json!({"sessionId": routed, "token": t, "websocket": {"uri": "wss://127.0.0.1:9/x"}}), 400),
        (json!({"sessionId": routed, "token": t, "websocket": {"uri": "ws://192.168.0.1/x"}}), 400),
        (
            json!({"sessionId": routed, "token": t, "websocket": {"uri": "wss://93.184.215.14/x", "audioRate": 44100}}),
            400,
        ),
        (json!({"sessionId": relayed, "token": t_relayed, "websocket": {"uri": "wss://93.184.215.14/x"}}), 409),
        // A public literal address (no DNS needed): the token of another session is refused
        // before anything goes out.
        (json!({"sessionId": routed, "token": t_relayed, "websocket": {"uri": "wss://93.184.215.14/x"}}), 403),
    ];
    for (body, want) in cases {
        let (s, v) = e.call(reqwest::Method::POST, "connect", Some(body.clone())).await;
        assert_eq!(s, want, "{body}: {v}");
    }
    let (s, _) = e.call(reqwest::Method::POST, "connect/nope/stop", None).await;
    assert_eq!(s, 404);
}

/// The power of `freq` in `samples` (Goertzel).
fn power(samples: &[i16], rate: f64, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = x as f64 + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
}

#[derive(Default)]
struct Heard {
    headers: Vec<(String, String)>,
    first: Option<String>,
    frames: Vec<Vec<u8>>,
    closed: bool,
}

/// A WebSocket server that keeps what it is sent.
#[allow(clippy::result_large_err)] // tungstenite's handshake callback type
async fn websocket_server() -> (String, Arc<std::sync::Mutex<Heard>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/audio", listener.local_addr().unwrap());
    let heard = Arc::new(std::sync::Mutex::new(Heard::default()));
    let h = heard.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let hh = h.clone();
        let callback = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                             resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
            hh.lock().unwrap().headers = req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                .collect();
            Ok(resp)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, callback).await.unwrap();
        while let Some(Ok(m)) = ws.next().await {
            use tokio_tungstenite::tungstenite::Message;
            let mut s = h.lock().unwrap();
            match m {
                Message::Text(t) if s.first.is_none() => s.first = Some(t.to_string()),
                Message::Binary(b) => s.frames.push(b.to_vec()),
                Message::Close(_) => break,
                _ => {}
            }
        }
        h.lock().unwrap().closed = true;
    });
    (url, heard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_connector_sends_the_sessions_audio_as_pcm_and_is_a_participant() {
    let e = env(OPEN);
    let session = e.session(conclave_sdk::MediaMode::Routed).await;
    let red = e.publisher(&session, "red", &[]).await;
    let (uri, heard) = websocket_server().await;
    let mut options = TokenOptions::new(Role::Subscriber);
    options.data = Some("audio-connector".into());
    let token = e.sdk.generate_token(&session, &options).unwrap();
    let body = json!({"sessionId": session, "token": token, "websocket": {"uri": uri, "audioRate": 16000, "headers": {"customer": "acme"}}});
    let (s, v) = e.call(reqwest::Method::POST, "connect", Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let (id, conn) = (v["id"].as_str().unwrap().to_owned(), v["connectionId"].as_str().unwrap().to_owned());
    // It is a participant of the session.
    let (_, list) = e.call(reqwest::Method::GET, &format!("session/{session}/connection"), None).await;
    assert!(list.to_string().contains(&conn), "{list}");
    // Three seconds of sound.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let enough = heard.lock().unwrap().frames.iter().filter(|f| f.iter().any(|b| *b != 0)).count() >= 150;
        if enough {
            break;
        }
        assert!(Instant::now() < end, "not enough sound: {} frames", heard.lock().unwrap().frames.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, _) = e.call(reqwest::Method::POST, &format!("connect/{id}/stop"), None).await;
    assert_eq!(s, 204);
    let end = Instant::now() + T;
    while !heard.lock().unwrap().closed {
        assert!(Instant::now() < end, "the socket closes after stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let h = heard.lock().unwrap();
        let first: Value = serde_json::from_str(h.first.as_deref().unwrap()).unwrap();
        assert_eq!(
            first,
            json!({"event": "websocket:connected", "content-type": "audio/l16;rate=16000", "customer": "acme"})
        );
        assert!(h.headers.iter().any(|(k, v)| k == "x-opentok-ws-connectionid" && v == &conn), "{:?}", h.headers);
        assert!(h.frames.iter().all(|f| f.len() == 640), "20 ms of 16-bit 16 kHz mono per message");
        let pcm: Vec<i16> =
            h.frames.iter().flat_map(|f| f.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]))).collect();
        let sound: Vec<i16> = pcm.into_iter().skip_while(|s| *s == 0).take(16_000).collect();
        assert!(sound.len() >= 16_000, "a second of sound");
        let peak = power(&sound, 16_000.0, 440.0);
        for other in [220.0, 330.0, 660.0, 1000.0, 2500.0] {
            assert!(peak > 20.0 * power(&sound, 16_000.0, other), "the peak is at 440 Hz, not {other} Hz");
        }
    }
    let end = Instant::now() + T;
    loop {
        let (_, list) = e.call(reqwest::Method::GET, &format!("session/{session}/connection"), None).await;
        if !list.to_string().contains(&conn) {
            break;
        }
        assert!(Instant::now() < end, "the connector's participant leaves: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(red);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dvr_playlist_keeps_its_segments_after_stop_and_low_latency_cuts_them_short() {
    let e = env(OPEN);
    let session = e.session(conclave_sdk::MediaMode::Routed).await;
    let red = e.publisher(&session, "red", &[]).await;
    let body = json!({"sessionId": session, "outputs": {"hls": {"dvr": true}}, "multiBroadcastTag": "dvr"});
    let (s, dvr) = e.call(reqwest::Method::POST, "broadcast", Some(body)).await;
    assert_eq!(s, 200, "{dvr}");
    let url = dvr["broadcastUrls"]["hls"].as_str().unwrap().to_owned();
    assert!(url.ends_with("/index.m3u8?DVR"), "OpenTok marks DVR URLs: {url}");
    assert_eq!(dvr["settings"]["hls"], json!({"dvr": true, "lowLatency": false}));
    let body = json!({"sessionId": session, "outputs": {"hls": {"lowLatency": true}}, "multiBroadcastTag": "ll"});
    let (s, ll) = e.call(reqwest::Method::POST, "broadcast", Some(body)).await;
    assert_eq!(s, 200, "{ll}");
    let ll_url = ll["broadcastUrls"]["hls"].as_str().unwrap().to_owned();
    let list = playlist_with(&url, 2, None).await;
    let ll_list = playlist_with(&ll_url, 2, None).await;
    let target = |l: &str| l.lines().find_map(|x| x.strip_prefix("#EXT-X-TARGETDURATION:")).map(str::to_owned);
    assert_eq!(target(&list).as_deref(), Some("2"), "{list}");
    assert_eq!(target(&ll_list).as_deref(), Some("1"), "lowLatency: one-second segments\n{ll_list}");
    for id in [&dvr["id"], &ll["id"]] {
        let (s, _) = e.call(reqwest::Method::POST, &format!("broadcast/{}/stop", id.as_str().unwrap()), None).await;
        assert_eq!(s, 200);
    }
    // DVR: the recording stays watchable (ended playlist, segments) after the stop.
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    let after = r.text().await.unwrap();
    assert!(after.contains("#EXT-X-ENDLIST"), "{after}");
    let seg = segments(&after)[0].clone();
    let seg_url = format!("{}/{seg}", url.split('?').next().unwrap().rsplit_once('/').unwrap().0);
    assert_eq!(reqwest::get(&seg_url).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(&ll_url).await.unwrap().status(), 404, "without DVR the files go");
    drop(red);
}
