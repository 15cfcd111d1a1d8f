//! Protocol-neutral room messages → OpenTok.js Raptor messages (protocol reference §6.4).
//!
//! Owns: how each [`ServerMessage`] the room emits looks to an OpenTok.js client: connection
//! and stream objects, reasons, signals, force mute, relayed JSEP and archive events, with the
//! sender address each one needs. Pure: IDs for new peers and signals come from the caller.
//! Must not touch: sockets, the room or the SFU. Messages that only protocol v1 speaks
//! (its acks, errors and routed SDP) translate to nothing.

use conclave_core::Role;
use conclave_core::opentok::raptor::{
    ArchiveObject, ChannelAttributes, ChannelType, ConnectionObject, DestroyReason, JsepTarget, Method, Permission,
    RaptorUri, Resource, ServerRaptor, SessionPath, SignalContent, SourceStreamId, StreamChannel, StreamCreateContent,
    StreamObject, StreamOwner, VideoSource,
};
use conclave_core::signal::{
    ConnectionInfo, DisconnectReason, ServerMessage, StreamDestroyedReason, StreamInfo, StreamProperty, VideoType,
};

/// The media server's Rumor address (anvil's `symphony_address`). Messages from it are the
/// SFU's (JSEP of routed sessions); the client never shows it as a connection.
pub const SYMPHONY: &str = "symphony.conclave";

/// One Raptor message and the `X-TB-FROM-ADDRESS` it carries (`""`: from the server).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub raptor: ServerRaptor,
    pub from: String,
}

fn server(raptor: ServerRaptor) -> Outgoing {
    Outgoing { raptor, from: String::new() }
}

pub fn connection_object(info: &ConnectionInfo, role: Option<Role>) -> ConnectionObject {
    ConnectionObject {
        id: info.connection_id.clone(),
        creation_time: info.created_at,
        data: info.data.clone(),
        permissions: role.map(Permission::for_role).unwrap_or_default(),
    }
}

/// The stream object OpenTok.js derives `hasAudio`, `hasVideo`, `videoType` and
/// `videoDimensions` from (§7.3).
pub fn stream_object(info: &StreamInfo) -> StreamObject {
    let (width, height) = info.video_dimensions.map_or((640, 480), |d| (d.width, d.height));
    let source = match info.video_type {
        VideoType::Camera => VideoSource::Camera,
        VideoType::Screen => VideoSource::Screen,
    };
    let audio = StreamChannel {
        attributes: ChannelAttributes { active: Some(info.has_audio), ..ChannelAttributes::default() },
        ..StreamChannel::new("audio1", ChannelType::Audio)
    };
    let video = StreamChannel {
        attributes: ChannelAttributes {
            active: Some(info.has_video),
            width: Some(width),
            height: Some(height),
            orientation: Some(0),
            source: Some(source),
            ..ChannelAttributes::default()
        },
        ..StreamChannel::new("video1", ChannelType::Video)
    };
    StreamObject {
        id: info.stream_id.clone(),
        content: StreamCreateContent {
            id: Some(info.stream_id.clone()),
            name: Some(info.name.clone()),
            channel: vec![audio, video],
            ..StreamCreateContent::default()
        },
        owner: StreamOwner::ConnectionId(info.connection_id.clone()),
        creation_time: info.created_at,
    }
}

pub fn connection_reason(r: DisconnectReason) -> DestroyReason {
    match r {
        DisconnectReason::ClientDisconnected => DestroyReason::ClientDisconnected,
        DisconnectReason::NetworkDisconnected => DestroyReason::NetworkDisconnected,
        // OpenTok has no "session ended": the nearest the client knows is being removed.
        DisconnectReason::ForceDisconnected | DisconnectReason::SessionEnded => DestroyReason::ForceDisconnected,
    }
}

fn stream_reason(r: StreamDestroyedReason) -> DestroyReason {
    match r {
        StreamDestroyedReason::ClientUnpublished | StreamDestroyedReason::ClientDisconnected => {
            DestroyReason::ClientDisconnected
        }
        StreamDestroyedReason::NetworkDisconnected => DestroyReason::NetworkDisconnected,
        StreamDestroyedReason::ForceUnpublished => DestroyReason::ForceUnpublished,
        StreamDestroyedReason::ForceDisconnected | StreamDestroyedReason::SessionEnded => {
            DestroyReason::ForceDisconnected
        }
    }
}

/// A room signal's data as OpenTok.js carries it: the string itself.
fn signal_content(signal_type: &str, data: &str) -> SignalContent {
    SignalContent {
        signal_type: (!signal_type.is_empty()).then(|| signal_type.to_owned()),
        data: Some(serde_json::Value::String(data.to_owned())),
    }
}

