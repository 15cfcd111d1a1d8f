//! `KeyframeGate`: loss handling for recorded video. After a gap (lost packets, a skipped
//! frame) decoding is broken until the next keyframe, so the gate drops video until then and
//! tells the caller when to send a PLI/FIR. It owns no I/O and must not talk to the SFU itself.

use std::time::{Duration, Instant};

/// What to do with one incoming video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateDecision {
    /// Write the frame to the recording.
    pub write: bool,
    /// Ask the sender for a keyframe now (PLI/FIR).
    pub request_keyframe: bool,
}

/// Drops video after a loss until the next keyframe, rate-limiting keyframe requests.
#[derive(Debug)]
pub struct KeyframeGate {
    waiting: bool,
    last_request: Option<Instant>,
    request_interval: Duration,
    dropped: u64,
}

impl Default for KeyframeGate {
    fn default() -> Self {
        Self::new(Duration::from_millis(500))
    }
}

impl KeyframeGate {
    /// A gate that starts closed (waiting for the first keyframe) and repeats a keyframe
    /// request at most once per `request_interval`.
    pub fn new(request_interval: Duration) -> Self {
        Self { waiting: true, last_request: None, request_interval, dropped: 0 }
    }

    /// Report a gap (sequence discontinuity, lost frame): close the gate.
    pub fn on_loss(&mut self) {
        self.close();
    }

    /// A new loss after a clean run asks for a keyframe at once (no rate limit carry-over).
    fn close(&mut self) {
        if !self.waiting {
            self.last_request = None;
        }
        self.waiting = true;
    }

    /// Decide for a frame arriving at `now`. `gap_before` says the frame does not follow the
    /// previous one (the depacketizer saw missing packets or frames).
    pub fn on_frame(&mut self, is_keyframe: bool, gap_before: bool, now: Instant) -> GateDecision {
        if gap_before {
            self.close();
        }
        if is_keyframe {
            self.waiting = false;
            return GateDecision { write: true, request_keyframe: false };
        }
        if !self.waiting {
            return GateDecision { write: true, request_keyframe: false };
        }
        self.dropped += 1;
        let due = self.last_request.is_none_or(|t| now.duration_since(t) >= self.request_interval);
        if due {
            self.last_request = Some(now);
        }
        GateDecision { write: false, request_keyframe: due }
    }

    /// True while video is being dropped.
    pub fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
