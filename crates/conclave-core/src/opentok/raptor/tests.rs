//! Raptor tests: the URI grammar, parsing of every client→server shape of reference §6.3 as the
//! client writes it, error cases, and round trips (examples and property tests).

use super::client::{ClientMessage as C, ClientRaptor, DataTarget, JsepTarget};
use super::content::*;
use super::uri::{RaptorUri, Resource, SessionPath, UriError};
use super::{MAX_SIGNAL_DATA_CHARS, Method, RaptorError};
use serde_json::{Value, json};

const B: &str = "/v2/partner/123/session/S1";

fn body(method: &str, tail: &str, content: Value) -> String {
    json!({ "method": method, "uri": format!("{B}{tail}"), "content": content }).to_string()
}

fn parse(method: &str, tail: &str, content: Value) -> Result<C, RaptorError> {
    let parsed = ClientRaptor::parse(&body(method, tail, content))?;
    assert_eq!(parsed.session, SessionPath::new("123", "S1"));
    // Every accepted request prints back to JSON that parses to the same value.
    assert_eq!(ClientRaptor::parse(&parsed.to_json()).as_ref(), Ok(&parsed));
    assert_eq!(parsed.uri().to_string(), format!("{B}{tail}"));
    assert_eq!(parsed.method().as_str(), method);
    Ok(parsed.message)
}

fn ok(method: &str, tail: &str, content: Value) -> C {
    parse(method, tail, content).unwrap_or_else(|e| panic!("{method} {tail}: {e}"))
}

fn err(method: &str, tail: &str, content: Value) -> RaptorError {
    parse(method, tail, content).expect_err("must fail")
}

fn s(v: &str) -> String {
    v.to_owned()
}

#[test]
fn uri_grammar() {
    let cases: Vec<(&str, Resource)> = vec![
        ("", Resource::Session),
        ("/connection/C1", Resource::Connection { connection: s("C1") }),
        ("/connection/C1/signal/G", Resource::ConnectionSignal { connection: s("C1"), signal: s("G") }),
        ("/signal/G", Resource::Signal { signal: s("G") }),
        ("/stream/ST", Resource::Stream { stream: s("ST") }),
        ("/stream/ST/channel/video1", Resource::StreamChannel { stream: s("ST"), channel: s("video1") }),
        (
            "/stream/ST/channel/caption1/data/D",
            Resource::StreamChannelData { stream: s("ST"), channel: s("caption1"), data: s("D") },
        ),
        ("/stream/ST/source/P2P", Resource::StreamSource { stream: s("ST"), source: SourceStreamId::P2p }),
        ("/stream/ST/source/MANTIS", Resource::StreamSource { stream: s("ST"), source: SourceStreamId::Mantis }),
        ("/stream/ST/subscriber/SUB", Resource::Subscriber { stream: s("ST"), subscriber: s("SUB") }),
        (
            "/stream/ST/subscriber/SUB/channel/audio1",
            Resource::SubscriberChannel { stream: s("ST"), subscriber: s("SUB"), channel: s("audio1") },
        ),
        (
            "/stream/ST/subscriber/SUB/channel/downlinkStats1/data/D",
            Resource::SubscriberChannelData {
                stream: s("ST"),
                subscriber: s("SUB"),
                channel: s("downlinkStats1"),
                data: s("D"),
            },
        ),
        ("/archive/A", Resource::Archive { archive: s("A") }),
        ("/notification/N", Resource::Notification { notification: s("N") }),
        ("/migrate", Resource::Migrate),
    ];
    let kinds = [
        "session",
        "connection",
        "signal",
        "signal",
        "stream",
        "stream_channel",
        "data",
        "source",
        "source",
        "subscriber",
        "subscriber_channel",
        "data",
        "archive",
        "notification",
        "migrate",
    ];
    for ((tail, resource), kind) in cases.into_iter().zip(kinds) {
        let text = format!("{B}{tail}");
        let uri = RaptorUri::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(uri.session, SessionPath::new("123", "S1"));
        assert_eq!(uri.resource.kind(), kind);
        assert_eq!(uri.to_string(), text);
        assert_eq!(uri.resource, resource);
    }
    let uuid =
        "/v2/partner/4567/session/1_MX40NTY3fn4xNzAwMDAwMDAwMDAwfkFCQ35-fg/stream/3f1c2b8e-9a7d-4e2f-b1c3-0d9e8f7a6b5c";
    let uri = RaptorUri::parse(uuid).unwrap();
    assert_eq!(uri.resource.stream(), Some("3f1c2b8e-9a7d-4e2f-b1c3-0d9e8f7a6b5c"));
    assert_eq!(uri.session.partner_id, "4567");
}

