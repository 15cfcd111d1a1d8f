//! `conclave bench media --against janus`: the same media load through Conclave's SFU and
//! through Janus 1.1.2's VideoRoom, runs alternating, and the ratio of the two.
//!
//! Owns: the Janus child process (its own configuration folder, written here), the Janus
//! HTTP API client (one Janus session per bot with one long poll each, which is both its
//! event stream and its keepalive), rooms, publishers and multistream subscribers, and the
//! side-by-side table. Measuring is [`super::bench_media::measure`], the same code for both
//! servers: server CPU and RSS from `/proc/<server pid>`, latency and loss from the bots'
//! payloads. Must not touch: the bots' behaviour (`conclave_client::media`, the same for both
//! servers) or Conclave's run (`bench_media::conclave`).
//!
//! Choices that could make the comparison unfair, to either side:
//! - **Janus's threads.** `event_loops` is set to the number of cores (`--janus-event-loops`;
//!   0 keeps Janus's default of one GLib loop thread per handle, which costs it ~1.5× CPU).
//! - **ICE-lite** for Janus (`ice_lite = true`, `full_trickle = false`, candidates in the SDP),
//!   like Conclave's SFU. Janus skips loopback *interfaces*, so both servers' media bind one
//!   address (`--rtc-host`) on a non-loopback interface (`ice_enforce_list`), and so do the
//!   bots (Janus pins its sockets to that interface and cannot reach 127.0.0.1 from it). An
//!   address in 127.0.0.0/8 on such an interface (see docs/benchmarks.md) still uses `lo`.
//! - Debugging: `JANUS_DEBUG_LEVEL=7` (with libnice's debug) keeps Janus's log in the temp
//!   folder, `CONCLAVE_BENCH_SDP=1` prints the publishers' SDP, `JANUS_LIB_DIR` finds plugins.
//! - **Only** the VideoRoom plugin and the HTTP transport (127.0.0.1) are loaded; no admin
//!   API, no event handlers or loggers; `debug_level = 3`; no IPv6.
//! - **Rooms** are created through the API with `fir_freq 0` (no periodic keyframe requests)
//!   and `bitrate 0` (no REMB cap), Opus and VP8 only. Simulcast is off on both sides.
//! - **Subscribers**: one multistream handle per receiver with every feed of its room, so each
//!   receiver has one PeerConnection, as with Conclave. Janus offers, the bot answers (`start`);
//!   the bot is then the DTLS server. Conclave's receivers also carry a data channel (its
//!   protocol needs it); Janus's carry none.
//! - **Per packet work differs**: Conclave estimates bandwidth, paces, probes (RTX, padding) and
//!   repacketizes every frame; Janus rewrites headers and relays. The headline counts media
//!   packets only (payload types that carried frames), which is conservative for Conclave;
//!   per-RTP-packet figures are printed as well.
//! - **Signalling** differs (Conclave: one WebSocket per participant; Janus: HTTP long polls).
//!   It is idle in the measured window, but Janus's HTTP threads are part of its process.
//! - Both servers share the machine's cores with the bots; runs alternate (ABBA order) so
//!   that drift in the box's load hits both.

use super::bench_media::{Row, bot_config, conclave, measure};
use super::{nix_kill, rss_kib};
use conclave_client::media::MediaBot;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The load and the set-up of one side-by-side comparison.
pub struct SideBySide {
    pub sessions: usize,
    pub publishers: usize,
    pub subscribers: usize,
    pub seconds: u64,
    pub fps: u32,
    pub video_bytes: usize,
    pub rtc_host: String,
    pub runs: usize,
    /// Janus's `event_loops`; `None`: the number of cores.
    pub event_loops: Option<usize>,
}

