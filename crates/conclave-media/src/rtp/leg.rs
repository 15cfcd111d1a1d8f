//! One subscriber leg: a publisher's track as one subscriber receives it, in RTP mode.
//!
//! Composes the pure pieces of this module (`selector`, `gate`, `temporal`, `munger`, the
//! VP8 `PictureMunger`) into one decision per publisher packet: forward it (with the
//! rewritten sequence number, timestamp and VP8 fields) or drop it (and maybe ask the
//! publisher for a keyframe). It also remembers what it sent, so a subscriber's NACK can be
//! answered from the publisher's packet `cache` with the same rewriting. It must not touch
//! str0m, sockets or clocks, nor throttle keyframe requests: the SFU applies its decisions.
//!
//! Order of the checks for a packet: simulcast layer (`selector`), duplicate or late
//! (`munger`), pause, keyframe gate, temporal layer; a packet dropped after the layer check
//! hands its sequence number to the next (no gaps at the subscriber). Video loss upstream
//! that the publisher has not repaired within `LOSS_REPAIR_WINDOW` is given up, and the leg
//! asks for a keyframe.

use std::time::{Duration, Instant};

use str0m::media::Rid;

use super::RtpHeader;
use super::codec::{self, Codec};
use super::gate::KeyframeGate;
use super::munger::{Munger, Order};
use super::selector::{LayerChoice, LayerDecision, SimulcastSelector};
use super::seq::seq_distance;
use super::temporal::TemporalFilter;
use super::vp8::{self, PictureMunger, Vp8Rewrite};

/// How many sent packets a leg remembers for retransmission (about 2.5 s of 200 packets/s).
const SENT_HISTORY: usize = 512;

/// How long video waits for a packet lost upstream (the publisher resends it when NACKed)
/// before the leg gives up on it and asks for a keyframe instead: the subscriber cannot
/// decode past the hole, and would only ask for one itself seconds later.
pub(crate) const LOSS_REPAIR_WINDOW: Duration = Duration::from_millis(300);

/// A publisher packet offered to a leg.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming<'a> {
    pub header: RtpHeader,
    /// Its simulcast layer, if the track is simulcast.
    pub rid: Option<Rid>,
    pub payload: &'a [u8],
}

/// Why a leg did not forward a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// Another simulcast layer than the one forwarded.
    OtherLayer,
    /// Already forwarded (or its slot was given up).
    Duplicate,
    /// The leg is paused (audio fallback, a muted subscription).
    Paused,
    /// Video waits for a keyframe (start, switch, publisher restart, resume).
    AwaitingKeyframe,
    /// A temporal layer above the subscriber's cap.
    TemporalLayer,
    /// A late packet of a picture the leg dropped whole.
    PartOfDroppedPicture,
}

/// The outgoing header fields of a forwarded (or resent) packet; the payload goes out as
/// received, patched by [`Forwarded::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Forwarded {
    pub seq: u16,
    /// `seq` extended (str0m's `SeqNo`, rollover counter 0 at the leg's start).
    pub extended_seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub payload_type: u8,
    /// VP8 descriptor fields to rewrite.
    pub vp8: Option<Vp8Rewrite>,
    /// The leg started a new source mapping here (a switch, a restart).
    pub switched: bool,
}

impl Forwarded {
    /// Rewrites what this leg changes in the payload (VP8 picture ID and TL0PICIDX).
    pub fn apply(&self, payload: &mut [u8]) {
        if let Some(rewrite) = self.vp8
            && let Some(d) = vp8::parse(payload)
        {
            rewrite.apply(payload, &d);
        }
    }
}

/// What a leg decided about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub verdict: Result<Forwarded, Dropped>,
    /// The leg waits for a keyframe of this layer (`Some(None)`: of the track).
    pub keyframe_wanted: Option<Option<Rid>>,
}

/// What a leg sent, by outgoing sequence number.
#[derive(Debug, Clone, Copy)]
struct Sent {
    extended_seq: u64,
    source_ssrc: u32,
    source_seq: u16,
    forwarded: Forwarded,
}

/// A retransmission: read `source_seq` of `source_ssrc` from the publisher's cache and
/// send it as `forwarded` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resend {
    pub source_ssrc: u32,
    pub source_seq: u16,
    pub forwarded: Forwarded,
}

/// One subscriber leg of one publisher track.
#[derive(Debug)]
pub(crate) struct Leg {
    codec: Codec,
    munger: Munger,
    pictures: PictureMunger,
    gate: KeyframeGate,
    temporal: TemporalFilter,
    selector: SimulcastSelector,
    paused: bool,
    /// What it sent, by outgoing sequence number (empty unless [`Leg::keep_resend_history`]).
    sent: Vec<Option<Sent>>,
    highest_sent: Option<u64>,
}

impl Leg {
    /// A leg for a track of `codec` whose first packet goes out as `first_seq` with
    /// `first_timestamp` (random values, in production).
    pub fn new(codec: Codec, first_seq: u16, first_timestamp: u32) -> Leg {
        Leg {
            codec,
            munger: Munger::new(codec.clock_rate(), first_seq, first_timestamp),
            pictures: PictureMunger::default(),
            gate: KeyframeGate::default(),
            temporal: TemporalFilter::default(),
            selector: SimulcastSelector::default(),
            paused: false,
            sent: Vec::new(),
            highest_sent: None,
        }
    }

    /// Remembers what it sends from now on, so [`Leg::resend`] can answer NACKs from the
    /// publisher's packet cache (about 28 KiB). Not needed where str0m's send stream answers
    /// them itself.
    pub fn keep_resend_history(&mut self) {
        if self.sent.is_empty() {
            self.sent = vec![None; SENT_HISTORY];
        }
    }

