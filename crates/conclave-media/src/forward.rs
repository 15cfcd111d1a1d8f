//! Media forwarding and keyframe requests: what happens when a peer's `Rtc`
//! reports an event.
//!
//! Owns the routing rules (publisher mid -> subscribers' outgoing mids, the
//! audio force-mute, holding video back until a keyframe, PLI throttling).
//! It must not create or parse SDP (that is `negotiate`) nor touch sockets.

use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::{Event, IceConnectionState};

use crate::peer::{Peer, PeerKey, PublishedTrack};
use crate::sfu::{Sfu, SfuEvent, SfuOutput};

/// At most one keyframe request per publisher track in this interval; later
/// wishes are kept and sent with a following frame.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

impl Sfu {
    pub(crate) fn on_event(&mut self, key: PeerKey, event: Event, now: Instant) {
        match event {
            Event::Connected => self.on_connected(key, now),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.report_disconnect(key)
            }
            Event::MediaAdded(added) => self.register_published(key, added.mid),
            Event::MediaData(data) => self.forward(key, data, now),
            Event::KeyframeRequest(req) => {
                let source = self
                    .peers
                    .get(&key)
                    .and_then(|p| p.out.get(&req.mid))
                    .filter(|o| o.active)
                    .map(|o| o.source);
                if let Some((pub_key, pub_mid)) = source {
                    self.request_keyframe(pub_key, pub_mid, Some(key), now);
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
            keyframe_wanted: false,
            last_keyframe_request: None,
        };
        peer.published.insert(mid, track);
        let peer_id = peer.id.clone();
        self.out
            .push_back(SfuOutput::Event(SfuEvent::TrackPublished {
                peer_id,
                mid,
                kind,
            }));
    }

    fn on_connected(&mut self, key: PeerKey, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.connected = true;
        let peer_id = peer.id.clone();
        self.out
            .push_back(SfuOutput::Event(SfuEvent::PeerConnected { peer_id }));
        // Media written before now was dropped: every video track starts over.
        let mut sources = Vec::new();
        for out in peer
            .out
            .values_mut()
            .filter(|o| o.active && o.kind == MediaKind::Video)
        {
            out.needs_keyframe = true;
            sources.push(out.source);
        }
        for (pub_key, pub_mid) in sources {
            self.request_keyframe(pub_key, pub_mid, Some(key), now);
        }
    }

    /// Copies one frame from a publisher to each of its subscribers.
    fn forward(&mut self, key: PeerKey, data: MediaData, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let audio_forwarding = peer.audio_forwarding;
        let Some(track) = peer.published.get_mut(&data.mid) else {
            return;
        };
        let kind = track.kind;
        if kind == MediaKind::Audio && !audio_forwarding {
            return;
        }
        if kind == MediaKind::Video && !data.contiguous {
            track.keyframe_wanted = true;
        }
        let subscribers = track.subscribers.clone();
        if track.keyframe_wanted {
            self.flush_keyframe_request(key, data.mid, None, now);
        }
        let is_keyframe = data.is_keyframe();
        for (sub_key, out_mid) in subscribers {
            let Some(sub) = self.peers.get_mut(&sub_key) else {
                continue;
            };
            if !sub.connected {
                continue;
            }
            let Some(out) = sub.out.get_mut(&out_mid).filter(|o| o.active) else {
                continue;
            };
            if kind == MediaKind::Video && out.needs_keyframe {
                if !is_keyframe {
                    continue;
                }
                out.needs_keyframe = false;
            }
            let Some(writer) = sub.rtc.writer(out_mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                tracing::debug!(subscriber = %sub.id, "no matching codec; frame dropped");
                continue;
            };
            if let Err(e) = writer.write(pt, data.network_time, data.time, data.data.clone()) {
                tracing::debug!(subscriber = %sub.id, error = %e, "write failed");
            }
            self.settle(sub_key);
        }
    }

    /// Wants a keyframe from a publisher's track, and asks for it unless a
    /// request went out very recently.
    pub(crate) fn request_keyframe(
        &mut self,
        pub_key: PeerKey,
        mid: Mid,
        subscriber: Option<PeerKey>,
        now: Instant,
    ) {
        let Some(track) = self
            .peers
            .get_mut(&pub_key)
            .and_then(|p| p.published.get_mut(&mid))
        else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        track.keyframe_wanted = true;
        self.flush_keyframe_request(pub_key, mid, subscriber, now);
    }

    fn flush_keyframe_request(
        &mut self,
        pub_key: PeerKey,
        mid: Mid,
        subscriber: Option<PeerKey>,
        now: Instant,
    ) {
        let subscriber = subscriber
            .and_then(|k| self.peers.get(&k))
            .map(|p| p.id.clone());
        let Some(Peer {
            id, rtc, published, ..
        }) = self.peers.get_mut(&pub_key)
        else {
            return;
        };
        let Some(track) = published.get_mut(&mid) else {
            return;
        };
        let recent = track
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL);
        if !track.keyframe_wanted || recent {
            return;
        }
        let Some(mut writer) = rtc.writer(mid) else {
            return;
        };
        let kind = if writer.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
            KeyframeRequestKind::Pli
        } else if writer.is_request_keyframe_possible(KeyframeRequestKind::Fir) {
            KeyframeRequestKind::Fir
        } else {
            track.keyframe_wanted = false;
            return;
        };
        if let Err(e) = writer.request_keyframe(None, kind) {
            // Usually: no packet received yet, so no stream to ask on. The
            // wish stays and is retried with the publisher's next frame.
            tracing::trace!(publisher = %id, error = %e, "keyframe request deferred");
            return;
        }
        track.keyframe_wanted = false;
        track.last_keyframe_request = Some(now);
        let ev = SfuEvent::KeyframeRequested {
            publisher: id.clone(),
            mid,
            subscriber,
        };
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
            if let Some(track) = self
                .peers
                .get_mut(&pub_key)
                .and_then(|p| p.published.get_mut(&pub_mid))
            {
                track.subscribers.retain(|s| *s != (key, *out_mid));
            }
        }
    }
}
