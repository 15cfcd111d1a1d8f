//! Rumor framing tests: golden bytes worked out by hand from the layout of reference §5.2 for the
//! whole connect sequence of §7.1, truncation at every length, bounds, and property tests over
//! both layers (round trips, arbitrary bytes never panic).

use super::raptor::server::{ConnectionObject, Permission, Snapshot};
use super::raptor::{ClientMessage, ClientRaptor, ConnectContent, ServerRaptor, SessionPath, parse_client_request};
use super::rumor::{
    ClientFrame, Headers, Limits, MIN_FRAME_BYTES, MessageType, Part, RAPTOR_CONTENT_TYPE, RumorError, RumorFrame,
    header,
};
use proptest::prelude::*;

// Values used by every golden vector: API key 123, session S1, connection C1, token "tok".
const K: &str = "123";
const S: &str = "S1";
const C: &str = "C1";
const SYMPHONY: &str = "symphony.x";

fn session() -> SessionPath {
    SessionPath::new(K, S)
}

fn own_connection() -> ConnectionObject {
    ConnectionObject {
        id: C.into(),
        creation_time: 1_700_000_000_000,
        data: "name=A".into(),
        permissions: vec![Permission::Publish, Permission::Subscribe],
    }
}

// CONNECT (type 3), no addresses, 3 headers, empty body.
// 9 fixed + (2+8+2+2) + (2+14+2+2) + (2+23+2+10) = 80 bytes, so length = 76 = 0x4c.
const GOLDEN_CONNECT: &[u8] = b"\x00\x00\x00\x4c\x00\x00\x03\x00\x03\
\x00\x08uniqueId\x00\x02C1\
\x00\x0eTRANSACTION-ID\x00\x02T1\
\x00\x17notifyDisconnectAddress\x00\x0asymphony.x";

// SUBSCRIBE (type 0) to "/v2/partner/123/session/S1" (26 bytes), no headers.
// 9 + 2 + 26 = 37 bytes, length 33 = 0x21.
const GOLDEN_SUBSCRIBE: &[u8] = b"\x00\x00\x00\x21\x00\x00\x00\x01\x00\x1a/v2/partner/123/session/S1\x00";

// The client's connect MESSAGE (type 2) to the symphony address (10 bytes), 4 headers:
// Content-Type (2+12+2+23 = 39), TRANSACTION-ID T2 (20), X-TB-FROM-ADDRESS C1 (2+17+2+2 = 23),
// X-TB-TOKEN-AUTH tok (2+15+2+3 = 22); body 154 bytes.
// 9 + 12 + 104 + 154 = 279 bytes, length 275 = 0x0113.
const GOLDEN_CONNECT_MESSAGE: &[u8] = b"\x00\x00\x01\x13\x00\x00\x02\x01\x00\x0asymphony.x\x04\
\x00\x0cContent-Type\x00\x17application/x-raptor+v2\
\x00\x0eTRANSACTION-ID\x00\x02T2\
\x00\x11X-TB-FROM-ADDRESS\x00\x02C1\
\x00\x0fX-TB-TOKEN-AUTH\x00\x03tok\
{\"method\":\"create\",\"uri\":\"/v2/partner/123/session/S1/connection/C1\",\
\"content\":{\"userAgent\":\"UA\",\"clientVersion\":\"js-2.35.2\",\"capabilities\":[\"forceMute\"]}}";

// The server's `created B/connection/C1` to the newcomer (type 2), address C1 (4), headers
// Content-Type (39), X-TB-FROM-ADDRESS "" (2+17+2 = 21), TRANSACTION-ID st1 (2+14+2+3 = 21);
// body 174 bytes. 9 + 4 + 81 + 174 = 268 bytes, length 264 = 0x0108.
const GOLDEN_OWN_CREATED: &[u8] = b"\x00\x00\x01\x08\x00\x00\x02\x01\x00\x02C1\x03\
\x00\x0cContent-Type\x00\x17application/x-raptor+v2\
\x00\x11X-TB-FROM-ADDRESS\x00\x00\
\x00\x0eTRANSACTION-ID\x00\x03st1\
{\"method\":\"created\",\"uri\":\"/v2/partner/123/session/S1/connection/C1\",\"content\":\
{\"creationTime\":1700000000000,\"data\":\"name=A\",\"id\":\"C1\",\"permissions\":[\"publish\",\"subscribe\"]}}";

