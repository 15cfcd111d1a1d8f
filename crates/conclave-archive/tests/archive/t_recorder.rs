//! Recorder tests: real ffmpeg-made VP8/Opus frames through `StreamRecorder`, checked with
//! ffprobe and a full ffmpeg decode; crash behaviour; `KeyframeGate`.

use crate::media::{self, Frame};
use conclave_archive::recorder::{opus_head, vp8_keyframe_size};
use conclave_archive::{KeyframeGate, RecorderConfig, StreamRecorder};
use std::path::Path;
use std::time::{Duration, Instant};

/// Offset added to every timestamp, as if the stream started 7 s into the archive.
const T0: u64 = 7_000_000_000;

enum Ev<'a> {
    A(&'a Frame),
    V(&'a Frame),
}

/// Feed audio and video in "arrival" order: video arrives 100 ms after its timestamp,
/// so the recorder's reorder buffer must interleave them.
fn feed(rec: &mut StreamRecorder, audio: &[Frame], video: &[Frame], skip_video: &[usize]) {
    let mut evs: Vec<(u64, Ev)> = audio.iter().map(|a| (a.ts_ns, Ev::A(a))).collect();
    evs.extend(
        video
            .iter()
            .enumerate()
            .filter(|(i, _)| !skip_video.contains(i))
            .map(|(_, v)| (v.ts_ns + 100_000_000, Ev::V(v))),
    );
    evs.sort_by_key(|e| e.0);
    let mut gate = KeyframeGate::default();
    let mut last_v: Option<u64> = None;
    for (_, e) in evs {
        match e {
            Ev::A(a) => rec.write_audio(&a.data, T0 + a.ts_ns).unwrap(),
            Ev::V(v) => {
                let gap = last_v.is_some_and(|l| v.ts_ns - l > 70_000_000);
                last_v = Some(v.ts_ns);
                if gate.on_frame(v.key, gap, Instant::now()).write {
                    rec.write_video(&v.data, T0 + v.ts_ns, v.key).unwrap();
                }
            }
        }
    }
}

fn check_media(path: &Path, expect_codecs: &[&str], secs: f64) {
    let p = media::probe(path);
    assert_eq!(p.codecs, expect_codecs);
    assert!((p.duration - secs).abs() < 0.5, "duration {} vs {secs}", p.duration);
    let errs = media::decode_errors(path);
    assert!(errs.is_empty(), "decode errors: {errs}");
}

#[test]
fn recording_from_ffmpeg_frames_probes_and_decodes() {
    let (_d, dir) = media::tmp();
    let video = media::vp8_frames(&dir, 2);
    let audio = media::opus_packets(&dir, 2);
    assert!(video.len() >= 29 && audio.len() >= 99, "{} video, {} audio", video.len(), audio.len());
    let out = dir.join("out.webm");
    let mut rec = StreamRecorder::create(&out, RecorderConfig::default()).unwrap();
    feed(&mut rec, &audio, &video, &[]);
    let f = rec.finish().unwrap();
    assert_eq!(f.size, std::fs::metadata(&out).unwrap().len());
    assert_eq!((f.width, f.height), (320, 240));
    assert_eq!(f.first_timestamp_ns, Some(T0));
    assert_eq!(f.video_frames as usize, video.len());
    assert_eq!(f.audio_frames as usize, audio.len());
    assert_eq!(f.dropped_frames, 0);
    assert!((f.duration_ms as i64 - 2000).abs() < 100, "duration_ms {}", f.duration_ms);
    assert_eq!(&std::fs::read(&out).unwrap()[..4], &[0x1a, 0x45, 0xdf, 0xa3]);
    check_media(&out, &["opus", "vp8"], 2.0);
    assert_eq!(media::probe(&out).width, Some(320));
}

#[test]
fn audio_only_and_video_only_recordings_decode() {
    let (_d, dir) = media::tmp();
    let video = media::vp8_frames(&dir, 2);
    let audio = media::opus_packets(&dir, 2);
    let a = dir.join("a.webm");
    let mut rec = StreamRecorder::create(&a, RecorderConfig { video: false, ..Default::default() }).unwrap();
    feed(&mut rec, &audio, &[], &[]);
    assert!(!rec.finish().unwrap().has_video);
    check_media(&a, &["opus"], 2.0);
    let v = dir.join("v.webm");
    let cfg = RecorderConfig { audio: false, width: Some(320), height: Some(240), ..Default::default() };
    let mut rec = StreamRecorder::create(&v, cfg).unwrap();
    feed(&mut rec, &[], &video, &[]);
    rec.finish().unwrap();
    check_media(&v, &["vp8"], 2.0);
}

#[test]
fn lost_video_frame_is_gated_until_next_keyframe() {
    let (_d, dir) = media::tmp();
    let video = media::vp8_frames(&dir, 2);
    let audio = media::opus_packets(&dir, 2);
    assert!(video[15].key && !video[5].key);
    let out = dir.join("gap.webm");
    let mut rec = StreamRecorder::create(&out, RecorderConfig::default()).unwrap();
    feed(&mut rec, &audio, &video, &[5]); // frame 5 lost: 6..14 must be dropped
    let f = rec.finish().unwrap();
    assert_eq!(f.video_frames as usize, video.len() - 10);
    check_media(&out, &["opus", "vp8"], 2.0);
}

#[test]
fn crash_leaves_decodable_prefix() {
    let (_d, dir) = media::tmp();
    let video = media::vp8_frames(&dir, 3);
    let audio = media::opus_packets(&dir, 3);
    let out = dir.join("crash.webm");
    let cfg = RecorderConfig { flush_interval: Duration::ZERO, ..Default::default() };
    let mut rec = StreamRecorder::create(&out, cfg).unwrap();
    feed(&mut rec, &audio, &video, &[]);
    std::mem::forget(rec); // no finish(), no Drop: what a killed process leaves
    let p = media::probe(&out);
    assert_eq!(p.codecs, ["opus", "vp8"]);
    let errs = media::decode_errors(&out);
    assert!(errs.is_empty(), "decode errors: {errs}");
    let secs = media::last_pts(&out); // the crashed file has no Duration element
    eprintln!("crash file: {secs} s of 3 s readable, {} bytes", std::fs::metadata(&out).unwrap().len());
    assert!(secs > 2.0, "only {secs} s recoverable");
}

#[test]
fn keyframe_gate_drops_until_keyframe_and_rate_limits_requests() {
    let mut g = KeyframeGate::new(Duration::from_millis(500));
    let t = Instant::now();
    let d = g.on_frame(false, false, t);
    assert!(!d.write && d.request_keyframe, "starts closed and asks for a keyframe");
    assert!(g.on_frame(true, false, t).write);
    assert!(g.on_frame(false, false, t).write);
    let d = g.on_frame(false, true, t + Duration::from_millis(100));
    assert!(!d.write && d.request_keyframe);
    let d = g.on_frame(false, false, t + Duration::from_millis(200));
    assert!(!d.write && !d.request_keyframe, "rate limited");
    let d = g.on_frame(false, false, t + Duration::from_millis(700));
    assert!(!d.write && d.request_keyframe);
    assert!(g.on_frame(true, false, t + Duration::from_millis(800)).write);
    assert!(!g.is_waiting());
    assert_eq!(g.dropped(), 4);
}

#[test]
fn opus_head_and_vp8_header() {
    let h = opus_head(2);
    assert_eq!(&h[..8], b"OpusHead");
    assert_eq!(h[8], 1);
    assert_eq!(h[9], 2);
    assert_eq!(u16::from_le_bytes([h[10], h[11]]), 312);
    assert_eq!(u32::from_le_bytes(h[12..16].try_into().unwrap()), 48_000);
    let key = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
    assert_eq!(vp8_keyframe_size(&key), Some((320, 240)));
    assert_eq!(vp8_keyframe_size(&[0x51, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]), None);
}

#[test]
fn invalid_configs_are_rejected() {
    let (_d, dir) = media::tmp();
    let p = dir.join("x.webm");
    assert!(StreamRecorder::create(&p, RecorderConfig { audio: false, video: false, ..Default::default() }).is_err());
    assert!(StreamRecorder::create(&p, RecorderConfig { width: Some(320), ..Default::default() }).is_err());
    let rec = StreamRecorder::create(&p, RecorderConfig::default()).unwrap();
    assert!(rec.finish().is_err(), "finishing an empty recording is an error");
}

#[test]
fn very_short_recordings_still_finalize() {
    let (_d, dir) = media::tmp();
    let video = media::vp8_frames(&dir, 1);
    // (audio frames, video frames) a participant kicked right after publishing may give, or
    // a camera that never sends a keyframe (200 audio frames = 4 s, past the keyframe wait).
    let audio = media::opus_packets(&dir, 5);
    for (i, (na, nv)) in [(1usize, 0usize), (3, 0), (0, 1), (2, 1), (25, 0), (0, 3), (200, 0)].into_iter().enumerate() {
        let path = dir.join(format!("short{i}.webm"));
        let mut rec = StreamRecorder::create(&path, RecorderConfig::default()).unwrap();
        for f in &audio[..na] {
            rec.write_audio(&f.data, f.ts_ns).unwrap();
        }
        for f in &video[..nv] {
            rec.write_video(&f.data, f.ts_ns, f.key).unwrap();
        }
        let r = rec.finish().unwrap_or_else(|e| panic!("{na} audio + {nv} video frames: {e}"));
        assert_eq!((r.audio_frames, r.video_frames), (na as u64, nv as u64));
        assert_eq!(r.has_video, nv > 0, "no keyframe: an audio-only file");
        // The audio track stays (audio was asked for) even when no packet came.
        let expect: &[&str] = if nv > 0 { &["opus", "vp8"] } else { &["opus"] };
        assert_eq!(media::probe(&path).codecs, expect, "{na}+{nv}");
        assert_eq!(media::decode_errors(&path), "", "{na}+{nv}");
    }
}

/// Frames of two simulcast layers share capture times; a frame repeated at a timecode already
/// written (or within its millisecond) is dropped, so the file stays monotonic and decodes.
#[test]
fn a_video_frame_at_a_timecode_already_written_is_dropped() {
    let (_d, dir) = media::tmp();
    let audio = media::opus_packets(&dir, 2);
    let video = media::vp8_frames(&dir, 2);
    let path = dir.join("dup.webm");
    let mut rec = StreamRecorder::create(&path, RecorderConfig::default()).unwrap();
    let mut evs: Vec<(u64, bool, &Frame)> = audio.iter().map(|a| (a.ts_ns, true, a)).collect();
    evs.extend(video.iter().map(|v| (v.ts_ns, false, v)));
    // The fifth frame comes twice, and a copy lands 0.4 ms after the tenth.
    evs.push((video[4].ts_ns, false, &video[4]));
    evs.push((video[9].ts_ns + 400_000, false, &video[9]));
    evs.sort_by_key(|e| e.0);
    for (ts, is_audio, f) in evs {
        if is_audio {
            rec.write_audio(&f.data, T0 + ts).unwrap();
        } else {
            rec.write_video(&f.data, T0 + ts, f.key).unwrap();
        }
    }
    let r = rec.finish().unwrap();
    assert_eq!(r.video_frames, video.len() as u64, "each picture once");
    assert_eq!(r.dropped_frames, 2);
    check_media(&path, &["opus", "vp8"], 2.0);
    // ffmpeg's remux is what complained about the duplicate timecode.
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-c", "copy", "-f", "null", "-"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "no non-monotonic DTS");
}

/// H.264 (a Safari or hardware-encoder publisher) goes to Matroska, as OpenTok's `.mkv`:
/// ffprobe sees h264 + opus at the SPS's size, it decodes clean, has a Duration, and the same
/// stream encrypted is a Matroska file for the key's holder.
#[test]
fn h264_streams_are_recorded_to_a_decodable_matroska_file() {
    use conclave_archive::recorder::VideoCodec;
    let (_d, dir) = media::tmp();
    let audio = media::opus_packets(&dir, 2);
    let video = media::h264_frames(&dir, 2);
    assert!(video.len() >= 29 && video[0].key && video.iter().filter(|f| f.key).count() >= 2);
    let cfg = RecorderConfig { video_codec: VideoCodec::H264, ..Default::default() };
    assert_eq!(VideoCodec::H264.extension(), "mkv");
    let path = dir.join("h264.mkv");
    let mut rec = StreamRecorder::create(&path, cfg.clone()).unwrap();
    feed(&mut rec, &audio, &video, &[]);
    let r = rec.finish().unwrap();
    assert_eq!((r.width, r.height), (320, 240));
    assert_eq!(r.video_frames, video.len() as u64);
    check_media(&path, &["h264", "opus"], 2.0);
    assert!(std::fs::read(&path).unwrap().starts_with(&[0x1A, 0x45, 0xDF, 0xA3]), "an EBML header");
    let p = media::probe(&path);
    assert_eq!(p.width, Some(320));

    // A crash leaves a readable prefix (unknown-size Segment and Clusters); recovery remuxes
    // it to a finished Matroska file.
    let bytes = std::fs::read(&path).unwrap();
    let crashed = dir.join("crashed.mkv");
    std::fs::write(&crashed, &bytes[..bytes.len() * 3 / 5]).unwrap();
    let fixed = dir.join("fixed.mkv");
    let rec = conclave_archive::recover::finalize_crashed_webm(&crashed, &fixed).unwrap();
    assert!(rec.has_video && rec.duration_ms > 500, "{rec:?}");
    assert_eq!(media::probe(&fixed).codecs, ["h264", "opus"]);

    // Encrypted: live mode, no Duration, still decodable after decryption.
    let identity = age::x25519::Identity::generate();
    let enc = dir.join("h264.mkv.age");
    let mut rec = StreamRecorder::create_encrypted(&enc, cfg, vec![Box::new(identity.to_public())]).unwrap();
    feed(&mut rec, &audio, &video, &[]);
    rec.finish().unwrap();
    let id_file = dir.join("id.txt");
    media::write_identity(&id_file, &identity);
    let (ok, plain, err) = media::age_cli_decrypt(&id_file, &enc);
    assert!(ok, "{err}");
    let dec = dir.join("dec.mkv");
    std::fs::write(&dec, plain).unwrap();
    let errs = media::decode_errors(&dec);
    assert!(errs.is_empty(), "decode errors: {errs}");
    assert_eq!(media::probe(&dec).codecs, ["h264", "opus"]);
}

/// Some encoders send SPS and PPS in an access unit of their own ahead of the IDR: the
/// recorder keeps them and still describes the track.
#[test]
fn h264_parameter_sets_sent_apart_from_the_idr_still_describe_the_track() {
    use conclave_archive::recorder::{VideoCodec, h264};
    let (_d, dir) = media::tmp();
    let video = media::h264_frames(&dir, 2);
    let cfg = RecorderConfig { audio: false, video_codec: VideoCodec::H264, ..Default::default() };
    let path = dir.join("split.mkv");
    let mut rec = StreamRecorder::create(&path, cfg).unwrap();
    for (i, f) in video.iter().enumerate() {
        let nals = h264::nal_units(&f.data);
        let annex_b = |types: &dyn Fn(u8) -> bool| -> Vec<u8> {
            nals.iter().filter(|n| types(n[0] & 0x1f)).flat_map(|n| [&[0, 0, 0, 1][..], n].concat()).collect()
        };
        if f.key {
            // The parameter sets first, alone (as a separate "frame"), then the IDR without them.
            rec.write_video(&annex_b(&|t| t == 7 || t == 8), T0 + f.ts_ns, false).unwrap();
            let idr = annex_b(&|t| t != 7 && t != 8);
            assert!(h264::avc_config(&idr).is_none(), "frame {i}: the IDR alone has no SPS");
            rec.write_video(&idr, T0 + f.ts_ns + 1_000_000, true).unwrap();
        } else {
            rec.write_video(&f.data, T0 + f.ts_ns + 1_000_000, false).unwrap();
        }
    }
    let r = rec.finish().unwrap();
    assert_eq!((r.width, r.height), (320, 240));
    let p = media::probe(&path);
    assert_eq!(p.codecs, ["h264"]);
    let errs = media::decode_errors(&path);
    assert!(errs.is_empty(), "decode errors: {errs}");
}
