//! Client→server Raptor requests (protocol reference §6.3): every `(method, URI)` pair the
//! client sends, typed as a [`ClientMessage`], with its Rumor headers in a [`ClientRequest`].
//!
//! Owns: which `(method, resource)` pairs are valid from a client and how each one's content
//! is typed and bounded; printing a request back to JSON (for round trips and test clients).
//! Must not touch: permissions (a forceDisconnect parses the same for everyone), ownership
//! (unpublish and forceUnpublish are the same message), or any reply. The caller answers every
//! request with a STATUS carrying its `TRANSACTION-ID`.

use super::content::{JsepWire, check_sdp, from_content, to_content};
use super::uri::{RaptorUri, Resource, SessionPath};
use super::{
    ChannelAttributes, ConnectContent, DataContent, DeleteContent, IceCandidate, Method, MuteRequest, RaptorError,
    SdpType, SignalContent, SourceStreamId, StreamCreateContent, SubscriberCreateContent, check_id, envelope_json,
    parse_envelope,
};
use crate::opentok::rumor::{MessageType, RumorFrame, header};
use serde_json::Value;

/// Where a JSEP message goes: a routed publisher's `B/stream/{st}`, or a subscriber's
/// `B/stream/{st}/subscriber/{sub}` (relayed, and routed subscribers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JsepTarget {
    Publisher { stream: String },
    Subscriber { stream: String, subscriber: String },
}

impl JsepTarget {
    pub fn resource(&self) -> Resource {
        match self {
            JsepTarget::Publisher { stream } => Resource::Stream { stream: stream.clone() },
            JsepTarget::Subscriber { stream, subscriber } => {
                Resource::Subscriber { stream: stream.clone(), subscriber: subscriber.clone() }
            }
        }
    }

    pub fn stream(&self) -> &str {
        match self {
            JsepTarget::Publisher { stream } | JsepTarget::Subscriber { stream, .. } => stream,
        }
    }
}

/// Where a `data` message goes: `B/stream/{st}/channel/{ch}/data/{id}`, or the same below a
/// subscriber (downlink statistics).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DataTarget {
    Stream { stream: String, channel: String, data_id: String },
    Subscriber { stream: String, subscriber: String, channel: String, data_id: String },
}

impl DataTarget {
    pub fn resource(&self) -> Resource {
        match self.clone() {
            DataTarget::Stream { stream, channel, data_id } => {
                Resource::StreamChannelData { stream, channel, data: data_id }
            }
            DataTarget::Subscriber { stream, subscriber, channel, data_id } => {
                Resource::SubscriberChannelData { stream, subscriber, channel, data: data_id }
            }
        }
    }
}

/// Every request a client sends. IDs come from the URI; B is in [`ClientRaptor::session`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `create B/connection/{c}`: join. The token is in the Rumor `X-TB-TOKEN-AUTH` header.
    Connect { connection: String, content: ConnectContent },
    /// `delete B/connection/{target}`: forceDisconnect (needs `forcedisconnect`).
    ForceDisconnect { connection: String },
    /// `signal B/signal/{id}` (to everyone, `to == None`) or `B/connection/{to}/signal/{id}`.
    Signal { to: Option<String>, signal_id: String, content: SignalContent },
    /// `create B/stream/{st}`: publish.
    Publish { stream: String, content: StreamCreateContent },
    /// `delete B/stream/{st}`: unpublish by the owner, or forceUnpublish by a moderator.
    StreamDelete { stream: String, content: DeleteContent },
    /// `update B/stream/{st}/channel/{ch}`: the publisher's channel state changed.
    StreamChannelUpdate { stream: String, channel: String, attributes: ChannelAttributes },
    /// `update B/stream/{st}` with `reason:'mute'`: forceMuteStream (needs `forcemute`).
    ForceMuteStream { stream: String, request: MuteRequest },
    /// `update B` with `reason:'mute'`: forceMuteAll (`active:true`) or disableForceMute.
    ForceMuteAll { request: MuteRequest },
    /// `create B/stream/{st}/subscriber/{sub}`: subscribe.
    Subscribe { stream: String, subscriber: String, content: SubscriberCreateContent },
    /// `delete B/stream/{st}/subscriber/{sub}`: unsubscribe.
    Unsubscribe { stream: String, subscriber: String, content: DeleteContent },
    /// `update B/stream/{st}/subscriber/{sub}/channel/{ch}`: subscriber preferences.
    SubscriberChannelUpdate { stream: String, subscriber: String, channel: String, attributes: ChannelAttributes },
    /// `offer`, `answer` or `pranswer` on a JSEP URI; `content.type` equals the method.
    Description {
        target: JsepTarget,
        peer_id: String,
        source_stream_id: SourceStreamId,
        sdp_type: SdpType,
        sdp: String,
    },
    /// `candidate` on a JSEP URI.
    Candidate { target: JsepTarget, peer_id: String, source_stream_id: SourceStreamId, candidate: IceCandidate },
    /// `data` on a channel data URI (captions, statistics).
    Data { target: DataTarget, content: DataContent },
    /// `migrate B/migrate` (migration test).
    Migrate,
}