#[test]
fn uri_errors() {
    let cases = [
        ("", UriError::BadPrefix),
        ("/v1/partner/1/session/S", UriError::BadPrefix),
        ("/v2/partner/1/session", UriError::BadPrefix),
        ("/v2/partner/1/sessions/S", UriError::BadPrefix),
        ("/v2/Partner/1/session/S", UriError::BadPrefix),
        ("/v2/partner/1/session/S/", UriError::EmptySegment),
        ("/v2/partner//session/S", UriError::EmptySegment),
        ("/v2/partner/1/session/S//stream/x", UriError::EmptySegment),
        ("/v2/partner/1/session/S?x=1", UriError::InvalidId { index: 3 }),
        ("/v2/partner/1/session/S/stream/a%2Fb", UriError::InvalidId { index: 5 }),
        ("/v2/partner/1/session/S/stream/a b", UriError::InvalidId { index: 5 }),
        ("/v2/partner/1/session/S/stream/é", UriError::InvalidId { index: 5 }),
        ("/v2/partner/1/session/S/stream", UriError::UnknownResource),
        ("/v2/partner/1/session/S/stream/x/channel", UriError::UnknownResource),
        ("/v2/partner/1/session/S/Stream/x", UriError::UnknownResource),
        ("/v2/partner/1/session/S/widget/x", UriError::UnknownResource),
        ("/v2/partner/1/session/S/stream/x/source/SFU", UriError::UnknownSource),
        ("/v2/partner/1/session/S/migrate/now", UriError::UnknownResource),
    ];
    for (text, expected) in cases {
        assert_eq!(RaptorUri::parse(text), Err(expected), "{text}");
    }
    let long_id = "x".repeat(256);
    assert_eq!(RaptorUri::parse(&format!("/v2/partner/1/session/{long_id}")), Err(UriError::InvalidId { index: 3 }));
    let long = format!("/v2/partner/1/session/S{}", "/stream/x".repeat(200));
    assert!(matches!(RaptorUri::parse(&long), Err(UriError::TooLong { .. })));
}

#[test]
fn connect_shapes() {
    let m = ok(
        "create",
        "/connection/C1",
        json!({"userAgent": "Mozilla/5.0 (X11)", "clientVersion": "js-2.35.2",
               "capabilities": ["forceMute", "renegotiation", "e2ee"], "connectionEventsSuppressed": true,
               "unknownKey": {"ignored": true}}),
    );
    let C::Connect { connection, content } = m else { panic!("{m:?}") };
    assert_eq!(connection, "C1");
    assert!(content.has_capability("renegotiation") && !content.has_capability("migrate"));
    assert_eq!(content.connection_events_suppressed, Some(true));
    // 2.22.5 and 2.16.6 capabilities are not an error.
    ok("create", "/connection/C1", json!({"capabilities": ["forceMute", "adaptive", "peerRegeneration"]}));
    assert_eq!(
        ok("create", "/connection/C1", json!({})),
        C::Connect { connection: s("C1"), content: Default::default() }
    );
    assert_eq!(ok("delete", "/connection/C2", json!({})), C::ForceDisconnect { connection: s("C2") });
}

