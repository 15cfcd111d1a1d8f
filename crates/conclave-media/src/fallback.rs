//! Audio fallback: when the bandwidth towards a subscriber is too low for even the smallest
//! video, it gets audio only until the bandwidth comes back (OpenTok's "audio fallback",
//! which OpenTok.js shows as `videoDisabled` / `videoEnabled` with reason `quality`).
//!
//! Owns the decision only, as a pure state machine over (estimate, time) samples with
//! hysteresis, so a subscriber whose estimate hovers at the threshold does not flap. It must
//! not touch tracks or `Rtc`s: the SFU applies what it decides (`forward`).

use std::time::{Duration, Instant};

/// Below this estimate (bits/s) video does not fit next to audio: the smallest simulcast
/// layer sends about 100–150 kbit/s, Opus about 40.
pub(crate) const ENTER_BELOW_BPS: u64 = 120_000;
/// Video comes back at or above this estimate (well above the entry point: hysteresis).
pub(crate) const LEAVE_AT_BPS: u64 = 250_000;
/// How long the estimate must stay low before video stops.
pub(crate) const ENTER_AFTER: Duration = Duration::from_secs(3);
/// How long it must stay high again before video resumes.
pub(crate) const LEAVE_AFTER: Duration = Duration::from_secs(5);

/// One subscriber's audio-fallback state.
#[derive(Debug, Clone, Default)]
pub(crate) struct AudioFallback {
    audio_only: bool,
    /// Since when the estimate has been on the other side of the threshold that matters now.
    crossing_since: Option<Instant>,
}

impl AudioFallback {
    /// Whether the subscriber gets audio only now.
    pub fn audio_only(&self) -> bool {
        self.audio_only
    }

    /// Takes the latest estimate at `now`. Returns the new state when it changes: `Some(true)`
    /// when video stops, `Some(false)` when it resumes.
    pub fn observe(&mut self, estimate_bps: u64, now: Instant) -> Option<bool> {
        let (crossing, wait) = if self.audio_only {
            (estimate_bps >= LEAVE_AT_BPS, LEAVE_AFTER)
        } else {
            (estimate_bps < ENTER_BELOW_BPS, ENTER_AFTER)
        };
        if !crossing {
            self.crossing_since = None;
            return None;
        }
        let since = *self.crossing_since.get_or_insert(now);
        if now.saturating_duration_since(since) < wait {
            return None;
        }
        self.audio_only = !self.audio_only;
        self.crossing_since = None;
        Some(self.audio_only)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: &mut AudioFallback, start: Instant, samples: &[(u64, u64)]) -> Vec<(u64, bool)> {
        samples
            .iter()
            .filter_map(|&(ms, bps)| f.observe(bps, start + Duration::from_millis(ms)).map(|s| (ms, s)))
            .collect()
    }

    #[test]
    fn a_sustained_low_estimate_stops_video_and_a_sustained_recovery_brings_it_back() {
        let t0 = Instant::now();
        let mut f = AudioFallback::default();
        // Low from 1 s on: audio only 3 s later, not before.
        let low: Vec<(u64, u64)> = (0..=50).map(|i| (i * 100, if i >= 10 { 80_000 } else { 1_000_000 })).collect();
        assert_eq!(run(&mut f, t0, &low), [(4_000, true)]);
        assert!(f.audio_only());
        // Back up at 6 s: video 5 s later.
        let high: Vec<(u64, u64)> = (51..=120).map(|i| (i * 100, if i >= 60 { 400_000 } else { 80_000 })).collect();
        assert_eq!(run(&mut f, t0, &high), [(11_000, false)]);
        assert!(!f.audio_only());
    }

    #[test]
    fn short_dips_and_short_recoveries_change_nothing() {
        let t0 = Instant::now();
        let mut f = AudioFallback::default();
        // Dips of 2.9 s, each followed by one good sample: never audio only.
        let mut samples = Vec::new();
        for round in 0..5u64 {
            let start = round * 3_000;
            for ms in (0..2_900).step_by(100) {
                samples.push((start + ms, 50_000));
            }
            samples.push((start + 2_950, 600_000));
        }
        assert_eq!(run(&mut f, t0, &samples), []);
        // Now audio only; a recovery that does not last is not enough.
        assert_eq!(run(&mut f, t0, &[(20_000, 10_000), (23_000, 10_000)]), [(23_000, true)]);
        let flaky: Vec<(u64, u64)> =
            (0..20).map(|i| (24_000 + i * 500, if i % 8 == 7 { 100_000 } else { 300_000 })).collect();
        assert_eq!(run(&mut f, t0, &flaky), []);
        assert!(f.audio_only());
    }

    #[test]
    fn the_band_between_the_thresholds_keeps_the_current_state() {
        let t0 = Instant::now();
        let mut f = AudioFallback::default();
        let middle: Vec<(u64, u64)> = (0..100).map(|i| (i * 100, 180_000)).collect();
        assert_eq!(run(&mut f, t0, &middle), [], "180 kbit/s keeps video");
        assert_eq!(run(&mut f, t0, &[(10_000, 1_000), (13_000, 1_000)]), [(13_000, true)]);
        let middle: Vec<(u64, u64)> = (140..240).map(|i| (i * 100, 180_000)).collect();
        assert_eq!(run(&mut f, t0, &middle), [], "and 180 kbit/s keeps audio only");
        assert_eq!(run(&mut f, t0, &[(30_000, LEAVE_AT_BPS), (35_000, LEAVE_AT_BPS)]), [(35_000, false)]);
    }
}