// The STATUS 200 reply (type 9) with the snapshot, address C1 (4), headers TRANSACTION-ID T2
// (20) and STATUS 200 (2+6+2+3 = 13); body 136 bytes. 9 + 4 + 33 + 136 = 182, length 178 = 0xb2.
const GOLDEN_SNAPSHOT_STATUS: &[u8] = b"\x00\x00\x00\xb2\x00\x00\x09\x01\x00\x02C1\x02\
\x00\x0eTRANSACTION-ID\x00\x02T2\
\x00\x06STATUS\x00\x03200\
{\"archive\":[],\"connection\":[{\"creationTime\":1700000000000,\"data\":\"name=A\",\"id\":\"C1\",\
\"permissions\":[\"publish\",\"subscribe\"]}],\"stream\":[]}";

// PING (7) and PONG (8): the 9-byte minimum, length 5.
const GOLDEN_PING: &[u8] = b"\x00\x00\x00\x05\x00\x00\x07\x00\x00";
const GOLDEN_PONG: &[u8] = b"\x00\x00\x00\x05\x00\x00\x08\x00\x00";

// DISCONNECT (4) goodbye: header reconnect = "". 9 + (2+9+2) = 22 bytes, length 18 = 0x12.
const GOLDEN_DISCONNECT: &[u8] = b"\x00\x00\x00\x12\x00\x00\x04\x00\x01\x00\x09reconnect\x00\x00";

// The client's STATUS ack (9) of st1 to address "" (2), headers TRANSACTION-ID st1 (21) and
// X-TB-FROM-ADDRESS C1 (23). 9 + 2 + 44 = 55 bytes, length 51 = 0x33.
const GOLDEN_ACK: &[u8] = b"\x00\x00\x00\x33\x00\x00\x09\x01\x00\x00\x02\
\x00\x0eTRANSACTION-ID\x00\x03st1\
\x00\x11X-TB-FROM-ADDRESS\x00\x02C1";

fn all_golden() -> [&'static [u8]; 9] {
    [
        GOLDEN_CONNECT,
        GOLDEN_SUBSCRIBE,
        GOLDEN_CONNECT_MESSAGE,
        GOLDEN_OWN_CREATED,
        GOLDEN_SNAPSHOT_STATUS,
        GOLDEN_PING,
        GOLDEN_PONG,
        GOLDEN_DISCONNECT,
        GOLDEN_ACK,
    ]
}

fn decode(bytes: &[u8]) -> Result<RumorFrame, RumorError> {
    RumorFrame::decode(bytes, &Limits::default())
}

#[test]
fn golden_lengths_match_the_hand_counts() {
    let expected = [80, 37, 279, 268, 182, 9, 9, 22, 55];
    for (bytes, len) in all_golden().iter().zip(expected) {
        assert_eq!(bytes.len(), len);
        assert_eq!(u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize, len - 4);
    }
}

