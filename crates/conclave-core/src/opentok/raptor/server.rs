//! Server→client Raptor messages (protocol reference §6.4, §7, §8) and STATUS reply bodies.
//!
//! Owns: the shape of every message a server emits: connection, stream and archive objects,
//! the connect snapshot, error bodies, and one builder per row of §6.4. Must not touch: who
//! receives a message, when, or with which transaction ID (the socket shell decides; see
//! [`ServerRaptor::into_frame`]), nor clocks and ID generation: callers pass `creationTime`s,
//! peer IDs, notification IDs and so on in.

use super::client::{ClientMessage, ClientRaptor, DataTarget, JsepTarget};
use super::content::{JsepWire, to_content};
use super::uri::{RaptorUri, Resource, SessionPath};
use super::{
    ChannelAttributes, ChannelType, DataContent, IceCandidate, Method, MuteRequest, RaptorError, SdpType,
    SignalContent, SourceStreamId, StreamCreateContent, canonical_json, envelope_json, parse_envelope,
};
use crate::opentok::rumor::RumorFrame;
use crate::role::Role;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Reasons and error reasons the client recognises (§6.4, §7.6, §8, §9).
pub mod reason {
    pub const CLIENT_DISCONNECTED: &str = "clientDisconnected";
    pub const FORCE_DISCONNECTED: &str = "forceDisconnected";
    pub const NETWORK_DISCONNECTED: &str = "networkDisconnected";
    pub const FORCE_UNPUBLISHED: &str = "forceUnpublished";
    /// STATUS error reason on connect: the app sees `OT_CONNECTION_LIMIT_EXCEEDED` (1027).
    pub const CONNECTION_LIMIT_EXCEEDED: &str = "connectionLimitExceeded";
    /// STATUS 409 reason on subscriber create: `OT_STREAM_LIMIT_EXCEEDED` (1605).
    pub const STREAM_LIMIT_EXCEEDED: &str = "streamLimitExceeded";
    /// STATUS 404 reason, for example for the owner's duplicate delete after forceUnpublish.
    pub const STREAM_NOT_FOUND: &str = "streamNotFound";
    /// STATUS 405 reason on stream create: the E2EE settings do not match.
    pub const INCOMPATIBLE_ENCRYPTION_SETTINGS: &str = "IncompatibleEncryptionSettings";
    /// `notification` content reason: migrate to a fresh anvil answer and socket.
    pub const SERVER_ROTATION: &str = "serverRotation";
    /// `reason` of every force-mute message.
    pub const MUTE: &str = "mute";
}

/// Why a connection or stream went away: the top-level `reason` of `deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DestroyReason {
    ClientDisconnected,
    ForceDisconnected,
    NetworkDisconnected,
    ForceUnpublished,
}

impl DestroyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DestroyReason::ClientDisconnected => reason::CLIENT_DISCONNECTED,
            DestroyReason::ForceDisconnected => reason::FORCE_DISCONNECTED,
            DestroyReason::NetworkDisconnected => reason::NETWORK_DISCONNECTED,
            DestroyReason::ForceUnpublished => reason::FORCE_UNPUBLISHED,
        }
    }
}

/// A connection permission, lower-case on the wire (§10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Publish,
    Subscribe,
    ForceUnpublish,
    ForceDisconnect,
    ForceMute,
}

impl Permission {
    /// The role → permissions mapping of §10. `publisheronly` (not in §10) gets `publish` only.
    pub fn for_role(role: Role) -> Vec<Permission> {
        use Permission::*;
        match role {
            Role::Subscriber => vec![Subscribe],
            Role::PublisherOnly => vec![Publish],
            Role::Publisher => vec![Publish, Subscribe],
            Role::Moderator => vec![Publish, Subscribe, ForceUnpublish, ForceDisconnect, ForceMute],
        }
    }
}

/// The connection object (§7.2): `{id, creationTime, data, permissions}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionObject {
    pub id: String,
    /// Milliseconds since the epoch.
    pub creation_time: u64,
    /// The token's connection data, as-is.
    pub data: String,
    pub permissions: Vec<Permission>,
}

