//! Composed archives: per-stream WebMs (files, or decrypting readers) mixed by ffmpeg into
//! one H.264 + AAC MP4 grid at the requested size, checked with ffprobe and a full decode;
//! the encrypted path decrypts with the stock `age` CLI.

use crate::media::{self, Frame};
use conclave_archive::compose::{
    ComposeInput, ComposeOutput, ComposeSource, ComposeSpec, ComposedFile, Epoch, Layout, Quality, TileInput, compose,
    placements,
};
use conclave_archive::digest::sha256_file;
use conclave_archive::encrypt::{EncryptingWriter, EphemeralKey, open_decrypted};
use conclave_archive::{RecordedFile, RecorderConfig, StreamRecorder};
use std::path::{Path, PathBuf};

struct Media {
    audio: Vec<Frame>,
    video: Vec<Frame>,
}

fn media_2s(dir: &Path) -> Media {
    Media { audio: media::opus_packets(dir, 2), video: media::vp8_frames(dir, 2) }
}

fn record(dir: &Path, name: &str, m: &Media, audio: bool, video: bool) -> PathBuf {
    let out = dir.join(name);
    let cfg = RecorderConfig { audio, video, ..Default::default() };
    let mut rec = StreamRecorder::create(&out, cfg).unwrap();
    let a: &[Frame] = if audio { &m.audio } else { &[] };
    let v: &[Frame] = if video { &m.video } else { &[] };
    media::feed_sorted(&mut rec, a, v, 0);
    rec.finish().unwrap();
    out
}

fn input(path: &Path, offset_ms: u64, has_audio: bool, has_video: bool) -> ComposeInput {
    ComposeInput { source: ComposeSource::Path(path.to_path_buf()), offset_ms, duration_ms: 2000, has_audio, has_video }
}

/// The `bestFit` grid at default quality.
fn grid_compose(
    inputs: Vec<ComposeInput>,
    width: u32,
    height: u32,
    out: ComposeOutput<'_>,
) -> Result<ComposedFile, conclave_archive::ArchiveError> {
    compose(inputs, &ComposeSpec::fixed(width, height, Layout::BestFit, None, Quality::Default), out)
}

fn check(out: &Path, c: &ComposedFile, codecs: &[&str], size: Option<(u64, u64)>, secs: f64) {
    assert_eq!(c.size, std::fs::metadata(out).unwrap().len());
    assert_eq!(c.sha256, sha256_file(out).unwrap());
    let p = media::probe(out);
    assert_eq!(p.codecs, codecs);
    if let Some((w, h)) = size {
        assert_eq!((p.width, p.height), (Some(w), Some(h)));
    }
    assert!((p.duration - secs).abs() < 1.0, "duration {} vs {secs}", p.duration);
    assert!(
        (c.duration_ms as f64 / 1000.0 - p.duration).abs() < 0.2,
        "reported {} ms, ffprobe {} s",
        c.duration_ms,
        p.duration
    );
    let errs = media::decode_errors(out);
    assert!(errs.is_empty(), "decode errors: {errs}");
}

#[test]
fn two_streams_with_offsets_make_an_h264_aac_grid() {
    let (_d, dir) = media::tmp();
    let m = media_2s(&dir);
    let a = record(&dir, "a.webm", &m, true, true);
    let b = record(&dir, "b.webm", &m, true, true);
    let out = dir.join("composed.mp4");
    let c = grid_compose(
        vec![input(&a, 0, true, true), input(&b, 1500, true, true)],
        640,
        480,
        ComposeOutput::File(out.clone()),
    )
    .unwrap();
    check(&out, &c, &["aac", "h264"], Some((640, 480)), 3.5);
}

#[test]
fn portrait_grid_with_audio_only_and_video_only_streams() {
    let (_d, dir) = media::tmp();
    let m = media_2s(&dir);
    let av = record(&dir, "av.webm", &m, true, true);
    let a = record(&dir, "a.webm", &m, true, false);
    let v = record(&dir, "v.webm", &m, false, true);
    let out = dir.join("portrait.mp4");
    let c = grid_compose(
        vec![input(&av, 0, true, true), input(&a, 500, true, false), input(&v, 1000, false, true)],
        480,
        640,
        ComposeOutput::File(out.clone()),
    )
    .unwrap();
    check(&out, &c, &["aac", "h264"], Some((480, 640)), 3.0);
}

#[test]
fn audio_only_and_video_only_archives() {
    let (_d, dir) = media::tmp();
    let m = media_2s(&dir);
    let a = record(&dir, "a.webm", &m, true, false);
    let out = dir.join("audio.mp4");
    let c = grid_compose(
        vec![input(&a, 0, true, false), input(&a, 1000, true, false)],
        640,
        480,
        ComposeOutput::File(out.clone()),
    )
    .unwrap();
    check(&out, &c, &["aac"], None, 3.0);

    let v = record(&dir, "v.webm", &m, false, true);
    let out = dir.join("video.mp4");
    let c = grid_compose(vec![input(&v, 200, false, true)], 1280, 720, ComposeOutput::File(out.clone())).unwrap();
    check(&out, &c, &["h264"], Some((1280, 720)), 2.2);
}

