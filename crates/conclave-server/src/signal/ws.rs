//! The WebSocket shell around the hub: `GET /v1/signal`.
//!
//! Owns: the handshake (first message `connect` or `resume`, within a deadline), message
//! size and rate limits with typed errors, closing abusive sockets, and the heartbeat that
//! detects dead peers. Must not touch: session rules (room) or delivery (hub).

use super::hub::{Hub, serialize};
use super::outbound::{self, Outbound, OutboundTx};
use super::room::RoomError;
use crate::AppState;
use crate::ratelimit::{Bucket, Rate};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use conclave_core::signal::{
    ClientMessage, DisconnectReason, ErrorCode, PROTOCOL_VERSION, ServerMessage, parse_client_frame,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Frames above this are a protocol violation and close the socket outright; frames up to it
/// but above the protocol limits (16 KiB, more for session descriptions) get a typed
/// `message_too_large` error.
const HARD_FRAME_LIMIT: usize = conclave_core::signal::MAX_SDP_MESSAGE_BYTES + 16 * 1024;

pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if let Err(wait) = state.limiters.connect_per_ip.check(&peer.ip().to_string(), Instant::now()) {
        crate::metrics::inc(&state.metrics.counters.rate_limited);
        tracing::warn!(ip = %peer.ip(), "signaling connect rate limit exceeded");
        return crate::api::ApiError::too_many(wait, "source address").into_response();
    }
    let hub = state.hub.clone();
    let cluster = state.cluster.clone();
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .on_upgrade(move |socket| run(socket, hub, cluster, peer))
}

fn error_frame(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Message {
    Message::Text(serialize(&ServerMessage::Error { id, code, message: message.into() }).to_string().into())
}

async fn close_with(socket: &mut WebSocket, reason: DisconnectReason) {
    let bye = serialize(&ServerMessage::SessionDisconnected { reason });
    let _ = socket.send(Message::Text(bye.to_string().into())).await;
    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
}

/// Cluster mode: a verified joiner of a session hosted elsewhere is told where to go.
/// Returns true when the socket was redirected (and closed).
async fn redirected(
    socket: &mut WebSocket,
    hub: &Hub,
    cluster: &dyn crate::cluster::Coordinator,
    session_id: &str,
    token: &str,
) -> bool {
    if cluster.node_id().is_none() {
        return false;
    }
    // Only a valid token learns where a session lives (no probing of placements).
    if crate::auth::verify_client_token(hub.store(), token, session_id, crate::clock::unix_secs()).await.is_err() {
        return false;
    }
    match cluster.place(session_id).await {
        Ok(crate::cluster::Owner::Remote(node)) if !node.url.is_empty() => {
            let msg = serialize(&ServerMessage::Redirect { url: node.url.clone(), session_id: session_id.to_owned() });
            let _ = socket.send(Message::Text(msg.to_string().into())).await;
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
            true
        }
        Ok(_) => false,
        Err(e) => {
            tracing::warn!(error = %e, "placement failed; serving the session here");
            false
        }
    }
}

async fn handshake(
    socket: &mut WebSocket,
    hub: &Hub,
    cluster: &dyn crate::cluster::Coordinator,
    tx: OutboundTx,
) -> Option<String> {
    let first = tokio::time::timeout(hub.config.connect_timeout, socket.recv()).await;
    let text = match first {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(Some(Err(e))) if is_too_large(&e) => {
            close_too_large(socket).await;
            return None;
        }
        Ok(Some(Ok(_))) => {
            let _ = socket
                .send(error_frame(
                    None,
                    ErrorCode::BadMessage,
                    "the first message must be a JSON text frame: connect or resume",
                ))
                .await;
            return None;
        }
        _ => return None,
    };
    let env = match parse_client_frame(&text) {
        Ok(env) => env,
        Err((code, message)) => {
            let _ = socket.send(error_frame(None, code, message)).await;
            return None;
        }
    };
    let result: Result<(String, ServerMessage), RoomError> = match env.msg {
        ClientMessage::Connect { v, .. } | ClientMessage::Resume { v, .. } if v != PROTOCOL_VERSION => {
            Err(RoomError::new(
                ErrorCode::UnsupportedVersion,
                format!("this server speaks protocol version {PROTOCOL_VERSION}"),
            ))
        }
        ClientMessage::Connect { session_id, token, .. } => {
            if redirected(socket, hub, cluster, &session_id, &token).await {
                return None;
            }
            hub.connect(&session_id, &token, None, tx).await
        }
        ClientMessage::Resume { connection_id, resume_token, .. } => {
            hub.resume(&connection_id, &resume_token, tx).map(|m| (connection_id, m))
        }
        _ => Err(RoomError::new(ErrorCode::NotConnected, "send connect (or resume) first")),
    };
    match result {
        Ok((conn, reply)) => {
            let reply = serialize(&reply);
            if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                hub.leave(&conn, DisconnectReason::NetworkDisconnected);
                return None;
            }
            Some(conn)
        }
        Err(e) => {
            let _ = socket.send(error_frame(env.id, e.code, e.message)).await;
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 1008, reason: "".into() }))).await;
            None
        }
    }
}