/// How a stream object names its owner: the whole connection object, or only its ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOwner {
    Connection(ConnectionObject),
    ConnectionId(String),
}

/// The stream object (§7.3): the publisher's `create` content plus `id`, the owner and
/// `creationTime`. Those three always come from here, never from the publisher's content.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamObject {
    pub id: String,
    pub content: StreamCreateContent,
    pub owner: StreamOwner,
    /// Milliseconds since the epoch.
    pub creation_time: u64,
}

impl StreamObject {
    pub fn to_value(&self) -> Value {
        let mut map = match to_content(&self.content) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        map.insert("id".into(), Value::String(self.id.clone()));
        map.remove("connection");
        map.remove("connectionId");
        match &self.owner {
            StreamOwner::Connection(c) => map.insert("connection".into(), to_content(c)),
            StreamOwner::ConnectionId(id) => map.insert("connectionId".into(), Value::String(id.clone())),
        };
        map.insert("creationTime".into(), self.creation_time.into());
        Value::Object(map)
    }
}

/// An archive as announced to clients: `{id, name, status}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveObject {
    pub id: String,
    pub name: String,
    /// `started` while recording.
    pub status: String,
}

/// `updated B/stream/{st}`: only `name` and `archiving` change at stream level (§7.7).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archiving: Option<bool>,
}

/// An ICE server as the client reads it: `{urls, username?, credential?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The body of the STATUS 200 reply to connect (§7.1). `stream` and `archive` are always
/// written, empty or not; the own connection belongs in `connection`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub connection: Vec<ConnectionObject>,
    pub stream: Vec<StreamObject>,
    pub archive: Vec<ArchiveObject>,
    /// `Some(true)` when the session is force-muted: the joiner starts in "mute on entry".
    pub mute_active: Option<bool>,
}

impl Snapshot {
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("connection".into(), Value::Array(self.connection.iter().map(to_content).collect()));
        map.insert("stream".into(), Value::Array(self.stream.iter().map(StreamObject::to_value).collect()));
        map.insert("archive".into(), Value::Array(self.archive.iter().map(to_content).collect()));
        if let Some(active) = self.mute_active {
            map.insert("mute".into(), json!({ "active": active }));
        }
        Value::Object(map)
    }

    pub fn to_json(&self) -> String {
        canonical_json(&self.to_value())
    }
}

/// STATUS codes used on replies (§9). Anything not starting with `2` is an error.
pub mod status {
    pub const OK: u16 = 200;
    pub const BAD_REQUEST: u16 = 400;
    pub const FORBIDDEN: u16 = 403;
    pub const NOT_FOUND: u16 = 404;
    pub const METHOD_NOT_ALLOWED: u16 = 405;
    pub const CONFLICT: u16 = 409;
    pub const PAYLOAD_TOO_LARGE: u16 = 413;
    pub const TOO_MANY_REQUESTS: u16 = 429;
    pub const INTERNAL_ERROR: u16 = 500;
}

/// STATUS body for stream and subscriber creation: `{"content":{"iceServers":[...]}}`.
pub fn ice_servers_body(ice_servers: &[IceServer]) -> String {
    canonical_json(&json!({ "content": { "iceServers": ice_servers.iter().map(to_content).collect::<Vec<_>>() } }))
}

/// STATUS body of an error reply: `{"reason": "…"}`; the reason becomes the error message.
pub fn error_body(reason: &str) -> String {
    canonical_json(&json!({ "reason": reason }))
}

/// A Raptor message from the server: method, URI, content object and optional top-level reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRaptor {
    pub method: Method,
    pub uri: RaptorUri,
    /// Always a JSON object on the wire (`deleted` requires one).
    pub content: Value,
    pub reason: Option<String>,
}

fn message(method: Method, session: &SessionPath, resource: Resource, content: Value) -> ServerRaptor {
    ServerRaptor { method, uri: session.uri(resource), content, reason: None }
}