#[test]
fn golden_connect_sequence_client_frames() {
    let connect = RumorFrame::connect(C, "T1", SYMPHONY);
    assert_eq!(connect.encode().unwrap(), GOLDEN_CONNECT);
    assert_eq!(decode(GOLDEN_CONNECT).unwrap(), connect);
    assert_eq!(
        connect.client_view().unwrap(),
        ClientFrame::Connect { unique_id: C, transaction_id: Some("T1"), notify_disconnect_address: Some(SYMPHONY) }
    );

    let subscribe = RumorFrame::subscribe(vec![session().address()]);
    assert_eq!(subscribe.encode().unwrap(), GOLDEN_SUBSCRIBE);
    assert_eq!(decode(GOLDEN_SUBSCRIBE).unwrap(), subscribe);

    let body = r#"{"method":"create","uri":"/v2/partner/123/session/S1/connection/C1","content":{"userAgent":"UA","clientVersion":"js-2.35.2","capabilities":["forceMute"]}}"#;
    let message = RumorFrame::client_message(SYMPHONY, "T2", C, Some("tok"), body.to_owned());
    assert_eq!(message.encode().unwrap(), GOLDEN_CONNECT_MESSAGE);
    let decoded = decode(GOLDEN_CONNECT_MESSAGE).unwrap();
    assert_eq!(decoded, message);
    assert_eq!(decoded.headers.get(header::CONTENT_TYPE), Some(RAPTOR_CONTENT_TYPE));
    let request = parse_client_request(&decoded).unwrap();
    assert_eq!(request.transaction_id.as_deref(), Some("T2"));
    assert_eq!(request.from_address.as_deref(), Some(C));
    assert_eq!(request.token.as_deref(), Some("tok"));
    assert_eq!(request.raptor.session, session());
    assert_eq!(
        request.raptor.message,
        ClientMessage::Connect {
            connection: C.into(),
            content: ConnectContent {
                user_agent: Some("UA".into()),
                client_version: Some("js-2.35.2".into()),
                capabilities: vec!["forceMute".into()],
                connection_events_suppressed: None,
            },
        }
    );

    assert_eq!(RumorFrame::ping().encode().unwrap(), GOLDEN_PING);
    assert_eq!(decode(GOLDEN_PING).unwrap().client_view().unwrap(), ClientFrame::Ping);
    assert_eq!(RumorFrame::disconnect(false).encode().unwrap(), GOLDEN_DISCONNECT);
    assert_eq!(decode(GOLDEN_DISCONNECT).unwrap().client_view().unwrap(), ClientFrame::Disconnect { reconnect: false });
    let ack = RumorFrame::ack("", "st1", C);
    assert_eq!(ack.encode().unwrap(), GOLDEN_ACK);
    assert_eq!(
        decode(GOLDEN_ACK).unwrap().client_view().unwrap(),
        ClientFrame::Ack { transaction_id: "st1", from_address: Some(C) }
    );
}

#[test]
fn golden_connect_sequence_server_frames() {
    let own = ServerRaptor::connection_created(&session(), &own_connection()).into_frame(C, Some("st1"), "");
    assert_eq!(own.encode().unwrap(), GOLDEN_OWN_CREATED);
    assert_eq!(decode(GOLDEN_OWN_CREATED).unwrap(), own);

    let snapshot = Snapshot { connection: vec![own_connection()], ..Snapshot::default() };
    let status = RumorFrame::status(C, "T2", 200, snapshot.to_json());
    assert_eq!(status.encode().unwrap(), GOLDEN_SNAPSHOT_STATUS);
    let decoded = decode(GOLDEN_SNAPSHOT_STATUS).unwrap();
    assert_eq!(decoded.status_code(), Some(200));
    assert!(decoded.is_success());
    assert_eq!(decoded.transaction_id(), Some("T2"));

    assert_eq!(RumorFrame::pong().encode().unwrap(), GOLDEN_PONG);
    assert_eq!(RumorFrame::pong().encoded_len(), MIN_FRAME_BYTES);
    assert_eq!(decode(GOLDEN_PONG).unwrap().client_view(), Err(RumorError::UnexpectedType(MessageType::Pong)));
}