#[test]
fn bad_requests_are_refused() {
    let (_d, dir) = media::tmp();
    let p = dir.join("missing.webm");
    let out = ComposeOutput::File(dir.join("x.mp4"));
    assert!(grid_compose(vec![], 640, 480, out).is_err());
    let out = ComposeOutput::File(dir.join("x.mp4"));
    assert!(grid_compose(vec![input(&p, 0, true, true)], 641, 480, out).is_err());
    let out = ComposeOutput::File(dir.join("x.mp4"));
    let err = grid_compose(vec![input(&p, 0, true, true)], 640, 480, out).unwrap_err();
    assert!(err.to_string().contains("missing.webm"), "{err}");
}

#[test]
fn encrypted_inputs_compose_into_an_encrypted_mp4() {
    let (_d, dir) = media::tmp();
    let m = media_2s(&dir);
    let enc_dir = dir.join("enc");
    std::fs::create_dir(&enc_dir).unwrap();
    let customer = age::x25519::Identity::generate();
    let eph = EphemeralKey::generate();
    let mut recorded: Vec<RecordedFile> = Vec::new();
    for name in ["s1", "s2"] {
        let path = enc_dir.join(format!("{name}.webm.age"));
        let mut rec = StreamRecorder::create_encrypted(
            &path,
            RecorderConfig::default(),
            vec![Box::new(customer.to_public()), eph.boxed_recipient()],
        )
        .unwrap();
        media::feed_sorted(&mut rec, &m.audio, &m.video, 0);
        recorded.push(rec.finish().unwrap());
    }
    let inputs = recorded
        .iter()
        .zip([0u64, 1000])
        .map(|(r, offset_ms)| ComposeInput {
            source: ComposeSource::Reader(Box::new(open_decrypted(&r.path, &eph).unwrap())),
            offset_ms,
            duration_ms: 2000,
            has_audio: true,
            has_video: true,
        })
        .collect();
    let archive = enc_dir.join("archive.mp4.age");
    let file = std::fs::File::create_new(&archive).unwrap();
    let mut w = EncryptingWriter::new(file, &[Box::new(customer.to_public())]).unwrap();
    let c = grid_compose(inputs, 1280, 720, ComposeOutput::Writer(&mut w)).unwrap();
    let info = w.finish().unwrap();
    assert_eq!(info.size, std::fs::metadata(&archive).unwrap().len());
    assert_eq!(info.sha256, sha256_file(&archive).unwrap());
    assert!((c.duration_ms as i64 - 3000).abs() < 1000, "{} ms", c.duration_ms);
    for e in std::fs::read_dir(&enc_dir).unwrap() {
        let b = std::fs::read(e.unwrap().path()).unwrap();
        assert!(b.starts_with(b"age-encryption.org/v1\n"));
        assert!(!media::contains(&b, b"ftyp") && !media::contains(&b, &media::WEBM_MAGIC));
    }

    let id_file = dir.join("customer.txt");
    media::write_identity(&id_file, &customer);
    let (ok, plain, err) = media::age_cli_decrypt(&id_file, &archive);
    assert!(ok, "age -d failed: {err}");
    assert_eq!(plain.len() as u64, c.size);
    assert_eq!(conclave_archive::digest::sha256_bytes(&plain), c.sha256);
    let mp4 = dir.join("decrypted.mp4");
    std::fs::write(&mp4, &plain).unwrap();
    let p = media::probe(&mp4);
    assert_eq!(p.codecs, ["aac", "h264"]);
    assert_eq!((p.width, p.height), (Some(1280), Some(720)));
    assert!((p.duration - 3.0).abs() < 1.0, "duration {}", p.duration);
    let errs = media::decode_errors(&mp4);
    assert!(errs.is_empty(), "decode errors: {errs}");
}

/// A video-only recording of a solid colour.
fn record_colour(dir: &Path, colour: &str) -> PathBuf {
    let m = Media { audio: Vec::new(), video: media::vp8_colour_frames(dir, 2, colour) };
    record(dir, &format!("{colour}.webm"), &m, false, true)
}