#[test]
fn signal_shapes() {
    let m = ok("signal", "/signal/G1", json!({"type": "chat", "data": "hello"}));
    let content = SignalContent { signal_type: Some(s("chat")), data: Some(json!("hello")) };
    assert_eq!(m, C::Signal { to: None, signal_id: s("G1"), content });
    let m = ok("signal", "/connection/C2/signal/G2", json!({}));
    assert_eq!(m, C::Signal { to: Some(s("C2")), signal_id: s("G2"), content: SignalContent::default() });
    ok("signal", "/signal/G3", json!({"data": {"nested": [1, 2, 3]}}));
    ok("signal", "/signal/G3", json!({"type": "a-b.c_d~", "data": ""}));
    ok("signal", "/signal/G3", json!({"type": "t".repeat(128)}));
    assert_eq!(err("signal", "/signal/G", json!({"type": "t".repeat(129)})), RaptorError::InvalidSignalType);
    assert_eq!(err("signal", "/signal/G", json!({"type": "bad type"})), RaptorError::InvalidSignalType);
    // The JSON form of a string counts its quotes: 8190 characters + 2 is the limit.
    ok("signal", "/signal/G", json!({"data": "d".repeat(MAX_SIGNAL_DATA_CHARS - 2)}));
    let e = err("signal", "/signal/G", json!({"data": "d".repeat(MAX_SIGNAL_DATA_CHARS - 1)}));
    assert_eq!(e, RaptorError::SignalDataTooLong { len: MAX_SIGNAL_DATA_CHARS + 1 });
    assert_eq!(e.status(), 413);
    // Characters outside the BMP count twice, as in JavaScript.
    let e = err("signal", "/signal/G", json!({"data": "😀".repeat(4096)}));
    assert_eq!(e, RaptorError::SignalDataTooLong { len: 8194 });
    assert!(matches!(err("signal", "/signal/G", json!({"type": 5})), RaptorError::InvalidContent { .. }));
    // A spoofed sender is not carried through.
    let m = ok("signal", "/signal/G", json!({"type": "x", "fromConnection": {"id": "C9"}}));
    assert_eq!(ServerRaptor::relay(&raptor(m)).unwrap().content, json!({"type": "x"}));
}

fn raptor(message: C) -> ClientRaptor {
    ClientRaptor { session: SessionPath::new("123", "S1"), message }
}

use super::server::ServerRaptor;

#[test]
fn publish_shapes() {
    let content = json!({
        "id": "ST", "name": "Alice camera", "publisherAudioFallbackEnabled": false,
        "subscriberAudioFallbackEnabled": true,
        "channel": [
            {"id": "video1", "type": "video", "active": true, "width": 640, "height": 480, "orientation": 0,
             "frameRate": 30, "source": "camera", "fitMode": "cover"},
            {"id": "audio1", "type": "audio", "active": true},
            {"id": "caption1", "type": "data", "active": false},
            {"id": "downlinkStats1", "type": "data", "active": true}
        ],
        "e2ee": false, "customProperties": {"initials": "AC"}, "minBitrate": 300000
    });
    let C::Publish { stream, content } = ok("create", "/stream/ST", content) else { panic!() };
    assert_eq!(stream, "ST");
    assert_eq!(content.name.as_deref(), Some("Alice camera"));
    assert_eq!(content.channel.len(), 4);
    let video = content.channel_of(ChannelType::Video).unwrap();
    assert_eq!(video.attributes.source, Some(VideoSource::Camera));
    assert_eq!(video.attributes.fit_mode, Some(FitMode::Cover));
    assert_eq!((video.attributes.width, video.attributes.height), (Some(640), Some(480)));
    assert_eq!(video.attributes.frame_rate, Some(30.0));
    assert_eq!(content.channel("caption1").unwrap().attributes.active, Some(false));
    assert_eq!(content.custom_properties.unwrap().initials.as_deref(), Some("AC"));
    assert_eq!(content.min_bitrate, Some(300_000));
    // 2.22.5: audioFallbackEnabled, no customProperties; adaptive flows: sourceStreamId.
    let C::Publish { content, .. } =
        ok("create", "/stream/ST", json!({"audioFallbackEnabled": true, "sourceStreamId": "P2P"}))
    else {
        panic!()
    };
    assert_eq!((content.audio_fallback_enabled, content.source_stream_id), (Some(true), Some(SourceStreamId::P2p)));
    for bad in [
        json!({"channel": [{"id": "video1", "type": "hologram"}]}),
        json!({"channel": [{"id": "video1", "type": "video", "source": "webcam"}]}),
        json!({"channel": [{"id": "video1", "type": "video", "width": -1}]}),
        json!({"channel": [{"id": "video1", "type": "video", "width": "640"}]}),
        json!({"channel": {"id": "video1"}}),
        json!({"sourceStreamId": "SFU"}),
    ] {
        assert!(matches!(err("create", "/stream/ST", bad.clone()), RaptorError::InvalidContent { .. }), "{bad}");
    }
    let too_many: Vec<Value> = (0..65).map(|i| json!({"id": format!("c{i}"), "type": "data"})).collect();
    assert!(matches!(err("create", "/stream/ST", json!({"channel": too_many})), RaptorError::TooManyItems { .. }));
    let e = err("create", "/stream/ST", json!({"channel": [{"id": "a/b", "type": "data"}]}));
    assert_eq!(e, RaptorError::InvalidId { field: "channel id" });
    let e = err("create", "/stream/ST", json!({"name": "n".repeat(1025)}));
    assert_eq!(e, RaptorError::TooLong { field: "name", len: 1025, max: 1024 });
    let e = err("create", "/stream/ST", json!({"channel": [{"id": "v", "type": "video", "frameRate": 1e9}]}));
    assert_eq!(e, RaptorError::OutOfRange { field: "frameRate" });
}

