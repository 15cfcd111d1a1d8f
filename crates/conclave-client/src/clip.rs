//! Real encoded media for bots: a test pattern and a tone encoded once with ffmpeg (VP8 in
//! IVF or H.264 in Annex B, Opus in Ogg) and split into frames, so that what a bot publishes can be recorded,
//! decoded and checked (archives, ffprobe). Loops seamlessly: the clip starts on a keyframe.
//!
//! Owns: running ffmpeg and the two tiny container parsers. Must not touch: RTP or sockets.

use std::path::Path;
use std::process::Command;

/// One encoded clip, ready to be sent frame by frame.
#[derive(Debug, Clone)]
pub struct EncodedClip {
    /// Video frames (VP8, or H.264 access units) with their keyframe flag, `fps` per second.
    pub video: Vec<(Vec<u8>, bool)>,
    /// The codec of `video`.
    pub video_codec: str0m::format::Codec,
    /// 20 ms Opus packets (stereo, 48 kHz).
    pub audio: Vec<Vec<u8>>,
    pub fps: u32,
}

impl EncodedClip {
    /// Encodes `secs` seconds of 320x240 VP8 at `fps` (a keyframe every half second) and
    /// a 440 Hz Opus tone, in `dir`. Needs `ffmpeg` (or `$CONCLAVE_FFMPEG`).
    pub fn generate(dir: &Path, secs: u32, fps: u32) -> Result<EncodedClip, String> {
        Self::encode(dir, secs, fps, &format!("testsrc=size=320x240:rate={fps}"))
    }

    /// The same as [`EncodedClip::generate`] with a solid-colour picture (an ffmpeg colour
    /// name such as `red`), for tests that find a stream by its colour.
    pub fn generate_colour(dir: &Path, secs: u32, fps: u32, colour: &str) -> Result<EncodedClip, String> {
        Self::encode(dir, secs, fps, &format!("color=c={colour}:size=320x240:rate={fps}"))
    }

    /// The test pattern as H.264 (Constrained Baseline, no B-frames, SPS and PPS with every
    /// IDR, as a browser's or a phone's encoder sends it) and the same tone.
    pub fn generate_h264(dir: &Path, secs: u32, fps: u32) -> Result<EncodedClip, String> {
        let raw = dir.join("clip.h264");
        let t = secs.to_string();
        let gop = (fps / 2).max(1).to_string();
        let src = format!("testsrc=size=320x240:rate={fps}");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-t",
            &t,
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-bf",
            "0",
            "-g",
            &gop,
            "-x264-params",
            "aud=1:repeat-headers=1",
            "-f",
            "h264",
            path(&raw)?,
        ])?;
        let video = split_access_units(&std::fs::read(&raw).map_err(|e| e.to_string())?);
        let _ = std::fs::remove_file(&raw);
        Ok(EncodedClip { video, audio: tone(dir, secs)?, fps, video_codec: str0m::format::Codec::H264 })
    }

    fn encode(dir: &Path, secs: u32, fps: u32, src: &str) -> Result<EncodedClip, String> {
        let ivf = dir.join("clip.ivf");
        let t = secs.to_string();
        let gop = (fps / 2).max(1).to_string();
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            src,
            "-t",
            &t,
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "300k",
            "-g",
            &gop,
            "-keyint_min",
            &gop,
            "-auto-alt-ref",
            "0",
            "-f",
            "ivf",
            path(&ivf)?,
        ])?;
        let video = parse_ivf(&std::fs::read(&ivf).map_err(|e| e.to_string())?)?;
        let _ = std::fs::remove_file(&ivf);
        Ok(EncodedClip { video, audio: tone(dir, secs)?, fps, video_codec: str0m::format::Codec::Vp8 })
    }
}

