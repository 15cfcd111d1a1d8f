//! `StreamRecorder`: writes one stream's Opus audio and VP8 or VP9 video to a WebM file as
//! frames arrive, using libwebm's muxer (`webm` crate), or H.264 video to a Matroska file with
//! our own writer (`mkv`; libwebm muxes WebM codecs only). It owns the file while recording, a
//! small reorder buffer (libwebm needs timestamps that never go back across tracks) and the
//! OpusHead it synthesizes. It must not decide which streams are recorded, nor upload,
//! package or delete files.
//!
//! Crash behaviour: libwebm writes the Segment and each Cluster with an "unknown" size and
//! patches sizes, Cues and Duration only in `finish()`. Bytes reach the OS at least once per
//! `flush_interval` (default 1 s, see `sink::Sink`), so a crash leaves a file whose header
//! and written clusters are readable by ffmpeg (unknown-size elements are legal Matroska);
//! it lacks Duration and Cues (no seeking) and loses up to `flush_interval` plus the
//! reorder window. The test `crash_leaves_decodable_prefix` checks this, and
//! `crate::recover` turns such a file into a finished one.
//!
//! Encrypted recordings (`create_encrypted`) go through an age STREAM encryptor before the
//! file, so the muxer runs in live, non-seek mode: the WebM never gets Duration or Cues (even
//! after `finish`; packaging adds them while it decrypts, see `crate::finalize`), and a crash
//! additionally loses the open 64 KiB age chunk (see `sink`).

mod codec;
mod gate;
pub mod h264;
mod mkv;

mod sink;

pub use codec::{
    opus_head, opus_packet_duration_ns, vp8_is_keyframe, vp8_keyframe_size, vp9_is_keyframe, vp9_keyframe_size,
};
pub use gate::{GateDecision, KeyframeGate};

use crate::error::{ArchiveError, Result};
use sink::Sink;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;
use webm::mux::{AudioCodecId, Segment, SegmentBuilder, SegmentMode, VideoCodecId, Writer};

/// Fallback frame size when video is enabled, no size is configured and no keyframe arrives
/// within `max_wait_for_keyframe`.
const DEFAULT_SIZE: (u32, u32) = (640, 480);

/// Video codec of the recorded track (what the SFU forwards; the recorder never transcodes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VideoCodec {
    #[default]
    Vp8,
    Vp9,
    /// Annex B access units; recorded to Matroska (`.mkv`), not WebM.
    H264,
}

impl VideoCodec {
    /// True when the frame is a keyframe in this codec.
    pub fn is_keyframe(self, frame: &[u8]) -> bool {
        match self {
            Self::Vp8 => vp8_is_keyframe(frame),
            Self::Vp9 => vp9_is_keyframe(frame),
            Self::H264 => h264::h264_is_keyframe(frame),
        }
    }

    /// The file extension of a recording with this video codec.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Vp8 | Self::Vp9 => "webm",
            Self::H264 => "mkv",
        }
    }

    /// Frame size from a keyframe in this codec.
    pub fn keyframe_size(self, frame: &[u8]) -> Option<(u32, u32)> {
        match self {
            Self::Vp8 => vp8_keyframe_size(frame),
            Self::Vp9 => vp9_keyframe_size(frame),
            Self::H264 => h264::avc_config(frame).map(|(_, size)| size),
        }
    }
}

/// What to record and how.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub audio: bool,
    pub video: bool,
    /// Codec of the video frames given to `write_video`.
    pub video_codec: VideoCodec,
    /// Video size; when `None` it is read from the first keyframe.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Opus channel count written to the OpusHead (1 or 2; WebRTC uses 2).
    pub audio_channels: u8,
    /// Frames are held this long so that audio and video can be interleaved in time order.
    pub reorder_window: Duration,
    /// How long (in media time) to wait for a first keyframe before starting the file
    /// with `DEFAULT_SIZE` anyway.
    pub max_wait_for_keyframe: Duration,
    /// Buffered bytes are pushed to the OS at least this often (bounds what a crash loses).
    pub flush_interval: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            audio: true,
            video: true,
            video_codec: VideoCodec::Vp8,
            width: None,
            height: None,
            audio_channels: 2,
            reorder_window: Duration::from_millis(300),
            max_wait_for_keyframe: Duration::from_secs(3),
            flush_interval: Duration::from_secs(1),
        }
    }
}

/// Result of a finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFile {
    pub path: PathBuf,
    pub duration_ms: u64,
    pub size: u64,
    pub has_audio: bool,
    pub has_video: bool,
    pub width: u32,
    pub height: u32,
    /// Caller timestamp (ns) of the first frame written; becomes media time 0.
    pub first_timestamp_ns: Option<u64>,
    pub audio_frames: u64,
    pub video_frames: u64,
    /// Frames dropped because they were too late, came before the first keyframe or
    /// were rejected by the muxer.
    pub dropped_frames: u64,
    /// Lowercase hex SHA-256 of the file on disk; set for encrypted recordings only (then
    /// it is the hash of the ciphertext and `size` is the ciphertext size).
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Audio,
    Video { key: bool },
}

