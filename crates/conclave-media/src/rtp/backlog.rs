//! Bounded send queues: what one subscriber leg sheds while str0m's pacer is behind on it.
//!
//! str0m's send queue of an outgoing track (`StreamTx`) has no bound of its own: when a
//! subscriber's link (its bandwidth estimate, hence its pacing rate) is slower than what its
//! publishers send, packets pile up there, latency grows without limit and so does memory.
//! This module is the bound. From the queue's size and the age of its oldest packet it decides,
//! with hysteresis, what the leg stops forwarding, cheapest first: the upper temporal layers
//! of video (half the frame rate, no keyframe needed to come back), then all of the track's
//! packets (video resumes from a keyframe once the queue has drained). Audio is paced apart by
//! str0m and rarely queues; it is cut only when its own queue is long.
//!
//! Pure: the SFU samples the queue and applies the verdict (`forward_rtp`). It must not touch
//! str0m or clocks.

use std::time::Duration;

/// What a leg sheds, in increasing order of cost to the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Shed {
    /// Everything goes out.
    #[default]
    Nothing,
    /// Video: only the base temporal layer goes out.
    UpperTemporalLayers,
    /// Nothing of the track goes out (video comes back from a keyframe).
    Everything,
}

/// One look at an outgoing track's send queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueSample {
    pub packets: usize,
    /// How long a packet queued now would wait: the longer of what its oldest packet has
    /// waited and the time the queue takes to drain at the link's estimated rate.
    pub wait: Duration,
}

/// Limits of one kind of track: shedding starts above `soft` (the temporal layers) and `hard`
/// (everything), and ends only once the queue is below `drained`.
struct Limits {
    soft: (usize, Duration),
    hard: (usize, Duration),
    drained: (usize, Duration),
}

/// Video: 150 ms behind or about a second of 720p packets is already a stutter the subscriber
/// sees; half a second is the most a conversation tolerates.
const VIDEO: Limits = Limits {
    soft: (128, Duration::from_millis(150)),
    hard: (384, Duration::from_millis(500)),
    drained: (16, Duration::from_millis(40)),
};

/// Audio has no cheaper step: past 300 ms (15 packets of 20 ms) it is dropped until drained.
const AUDIO: Limits = Limits {
    soft: (usize::MAX, Duration::MAX),
    hard: (15, Duration::from_millis(300)),
    drained: (2, Duration::from_millis(40)),
};

/// The shedding state of one leg.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Backlog {
    shed: Shed,
}

impl Backlog {
    /// What to shed now, after a look at the queue.
    pub fn observe(&mut self, video: bool, sample: QueueSample) -> Shed {
        let limits = if video { &VIDEO } else { &AUDIO };
        let over = |(packets, age): (usize, Duration)| sample.packets >= packets || sample.wait >= age;
        let under = |(packets, age): (usize, Duration)| sample.packets < packets && sample.wait < age;
        self.shed = if over(limits.hard) {
            Shed::Everything
        } else if over(limits.soft) {
            self.shed.max(Shed::UpperTemporalLayers)
        } else if under(limits.drained) {
            Shed::Nothing
        } else {
            self.shed
        };
        self.shed
    }

    pub fn shed(&self) -> Shed {
        self.shed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(packets: usize, ms: u64) -> QueueSample {
        QueueSample { packets, wait: Duration::from_millis(ms) }
    }

    #[test]
    fn video_sheds_its_temporal_layers_first_then_everything_and_comes_back_only_when_drained() {
        let mut b = Backlog::default();
        assert_eq!(b.observe(true, sample(3, 10)), Shed::Nothing);
        assert_eq!(b.observe(true, sample(40, 100)), Shed::Nothing, "a short queue is normal pacing");
        assert_eq!(b.observe(true, sample(40, 160)), Shed::UpperTemporalLayers, "old packets");
        assert_eq!(b.observe(true, sample(60, 120)), Shed::UpperTemporalLayers, "no flapping while it drains");
        assert_eq!(b.observe(true, sample(400, 200)), Shed::Everything, "too many packets");
        assert_eq!(b.observe(true, sample(100, 100)), Shed::Everything, "stays off until drained");
        assert_eq!(b.observe(true, sample(200, 150)), Shed::Everything, "never back to a cheaper step");
        assert_eq!(b.observe(true, sample(10, 30)), Shed::Nothing);
        assert_eq!(b.observe(true, sample(0, 0)), Shed::Nothing);
    }

    #[test]
    fn audio_is_cut_only_when_its_own_queue_is_long() {
        let mut b = Backlog::default();
        assert_eq!(b.observe(false, sample(10, 200)), Shed::Nothing);
        assert_eq!(b.observe(false, sample(15, 200)), Shed::Everything);
        assert_eq!(b.observe(false, sample(5, 100)), Shed::Everything);
        assert_eq!(b.observe(false, sample(1, 20)), Shed::Nothing);
        assert_eq!(b.observe(false, sample(1, 400)), Shed::Everything, "old is enough");
    }
}
