//! RTP-mode forwarding (the default of `conclave serve`; see [`Sfu::set_rtp_forwarding`]): a publisher's RTP
//! packets go to each subscriber as RTP packets, decided and rewritten per subscriber by its
//! `rtp::leg::Leg`, and written with str0m's direct API (`StreamTx::write_rtp`). The payload
//! is shared between subscribers, never copied: VP8 fields are patched as str0m serializes,
//! and str0m's send stream answers the subscriber's NACKs from its own cache of those shared
//! payloads.
//!
//! Owns the glue between str0m's RTP mode and the legs: which track a packet belongs to, the
//! payload type each subscriber negotiated, force-mute and audio fallback as leg pauses, and
//! the legs' keyframe wishes as (throttled) requests to the publisher, the bound on each
//! leg's str0m send queue (`rtp::backlog`) and the worker's overload level, and recording taps:
//! a tapped track's packets reassembled into frames (`rtp::depack`) under frame mode's
//! layer rules, handed out as `SfuOutput::Recorded`. It must not decide
//! forwarding policy (that is `rtp`), nor negotiate (`negotiate`).

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use str0m::media::{MediaKind, Mid, Pt, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo, Vp8Descriptor, Vp8Patch};

use crate::Shed;
use crate::forward::{codec_name, tap_takes};
use crate::output::{RecordedFrame, SfuOutput};
use crate::peer::{PeerKey, PublishedTrack};
use crate::rtp::RtpHeader;
use crate::rtp::backlog::QueueSample;
use crate::rtp::codec::Codec;
use crate::rtp::depack::Depacketizer;
use crate::rtp::layer::best_layer;
use crate::rtp::leg::{Dropped, Forwarded, Incoming, Leg};
use crate::rtp::selector::LayerChoice;
use crate::rtp::vp8::Vp8Rewrite;
use crate::sfu::Sfu;

