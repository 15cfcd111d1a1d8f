//! Behaviour of one subscriber leg over synthetic publisher streams: what the subscriber
//! receives is continuous (sequence numbers, timestamps, VP8 picture IDs) across simulcast
//! switches, temporal filtering, pauses and a publisher's restart, starts on keyframes, and
//! NACKs are answered with the same bytes from the publisher's cache.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use str0m::media::Rid;

use super::*;
use crate::rtp::cache::PacketCache;
use crate::rtp::vp8::tests::vp8_packet;

/// A synthetic VP8 publisher stream (one simulcast layer or a plain track).
struct Layer {
    rid: Option<Rid>,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    picture_id: u16,
    tl0: u8,
}

/// A publisher packet and whether it starts a keyframe.
type Packet = (RtpHeader, Vec<u8>, Option<Rid>, bool);

impl Layer {
    fn new(rid: Option<&str>, ssrc: u32, seq: u16, timestamp: u32, picture_id: u16) -> Layer {
        Layer { rid: rid.map(Rid::from), ssrc, seq, timestamp, picture_id, tl0: 0 }
    }

    /// The packets of the next picture.
    fn picture(&mut self, keyframe: bool, tid: u8, sync: bool, packets: usize) -> Vec<Packet> {
        let tid = if keyframe { 0 } else { tid };
        self.timestamp = self.timestamp.wrapping_add(3000);
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        if tid == 0 {
            self.tl0 = self.tl0.wrapping_add(1);
        }
        (0..packets)
            .map(|i| {
                let header = RtpHeader {
                    ssrc: self.ssrc,
                    seq: self.seq,
                    timestamp: self.timestamp,
                    marker: i + 1 == packets,
                    payload_type: 96,
                };
                self.seq = self.seq.wrapping_add(1);
                let payload = vp8_packet(self.picture_id, self.tl0, tid, sync, i == 0, keyframe);
                (header, payload, self.rid, keyframe && i == 0)
            })
            .collect()
    }
}

/// What the subscriber got: the forwarded header fields, the patched payload, and whether the
/// source packet started a keyframe.
#[derive(Default)]
struct Subscriber {
    got: Vec<(Forwarded, Vec<u8>, bool)>,
    wishes: Vec<Option<Rid>>,
    drops: Vec<Dropped>,
}

impl Subscriber {
    fn offer(&mut self, leg: &mut Leg, packets: Vec<Packet>, choice: &LayerChoice, now: Instant) {
        for (header, payload, rid, keyframe) in packets {
            let decision = leg.on_packet(&Incoming { header, rid, payload: &payload }, choice, now);
            self.wishes.extend(decision.keyframe_wanted);
            match decision.verdict {
                Ok(f) => {
                    let mut out = payload.clone();
                    f.apply(&mut out);
                    self.got.push((f, out, keyframe));
                }
                Err(why) => self.drops.push(why),
            }
        }
    }

    /// Sequence numbers go up by one, timestamps never go back, picture IDs and TL0PICIDX go
    /// up by at most one, the first packet and every switch start a keyframe.
    fn assert_continuous(&self) {
        assert!(!self.got.is_empty());
        assert!(self.got[0].2, "the first packet starts a keyframe");
        for pair in self.got.windows(2) {
            let ((a, pa, _), (b, pb, b_key)) = (&pair[0], &pair[1]);
            assert_eq!(b.seq, a.seq.wrapping_add(1), "gapless sequence numbers");
            assert!(b.timestamp.wrapping_sub(a.timestamp) < u32::MAX / 2, "timestamps never go back");
            if b.switched {
                assert!(*b_key, "a switch starts on a keyframe");
                assert_ne!(b.timestamp, a.timestamp, "a new source is a new picture");
            }
            let (da, db) = (vp8::parse(pa).unwrap(), vp8::parse(pb).unwrap());
            let step = db.picture_id.unwrap().value.wrapping_sub(da.picture_id.unwrap().value) & 0x7fff;
            assert!(step <= 1, "picture IDs step by one at most, got {step}");
            if db.starts_picture() {
                assert_eq!(step, 1, "each picture gets the next ID");
            }
            assert!(db.tl0picidx.unwrap().wrapping_sub(da.tl0picidx.unwrap()) <= 1);
        }
    }
}

fn plain() -> LayerChoice<'static> {
    LayerChoice { layers: &[], preferred: None, budget_bps: u64::MAX }
}

