//! What each OpenTok.js request does (protocol reference §6.3, §7, §8): join, signals,
//! publish and subscribe (relayed: JSEP passed between the two browsers; routed: the SFU
//! answers publishers and offers to each subscriber), channel changes, preferences and
//! moderation, each answered with a STATUS the client maps to its events and errors (§9).
//!
//! Owns: turning a parsed request into room actions through the hub, and room errors into
//! STATUS codes. Everything a request may do is decided by the room (roles, ownership, IDs);
//! moderation goes through protocol v1's path, so it is audited the same way. Must not touch:
//! frame bytes (the socket shell) or message shapes (core's codec, `translate`).

use super::socket::Shell;
use super::translate::{connection_object, stream_object};
use crate::signal::room::{ConnId, PublishRequest, RoomError};
use conclave_core::opentok::raptor::server::{error_body, ice_servers_body, reason};
use conclave_core::opentok::raptor::{
    ChannelType, ClientMessage, JsepTarget, Method, SdpType, ServerRaptor, SessionPath, Snapshot, SourceStreamId,
    StreamCreateContent, VideoSource, parse_client_request,
};
use conclave_core::opentok::rumor::RumorFrame;
use conclave_core::signal::{
    ClientEnvelope, ClientMessage as V1, ErrorCode, ServerMessage, VideoDimensions, VideoType,
    temporal_layer_for_frame_rate,
};
use conclave_core::wire::MediaMode;
use serde_json::json;
use std::collections::HashMap;

/// A joined socket: its connection, its session's URI base and its media peers.
pub struct Joined {
    pub conn: ConnId,
    pub session: SessionPath,
    pub routed: bool,
    /// Routed subscriptions: subscriber ID → the `peerId` the SFU's offer carried.
    subscriber_peers: HashMap<String, String>,
}

impl Joined {
    pub fn new(conn: ConnId, api_key: &str, session_id: &str, routed: bool) -> Joined {
        Joined { conn, session: SessionPath::new(api_key, session_id), routed, subscriber_peers: HashMap::new() }
    }

    /// The SFU's offer for a subscriber's own peer, from the media server, with the same
    /// `peerId` every time for that subscriber (the client keys its PeerConnection by it).
    pub fn subscriber_offer(&mut self, stream: &str, subscriber: &str, sdp: &str) -> ServerRaptor {
        let peer = self.subscriber_peers.entry(subscriber.to_owned()).or_insert_with(fresh_id).clone();
        let target = JsepTarget::Subscriber { stream: stream.to_owned(), subscriber: subscriber.to_owned() };
        ServerRaptor::description(&self.session, &target, &peer, SourceStreamId::Mantis, SdpType::Offer, sdp)
    }
}

/// A STATUS reply: its code and body (empty, or JSON).
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    fn ok() -> Reply {
        Reply { status: 200, body: String::new() }
    }
    fn ok_with(body: String) -> Reply {
        Reply { status: 200, body }
    }
    fn error(status: u16, why: &str) -> Reply {
        Reply { status, body: error_body(why) }
    }
}

/// The STATUS a refusal becomes; the client turns the reason into its error message.
fn refused(e: RoomError) -> Reply {
    let status = match e.code {
        ErrorCode::SessionFull => return Reply::error(403, reason::CONNECTION_LIMIT_EXCEEDED),
        ErrorCode::Forbidden
        | ErrorCode::InvalidToken
        | ErrorCode::TokenExpired
        | ErrorCode::TokenRevoked
        | ErrorCode::WrongSession
        | ErrorCode::SessionEnded
        | ErrorCode::PersonalData => 403,
        ErrorCode::NotFound | ErrorCode::SessionNotFound => 404,
        ErrorCode::MessageTooLarge => 413,
        ErrorCode::RateLimited => 429,
        ErrorCode::Draining => 503,
        ErrorCode::MediaFailed => 500,
        _ => 400,
    };
    Reply::error(status, &e.message)
}

fn fresh_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS CSPRNG is available");
    conclave_core::ids::uuid_v4(b)
}

