//! Media bots: small str0m peers that send and receive synthetic Opus and VP8 over real UDP on
//! loopback, for integration tests and the load generator (`conclave bench media`).
//!
//! Owns: per bot, one UDP socket bound to `127.0.0.1:0` or [`set_bind_ip`]'s address (its only
//! ICE host candidate), one str0m `Rtc` (full ICE, frame mode), the tokio task that drives the
//! `Rtc` with that socket and the real clock, and the synthetic payloads (which carry a source ID, a sequence number
//! and the send time, so receivers can check order, integrity, loss and latency).
//! Must not touch: signaling rules or the WebSocket (SDP and candidates travel through the
//! caller's [`crate::Client`]; the helpers here only send `mediaOffer`/`mediaAnswer`/`sdp`/
//! `ice` through it), real codecs, or anything on the server side.
//!
//! Routed sessions: [`publish_routed`] and [`receive_routed`]; a receiving bot must answer the
//! SFU's renegotiations, so read the client's events through [`MediaBot::pump`] or
//! [`MediaBot::wait_event`]. Relayed sessions: drive [`MediaBot::offer`] /
//! [`MediaBot::accept_offer`] / [`MediaBot::accept_answer`] with `sdp` and `ice` messages.

use crate::signal::{ClientMessage, ServerMessage};
use crate::{Client, ClientError};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::Notify;

pub use str0m::media::MediaKind as Kind;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("str0m: {0}")]
    Rtc(String),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Signal(#[from] ClientError),
    #[error("the server refused media: {0}")]
    Refused(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

fn rtc_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Rtc(e.to_string())
}

/// What a bot sends and how it receives.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Embedded in every payload this bot sends, to tell sources apart at receivers.
    pub source: u32,
    pub audio_bytes: usize,
    pub video_fps: u32,
    pub video_bytes: usize,
    pub keyframe_bytes: usize,
    /// Drop every Nth incoming RTP datagram that carries media (0: none; padding-only packets
    /// are not counted), before str0m sees it.
    pub drop_every: u64,
    /// Keep every received frame (tests); otherwise only counters and latency samples.
    pub keep_frames: bool,
    /// Send this real encoded clip (looped) instead of synthetic payloads, so that what the
    /// bot publishes can be recorded and decoded. Its keyframes come on the clip's schedule.
    pub clip: Option<std::sync::Arc<crate::clip::EncodedClip>>,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            source: 0,
            audio_bytes: 60,
            video_fps: 30,
            video_bytes: 700,
            keyframe_bytes: 3000,
            drop_every: 0,
            keep_frames: true,
            clip: None,
        }
    }
}

/// One frame a bot received, decoded from the synthetic payload.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: MediaKind,
    pub source: u32,
    pub seq: u32,
    pub keyframe: bool,
    /// The payload is exactly what the sender wrote.
    pub intact: bool,
    /// str0m's view: no RTP gap since the previous frame of this track.
    pub contiguous: bool,
    pub sent_us: u64,
    pub at_us: u64,
    pub at: Instant,
}

/// Everything a bot observed.
#[derive(Debug, Clone, Default)]
pub struct BotStats {
    pub connected: bool,
    pub received: Vec<Frame>,
    /// Frames received, per kind (kept even when `keep_frames` is off).
    pub audio_frames: u64,
    pub video_frames: u64,
    pub damaged_frames: u64,
    /// Microseconds from the sender's write to this bot's receipt, one per frame.
    pub latency_us: Vec<u64>,
    pub keyframe_requests: Vec<Instant>,
    /// Sequence numbers and send times of the video keyframes sent.
    pub keyframes_sent: Vec<(u32, Instant)>,
    pub audio_sent: u32,
    pub video_sent: u32,
    pub rtp_in: u64,
    pub rtp_in_bytes: u64,
    pub rtp_dropped: u64,
    /// Incoming RTP datagrams per payload type (media, RTX, padding).
    pub rtp_in_by_pt: BTreeMap<u8, u64>,
    /// Incoming RTP datagrams with the padding bit set.
    pub rtp_in_padded: u64,
    /// Payload types that carried media frames (not RTX), to tell media packets apart.
    pub media_pts: BTreeSet<u8>,
    pub rtp_out: u64,
    pub rtp_out_bytes: u64,
    /// Where incoming datagrams came from.
    pub remote_addrs: BTreeSet<SocketAddr>,
    pub errors: Vec<String>,
}

