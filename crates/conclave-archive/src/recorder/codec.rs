//! Bitstream helpers for the recorder: the synthesized OpusHead, VP8 and VP9 keyframe
//! detection and dimensions, and Opus packet durations. Pure functions on byte slices; must
//! not do I/O.

/// OpusHead (RFC 7845 §5.1) for a WebRTC Opus stream, which never carries one in-band:
/// version 1, `channels`, pre-skip 312, input rate 48 kHz, gain 0, mapping family 0.
pub fn opus_head(channels: u8) -> [u8; 19] {
    let mut h = [0u8; 19];
    h[..8].copy_from_slice(b"OpusHead");
    h[8] = 1;
    h[9] = channels;
    h[10..12].copy_from_slice(&312u16.to_le_bytes());
    h[12..16].copy_from_slice(&48_000u32.to_le_bytes());
    // bytes 16..18 output gain 0, byte 18 mapping family 0
    h
}

/// Width and height from a VP8 keyframe header (RFC 6386 §9.1), or `None` when `frame`
/// is not a keyframe or is too short.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    (w > 0 && h > 0).then_some((w as u32, h as u32))
}

/// True when the VP8 payload is a keyframe (P bit of the frame tag is 0).
pub fn vp8_is_keyframe(frame: &[u8]) -> bool {
    !frame.is_empty() && frame[0] & 1 == 0
}

/// Reads VP9 uncompressed-header bits MSB first (VP9 bitstream spec §4.9 `f(n)`).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | ((byte >> (7 - self.pos % 8)) & 1) as u32;
            self.pos += 1;
        }
        Some(v)
    }
}

/// Parses a VP9 uncompressed header (spec §6.2) up to `frame_size()`. Returns
/// `Some(None)` for a valid non-key frame, `Some(Some((w, h)))` for a keyframe and `None`
/// for bytes that are not a VP9 frame. For a superframe the first frame is examined, which
/// is the one that carries the keyframe flag.
fn vp9_header(frame: &[u8]) -> Option<Option<(u32, u32)>> {
    let mut b = Bits { data: frame, pos: 0 };
    if b.read(2)? != 2 {
        return None; // frame_marker
    }
    let profile = b.read(1)? | (b.read(1)? << 1);
    if profile == 3 {
        b.read(1)?; // reserved_zero
    }
    if b.read(1)? == 1 {
        return Some(None); // show_existing_frame: repeats a decoded frame, not a keyframe
    }
    let frame_type = b.read(1)?;
    b.read(2)?; // show_frame, error_resilient_mode
    if frame_type != 0 {
        return Some(None);
    }
    if b.read(24)? != 0x49_83_42 {
        return None; // frame_sync_code
    }
    if profile >= 2 {
        b.read(1)?; // ten_or_twelve_bit
    }
    let color_space = b.read(3)?;
    if color_space != 7 {
        b.read(1)?; // color_range
        if profile == 1 || profile == 3 {
            b.read(3)?; // subsampling_x, subsampling_y, reserved_zero
        }
    } else if profile == 1 || profile == 3 {
        b.read(1)?; // reserved_zero
    }
    let w = b.read(16)? + 1;
    let h = b.read(16)? + 1;
    Some(Some((w, h)))
}

/// True when the VP9 frame (or the first frame of a superframe) is a keyframe.
pub fn vp9_is_keyframe(frame: &[u8]) -> bool {
    matches!(vp9_header(frame), Some(Some(_)))
}

/// Width and height from a VP9 keyframe's uncompressed header, or `None` when `frame` is
/// not a keyframe or is truncated.
pub fn vp9_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    vp9_header(frame).flatten()
}

/// Duration of an Opus packet in nanoseconds from its TOC byte (RFC 6716 §3.1); 20 ms if
/// the packet is empty or malformed.
pub fn opus_packet_duration_ns(packet: &[u8]) -> u64 {
    const MS: u64 = 1_000_000;
    let Some(&toc) = packet.first() else {
        return 20 * MS;
    };
    let config = toc >> 3;
    let frame_us: u64 = if config < 12 {
        [10_000, 20_000, 40_000, 60_000][(config & 3) as usize]
    } else if config < 16 {
        [10_000, 20_000][(config & 1) as usize]
    } else {
        [2_500, 5_000, 10_000, 20_000][(config & 3) as usize]
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => packet.get(1).map(|b| (b & 0x3f) as u64).unwrap_or(1).max(1),
    };
    frame_us * 1_000 * frames
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built profile-0 keyframe header: marker 10, profile 00, show_existing 0,
    /// frame_type 0, show 1, error_res 0, sync code, color_space 2 (BT.709), range 0,
    /// width-1 = 639, height-1 = 359.
    fn header(profile_bits: &str, w: u32, h: u32) -> Vec<u8> {
        let mut bits = format!("10{profile_bits}00" /* show_existing, frame_type */);
        bits.push_str("10");
        bits.push_str("010010011000001101000010");
        bits.push_str("010"); // color_space
        bits.push('0'); // color_range
        if profile_bits == "10" {
            bits.push_str("000"); // profile 1: subsampling x/y, reserved
        }
        bits.push_str(&format!("{:016b}{:016b}", w - 1, h - 1));
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        bits.as_bytes().chunks(8).map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap()).collect()
    }

    #[test]
    fn vp9_keyframe_header_sizes() {
        let k = header("00", 640, 360);
        assert!(vp9_is_keyframe(&k));
        assert_eq!(vp9_keyframe_size(&k), Some((640, 360)));
        // profile 1 (low bit first): extra subsampling bits before the size
        let k1 = header("10", 1280, 720);
        assert_eq!(vp9_keyframe_size(&k1), Some((1280, 720)));
        // truncated keyframe header
        assert_eq!(vp9_keyframe_size(&k[..6]), None);
    }

    #[test]
    fn vp9_inter_and_garbage_frames() {
        // marker 10, profile 00, show_existing 0, frame_type 1 (inter)
        let inter = [0b1000_0110, 0, 0, 0];
        assert!(!vp9_is_keyframe(&inter));
        assert_eq!(vp9_keyframe_size(&inter), None);
        // show_existing_frame
        assert!(!vp9_is_keyframe(&[0b1000_1000]));
        // wrong frame marker / wrong sync code
        assert!(!vp9_is_keyframe(&[0x00, 0, 0, 0, 0, 0, 0, 0]));
        let mut bad = header("00", 640, 360);
        bad[1] ^= 0x10;
        assert!(!vp9_is_keyframe(&bad));
        assert!(!vp9_is_keyframe(&[]));
    }
}
