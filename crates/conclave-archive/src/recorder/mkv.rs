//! A small Matroska writer for what libwebm cannot mux: H.264 (`V_MPEG4/ISO/AVC`) video with
//! Opus audio, as OpenTok delivers H.264 streams (`.mkv`). Written the way a live WebM is:
//! the Segment and each Cluster have an "unknown" size, so every byte written is a readable
//! prefix after a crash; when the output can seek, `finish` fills in the Duration. No Cues
//! (players seek by scanning). Owns the element layout only; must not reorder frames or
//! touch files.

use std::io::{Seek, SeekFrom, Write};

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const DURATION: u32 = 0x4489;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const CLUSTER: u32 = 0x1F43_B675;
const CLUSTER_TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;

/// The "unknown size" marker (8-byte form).
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// A new Cluster at the latest this often, and at a video keyframe once this much has passed.
const CLUSTER_MAX_MS: u64 = 5_000;
const CLUSTER_KEYFRAME_MS: u64 = 1_000;

/// Track numbers.
pub(crate) const VIDEO_TRACK: u64 = 1;
pub(crate) const AUDIO_TRACK: u64 = 2;

/// The H.264 video track: its `avcC` record and picture size.
pub(crate) struct AvcTrack {
    pub config: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

pub(crate) struct MkvWriter<W: Write + Seek> {
    out: W,
    /// Where the Duration's 8-byte float sits, when the output can seek.
    duration_at: Option<u64>,
    cluster_ms: Option<u64>,
    written: u64,
}

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().position(|x| *x != 0).unwrap_or(3);
    b[skip..].to_vec()
}

fn size_bytes(len: u64) -> Vec<u8> {
    // The shortest EBML variable-size integer (all-ones values are reserved).
    for width in 1..=8u32 {
        if len < (1u64 << (7 * width)) - 1 {
            let mut v = len | (1u64 << (7 * width));
            let mut out = vec![0; width as usize];
            for byte in out.iter_mut().rev() {
                *byte = v as u8;
                v >>= 8;
            }
            return out;
        }
    }
    UNKNOWN_SIZE.to_vec()
}

fn element(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut e = id_bytes(id);
    e.extend(size_bytes(payload.len() as u64));
    e.extend_from_slice(payload);
    e
}

fn uint(id: u32, v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().position(|x| *x != 0).unwrap_or(7);
    element(id, &b[skip..])
}

fn float(id: u32, v: f64) -> Vec<u8> {
    element(id, &v.to_be_bytes())
}

impl<W: Write + Seek> MkvWriter<W> {
    /// Writes the header, Info and Tracks. `seekable`: the Duration can be filled in later.
    pub fn start(
        mut out: W,
        seekable: bool,
        video: Option<&AvcTrack>,
        audio: Option<&[u8]>,
    ) -> std::io::Result<MkvWriter<W>> {
        let mut head = element(
            EBML,
            &[
                uint(0x4286, 1),
                uint(0x42F7, 1),
                uint(0x42F2, 4),
                uint(0x42F3, 8),
                element(0x4282, b"matroska"),
                uint(0x4287, 4),
                uint(0x4285, 2),
            ]
            .concat(),
        );
        head.extend(id_bytes(SEGMENT));
        head.extend(UNKNOWN_SIZE);
        let info_fields = [
            uint(TIMECODE_SCALE, 1_000_000),
            element(MUXING_APP, b"conclave-archive"),
            element(WRITING_APP, b"conclave-archive"),
        ]
        .concat();
        let duration = float(DURATION, 0.0);
        let info = element(INFO, &[info_fields, duration.clone()].concat());
        // The float is the last 8 bytes of the Info element.
        let duration_at = head.len() as u64 + info.len() as u64 - 8;
        head.extend(info);
        let mut tracks = Vec::new();
        if let Some(v) = video {
            let picture = element(
                VIDEO,
                &[uint(PIXEL_WIDTH, u64::from(v.width)), uint(PIXEL_HEIGHT, u64::from(v.height))].concat(),
            );
            tracks.extend(element(
                TRACK_ENTRY,
                &[
                    uint(TRACK_NUMBER, VIDEO_TRACK),
                    uint(TRACK_UID, VIDEO_TRACK),
                    uint(TRACK_TYPE, 1),
                    element(CODEC_ID, b"V_MPEG4/ISO/AVC"),
                    element(CODEC_PRIVATE, &v.config),
                    picture,
                ]
                .concat(),
            ));
        }
        if let Some(opus_head) = audio {
            let sound = element(
                AUDIO,
                &[
                    float(SAMPLING_FREQUENCY, 48_000.0),
                    uint(CHANNELS, u64::from(opus_head.get(9).copied().unwrap_or(2))),
                ]
                .concat(),
            );
            tracks.extend(element(
                TRACK_ENTRY,
                &[
                    uint(TRACK_NUMBER, AUDIO_TRACK),
                    uint(TRACK_UID, AUDIO_TRACK),
                    uint(TRACK_TYPE, 2),
                    element(CODEC_ID, b"A_OPUS"),
                    element(CODEC_PRIVATE, opus_head),
                    sound,
                ]
                .concat(),
            ));
        }
        head.extend(element(TRACKS, &tracks));
        out.write_all(&head)?;
        Ok(MkvWriter {
            out,
            duration_at: seekable.then_some(duration_at),
            cluster_ms: None,
            written: head.len() as u64,
        })
    }

    /// One frame at `ms` (never before the previous frame's time).
    pub fn add_frame(&mut self, track: u64, data: &[u8], ms: u64, keyframe: bool) -> std::io::Result<()> {
        let start_new = match self.cluster_ms {
            None => true,
            Some(c) => ms - c >= CLUSTER_MAX_MS || (track == VIDEO_TRACK && keyframe && ms - c >= CLUSTER_KEYFRAME_MS),
        };
        if start_new {
            let mut c = id_bytes(CLUSTER);
            c.extend(UNKNOWN_SIZE);
            c.extend(uint(CLUSTER_TIMECODE, ms));
            self.write(&c)?;
            self.cluster_ms = Some(ms);
        }
        let rel = (ms - self.cluster_ms.unwrap_or(ms)) as i16;
        let mut block = size_bytes(track);
        block.extend(rel.to_be_bytes());
        block.push(if keyframe { 0x80 } else { 0 });
        block.extend_from_slice(data);
        self.write(&element(SIMPLE_BLOCK, &block))
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Fills in the Duration (when the output can seek) and hands the output back.
    pub fn finish(mut self, duration_ms: u64) -> std::io::Result<W> {
        if let Some(at) = self.duration_at {
            self.out.seek(SeekFrom::Start(at))?;
            self.out.write_all(&(duration_ms as f64).to_be_bytes())?;
            self.out.seek(SeekFrom::Start(self.written))?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ebml_sizes_and_ids() {
        assert_eq!(size_bytes(0), [0x80]);
        assert_eq!(size_bytes(126), [0xFE]);
        assert_eq!(size_bytes(127), [0x40, 0x7F], "0xFF alone would mean unknown");
        assert_eq!(size_bytes(300), [0x41, 0x2C]);
        assert_eq!(id_bytes(SEGMENT), [0x18, 0x53, 0x80, 0x67]);
        assert_eq!(id_bytes(SIMPLE_BLOCK), [0xA3]);
        assert_eq!(uint(TRACK_NUMBER, 1), [0xD7, 0x81, 0x01]);
    }
}
