//! The ordered media path: the room's media intents applied to the SFU, and the client-driven
//! SDP of protocol v1.
//!
//! Owns: turning each [`MediaIntent`] into an SFU command the moment the room emits it (under
//! the room lock, in output order; the SFU task runs its queue in order), so a subscribe and
//! an unsubscribe sent back to back reach the SFU in that order; only the replies (offers,
//! answers) are awaited on tasks. Subscriptions whose peers do not exist yet wait here and are
//! retried when a publisher's or receiver's peer appears. Must not touch: who may do what
//! (the room decided) or wire formats.

use super::hub::{Hub, lock};
use super::room::{MediaIntent, Receiver};
use crate::media::{MediaEvent, MediaHandle, PeerId, publisher_peer, receiver_peer, subscriber_peer};
use conclave_core::signal::{ClientMessage, ErrorCode, ServerMessage};

fn receiver_peer_of(r: &Receiver) -> PeerId {
    match r {
        Receiver::Connection(conn) => receiver_peer(conn),
        Receiver::Subscriber(sub) => subscriber_peer(sub),
    }
}

impl Hub {
    /// Applies one intent: commands are queued now; replies are awaited on their own tasks.
    pub(super) fn apply_media(&self, session_id: &str, intent: MediaIntent) {
        let Some(media) = self.media_of_session(session_id) else { return };
        match intent {
            MediaIntent::Subscribe { conn, stream } => {
                lock(&self.pending_media).insert((conn.clone(), stream.clone()));
                self.retry_pending(|c, s| c == conn && s == stream);
            }
            MediaIntent::Unsubscribe { conn, stream } => {
                if lock(&self.pending_media).remove(&(conn.clone(), stream.clone())) {
                    return;
                }
                let reply = media.unsubscribe(receiver_peer(&conn), publisher_peer(&stream));
                let hub = self.me.clone();
                tokio::spawn(async move {
                    match reply.await {
                        Ok(Some(sdp)) => {
                            if let Some(hub) = hub.upgrade() {
                                hub.send_to(&conn, &ServerMessage::MediaOffer { sdp });
                            }
                        }
                        Ok(None) => {}
                        Err(e) => tracing::debug!(error = %e, "unsubscribe in the SFU"),
                    }
                });
            }
            MediaIntent::OpenSubscriberPeer { conn, stream, subscriber, audio_fallback } => {
                lock(&self.pending_peers).insert(subscriber, (conn.clone(), stream.clone(), audio_fallback));
                self.retry_pending(|c, s| c == conn && s == stream);
            }
            MediaIntent::CloseSubscriberPeer { subscriber } => {
                lock(&self.pending_peers).remove(&subscriber);
                media.remove_peer(subscriber_peer(&subscriber));
            }
            MediaIntent::AudioForwarding { stream, enabled } => {
                media.audio_forwarding(publisher_peer(&stream), enabled)
            }
            MediaIntent::PreferredLayer { receiver, stream, layer } => {
                media.preferred_layer(receiver_peer_of(&receiver), publisher_peer(&stream), layer)
            }
            MediaIntent::MaxTemporalLayer { receiver, stream, max } => {
                media.max_temporal_layer(receiver_peer_of(&receiver), publisher_peer(&stream), max)
            }
            MediaIntent::SubscriberReceives { subscriber, video, receive } => {
                media.receiving(subscriber_peer(&subscriber), video, receive)
            }
            MediaIntent::PublisherGone { stream } => {
                media.remove_peer(publisher_peer(&stream));
                lock(&self.pending_media).retain(|(_, s)| *s != stream);
                lock(&self.pending_peers).retain(|_, (_, s, _)| *s != stream);
            }
            MediaIntent::ReceiverGone { conn } => {
                media.remove_peer(receiver_peer(&conn));
                lock(&self.pending_media).retain(|(c, _)| *c != conn);
                lock(&self.pending_peers).retain(|_, (c, _, _)| *c != conn);
                lock(&self.receivers_ready).remove(&conn);
            }
        }
    }

