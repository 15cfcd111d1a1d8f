//! Server→client builders: the exact JSON of every row of reference §6.4, STATUS bodies, and
//! that each message parses back to itself.

use super::super::client::{ClientMessage, ClientRaptor, DataTarget, JsepTarget};
use super::super::content::*;
use super::super::server::*;
use super::super::uri::SessionPath;
use crate::role::Role;
use serde_json::json;

fn b() -> SessionPath {
    SessionPath::new("123", "S1")
}

fn conn(id: &str) -> ConnectionObject {
    ConnectionObject {
        id: id.into(),
        creation_time: 1_700_000_000_000,
        data: "name=A".into(),
        permissions: Permission::for_role(Role::Publisher),
    }
}

/// Checks the exact text and that it parses back to the same message.
fn check(msg: ServerRaptor, expected: &str) {
    let text = msg.to_json();
    assert_eq!(text, expected);
    assert_eq!(ServerRaptor::parse(&text).unwrap(), msg);
}

const U: &str = "/v2/partner/123/session/S1";

#[test]
fn connection_messages() {
    check(
        ServerRaptor::connection_created(&b(), &conn("C2")),
        &format!(
            r#"{{"method":"created","uri":"{U}/connection/C2","content":{{"creationTime":1700000000000,"data":"name=A","id":"C2","permissions":["publish","subscribe"]}}}}"#
        ),
    );
    for (why, text) in [
        (DestroyReason::ClientDisconnected, "clientDisconnected"),
        (DestroyReason::ForceDisconnected, "forceDisconnected"),
        (DestroyReason::NetworkDisconnected, "networkDisconnected"),
    ] {
        check(
            ServerRaptor::connection_deleted(&b(), "C2", why),
            &format!(r#"{{"method":"deleted","uri":"{U}/connection/C2","content":{{}},"reason":"{text}"}}"#),
        );
    }
}

#[test]
fn signal_messages() {
    let content = SignalContent { signal_type: Some("chat".into()), data: Some(json!("hi")) };
    check(
        ServerRaptor::signal(&b(), None, "G1", &content, None),
        &format!(r#"{{"method":"signal","uri":"{U}/signal/G1","content":{{"data":"hi","type":"chat"}}}}"#),
    );
    let msg = ServerRaptor::signal(&b(), Some("C3"), "G2", &SignalContent::default(), Some(&conn("C2")));
    assert_eq!(msg.uri.to_string(), format!("{U}/connection/C3/signal/G2"));
    assert_eq!(msg.content["fromConnection"]["id"], "C2");
    assert_eq!(ServerRaptor::parse(&msg.to_json()).unwrap(), msg);
}

#[test]
fn stream_messages() {
    let content = StreamCreateContent {
        id: Some("SPOOFED".into()),
        name: Some("Alice camera".into()),
        channel: vec![
            StreamChannel {
                attributes: ChannelAttributes {
                    active: Some(true),
                    width: Some(640),
                    height: Some(480),
                    orientation: Some(0),
                    frame_rate: Some(30.0),
                    source: Some(VideoSource::Camera),
                    fit_mode: Some(FitMode::Cover),
                    ..Default::default()
                },
                ..StreamChannel::new("video1", ChannelType::Video)
            },
            StreamChannel {
                attributes: ChannelAttributes { active: Some(true), ..Default::default() },
                ..StreamChannel::new("audio1", ChannelType::Audio)
            },
        ],
        ..Default::default()
    };
    let object = StreamObject {
        id: "ST".into(),
        content: content.clone(),
        owner: StreamOwner::ConnectionId("C2".into()),
        creation_time: 1_700_000_000_123,
    };
    check(
        ServerRaptor::stream_created(&b(), &object),
        &format!(
            r#"{{"method":"created","uri":"{U}/stream/ST","content":{{"channel":[{{"active":true,"fitMode":"cover","frameRate":30,"height":480,"id":"video1","orientation":0,"source":"camera","type":"video","width":640}},{{"active":true,"id":"audio1","type":"audio"}}],"connectionId":"C2","creationTime":1700000000123,"id":"ST","name":"Alice camera"}}}}"#
        ),
    );
    let with_conn = StreamObject { owner: StreamOwner::Connection(conn("C2")), ..object };
    let value = with_conn.to_value();
    assert_eq!(value["connection"]["id"], "C2");
    assert!(value.get("connectionId").is_none());
    assert_eq!(value["id"], "ST");

    check(
        ServerRaptor::stream_deleted(&b(), "ST", DestroyReason::ForceUnpublished, None),
        &format!(r#"{{"method":"deleted","uri":"{U}/stream/ST","content":{{}},"reason":"forceUnpublished"}}"#),
    );
    check(
        ServerRaptor::stream_deleted(&b(), "ST", DestroyReason::ClientDisconnected, Some(SourceStreamId::P2p)),
        &format!(
            r#"{{"method":"deleted","uri":"{U}/stream/ST","content":{{"sourceStreamId":"P2P"}},"reason":"clientDisconnected"}}"#
        ),
    );
    check(
        ServerRaptor::stream_updated(&b(), "ST", &StreamUpdate { name: Some("n".into()), archiving: Some(true) }),
        &format!(r#"{{"method":"updated","uri":"{U}/stream/ST","content":{{"archiving":true,"name":"n"}}}}"#),
    );
    check(
        ServerRaptor::stream_force_mute(&b(), "ST"),
        &format!(
            r#"{{"method":"update","uri":"{U}/stream/ST","content":{{"active":true,"channels":["audio"],"reason":"mute"}}}}"#
        ),
    );
    let attrs = ChannelAttributes { active: Some(false), active_reason: Some("auto".into()), ..Default::default() };
    check(
        ServerRaptor::stream_channel_updated(&b(), "ST", "audio1", &attrs),
        &format!(
            r#"{{"method":"updated","uri":"{U}/stream/ST/channel/audio1","content":{{"active":false,"activeReason":"auto"}}}}"#
        ),
    );
}

#[test]
fn session_wide_messages() {
    check(
        ServerRaptor::session_mute(&b(), true),
        &format!(r#"{{"method":"update","uri":"{U}","content":{{"active":true,"reason":"mute"}}}}"#),
    );
    check(
        ServerRaptor::notification(&b(), "N1", reason::SERVER_ROTATION),
        &format!(r#"{{"method":"notification","uri":"{U}/notification/N1","content":{{"reason":"serverRotation"}}}}"#),
    );
    check(
        ServerRaptor::archive_created(
            &b(),
            &ArchiveObject { id: "A1".into(), name: "rec".into(), status: "started".into() },
        ),
        &format!(
            r#"{{"method":"created","uri":"{U}/archive/A1","content":{{"id":"A1","name":"rec","status":"started"}}}}"#
        ),
    );
    check(
        ServerRaptor::archive_updated(&b(), "A1", "stopped"),
        &format!(r#"{{"method":"updated","uri":"{U}/archive/A1","content":{{"status":"stopped"}}}}"#),
    );
    check(
        ServerRaptor::source_changed(&b(), "ST", SourceStreamId::Mantis, true, "amr"),
        &format!(r#"{{"method":"create","uri":"{U}/stream/ST/source/MANTIS","content":{{}},"reason":"amr"}}"#),
    );
    check(
        ServerRaptor::source_changed(&b(), "ST", SourceStreamId::P2p, false, "amr"),
        &format!(r#"{{"method":"delete","uri":"{U}/stream/ST/source/P2P","content":{{}},"reason":"amr"}}"#),
    );
}

#[test]
fn jsep_and_subscriber_messages() {
    let sub = JsepTarget::Subscriber { stream: "ST".into(), subscriber: "SUB".into() };
    let publisher = JsepTarget::Publisher { stream: "ST".into() };
    check(
        ServerRaptor::generate_offer(&b(), &sub, "P1", SourceStreamId::P2p, None),
        &format!(
            r#"{{"method":"generateoffer","uri":"{U}/stream/ST/subscriber/SUB","content":{{"peerId":"P1","sourceStreamId":"P2P"}}}}"#
        ),
    );
    check(
        ServerRaptor::generate_offer(&b(), &publisher, "P2", SourceStreamId::Mantis, Some(true)),
        &format!(
            r#"{{"method":"generateoffer","uri":"{U}/stream/ST","content":{{"peerId":"P2","simulcastEnabled":true,"sourceStreamId":"MANTIS"}}}}"#
        ),
    );
    for (sdp_type, method) in [(SdpType::Offer, "offer"), (SdpType::Answer, "answer"), (SdpType::Pranswer, "pranswer")]
    {
        check(
            ServerRaptor::description(&b(), &publisher, "P2", SourceStreamId::Mantis, sdp_type, "v=0\r\n"),
            &format!(
                r#"{{"method":"{method}","uri":"{U}/stream/ST","content":{{"peerId":"P2","sdp":"v=0\r\n","sourceStreamId":"MANTIS","type":"{method}"}}}}"#
            ),
        );
    }
    let candidate =
        IceCandidate { candidate: "candidate:1".into(), sdp_mid: Some("0".into()), sdp_m_line_index: Some(0) };
    check(
        ServerRaptor::candidate(&b(), &sub, "P1", SourceStreamId::Mantis, &candidate),
        &format!(
            r#"{{"method":"candidate","uri":"{U}/stream/ST/subscriber/SUB","content":{{"candidate":"candidate:1","peerId":"P1","sdpMLineIndex":0,"sdpMid":"0","sourceStreamId":"MANTIS"}}}}"#
        ),
    );
    check(
        ServerRaptor::subscriber_deleted(&b(), "ST", "SUB"),
        &format!(r#"{{"method":"deleted","uri":"{U}/stream/ST/subscriber/SUB","content":{{}}}}"#),
    );
    check(
        ServerRaptor::subscriber_channel_update(&b(), "ST", "SUB", "video1", false),
        &format!(
            r#"{{"method":"update","uri":"{U}/stream/ST/subscriber/SUB/channel/video1","content":{{"active":false}}}}"#
        ),
    );
    let attrs = ChannelAttributes { preferred_frame_rate: Some(7.5), ..Default::default() };
    check(
        ServerRaptor::subscriber_channel_updated(&b(), "ST", "SUB", "video1", &attrs),
        &format!(
            r#"{{"method":"updated","uri":"{U}/stream/ST/subscriber/SUB/channel/video1","content":{{"preferredFrameRate":7.5}}}}"#
        ),
    );
    let caption = DataTarget::Stream { stream: "ST".into(), channel: "caption1".into(), data_id: "D1".into() };
    let content = DataContent { data_type: Some("data".into()), data: Some("{}".into()) };
    check(
        ServerRaptor::data(&b(), &caption, &content),
        &format!(
            r#"{{"method":"data","uri":"{U}/stream/ST/channel/caption1/data/D1","content":{{"data":"{{}}","type":"data"}}}}"#
        ),
    );
}

#[test]
fn relays_keep_method_uri_and_content() {
    let request = |message| ClientRaptor { session: b(), message };
    let offer = request(ClientMessage::Description {
        target: JsepTarget::Subscriber { stream: "ST".into(), subscriber: "SUB".into() },
        peer_id: "P1".into(),
        source_stream_id: SourceStreamId::P2p,
        sdp_type: SdpType::Offer,
        sdp: "v=0".into(),
    });
    let relayed = ServerRaptor::relay(&offer).unwrap();
    assert_eq!(
        (relayed.method, relayed.uri.clone(), relayed.content.clone()),
        (offer.method(), offer.uri(), offer.content())
    );
    let update = request(ClientMessage::StreamChannelUpdate {
        stream: "ST".into(),
        channel: "video1".into(),
        attributes: ChannelAttributes { active: Some(false), ..Default::default() },
    });
    let relayed = ServerRaptor::relay(&update).unwrap();
    assert_eq!(
        relayed.to_json(),
        format!(r#"{{"method":"updated","uri":"{U}/stream/ST/channel/video1","content":{{"active":false}}}}"#)
    );
    let unsubscribe = request(ClientMessage::Unsubscribe {
        stream: "ST".into(),
        subscriber: "SUB".into(),
        content: DeleteContent::default(),
    });
    assert_eq!(ServerRaptor::relay(&unsubscribe).unwrap(), ServerRaptor::subscriber_deleted(&b(), "ST", "SUB"));
    assert_eq!(ServerRaptor::relay(&request(ClientMessage::ForceDisconnect { connection: "C2".into() })), None);
    assert_eq!(ServerRaptor::relay(&request(ClientMessage::Migrate)), None);
}

#[test]
fn status_bodies_and_frames() {
    let snapshot = Snapshot {
        connection: vec![conn("C1")],
        stream: vec![StreamObject {
            id: "ST".into(),
            content: StreamCreateContent::default(),
            owner: StreamOwner::ConnectionId("C1".into()),
            creation_time: 5,
        }],
        archive: vec![ArchiveObject { id: "A1".into(), name: "".into(), status: "started".into() }],
        mute_active: Some(true),
    };
    assert_eq!(
        snapshot.to_json(),
        r#"{"archive":[{"id":"A1","name":"","status":"started"}],"connection":[{"creationTime":1700000000000,"data":"name=A","id":"C1","permissions":["publish","subscribe"]}],"mute":{"active":true},"stream":[{"connectionId":"C1","creationTime":5,"id":"ST"}]}"#
    );
    assert_eq!(Snapshot::default().to_json(), r#"{"archive":[],"connection":[],"stream":[]}"#);
    assert_eq!(ice_servers_body(&[]), r#"{"content":{"iceServers":[]}}"#);
    let turn = IceServer { urls: vec!["turn:t:3478".into()], username: Some("u".into()), credential: Some("p".into()) };
    assert_eq!(
        ice_servers_body(&[turn]),
        r#"{"content":{"iceServers":[{"credential":"p","urls":["turn:t:3478"],"username":"u"}]}}"#
    );
    assert_eq!(error_body(reason::CONNECTION_LIMIT_EXCEEDED), r#"{"reason":"connectionLimitExceeded"}"#);
    assert_eq!(error_body("a\"b"), r#"{"reason":"a\"b"}"#);
    let frame = ServerRaptor::session_mute(&b(), false).into_frame("C1", Some("tx9"), "");
    assert_eq!(frame.transaction_id(), Some("tx9"));
    assert_eq!(frame.from_address(), Some(""));
    assert_eq!(ServerRaptor::parse(&frame.body).unwrap(), ServerRaptor::session_mute(&b(), false));
    // A non-object content is never written.
    let odd = ServerRaptor { content: json!([1]), ..ServerRaptor::session_mute(&b(), true) };
    assert_eq!(odd.to_json(), format!(r#"{{"method":"update","uri":"{U}","content":{{}}}}"#));
}

#[test]
fn permissions_by_role() {
    let names = |role| serde_json::to_value(Permission::for_role(role)).unwrap();
    assert_eq!(names(Role::Subscriber), json!(["subscribe"]));
    assert_eq!(names(Role::Publisher), json!(["publish", "subscribe"]));
    assert_eq!(names(Role::PublisherOnly), json!(["publish"]));
    assert_eq!(
        names(Role::Moderator),
        json!(["publish", "subscribe", "forceunpublish", "forcedisconnect", "forcemute"])
    );
}
