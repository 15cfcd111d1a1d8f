//! The live compositor of a broadcast: a thread that, `fps` times a second, draws every
//! stream's latest picture into its layout tile (the archive layouts of `compose::layout`,
//! the same focus and screen-share rules) and mixes one tick of every stream's audio, and
//! hands both to the encoder, whose MPEG-TS goes to the outputs (HLS, RTMP).
//!
//! Owns: the streams of one broadcast (their decoders), the layout and the clock. Must not
//! know where frames come from (the caller pushes them) or which URLs are allowed (outputs
//! get checked targets).

use super::decode::{AudioDecoder, VideoDecoder};
use super::encode::{EncodeSpec, LiveEncoder};
use super::output::{Output, OutputKind, OutputStatus};
use super::picture::Picture;
use crate::compose::{Layout, TileInput, placements};
use crate::recorder::VideoCodec;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SAMPLE_RATE: u32 = 48_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a broadcast composes and where it goes.
pub struct LiveSpec {
    pub encode: EncodeSpec,
    pub layout: Layout,
    /// Outputs, each with the caller's name for it (e.g. the RTMP output's `id`).
    pub outputs: Vec<(String, OutputKind)>,
}

struct Stream {
    order: u64,
    focus: bool,
    video: Option<VideoDecoder>,
    audio: Option<AudioDecoder>,
}

#[derive(Default)]
struct State {
    streams: BTreeMap<String, Stream>,
    layout: Layout,
    next_order: u64,
}