async fn run(mut socket: WebSocket, hub: Arc<Hub>, cluster: Arc<dyn crate::cluster::Coordinator>, peer: SocketAddr) {
    let (tx, mut rx) = outbound::channel(hub.config.outbound_queue);
    let Some(conn) = handshake(&mut socket, &hub, cluster.as_ref(), tx.clone()).await else {
        tracing::debug!(%peer, "signaling handshake refused");
        return;
    };
    let cfg = hub.config.clone();
    let rate = Rate { per_sec: cfg.messages_per_sec, burst: cfg.burst };
    let mut bucket = Bucket::full(rate, Instant::now());
    let mut strikes = 0u32;
    let mut last_seen = Instant::now();
    let mut heartbeat = tokio::time::interval(cfg.heartbeat);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => { last_seen = Instant::now(); continue; }
                    Some(Ok(Message::Binary(_))) => {
                        strikes += 1;
                        let _ = socket.send(error_frame(None, ErrorCode::BadMessage, "binary frames are not part of the protocol")).await;
                        if strikes >= cfg.max_strikes { break_abusive(&mut socket, &hub, &conn, peer).await; return; }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) => {
                        // The client closed on purpose: that is a goodbye.
                        hub.leave(&conn, DisconnectReason::ClientDisconnected);
                        return;
                    }
                    Some(Err(e)) if is_too_large(&e) => {
                        close_too_large(&mut socket).await;
                        hub.socket_lost(&conn, &tx);
                        return;
                    }
                    None | Some(Err(_)) => {
                        hub.socket_lost(&conn, &tx);
                        return;
                    }
                };
                last_seen = Instant::now();
                let refused = if bucket.take(rate, Instant::now()).is_err() {
                    Some((None, ErrorCode::RateLimited, format!("at most {} messages per second", cfg.messages_per_sec)))
                } else {
                    match parse_client_frame(&text) {
                        Ok(env) => {
                            let id = env.id;
                            hub.handle(&conn, env).err().map(|e| (id, e.code, e.message))
                        }
                        Err((code, message)) => Some((None, code, message)),
                    }
                };
                if let Some((id, code, message)) = refused {
                    if code == ErrorCode::NotConnected {
                        return;
                    }
                    // Bad or excessive input counts against the socket; refused actions do not.
                    if matches!(code, ErrorCode::BadMessage | ErrorCode::MessageTooLarge | ErrorCode::RateLimited) {
                        strikes += 1;
                    }
                    if socket.send(error_frame(id, code, message)).await.is_err() { hub.socket_lost(&conn, &tx); return; }
                    if strikes >= cfg.max_strikes { break_abusive(&mut socket, &hub, &conn, peer).await; return; }
                }
            }
            out = rx.recv() => match out {
                Some(Outbound::Message(m)) if !m.is_protocol_v1() => {}
                Some(Outbound::Message(m)) => {
                    // A peer that stops reading (zero TCP window) must not pin this task: the
                    // write gives up at the heartbeat, or at once when the queue overflows.
                    let frame = Message::Text(serialize(&m).to_string().into());
                    let sent = tokio::select! {
                        ok = send_within(&mut socket, frame, cfg.heartbeat) => ok,
                        () = rx.overflow() => false,
                    };
                    if !sent { hub.socket_lost(&conn, &tx); return; }
                }
                Some(Outbound::Close(reason)) => { close_with(&mut socket, reason).await; return; }
                Some(Outbound::Overflowed) => {
                    // The hub detached and suspended the connection already.
                    let bye = Message::Close(Some(CloseFrame { code: 1008, reason: "outbound queue overflow: reading too slowly".into() }));
                    send_within(&mut socket, bye, std::time::Duration::from_secs(1)).await;
                    return;
                }
                None => return,
            },
            _ = heartbeat.tick() => {
                if last_seen.elapsed() > cfg.heartbeat * 2 {
                    tracing::info!(connection = %conn, "heartbeat timed out");
                    hub.socket_lost(&conn, &tx);
                    return;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() { hub.socket_lost(&conn, &tx); return; }
            }
        }
    }
}

/// A frame or message over the hard limit: tungstenite refused to buffer it.
pub(crate) fn is_too_large(e: &axum::Error) -> bool {
    let inner = std::error::Error::source(e).and_then(|s| s.downcast_ref::<tungstenite::Error>());
    matches!(inner, Some(tungstenite::Error::Capacity(_)))
}

/// Closes with 1009 (message too big) and the limit, instead of dropping the connection.
async fn close_too_large(socket: &mut WebSocket) {
    let reason = format!("message too big: frames are limited to {HARD_FRAME_LIMIT} bytes");
    let bye = Message::Close(Some(CloseFrame { code: 1009, reason: reason.into() }));
    send_within(socket, bye, std::time::Duration::from_secs(1)).await;
}

/// Sends one message unless the peer takes longer than `limit` to accept it.
async fn send_within(socket: &mut WebSocket, msg: Message, limit: std::time::Duration) -> bool {
    matches!(tokio::time::timeout(limit, socket.send(msg)).await, Ok(Ok(())))
}

async fn break_abusive(socket: &mut WebSocket, hub: &Hub, conn: &str, peer: SocketAddr) {
    tracing::warn!(%peer, connection = %conn, "closing a socket after repeated bad or excessive messages");
    hub.leave(conn, DisconnectReason::NetworkDisconnected);
    let _ = socket
        .send(Message::Close(Some(CloseFrame { code: 1008, reason: "too many bad or excessive messages".into() })))
        .await;
}