/// A parsed client Raptor message: the session it addresses and what it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRaptor {
    pub session: SessionPath,
    pub message: ClientMessage,
}

/// A client Raptor request together with the Rumor headers that matter (§5.4).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRequest {
    /// Echo this in the STATUS reply; the client matches replies only by it.
    pub transaction_id: Option<String>,
    /// The connection ID the client claims; the server must check it against the socket's.
    pub from_address: Option<String>,
    /// The client token (connect message only).
    pub token: Option<String>,
    pub raptor: ClientRaptor,
}

/// Parses a client MESSAGE frame's headers and Raptor body.
pub fn parse_client_request(frame: &RumorFrame) -> Result<ClientRequest, RaptorError> {
    if frame.kind != MessageType::Message {
        return Err(RaptorError::NotAMessage(frame.kind));
    }
    Ok(ClientRequest {
        transaction_id: frame.transaction_id().map(str::to_owned),
        from_address: frame.from_address().map(str::to_owned),
        token: frame.headers.get(header::TOKEN_AUTH).map(str::to_owned),
        raptor: ClientRaptor::parse(&frame.body)?,
    })
}

fn typed<T: serde::de::DeserializeOwned>(
    what: &'static str,
    content: serde_json::Map<String, Value>,
    validate: impl FnOnce(&T) -> Result<(), RaptorError>,
) -> Result<T, RaptorError> {
    let value: T = from_content(what, content)?;
    validate(&value)?;
    Ok(value)
}

fn jsep(
    method: Method,
    target: JsepTarget,
    content: serde_json::Map<String, Value>,
) -> Result<ClientMessage, RaptorError> {
    let wire: JsepWire = from_content("JSEP", content)?;
    check_id("peerId", &wire.peer_id)?;
    let missing =
        |field: &str| RaptorError::InvalidContent { what: "JSEP", detail: format!("missing field `{field}`") };
    let (peer_id, source_stream_id) = (wire.peer_id, wire.source_stream_id);
    if method == Method::Candidate {
        let candidate = IceCandidate {
            candidate: wire.candidate.ok_or_else(|| missing("candidate"))?,
            sdp_mid: wire.sdp_mid,
            sdp_m_line_index: wire.sdp_m_line_index,
        };
        candidate.validate()?;
        return Ok(ClientMessage::Candidate { target, peer_id, source_stream_id, candidate });
    }
    let sdp_type = wire.sdp_type.ok_or_else(|| missing("type"))?;
    if sdp_type.method() != method {
        return Err(RaptorError::SdpTypeMismatch { method, found: sdp_type });
    }
    let sdp = wire.sdp.ok_or_else(|| missing("sdp"))?;
    check_sdp(&sdp)?;
    Ok(ClientMessage::Description { target, peer_id, source_stream_id, sdp_type, sdp })
}

