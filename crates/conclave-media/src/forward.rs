//! Media forwarding and keyframe requests: what happens when a peer's `Rtc`
//! reports an event.
//!
//! Owns the routing rules (publisher mid -> subscribers' outgoing mids, the
//! audio force-mute, holding video back until a keyframe, PLI throttling).
//! It must not create or parse SDP (that is `negotiate`) nor touch sockets.

use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid, Rid};
use str0m::{Event, IceConnectionState};

use crate::output::{SfuEvent, SfuOutput};
use crate::peer::{Peer, PeerKey, PublishedTrack};
use crate::rtp::layer::{best_layer, cap_layer, same_layer_in};
use crate::sfu::Sfu;

/// At most one keyframe request per publisher track in this interval; later
/// wishes are kept and sent with a following frame.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

impl Sfu {
    pub(crate) fn on_event(&mut self, key: PeerKey, event: Event, now: Instant) {
        match event {
            Event::Connected => self.on_connected(key, now),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => self.report_disconnect(key),
            Event::MediaAdded(added) => self.register_published(key, added.mid),
            Event::MediaData(data) => self.forward(key, data, now),
            Event::RtpPacket(packet) => self.forward_rtp(key, packet, now),
            Event::EgressBitrateEstimate(
                str0m::bwe::BweKind::Twcc { estimate, .. } | str0m::bwe::BweKind::Remb { estimate, .. },
            ) => {
                if let Some(peer) = self.peers.get_mut(&key) {
                    peer.estimate_bps = estimate.as_u64();
                }
                self.observe_fallback(key, now);
            }
            Event::KeyframeRequest(req) => {
                let source =
                    self.peers.get(&key).and_then(|p| p.out.get(&req.mid)).filter(|o| o.active).map(|o| o.source);
                if let Some((pub_key, pub_mid)) = source {
                    let layer = self.peers.get(&key).and_then(|p| p.out.get(&req.mid)).and_then(|o| o.layer);
                    self.request_keyframe(pub_key, pub_mid, layer, Some(key), now);
                }
            }
            _ => {}
        }
    }