struct Pending {
    ts: u64,
    kind: Kind,
    data: Vec<u8>,
}

// One per recording, never moved on a hot path: boxing the WebM segment would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Webm(Segment<Sink>),
    Mkv(mkv::MkvWriter<Sink>),
}

struct Muxer {
    backend: Backend,
    audio: Option<u64>,
    video: Option<u64>,
}

/// Incremental WebM writer for one stream. Not `Sync`; move it into the task that owns
/// the stream.
pub struct StreamRecorder {
    path: PathBuf,
    cfg: RecorderConfig,
    /// The output until the muxer starts (it then owns it).
    sink: Option<Sink>,
    mux: Option<Muxer>,
    size: (u32, u32),
    /// H.264: the parameter sets seen so far, and the `avcC` record made from them at the
    /// first keyframe.
    h264_sets: h264::ParameterSets,
    avc: Option<Vec<u8>>,
    pending: Vec<Pending>,
    max_ts: u64,
    base: Option<u64>,
    last_written: u64,
    /// Millisecond timecode of the last video frame written.
    last_video_ms: Option<u64>,
    end_ns: u64,
    video_started: bool,
    audio_frames: u64,
    video_frames: u64,
    dropped: u64,
}

impl StreamRecorder {
    /// Create (truncate) `path` and prepare to record. Fails if neither audio nor video is
    /// enabled or the size is half given.
    pub fn create(path: impl AsRef<Path>, cfg: RecorderConfig) -> Result<Self> {
        Self::validate(&cfg)?;
        let path = path.as_ref().to_path_buf();
        let sink = Sink::plain(File::create(&path)?, cfg.flush_interval);
        Self::with_sink(path, cfg, sink)
    }

