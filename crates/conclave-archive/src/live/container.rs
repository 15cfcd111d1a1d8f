//! The smallest containers ffmpeg can decode a live stream from, written as frames arrive:
//! IVF for VP8/VP9 (a 32-byte header and a 12-byte header per frame), Ogg for Opus (RFC 7845:
//! an `OpusHead` page, an `OpusTags` page, then one page per packet) and H.264 as the Annex B
//! byte stream it already is. Pure byte work into a `Write`; must not spawn or decode.
//!
//! Written here rather than with the recorder's Matroska muxer: that one holds frames for a
//! reorder window and waits for sizes, which adds latency a live picture cannot afford, and a
//! decoder needs no index, cues or durations.

use crate::recorder::{VideoCodec, opus_head, opus_packet_duration_ns};
use std::io::{Result, Write};

/// Writes one video stream for a decoder.
pub struct VideoStreamWriter {
    codec: VideoCodec,
    started: bool,
    first_ms: u64,
}

impl VideoStreamWriter {
    pub fn new(codec: VideoCodec) -> Self {
        Self { codec, started: false, first_ms: 0 }
    }

    /// The ffmpeg demuxer (`-f`) for this stream.
    pub fn format(&self) -> &'static str {
        match self.codec {
            VideoCodec::Vp8 | VideoCodec::Vp9 => "ivf",
            VideoCodec::H264 => "h264",
        }
    }

    /// Writes a frame; frames before the first keyframe are skipped (a decoder cannot start
    /// on them). Returns whether the frame was written.
    pub fn write(&mut self, out: &mut dyn Write, frame: &[u8], keyframe: bool, at_ms: u64) -> Result<bool> {
        if !self.started {
            if !keyframe {
                return Ok(false);
            }
            self.started = true;
            self.first_ms = at_ms;
            if self.codec != VideoCodec::H264 {
                let (w, h) = self.codec.keyframe_size(frame).unwrap_or((640, 480));
                out.write_all(&ivf_header(self.codec, w, h))?;
            }
        }
        if self.codec != VideoCodec::H264 {
            let mut head = [0u8; 12];
            head[..4].copy_from_slice(&(frame.len() as u32).to_le_bytes());
            head[4..].copy_from_slice(&at_ms.saturating_sub(self.first_ms).to_le_bytes());
            out.write_all(&head)?;
        }
        out.write_all(frame)?;
        Ok(true)
    }
}

/// The IVF file header, in milliseconds.
fn ivf_header(codec: VideoCodec, width: u32, height: u32) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..4].copy_from_slice(b"DKIF");
    h[6..8].copy_from_slice(&32u16.to_le_bytes());
    h[8..12].copy_from_slice(if codec == VideoCodec::Vp9 { b"VP90" } else { b"VP80" });
    h[12..14].copy_from_slice(&(width.min(u16::MAX as u32) as u16).to_le_bytes());
    h[14..16].copy_from_slice(&(height.min(u16::MAX as u32) as u16).to_le_bytes());
    h[16..20].copy_from_slice(&1000u32.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h
}

/// Writes one Opus stream (WebRTC's: two channels, 48 kHz) as Ogg.
pub struct OggOpusWriter {
    serial: u32,
    sequence: u32,
    granule: u64,
    started: bool,
}

impl Default for OggOpusWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl OggOpusWriter {
    pub fn new() -> Self {
        Self { serial: 0x436f_6e63, sequence: 0, granule: 0, started: false }
    }

    /// Writes one Opus packet (the two header pages first).
    pub fn write(&mut self, out: &mut dyn Write, packet: &[u8]) -> Result<()> {
        if !self.started {
            self.started = true;
            self.page(out, &opus_head(2), 0x02, 0)?;
            let mut tags = b"OpusTags".to_vec();
            let vendor = b"conclave";
            tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
            tags.extend_from_slice(vendor);
            tags.extend_from_slice(&0u32.to_le_bytes());
            self.page(out, &tags, 0, 0)?;
        }
        if packet.is_empty() || packet.len() >= 255 * 255 {
            return Ok(());
        }
        self.granule += opus_packet_duration_ns(packet) * 48 / 1_000_000;
        let granule = self.granule;
        self.page(out, packet, 0, granule)
    }

    fn page(&mut self, out: &mut dyn Write, packet: &[u8], flags: u8, granule: u64) -> Result<()> {
        let lacing = packet.len() / 255 + 1;
        let mut page = Vec::with_capacity(27 + lacing + packet.len());
        page.extend_from_slice(b"OggS");
        page.push(0);
        page.push(flags);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&self.serial.to_le_bytes());
        page.extend_from_slice(&self.sequence.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(lacing as u8);
        page.extend(std::iter::repeat_n(255u8, lacing - 1));
        page.push((packet.len() % 255) as u8);
        page.extend_from_slice(packet);
        let crc = ogg_crc(&page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        self.sequence += 1;
        out.write_all(&page)
    }
}

/// Ogg's CRC-32: polynomial 0x04c11db7, initial value 0, no reflection, no final XOR.
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04c1_1db7 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ogg_crc_matches_the_reference_value() {
        // The CRC of "OggS" + zeros as libogg computes it; any page ffmpeg accepts checks this.
        assert_eq!(ogg_crc(b""), 0);
        assert_eq!(ogg_crc(b"123456789"), 0x89a1_897f);
    }

    #[test]
    fn ogg_pages_lace_and_count() {
        let mut w = OggOpusWriter::new();
        let mut out = Vec::new();
        w.write(&mut out, &[0x78; 300]).unwrap();
        // Three pages: OpusHead (BOS), OpusTags, the packet (lacing 255 + 45).
        let pages: Vec<usize> = (0..out.len() - 3).filter(|&i| &out[i..i + 4] == b"OggS").collect();
        assert_eq!(pages.len(), 3);
        assert_eq!(out[5], 0x02, "first page is BOS");
        let last = &out[pages[2]..];
        assert_eq!(last[26], 2);
        assert_eq!(&last[27..29], &[255, 45]);
        // TOC 0x78: 20 ms → 960 samples at 48 kHz.
        assert_eq!(u64::from_le_bytes(last[6..14].try_into().unwrap()), 960);
        assert_eq!(u32::from_le_bytes(last[18..22].try_into().unwrap()), 2, "page sequence");
    }

    #[test]
    fn video_waits_for_a_keyframe_and_frames_ivf() {
        let mut w = VideoStreamWriter::new(VideoCodec::Vp8);
        let mut out = Vec::new();
        assert!(!w.write(&mut out, &[1, 2, 3], false, 5).unwrap());
        assert!(out.is_empty());
        // A VP8 keyframe tag with a 320x240 size.
        let key = [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0xaa];
        assert!(w.write(&mut out, &key, true, 100).unwrap());
        assert!(w.write(&mut out, &[0x11, 0x22], false, 140).unwrap());
        assert_eq!(&out[..4], b"DKIF");
        assert_eq!(&out[8..12], b"VP80");
        assert_eq!(u16::from_le_bytes([out[12], out[13]]), 320);
        assert_eq!(u16::from_le_bytes([out[14], out[15]]), 240);
        let second = 32 + 12 + key.len();
        assert_eq!(u32::from_le_bytes(out[second..second + 4].try_into().unwrap()), 2);
        assert_eq!(u64::from_le_bytes(out[second + 4..second + 12].try_into().unwrap()), 40);
        assert_eq!(w.format(), "ivf");
        assert_eq!(VideoStreamWriter::new(VideoCodec::H264).format(), "h264");
    }
}