impl Sfu {
    /// Offers one publisher packet to each subscriber leg of its track.
    pub(crate) fn forward_rtp(&mut self, key: PeerKey, packet: RtpPacket, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        let ssrc = packet.header.ssrc;
        let Some((mid, rid)) = peer.rtc.direct_api().stream_rx(&ssrc).map(|s| (s.mid(), s.rid())) else {
            return;
        };
        let pt = packet.header.payload_type;
        let Some(params) = peer.rtc.codec_config().find(|p| p.pt() == pt).copied() else {
            tracing::trace!(publisher = %peer.id, %pt, "packet of an unknown payload type");
            return;
        };
        let (audio_forwarding, tapped) = (peer.audio_forwarding, peer.tapped);
        let Some(track) = peer.published.get_mut(&mid) else { return };
        let kind = track.kind;
        if let Some(rid) = rid.filter(|r| !track.layers.contains(r)) {
            track.layers.push(rid);
        }
        let codec = leg_codec(params.spec().codec, kind);
        let muted = kind == MediaKind::Audio && !audio_forwarding;
        if tapped && !muted && !matches!(codec, Codec::Other { .. }) {
            let name = codec_name(params.spec().codec);
            record(&mut self.out, &peer.id, mid, track, (codec, name), rid, &packet);
        } else {
            // Starts over when the tap (or the audio) comes back.
            track.taps.clear();
        }
        let layers = track.layers.clone();
        let subscribers = track.subscribers.clone();
        if !track.keyframe_wanted.is_empty() {
            self.flush_keyframe_request(key, mid, None, now);
        }
        let header = RtpHeader {
            ssrc: *ssrc,
            seq: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload_type: *pt,
        };
        let incoming = Incoming { header, rid, payload: &packet.payload };
        let mut wishes: Vec<(Option<Rid>, PeerKey)> = Vec::new();
        let video = kind == MediaKind::Video;
        let overload = if video { self.overload } else { Shed::Nothing };
        for (sub_key, out_mid) in subscribers {
            let audio_only = video && self.observe_fallback(sub_key, now);
            let budget_bps = if overload == Shed::Nothing { self.video_budget(sub_key) } else { 0 };
            let Some(sub) = self.peers.get_mut(&sub_key) else { continue };
            if !sub.connected {
                continue;
            }
            let queue = queue_sample(&mut sub.rtc, out_mid, sub.estimate_bps, now);
            let Some(out) = sub.out.get_mut(&out_mid).filter(|o| o.active) else { continue };
            let was = out.backlog.shed();
            let backlog = queue.map_or(was, |q| out.backlog.observe(video, q));
            if backlog != was {
                tracing::info!(subscriber = %sub.id, ?kind, ?backlog, "send queue backlog: shedding changed");
            }
            let shed = backlog.max(overload);
            let leg = out.leg.get_or_insert_with(|| new_leg(codec));
            let needs_keyframe = std::mem::take(&mut out.needs_keyframe);
            let unwanted = muted || audio_only || sub.paused[crate::peer::kind_index(kind)];
            let pause = unwanted || shed == Shed::Everything;
            if pause && !leg.is_paused() {
                leg.pause();
            } else if !pause && leg.is_paused() {
                leg.resume();
            }
            if needs_keyframe {
                leg.require_keyframe();
            }
            let temporal_cap = if shed >= Shed::UpperTemporalLayers { Some(0) } else { out.max_temporal };
            leg.set_max_temporal(temporal_cap);
            let choice = LayerChoice { layers: &layers, preferred: out.target, budget_bps };
            let decision = leg.on_packet(&incoming, &choice, now);
            if rid.is_some() {
                out.layer = leg.current_layer();
            }
            if let Some(layer) = decision.keyframe_wanted.filter(|l| !wishes.iter().any(|(w, _)| w == l)) {
                wishes.push((layer, sub_key));
            }
            let shed_here = match decision.verdict {
                Err(Dropped::Paused) => !unwanted && shed == Shed::Everything,
                Err(Dropped::TemporalLayer) => shed >= Shed::UpperTemporalLayers && out.max_temporal != Some(0),
                _ => false,
            };
            if shed_here {
                let counter =
                    if backlog >= shed { &mut self.shed.backlog_packets } else { &mut self.shed.overload_packets };
                *counter += 1;
            }
            let Ok(forwarded) = decision.verdict else { continue };
            let Some(out_pt) = sub.rtc.codec_config().match_params(params).map(|p| p.pt()) else {
                tracing::debug!(subscriber = %sub.id, "no matching codec; packet dropped");
                continue;
            };
            let size_cache = !std::mem::replace(&mut out.cache_sized, true);
            let write = rtp_write(out_pt, &forwarded, &packet, video);
            self.mutate(sub_key, |sub| {
                let mut api = sub.rtc.direct_api();
                let Some(stream) = api.stream_tx_by_mid(out_mid, None) else { return };
                if size_cache {
                    stream.set_rtx_cache(RESEND_CACHE_PACKETS, RESEND_CACHE_AGE, Some(RESEND_RATIO_CAP));
                }
                stream.write_rtp(write);
            });
        }
        for (layer, sub_key) in wishes {
            self.request_keyframe(key, mid, layer, Some(sub_key), now);
        }
    }
}