struct Inner {
    rtc: Rtc,
    cfg: BotConfig,
    pending: Option<SdpPendingOffer>,
    audio: Option<(Mid, Option<Pt>)>,
    video: Option<(Mid, Option<Pt>)>,
    sending: bool,
    next_audio: Option<Instant>,
    next_video: Option<Instant>,
    keyframe_due: bool,
    rtp_seen: u64,
    stats: BotStats,
}

/// A str0m peer on its own loopback UDP socket, driven by its own task.
pub struct MediaBot {
    inner: Arc<Mutex<Inner>>,
    wake: Arc<Notify>,
    local: SocketAddr,
    candidate: Candidate,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MediaBot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

const VP8_KEY: [u8; 6] = [0x50, 0x2d, 0x01, 0x9d, 0x01, 0x2a];
const VP8_DELTA: [u8; 6] = [0x51, 0x0a, 0x00, 0x00, 0x00, 0x00];
const AUDIO_TOC: u8 = 0xF8;

/// A synthetic payload: codec prefix, source, seq, send time (µs), then a fill byte from `seq`.
pub fn payload(kind: MediaKind, keyframe: bool, source: u32, seq: u32, sent_us: u64, len: usize) -> Vec<u8> {
    let mut p = match kind {
        MediaKind::Audio => vec![AUDIO_TOC],
        MediaKind::Video if keyframe => VP8_KEY.to_vec(),
        MediaKind::Video => VP8_DELTA.to_vec(),
    };
    p.extend_from_slice(&source.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&sent_us.to_be_bytes());
    p.resize(len.max(p.len()), (seq % 251) as u8);
    p
}

/// Decodes a payload: (source, seq, keyframe, sent_us, intact).
pub fn decode(kind: MediaKind, data: &[u8]) -> Option<(u32, u32, bool, u64, bool)> {
    let (prefix, keyframe) = match kind {
        MediaKind::Audio => (1, false),
        MediaKind::Video => (6, *data.first()? & 1 == 0),
    };
    let at = |i: usize, n: usize| data.get(prefix + i..prefix + i + n);
    let source = u32::from_be_bytes(at(0, 4)?.try_into().ok()?);
    let seq = u32::from_be_bytes(at(4, 4)?.try_into().ok()?);
    let sent = u64::from_be_bytes(at(8, 8)?.try_into().ok()?);
    let intact = data == payload(kind, keyframe, source, seq, sent, data.len()).as_slice();
    Some((source, seq, keyframe, sent, intact))
}

/// RFC 7983 demultiplexing: RTP (not RTCP) datagrams.
fn is_rtp(d: &[u8]) -> bool {
    d.len() >= 12 && (128..=191).contains(&d[0]) && !(192..=223).contains(&d[1])
}

impl Inner {
    fn pt(&mut self, kind: MediaKind) -> Option<(Mid, Pt)> {
        let video_codec = self.cfg.clip.as_ref().map_or(Codec::Vp8, |c| c.video_codec);
        let codec = if kind == MediaKind::Audio { Codec::Opus } else { video_codec };
        let slot = if kind == MediaKind::Audio { &mut self.audio } else { &mut self.video };
        let (mid, pt) = slot.as_mut()?;
        if pt.is_none() {
            *pt = self.rtc.writer(*mid)?.payload_params().find(|p| p.spec().codec == codec).map(|p| p.pt());
        }
        Some((*mid, (*pt)?))
    }

