//! Live streaming (OpenTok's broadcast API) and the Audio Connector. A broadcast composes a
//! routed session's streams live (`conclave_archive::live`, the archive layouts) and sends
//! H.264 + AAC to an HLS playlist this server serves at an unguessable URL and to each RTMP
//! output; an audio connection (`connector`) sends the session's audio as PCM to a
//! WebSocket.
//!
//! Owns: the node's running and recently stopped broadcasts (in memory: a broadcast is live
//! media, there is nothing to recover after a restart; its HLS files are removed when the
//! server starts), their taps on the SFU, limits (one per `multiBroadcastTag` per session,
//! a per-node cap on compositors, `maxDuration`), status callbacks and the HLS files. Must
//! not touch: REST parsing (`api::broadcasts`), URL policy (`target`) or media internals.

pub mod connector;
pub mod target;

use crate::archive::layout::{StreamView, layout_of};
use crate::archive::recording::StreamTags;
use crate::clock;
use crate::media::{FrameSink, MediaPool, publisher_peer};
use crate::signal::hub::{Hub, HubEvent};
use crate::signal::room::SessionEvent;
use crate::webhook::{CallbackPolicy, Notification, Webhooks};
use conclave_archive::live::{EncodeSpec, LiveCompositor, LiveSpec, OutputKind, OutputState};
use conclave_archive::recorder::VideoCodec;
use conclave_core::archive::{ArchiveLayout, StreamMode};
use conclave_core::broadcast::{
    BroadcastJson, BroadcastSettings, BroadcastStartRequest, BroadcastStreamJson, BroadcastUrls, HlsBody, RtmpJson,
};
use conclave_core::wire::MediaMode;
use conclave_media::{MediaKind, RecordedFrame};
use conclave_store::Store;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stopped broadcasts stay visible to `GET` this long (and at most `MAX_STOPPED` of them).
const KEEP_STOPPED: Duration = Duration::from_secs(24 * 3600);
const MAX_STOPPED: usize = 10_000;
/// Composed frames per second.
const FPS: u32 = 25;

#[derive(Debug, Clone)]
pub struct BroadcastConfig {
    /// HLS files live under here (`{id}/index.m3u8`).
    pub dir: PathBuf,
    /// Broadcasts composed at once on this node (each is an encoder and a decoder per stream).
    pub max_live: usize,
    /// Audio connections at once on this node.
    pub max_connectors: usize,
    pub outbound: CallbackPolicy,
    /// Base of the HLS URLs (`https://host`); the listening address when empty.
    pub public_url: String,
    /// How long a DVR playlist's segments are kept (OpenTok: two hours).
    pub dvr_window: Duration,
    /// Cluster mode: this node's name, carried in the IDs it hands out
    /// (`conclave_core::broadcast::make_id`).
    pub node_id: Option<String>,
}