#[test]
fn every_message_type_round_trips() {
    let frames = [
        RumorFrame::subscribe(vec![session().address()]),
        RumorFrame::unsubscribe(vec![session().address(), "other".into()]),
        RumorFrame::client_message(SYMPHONY, "T", C, None, "{}".into()),
        RumorFrame::server_message(C, None, "symphony.media", "{}".into()),
        RumorFrame::connect(C, "T", SYMPHONY),
        RumorFrame::disconnect(true),
        RumorFrame::disconnect(false),
        RumorFrame::ping(),
        RumorFrame::pong(),
        RumorFrame::status(C, "T", 403, r#"{"reason":"connectionLimitExceeded"}"#.into()),
        RumorFrame::ack("C2", "T", C),
    ];
    for frame in frames {
        let bytes = frame.encode().unwrap();
        assert_eq!(bytes.len(), frame.encoded_len());
        assert_eq!(decode(&bytes).unwrap(), frame, "{}", frame.kind);
    }
    for kind in MessageType::ALL {
        assert_eq!(MessageType::from_code(kind.code()), Some(kind));
    }
    assert_eq!(RumorFrame::disconnect(true).client_view().unwrap(), ClientFrame::Disconnect { reconnect: true });
}

#[test]
fn status_success_follows_the_first_digit() {
    let mut frame = RumorFrame::status(C, "T", 200, String::new());
    assert!(frame.is_success());
    for (text, ok) in [("204", true), ("2", true), ("403", false), ("", false), ("x", false)] {
        frame.headers.insert(header::STATUS, text);
        assert_eq!(frame.is_success(), ok, "{text:?}");
    }
    frame.headers.remove(header::STATUS);
    assert!(!frame.is_success());
    assert_eq!(frame.status_code(), None);
}

#[test]
fn truncated_frames_at_every_length_fail() {
    for golden in all_golden() {
        for cut in 0..golden.len() {
            assert!(decode(&golden[..cut]).is_err(), "prefix {cut} of {golden:?}");
        }
        // Even with the length field patched to match, a cut before the body is an error.
        let body_start = golden.len() - decode(golden).unwrap().body.len();
        for cut in 4..body_start {
            let mut bytes = golden[..cut].to_vec();
            bytes[..4].copy_from_slice(&((cut - 4) as u32).to_be_bytes());
            assert!(matches!(decode(&bytes), Err(RumorError::Truncated { .. })), "cut {cut} of {golden:?}");
        }
    }
    assert!(matches!(decode(&[]), Err(RumorError::Truncated { part: Part::Header, offset: 0 })));
}

#[test]
fn hostile_frames_are_errors() {
    let limits = Limits::default();
    let with_len = |mut b: Vec<u8>| {
        let n = (b.len() - 4) as u32;
        b[..4].copy_from_slice(&n.to_be_bytes());
        b
    };
    // Length field disagreeing with the frame.
    let mut b = GOLDEN_PING.to_vec();
    b[3] = 6;
    assert_eq!(decode(&b), Err(RumorError::LengthMismatch { declared: 6, actual: 5 }));
    // Unknown types.
    for code in [5u8, 6, 10, 255] {
        let mut b = GOLDEN_PING.to_vec();
        b[6] = code;
        assert_eq!(decode(&b), Err(RumorError::UnknownType(code)));
    }
    // Reserved bytes are ignored.
    let mut b = GOLDEN_PING.to_vec();
    b[4] = 0xff;
    assert_eq!(decode(&b).unwrap(), RumorFrame::ping());
    // Address count above the limit, checked before reading any address.
    let b = with_len(vec![0, 0, 0, 0, 0, 0, 0, 200, 0]);
    assert_eq!(decode(&b), Err(RumorError::TooManyAddresses { count: 200, max: limits.max_addresses }));
    // Header count above the limit.
    let b = with_len(vec![0, 0, 0, 0, 0, 0, 2, 0, 255]);
    assert_eq!(decode(&b), Err(RumorError::TooManyHeaders { count: 255, max: limits.max_headers }));
    // A string length larger than what follows.
    let b = with_len(vec![0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, b'a']);
    assert_eq!(
        decode(&b),
        Err(RumorError::TooLong { part: Part::Address, len: 0xffff, max: limits.max_address_bytes })
    );
    let b = with_len(vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 9, b'a']);
    assert_eq!(decode(&b), Err(RumorError::Truncated { part: Part::Address, offset: 10 }));
    // Invalid UTF-8 in an address, a header and the body.
    let b = with_len(vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0xff, 0]);
    assert_eq!(decode(&b), Err(RumorError::InvalidUtf8 { part: Part::Address }));
    let b = with_len(vec![0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 1, 0xc3, 0, 0]);
    assert_eq!(decode(&b), Err(RumorError::InvalidUtf8 { part: Part::HeaderKey }));
    let b = with_len(vec![0, 0, 0, 0, 0, 0, 2, 0, 0, b'{', 0xe2, 0x82]);
    assert_eq!(decode(&b), Err(RumorError::InvalidUtf8 { part: Part::Body }));
    // Duplicate headers, ignoring case.
    let b = with_len(vec![0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 1, b'a', 0, 0, 0, 1, b'A', 0, 1, b'x']);
    assert_eq!(decode(&b), Err(RumorError::DuplicateHeader("A".into())));
    // Frame size limit, checked first.
    let small = Limits { max_frame_bytes: 8, ..Limits::default() };
    assert_eq!(RumorFrame::decode(GOLDEN_PING, &small), Err(RumorError::FrameTooLarge { len: 9, max: 8 }));
    // Header value limit.
    let tight = Limits { max_header_value_bytes: 1, ..Limits::default() };
    assert_eq!(
        RumorFrame::decode(GOLDEN_CONNECT, &tight),
        Err(RumorError::TooLong { part: Part::HeaderValue, len: 2, max: 1 })
    );
}

