//! The recorder's inputs (libwebm for VP8/VP9, our Matroska writer, Annex B splitting and SPS
//! parsing for H.264): arbitrary frames, kinds, keyframe flags and timestamps, as a
//! misbehaving publisher could send them, never panic; the recorder either writes or returns
//! an error. The first byte picks the video codec.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use conclave_archive::recorder::{VideoCodec, h264};
    let Some((&codec, data)) = data.split_first() else { return };
    let video_codec = [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264][usize::from(codec % 3)];
    if video_codec == VideoCodec::H264 {
        let _ = h264::sps_size(data);
        let _ = h264::avc_config(data);
    }
    let dir = std::env::temp_dir().join(format!("conclave-fuzz-webm-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("fuzz.{}", video_codec.extension()));
    let cfg = conclave_archive::RecorderConfig { audio: true, video: true, video_codec, ..Default::default() };
    let Ok(mut rec) = conclave_archive::StreamRecorder::create(&path, cfg) else { return };
    // Records: [kind/flags byte][timestamp delta (2 bytes)][length (1 byte)][payload…]
    let mut rest = data;
    let mut ts: u64 = 0;
    while rest.len() >= 4 {
        let (flags, delta, len) = (rest[0], u16::from_le_bytes([rest[1], rest[2]]), rest[3] as usize);
        rest = &rest[4..];
        let take = len.min(rest.len());
        let (payload, tail) = rest.split_at(take);
        rest = tail;
        ts = if flags & 0x80 != 0 {
            ts.saturating_sub(u64::from(delta) * 1_000_000)
        } else {
            ts + u64::from(delta) * 1_000_000
        };
        let _ =
            if flags & 1 == 0 { rec.write_audio(payload, ts) } else { rec.write_video(payload, ts, flags & 2 != 0) };
    }
    let _ = rec.finish();
});