pub async fn handle(shell: &mut Shell, frame: &RumorFrame) -> Reply {
    let req = match parse_client_request(frame) {
        Ok(r) => r,
        Err(e) => return Reply::error(e.status(), "unreadable request"),
    };
    let Some(joined) = &shell.joined else {
        return match req.raptor.message {
            ClientMessage::Connect { connection, .. } => {
                connect(shell, req.raptor.session, connection, req.token.as_deref()).await
            }
            _ => Reply::error(400, "connect first"),
        };
    };
    if req.raptor.session != joined.session {
        return Reply::error(404, "this socket is connected to another session");
    }
    if req.from_address.as_deref().is_some_and(|from| !from.is_empty() && from != joined.conn) {
        return Reply::error(403, "X-TB-FROM-ADDRESS is not this socket's connection");
    }
    match request(shell, req.raptor.message).await {
        Ok(reply) => reply,
        Err(e) => refused(e),
    }
}

async fn connect(shell: &mut Shell, session: SessionPath, connection: String, token: Option<&str>) -> Reply {
    let Some(token) = token else { return Reply::error(403, "missing token") };
    if shell.unique_id.as_deref().is_some_and(|u| u != connection) {
        return Reply::error(400, "the connection ID differs from the socket's CONNECT");
    }
    let hub = shell.hub.clone();
    let (conn, welcome) = match hub.connect(&session.session_id, token, Some(connection), shell.tx.clone()).await {
        Ok(ok) => ok,
        Err(e) => return refused(e),
    };
    let ServerMessage::Connected { role, connections, streams, media_mode, mute_all, .. } = welcome else {
        return Reply::error(500, "unexpected join answer");
    };
    let (api_key, me) = hub
        .act(&conn, |room| {
            let me = room.connections().into_iter().find(|c| c.connection_id == conn);
            Ok(((room.meta().api_key.clone(), me), Vec::new()))
        })
        .unwrap_or_default();
    let Some(me) = me.filter(|_| api_key == session.partner_id) else {
        hub.leave(&conn, conclave_core::signal::DisconnectReason::ClientDisconnected);
        return Reply::error(403, "the token is for another project");
    };
    if let Some(socket_id) = &shell.socket_id {
        hub.remember_socket(socket_id, &conn);
    }
    let own = connection_object(&me, Some(role));
    let joined = Joined::new(conn, &session.partner_id, &session.session_id, media_mode == MediaMode::Routed);
    shell.joined = Some(joined);
    // The client finishes connecting only once its own `created` arrived: before the reply.
    let created = ServerRaptor::connection_created(&session, &own);
    if !shell.send_all(vec![super::translate::Outgoing { raptor: created, from: String::new() }]).await {
        return Reply::error(500, "socket closed");
    }
    let mut everyone: Vec<_> = connections.iter().map(|c| connection_object(c, None)).collect();
    everyone.push(own);
    let archives = match &shell.state.archiver {
        Some(a) => a.recording_in(&session.session_id),
        None => Vec::new(),
    };
    let snapshot = Snapshot {
        connection: everyone,
        stream: streams.iter().map(stream_object).collect(),
        archive: archives
            .into_iter()
            .map(|(id, name)| conclave_core::opentok::raptor::ArchiveObject { id, name, status: "started".into() })
            .collect(),
        mute_active: mute_all.then_some(true),
    };
    Reply::ok_with(snapshot.to_json())
}

/// Runs a protocol-v1 request for this connection (roles, audit and media effects included).
fn v1(shell: &Shell, msg: V1) -> Result<Reply, RoomError> {
    let conn = &shell.joined.as_ref().expect("joined").conn;
    shell.hub.handle(conn, ClientEnvelope { id: None, msg })?;
    Ok(Reply::ok())
}

fn publish_request(stream: String, content: &StreamCreateContent, routed: bool) -> PublishRequest {
    let active = |kind| content.channel_of(kind).map(|c| c.attributes.active.unwrap_or(true));
    let video = content.channel_of(ChannelType::Video).map(|c| &c.attributes);
    PublishRequest {
        stream_id: Some(stream),
        name: content.name.clone(),
        has_audio: active(ChannelType::Audio).unwrap_or(false),
        has_video: active(ChannelType::Video).unwrap_or(false),
        video_type: match video.and_then(|v| v.source) {
            Some(VideoSource::Screen) => VideoType::Screen,
            _ => VideoType::Camera,
        },
        video_dimensions: video
            .and_then(|v| Some(VideoDimensions { width: v.width?, height: v.height? }))
            .filter(|d| d.width <= 16_384 && d.height <= 16_384),
        announce_on_media: routed,
        // OpenTok.js sends its choice (on by default for cameras, off for screens); clients
        // before 2.35 send one `audioFallbackEnabled` that meant the subscribers'.
        subscriber_audio_fallback: routed
            && content.subscriber_audio_fallback_enabled.or(content.audio_fallback_enabled).unwrap_or(true),
    }
}