/// The Raptor messages `msg` becomes for the client `me` of `session`. `fresh_id` draws new
/// IDs (signal IDs, peer IDs of relayed offers).
pub fn translate(
    session: &SessionPath,
    me: &str,
    msg: &ServerMessage,
    fresh_id: &mut dyn FnMut() -> String,
) -> Vec<Outgoing> {
    match msg {
        ServerMessage::ConnectionCreated { connection } => {
            vec![server(ServerRaptor::connection_created(session, &connection_object(connection, None)))]
        }
        ServerMessage::ConnectionDestroyed { connection_id, reason } => {
            vec![server(ServerRaptor::connection_deleted(session, connection_id, connection_reason(*reason)))]
        }
        ServerMessage::StreamCreated { stream } | ServerMessage::Published { stream, .. } => {
            vec![server(ServerRaptor::stream_created(session, &stream_object(stream)))]
        }
        ServerMessage::StreamDestroyed { stream_id, reason } => {
            vec![server(ServerRaptor::stream_deleted(session, stream_id, stream_reason(*reason), None))]
        }
        ServerMessage::StreamPropertyChanged { stream_id, property, new_value } => {
            let channel = match property {
                StreamProperty::HasAudio => "audio1",
                StreamProperty::HasVideo => "video1",
                StreamProperty::LayoutClassList => return Vec::new(),
            };
            let attributes = ChannelAttributes { active: new_value.as_bool(), ..ChannelAttributes::default() };
            vec![server(ServerRaptor::stream_channel_updated(session, stream_id, channel, &attributes))]
        }
        ServerMessage::Signal { from, signal_type, data } => {
            let content = signal_content(signal_type, data);
            let raptor = ServerRaptor::signal(session, None, &fresh_id(), &content, None);
            vec![Outgoing { raptor, from: from.clone().unwrap_or_default() }]
        }
        ServerMessage::MuteForced { stream_id } => vec![server(ServerRaptor::stream_force_mute(session, stream_id))],
        ServerMessage::MuteAllChanged { active } => vec![server(ServerRaptor::session_mute(session, *active))],
        ServerMessage::SubscriberAdded { stream_id, subscriber_id, connection_id } => {
            let target = JsepTarget::Subscriber { stream: stream_id.clone(), subscriber: subscriber_id.clone() };
            let raptor = ServerRaptor::generate_offer(session, &target, &fresh_id(), SourceStreamId::P2p, None);
            vec![Outgoing { raptor, from: connection_id.clone() }]
        }
        ServerMessage::SubscriberRemoved { stream_id, subscriber_id } => {
            vec![server(ServerRaptor::subscriber_deleted(session, stream_id, subscriber_id))]
        }
        ServerMessage::Jsep { from, stream_id, subscriber_id, method, content } => {
            let Some(method) = Method::parse(method) else { return Vec::new() };
            let resource = Resource::Subscriber { stream: stream_id.clone(), subscriber: subscriber_id.clone() };
            let raptor = ServerRaptor::new(method, session.uri(resource), content.clone());
            vec![Outgoing { raptor, from: from.clone() }]
        }
        ServerMessage::SubscriberAudioFallback { stream_id, subscriber_id, audio_only } => {
            let update =
                ServerRaptor::subscriber_channel_update(session, stream_id, subscriber_id, "video1", !audio_only);
            vec![server(update)]
        }
        ServerMessage::ArchiveStarted { archive_id, name } => {
            let archive = ArchiveObject { id: archive_id.clone(), name: name.clone(), status: "started".into() };
            vec![server(ServerRaptor::archive_created(session, &archive))]
        }
        ServerMessage::ArchiveStopped { archive_id } => {
            vec![server(ServerRaptor::archive_updated(session, archive_id, "stopped"))]
        }
        // Protocol v1's own replies and routed SDP, and messages the socket shell handles.
        ServerMessage::Connected { .. }
        | ServerMessage::Resumed { .. }
        | ServerMessage::Redirect { .. }
        | ServerMessage::Ack { .. }
        | ServerMessage::Error { .. }
        | ServerMessage::Pong
        | ServerMessage::SubscriberCount { .. }
        | ServerMessage::Sdp { .. }
        | ServerMessage::Ice { .. }
        | ServerMessage::MediaAnswer { .. }
        | ServerMessage::MediaOffer { .. }
        | ServerMessage::SubscriberOffer { .. }
        | ServerMessage::SessionDisconnected { .. } => {
            let _ = me;
            Vec::new()
        }
    }
}