pub async fn run(a: SideBySide) -> anyhow::Result<()> {
    crate::raise_fd_limit();
    // The bots live on the servers' media address too: Janus pins its sockets to the
    // interface of `ice_enforce_list` and could not answer a bot on 127.0.0.1 from there.
    conclave_client::media::set_bind_ip(a.rtc_host.parse()?);
    let loops = a.event_loops.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..a.runs.max(1) {
        // ABBA: C J, J C, C J, ...
        for janus_turn in if i % 2 == 0 { [false, true] } else { [true, false] } {
            let load = load_avg();
            let row = if janus_turn {
                janus(&a, loops).await?
            } else {
                conclave(a.sessions, a.publishers, a.subscribers, a.seconds, a.fps, a.video_bytes, &a.rtc_host).await?
            };
            let name = if janus_turn { "Janus" } else { "Conclave" };
            eprintln!("run {} {name} (load before: {load}) {}", i + 1, row.cells());
            if janus_turn { &mut theirs } else { &mut ours }.push(row);
        }
    }
    let (c, j) = (median(&ours), median(&theirs));
    // Loss and errors are ≈0 on both sides below saturation: a ratio of them is noise.
    let ratio = Row::from_fields(std::array::from_fn(|k| {
        let (x, y) = (j.fields()[k], c.fields()[k]);
        if y == 0.0 || k == 11 || k == 13 { f64::NAN } else { x / y }
    }));
    let (s, p, m) = (a.sessions, a.publishers, a.subscribers);
    println!(
        "{s}×{p}×{m}, {} s, {} fps, {} B video, media on {}, Janus event_loops {loops}, medians of {} runs",
        a.seconds, a.fps, a.video_bytes, a.rtc_host, a.runs
    );
    println!("| server {}", Row::HEADER);
    println!("|---{}", Row::RULE);
    for (i, r) in ours.iter().enumerate() {
        println!("| Conclave run {} {}", i + 1, r.cells());
    }
    for (i, r) in theirs.iter().enumerate() {
        println!("| Janus run {} {}", i + 1, r.cells());
    }
    println!("| **Conclave, median** {}", c.cells());
    println!("| **Janus, median** {}", j.cells());
    let ratios: Vec<String> =
        ratio.fields().iter().map(|v| if v.is_finite() { format!("{v:.2}") } else { "–".into() }).collect();
    println!("| Janus ÷ Conclave | {} |", ratios.join(" | "));
    Ok(())
}

/// Column-wise medians.
fn median(rows: &[Row]) -> Row {
    Row::from_fields(std::array::from_fn(|k| {
        let mut v: Vec<f64> = rows.iter().map(|r| r.fields()[k]).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }))
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Where the Debian package (or a source build) put Janus's plugins and transports.
fn janus_lib_dir() -> anyhow::Result<PathBuf> {
    let candidates = std::env::var_os("JANUS_LIB_DIR").map(PathBuf::from).into_iter().chain(
        [
            "/usr/lib/x86_64-linux-gnu/janus",
            "/usr/lib/aarch64-linux-gnu/janus",
            "/usr/lib/janus",
            "/opt/janus/lib/janus",
        ]
        .map(PathBuf::from),
    );
    for d in candidates {
        if d.join("plugins/libjanus_videoroom.so").exists() && d.join("transports/libjanus_http.so").exists() {
            return Ok(d);
        }
    }
    anyhow::bail!(
        "Janus's VideoRoom plugin and HTTP transport were not found (set JANUS_LIB_DIR, or install Janus 1.1.2: apt-get install -y --no-install-recommends janus)"
    )
}

/// Writes Janus's configuration folder: only VideoRoom and HTTP on 127.0.0.1:`port`.
fn write_config(dir: &Path, lib: &Path, host: &str, port: u16, event_loops: usize) -> anyhow::Result<()> {
    for sub in ["plugins", "transports", "events", "loggers"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::os::unix::fs::symlink(lib.join("plugins/libjanus_videoroom.so"), dir.join("plugins/libjanus_videoroom.so"))?;
    std::os::unix::fs::symlink(lib.join("transports/libjanus_http.so"), dir.join("transports/libjanus_http.so"))?;
    let d = dir.display();
    // Quiet by default; JANUS_DEBUG_LEVEL (0-7) when a run needs Janus's own account.
    let level = std::env::var("JANUS_DEBUG_LEVEL").ok().and_then(|v| v.parse::<u8>().ok()).unwrap_or(3);
    let nice = level >= 7;
    let loops = if event_loops > 0 { format!("event_loops = {event_loops}") } else { String::new() };
    let core = format!(
        r#"general: {{
  configs_folder = "{d}"
  plugins_folder = "{d}/plugins"
  transports_folder = "{d}/transports"
  events_folder = "{d}/events"
  loggers_folder = "{d}/loggers"
  debug_level = {level}
  session_timeout = 60
  {loops}
}}
media: {{ ipv6 = false }}
nat: {{ nice_debug = {nice} ice_lite = true full_trickle = false ice_enforce_list = "{host}" }}
plugins: {{ }}
transports: {{ }}
loggers: {{ }}
events: {{ broadcast = false }}
"#
    );
    std::fs::write(dir.join("janus.jcfg"), core)?;
    std::fs::write(
        dir.join("janus.transport.http.jcfg"),
        format!(
            "general: {{ json = \"compact\" base_path = \"/janus\" http = true port = {port} ip = \"127.0.0.1\" https = false }}\nadmin: {{ admin_http = false admin_https = false }}\n"
        ),
    )?;
    std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: { }\n")?;
    Ok(())
}

