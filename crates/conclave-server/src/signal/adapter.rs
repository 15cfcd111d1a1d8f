//! The hub's face towards wire adapters other than protocol v1 (OpenTok.js): room actions
//! with client-chosen IDs, per-subscription media peers, and socket take-over after a
//! reconnect. Protocol v1 goes through [`Hub::handle`]; both end in the same room.
//!
//! Owns: applying those room actions in order under the room lock and delivering their
//! outputs (media intents included, see `media_path`); the SDP exchanges whose replies the
//! adapter awaits (a routed publisher's offer, a subscriber peer's answer). Must not touch:
//! any wire format (the adapters translate).

use super::hub::{Hub, OutboundTx};
use super::room::{ConnId, Output, PublishRequest, Room, RoomError};
use crate::clock;
use crate::media::{publisher_peer, subscriber_peer};
use conclave_core::signal::{DisconnectReason, ErrorCode};

fn no_media() -> RoomError {
    RoomError::new(ErrorCode::RoutedOnly, "this server runs no SFU")
}

fn media_failed(e: &str) -> RoomError {
    tracing::debug!(error = %e, "media negotiation failed");
    RoomError::new(ErrorCode::MediaFailed, "the media server could not use this session description")
}

impl Hub {
    /// Runs `f` on the room of `conn` and delivers its outputs, in order, under the room lock.
    pub fn act<T>(
        &self,
        conn: &str,
        f: impl FnOnce(&mut Room) -> Result<(T, Vec<Output>), RoomError>,
    ) -> Result<T, RoomError> {
        let cell = self.cell_of(conn).ok_or_else(|| RoomError::new(ErrorCode::NotConnected, "not connected"))?;
        let mut live = super::hub::lock(&cell);
        let (t, out) = f(&mut live.room)?;
        self.deliver(&mut live, out);
        Ok(t)
    }

    pub fn publish(&self, conn: &str, req: PublishRequest) -> Result<(), RoomError> {
        self.act(conn, |room| Ok(((), room.publish(conn, req, None, clock::unix_ms())?)))
    }

    /// The stream's media reached the SFU: announce it.
    pub fn media_ready(&self, conn: &str, stream_id: &str) {
        let _ = self.act(conn, |room| Ok(((), room.media_ready(stream_id))));
    }

    /// A subscription under the client's own subscriber ID. Routed: the room asks for a peer
    /// of its own, whose offer reaches the client as `SubscriberOffer`.
    pub fn subscribe_as(&self, conn: &str, stream_id: &str, subscriber_id: &str) -> Result<(), RoomError> {
        self.act(conn, |room| Ok(((), room.subscribe(conn, stream_id, Some(subscriber_id))?)))
    }

    pub fn unsubscribe_as(&self, conn: &str, stream_id: &str, subscriber_id: &str) -> Result<(), RoomError> {
        self.act(conn, |room| Ok(((), room.unsubscribe(conn, stream_id, Some(subscriber_id))?)))
    }

    pub fn relay_jsep(
        &self,
        conn: &str,
        stream_id: &str,
        subscriber_id: &str,
        method: &str,
        content: serde_json::Value,
    ) -> Result<(), RoomError> {
        self.act(conn, |room| Ok(((), room.relay_jsep(conn, stream_id, subscriber_id, method, content)?)))
    }

    /// A routed publisher's offer for its own stream: the SFU's answer. A stream muted by
    /// force starts unforwarded; waiting protocol-v1 subscriptions are completed. A later
    /// offer on the same stream (an ICE restart) is answered on the peer it has; then
    /// `renegotiated` is true and nothing else changes.
    pub async fn publisher_offer(
        &self,
        conn: &str,
        stream_id: &str,
        sdp: String,
    ) -> Result<crate::media::OfferAnswer, RoomError> {
        self.act(conn, |room| Ok((room.check_media(conn, Some(stream_id))?, Vec::new())))?;
        let media = self.media_of_conn(conn).ok_or_else(no_media)?;
        let answer = media.offer(publisher_peer(stream_id), sdp, true).await.map_err(|e| media_failed(&e))?;
        if answer.renegotiated {
            return Ok(answer);
        }
        let muted =
            self.cell_of(conn).and_then(|c| super::hub::lock(&c).room.stream(stream_id)).is_some_and(|s| !s.has_audio);
        if muted {
            media.audio_forwarding(publisher_peer(stream_id), false);
        }
        self.retry_pending(|_, s| s == stream_id);
        Ok(answer)
    }