fn jsep_content(peer_id: &str, source: SourceStreamId) -> JsepWire {
    JsepWire {
        peer_id: peer_id.to_owned(),
        source_stream_id: source,
        sdp_type: None,
        sdp: None,
        candidate: None,
        sdp_mid: None,
        sdp_m_line_index: None,
    }
}

fn stream(stream: &str) -> Resource {
    Resource::Stream { stream: stream.to_owned() }
}

impl ServerRaptor {
    pub fn new(method: Method, uri: RaptorUri, content: Value) -> Self {
        ServerRaptor { method, uri, content, reason: None }
    }

    pub fn with_reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    /// Parses a server message (the inverse of [`ServerRaptor::to_json`]), for test clients.
    pub fn parse(body: &str) -> Result<ServerRaptor, RaptorError> {
        let env = parse_envelope(body)?;
        Ok(ServerRaptor { method: env.method, uri: env.uri, content: Value::Object(env.content), reason: env.reason })
    }

    /// `{"method","uri","content"[,"reason"]}`; content keys sorted. A non-object content is
    /// written as `{}` so the client never sees a malformed message.
    pub fn to_json(&self) -> String {
        let empty = Value::Object(Map::new());
        let content = if self.content.is_object() { &self.content } else { &empty };
        envelope_json(self.method, &self.uri, content, self.reason.as_deref())
    }

    /// Wraps the message in a Rumor MESSAGE to `to`. `from_address` is the sender's connection
    /// ID, `symphony.…` for the media server, or `""` for the server itself.
    pub fn into_frame(&self, to: &str, transaction_id: Option<&str>, from_address: &str) -> RumorFrame {
        RumorFrame::server_message(to, transaction_id, from_address, self.to_json())
    }

    /// `created B/connection/{c}`: `connectionCreated` (also the newcomer's own, §7.1).
    pub fn connection_created(session: &SessionPath, connection: &ConnectionObject) -> Self {
        let resource = Resource::Connection { connection: connection.id.clone() };
        message(Method::Created, session, resource, to_content(connection))
    }

    /// `deleted B/connection/{c}`, content `{}`, top-level reason. To the target itself this is
    /// `sessionDisconnected(reason)`; send it with `forceDisconnected` to kick someone.
    pub fn connection_deleted(session: &SessionPath, connection: &str, why: DestroyReason) -> Self {
        let resource = Resource::Connection { connection: connection.to_owned() };
        message(Method::Deleted, session, resource, json!({})).with_reason(why.as_str())
    }

    /// `signal` on `B/signal/{id}` or `B/connection/{to}/signal/{id}`. Send with
    /// `X-TB-FROM-ADDRESS` = the sender (`""` = from the server). `from_connection` adds
    /// `fromConnection`, which clients need when connection events are suppressed (§8.7).
    pub fn signal(
        session: &SessionPath,
        to: Option<&str>,
        signal_id: &str,
        content: &SignalContent,
        from_connection: Option<&ConnectionObject>,
    ) -> Self {
        let signal = signal_id.to_owned();
        let resource = match to {
            Some(to) => Resource::ConnectionSignal { connection: to.to_owned(), signal },
            None => Resource::Signal { signal },
        };
        let mut content = to_content(content);
        if let (Some(from), Value::Object(map)) = (from_connection, &mut content) {
            map.insert("fromConnection".into(), to_content(from));
        }
        message(Method::Signal, session, resource, content)
    }

    /// `created B/stream/{st}`: `streamCreated`; the publisher's own copy completes `publish()`.
    pub fn stream_created(session: &SessionPath, stream_object: &StreamObject) -> Self {
        message(Method::Created, session, stream(&stream_object.id), stream_object.to_value())
    }

