//! Composed-mode archives: one MP4 (H.264 via libx264 + AAC) with every recorded stream laid
//! out (OpenTok's layout types, see `graph`) at the requested resolution, built by ffmpeg from the per-stream WebM recordings.
//! Inputs are files or readers (readers reach ffmpeg through named pipes, see `fifo`); the
//! output is a file (`+faststart`) or a writer fed with a fragmented MP4 from ffmpeg's
//! stdout, so an encrypted archive never exists as plaintext on disk. It owns the ffmpeg
//! invocation (`graph` owns the filter graph); it must not decide which streams are in the
//! archive, encrypt, upload or delete anything.
//!
//! Encoding is kept light for a 2-core box: `-preset veryfast`, one encoder/decoder/filter
//! thread each.

pub(crate) mod fifo;
mod graph;
mod layout;

pub use graph::FPS;
pub use layout::{Epoch, Layout, Rect, TileInput, grid, placements};

use crate::digest::sha256_file;
use crate::error::{ArchiveError, Result};
use crate::ffmpeg::{ffmpeg_bin, probe_duration_ms, tail};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where an input's WebM comes from.
pub enum ComposeSource {
    Path(PathBuf),
    /// Streamed to ffmpeg through a named pipe (e.g. `encrypt::open_decrypted`).
    Reader(Box<dyn Read + Send>),
}

impl std::fmt::Debug for ComposeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(p) => write!(f, "Path({})", p.display()),
            Self::Reader(_) => f.write_str("Reader(..)"),
        }
    }
}

/// One recorded stream.
#[derive(Debug)]
pub struct ComposeInput {
    pub source: ComposeSource,
    /// Milliseconds from archive start to the stream's first frame.
    pub offset_ms: u64,
    /// Milliseconds of media recorded (from the first frame).
    pub duration_ms: u64,
    pub has_audio: bool,
    pub has_video: bool,
}

/// Where the MP4 goes.
pub enum ComposeOutput<'a> {
    /// A regular MP4 with the index up front (`-movflags +faststart`); overwritten.
    File(PathBuf),
    /// A fragmented MP4 (`frag_keyframe+empty_moov+default_base_moof`) written as ffmpeg
    /// produces it; the writer is flushed, not closed (e.g. call `EncryptingWriter::finish`
    /// afterwards).
    Writer(&'a mut dyn Write),
}

/// The composed MP4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposedFile {
    /// Bytes of MP4 produced.
    pub size: u64,
    /// Lowercase hex SHA-256 of the MP4 bytes (plaintext; hash the ciphertext separately).
    pub sha256: String,
    pub duration_ms: u64,
}

/// How the composed MP4 is laid out and encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeSpec {
    /// Even, 16..=4096.
    pub width: u32,
    pub height: u32,
    /// The layout over time, in time order from 0 (one epoch when it never changes; none
    /// means a `bestFit` grid).
    pub epochs: Vec<Epoch>,
    pub quality: Quality,
}

impl ComposeSpec {
    /// One layout for the whole file, with input `focus` (if any) as its focus.
    pub fn fixed(width: u32, height: u32, layout: Layout, focus: Option<usize>, quality: Quality) -> ComposeSpec {
        ComposeSpec { width, height, epochs: vec![Epoch { from_ms: 0, layout, focus }], quality }
    }
}

/// OpenTok's archive encoding options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quality {
    /// libx264 CRF 23, AAC 128 kb/s.
    #[default]
    Default,
    /// `maxBitrate`: the whole file (video + audio) at most this many bits per second. Audio
    /// gets a quarter (32–128 kb/s), video the rest as a capped CRF 23.
    MaxBitrate(u32),
    /// `quantizationParameter`: constant QP (15–40; lower is better and larger).
    Qp(u8),
}

impl Quality {
    /// (video, audio) encoder arguments.
    fn args(self) -> (Vec<String>, Vec<String>) {
        let audio = |bps: u32| vec!["-b:a".to_owned(), bps.to_string()];
        match self {
            Quality::Default => (vec!["-crf".into(), "23".into()], audio(128_000)),
            Quality::MaxBitrate(total) => {
                let a = (total / 4).clamp(32_000, 128_000);
                let v = total.saturating_sub(a).max(total / 2);
                let video =
                    ["-crf", "23", "-maxrate", &v.to_string(), "-bufsize", &v.to_string()].map(String::from).to_vec();
                (video, audio(a))
            }
            Quality::Qp(qp) => (vec!["-qp".into(), qp.to_string()], audio(128_000)),
        }
    }
}

