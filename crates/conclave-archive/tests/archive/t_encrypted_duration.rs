//! Encrypted individual archives keep their duration: the per-stream recordings are written
//! live through age (no Duration, no Cues), and packaging finishes them in memory
//! (`finalize::finish_live`) as the server's pipeline does. The customer decrypts the ZIP with
//! the stock `age` CLI and ffprobe reads the same duration as from the plain recording, for
//! VP8 WebM and H.264 Matroska alike.

use crate::media;
use conclave_archive::encrypt::{EncryptingWriter, EphemeralKey, open_decrypted};
use conclave_archive::finalize::finish_live;
use conclave_archive::package::{PackageInput, write_individual_zip_to};
use conclave_archive::{RecorderConfig, StreamRecorder, VideoCodec};
use std::io::Read;
use std::path::Path;
use std::process::Command;

const ARCHIVE: &str = "0b7f9a52-3c1e-4d7a-9a8e-5b0c2f1d6e47";
const SECS: u32 = 4;

/// Video packets ffprobe counts in `file`.
fn video_packets(file: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-count_packets", "-show_entries", "stream=nb_read_packets"])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().trim_end_matches(',').parse().unwrap_or(0)
}

fn check(codec: VideoCodec, entry_ext: &str, codecs: [&str; 2]) {
    let (_d, dir) = media::tmp();
    let video = match codec {
        VideoCodec::H264 => media::h264_frames(&dir, SECS),
        _ => media::vp8_frames(&dir, SECS),
    };
    let audio = media::opus_packets(&dir, SECS);
    let cfg = RecorderConfig { video_codec: codec, ..RecorderConfig::default() };

    // The plain recording: the reference.
    let plain = dir.join(format!("plain.{entry_ext}"));
    let mut rec = StreamRecorder::create(&plain, cfg.clone()).unwrap();
    media::feed_sorted(&mut rec, &audio, &video, 0);
    rec.finish().unwrap();
    let plain_secs = media::probe(&plain).duration;
    assert!((plain_secs - f64::from(SECS)).abs() < 0.4, "plain recording: {plain_secs} s");

    // The encrypted one, as the server records it (customer key + in-memory key).
    let customer = age::x25519::Identity::generate();
    let eph = EphemeralKey::generate();
    let enc = dir.join(format!("s1.{entry_ext}.age"));
    let mut rec =
        StreamRecorder::create_encrypted(&enc, cfg, vec![Box::new(customer.to_public()), eph.boxed_recipient()])
            .unwrap();
    media::feed_sorted(&mut rec, &audio, &video, 0);
    let f = rec.finish().unwrap();
    let mut live = Vec::new();
    open_decrypted(&enc, &eph).unwrap().read_to_end(&mut live).unwrap();
    let live_file = dir.join(format!("live.{entry_ext}"));
    std::fs::write(&live_file, &live).unwrap();
    let live_secs = media::probe(&live_file).duration;
    assert!(live_secs < 0.5, "the live recording carries no duration ({live_secs} s): the defect this fixes");

    // Packaging, as the pipeline does it: decrypt in memory, finish, ZIP, encrypt.
    let finished = finish_live(|| open_decrypted(&enc, &eph)).unwrap();
    assert!(
        (finished.duration_ms() as i64 - f.duration_ms as i64).abs() <= 1,
        "{} vs {}",
        finished.duration_ms(),
        f.duration_ms
    );
    let input = PackageInput {
        stream_id: "stream-1".into(),
        path: enc.clone(),
        start_time_offset_ms: 0,
        stop_time_offset_ms: f.duration_ms,
        has_audio: true,
        has_video: true,
    };
    let zip_age = dir.join("archive.zip.age");
    let w =
        EncryptingWriter::new(std::fs::File::create_new(&zip_age).unwrap(), &[Box::new(customer.to_public())]).unwrap();
    let finished_len = finished.len();
    let (manifest, w) = write_individual_zip_to(w, ARCHIVE, "sess", 0, vec![(input, Box::new(finished))]).unwrap();
    w.finish().unwrap();
    assert_eq!(manifest.files[0].size, finished_len);

    // The customer's side: stock age CLI, then the stream file out of the ZIP.
    let id_file = dir.join("customer.txt");
    media::write_identity(&id_file, &customer);
    let (ok, zip_bytes, err) = media::age_cli_decrypt(&id_file, &zip_age);
    assert!(ok, "age -d failed: {err}");
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let name = format!("stream-1.{entry_ext}");
    let mut stream = Vec::new();
    z.by_name(&name).unwrap().read_to_end(&mut stream).unwrap();
    let out = dir.join(&name);
    std::fs::write(&out, &stream).unwrap();

    let p = media::probe(&out);
    assert_eq!(p.codecs, codecs);
    let real = media::last_pts(&out);
    for (what, secs) in [("the real length", real), ("the plain recording", plain_secs), ("the clip", f64::from(SECS))]
    {
        assert!((p.duration - secs).abs() <= secs * 0.1, "decrypted {name}: {} s, {what}: {secs} s", p.duration);
    }
    assert_eq!(video_packets(&out), video_packets(&plain), "every frame is there");
    assert_eq!(video_packets(&out), u64::from(SECS) * 15);
    assert!(media::contains(&stream, &[0x1C, 0x53, 0xBB, 0x6B]), "Cues written");
    let errs = media::decode_errors(&out);
    assert!(errs.is_empty(), "decode errors: {errs}");
}

#[test]
fn decrypted_vp8_webm_of_an_encrypted_individual_archive_has_its_duration() {
    check(VideoCodec::Vp8, "webm", ["opus", "vp8"]);
}

#[test]
fn decrypted_h264_matroska_of_an_encrypted_individual_archive_has_its_duration() {
    check(VideoCodec::H264, "mkv", ["h264", "opus"]);
}
