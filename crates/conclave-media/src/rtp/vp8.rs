//! VP8 over RTP (RFC 7741): the payload descriptor (picture ID, TL0PICIDX, temporal layer,
//! layer sync), keyframe detection, and the picture ID / TL0PICIDX rewriting that keeps a
//! subscriber's VP8 stream continuous across layer switches and dropped pictures.
//!
//! Owns reading and patching the descriptor bytes in place (the descriptor never changes
//! size: a rewritten picture ID keeps the width it came with) and the per-leg picture
//! numbering. It must not decide what to drop (`temporal`, `gate`), nor touch RTP headers
//! (`munger`).

use std::collections::VecDeque;

use super::seq::Unwrapper;

/// A VP8 picture ID and its width on the wire (7 bits, or 15 with the M bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PictureId {
    pub value: u16,
    pub long: bool,
}

impl PictureId {
    fn bits(self) -> u32 {
        if self.long { 15 } else { 7 }
    }
}

/// The parsed payload descriptor of one VP8 RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vp8Descriptor {
    /// N: no other frame references this one.
    pub non_reference: bool,
    /// S: the packet starts a VP8 partition.
    pub start_of_partition: bool,
    pub partition_index: u8,
    pub picture_id: Option<PictureId>,
    pub tl0picidx: Option<u8>,
    /// TID, when the T bit is set.
    pub temporal: Option<u8>,
    /// Y: the frame depends only on the base temporal layer (a safe point to switch up).
    pub layer_sync: bool,
    pub key_index: Option<u8>,
    /// The first packet of a keyframe.
    pub keyframe: bool,
    /// Where the VP8 payload starts.
    pub header_len: usize,
    picture_id_at: usize,
    tl0picidx_at: usize,
}

impl Vp8Descriptor {
    /// Whether the packet starts a picture (partition 0, start bit).
    pub fn starts_picture(&self) -> bool {
        self.start_of_partition && self.partition_index == 0
    }
}

/// Parses the descriptor at the start of a VP8 RTP payload. `None` if it is truncated.
pub(crate) fn parse(payload: &[u8]) -> Option<Vp8Descriptor> {
    let first = *payload.first()?;
    let mut d = Vp8Descriptor {
        non_reference: first & 0x20 != 0,
        start_of_partition: first & 0x10 != 0,
        partition_index: first & 0x07,
        picture_id: None,
        tl0picidx: None,
        temporal: None,
        layer_sync: false,
        key_index: None,
        keyframe: false,
        header_len: 1,
        picture_id_at: 0,
        tl0picidx_at: 0,
    };
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            let b = *payload.get(at)?;
            d.picture_id_at = at;
            if b & 0x80 != 0 {
                let low = *payload.get(at + 1)?;
                d.picture_id = Some(PictureId { value: (u16::from(b & 0x7f) << 8) | u16::from(low), long: true });
                at += 2;
            } else {
                d.picture_id = Some(PictureId { value: u16::from(b), long: false });
                at += 1;
            }
        }
        if ext & 0x40 != 0 {
            d.tl0picidx = Some(*payload.get(at)?);
            d.tl0picidx_at = at;
            at += 1;
        }
        if ext & 0x30 != 0 {
            let b = *payload.get(at)?;
            if ext & 0x20 != 0 {
                d.temporal = Some(b >> 6);
                d.layer_sync = b & 0x20 != 0;
            }
            if ext & 0x10 != 0 {
                d.key_index = Some(b & 0x1f);
            }
            at += 1;
        }
    }
    d.header_len = at;
    // The VP8 payload header's P bit is 0 on a keyframe; it is only there at partition 0's start.
    d.keyframe = d.starts_picture() && payload.get(at).is_some_and(|b| b & 0x01 == 0);
    Some(d)
}

/// Writes a picture ID (masked to the width the packet carries) into a payload parsed as `d`.
pub(crate) fn write_picture_id(payload: &mut [u8], d: &Vp8Descriptor, value: u16) {
    let Some(pid) = d.picture_id else { return };
    if pid.long {
        let value = value & 0x7fff;
        payload[d.picture_id_at] = 0x80 | (value >> 8) as u8;
        payload[d.picture_id_at + 1] = value as u8;
    } else {
        payload[d.picture_id_at] = (value & 0x7f) as u8;
    }
}

