//! Simulcast layer selection for one subscriber leg: which of a publisher's layers to
//! forward, from the subscriber's bandwidth estimate, its preference, and which layer's
//! keyframe is at hand.
//!
//! Owns the layer being forwarded and the switching rule: a switch happens only on a
//! keyframe of the layer switched to. The wanted layer is the preferred one (or the best),
//! capped by the budget (`layer`). Until a layer is forwarded (or when the forwarded one
//! stops), a keyframe of any layer not above the wanted one starts the stream at once,
//! rather than waiting for the wanted layer's keyframe. It must not hold the gate, rewrite
//! anything, or send keyframe requests (it says which layer needs one).

use str0m::media::Rid;

use super::layer::{best_layer, cap_layer, layer_rank, same_layer_in};

/// What the leg's subscriber asks for, and what the publisher sends now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerChoice<'a> {
    /// The publisher's layers that are being received now.
    pub layers: &'a [Rid],
    /// The subscriber's preference (`None`: the best there is).
    pub preferred: Option<Rid>,
    /// Bits/s the subscriber can take for this video.
    pub budget_bps: u64,
}

/// What to do with one packet of a simulcast layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerDecision {
    /// It is of the layer being forwarded.
    Forward,
    /// It is the keyframe the leg switches on: from it on, this layer is forwarded.
    Switch,
    /// Another layer's.
    Drop,
}

/// One leg's simulcast layer.
#[derive(Debug, Clone, Default)]
pub(crate) struct SimulcastSelector {
    current: Option<Rid>,
}

impl SimulcastSelector {
    /// The layer being forwarded.
    pub fn current(&self) -> Option<Rid> {
        self.current
    }

    /// The layer the leg should forward now.
    pub fn wanted(&self, choice: &LayerChoice) -> Option<Rid> {
        let preferred =
            choice.preferred.and_then(|p| same_layer_in(p, choice.layers)).or_else(|| best_layer(choice.layers))?;
        Some(cap_layer(preferred, choice.layers, choice.budget_bps))
    }

    /// Decides on a packet of layer `rid`. Also returns a layer whose keyframe the leg waits
    /// for (to ask the publisher), if any.
    pub fn on_packet(&mut self, rid: Rid, keyframe: bool, choice: &LayerChoice) -> (LayerDecision, Option<Rid>) {
        let wanted = self.wanted(choice).unwrap_or(rid);
        let current_live = self.current.filter(|c| choice.layers.contains(c));
        if current_live == Some(rid) {
            return (LayerDecision::Forward, (wanted != rid).then_some(wanted));
        }
        let rank = |r: &Rid| layer_rank(r, choice.layers);
        let starts_stream = current_live.is_none() && rank(&rid) <= rank(&wanted);
        if keyframe && (rid == wanted || starts_stream) {
            self.current = Some(rid);
            return (LayerDecision::Switch, (wanted != rid).then_some(wanted));
        }
        // Another layer's packet: the leg waits for the wanted layer's keyframe, unless it
        // forwards that layer already.
        (LayerDecision::Drop, (current_live != Some(wanted)).then_some(wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rids(names: &[&str]) -> Vec<Rid> {
        names.iter().map(|n| Rid::from(*n)).collect()
    }

    fn choice(layers: &[Rid], budget_bps: u64) -> LayerChoice<'_> {
        LayerChoice { layers, preferred: None, budget_bps }
    }

    #[test]
    fn starts_on_the_first_keyframe_at_or_below_the_wanted_layer() {
        let layers = rids(&["l", "m", "h"]);
        let c = choice(&layers, 600_000); // room for m
        let mut s = SimulcastSelector::default();
        assert_eq!(s.on_packet(Rid::from("h"), true, &c), (LayerDecision::Drop, Some(Rid::from("m"))));
        assert_eq!(s.on_packet(Rid::from("m"), false, &c), (LayerDecision::Drop, Some(Rid::from("m"))));
        assert_eq!(
            s.on_packet(Rid::from("l"), true, &c),
            (LayerDecision::Switch, Some(Rid::from("m"))),
            "l now, m later"
        );
        assert_eq!(s.on_packet(Rid::from("l"), false, &c), (LayerDecision::Forward, Some(Rid::from("m"))));
        assert_eq!(s.on_packet(Rid::from("m"), false, &c).0, LayerDecision::Drop);
        assert_eq!(s.on_packet(Rid::from("m"), true, &c), (LayerDecision::Switch, None));
        assert_eq!(s.on_packet(Rid::from("l"), true, &c).0, LayerDecision::Drop, "no way back down without cause");
        assert_eq!(s.current(), Some(Rid::from("m")));
    }

    #[test]
    fn follows_the_estimate_down_and_up_on_keyframes() {
        let layers = rids(&["l", "m", "h"]);
        let mut s = SimulcastSelector::default();
        let rich = choice(&layers, 5_000_000);
        assert_eq!(s.on_packet(Rid::from("h"), true, &rich).0, LayerDecision::Switch);
        let poor = choice(&layers, 100_000);
        assert_eq!(s.on_packet(Rid::from("h"), false, &poor), (LayerDecision::Forward, Some(Rid::from("l"))));
        assert_eq!(s.on_packet(Rid::from("l"), false, &poor).0, LayerDecision::Drop, "down on a keyframe too");
        assert_eq!(s.on_packet(Rid::from("l"), true, &poor).0, LayerDecision::Switch);
        assert_eq!(s.on_packet(Rid::from("h"), false, &poor).0, LayerDecision::Drop);
        assert_eq!(s.on_packet(Rid::from("h"), true, &rich).0, LayerDecision::Switch);
    }

    #[test]
    fn a_preference_is_a_ceiling_in_the_publishers_naming() {
        let layers = rids(&["q", "h", "f"]);
        let mut s = SimulcastSelector::default();
        let c = LayerChoice { layers: &layers, preferred: Some(Rid::from("m")), budget_bps: 5_000_000 };
        assert_eq!(s.wanted(&c), Some(Rid::from("h")), "v1's m is OpenTok.js's h");
        assert_eq!(s.on_packet(Rid::from("f"), true, &c).0, LayerDecision::Drop);
        assert_eq!(s.on_packet(Rid::from("h"), true, &c).0, LayerDecision::Switch);
    }

    #[test]
    fn a_layer_that_stops_is_replaced_by_any_keyframe_below() {
        let all = rids(&["l", "m", "h"]);
        let mut s = SimulcastSelector::default();
        assert_eq!(s.on_packet(Rid::from("h"), true, &choice(&all, 5_000_000)).0, LayerDecision::Switch);
        let without_h = rids(&["l", "m"]);
        let c = choice(&without_h, 5_000_000);
        assert_eq!(s.on_packet(Rid::from("l"), true, &c).0, LayerDecision::Switch, "h stopped: l keeps video going");
        assert_eq!(s.on_packet(Rid::from("m"), true, &c).0, LayerDecision::Switch, "then the best left");
    }
}
