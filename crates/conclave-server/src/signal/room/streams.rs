//! The room's streams and subscriptions: publishing (announced at once, or when the media
//! reaches the SFU), subscribing (with or without a client-chosen subscriber ID), and the
//! relaying of SDP/JSEP between a relayed stream's publisher and its subscribers.
//!
//! Owns: who may publish, subscribe and negotiate what, for every wire protocol. Must not
//! touch: sockets, the SFU or the clock (the hub applies the outputs; time comes in).

use super::{
    ConnId, MediaIntent, Output, Receiver, Room, RoomError, SessionEvent, Stream, StreamId, forbidden, is_client_id,
    not_found,
};
use conclave_core::signal::{
    ErrorCode, MAX_SDP_BYTES, MAX_STREAM_NAME_CHARS, ServerMessage, StreamInfo, VideoDimensions, VideoType,
};
use conclave_core::wire::MediaMode;
use std::collections::{BTreeMap, BTreeSet};

/// What a publisher asks for.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// A stream ID the client chose (OpenTok.js does); `None`: the room draws one.
    pub stream_id: Option<StreamId>,
    pub name: Option<String>,
    pub has_audio: bool,
    pub has_video: bool,
    pub video_type: VideoType,
    pub video_dimensions: Option<VideoDimensions>,
    /// Announce the stream only when [`Room::media_ready`] says its media arrived.
    pub announce_on_media: bool,
    /// Subscribers with their own peer get audio only while their bandwidth is too low for
    /// video (OpenTok.js's `subscriberAudioFallbackEnabled`).
    pub subscriber_audio_fallback: bool,
}

impl Default for PublishRequest {
    fn default() -> Self {
        PublishRequest {
            stream_id: None,
            name: None,
            has_audio: true,
            has_video: true,
            video_type: VideoType::Camera,
            video_dimensions: None,
            announce_on_media: false,
            subscriber_audio_fallback: false,
        }
    }
}

/// Longest JSEP content passed on (an SDP with its envelope).
const MAX_JSEP_BYTES: usize = MAX_SDP_BYTES + 1024;

impl Room {
    /// Publishes a stream of `from`. Announced at once (the publisher gets `published`, the
    /// others `streamCreated`), or later by [`Room::media_ready`].
    pub fn publish(
        &mut self,
        from: &str,
        req: PublishRequest,
        req_id: Option<u64>,
        now_ms: u64,
    ) -> Result<Vec<Output>, RoomError> {
        let role = self.conn(from)?.role;
        if !role.can_publish() {
            return Err(forbidden("publish", role));
        }
        let name = req.name.unwrap_or_default();
        if name.chars().count() > MAX_STREAM_NAME_CHARS {
            return Err(RoomError::new(
                ErrorCode::InvalidArgument,
                format!("stream names are limited to {MAX_STREAM_NAME_CHARS} characters"),
            ));
        }
        let stream_id = match req.stream_id {
            Some(id) if !is_client_id(&id) => {
                return Err(RoomError::new(ErrorCode::InvalidArgument, "stream IDs are 1-64 letters, digits, - or _"));
            }
            Some(id) if self.streams.contains_key(&id) => {
                return Err(RoomError::new(ErrorCode::InvalidArgument, "that stream ID is taken"));
            }
            Some(id) => id,
            None => self.ids.next_id(),
        };
        let info = StreamInfo {
            stream_id: stream_id.clone(),
            connection_id: from.to_owned(),
            name,
            has_audio: req.has_audio,
            has_video: req.has_video,
            video_type: req.video_type,
            layout_class_list: self.conn(from)?.layout_classes.clone(),
            created_at: now_ms,
            subscriber_count: 0,
            video_dimensions: req.video_dimensions,
        };
        self.streams.insert(
            stream_id.clone(),
            Stream {
                info,
                requested: BTreeSet::new(),
                subscribers: BTreeSet::new(),
                subscriber_ids: BTreeMap::new(),
                announced: false,
                subscriber_audio_fallback: req.subscriber_audio_fallback,
            },
        );
        if req.announce_on_media {
            return Ok(req_id.map(|id| self.ack_to(from, id)).into_iter().collect());
        }
        Ok(self.announce(&stream_id, req_id))
    }