#[test]
fn simulcast_switches_are_seamless_and_follow_the_estimate() {
    let t0 = Instant::now();
    let layers = [Rid::from("l"), Rid::from("h")];
    let (mut low, mut high) =
        (Layer::new(Some("l"), 1, 100, 1000, 10), Layer::new(Some("h"), 2, 65_000, 900_000, 30_000));
    let mut leg = Leg::new(Codec::Vp8, 7, 70);
    let mut sub = Subscriber::default();
    let mut switched_at = Vec::new();
    for tick in 0..30u32 {
        let now = t0 + Duration::from_millis(33 * u64::from(tick));
        let budget_bps = if (12..18).contains(&tick) { 200_000 } else { 5_000_000 };
        let choice = LayerChoice { layers: &layers, preferred: None, budget_bps };
        let before = sub.got.len();
        sub.offer(&mut leg, low.picture(matches!(tick, 0 | 15), 0, false, 2), &choice, now);
        sub.offer(&mut leg, high.picture(matches!(tick, 5 | 20), 0, false, 3), &choice, now);
        if sub.got[before..].iter().any(|(f, _, _)| f.switched) {
            switched_at.push((tick, leg.current_layer().unwrap()));
        }
    }
    sub.assert_continuous();
    let at = |t, r: &str| (t, Rid::from(r));
    assert_eq!(switched_at, [at(0, "l"), at(5, "h"), at(15, "l"), at(20, "h")]);
    assert!(sub.wishes.contains(&Some(Rid::from("h"))), "it asked for the wanted layer's keyframe");
    assert!(sub.wishes.contains(&Some(Rid::from("l"))), "and for the low one when the estimate fell");
}

#[test]
fn a_temporal_cap_drops_whole_pictures_without_gaps() {
    let t0 = Instant::now();
    let mut layer = Layer::new(None, 5, 65_530, 0, 0x7ffe);
    let mut leg = Leg::new(Codec::Vp8, 0, 0);
    leg.set_max_temporal(Some(0));
    let mut sub = Subscriber::default();
    for i in 0..40usize {
        let tid = [0, 2, 1, 2][i % 4];
        sub.offer(&mut leg, layer.picture(i == 0, tid, false, 2), &plain(), t0);
    }
    sub.assert_continuous();
    assert_eq!(sub.got.len(), 20, "the base layer: a quarter of the pictures, two packets each");
    assert!(sub.got.iter().all(|(_, p, _)| vp8::parse(p).unwrap().temporal == Some(0)));
    assert_eq!(sub.drops.iter().filter(|d| **d == Dropped::TemporalLayer).count(), 60);
}

#[test]
fn a_publisher_restart_waits_for_its_keyframe_and_continues() {
    let t0 = Instant::now();
    let mut before = Layer::new(None, 1, 10, 0, 5);
    let mut after = Layer::new(None, 99, 40_000, 123_456, 900);
    let mut leg = Leg::new(Codec::Vp8, 300, 0);
    let mut sub = Subscriber::default();
    sub.offer(&mut leg, before.picture(true, 0, false, 3), &plain(), t0);
    sub.offer(&mut leg, before.picture(false, 0, false, 3), &plain(), t0);
    let later = t0 + Duration::from_secs(2);
    sub.offer(&mut leg, after.picture(false, 0, false, 2), &plain(), later);
    assert_eq!(sub.drops, [Dropped::AwaitingKeyframe; 2]);
    assert_eq!(sub.wishes, [None, None], "a keyframe of the (only) stream");
    assert_eq!(leg.awaiting_keyframe_since(), Some(later));
    sub.offer(&mut leg, after.picture(true, 0, false, 2), &plain(), later + Duration::from_millis(40));
    sub.assert_continuous();
    let restart = &sub.got[6].0;
    assert!(restart.switched);
    assert_eq!(restart.seq, 306);
    assert!(restart.timestamp.wrapping_sub(sub.got[5].0.timestamp) >= 2 * 90_000, "the time that passed");
}

#[test]
fn a_pause_leaves_no_gap_and_video_resumes_on_a_keyframe() {
    let t0 = Instant::now();
    let mut layer = Layer::new(None, 1, 0, 0, 0);
    let mut leg = Leg::new(Codec::Vp8, 0, 0);
    let mut sub = Subscriber::default();
    sub.offer(&mut leg, layer.picture(true, 0, false, 2), &plain(), t0);
    leg.pause();
    assert!(leg.is_paused());
    for _ in 0..10 {
        sub.offer(&mut leg, layer.picture(false, 0, false, 2), &plain(), t0);
    }
    assert_eq!(sub.drops, [Dropped::Paused; 20]);
    assert!(sub.wishes.is_empty(), "a paused leg wants nothing");
    leg.resume();
    sub.offer(&mut leg, layer.picture(false, 0, false, 2), &plain(), t0);
    assert_eq!(sub.drops.last(), Some(&Dropped::AwaitingKeyframe));
    sub.offer(&mut leg, layer.picture(true, 0, false, 2), &plain(), t0);
    sub.assert_continuous();
    assert_eq!(sub.got.len(), 4);
}

