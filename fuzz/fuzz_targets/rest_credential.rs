//! The X-OPENTOK-AUTH verifier: never panics on any header value.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = conclave_core::rest_auth::verify(s, 1_700_000_000, |_| Some([b"k".as_slice()]));
    if let Ok(c) = conclave_core::rest_auth::UnverifiedRestCredential::parse(s) {
        let _ = c.into_credential(1_700_000_000);
    }
});
