//! The `Sfu` facade: peer registry, datagram demultiplexing, timers and the
//! output queue.
//!
//! Owns the maps that find a peer (by id, by ICE ufrag, by remote flow) and
//! the deadline index. It must not do I/O or read a clock: every `Instant`
//! comes from the caller. Forwarding rules live in `forward`, server-driven
//! SDP in `negotiate`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::media::{MediaKind, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Event, IceCreds, Input};

use crate::SfuError;
use crate::output::{SfuEvent, SfuOutput};
use crate::peer::{Peer, PeerKey};
use crate::stun;

/// A sans-IO selective forwarding unit: one ICE-lite str0m `Rtc` per peer,
/// all behind one advertised host address.
///
/// Run loop: feed [`Sfu::handle_datagram`] and [`Sfu::handle_timeout`], and
/// after each call (and each control call) drain [`Sfu::poll_output`] until it
/// returns `Timeout` or `None` (no peers).
#[derive(Debug)]
pub struct Sfu {
    host: SocketAddr,
    next_key: PeerKey,
    pub(crate) peers: HashMap<PeerKey, Peer>,
    pub(crate) by_id: HashMap<String, PeerKey>,
    by_ufrag: HashMap<String, PeerKey>,
    routes: HashMap<(SocketAddr, SocketAddr), PeerKey>,
    deadlines: BTreeSet<(Instant, PeerKey)>,
    pub(crate) out: VecDeque<SfuOutput>,
    pub(crate) events: VecDeque<(PeerKey, Event)>,
    /// Peers made from now on forward RTP packets (see [`Sfu::set_rtp_forwarding`]).
    rtp_forwarding: bool,
    /// What every video leg sheds because the worker is overloaded (see [`Sfu::set_overload`]).
    pub(crate) overload: crate::Shed,
    pub(crate) shed: crate::ShedStats,
}

impl Sfu {
    /// An SFU whose peers all use `host` (the advertised UDP address) as
    /// their single ICE host candidate.
    pub fn new(host: SocketAddr) -> Sfu {
        Sfu {
            host,
            next_key: 1,
            peers: HashMap::new(),
            by_id: HashMap::new(),
            by_ufrag: HashMap::new(),
            routes: HashMap::new(),
            deadlines: BTreeSet::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            rtp_forwarding: false,
            overload: crate::Shed::Nothing,
            shed: crate::ShedStats::default(),
        }
    }

    /// Experimental (issue 16), off by default: peers added from now on run str0m in RTP
    /// mode, and media goes from publishers to subscribers as RTP packets (rewritten per
    /// subscriber by `rtp::leg`) instead of being depacketized and packetized again as
    /// frames. Not done yet in this mode: recording taps hand out no frames.
    pub fn set_rtp_forwarding(&mut self, on: bool) {
        self.rtp_forwarding = on;
    }

    /// RTP mode: what every video leg sheds because the worker running this SFU is overloaded
    /// (see [`crate::OverloadGuard`]): `UpperTemporalLayers` forwards the lowest simulcast layer
    /// and the base temporal layer only, `Everything` no video at all. Audio is never shed for
    /// overload. Video comes back from a keyframe.
    pub fn set_overload(&mut self, shed: crate::Shed) {
        if shed != self.overload {
            tracing::warn!(?shed, "media worker overload: video shed");
        }
        self.overload = shed;
    }

    /// What has been shed so far (RTP mode), and how many legs shed for their backlog now.
    pub fn shed_stats(&self) -> crate::ShedStats {
        let legs_shedding = self
            .peers
            .values()
            .flat_map(|p| p.out.values())
            .filter(|o| o.backlog.shed() != crate::Shed::Nothing)
            .count() as u64;
        crate::ShedStats { legs_shedding, ..self.shed }
    }

    /// The advertised host candidate address.
    pub fn host(&self) -> SocketAddr {
        self.host
    }

