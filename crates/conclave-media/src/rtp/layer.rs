//! Simulcast layer naming and ranking: which of a publisher's layers (RIDs) is best, which
//! one a subscriber's wish names, and which one fits a bandwidth budget.
//!
//! Owns pure functions over RID lists only. It must not hold per-subscriber state (that is
//! `selector`) nor touch str0m's `Rtc` or packets; `Rid` is used as a plain value.

use str0m::media::Rid;

/// Simulcast layer names come in two schemes: protocol v1 encodes `l`/`m`/`h` (low, mid,
/// high), OpenTok.js `q`/`h`/`f` (quarter, half, full). `h` is the top layer in the first and
/// the middle one in the second, so a layer's rank depends on the set it belongs to.
pub(crate) fn layer_rank(r: &Rid, layers: &[Rid]) -> u8 {
    let quarter_half_full = layers.iter().any(|l| matches!(&**l, "f" | "q"));
    match (&**r, quarter_half_full) {
        ("f", _) | ("h", false) => 3,
        ("h", true) | ("m", _) => 2,
        ("l" | "q", _) => 1,
        _ => 0,
    }
}

/// Bits/s a layer needs at most (what the SDKs' encodings send).
pub(crate) fn layer_need_bps(rid: &Rid, layers: &[Rid]) -> u64 {
    match layer_rank(rid, layers) {
        3 => 1_000_000,
        2 => 350_000,
        _ => 0,
    }
}

/// A wish (always in protocol v1's names, `l`/`m`/`h`, see `conclave_core::signal`) in the
/// publisher's own layers, by rank, never by name (`h` is the top layer for v1 and half size for
/// OpenTok.js): the best layer not above the wish, else the smallest there is.
pub(crate) fn same_layer_in(wish: Rid, layers: &[Rid]) -> Option<Rid> {
    let wanted = layer_rank(&wish, &[wish]);
    let rank = |l: &Rid| layer_rank(l, layers);
    layers
        .iter()
        .copied()
        .filter(|l| rank(l) <= wanted)
        .max_by_key(rank)
        .or_else(|| layers.iter().copied().min_by_key(rank))
}

/// The preferred layer if the budget allows it, else the best one that fits (or the lowest).
pub(crate) fn cap_layer(preferred: Rid, layers: &[Rid], budget_bps: u64) -> Rid {
    if layer_need_bps(&preferred, layers) <= budget_bps {
        return preferred;
    }
    let rank = |r: &Rid| layer_rank(r, layers);
    layers
        .iter()
        .copied()
        .filter(|r| rank(r) <= rank(&preferred) && layer_need_bps(r, layers) <= budget_bps)
        .max_by_key(rank)
        .or_else(|| layers.iter().copied().min_by_key(rank))
        .unwrap_or(preferred)
}

/// The best simulcast layer of either naming scheme, else the first seen.
pub(crate) fn best_layer(layers: &[Rid]) -> Option<Rid> {
    layers.iter().copied().max_by_key(|r| layer_rank(r, layers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_follow_the_bandwidth_estimate() {
        let layers: Vec<Rid> = ["l", "m", "h"].into_iter().map(Rid::from).collect();
        let h = Rid::from("h");
        assert_eq!(&*cap_layer(h, &layers, 3_000_000), "h");
        assert_eq!(&*cap_layer(h, &layers, 600_000), "m");
        assert_eq!(&*cap_layer(h, &layers, 100_000), "l");
        assert_eq!(&*cap_layer(Rid::from("m"), &layers, 3_000_000), "m", "a preference is a ceiling");
        assert_eq!(&*best_layer(&layers).unwrap(), "h");
        // OpenTok.js names its layers q/h/f: there `h` is half, not high.
        let otjs: Vec<Rid> = ["f", "h", "q"].into_iter().map(Rid::from).collect();
        assert_eq!(&*best_layer(&otjs).unwrap(), "f");
        assert_eq!(&*cap_layer(Rid::from("f"), &otjs, 600_000), "h");
        assert_eq!(&*cap_layer(Rid::from("f"), &otjs, 100_000), "q");
        assert_eq!(same_layer_in(Rid::from("l"), &otjs).as_deref(), Some("q"), "a v1 wish in OpenTok names");
        assert_eq!(same_layer_in(Rid::from("m"), &otjs).as_deref(), Some("h"));
        assert_eq!(same_layer_in(Rid::from("h"), &otjs).as_deref(), Some("f"), "by rank, never by name");
        assert_eq!(same_layer_in(Rid::from("h"), &layers).as_deref(), Some("h"));
        let two: Vec<Rid> = ["f", "h"].into_iter().map(Rid::from).collect();
        assert_eq!(same_layer_in(Rid::from("l"), &two).as_deref(), Some("h"), "no quarter: the smallest there is");
    }
}