/// The RGB pixel at (x, y) of a video's frame at `at` seconds.
fn pixel(file: &Path, at: f64, width: u32, x: u32, y: u32) -> [u8; 3] {
    let rgb = conclave_archive::ffmpeg::frame_rgb24(file, at).unwrap();
    let i = ((y * width + x) * 3) as usize;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

fn looks(p: [u8; 3], colour: &str) -> bool {
    let [r, g, b] = p.map(i32::from);
    match colour {
        "red" => r > 180 && g < 70 && b < 70,
        "blue" => b > 180 && r < 70 && g < 70,
        "lime" => g > 180 && r < 70 && b < 70,
        "black" => r < 40 && g < 40 && b < 40,
        _ => unreachable!(),
    }
}

#[test]
fn layouts_put_each_stream_where_the_layout_says() {
    let (_d, dir) = media::tmp();
    let red = record_colour(&dir, "red");
    let blue = record_colour(&dir, "blue");
    let lime = record_colour(&dir, "lime");
    let (w, h) = (640, 480);
    for layout in [Layout::Pip, Layout::VerticalPresentation, Layout::HorizontalPresentation, Layout::BestFit] {
        // Blue is the focus (second input); lime starts a second late.
        let inputs = vec![input(&red, 0, false, true), input(&blue, 0, false, true), input(&lime, 1000, false, true)];
        let marks = [false, true, false];
        let out = dir.join(format!("{layout:?}.mp4"));
        let spec = ComposeSpec::fixed(w, h, layout, Some(1), Quality::Default);
        let c = compose(inputs, &spec, ComposeOutput::File(out.clone())).unwrap();
        check(&out, &c, &["h264"], Some((640, 480)), 3.0);
        let tiles = placements(
            layout,
            &marks
                .iter()
                .zip([0u64, 0, 1000])
                .map(|(f, o)| TileInput {
                    offset_ms: o,
                    duration_ms: 2000,
                    has_audio: false,
                    has_video: true,
                    focus: *f,
                })
                .collect::<Vec<_>>(),
            w,
            h,
        );
        let centre = |i: usize| {
            let r = tiles.iter().find(|(j, _)| *j == i).unwrap().1;
            (r.x + r.w / 2, r.y + r.h / 2)
        };
        let colours = ["red", "blue", "lime"];
        for (i, colour) in colours.iter().enumerate() {
            let (x, y) = centre(i);
            let p = pixel(&out, 1.5, w, x, y);
            assert!(looks(p, colour), "{layout:?}: {colour} expected at ({x}, {y}), got {p:?}");
        }
        // Before lime starts its tile is black (where it does not cover another stream).
        if layout != Layout::Pip {
            let (x, y) = centre(2);
            assert!(looks(pixel(&out, 0.4, w, x, y), "black"), "{layout:?}");
        }
        if layout == Layout::Pip {
            // The focus fills the canvas around the insets.
            assert!(looks(pixel(&out, 1.5, w, 20, 20), "blue"));
        }
    }
}

/// Overall bit rate of a file, from its size and duration, in bits per second.
fn bitrate(file: &Path) -> f64 {
    std::fs::metadata(file).unwrap().len() as f64 * 8.0 / media::probe(file).duration
}

#[test]
fn max_bitrate_caps_the_file_and_quantization_sets_the_quality() {
    let (_d, dir) = media::tmp();
    let m = media_2s(&dir);
    let av = record(&dir, "av.webm", &m, true, true);
    let make = |name: &str, quality: Quality| {
        let out = dir.join(name);
        let spec = ComposeSpec::fixed(1280, 720, Layout::BestFit, None, quality);
        let c = compose(vec![input(&av, 0, true, true)], &spec, ComposeOutput::File(out.clone())).unwrap();
        check(&out, &c, &["aac", "h264"], Some((1280, 720)), 2.0);
        out
    };
    let free = bitrate(&make("default.mp4", Quality::Default));
    let capped = bitrate(&make("capped.mp4", Quality::MaxBitrate(150_000)));
    assert!(free > 150_000.0 * 1.5, "the uncapped test file must need more than the cap: {free}");
    // A 2 s file has little room to average out (and the container has overhead): allow 20%.
    assert!(capped < 150_000.0 * 1.2, "maxBitrate 150 kb/s gave {capped} b/s (uncapped: {free})");
    let fine = std::fs::metadata(make("qp15.mp4", Quality::Qp(15))).unwrap().len();
    let coarse = std::fs::metadata(make("qp40.mp4", Quality::Qp(40))).unwrap().len();
    assert!(coarse * 2 < fine, "QP 40 ({coarse} B) is far smaller than QP 15 ({fine} B)");
}

#[test]
fn a_layout_that_changes_while_recording_changes_in_the_file_at_that_time() {
    let (_d, dir) = media::tmp();
    let red = record_colour(&dir, "red");
    let blue = record_colour(&dir, "blue");
    let inputs = vec![input(&red, 0, false, true), input(&blue, 0, false, true)];
    // Picture-in-picture with red as the focus, then blue from 1 s.
    let changes = vec![
        Epoch { from_ms: 0, layout: Layout::Pip, focus: Some(0) },
        Epoch { from_ms: 1000, layout: Layout::Pip, focus: Some(1) },
    ];
    let spec = ComposeSpec { width: 640, height: 480, epochs: changes, quality: Quality::Default };
    let out = dir.join("changes.mp4");
    let c = compose(inputs, &spec, ComposeOutput::File(out.clone())).unwrap();
    check(&out, &c, &["h264"], Some((640, 480)), 2.0);
    // Full frame, then the inset in the lower right corner, before and after the change.
    assert!(looks(pixel(&out, 0.5, 640, 40, 40), "red"));
    assert!(looks(pixel(&out, 0.5, 640, 540, 400), "blue"));
    assert!(looks(pixel(&out, 1.5, 640, 40, 40), "blue"));
    assert!(looks(pixel(&out, 1.5, 640, 540, 400), "red"));
}