    fn send_due(&mut self, now: Instant) {
        if !self.sending || !self.stats.connected {
            return;
        }
        let audio_every = Duration::from_millis(20);
        let fps = self.cfg.clip.as_ref().map_or(self.cfg.video_fps, |c| c.fps).max(1);
        let video_every = Duration::from_secs(1) / fps;
        if self.next_audio.is_none() && self.next_video.is_none() {
            self.next_audio = Some(now);
            self.next_video = Some(now);
            self.keyframe_due = true;
        }
        while let Some(at) = self.next_audio.filter(|t| *t <= now) {
            let Some((mid, pt)) = self.pt(MediaKind::Audio) else { break };
            let seq = self.stats.audio_sent;
            let data = match &self.cfg.clip {
                Some(c) if !c.audio.is_empty() => c.audio[seq as usize % c.audio.len()].clone(),
                _ => payload(MediaKind::Audio, false, self.cfg.source, seq, unix_us(), self.cfg.audio_bytes),
            };
            let t = MediaTime::new(u64::from(seq) * 960, Frequency::FORTY_EIGHT_KHZ);
            let Some(w) = self.rtc.writer(mid) else { break };
            if let Err(e) = w.write(pt, now, t, data) {
                self.stats.errors.push(format!("audio write: {e}"));
            }
            self.stats.audio_sent += 1;
            self.next_audio = Some(at + audio_every);
        }
        while let Some(at) = self.next_video.filter(|t| *t <= now) {
            let Some((mid, pt)) = self.pt(MediaKind::Video) else { break };
            let seq = self.stats.video_sent;
            let (key, data) = match &self.cfg.clip {
                Some(c) if !c.video.is_empty() => {
                    self.keyframe_due = false;
                    let (data, key) = c.video[seq as usize % c.video.len()].clone();
                    (key, data)
                }
                _ => {
                    let key = std::mem::take(&mut self.keyframe_due);
                    let len = if key { self.cfg.keyframe_bytes } else { self.cfg.video_bytes };
                    (key, payload(MediaKind::Video, key, self.cfg.source, seq, unix_us(), len))
                }
            };
            let t = MediaTime::new(u64::from(seq) * 90_000 / u64::from(fps), Frequency::NINETY_KHZ);
            let Some(w) = self.rtc.writer(mid) else { break };
            if let Err(e) = w.write(pt, now, t, data) {
                self.stats.errors.push(format!("video write: {e}"));
            }
            if key {
                self.stats.keyframes_sent.push((seq, now));
            }
            self.stats.video_sent += 1;
            self.next_video = Some(at + video_every);
        }
    }

    /// Sends what is due and polls the `Rtc` dry: returns datagrams to send and the next wake-up.
    fn drive(&mut self, now: Instant, out: &mut Vec<(SocketAddr, Vec<u8>)>) -> Instant {
        self.send_due(now);
        let deadline = loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    if is_rtp(&t.contents) {
                        self.stats.rtp_out += 1;
                        self.stats.rtp_out_bytes += t.contents.len() as u64;
                    }
                    out.push((t.destination, t.contents.into()));
                }
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    self.stats.errors.push(format!("poll: {e}"));
                    break now + Duration::from_millis(50);
                }
            }
        };
        if self.sending && self.stats.connected && self.next_audio.is_none() {
            return now; // just connected: start sending without waiting for the Rtc's timer
        }
        [self.next_audio, self.next_video].into_iter().flatten().filter(|_| self.sending).fold(deadline, Instant::min)
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => self.stats.connected = true,
            Event::MediaAdded(m) if matches!(m.direction, Direction::SendOnly | Direction::SendRecv) => {
                let slot = if m.kind == MediaKind::Audio { &mut self.audio } else { &mut self.video };
                slot.get_or_insert((m.mid, None));
            }
            Event::KeyframeRequest(_) => {
                self.stats.keyframe_requests.push(Instant::now());
                self.keyframe_due = true;
            }
            Event::MediaData(d) => {
                let kind = if d.params.spec().codec == Codec::Opus { MediaKind::Audio } else { MediaKind::Video };
                let at_us = unix_us();
                self.stats.media_pts.insert(*d.pt);
                let Some((source, seq, keyframe, sent_us, intact)) = decode(kind, &d.data) else {
                    self.stats.damaged_frames += 1;
                    return;
                };
                if !intact {
                    self.stats.damaged_frames += 1;
                }
                match kind {
                    MediaKind::Audio => self.stats.audio_frames += 1,
                    MediaKind::Video => self.stats.video_frames += 1,
                }
                self.stats.latency_us.push(at_us.saturating_sub(sent_us));
                if self.cfg.keep_frames {
                    self.stats.received.push(Frame {
                        kind,
                        source,
                        seq,
                        keyframe,
                        intact,
                        contiguous: d.contiguous,
                        sent_us,
                        at_us,
                        at: Instant::now(),
                    });
                }
            }
            _ => {}
        }
    }
}