struct Janus {
    child: tokio::process::Child,
    dir: PathBuf,
    base: String,
    http: reqwest::Client,
}

async fn start_janus(host: &str, event_loops: usize) -> anyhow::Result<Janus> {
    static N: AtomicU64 = AtomicU64::new(0);
    let lib = janus_lib_dir()?;
    let dir = std::env::temp_dir().join(format!(
        "conclave-bench-janus-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    write_config(&dir, &lib, host, port, event_loops)?;
    let log = std::fs::File::create(dir.join("janus.log"))?;
    let child = tokio::process::Command::new("janus")
        .arg("-C")
        .arg(dir.join("janus.jcfg"))
        .arg("-F")
        .arg(&dir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot start janus ({e}); install Janus 1.1.2: apt-get install -y --no-install-recommends janus"
            )
        })?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let base = format!("http://127.0.0.1:{port}/janus");
    let j = Janus { child, dir, base, http };
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if post(&j.http, &j.base, json!({"janus": "info"})).await.is_ok() {
            return Ok(j);
        }
    }
    anyhow::bail!("Janus did not answer on {} within 10 s (log: {})", j.base, j.dir.join("janus.log").display())
}

fn transaction() -> String {
    static T: AtomicU64 = AtomicU64::new(0);
    format!("t{}", T.fetch_add(1, Ordering::Relaxed))
}

/// One request of Janus's HTTP API; a `janus: error` reply is an error.
async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> anyhow::Result<Value> {
    if body.get("transaction").is_none() {
        body["transaction"] = json!(transaction());
    }
    let r: Value = http.post(url).json(&body).timeout(Duration::from_secs(10)).send().await?.json().await?;
    anyhow::ensure!(r["janus"] != "error", "Janus refused {body}: {r}");
    Ok(r)
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// A Janus session: its URL and the long poll that hands events to their requests.
struct Session {
    http: reqwest::Client,
    url: String,
    waiters: Waiters,
    poll: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.poll.abort();
    }
}

impl Session {
    async fn new(janus: &Janus) -> anyhow::Result<Session> {
        let r = post(&janus.http, &janus.base, json!({"janus": "create"})).await?;
        let id = r["data"]["id"].as_u64().ok_or_else(|| anyhow::anyhow!("no session id in {r}"))?;
        let url = format!("{}/{id}", janus.base);
        let waiters: Waiters = Arc::default();
        let poll = tokio::spawn(long_poll(janus.http.clone(), format!("{url}?maxev=16"), waiters.clone()));
        Ok(Session { http: janus.http.clone(), url, waiters, poll })
    }

    async fn attach(&self) -> anyhow::Result<u64> {
        let r = post(&self.http, &self.url, json!({"janus": "attach", "plugin": "janus.plugin.videoroom"})).await?;
        r["data"]["id"].as_u64().ok_or_else(|| anyhow::anyhow!("no handle id in {r}"))
    }

    /// A VideoRoom request: the synchronous reply, or the event that answers it.
    async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> anyhow::Result<Value> {
        let t = transaction();
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(t.clone(), tx);
        let mut m = json!({"janus": "message", "transaction": t, "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        let r = post(&self.http, &format!("{}/{handle}", self.url), m).await;
        let r = match r {
            Ok(r) if r["janus"] == "ack" => tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .map_err(|_| anyhow::anyhow!("no Janus event answered {body} within 10 s"))??,
            other => {
                self.waiters.lock().unwrap().remove(&t);
                other?
            }
        };
        if let Some(e) = r["plugindata"]["data"].get("error") {
            anyhow::bail!("VideoRoom refused {body}: {e}");
        }
        Ok(r)
    }
}

/// The session's event stream (and keepalive): hands each event to the request it answers.
async fn long_poll(http: reqwest::Client, url: String, waiters: Waiters) {
    loop {
        let r = async { http.get(&url).timeout(Duration::from_secs(40)).send().await?.json::<Value>().await }.await;
        let Ok(v) = r else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let events = match v {
            Value::Array(a) => a,
            e => vec![e],
        };
        for e in events {
            if e["janus"] == "hangup" || e["janus"] == "detached" {
                eprintln!("janus: {e}");
            }
            let waiter = e["transaction"].as_str().and_then(|t| waiters.lock().unwrap().remove(t));
            if let Some(w) = waiter {
                let _ = w.send(e);
            }
        }
    }
}

/// One run against a Janus child: the same rooms, bots and traffic as [`conclave`].
async fn janus(a: &SideBySide, event_loops: usize) -> anyhow::Result<Row> {
    let mut j = start_janus(&a.rtc_host, event_loops).await?;
    let result = janus_load(&j, a).await;
    if result.is_err() {
        eprintln!("Janus's log: {}", j.dir.join("janus.log").display());
    }
    let _ = nix_kill(&j.child);
    if tokio::time::timeout(Duration::from_secs(5), j.child.wait()).await.is_err() {
        let _ = j.child.kill().await;
    }
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&j.dir);
    }
    result
}

