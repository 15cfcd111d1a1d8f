//! Package tests: the ZIP holds each stream's bytes and a manifest that parses; the
//! returned sha256 matches the file.

use crate::media;
use conclave_archive::digest::sha256_file;
use conclave_archive::package::{Manifest, PackageInput, stream_filename, write_individual_zip};
use std::io::Read;

const ARCHIVE: &str = "e85741ce-d280-4efa-a3ba-93379a68be06";

#[test]
fn individual_zip_has_files_manifest_and_sha256() {
    let (_d, dir) = media::tmp();
    let a = dir.join("s1.webm");
    let b = dir.join("s2.webm");
    std::fs::write(&a, vec![0x1a; 1000]).unwrap();
    std::fs::write(&b, (0..5000u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
    let inputs = [
        PackageInput {
            stream_id: "stream-1".into(),
            path: a.clone(),
            start_time_offset_ms: 0,
            stop_time_offset_ms: 2000,
            has_audio: true,
            has_video: true,
        },
        PackageInput {
            stream_id: "stream_2".into(),
            path: b.clone(),
            start_time_offset_ms: 500,
            stop_time_offset_ms: 1500,
            has_audio: true,
            has_video: false,
        },
    ];
    let out = dir.join("archive.zip");
    let pkg = write_individual_zip(&out, ARCHIVE, "1_MX4xfg", 1_700_000_000_000, &inputs).unwrap();
    assert_eq!(pkg.sha256, sha256_file(&out).unwrap());
    assert_eq!(pkg.size, std::fs::metadata(&out).unwrap().len());
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..4], b"PK\x03\x04");

    let mut z = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut names: Vec<String> = z.file_names().map(|n| n.unwrap().into_owned()).collect();
    names.sort();
    assert_eq!(names, [format!("{ARCHIVE}.json"), "stream-1.webm".into(), "stream_2.webm".into()]);
    for (name, src) in [("stream-1.webm", &a), ("stream_2.webm", &b)] {
        let mut got = Vec::new();
        z.by_name(name).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, std::fs::read(src).unwrap());
    }
    let mut json = String::new();
    z.by_name(&format!("{ARCHIVE}.json")).unwrap().read_to_string(&mut json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["id"], ARCHIVE);
    assert_eq!(v["sessionId"], "1_MX4xfg");
    assert_eq!(v["createdAt"], 1_700_000_000_000u64);
    assert_eq!(v["files"][1]["streamId"], "stream_2");
    assert_eq!(v["files"][1]["filename"], "stream_2.webm");
    assert_eq!(v["files"][1]["startTimeOffset"], 500);
    assert_eq!(v["files"][1]["stopTimeOffset"], 1500);
    assert_eq!(v["files"][1]["size"], 5000);
    assert_eq!(v["files"][1]["hasVideo"], false);
    let m: Manifest = serde_json::from_str(&json).unwrap();
    assert_eq!(m, pkg.manifest);
}

#[test]
fn unsafe_stream_ids_and_archive_ids_are_refused() {
    for bad in ["../x", "a/b", "", "a b", "..", "x\\y"] {
        assert!(stream_filename(bad).is_err(), "{bad:?} accepted");
    }
    let (_d, dir) = media::tmp();
    let f = dir.join("s.webm");
    std::fs::write(&f, b"x").unwrap();
    let input = PackageInput {
        stream_id: "../../etc".into(),
        path: f,
        start_time_offset_ms: 0,
        stop_time_offset_ms: 1,
        has_audio: true,
        has_video: false,
    };
    assert!(write_individual_zip(&dir.join("z.zip"), ARCHIVE, "s", 0, &[input]).is_err());
    assert!(write_individual_zip(&dir.join("z.zip"), "../evil", "s", 0, &[]).is_err());
}

#[test]
fn record_package_encrypt_and_store_end_to_end() {
    use conclave_archive::{RecorderConfig, StreamRecorder, encrypt, upload::FallbackStore};
    let (_d, dir) = media::tmp();
    let video = media::vp8_frames(&dir, 1);
    let audio = media::opus_packets(&dir, 1);
    let archive_start = 1_000_000_000u64;
    let stream_start = archive_start + 1_500_000_000;
    let out = dir.join("s1.webm");
    let mut rec = StreamRecorder::create(&out, RecorderConfig::default()).unwrap();
    let mut evs: Vec<(u64, bool, &media::Frame)> = audio.iter().map(|a| (a.ts_ns, false, a)).collect();
    evs.extend(video.iter().map(|v| (v.ts_ns, true, v)));
    evs.sort_by_key(|e| (e.0, e.1));
    for (ts, is_video, f) in evs {
        if is_video {
            rec.write_video(&f.data, stream_start + ts, f.key).unwrap();
        } else {
            rec.write_audio(&f.data, stream_start + ts).unwrap();
        }
    }
    let file = rec.finish().unwrap();
    let input = PackageInput::from_recorded("stream-1", &file, archive_start);
    assert_eq!(input.start_time_offset_ms, 1500);
    assert!((input.stop_time_offset_ms as i64 - 2500).abs() < 100, "{}", input.stop_time_offset_ms);
    let zip_path = dir.join("pkg.zip");
    let pkg = write_individual_zip(&zip_path, ARCHIVE, "sess", 0, &[input]).unwrap();
    assert_eq!(pkg.manifest.files[0].size, file.size);
    let id = age::x25519::Identity::generate();
    let r = encrypt::ArchiveRecipient::parse(&id.to_public().to_string()).unwrap();
    let enc = dir.join("pkg.zip.age");
    encrypt::encrypt_file(&zip_path, &enc, &r).unwrap();
    let store = FallbackStore::new(dir.join("store")).unwrap();
    let stored = store.put(ARCHIVE, "age", &enc).unwrap();
    assert_eq!(stored.file_name().unwrap().to_str().unwrap(), format!("{ARCHIVE}.age"));
}