/// Compose `inputs` into one MP4 as `spec` says. No input with video gives an audio-only
/// MP4; no input with audio gives no audio track.
pub fn compose(inputs: Vec<ComposeInput>, spec: &ComposeSpec, output: ComposeOutput<'_>) -> Result<ComposedFile> {
    let (width, height, quality) = (spec.width, spec.height, spec.quality);
    validate(&inputs, width, height)?;
    let tiles: Vec<layout::TileInput> = inputs
        .iter()
        .map(|i| layout::TileInput {
            offset_ms: i.offset_ms,
            duration_ms: i.duration_ms,
            has_audio: i.has_audio,
            has_video: i.has_video,
            focus: false,
        })
        .collect();
    let g = graph::build_epochs(&tiles, width, height, &spec.epochs);
    let dir = fifo::PrivateDir::new()?;
    let progress = dir.path().join("progress.txt");
    let mut args: Vec<OsString> = ["-hide_banner", "-nostdin", "-v", "error", "-y"].map(OsString::from).into();
    args.extend(["-progress".into(), progress.clone().into()]);
    let mut feeders = Vec::new();
    for (i, inp) in inputs.into_iter().enumerate() {
        let path = match inp.source {
            ComposeSource::Path(p) => p,
            ComposeSource::Reader(r) => {
                let f = fifo::Feeder::start(dir.path().join(format!("in{i}.webm")), r)?;
                let p = f.path().to_path_buf();
                feeders.push(f);
                p
            }
        };
        args.extend(["-threads".into(), "1".into(), "-i".into(), path.into()]);
    }
    args.extend(["-filter_complex".into(), g.filter.into()]);
    args.extend(["-filter_complex_threads".into(), "1".into()]);
    let (video_quality, audio_quality) = quality.args();
    if g.video {
        args.extend(["-map", "[vout]", "-c:v", "libx264", "-preset", "veryfast"].map(OsString::from));
        args.extend(video_quality.into_iter().map(OsString::from));
        args.extend(["-pix_fmt", "yuv420p", "-r", "25", "-g", "50"].map(OsString::from));
    }
    if g.audio {
        args.extend(["-map", "[aout]", "-c:a", "aac"].map(OsString::from));
        args.extend(audio_quality.into_iter().map(OsString::from));
        args.extend(["-ar", "48000", "-ac", "2"].map(OsString::from));
    }
    args.extend(["-threads", "1"].map(OsString::from));
    let file_out = match &output {
        ComposeOutput::File(p) => {
            args.extend(["-movflags", "+faststart", "-f", "mp4"].map(OsString::from));
            args.push(p.clone().into());
            Some(p.clone())
        }
        ComposeOutput::Writer(_) => {
            args.extend(
                ["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", "pipe:1"].map(OsString::from),
            );
            None
        }
    };
    let (status, stderr, written) = run_ffmpeg(&args, output);
    let fed: Vec<std::io::Result<u64>> = feeders.into_iter().map(fifo::Feeder::join).collect();
    let status = status?;
    if !status.success() {
        return Err(ArchiveError::Ffmpeg(format!("compose failed ({status}): {}", tail(&stderr))));
    }
    for r in fed {
        r.map_err(|e| ArchiveError::Ffmpeg(format!("feeding an input failed: {e}")))?;
    }
    match file_out {
        Some(p) => Ok(ComposedFile {
            size: std::fs::metadata(&p)?.len(),
            sha256: sha256_file(&p)?,
            duration_ms: probe_duration_ms(&p)?,
        }),
        None => {
            let (size, sha256) = written?;
            Ok(ComposedFile {
                size,
                sha256,
                duration_ms: progress_duration_ms(&std::fs::read_to_string(&progress)?)
                    .ok_or_else(|| ArchiveError::Ffmpeg("no progress report".into()))?,
            })
        }
    }
}

fn validate(inputs: &[ComposeInput], width: u32, height: u32) -> Result<()> {
    if inputs.is_empty() {
        return Err(ArchiveError::Invalid("nothing to compose".into()));
    }
    if inputs.iter().any(|i| !i.has_audio && !i.has_video) {
        return Err(ArchiveError::Invalid("every input needs audio or video".into()));
    }
    let ok = |v: u32| (16..=4096).contains(&v) && v.is_multiple_of(2);
    if !ok(width) || !ok(height) {
        return Err(ArchiveError::Invalid(format!("resolution {width}x{height} must be even and within 16..=4096")));
    }
    Ok(())
}

type Written = Result<(u64, String)>;

/// Run ffmpeg, copying its stdout into the writer (if any) on this thread while another
/// thread collects stderr. On a writer error ffmpeg is killed.
fn run_ffmpeg(args: &[OsString], output: ComposeOutput<'_>) -> (Result<std::process::ExitStatus>, Vec<u8>, Written) {
    let mut cmd = Command::new(ffmpeg_bin());
    cmd.args(args).stdin(Stdio::null()).stderr(Stdio::piped());
    cmd.stdout(match output {
        ComposeOutput::Writer(_) => Stdio::piped(),
        ComposeOutput::File(_) => Stdio::null(),
    });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let err = || ArchiveError::Ffmpeg(format!("cannot run {}: {e}", ffmpeg_bin()));
            return (Err(err()), Vec::new(), Err(err()));
        }
    };
    let mut err_pipe = child.stderr.take().expect("piped");
    let stderr = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let written = match (output, child.stdout.take()) {
        (ComposeOutput::Writer(w), Some(mut out)) => {
            let r = copy_hashing(&mut out, w);
            if r.is_err() {
                let _ = child.kill();
            }
            r
        }
        _ => Ok((0, String::new())),
    };
    let status = child.wait().map_err(ArchiveError::from);
    let stderr = stderr.join().unwrap_or_default();
    (status, stderr, written)
}

fn copy_hashing(src: &mut impl Read, dst: &mut dyn Write) -> Written {
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let k = src.read(&mut buf)?;
        if k == 0 {
            break;
        }
        dst.write_all(&buf[..k])?;
        h.update(&buf[..k]);
        n += k as u64;
    }
    dst.flush()?;
    Ok((n, hex::encode(h.finalize())))
}

/// The last `out_time_us` of an ffmpeg `-progress` report, in ms.
fn progress_duration_ms(report: &str) -> Option<u64> {
    report
        .lines()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.trim().parse::<i64>().ok())
        .next_back()
        .map(|us| (us.max(0) as u64).div_ceil(1000))
}