/// Feeds a tapped track's packet to the frame reassembly of its layer, and hands out the
/// frames the tap records (the layer rules of frame mode: `forward::tap_takes`). Only the
/// layer recorded and the best one (whose keyframe the tap moves to) are reassembled.
fn record(
    out: &mut VecDeque<SfuOutput>,
    publisher: &str,
    mid: Mid,
    track: &mut PublishedTrack,
    (codec, name): (Codec, &'static str),
    rid: Option<Rid>,
    packet: &RtpPacket,
) {
    let (tap_layer, best) = (track.tap_layer, rid.and(best_layer(&track.layers)));
    let reassembled = |r: &Option<Rid>| r.is_none() || *r == tap_layer || *r == best;
    track.taps.retain(|(r, _)| reassembled(r));
    if !reassembled(&rid) {
        return;
    }
    let index = match track.taps.iter().position(|(r, _)| *r == rid) {
        Some(i) => i,
        None => {
            track.taps.push((rid, Depacketizer::new(codec)));
            track.taps.len() - 1
        }
    };
    let h = &packet.header;
    let frames = track.taps[index].1.push(h.sequence_number, h.timestamp, h.marker, &packet.payload, packet.timestamp);
    for frame in frames {
        if !tap_takes(track, rid, frame.keyframe) {
            continue;
        }
        out.push_back(SfuOutput::Recorded(RecordedFrame {
            publisher: publisher.to_owned(),
            mid,
            kind: track.kind,
            keyframe: frame.keyframe,
            contiguous: frame.contiguous,
            codec: name,
            arrival: frame.arrival,
            media_time_us: frame.media_time_us,
            data: frame.data,
        }));
    }
}

/// How long str0m keeps a sent video packet to answer the subscriber's NACK with (its default
/// is 3 s): a resend later than a second is never shown, and the cache, one per subscriber
/// and track, is most of a subscriber's memory (about 450 bytes a packet besides the shared
/// payload).
const RESEND_CACHE_AGE: Duration = Duration::from_secs(1);
/// At most this many packets in it (a second of 4 Mbit/s video).
const RESEND_CACHE_PACKETS: usize = 400;
/// str0m's default: resends stop while they are more than 15 % of what is sent.
const RESEND_RATIO_CAP: f32 = 0.15;

/// A look at str0m's send queue for a subscriber's outgoing track, from its pacer's latest
/// sample (`None` before the pacer has seen the track). `estimate_bps`: the link's estimated
/// rate, at which the queue drains.
fn queue_sample(rtc: &mut str0m::Rtc, mid: Mid, estimate_bps: u64, now: Instant) -> Option<QueueSample> {
    let mut api = rtc.direct_api();
    let info = api.stream_tx_by_mid(mid, None)?.queue_info()?;
    let oldest = info.first_unsent().map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
    let drain = Duration::from_micros((info.byte_size() as u64 * 8 * 1_000_000) / estimate_bps.max(1));
    Some(QueueSample { packets: info.packet_count(), wait: oldest.max(drain) })
}

/// A leg whose sequence numbers and timestamps start at random values (RFC 3550 §5.1). Its
/// first sequence number is below 2^15, so the rollover counter stays 0 for a long while.
fn new_leg(codec: Codec) -> Leg {
    let random = RandomState::new().hash_one(0u8);
    Leg::new(codec, (random as u16) & 0x7fff, (random >> 32) as u32)
}

/// The leg's view of a str0m codec.
fn leg_codec(codec: str0m::format::Codec, kind: MediaKind) -> Codec {
    use str0m::format::Codec as Str0m;
    match codec {
        Str0m::Opus => Codec::Opus,
        Str0m::Vp8 => Codec::Vp8,
        Str0m::Vp9 => Codec::Vp9,
        Str0m::H264 => Codec::H264,
        _ => Codec::Other { video: kind == MediaKind::Video },
    }
}

/// The write of a forwarded packet: the publisher's payload (shared), the leg's header fields,
/// the audio level and video orientation as received, and the VP8 patch.
/// Audio is not resent (WebRTC receivers do not NACK Opus: it conceals loss instead), so it
/// is not `nackable` and str0m keeps no copy of it.
fn rtp_write(pt: Pt, forwarded: &Forwarded, packet: &RtpPacket, video: bool) -> RtpWrite {
    let received = &packet.header.ext_vals;
    let ext_vals = ExtensionValues {
        audio_level: received.audio_level,
        voice_activity: received.voice_activity,
        video_orientation: received.video_orientation,
        ..Default::default()
    };
    let seq = SeqNo::from(forwarded.extended_seq);
    let write = RtpWrite::new(pt, seq, forwarded.timestamp, packet.timestamp, packet.payload.clone())
        .marker(forwarded.marker)
        .ext_vals(ext_vals)
        .nackable(video);
    match forwarded.vp8.and_then(|rewrite| vp8_patch(&packet.payload, rewrite)) {
        Some(patch) => write.vp8_patch(patch),
        None => write,
    }
}

/// The leg's VP8 rewrite as str0m's serialization-time patch.
fn vp8_patch(payload: &[u8], rewrite: Vp8Rewrite) -> Option<Vp8Patch> {
    let mut patch = Vp8Descriptor::parse(payload).ok()?.patch();
    if let Some(picture_id) = rewrite.picture_id {
        patch = patch.picture_id(picture_id);
    }
    if let Some(tl0) = rewrite.tl0picidx {
        patch = patch.tl0_pic_idx(tl0);
    }
    patch.build().ok()
}