#[test]
fn unpublish_and_stream_changes() {
    assert_eq!(
        ok("delete", "/stream/ST", json!({})),
        C::StreamDelete { stream: s("ST"), content: DeleteContent::default() }
    );
    let m = ok("delete", "/stream/ST", json!({"sourceStreamId": "MANTIS"}));
    let content = DeleteContent { source_stream_id: Some(SourceStreamId::Mantis) };
    assert_eq!(m, C::StreamDelete { stream: s("ST"), content });
    let m = ok("update", "/stream/ST/channel/audio1", json!({"active": false, "activeReason": "auto"}));
    let C::StreamChannelUpdate { stream, channel, attributes } = m else { panic!() };
    assert_eq!((stream.as_str(), channel.as_str()), ("ST", "audio1"));
    assert_eq!((attributes.active, attributes.active_reason.as_deref()), (Some(false), Some("auto")));
    let m = ok(
        "update",
        "/stream/ST/channel/video1",
        json!({"width": 1280, "height": 720, "orientation": 90, "frameRate": 15, "source": "screen",
               "fitMode": "contain", "disableWarning": true}),
    );
    let C::StreamChannelUpdate { attributes, .. } = m else { panic!() };
    assert_eq!(attributes.source, Some(VideoSource::Screen));
    assert_eq!(attributes.fit_mode, Some(FitMode::Contain));
    assert_eq!(attributes.orientation, Some(90));
    assert_eq!(attributes.disable_warning, Some(true));
}

#[test]
fn subscribe_shapes() {
    let content = json!({
        "id": "SUB", "connection": "C2", "keyManagementMethod": "DTLS_SRTP", "bundleSupport": true,
        "rtcpMuxSupport": true, "e2ee": false,
        "channel": [{"id": "audio1", "type": "audio", "active": true},
                    {"id": "video1", "type": "video", "active": true, "restrictFrameRate": false},
                    {"id": "caption1", "type": "data", "active": false}]
    });
    let C::Subscribe { stream, subscriber, content } = ok("create", "/stream/ST/subscriber/SUB", content) else {
        panic!()
    };
    assert_eq!((stream.as_str(), subscriber.as_str()), ("ST", "SUB"));
    assert_eq!(content.connection.as_deref(), Some("C2"));
    assert_eq!(content.key_management_method.as_deref(), Some("DTLS_SRTP"));
    assert_eq!(content.channel[1].attributes.restrict_frame_rate, Some(false));
    let m = ok("delete", "/stream/ST/subscriber/SUB", json!({}));
    assert_eq!(m, C::Unsubscribe { stream: s("ST"), subscriber: s("SUB"), content: DeleteContent::default() });
    // The preference messages of §7.5, one key set per call.
    let prefs = [
        ("video1", json!({"preferredWidth": 160, "preferredHeight": 120})),
        ("video1", json!({"preferredFrameRate": 7})),
        ("video1", json!({"preferredFrameRate": 7.5})),
        ("video1", json!({"active": false})),
        ("audio1", json!({"active": true})),
        ("caption1", json!({"category": ""})),
        ("video1", json!({"restrictFrameRate": true, "subscriberId": "SUB"})),
    ];
    for (channel, content) in prefs {
        let m = ok("update", &format!("/stream/ST/subscriber/SUB/channel/{channel}"), content.clone());
        let C::SubscriberChannelUpdate { attributes, .. } = m else { panic!() };
        assert_eq!(serde_json::to_value(&attributes).unwrap(), content);
    }
    let e = err("create", "/stream/ST/subscriber/SUB", json!({"connection": "not valid"}));
    assert_eq!(e, RaptorError::InvalidId { field: "connection" });
}