#[test]
fn streamed_zip_from_decrypting_readers_into_an_encrypting_writer() {
    use conclave_archive::encrypt::{EncryptingWriter, EphemeralKey, open_decrypted};
    use conclave_archive::package::write_individual_zip_to;
    use conclave_archive::{RecorderConfig, StreamRecorder};
    let (_d, dir) = media::tmp();
    let video = media::vp8_frames(&dir, 1);
    let audio = media::opus_packets(&dir, 1);
    let enc_dir = dir.join("enc");
    std::fs::create_dir(&enc_dir).unwrap();
    let customer = age::x25519::Identity::generate();
    let eph = EphemeralKey::generate();
    let mut inputs: Vec<(PackageInput, Box<dyn Read + Send>)> = Vec::new();
    let mut plain_streams = Vec::new();
    for (i, id) in ["stream-a", "stream-b"].into_iter().enumerate() {
        let path = enc_dir.join(format!("{id}.webm.age"));
        let mut rec = StreamRecorder::create_encrypted(
            &path,
            RecorderConfig::default(),
            vec![Box::new(customer.to_public()), eph.boxed_recipient()],
        )
        .unwrap();
        let t0 = 10_000_000_000 + i as u64 * 700_000_000;
        media::feed_sorted(&mut rec, &audio, &video, t0);
        let f = rec.finish().unwrap();
        let mut plain = Vec::new();
        open_decrypted(&path, &eph).unwrap().read_to_end(&mut plain).unwrap();
        plain_streams.push(plain);
        let input = PackageInput::from_recorded(id, &f, 10_000_000_000);
        inputs.push((input, Box::new(open_decrypted(&path, &eph).unwrap())));
    }
    let zip_age = enc_dir.join("archive.zip.age");
    let out = std::fs::File::create_new(&zip_age).unwrap();
    let w = EncryptingWriter::new(out, &[Box::new(customer.to_public())]).unwrap();
    let (manifest, w) = write_individual_zip_to(w, ARCHIVE, "sess", 42, inputs).unwrap();
    let info = w.finish().unwrap();
    assert_eq!(info.sha256, sha256_file(&zip_age).unwrap());
    for e in std::fs::read_dir(&enc_dir).unwrap() {
        let b = std::fs::read(e.unwrap().path()).unwrap();
        assert!(b.starts_with(b"age-encryption.org/v1\n"));
        assert!(!media::contains(&b, b"PK\x03\x04") && !media::contains(&b, &media::WEBM_MAGIC));
    }
    assert_eq!(manifest.files[1].start_time_offset, 700);
    assert_eq!(manifest.files[0].size, plain_streams[0].len() as u64);

    let id_file = dir.join("customer.txt");
    media::write_identity(&id_file, &customer);
    let (ok, zip_bytes, err) = media::age_cli_decrypt(&id_file, &zip_age);
    assert!(ok, "age -d failed: {err}");
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(&zip_bytes)).unwrap();
    assert_eq!(z.len(), 3);
    for (i, name) in ["stream-a.webm", "stream-b.webm"].into_iter().enumerate() {
        let mut got = Vec::new();
        z.by_name(name).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, plain_streams[i], "{name}");
    }
    let mut json = String::new();
    z.by_name(&format!("{ARCHIVE}.json")).unwrap().read_to_string(&mut json).unwrap();
    assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), manifest);
    let zip_file = dir.join("decrypted.zip");
    std::fs::write(&zip_file, &zip_bytes).unwrap();
    let t = std::process::Command::new("unzip")
        .arg("-t")
        .arg(&zip_file)
        .output()
        .expect("unzip is required for this test (apt-get install -y unzip)");
    assert!(t.status.success(), "unzip -t: {}", String::from_utf8_lossy(&t.stdout));
    let webm = dir.join("a.webm");
    std::fs::write(&webm, &plain_streams[0]).unwrap();
    assert_eq!(media::probe(&webm).codecs, ["opus", "vp8"]);
}
