//! The temporal-layer filter: a lower frame rate for one subscriber by dropping the pictures
//! of higher temporal layers (VP8 TID, VP9 TID), which no lower layer references.
//!
//! Owns the per-leg decision, made once per picture (by RTP timestamp) so a picture is never
//! cut in half: going down takes effect at the next picture, going up waits for a picture
//! that is safe to start from (a keyframe, or a layer-sync / switching-up picture). It must
//! not touch sequence numbers or picture IDs (the leg tells `munger` and `vp8` what it
//! dropped).

/// One leg's temporal-layer filter.
#[derive(Debug, Clone)]
pub(crate) struct TemporalFilter {
    /// The highest layer wanted (`u8::MAX`: all).
    target: u8,
    /// The highest layer forwarded now.
    current: u8,
    /// The picture being decided on: its timestamp and whether it goes out.
    picture: Option<(u32, bool)>,
}

impl Default for TemporalFilter {
    fn default() -> TemporalFilter {
        TemporalFilter { target: u8::MAX, current: u8::MAX, picture: None }
    }
}

impl TemporalFilter {
    /// The highest temporal layer to forward (`None`: all, the full frame rate).
    pub fn set_max(&mut self, max: Option<u8>) {
        self.target = max.unwrap_or(u8::MAX);
    }

    /// The highest temporal layer forwarded now (`None`: all).
    pub fn current(&self) -> Option<u8> {
        (self.current != u8::MAX).then_some(self.current)
    }

    /// Whether a packet goes out. Packets without a temporal layer always do.
    pub fn admit(&mut self, timestamp: u32, temporal: Option<u8>, layer_sync: bool, keyframe: bool) -> bool {
        if let Some((ts, forward)) = self.picture
            && ts == timestamp
        {
            return forward;
        }
        if self.target < self.current || keyframe {
            self.current = self.target;
        } else if self.target > self.current
            && let Some(t) = temporal
            && layer_sync
            && t > self.current
            && t <= self.target
        {
            // This picture only references the base layer: layer `t` can start here.
            self.current = t;
        }
        let forward = keyframe || temporal.is_none_or(|t| t <= self.current);
        self.picture = Some((timestamp, forward));
        forward
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three temporal layers in the usual L1T3 pattern: 0 2 1 2 0 2 1 2 …
    fn pattern(i: u32) -> u8 {
        [0, 2, 1, 2][(i % 4) as usize]
    }

    #[test]
    fn all_layers_pass_by_default_and_a_cap_drops_the_higher_ones() {
        let mut f = TemporalFilter::default();
        assert!((0..8).all(|i| f.admit(i * 3000, Some(pattern(i)), false, false)));
        f.set_max(Some(0));
        let passed: Vec<u32> = (8..16).filter(|&i| f.admit(i * 3000, Some(pattern(i)), false, false)).collect();
        assert_eq!(passed, [8, 12], "a quarter of the frame rate");
        assert_eq!(f.current(), Some(0));
    }

    #[test]
    fn a_picture_is_decided_once_for_all_its_packets() {
        let mut f = TemporalFilter::default();
        assert!(f.admit(100, Some(2), false, false));
        f.set_max(Some(0));
        assert!(f.admit(100, Some(2), false, false), "the rest of a picture already going out");
        assert!(!f.admit(200, Some(2), false, false));
        f.set_max(None);
        assert!(!f.admit(200, Some(2), true, false), "nor is a dropped picture resumed mid-way");
    }

    #[test]
    fn going_up_waits_for_a_sync_picture_or_a_keyframe() {
        let mut f = TemporalFilter::default();
        f.set_max(Some(0));
        assert!(f.admit(0, Some(0), false, true));
        f.set_max(Some(2));
        assert!(!f.admit(1, Some(2), false, false), "no sync: its references were dropped");
        assert!(f.admit(2, Some(1), true, false), "a sync picture of layer 1 starts layer 1");
        assert!(!f.admit(3, Some(2), false, false));
        assert!(f.admit(4, Some(2), true, false));
        assert_eq!(f.current(), Some(2));
        f.set_max(Some(0));
        f.set_max(Some(1));
        assert!(f.admit(5, Some(0), false, true), "a keyframe takes the target at once");
        assert_eq!(f.current(), Some(1));
    }

    #[test]
    fn packets_without_layers_always_pass() {
        let mut f = TemporalFilter::default();
        f.set_max(Some(0));
        assert!(f.admit(1, None, false, false));
    }
}
