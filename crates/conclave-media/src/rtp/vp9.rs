//! VP9 over RTP (RFC 9628): the payload descriptor, for keyframe detection and the temporal
//! and spatial layer of each packet.
//!
//! Owns parsing the descriptor (picture ID, layer indices, TL0PICIDX, reference diffs and
//! the scalability structure's length). It must not rewrite payloads (VP9 subscribers get
//! picture IDs as sent: a leg forwards one VP9 source), nor decide what to forward.

use super::vp8::PictureId;

/// The parsed payload descriptor of one VP9 RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vp9Descriptor {
    pub picture_id: Option<PictureId>,
    /// P: the frame is predicted from an earlier picture.
    pub inter_picture: bool,
    /// F: flexible mode (reference diffs instead of TL0PICIDX).
    pub flexible: bool,
    /// B and E: the packet begins / ends a (layer) frame.
    pub begins_frame: bool,
    pub ends_frame: bool,
    pub temporal: Option<u8>,
    pub spatial: Option<u8>,
    /// U: a switching-up point for the temporal layer.
    pub switching_up: bool,
    /// D: the frame depends on the spatial layer below it.
    pub inter_layer: bool,
    pub tl0picidx: Option<u8>,
    /// V: it carries the scalability structure (sent with keyframes).
    pub has_scalability_structure: bool,
    /// The first packet of a keyframe: not inter-predicted, frame start, lowest spatial layer.
    pub keyframe: bool,
    /// Where the VP9 payload starts.
    pub header_len: usize,
}

/// Parses the descriptor at the start of a VP9 RTP payload. `None` if it is truncated.
pub(crate) fn parse(payload: &[u8]) -> Option<Vp9Descriptor> {
    let first = *payload.first()?;
    let bit = |mask: u8| first & mask != 0;
    let mut d = Vp9Descriptor {
        picture_id: None,
        inter_picture: bit(0x40),
        flexible: bit(0x10),
        begins_frame: bit(0x08),
        ends_frame: bit(0x04),
        temporal: None,
        spatial: None,
        switching_up: false,
        inter_layer: false,
        tl0picidx: None,
        has_scalability_structure: bit(0x02),
        keyframe: false,
        header_len: 0,
    };
    let mut at = 1;
    if bit(0x80) {
        let b = *payload.get(at)?;
        if b & 0x80 != 0 {
            let low = *payload.get(at + 1)?;
            d.picture_id = Some(PictureId { value: (u16::from(b & 0x7f) << 8) | u16::from(low), long: true });
            at += 2;
        } else {
            d.picture_id = Some(PictureId { value: u16::from(b), long: false });
            at += 1;
        }
    }
    if bit(0x20) {
        let b = *payload.get(at)?;
        d.temporal = Some(b >> 5);
        d.switching_up = b & 0x10 != 0;
        d.spatial = Some((b >> 1) & 0x07);
        d.inter_layer = b & 0x01 != 0;
        at += 1;
        if !d.flexible {
            d.tl0picidx = Some(*payload.get(at)?);
            at += 1;
        }
    }
    if d.flexible && d.inter_picture {
        // Up to three P_DIFF bytes, each saying whether another follows (N).
        for _ in 0..3 {
            let b = *payload.get(at)?;
            at += 1;
            if b & 0x01 == 0 {
                break;
            }
        }
    }
    if d.has_scalability_structure {
        at = skip_scalability_structure(payload, at)?;
    }
    d.header_len = at;
    d.keyframe = !d.inter_picture && d.begins_frame && d.spatial.unwrap_or(0) == 0;
    Some(d)
}

/// The end of the scalability structure starting at `at`.
fn skip_scalability_structure(payload: &[u8], mut at: usize) -> Option<usize> {
    let b = *payload.get(at)?;
    at += 1;
    let spatial_layers = usize::from(b >> 5) + 1;
    if b & 0x10 != 0 {
        at += 4 * spatial_layers; // width and height per layer
    }
    if b & 0x08 != 0 {
        let groups = *payload.get(at)?;
        at += 1;
        for _ in 0..groups {
            let g = *payload.get(at)?;
            at += 1 + usize::from((g >> 2) & 0x03);
        }
    }
    (at <= payload.len()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyframe_with_its_scalability_structure() {
        // I, L, B, E, V; 15-bit picture ID 300; TID 0 SID 0; TL0PICIDX 9; SS: one layer with
        // its size, one picture group of one reference.
        let p = [0xae, 0x81, 0x2c, 0x00, 9, 0x18, 0x02, 0x80, 0x01, 0x68, 1, 0x04, 1, 0xff];
        let d = parse(&p).unwrap();
        assert_eq!(d.picture_id, Some(PictureId { value: 300, long: true }));
        assert_eq!((d.temporal, d.spatial, d.tl0picidx), (Some(0), Some(0), Some(9)));
        assert!(d.keyframe && d.begins_frame && d.ends_frame && d.has_scalability_structure);
        assert_eq!(d.header_len, 13);
    }

    #[test]
    fn inter_frames_and_upper_layers_are_not_keyframes() {
        // I, P, L, B (non-flexible): TID 2 with U, SID 0.
        let delta = parse(&[0xe8, 0x05, 0x50, 3, 0x00]).unwrap();
        assert!(!delta.keyframe && delta.inter_picture);
        assert_eq!((delta.temporal, delta.switching_up, delta.header_len), (Some(2), true, 4));
        // Not inter-predicted but spatial layer 1 (inter-layer predicted): part of a keyframe.
        let upper = parse(&[0xa8, 0x05, 0x03, 3, 0x00]).unwrap();
        assert_eq!((upper.spatial, upper.inter_layer, upper.keyframe), (Some(1), true, false));
        let middle = parse(&[0x80, 0x05, 0x00]).unwrap();
        assert!(!middle.keyframe, "not the frame's first packet");
    }

    #[test]
    fn flexible_mode_reference_diffs() {
        // I, P, L, F, B: 7-bit picture ID, layer byte, two P_DIFFs (the first with N).
        let d = parse(&[0xf8, 0x07, 0x20, 0x03, 0x04, 0x00]).unwrap();
        assert_eq!((d.tl0picidx, d.temporal, d.header_len), (None, Some(1), 5));
        assert!(parse(&[0xf8, 0x07, 0x20, 0x03]).is_none(), "a diff that says more follow, cut short");
    }

    #[test]
    fn truncated_descriptors() {
        assert!(parse(&[]).is_none());
        assert!(parse(&[0x80]).is_none());
        assert!(parse(&[0x82, 0x01, 0x10, 0x00]).is_none(), "sizes announced but missing");
    }
}
