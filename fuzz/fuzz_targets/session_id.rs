//! Session-ID parsing and decoding: never panics; accepted IDs stay within the charset.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(id) = conclave_core::SessionId::parse(s) {
        assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        let _ = id.decoded_fields();
        let _ = id.api_key_hint();
    }
});