async fn run(inner: Arc<Mutex<Inner>>, wake: Arc<Notify>, socket: UdpSocket, local: SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    loop {
        let next = inner.lock().unwrap().drive(Instant::now(), &mut out);
        for (dst, bytes) in out.drain(..) {
            let _ = socket.send_to(&bytes, dst).await;
        }
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, source)) = r else { continue };
                let data = &buf[..n];
                let mut g = inner.lock().unwrap();
                g.stats.remote_addrs.insert(source);
                if is_rtp(data) {
                    g.stats.rtp_in += 1;
                    g.stats.rtp_in_bytes += n as u64;
                    *g.stats.rtp_in_by_pt.entry(data[1] & 0x7f).or_default() += 1;
                    g.stats.rtp_in_padded += u64::from(data[0] & 0x20 != 0);
                    // Padding-only packets do not count towards the loss pattern.
                    let media = data[0] & 0x20 == 0;
                    g.rtp_seen += u64::from(media);
                    if media && g.cfg.drop_every > 0 && g.rtp_seen.is_multiple_of(g.cfg.drop_every) {
                        g.stats.rtp_dropped += 1;
                        continue;
                    }
                }
                let Ok(contents) = data.try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents });
                if let Err(e) = g.rtc.handle_input(input) {
                    g.stats.errors.push(format!("input: {e}"));
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {
                let mut g = inner.lock().unwrap();
                if let Err(e) = g.rtc.handle_input(Input::Timeout(Instant::now())) {
                    g.stats.errors.push(format!("timeout: {e}"));
                }
            }
            _ = wake.notified() => {}
        }
    }
}

static BIND_IP: Mutex<std::net::IpAddr> = Mutex::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

/// The address every bot started afterwards in this process binds (default `127.0.0.1`). A
/// server that pins its sockets to an interface (Janus sets `IP_UNICAST_IF`) can only reach
/// bots on an address of that same interface (`conclave bench media --against janus`).
pub fn set_bind_ip(ip: std::net::IpAddr) {
    *BIND_IP.lock().unwrap() = ip;
}

impl MediaBot {
    /// Binds a loopback socket and starts driving a fresh `Rtc` (nothing negotiated yet).
    pub async fn start(cfg: BotConfig) -> Result<MediaBot, MediaError> {
        Self::start_with(cfg, Rtc::builder()).await
    }

