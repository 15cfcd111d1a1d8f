//! The signaling protocol, version 1: every message a client and the server exchange over
//! the WebSocket, as JSON text frames. `docs/protocol.md` documents it for humans.
//!
//! Owns: message shapes, limits and typed error codes. Must not touch: sockets, rooms or
//! authorization (the server decides what a role may do; this only describes the bytes).

use crate::role::Role;
use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
/// Largest text frame accepted from a client, but for the session descriptions below.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// OpenTok's signal limits (compat doc 6.4).
pub const MAX_SIGNAL_TYPE_BYTES: usize = 128;
pub const MAX_SIGNAL_DATA_BYTES: usize = 8 * 1024;
pub const MAX_STREAM_NAME_CHARS: usize = 256;
/// Largest session description: a routed receiver's answer grows by 1–2 KiB per track it
/// receives (two per publisher), so a meeting of a few dozen publishers needs this much.
pub const MAX_SDP_BYTES: usize = 128 * 1024;
/// Largest frame carrying a session description (`mediaOffer`, `mediaAnswer`, `sdp`).
pub const MAX_SDP_MESSAGE_BYTES: usize = MAX_SDP_BYTES + 4 * 1024;

/// A client message with its optional request `id`, echoed in the `ack` or `error` reply.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ClientEnvelope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(flatten)]
    pub msg: ClientMessage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VideoType {
    #[default]
    Camera,
    Screen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpKind {
    Offer,
    Answer,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ClientMessage {
    /// First message on a socket: join `session_id` with `token`.
    Connect {
        v: u32,
        session_id: String,
        token: String,
    },
    /// First message on a new socket after a drop: take back a suspended connection.
    Resume {
        v: u32,
        connection_id: String,
        resume_token: String,
    },
    Ping,
    /// Leave on purpose (reason `clientDisconnected`).
    Disconnect,
    Publish {
        #[serde(default)]
        name: Option<String>,
        #[serde(default = "yes")]
        has_audio: bool,
        #[serde(default = "yes")]
        has_video: bool,
        #[serde(default)]
        video_type: VideoType,
    },
    Unpublish {
        stream_id: String,
    },
    SetStreamProperty {
        stream_id: String,
        #[serde(default)]
        has_audio: Option<bool>,
        #[serde(default)]
        has_video: Option<bool>,
    },
    Subscribe {
        stream_id: String,
    },
    Unsubscribe {
        stream_id: String,
    },
    /// To everyone (no `to`), or to one connection.
    Signal {
        #[serde(default)]
        to: Option<String>,
        #[serde(default)]
        signal_type: String,
        #[serde(default)]
        data: String,
    },
    ForceDisconnect {
        connection_id: String,
    },
    ForceUnpublish {
        stream_id: String,
    },
    ForceMute {
        stream_id: String,
    },
    ForceMuteAll {
        #[serde(default)]
        excluded_stream_ids: Vec<String>,
    },
    DisableForceMute,
    /// Relayed sessions: an SDP offer or answer for the subscription of `stream_id`.
    Sdp {
        to: String,
        stream_id: String,
        kind: SdpKind,
        sdp: String,
    },
    /// Relayed sessions: an ICE candidate (opaque JSON, as the browser produced it).
    Ice {
        to: String,
        stream_id: String,
        candidate: serde_json::Value,
    },
    /// Routed sessions: an offer to the SFU, with ICE candidates gathered. With `streamId`,
    /// the publishing connection for that stream; without, this client's receiving connection.
    MediaOffer {
        #[serde(default)]
        stream_id: Option<String>,
        sdp: String,
    },
    /// Routed sessions: the answer to the SFU's latest `mediaOffer` on the receiving connection.
    MediaAnswer {
        sdp: String,
    },
    /// Routed sessions: which simulcast layer of a subscribed stream to receive, as OpenTok.js's
    /// `setPreferredResolution` (no size: the best layer available).
    SetPreferredResolution {
        stream_id: String,
        #[serde(default)]
        width: Option<u32>,
        #[serde(default)]
        height: Option<u32>,
    },
    /// Routed sessions: the frame rate to receive a subscribed stream at, as OpenTok.js's
    /// `setPreferredFrameRate` (the SFU drops higher VP8 temporal layers; no rate: all).
    SetPreferredFrameRate {
        stream_id: String,
        #[serde(default)]
        frame_rate: Option<f64>,
    },
}

/// The highest VP8 temporal layer to forward for a preferred frame rate, with the browser
/// SDK's three temporal layers (L1T3: ¼, ½ and the full rate): `Some(0)` up to 1/4 of 30 fps,
/// `Some(1)` up to 15 fps, `None` (every layer) above or without a rate.
pub fn temporal_layer_for_frame_rate(frame_rate: Option<f64>) -> Option<u8> {
    match frame_rate? {
        r if r <= 7.5 => Some(0),
        r if r <= 15.0 => Some(1),
        _ => None,
    }
}

/// The simulcast layer for a preferred size: `l` (≤ 400 px wide), `m` (≤ 800), else `h`;
/// `None` without a size (the SFU then picks the best layer available).
pub fn layer_for_resolution(width: Option<u32>, height: Option<u32>) -> Option<&'static str> {
    let w = width.or(height.map(|h| h * 16 / 9))?;
    Some(if w <= 400 {
        "l"
    } else if w <= 800 {
        "m"
    } else {
        "h"
    })
}

/// The simulcast layer (by rank, in protocol v1's names `l`/`m`/`h`) for a preferred size when
/// the publisher's own size is known (OpenTok.js publishers report it): the layers are full,
/// half and quarter size, so the wish is read against that size. Without it, the absolute rule
/// of [`layer_for_resolution`]. A size of 0 (OpenTok.js's "no preference") or none: `None`.
pub fn layer_for_size(
    width: Option<u32>,
    height: Option<u32>,
    publisher: Option<VideoDimensions>,
) -> Option<&'static str> {
    let want = width.filter(|w| *w > 0).or(height.filter(|h| *h > 0).map(|h| h * 4 / 3))?;
    let Some(full) = publisher.map(|d| d.width).filter(|w| *w > 0) else {
        return layer_for_resolution(Some(want), None);
    };
    Some(if want * 3 <= full {
        "l"
    } else if want * 3 <= full * 2 {
        "m"
    } else {
        "h"
    })
}