async fn janus_load(j: &Janus, a: &SideBySide) -> anyhow::Result<Row> {
    let pid = j.child.id().unwrap_or(0);
    let cfg = |source: u32| bot_config(source, a.fps, a.video_bytes);
    let admin = Session::new(j).await?;
    let admin_handle = admin.attach().await?;
    let rooms: Vec<u64> = (0..a.sessions as u64).map(|s| 1000 + s).collect();
    for room in &rooms {
        let create = json!({
            "request": "create", "room": room, "publishers": a.publishers, "fir_freq": 0, "bitrate": 0,
            "audiocodec": "opus", "videocodec": "vp8", "notify_joining": false,
        });
        admin.message(admin_handle, create, None).await?;
    }

    // Publishers first, so the RSS step below is the subscribers' alone.
    let mut sessions = vec![admin];
    let mut pub_bots = Vec::new();
    let mut feeds: Vec<Vec<u64>> = Vec::new();
    for (s, room) in rooms.iter().enumerate() {
        let mut ids = Vec::new();
        for p in 0..a.publishers {
            let js = Session::new(j).await?;
            let h = js.attach().await?;
            let joined = js.message(h, json!({"request": "join", "ptype": "publisher", "room": room}), None).await?;
            let feed =
                joined["plugindata"]["data"]["id"].as_u64().ok_or_else(|| anyhow::anyhow!("no feed id: {joined}"))?;
            let bot = MediaBot::start(cfg((s * a.publishers + p) as u32)).await?;
            let offer = bot.offer(true, false)?;
            let ev = js.message(h, json!({"request": "publish"}), Some(json!({"type": "offer", "sdp": offer}))).await?;
            let answer = ev["jsep"]["sdp"].as_str().ok_or_else(|| anyhow::anyhow!("no answer: {ev}"))?;
            anyhow::ensure!(
                answer.contains("a=candidate"),
                "Janus offered no ICE candidate on {}: it skips loopback interfaces, so give both servers an address on another interface with --rtc-host (see docs/benchmarks.md)",
                a.rtc_host
            );
            if std::env::var_os("CONCLAVE_BENCH_SDP").is_some() {
                eprintln!("publisher offer:\n{offer}\nJanus's answer:\n{answer}");
            }
            bot.accept_answer(answer)?;
            bot.start_sending();
            bot.wait_connected(Duration::from_secs(10)).await?;
            ids.push(feed);
            pub_bots.push(bot);
            sessions.push(js);
        }
        feeds.push(ids);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(pid);

    let mut sub_bots = Vec::new();
    for (s, room) in rooms.iter().enumerate() {
        let streams: Vec<Value> = feeds[s].iter().map(|f| json!({"feed": f})).collect();
        for _ in 0..a.subscribers {
            let js = Session::new(j).await?;
            let h = js.attach().await?;
            let join = json!({"request": "join", "ptype": "subscriber", "room": room, "streams": streams});
            let ev = js.message(h, join, None).await?;
            let offer = ev["jsep"]["sdp"].as_str().ok_or_else(|| anyhow::anyhow!("no offer: {ev}"))?;
            let bot = MediaBot::start(cfg(u32::MAX)).await?;
            let answer = json!({"type": "answer", "sdp": bot.accept_offer(offer)?});
            js.message(h, json!({"request": "start"}), Some(answer)).await?;
            sub_bots.push(Arc::new(bot));
            sessions.push(js);
        }
    }
    let row = measure(pid, &pub_bots, &sub_bots, a.publishers, a.subscribers, a.seconds, rss_before).await;
    drop(sub_bots);
    drop(pub_bots);
    drop(sessions);
    row
}
