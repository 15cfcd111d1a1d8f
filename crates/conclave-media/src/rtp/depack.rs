//! Frame reassembly for recording taps in RTP mode (issue 16, item 2): a tapped track's RTP
//! packets back into the frames the archiver takes, as str0m's frame mode would have made
//! them. We write our own because str0m 0.25 exports no VP9 or Opus depacketizer, and its
//! frame assembly (the receive buffer) is exactly what RTP mode avoids.
//!
//! Owns one [`Depacketizer`] per tapped stream (a track, or one simulcast layer): ordering
//! packets by sequence number, cutting frames (one timestamp, a codec start, the marker),
//! giving up on incomplete ones (the next frame is then not `contiguous`), and the payload
//! formats of the frames (VP8 and VP9 with their descriptors stripped, H.264 as Annex B,
//! Opus as is). It must not decide what is recorded (tap layers, force-mute: `forward_rtp`),
//! nor touch the packets forwarded to subscribers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::codec::Codec;
use super::seq::Unwrapper;
use super::{h264, vp8, vp9};

/// An incomplete frame is given up once this many packets wait behind it...
const MAX_HELD_PACKETS: usize = 128;
/// ...or once a packet arrives this long after the oldest one waiting (time enough for a
/// retransmission to fill the hole).
const MAX_HOLD: Duration = Duration::from_millis(300);

/// A sequence number this far from the expected one is a restarted stream, not reordering.
const MAX_JUMP: u64 = 3000;

/// The Annex B start code str0m's H.264 depacketizer puts before each NAL unit.
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// One reassembled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// A video keyframe (never set on audio, as in str0m's frame mode).
    pub keyframe: bool,
    /// False when something was lost just before it (or it follows a dropped frame).
    pub contiguous: bool,
    /// When its first packet arrived.
    pub arrival: Instant,
    /// The RTP timestamp, extended, in µs of the codec's clock.
    pub media_time_us: u64,
    pub data: Vec<u8>,
}

/// A packet waiting to be part of a frame.
#[derive(Debug)]
struct Held {
    timestamp: u32,
    marker: bool,
    arrival: Instant,
    payload: Vec<u8>,
}

/// Reassembles the frames of one RTP stream of a known codec.
#[derive(Debug)]
pub(crate) struct Depacketizer {
    codec: Codec,
    seqs: Unwrapper,
    timestamps: Unwrapper,
    /// Packets not yet in a frame, by extended sequence number.
    held: BTreeMap<u64, Held>,
    /// The sequence number after the last frame handed out or given up.
    next: Option<u64>,
    /// Something was given up since the last frame handed out.
    broken: bool,
}

impl Depacketizer {
    pub fn new(codec: Codec) -> Depacketizer {
        Depacketizer {
            codec,
            seqs: Unwrapper::sequence(),
            timestamps: Unwrapper::new(32),
            held: BTreeMap::new(),
            next: None,
            broken: false,
        }
    }