#[test]
fn audio_passes_straight_through_and_pauses() {
    let t0 = Instant::now();
    let mut leg = Leg::new(Codec::Opus, 1, 2);
    let packet =
        |seq: u16| RtpHeader { ssrc: 3, seq, timestamp: u32::from(seq) * 960, marker: false, payload_type: 111 };
    let mut out = Vec::new();
    for seq in 0..10u16 {
        if seq == 4 {
            leg.pause();
        }
        if seq == 7 {
            leg.resume();
        }
        let d = leg.on_packet(&Incoming { header: packet(seq), rid: None, payload: &[0xfc, 1] }, &plain(), t0);
        out.extend(d.verdict.ok().map(|f| (f.seq, f.timestamp)));
    }
    assert_eq!(out, [(1, 2), (2, 962), (3, 1922), (4, 2882), (5, 6722), (6, 7682), (7, 8642)]);
}

#[test]
fn a_packet_lost_upstream_fills_its_slot_when_it_arrives_late() {
    let t0 = Instant::now();
    let mut layer = Layer::new(None, 1, 0, 0, 0);
    let mut leg = Leg::new(Codec::Vp8, 0, 0);
    let mut sub = Subscriber::default();
    let mut packets = layer.picture(true, 0, false, 3);
    let lost = packets.remove(1);
    sub.offer(&mut leg, packets, &plain(), t0);
    assert_eq!(sub.got.iter().map(|g| g.0.seq).collect::<Vec<_>>(), [0, 2]);
    sub.offer(&mut leg, vec![lost], &plain(), t0);
    let late = &sub.got[2].0;
    assert_eq!(late.seq, 1);
    assert_eq!(vp8::parse(&sub.got[2].1).unwrap().picture_id, vp8::parse(&sub.got[0].1).unwrap().picture_id);
}

#[test]
fn nacks_are_answered_with_the_same_bytes_from_the_publishers_cache() {
    let t0 = Instant::now();
    let layers = [Rid::from("l"), Rid::from("h")];
    let choice = LayerChoice { layers: &layers, preferred: None, budget_bps: 5_000_000 };
    let (mut low, mut high) = (Layer::new(Some("l"), 1, 0, 0, 0), Layer::new(Some("h"), 2, 500, 0, 700));
    let mut caches = [PacketCache::new(256, Duration::from_secs(1)), PacketCache::new(256, Duration::from_secs(1))];
    let mut leg = Leg::new(Codec::Vp8, 60_000, 0);
    leg.keep_resend_history();
    let mut sub = Subscriber::default();
    for tick in 0..10 {
        let mut packets = low.picture(tick == 0, 0, false, 2);
        packets.extend(high.picture(tick == 4, 0, false, 2));
        for (h, p, _, _) in &packets {
            caches[(h.ssrc - 1) as usize].insert(*h, p, t0);
        }
        sub.offer(&mut leg, packets, &choice, t0);
    }
    sub.assert_continuous();
    for (forwarded, bytes, _) in &sub.got {
        let resend = leg.resend(forwarded.seq).expect("a recent packet");
        assert_eq!(resend.forwarded, *forwarded);
        let cached = caches[(resend.source_ssrc - 1) as usize].get(resend.source_ssrc, resend.source_seq, t0).unwrap();
        let mut again = cached.payload.clone();
        resend.forwarded.apply(&mut again);
        assert_eq!(&again, bytes);
    }
    assert!(leg.resend(sub.got.last().unwrap().0.seq.wrapping_add(1)).is_none(), "never sent");
    assert!(Leg::new(Codec::Vp8, 0, 0).resend(0).is_none(), "no history unless asked for");
}

/// One step of a random publisher/subscriber history.
#[derive(Debug, Clone)]
enum Event {
    /// Both layers send a picture; which of them is a keyframe, its temporal layer.
    Pictures {
        low_key: bool,
        high_key: bool,
        tid: u8,
        sync: bool,
    },
    Budget(u64),
    MaxTemporal(Option<u8>),
    Pause,
    Resume,
    /// The publisher restarts with new SSRCs and numbering.
    Restart,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        20 => (prop::bool::weighted(0.15), prop::bool::weighted(0.15), 0u8..3, any::<bool>())
            .prop_map(|(low_key, high_key, tid, sync)| Event::Pictures { low_key, high_key, tid, sync }),
        2 => prop_oneof![Just(100_000u64), Just(5_000_000)].prop_map(Event::Budget),
        1 => prop::option::of(0u8..3).prop_map(Event::MaxTemporal),
        1 => Just(Event::Pause),
        1 => Just(Event::Resume),
        1 => Just(Event::Restart),
    ]
}

