//! The live encoder: one ffmpeg that takes the composed canvas (raw `yuv420p` on stdin) and
//! the mixed audio (16-bit mono PCM at 48 kHz through a named pipe) and writes H.264 + AAC as
//! MPEG-TS on stdout, which is handed in chunks to every output. Timestamps come from the
//! counts (one picture and `48000 / fps` samples per tick), so audio and video stay in step
//! as long as the compositor gives both every tick, which it does.
//!
//! Owns: that process, its two feeding threads and the stdout fan-out. Must not lay out,
//! mix or decide where outputs go.

use super::output::Output;
use super::picture::Picture;
use crate::compose::fifo::PrivateDir;
use crate::ffmpeg::ffmpeg_bin;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes per chunk handed to the outputs: whole TS packets.
const CHUNK: usize = 188 * 64;

/// How the broadcast is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeSpec {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub has_audio: bool,
    pub has_video: bool,
    /// Video bits per second.
    pub video_bitrate: u32,
    /// A keyframe every this many seconds (the HLS segment length).
    pub keyframe_seconds: u32,
}

/// A running encoder.
pub struct LiveEncoder {
    child: Arc<Mutex<Option<Child>>>,
    video: Mutex<Option<SyncSender<Arc<Picture>>>>,
    audio: Mutex<Option<SyncSender<Vec<u8>>>>,
    closed: Arc<AtomicBool>,
    reader: Mutex<Option<std::thread::JoinHandle<()>>>,
    _dir: PrivateDir,
}

impl LiveEncoder {
    /// Starts ffmpeg; its output goes to every one of `outputs`.
    pub fn start(spec: EncodeSpec, outputs: Arc<Vec<Output>>) -> std::io::Result<Self> {
        let dir = PrivateDir::new().map_err(|e| std::io::Error::other(e.to_string()))?;
        let fifo = dir.path().join("audio.pcm");
        if spec.has_audio {
            make_fifo(&fifo)?;
        }
        let mut c = Command::new(ffmpeg_bin());
        c.args(["-hide_banner", "-loglevel", "error", "-nostats"]);
        let mut inputs = 0;
        if spec.has_video {
            c.args([
                "-f",
                "rawvideo",
                "-pix_fmt",
                "yuv420p",
                "-video_size",
                &format!("{}x{}", spec.width, spec.height),
            ]);
            c.args(["-framerate", &spec.fps.to_string(), "-thread_queue_size", "64", "-i", "pipe:0"]);
            inputs += 1;
        }
        if spec.has_audio {
            c.args(["-f", "s16le", "-ar", "48000", "-ac", "1", "-thread_queue_size", "256", "-i"]).arg(&fifo);
        }
        if spec.has_video {
            let gop = (spec.fps * spec.keyframe_seconds.max(1)).to_string();
            let rate = spec.video_bitrate.to_string();
            c.args(["-map", "0:v", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"]);
            c.args(["-pix_fmt", "yuv420p", "-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0", "-threads", "1"]);
            c.args(["-b:v", &rate, "-maxrate", &rate, "-bufsize", &rate]);
        }
        if spec.has_audio {
            c.args(["-map", &format!("{inputs}:a"), "-c:a", "aac", "-b:a", "96k", "-ac", "2", "-ar", "48000"]);
        }
        c.args(["-f", "mpegts", "-muxdelay", "0", "-muxpreload", "0", "-flush_packets", "1", "pipe:1"]);
        c.stdin(if spec.has_video { Stdio::piped() } else { Stdio::null() });
        c.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = c.spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let closed = Arc::new(AtomicBool::new(false));
        let video = match stdin {
            Some(mut stdin) => {
                let (tx, rx) = sync_channel::<Arc<Picture>>(8);
                std::thread::Builder::new().name("live-enc-video".into()).spawn(move || {
                    while let Ok(p) = rx.recv() {
                        if stdin.write_all(&p.data).is_err() {
                            break;
                        }
                    }
                })?;
                Some(tx)
            }
            None => None,
        };
        let audio = if spec.has_audio {
            let (tx, rx) = sync_channel::<Vec<u8>>(64);
            let closed = closed.clone();
            std::thread::Builder::new().name("live-enc-audio".into()).spawn(move || {
                let Some(mut w) = open_for_writing(&fifo, &closed) else { return };
                while let Ok(b) = rx.recv() {
                    if w.write_all(&b).is_err() {
                        break;
                    }
                }
            })?;
            Some(tx)
        } else {
            None
        };
        let reader = std::thread::Builder::new().name("live-enc-out".into()).spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let chunk: Arc<[u8]> = Arc::from(&buf[..n]);
                        for o in outputs.iter() {
                            o.feed(&chunk);
                        }
                    }
                }
            }
        })?;
        Ok(Self {
            child: Arc::new(Mutex::new(Some(child))),
            video: Mutex::new(video),
            audio: Mutex::new(audio),
            closed,
            reader: Mutex::new(Some(reader)),
            _dir: dir,
        })
    }

    /// Queues a picture; false when it had to be dropped.
    pub fn push_picture(&self, p: Arc<Picture>) -> bool {
        lock(&self.video).as_ref().is_some_and(|tx| tx.try_send(p).is_ok())
    }

    /// Queues PCM bytes (s16le, mono, 48 kHz).
    pub fn push_audio(&self, pcm: Vec<u8>) -> bool {
        lock(&self.audio).as_ref().is_some_and(|tx| tx.try_send(pcm).is_ok())
    }

    /// True while ffmpeg runs.
    pub fn is_running(&self) -> bool {
        lock(&self.child).as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Closes the inputs and waits up to `grace` for ffmpeg to flush its last packets into
    /// the outputs (then kills it).
    pub fn finish(&self, grace: Duration) {
        lock(&self.video).take();
        lock(&self.audio).take();
        self.closed.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + grace;
        let child = lock(&self.child).take();
        if let Some(mut child) = child {
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let reader = lock(&self.reader).take();
        if let Some(r) = reader {
            let _ = r.join();
        }
    }
}

impl Drop for LiveEncoder {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(mut c) = lock(&self.child).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn make_fifo(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Opens the pipe's write end once ffmpeg has opened its read end (a non-blocking open
/// fails until then), giving up when `closed` is set.
fn open_for_writing(path: &PathBuf, closed: &AtomicBool) -> Option<std::fs::File> {
    loop {
        if closed.load(Ordering::SeqCst) {
            return None;
        }
        match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path) {
            Ok(f) => {
                use std::os::fd::AsRawFd;
                // Blocking writes from here on: the pipe buffer is the only queue.
                // SAFETY: `f` is an open descriptor owned by this thread.
                unsafe {
                    let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
                    libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
                }
                return Some(f);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
