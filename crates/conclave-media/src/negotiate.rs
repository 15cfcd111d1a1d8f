//! Server-driven renegotiation of what a subscriber receives.
//!
//! Owns subscribe/unsubscribe and the server offer / client answer cycle:
//! the server is the offerer after a peer joins (and from the start for a
//! peer made by [`Sfu::add_subscriber_peer`]), and at most one offer per
//! peer is outstanding (later changes queue up and go out when the answer
//! arrives). A client may still offer later on its own peer (an ICE restart,
//! as OpenTok.js does after a network change): [`Sfu::accept_offer`] answers
//! it, and a server offer it collides with is void and made again. It must
//! not forward media.

use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Mid};

use crate::SfuError;
use crate::peer::{OutTrack, PeerKey};
use crate::sfu::Sfu;

impl Sfu {
    /// Adds a peer that only receives, made from a server offer rather than a client's:
    /// a fresh ICE-lite peer subscribed to every track `publisher_id` publishes now.
    /// Returns that offer (`a=ice-lite`, `a=setup:actpass`, sendonly m-lines); the
    /// client's answer goes to [`Sfu::accept_answer`]. The answer may carry no
    /// candidates (its binding requests reveal the client's address) and may take
    /// either DTLS role (browsers answer `a=setup:active`).
    ///
    /// Fails if `peer_id` is taken, `publisher_id` is unknown or publishes nothing yet;
    /// then no peer is added.
    pub fn add_subscriber_peer(
        &mut self,
        peer_id: impl Into<String>,
        publisher_id: &str,
        now: Instant,
    ) -> Result<String, SfuError> {
        let peer_id = peer_id.into();
        self.check_new_id(&peer_id)?;
        let pub_key = self.key(publisher_id)?;
        let mids = self.published_in_order(pub_key);
        if mids.is_empty() {
            return Err(SfuError::NoTracks(publisher_id.to_string()));
        }
        // It receives media: bandwidth estimation picks its simulcast layers.
        let peer = self.new_peer(peer_id.clone(), now, true)?;
        let key = self.insert_peer(peer);
        self.queue_adds(key, pub_key, &mids);
        match self.offer(key, now) {
            Ok(Some(offer)) => Ok(offer),
            result => {
                // Nothing to offer after all: leave no half-made peer behind.
                let _ = self.remove_peer(&peer_id);
                Err(result.err().unwrap_or_else(|| SfuError::NoTracks(publisher_id.to_string())))
            }
        }
    }

    /// Subscribes `subscriber` to every track `publisher` publishes now.
    /// Returns the server offer to send to the subscriber, or `None` if
    /// nothing changed or an earlier offer still awaits its answer (the
    /// change then rides on the offer returned by [`Sfu::accept_answer`]).
    pub fn subscribe(&mut self, subscriber: &str, publisher: &str, now: Instant) -> Result<Option<String>, SfuError> {
        let (sub_key, pub_key) = self.pair(subscriber, publisher)?;
        let mids = self.published_in_order(pub_key);
        self.queue_adds(sub_key, pub_key, &mids);
        self.offer(sub_key, now)
    }

    /// Subscribes `subscriber` to one track (`mid`) of `publisher`.
    pub fn subscribe_track(
        &mut self,
        subscriber: &str,
        publisher: &str,
        mid: Mid,
        now: Instant,
    ) -> Result<Option<String>, SfuError> {
        let (sub_key, pub_key) = self.pair(subscriber, publisher)?;
        if !self.peers[&pub_key].published.contains_key(&mid) {
            let peer = publisher.to_string();
            return Err(SfuError::UnknownTrack { peer, mid: mid.to_string() });
        }
        self.queue_adds(sub_key, pub_key, &[mid]);
        self.offer(sub_key, now)
    }

    /// Stops sending `publisher`'s tracks to `subscriber` at once; the
    /// returned offer (if any) stops the m-lines.
    pub fn unsubscribe(&mut self, subscriber: &str, publisher: &str, now: Instant) -> Result<Option<String>, SfuError> {
        let (sub_key, pub_key) = self.pair(subscriber, publisher)?;
        let sub = self.peers.get_mut(&sub_key).expect("checked");
        sub.want_add.retain(|(k, _)| *k != pub_key);
        let gone: Vec<(Mid, Mid)> =
            sub.out.iter().filter(|(_, o)| o.source.0 == pub_key).map(|(m, o)| (*m, o.source.1)).collect();
        for (out_mid, _) in &gone {
            sub.out.remove(out_mid);
            sub.want_stop.push(*out_mid);
        }
        for (out_mid, pub_mid) in gone {
            if let Some(t) = self.peers.get_mut(&pub_key).and_then(|p| p.published.get_mut(&pub_mid)) {
                t.subscribers.retain(|s| *s != (sub_key, out_mid));
            }
        }
        self.offer(sub_key, now)
    }