    /// A subscriber's own offer on the peer the SFU made for it (an ICE restart after a
    /// network change or a socket reconnection): the SFU's answer, and a server offer to
    /// send after it if changes were waiting.
    pub async fn subscriber_offer(
        &self,
        conn: &str,
        stream_id: &str,
        subscriber_id: &str,
        sdp: String,
    ) -> Result<crate::media::OfferAnswer, RoomError> {
        self.check_subscriber(conn, stream_id, subscriber_id)?;
        let media = self.media_of_conn(conn).ok_or_else(no_media)?;
        media.offer(subscriber_peer(subscriber_id), sdp, false).await.map_err(|e| media_failed(&e))
    }

    /// The subscriber's answer to the SFU's offer; its subscription counts from now on.
    /// Returns a follow-up offer when the SFU has one.
    pub async fn subscriber_answer(
        &self,
        conn: &str,
        stream_id: &str,
        subscriber_id: &str,
        sdp: String,
    ) -> Result<Option<String>, RoomError> {
        self.check_subscriber(conn, stream_id, subscriber_id)?;
        let media = self.media_of_conn(conn).ok_or_else(no_media)?;
        let next = media.accept_answer(subscriber_peer(subscriber_id), sdp).await.map_err(|e| media_failed(&e))?;
        self.act(conn, |room| Ok(((), room.confirm_subscription(conn, stream_id))))?;
        Ok(next)
    }

    /// A subscriber's wishes for its own peer: a simulcast layer, a frame rate.
    pub fn subscriber_preference(
        &self,
        conn: &str,
        stream_id: &str,
        subscriber_id: &str,
        size: Option<(Option<u32>, Option<u32>)>,
        max_temporal: Option<Option<u8>>,
    ) -> Result<(), RoomError> {
        self.act(conn, |room| {
            Ok(((), room.subscriber_preferences(conn, stream_id, subscriber_id, size, max_temporal)?))
        })
    }

    /// OpenTok.js `subscribeToVideo`/`subscribeToAudio` of one of `conn`'s subscribers.
    pub fn subscriber_receives(
        &self,
        conn: &str,
        stream_id: &str,
        subscriber_id: &str,
        video: bool,
        receive: bool,
    ) -> Result<(), RoomError> {
        self.act(conn, |room| Ok(((), room.subscriber_receives(conn, stream_id, subscriber_id, video, receive)?)))
    }

    fn check_subscriber(&self, conn: &str, stream_id: &str, subscriber_id: &str) -> Result<(), RoomError> {
        self.act(conn, |room| match room.subscriber_of(stream_id, subscriber_id) {
            Some(owner) if owner == conn => Ok(((), Vec::new())),
            _ => Err(RoomError::new(ErrorCode::NotFound, "subscriber not found")),
        })
    }

    /// Remembers which connection a reconnecting socket (OpenTok.js `socketId`) may take back.
    pub fn remember_socket(&self, socket_id: &str, conn: &ConnId) {
        super::hub::lock(&self.socket_ids).insert(socket_id.to_owned(), conn.clone());
    }

    /// A new socket with the `socketId` of a dropped one takes its connection back, if the
    /// connection still waits in its reconnect grace. Returns the connection and its session.
    pub fn take_back(&self, socket_id: &str, tx: OutboundTx) -> Option<(ConnId, super::room::SessionMeta)> {
        let conn = super::hub::lock(&self.socket_ids).get(socket_id).cloned()?;
        let cell = self.cell_of(&conn)?;
        let mut live = super::hub::lock(&cell);
        live.room.resume(&conn).ok()?;
        if let Some(old) = live.senders.insert(conn.clone(), tx) {
            old.close(DisconnectReason::NetworkDisconnected);
        }
        Some((conn, live.room.meta().clone()))
    }
}