impl ClientRaptor {
    /// Parses a client Raptor body. Pairs of method and resource that the reference does not
    /// list for clients are [`RaptorError::UnsupportedRequest`].
    pub fn parse(body: &str) -> Result<ClientRaptor, RaptorError> {
        use ClientMessage as C;
        use Method as M;
        use Resource as R;
        let env = parse_envelope(body)?;
        let (method, content) = (env.method, env.content);
        let message = match (method, env.uri.resource) {
            (M::Create, R::Connection { connection }) => {
                C::Connect { connection, content: typed("connect", content, ConnectContent::validate)? }
            }
            (M::Delete, R::Connection { connection }) => C::ForceDisconnect { connection },
            (M::Signal, R::Signal { signal }) => {
                C::Signal { to: None, signal_id: signal, content: typed("signal", content, SignalContent::validate)? }
            }
            (M::Signal, R::ConnectionSignal { connection, signal }) => C::Signal {
                to: Some(connection),
                signal_id: signal,
                content: typed("signal", content, SignalContent::validate)?,
            },
            (M::Create, R::Stream { stream }) => {
                C::Publish { stream, content: typed("stream create", content, StreamCreateContent::validate)? }
            }
            (M::Delete, R::Stream { stream }) => {
                C::StreamDelete { stream, content: typed("delete", content, |_| Ok(()))? }
            }
            (M::Update, R::Stream { stream }) => {
                C::ForceMuteStream { stream, request: typed("mute", content, MuteRequest::validate)? }
            }
            (M::Update, R::Session) => C::ForceMuteAll { request: typed("mute", content, MuteRequest::validate)? },
            (M::Update, R::StreamChannel { stream, channel }) => C::StreamChannelUpdate {
                stream,
                channel,
                attributes: typed("channel", content, ChannelAttributes::validate)?,
            },
            (M::Create, R::Subscriber { stream, subscriber }) => C::Subscribe {
                stream,
                subscriber,
                content: typed("subscriber create", content, SubscriberCreateContent::validate)?,
            },
            (M::Delete, R::Subscriber { stream, subscriber }) => {
                C::Unsubscribe { stream, subscriber, content: typed("delete", content, |_| Ok(()))? }
            }
            (M::Update, R::SubscriberChannel { stream, subscriber, channel }) => C::SubscriberChannelUpdate {
                stream,
                subscriber,
                channel,
                attributes: typed("channel", content, ChannelAttributes::validate)?,
            },
            (M::Offer | M::Answer | M::Pranswer | M::Candidate, R::Stream { stream }) => {
                jsep(method, JsepTarget::Publisher { stream }, content)?
            }
            (M::Offer | M::Answer | M::Pranswer | M::Candidate, R::Subscriber { stream, subscriber }) => {
                jsep(method, JsepTarget::Subscriber { stream, subscriber }, content)?
            }
            (M::Data, R::StreamChannelData { stream, channel, data }) => C::Data {
                target: DataTarget::Stream { stream, channel, data_id: data },
                content: typed("data", content, DataContent::validate)?,
            },
            (M::Data, R::SubscriberChannelData { stream, subscriber, channel, data }) => C::Data {
                target: DataTarget::Subscriber { stream, subscriber, channel, data_id: data },
                content: typed("data", content, DataContent::validate)?,
            },
            (M::Migrate, R::Migrate) => C::Migrate,
            (method, resource) => return Err(RaptorError::UnsupportedRequest { method, resource: resource.kind() }),
        };
        Ok(ClientRaptor { session: env.uri.session, message })
    }

    pub fn method(&self) -> Method {
        match &self.message {
            ClientMessage::Connect { .. } | ClientMessage::Publish { .. } | ClientMessage::Subscribe { .. } => {
                Method::Create
            }
            ClientMessage::ForceDisconnect { .. }
            | ClientMessage::StreamDelete { .. }
            | ClientMessage::Unsubscribe { .. } => Method::Delete,
            ClientMessage::StreamChannelUpdate { .. }
            | ClientMessage::ForceMuteStream { .. }
            | ClientMessage::ForceMuteAll { .. }
            | ClientMessage::SubscriberChannelUpdate { .. } => Method::Update,
            ClientMessage::Signal { .. } => Method::Signal,
            ClientMessage::Description { sdp_type, .. } => sdp_type.method(),
            ClientMessage::Candidate { .. } => Method::Candidate,
            ClientMessage::Data { .. } => Method::Data,
            ClientMessage::Migrate => Method::Migrate,
        }
    }