impl BroadcastConfig {
    pub fn new(data_dir: &std::path::Path) -> Self {
        BroadcastConfig {
            dir: data_dir.join("broadcasts"),
            max_live: 2,
            max_connectors: 20,
            outbound: CallbackPolicy::default(),
            public_url: String::new(),
            dvr_window: Duration::from_secs(2 * 3600),
            node_id: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Gateway(String),
    #[error(transparent)]
    Store(#[from] conclave_store::StoreError),
    #[error("{0}")]
    Internal(String),
}

/// Manual mode's chosen streams: stream ID → (audio, video).
type Selection = HashMap<String, (bool, bool)>;

struct Broadcast {
    api_key: String,
    req: BroadcastStartRequest,
    created_at_ms: u64,
    updated_at_ms: u64,
    stopped: bool,
    reason: String,
    /// The HLS URL's capability part.
    secret: String,
    /// Streams composed, in the order they joined: (stream ID, tags, has audio, has video).
    streams: Vec<(String, StreamTags, bool, bool)>,
    /// Manual mode: the streams added with `PATCH …/streams`.
    selected: Selection,
    layout: ArchiveLayout,
    live: Option<Arc<LiveCompositor>>,
    started: Instant,
    stopped_at: Option<Instant>,
}

/// The broadcasts of this node.
pub struct Broadcaster {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    media: Option<MediaPool>,
    config: BroadcastConfig,
    webhooks: Option<Webhooks>,
    public_url: std::sync::OnceLock<String>,
    all: Mutex<HashMap<String, Broadcast>>,
    pub(crate) connectors: connector::Connectors,
}

impl Broadcaster {
    /// Leftover HLS files (from before a restart) are removed.
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        media: Option<MediaPool>,
        config: BroadcastConfig,
        webhooks: Option<Webhooks>,
    ) -> std::io::Result<Arc<Self>> {
        let _ = std::fs::remove_dir_all(&config.dir);
        std::fs::create_dir_all(&config.dir)?;
        Ok(Arc::new(Broadcaster {
            store,
            hub,
            media,
            config,
            webhooks,
            public_url: std::sync::OnceLock::new(),
            all: Mutex::default(),
            connectors: connector::Connectors::default(),
        }))
    }

    /// The listening address, used for HLS URLs unless `public_url` was configured.
    pub fn default_public_url(&self, url: &str) {
        let _ = self.public_url.set(if self.config.public_url.is_empty() {
            url.to_owned()
        } else {
            self.config.public_url.clone()
        });
    }

    fn base_url(&self) -> &str {
        self.public_url.get().map(String::as_str).unwrap_or(&self.config.public_url).trim_end_matches('/')
    }

    pub fn config(&self) -> &BroadcastConfig {
        &self.config
    }

    fn dir_of(&self, id: &str) -> PathBuf {
        self.config.dir.join(id)
    }

    /// The routed, live, non-E2EE session `session_id` of project `api_key`.
    pub(crate) async fn routed_session(&self, api_key: &str, session_id: &str) -> Result<(), BroadcastError> {
        let record = match conclave_core::SessionId::parse(session_id) {
            Ok(id) => self.store.session(id.as_str()).await?,
            Err(_) => None,
        };
        let s = record
            .filter(|s| s.api_key == api_key)
            .ok_or_else(|| BroadcastError::NotFound("Session not found".into()))?;
        if s.ended_at_ms.is_some() {
            return Err(BroadcastError::Conflict("the session has ended".into()));
        }
        if s.media_mode != MediaMode::Routed {
            return Err(BroadcastError::Conflict(
                "only routed sessions can be broadcast or connected (this session is relayed)".into(),
            ));
        }
        if s.e2ee {
            return Err(BroadcastError::Conflict(
                "an end-to-end encrypted session's media never reaches the server".into(),
            ));
        }
        if self.media.is_none() {
            return Err(BroadcastError::Conflict("this server runs without media".into()));
        }
        Ok(())
    }

    /// `POST …/broadcast`.
    pub async fn start(
        self: &Arc<Self>,
        api_key: &str,
        req: BroadcastStartRequest,
    ) -> Result<BroadcastJson, BroadcastError> {
        self.routed_session(api_key, &req.session_id).await?;
        for r in &req.rtmp {
            target::check_rtmp(&r.server_url, self.config.outbound)
                .await
                .map_err(|e| BroadcastError::Invalid(format!("outputs.rtmp {:?}: {e}", r.id)))?;
        }
        let id = conclave_core::broadcast::make_id(
            self.config.node_id.as_deref(),
            &uuid::Uuid::new_v4().simple().to_string(),
        );
        let secret = {
            let mut b = [0u8; 24];
            getrandom::fill(&mut b).map_err(|e| BroadcastError::Internal(e.to_string()))?;
            hex::encode(b)
        };
        {
            let all = lock(&self.all);
            let live: Vec<&Broadcast> = all.values().filter(|b| !b.stopped).collect();
            if live
                .iter()
                .any(|b| b.req.session_id == req.session_id && b.req.multi_broadcast_tag == req.multi_broadcast_tag)
            {
                return Err(BroadcastError::Conflict(
                    "The broadcast has already started for the session (give a distinct multiBroadcastTag to run two)"
                        .into(),
                ));
            }
            if live.len() >= self.config.max_live {
                return Err(BroadcastError::TooMany(format!(
                    "this node is already composing {} broadcasts (its limit); stop one or try later",
                    live.len()
                )));
            }
        }
        let live = Arc::new(
            self.compositor(&id, &req)
                .map_err(|e| BroadcastError::Internal(format!("cannot start the broadcast: {e}")))?,
        );
        let now = clock::unix_ms();
        let b = Broadcast {
            api_key: api_key.to_owned(),
            layout: req.layout.clone(),
            req,
            created_at_ms: now,
            updated_at_ms: now,
            stopped: false,
            reason: String::new(),
            secret,
            streams: Vec::new(),
            selected: HashMap::new(),
            live: Some(live),
            started: Instant::now(),
            stopped_at: None,
        };
        let (session_id, auto) = (b.req.session_id.clone(), b.req.stream_mode == StreamMode::Auto);
        lock(&self.all).insert(id.clone(), b);
        tracing::info!(broadcast = %id, session = %session_id, "broadcast started");
        if auto {
            // In the order they were published: a grid fills in that order.
            let mut streams = self.hub.streams(&session_id);
            streams.sort_by(|a, b| (a.created_at, &a.stream_id).cmp(&(b.created_at, &b.stream_id)));
            for s in streams {
                self.compose_stream(&id, &s, s.has_audio, s.has_video);
            }
        }
        let json = self.json(&id).ok_or_else(|| BroadcastError::Internal("the broadcast vanished".into()))?;
        self.notify(&json);
        Ok(json)
    }

    fn compositor(&self, id: &str, req: &BroadcastStartRequest) -> std::io::Result<LiveCompositor> {
        let mut outputs = Vec::new();
        // Low latency: one-second segments and keyframes; otherwise two.
        let segment = if req.hls.is_some_and(|h| h.low_latency) { 1 } else { 2 };
        if let Some(h) = req.hls {
            let list_size = if h.dvr { (self.config.dvr_window.as_secs() / segment as u64) as u32 } else { 6 };
            outputs.push((
                "hls".to_owned(),
                OutputKind::Hls { dir: self.dir_of(id), segment_seconds: segment, list_size },
            ));
        }
        for r in &req.rtmp {
            let (url, key, policy) = (r.server_url.clone(), r.stream_name.clone(), self.config.outbound);
            let target: conclave_archive::live::Target = Box::new(move || target::resolve_rtmp(&url, &key, policy));
            outputs.push((r.id.clone(), OutputKind::Rtmp { target }));
        }
        LiveCompositor::start(LiveSpec {
            encode: EncodeSpec {
                width: req.width,
                height: req.height,
                fps: FPS,
                has_audio: req.has_audio,
                has_video: req.has_video,
                video_bitrate: req.max_bitrate.min(u32::MAX as u64) as u32,
                keyframe_seconds: segment,
            },
            layout: conclave_archive::compose::Layout::BestFit,
            outputs,
        })
    }

    /// Starts composing one stream of a running broadcast (idempotent).
    fn compose_stream(&self, id: &str, s: &conclave_core::signal::StreamInfo, has_audio: bool, has_video: bool) {
        let mut all = lock(&self.all);
        let Some(b) = all.get_mut(id) else { return };
        let Some(live) = b.live.clone() else { return };
        if b.streams.iter().any(|(sid, ..)| sid == &s.stream_id) {
            return;
        }
        let (audio, video) = (has_audio && b.req.has_audio, has_video && b.req.has_video);
        if live.add_stream(&s.stream_id, audio, video, false).is_err() {
            tracing::warn!(broadcast = %id, "cannot start a stream decoder");
            return;
        }
        b.streams.push((s.stream_id.clone(), StreamTags::of(s), audio, video));
        b.updated_at_ms = clock::unix_ms();
        Self::apply_layout(b);
        if let Some(m) = &self.media {
            let stream_id = s.stream_id.clone();
            let sink: FrameSink = Arc::new(move |f: &Arc<RecordedFrame>| feed(&live, &stream_id, f));
            m.for_session(&b.req.session_id).tap(publisher_peer(&s.stream_id), id.to_owned(), Some(sink));
        }
    }

    fn uncompose_stream(&self, id: &str, stream_id: &str) {
        let mut all = lock(&self.all);
        let Some(b) = all.get_mut(id) else { return };
        let before = b.streams.len();
        b.streams.retain(|(sid, ..)| sid != stream_id);
        if b.streams.len() == before {
            return;
        }
        if let Some(m) = &self.media {
            m.for_session(&b.req.session_id).tap(publisher_peer(stream_id), id.to_owned(), None);
        }
        if let Some(live) = &b.live {
            live.remove_stream(stream_id);
        }
        b.updated_at_ms = clock::unix_ms();
        Self::apply_layout(b);
    }

    /// OpenTok's layout rules (the archive's): type, focus class, screen share.
    fn apply_layout(b: &Broadcast) {
        let Some(live) = &b.live else { return };
        let views: Vec<StreamView> = b
            .streams
            .iter()
            .map(|(_, tags, _, video)| StreamView { tags: *tags, has_video: *video, present: true })
            .collect();
        let (layout, focus) = layout_of(Some(&b.layout), &views);
        live.set_layout(layout);
        for (i, (sid, ..)) in b.streams.iter().enumerate() {
            live.set_focus(sid, Some(i) == focus);
        }
    }

    /// Session events: streams join and leave auto-mode broadcasts, classes move the focus.
    pub async fn on_hub_event(self: &Arc<Self>, e: &HubEvent) {
        let ids = |all: &HashMap<String, Broadcast>| -> Vec<(String, StreamMode, Selection)> {
            all.iter()
                .filter(|(_, b)| !b.stopped && b.req.session_id == e.session_id)
                .map(|(id, b)| (id.clone(), b.req.stream_mode, b.selected.clone()))
                .collect()
        };
        match &e.event {
            SessionEvent::StreamCreated(s) => {
                let targets = ids(&lock(&self.all));
                for (id, mode, selected) in targets {
                    match mode {
                        StreamMode::Auto => self.compose_stream(&id, s, s.has_audio, s.has_video),
                        StreamMode::Manual => {
                            if let Some((a, v)) = selected.get(&s.stream_id) {
                                self.compose_stream(&id, s, *a && s.has_audio, *v && s.has_video);
                            }
                        }
                    }
                }
                self.connectors.on_stream_created(s, &e.session_id);
            }
            SessionEvent::StreamDestroyed { stream, .. } => {
                let targets = ids(&lock(&self.all));
                for (id, ..) in targets {
                    self.uncompose_stream(&id, &stream.stream_id);
                }
                self.connectors.on_stream_destroyed(&stream.stream_id, &e.session_id);
            }
            SessionEvent::StreamClassesChanged(s) => {
                let mut all = lock(&self.all);
                for b in all.values_mut().filter(|b| !b.stopped && b.req.session_id == e.session_id) {
                    if let Some(entry) = b.streams.iter_mut().find(|(sid, ..)| sid == &s.stream_id) {
                        entry.1 = StreamTags::of(s);
                        Self::apply_layout(b);
                    }
                }
            }
            _ => {}
        }
    }

    fn owned<'a>(
        &self,
        all: &'a mut HashMap<String, Broadcast>,
        api_key: &str,
        id: &str,
    ) -> Result<&'a mut Broadcast, BroadcastError> {
        all.get_mut(id)
            .filter(|b| b.api_key == api_key)
            .ok_or_else(|| BroadcastError::NotFound("No matching broadcast found (with the specified ID)".into()))
    }

