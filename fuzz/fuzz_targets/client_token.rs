//! Client-token decoders (T1 and JWT): never panic, and only a signature made with the
//! secret verifies.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let lookup = |_: &str| Some([b"5e8ff9bf55ba3508199d22e984129be6f0e1c3d2".as_slice()]);
    let _ = conclave_core::token::verify(s, 1_700_000_000, lookup);
    if let Ok(t) = conclave_core::token::UnverifiedToken::parse(s) {
        let _ = t.api_key();
        let _ = t.into_claims(1_700_000_000);
    }
});
