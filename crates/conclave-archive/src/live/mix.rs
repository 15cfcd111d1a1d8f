//! Live audio: a bounded jitter buffer of decoded 16-bit mono samples per stream, and the mix
//! of several of them into one frame. Pure sample work; must not decode or pace (the caller
//! takes a frame per tick of its own clock).
//!
//! A buffer plays nothing until it holds `prebuffer` samples (network and decoder jitter
//! would otherwise cut every frame short), falls back to waiting after it runs dry, and drops
//! its oldest samples beyond `capacity` so a stalled consumer never grows it.

use std::collections::VecDeque;

/// One stream's decoded samples.
#[derive(Debug)]
pub struct SampleRing {
    samples: VecDeque<i16>,
    prebuffer: usize,
    capacity: usize,
    playing: bool,
    dropped: u64,
}

impl SampleRing {
    pub fn new(prebuffer: usize, capacity: usize) -> Self {
        Self {
            samples: VecDeque::with_capacity(capacity),
            prebuffer,
            capacity: capacity.max(prebuffer),
            playing: false,
            dropped: 0,
        }
    }

    /// Adds decoded samples, dropping the oldest beyond the capacity.
    pub fn push(&mut self, samples: &[i16]) {
        self.samples.extend(samples.iter().copied());
        let over = self.samples.len().saturating_sub(self.capacity);
        if over > 0 {
            self.samples.drain(..over);
            self.dropped += over as u64;
        }
    }

    /// Adds `out.len()` samples (or silence while buffering) onto `out`, saturating.
    pub fn mix_into(&mut self, out: &mut [i16]) {
        if !self.playing && self.samples.len() >= self.prebuffer {
            self.playing = true;
        }
        if !self.playing {
            return;
        }
        let n = out.len().min(self.samples.len());
        for (o, s) in out.iter_mut().zip(self.samples.drain(..n)) {
            *o = o.saturating_add(s);
        }
        if self.samples.is_empty() {
            self.playing = false;
        }
    }

    pub fn buffered(&self) -> usize {
        self.samples.len()
    }

    /// Samples dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Little-endian bytes of 16-bit samples (the PCM wire format of ffmpeg's `s16le` and of
/// OpenTok's Audio Connector).
pub fn to_le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Samples from little-endian bytes; a trailing odd byte is ignored.
pub fn from_le_bytes(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_prebuffer_then_plays_in_order() {
        let mut r = SampleRing::new(4, 16);
        r.push(&[1, 2, 3]);
        let mut out = [0i16; 2];
        r.mix_into(&mut out);
        assert_eq!(out, [0, 0], "still buffering");
        r.push(&[4]);
        r.mix_into(&mut out);
        assert_eq!(out, [1, 2]);
        r.mix_into(&mut out);
        assert_eq!(out, [4, 6], "mixed onto what was there");
        // Dry: waits for the prebuffer again.
        r.push(&[9]);
        let mut out = [0i16; 2];
        r.mix_into(&mut out);
        assert_eq!(out, [0, 0]);
    }

    #[test]
    fn mixing_saturates_and_capacity_drops_the_oldest() {
        let mut a = SampleRing::new(1, 3);
        a.push(&[30000, 1, 2, 3, 4]);
        assert_eq!(a.buffered(), 3);
        assert_eq!(a.dropped(), 2);
        let mut out = [30000i16, -5, 0];
        a.mix_into(&mut out);
        assert_eq!(out, [30002, -2, 4]);
        let mut b = SampleRing::new(1, 4);
        b.push(&[i16::MAX, i16::MIN]);
        let mut out = [100i16, -100];
        b.mix_into(&mut out);
        assert_eq!(out, [i16::MAX, i16::MIN]);
    }

    #[test]
    fn pcm_bytes_round_trip() {
        let s = [0i16, 1, -1, i16::MAX, i16::MIN];
        assert_eq!(to_le_bytes(&s)[..4], [0, 0, 1, 0]);
        assert_eq!(from_le_bytes(&to_le_bytes(&s)), s);
    }
}