/// `secs` of a 440 Hz tone as 20 ms stereo Opus packets.
fn tone(dir: &Path, secs: u32) -> Result<Vec<Vec<u8>>, String> {
    let ogg = dir.join("clip.ogg");
    let t = secs.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &t,
        "-ac",
        "2",
        "-c:a",
        "libopus",
        "-frame_duration",
        "20",
        "-f",
        "ogg",
        path(&ogg)?,
    ])?;
    // The first two Ogg packets are OpusHead and OpusTags: the audio starts after them.
    let mut audio = parse_ogg(&std::fs::read(&ogg).map_err(|e| e.to_string())?)?;
    audio.drain(..audio.len().min(2));
    let _ = std::fs::remove_file(&ogg);
    Ok(audio)
}

/// An Annex B stream written with access unit delimiters, split at them; an access unit with
/// an IDR slice (NAL type 5) is a keyframe.
fn split_access_units(data: &[u8]) -> Vec<(Vec<u8>, bool)> {
    let aud = [0u8, 0, 0, 1, 9];
    let mut starts: Vec<usize> = (0..data.len().saturating_sub(4)).filter(|i| data[*i..].starts_with(&aud)).collect();
    starts.push(data.len());
    starts
        .windows(2)
        .map(|w| {
            let au = &data[w[0]..w[1]];
            let key = au.windows(4).any(|x| x[..3] == [0, 0, 1] && x[3] & 0x1f == 5);
            (au.to_vec(), key)
        })
        .collect()
}

fn path(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| "non-UTF-8 path".to_owned())
}

fn ffmpeg(args: &[&str]) -> Result<(), String> {
    let bin = std::env::var("CONCLAVE_FFMPEG").unwrap_or_else(|_| "ffmpeg".into());
    let out = Command::new(&bin)
        .args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {bin}: {e} (install ffmpeg)"))?;
    if !out.status.success() {
        return Err(format!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// VP8's frame tag: bit 0 clear means a keyframe.
fn vp8_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

fn parse_ivf(b: &[u8]) -> Result<Vec<(Vec<u8>, bool)>, String> {
    if b.len() < 32 || &b[..4] != b"DKIF" {
        return Err("not an IVF file".into());
    }
    let mut at = usize::from(u16::from_le_bytes([b[6], b[7]]));
    let mut out = Vec::new();
    while at + 12 <= b.len() {
        let len = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        let frame = b.get(at + 12..at + 12 + len).ok_or("truncated IVF frame")?;
        out.push((frame.to_vec(), vp8_keyframe(frame)));
        at += 12 + len;
    }
    Ok(out)
}

fn parse_ogg(b: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let (mut at, mut packets, mut cur) = (0, Vec::new(), Vec::new());
    while at + 27 <= b.len() {
        if &b[at..at + 4] != b"OggS" {
            return Err(format!("bad Ogg page at {at}"));
        }
        let nseg = usize::from(b[at + 26]);
        let lacing = b.get(at + 27..at + 27 + nseg).ok_or("truncated Ogg page")?;
        let mut body = at + 27 + nseg;
        for &l in lacing {
            cur.extend_from_slice(b.get(body..body + usize::from(l)).ok_or("truncated Ogg segment")?);
            body += usize::from(l);
            if l < 255 {
                packets.push(std::mem::take(&mut cur));
            }
        }
        at = body;
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_has_real_frames_starting_on_a_keyframe() {
        let dir = tempfile::tempdir().unwrap();
        let clip = EncodedClip::generate(dir.path(), 2, 20).unwrap();
        assert!((38..=42).contains(&clip.video.len()), "{} video frames", clip.video.len());
        assert!(clip.video[0].1, "starts on a keyframe");
        assert_eq!(clip.video.iter().filter(|(_, k)| *k).count(), 4, "a keyframe every half second");
        assert!((95..=105).contains(&clip.audio.len()), "{} opus packets of 20 ms", clip.audio.len());
        // Opus TOC of a 20 ms CELT/SILK frame: config bits say 20 ms.
        assert!(clip.audio.iter().all(|p| !p.is_empty()));
    }
}