    /// `GET …/broadcast/{id}`.
    pub fn get(&self, api_key: &str, id: &str) -> Result<BroadcastJson, BroadcastError> {
        self.owned(&mut lock(&self.all), api_key, id)?;
        self.json(id).ok_or_else(|| BroadcastError::NotFound("No matching broadcast found".into()))
    }

    /// `GET …/broadcast`: newest first; `count` is the total that matched.
    pub fn list(
        &self,
        api_key: &str,
        session_id: Option<&str>,
        offset: usize,
        count: usize,
    ) -> (u64, Vec<BroadcastJson>) {
        let mut ids: Vec<(u64, String)> = lock(&self.all)
            .iter()
            .filter(|(_, b)| b.api_key == api_key && session_id.is_none_or(|s| b.req.session_id == s))
            .map(|(id, b)| (b.created_at_ms, id.clone()))
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        let total = ids.len() as u64;
        (total, ids.into_iter().skip(offset).take(count).filter_map(|(_, id)| self.json(&id)).collect())
    }

    /// `POST …/broadcast/{id}/stop` (also `maxDuration`, the session's end, shutdown). 409
    /// when it already stopped. The playlist gets its end; without DVR its files go.
    pub async fn stop(
        self: &Arc<Self>,
        api_key: Option<&str>,
        id: &str,
        reason: &str,
    ) -> Result<BroadcastJson, BroadcastError> {
        let (live, session_id, taps, dvr) = {
            let mut all = lock(&self.all);
            let b = match api_key {
                Some(k) => self.owned(&mut all, k, id)?,
                None => all.get_mut(id).ok_or_else(|| BroadcastError::NotFound("no such broadcast".into()))?,
            };
            if b.stopped {
                return Err(BroadcastError::Conflict(
                    "The broadcast (with the specified ID) was not found or it has already stopped".into(),
                ));
            }
            b.stopped = true;
            b.reason = reason.to_owned();
            b.updated_at_ms = clock::unix_ms();
            b.stopped_at = Some(Instant::now());
            let taps: Vec<String> = b.streams.iter().map(|(s, ..)| s.clone()).collect();
            (b.live.take(), b.req.session_id.clone(), taps, b.req.hls.is_some_and(|h| h.dvr))
        };
        if let Some(m) = &self.media {
            for s in taps {
                m.for_session(&session_id).tap(publisher_peer(&s), id.to_owned(), None);
            }
        }
        let outputs = live.as_ref().map(|l| l.outputs()).unwrap_or_default();
        if let Some(live) = live {
            // Frames still in flight from the taps are ignored once it has finished.
            let dir = self.dir_of(id);
            tokio::task::spawn_blocking(move || {
                live.finish();
                if !dvr {
                    let _ = std::fs::remove_dir_all(dir);
                }
            })
            .await
            .map_err(|e| BroadcastError::Internal(e.to_string()))?;
        }
        tracing::info!(broadcast = %id, reason, outputs = outputs.len(), "broadcast stopped");
        let json = self.json(id).ok_or_else(|| BroadcastError::Internal("the broadcast vanished".into()))?;
        self.notify(&json);
        Ok(json)
    }

