//! One archive's recording thread: it receives tapped frames from the media task and writes
//! one file per stream (WebM for VP8/VP9, Matroska for H.264) into the archive's work
//! directory, incrementally (crash-safe to the last flush), with a journal line per stream so
//! a restart can find and finalize them.
//!
//! Owns: the stream recorders, keyframe gates and the journal. Must not touch: archive status,
//! the store or uploads (the pipeline does that with what `finish` returns).

use crate::media::{FrameSink, MediaHandle};
use conclave_archive::encrypt::EphemeralKey;
use conclave_archive::{KeyframeGate, RecorderConfig, StreamRecorder};
use conclave_media::{MediaKind, RecordedFrame};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Frames queued for the recording thread before new ones are dropped (and counted).
const QUEUE: usize = 4096;
/// How long an audio-only start waits for a video frame before the file is created without
/// knowing the video codec (VP8 is assumed then).
const CODEC_WAIT: Duration = Duration::from_secs(2);
pub const JOURNAL: &str = "streams.jsonl";

/// What the composed layout needs to know about a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTags {
    /// It has OpenTok's `focus` layout class.
    pub focus: bool,
    /// Its video is a screen share (`videoType: screen`).
    pub screen: bool,
}

impl StreamTags {
    pub fn of(s: &conclave_core::signal::StreamInfo) -> StreamTags {
        StreamTags {
            focus: s.layout_class_list.iter().any(|c| c == "focus"),
            screen: s.video_type == conclave_core::signal::VideoType::Screen,
        }
    }
}

/// A journal line: enough to finalize a stream's file after a crash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub stream_id: String,
    pub file: String,
    pub offset_ms: u64,
    pub has_audio: bool,
    pub has_video: bool,
    pub encrypted: bool,
    /// Absent in journals written before layouts were rendered.
    #[serde(default)]
    pub tags: StreamTags,
}

/// A stream's finished file.
#[derive(Debug, Clone)]
pub struct FinishedStream {
    pub stream_id: String,
    pub path: PathBuf,
    pub offset_ms: u64,
    pub duration_ms: u64,
    pub has_audio: bool,
    pub has_video: bool,
    /// The file is age-encrypted (to the customer and the recording's ephemeral key).
    pub encrypted: bool,
    /// Its layout tags when its recording started...
    pub tags: StreamTags,
    /// ...and each later change, with when it happened (ms after the recording started).
    pub tag_changes: Vec<(u64, StreamTags)>,
}

impl FinishedStream {
    /// Its tags at `ms` after the recording started.
    pub fn tags_at(&self, ms: u64) -> StreamTags {
        self.tag_changes.iter().take_while(|(at, _)| *at <= ms).last().map_or(self.tags, |(_, t)| *t)
    }

    /// Whether it was being recorded at `ms` after the recording started.
    pub fn present_at(&self, ms: u64) -> bool {
        (self.offset_ms..self.offset_ms + self.duration_ms.max(1)).contains(&ms)
    }
}

enum Input {
    Add {
        stream_id: String,
        has_audio: bool,
        has_video: bool,
        tags: StreamTags,
    },
    Remove {
        stream_id: String,
    },
    /// The stream's layout classes changed (the composed layout uses the latest).
    Tags {
        stream_id: String,
        tags: StreamTags,
    },
    Frame(Arc<RecordedFrame>),
    Finish(tokio::sync::oneshot::Sender<Vec<FinishedStream>>),
}

/// Handle on a running recording thread.
#[derive(Clone)]
pub struct Recording {
    tx: SyncSender<Input>,
    pub dropped: Arc<std::sync::atomic::AtomicU64>,
    /// The in-memory key that can read this recording's files back, and the customer key.
    pub key: Option<(Arc<EphemeralKey>, String)>,
}

pub struct RecordingSpec {
    pub dir: PathBuf,
    pub has_audio: bool,
    pub has_video: bool,
    /// Every file is age-encrypted to these before it touches the disk.
    pub encrypt_to: Option<(Arc<EphemeralKey>, String)>,
    pub media: Option<MediaHandle>,
}

impl Recording {
    pub fn start(spec: RecordingSpec) -> std::io::Result<Recording> {
        std::fs::create_dir_all(&spec.dir)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let key = spec.encrypt_to.clone();
        std::thread::Builder::new().name("archive-rec".into()).spawn(move || Worker::new(spec).run(rx))?;
        Ok(Recording { tx, dropped, key })
    }