    async fn start_with(cfg: BotConfig, builder: str0m::RtcConfig) -> Result<MediaBot, MediaError> {
        let ip = *BIND_IP.lock().unwrap();
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let local = socket.local_addr()?;
        let mut rtc = builder.build(Instant::now());
        let candidate = Candidate::host(local, "udp").map_err(rtc_err)?;
        rtc.add_local_candidate(candidate.clone()).ok_or_else(|| MediaError::Rtc("candidate refused".into()))?;
        let inner = Arc::new(Mutex::new(Inner {
            rtc,
            cfg,
            pending: None,
            audio: None,
            video: None,
            sending: false,
            next_audio: None,
            next_video: None,
            keyframe_due: true,
            rtp_seen: 0,
            stats: BotStats::default(),
        }));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(inner.clone(), wake.clone(), socket, local));
        Ok(MediaBot { inner, wake, local, candidate, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// This bot's host candidate as a browser would trickle it (`ice` message body).
    pub fn candidate_json(&self) -> serde_json::Value {
        serde_json::json!({ "candidate": self.candidate.to_sdp_string(), "sdpMid": "0", "sdpMLineIndex": 0 })
    }

    /// Adds a remote candidate from an `ice` message body (or a bare candidate string).
    pub fn add_remote_candidate(&self, candidate: &serde_json::Value) -> Result<(), MediaError> {
        let s = candidate
            .get("candidate")
            .and_then(|c| c.as_str())
            .or(candidate.as_str())
            .ok_or_else(|| MediaError::Rtc("no candidate".into()))?;
        let c = Candidate::from_sdp_string(s.trim_start_matches("a=")).map_err(rtc_err)?;
        self.with(|i| i.rtc.add_remote_candidate(c));
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let r = f(&mut self.inner.lock().unwrap());
        self.wake.notify_one();
        r
    }

    /// Creates an offer: `send` adds sendonly Opus+VP8, `receive` recvonly Opus+VP8; with
    /// neither, just a data channel (a routed receiving connection).
    pub fn offer(&self, send: bool, receive: bool) -> Result<String, MediaError> {
        self.with(|i| {
            let mut api = i.rtc.sdp_api();
            let mut mids = None;
            if send {
                let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
                let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
                mids = Some((a, v));
            }
            if receive {
                api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
                api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
            }
            if !send && !receive {
                api.add_channel("control".to_owned());
            }
            let (offer, pending) = api.apply().ok_or_else(|| MediaError::Rtc("nothing to offer".into()))?;
            if let Some((a, v)) = mids {
                i.audio = Some((a, None));
                i.video = Some((v, None));
            }
            i.pending = Some(pending);
            Ok(offer.to_sdp_string())
        })
    }

    pub fn accept_answer(&self, sdp: &str) -> Result<(), MediaError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(rtc_err)?;
        self.with(|i| {
            let pending = i.pending.take().ok_or_else(|| MediaError::Rtc("no pending offer".into()))?;
            i.rtc.sdp_api().accept_answer(pending, answer).map_err(rtc_err)
        })
    }

    pub fn accept_offer(&self, sdp: &str) -> Result<String, MediaError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(rtc_err)?;
        self.with(|i| i.rtc.sdp_api().accept_offer(offer).map(|a| a.to_sdp_string()).map_err(rtc_err))
    }

    /// Starts sending at real rate once connected (a keyframe first), until [`Self::stop_sending`].
    pub fn start_sending(&self) {
        self.with(|i| i.sending = true);
    }

    pub fn stop_sending(&self) {
        self.with(|i| {
            i.sending = false;
            i.next_audio = None;
            i.next_video = None;
        });
    }

    pub fn stats(&self) -> BotStats {
        self.inner.lock().unwrap().stats.clone()
    }

    /// Reads the stats without copying them.
    pub fn with_stats<T>(&self, f: impl FnOnce(&BotStats) -> T) -> T {
        f(&self.inner.lock().unwrap().stats)
    }

    /// Received frames of one kind, in arrival order.
    pub fn frames(&self, kind: MediaKind) -> Vec<Frame> {
        self.with_stats(|s| s.received.iter().filter(|f| f.kind == kind).cloned().collect())
    }