    /// `PUT …/broadcast/{id}/layout`: takes effect at the next frame.
    pub fn set_layout(&self, api_key: &str, id: &str, layout: ArchiveLayout) -> Result<(), BroadcastError> {
        let mut all = lock(&self.all);
        let b = self.owned(&mut all, api_key, id)?;
        if b.stopped {
            return Err(BroadcastError::Conflict("the broadcast has stopped".into()));
        }
        b.layout = layout;
        b.updated_at_ms = clock::unix_ms();
        Self::apply_layout(b);
        Ok(())
    }

    /// `PATCH …/broadcast/{id}/streams` (manual mode; 405 in auto mode as OpenTok).
    pub fn patch_streams(
        &self,
        api_key: &str,
        id: &str,
        patch: conclave_core::archive::StreamPatch,
    ) -> Result<(), BroadcastError> {
        use conclave_core::archive::StreamPatch;
        let session_id = {
            let mut all = lock(&self.all);
            let b = self.owned(&mut all, api_key, id)?;
            if b.stopped {
                return Err(BroadcastError::Conflict("the broadcast has stopped".into()));
            }
            if b.req.stream_mode != StreamMode::Manual {
                return Err(BroadcastError::NotAllowed(
                    "streams can be added and removed in manual stream mode only".into(),
                ));
            }
            b.req.session_id.clone()
        };
        match patch {
            StreamPatch::Add(sel) => {
                // Only a stream of the session now is selected (an unknown ID changes nothing).
                let s = self
                    .hub
                    .streams(&session_id)
                    .into_iter()
                    .find(|s| s.stream_id == sel.stream_id)
                    .ok_or_else(|| BroadcastError::NotFound("Stream not found in the session".into()))?;
                if let Some(b) = lock(&self.all).get_mut(id) {
                    b.selected.insert(sel.stream_id.clone(), (sel.has_audio, sel.has_video));
                }
                self.compose_stream(id, &s, sel.has_audio && s.has_audio, sel.has_video && s.has_video);
            }
            StreamPatch::Remove(sid) => {
                if let Some(b) = lock(&self.all).get_mut(id) {
                    b.selected.remove(&sid);
                }
                self.uncompose_stream(id, &sid);
            }
        }
        Ok(())
    }

