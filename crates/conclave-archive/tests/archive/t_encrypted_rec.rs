//! Encrypted recording: `StreamRecorder::create_encrypted` writes only ciphertext; the stock
//! `age` CLI (customer key) and `EphemeralKey` (server, in memory) both decrypt it to a WebM
//! that ffprobe accepts; a crash leaves a decryptable prefix.

use crate::media;
use conclave_archive::digest::sha256_file;
use conclave_archive::encrypt::{ArchiveRecipient, EphemeralKey, open_decrypted};
use conclave_archive::recover::finalize_crashed_webm;
use conclave_archive::{RecorderConfig, StreamRecorder};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Every file under `dir` must be an age file without the WebM magic.
fn assert_only_ciphertext(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let b = std::fs::read(&p).unwrap();
        assert!(b.starts_with(b"age-encryption.org/v1\n"), "{} is not an age file", p.display());
        assert!(!media::contains(&b, &media::WEBM_MAGIC), "WebM magic in {}", p.display());
    }
}

#[test]
fn encrypted_recording_decrypts_with_age_cli_and_ephemeral_key() {
    let (_d, dir) = media::tmp();
    let video = media::vp8_frames(&dir, 2);
    let audio = media::opus_packets(&dir, 2);
    let rec_dir = dir.join("rec");
    std::fs::create_dir(&rec_dir).unwrap();
    let customer = age::x25519::Identity::generate();
    let customer_r = ArchiveRecipient::parse(&customer.to_public().to_string()).unwrap();
    let eph = EphemeralKey::generate();
    assert_eq!(format!("{eph:?}"), "EphemeralKey(<redacted>)");
    let out = rec_dir.join("s1.webm.age");
    let mut rec = StreamRecorder::create_encrypted(
        &out,
        RecorderConfig::default(),
        vec![customer_r.to_boxed(), eph.boxed_recipient()],
    )
    .unwrap();
    media::feed_sorted(&mut rec, &audio, &video, 0);
    let f = rec.finish().unwrap();
    assert_eq!(f.size, std::fs::metadata(&out).unwrap().len());
    assert_eq!(f.sha256.as_deref(), Some(sha256_file(&out).unwrap().as_str()));
    assert!((f.duration_ms as i64 - 2000).abs() < 100);
    assert_only_ciphertext(&rec_dir);

    let keys = dir.join("keys");
    std::fs::create_dir(&keys).unwrap();
    let id_file = keys.join("customer.txt");
    media::write_identity(&id_file, &customer);
    let (ok, plain, err) = media::age_cli_decrypt(&id_file, &out);
    assert!(ok, "age -d failed: {err}");
    assert!(plain.starts_with(&media::WEBM_MAGIC));
    let check = dir.join("check.webm");
    std::fs::write(&check, &plain).unwrap();
    let p = media::probe(&check);
    assert_eq!(p.codecs, ["opus", "vp8"]);
    assert_eq!(p.width, Some(320));
    let secs = media::last_pts(&check);
    assert!((secs - 2.0).abs() < 1.0, "{secs} s of media");
    let errs = media::decode_errors(&check);
    assert!(errs.is_empty(), "decode errors: {errs}");

    let mut by_eph = Vec::new();
    open_decrypted(&out, &eph).unwrap().read_to_end(&mut by_eph).unwrap();
    assert_eq!(by_eph, plain, "ephemeral key decrypts the same bytes");
    assert!(open_decrypted(&out, &EphemeralKey::generate()).is_err(), "another key cannot decrypt");
}

#[test]
fn encrypted_crash_leaves_decryptable_prefix() {
    let (_d, dir) = media::tmp();
    let video = media::vp8_frames(&dir, 4);
    let audio = media::opus_packets(&dir, 4);
    let rec_dir = dir.join("rec");
    std::fs::create_dir(&rec_dir).unwrap();
    let customer = age::x25519::Identity::generate();
    let out = rec_dir.join("crash.webm.age");
    let cfg = RecorderConfig { flush_interval: Duration::ZERO, ..Default::default() };
    let mut rec = StreamRecorder::create_encrypted(&out, cfg, vec![Box::new(customer.to_public())]).unwrap();
    media::feed_sorted(&mut rec, &audio, &video, 0);
    std::mem::forget(rec); // killed: no finish(), the last age chunk is never sealed
    assert_only_ciphertext(&rec_dir);

    let id_file = dir.join("customer.txt");
    media::write_identity(&id_file, &customer);
    let (ok, plain, err) = media::age_cli_decrypt(&id_file, &out);
    assert!(!ok, "a truncated age file must not decrypt cleanly");
    eprintln!(
        "age CLI on crashed file of {} bytes: {} plaintext bytes, error: {}",
        std::fs::metadata(&out).unwrap().len(),
        plain.len(),
        err.trim()
    );
    assert!(plain.len() >= 64 * 1024, "complete chunks are delivered");
    assert_eq!(plain.len() % (64 * 1024), 0, "only whole 64 KiB chunks");
    // The prefix ends inside a cluster; ffmpeg reads up to the cut and the customer can
    // finish it with the same remux the server uses for plaintext crashes.
    let prefix = dir.join("prefix.webm");
    std::fs::write(&prefix, &plain).unwrap();
    let secs = media::last_pts(&prefix);
    eprintln!("crashed encrypted recording: {secs} s of 4 s readable");
    assert!(secs > 1.0, "only {secs} s readable");
    let fixed = dir.join("fixed.webm");
    let r = finalize_crashed_webm(&prefix, &fixed).unwrap();
    assert!(r.has_audio && r.has_video);
    assert!((r.duration_ms as f64 / 1000.0 - secs).abs() < 0.5);
    assert_eq!(media::probe(&fixed).codecs, ["opus", "vp8"]);
    let errs = media::decode_errors(&fixed);
    assert!(errs.is_empty(), "decode errors: {errs}");
}