    fn ack_to(&self, conn: &str, id: u64) -> Output {
        Output::Send { to: vec![conn.to_owned()], msg: ServerMessage::Ack { id } }
    }

    /// A stream published with `announce_on_media` now has media at the SFU: everyone learns
    /// of it (the publisher with `published`). Nothing happens twice.
    pub fn media_ready(&mut self, stream_id: &str) -> Vec<Output> {
        match self.streams.get(stream_id) {
            Some(s) if !s.announced => self.announce(stream_id, None),
            _ => Vec::new(),
        }
    }

    fn announce(&mut self, stream_id: &str, req_id: Option<u64>) -> Vec<Output> {
        let muted = self.mute_all.as_ref().is_some_and(|excluded| !excluded.contains(stream_id));
        let Some(s) = self.streams.get_mut(stream_id) else { return Vec::new() };
        s.announced = true;
        let had_audio = s.info.has_audio;
        s.info.has_audio &= !muted;
        let info = s.info.clone();
        let from = info.connection_id.clone();
        let mut out = vec![
            Output::Send { to: vec![from.clone()], msg: ServerMessage::Published { id: req_id, stream: info.clone() } },
            Output::Send {
                to: self.all_except(Some(&from)),
                msg: ServerMessage::StreamCreated { stream: info.clone() },
            },
            Output::Event(SessionEvent::StreamCreated(info)),
        ];
        if muted && had_audio {
            out.extend(self.media(MediaIntent::AudioForwarding { stream: stream_id.to_owned(), enabled: false }));
            out.push(Output::Send {
                to: vec![from],
                msg: ServerMessage::MuteForced { stream_id: stream_id.to_owned() },
            });
        }
        out
    }

    fn announced(&self, stream_id: &str) -> Result<&Stream, RoomError> {
        self.streams.get(stream_id).filter(|s| s.announced).ok_or_else(|| not_found("stream"))
    }

    /// `from` subscribes to a stream, optionally under its own subscriber ID (one per
    /// subscription; OpenTok.js). Relayed: the publisher is told, to make an offer.
    pub fn subscribe(
        &mut self,
        from: &str,
        stream_id: &str,
        subscriber_id: Option<&str>,
    ) -> Result<Vec<Output>, RoomError> {
        let role = self.conn(from)?.role;
        if !role.can_subscribe() {
            return Err(forbidden("subscribe", role));
        }
        let s = self.announced(stream_id)?;
        if s.info.connection_id == from {
            return Err(RoomError::new(ErrorCode::InvalidArgument, "a client does not subscribe to its own stream"));
        }
        if let Some(sub) = subscriber_id {
            if !is_client_id(sub) {
                return Err(RoomError::new(
                    ErrorCode::InvalidArgument,
                    "subscriber IDs are 1-64 letters, digits, - or _",
                ));
            }
            if s.subscriber_ids.contains_key(sub) {
                return Err(RoomError::new(ErrorCode::InvalidArgument, "that subscriber ID is taken"));
            }
        }
        let publisher = s.info.connection_id.clone();
        let relayed = self.meta.media_mode == MediaMode::Relayed;
        let s = self.streams.get_mut(stream_id).expect("checked above");
        // Counted once its media is set up (see `confirm_subscription`).
        s.requested.insert(from.to_owned());
        if let Some(sub) = subscriber_id {
            s.subscriber_ids.insert(sub.to_owned(), from.to_owned());
        }
        if let Some((_, c)) = self.by_id.get_mut(from) {
            c.subscriptions.insert(stream_id.to_owned());
        }
        let (conn, stream) = (from.to_owned(), stream_id.to_owned());
        let audio_fallback = self.streams.get(stream_id).is_some_and(|s| s.subscriber_audio_fallback);
        Ok(match subscriber_id {
            Some(sub) if relayed => vec![Output::Send {
                to: vec![publisher],
                msg: ServerMessage::SubscriberAdded {
                    stream_id: stream,
                    subscriber_id: sub.to_owned(),
                    connection_id: conn,
                },
            }],
            Some(sub) => {
                let subscriber = sub.to_owned();
                vec![Output::Media(MediaIntent::OpenSubscriberPeer { conn, stream, subscriber, audio_fallback })]
            }
            None => self.media(MediaIntent::Subscribe { conn, stream }).into_iter().collect(),
        })
    }

