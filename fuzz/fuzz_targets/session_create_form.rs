//! The session-create form parser: never panics on any body bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = conclave_core::wire::SessionCreateRequest::from_form(data);
});