proptest! {
    /// Whatever the publisher and the subscriber do, the subscriber's stream stays continuous
    /// and only ever starts or switches on keyframes.
    #[test]
    fn any_history_gives_a_continuous_stream(first_seq: u16, events in prop::collection::vec(event(), 1..120)) {
        let t0 = Instant::now();
        let layers = [Rid::from("l"), Rid::from("h")];
        let (mut low, mut high) = (Layer::new(Some("l"), 1, 65_500, 0, 120), Layer::new(Some("h"), 2, 10, 5, 32_700));
        let mut leg = Leg::new(Codec::Vp8, first_seq, 0);
        let mut sub = Subscriber::default();
        let mut budget_bps = 5_000_000;
        for (i, e) in events.into_iter().enumerate() {
            let now = t0 + Duration::from_millis(33 * i as u64);
            match e {
                Event::Pictures { low_key, high_key, tid, sync } => {
                    let choice = LayerChoice { layers: &layers, preferred: None, budget_bps };
                    sub.offer(&mut leg, low.picture(low_key, tid, sync, 2), &choice, now);
                    sub.offer(&mut leg, high.picture(high_key, tid, sync, 3), &choice, now);
                }
                Event::Budget(b) => budget_bps = b,
                Event::MaxTemporal(m) => leg.set_max_temporal(m),
                Event::Pause => leg.pause(),
                Event::Resume => leg.resume(),
                Event::Restart => {
                    low.ssrc += 10;
                    high.ssrc += 10;
                    low.seq = low.seq.wrapping_mul(7);
                    high.seq = high.seq.wrapping_add(20_000);
                }
            }
        }
        if !sub.got.is_empty() {
            sub.assert_continuous();
        }
    }
}

proptest! {
    /// With upstream loss, late arrivals and temporal drops on one layer, no outgoing number is
    /// used twice, and in outgoing order timestamps and picture IDs never go back and a
    /// picture's packets keep one timestamp.
    #[test]
    fn late_packets_land_where_they_belong(
        pictures in prop::collection::vec((0u8..3, prop::option::of(0usize..3), prop::bool::weighted(0.1)), 1..150),
        max_temporal in prop::option::of(0u8..3),
    ) {
        let t0 = Instant::now();
        let mut layer = Layer::new(None, 1, 65_400, 0, 0x7f00);
        let mut leg = Leg::new(Codec::Vp8, 65_500, 0);
        leg.set_max_temporal(max_temporal);
        let mut sub = Subscriber::default();
        let mut held: Vec<Packet> = Vec::new();
        for (i, (tid, lose, keyframe)) in pictures.into_iter().enumerate() {
            let mut packets = layer.picture(i == 0 || keyframe, tid, false, 3);
            let late = lose.map(|at| packets.remove(at));
            packets.append(&mut held);
            held.extend(late);
            sub.offer(&mut leg, packets, &plain(), t0 + Duration::from_millis(33 * i as u64));
        }
        sub.offer(&mut leg, held, &plain(), t0 + Duration::from_secs(10));
        let mut out: Vec<(u64, u32, u16)> = Vec::new();
        let first = sub.got.first().map(|g| g.0.seq);
        for (f, bytes, _) in &sub.got {
            let extended = u64::from(f.seq.wrapping_sub(first.unwrap()));
            out.push((extended, f.timestamp, vp8::parse(bytes).unwrap().picture_id.unwrap().value));
        }
        out.sort();
        for pair in out.windows(2) {
            let ((sa, ta, pa), (sb, tb, pb)) = (pair[0], pair[1]);
            prop_assert!(sb > sa, "outgoing number {} used twice", sa);
            prop_assert!(tb.wrapping_sub(ta) < u32::MAX / 2, "timestamps go back at {}", sb);
            let step = pb.wrapping_sub(pa) & 0x7fff;
            prop_assert!(step < 0x4000, "picture IDs go back at {}", sb);
            prop_assert_eq!(step == 0, ta == tb, "one picture, one timestamp at {}", sb);
        }
    }
}

