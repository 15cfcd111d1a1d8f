//! Where a live encode goes: each output is an ffmpeg that copies the encoder's MPEG-TS into
//! an HLS playlist on disk or an RTMP(S) push, with a status of its own. An output whose
//! ffmpeg exits (the RTMP server dropped, a network error) is started again with back-off,
//! and its status says so (`connecting` → `live` → `offline` → `connecting` …).
//!
//! Owns: those processes, their restarts and statuses. Must not decide which URLs are
//! allowed: the caller passes a `target` closure that checks (and may pin) the URL before
//! every attempt, so a name that starts resolving to a private address is refused on
//! reconnect too. Never logs a target URL (it carries the stream key).

use crate::ffmpeg::ffmpeg_bin;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// MPEG-TS chunks queued per output before new ones are dropped (~2 s at 4 Mbit/s).
const QUEUE: usize = 64;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// An output live this long starts its back-off from the beginning again.
const STABLE: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks the target before each attempt and returns the URL to push to, or why not.
pub type Target = Box<dyn Fn() -> Result<String, String> + Send>;

/// What an output writes.
pub enum OutputKind {
    /// An HLS playlist `index.m3u8` and its segments in `dir`. `list_size` segments stay in
    /// the playlist (older ones are deleted).
    Hls { dir: PathBuf, segment_seconds: u32, list_size: u32 },
    /// An RTMP or RTMPS push (FLV).
    Rtmp { target: Target },
}

/// An output's state, as OpenTok names the states of a broadcast's RTMP streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputState {
    Connecting,
    Live,
    Offline,
    Ended,
}

impl OutputState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Offline => "offline",
            Self::Ended => "ended",
        }
    }
}

/// What the owner can see of an output.
#[derive(Debug, Clone)]
pub struct OutputStatus {
    pub state: OutputState,
    /// Why it is offline (no URL in it).
    pub error: Option<String>,
    /// Times it was (re)started.
    pub attempts: u32,
}