    /// Takes one packet and returns the frames it completes, in order.
    pub fn push(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8], arrival: Instant) -> Vec<Frame> {
        if self.next.is_some_and(|n| self.seqs.peek(u64::from(seq)).abs_diff(n) > MAX_JUMP) {
            // A restarted sender (a new SSRC, new numbering): start over, after a break.
            *self = Depacketizer { broken: true, ..Depacketizer::new(self.codec) };
        }
        let seq = self.seqs.unwrap(u64::from(seq));
        if self.next.is_some_and(|n| seq < n) || payload.is_empty() {
            return Vec::new(); // a late duplicate, or a frame already given up
        }
        self.held.entry(seq).or_insert_with(|| Held { timestamp, marker, arrival, payload: payload.to_vec() });
        if self.held.len() > 4 * MAX_HELD_PACKETS {
            // Nothing in there makes a frame (a stream we cannot parse): start over.
            self.held.clear();
            self.broken = self.next.is_some();
            self.next = None;
        }
        let mut frames = Vec::new();
        while let Some(frame) = self.next_frame(arrival) {
            frames.push(frame);
        }
        frames
    }

    /// The next frame to hand out, if it is complete or the frames before it are given up.
    fn next_frame(&mut self, now: Instant) -> Option<Frame> {
        let first = *self.held.keys().next()?;
        if self.next == Some(first)
            && let Some(end) = self.complete_from(first)
        {
            return Some(self.take(first, end));
        }
        // Nothing to hand out at the head: is there a complete frame further on?
        let later = self.held.keys().copied().filter(|s| self.next != Some(*s)).find_map(|s| {
            let start = self.starts_frame(s);
            start.then(|| self.complete_from(s).map(|end| (s, end))).flatten()
        });
        let (start, end) = later?;
        if self.next.is_none() && start == first {
            // The stream's first frame: nothing is known to be missing before it.
            return Some(self.take(start, end));
        }
        let oldest = self.held.values().map(|h| h.arrival).min()?;
        let overdue = now.saturating_duration_since(oldest) >= MAX_HOLD || self.held.len() > MAX_HELD_PACKETS;
        if !overdue && self.next.is_some() {
            return None;
        }
        self.held.retain(|s, _| *s >= start);
        self.broken |= self.next.is_some();
        Some(self.take(start, end))
    }

    /// Whether the packet at `seq` begins a frame: the codec says so and the packet before
    /// it, if held, carries another timestamp.
    fn starts_frame(&self, seq: u64) -> bool {
        let Some(p) = self.held.get(&seq) else { return false };
        let previous_same =
            seq.checked_sub(1).and_then(|s| self.held.get(&s)).is_some_and(|q| q.timestamp == p.timestamp);
        !previous_same && starts(self.codec, &p.payload)
    }

    /// The last sequence number of the whole frame starting at `start`, if all of it is held.
    fn complete_from(&self, start: u64) -> Option<u64> {
        let timestamp = self.held.get(&start)?.timestamp;
        let mut seq = start;
        loop {
            let p = self.held.get(&seq)?;
            if p.timestamp != timestamp {
                return None; // the frame's end (its marker) is missing
            }
            if p.marker || self.codec == Codec::Opus {
                return Some(seq);
            }
            seq += 1;
        }
    }

    /// Removes the packets `start..=end` and makes them a frame.
    fn take(&mut self, start: u64, end: u64) -> Frame {
        let rest = self.held.split_off(&(end + 1));
        let packets: Vec<Held> = std::mem::replace(&mut self.held, rest).into_values().collect();
        debug_assert_eq!(packets.len() as u64, end - start + 1, "a frame is a run of held packets");
        self.next = Some(end + 1);
        let contiguous = !std::mem::take(&mut self.broken);
        let first = &packets[0];
        let extended = self.timestamps.unwrap(u64::from(first.timestamp)).saturating_sub(1 << 32);
        let media_time_us = extended * 1_000_000 / u64::from(self.codec.clock_rate());
        let (keyframe, data) = assemble(self.codec, packets.iter().map(|p| p.payload.as_slice()));
        Frame { keyframe, contiguous, arrival: first.arrival, media_time_us, data }
    }
}

/// Whether a payload can be the first packet of a frame.
fn starts(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8::parse(payload).is_some_and(|d| d.starts_picture()),
        Codec::Vp9 => vp9::parse(payload).is_some_and(|d| d.begins_frame),
        Codec::H264 => match payload.first().map(|b| b & 0x1f) {
            Some(28) => payload.get(1).is_some_and(|fu| fu & 0x80 != 0),
            Some(1..=24) => true,
            _ => false,
        },
        Codec::Opus | Codec::Other { .. } => true,
    }
}

/// A frame's keyframe flag and bytes from its packets' payloads, in order.
fn assemble<'a>(codec: Codec, payloads: impl Iterator<Item = &'a [u8]>) -> (bool, Vec<u8>) {
    let mut data = Vec::new();
    let mut keyframe = false;
    for (i, payload) in payloads.enumerate() {
        match codec {
            Codec::Vp8 => {
                let Some(d) = vp8::parse(payload) else { continue };
                keyframe |= i == 0 && d.keyframe;
                data.extend_from_slice(&payload[d.header_len..]);
            }
            Codec::Vp9 => {
                let Some(d) = vp9::parse(payload) else { continue };
                keyframe |= i == 0 && d.keyframe;
                data.extend_from_slice(&payload[d.header_len.min(payload.len())..]);
            }
            Codec::H264 => {
                keyframe |= h264::inspect(payload).is_some_and(|info| info.idr);
                h264_annex_b(payload, &mut data);
            }
            // As in frame mode, audio frames are never flagged keyframes.
            Codec::Opus | Codec::Other { .. } => data.extend_from_slice(payload),
        }
    }
    (keyframe, data)
}

/// Appends one H.264 RTP payload as Annex B, as str0m's depacketizer does: a single NAL
/// unit and each unit of a STAP-A after a start code; an FU-A fragment's bytes, after a
/// start code and the reconstructed NAL header when it is the first fragment.
fn h264_annex_b(payload: &[u8], out: &mut Vec<u8>) {
    let Some(&header) = payload.first() else { return };
    match header & 0x1f {
        1..=23 => {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(payload);
        }
        24 => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(nal) = rest.get(2..2 + size) else { return };
                out.extend_from_slice(&START_CODE);
                out.extend_from_slice(nal);
                rest = &rest[2 + size..];
            }
        }
        28 => {
            let Some(&fu) = payload.get(1) else { return };
            if fu & 0x80 != 0 {
                out.extend_from_slice(&START_CODE);
                out.push((header & 0x60) | (fu & 0x1f));
            }
            out.extend_from_slice(&payload[2..]);
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "depack_tests.rs"]
mod tests;