    /// `deleted B/stream/{st}`, content `{}` or `{sourceStreamId}`, top-level reason.
    pub fn stream_deleted(
        session: &SessionPath,
        stream_id: &str,
        why: DestroyReason,
        source: Option<SourceStreamId>,
    ) -> Self {
        let content = match source {
            Some(source) => json!({ "sourceStreamId": source.as_str() }),
            None => json!({}),
        };
        message(Method::Deleted, session, stream(stream_id), content).with_reason(why.as_str())
    }

    /// `updated B/stream/{st}` with `{name?, archiving?}`.
    pub fn stream_updated(session: &SessionPath, stream_id: &str, update: &StreamUpdate) -> Self {
        message(Method::Updated, session, stream(stream_id), to_content(update))
    }

    /// `update B/stream/{st}` `{reason:'mute', active:true, channels:['audio']}` to the owner:
    /// its publisher mutes its audio and fires `muteForced`.
    pub fn stream_force_mute(session: &SessionPath, stream_id: &str) -> Self {
        let request = MuteRequest { channels: vec![ChannelType::Audio], active: true, locked: None, exclusion: None };
        message(Method::Update, session, stream(stream_id), to_content(&request))
    }

    /// `updated B/stream/{st}/channel/{ch}`: `streamPropertyChanged` for the others.
    pub fn stream_channel_updated(
        session: &SessionPath,
        stream_id: &str,
        channel: &str,
        attributes: &ChannelAttributes,
    ) -> Self {
        let resource = Resource::StreamChannel { stream: stream_id.to_owned(), channel: channel.to_owned() };
        message(Method::Updated, session, resource, to_content(attributes))
    }

    /// `update B` `{reason:'mute', active}`: session `muteForced`, mute on entry on or off.
    pub fn session_mute(session: &SessionPath, active: bool) -> Self {
        message(Method::Update, session, Resource::Session, json!({ "reason": reason::MUTE, "active": active }))
    }

    /// `notification B/notification/{id}` `{reason}`; `serverRotation` starts a migration.
    pub fn notification(session: &SessionPath, notification_id: &str, why: &str) -> Self {
        let resource = Resource::Notification { notification: notification_id.to_owned() };
        message(Method::Notification, session, resource, json!({ "reason": why }))
    }

    /// `generateoffer`: relayed on the subscriber URI with `P2P`, routed on `B/stream/{st}`
    /// with `MANTIS` and `simulcastEnabled`.
    pub fn generate_offer(
        session: &SessionPath,
        target: &JsepTarget,
        peer_id: &str,
        source: SourceStreamId,
        simulcast_enabled: Option<bool>,
    ) -> Self {
        let mut content = to_content(&jsep_content(peer_id, source));
        if let (Some(on), Value::Object(map)) = (simulcast_enabled, &mut content) {
            map.insert("simulcastEnabled".into(), Value::Bool(on));
        }
        message(Method::GenerateOffer, session, target.resource(), content)
    }

    /// `offer`, `answer` or `pranswer` with `{peerId, sourceStreamId, type, sdp}`.
    pub fn description(
        session: &SessionPath,
        target: &JsepTarget,
        peer_id: &str,
        source: SourceStreamId,
        sdp_type: SdpType,
        sdp: &str,
    ) -> Self {
        let wire = JsepWire { sdp_type: Some(sdp_type), sdp: Some(sdp.to_owned()), ..jsep_content(peer_id, source) };
        message(sdp_type.method(), session, target.resource(), to_content(&wire))
    }

    /// `candidate` with `{peerId, sourceStreamId, candidate, sdpMid, sdpMLineIndex}`.
    pub fn candidate(
        session: &SessionPath,
        target: &JsepTarget,
        peer_id: &str,
        source: SourceStreamId,
        candidate: &IceCandidate,
    ) -> Self {
        let wire = JsepWire {
            candidate: Some(candidate.candidate.clone()),
            sdp_mid: candidate.sdp_mid.clone(),
            sdp_m_line_index: candidate.sdp_m_line_index,
            ..jsep_content(peer_id, source)
        };
        message(Method::Candidate, session, target.resource(), to_content(&wire))
    }

