//! Wrapping counters: comparing and unwrapping RTP sequence numbers (16 bits), RTP
//! timestamps (32 bits), VP8/VP9 picture IDs (7 or 15 bits) and TL0PICIDX (8 bits).
//!
//! Owns serial-number arithmetic (RFC 1982) and the extension of a wrapping counter to a
//! monotonic 64-bit one. It must not know what the counter means, nor keep anything but
//! the highest value seen.

/// `a - b` for 16-bit sequence numbers, as the shortest signed distance: positive when `a`
/// is newer. Exactly half the ring apart counts as newer (`32768`).
pub(crate) fn seq_distance(a: u16, b: u16) -> i32 {
    distance(u64::from(a), u64::from(b), 16) as i32
}

/// Whether sequence number `a` comes after `b` (wrapping).
pub(crate) fn seq_is_newer(a: u16, b: u16) -> bool {
    seq_distance(a, b) > 0
}

/// The shortest signed distance `a - b` on a ring of `bits` bits (1..=32).
fn distance(a: u64, b: u64, bits: u32) -> i64 {
    let modulus = 1u64 << bits;
    let half = modulus >> 1;
    let forward = a.wrapping_sub(b) & (modulus - 1);
    if forward <= half { forward as i64 } else { forward as i64 - modulus as i64 }
}

/// Extends a `bits`-wide wrapping counter to a monotonic `u64`, tolerating reordering of
/// up to half the ring. The first value lands in the second cycle (`1 << bits` and up), so
/// values a little older than the first one stay representable.
#[derive(Debug, Clone)]
pub(crate) struct Unwrapper {
    bits: u32,
    highest: Option<u64>,
}

impl Unwrapper {
    /// An unwrapper for a counter of `bits` bits (1..=32).
    pub fn new(bits: u32) -> Unwrapper {
        assert!((1..=32).contains(&bits), "counter width {bits} out of range");
        Unwrapper { bits, highest: None }
    }

    /// An unwrapper for 16-bit RTP sequence numbers.
    pub fn sequence() -> Unwrapper {
        Unwrapper::new(16)
    }

    /// The extended value of `value` without remembering it.
    pub fn peek(&self, value: u64) -> u64 {
        let mask = (1u64 << self.bits) - 1;
        let value = value & mask;
        match self.highest {
            None => (1u64 << self.bits) + value,
            Some(highest) => {
                let d = distance(value, highest & mask, self.bits);
                // Never below zero: a value older than anything representable clamps.
                highest.checked_add_signed(d).unwrap_or(0)
            }
        }
    }

    /// The extended value of `value`; it becomes the highest if it is newer.
    pub fn unwrap(&mut self, value: u64) -> u64 {
        let extended = self.peek(value);
        if self.highest.is_none_or(|h| extended > h) {
            self.highest = Some(extended);
        }
        extended
    }

    /// The highest extended value seen.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn distances_wrap_around() {
        assert_eq!(seq_distance(1, 65535), 2);
        assert_eq!(seq_distance(65535, 1), -2);
        assert_eq!(seq_distance(100, 100), 0);
        assert_eq!(seq_distance(32768, 0), 32768, "half the ring counts as newer");
        assert!(seq_is_newer(0, 65535));
        assert!(!seq_is_newer(65535, 0));
    }

    #[test]
    fn unwrapping_follows_wraps_and_reordering() {
        let mut u = Unwrapper::sequence();
        let first = u.unwrap(65534);
        assert_eq!(u.unwrap(65535), first + 1);
        assert_eq!(u.unwrap(1), first + 3, "across the wrap");
        assert_eq!(u.unwrap(0), first + 2, "a late packet keeps its place");
        assert_eq!(u.highest(), Some(first + 3), "and does not lower the highest");
        assert_eq!(u.peek(65533), first - 1, "older than the first one is representable");
    }

    #[test]
    fn narrow_counters_wrap_at_their_width() {
        let mut pid7 = Unwrapper::new(7);
        let a = pid7.unwrap(127);
        assert_eq!(pid7.unwrap(0), a + 1);
        let mut ts = Unwrapper::new(32);
        let t = ts.unwrap(u64::from(u32::MAX - 10));
        assert_eq!(ts.unwrap(5), t + 16);
    }

    proptest! {
        /// Any walk with steps smaller than half the ring unwraps to the same walk.
        #[test]
        fn unwrapping_inverts_wrapping(start in 0u64..(1 << 20), steps in prop::collection::vec(-1000i64..3000, 1..200)) {
            let mut u = Unwrapper::sequence();
            let mut truth = start;
            let base = u.unwrap(truth & 0xffff);
            let offset = base as i64 - truth as i64;
            let mut highest = truth;
            for step in steps {
                let next = truth as i64 + step;
                // Reordering is bounded by half the ring below the highest value seen.
                prop_assume!(next >= 0 && (highest as i64 - next) < 30_000);
                truth = next as u64;
                highest = highest.max(truth);
                let ext = u.unwrap(truth & 0xffff);
                prop_assert_eq!(ext as i64 - offset, truth as i64);
            }
        }

        #[test]
        fn distance_is_antisymmetric(a: u16, b: u16) {
            let d = seq_distance(a, b);
            prop_assert_eq!(b.wrapping_add(d as u16), a);
            if d != 32768 {
                prop_assert_eq!(seq_distance(b, a), -d);
            }
        }
    }
}