    pub fn add_stream(&self, stream_id: &str, has_audio: bool, has_video: bool, tags: StreamTags) {
        let _ = self.tx.send(Input::Add { stream_id: stream_id.to_owned(), has_audio, has_video, tags });
    }

    pub fn set_tags(&self, stream_id: &str, tags: StreamTags) {
        let _ = self.tx.send(Input::Tags { stream_id: stream_id.to_owned(), tags });
    }

    pub fn remove_stream(&self, stream_id: &str) {
        let _ = self.tx.send(Input::Remove { stream_id: stream_id.to_owned() });
    }

    /// The sink the media task calls for each tapped frame (never blocks).
    pub fn sink(&self) -> FrameSink {
        let tx = self.tx.clone();
        let dropped = self.dropped.clone();
        Arc::new(move |f: &Arc<RecordedFrame>| {
            if let Err(TrySendError::Full(_)) = tx.try_send(Input::Frame(f.clone())) {
                dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    }

    /// Finalizes every file and ends the thread.
    pub async fn finish(&self) -> Vec<FinishedStream> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Input::Finish(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

struct Track {
    has_audio: bool,
    has_video: bool,
    tags: StreamTags,
    tag_changes: Vec<(u64, StreamTags)>,
    added: Instant,
    /// Frames held until the video codec is known.
    early: Vec<Arc<RecordedFrame>>,
    recorder: Option<StreamRecorder>,
    gate: KeyframeGate,
    file: String,
    offset_ms: u64,
    audio_clock: MediaClock,
    video_clock: MediaClock,
}

/// Timecodes from the sender's media clock, anchored to the arrival of a first frame.
///
/// Stamping frames with their arrival made frames that arrive in one burst (a stalled network,
/// a loaded host) share or nearly share a timecode, which players and ffmpeg refuse. The RTP
/// timestamp keeps the real spacing. The anchor moves when the media clock jumps (a new SSRC,
/// another simulcast layer, a publisher that restarted): then the frame takes its arrival
/// time, never earlier than the last timecode written.
#[derive(Default)]
struct MediaClock {
    /// (arrival ns since the recording started, media µs) of the anchor frame.
    anchor: Option<(u64, u64)>,
    last_ns: Option<u64>,
    /// The last step between two timecodes taken from the media clock (a frame's length).
    step_ns: u64,
}

/// A media clock that strays further than this from the arrivals has jumped.
const CLOCK_JUMP_NS: u64 = 2_000_000_000;

impl MediaClock {
    fn timecode(&mut self, arrival_ns: u64, media_us: u64) -> u64 {
        let from_anchor = self.anchor.and_then(|(a_ns, a_us)| {
            let ts = a_ns.checked_add(media_us.checked_sub(a_us)?.checked_mul(1000)?)?;
            (ts.abs_diff(arrival_ns) <= CLOCK_JUMP_NS).then_some(ts)
        });
        let ts = match from_anchor {
            Some(ts) => {
                if let Some(last) = self.last_ns.filter(|l| ts > *l) {
                    self.step_ns = (ts - last).min(CLOCK_JUMP_NS);
                }
                ts
            }
            None => {
                // At least one frame after the last one: a simulcast layer switch hands over
                // the same picture, and two frames a millisecond apart would share a timestamp
                // at the frame rate players and ffmpeg use.
                let gap = self.step_ns.max(1_000_000);
                let ts = self.last_ns.map_or(arrival_ns, |last| arrival_ns.max(last + gap));
                self.anchor = Some((ts, media_us));
                ts
            }
        };
        self.last_ns = Some(self.last_ns.map_or(ts, |last| last.max(ts)));
        ts
    }
}

struct Worker {
    spec: RecordingSpec,
    start: Instant,
    tracks: HashMap<String, Track>,
    finished: Vec<FinishedStream>,
}

impl Worker {
    fn new(spec: RecordingSpec) -> Worker {
        Worker { spec, start: Instant::now(), tracks: HashMap::new(), finished: Vec::new() }
    }

    fn run(mut self, rx: Receiver<Input>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(Input::Add { stream_id, has_audio, has_video, tags }) => {
                    self.add(stream_id, has_audio, has_video, tags)
                }
                Ok(Input::Remove { stream_id }) => self.remove(&stream_id),
                Ok(Input::Tags { stream_id, tags }) => {
                    let at = self.start.elapsed().as_millis() as u64;
                    if let Some(t) = self.tracks.get_mut(&stream_id) {
                        t.tag_changes.push((at, tags));
                    }
                }
                Ok(Input::Frame(f)) => self.frame(f),
                Ok(Input::Finish(reply)) => {
                    let ids: Vec<String> = self.tracks.keys().cloned().collect();
                    for id in ids {
                        self.remove(&id);
                    }
                    let _ = reply.send(std::mem::take(&mut self.finished));
                    return;
                }
                Err(RecvTimeoutError::Timeout) => self.create_waiting(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn add(&mut self, stream_id: String, has_audio: bool, has_video: bool, tags: StreamTags) {
        if self.tracks.contains_key(&stream_id) || conclave_archive::package::stream_filename(&stream_id).is_err() {
            return;
        }
        let track = Track {
            has_audio: has_audio && self.spec.has_audio,
            has_video: has_video && self.spec.has_video,
            tags,
            tag_changes: Vec::new(),
            added: Instant::now(),
            early: Vec::new(),
            recorder: None,
            gate: KeyframeGate::new(Duration::from_millis(500)),
            file: String::new(),
            offset_ms: 0,
            audio_clock: MediaClock::default(),
            video_clock: MediaClock::default(),
        };
        if !track.has_audio && !track.has_video {
            return;
        }
        self.tracks.insert(stream_id, track);
    }

    fn remove(&mut self, stream_id: &str) {
        let Some(mut t) = self.tracks.remove(stream_id) else { return };
        if t.recorder.is_none() && !t.early.is_empty() {
            self.create(stream_id, &mut t, "vp8");
        }
        let Some(rec) = t.recorder.take() else { return };
        match rec.finish() {
            Ok(f) => self.finished.push(FinishedStream {
                stream_id: stream_id.to_owned(),
                path: f.path,
                offset_ms: t.offset_ms,
                duration_ms: f.duration_ms,
                has_audio: f.has_audio,
                has_video: f.has_video,
                encrypted: self.spec.encrypt_to.is_some(),
                tags: t.tags,
                tag_changes: std::mem::take(&mut t.tag_changes),
            }),
            Err(e) => {
                tracing::warn!(stream = %stream_id, error = %e, "a stream recorded nothing usable");
                let _ = std::fs::remove_file(self.spec.dir.join(&t.file));
            }
        }
    }

    /// Audio-only publishers never send a video frame: create their files after a wait.
    fn create_waiting(&mut self) {
        let due: Vec<String> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.recorder.is_none() && !t.early.is_empty() && t.added.elapsed() >= CODEC_WAIT)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let mut t = self.tracks.remove(&id).expect("listed");
            self.create(&id, &mut t, "vp8");
            self.tracks.insert(id, t);
        }
    }

    fn frame(&mut self, f: Arc<RecordedFrame>) {
        let Some(crate::media::PeerId::Publisher(stream_id)) = crate::media::PeerId::parse(&f.publisher) else {
            return;
        };
        let Some(mut t) = self.tracks.remove(&stream_id) else { return };
        if t.recorder.is_none() {
            let is_video = f.kind == MediaKind::Video;
            let codec = f.codec;
            t.early.push(f);
            if is_video || !t.has_video || t.added.elapsed() >= CODEC_WAIT {
                self.create(&stream_id, &mut t, if is_video { codec } else { "vp8" });
            }
        } else {
            self.write(&stream_id, &mut t, &f);
        }
        self.tracks.insert(stream_id, t);
    }

    fn create(&mut self, stream_id: &str, t: &mut Track, video_codec: &str) {
        let video_codec = match video_codec {
            "vp9" => conclave_archive::recorder::VideoCodec::Vp9,
            "vp8" => conclave_archive::recorder::VideoCodec::Vp8,
            // Matroska (`.mkv`), as OpenTok records H.264 streams.
            "h264" => conclave_archive::recorder::VideoCodec::H264,
            other => {
                // AV1 is not recorded yet: keep the audio and say why in the log.
                tracing::warn!(stream = %stream_id, codec = other, "this video codec is not recorded; recording audio only");
                t.has_video = false;
                conclave_archive::recorder::VideoCodec::Vp8
            }
        };
        if !t.has_audio && !t.has_video {
            t.early.clear();
            return;
        }
        let encrypted = self.spec.encrypt_to.is_some();
        let file = format!("{stream_id}.{}{}", video_codec.extension(), if encrypted { ".age" } else { "" });
        let cfg = RecorderConfig { audio: t.has_audio, video: t.has_video, video_codec, ..RecorderConfig::default() };
        let path = self.spec.dir.join(&file);
        let rec = match &self.spec.encrypt_to {
            None => StreamRecorder::create(&path, cfg),
            Some((key, customer)) => match conclave_archive::encrypt::ArchiveRecipient::parse(customer) {
                Ok(r) => StreamRecorder::create_encrypted(&path, cfg, vec![r.to_boxed(), key.boxed_recipient()]),
                Err(e) => Err(e),
            },
        };
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(stream = %stream_id, error = %e, "cannot create a stream recording");
                t.early.clear();
                return;
            }
        };
        let first = t.early.first().map(|f| f.arrival).unwrap_or_else(Instant::now);
        t.offset_ms = first.saturating_duration_since(self.start).as_millis() as u64;
        t.file = file.clone();
        t.recorder = Some(rec);
        self.journal(&JournalEntry {
            stream_id: stream_id.to_owned(),
            file,
            offset_ms: t.offset_ms,
            has_audio: t.has_audio,
            has_video: t.has_video,
            encrypted,
            tags: t.tags,
        });
        for f in std::mem::take(&mut t.early) {
            self.write(stream_id, t, &f);
        }
    }

    fn write(&mut self, stream_id: &str, t: &mut Track, f: &RecordedFrame) {
        let Some(rec) = t.recorder.as_mut() else { return };
        let ts = f.arrival.saturating_duration_since(self.start).as_nanos() as u64;
        let res = match f.kind {
            MediaKind::Audio if t.has_audio => rec.write_audio(&f.data, t.audio_clock.timecode(ts, f.media_time_us)),
            MediaKind::Video if t.has_video => {
                let d = t.gate.on_frame(f.keyframe, !f.contiguous, Instant::now());
                if d.request_keyframe
                    && let Some(m) = &self.spec.media
                {
                    m.request_keyframe(crate::media::publisher_peer(stream_id));
                }
                let ts = t.video_clock.timecode(ts, f.media_time_us);
                if d.write { rec.write_video(&f.data, ts, f.keyframe) } else { Ok(()) }
            }
            _ => Ok(()),
        };
        if let Err(e) = res {
            tracing::debug!(stream = %stream_id, error = %e, "frame not recorded");
        }
    }

    fn journal(&self, entry: &JournalEntry) {
        let path = self.spec.dir.join(JOURNAL);
        let line = serde_json::to_string(entry).expect("serializes") + "\n";
        let res = std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| {
            f.write_all(line.as_bytes())?;
            f.sync_data()
        });
        if let Err(e) = res {
            tracing::error!(error = %e, "cannot write the archive journal");
        }
    }
}

/// Reads a work directory's journal (what a crashed recording left).
pub fn read_journal(dir: &Path) -> Vec<JournalEntry> {
    let Ok(text) = std::fs::read_to_string(dir.join(JOURNAL)) else { return Vec::new() };
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[cfg(test)]
mod timecode_tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_burst_keeps_the_senders_spacing() {
        let mut clock = MediaClock::default();
        // 30 fps video (33 ms apart on the media clock) arriving in one burst after a stall.
        let out: Vec<u64> = [(100, 1_000), (400, 1_033), (400, 1_066), (400, 1_100)]
            .map(|(arrival_ms, media_ms)| clock.timecode(arrival_ms * MS, media_ms * 1000) / MS)
            .to_vec();
        assert_eq!(out, [100, 133, 166, 200]);
    }

    #[test]
    fn a_jump_of_the_media_clock_reanchors_without_going_back() {
        let mut clock = MediaClock::default();
        assert_eq!(clock.timecode(100 * MS, 5_000_000) / MS, 100);
        assert_eq!(clock.timecode(120 * MS, 5_020_000) / MS, 120);
        // Another SSRC: its clock has nothing to do with the first; it starts a frame (20 ms)
        // after the last timecode, then follows its own clock.
        assert_eq!(clock.timecode(121 * MS, 77_000) / MS, 140);
        assert_eq!(clock.timecode(141 * MS, 97_000) / MS, 160);
        // A jump backwards to a point already written is placed a frame after it.
        assert_eq!(clock.timecode(100 * MS, 9_000_000_000) / MS, 180);
    }

    #[test]
    fn a_layer_switch_lands_a_frame_after_the_last_picture() {
        let mut clock = MediaClock::default();
        assert_eq!(clock.timecode(1_000 * MS, 50_000_000) / MS, 1_000);
        assert_eq!(clock.timecode(1_066 * MS, 50_066_000) / MS, 1_066);
        // The other layer's keyframe arrives at once, on its own clock.
        assert_eq!(clock.timecode(1_067 * MS, 7_000_000) / MS, 1_132);
    }
}
