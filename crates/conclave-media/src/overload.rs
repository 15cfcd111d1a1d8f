//! Graceful overload of a media worker: when its thread has no time left, what every
//! subscriber leg of the worker sheds, with hysteresis.
//!
//! The worker measures how busy its thread is (the share of wall time spent working rather
//! than waiting for the socket or a timer) and feeds it here every half second or so. A worker
//! busy nearly all of the time is late with everything: packets wait in the socket buffer and
//! the kernel drops them at random, audio included. Shedding on purpose is cheaper: first
//! every leg forwards its lowest simulcast layer and base temporal layer only, then no video at
//! all; audio is never shed for overload. Each step back needs the thread to have stayed well
//! below full for a while, so the worker does not flap.
//!
//! Pure: it must not read a clock or touch the SFU; the worker applies the level with
//! [`crate::Sfu::set_overload`].

use std::time::{Duration, Instant};

use crate::Shed;

/// Busy at least this share of the time counts as overloaded...
const OVERLOADED: f64 = 0.95;
/// ...for this long before a step up.
const STEP_UP_AFTER: Duration = Duration::from_secs(2);
/// Busy less than this share of the time counts as relieved...
const RELIEVED: f64 = 0.6;
/// ...for this long before a step down.
const STEP_DOWN_AFTER: Duration = Duration::from_secs(5);

/// The overload level of one media worker.
#[derive(Debug, Clone, Default)]
pub struct OverloadGuard {
    level: Shed,
    /// Since when the observations have been on the overloaded side, or the relieved side.
    overloaded_since: Option<Instant>,
    relieved_since: Option<Instant>,
}

impl OverloadGuard {
    /// The current level.
    pub fn level(&self) -> Shed {
        self.level
    }

    /// Takes one observation (`busy`: the share of the last interval the thread worked, 0 to
    /// 1). Returns the new level when it changes.
    pub fn observe(&mut self, busy: f64, now: Instant) -> Option<Shed> {
        // The side this observation is on, the other side, how long it must last, and the
        // level one step that way.
        let (side, other, after, next) = if busy >= OVERLOADED {
            let up = if self.level == Shed::Nothing { Shed::UpperTemporalLayers } else { Shed::Everything };
            (&mut self.overloaded_since, &mut self.relieved_since, STEP_UP_AFTER, up)
        } else if busy < RELIEVED {
            let down = if self.level == Shed::Everything { Shed::UpperTemporalLayers } else { Shed::Nothing };
            (&mut self.relieved_since, &mut self.overloaded_since, STEP_DOWN_AFTER, down)
        } else {
            (self.overloaded_since, self.relieved_since) = (None, None);
            return None;
        };
        *other = None;
        let since = *side.get_or_insert(now);
        if now.saturating_duration_since(since) < after || next == self.level {
            return None;
        }
        *side = Some(now);
        self.level = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_up_after_two_busy_seconds_and_down_after_five_relieved_ones() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut g = OverloadGuard::default();
        assert_eq!(g.observe(0.99, at(0)), None);
        assert_eq!(g.observe(0.99, at(1500)), None);
        assert_eq!(g.observe(0.80, at(1900)), None, "a dip starts the count again");
        assert_eq!(g.observe(0.99, at(2000)), None);
        assert_eq!(g.observe(0.99, at(4000)), Some(Shed::UpperTemporalLayers));
        assert_eq!(g.observe(0.99, at(5000)), None);
        assert_eq!(g.observe(0.99, at(6000)), Some(Shed::Everything));
        assert_eq!(g.observe(1.0, at(9000)), None, "nothing beyond");
        assert_eq!(g.observe(0.7, at(10_000)), None, "not relieved enough");
        assert_eq!(g.observe(0.3, at(11_000)), None);
        assert_eq!(g.observe(0.3, at(15_000)), None);
        assert_eq!(g.observe(0.3, at(16_000)), Some(Shed::UpperTemporalLayers));
        assert_eq!(g.observe(0.3, at(21_000)), Some(Shed::Nothing));
        assert_eq!(g.level(), Shed::Nothing);
        assert_eq!(g.observe(0.0, at(40_000)), None);
    }
}