    /// Ends one subscription (one subscriber ID, or the connection's subscription).
    pub fn unsubscribe(
        &mut self,
        from: &str,
        stream_id: &str,
        subscriber_id: Option<&str>,
    ) -> Result<Vec<Output>, RoomError> {
        let s = self.streams.get_mut(stream_id).ok_or_else(|| not_found("stream"))?;
        let mut out = Vec::new();
        if let Some(sub) = subscriber_id {
            if s.subscriber_ids.get(sub).map(String::as_str) != Some(from) {
                return Err(not_found("subscriber"));
            }
            s.subscriber_ids.remove(sub);
            out.extend(self.media(MediaIntent::CloseSubscriberPeer { subscriber: sub.to_owned() }));
            let s = self.streams.get_mut(stream_id).expect("found above");
            out.push(Output::Send {
                to: vec![s.info.connection_id.clone()],
                msg: ServerMessage::SubscriberRemoved {
                    stream_id: stream_id.to_owned(),
                    subscriber_id: sub.to_owned(),
                },
            });
            // The connection may hold other subscriptions to the same stream.
            if s.subscriber_ids.values().any(|c| c == from) {
                return Ok(out);
            }
        }
        if let Some((_, c)) = self.by_id.get_mut(from) {
            c.subscriptions.remove(stream_id);
        }
        if subscriber_id.is_none() {
            out.extend(self.media(MediaIntent::Unsubscribe { conn: from.to_owned(), stream: stream_id.to_owned() }));
        }
        let mut removed = self.remove_subscriber(stream_id, from);
        // the unsubscriber learns the new count too
        if let Some(Output::Send { to, .. }) = removed.first_mut() {
            to.push(from.to_owned());
        }
        out.extend(removed);
        Ok(out)
    }

    /// `from` must have asked for the stream.
    pub fn check_subscribed(&self, from: &str, stream_id: &str) -> Result<(), RoomError> {
        let s = self.streams.get(stream_id).ok_or_else(|| not_found("stream"))?;
        if !s.requested.contains(from) {
            return Err(RoomError::new(ErrorCode::InvalidArgument, "subscribe to the stream first"));
        }
        Ok(())
    }

    /// A subscription with its own peer wants a size (`Some((0, 0))`: no preference; read
    /// against the publisher's own size) or a frame rate ceiling (`Some(None)`: all layers);
    /// `None` leaves that wish unchanged.
    pub fn subscriber_preferences(
        &mut self,
        from: &str,
        stream_id: &str,
        subscriber_id: &str,
        size: Option<(Option<u32>, Option<u32>)>,
        max_temporal: Option<Option<u8>>,
    ) -> Result<Vec<Output>, RoomError> {
        if self.subscriber_of(stream_id, subscriber_id).map(String::as_str) != Some(from) {
            return Err(not_found("subscriber"));
        }
        let dims = self.streams.get(stream_id).and_then(|s| s.info.video_dimensions);
        let layer = size.map(|(w, h)| conclave_core::signal::layer_for_size(w, h, dims));
        let receiver = Receiver::Subscriber(subscriber_id.to_owned());
        let stream = stream_id.to_owned();
        let layer = layer.and_then(|layer| {
            self.media(MediaIntent::PreferredLayer { receiver: receiver.clone(), stream: stream.clone(), layer })
        });
        let temporal = max_temporal.and_then(|max| self.media(MediaIntent::MaxTemporalLayer { receiver, stream, max }));
        Ok(layer.into_iter().chain(temporal).collect())
    }