/// A running broadcast composition.
pub struct LiveCompositor {
    state: Arc<Mutex<State>>,
    spec: EncodeSpec,
    names: Vec<String>,
    outputs: Arc<Vec<Output>>,
    encoder: Arc<LiveEncoder>,
    stop: Arc<AtomicBool>,
    ticks: Arc<AtomicU64>,
    late: Arc<AtomicU64>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl LiveCompositor {
    pub fn start(spec: LiveSpec) -> std::io::Result<Self> {
        let mut names = Vec::new();
        let mut outputs = Vec::new();
        for (name, kind) in spec.outputs {
            names.push(name);
            outputs.push(Output::start(kind)?);
        }
        let outputs = Arc::new(outputs);
        let encoder = Arc::new(LiveEncoder::start(spec.encode, outputs.clone())?);
        let state = Arc::new(Mutex::new(State { layout: spec.layout, ..State::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let (ticks, late) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let me =
            Self { state, spec: spec.encode, names, outputs, encoder, stop, ticks, late, thread: Mutex::new(None) };
        let (state, stop, ticks, late) = (me.state.clone(), me.stop.clone(), me.ticks.clone(), me.late.clone());
        let encoder = me.encoder.clone();
        *lock(&me.thread) = Some(
            std::thread::Builder::new()
                .name("live-compositor".into())
                .spawn(move || run(spec.encode, state, encoder, stop, ticks, late))?,
        );
        Ok(me)
    }

    /// Adds a stream (idempotent): its decoders start and wait for its first keyframe.
    pub fn add_stream(&self, id: &str, has_audio: bool, has_video: bool, focus: bool) -> std::io::Result<()> {
        let mut s = lock(&self.state);
        if s.streams.contains_key(id) {
            return Ok(());
        }
        let video = if has_video && self.spec.has_video {
            Some(VideoDecoder::start(self.spec.width, self.spec.height)?)
        } else {
            None
        };
        let audio = if has_audio && self.spec.has_audio { Some(AudioDecoder::start(SAMPLE_RATE)?) } else { None };
        let order = s.next_order;
        s.next_order += 1;
        s.streams.insert(id.to_owned(), Stream { order, focus, video, audio });
        Ok(())
    }

    pub fn remove_stream(&self, id: &str) {
        let removed = lock(&self.state).streams.remove(id);
        drop(removed);
    }

    pub fn set_focus(&self, id: &str, focus: bool) {
        if let Some(s) = lock(&self.state).streams.get_mut(id) {
            s.focus = focus;
        }
    }

    pub fn set_layout(&self, layout: Layout) {
        lock(&self.state).layout = layout;
    }

    pub fn stream_ids(&self) -> Vec<String> {
        lock(&self.state).streams.keys().cloned().collect()
    }

    /// A video frame of stream `id`; never blocks.
    pub fn push_video(&self, id: &str, codec: VideoCodec, data: &[u8], keyframe: bool, at_ms: u64) {
        if let Some(Some(v)) = lock(&self.state).streams.get(id).map(|s| s.video.as_ref()) {
            v.push(codec, data, keyframe, at_ms);
        }
    }

    /// An Opus packet of stream `id`; never blocks.
    pub fn push_audio(&self, id: &str, packet: &[u8]) {
        if let Some(Some(a)) = lock(&self.state).streams.get(id).map(|s| s.audio.as_ref()) {
            a.push(packet);
        }
    }

    /// Each output's name and status, in the order they were given.
    pub fn outputs(&self) -> Vec<(String, OutputStatus)> {
        self.names.iter().cloned().zip(self.outputs.iter().map(Output::status)).collect()
    }

    /// Ticks composed, and ticks that came late (the box is too busy for the frame rate).
    pub fn ticks(&self) -> (u64, u64) {
        (self.ticks.load(Ordering::Relaxed), self.late.load(Ordering::Relaxed))
    }

    /// Stops composing, lets the encoder and the outputs finish (HLS writes its end-of-list)
    /// and waits for them, up to a few seconds each.
    /// Frames pushed afterwards are ignored. Idempotent.
    pub fn finish(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
        let streams = std::mem::take(&mut lock(&self.state).streams);
        drop(streams);
        self.encoder.finish(Duration::from_secs(5));
        for o in self.outputs.iter() {
            o.finish(Duration::from_secs(5));
        }
    }
}

impl Drop for LiveCompositor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

fn run(
    spec: EncodeSpec,
    state: Arc<Mutex<State>>,
    encoder: Arc<LiveEncoder>,
    stop: Arc<AtomicBool>,
    ticks: Arc<AtomicU64>,
    late: Arc<AtomicU64>,
) {
    let period = Duration::from_secs(1) / spec.fps.max(1);
    let samples = (SAMPLE_RATE / spec.fps.max(1)) as usize;
    let mut canvas = Picture::black(spec.width, spec.height);
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_secs(1) {
            // Far behind (the box stalled): start the clock again rather than race.
            late.fetch_add(1, Ordering::Relaxed);
            next = now;
        }
        next += period;
        let (pictures, layout, mut pcm) = {
            let s = lock(&state);
            let mut order: Vec<(&String, &Stream)> = s.streams.iter().collect();
            order.sort_by_key(|(_, st)| st.order);
            let pictures: Vec<(bool, Option<Arc<Picture>>)> =
                order.iter().filter_map(|(_, st)| st.video.as_ref().map(|v| (st.focus, v.latest()))).collect();
            let mut pcm = vec![0i16; samples];
            if spec.has_audio {
                for (_, st) in &order {
                    if let Some(a) = &st.audio {
                        a.mix_into(&mut pcm);
                    }
                }
            }
            (pictures, s.layout, pcm)
        };
        if spec.has_video {
            canvas.fill_black();
            let tiles: Vec<TileInput> = pictures
                .iter()
                .map(|(focus, _)| TileInput {
                    offset_ms: 0,
                    duration_ms: 0,
                    has_audio: false,
                    has_video: true,
                    focus: *focus,
                })
                .collect();
            if !tiles.is_empty() {
                for (i, rect) in placements(layout, &tiles, spec.width, spec.height) {
                    if let Some(p) = &pictures[i].1 {
                        canvas.draw_fit(p, rect);
                    }
                }
            }
            encoder.push_picture(Arc::new(canvas.clone()));
        }
        if spec.has_audio {
            encoder.push_audio(super::mix::to_le_bytes(&pcm));
            pcm.clear();
        }
        ticks.fetch_add(1, Ordering::Relaxed);
    }
}