/// Writes a TL0PICIDX into a payload parsed as `d` (if it carries one).
pub(crate) fn write_tl0picidx(payload: &mut [u8], d: &Vp8Descriptor, value: u8) {
    if d.tl0picidx.is_some() {
        payload[d.tl0picidx_at] = value;
    }
}

/// The descriptor fields one packet goes out with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Vp8Rewrite {
    pub picture_id: Option<u16>,
    pub tl0picidx: Option<u8>,
}

impl Vp8Rewrite {
    /// Patches a payload parsed as `d`.
    pub fn apply(&self, payload: &mut [u8], d: &Vp8Descriptor) {
        if let Some(pid) = self.picture_id {
            write_picture_id(payload, d, pid);
        }
        if let Some(tl0) = self.tl0picidx {
            write_tl0picidx(payload, d, tl0);
        }
    }
}

/// How many picture ID offset changes (and dropped pictures) are remembered for late packets.
const PICTURE_HISTORY: usize = 32;

/// One leg's VP8 picture numbering: picture IDs go up by one per forwarded picture, and
/// TL0PICIDX by one per forwarded base-layer picture, whatever the source.
#[derive(Debug, Clone, Default)]
pub(crate) struct PictureMunger {
    /// The current source's picture IDs (and their width in bits).
    pictures: Option<(Unwrapper, u32)>,
    /// From an incoming extended picture ID on, the offset to the outgoing one (newest last).
    offsets: VecDeque<(u64, u64)>,
    /// Incoming extended picture IDs dropped whole (newest last).
    dropped: VecDeque<u64>,
    last_out_picture: Option<u64>,
    /// The next forwarded picture re-anchors (the leg resumes after a pause).
    restart: bool,
    tl0_offset: u8,
    last_out_tl0: Option<u8>,
}

impl PictureMunger {
    /// The fields a forwarded packet goes out with. `anchored`: the sequence munger started a
    /// new source at this packet; `late`: it fills a gap (its picture may be an older one).
    pub fn rewrite(&mut self, d: &Vp8Descriptor, anchored: bool, late: bool) -> Vp8Rewrite {
        // A pending restart is used up by the first in-order picture, even one anchored
        // anyway: left pending, it would re-anchor the next picture, mid-GOP.
        let restart = !late && std::mem::take(&mut self.restart);
        let anchored = anchored || restart;
        let mut out = Vp8Rewrite::default();
        if let Some(pid) = d.picture_id {
            let width_changed = self.pictures.as_ref().is_some_and(|(_, bits)| *bits != pid.bits());
            if anchored || width_changed || self.pictures.is_none() {
                self.anchor_pictures(pid);
            }
            let (unwrapper, bits) = self.pictures.as_mut().expect("anchored above");
            let mask = (1u64 << *bits) - 1;
            let incoming =
                if late { unwrapper.peek(u64::from(pid.value)) } else { unwrapper.unwrap(u64::from(pid.value)) };
            let offset = self.offset_for(incoming);
            let outgoing = incoming.wrapping_add(offset);
            if !late {
                self.last_out_picture = Some(self.last_out_picture.map_or(outgoing, |l| l.max(outgoing)));
            }
            out.picture_id = Some((outgoing & mask) as u16);
        }
        if let Some(tl0) = d.tl0picidx {
            if anchored || self.last_out_tl0.is_none() {
                let next = self.last_out_tl0.map_or(tl0, |l| l.wrapping_add(1));
                self.tl0_offset = next.wrapping_sub(tl0);
            }
            let outgoing = tl0.wrapping_add(self.tl0_offset);
            if !late {
                self.last_out_tl0 = Some(outgoing);
            }
            out.tl0picidx = Some(outgoing);
        }
        out
    }

    /// The next forwarded picture follows the last one sent, whatever its ID (after a pause,
    /// whose pictures were never counted).
    pub fn restart(&mut self) {
        self.restart = true;
    }

