//! Sequence number and timestamp rewriting for one subscriber leg, so the subscriber sees
//! one continuous stream while the leg switches between simulcast layers (each its own
//! SSRC, sequence space and timestamp base), drops packets, pauses, and outlives a
//! publisher's restart.
//!
//! Owns the mapping from the current source's (SSRC, sequence number, timestamp) to the
//! leg's outgoing sequence number and timestamp, and the reservations for packets lost
//! upstream that may still arrive late. It must not decide what to forward (that is the
//! leg's policy: `gate`, `temporal`, `selector`), touch payloads (`vp8`), nor read a clock:
//! instants come from the caller.
//!
//! Rules: every forwarded in-order packet gets the next outgoing sequence number; a packet
//! the leg skips gives its number to the next one, so drops leave no gaps; a gap lost
//! upstream keeps its numbers reserved for a late arrival (a retransmission), so the
//! subscriber can NACK it, until the leg gives up on it (`give_up_missing`). A new source
//! (another SSRC, or a jump too large to be loss) re-anchors: its first packet follows the
//! last one sent, and its timestamps continue from the last sent by the wall-clock time
//! that passed.

use std::collections::BTreeMap;
use std::time::Instant;

use super::RtpHeader;
use super::seq::Unwrapper;

/// Outgoing numbers are kept one cycle up internally, so the one before a `first_seq` of 0
/// exists.
const OUT_BASE: u64 = 1 << 16;

/// A jump in sequence numbers beyond this (either way) is a restart of the source, not
/// loss or reordering: it re-anchors.
pub(crate) const MAX_SEQUENCE_JUMP: u64 = 512;

/// How a publisher packet relates to what the leg has seen of its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// The newest of the current source (maybe after a gap): forward it or skip it.
    New,
    /// It fills a gap lost upstream, and its outgoing number is still reserved.
    Late,
    /// Seen already, or its slot was given up: it must be dropped.
    Duplicate,
    /// Another SSRC, or a jump too large to be loss: forwarding it re-anchors the leg.
    NewSource,
}

/// The rewritten header fields of a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Munged {
    pub seq: u16,
    /// The outgoing sequence number, extended (never wraps; the first packet's is `first_seq`,
    /// so it is str0m's `SeqNo` with a rollover counter of 0 at the start).
    pub extended_seq: u64,
    pub timestamp: u32,
    /// This packet started a new source mapping (codec munging re-anchors too).
    pub anchored: bool,
}

/// The mapping of the source being forwarded now.
#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    seqs: Unwrapper,
    /// outgoing extended seq = incoming extended seq + `seq_offset` (wrapping).
    seq_offset: u64,
    /// outgoing timestamp = incoming timestamp + `ts_offset` (wrapping).
    ts_offset: u32,
    /// Incoming extended seqs lost upstream whose outgoing numbers are reserved, and since
    /// when (oldest first: gaps are found in sequence order).
    missing: BTreeMap<u64, (u64, Instant)>,
}

/// The most recent in-order packet sent.
#[derive(Debug, Clone, Copy)]
struct LastSent {
    timestamp: u32,
    at: Instant,
}

/// One leg's sequence number and timestamp rewriter.
#[derive(Debug, Clone)]
pub(crate) struct Munger {
    clock_rate: u32,
    first_timestamp: u32,
    /// The highest outgoing extended sequence number used (or the one before the first).
    highest_out: u64,
    source: Option<Source>,
    last: Option<LastSent>,
}

impl Munger {
    /// A munger whose first packet goes out as `first_seq` with `first_timestamp`, on a
    /// media clock of `clock_rate` Hz.
    pub fn new(clock_rate: u32, first_seq: u16, first_timestamp: u32) -> Munger {
        Munger {
            clock_rate: clock_rate.max(1),
            first_timestamp,
            highest_out: OUT_BASE + u64::from(first_seq) - 1,
            source: None,
            last: None,
        }
    }

    /// The SSRC being forwarded now, if any.
    pub fn source_ssrc(&self) -> Option<u32> {
        self.source.as_ref().map(|s| s.ssrc)
    }

    /// The last outgoing sequence number used, if a packet went out.
    pub fn last_seq(&self) -> Option<u16> {
        self.last.map(|_| self.highest_out as u16)
    }

    /// Forgets the current source: the next forwarded packet re-anchors, even from the same
    /// SSRC (the leg switched layers, and packets of the old mapping were never counted).
    pub fn restart(&mut self) {
        self.source = None;
    }