/// An `RTCIceServer` as the browser takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Time-limited TURN credentials in coturn's REST-API style (`use-auth-secret`):
/// username `"{expiry}:{user}"`, credential base64(HMAC-SHA1(secret, username)).
pub fn turn_credentials(secret: &[u8], user: &str, expires_at: u64) -> (String, String) {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let username = format!("{expires_at}:{user}");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    (username, base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// What everybody may know about a connection (never its role or token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    pub connection_id: String,
    pub data: String,
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamInfo {
    pub stream_id: String,
    pub connection_id: String,
    pub name: String,
    pub has_audio: bool,
    pub has_video: bool,
    pub video_type: VideoType,
    pub layout_class_list: Vec<String>,
    pub created_at: u64,
    pub subscriber_count: u32,
    /// The video's size as its publisher reported it (OpenTok.js publishers do; protocol v1
    /// publishers do not, and it is left out of their wire form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_dimensions: Option<VideoDimensions>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoDimensions {
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DisconnectReason {
    ClientDisconnected,
    NetworkDisconnected,
    ForceDisconnected,
    SessionEnded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamDestroyedReason {
    ClientUnpublished,
    ClientDisconnected,
    NetworkDisconnected,
    ForceUnpublished,
    ForceDisconnected,
    SessionEnded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamProperty {
    HasAudio,
    HasVideo,
    LayoutClassList,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ServerMessage {
    Connected {
        connection_id: String,
        resume_token: String,
        session_id: String,
        role: Role,
        data: String,
        media_mode: crate::wire::MediaMode,
        heartbeat_ms: u64,
        reconnect_grace_ms: u64,
        connections: Vec<ConnectionInfo>,
        streams: Vec<StreamInfo>,
        /// STUN/TURN servers for the browser's peer connections (TURN with time-limited
        /// credentials), as `RTCIceServer` objects.
        #[serde(default)]
        ice_servers: Vec<IceServer>,
        /// The session requires end-to-end encryption of media (routed, E2EE).
        #[serde(default)]
        e2ee: bool,
        /// Force-mute-all is on: the joiner starts muted ("mute on entry").
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mute_all: bool,
    },
    Resumed {
        connection_id: String,
        connections: Vec<ConnectionInfo>,
        streams: Vec<StreamInfo>,
    },
    /// Cluster mode: the session lives on another node; connect there (same `connect`
    /// message) and close this socket. Sent only after the token verified.
    Redirect {
        url: String,
        session_id: String,
    },
    Ack {
        id: u64,
    },
    Published {
        id: Option<u64>,
        stream: StreamInfo,
    },
    Error {
        id: Option<u64>,
        code: ErrorCode,
        message: String,
    },
    Pong,
    ConnectionCreated {
        connection: ConnectionInfo,
    },
    ConnectionDestroyed {
        connection_id: String,
        reason: DisconnectReason,
    },
    StreamCreated {
        stream: StreamInfo,
    },
    StreamDestroyed {
        stream_id: String,
        reason: StreamDestroyedReason,
    },
    StreamPropertyChanged {
        stream_id: String,
        property: StreamProperty,
        new_value: serde_json::Value,
    },
    SubscriberCount {
        stream_id: String,
        count: u32,
    },
    /// `from` is absent when the signal came from the REST API.
    Signal {
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        signal_type: String,
        data: String,
    },
    /// Sent to a publisher whose audio a moderator (or the REST API) muted.
    MuteForced {
        stream_id: String,
    },
    /// Force-mute-all was switched on or off for the session.
    MuteAllChanged {
        active: bool,
    },
    Sdp {
        from: String,
        stream_id: String,
        kind: SdpKind,
        sdp: String,
    },
    Ice {
        from: String,
        stream_id: String,
        candidate: serde_json::Value,
    },
    /// Routed sessions: the SFU's answer to a client `mediaOffer`.
    MediaAnswer {
        #[serde(skip_serializing_if = "Option::is_none")]
        stream_id: Option<String>,
        sdp: String,
    },
    /// Routed sessions: the SFU offers changed media (new subscriptions) on the receiving
    /// connection; answer with `mediaAnswer`. Each subscribed stream's tracks carry the msid
    /// stream ID `pub{streamId}` (str0m drops the colon of the peer ID).
    MediaOffer {
        sdp: String,
    },
    /// Last message before the server closes this socket.
    SessionDisconnected {
        reason: DisconnectReason,
    },
    // The messages below are not part of protocol v1 (its socket never sends them): wire
    // adapters that need them (OpenTok.js) translate them.
    /// Relayed sessions, to a stream's publisher: a subscriber (with its own subscriber ID)
    /// wants the stream; the publisher should make it an offer.
    SubscriberAdded {
        stream_id: String,
        subscriber_id: String,
        connection_id: String,
    },
    /// To a stream's publisher: that subscriber is gone.
    SubscriberRemoved {
        stream_id: String,
        subscriber_id: String,
    },
    /// Relayed sessions: a JSEP message (offer, answer, candidate) between a stream's
    /// publisher and one of its subscribers, passed on unchanged.
    Jsep {
        from: String,
        stream_id: String,
        subscriber_id: String,
        method: String,
        content: serde_json::Value,
    },
    /// Routed, to a subscription with its own peer (OpenTok.js): the SFU's offer for it.
    SubscriberOffer {
        stream_id: String,
        subscriber_id: String,
        sdp: String,
    },
    /// Routed, to a subscription with its own peer (OpenTok.js) and audio fallback on: its
    /// bandwidth collapsed, so the SFU sends it audio only (`audio_only`), or it recovered.
    SubscriberAudioFallback {
        stream_id: String,
        subscriber_id: String,
        audio_only: bool,
    },
    ArchiveStarted {
        archive_id: String,
        name: String,
    },
    ArchiveStopped {
        archive_id: String,
    },
}

impl ServerMessage {
    /// Whether protocol v1 (`/v1/signal`) speaks this message; the others are for adapters.
    pub fn is_protocol_v1(&self) -> bool {
        !matches!(
            self,
            ServerMessage::SubscriberAdded { .. }
                | ServerMessage::SubscriberRemoved { .. }
                | ServerMessage::Jsep { .. }
                | ServerMessage::SubscriberOffer { .. }
                | ServerMessage::SubscriberAudioFallback { .. }
                | ServerMessage::ArchiveStarted { .. }
                | ServerMessage::ArchiveStopped { .. }
        )
    }
}

/// Typed signaling error codes (stable strings on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadMessage,
    MessageTooLarge,
    RateLimited,
    UnsupportedVersion,
    NotConnected,
    AlreadyConnected,
    InvalidToken,
    TokenExpired,
    TokenRevoked,
    WrongSession,
    SessionNotFound,
    SessionEnded,
    SessionFull,
    ResumeFailed,
    Forbidden,
    NotFound,
    InvalidArgument,
    RelayedOnly,
    /// `mediaOffer`/`mediaAnswer` in a relayed session, or the server runs no SFU.
    RoutedOnly,
    /// The SFU refused the SDP.
    MediaFailed,
    Draining,
    PersonalData,
}

impl ErrorCode {
    pub fn for_token_error(e: &crate::token::TokenError) -> ErrorCode {
        use crate::token::TokenError as T;
        match e {
            T::Expired | T::NotYetValid => ErrorCode::TokenExpired,
            T::WrongSession | T::WrongProject => ErrorCode::WrongSession,
            T::SessionNotFound => ErrorCode::SessionNotFound,
            T::SessionEnded => ErrorCode::SessionEnded,
            _ => ErrorCode::InvalidToken,
        }
    }
}

/// Parses one client frame, enforcing the size limit first.
pub fn parse_client_frame(text: &str) -> Result<ClientEnvelope, (ErrorCode, String)> {
    let too_large = || {
        let limits = format!("{MAX_MESSAGE_BYTES} bytes, {MAX_SDP_MESSAGE_BYTES} for session descriptions");
        (ErrorCode::MessageTooLarge, format!("messages are limited to {limits}"))
    };
    if text.len() > MAX_SDP_MESSAGE_BYTES {
        return Err(too_large());
    }
    let envelope: ClientEnvelope = serde_json::from_str(text).map_err(|e| match text.len() > MAX_MESSAGE_BYTES {
        true => too_large(),
        false => (ErrorCode::BadMessage, format!("unreadable message: {e}")),
    })?;
    let carries_sdp = matches!(
        envelope.msg,
        ClientMessage::MediaOffer { .. } | ClientMessage::MediaAnswer { .. } | ClientMessage::Sdp { .. }
    );
    if text.len() > MAX_MESSAGE_BYTES && !carries_sdp {
        return Err(too_large());
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_messages_with_defaults() {
        let e = parse_client_frame(r#"{"type":"connect","id":1,"v":1,"sessionId":"1_x","token":"T1==abc"}"#).unwrap();
        assert_eq!(e.id, Some(1));
        assert_eq!(e.msg, ClientMessage::Connect { v: 1, session_id: "1_x".into(), token: "T1==abc".into() });
        let e = parse_client_frame(r#"{"type":"publish"}"#).unwrap();
        assert_eq!(
            e.msg,
            ClientMessage::Publish { name: None, has_audio: true, has_video: true, video_type: VideoType::Camera }
        );
        let e = parse_client_frame(r#"{"type":"signal","signalType":"chat","data":"hi"}"#).unwrap();
        assert_eq!(e.msg, ClientMessage::Signal { to: None, signal_type: "chat".into(), data: "hi".into() });
    }

    #[test]
    fn refuses_bad_frames_with_typed_codes() {
        assert_eq!(parse_client_frame(&"x".repeat(MAX_MESSAGE_BYTES + 1)).unwrap_err().0, ErrorCode::MessageTooLarge);
        // Session descriptions may be larger (a receiver of many publishers), nothing else.
        let big_sdp = format!("v=0\r\n{}", "a=x\r\n".repeat(10_000));
        let answer = serde_json::json!({ "type": "mediaAnswer", "sdp": big_sdp }).to_string();
        assert!(answer.len() > 3 * MAX_MESSAGE_BYTES);
        assert!(matches!(parse_client_frame(&answer).unwrap().msg, ClientMessage::MediaAnswer { .. }));
        let signal = serde_json::json!({ "type": "signal", "data": "x".repeat(3 * MAX_MESSAGE_BYTES) }).to_string();
        assert_eq!(parse_client_frame(&signal).unwrap_err().0, ErrorCode::MessageTooLarge);
        let huge = serde_json::json!({ "type": "mediaAnswer", "sdp": "x".repeat(MAX_SDP_MESSAGE_BYTES) }).to_string();
        assert_eq!(parse_client_frame(&huge).unwrap_err().0, ErrorCode::MessageTooLarge);
        for bad in ["", "{", "[]", r#"{"type":"nope"}"#, r#"{"type":"subscribe"}"#, r#"{"type":"connect","v":"1"}"#] {
            assert_eq!(parse_client_frame(bad).unwrap_err().0, ErrorCode::BadMessage, "{bad}");
        }
    }

    #[test]
    fn a_preferred_size_is_read_against_the_publishers_own_size() {
        let vga = Some(VideoDimensions { width: 640, height: 480 });
        let hd = Some(VideoDimensions { width: 1280, height: 720 });
        assert_eq!(layer_for_size(Some(640), Some(480), vga), Some("h"));
        assert_eq!(layer_for_size(Some(320), Some(240), vga), Some("m"));
        assert_eq!(layer_for_size(Some(160), Some(120), vga), Some("l"));
        assert_eq!(layer_for_size(Some(1280), Some(720), hd), Some("h"));
        assert_eq!(layer_for_size(Some(640), Some(360), hd), Some("m"));
        assert_eq!(layer_for_size(Some(320), Some(180), hd), Some("l"));
        assert_eq!(layer_for_size(Some(0), Some(0), vga), None, "OpenTok.js clears with 0x0");
        assert_eq!(layer_for_size(Some(320), None, None), Some("l"), "no size known: the absolute rule");
    }

    #[test]
    fn turn_credentials_follow_coturns_rest_api() {
        // printf '1700000000:alice' | openssl dgst -sha1 -hmac secret -binary | base64
        let (u, c) = turn_credentials(b"secret", "alice", 1_700_000_000);
        assert_eq!(u, "1700000000:alice");
        assert_eq!(c, "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
    }

    #[test]
    fn server_messages_have_stable_names() {
        let m = ServerMessage::ConnectionDestroyed {
            connection_id: "c".into(),
            reason: DisconnectReason::ForceDisconnected,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"connectionDestroyed","connectionId":"c","reason":"forceDisconnected"}"#
        );
        let m = ServerMessage::Error { id: Some(3), code: ErrorCode::SessionFull, message: "full".into() };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"error","id":3,"code":"session_full","message":"full"}"#
        );
    }
}