    /// The leg drops this packet's whole picture (an in-order packet): later pictures take
    /// its number. Counted once per picture, whichever of its packets comes first.
    pub fn drop_picture(&mut self, d: &Vp8Descriptor) {
        let Some(pid) = d.picture_id else { return };
        let Some((unwrapper, bits)) = self.pictures.as_mut() else { return };
        if *bits != pid.bits() {
            return;
        }
        let incoming = unwrapper.unwrap(u64::from(pid.value));
        let already = self.dropped.back().is_some_and(|&d| d >= incoming)
            || self.offsets.back().is_some_and(|&(from, _)| from > incoming);
        if already {
            return;
        }
        let offset = self.offset_for(incoming).wrapping_sub(1);
        self.offsets.push_back((incoming + 1, offset));
        self.dropped.push_back(incoming);
        while self.offsets.len() > PICTURE_HISTORY {
            self.offsets.pop_front();
        }
        while self.dropped.len() > PICTURE_HISTORY {
            self.dropped.pop_front();
        }
    }

    /// Whether the picture of this (late) packet was dropped whole: its packets must not go
    /// out, as its number went to the next picture.
    pub fn was_dropped(&self, d: &Vp8Descriptor) -> bool {
        let (Some(pid), Some((unwrapper, _))) = (d.picture_id, self.pictures.as_ref()) else { return false };
        self.dropped.contains(&unwrapper.peek(u64::from(pid.value)))
    }

    fn anchor_pictures(&mut self, pid: PictureId) {
        let unwrapper = Unwrapper::new(pid.bits());
        let incoming = unwrapper.peek(u64::from(pid.value));
        let outgoing = self.last_out_picture.map_or(incoming, |l| l + 1);
        self.pictures = Some((unwrapper, pid.bits()));
        self.offsets.clear();
        self.dropped.clear();
        self.offsets.push_back((0, outgoing.wrapping_sub(incoming)));
    }

