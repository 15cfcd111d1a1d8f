//! Archiving (compat doc 6.2 and 7): starts and stops recordings of routed sessions, follows
//! the session's streams, and hands finished recordings to the pipeline (package, encrypt,
//! upload or keep in the fallback store). Every status change goes to the store (with a
//! compare-and-set, so no lifecycle step is skipped) and to the project's archive callbacks.
//!
//! Owns: the live recordings of this node and the archive lifecycle. Must not touch: SQL (the
//! store), WebM/ZIP/S3 bytes (`conclave-archive`), or who may call it (the REST layer checks
//! the project credential; no client token can reach this module).

mod alert;
pub(crate) mod layout;
mod pipeline;
pub(crate) mod recording;
mod retry;
pub mod signed_url;
pub mod storage;
mod upkeep;

pub use alert::SmtpConfig;
pub use retry::UploadRetry;

use crate::clock;
use crate::media::MediaPool;
use crate::metrics::{Metrics, inc};
use crate::signal::hub::{Hub, HubEvent};
use crate::signal::room::SessionEvent;
use crate::webhook::{Notification, Webhooks};
use conclave_archive::encrypt::EphemeralKey;
use conclave_archive::upload::FallbackStore;
use conclave_core::archive::{ArchiveJson, ArchiveStartRequest, ArchiveStatus, OutputMode, StreamMode, StreamPatch};
use conclave_core::signal::ServerMessage;
use conclave_core::wire::{ArchiveMode, MediaMode};
use conclave_store::{ArchiveRecord, Store, StoreError};
use recording::{Recording, RecordingSpec};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// `<data dir>/archives`: `work/<id>/` while recording, `fallback/` afterwards.
    pub dir: PathBuf,
    /// How long an `available` archive is kept (from its creation, like OpenTok's 72 h).
    pub retention: Duration,
    /// A started archive with nothing published for this long stops by itself.
    pub idle_stop: Duration,
    /// Longest recording (OpenTok: 4 h).
    pub max_duration: Duration,
    /// How often the sweeper expires fallback copies.
    pub sweep_every: Duration,
    /// Back-off of upload retries from the fallback store (`retry`).
    pub upload_retry: UploadRetry,
    /// Base of the signed download URLs, e.g. `https://conclave.example.com` (empty: the
    /// first listening address, set when it is bound).
    pub public_url: String,
    pub smtp: Option<SmtpConfig>,
    /// Key for signing download URLs. Derived from the master key so that every node of a
    /// cluster accepts the others' URLs; `None` draws a random one (URLs die with the process).
    pub url_key: Option<[u8; 32]>,
    /// The outbound address policy uploads obey (the callbacks' policy: public https only
    /// unless the operator allows private or plain-http targets).
    pub outbound: crate::webhook::CallbackPolicy,
}

