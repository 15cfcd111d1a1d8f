//! Crash recovery: a recording abandoned without `finish()` (as after kill -9) is remuxed by
//! `recover::finalize_crashed_webm` into a WebM with a Duration that decodes cleanly; files
//! without usable frames are refused.

use crate::media;
use conclave_archive::recover::{finalize_crashed_webm, probe_duration_ms};
use conclave_archive::{RecorderConfig, StreamRecorder};
use std::time::Duration;

#[test]
fn crashed_recording_is_finalized() {
    let (_d, dir) = media::tmp();
    let video = media::vp8_frames(&dir, 3);
    let audio = media::opus_packets(&dir, 3);
    let crashed = dir.join("crashed.webm");
    let cfg = RecorderConfig { flush_interval: Duration::ZERO, ..Default::default() };
    let mut rec = StreamRecorder::create(&crashed, cfg).unwrap();
    media::feed_sorted(&mut rec, &audio, &video, 5_000_000_000);
    std::mem::forget(rec); // no finish(), no Drop: what a killed process leaves
    eprintln!("crashed file: ffprobe duration {:?}", probe_duration_ms(&crashed).ok());

    let out = dir.join("recovered.webm");
    let r = finalize_crashed_webm(&crashed, &out).unwrap();
    assert!(r.has_audio && r.has_video);
    assert_eq!(r.size, std::fs::metadata(&out).unwrap().len());
    assert!((r.duration_ms as i64 - 3000).abs() < 1000, "duration {} ms", r.duration_ms);
    assert_eq!(probe_duration_ms(&out).unwrap(), r.duration_ms);
    let p = media::probe(&out);
    assert_eq!(p.codecs, ["opus", "vp8"]);
    assert!((p.duration - 3.0).abs() < 1.0, "ffprobe duration {}", p.duration);
    let errs = media::decode_errors(&out);
    assert!(errs.is_empty(), "decode errors: {errs}");
}

#[test]
fn files_without_frames_are_refused() {
    let (_d, dir) = media::tmp();
    // A recording that got its header out but no frame before the crash.
    let empty = dir.join("empty.webm");
    let cfg = RecorderConfig { video: false, flush_interval: Duration::ZERO, ..Default::default() };
    let rec = StreamRecorder::create(&empty, cfg).unwrap();
    std::mem::forget(rec);
    let out = dir.join("out.webm");
    assert!(finalize_crashed_webm(&empty, &out).is_err());
    assert!(!out.exists(), "no output is left behind");

    let garbage = dir.join("garbage.webm");
    std::fs::write(&garbage, b"not a webm file at all").unwrap();
    assert!(finalize_crashed_webm(&garbage, &out).is_err());
    assert!(!out.exists());
}