    /// Records a media the peer sends us as a published track (once).
    pub(crate) fn register_published(&mut self, key: PeerKey, mid: Mid) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(media) = peer.rtc.media(mid) else {
            return;
        };
        let (kind, receiving) = (media.kind(), media.direction().is_receiving());
        if !receiving || peer.published.contains_key(&mid) {
            return;
        }
        let track = PublishedTrack {
            kind,
            subscribers: Vec::new(),
            keyframe_wanted: Vec::new(),
            last_keyframe_request: None,
            layers: Vec::new(),
            tap_layer: None,
            taps: Vec::new(),
        };
        peer.published.insert(mid, track);
        let peer_id = peer.id.clone();
        self.out.push_back(SfuOutput::Event(SfuEvent::TrackPublished { peer_id, mid, kind }));
    }

    fn on_connected(&mut self, key: PeerKey, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.connected = true;
        let peer_id = peer.id.clone();
        self.out.push_back(SfuOutput::Event(SfuEvent::PeerConnected { peer_id }));
        // Media written before now was dropped: every video track starts over.
        let mut sources = Vec::new();
        for out in peer.out.values_mut().filter(|o| o.active && o.kind == MediaKind::Video) {
            out.needs_keyframe = true;
            sources.push((out.source, out.layer));
        }
        for ((pub_key, pub_mid), layer) in sources {
            self.request_keyframe(pub_key, pub_mid, layer, Some(key), now);
        }
    }

    /// Copies one frame from a publisher to each of its subscribers.
    fn forward(&mut self, key: PeerKey, data: MediaData, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let audio_forwarding = peer.audio_forwarding;
        let tapped = peer.tapped.then(|| peer.id.clone());
        let Some(track) = peer.published.get_mut(&data.mid) else {
            return;
        };
        let kind = track.kind;
        if let Some(rid) = data.rid.filter(|r| !track.layers.contains(r)) {
            track.layers.push(rid);
        }
        if let Some(publisher) = tapped {
            // Recording sees what subscribers would (force-mute included), one simulcast
            // layer: the best, taken up at its keyframe (frames of two layers share capture
            // times, and a decoder cannot switch layers mid-picture).
            let muted = kind == MediaKind::Audio && !audio_forwarding;
            let layer_ok = tap_takes(track, data.rid, data.is_keyframe());
            if !muted && layer_ok {
                self.out.push_back(SfuOutput::Recorded(crate::RecordedFrame {
                    publisher,
                    mid: data.mid,
                    kind,
                    keyframe: data.is_keyframe(),
                    contiguous: data.contiguous,
                    codec: codec_name(data.params.spec().codec),
                    arrival: data.network_time,
                    media_time_us: data.time.as_micros(),
                    data: data.data.to_vec(),
                }));
            }
        }
        let Some(track) = self.peers.get_mut(&key).and_then(|p| p.published.get_mut(&data.mid)) else {
            return;
        };
        if kind == MediaKind::Audio && !audio_forwarding {
            return;
        }
        if kind == MediaKind::Video && !data.contiguous && !track.keyframe_wanted.contains(&data.rid) {
            track.keyframe_wanted.push(data.rid);
        }
        let layers = track.layers.clone();
        let subscribers = track.subscribers.clone();
        if !track.keyframe_wanted.is_empty() {
            self.flush_keyframe_request(key, data.mid, None, now);
        }
        let budgets: Vec<u64> = subscribers.iter().map(|(k, _)| self.video_budget(*k)).collect();
        let is_keyframe = data.is_keyframe();
        let mut switch_wanted: Vec<Rid> = Vec::new();
        for ((sub_key, out_mid), budget) in subscribers.into_iter().zip(budgets) {
            if kind == MediaKind::Video && self.observe_fallback(sub_key, now) {
                continue;
            }
            let Some(sub) = self.peers.get_mut(&sub_key) else {
                continue;
            };
            if !sub.connected || sub.paused[crate::peer::kind_index(kind)] {
                continue;
            }
            let Some(out) = sub.out.get_mut(&out_mid).filter(|o| o.active) else {
                continue;
            };
            if let (MediaKind::Video, Some(rid)) = (kind, data.rid) {
                // Simulcast: forward one layer; move to the wanted one on its keyframe.
                // The preferred layer (or the best), capped by what the receiver's bandwidth allows.
                let preferred =
                    out.target.and_then(|t| same_layer_in(t, &layers)).or_else(|| best_layer(&layers)).unwrap_or(rid);
                let wanted = cap_layer(preferred, &layers, budget);
                if out.layer != Some(rid) {
                    if rid != wanted {
                        continue;
                    }
                    if !is_keyframe {
                        if !switch_wanted.contains(&rid) {
                            switch_wanted.push(rid);
                        }
                        continue;
                    }
                    out.layer = Some(rid);
                    out.needs_keyframe = false;
                } else if wanted != rid && !switch_wanted.contains(&wanted) {
                    switch_wanted.push(wanted);
                }
            }
            if kind == MediaKind::Video && out.needs_keyframe {
                if !is_keyframe {
                    continue;
                }
                out.needs_keyframe = false;
            }
            // A lower frame rate: higher VP8 temporal layers are never references for lower
            // ones, so dropping them leaves a decodable stream.
            if let (Some(max), str0m::format::CodecExtra::Vp8(vp8)) = (out.max_temporal, &data.codec_extra)
                && vp8.layer_index > max
                && !is_keyframe
            {
                continue;
            }
            self.mutate(sub_key, |sub| {
                let Some(writer) = sub.rtc.writer(out_mid) else { return };
                let Some(pt) = writer.match_params(data.params) else {
                    tracing::debug!(subscriber = %sub.id, "no matching codec; frame dropped");
                    return;
                };
                if let Err(e) = writer.write(pt, data.network_time, data.time, data.data.clone()) {
                    tracing::debug!(subscriber = %sub.id, error = %e, "write failed");
                }
            });
        }
        for rid in switch_wanted {
            self.request_keyframe(key, data.mid, Some(rid), None, now);
        }
    }

    /// Subscriber preference for a publisher's simulcast layer (`None`: the
    /// best available). Takes effect on that layer's next keyframe.
    pub fn set_preferred_layer(
        &mut self,
        subscriber: &str,
        publisher: &str,
        rid: Option<&str>,
        now: Instant,
    ) -> Result<(), crate::SfuError> {
        let (sub_key, pub_key) = self.pair(subscriber, publisher)?;
        let target = rid.map(Rid::from);
        let mut sources = Vec::new();
        if let Some(sub) = self.peers.get_mut(&sub_key) {
            for out in sub.out.values_mut().filter(|o| o.source.0 == pub_key && o.kind == MediaKind::Video) {
                out.target = target;
                sources.push(out.source.1);
            }
        }
        for mid in sources {
            self.request_keyframe(pub_key, mid, target, Some(sub_key), now);
        }
        Ok(())
    }

    /// Subscriber preference for a publisher's frame rate: the highest VP8 temporal layer to
    /// forward (`None`: all).
    pub fn set_max_temporal_layer(
        &mut self,
        subscriber: &str,
        publisher: &str,
        max: Option<u8>,
    ) -> Result<(), crate::SfuError> {
        let (sub_key, pub_key) = self.pair(subscriber, publisher)?;
        if let Some(sub) = self.peers.get_mut(&sub_key) {
            for out in sub.out.values_mut().filter(|o| o.source.0 == pub_key && o.kind == MediaKind::Video) {
                out.max_temporal = max;
            }
        }
        Ok(())
    }

    /// Wants a keyframe from a publisher's track (one simulcast layer, or all
    /// with `None`), and asks for it unless a request went out very recently.
    pub(crate) fn request_keyframe(
        &mut self,
        pub_key: PeerKey,
        mid: Mid,
        rid: Option<Rid>,
        subscriber: Option<PeerKey>,
        now: Instant,
    ) {
        let Some(track) = self.peers.get_mut(&pub_key).and_then(|p| p.published.get_mut(&mid)) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        if !track.keyframe_wanted.contains(&rid) {
            track.keyframe_wanted.push(rid);
        }
        self.flush_keyframe_request(pub_key, mid, subscriber, now);
    }

    pub(crate) fn flush_keyframe_request(
        &mut self,
        pub_key: PeerKey,
        mid: Mid,
        subscriber: Option<PeerKey>,
        now: Instant,
    ) {
        let subscriber = subscriber.and_then(|k| self.peers.get(&k)).map(|p| p.id.clone());
        let Some(Peer { id, rtc, published, rtp_mode, .. }) = self.peers.get_mut(&pub_key) else {
            return;
        };
        let rtp_mode = *rtp_mode;
        let Some(track) = published.get_mut(&mid) else {
            return;
        };
        let recent =
            track.last_keyframe_request.is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL);
        if track.keyframe_wanted.is_empty() || recent || !rtc.is_alive() {
            return;
        }
        if !rtp_mode && rtc.writer(mid).is_none() {
            return;
        }
        let possible = |rtc: &mut str0m::Rtc, kind| keyframe_request_possible(rtc, rtp_mode, mid, kind);
        let kind = if possible(rtc, KeyframeRequestKind::Pli) {
            KeyframeRequestKind::Pli
        } else if possible(rtc, KeyframeRequestKind::Fir) {
            KeyframeRequestKind::Fir
        } else {
            track.keyframe_wanted.clear();
            return;
        };
        // `None` on a simulcast track means every layer.
        let mut rids: Vec<Option<Rid>> = Vec::new();
        for wanted in std::mem::take(&mut track.keyframe_wanted) {
            match wanted {
                None if !track.layers.is_empty() => rids.extend(track.layers.iter().map(|r| Some(*r))),
                other => rids.push(other),
            }
        }
        rids.dedup();
        let mut sent = 0;
        for rid in rids {
            match request_keyframe_on(rtc, rtp_mode, mid, rid, kind) {
                Ok(()) => sent += 1,
                Err(e) => {
                    // Usually: no packet received yet, so no stream to ask on. The
                    // wish stays and is retried with the publisher's next frame.
                    tracing::trace!(publisher = %id, error = %e, "keyframe request deferred");
                    track.keyframe_wanted.push(rid);
                }
            }
        }
        if sent == 0 {
            return;
        }
        track.last_keyframe_request = Some(now);
        let ev = SfuEvent::KeyframeRequested { publisher: id.clone(), mid, subscriber };
        self.out.push_back(SfuOutput::Event(ev));
        self.settle(pub_key);
    }

    /// Cuts every forwarding link of a peer that is being removed.
    pub(crate) fn unlink_peer(&mut self, key: PeerKey, peer: &Peer) {
        // Its published tracks: subscribers stop receiving them now, and
        // their m-lines are stopped in their next offer.
        for track in peer.published.values() {
            for (sub_key, out_mid) in &track.subscribers {
                if let Some(sub) = self.peers.get_mut(sub_key) {
                    sub.out.remove(out_mid);
                    sub.want_stop.push(*out_mid);
                }
            }
        }
        // Its subscriptions: publishers forget it.
        for (out_mid, out) in &peer.out {
            let (pub_key, pub_mid) = out.source;
            if let Some(track) = self.peers.get_mut(&pub_key).and_then(|p| p.published.get_mut(&pub_mid)) {
                track.subscribers.retain(|s| *s != (key, *out_mid));
            }
        }
    }
}

