//! The OpenTok.js wire codec: arbitrary bytes as a Rumor frame, then its body as a client and
//! as a server Raptor message. Nothing panics; whatever decodes re-encodes to the same bytes
//! (reserved bytes aside) and parses back to the same value.
#![no_main]
use conclave_core::opentok::raptor::{ClientRaptor, ServerRaptor, parse_client_request};
use conclave_core::opentok::rumor::{Limits, RumorFrame};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// serde_json's default float parser may move a printed float by one ulp, so values holding
/// fractional numbers are only required to re-parse, not to compare equal.
fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(frame) = RumorFrame::decode(data, &limits) else { return };
    let bytes = frame.encode_checked(&limits).expect("a decoded frame re-encodes within the same limits");
    assert_eq!(bytes[..4], data[..4]);
    assert_eq!(bytes[6..], data[6..]);
    assert_eq!(RumorFrame::decode(&bytes, &limits).as_ref(), Ok(&frame));
    let _ = frame.client_view();

    let exact = serde_json::from_str::<Value>(&frame.body).is_ok_and(|v| !has_float(&v));
    if let Ok(request) = ClientRaptor::parse(&frame.body) {
        let text = request.to_json();
        let again = ClientRaptor::parse(&text);
        if exact {
            assert_eq!(again.as_ref(), Ok(&request));
            let reframed = RumorFrame::client_message("symphony.fuzz", "T", "C", Some("tok"), text);
            let decoded = RumorFrame::decode(&reframed.encode().unwrap(), &Limits::format_only(usize::MAX)).unwrap();
            assert_eq!(parse_client_request(&decoded).map(|r| r.raptor).as_ref(), Ok(&request));
        }
    }
    if let Ok(message) = ServerRaptor::parse(&frame.body) {
        let again = ServerRaptor::parse(&message.to_json());
        if exact {
            assert_eq!(again.as_ref(), Ok(&message));
        }
    }
});
