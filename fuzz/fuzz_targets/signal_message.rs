//! The signaling message parser: never panics; what parses re-serialises and parses again.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(env) = conclave_core::signal::parse_client_frame(s) {
        let again = serde_json::to_string(&env).unwrap();
        let _ = conclave_core::signal::parse_client_frame(&again);
    }
});
