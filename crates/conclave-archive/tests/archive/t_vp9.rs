//! VP9 recording: real libvpx-vp9 frames (keyframes and size found by the recorder's VP9
//! header parser) through `StreamRecorder` with `VideoCodec::Vp9`, checked with ffprobe and
//! a full decode.

use crate::media;
use conclave_archive::recorder::{vp9_is_keyframe, vp9_keyframe_size};
use conclave_archive::{RecorderConfig, StreamRecorder, VideoCodec};

#[test]
fn vp9_header_parser_on_real_frames() {
    let (_d, dir) = media::tmp();
    let video = media::vp9_frames(&dir, 2);
    assert!(video.len() >= 29, "{} frames", video.len());
    assert_eq!(vp9_keyframe_size(&video[0].data), Some((320, 240)));
    let keys: Vec<usize> = (0..video.len()).filter(|&i| video[i].key).collect();
    assert_eq!(keys, [0, 15], "-g 15 gives keyframes at 0 and 15");
    assert!(!vp9_is_keyframe(&video[1].data));
    assert_eq!(vp9_keyframe_size(&video[1].data), None);
}

#[test]
fn vp9_recording_probes_and_decodes() {
    let (_d, dir) = media::tmp();
    let video = media::vp9_frames(&dir, 2);
    let audio = media::opus_packets(&dir, 2);
    let out = dir.join("vp9.webm");
    let cfg = RecorderConfig { video_codec: VideoCodec::Vp9, ..Default::default() };
    let mut rec = StreamRecorder::create(&out, cfg).unwrap();
    media::feed_sorted(&mut rec, &audio, &video, 0);
    let f = rec.finish().unwrap();
    assert_eq!((f.width, f.height), (320, 240), "size from the VP9 keyframe");
    assert_eq!(f.video_frames as usize, video.len());
    assert_eq!(f.sha256, None, "plain recordings are not hashed");
    let p = media::probe(&out);
    assert_eq!(p.codecs, ["opus", "vp9"]);
    assert_eq!((p.width, p.height), (Some(320), Some(240)));
    assert!((p.duration - 2.0).abs() < 0.5, "duration {}", p.duration);
    let errs = media::decode_errors(&out);
    assert!(errs.is_empty(), "decode errors: {errs}");
}
