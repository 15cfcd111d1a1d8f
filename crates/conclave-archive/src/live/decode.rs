//! One stream's live decoders: an ffmpeg process per kind, fed the stream's frames in the
//! smallest container (`container`) on stdin and read back raw: video as `yuv420p` pictures
//! of a fixed size (the stream scaled to fit and centred, so a resolution change upstream
//! never changes what comes out), audio as 16-bit mono PCM at a chosen rate. The latest
//! picture and a jitter buffer of samples are what the compositor and the Audio Connector
//! read.
//!
//! Owns: the processes, their feeding and reading threads, restarts (an ffmpeg that dies is
//! started again at the next keyframe). Must not block its caller: frames go through a
//! bounded queue and are dropped (counted) when the decoder is behind. Must not mix, lay
//! out or encode.

use super::container::{OggOpusWriter, VideoStreamWriter};
use super::mix::SampleRing;
use super::picture::Picture;
use crate::ffmpeg::ffmpeg_bin;
use crate::recorder::VideoCodec;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

/// Frames queued for a decoder before new ones are dropped.
const VIDEO_QUEUE: usize = 90;
const AUDIO_QUEUE: usize = 150;
/// Audio buffering per stream: starts playing at 60 ms, never holds more than 400 ms.
const PREBUFFER_MS: usize = 60;
const CAPACITY_MS: usize = 400;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The options every live decoder starts with: no probing delay, no input buffering.
fn decoder_command(format: &str) -> Command {
    let mut c = Command::new(ffmpeg_bin());
    c.args(["-hide_banner", "-loglevel", "error", "-nostats", "-nostdin"]);
    c.args(["-fflags", "nobuffer", "-flags", "low_delay", "-probesize", "32", "-analyzeduration", "0"]);
    c.args(["-threads", "1", "-f", format, "-i", "pipe:0"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    c
}

/// A running ffmpeg, killed when dropped (a blocked write to it then fails at once).
#[derive(Default, Clone)]
struct Process(Arc<Mutex<Option<Child>>>);

impl Process {
    fn start(&self, mut cmd: Command) -> std::io::Result<(ChildStdin, std::process::ChildStdout)> {
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        if let Some(mut old) = lock(&self.0).replace(child) {
            let _ = old.kill();
            let _ = old.wait();
        }
        Ok((stdin, stdout))
    }

    fn kill(&self) {
        if let Some(mut c) = lock(&self.0).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct VideoIn {
    codec: VideoCodec,
    data: Vec<u8>,
    keyframe: bool,
    at_ms: u64,
}

/// A stream's video decoder: the latest picture, `width`×`height`.
pub struct VideoDecoder {
    tx: Option<SyncSender<VideoIn>>,
    latest: Arc<Mutex<Option<Arc<Picture>>>>,
    process: Process,
    dropped: Arc<AtomicU64>,
}

impl VideoDecoder {
    pub fn start(width: u32, height: u32) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(VIDEO_QUEUE);
        let latest = Arc::new(Mutex::new(None));
        let process = Process::default();
        let (l, p) = (latest.clone(), process.clone());
        std::thread::Builder::new().name("live-video-dec".into()).spawn(move || feed_video(rx, p, l, width, height))?;
        Ok(Self { tx: Some(tx), latest, process, dropped: Arc::new(AtomicU64::new(0)) })
    }

    /// Queues a frame; never blocks (a full queue drops it).
    pub fn push(&self, codec: VideoCodec, data: &[u8], keyframe: bool, at_ms: u64) {
        let Some(tx) = &self.tx else { return };
        let f = VideoIn { codec, data: data.to_vec(), keyframe, at_ms };
        if let Err(TrySendError::Full(_)) = tx.try_send(f) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The most recent decoded picture (`None` until the first keyframe is decoded).
    pub fn latest(&self) -> Option<Arc<Picture>> {
        lock(&self.latest).clone()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for VideoDecoder {
    fn drop(&mut self) {
        self.tx.take();
        self.process.kill();
    }
}

fn feed_video(rx: Receiver<VideoIn>, process: Process, latest: Arc<Mutex<Option<Arc<Picture>>>>, w: u32, h: u32) {
    let mut running: Option<(ChildStdin, VideoStreamWriter, VideoCodec)> = None;
    while let Ok(f) = rx.recv() {
        if running.as_ref().is_some_and(|(_, _, c)| *c != f.codec) {
            running = None;
        }
        if running.is_none() {
            if !f.keyframe {
                continue;
            }
            let writer = VideoStreamWriter::new(f.codec);
            let mut cmd = decoder_command(writer.format());
            let scale = format!(
                "scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black,format=yuv420p"
            );
            cmd.args(["-an", "-vf", &scale, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p"]);
            cmd.args(["-flush_packets", "1", "pipe:1"]);
            let Ok((stdin, mut stdout)) = process.start(cmd) else { continue };
            let latest = latest.clone();
            let _ = std::thread::Builder::new().name("live-video-out".into()).spawn(move || {
                let mut buf = vec![0u8; Picture::len_for(w, h)];
                while stdout.read_exact(&mut buf).is_ok() {
                    *lock(&latest) = Some(Arc::new(Picture { width: w, height: h, data: buf.clone() }));
                }
            });
            running = Some((stdin, writer, f.codec));
        }
        let Some((stdin, writer, _)) = running.as_mut() else { continue };
        let ok = writer.write(stdin, &f.data, f.keyframe, f.at_ms).and_then(|_| stdin.flush());
        if ok.is_err() {
            // The decoder died: start again at the next keyframe.
            running = None;
        }
    }
    process.kill();
}

/// A stream's audio decoder: Opus in, 16-bit mono PCM at `rate` out, into a jitter buffer.
pub struct AudioDecoder {
    tx: Option<SyncSender<Vec<u8>>>,
    ring: Arc<Mutex<SampleRing>>,
    process: Process,
    dropped: Arc<AtomicU64>,
}

impl AudioDecoder {
    pub fn start(rate: u32) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(AUDIO_QUEUE);
        let per_ms = rate as usize / 1000;
        let ring = Arc::new(Mutex::new(SampleRing::new(PREBUFFER_MS * per_ms, CAPACITY_MS * per_ms)));
        let process = Process::default();
        let (r, p) = (ring.clone(), process.clone());
        std::thread::Builder::new().name("live-audio-dec".into()).spawn(move || feed_audio(rx, p, r, rate))?;
        Ok(Self { tx: Some(tx), ring, process, dropped: Arc::new(AtomicU64::new(0)) })
    }

    /// Queues an Opus packet; never blocks (a full queue drops it).
    pub fn push(&self, packet: &[u8]) {
        let Some(tx) = &self.tx else { return };
        if let Err(TrySendError::Full(_)) = tx.try_send(packet.to_vec()) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Mixes the next `out.len()` samples onto `out` (silence while buffering).
    pub fn mix_into(&self, out: &mut [i16]) {
        lock(&self.ring).mix_into(out);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed) + lock(&self.ring).dropped()
    }
}

impl Drop for AudioDecoder {
    fn drop(&mut self) {
        self.tx.take();
        self.process.kill();
    }
}

fn feed_audio(rx: Receiver<Vec<u8>>, process: Process, ring: Arc<Mutex<SampleRing>>, rate: u32) {
    let mut running: Option<(ChildStdin, OggOpusWriter)> = None;
    while let Ok(packet) = rx.recv() {
        if running.is_none() {
            let mut cmd = decoder_command("ogg");
            let rate = rate.to_string();
            cmd.args(["-vn", "-f", "s16le", "-ac", "1", "-ar", &rate, "-flush_packets", "1", "pipe:1"]);
            let Ok((stdin, mut stdout)) = process.start(cmd) else { continue };
            let ring = ring.clone();
            let _ = std::thread::Builder::new().name("live-audio-out".into()).spawn(move || {
                let mut buf = [0u8; 4096];
                let mut carry: Option<u8> = None;
                loop {
                    let n = match stdout.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let mut bytes: Vec<u8> = carry.take().into_iter().collect();
                    bytes.extend_from_slice(&buf[..n]);
                    if bytes.len() % 2 == 1 {
                        carry = bytes.pop();
                    }
                    lock(&ring).push(&super::mix::from_le_bytes(&bytes));
                }
            });
            running = Some((stdin, OggOpusWriter::new()));
        }
        let Some((stdin, writer)) = running.as_mut() else { continue };
        if writer.write(stdin, &packet).and_then(|_| stdin.flush()).is_err() {
            running = None;
        }
    }
    process.kill();
}