    /// Running broadcasts and audio connections (for `/metrics` and drain).
    pub fn active_count(&self) -> usize {
        lock(&self.all).values().filter(|b| !b.stopped).count()
    }

    /// Every second: `maxDuration`, ended sessions, DVR files past their window, old records.
    pub fn spawn_timers(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                me.tick().await;
            }
        });
    }

    async fn tick(self: &Arc<Self>) {
        let running: Vec<(String, String, bool)> = lock(&self.all)
            .iter()
            .filter(|(_, b)| !b.stopped)
            .map(|(id, b)| {
                (id.clone(), b.req.session_id.clone(), b.started.elapsed().as_secs() >= b.req.max_duration_s)
            })
            .collect();
        for (id, session_id, expired) in running {
            let ended = matches!(self.store.session(&session_id).await, Ok(Some(s)) if s.ended_at_ms.is_some());
            if expired || ended {
                let reason = if expired { "maxDuration" } else { "session ended" };
                let _ = self.stop(None, &id, reason).await;
            }
        }
        let window = self.config.dvr_window;
        let mut gone = Vec::new();
        {
            let mut all = lock(&self.all);
            all.retain(|id, b| {
                let age = b.stopped_at.map(|t| t.elapsed()).unwrap_or_default();
                if b.stopped && b.req.hls.is_some_and(|h| h.dvr) && age >= window {
                    gone.push(id.clone());
                }
                !(b.stopped && age >= KEEP_STOPPED)
            });
            if all.len() > MAX_STOPPED {
                let mut stopped: Vec<(u64, String)> =
                    all.iter().filter(|(_, b)| b.stopped).map(|(id, b)| (b.updated_at_ms, id.clone())).collect();
                stopped.sort();
                for (_, id) in stopped.into_iter().take(all.len() - MAX_STOPPED) {
                    all.remove(&id);
                }
            }
        }
        for id in gone {
            let _ = std::fs::remove_dir_all(self.dir_of(&id));
        }
        self.connectors.sweep().await;
    }

    /// Shutdown: every broadcast ends its playlist and every audio connection closes.
    pub async fn drain(self: &Arc<Self>) {
        let ids: Vec<String> = lock(&self.all).iter().filter(|(_, b)| !b.stopped).map(|(id, _)| id.clone()).collect();
        for id in ids {
            let _ = self.stop(None, &id, "server shutting down").await;
        }
        self.connectors.stop_all().await;
    }

    /// The HLS file `name` of broadcast `id`, when `secret` is its capability.
    pub fn hls_file(&self, id: &str, secret: &str, name: &str) -> Option<PathBuf> {
        let ok_name = (name == "index.m3u8" || (name.starts_with("segment-") && name.ends_with(".ts")))
            && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
        if !ok_name {
            return None;
        }
        let all = lock(&self.all);
        let b = all.get(id)?;
        let same: bool = subtle::ConstantTimeEq::ct_eq(b.secret.as_bytes(), secret.as_bytes()).into();
        same.then(|| self.dir_of(id).join(name))
    }

    fn json(&self, id: &str) -> Option<BroadcastJson> {
        let all = lock(&self.all);
        let b = all.get(id)?;
        let project: u64 = b.api_key.parse().unwrap_or(0);
        let outputs: HashMap<String, (OutputState, Option<String>)> = b
            .live
            .as_ref()
            .map(|l| l.outputs().into_iter().map(|(n, s)| (n, (s.state, s.error))).collect())
            .unwrap_or_default();
        let state_of = |name: &str| outputs.get(name).map(|(s, _)| *s);
        let rtmp = b
            .req
            .rtmp
            .iter()
            .map(|r| RtmpJson {
                id: r.id.clone(),
                server_url: r.server_url.clone(),
                stream_name: r.stream_name.clone(),
                status: match state_of(&r.id) {
                    _ if b.stopped => "offline",
                    Some(OutputState::Live) => "live",
                    Some(OutputState::Offline | OutputState::Ended) => "offline",
                    _ => "connecting",
                }
                .into(),
            })
            .collect();
        let dvr = b.req.hls.is_some_and(|h| h.dvr);
        let hls_url = b.req.hls.map(|_| {
            let url = format!("{}/hls/{id}/{}/index.m3u8", self.base_url(), b.secret);
            if dvr { format!("{url}?DVR") } else { url }
        });
        let hls_status = b.req.hls.map(|_| {
            if b.stopped {
                "ended"
            } else if self.dir_of(id).join("index.m3u8").exists() {
                "live"
            } else {
                "connecting"
            }
            .to_owned()
        });
        Some(BroadcastJson {
            id: id.to_owned(),
            session_id: b.req.session_id.clone(),
            project_id: project,
            application_id: b.api_key.parse::<u64>().is_err().then(|| b.api_key.clone()),
            created_at: b.created_at_ms,
            updated_at: b.updated_at_ms,
            resolution: b.req.resolution.clone(),
            status: if b.stopped { "stopped" } else { "started" }.into(),
            broadcast_urls: BroadcastUrls { hls: hls_url, hls_status, rtmp },
            max_duration: b.req.max_duration_s,
            max_bitrate: b.req.max_bitrate,
            stream_mode: b.req.stream_mode,
            has_audio: b.req.has_audio,
            has_video: b.req.has_video,
            multi_broadcast_tag: b.req.multi_broadcast_tag.clone(),
            settings: b
                .req
                .hls
                .map(|h| BroadcastSettings { hls: HlsBody { dvr: Some(h.dvr), low_latency: Some(h.low_latency) } }),
            streams: if b.stopped || b.req.stream_mode != StreamMode::Manual {
                Vec::new()
            } else {
                b.streams
                    .iter()
                    .map(|(s, _, a, v)| BroadcastStreamJson { stream_id: s.clone(), has_audio: *a, has_video: *v })
                    .collect()
            },
            reason: b.reason.clone(),
        })
    }

    fn notify(&self, json: &BroadcastJson) {
        let Some(w) = &self.webhooks else { return };
        let api_key = lock(&self.all).get(&json.id).map(|b| b.api_key.clone()).unwrap_or_default();
        let mut body = serde_json::to_value(json).unwrap_or_default();
        body["event"] = "broadcast".into();
        let _ = w.send(Notification {
            api_key,
            session_id: json.session_id.clone(),
            group: "broadcast",
            event: "status",
            name: "broadcast",
            body,
            at_ms: json.updated_at,
        });
    }
}

/// Hands a tapped frame to the compositor (on the media thread: never blocks).
fn feed(live: &LiveCompositor, stream_id: &str, f: &Arc<RecordedFrame>) {
    match f.kind {
        MediaKind::Audio => live.push_audio(stream_id, &f.data),
        MediaKind::Video => {
            let codec = match f.codec {
                "vp8" => VideoCodec::Vp8,
                "vp9" => VideoCodec::Vp9,
                "h264" => VideoCodec::H264,
                _ => return,
            };
            live.push_video(stream_id, codec, &f.data, f.keyframe, f.media_time_us / 1000);
        }
    }
}
