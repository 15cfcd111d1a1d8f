//! Fallback store tests: put/open/delete/expire, and names that could escape the directory.

use crate::media;
use conclave_archive::upload::FallbackStore;
use std::io::Read;
use std::time::{Duration, SystemTime};

const A: &str = "e85741ce-d280-4efa-a3ba-93379a68be06";
const B: &str = "0d4a0a3b-5a2e-4c61-9d89-3f1f0f7e8b11";

#[test]
fn put_open_delete_expire() {
    let (_d, dir) = media::tmp();
    let store = FallbackStore::new(dir.join("store")).unwrap();
    let src = dir.join("a.zip");
    std::fs::write(&src, b"PK\x03\x04archive-a").unwrap();
    let stored = store.put(A, "zip", &src).unwrap();
    assert_eq!(stored, dir.join("store").join(format!("{A}.zip")));
    assert!(!src.exists(), "source moved into the store");
    let mut got = Vec::new();
    store.open(A, "zip").unwrap().read_to_end(&mut got).unwrap();
    assert_eq!(got, b"PK\x03\x04archive-a");

    let src_b = dir.join("b.webm");
    std::fs::write(&src_b, b"webm-b").unwrap();
    store.put(B, "webm", &src_b).unwrap();
    std::fs::write(dir.join("store").join("notes.txt"), b"not ours").unwrap();

    assert!(store.delete(B, "webm").unwrap());
    assert!(!store.delete(B, "webm").unwrap());
    assert!(store.open(B, "webm").is_err());

    assert!(store.expire(Duration::from_secs(3600)).unwrap().is_empty(), "fresh file kept");
    let later = SystemTime::now() + Duration::from_secs(73 * 3600);
    let removed = store.expire_at(later, Duration::from_secs(72 * 3600)).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].archive_id.to_string(), A);
    assert_eq!(removed[0].size, 13);
    assert!(!stored.exists());
    assert!(dir.join("store").join("notes.txt").exists(), "foreign file untouched");
}

#[test]
fn path_traversal_names_are_refused() {
    let (_d, dir) = media::tmp();
    let store = FallbackStore::new(dir.join("store")).unwrap();
    let src = dir.join("x");
    std::fs::write(&src, b"x").unwrap();
    for id in [
        "../e85741ce-d280-4efa-a3ba-93379a68be06",
        "..",
        "/etc/passwd",
        "a/b",
        "",
        "e85741ce-d280-4efa-a3ba-93379a68be06/../../x",
    ] {
        assert!(store.put(id, "zip", &src).is_err(), "{id:?} accepted");
        assert!(store.open(id, "zip").is_err());
        assert!(store.delete(id, "zip").is_err());
    }
    for ext in ["../zip", "zip/..", "", "sh"] {
        assert!(store.put(A, ext, &src).is_err(), "{ext:?} accepted");
    }
    assert!(src.exists());
}