    /// The offset in force for an incoming extended picture ID.
    fn offset_for(&self, incoming: u64) -> u64 {
        self.offsets.iter().rev().find(|(from, _)| *from <= incoming).or(self.offsets.front()).map_or(0, |(_, o)| *o)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A VP8 payload with a 15-bit picture ID, TL0PICIDX and TID, and two payload bytes.
    pub(crate) fn vp8_packet(pid: u16, tl0: u8, tid: u8, sync: bool, start: bool, keyframe: bool) -> Vec<u8> {
        let first = 0x80 | if start { 0x10 } else { 0 };
        let tbyte = (tid << 6) | if sync { 0x20 } else { 0 };
        let p_bit = if keyframe { 0x00 } else { 0x01 };
        vec![first, 0xe0, 0x80 | (pid >> 8) as u8, pid as u8, tl0, tbyte, p_bit, 0xaa]
    }

    #[test]
    fn parses_a_full_descriptor() {
        let d = parse(&vp8_packet(0x1234, 7, 2, true, true, false)).unwrap();
        assert_eq!(d.picture_id, Some(PictureId { value: 0x1234, long: true }));
        assert_eq!((d.tl0picidx, d.temporal, d.layer_sync), (Some(7), Some(2), true));
        assert_eq!(d.header_len, 6);
        assert!(d.starts_picture() && !d.keyframe);
        assert!(parse(&vp8_packet(1, 0, 0, false, true, true)).unwrap().keyframe);
        assert!(!parse(&vp8_packet(1, 0, 0, false, false, true)).unwrap().keyframe, "only at a picture's start");
    }

    #[test]
    fn parses_minimal_and_short_descriptors() {
        let d = parse(&[0x10, 0x00]).unwrap();
        assert_eq!((d.picture_id, d.temporal, d.header_len), (None, None, 1));
        assert!(d.keyframe);
        let short = parse(&[0x90, 0x80, 0x05, 0x01]).unwrap();
        assert_eq!(short.picture_id, Some(PictureId { value: 5, long: false }));
        assert!(!short.keyframe);
        let key_index = parse(&[0x90, 0x10, 0x1f, 0x00]).unwrap();
        assert_eq!((key_index.key_index, key_index.temporal, key_index.header_len), (Some(31), None, 3));
        assert!(parse(&[]).is_none());
        assert!(parse(&[0x80]).is_none(), "X without its byte");
        assert!(parse(&[0x80, 0x80, 0x81]).is_none(), "a long picture ID cut short");
    }

    #[test]
    fn rewrites_in_place_at_the_incoming_width() {
        let mut p = vp8_packet(0x1234, 7, 0, false, true, false);
        let d = parse(&p).unwrap();
        Vp8Rewrite { picture_id: Some(0x8001), tl0picidx: Some(200) }.apply(&mut p, &d);
        let again = parse(&p).unwrap();
        assert_eq!(again.picture_id, Some(PictureId { value: 1, long: true }), "15 bits wrap");
        assert_eq!(again.tl0picidx, Some(200));
        assert_eq!(&p[6..], &[0x01, 0xaa], "the payload is untouched");
        let mut short = vec![0x90, 0x80, 0x05, 0x01];
        let d = parse(&short).unwrap();
        write_picture_id(&mut short, &d, 130);
        assert_eq!(parse(&short).unwrap().picture_id, Some(PictureId { value: 2, long: false }));
    }

    #[test]
    fn pictures_continue_across_a_switch_and_dropped_pictures() {
        let mut m = PictureMunger::default();
        let d = |pid, tl0, tid| parse(&vp8_packet(pid, tl0, tid, false, true, false)).unwrap();
        assert_eq!(m.rewrite(&d(100, 5, 0), true, false), Vp8Rewrite { picture_id: Some(100), tl0picidx: Some(5) });
        m.drop_picture(&d(101, 5, 1));
        m.drop_picture(&d(101, 5, 1));
        assert_eq!(m.rewrite(&d(102, 6, 0), false, false).picture_id, Some(101), "the dropped one's number");
        // A switch to a layer numbered elsewhere.
        let s = m.rewrite(&d(9000, 77, 0), true, false);
        assert_eq!(s, Vp8Rewrite { picture_id: Some(102), tl0picidx: Some(7) });
        assert_eq!(m.rewrite(&d(9001, 77, 2), false, false), Vp8Rewrite { picture_id: Some(103), tl0picidx: Some(7) });
    }

    #[test]
    fn a_restart_is_used_up_by_an_anchored_picture() {
        // A new leg told to wait for a keyframe (the subscriber connected): its first picture
        // anchors, and the pictures after it keep the publisher's TL0PICIDX sequence. A
        // TL0PICIDX one ahead of the keyframe's makes a receiver wait for a base-layer
        // picture that never comes (Chrome stashes every frame until the next keyframe).
        let mut m = PictureMunger::default();
        m.restart();
        let d = |pid, tl0, tid, key| parse(&vp8_packet(pid, tl0, tid, false, true, key)).unwrap();
        assert_eq!(
            m.rewrite(&d(500, 40, 0, true), true, false),
            Vp8Rewrite { picture_id: Some(500), tl0picidx: Some(40) }
        );
        assert_eq!(
            m.rewrite(&d(501, 40, 2, false), false, false),
            Vp8Rewrite { picture_id: Some(501), tl0picidx: Some(40) }
        );
        assert_eq!(m.rewrite(&d(502, 40, 1, false), false, false).tl0picidx, Some(40));
        assert_eq!(m.rewrite(&d(504, 41, 0, false), false, false).tl0picidx, Some(41));
    }

    #[test]
    fn late_packets_keep_the_numbering_of_their_time() {
        let mut m = PictureMunger::default();
        let d = |pid, tid| parse(&vp8_packet(pid, 0, tid, false, false, false)).unwrap();
        m.rewrite(&d(10, 0), true, false);
        m.rewrite(&d(12, 0), false, false); // picture 11 lost upstream
        m.drop_picture(&d(13, 1));
        assert_eq!(m.rewrite(&d(14, 0), false, false).picture_id, Some(13));
        assert_eq!(m.rewrite(&d(11, 0), false, true).picture_id, Some(11), "before the drop: no shift");
        assert!(m.was_dropped(&d(13, 1)));
        assert!(!m.was_dropped(&d(11, 0)));
    }

    proptest! {
        /// Forwarded pictures are numbered 1, 2, 3… whatever is dropped, across wraps.
        #[test]
        fn forwarded_pictures_are_consecutive(start in 0u16..0x8000, drops in prop::collection::vec(any::<bool>(), 1..300)) {
            let mut m = PictureMunger::default();
            let mut outs = Vec::new();
            for (i, drop) in drops.into_iter().enumerate() {
                let pid = start.wrapping_add(i as u16) & 0x7fff;
                let d = parse(&vp8_packet(pid, 0, u8::from(drop), false, true, false)).unwrap();
                if drop && i > 0 {
                    m.drop_picture(&d);
                } else {
                    outs.push(m.rewrite(&d, i == 0, false).picture_id.unwrap());
                }
            }
            for pair in outs.windows(2) {
                prop_assert_eq!(pair[1], (pair[0] + 1) & 0x7fff);
            }
        }
    }
}