impl Sfu {
    /// Turns audio fallback on or off for a peer that receives media: while the bandwidth
    /// towards it is too low for video, it gets audio only (see `fallback`). Off by default.
    pub fn set_audio_fallback(&mut self, peer_id: &str, enabled: bool, now: Instant) -> Result<(), crate::SfuError> {
        let key = self.key(peer_id)?;
        let peer = self.peers.get_mut(&key).expect("key is valid");
        let was_audio_only = peer.audio_fallback.as_ref().is_some_and(|f| f.audio_only());
        peer.audio_fallback = enabled.then(crate::fallback::AudioFallback::default);
        if was_audio_only {
            self.resume_video(key, now);
        }
        Ok(())
    }

    /// Pauses (`receive: false`) or resumes the `kind` tracks a peer receives, whatever their
    /// sources; resumed video starts from a keyframe.
    pub fn set_receiving(
        &mut self,
        peer_id: &str,
        kind: MediaKind,
        receive: bool,
        now: Instant,
    ) -> Result<(), crate::SfuError> {
        let key = self.key(peer_id)?;
        let peer = self.peers.get_mut(&key).expect("key is valid");
        let paused = &mut peer.paused[crate::peer::kind_index(kind)];
        let resumed = *paused && receive;
        *paused = !receive;
        if resumed && kind == MediaKind::Video {
            self.resume_video(key, now);
        }
        Ok(())
    }