impl ArchiveConfig {
    pub fn new(data_dir: &std::path::Path, public_url: String) -> Self {
        ArchiveConfig {
            dir: data_dir.join("archives"),
            retention: Duration::from_secs(72 * 3600),
            idle_stop: Duration::from_secs(60),
            max_duration: Duration::from_secs(4 * 3600),
            sweep_every: Duration::from_secs(30),
            upload_retry: UploadRetry::from_env(),
            public_url,
            smtp: None,
            url_key: None,
            outbound: crate::webhook::CallbackPolicy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// A recording in progress on this node.
struct Active {
    api_key: String,
    session_id: String,
    name: String,
    stream_mode: StreamMode,
    tag: Option<String>,
    recording: Recording,
    /// Streams being recorded now (with their audio/video choice).
    recorded: HashMap<String, (bool, bool)>,
    /// `manual` mode: the streams chosen with PATCH.
    selected: HashMap<String, (bool, bool)>,
    started: Instant,
    idle_since: Option<Instant>,
    status: ArchiveStatus,
}

pub struct Archiver {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    media: Option<MediaPool>,
    config: ArchiveConfig,
    fallback: FallbackStore,
    webhooks: Option<Webhooks>,
    metrics: Arc<Metrics>,
    url_key: [u8; 32],
    public_url: std::sync::OnceLock<String>,
    /// Cluster mode: this node's ID (stamped on the archives it records) and the registry.
    cluster: Arc<dyn crate::cluster::Coordinator>,
    active: Mutex<HashMap<String, Active>>,
    /// Pipelines still running (drain waits for them).
    in_flight: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
    /// Sessions whose automatic archive is being started (no double start).
    auto_starting: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn new_archive_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS CSPRNG is available");
    conclave_core::ids::uuid_v4(b)
}

impl Archiver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        media: Option<MediaPool>,
        config: ArchiveConfig,
        webhooks: Option<Webhooks>,
        metrics: Arc<Metrics>,
        cluster: Arc<dyn crate::cluster::Coordinator>,
    ) -> std::io::Result<Arc<Archiver>> {
        std::fs::create_dir_all(config.dir.join("work"))?;
        let fallback = FallbackStore::new(config.dir.join("fallback")).map_err(std::io::Error::other)?;
        let url_key = config.url_key.unwrap_or_else(|| {
            let mut k = [0u8; 32];
            getrandom::fill(&mut k).expect("the OS CSPRNG is available");
            k
        });
        Ok(Arc::new(Archiver {
            store,
            hub,
            media,
            config,
            fallback,
            webhooks,
            metrics,
            url_key,
            public_url: std::sync::OnceLock::new(),
            cluster,
            active: Mutex::default(),
            in_flight: tokio::sync::Mutex::default(),
            auto_starting: Mutex::default(),
        }))
    }

    /// The listening address, used for download URLs unless `public_url` was configured.
    pub fn default_public_url(&self, url: &str) {
        let _ = self.public_url.set(if self.config.public_url.is_empty() {
            url.to_owned()
        } else {
            self.config.public_url.clone()
        });
    }

    fn base_url(&self) -> &str {
        self.public_url.get().map(String::as_str).unwrap_or(&self.config.public_url)
    }

    pub fn config(&self) -> &ArchiveConfig {
        &self.config
    }

    pub fn fallback(&self) -> &FallbackStore {
        &self.fallback
    }

    fn work_dir(&self, id: &str) -> PathBuf {
        self.config.dir.join("work").join(id)
    }

    /// The Archive object for `r`, with a fresh signed URL when it is `available`.
    pub fn to_json(&self, r: &ArchiveRecord) -> ArchiveJson {
        let project: u64 = r.api_key.parse().unwrap_or(0);
        let url = (r.status == ArchiveStatus::Available)
            .then(|| signed_url::make(&self.url_key, self.base_url(), &r.api_key, &r.id, clock::unix_secs()));
        ArchiveJson {
            id: r.id.clone(),
            status: r.status,
            name: r.name.clone(),
            reason: r.reason.clone(),
            session_id: r.session_id.clone(),
            project_id: project,
            partner_id: project,
            application_id: r.api_key.parse::<u64>().is_err().then(|| r.api_key.clone()),
            created_at: r.created_at_ms,
            updated_at: r.updated_at_ms,
            size: r.size,
            duration: r.duration_s,
            output_mode: r.output_mode,
            stream_mode: r.stream_mode,
            has_audio: r.has_audio,
            has_video: r.has_video,
            resolution: r.resolution.clone(),
            layout: r.layout.clone(),
            max_bitrate: r.max_bitrate,
            quantization_parameter: r.quantization_parameter,
            streams: if r.status.is_recording() && r.stream_mode == StreamMode::Manual {
                r.streams.clone()
            } else {
                Vec::new()
            },
            sha256sum: r.sha256.clone(),
            password: String::new(),
            certificate: String::new(),
            url,
            encrypted: r.encrypted,
            expires_at: r.expires_at_ms.filter(|_| r.status == ArchiveStatus::Available),
            event: "archive".into(),
        }
    }

    pub fn verify_download(&self, api_key: &str, id: &str, expires: u64, signature: &str) -> bool {
        signed_url::verify(&self.url_key, api_key, id, expires, signature, clock::unix_secs())
    }

    /// Writes a status change (compare-and-set on `from`) and announces it.
    async fn transition(&self, mut r: ArchiveRecord, from: ArchiveStatus) -> Result<ArchiveRecord, ArchiveError> {
        // One place enforces compat 7.2's lifecycle (plus `retry`'s available → uploaded) for every writer.
        if !retry::may_become(from, r.status) {
            return Err(ArchiveError::Internal(format!(
                "archive {} cannot go from {} to {}",
                r.id,
                from.as_str(),
                r.status.as_str()
            )));
        }
        r.updated_at_ms = clock::unix_ms();
        if !self.store.update_archive(&r, from).await? {
            return Err(ArchiveError::Conflict(format!("archive is no longer {}", from.as_str())));
        }
        let c = &self.metrics.counters;
        match r.status {
            ArchiveStatus::Uploaded => inc(&c.archives_uploaded),
            ArchiveStatus::Available => inc(&c.archives_available),
            ArchiveStatus::Failed => inc(&c.archives_failed),
            ArchiveStatus::Expired => inc(&c.archives_expired),
            _ => {}
        }
        tracing::info!(archive = %r.id, status = r.status.as_str(), reason = %r.reason, "archive status");
        self.notify(&r);
        Ok(r)
    }

    fn notify(&self, r: &ArchiveRecord) {
        if let Some(w) = &self.webhooks {
            let body = serde_json::to_value(self.to_json(r)).expect("serializes");
            let _ = w.send(Notification {
                api_key: r.api_key.clone(),
                session_id: r.session_id.clone(),
                group: "archive",
                event: "status",
                name: "archive",
                body,
                at_ms: r.updated_at_ms,
            });
        }
    }

    /// `POST …/archive`: 404 for an unknown or foreign session, 409 for relayed or E2EE
    /// sessions and for a second archive without a distinct `multiArchiveTag`.
    pub async fn start(
        self: &Arc<Self>,
        api_key: &str,
        req: ArchiveStartRequest,
    ) -> Result<ArchiveRecord, ArchiveError> {
        let session = conclave_core::SessionId::parse(&req.session_id).ok();
        let record = match session {
            Some(id) => self.store.session(id.as_str()).await?,
            None => None,
        };
        let session = record
            .filter(|s| s.api_key == api_key)
            .ok_or_else(|| ArchiveError::NotFound("Session not found".into()))?;
        if session.ended_at_ms.is_some() {
            return Err(ArchiveError::Conflict("the session has ended".into()));
        }
        if session.media_mode != MediaMode::Routed {
            return Err(ArchiveError::Conflict("only routed sessions can be archived (this session is relayed: create it with p2p.preference=disabled)".into()));
        }
        if session.e2ee {
            return Err(ArchiveError::Conflict(
                "an end-to-end encrypted session cannot be archived: the server never sees its media".into(),
            ));
        }
        let project =
            self.store.project(api_key).await?.ok_or_else(|| ArchiveError::NotFound("project not found".into()))?;
        let id = new_archive_id();
        let now = clock::unix_ms();
        let key = project.archive_recipient.as_ref().map(|r| (Arc::new(EphemeralKey::generate()), r.clone()));
        if let Some((_, r)) = &key {
            conclave_archive::encrypt::ArchiveRecipient::parse(r)
                .map_err(|e| ArchiveError::Internal(format!("the project's archive key is unusable: {e}")))?;
        }
        let record = ArchiveRecord {
            id: id.clone(),
            api_key: api_key.to_owned(),
            session_id: req.session_id.clone(),
            // OpenTok answers `started` to a start call; the archive records as soon as a
            // stream appears, and shows `paused` when its last stream goes.
            status: ArchiveStatus::Started,
            reason: String::new(),
            created_at_ms: now,
            updated_at_ms: now,
            expires_at_ms: None,
            name: req.name.clone(),
            output_mode: req.output_mode,
            stream_mode: req.stream_mode,
            has_audio: req.has_audio,
            has_video: req.has_video,
            resolution: req.resolution.clone(),
            layout: req.layout.clone(),
            layout_changes: Vec::new(),
            multi_archive_tag: req.multi_archive_tag.clone(),
            max_bitrate: req.max_bitrate,
            quantization_parameter: req.quantization_parameter,
            streams: Vec::new(),
            duration_s: 0,
            size: 0,
            sha256: String::new(),
            encrypted: key.is_some(),
            fallback_file: None,
            uploaded_key: None,
            node: self.cluster.node_id().map(str::to_owned),
        };
        let recording = Recording::start(RecordingSpec {
            dir: self.work_dir(&id),
            has_audio: req.has_audio,
            has_video: req.has_video,
            encrypt_to: key,
            media: self.media.as_ref().map(|m| m.for_session(&req.session_id).clone()),
        })
        .map_err(|e| ArchiveError::Internal(format!("cannot start recording: {e}")))?;
        {
            // The conflict check and the insertion into `active` happen under one lock.
            let mut active = lock(&self.active);
            // One archive per tag (no tag is a tag of its own), as OpenTok's multiArchiveTag:
            // an automatic archive (untagged) can run beside a manual one with a tag.
            let clash = active.values().any(|a| a.session_id == req.session_id && a.tag == req.multi_archive_tag);
            if clash {
                drop(active);
                drop(recording);
                let _ = std::fs::remove_dir_all(self.work_dir(&id));
                return Err(ArchiveError::Conflict(
                    "the session is already being recorded (give a distinct multiArchiveTag to record it twice)".into(),
                ));
            }
            active.insert(
                id.clone(),
                Active {
                    api_key: api_key.to_owned(),
                    session_id: req.session_id.clone(),
                    name: req.name.clone().unwrap_or_default(),
                    stream_mode: req.stream_mode,
                    tag: req.multi_archive_tag.clone(),
                    recording,
                    recorded: HashMap::new(),
                    selected: HashMap::new(),
                    started: Instant::now(),
                    idle_since: Some(Instant::now()),
                    status: ArchiveStatus::Started,
                },
            );
        }
        if let Err(e) = self.store.insert_archive(&record).await {
            self.abandon(&id);
            return Err(e.into());
        }
        inc(&self.metrics.counters.archives_started);
        tracing::info!(archive = %id, status = "started", "archive status");
        self.notify(&record);
        let started =
            ServerMessage::ArchiveStarted { archive_id: id.clone(), name: req.name.clone().unwrap_or_default() };
        self.hub.broadcast(&req.session_id, started);
        // Recording starts with the streams already published (auto mode). Only stream
        // events move the status afterwards (no second write here that could race them).
        if req.stream_mode == StreamMode::Auto {
            for s in self.hub.streams(&req.session_id) {
                self.record_stream(&id, &s, s.has_audio, s.has_video);
            }
        }
        Ok(record)
    }

    fn abandon(&self, id: &str) {
        lock(&self.active).remove(id);
        let _ = std::fs::remove_dir_all(self.work_dir(id));
    }

    /// Starts recording one stream of an active archive (idempotent).
    fn record_stream(
        &self,
        archive_id: &str,
        stream: &conclave_core::signal::StreamInfo,
        has_audio: bool,
        has_video: bool,
    ) {
        let stream_id = stream.stream_id.as_str();
        let mut active = lock(&self.active);
        let Some(a) = active.get_mut(archive_id) else { return };
        if a.recorded.contains_key(stream_id) {
            return;
        }
        a.recorded.insert(stream_id.to_owned(), (has_audio, has_video));
        a.idle_since = None;
        a.recording.add_stream(stream_id, has_audio, has_video, recording::StreamTags::of(stream));
        if let Some(m) = &self.media {
            let m = m.for_session(&a.session_id);
            m.tap(crate::media::publisher_peer(stream_id), archive_id.to_owned(), Some(a.recording.sink()));
        }
    }

    fn unrecord_stream(&self, archive_id: &str, stream_id: &str) {
        let mut active = lock(&self.active);
        let Some(a) = active.get_mut(archive_id) else { return };
        if a.recorded.remove(stream_id).is_none() {
            return;
        }
        if let Some(m) = &self.media {
            m.for_session(&a.session_id).tap(crate::media::publisher_peer(stream_id), archive_id.to_owned(), None);
        }
        a.recording.remove_stream(stream_id);
        if a.recorded.is_empty() {
            a.idle_since = Some(Instant::now());
        }
    }

    /// Moves an active archive between `started` and `paused` to match what it records.
    async fn refresh_status(&self, archive_id: &str, current: ArchiveRecord) -> ArchiveRecord {
        let want = {
            let mut active = lock(&self.active);
            let Some(a) = active.get_mut(archive_id) else { return current };
            let want = if a.recorded.is_empty() { ArchiveStatus::Paused } else { ArchiveStatus::Started };
            if want == a.status && want == current.status {
                return current;
            }
            a.status = want;
            want
        };
        if want == current.status {
            return current;
        }
        let mut next = current.clone();
        next.status = want;
        match self.transition(next, current.status).await {
            Ok(r) => r,
            Err(_) => current,
        }
    }

    async fn refresh_by_id(&self, archive_id: &str) {
        if let Ok(Some(r)) = self.store.archive(archive_id).await
            && r.status.is_recording()
        {
            self.refresh_status(archive_id, r).await;
        }
    }

    /// Session events from the hub: streams join and leave recordings, and `archiveMode
    /// always` sessions start their archive with the first stream.
    pub async fn on_hub_event(self: &Arc<Self>, e: &HubEvent) {
        match &e.event {
            SessionEvent::StreamCreated(s) => {
                let targets: Vec<(String, bool, bool)> = lock(&self.active)
                    .iter()
                    .filter(|(_, a)| a.session_id == e.session_id)
                    .filter_map(|(id, a)| match a.stream_mode {
                        StreamMode::Auto => Some((id.clone(), s.has_audio, s.has_video)),
                        StreamMode::Manual => a
                            .selected
                            .get(&s.stream_id)
                            .map(|(au, vi)| (id.clone(), *au && s.has_audio, *vi && s.has_video)),
                    })
                    .collect();
                if targets.is_empty() {
                    self.maybe_auto_start(&e.api_key, &e.session_id).await;
                }
                for (id, au, vi) in targets {
                    self.record_stream(&id, s, au, vi);
                    self.refresh_by_id(&id).await;
                }
            }
            SessionEvent::StreamClassesChanged(s) => {
                for a in lock(&self.active)
                    .values()
                    .filter(|a| a.session_id == e.session_id && a.recorded.contains_key(&s.stream_id))
                {
                    a.recording.set_tags(&s.stream_id, recording::StreamTags::of(s));
                }
            }
            SessionEvent::StreamDestroyed { stream, .. } => {
                let ids: Vec<String> = lock(&self.active)
                    .iter()
                    .filter(|(_, a)| a.session_id == e.session_id)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in ids {
                    self.unrecord_stream(&id, &stream.stream_id);
                    self.refresh_by_id(&id).await;
                }
            }
            _ => {}
        }
    }

    async fn maybe_auto_start(self: &Arc<Self>, api_key: &str, session_id: &str) {
        if lock(&self.active).values().any(|a| a.session_id == session_id) {
            return;
        }
        let Ok(Some(session)) = self.store.session(session_id).await else { return };
        if session.archive_mode != ArchiveMode::Always || session.media_mode != MediaMode::Routed {
            return;
        }
        if !lock(&self.auto_starting).insert(session_id.to_owned()) {
            return;
        }
        let req = ArchiveStartRequest {
            session_id: session_id.to_owned(),
            name: session.archive_name.clone(),
            has_audio: true,
            has_video: true,
            output_mode: OutputMode::Composed,
            resolution: Some(
                session
                    .archive_resolution
                    .clone()
                    .unwrap_or_else(|| conclave_core::archive::DEFAULT_RESOLUTION.to_owned()),
            ),
            layout: None,
            stream_mode: StreamMode::Auto,
            multi_archive_tag: None,
            max_bitrate: None,
            quantization_parameter: None,
        };
        match self.start(api_key, req).await {
            Ok(r) => {
                tracing::info!(archive = %r.id, session = %session_id, "automatic archive started (archiveMode=always)")
            }
            Err(e) => tracing::warn!(session = %session_id, error = %e, "automatic archive did not start"),
        }
        lock(&self.auto_starting).remove(session_id);
    }

    /// `POST …/archive/{id}/stop`: 409 unless it is recording. The file is finished, packaged
    /// and delivered in the background; the answer is the `stopped` archive.
    pub async fn stop(self: &Arc<Self>, api_key: &str, id: &str, reason: &str) -> Result<ArchiveRecord, ArchiveError> {
        let r = self.owned(api_key, id).await?;
        if !r.status.is_recording() {
            return Err(ArchiveError::Conflict(format!(
                "Archive is not in started state (it is {})",
                r.status.as_str()
            )));
        }
        let Some(a) = lock(&self.active).remove(id) else {
            return Err(ArchiveError::Conflict("the archive is recorded by another node or is finishing".into()));
        };
        if let Some(m) = &self.media {
            let m = m.for_session(&a.session_id);
            for stream in a.recorded.keys() {
                m.tap(crate::media::publisher_peer(stream), id.to_owned(), None);
            }
        }
        let from = r.status;
        let mut next = r;
        next.status = ArchiveStatus::Stopped;
        next.reason = reason.to_owned();
        next.duration_s = a.started.elapsed().as_secs();
        let stopped = self.transition(next, from).await?;
        self.hub.broadcast(&a.session_id, ServerMessage::ArchiveStopped { archive_id: id.to_owned() });
        let (me, rec, recording) = (self.clone(), stopped.clone(), a.recording);
        self.in_flight.lock().await.spawn(async move {
            let streams = recording.finish().await;
            let dropped = recording.dropped.load(std::sync::atomic::Ordering::Relaxed);
            crate::metrics::add(&me.metrics.counters.archive_frames_dropped, dropped);
            me.finish(rec, streams, recording.key.clone()).await;
        });
        Ok(stopped)
    }

    /// The pipeline for a stopped archive (also used by recovery).
    async fn finish(
        self: &Arc<Self>,
        rec: ArchiveRecord,
        streams: Vec<recording::FinishedStream>,
        key: Option<(Arc<EphemeralKey>, String)>,
    ) {
        let outcome = pipeline::run(self, &rec, streams, key).await;
        if let Err(e) = self.apply_outcome(rec, outcome).await {
            tracing::error!(error = %e, "recording an archive's outcome failed");
        }
    }

    async fn apply_outcome(&self, rec: ArchiveRecord, outcome: pipeline::Outcome) -> Result<(), ArchiveError> {
        let id = rec.id.clone();
        let mut next = rec;
        outcome.apply(&mut next, self.config.retention);
        self.transition(next, ArchiveStatus::Stopped).await?;
        // Only now, with the file delivered or kept, may the work files go.
        if !outcome.keep_work {
            let _ = std::fs::remove_dir_all(self.work_dir(&id));
        }
        Ok(())
    }

    async fn owned(&self, api_key: &str, id: &str) -> Result<ArchiveRecord, ArchiveError> {
        let not_found = || ArchiveError::NotFound("Archive not found".into());
        if !conclave_core::archive::is_archive_id(id) {
            return Err(not_found());
        }
        self.store.archive(id).await?.filter(|r| r.api_key == api_key).ok_or_else(not_found)
    }

    pub async fn get(&self, api_key: &str, id: &str) -> Result<ArchiveRecord, ArchiveError> {
        self.owned(api_key, id).await
    }

    /// `DELETE …/archive/{id}`: the fallback copy and the metadata go at once; a tombstone
    /// with status `deleted` remains so a later GET can say so.
    pub async fn delete(&self, api_key: &str, id: &str) -> Result<(), ArchiveError> {
        let r = self.owned(api_key, id).await?;
        if !matches!(
            r.status,
            ArchiveStatus::Available | ArchiveStatus::Uploaded | ArchiveStatus::Failed | ArchiveStatus::Expired
        ) {
            return Err(ArchiveError::Conflict(format!(
                "an archive that is {} cannot be deleted; stop it and wait until it is available or uploaded",
                r.status.as_str()
            )));
        }
        if let Some(file) = &r.fallback_file {
            let ext = file.split_once('.').map(|(_, e)| e).unwrap_or("");
            self.fallback
                .delete(id, ext)
                .map_err(|e| ArchiveError::Internal(format!("cannot delete the stored file: {e}")))?;
        }
        let from = r.status;
        let tombstone = ArchiveRecord {
            status: ArchiveStatus::Deleted,
            reason: "deleted".into(),
            name: None,
            size: 0,
            duration_s: 0,
            sha256: String::new(),
            fallback_file: None,
            uploaded_key: None,
            expires_at_ms: None,
            streams: Vec::new(),
            layout: None,
            ..r
        };
        self.transition(tombstone, from).await?;
        Ok(())
    }

    pub async fn list(
        &self,
        api_key: &str,
        session_id: Option<&str>,
        offset: u32,
        count: u32,
    ) -> Result<(u64, Vec<ArchiveRecord>), ArchiveError> {
        Ok(self.store.list_archives(api_key, session_id, offset, count).await?)
    }

    /// `PATCH …/archive/{id}/streams` (manual mode only: 405 otherwise).
    pub async fn patch_streams(&self, api_key: &str, id: &str, patch: StreamPatch) -> Result<(), ArchiveError> {
        let mut r = self.owned(api_key, id).await?;
        if r.stream_mode != StreamMode::Manual {
            return Err(ArchiveError::NotAllowed(
                "streams can be added or removed only when streamMode is manual".into(),
            ));
        }
        if !r.status.is_recording() {
            return Err(ArchiveError::Conflict("the archive is not recording".into()));
        }
        let live = self.hub.streams(&r.session_id);
        match patch {
            StreamPatch::Add(sel) => {
                let Some(s) = live.iter().find(|s| s.stream_id == sel.stream_id) else {
                    return Err(ArchiveError::NotFound("Stream not found".into()));
                };
                {
                    let mut active = lock(&self.active);
                    let a =
                        active.get_mut(id).ok_or_else(|| ArchiveError::Conflict("the archive is finishing".into()))?;
                    a.selected.insert(sel.stream_id.clone(), (sel.has_audio, sel.has_video));
                }
                self.record_stream(id, s, sel.has_audio && s.has_audio, sel.has_video && s.has_video);
                r.streams.retain(|x| x.stream_id != sel.stream_id);
                r.streams.push(sel);
            }
            StreamPatch::Remove(stream_id) => {
                if !r.streams.iter().any(|x| x.stream_id == stream_id) {
                    return Err(ArchiveError::NotFound("Stream not found in this archive".into()));
                }
                if let Some(a) = lock(&self.active).get_mut(id) {
                    a.selected.remove(&stream_id);
                }
                self.unrecord_stream(id, &stream_id);
                r.streams.retain(|x| x.stream_id != stream_id);
            }
        }
        let from = r.status;
        r.updated_at_ms = clock::unix_ms();
        if !self.store.update_archive(&r, from).await? {
            return Err(ArchiveError::Conflict("the archive changed; retry".into()));
        }
        self.refresh_by_id(id).await;
        Ok(())
    }

    /// `PUT …/archive/{id}/layout` (composed archives): takes effect in the composed file from
    /// now on (the history is kept with the archive).
    pub async fn set_layout(
        &self,
        api_key: &str,
        id: &str,
        layout: conclave_core::archive::ArchiveLayout,
    ) -> Result<(), ArchiveError> {
        // Compare-and-set against status changes (started ⇄ paused) made meanwhile: re-read
        // and try again rather than answer 409 to a valid call.
        for _ in 0..5 {
            let mut r = self.owned(api_key, id).await?;
            if r.output_mode != OutputMode::Composed {
                return Err(ArchiveError::Invalid("layouts apply to composed archives only".into()));
            }
            if !r.status.is_recording() {
                return Err(ArchiveError::Conflict("the archive is not recording".into()));
            }
            let from = r.status;
            let now = clock::unix_ms();
            if r.layout_changes.is_empty() {
                r.layout_changes.push((0, r.layout.clone()));
            }
            r.layout_changes.push((now.saturating_sub(r.created_at_ms), Some(layout.clone())));
            r.layout = Some(layout.clone());
            r.updated_at_ms = now;
            if self.store.update_archive(&r, from).await? {
                return Ok(());
            }
        }
        Err(ArchiveError::Conflict("the archive kept changing; retry".into()))
    }

    /// The archives this node records for a session now: (ID, name), for joiners' snapshots.
    pub fn recording_in(&self, session_id: &str) -> Vec<(String, String)> {
        lock(&self.active)
            .iter()
            .filter(|(_, a)| a.session_id == session_id)
            .map(|(id, a)| (id.clone(), a.name.clone()))
            .collect()
    }

    pub fn active_count(&self) -> usize {
        lock(&self.active).len()
    }
}