    /// How `header` relates to the current source.
    pub fn classify(&self, header: &RtpHeader) -> Order {
        let Some(source) = self.source.as_ref().filter(|s| s.ssrc == header.ssrc) else {
            return Order::NewSource;
        };
        let highest = source.seqs.highest().expect("a source has seen a packet");
        let extended = source.seqs.peek(u64::from(header.seq));
        if extended > highest {
            if extended - highest > MAX_SEQUENCE_JUMP { Order::NewSource } else { Order::New }
        } else if source.missing.contains_key(&extended) {
            Order::Late
        } else if highest - extended > MAX_SEQUENCE_JUMP {
            Order::NewSource
        } else {
            Order::Duplicate
        }
    }

    /// Rewrites a packet the leg forwards. `None` for a duplicate (drop it).
    pub fn forward(&mut self, header: &RtpHeader, now: Instant) -> Option<Munged> {
        match self.classify(header) {
            Order::Duplicate => None,
            Order::NewSource => Some(self.anchor(header, now)),
            Order::Late => {
                let source = self.source.as_mut().expect("late packets have a source");
                let extended = source.seqs.peek(u64::from(header.seq));
                let (out, _) = source.missing.remove(&extended).expect("classified late");
                let timestamp = header.timestamp.wrapping_add(source.ts_offset);
                Some(Munged { seq: out as u16, extended_seq: out - OUT_BASE, timestamp, anchored: false })
            }
            Order::New => {
                let source = self.source.as_mut().expect("new packets have a source");
                let previous = source.seqs.highest().expect("a source has seen a packet");
                let extended = source.seqs.unwrap(u64::from(header.seq));
                for lost in (previous + 1)..extended {
                    source.missing.insert(lost, (lost.wrapping_add(source.seq_offset), now));
                }
                while source.missing.len() > MAX_SEQUENCE_JUMP as usize {
                    source.missing.pop_first();
                }
                let out = extended.wrapping_add(source.seq_offset);
                let timestamp = header.timestamp.wrapping_add(source.ts_offset);
                self.highest_out = out;
                self.last = Some(LastSent { timestamp, at: now });
                Some(Munged { seq: out as u16, extended_seq: out - OUT_BASE, timestamp, anchored: false })
            }
        }
    }

    /// Since when the oldest packet lost upstream (and still awaited) has been missing.
    pub fn missing_since(&self) -> Option<Instant> {
        self.source.as_ref()?.missing.first_key_value().map(|(_, (_, since))| *since)
    }

    /// Stops waiting for the packets lost upstream: their gaps stay, and should they still
    /// arrive, they are duplicates.
    pub fn give_up_missing(&mut self) {
        if let Some(source) = self.source.as_mut() {
            source.missing.clear();
        }
    }

    /// The leg does not forward this packet. A new one gives its outgoing number to the
    /// next; a late one gives up its reservation (that gap stays).
    pub fn skip(&mut self, header: &RtpHeader, now: Instant) {
        let order = self.classify(header);
        let Some(source) = self.source.as_mut() else { return };
        match order {
            Order::New => {
                let previous = source.seqs.highest().expect("a source has seen a packet");
                let extended = source.seqs.unwrap(u64::from(header.seq));
                for lost in (previous + 1)..extended {
                    source.missing.insert(lost, (lost.wrapping_add(source.seq_offset), now));
                }
                source.seq_offset = source.seq_offset.wrapping_sub(1);
            }
            Order::Late => {
                let extended = source.seqs.peek(u64::from(header.seq));
                source.missing.remove(&extended);
            }
            // Nothing of another source was sent: its first forwarded packet anchors.
            Order::Duplicate | Order::NewSource => {}
        }
    }

