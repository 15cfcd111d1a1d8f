//! The REST JSON bodies (archive start, stream patch, layout, storage target) and their
//! validation, plus the archive-ID check: never panic on any bytes.
#![no_main]
use conclave_core::archive::{
    ArchiveLayout, ArchiveStartBody, StorageBody, StreamPatchBody, is_archive_id, parse_resolution,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = serde_json::from_slice::<ArchiveStartBody>(data) {
        let _ = b.validate();
    }
    if let Ok(b) = serde_json::from_slice::<StreamPatchBody>(data) {
        let _ = b.validate();
    }
    if let Ok(b) = serde_json::from_slice::<ArchiveLayout>(data) {
        let _ = b.validate();
    }
    if let Ok(b) = serde_json::from_slice::<StorageBody>(data) {
        let _ = b.validate();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = is_archive_id(s);
        let _ = parse_resolution(s);
    }
});