    pub fn resource(&self) -> Resource {
        let s = |v: &String| v.clone();
        match &self.message {
            ClientMessage::Connect { connection, .. } | ClientMessage::ForceDisconnect { connection } => {
                Resource::Connection { connection: s(connection) }
            }
            ClientMessage::Signal { to: None, signal_id, .. } => Resource::Signal { signal: s(signal_id) },
            ClientMessage::Signal { to: Some(to), signal_id, .. } => {
                Resource::ConnectionSignal { connection: s(to), signal: s(signal_id) }
            }
            ClientMessage::Publish { stream, .. }
            | ClientMessage::StreamDelete { stream, .. }
            | ClientMessage::ForceMuteStream { stream, .. } => Resource::Stream { stream: s(stream) },
            ClientMessage::StreamChannelUpdate { stream, channel, .. } => {
                Resource::StreamChannel { stream: s(stream), channel: s(channel) }
            }
            ClientMessage::ForceMuteAll { .. } => Resource::Session,
            ClientMessage::Subscribe { stream, subscriber, .. }
            | ClientMessage::Unsubscribe { stream, subscriber, .. } => {
                Resource::Subscriber { stream: s(stream), subscriber: s(subscriber) }
            }
            ClientMessage::SubscriberChannelUpdate { stream, subscriber, channel, .. } => {
                Resource::SubscriberChannel { stream: s(stream), subscriber: s(subscriber), channel: s(channel) }
            }
            ClientMessage::Description { target, .. } | ClientMessage::Candidate { target, .. } => target.resource(),
            ClientMessage::Data { target, .. } => target.resource(),
            ClientMessage::Migrate => Resource::Migrate,
        }
    }

    pub fn uri(&self) -> RaptorUri {
        self.session.uri(self.resource())
    }

    /// The `content` object exactly as it goes on the wire (only the known keys).
    pub fn content(&self) -> Value {
        match &self.message {
            ClientMessage::Connect { content, .. } => to_content(content),
            ClientMessage::Signal { content, .. } => to_content(content),
            ClientMessage::Publish { content, .. } => to_content(content),
            ClientMessage::StreamDelete { content, .. } | ClientMessage::Unsubscribe { content, .. } => {
                to_content(content)
            }
            ClientMessage::StreamChannelUpdate { attributes, .. }
            | ClientMessage::SubscriberChannelUpdate { attributes, .. } => to_content(attributes),
            ClientMessage::ForceMuteStream { request, .. } | ClientMessage::ForceMuteAll { request } => {
                to_content(request)
            }
            ClientMessage::Subscribe { content, .. } => to_content(content),
            ClientMessage::Description { peer_id, source_stream_id, sdp_type, sdp, .. } => to_content(&JsepWire {
                peer_id: peer_id.clone(),
                source_stream_id: *source_stream_id,
                sdp_type: Some(*sdp_type),
                sdp: Some(sdp.clone()),
                candidate: None,
                sdp_mid: None,
                sdp_m_line_index: None,
            }),
            ClientMessage::Candidate { peer_id, source_stream_id, candidate, .. } => to_content(&JsepWire {
                peer_id: peer_id.clone(),
                source_stream_id: *source_stream_id,
                sdp_type: None,
                sdp: None,
                candidate: Some(candidate.candidate.clone()),
                sdp_mid: candidate.sdp_mid.clone(),
                sdp_m_line_index: candidate.sdp_m_line_index,
            }),
            ClientMessage::Data { content, .. } => to_content(content),
            ClientMessage::ForceDisconnect { .. } | ClientMessage::Migrate => Value::Object(Default::default()),
        }
    }

    /// The message as a client would send it: `{"method","uri","content"}` (sorted content keys).
    pub fn to_json(&self) -> String {
        envelope_json(self.method(), &self.uri(), &self.content(), None)
    }
}