async fn request(shell: &mut Shell, msg: ClientMessage) -> Result<Reply, RoomError> {
    let hub = shell.hub.clone();
    let (conn, session, routed) = {
        let j = shell.joined.as_ref().expect("joined");
        (j.conn.clone(), j.session.clone(), j.routed)
    };
    match msg {
        ClientMessage::Connect { .. } => Ok(Reply::error(400, "already connected")),
        ClientMessage::ForceDisconnect { connection } => v1(shell, V1::ForceDisconnect { connection_id: connection }),
        ClientMessage::Signal { to, content, .. } => {
            let data = match content.data {
                Some(serde_json::Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            v1(shell, V1::Signal { to, signal_type: content.signal_type.unwrap_or_default(), data })
        }
        ClientMessage::Publish { stream, content } => {
            hub.publish(&conn, publish_request(stream.clone(), &content, routed))?;
            if routed {
                // The SFU asks for the publisher's offer, right after the reply (§7.5).
                let target = JsepTarget::Publisher { stream };
                let ask =
                    ServerRaptor::generate_offer(&session, &target, &fresh_id(), SourceStreamId::Mantis, Some(true));
                shell.pending.push(ask);
            }
            Ok(Reply::ok_with(ice_servers_body(&[])))
        }
        ClientMessage::StreamDelete { stream, .. } => {
            let owner = hub.act(&conn, |room| Ok((room.stream(&stream).map(|s| s.connection_id), Vec::new())))?;
            match owner {
                None => Ok(Reply::error(404, reason::STREAM_NOT_FOUND)),
                Some(owner) if owner == conn => v1(shell, V1::Unpublish { stream_id: stream }),
                Some(_) => v1(shell, V1::ForceUnpublish { stream_id: stream }),
            }
        }
        ClientMessage::StreamChannelUpdate { stream, channel, attributes } => {
            match (channel.as_str(), attributes.active) {
                ("audio1", Some(on)) => {
                    v1(shell, V1::SetStreamProperty { stream_id: stream, has_audio: Some(on), has_video: None })
                }
                ("video1", Some(on)) => {
                    v1(shell, V1::SetStreamProperty { stream_id: stream, has_audio: None, has_video: Some(on) })
                }
                _ => Ok(Reply::ok()),
            }
        }
        // Clients before 2.22 send `active:false` for a per-stream mute: any mute request mutes.
        ClientMessage::ForceMuteStream { stream, .. } => v1(shell, V1::ForceMute { stream_id: stream }),
        ClientMessage::ForceMuteAll { request } if request.active => {
            v1(shell, V1::ForceMuteAll { excluded_stream_ids: request.exclusion.unwrap_or_default() })
        }
        ClientMessage::ForceMuteAll { .. } => v1(shell, V1::DisableForceMute),
        // Routed: the SFU's offer for this subscriber's own peer follows through the queue.
        ClientMessage::Subscribe { stream, subscriber, .. } => {
            hub.subscribe_as(&conn, &stream, &subscriber)?;
            Ok(Reply::ok_with(ice_servers_body(&[])))
        }
        ClientMessage::Unsubscribe { stream, subscriber, .. } => {
            hub.unsubscribe_as(&conn, &stream, &subscriber)?;
            shell.joined.as_mut().expect("joined").subscriber_peers.remove(&subscriber);
            Ok(Reply::ok())
        }
        ClientMessage::SubscriberChannelUpdate { stream, subscriber, channel, attributes } => {
            // `subscribeToVideo`/`subscribeToAudio`. The client echoes the server's own audio
            // fallback with `activeReason: "auto"`: the SFU already acts on that itself.
            let video = channel.starts_with("video");
            let toggle = attributes.active.filter(|_| attributes.active_reason.as_deref() != Some("auto"));
            if let (true, Some(receive)) = (routed && (video || channel.starts_with("audio")), toggle) {
                hub.subscriber_receives(&conn, &stream, &subscriber, video, receive)?;
            }
            if routed {
                let size = (attributes.preferred_width.is_some() || attributes.preferred_height.is_some())
                    .then_some((attributes.preferred_width, attributes.preferred_height));
                let temporal = attributes.preferred_frame_rate.map(|r| temporal_layer_for_frame_rate(Some(r)));
                hub.subscriber_preference(&conn, &stream, &subscriber, size, temporal)?;
            }
            Ok(Reply::ok())
        }
        ClientMessage::Description { target, peer_id, source_stream_id, sdp_type, sdp } => {
            description(shell, target, peer_id, source_stream_id, sdp_type, sdp).await
        }
        ClientMessage::Candidate {
            target: JsepTarget::Subscriber { stream, subscriber },
            peer_id,
            source_stream_id: SourceStreamId::P2p,
            candidate,
        } => {
            let content = json!({
                "peerId": peer_id, "sourceStreamId": "P2P", "candidate": candidate.candidate,
                "sdpMid": candidate.sdp_mid, "sdpMLineIndex": candidate.sdp_m_line_index,
            });
            hub.relay_jsep(&conn, &stream, &subscriber, Method::Candidate.as_str(), content)?;
            Ok(Reply::ok())
        }
        // Routed: the SFU is ICE-lite and learns the browser's address from its checks.
        ClientMessage::Candidate { .. } => Ok(Reply::ok()),
        // Captions and statistics are not served; migration tests need nothing.
        ClientMessage::Data { .. } | ClientMessage::Migrate => Ok(Reply::ok()),
    }
}

async fn description(
    shell: &mut Shell,
    target: JsepTarget,
    peer_id: String,
    source: SourceStreamId,
    sdp_type: SdpType,
    sdp: String,
) -> Result<Reply, RoomError> {
    let hub = shell.hub.clone();
    let (conn, session) = {
        let j = shell.joined.as_ref().expect("joined");
        (j.conn.clone(), j.session.clone())
    };
    match (source, target, sdp_type) {
        (SourceStreamId::P2p, JsepTarget::Subscriber { stream, subscriber }, _) => {
            let method = sdp_type.method();
            let content = json!({"peerId": peer_id, "sourceStreamId": "P2P", "type": method.as_str(), "sdp": sdp});
            hub.relay_jsep(&conn, &stream, &subscriber, method.as_str(), content)?;
            Ok(Reply::ok())
        }
        (SourceStreamId::Mantis, JsepTarget::Publisher { stream }, SdpType::Offer) => {
            let answer = hub.publisher_offer(&conn, &stream, sdp).await?;
            let target = JsepTarget::Publisher { stream: stream.clone() };
            let raptor =
                ServerRaptor::description(&session, &target, &peer_id, source, SdpType::Answer, &answer.answer);
            if !shell.send_from_media(raptor).await {
                return Ok(Reply::error(500, "socket closed"));
            }
            // Announced once the SFU holds its media: `created` completes `publish()`. A
            // later offer (an ICE restart) changes nothing the others see.
            if !answer.renegotiated {
                hub.media_ready(&conn, &stream);
            }
            Ok(Reply::ok())
        }
        (SourceStreamId::Mantis, JsepTarget::Subscriber { stream, subscriber }, SdpType::Offer) => {
            // The subscriber restarts ICE on its own peer (§8.5): the SFU answers it.
            let answer = hub.subscriber_offer(&conn, &stream, &subscriber, sdp).await?;
            let target = JsepTarget::Subscriber { stream: stream.clone(), subscriber: subscriber.clone() };
            let raptor =
                ServerRaptor::description(&session, &target, &peer_id, source, SdpType::Answer, &answer.answer);
            if !shell.send_from_media(raptor).await {
                return Ok(Reply::error(500, "socket closed"));
            }
            if let Some(offer) = answer.follow_up {
                let raptor = shell.joined.as_mut().expect("joined").subscriber_offer(&stream, &subscriber, &offer);
                shell.pending.push(raptor);
            }
            Ok(Reply::ok())
        }
        (SourceStreamId::Mantis, JsepTarget::Subscriber { stream, subscriber }, SdpType::Answer) => {
            if let Some(offer) = hub.subscriber_answer(&conn, &stream, &subscriber, sdp).await? {
                let raptor = shell.joined.as_mut().expect("joined").subscriber_offer(&stream, &subscriber, &offer);
                shell.pending.push(raptor);
            }
            Ok(Reply::ok())
        }
        _ => Ok(Reply::error(400, "this session description is not expected here")),
    }
}