    /// Create (truncate) `path` and record into an age file (binary format) encrypted to
    /// all `recipients` while it streams: the WebM (live mode, no Duration or Cues) only
    /// exists in memory, the disk only ever sees ciphertext. The age header is on disk when
    /// this returns; `finish` seals the last chunk.
    pub fn create_encrypted(
        path: impl AsRef<Path>,
        cfg: RecorderConfig,
        recipients: Vec<Box<dyn age::Recipient + Send>>,
    ) -> Result<Self> {
        Self::validate(&cfg)?;
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path)?;
        let sink = Sink::encrypted(file, cfg.flush_interval, &recipients)?;
        Self::with_sink(path, cfg, sink)
    }

    fn validate(cfg: &RecorderConfig) -> Result<()> {
        if !cfg.audio && !cfg.video {
            return Err(ArchiveError::Invalid("neither audio nor video enabled".into()));
        }
        if !matches!(cfg.audio_channels, 1 | 2) {
            return Err(ArchiveError::Invalid("audio_channels must be 1 or 2".into()));
        }
        match (cfg.width, cfg.height) {
            (Some(w), Some(h)) if w > 0 && h > 0 => Ok(()),
            (None, None) => Ok(()),
            _ => Err(ArchiveError::Invalid("width and height must both be set".into())),
        }
    }

    fn with_sink(path: PathBuf, cfg: RecorderConfig, sink: Sink) -> Result<Self> {
        let size = cfg.width.zip(cfg.height).unwrap_or((0, 0));
        let mut rec = Self {
            path,
            cfg,
            sink: Some(sink),
            mux: None,
            size,
            h264_sets: h264::ParameterSets::default(),
            avc: None,
            pending: Vec::new(),
            max_ts: 0,
            base: None,
            last_written: 0,
            last_video_ms: None,
            end_ns: 0,
            video_started: false,
            audio_frames: 0,
            video_frames: 0,
            dropped: 0,
        };
        // H.264 needs its SPS and PPS (from the first keyframe) before the header.
        if !rec.cfg.video || (size.0 > 0 && rec.cfg.video_codec != VideoCodec::H264) {
            rec.start_muxer()?;
        }
        Ok(rec)
    }

    /// Queue one Opus packet; `timestamp_ns` is on the same clock as the video.
    pub fn write_audio(&mut self, packet: &[u8], timestamp_ns: u64) -> Result<()> {
        if !self.cfg.audio {
            return Err(ArchiveError::Invalid("audio not enabled".into()));
        }
        self.push(Pending { ts: timestamp_ns, kind: Kind::Audio, data: packet.to_vec() })
    }

    /// Queue one whole VP8 or VP9 frame, or one H.264 access unit (`RecorderConfig::video_codec`).
    pub fn write_video(&mut self, frame: &[u8], timestamp_ns: u64, is_keyframe: bool) -> Result<()> {
        if !self.cfg.video {
            return Err(ArchiveError::Invalid("video not enabled".into()));
        }
        let frame = if self.cfg.video_codec == VideoCodec::H264 {
            self.h264_sets.update(frame);
            // Parameter sets sent on their own are kept for the keyframe, not written as a
            // picture-less frame; an IDR without them gets them in front.
            if !h264::has_picture(frame) {
                return Ok(());
            }
            self.h264_sets.with_parameter_sets(frame)
        } else {
            std::borrow::Cow::Borrowed(frame)
        };
        let frame: &[u8] = &frame;
        if self.mux.is_none() && is_keyframe {
            if self.cfg.video_codec == VideoCodec::H264 {
                if let Some((config, size)) = self.h264_sets.config() {
                    self.avc = Some(config);
                    self.size = size;
                }
            } else if let Some(size) = self.cfg.video_codec.keyframe_size(frame) {
                self.size = size;
            }
        }
        self.push(Pending { ts: timestamp_ns, kind: Kind::Video { key: is_keyframe }, data: frame.to_vec() })?;
        if self.mux.is_none() && self.size.0 > 0 && (self.cfg.video_codec != VideoCodec::H264 || self.avc.is_some()) {
            self.start_muxer()?;
            self.drain(false)?;
        }
        Ok(())
    }

    /// Write everything still buffered, finalize the WebM (sizes, Cues, Duration) and close it.
    pub fn finish(mut self) -> Result<RecordedFile> {
        if self.mux.is_none() {
            self.drop_video_without_keyframe();
            if self.size.0 == 0 {
                self.size = DEFAULT_SIZE;
            }
            self.start_muxer()?;
        }
        self.drain(true)?;
        let mux = self.mux.take().expect("muxer started");
        if self.audio_frames + self.video_frames == 0 {
            drop(mux);
            return Err(ArchiveError::Mux("no frames were recorded".into()));
        }
        let duration_ms = self.end_ns.div_ceil(1_000_000);
        let sink = match mux.backend {
            Backend::Webm(segment) => segment
                .finalize(Some(duration_ms.max(1)))
                .map_err(|_| ArchiveError::Mux("finalize failed".into()))?
                .into_inner(),
            Backend::Mkv(w) => w.finish(duration_ms.max(1))?,
        };
        let (file, encrypted) = sink.finish()?;
        let size = file.metadata()?.len();
        Ok(RecordedFile {
            path: self.path.clone(),
            duration_ms,
            size,
            has_audio: self.cfg.audio,
            has_video: self.cfg.video,
            width: if self.cfg.video { self.size.0 } else { 0 },
            height: if self.cfg.video { self.size.1 } else { 0 },
            first_timestamp_ns: self.base,
            audio_frames: self.audio_frames,
            video_frames: self.video_frames,
            dropped_frames: self.dropped,
            sha256: encrypted.map(|e| e.sha256),
        })
    }

    /// Path being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn push(&mut self, p: Pending) -> Result<()> {
        if self.base.is_some_and(|b| p.ts < b) {
            self.dropped += 1;
            return Ok(());
        }
        self.max_ts = self.max_ts.max(p.ts);
        let at = self.pending.partition_point(|q| q.ts <= p.ts);
        self.pending.insert(at, p);
        if self.mux.is_none() {
            let waited = self.max_ts - self.pending[0].ts;
            if waited < self.cfg.max_wait_for_keyframe.as_nanos() as u64 {
                return Ok(());
            }
            self.drop_video_without_keyframe();
            self.size = DEFAULT_SIZE;
            self.start_muxer()?;
        }
        self.drain(false)
    }

    /// No video keyframe arrived while waiting (camera off, or an undecodable stream): a
    /// video track without frames makes libwebm refuse to finalize the file and would lose the
    /// audio too, so such a recording becomes audio-only. Later video frames are refused.
    fn drop_video_without_keyframe(&mut self) {
        let has_key = self.pending.iter().any(|p| matches!(p.kind, Kind::Video { key: true }));
        // An H.264 track cannot be described without the SPS and PPS of a keyframe.
        let usable = has_key && (self.cfg.video_codec != VideoCodec::H264 || self.avc.is_some());
        if self.cfg.video && self.cfg.audio && !usable {
            self.dropped += self.pending.iter().filter(|p| matches!(p.kind, Kind::Video { .. })).count() as u64;
            self.pending.retain(|p| p.kind == Kind::Audio);
            self.cfg.video = false;
        }
    }

    fn start_muxer(&mut self) -> Result<()> {
        if self.cfg.video_codec == VideoCodec::H264 {
            return self.start_mkv();
        }
        let out = self.sink.take().expect("sink present until muxer starts");
        let err = |e: webm::mux::Error| ArchiveError::Mux(e.to_string());
        let (writer, mode) = if out.is_encrypted() {
            (Writer::new_non_seek(out), SegmentMode::Live)
        } else {
            (Writer::new(out), SegmentMode::File)
        };
        let mut b = SegmentBuilder::new(writer).map_err(err)?;
        b = b.set_mode(mode).map_err(err)?;
        b = b.set_writing_app("conclave-archive").map_err(err)?;
        let mut video = None;
        if self.cfg.video {
            let codec = match self.cfg.video_codec {
                VideoCodec::Vp8 => VideoCodecId::VP8,
                VideoCodec::Vp9 => VideoCodecId::VP9,
                VideoCodec::H264 => unreachable!("H.264 goes to start_mkv"),
            };
            let (nb, t) = b.add_video_track(self.size.0, self.size.1, codec, None).map_err(err)?;
            b = nb;
            video = Some(t);
        }
        let mut audio = None;
        if self.cfg.audio {
            let ch = self.cfg.audio_channels as u32;
            let (nb, t) = b.add_audio_track(48_000, ch, AudioCodecId::Opus, None).map_err(err)?;
            b = nb.set_codec_private(t, &opus_head(self.cfg.audio_channels)).map_err(err)?;
            audio = Some(t);
        }
        self.mux =
            Some(Muxer { backend: Backend::Webm(b.build()), audio: audio.map(u64::from), video: video.map(u64::from) });
        Ok(())
    }

    /// H.264: a Matroska file of our own (`mkv`).
    fn start_mkv(&mut self) -> Result<()> {
        if self.cfg.video && self.avc.is_none() {
            return Err(ArchiveError::Mux("H.264 video without a keyframe carrying SPS and PPS".into()));
        }
        let out = self.sink.take().expect("sink present until muxer starts");
        let seekable = !out.is_encrypted();
        let avc = self.avc.clone().filter(|_| self.cfg.video).map(|config| mkv::AvcTrack {
            config,
            width: self.size.0,
            height: self.size.1,
        });
        let head = opus_head(self.cfg.audio_channels);
        let w = mkv::MkvWriter::start(out, seekable, avc.as_ref(), self.cfg.audio.then_some(&head[..]))?;
        self.mux = Some(Muxer {
            backend: Backend::Mkv(w),
            audio: self.cfg.audio.then_some(mkv::AUDIO_TRACK),
            video: self.cfg.video.then_some(mkv::VIDEO_TRACK),
        });
        Ok(())
    }

    /// Write frames older than the reorder window (all of them when `all`).
    fn drain(&mut self, all: bool) -> Result<()> {
        let window = self.cfg.reorder_window.as_nanos() as u64;
        let limit = if all { u64::MAX } else { self.max_ts.saturating_sub(window) };
        let n = self.pending.partition_point(|p| p.ts <= limit);
        let ready: Vec<Pending> = self.pending.drain(..n).collect();
        for p in ready {
            self.write_one(p)?;
        }
        Ok(())
    }

    fn write_one(&mut self, p: Pending) -> Result<()> {
        let mux = self.mux.as_mut().expect("muxer started");
        if let Kind::Video { key: false } = p.kind
            && !self.video_started
        {
            self.dropped += 1;
            return Ok(());
        }
        let base = *self.base.get_or_insert(p.ts);
        let Some(rel) = p.ts.checked_sub(base).filter(|r| *r >= self.last_written) else {
            self.dropped += 1;
            return Ok(());
        };
        // WebM keeps milliseconds: two video frames in one millisecond would share a timecode,
        // which players and ffmpeg reject (a duplicate picture; the first one stays).
        if let Kind::Video { .. } = p.kind
            && self.last_video_ms.is_some_and(|last| rel / 1_000_000 <= last)
        {
            self.dropped += 1;
            return Ok(());
        }
        let (track, key, dur) = match p.kind {
            Kind::Audio => (mux.audio, true, opus_packet_duration_ns(&p.data)),
            Kind::Video { key } => (mux.video, key, 0),
        };
        let track = track.expect("track exists for enabled kind");
        let added = match &mut mux.backend {
            Backend::Webm(segment) => segment.add_frame(track, &p.data, rel, key).is_ok(),
            Backend::Mkv(w) => {
                let data = if track == mkv::VIDEO_TRACK { h264::to_length_prefixed(&p.data) } else { p.data };
                w.add_frame(track, &data, rel / 1_000_000, key).is_ok()
            }
        };
        if !added {
            self.dropped += 1;
            return Ok(());
        }
        self.last_written = rel;
        self.end_ns = self.end_ns.max(rel + dur);
        match p.kind {
            Kind::Audio => self.audio_frames += 1,
            Kind::Video { .. } => {
                self.video_started = true;
                self.video_frames += 1;
                self.last_video_ms = Some(rel / 1_000_000);
            }
        }
        Ok(())
    }
}