    /// Accepts a client's offer and returns the answer SDP. Tracks the
    /// client sends (sendonly/sendrecv m-lines) become published tracks.
    pub fn add_peer(&mut self, peer_id: impl Into<String>, offer_sdp: &str, now: Instant) -> Result<String, SfuError> {
        let peer_id = peer_id.into();
        self.check_new_id(&peer_id)?;
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| SfuError::Sdp(e.to_string()))?;
        // A peer that only publishes gets no media from us, so it needs no bandwidth
        // estimation and no pacer (which costs a full `Rtc` timeout per packet).
        let mut peer = self.new_peer(peer_id, now, !publish_only(offer_sdp))?;
        let answer = peer.rtc.sdp_api().accept_offer(offer)?.to_sdp_string();
        let key = self.insert_peer(peer);
        // str0m emits MediaAdded only once SRTP is up; register the offered
        // tracks now so they can be subscribed to at once.
        for mid in sdp_mids(&answer) {
            self.register_published(key, mid);
        }
        self.settle(key);
        self.process(now);
        Ok(answer)
    }

    /// Fails if `peer_id` is taken.
    pub(crate) fn check_new_id(&self, peer_id: &str) -> Result<(), SfuError> {
        if self.by_id.contains_key(peer_id) {
            return Err(SfuError::PeerExists(peer_id.to_string()));
        }
        Ok(())
    }

    /// A fresh ICE-lite peer with ICE credentials no other peer uses, not registered yet
    /// (see [`Sfu::insert_peer`]), so a failure before that leaves no trace.
    pub(crate) fn new_peer(&self, peer_id: String, now: Instant, bwe: bool) -> Result<Peer, SfuError> {
        self.check_new_id(&peer_id)?;
        let creds = loop {
            let c = IceCreds::new();
            if !self.by_ufrag.contains_key(&c.ufrag) {
                break c;
            }
        };
        Peer::new(peer_id, creds, self.host, now, bwe, self.rtp_forwarding)
    }

    /// Registers a peer made by [`Sfu::new_peer`] (by id, by ufrag, in the deadline index).
    /// The caller settles it after its first mutation.
    pub(crate) fn insert_peer(&mut self, peer: Peer) -> PeerKey {
        let key = self.next_key;
        self.next_key += 1;
        self.by_ufrag.insert(peer.ufrag.clone(), key);
        self.by_id.insert(peer.id.clone(), key);
        self.deadlines.insert((peer.deadline, key));
        self.peers.insert(key, peer);
        key
    }

    /// After an ICE restart the peer answers to new local credentials: binding requests
    /// find it by the new ufrag from now on (flows it already has keep working).
    pub(crate) fn rekey_ufrag(&mut self, key: PeerKey, ufrag: &str) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if peer.ufrag == ufrag {
            return;
        }
        self.by_ufrag.remove(&peer.ufrag);
        self.by_ufrag.insert(ufrag.to_string(), key);
        peer.ufrag = ufrag.to_string();
    }

    /// Removes a peer at once: its `Rtc` is closed, its routes dropped, and
    /// nothing it published is forwarded from here on. Subscribers' m-lines
    /// for its tracks are stopped in their next server offer.
    pub fn remove_peer(&mut self, peer_id: &str) -> Result<(), SfuError> {
        let key = self.by_id.remove(peer_id).ok_or_else(|| SfuError::UnknownPeer(peer_id.to_string()))?;
        let Some(mut peer) = self.peers.remove(&key) else {
            return Ok(());
        };
        self.by_ufrag.remove(&peer.ufrag);
        self.deadlines.remove(&(peer.deadline, key));
        for flow in &peer.routes {
            if self.routes.get(flow) == Some(&key) {
                self.routes.remove(flow);
            }
        }
        self.unlink_peer(key, &peer);
        // Say goodbye (RTCP BYE, DTLS close_notify) but drop every event.
        if peer.rtc.close().is_ok() {
            let mut ignored = VecDeque::new();
            peer.drain(key, &mut self.out, &mut ignored);
        }
        Ok(())
    }

    /// Enables or disables forwarding of a publisher's audio (force mute).
    pub fn set_audio_forwarding(&mut self, peer_id: &str, enabled: bool) -> Result<(), SfuError> {
        let key = self.key(peer_id)?;
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.audio_forwarding = enabled;
        }
        Ok(())
    }

    /// Hands a publisher's media out as [`SfuOutput::Recorded`] frames (or stops). Starting
    /// asks the publisher for a keyframe, so a recording starts decodable.
    pub fn set_tap(&mut self, peer_id: &str, on: bool, now: Instant) -> Result<(), SfuError> {
        let key = self.key(peer_id)?;
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.tapped = on;
        }
        if on {
            self.request_publisher_keyframe(peer_id, now)?;
        }
        Ok(())
    }

    /// Asks a publisher for a keyframe on each of its video tracks (a recorder that lost
    /// frames waits for one). Throttled like every other keyframe request.
    pub fn request_publisher_keyframe(&mut self, peer_id: &str, now: Instant) -> Result<(), SfuError> {
        let key = self.key(peer_id)?;
        let mids: Vec<Mid> = self
            .peers
            .get(&key)
            .map(|p| p.published.iter().filter(|(_, t)| t.kind == MediaKind::Video).map(|(m, _)| *m).collect())
            .unwrap_or_default();
        for mid in mids {
            self.request_keyframe(key, mid, None, None, now);
        }
        Ok(())
    }

    /// The tracks a peer publishes.
    pub fn published_tracks(&self, peer_id: &str) -> Result<Vec<(Mid, MediaKind)>, SfuError> {
        let peer = &self.peers[&self.key(peer_id)?];
        let mut tracks: Vec<_> = peer.published.iter().map(|(m, t)| (*m, t.kind)).collect();
        tracks.sort_by_key(|(m, _)| m.to_string());
        Ok(tracks)
    }

    /// Whether ICE and DTLS are up for this peer.
    pub fn is_connected(&self, peer_id: &str) -> bool {
        self.by_id.get(peer_id).and_then(|k| self.peers.get(k)).is_some_and(|p| p.connected)
    }

    /// Routes one received datagram. Returns false if it was dropped (no
    /// peer owns the flow, or the bytes are not WebRTC traffic).
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, bytes: &[u8]) -> bool {
        let Ok(contents) = DatagramRecv::try_from(bytes) else {
            tracing::trace!(%source, "dropping a datagram that is not WebRTC");
            return false;
        };
        let input = Input::Receive(now, Receive { proto: Protocol::Udp, source, destination, contents });
        let flow = (source, destination);
        // A binding request names its peer by ufrag; anything else must come
        // from a flow that a verified binding request already opened.
        let key = match stun::binding_request_local_ufrag(bytes) {
            Some(ufrag) => {
                let Some(&key) = self.by_ufrag.get(ufrag) else {
                    tracing::debug!(%source, "binding request for an unknown ufrag");
                    return false;
                };
                let peer = self.peers.get_mut(&key).expect("ufrag index is consistent");
                if self.routes.get(&flow) != Some(&key) {
                    // The peer's ICE agent checks MESSAGE-INTEGRITY here.
                    if !peer.rtc.accepts(&input) {
                        tracing::debug!(%source, "binding request failed the integrity check");
                        return false;
                    }
                    if let Some(old) = self.routes.insert(flow, key)
                        && let Some(p) = self.peers.get_mut(&old)
                    {
                        p.routes.retain(|f| *f != flow);
                    }
                    let peer = self.peers.get_mut(&key).expect("peer exists");
                    peer.routes.push(flow);
                }
                key
            }
            None => match self.routes.get(&flow) {
                Some(&key) => key,
                None => {
                    tracing::trace!(%source, "datagram from an unknown flow");
                    return false;
                }
            },
        };
        self.mutate(key, |peer| {
            if let Err(e) = peer.rtc.handle_input(input) {
                tracing::debug!(peer = %peer.id, error = %e, "rtc refused a datagram");
            }
        });
        self.process(now);
        true
    }

    /// Drives every peer whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<PeerKey> = self.deadlines.iter().take_while(|(t, _)| *t <= now).map(|(_, k)| *k).collect();
        for key in due {
            self.mutate(key, |peer| {
                if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(peer = %peer.id, error = %e, "rtc timeout failed");
                }
            });
        }
        self.process(now);
    }

    /// The next thing to do. After the queue empties, returns
    /// `Timeout(earliest deadline)`, or `None` when there are no live peers.
    pub fn poll_output(&mut self) -> Option<SfuOutput> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        self.deadlines.first().map(|(t, _)| SfuOutput::Timeout(*t))
    }

    pub(crate) fn key(&self, peer_id: &str) -> Result<PeerKey, SfuError> {
        self.by_id.get(peer_id).copied().ok_or_else(|| SfuError::UnknownPeer(peer_id.to_string()))
    }

    /// Applies one change to a peer (its `Rtc` included) and drains what the change produced:
    /// str0m requires every mutation of an `Rtc` to be followed by `poll_output` down to a
    /// timeout, and this keeps that rule in one place. `None` if the peer is gone.
    pub(crate) fn mutate<T>(&mut self, key: PeerKey, change: impl FnOnce(&mut Peer) -> T) -> Option<T> {
        let result = change(self.peers.get_mut(&key)?);
        self.settle(key);
        Some(result)
    }

    /// Drains a peer after a mutation and re-files its deadline. Prefer [`Sfu::mutate`]; the
    /// few callers left change several peers' state around one mutation.
    pub(crate) fn settle(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        self.deadlines.remove(&(peer.deadline, key));
        if peer.drain(key, &mut self.out, &mut self.events) {
            self.deadlines.insert((peer.deadline, key));
        } else {
            // A dead Rtc has nothing more to time out.
            self.report_disconnect(key);
        }
    }

    /// Emits `PeerDisconnected` once per peer.
    pub(crate) fn report_disconnect(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.connected = false;
        if !peer.disconnect_reported {
            peer.disconnect_reported = true;
            let peer_id = peer.id.clone();
            self.out.push_back(SfuOutput::Event(SfuEvent::PeerDisconnected { peer_id }));
        }
    }

    /// Handles queued str0m events until none are left (forwarding may
    /// queue more, on other peers).
    pub(crate) fn process(&mut self, now: Instant) {
        while let Some((key, event)) = self.events.pop_front() {
            self.on_event(key, event, now);
        }
    }
}

