//! The keyframe gate: after a leg starts, switches source (a simulcast layer, a publisher's
//! restart) or resumes from a pause, video is held back until a keyframe, so a decoder never
//! starts mid-GOP.
//!
//! Owns whether the leg waits for a keyframe and since when (the leg asks the publisher for
//! one while it waits). It must not look at payloads (`codec` says what a keyframe is) nor
//! send keyframe requests (the SFU throttles those per publisher track).

use std::time::Instant;

/// One leg's keyframe gate; it starts closed.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyframeGate {
    open: bool,
    waiting_since: Option<Instant>,
}

impl KeyframeGate {
    /// Waits for the next keyframe from now on (a closed gate keeps waiting as it was).
    pub fn close(&mut self) {
        if self.open {
            self.open = false;
            self.waiting_since = None;
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Since when a closed gate has been turning packets away (`None` when open, or before
    /// its first packet).
    pub fn waiting_since(&self) -> Option<Instant> {
        self.waiting_since
    }

    /// Whether a packet goes out: a keyframe opens a closed gate.
    pub fn admit(&mut self, keyframe: bool, now: Instant) -> bool {
        if !self.open && keyframe {
            self.open = true;
            self.waiting_since = None;
        }
        if !self.open {
            self.waiting_since.get_or_insert(now);
        }
        self.open
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn holds_video_until_a_keyframe_and_again_after_a_close() {
        let t0 = Instant::now();
        let mut g = KeyframeGate::default();
        assert!(!g.admit(false, t0));
        assert!(!g.admit(false, t0 + Duration::from_millis(5)));
        assert_eq!(g.waiting_since(), Some(t0), "since the first packet turned away");
        assert!(g.admit(true, t0 + Duration::from_millis(9)));
        assert!(g.admit(false, t0 + Duration::from_millis(10)), "the keyframe's other packets and what follows");
        assert_eq!(g.waiting_since(), None);
        g.close();
        assert!(!g.is_open());
        assert!(!g.admit(false, t0 + Duration::from_millis(15)));
        g.close();
        assert_eq!(g.waiting_since(), Some(t0 + Duration::from_millis(15)), "closing again keeps the wait");
        assert!(!g.admit(false, t0 + Duration::from_millis(20)));
        assert!(g.admit(true, t0 + Duration::from_millis(30)));
    }
}