/// A running output.
pub struct Output {
    tx: Mutex<Option<SyncSender<Arc<[u8]>>>>,
    status: Arc<Mutex<OutputStatus>>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Output {
    pub fn start(kind: OutputKind) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        let status = Arc::new(Mutex::new(OutputStatus { state: OutputState::Connecting, error: None, attempts: 0 }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (status.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("live-output".into()).spawn(move || run(kind, rx, s, st))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            status,
            stop,
            dropped: Arc::new(AtomicU64::new(0)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands a chunk of MPEG-TS to the output; never blocks (dropped when it is behind or
    /// down).
    pub fn feed(&self, chunk: &Arc<[u8]>) {
        let tx = lock(&self.tx);
        let Some(tx) = tx.as_ref() else { return };
        if let Err(TrySendError::Full(_)) = tx.try_send(chunk.clone()) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn status(&self) -> OutputStatus {
        lock(&self.status).clone()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Ends the input (HLS then writes its end-of-list) and waits up to `grace` for the
    /// ffmpeg to finish before it is killed.
    pub fn finish(&self, grace: Duration) {
        lock(&self.tx).take();
        let deadline = Instant::now() + grace;
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.stop.store(true, Ordering::SeqCst);
            let _ = t.join();
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        lock(&self.tx).take();
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

fn command(kind: &OutputKind, url: &str) -> Command {
    let mut c = Command::new(ffmpeg_bin());
    c.args(["-hide_banner", "-loglevel", "error", "-nostats", "-progress", "pipe:1"]);
    // A restart joins the encoder's stream in the middle: probe long enough to see a
    // keyframe's parameter sets and an AAC header (keyframes come every 1-2 s).
    c.args(["-analyzeduration", "3000000", "-probesize", "4000000", "-f", "mpegts", "-i", "pipe:0", "-c", "copy"]);
    match kind {
        OutputKind::Hls { dir, segment_seconds, list_size } => {
            let segments = dir.join("segment-%06d.ts");
            c.args(["-f", "hls", "-hls_time", &segment_seconds.to_string(), "-hls_list_size", &list_size.to_string()]);
            c.args(["-hls_flags", "delete_segments+independent_segments+program_date_time+temp_file"]);
            c.arg("-hls_segment_filename").arg(segments).arg(dir.join("index.m3u8"));
        }
        OutputKind::Rtmp { .. } => {
            c.args(["-f", "flv", "-flvflags", "no_duration_filesize", url]);
        }
    }
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    c
}

fn set(status: &Mutex<OutputStatus>, state: OutputState, error: Option<String>) {
    let mut s = lock(status);
    s.state = state;
    s.error = error;
}

fn run(kind: OutputKind, rx: Receiver<Arc<[u8]>>, status: Arc<Mutex<OutputStatus>>, stop: Arc<AtomicBool>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        lock(&status).attempts += 1;
        set(&status, OutputState::Connecting, None);
        let url = match &kind {
            OutputKind::Rtmp { target } => target(),
            OutputKind::Hls { dir, .. } => {
                std::fs::create_dir_all(dir).map(|_| String::new()).map_err(|e| e.to_string())
            }
        };
        let (ended_input, error, live_for) = match url {
            Ok(url) => attempt(&kind, &url, &rx, &status, &stop),
            Err(e) => (false, Some(e), Duration::ZERO),
        };
        if ended_input || stop.load(Ordering::SeqCst) {
            break;
        }
        set(&status, OutputState::Offline, error.or_else(|| Some("the output stopped".into())));
        if live_for >= STABLE {
            backoff = FIRST_BACKOFF;
        }
        // Wait, draining the input (what arrives while down is not sent later).
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    set(&status, OutputState::Ended, None);
                    return;
                }
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    set(&status, OutputState::Ended, None);
}

/// One ffmpeg run: (the input ended, why it failed, how long it was live).
fn attempt(
    kind: &OutputKind,
    url: &str,
    rx: &Receiver<Arc<[u8]>>,
    status: &Arc<Mutex<OutputStatus>>,
    stop: &AtomicBool,
) -> (bool, Option<String>, Duration) {
    let mut child: Child = match command(kind, url).spawn() {
        Ok(c) => c,
        Err(e) => return (false, Some(format!("cannot run ffmpeg: {e}")), Duration::ZERO),
    };
    let Some(mut stdin) = child.stdin.take() else {
        return (false, Some("no stdin".into()), Duration::ZERO);
    };
    let live_since: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    if let Some(out) = child.stdout.take() {
        let (status, live_since) = (status.clone(), live_since.clone());
        let _ = std::thread::Builder::new().name("live-output-progress".into()).spawn(move || {
            // `-progress` prints `out_time_us=` lines; a positive one means media is going out.
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let sent = line.strip_prefix("out_time_us=").and_then(|v| v.trim().parse::<i64>().ok());
                if sent.is_some_and(|us| us > 0) && lock(&live_since).is_none() {
                    *lock(&live_since) = Some(Instant::now());
                    set(&status, OutputState::Live, None);
                }
            }
        });
    }
    let mut ended_input = false;
    let mut error = None;
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(chunk) => {
                if stdin.write_all(&chunk).is_err() {
                    error = Some("the connection to the target was lost".to_owned());
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(Some(_)) = child.try_wait() {
                    error = Some("the connection to the target was lost".to_owned());
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                ended_input = true;
                break;
            }
        }
    }
    drop(stdin);
    if ended_input && !stop.load(Ordering::SeqCst) {
        // Let ffmpeg finish the playlist or the FLV; `finish` sets `stop` after its grace.
        while !stop.load(Ordering::SeqCst) {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let live_for = lock(&live_since).map(|t| t.elapsed()).unwrap_or_default();
    (ended_input, error, live_for)
}