    /// The simulcast layer forwarded now.
    pub fn current_layer(&self) -> Option<Rid> {
        self.selector.current()
    }

    /// Since when video has waited for a keyframe, if it does.
    pub fn awaiting_keyframe_since(&self) -> Option<Instant> {
        self.gate.waiting_since()
    }

    /// The highest temporal layer to forward (`None`: all).
    pub fn set_max_temporal(&mut self, max: Option<u8>) {
        self.temporal.set_max(max);
    }

    /// Stops forwarding (nothing is sent, and nothing is missing once it resumes).
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Forwards again; video from its next keyframe.
    pub fn resume(&mut self) {
        if self.paused && self.codec.is_video() {
            self.gate.close();
            self.pictures.restart();
        }
        self.paused = false;
    }

    /// Video waits for a keyframe again from here on (the subscriber connected, or its
    /// decoder must start over); nothing is missing at the subscriber meanwhile.
    pub fn require_keyframe(&mut self) {
        if self.codec.is_video() {
            self.gate.close();
            self.pictures.restart();
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Decides on one publisher packet. `choice` matters for simulcast tracks only.
    pub fn on_packet(&mut self, packet: &Incoming, choice: &LayerChoice, now: Instant) -> Decision {
        let info = codec::inspect(self.codec, packet.payload);
        let video = self.codec.is_video();
        let mut keyframe_wanted = None;
        let drop = |why, wanted| Decision { verdict: Err(why), keyframe_wanted: wanted };
        if let (true, Some(rid)) = (video, packet.rid) {
            let (decision, wanted) = self.selector.on_packet(rid, info.keyframe, choice);
            keyframe_wanted = wanted.filter(|_| !self.paused).map(Some);
            match decision {
                LayerDecision::Drop => return drop(Dropped::OtherLayer, keyframe_wanted),
                // The other layer's packets since the last switch were never counted.
                LayerDecision::Switch => self.munger.restart(),
                LayerDecision::Forward => {}
            }
        }
        let header = &packet.header;
        if video && !self.paused && self.loss_unrepaired(now) {
            // Frame mode's rule too: a picture that is not contiguous asks for a keyframe.
            self.munger.give_up_missing();
            keyframe_wanted = keyframe_wanted.or(Some(packet.rid));
        }
        let order = self.munger.classify(header);
        match order {
            Order::Duplicate => return drop(Dropped::Duplicate, keyframe_wanted),
            Order::Late => {
                let picture_dropped = info.vp8.is_some_and(|d| self.pictures.was_dropped(&d));
                if self.paused || picture_dropped {
                    self.munger.skip(header, now);
                    let why = if picture_dropped { Dropped::PartOfDroppedPicture } else { Dropped::Paused };
                    return drop(why, keyframe_wanted);
                }
            }
            Order::New | Order::NewSource => {
                if self.paused {
                    self.munger.skip(header, now);
                    return drop(Dropped::Paused, None);
                }
                if video && order == Order::NewSource {
                    self.gate.close();
                }
                if video && !self.gate.admit(info.keyframe, now) {
                    self.munger.skip(header, now);
                    return drop(Dropped::AwaitingKeyframe, keyframe_wanted.or(Some(packet.rid)));
                }
                if !self.temporal.admit(header.timestamp, info.temporal, info.layer_sync, info.keyframe) {
                    self.munger.skip(header, now);
                    if let Some(d) = info.vp8 {
                        self.pictures.drop_picture(&d);
                    }
                    return drop(Dropped::TemporalLayer, keyframe_wanted);
                }
            }
        }
        let Some(munged) = self.munger.forward(header, now) else {
            return drop(Dropped::Duplicate, keyframe_wanted);
        };
        let forwarded = Forwarded {
            seq: munged.seq,
            extended_seq: munged.extended_seq,
            timestamp: munged.timestamp,
            marker: header.marker,
            payload_type: header.payload_type,
            vp8: info.vp8.map(|d| self.pictures.rewrite(&d, munged.anchored, order == Order::Late)),
            switched: munged.anchored,
        };
        self.remember(munged.extended_seq, header, forwarded);
        Decision { verdict: Ok(forwarded), keyframe_wanted }
    }

    /// Whether a packet lost upstream has been missing for longer than the publisher takes
    /// to resend it.
    fn loss_unrepaired(&self, now: Instant) -> bool {
        self.munger.missing_since().is_some_and(|since| now.saturating_duration_since(since) >= LOSS_REPAIR_WINDOW)
    }

    /// How to answer a subscriber's NACK of outgoing sequence number `seq`, if the leg still
    /// knows what it sent there.
    pub fn resend(&self, seq: u16) -> Option<Resend> {
        let highest = self.highest_sent.filter(|_| !self.sent.is_empty())?;
        let extended = highest.checked_add_signed(i64::from(seq_distance(seq, highest as u16)))?;
        let sent = self.sent[extended as usize % SENT_HISTORY].filter(|s| s.extended_seq == extended)?;
        Some(Resend { source_ssrc: sent.source_ssrc, source_seq: sent.source_seq, forwarded: sent.forwarded })
    }

    fn remember(&mut self, extended_seq: u64, header: &RtpHeader, forwarded: Forwarded) {
        if self.sent.is_empty() {
            return;
        }
        let sent = Sent { extended_seq, source_ssrc: header.ssrc, source_seq: header.seq, forwarded };
        self.sent[extended_seq as usize % SENT_HISTORY] = Some(sent);
        self.highest_sent = Some(self.highest_sent.map_or(extended_seq, |h| h.max(extended_seq)));
    }
}

#[cfg(test)]
#[path = "leg_tests.rs"]
mod tests;
