//! One session's live state as a pure state machine (sans-IO): connections, streams,
//! subscriptions, force-mute, and the relaying of SDP for relayed sessions.
//!
//! Owns: every rule about who may do what inside a session, and the events each action
//! produces. Takes time and fresh IDs as inputs and returns [`Output`]s; it never touches a
//! socket, a clock or the store, so it is tested deterministically. Must not touch: token
//! verification (done before `join`) or delivery (the hub's job).

use conclave_core::Role;
use conclave_core::signal::{
    ClientMessage, ConnectionInfo, DisconnectReason, ErrorCode, MAX_SDP_BYTES, MAX_SIGNAL_DATA_BYTES,
    MAX_SIGNAL_TYPE_BYTES, SdpKind, ServerMessage, StreamDestroyedReason, StreamInfo, StreamProperty,
};
use conclave_core::wire::MediaMode;
use std::collections::{BTreeMap, BTreeSet};

pub type ConnId = String;
pub type StreamId = String;

/// What the room knows of its session.
#[derive(Debug, Clone)]
pub struct SessionMeta {
    pub session_id: String,
    pub api_key: String,
    pub media_mode: MediaMode,
    pub max_participants: Option<u32>,
}

/// A verified participant asking to join.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub role: Role,
    pub data: String,
    pub layout_classes: Vec<String>,
    pub token_fingerprint: [u8; 32],
    pub token_expires_at: u64,
    /// A connection ID the client chose (OpenTok.js does); `None`: the room draws one.
    pub connection_id: Option<ConnId>,
}

/// Session-monitoring events, for webhooks.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    ConnectionCreated(ConnectionInfo),
    ConnectionDestroyed {
        connection: ConnectionInfo,
        reason: DisconnectReason,
    },
    StreamCreated(StreamInfo),
    StreamDestroyed {
        stream: StreamInfo,
        reason: StreamDestroyedReason,
    },
    /// A stream's layout classes changed (what composed archives lay out by); not a
    /// session-monitoring webhook.
    StreamClassesChanged(StreamInfo),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Deliver `msg` to each connection in `to` (serialise once, send many).
    Send {
        to: Vec<ConnId>,
        msg: ServerMessage,
    },
    /// Tell `conn` why (`sessionDisconnected`) and close its socket.
    Close {
        conn: ConnId,
        reason: DisconnectReason,
    },
    /// Persist that this token may not join again before it expires.
    Revoke {
        fingerprint: [u8; 32],
        expires_at: u64,
    },
    Event(SessionEvent),
    /// What the SFU must do, in the order the room decided it (routed sessions only).
    Media(MediaIntent),
}

/// Who receives a subscription's media at the SFU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receiver {
    /// A protocol v1 client's one receiving connection (all its subscriptions).
    Connection(ConnId),
    /// A subscription with a peer of its own (OpenTok.js), by its subscriber ID.
    Subscriber(String),
}

/// The room's decisions about media, applied to the SFU by the hub in this order, so that a
/// subscribe and an unsubscribe sent back to back can never reach the SFU swapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaIntent {
    /// A connection's receiver should get `stream` (once both peers exist).
    Subscribe {
        conn: ConnId,
        stream: StreamId,
    },
    Unsubscribe {
        conn: ConnId,
        stream: StreamId,
    },
    /// A subscription with its own peer: create it with `stream`'s tracks; its offer goes to `conn`.
    OpenSubscriberPeer {
        conn: ConnId,
        stream: StreamId,
        subscriber: String,
        /// Send it audio only while its bandwidth is too low for video.
        audio_fallback: bool,
    },
    CloseSubscriberPeer {
        subscriber: String,
    },
    AudioForwarding {
        stream: StreamId,
        enabled: bool,
    },
    PreferredLayer {
        receiver: Receiver,
        stream: StreamId,
        layer: Option<&'static str>,
    },
    MaxTemporalLayer {
        receiver: Receiver,
        stream: StreamId,
        max: Option<u8>,
    },
    /// A subscription with its own peer pauses (`receive: false`) or resumes one kind of
    /// track (OpenTok.js `subscribeToVideo`, `subscribeToAudio`).
    SubscriberReceives {
        subscriber: String,
        video: bool,
        receive: bool,
    },
    /// The stream is gone: nothing of it is forwarded any more.
    PublisherGone {
        stream: StreamId,
    },
    /// The connection is gone: its receiving peer goes.
    ReceiverGone {
        conn: ConnId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomError {
    pub code: ErrorCode,
    pub message: String,
}

impl RoomError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RoomError { code, message: message.into() }
    }
}