    pub fn is_connected(&self) -> bool {
        self.with_stats(|s| s.connected)
    }

    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), MediaError> {
        let end = Instant::now() + timeout;
        while !self.is_connected() {
            if Instant::now() > end {
                return Err(MediaError::Timeout("ICE and DTLS"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Handles one signaling event for this bot: answers the SFU's `mediaOffer`. Returns the
    /// event if it is not one of those.
    pub fn on_server_message(&self, client: &Client, m: ServerMessage) -> Result<Option<ServerMessage>, MediaError> {
        match m {
            ServerMessage::MediaOffer { sdp } => {
                let answer = self.accept_offer(&sdp)?;
                client.send(ClientMessage::MediaAnswer { sdp: answer })?;
                Ok(None)
            }
            ServerMessage::Error { code: crate::signal::ErrorCode::MediaFailed, message, .. } => {
                Err(MediaError::Refused(message))
            }
            other => Ok(Some(other)),
        }
    }

    /// Reads `client`'s events for `duration`, answering the SFU's offers; returns the others.
    pub async fn pump(&self, client: &mut Client, duration: Duration) -> Result<Vec<ServerMessage>, MediaError> {
        let end = tokio::time::Instant::now() + duration;
        let mut others = Vec::new();
        loop {
            match tokio::time::timeout_at(end, client.next_event()).await {
                Err(_) => return Ok(others),
                Ok(None) => return Err(ClientError::Closed.into()),
                Ok(Some(m)) => others.extend(self.on_server_message(client, m)?),
            }
        }
    }

    /// Like [`Client::wait_for`], answering the SFU's offers meanwhile.
    pub async fn wait_event(
        &self,
        client: &mut Client,
        pred: impl Fn(&ServerMessage) -> bool,
        timeout: Duration,
    ) -> Result<ServerMessage, MediaError> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(end, client.next_event()).await {
                Err(_) => return Err(MediaError::Timeout("an event")),
                Ok(None) => return Err(ClientError::Closed.into()),
                Ok(Some(m)) => {
                    if let Some(m) = self.on_server_message(client, m)?
                        && pred(&m)
                    {
                        return Ok(m);
                    }
                }
            }
        }
    }
}

async fn media_answer(client: &mut Client, stream_id: Option<&str>, timeout: Duration) -> Result<String, MediaError> {
    let m = client
        .wait_for(
            |m| {
                matches!(m, ServerMessage::MediaAnswer { stream_id: s, .. } if s.as_deref() == stream_id)
                    || matches!(m, ServerMessage::Error { code: crate::signal::ErrorCode::MediaFailed, .. })
            },
            timeout,
        )
        .await?;
    match m {
        ServerMessage::MediaAnswer { sdp, .. } => Ok(sdp),
        ServerMessage::Error { message, .. } => Err(MediaError::Refused(message)),
        _ => unreachable!("filtered above"),
    }
}

/// Routed: negotiates the sending connection of `stream_id` (already published by `client`)
/// and starts sending as soon as it connects. Other events read meanwhile are skipped.
pub async fn publish_routed(client: &mut Client, stream_id: &str, cfg: BotConfig) -> Result<MediaBot, MediaError> {
    let bot = MediaBot::start(cfg).await?;
    let sdp = bot.offer(true, false)?;
    client.send(ClientMessage::MediaOffer { stream_id: Some(stream_id.to_owned()), sdp })?;
    bot.accept_answer(&media_answer(client, Some(stream_id), Duration::from_secs(10)).await?)?;
    bot.start_sending();
    Ok(bot)
}

/// Routed: negotiates `client`'s receiving connection (a data channel only; the SFU adds
/// tracks with its own offers, which [`MediaBot::pump`] answers).
pub async fn receive_routed(client: &mut Client, cfg: BotConfig) -> Result<MediaBot, MediaError> {
    let bot = MediaBot::start(cfg).await?;
    let sdp = bot.offer(false, false)?;
    client.send(ClientMessage::MediaOffer { stream_id: None, sdp })?;
    bot.accept_answer(&media_answer(client, None, Duration::from_secs(10)).await?)?;
    Ok(bot)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Janus's case: an ICE-lite peer offers `setup:actpass`, so the bot answers as the DTLS
    /// server and must start ICE itself (the lite side never checks), with no DTLS timer armed,
    /// at once.
    #[tokio::test]
    async fn connects_as_dtls_server_to_an_ice_lite_offerer() {
        let cfg = |source| BotConfig { source, keep_frames: false, ..BotConfig::default() };
        let lite = MediaBot::start_with(cfg(7), Rtc::builder().set_ice_lite(true)).await.unwrap();
        let bot = MediaBot::start(cfg(u32::MAX)).await.unwrap();
        let offer = lite.offer(true, false).unwrap();
        assert!(offer.contains("a=ice-lite") && offer.contains("a=setup:actpass"), "{offer}");
        let answer = bot.accept_offer(&offer).unwrap();
        assert!(answer.contains("a=setup:passive"), "{answer}");
        lite.accept_answer(&answer).unwrap();
        lite.start_sending();
        let t0 = Instant::now();
        bot.wait_connected(Duration::from_secs(5)).await.unwrap();
        assert!(t0.elapsed() < Duration::from_secs(1), "connected after {:?}", t0.elapsed());
        let end = Instant::now() + Duration::from_secs(5);
        while bot.with_stats(|s| s.video_frames < 5 || s.audio_frames < 5) {
            assert!(Instant::now() < end, "no media: {:?}", bot.stats().errors);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