    /// Starts a new mapping at `header`: the next outgoing number, and a timestamp that
    /// moves on from the last one sent by the time that passed (at least a millisecond, so
    /// two pictures never share a timestamp).
    fn anchor(&mut self, header: &RtpHeader, now: Instant) -> Munged {
        let out = self.highest_out + 1;
        let timestamp = match self.last {
            None => self.first_timestamp,
            Some(last) => {
                let elapsed = now.saturating_duration_since(last.at);
                let ticks = elapsed.as_micros() * u128::from(self.clock_rate) / 1_000_000;
                let min_step = (self.clock_rate / 1000).max(1);
                let step = u32::try_from(ticks).unwrap_or(u32::MAX / 2).clamp(min_step, u32::MAX / 2);
                last.timestamp.wrapping_add(step)
            }
        };
        let mut seqs = Unwrapper::sequence();
        let extended = seqs.unwrap(u64::from(header.seq));
        self.source = Some(Source {
            ssrc: header.ssrc,
            seqs,
            seq_offset: out.wrapping_sub(extended),
            ts_offset: timestamp.wrapping_sub(header.timestamp),
            missing: BTreeMap::new(),
        });
        self.highest_out = out;
        self.last = Some(LastSent { timestamp, at: now });
        Munged { seq: out as u16, extended_seq: out - OUT_BASE, timestamp, anchored: true }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn packet(ssrc: u32, seq: u16, timestamp: u32) -> RtpHeader {
        RtpHeader { ssrc, seq, timestamp, marker: false, payload_type: 96 }
    }

    #[test]
    fn the_first_packet_goes_out_as_configured_and_the_rest_follow() {
        let t0 = Instant::now();
        let mut m = Munger::new(90_000, 1000, 5000);
        let a = m.forward(&packet(1, 40_000, 123_456), t0).unwrap();
        assert_eq!((a.seq, a.timestamp, a.anchored), (1000, 5000, true));
        let b = m.forward(&packet(1, 40_001, 123_456 + 3000), t0).unwrap();
        assert_eq!((b.seq, b.timestamp, b.anchored), (1001, 8000, false));
        assert_eq!(m.last_seq(), Some(1001));
    }

    #[test]
    fn skipped_packets_leave_no_gap() {
        let t0 = Instant::now();
        let mut m = Munger::new(90_000, 10, 0);
        m.forward(&packet(1, 100, 0), t0);
        m.skip(&packet(1, 101, 3000), t0);
        m.skip(&packet(1, 102, 3000), t0);
        assert_eq!(m.forward(&packet(1, 103, 6000), t0).unwrap().seq, 11);
        assert_eq!(m.forward(&packet(1, 104, 6000), t0).unwrap().seq, 12);
    }

    #[test]
    fn upstream_loss_keeps_numbers_for_late_arrivals() {
        let t0 = Instant::now();
        let mut m = Munger::new(90_000, 0, 0);
        m.forward(&packet(1, 100, 0), t0);
        assert_eq!(m.forward(&packet(1, 103, 0), t0).unwrap().seq, 3, "the gap shows, so the subscriber NACKs it");
        assert_eq!(m.classify(&packet(1, 101, 0)), Order::Late);
        assert_eq!(m.forward(&packet(1, 101, 0), t0).unwrap().seq, 1);
        assert_eq!(m.classify(&packet(1, 101, 0)), Order::Duplicate, "filled once");
        assert!(m.forward(&packet(1, 101, 0), t0).is_none());
        assert!(m.forward(&packet(1, 103, 0), t0).is_none(), "a duplicate of a sent packet");
        // A skip after a gap keeps the gap's reservations and takes its own number back.
        m.skip(&packet(1, 106, 0), t0);
        assert_eq!(m.forward(&packet(1, 107, 0), t0).unwrap().seq, 6);
        assert_eq!(m.forward(&packet(1, 105, 0), t0).unwrap().seq, 5);
        assert_eq!(m.forward(&packet(1, 102, 0), t0).unwrap().seq, 2);
    }

    #[test]
    fn losses_are_awaited_since_they_were_found_until_given_up() {
        let t0 = Instant::now();
        let mut m = Munger::new(90_000, 0, 0);
        m.forward(&packet(1, 100, 0), t0);
        assert_eq!(m.missing_since(), None);
        m.forward(&packet(1, 102, 0), t0 + Duration::from_millis(10));
        m.skip(&packet(1, 105, 0), t0 + Duration::from_millis(20));
        assert_eq!(m.missing_since(), Some(t0 + Duration::from_millis(10)), "the oldest gap");
        m.forward(&packet(1, 101, 0), t0 + Duration::from_millis(30));
        assert_eq!(m.missing_since(), Some(t0 + Duration::from_millis(20)));
        m.give_up_missing();
        assert_eq!(m.missing_since(), None);
        assert_eq!(m.classify(&packet(1, 103, 0)), Order::Duplicate, "too late now");
        assert_eq!(m.forward(&packet(1, 106, 0), t0).unwrap().seq, 5, "the given-up numbers stay gaps");
    }

    #[test]
    fn a_layer_switch_continues_numbers_and_timestamps_by_elapsed_time() {
        let t0 = Instant::now();
        let mut m = Munger::new(90_000, 500, 9000);
        m.forward(&packet(1, 7, 1_000_000), t0);
        m.forward(&packet(1, 8, 1_003_000), t0 + Duration::from_millis(33));
        // Another layer: unrelated numbering, 20 ms later.
        let s = m.forward(&packet(2, 60_000, 77), t0 + Duration::from_millis(53)).unwrap();
        assert!(s.anchored);
        assert_eq!(s.seq, 502);
        assert_eq!(s.timestamp, 9000 + 3000 + 1800);
        let next = m.forward(&packet(2, 60_001, 77 + 3000), t0 + Duration::from_millis(86)).unwrap();
        assert_eq!((next.seq, next.timestamp), (503, 9000 + 3000 + 1800 + 3000));
        assert_eq!(m.source_ssrc(), Some(2));
        // The old layer's stragglers are another source: the leg must not forward them.
        assert_eq!(m.classify(&packet(1, 9, 1_006_000)), Order::NewSource);
        // Back to the first layer after its packets went uncounted: a new mapping, no gap.
        m.restart();
        assert_eq!(m.classify(&packet(2, 60_005, 0)), Order::NewSource);
        assert_eq!(m.forward(&packet(1, 20, 1_039_000), t0 + Duration::from_millis(120)).unwrap().seq, 504);
    }

    #[test]
    fn a_switch_in_the_same_instant_still_moves_the_timestamp() {
        let t0 = Instant::now();
        let mut m = Munger::new(90_000, 0, 0);
        m.forward(&packet(1, 1, 0), t0);
        let s = m.forward(&packet(2, 1, 0), t0).unwrap();
        assert_eq!(s.timestamp, 90, "one millisecond at least");
    }

    #[test]
    fn a_restart_on_the_same_ssrc_re_anchors() {
        let t0 = Instant::now();
        let mut m = Munger::new(48_000, 0, 0);
        m.forward(&packet(1, 30_000, 0), t0);
        m.forward(&packet(1, 30_001, 960), t0 + Duration::from_millis(20));
        assert_eq!(m.classify(&packet(1, 5, 42)), Order::NewSource);
        let r = m.forward(&packet(1, 5, 42), t0 + Duration::from_millis(1020)).unwrap();
        assert_eq!((r.seq, r.timestamp, r.anchored), (2, 960 + 48_000, true));
        assert_eq!(m.forward(&packet(1, 6, 42 + 960), t0 + Duration::from_millis(1040)).unwrap().seq, 3);
    }

    #[test]
    fn a_pause_keeps_the_source_timing() {
        let t0 = Instant::now();
        let mut m = Munger::new(90_000, 0, 0);
        m.forward(&packet(1, 1, 100), t0);
        for seq in 2..300 {
            m.skip(&packet(1, seq, 100 + u32::from(seq) * 300), t0);
        }
        let back = m.forward(&packet(1, 300, 100 + 90_000), t0 + Duration::from_secs(1)).unwrap();
        assert_eq!((back.seq, back.timestamp, back.anchored), (1, 90_000, false));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Forward,
        Skip,
        Switch,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![6 => Just(Step::Forward), 3 => Just(Step::Skip), 1 => Just(Step::Switch)]
    }

    proptest! {
        /// In-order forwarding with any mix of skips and source switches (across sequence
        /// number wraps) is gapless, and timestamps never go back.
        #[test]
        fn in_order_output_is_gapless_and_monotonic(
            first in any::<u16>(), start in any::<u16>(), steps in prop::collection::vec(step(), 1..400)
        ) {
            let t0 = Instant::now();
            let mut m = Munger::new(90_000, first, 1);
            let (mut ssrc, mut seq, mut ts) = (1u32, start, 0u32);
            let mut sent: Vec<Munged> = Vec::new();
            for (i, s) in steps.into_iter().enumerate() {
                let now = t0 + Duration::from_millis(10 * i as u64);
                match s {
                    Step::Forward => sent.extend(m.forward(&packet(ssrc, seq, ts), now)),
                    Step::Skip => m.skip(&packet(ssrc, seq, ts), now),
                    Step::Switch => {
                        ssrc += 1;
                        seq = seq.wrapping_mul(31).wrapping_add(7);
                        ts = ts.wrapping_mul(17);
                        sent.extend(m.forward(&packet(ssrc, seq, ts), now));
                    }
                }
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(900);
            }
            for pair in sent.windows(2) {
                prop_assert_eq!(pair[1].extended_seq, pair[0].extended_seq + 1);
                prop_assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1));
                prop_assert!(pair[1].timestamp.wrapping_sub(pair[0].timestamp) < u32::MAX / 2);
            }
            if let Some(first_sent) = sent.first() {
                prop_assert_eq!(first_sent.seq, first);
                prop_assert_eq!(first_sent.extended_seq, u64::from(first), "rollover counter 0 at the start");
            }
        }
    }
}