fn forbidden(what: &str, role: Role) -> RoomError {
    RoomError::new(ErrorCode::Forbidden, format!("role {role} may not {what}"))
}

fn not_found(what: &str) -> RoomError {
    RoomError::new(ErrorCode::NotFound, format!("{what} not found"))
}

/// Source of fresh, unguessable IDs (the shell passes a CSPRNG; tests pass a counter).
pub trait IdSource: Send {
    fn next_id(&mut self) -> String;
}

struct Connection {
    info: ConnectionInfo,
    role: Role,
    layout_classes: Vec<String>,
    resume_token: String,
    token_fingerprint: [u8; 32],
    token_expires_at: u64,
    /// Set while the socket is gone and the reconnect grace period runs.
    suspended_since: Option<u64>,
    subscriptions: BTreeSet<StreamId>,
}

struct Stream {
    info: StreamInfo,
    /// Asked to subscribe (signaling), media not confirmed yet or already confirmed.
    requested: BTreeSet<ConnId>,
    /// Subscribers whose media is really set up: what `subscriberCount` counts. Routed: the
    /// SFU accepted the subscription; relayed: the publisher answered the subscriber's offer.
    subscribers: BTreeSet<ConnId>,
    /// Subscriber IDs chosen by clients that have one per subscription (OpenTok.js), each
    /// with the connection it belongs to.
    subscriber_ids: BTreeMap<String, ConnId>,
    /// Known to the session. A routed OpenTok.js stream is announced only once its media
    /// reaches the SFU; until then nobody sees or subscribes to it.
    announced: bool,
    /// Subscribers with their own peer fall back to audio only when their bandwidth
    /// collapses (the publisher's `subscriberAudioFallbackEnabled`).
    subscriber_audio_fallback: bool,
}

pub struct Room {
    meta: SessionMeta,
    ids: Box<dyn IdSource>,
    /// Ordered by join, so snapshots list connections oldest first.
    connections: BTreeMap<u64, ConnId>,
    by_id: std::collections::HashMap<ConnId, (u64, Connection)>,
    streams: BTreeMap<StreamId, Stream>,
    join_seq: u64,
    mute_all: Option<BTreeSet<StreamId>>,
    ended: bool,
}

/// IDs a client may choose for itself (connections, streams, subscribers): 1-64 letters,
/// digits, `-` or `_` (OpenTok.js sends UUIDs). Uniqueness is checked where they are used.
pub fn is_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A signal's limits, whoever sends it and whether or not anyone will receive it (REST
/// checks them before it even looks for a live room).
pub fn check_signal(signal_type: &str, data: &str) -> Result<(), RoomError> {
    if signal_type.len() > MAX_SIGNAL_TYPE_BYTES || data.len() > MAX_SIGNAL_DATA_BYTES {
        return Err(RoomError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "signal type is limited to {MAX_SIGNAL_TYPE_BYTES} bytes and data to {MAX_SIGNAL_DATA_BYTES} bytes"
            ),
        ));
    }
    Ok(())
}

