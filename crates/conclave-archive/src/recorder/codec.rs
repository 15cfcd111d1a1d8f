//! Bitstream helpers for the recorder: the synthesized OpusHead, VP8 keyframe dimensions and
//! Opus packet durations. Pure functions on byte slices; must not do I/O.

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