#[test]
fn encode_rejects_what_the_layout_cannot_hold() {
    let mut frame = RumorFrame::subscribe((0..256).map(|i| i.to_string()).collect());
    assert_eq!(frame.encode(), Err(RumorError::TooManyAddresses { count: 256, max: 255 }));
    frame.addresses = vec!["x".repeat(65_536)];
    assert_eq!(frame.encode(), Err(RumorError::TooLong { part: Part::Address, len: 65_536, max: 65_535 }));
    let mut frame = RumorFrame::ping();
    for i in 0..256 {
        frame.headers.insert(format!("h{i}"), "");
    }
    assert_eq!(frame.encode(), Err(RumorError::TooManyHeaders { count: 256, max: 255 }));
    let big = RumorFrame { body: "x".repeat(100), ..RumorFrame::ping() };
    let limits = Limits { max_frame_bytes: 50, ..Limits::default() };
    assert_eq!(big.encode_checked(&limits), Err(RumorError::FrameTooLarge { len: 109, max: 50 }));
}

#[test]
fn client_view_requires_identifying_headers() {
    let mut connect = RumorFrame::connect(C, "T", SYMPHONY);
    connect.headers.insert(header::UNIQUE_ID, "");
    assert_eq!(
        connect.client_view(),
        Err(RumorError::MissingHeader { kind: MessageType::Connect, header: header::UNIQUE_ID })
    );
    let bare_status = RumorFrame::new(MessageType::Status);
    assert!(matches!(bare_status.client_view(), Err(RumorError::MissingHeader { .. })));
    let message = RumorFrame::client_message(SYMPHONY, "T", C, None, "body".into());
    assert_eq!(
        message.client_view().unwrap(),
        ClientFrame::Message { transaction_id: Some("T"), from_address: Some(C), token: None, body: "body" }
    );
    // Header lookup ignores case, insert replaces in place.
    let mut headers = Headers::new().with("transaction-id", "a").with("X", "1");
    headers.insert("TRANSACTION-ID", "b");
    assert_eq!(headers.iter().collect::<Vec<_>>(), vec![("transaction-id", "b"), ("X", "1")]);
}

fn arb_frame() -> impl Strategy<Value = RumorFrame> {
    (
        proptest::sample::select(MessageType::ALL.to_vec()),
        proptest::collection::vec("\\PC{0,24}", 0..5),
        proptest::collection::vec(("[A-Za-z-]{1,16}", "\\PC{0,32}"), 0..8),
        "\\PC{0,300}",
    )
        .prop_map(|(kind, addresses, pairs, body)| {
            let mut headers = Headers::new();
            for (k, v) in pairs {
                headers.insert(k, v);
            }
            RumorFrame { kind, addresses, headers, body }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_frames_round_trip(frame in arb_frame()) {
        let bytes = frame.encode().unwrap();
        prop_assert_eq!(bytes.len(), frame.encoded_len());
        prop_assert_eq!(decode(&bytes).unwrap(), frame);
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(frame) = decode(&bytes) {
            // What decodes re-encodes to the same bytes, reserved bytes aside.
            let mut again = frame.encode().unwrap();
            again[4..6].copy_from_slice(&bytes[4..6]);
            prop_assert_eq!(again, bytes);
            let _ = frame.client_view();
            let _ = ClientRaptor::parse(&frame.body);
        }
    }

    #[test]
    fn prop_mutated_frames_never_panic(frame in arb_frame(), at in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = frame.encode().unwrap();
        let at = at % bytes.len();
        bytes[at] = byte;
        if let Ok(decoded) = decode(&bytes) {
            prop_assert_eq!(decode(&decoded.encode().unwrap()).unwrap(), decoded);
        }
    }

    #[test]
    fn prop_bodies_with_length_prefix_never_panic(
        kind in 0u8..12, counts in any::<[u8; 2]>(), rest in proptest::collection::vec(any::<u8>(), 0..200)
    ) {
        let mut bytes = vec![0, 0, 0, 0, 0, 0, kind, counts[0]];
        bytes.push(counts[1]);
        bytes.extend_from_slice(&rest);
        let n = (bytes.len() - 4) as u32;
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        let _ = RumorFrame::decode(&bytes, &Limits::format_only(1 << 20));
    }
}