#[test]
fn jsep_shapes() {
    let targets = [
        ("/stream/ST", JsepTarget::Publisher { stream: s("ST") }),
        ("/stream/ST/subscriber/SUB", JsepTarget::Subscriber { stream: s("ST"), subscriber: s("SUB") }),
    ];
    for (tail, target) in targets {
        for (method, sdp_type) in
            [("offer", SdpType::Offer), ("answer", SdpType::Answer), ("pranswer", SdpType::Pranswer)]
        {
            let content = json!({"peerId": "P1", "sourceStreamId": "MANTIS", "type": method, "sdp": "v=0\r\n"});
            let expected = C::Description {
                target: target.clone(),
                peer_id: s("P1"),
                source_stream_id: SourceStreamId::Mantis,
                sdp_type,
                sdp: s("v=0\r\n"),
            };
            assert_eq!(ok(method, tail, content), expected);
        }
        let content = json!({"peerId": "P1", "sourceStreamId": "P2P", "candidate": "candidate:1 1 udp 1 10.0.0.1 5000 typ host",
                             "sdpMid": "0", "sdpMLineIndex": 0});
        let candidate = IceCandidate {
            candidate: s("candidate:1 1 udp 1 10.0.0.1 5000 typ host"),
            sdp_mid: Some(s("0")),
            sdp_m_line_index: Some(0),
        };
        let expected =
            C::Candidate { target: target.clone(), peer_id: s("P1"), source_stream_id: SourceStreamId::P2p, candidate };
        assert_eq!(ok("candidate", tail, content), expected);
    }
    let base = |extra: Value| {
        let mut c = json!({"peerId": "P1", "sourceStreamId": "P2P"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let e = err("offer", "/stream/ST", base(json!({"type": "answer", "sdp": ""})));
    assert_eq!(e, RaptorError::SdpTypeMismatch { method: Method::Offer, found: SdpType::Answer });
    for (method, content) in [
        ("offer", base(json!({"sdp": "v=0"}))),
        ("offer", base(json!({"type": "offer"}))),
        ("candidate", base(json!({"sdpMid": "0"}))),
        ("answer", json!({"sourceStreamId": "P2P", "type": "answer", "sdp": ""})),
        ("answer", json!({"peerId": "P1", "type": "answer", "sdp": ""})),
        ("candidate", base(json!({"candidate": "c", "sdpMLineIndex": -1}))),
    ] {
        assert!(matches!(err(method, "/stream/ST", content.clone()), RaptorError::InvalidContent { .. }), "{content}");
    }
    let e = err("offer", "/stream/ST", base(json!({"type": "offer", "sdp": "x".repeat(64 * 1024 + 1)})));
    assert!(matches!(e, RaptorError::TooLong { field: "sdp", .. }));
    let e = err("candidate", "/stream/ST", json!({"peerId": "P 1", "sourceStreamId": "P2P", "candidate": ""}));
    assert_eq!(e, RaptorError::InvalidId { field: "peerId" });
}

#[test]
fn moderation_data_and_migrate_shapes() {
    let m =
        ok("update", "/stream/ST", json!({"reason": "mute", "channels": ["audio"], "active": true, "locked": false}));
    let request =
        MuteRequest { channels: vec![ChannelType::Audio], active: true, locked: Some(false), exclusion: None };
    assert_eq!(m, C::ForceMuteStream { stream: s("ST"), request });
    // Clients before 2.22 send active:false to mean "mute".
    let C::ForceMuteStream { request, .. } =
        ok("update", "/stream/ST", json!({"reason": "mute", "channels": ["audio"], "active": false, "locked": false}))
    else {
        panic!()
    };
    assert!(!request.active);
    let m = ok(
        "update",
        "",
        json!({"reason": "mute", "channels": ["audio"], "active": true, "locked": false, "exclusion": ["ST1", "ST2"]}),
    );
    let C::ForceMuteAll { request } = m else { panic!() };
    assert_eq!(request.exclusion, Some(vec![s("ST1"), s("ST2")]));
    let C::ForceMuteAll { request } =
        ok("update", "", json!({"reason": "mute", "channels": ["audio"], "active": false}))
    else {
        panic!()
    };
    assert!(!request.active);
    for bad in [json!({"reason": "other", "active": true}), json!({"channels": ["audio"], "active": true})] {
        assert!(matches!(err("update", "/stream/ST", bad), RaptorError::InvalidContent { .. }));
    }
    let e = err("update", "", json!({"reason": "mute", "active": true, "exclusion": ["ok", "not ok"]}));
    assert_eq!(e, RaptorError::InvalidId { field: "exclusion" });

    let caption = json!({"type": "data", "data": "{\"caption\":{\"text\":\"hi\"},\"isFinal\":true}"});
    let m = ok("data", "/stream/ST/channel/caption1/data/D1", caption);
    let C::Data { target, content } = m else { panic!() };
    assert_eq!(target, DataTarget::Stream { stream: s("ST"), channel: s("caption1"), data_id: s("D1") });
    assert_eq!(content.data_type.as_deref(), Some("data"));
    let m = ok("data", "/stream/ST/subscriber/SUB/channel/downlinkStats1/data/D2", json!({"data": "{}"}));
    assert!(matches!(m, C::Data { target: DataTarget::Subscriber { .. }, .. }));
    assert_eq!(ok("migrate", "/migrate", json!({})), C::Migrate);
}

#[test]
fn unsupported_and_malformed_requests() {
    let unsupported = [
        ("created", "/connection/C1", "connection"),
        ("signal", "/stream/ST", "stream"),
        ("create", "", "session"),
        ("delete", "", "session"),
        ("create", "/archive/A", "archive"),
        ("generateoffer", "/stream/ST", "stream"),
        ("offer", "/connection/C1", "connection"),
        ("update", "/stream/ST/source/P2P", "source"),
        ("create", "/stream/ST/channel/video1", "stream_channel"),
        ("data", "/stream/ST/channel/caption1", "stream_channel"),
        ("migrate", "", "session"),
        ("notification", "/notification/N", "notification"),
    ];
    for (method, tail, resource) in unsupported {
        let e = err(method, tail, json!({}));
        assert!(
            matches!(e, RaptorError::UnsupportedRequest { resource: r, .. } if r == resource),
            "{method} {tail}: {e}"
        );
    }
    assert_eq!(err("CREATE", "/stream/ST", json!({})), RaptorError::UnknownMethod(s("CREATE")));
    assert_eq!(err("create", "/stream/ST", json!([])), RaptorError::ContentNotObject);
    assert_eq!(err("create", "/stream/ST", json!("x")), RaptorError::ContentNotObject);
    // A missing or null content is `{}`.
    for text in [
        r#"{"method":"delete","uri":"/v2/partner/1/session/S/stream/ST"}"#,
        r#"{"method":"delete","uri":"/v2/partner/1/session/S/stream/ST","content":null}"#,
    ] {
        assert!(matches!(ClientRaptor::parse(text).unwrap().message, C::StreamDelete { .. }));
    }
    for text in [
        "",
        "null",
        "[]",
        "{",
        r#"{"uri":"/v2/partner/1/session/S"}"#,
        r#"{"method":"create"}"#,
        r#"{"method":1,"uri":"/v2/partner/1/session/S"}"#,
        r#"{"method":"create","uri":7}"#,
        r#"{"method":"delete","uri":"/v2/partner/1/session/S/stream/ST","reason":5}"#,
    ] {
        assert!(matches!(ClientRaptor::parse(text), Err(RaptorError::Json(_))), "{text}");
    }
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(
        ClientRaptor::parse(&format!(r#"{{"method":"signal","uri":"{B}/signal/G","content":{{"data":{nested}}}}}"#))
            .is_err()
    );
    let long_method = "m".repeat(10_000);
    let RaptorError::UnknownMethod(clipped) = err(&long_method, "", json!({})) else { panic!() };
    assert!(clipped.len() <= 160);
}

mod props;
mod server;