/// Whether every audio/video m-line of a client's offer is `sendonly` (and there is one):
/// the client only publishes. Other m-lines (data channels) do not count.
fn publish_only(sdp: &str) -> bool {
    let mut media = 0;
    let mut current: Option<bool> = None; // in an audio/video section: seen a=sendonly
    let mut all_sendonly = true;
    let mut close = |current: &mut Option<bool>| {
        if let Some(sendonly) = current.take() {
            media += 1;
            all_sendonly &= sendonly;
        }
    };
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            close(&mut current);
            if m.starts_with("audio ") || m.starts_with("video ") {
                current = Some(false);
            }
        } else if line == "a=sendonly"
            && let Some(s) = current.as_mut()
        {
            *s = true;
        }
    }
    close(&mut current);
    media > 0 && all_sendonly
}

/// The `a=mid:` values of an SDP, in m-line order.
pub(crate) fn sdp_mids(sdp: &str) -> impl Iterator<Item = Mid> + '_ {
    sdp.lines().filter_map(|l| l.trim_end().strip_prefix("a=mid:")).map(Mid::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn publish_only_offers() {
        let pubs = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert!(super::publish_only(pubs));
        let mixed =
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\n";
        assert!(!super::publish_only(mixed));
        assert!(!super::publish_only("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n"));
        assert!(!super::publish_only("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"));
    }
}