#[test]
fn a_leg_told_to_wait_for_a_keyframe_keeps_the_publishers_tl0picidx() {
    // The SFU tells a new leg to wait for a keyframe when its subscriber connects. Its
    // keyframe and the pictures after it must share one TL0PICIDX mapping: a base-layer index
    // one ahead of the keyframe's leaves a receiver waiting for a picture that never comes.
    let t0 = Instant::now();
    let mut layer = Layer::new(None, 3, 500, 0, 100);
    let mut leg = Leg::new(Codec::Vp8, 40, 0);
    leg.require_keyframe();
    let mut sub = Subscriber::default();
    let mut sent = Vec::new();
    for i in 0..12usize {
        let packets = layer.picture(i == 0, [0, 2, 1, 2][i % 4], false, 1);
        sent.extend(packets.iter().map(|(_, p, _, _)| vp8::parse(p).unwrap().tl0picidx.unwrap()));
        sub.offer(&mut leg, packets, &plain(), t0 + Duration::from_millis(33 * i as u64));
    }
    sub.assert_continuous();
    let got: Vec<u8> = sub.got.iter().map(|(_, p, _)| vp8::parse(p).unwrap().tl0picidx.unwrap()).collect();
    assert_eq!(got, sent, "TL0PICIDX as published (the first mapping of a leg keeps it)");
}

/// A stream of one-packet pictures in the L1T3 pattern, with a keyframe first.
fn l1t3(layer: &mut Layer, count: usize) -> Vec<Packet> {
    (0..count).flat_map(|i| layer.picture(i == 0, [0, 2, 1, 2][i % 4], false, 1)).collect()
}

#[test]
fn upstream_loss_left_unrepaired_asks_for_a_keyframe() {
    // A network blackout (an ICE restart): the publisher's packets of a second never reach
    // the SFU, nor are they resent. The subscriber cannot decode past that hole; the leg asks
    // the publisher for a keyframe once the loss has gone unrepaired for LOSS_REPAIR_WINDOW.
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut layer = Layer::new(None, 3, 65_500, 0, 100);
    let mut leg = Leg::new(Codec::Vp8, 0, 0);
    let mut sub = Subscriber::default();
    let packets = l1t3(&mut layer, 60);
    for (i, p) in packets[..10].iter().enumerate() {
        sub.offer(&mut leg, vec![p.clone()], &plain(), at(33 * i as u64));
    }
    // 10..40 lost; 40.. arrive, and 35..40 come late, resent: they fill their gaps.
    let resumed = 2000;
    for (i, p) in packets[40..].iter().enumerate() {
        let now = at(resumed + 33 * i as u64);
        sub.offer(&mut leg, vec![p.clone()], &plain(), now);
        if i == 1 {
            sub.offer(&mut leg, packets[35..40].to_vec(), &plain(), now);
        }
        let waited = Duration::from_millis(33 * i as u64);
        if waited < LOSS_REPAIR_WINDOW {
            assert!(sub.wishes.is_empty(), "the publisher may still resend ({waited:?})");
        }
    }
    assert_eq!(sub.wishes, [None], "one keyframe request, for the track");
    assert_eq!(sub.got.len(), 10 + 5 + 20, "every packet that arrived went out");
    let seqs: Vec<u16> = sub.got.iter().map(|(f, _, _)| f.seq).collect();
    assert_eq!(&seqs[..10], &(0..10).collect::<Vec<u16>>()[..], "in order before the hole");
    assert_eq!(seqs[10], 10 + 30, "the hole shows (the subscriber NACKs it)");
    // Too late now: what was given up stays given up.
    let straggler = packets[20].clone();
    sub.offer(&mut leg, vec![straggler], &plain(), at(resumed + 1000));
    assert_eq!(sub.drops.last(), Some(&Dropped::Duplicate));
}

#[test]
fn upstream_loss_repaired_in_time_asks_for_nothing() {
    let t0 = Instant::now();
    let mut layer = Layer::new(None, 3, 0, 0, 100);
    let mut leg = Leg::new(Codec::Vp8, 0, 0);
    let mut sub = Subscriber::default();
    let packets = l1t3(&mut layer, 40);
    for (i, p) in packets.iter().enumerate() {
        let now = t0 + Duration::from_millis(33 * i as u64);
        if i % 10 == 5 {
            continue; // lost, and resent two pictures later
        }
        sub.offer(&mut leg, vec![p.clone()], &plain(), now);
        if i % 10 == 7 {
            sub.offer(&mut leg, vec![packets[i - 2].clone()], &plain(), now);
        }
    }
    assert!(sub.wishes.is_empty());
    assert_eq!(sub.got.len(), 40);
}