    /// Subscriber `subscriber_id` of `from` pauses or resumes its video (`video`) or audio.
    pub fn subscriber_receives(
        &mut self,
        from: &str,
        stream_id: &str,
        subscriber_id: &str,
        video: bool,
        receive: bool,
    ) -> Result<Vec<Output>, RoomError> {
        if self.subscriber_of(stream_id, subscriber_id).map(String::as_str) != Some(from) {
            return Err(not_found("subscriber"));
        }
        let subscriber = subscriber_id.to_owned();
        Ok(self.media(MediaIntent::SubscriberReceives { subscriber, video, receive }).into_iter().collect())
    }

    /// The connection a subscriber ID of a stream belongs to.
    pub fn subscriber_of(&self, stream_id: &str, subscriber_id: &str) -> Option<&ConnId> {
        self.streams.get(stream_id)?.subscriber_ids.get(subscriber_id)
    }

    /// The SFU moved subscriber `subscriber_id` (a subscription with its own peer) to audio
    /// only, or back to video: its client is told, if the subscription still exists.
    pub fn audio_fallback(&self, subscriber_id: &str, audio_only: bool) -> Vec<Output> {
        let found = self.streams.iter().find_map(|(id, s)| Some((id, s.subscriber_ids.get(subscriber_id)?)));
        let Some((stream_id, conn)) = found else { return Vec::new() };
        let msg = ServerMessage::SubscriberAudioFallback {
            stream_id: stream_id.clone(),
            subscriber_id: subscriber_id.to_owned(),
            audio_only,
        };
        vec![Output::Send { to: vec![conn.clone()], msg }]
    }

    /// Relayed sessions: passes a JSEP message between a stream's publisher and the
    /// subscriber `subscriber_id`, in either direction and only between those two. A
    /// subscriber's `answer` makes its subscription count.
    pub fn relay_jsep(
        &mut self,
        from: &str,
        stream_id: &str,
        subscriber_id: &str,
        method: &str,
        content: serde_json::Value,
    ) -> Result<Vec<Output>, RoomError> {
        if self.meta.media_mode != MediaMode::Relayed {
            return Err(RoomError::new(
                ErrorCode::RelayedOnly,
                "peer-to-peer negotiation is only for relayed sessions",
            ));
        }
        if content.to_string().len() > MAX_JSEP_BYTES {
            return Err(RoomError::new(ErrorCode::MessageTooLarge, "SDP too large"));
        }
        let s = self.announced(stream_id)?;
        let subscriber = s.subscriber_ids.get(subscriber_id).ok_or_else(|| not_found("subscriber"))?.clone();
        let publisher = s.info.connection_id.clone();
        let to = if from == publisher {
            subscriber.clone()
        } else if from == subscriber {
            publisher
        } else {
            return Err(RoomError::new(
                ErrorCode::Forbidden,
                "SDP and ICE only flow between a stream's publisher and its subscribers",
            ));
        };
        let mut out = vec![Output::Send {
            to: vec![to],
            msg: ServerMessage::Jsep {
                from: from.to_owned(),
                stream_id: stream_id.to_owned(),
                subscriber_id: subscriber_id.to_owned(),
                method: method.to_owned(),
                content,
            },
        }];
        if from == subscriber && method == "answer" {
            out.extend(self.confirm_subscription(&subscriber, stream_id));
        }
        Ok(out)
    }

    /// Routed sessions: may `from` negotiate media for `stream_id` (its own stream) or, without
    /// a stream, receive media (any role but publisheronly)?
    pub fn check_media(&self, from: &str, stream_id: Option<&str>) -> Result<(), RoomError> {
        if self.meta.media_mode != MediaMode::Routed {
            return Err(RoomError::new(ErrorCode::RoutedOnly, "relayed sessions negotiate peer to peer (sdp/ice)"));
        }
        let role = self.conn(from)?.role;
        match stream_id {
            Some(id) => {
                let s = self.streams.get(id).ok_or_else(|| not_found("stream"))?;
                if s.info.connection_id != from {
                    return Err(RoomError::new(ErrorCode::Forbidden, "only a stream's publisher negotiates its media"));
                }
                Ok(())
            }
            None if role.can_subscribe() => Ok(()),
            None => Err(forbidden("receive media", role)),
        }
    }