    /// An ICE restart: the peer is on a new network path, so what bandwidth estimation and
    /// audio fallback learned on the old one (or during the outage that caused the restart)
    /// no longer holds. Estimation starts again from its initial rate; a fallback ends.
    pub(crate) fn forget_path(&mut self, key: PeerKey, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        peer.rtc.bwe().reset(str0m::bwe::Bitrate::kbps(crate::peer::INITIAL_ESTIMATE_KBPS));
        peer.estimate_bps = crate::peer::INITIAL_ESTIMATE_KBPS * 1000;
        let Some(fallback) = peer.audio_fallback.as_mut() else { return };
        let was_audio_only = fallback.audio_only();
        *fallback = crate::fallback::AudioFallback::default();
        if was_audio_only {
            let ev = SfuEvent::AudioFallback { peer_id: peer.id.clone(), audio_only: false };
            self.out.push_back(SfuOutput::Event(ev));
            self.resume_video(key, now);
        }
    }

    /// Feeds a subscriber's estimate to its audio fallback and applies a change. Returns
    /// whether it gets audio only now.
    pub(crate) fn observe_fallback(&mut self, key: PeerKey, now: Instant) -> bool {
        let Some(peer) = self.peers.get_mut(&key) else { return false };
        let estimate = peer.estimate_bps;
        let Some(fallback) = peer.audio_fallback.as_mut() else { return false };
        let Some(audio_only) = fallback.observe(estimate, now) else { return fallback.audio_only() };
        tracing::info!(peer = %peer.id, estimate, audio_only, "audio fallback");
        let ev = SfuEvent::AudioFallback { peer_id: peer.id.clone(), audio_only };
        self.out.push_back(SfuOutput::Event(ev));
        if !audio_only {
            self.resume_video(key, now);
        }
        audio_only
    }