/// `B/stream/{st}` as a URI, for messages built by hand.
pub fn stream_uri(session: &SessionPath, stream_id: &str) -> RaptorUri {
    session.uri(Resource::Stream { stream: stream_id.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::signal::VideoDimensions;

    fn session() -> SessionPath {
        SessionPath::new("47000001", "1_MX4")
    }

    fn stream() -> StreamInfo {
        StreamInfo {
            stream_id: "st-1".into(),
            connection_id: "c-1".into(),
            name: "Alice camera".into(),
            has_audio: true,
            has_video: false,
            video_type: VideoType::Screen,
            layout_class_list: vec![],
            created_at: 1_700_000_000_000,
            subscriber_count: 0,
            video_dimensions: Some(VideoDimensions { width: 1280, height: 720 }),
        }
    }

    fn json(o: &Outgoing) -> serde_json::Value {
        serde_json::from_str(&o.raptor.to_json()).unwrap()
    }

    #[test]
    fn a_stream_is_announced_with_the_channels_the_client_derives_its_properties_from() {
        let out = translate(&session(), "me", &ServerMessage::StreamCreated { stream: stream() }, &mut || "x".into());
        let v = json(&out[0]);
        assert_eq!(v["method"], "created");
        assert_eq!(v["uri"], "/v2/partner/47000001/session/1_MX4/stream/st-1");
        assert_eq!(v["content"]["connectionId"], "c-1");
        assert_eq!(v["content"]["creationTime"], 1_700_000_000_000u64);
        let channels = v["content"]["channel"].as_array().unwrap();
        let video = channels.iter().find(|c| c["id"] == "video1").unwrap();
        assert_eq!((video["active"].as_bool(), video["source"].as_str()), (Some(false), Some("screen")));
        assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(1280), Some(720)));
        assert_eq!(channels.iter().find(|c| c["id"] == "audio1").unwrap()["active"], true);
    }

    #[test]
    fn reasons_are_the_ones_the_client_knows() {
        let m = ServerMessage::StreamDestroyed {
            stream_id: "st-1".into(),
            reason: StreamDestroyedReason::ClientUnpublished,
        };
        assert_eq!(json(&translate(&session(), "me", &m, &mut || "x".into())[0])["reason"], "clientDisconnected");
        let m = ServerMessage::ConnectionDestroyed {
            connection_id: "c-2".into(),
            reason: DisconnectReason::ForceDisconnected,
        };
        let v = json(&translate(&session(), "me", &m, &mut || "x".into())[0]);
        assert_eq!((v["method"].as_str(), v["reason"].as_str()), (Some("deleted"), Some("forceDisconnected")));
    }

    #[test]
    fn signals_carry_their_sender_and_rest_signals_come_from_nobody() {
        let m = ServerMessage::Signal { from: Some("c-2".into()), signal_type: "chat".into(), data: "hi".into() };
        let out = translate(&session(), "me", &m, &mut || "sig-1".into());
        assert_eq!(out[0].from, "c-2");
        let v = json(&out[0]);
        assert_eq!(v["uri"], "/v2/partner/47000001/session/1_MX4/signal/sig-1");
        assert_eq!((v["content"]["type"].as_str(), v["content"]["data"].as_str()), (Some("chat"), Some("hi")));
        let m = ServerMessage::Signal { from: None, signal_type: "notice".into(), data: "x".into() };
        assert_eq!(translate(&session(), "me", &m, &mut || "s".into())[0].from, "");
    }

    #[test]
    fn a_relayed_subscriber_makes_the_publisher_offer_from_the_subscribers_address() {
        let m = ServerMessage::SubscriberAdded {
            stream_id: "st-1".into(),
            subscriber_id: "sub-1".into(),
            connection_id: "c-2".into(),
        };
        let out = translate(&session(), "c-1", &m, &mut || "peer-9".into());
        assert_eq!(out[0].from, "c-2");
        let v = json(&out[0]);
        assert_eq!(v["method"], "generateoffer");
        assert_eq!(v["uri"], "/v2/partner/47000001/session/1_MX4/stream/st-1/subscriber/sub-1");
        assert_eq!(
            (v["content"]["peerId"].as_str(), v["content"]["sourceStreamId"].as_str()),
            (Some("peer-9"), Some("P2P"))
        );
    }

    #[test]
    fn audio_fallback_turns_the_subscribers_video_channel_off_and_on_again() {
        for (audio_only, active) in [(true, false), (false, true)] {
            let m = ServerMessage::SubscriberAudioFallback {
                stream_id: "st-1".into(),
                subscriber_id: "sub-1".into(),
                audio_only,
            };
            let v = json(&translate(&session(), "c-2", &m, &mut || "x".into())[0]);
            assert_eq!(v["method"], "update");
            assert_eq!(v["uri"], "/v2/partner/47000001/session/1_MX4/stream/st-1/subscriber/sub-1/channel/video1");
            assert_eq!(v["content"], serde_json::json!({ "active": active }));
        }
    }

    #[test]
    fn protocol_v1_replies_translate_to_nothing() {
        for m in [ServerMessage::Pong, ServerMessage::Ack { id: 1 }, ServerMessage::MediaOffer { sdp: "v=0".into() }] {
            assert!(translate(&session(), "me", &m, &mut || "x".into()).is_empty());
        }
    }
}