    /// Relayed sessions only: the two ends must be the stream's publisher and one of its
    /// subscribers, so nobody can push SDP at arbitrary participants.
    pub(super) fn check_relay(&self, from: &str, to: &str, stream_id: &str) -> Result<(), RoomError> {
        if self.meta.media_mode != MediaMode::Relayed {
            return Err(RoomError::new(
                ErrorCode::RelayedOnly,
                "peer-to-peer negotiation is only for relayed sessions",
            ));
        }
        let s = self.streams.get(stream_id).ok_or_else(|| not_found("stream"))?;
        let publisher = s.info.connection_id.as_str();
        let ok = (from == publisher && s.requested.contains(to)) || (to == publisher && s.requested.contains(from));
        if !ok {
            return Err(RoomError::new(
                ErrorCode::Forbidden,
                "SDP and ICE only flow between a stream's publisher and its subscribers",
            ));
        }
        Ok(())
    }

    /// The subscriber's media is set up: now it counts, and everyone learns the new count.
    pub fn confirm_subscription(&mut self, conn: &str, stream_id: &str) -> Vec<Output> {
        let Some(s) = self.streams.get_mut(stream_id) else { return Vec::new() };
        if !s.requested.contains(conn) || !s.subscribers.insert(conn.to_owned()) {
            return Vec::new();
        }
        s.info.subscriber_count = s.subscribers.len() as u32;
        let count = s.info.subscriber_count;
        vec![Output::Send {
            to: self.all_except(None),
            msg: ServerMessage::SubscriberCount { stream_id: stream_id.to_owned(), count },
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::super::{IdSource, JoinRequest, SessionMeta};
    use super::*;
    use conclave_core::Role;
    use conclave_core::signal::StreamDestroyedReason;

    struct Counter(u32);
    impl IdSource for Counter {
        fn next_id(&mut self) -> String {
            self.0 += 1;
            format!("id{}", self.0)
        }
    }

    fn room(mode: MediaMode) -> Room {
        let meta =
            SessionMeta { session_id: "1_s".into(), api_key: "1".into(), media_mode: mode, max_participants: None };
        Room::new(meta, Box::new(Counter(0)))
    }

    fn join_as(r: &mut Room, id: &str) -> Result<ConnId, RoomError> {
        let req = JoinRequest {
            role: Role::Moderator,
            data: String::new(),
            layout_classes: vec![],
            token_fingerprint: [0; 32],
            token_expires_at: 9,
            connection_id: Some(id.into()),
        };
        r.join(req, 1).map(|(c, _)| c)
    }

    fn publish(r: &mut Room, from: &str, id: &str, on_media: bool) -> Result<Vec<Output>, RoomError> {
        let req =
            PublishRequest { stream_id: Some(id.into()), announce_on_media: on_media, ..PublishRequest::default() };
        r.publish(from, req, None, 2)
    }

    fn to(out: &[Output], conn: &str) -> Vec<ServerMessage> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { to, msg } if to.iter().any(|t| t == conn) => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn client_chosen_ids_are_checked_and_never_name_someone_elses() {
        let mut r = room(MediaMode::Routed);
        assert_eq!(join_as(&mut r, "c-1").unwrap(), "c-1");
        assert_eq!(join_as(&mut r, "c-1").unwrap_err().code, ErrorCode::InvalidArgument, "taken");
        assert_eq!(join_as(&mut r, "c/../x").unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(join_as(&mut r, &"a".repeat(65)).unwrap_err().code, ErrorCode::InvalidArgument);
        join_as(&mut r, "c-2").unwrap();
        publish(&mut r, "c-1", "st-1", false).unwrap();
        assert_eq!(publish(&mut r, "c-2", "st-1", false).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(r.stream("st-1").unwrap().connection_id, "c-1", "the first owner keeps it");
    }

    #[test]
    fn a_stream_announced_on_media_is_unknown_until_its_media_arrives() {
        let mut r = room(MediaMode::Routed);
        let (a, b) = (join_as(&mut r, "a").unwrap(), join_as(&mut r, "b").unwrap());
        assert!(publish(&mut r, &a, "st", true).unwrap().is_empty(), "nobody hears of it yet");
        assert!(r.streams().is_empty() && r.snapshot_for(&b).1.is_empty());
        assert_eq!(r.subscribe(&b, "st", Some("sub-1")).unwrap_err().code, ErrorCode::NotFound);
        let out = r.media_ready("st");
        assert!(matches!(&to(&out, &a)[..], [ServerMessage::Published { stream, .. }] if stream.stream_id == "st"));
        assert!(matches!(&to(&out, &b)[..], [ServerMessage::StreamCreated { stream }] if stream.stream_id == "st"));
        assert!(out.iter().any(|o| matches!(o, Output::Event(SessionEvent::StreamCreated(_)))));
        assert!(r.media_ready("st").is_empty(), "announced once");
        r.subscribe(&b, "st", Some("sub-1")).unwrap();
        assert_eq!(r.subscriber_of("st", "sub-1"), Some(&b));
    }

    #[test]
    fn an_unannounced_stream_that_goes_away_only_tells_its_publisher() {
        let mut r = room(MediaMode::Routed);
        let (a, b) = (join_as(&mut r, "a").unwrap(), join_as(&mut r, "b").unwrap());
        publish(&mut r, &a, "st", true).unwrap();
        let out = r.force_unpublish("st").unwrap();
        assert!(to(&out, &b).is_empty());
        assert!(matches!(
            &to(&out, &a)[..],
            [ServerMessage::StreamDestroyed { reason: StreamDestroyedReason::ForceUnpublished, .. }]
        ));
        assert!(!out.iter().any(|o| matches!(o, Output::Event(_))), "no webhook for a stream nobody saw");
    }

    #[test]
    fn relayed_jsep_flows_only_between_a_stream_and_its_own_subscriber() {
        let mut r = room(MediaMode::Relayed);
        let (a, b, c) = (join_as(&mut r, "a").unwrap(), join_as(&mut r, "b").unwrap(), join_as(&mut r, "c").unwrap());
        publish(&mut r, &a, "st", false).unwrap();
        let out = r.subscribe(&b, "st", Some("sub-b")).unwrap();
        assert!(
            matches!(&to(&out, &a)[..], [ServerMessage::SubscriberAdded { subscriber_id, connection_id, .. }] if subscriber_id == "sub-b" && connection_id == "b")
        );
        let offer = serde_json::json!({"type": "offer", "sdp": "v=0"});
        let out = r.relay_jsep(&a, "st", "sub-b", "offer", offer.clone()).unwrap();
        assert!(
            matches!(&to(&out, &b)[..], [ServerMessage::Jsep { from, method, .. }] if from == "a" && method == "offer")
        );
        let out = r.relay_jsep(&b, "st", "sub-b", "answer", serde_json::json!({"type": "answer"})).unwrap();
        assert!(matches!(to(&out, &a)[0], ServerMessage::Jsep { .. }));
        assert!(
            to(&out, &c).iter().any(|m| matches!(m, ServerMessage::SubscriberCount { count: 1, .. })),
            "the answer counts"
        );
        assert_eq!(r.relay_jsep(&c, "st", "sub-b", "offer", offer.clone()).unwrap_err().code, ErrorCode::Forbidden);
        assert_eq!(r.relay_jsep(&a, "st", "sub-x", "offer", offer.clone()).unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(r.subscribe(&c, "st", Some("sub-b")).unwrap_err().code, ErrorCode::InvalidArgument, "taken");
        assert_eq!(r.unsubscribe(&c, "st", Some("sub-b")).unwrap_err().code, ErrorCode::NotFound, "not c's");
        let big = serde_json::json!({"sdp": "x".repeat(MAX_JSEP_BYTES)});
        assert_eq!(r.relay_jsep(&a, "st", "sub-b", "offer", big).unwrap_err().code, ErrorCode::MessageTooLarge);
    }

    #[test]
    fn jsep_is_not_relayed_in_routed_sessions_and_a_leaving_subscriber_is_dropped_at_the_publisher() {
        let mut r = room(MediaMode::Routed);
        let (a, b) = (join_as(&mut r, "a").unwrap(), join_as(&mut r, "b").unwrap());
        publish(&mut r, &a, "st", false).unwrap();
        r.subscribe(&b, "st", Some("sub-b")).unwrap();
        let err = r.relay_jsep(&a, "st", "sub-b", "offer", serde_json::json!({})).unwrap_err();
        assert_eq!(err.code, ErrorCode::RelayedOnly);
        let out = r.leave(&b, conclave_core::signal::DisconnectReason::NetworkDisconnected);
        assert!(
            to(&out, &a).iter().any(
                |m| matches!(m, ServerMessage::SubscriberRemoved { subscriber_id, .. } if subscriber_id == "sub-b")
            )
        );
        assert_eq!(r.subscriber_of("st", "sub-b"), None);
    }

    fn intents(out: &[Output]) -> Vec<MediaIntent> {
        out.iter()
            .filter_map(|o| match o {
                Output::Media(i) => Some(i.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn routed_subscriptions_become_media_intents_in_the_order_asked() {
        let mut r = room(MediaMode::Routed);
        let (a, b) = (join_as(&mut r, "a").unwrap(), join_as(&mut r, "b").unwrap());
        publish(&mut r, &a, "st", false).unwrap();
        let mut out = r.subscribe(&b, "st", None).unwrap();
        out.extend(r.unsubscribe(&b, "st", None).unwrap());
        out.extend(r.subscribe(&b, "st", None).unwrap());
        let sub = MediaIntent::Subscribe { conn: b.clone(), stream: "st".into() };
        let unsub = MediaIntent::Unsubscribe { conn: b.clone(), stream: "st".into() };
        assert_eq!(intents(&out), [sub.clone(), unsub, sub]);
        let out = r.subscribe(&b, "st", Some("sub-1")).unwrap();
        let open = MediaIntent::OpenSubscriberPeer {
            conn: b.clone(),
            stream: "st".into(),
            subscriber: "sub-1".into(),
            audio_fallback: false,
        };
        assert_eq!(intents(&out), [open]);
        let out = r.unsubscribe(&b, "st", Some("sub-1")).unwrap();
        assert_eq!(intents(&out), [MediaIntent::CloseSubscriberPeer { subscriber: "sub-1".into() }]);
    }

    #[test]
    fn audio_fallback_follows_the_publishers_choice_and_reaches_only_that_subscriber() {
        let mut r = room(MediaMode::Routed);
        let (a, b) = (join_as(&mut r, "a").unwrap(), join_as(&mut r, "b").unwrap());
        let req = PublishRequest {
            stream_id: Some("st".into()),
            subscriber_audio_fallback: true,
            ..PublishRequest::default()
        };
        r.publish(&a, req, None, 1).unwrap();
        let out = r.subscribe(&b, "st", Some("sub-1")).unwrap();
        assert!(matches!(&intents(&out)[..], [MediaIntent::OpenSubscriberPeer { audio_fallback: true, .. }]));
        let out = r.audio_fallback("sub-1", true);
        let expected = ServerMessage::SubscriberAudioFallback {
            stream_id: "st".into(),
            subscriber_id: "sub-1".into(),
            audio_only: true,
        };
        assert!(matches!(&out[..], [Output::Send { to, msg }] if *to == [b.clone()] && *msg == expected));
        let out = r.subscriber_receives(&b, "st", "sub-1", true, false).unwrap();
        let pause = MediaIntent::SubscriberReceives { subscriber: "sub-1".into(), video: true, receive: false };
        assert_eq!(intents(&out), [pause]);
        assert!(r.subscriber_receives(&a, "st", "sub-1", true, false).is_err(), "only its own subscriber");
        r.unsubscribe(&b, "st", Some("sub-1")).unwrap();
        assert!(r.audio_fallback("sub-1", false).is_empty(), "a gone subscription hears nothing");
        assert!(r.audio_fallback("sub-x", true).is_empty());
    }

    #[test]
    fn preferences_name_the_right_receiver() {
        let mut r = room(MediaMode::Routed);
        let (a, b) = (join_as(&mut r, "a").unwrap(), join_as(&mut r, "b").unwrap());
        publish(&mut r, &a, "st", false).unwrap();
        r.subscribe(&b, "st", Some("sub-1")).unwrap();
        let out = r.subscriber_preferences(&b, "st", "sub-1", Some((Some(100), None)), Some(Some(0))).unwrap();
        let receiver = Receiver::Subscriber("sub-1".into());
        assert_eq!(
            intents(&out),
            [
                MediaIntent::PreferredLayer { receiver: receiver.clone(), stream: "st".into(), layer: Some("l") },
                MediaIntent::MaxTemporalLayer { receiver, stream: "st".into(), max: Some(0) },
            ]
        );
        assert_eq!(
            r.subscriber_preferences(&a, "st", "sub-1", Some((None, None)), None).unwrap_err().code,
            ErrorCode::NotFound
        );
        r.subscribe(&b, "st", None).unwrap();
        let msg = conclave_core::signal::ClientMessage::SetPreferredResolution {
            stream_id: "st".into(),
            width: Some(320),
            height: Some(180),
        };
        let out = r.handle(&b, msg, None, 3).unwrap();
        let receiver = Receiver::Connection(b.clone());
        assert_eq!(intents(&out), [MediaIntent::PreferredLayer { receiver, stream: "st".into(), layer: Some("l") }]);
    }

    #[test]
    fn mute_and_unmute_reach_the_sfu_as_audio_forwarding() {
        let mut r = room(MediaMode::Routed);
        let a = join_as(&mut r, "a").unwrap();
        publish(&mut r, &a, "st", false).unwrap();
        let off = MediaIntent::AudioForwarding { stream: "st".into(), enabled: false };
        assert_eq!(intents(&r.mute_stream("st").unwrap()), [off]);
        let unmute = conclave_core::signal::ClientMessage::SetStreamProperty {
            stream_id: "st".into(),
            has_audio: Some(true),
            has_video: None,
        };
        let out = r.handle(&a, unmute, None, 3).unwrap();
        assert_eq!(intents(&out), [MediaIntent::AudioForwarding { stream: "st".into(), enabled: true }]);
        // A stream published while everyone is muted starts unforwarded.
        r.mute_all(true, vec![]);
        let out = publish(&mut r, &a, "st2", false).unwrap();
        assert_eq!(intents(&out), [MediaIntent::AudioForwarding { stream: "st2".into(), enabled: false }]);
    }

    #[test]
    fn teardown_removes_every_peer_and_relayed_sessions_never_touch_the_sfu() {
        let mut r = room(MediaMode::Routed);
        let (a, b, c) = (join_as(&mut r, "a").unwrap(), join_as(&mut r, "b").unwrap(), join_as(&mut r, "c").unwrap());
        publish(&mut r, &a, "st", false).unwrap();
        r.subscribe(&b, "st", Some("sub-b")).unwrap();
        r.subscribe(&c, "st", None).unwrap();
        let out = r.leave(&a, conclave_core::signal::DisconnectReason::ClientDisconnected);
        let got = intents(&out);
        assert!(got.contains(&MediaIntent::CloseSubscriberPeer { subscriber: "sub-b".into() }), "{got:?}");
        assert!(got.contains(&MediaIntent::PublisherGone { stream: "st".into() }));
        assert_eq!(got.last(), Some(&MediaIntent::ReceiverGone { conn: a }));
        let out = r.leave(&c, conclave_core::signal::DisconnectReason::NetworkDisconnected);
        assert_eq!(intents(&out), [MediaIntent::ReceiverGone { conn: c }]);

        let mut r = room(MediaMode::Relayed);
        let (a, b) = (join_as(&mut r, "a").unwrap(), join_as(&mut r, "b").unwrap());
        let mut out = publish(&mut r, &a, "st", false).unwrap();
        out.extend(r.subscribe(&b, "st", Some("sub-b")).unwrap());
        out.extend(r.mute_stream("st").unwrap());
        out.extend(r.leave(&a, conclave_core::signal::DisconnectReason::ClientDisconnected));
        assert!(intents(&out).is_empty());
    }
}