    /// Video to a peer starts again, from a keyframe of each of its sources.
    fn resume_video(&mut self, key: PeerKey, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        let mut sources = Vec::new();
        for out in peer.out.values_mut().filter(|o| o.kind == MediaKind::Video && o.active) {
            out.needs_keyframe = true;
            sources.push((out.source, out.layer));
        }
        for ((pub_key, pub_mid), layer) in sources {
            self.request_keyframe(pub_key, pub_mid, layer, Some(key), now);
        }
    }

    /// Bits/s available per video track towards a subscriber (its estimate shared evenly).
    pub(crate) fn video_budget(&self, key: PeerKey) -> u64 {
        let Some(peer) = self.peers.get(&key) else { return u64::MAX };
        let videos = peer.out.values().filter(|o| o.active && o.kind == MediaKind::Video).count().max(1) as u64;
        peer.estimate_bps / videos
    }
}

/// Whether a tapped track's frame of layer `rid` is recorded: one simulcast layer, the best,
/// taken up at its keyframe (frames of two layers share capture times, and a decoder cannot
/// switch layers mid-picture). While the tap is not on the best layer yet, a keyframe of the
/// best is wanted. Frame and RTP mode both follow this rule.
pub(crate) fn tap_takes(track: &mut PublishedTrack, rid: Option<Rid>, keyframe: bool) -> bool {
    let Some(rid) = rid else { return true };
    let best = best_layer(&track.layers);
    if track.tap_layer != Some(rid) && best == Some(rid) && keyframe {
        track.tap_layer = Some(rid);
    }
    if track.tap_layer != best
        && let Some(best) = best.filter(|b| !track.keyframe_wanted.contains(&Some(*b)))
    {
        track.keyframe_wanted.push(Some(best));
    }
    track.tap_layer == Some(rid)
}

/// Whether the publisher negotiated this kind of keyframe request.
fn keyframe_request_possible(rtc: &mut str0m::Rtc, rtp_mode: bool, mid: Mid, kind: KeyframeRequestKind) -> bool {
    if rtp_mode {
        // What `Writer::is_request_keyframe_possible` checks, which RTP mode has no writer for.
        let pli = matches!(kind, KeyframeRequestKind::Pli);
        rtc.codec_config().iter().any(|p| if pli { p.fb_pli() } else { p.fb_fir() })
    } else {
        rtc.writer(mid).is_some_and(|w| w.is_request_keyframe_possible(kind))
    }
}

/// Asks a publisher's stream (one simulcast layer, or the only one) for a keyframe: through
/// its writer, or in RTP mode (no writers) through the direct API.
fn request_keyframe_on(
    rtc: &mut str0m::Rtc,
    rtp_mode: bool,
    mid: Mid,
    rid: Option<Rid>,
    kind: KeyframeRequestKind,
) -> Result<(), String> {
    if rtp_mode {
        let mut api = rtc.direct_api();
        let stream = api.stream_rx_by_mid(mid, rid).ok_or("no receive stream yet")?;
        stream.request_keyframe(kind);
        return Ok(());
    }
    let mut writer = rtc.writer(mid).ok_or("the rtc is closed")?;
    writer.request_keyframe(rid, kind).map_err(|e| e.to_string())
}

/// The name a recorder needs for a codec.
pub(crate) fn codec_name(codec: str0m::format::Codec) -> &'static str {
    use str0m::format::Codec;
    match codec {
        Codec::Opus => "opus",
        Codec::Vp8 => "vp8",
        Codec::Vp9 => "vp9",
        Codec::H264 => "h264",
        Codec::Av1 => "av1",
        _ => "other",
    }
}