    /// Applies the peer's answer to the last server offer. Newly negotiated
    /// tracks start flowing (from a keyframe). Returns a follow-up offer if
    /// more changes queued up meanwhile.
    pub fn accept_answer(&mut self, peer_id: &str, answer_sdp: &str, now: Instant) -> Result<Option<String>, SfuError> {
        let key = self.key(peer_id)?;
        let answer = SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| SfuError::Sdp(e.to_string()))?;
        let pending = self.peers.get_mut(&key).and_then(|p| p.pending_offer.take());
        let (pending, stops) = pending.ok_or_else(|| SfuError::NoPendingOffer(peer_id.to_string()))?;
        let result = self.mutate(key, |peer| peer.rtc.sdp_api().accept_answer(pending, answer)).expect("key is valid");
        if let Err(e) = result {
            self.requeue_void_offer(key, stops);
            self.process(now);
            return Err(e.into());
        }
        self.activate(key, now);
        self.process(now);
        self.offer(key, now)
    }

    /// Answers a later offer from a peer that exists: an ICE restart (the answer then
    /// carries new ICE credentials, and binding requests find the peer by them) or a
    /// renegotiation (tracks a publisher adds are published like those of its first
    /// offer). A server offer still awaiting its answer is void: str0m rolls it back and
    /// its changes go back in the queue. Returns the answer and, when changes are queued,
    /// the next server offer, to send after the answer.
    pub fn accept_offer(
        &mut self,
        peer_id: &str,
        offer_sdp: &str,
        now: Instant,
    ) -> Result<(String, Option<String>), SfuError> {
        let key = self.key(peer_id)?;
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| SfuError::Sdp(e.to_string()))?;
        let peer = self.peers.get_mut(&key).expect("key is valid");
        let collided = peer.pending_offer.take();
        let result = peer.rtc.sdp_api().accept_offer(offer);
        if let Some((_, stops)) = collided {
            self.requeue_void_offer(key, stops);
        }
        let answer = match result {
            Ok(answer) => answer.to_sdp_string(),
            Err(e) => {
                self.settle(key);
                self.process(now);
                return Err(e.into());
            }
        };
        if let Some(ufrag) = sdp_ufrag(&answer) {
            let restarted = self.peers.get(&key).is_some_and(|p| p.ufrag != ufrag);
            self.rekey_ufrag(key, ufrag);
            if restarted {
                self.forget_path(key, now);
            }
        }
        for mid in crate::sfu::sdp_mids(&answer) {
            self.register_published(key, mid);
        }
        self.settle(key);
        self.process(now);
        let next = self.offer(key, now)?;
        Ok((answer, next))
    }

    /// A server offer that was never answered: the tracks it added go back in the queue,
    /// and the m-lines it stopped are stopped again in the next one.
    fn requeue_void_offer(&mut self, key: PeerKey, stops: Vec<Mid>) {
        let peer = self.peers.get_mut(&key).expect("key is valid");
        let void: Vec<Mid> = peer.out.iter().filter(|(_, o)| !o.active).map(|(m, _)| *m).collect();
        for mid in void {
            if let Some(o) = peer.out.remove(&mid) {
                peer.want_add.push(o.source);
            }
        }
        for mid in stops {
            if !peer.want_stop.contains(&mid) {
                peer.want_stop.push(mid);
            }
        }
    }

    pub(crate) fn pair(&self, subscriber: &str, publisher: &str) -> Result<(PeerKey, PeerKey), SfuError> {
        let sub_key = self.key(subscriber)?;
        let pub_key = self.key(publisher)?;
        if sub_key == pub_key {
            return Err(SfuError::SelfSubscribe);
        }
        Ok((sub_key, pub_key))
    }

    /// A publisher's tracks in the order their m-lines are offered: audio first (as
    /// browsers offer them), then by mid, so the order does not depend on random mids.
    fn published_in_order(&self, pub_key: PeerKey) -> Vec<Mid> {
        let mut tracks: Vec<(bool, String, Mid)> = self.peers[&pub_key]
            .published
            .iter()
            .map(|(mid, t)| (t.kind != MediaKind::Audio, mid.to_string(), *mid))
            .collect();
        tracks.sort();
        tracks.into_iter().map(|(_, _, mid)| mid).collect()
    }

    fn queue_adds(&mut self, sub_key: PeerKey, pub_key: PeerKey, mids: &[Mid]) {
        let sub = self.peers.get_mut(&sub_key).expect("checked");
        for mid in mids {
            let source = (pub_key, *mid);
            let known = sub.out.values().any(|o| o.source == source) || sub.want_add.contains(&source);
            if !known {
                sub.want_add.push(source);
            }
        }
    }

    /// Tracks negotiated by the accepted answer start forwarding.
    fn activate(&mut self, key: PeerKey, now: Instant) {
        let peer = self.peers.get_mut(&key).expect("key is valid");
        let connected = peer.connected;
        let fresh: Vec<(Mid, (PeerKey, Mid), MediaKind)> =
            peer.out.iter().filter(|(_, o)| !o.active).map(|(m, o)| (*m, o.source, o.kind)).collect();
        for (out_mid, (pub_key, pub_mid), kind) in fresh {
            let linked = match self.peers.get_mut(&pub_key).and_then(|p| p.published.get_mut(&pub_mid)) {
                Some(track) => {
                    track.subscribers.push((key, out_mid));
                    true
                }
                None => false,
            };
            let peer = self.peers.get_mut(&key).expect("key is valid");
            if !linked {
                // The publisher left while we negotiated.
                peer.out.remove(&out_mid);
                peer.want_stop.push(out_mid);
                continue;
            }
            if let Some(o) = peer.out.get_mut(&out_mid) {
                o.active = true;
                o.needs_keyframe = kind == MediaKind::Video;
            }
            if connected {
                self.request_keyframe(pub_key, pub_mid, None, Some(key), now);
            }
        }
        // Tell bandwidth estimation what we would like to send this peer (every video at its
        // best layer), so it probes towards it. No sustained minimum: padding stays at str0m's
        // small floor instead of filling every subscriber connection up to a layer's rate.
        self.mutate(key, |peer| {
            let videos = peer.out.values().filter(|o| o.active && o.kind == MediaKind::Video).count() as u64;
            let audios = peer.out.values().filter(|o| o.active && o.kind == MediaKind::Audio).count() as u64;
            if videos + audios > 0 {
                use str0m::bwe::Bitrate;
                let desired = Bitrate::bps(videos * 1_600_000 + audios * 64_000);
                peer.rtc.bwe().set_bitrate(Bitrate::bps(0), desired);
            }
        });
    }

    /// Makes the next server offer from the queued changes, unless one is
    /// outstanding.
    fn offer(&mut self, key: PeerKey, now: Instant) -> Result<Option<String>, SfuError> {
        let peer = &self.peers[&key];
        if peer.pending_offer.is_some() || (peer.want_add.is_empty() && peer.want_stop.is_empty()) {
            return Ok(None);
        }
        let adds: Vec<((PeerKey, Mid), MediaKind, String)> = peer
            .want_add
            .iter()
            .filter_map(|&(pk, pm)| {
                let publisher = self.peers.get(&pk)?;
                let track = publisher.published.get(&pm)?;
                Some(((pk, pm), track.kind, publisher.id.clone()))
            })
            .collect();
        let peer = self.peers.get_mut(&key).expect("key is valid");
        peer.want_add.clear();
        let stops = std::mem::take(&mut peer.want_stop);
        let mut api = peer.rtc.sdp_api();
        let mut new_out = Vec::new();
        for (source, kind, publisher_id) in adds {
            let track_id = format!("{publisher_id}-{}", source.1);
            let mid = api.add_media(kind, Direction::SendOnly, Some(publisher_id), Some(track_id), None);
            new_out.push((
                mid,
                OutTrack {
                    source,
                    kind,
                    active: false,
                    needs_keyframe: true,
                    layer: None,
                    target: None,
                    max_temporal: None,
                    leg: None,
                    backlog: Default::default(),
                    cache_sized: false,
                },
            ));
        }
        for mid in &stops {
            api.stop_media(*mid);
        }
        let Some((offer, pending)) = api.apply() else {
            return Ok(None);
        };
        peer.out.extend(new_out);
        peer.pending_offer = Some((pending, stops));
        self.settle(key);
        self.process(now);
        Ok(Some(offer.to_sdp_string()))
    }
}

/// The ICE ufrag an SDP names (session or first media level).
fn sdp_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}
