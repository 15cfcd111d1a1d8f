//! One media peer: its str0m `Rtc`, the tracks it publishes and the tracks
//! the server sends it, and the drain that keeps str0m's single-mutation
//! invariant (every mutation is followed by `poll_output` down to a timeout).
//!
//! Owns per-peer state only. It must not reach into other peers: everything
//! that crosses peers (forwarding, keyframe requests) lives in `forward`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::{Candidate, Event, IceCreds, Output, Rtc};

use crate::output::SfuOutput;

/// Internal handle of a peer. Never reused, so a stale key finds nothing.
pub(crate) type PeerKey = u64;

/// A track this peer publishes (media the server receives from it).
#[derive(Debug)]
pub(crate) struct PublishedTrack {
    pub kind: MediaKind,
    /// Who gets it: (subscriber, the subscriber's outgoing mid).
    pub subscribers: Vec<(PeerKey, Mid)>,
    /// Keyframes wanted but not requested yet (throttled, or the receive
    /// stream did not exist yet), per simulcast layer (`None`: every layer).
    pub keyframe_wanted: Vec<Option<Rid>>,
    pub last_keyframe_request: Option<Instant>,
    /// Simulcast layers (RIDs) seen from this track, in order of appearance.
    pub layers: Vec<Rid>,
    /// The simulcast layer the recording tap hands out (the best seen; it moves to a better
    /// one on that layer's keyframe, so a recording never mixes layers mid-picture).
    pub tap_layer: Option<Rid>,
    /// RTP mode, tapped: frame reassembly per simulcast layer the tap may record (the one it
    /// records and the best one, whose keyframe it moves to).
    pub taps: Vec<(Option<Rid>, crate::rtp::depack::Depacketizer)>,
}

/// A track the server sends to this peer, copied from a publisher.
#[derive(Debug)]
pub(crate) struct OutTrack {
    pub source: (PeerKey, Mid),
    pub kind: MediaKind,
    /// False while the server's offer for it awaits the answer.
    pub active: bool,
    /// Video is held back until a keyframe, so a decoder never starts mid-GOP.
    pub needs_keyframe: bool,
    /// Simulcast: the layer being forwarded now, and the one wanted (`None`:
    /// the best available). Switches happen on a keyframe of the wanted layer.
    pub layer: Option<Rid>,
    pub target: Option<Rid>,
    /// VP8 temporal layers above this are not forwarded (`None`: all, the full frame rate).
    pub max_temporal: Option<u8>,
    /// RTP-mode forwarding state (see `Sfu::set_rtp_forwarding`), made at the first packet.
    pub leg: Option<crate::rtp::leg::Leg>,
    /// RTP mode: what the leg sheds while str0m's send queue for it is long.
    pub backlog: crate::rtp::backlog::Backlog,
    /// RTP mode: str0m's send stream for it has the SFU's resend cache size (see `forward_rtp`).
    pub cache_sized: bool,
}

#[derive(Debug)]
pub(crate) struct Peer {
    pub id: String,
    pub rtc: Rtc,
    /// Its `Rtc` hands out and takes RTP packets, not frames (see `Sfu::set_rtp_forwarding`).
    pub rtp_mode: bool,
    pub ufrag: String,
    /// Remote flows (source, destination) routed to this peer.
    pub routes: Vec<(SocketAddr, SocketAddr)>,
    pub deadline: Instant,
    pub connected: bool,
    /// `PeerDisconnected` was emitted (it is emitted once).
    pub disconnect_reported: bool,
    pub audio_forwarding: bool,
    /// Its media is also handed out as `SfuOutput::Recorded` (archiving).
    pub tapped: bool,
    pub published: HashMap<Mid, PublishedTrack>,
    pub out: HashMap<Mid, OutTrack>,
    /// Server offer awaiting the answer, with the m-lines it stops (they must be stopped
    /// again if the offer is void).
    pub pending_offer: Option<(SdpPendingOffer, Vec<Mid>)>,
    /// Subscriptions and stops waiting for the next server offer.
    pub want_add: Vec<(PeerKey, Mid)>,
    pub want_stop: Vec<Mid>,
    /// The latest egress bandwidth estimate towards this peer, in bits/s.
    pub estimate_bps: u64,
    /// Audio only while its bandwidth is too low for video (`None`: never, the default).
    pub audio_fallback: Option<crate::fallback::AudioFallback>,
    /// The receiver asked not to get this kind for now (OpenTok.js `subscribeToAudio(false)`,
    /// `subscribeToVideo(false)`): `[audio, video]`.
    pub paused: [bool; 2],
}

/// Index of a kind in [`Peer::paused`].
pub(crate) fn kind_index(kind: MediaKind) -> usize {
    usize::from(kind == MediaKind::Video)
}

/// Where bandwidth estimation starts before feedback arrives.
pub(crate) const INITIAL_ESTIMATE_KBPS: u64 = 1_000;

impl Peer {
    /// An ICE-lite `Rtc` with one host candidate and the codecs we forward. `bwe`: estimate
    /// the bandwidth towards the peer (and pace what goes to it), which only a peer that
    /// receives media needs. `rtp_mode`: str0m's RTP mode (packets, not frames).
    pub fn new(
        id: String,
        creds: IceCreds,
        host: SocketAddr,
        now: Instant,
        bwe: bool,
        rtp_mode: bool,
    ) -> Result<Peer, crate::SfuError> {
        let ufrag = creds.ufrag.clone();
        let bwe = bwe.then(|| str0m::bwe::Bitrate::kbps(INITIAL_ESTIMATE_KBPS));
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_local_ice_credentials(creds)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_vp9(true)
            .enable_h264(true)
            // TWCC bandwidth estimation: what each receiver can take decides its layers.
            .enable_bwe(bwe)
            .set_rtp_mode(rtp_mode)
            .build(now);
        let candidate = Candidate::host(host, "udp").map_err(|e| crate::SfuError::Candidate(e.to_string()))?;
        if rtc.add_local_candidate(candidate).is_none() {
            return Err(crate::SfuError::Candidate(format!("{host} was refused")));
        }
        Ok(Peer {
            id,
            rtc,
            rtp_mode,
            ufrag,
            routes: Vec::new(),
            deadline: now,
            connected: false,
            disconnect_reported: false,
            audio_forwarding: true,
            tapped: false,
            published: HashMap::new(),
            out: HashMap::new(),
            pending_offer: None,
            estimate_bps: INITIAL_ESTIMATE_KBPS * 1000,
            audio_fallback: None,
            paused: [false; 2],
            want_add: Vec::new(),
            want_stop: Vec::new(),
        })
    }

    /// Polls the `Rtc` until it yields its next timeout. Transmits go to
    /// `out`, events to `events` (tagged with `key`). Returns false if the
    /// `Rtc` failed and was disconnected.
    pub fn drain(
        &mut self,
        key: PeerKey,
        out: &mut VecDeque<SfuOutput>,
        events: &mut VecDeque<(PeerKey, Event)>,
    ) -> bool {
        loop {
            if !self.rtc.is_alive() {
                return false;
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.deadline = t;
                    return true;
                }
                Ok(Output::Transmit(t)) => out.push_back(SfuOutput::Transmit {
                    source: t.source,
                    destination: t.destination,
                    bytes: t.contents.into(),
                }),
                Ok(Output::Event(e)) => events.push_back((key, e)),
                Err(e) => {
                    tracing::warn!(peer = %self.id, error = %e, "rtc failed; disconnecting peer");
                    self.rtc.disconnect();
                    return false;
                }
            }
        }
    }
}