    /// Queues the SFU commands of the waiting subscriptions that match `(connection, stream)`
    /// and whose peers may exist now. A subscription the SFU refuses (a peer still missing)
    /// waits again, if the room still wants it.
    pub(super) fn retry_pending(&self, matches: impl Fn(&str, &str) -> bool) {
        if self.media.is_none() {
            return;
        }
        let ready = lock(&self.receivers_ready).clone();
        let due: Vec<(String, String)> = {
            let mut pending = lock(&self.pending_media);
            let due: Vec<_> = pending.iter().filter(|(c, s)| ready.contains(c) && matches(c, s)).cloned().collect();
            due.iter().for_each(|d| {
                pending.remove(d);
            });
            due
        };
        for (conn, stream) in due {
            // A connection that left takes its pending subscriptions with it.
            let Some(media) = self.media_of_conn(&conn) else { continue };
            let reply = media.subscribe(receiver_peer(&conn), publisher_peer(&stream));
            let hub = self.me.clone();
            tokio::spawn(async move {
                let Some(hub) = hub.upgrade() else { return };
                match reply.await {
                    Ok(offer) => {
                        if let Some(sdp) = offer {
                            hub.send_to(&conn, &ServerMessage::MediaOffer { sdp });
                        }
                        // The SFU holds a real media subscription now: it counts.
                        let _ = hub.act(&conn, |room| Ok(((), room.confirm_subscription(&conn, &stream))));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, connection = %conn, stream = %stream, "subscription waits for its media peers");
                        if hub.act(&conn, |room| Ok((room.check_subscribed(&conn, &stream).is_ok(), Vec::new())))
                            == Ok(true)
                        {
                            lock(&hub.pending_media).insert((conn, stream));
                        }
                    }
                }
            });
        }
        let due: Vec<(String, (String, String, bool))> = {
            let mut pending = lock(&self.pending_peers);
            let due: Vec<_> =
                pending.iter().filter(|(_, (c, s, _))| matches(c, s)).map(|(k, v)| (k.clone(), v.clone())).collect();
            due.iter().for_each(|(k, _)| {
                pending.remove(k);
            });
            due
        };
        for (subscriber, (conn, stream, audio_fallback)) in due {
            let Some(media) = self.media_of_conn(&conn) else { continue };
            let peer = subscriber_peer(&subscriber);
            let reply = media.add_subscriber_peer(peer, publisher_peer(&stream), audio_fallback);
            let hub = self.me.clone();
            tokio::spawn(async move {
                let Some(hub) = hub.upgrade() else { return };
                match reply.await {
                    Ok(sdp) => {
                        let offer =
                            ServerMessage::SubscriberOffer { stream_id: stream, subscriber_id: subscriber, sdp };
                        hub.send_to(&conn, &offer);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, subscriber = %subscriber, "subscriber peer waits for its publisher");
                        let wanted = |room: &super::room::Room| room.subscriber_of(&stream, &subscriber) == Some(&conn);
                        if hub.act(&conn, |room| Ok((wanted(room), Vec::new()))) == Ok(true) {
                            lock(&hub.pending_peers).insert(subscriber, (conn, stream, audio_fallback));
                        }
                    }
                }
            });
        }
    }

    /// Acts on the SFU's reports until the media task stops: an audio fallback change goes
    /// to the subscriber's client, through its room (which knows whether it still exists).
    pub fn spawn_media_events(&self) -> Option<tokio::task::JoinHandle<()>> {
        let mut events = self.media.as_ref()?.take_events()?;
        let hub = self.me.clone();
        Some(tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let Some(hub) = hub.upgrade() else { return };
                match event {
                    MediaEvent::AudioFallback { peer, audio_only } => {
                        let PeerId::Subscriber(subscriber) = &peer else { continue };
                        for cell in hub.live_rooms() {
                            let mut live = lock(&cell);
                            let out = live.room.audio_fallback(subscriber, audio_only);
                            if !out.is_empty() {
                                hub.deliver(&mut live, out);
                                break;
                            }
                        }
                    }
                }
            }
        }))
    }

    /// Protocol v1's own SDP: a publishing or receiving connection's offer, or the answer to
    /// the SFU's offer. Queued now; the reply goes to the client when it comes.
    pub(super) fn negotiate(&self, media: &MediaHandle, conn: &str, id: Option<u64>, msg: ClientMessage) {
        let (conn, hub) = (conn.to_owned(), self.me.clone());
        // The SFU's own text (parser errors quote internal state, even heap addresses) goes to
        // the debug log; the client gets a fixed message and the id of what it sent.
        let failed = move |conn: &str, e: String| {
            tracing::debug!(connection = %conn, error = %e, "media negotiation failed");
            ServerMessage::Error {
                id,
                code: ErrorCode::MediaFailed,
                message: "the media server could not use this session description; check the SDP".into(),
            }
        };
        match msg {
            ClientMessage::MediaOffer { stream_id, sdp } => {
                let peer = stream_id.as_deref().map_or_else(|| receiver_peer(&conn), publisher_peer);
                let reply = media.add_peer(peer, sdp);
                let media = media.clone();
                tokio::spawn(async move {
                    let Some(hub) = hub.upgrade() else { return };
                    match reply.await {
                        Ok(answer) => {
                            hub.send_to(
                                &conn,
                                &ServerMessage::MediaAnswer { stream_id: stream_id.clone(), sdp: answer },
                            );
                            match stream_id {
                                Some(s) => {
                                    // A stream muted (by its publisher or by force) starts unforwarded.
                                    let muted = hub
                                        .act(&conn, |room| {
                                            Ok((room.stream(&s).is_some_and(|i| !i.has_audio), Vec::new()))
                                        })
                                        .unwrap_or(false);
                                    if muted {
                                        media.audio_forwarding(publisher_peer(&s), false);
                                    }
                                    hub.retry_pending(|_, stream| stream == s);
                                }
                                None => {
                                    lock(&hub.receivers_ready).insert(conn.clone());
                                    hub.retry_pending(|c, _| c == conn);
                                }
                            }
                        }
                        Err(e) => hub.send_to(&conn, &failed(&conn, e)),
                    }
                });
            }
            ClientMessage::MediaAnswer { sdp } => {
                let reply = media.accept_answer(receiver_peer(&conn), sdp);
                tokio::spawn(async move {
                    let Some(hub) = hub.upgrade() else { return };
                    match reply.await {
                        Ok(Some(offer)) => hub.send_to(&conn, &ServerMessage::MediaOffer { sdp: offer }),
                        Ok(None) => {}
                        Err(e) => hub.send_to(&conn, &failed(&conn, e)),
                    }
                });
            }
            _ => {}
        }
    }
}