    /// `deleted B/stream/{st}/subscriber/{sub}` `{}` to the publisher: close that PeerConnection.
    pub fn subscriber_deleted(session: &SessionPath, stream_id: &str, subscriber: &str) -> Self {
        let resource = Resource::Subscriber { stream: stream_id.to_owned(), subscriber: subscriber.to_owned() };
        message(Method::Deleted, session, resource, json!({}))
    }

    /// `update B/stream/{st}/subscriber/{sub}/channel/{ch}` `{active}`: the media server asks
    /// the subscriber to turn a track off or on (audio fallback).
    pub fn subscriber_channel_update(
        session: &SessionPath,
        stream_id: &str,
        subscriber: &str,
        channel: &str,
        active: bool,
    ) -> Self {
        let resource = Resource::SubscriberChannel {
            stream: stream_id.to_owned(),
            subscriber: subscriber.to_owned(),
            channel: channel.to_owned(),
        };
        message(Method::Update, session, resource, json!({ "active": active }))
    }

    /// `updated B/stream/{st}/subscriber/{sub}/channel/{ch}`: updates the local stream channel.
    pub fn subscriber_channel_updated(
        session: &SessionPath,
        stream_id: &str,
        subscriber: &str,
        channel: &str,
        attributes: &ChannelAttributes,
    ) -> Self {
        let resource = Resource::SubscriberChannel {
            stream: stream_id.to_owned(),
            subscriber: subscriber.to_owned(),
            channel: channel.to_owned(),
        };
        message(Method::Updated, session, resource, to_content(attributes))
    }

    /// `created B/archive/{a}` `{id, name, status:'started'}`: `archiveStarted`.
    pub fn archive_created(session: &SessionPath, archive: &ArchiveObject) -> Self {
        let resource = Resource::Archive { archive: archive.id.clone() };
        message(Method::Created, session, resource, to_content(archive))
    }

    /// `updated B/archive/{a}` `{status}`: `archiveStopped` when `stopped`, else `archiveUpdated`.
    pub fn archive_updated(session: &SessionPath, archive_id: &str, status: &str) -> Self {
        let resource = Resource::Archive { archive: archive_id.to_owned() };
        message(Method::Updated, session, resource, json!({ "status": status }))
    }

    /// `data` on a channel data URI: captions (`caption1`) or downlink statistics.
    pub fn data(session: &SessionPath, target: &DataTarget, content: &DataContent) -> Self {
        message(Method::Data, session, target.resource(), to_content(content))
    }

    /// `create`/`delete B/stream/{st}/source/{P2P|MANTIS}` with a top-level reason (adaptive
    /// sessions: switch between relayed and routed).
    pub fn source_changed(
        session: &SessionPath,
        stream_id: &str,
        source: SourceStreamId,
        create: bool,
        why: &str,
    ) -> Self {
        let resource = Resource::StreamSource { stream: stream_id.to_owned(), source };
        let method = if create { Method::Create } else { Method::Delete };
        message(method, session, resource, json!({})).with_reason(why)
    }

    /// The message a server passes on for a client request it relays unchanged (§7.4, §7.7,
    /// §7.8): signals and JSEP keep method, URI and content; publisher and subscriber channel
    /// updates become `updated`; an unsubscribe becomes `deleted` for the publisher. Other
    /// requests are not relayed (`None`). The caller sets `X-TB-FROM-ADDRESS` to the sender.
    pub fn relay(request: &ClientRaptor) -> Option<ServerRaptor> {
        let method = match &request.message {
            ClientMessage::Signal { .. } | ClientMessage::Description { .. } | ClientMessage::Candidate { .. } => {
                request.method()
            }
            ClientMessage::StreamChannelUpdate { .. } | ClientMessage::SubscriberChannelUpdate { .. } => {
                Method::Updated
            }
            ClientMessage::Unsubscribe { .. } => {
                return Some(ServerRaptor::new(Method::Deleted, request.uri(), json!({})));
            }
            _ => return None,
        };
        Some(ServerRaptor::new(method, request.uri(), request.content()))
    }
}
