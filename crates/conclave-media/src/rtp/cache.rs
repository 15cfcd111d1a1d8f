//! The per-publisher RTP packet cache that answers subscribers' NACKs: one cache per
//! received stream (SSRC), shared by every subscriber leg of that stream, so the memory for
//! retransmissions grows with publishers, not with subscribers.
//!
//! Owns a fixed ring of the most recent packets (header and payload as received), bounded in
//! count and in age; a slot's buffer is reused, so a warm cache allocates nothing. It must
//! not rewrite packets (a leg re-applies its own rewriting to what it reads here) nor decide
//! whether to retransmit.

use std::time::{Duration, Instant};

use super::RtpHeader;
use super::seq::Unwrapper;

/// One cached packet, as the publisher sent it.
#[derive(Debug, Clone)]
pub(crate) struct CachedPacket {
    pub header: RtpHeader,
    pub payload: Vec<u8>,
    pub arrival: Instant,
    extended_seq: u64,
}

/// A bounded cache of one stream's recent packets.
#[derive(Debug)]
pub(crate) struct PacketCache {
    slots: Vec<Option<CachedPacket>>,
    seqs: Unwrapper,
    ssrc: Option<u32>,
    max_age: Duration,
}

impl PacketCache {
    /// A cache of the last `capacity` packets (rounded up to a power of two, at least 1),
    /// none older than `max_age`.
    pub fn new(capacity: usize, max_age: Duration) -> PacketCache {
        let capacity = capacity.max(1).next_power_of_two();
        PacketCache { slots: vec![None; capacity], seqs: Unwrapper::sequence(), ssrc: None, max_age }
    }

    /// Keeps a received packet (a duplicate replaces its copy). Another SSRC than before
    /// (the publisher restarted) empties the cache first.
    pub fn insert(&mut self, header: RtpHeader, payload: &[u8], arrival: Instant) {
        if self.ssrc != Some(header.ssrc) {
            self.slots.iter_mut().for_each(|s| *s = None);
            self.seqs = Unwrapper::sequence();
            self.ssrc = Some(header.ssrc);
        }
        let extended_seq = self.seqs.unwrap(u64::from(header.seq));
        let index = self.index(extended_seq);
        match &mut self.slots[index] {
            Some(slot) if slot.extended_seq > extended_seq => {} // a newer packet lives there
            Some(slot) => {
                slot.header = header;
                slot.payload.clear();
                slot.payload.extend_from_slice(payload);
                slot.arrival = arrival;
                slot.extended_seq = extended_seq;
            }
            empty => *empty = Some(CachedPacket { header, payload: payload.to_vec(), arrival, extended_seq }),
        }
    }

    /// The packet with this SSRC and sequence number, if it is still cached and not too old.
    pub fn get(&self, ssrc: u32, seq: u16, now: Instant) -> Option<&CachedPacket> {
        if self.ssrc != Some(ssrc) {
            return None;
        }
        let extended_seq = self.seqs.peek(u64::from(seq));
        self.slots[self.index(extended_seq)]
            .as_ref()
            .filter(|p| p.extended_seq == extended_seq && now.saturating_duration_since(p.arrival) <= self.max_age)
    }

    /// How many packets it can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn index(&self, extended_seq: u64) -> usize {
        (extended_seq as usize) & (self.slots.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn header(ssrc: u32, seq: u16) -> RtpHeader {
        RtpHeader { ssrc, seq, timestamp: u32::from(seq) * 3000, marker: false, payload_type: 96 }
    }

    #[test]
    fn answers_recent_packets_and_forgets_old_ones() {
        let t0 = Instant::now();
        let mut c = PacketCache::new(100, Duration::from_secs(1));
        assert_eq!(c.capacity(), 128);
        for seq in 65_500..65_535u16 {
            c.insert(header(7, seq), &[seq as u8], t0);
        }
        for seq in 0..200u16 {
            c.insert(header(7, seq), &[seq as u8, 1], t0);
        }
        let hit = c.get(7, 150, t0).unwrap();
        assert_eq!((hit.header.seq, hit.payload.as_slice()), (150, &[150, 1][..]));
        assert!(c.get(7, 50, t0).is_none(), "overwritten: the ring holds 128");
        assert!(c.get(7, 65_530, t0).is_none(), "across the wrap, long gone");
        assert!(c.get(8, 150, t0).is_none(), "another stream");
        assert!(c.get(7, 150, t0 + Duration::from_millis(1001)).is_none(), "too old to help");
        assert!(c.get(7, 250, t0).is_none(), "not received");
    }

    #[test]
    fn a_late_packet_never_evicts_a_newer_one() {
        let t0 = Instant::now();
        let mut c = PacketCache::new(4, Duration::from_secs(1));
        c.insert(header(1, 10), b"ten", t0);
        c.insert(header(1, 6), b"six", t0); // same slot, older
        assert_eq!(c.get(1, 10, t0).unwrap().payload, b"ten");
        assert!(c.get(1, 6, t0).is_none());
        c.insert(header(1, 9), b"nine", t0); // a gap filled late
        assert_eq!(c.get(1, 9, t0).unwrap().payload, b"nine");
    }

    #[test]
    fn a_new_ssrc_starts_over() {
        let t0 = Instant::now();
        let mut c = PacketCache::new(8, Duration::from_secs(1));
        c.insert(header(1, 5), b"a", t0);
        c.insert(header(2, 5), b"b", t0);
        assert!(c.get(1, 5, t0).is_none());
        assert_eq!(c.get(2, 5, t0).unwrap().payload, b"b");
    }

    proptest! {
        /// Whatever arrives, a hit is always the packet that was asked for.
        #[test]
        fn hits_are_exact(seqs in prop::collection::vec(any::<u16>(), 1..300), ask in any::<u16>()) {
            let t0 = Instant::now();
            let mut c = PacketCache::new(16, Duration::from_secs(10));
            for seq in &seqs {
                c.insert(header(1, *seq), &seq.to_be_bytes(), t0);
            }
            if let Some(hit) = c.get(1, ask, t0) {
                prop_assert_eq!(hit.header.seq, ask);
                prop_assert_eq!(hit.payload.as_slice(), &ask.to_be_bytes()[..]);
            }
        }
    }
}