impl Room {
    pub fn new(meta: SessionMeta, ids: Box<dyn IdSource>) -> Room {
        Room {
            meta,
            ids,
            connections: BTreeMap::new(),
            by_id: Default::default(),
            streams: BTreeMap::new(),
            join_seq: 0,
            mute_all: None,
            ended: false,
        }
    }

    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    /// No connection at all, suspended ones included: the room can be dropped.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn participant_count(&self) -> usize {
        self.by_id.len()
    }

    fn all_except(&self, skip: Option<&str>) -> Vec<ConnId> {
        self.connections
            .values()
            .filter(|c| Some(c.as_str()) != skip)
            .filter(|c| self.by_id.get(*c).is_some_and(|(_, conn)| conn.suspended_since.is_none()))
            .cloned()
            .collect()
    }

    /// `intent` as an output, in routed sessions (relayed media never touches the SFU).
    fn media(&self, intent: MediaIntent) -> Option<Output> {
        (self.meta.media_mode == MediaMode::Routed).then_some(Output::Media(intent))
    }

    fn conn(&self, id: &str) -> Result<&Connection, RoomError> {
        self.by_id.get(id).map(|(_, c)| c).ok_or_else(|| not_found("connection"))
    }

    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.connections.values().filter_map(|id| self.by_id.get(id)).map(|(_, c)| c.info.clone()).collect()
    }

    /// The streams the session knows (announced ones).
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.streams.values().filter(|s| s.announced).map(|s| s.info.clone()).collect()
    }

    /// Whether force-mute-all is on.
    pub fn mute_all_active(&self) -> bool {
        self.mute_all.is_some()
    }

    pub fn stream(&self, id: &str) -> Option<StreamInfo> {
        self.streams.get(id).map(|s| s.info.clone())
    }

    pub fn resume_token(&self, conn: &str) -> Option<&str> {
        self.by_id.get(conn).map(|(_, c)| c.resume_token.as_str())
    }

    /// Admits a verified participant, or refuses with `session_full` / `session_ended`.
    /// The check and the insert happen under one `&mut self`, so the limit is exact.
    pub fn join(&mut self, req: JoinRequest, now_ms: u64) -> Result<(ConnId, Vec<Output>), RoomError> {
        if self.ended {
            return Err(RoomError::new(ErrorCode::SessionEnded, "the session has ended"));
        }
        if let Some(max) = self.meta.max_participants
            && self.by_id.len() >= max as usize
        {
            return Err(RoomError::new(ErrorCode::SessionFull, format!("the session is full ({max} participants)")));
        }
        let id = match req.connection_id {
            Some(id) if !is_client_id(&id) => {
                return Err(RoomError::new(
                    ErrorCode::InvalidArgument,
                    "connection IDs are 1-64 letters, digits, - or _",
                ));
            }
            Some(id) if self.by_id.contains_key(&id) => {
                return Err(RoomError::new(ErrorCode::InvalidArgument, "that connection ID is taken"));
            }
            Some(id) => id,
            None => self.ids.next_id(),
        };
        let info = ConnectionInfo { connection_id: id.clone(), data: req.data, created_at: now_ms };
        let conn = Connection {
            info: info.clone(),
            role: req.role,
            layout_classes: req.layout_classes,
            resume_token: self.ids.next_id(),
            token_fingerprint: req.token_fingerprint,
            token_expires_at: req.token_expires_at,
            suspended_since: None,
            subscriptions: BTreeSet::new(),
        };
        self.join_seq += 1;
        self.connections.insert(self.join_seq, id.clone());
        self.by_id.insert(id.clone(), (self.join_seq, conn));
        let outputs = vec![
            Output::Send {
                to: self.all_except(Some(&id)),
                msg: ServerMessage::ConnectionCreated { connection: info.clone() },
            },
            Output::Event(SessionEvent::ConnectionCreated(info)),
        ];
        Ok((id, outputs))
    }

    /// The snapshot a joiner receives: everyone else, and every stream.
    pub fn snapshot_for(&self, conn: &str) -> (Vec<ConnectionInfo>, Vec<StreamInfo>) {
        let others = self.connections().into_iter().filter(|c| c.connection_id != conn).collect();
        (others, self.streams())
    }

    /// A socket dropped without a goodbye: keep the seat and say nothing during the grace.
    pub fn suspend(&mut self, conn: &str, now_ms: u64) {
        if let Some((_, c)) = self.by_id.get_mut(conn) {
            c.suspended_since.get_or_insert(now_ms);
        }
    }

    /// Takes a suspended connection back; the caller compared the resume token already.
    pub fn resume(&mut self, conn: &str) -> Result<(), RoomError> {
        match self.by_id.get_mut(conn) {
            Some((_, c)) => {
                c.suspended_since = None;
                Ok(())
            }
            None => Err(RoomError::new(ErrorCode::ResumeFailed, "the connection is gone; connect again")),
        }
    }

    /// Connections suspended for longer than `grace_ms` leave with `networkDisconnected`.
    pub fn expire_suspended(&mut self, now_ms: u64, grace_ms: u64) -> Vec<Output> {
        let expired: Vec<ConnId> = self
            .by_id
            .iter()
            .filter(|(_, (_, c))| c.suspended_since.is_some_and(|t| now_ms.saturating_sub(t) >= grace_ms))
            .map(|(id, _)| id.clone())
            .collect();
        expired.into_iter().flat_map(|id| self.leave(&id, DisconnectReason::NetworkDisconnected)).collect()
    }

    /// Removes a connection with its streams and subscriptions, and tells everyone.
    pub fn leave(&mut self, conn: &str, reason: DisconnectReason) -> Vec<Output> {
        let Some((seq, c)) = self.by_id.remove(conn) else { return Vec::new() };
        self.connections.remove(&seq);
        let mut out = Vec::new();
        let stream_reason = match reason {
            DisconnectReason::ClientDisconnected => StreamDestroyedReason::ClientDisconnected,
            DisconnectReason::NetworkDisconnected => StreamDestroyedReason::NetworkDisconnected,
            DisconnectReason::ForceDisconnected => StreamDestroyedReason::ForceDisconnected,
            DisconnectReason::SessionEnded => StreamDestroyedReason::SessionEnded,
        };
        let own: Vec<StreamId> =
            self.streams.values().filter(|s| s.info.connection_id == conn).map(|s| s.info.stream_id.clone()).collect();
        for sid in own {
            out.extend(self.destroy_stream(&sid, stream_reason));
        }
        for sid in &c.subscriptions {
            out.extend(self.remove_subscriber(sid, conn));
        }
        out.extend(self.media(MediaIntent::ReceiverGone { conn: conn.to_owned() }));
        out.push(Output::Close { conn: conn.to_owned(), reason });
        if reason == DisconnectReason::ForceDisconnected {
            out.push(Output::Revoke { fingerprint: c.token_fingerprint, expires_at: c.token_expires_at });
        }
        out.push(Output::Send {
            to: self.all_except(None),
            msg: ServerMessage::ConnectionDestroyed { connection_id: conn.to_owned(), reason },
        });
        out.push(Output::Event(SessionEvent::ConnectionDestroyed { connection: c.info, reason }));
        out
    }

    fn destroy_stream(&mut self, sid: &str, reason: StreamDestroyedReason) -> Vec<Output> {
        let Some(s) = self.streams.remove(sid) else { return Vec::new() };
        for sub in &s.requested {
            if let Some((_, c)) = self.by_id.get_mut(sub) {
                c.subscriptions.remove(sid);
            }
        }
        let mut out: Vec<Output> = s
            .subscriber_ids
            .keys()
            .filter_map(|sub| self.media(MediaIntent::CloseSubscriberPeer { subscriber: sub.clone() }))
            .collect();
        out.extend(self.media(MediaIntent::PublisherGone { stream: sid.to_owned() }));
        let msg = ServerMessage::StreamDestroyed { stream_id: sid.to_owned(), reason };
        if !s.announced {
            // Nobody else knew it: only its publisher learns it is gone.
            out.push(Output::Send { to: vec![s.info.connection_id], msg });
            return out;
        }
        out.push(Output::Send { to: self.all_except(None), msg });
        out.push(Output::Event(SessionEvent::StreamDestroyed { stream: s.info, reason }));
        out
    }

    fn remove_subscriber(&mut self, sid: &str, conn: &str) -> Vec<Output> {
        let Some(s) = self.streams.get_mut(sid) else { return Vec::new() };
        s.requested.remove(conn);
        let gone: Vec<String> = s.subscriber_ids.iter().filter(|(_, c)| *c == conn).map(|(id, _)| id.clone()).collect();
        let routed = self.meta.media_mode == MediaMode::Routed;
        let mut out = Vec::new();
        for subscriber_id in gone {
            s.subscriber_ids.remove(&subscriber_id);
            if routed {
                out.push(Output::Media(MediaIntent::CloseSubscriberPeer { subscriber: subscriber_id.clone() }));
            }
            out.push(Output::Send {
                to: vec![s.info.connection_id.clone()],
                msg: ServerMessage::SubscriberRemoved { stream_id: sid.to_owned(), subscriber_id },
            });
        }
        if !s.subscribers.remove(conn) {
            return out;
        }
        s.info.subscriber_count = s.subscribers.len() as u32;
        let count = s.info.subscriber_count;
        out.insert(
            0,
            Output::Send {
                to: self.all_except(Some(conn)),
                msg: ServerMessage::SubscriberCount { stream_id: sid.to_owned(), count },
            },
        );
        out
    }

    /// Everything a connected client may ask for, with the role enforced here.
    pub fn handle(
        &mut self,
        from: &str,
        msg: ClientMessage,
        req_id: Option<u64>,
        now_ms: u64,
    ) -> Result<Vec<Output>, RoomError> {
        let role = self.conn(from)?.role;
        let ack = |mut out: Vec<Output>| {
            if let Some(id) = req_id {
                out.insert(0, Output::Send { to: vec![from.to_owned()], msg: ServerMessage::Ack { id } });
            }
            out
        };
        match msg {
            ClientMessage::Connect { .. } | ClientMessage::Resume { .. } => {
                Err(RoomError::new(ErrorCode::AlreadyConnected, "this socket is already connected"))
            }
            ClientMessage::Ping => Ok(vec![Output::Send { to: vec![from.to_owned()], msg: ServerMessage::Pong }]),
            ClientMessage::Disconnect => Ok(self.leave(from, DisconnectReason::ClientDisconnected)),
            ClientMessage::Publish { name, has_audio, has_video, video_type } => {
                let req = PublishRequest { name, has_audio, has_video, video_type, ..PublishRequest::default() };
                self.publish(from, req, req_id, now_ms)
            }
            ClientMessage::Unpublish { stream_id } => {
                let s = self.streams.get(&stream_id).ok_or_else(|| not_found("stream"))?;
                if s.info.connection_id != from {
                    return Err(RoomError::new(
                        ErrorCode::Forbidden,
                        "only the publisher may unpublish a stream (moderators: forceUnpublish)",
                    ));
                }
                Ok(ack(self.destroy_stream(&stream_id, StreamDestroyedReason::ClientUnpublished)))
            }
            ClientMessage::SetStreamProperty { stream_id, has_audio, has_video } => {
                let s = self.streams.get_mut(&stream_id).ok_or_else(|| not_found("stream"))?;
                if s.info.connection_id != from {
                    return Err(RoomError::new(ErrorCode::Forbidden, "only the publisher may change its stream"));
                }
                let mut changes = Vec::new();
                if let Some(v) = has_audio.filter(|v| *v != s.info.has_audio) {
                    s.info.has_audio = v;
                    changes.push((StreamProperty::HasAudio, v));
                }
                if let Some(v) = has_video.filter(|v| *v != s.info.has_video) {
                    s.info.has_video = v;
                    changes.push((StreamProperty::HasVideo, v));
                }
                let to = self.all_except(None);
                let mut out = Vec::new();
                for (property, v) in changes {
                    if property == StreamProperty::HasAudio {
                        // Muted audio is not forwarded at all (nor recorded).
                        out.extend(self.media(MediaIntent::AudioForwarding { stream: stream_id.clone(), enabled: v }));
                    }
                    let msg = ServerMessage::StreamPropertyChanged {
                        stream_id: stream_id.clone(),
                        property,
                        new_value: v.into(),
                    };
                    out.push(Output::Send { to: to.clone(), msg });
                }
                Ok(ack(out))
            }
            ClientMessage::Subscribe { stream_id } => Ok(ack(self.subscribe(from, &stream_id, None)?)),
            ClientMessage::Unsubscribe { stream_id } => Ok(ack(self.unsubscribe(from, &stream_id, None)?)),
            ClientMessage::Sdp { to, stream_id, kind: SdpKind::Answer, sdp } => {
                if sdp.len() > MAX_SDP_BYTES {
                    return Err(RoomError::new(ErrorCode::InvalidArgument, "SDP too large"));
                }
                self.check_relay(from, &to, &stream_id)?;
                let mut out = vec![Output::Send {
                    to: vec![to.clone()],
                    msg: ServerMessage::Sdp {
                        from: from.to_owned(),
                        stream_id: stream_id.clone(),
                        kind: SdpKind::Answer,
                        sdp,
                    },
                }];
                // Relayed: the publisher answering a subscriber is the media subscription.
                if self.streams.get(&stream_id).is_some_and(|s| s.info.connection_id == from) {
                    out.extend(self.confirm_subscription(&to, &stream_id));
                }
                Ok(out)
            }
            ClientMessage::Signal { to, signal_type, data } => {
                if !role.can_signal() {
                    return Err(forbidden("send signals", role));
                }
                Ok(ack(self.signal(Some(from), to.as_deref(), signal_type, data)?))
            }
            ClientMessage::ForceDisconnect { connection_id } => {
                if !role.can_moderate() {
                    return Err(forbidden("force-disconnect others", role));
                }
                Ok(ack(self.force_disconnect(&connection_id)?))
            }
            ClientMessage::ForceUnpublish { stream_id } => {
                if !role.can_moderate() {
                    return Err(forbidden("force-unpublish streams", role));
                }
                Ok(ack(self.force_unpublish(&stream_id)?))
            }
            ClientMessage::ForceMute { stream_id } => {
                if !role.can_moderate() {
                    return Err(forbidden("force-mute streams", role));
                }
                Ok(ack(self.mute_stream(&stream_id)?))
            }
            ClientMessage::ForceMuteAll { excluded_stream_ids } => {
                if !role.can_moderate() {
                    return Err(forbidden("force-mute streams", role));
                }
                Ok(ack(self.mute_all(true, excluded_stream_ids)))
            }
            ClientMessage::DisableForceMute => {
                if !role.can_moderate() {
                    return Err(forbidden("change force-mute", role));
                }
                Ok(ack(self.mute_all(false, Vec::new())))
            }
            ClientMessage::Sdp { to, stream_id, kind, sdp } => {
                if sdp.len() > MAX_SDP_BYTES {
                    return Err(RoomError::new(ErrorCode::InvalidArgument, "SDP too large"));
                }
                self.check_relay(from, &to, &stream_id)?;
                Ok(vec![Output::Send {
                    to: vec![to],
                    msg: ServerMessage::Sdp { from: from.to_owned(), stream_id, kind, sdp },
                }])
            }
            ClientMessage::SetPreferredResolution { stream_id, width, height } => {
                self.check_subscribed(from, &stream_id)?;
                let dims = self.streams.get(&stream_id).and_then(|s| s.info.video_dimensions);
                let layer = conclave_core::signal::layer_for_size(width, height, dims);
                let receiver = Receiver::Connection(from.to_owned());
                Ok(ack(self
                    .media(MediaIntent::PreferredLayer { receiver, stream: stream_id, layer })
                    .into_iter()
                    .collect()))
            }
            ClientMessage::SetPreferredFrameRate { stream_id, frame_rate } => {
                self.check_subscribed(from, &stream_id)?;
                let max = conclave_core::signal::temporal_layer_for_frame_rate(frame_rate);
                let receiver = Receiver::Connection(from.to_owned());
                Ok(ack(self
                    .media(MediaIntent::MaxTemporalLayer { receiver, stream: stream_id, max })
                    .into_iter()
                    .collect()))
            }
            ClientMessage::MediaOffer { .. } | ClientMessage::MediaAnswer { .. } => Err(RoomError::new(
                ErrorCode::RoutedOnly,
                "media negotiation needs a routed session on a server with an SFU",
            )),
            ClientMessage::Ice { to, stream_id, candidate } => {
                self.check_relay(from, &to, &stream_id)?;
                Ok(vec![Output::Send {
                    to: vec![to],
                    msg: ServerMessage::Ice { from: from.to_owned(), stream_id, candidate },
                }])
            }
        }
    }

    /// A signal from a connection (`from`) or from the REST API (`None`).
    pub fn signal(
        &mut self,
        from: Option<&str>,
        to: Option<&str>,
        signal_type: String,
        data: String,
    ) -> Result<Vec<Output>, RoomError> {
        check_signal(&signal_type, &data)?;
        let recipients = match to {
            Some(target) => {
                self.conn(target)?;
                vec![target.to_owned()]
            }
            None => self.all_except(None),
        };
        Ok(vec![Output::Send {
            to: recipients,
            msg: ServerMessage::Signal { from: from.map(str::to_owned), signal_type, data },
        }])
    }

    pub fn force_disconnect(&mut self, target: &str) -> Result<Vec<Output>, RoomError> {
        self.conn(target)?;
        Ok(self.leave(target, DisconnectReason::ForceDisconnected))
    }

    pub fn force_unpublish(&mut self, stream_id: &str) -> Result<Vec<Output>, RoomError> {
        if !self.streams.contains_key(stream_id) {
            return Err(not_found("stream"));
        }
        Ok(self.destroy_stream(stream_id, StreamDestroyedReason::ForceUnpublished))
    }

    pub fn mute_stream(&mut self, stream_id: &str) -> Result<Vec<Output>, RoomError> {
        let s = self.streams.get_mut(stream_id).ok_or_else(|| not_found("stream"))?;
        let publisher = s.info.connection_id.clone();
        let mut out = vec![Output::Send {
            to: vec![publisher],
            msg: ServerMessage::MuteForced { stream_id: stream_id.to_owned() },
        }];
        out.extend(self.media(MediaIntent::AudioForwarding { stream: stream_id.to_owned(), enabled: false }));
        let s = self.streams.get_mut(stream_id).expect("found above");
        if s.info.has_audio {
            s.info.has_audio = false;
            out.push(Output::Send {
                to: self.all_except(None),
                msg: ServerMessage::StreamPropertyChanged {
                    stream_id: stream_id.to_owned(),
                    property: StreamProperty::HasAudio,
                    new_value: false.into(),
                },
            });
        }
        Ok(out)
    }

    /// Force-mute every stream but `excluded` (also those published later), or switch it off.
    pub fn mute_all(&mut self, active: bool, excluded: Vec<String>) -> Vec<Output> {
        let mut out = vec![Output::Send { to: self.all_except(None), msg: ServerMessage::MuteAllChanged { active } }];
        if !active {
            self.mute_all = None;
            return out;
        }
        let excluded: BTreeSet<StreamId> = excluded.into_iter().collect();
        let targets: Vec<StreamId> = self.streams.keys().filter(|k| !excluded.contains(*k)).cloned().collect();
        self.mute_all = Some(excluded);
        for sid in targets {
            out.extend(self.mute_stream(&sid).unwrap_or_default());
        }
        out
    }

    /// Replaces layout class lists; all IDs are checked before anything changes.
    pub fn set_class_lists(&mut self, items: Vec<(StreamId, Vec<String>)>) -> Result<Vec<Output>, RoomError> {
        if let Some((missing, _)) = items.iter().find(|(id, _)| !self.streams.contains_key(id)) {
            return Err(not_found(&format!("stream {missing}")));
        }
        let to = self.all_except(None);
        let mut out = Vec::new();
        for (id, classes) in items {
            let s = self.streams.get_mut(&id).expect("checked above");
            s.info.layout_class_list = classes.clone();
            out.push(Output::Event(SessionEvent::StreamClassesChanged(s.info.clone())));
            out.push(Output::Send {
                to: to.clone(),
                msg: ServerMessage::StreamPropertyChanged {
                    stream_id: id,
                    property: StreamProperty::LayoutClassList,
                    new_value: classes.into(),
                },
            });
        }
        Ok(out)
    }

    /// A server-originated message for everyone connected.
    pub fn broadcast(&mut self, msg: ServerMessage) -> Vec<Output> {
        vec![Output::Send { to: self.all_except(None), msg }]
    }

    /// Ends the session: everyone leaves with `sessionEnded`, and nobody joins again.
    pub fn end(&mut self) -> Vec<Output> {
        self.ended = true;
        let ids: Vec<ConnId> = self.connections.values().cloned().collect();
        ids.iter().flat_map(|id| self.leave(id, DisconnectReason::SessionEnded)).collect()
    }
}

mod streams;
pub use streams::PublishRequest;

#[cfg(test)]
mod tests;
