//! The Rumor WebSocket of OpenTok.js (protocol reference §5, §7, §8): the socket shell that
//! turns Rumor frames into room actions and room messages into Rumor frames.
//!
//! Owns: the socket's life (CONNECT, PING/PONG, DISCONNECT, reconnection by `socketId`), the
//! same frame-size, rate and abuse limits as protocol v1, the STATUS reply to every request,
//! and the order of the join (own `created`, then the snapshot, then the queue). The client's
//! `X-TB-FROM-ADDRESS` must be its own connection. Must not touch: session rules (room, via
//! the hub's adapter API) or message shapes (core's codec and `translate`).

use super::requests::{Joined, Reply};
use super::translate::{Outgoing, SYMPHONY, translate};
use crate::AppState;
use crate::ratelimit::{Bucket, Rate};
use crate::signal::hub::Hub;
use crate::signal::outbound::{self, Outbound, OutboundRx, OutboundTx};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Response};
use conclave_core::opentok::rumor::{ClientFrame, Limits, RumorFrame};
use conclave_core::signal::DisconnectReason;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames above this close the socket (1009); SDPs are about 5 KB, signals at most 8 KB.
const MAX_FRAME_BYTES: usize = 64 * 1024;

#[derive(serde::Deserialize)]
pub struct SocketQuery {
    #[serde(rename = "socketId")]
    socket_id: Option<String>,
    reconnect: Option<String>,
}

pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<SocketQuery>,
) -> Response {
    if let Err(wait) = state.limiters.connect_per_ip.check(&peer.ip().to_string(), Instant::now()) {
        crate::metrics::inc(&state.metrics.counters.rate_limited);
        return crate::api::ApiError::too_many(wait, "source address").into_response();
    }
    let socket_id = q.socket_id.filter(|s| crate::signal::room::is_client_id(s));
    let reconnect = q.reconnect.as_deref() == Some("true");
    // Small buffers as for protocol v1: the library's default 128 KiB read buffer made an idle
    // OpenTok.js connection cost ten times a v1 one (`conclave bench signal`).
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .on_upgrade(move |socket| run(socket, state, peer, socket_id, reconnect))
}

/// One socket's state.
pub struct Shell {
    pub socket: WebSocket,
    pub hub: Arc<Hub>,
    pub state: AppState,
    pub tx: OutboundTx,
    /// The connection ID the CONNECT frame announced.
    pub unique_id: Option<String>,
    pub socket_id: Option<String>,
    pub joined: Option<Joined>,
    /// Media-server messages to send right after the current request's reply.
    pub pending: Vec<conclave_core::opentok::raptor::ServerRaptor>,
}

fn fresh_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS CSPRNG is available");
    conclave_core::ids::uuid_v4(b)
}

impl Shell {
    pub async fn send_frame(&mut self, frame: RumorFrame) -> bool {
        let Ok(bytes) = frame.encode() else {
            tracing::warn!("an outgoing Rumor frame could not be encoded; dropped");
            return true;
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(15), self.socket.send(Message::Binary(bytes.into()))).await,
            Ok(Ok(()))
        )
    }

    /// Sends room-originated messages the way the client expects them.
    pub async fn send_all(&mut self, out: Vec<Outgoing>) -> bool {
        let to = self.joined.as_ref().map(|j| j.conn.clone()).unwrap_or_default();
        for o in out {
            let frame = o.raptor.into_frame(&to, Some(&fresh_id()), &o.from);
            if !self.send_frame(frame).await {
                return false;
            }
        }
        true
    }

    /// A message from the SFU (routed JSEP).
    pub async fn send_from_media(&mut self, raptor: conclave_core::opentok::raptor::ServerRaptor) -> bool {
        self.send_all(vec![Outgoing { raptor, from: SYMPHONY.to_owned() }]).await
    }

    async fn reply(&mut self, transaction_id: Option<&str>, reply: Reply) -> bool {
        let Some(txn) = transaction_id else { return true };
        let to = self.joined.as_ref().map(|j| j.conn.clone()).unwrap_or_default();
        self.send_frame(RumorFrame::status(&to, txn, reply.status, reply.body)).await
    }

    async fn outbound(&mut self, m: Arc<conclave_core::signal::ServerMessage>) -> bool {
        if let conclave_core::signal::ServerMessage::SubscriberOffer { stream_id, subscriber_id, sdp } = &*m {
            let Some(j) = &mut self.joined else { return true };
            let raptor = j.subscriber_offer(stream_id, subscriber_id, sdp);
            return self.send_from_media(raptor).await;
        }
        let Some(j) = &self.joined else { return true };
        let out = translate(&j.session, &j.conn, &m, &mut fresh_id);
        self.send_all(out).await
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let bye = Message::Close(Some(CloseFrame { code, reason: reason.to_owned().into() }));
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(bye)).await;
}

async fn run(socket: WebSocket, state: AppState, peer: SocketAddr, socket_id: Option<String>, reconnect: bool) {
    let hub = state.hub.clone();
    let (tx, mut rx) = outbound::channel(hub.config.outbound_queue);
    let mut shell = Shell {
        socket,
        hub: hub.clone(),
        state,
        tx: tx.clone(),
        unique_id: None,
        socket_id,
        joined: None,
        pending: Vec::new(),
    };
    // A reconnecting client sends no CONNECT: its socketId names the connection it had.
    if reconnect && let Some(sid) = shell.socket_id.clone() {
        match hub.take_back(&sid, tx.clone()) {
            Some((conn, meta)) => {
                tracing::info!(connection = %conn, "OpenTok.js socket reconnected");
                let routed = meta.media_mode == conclave_core::wire::MediaMode::Routed;
                shell.joined = Some(Joined::new(conn, &meta.api_key, &meta.session_id, routed));
            }
            None => {
                // Nothing to take back: the client must connect again (1011 stops its retries).
                close(&mut shell.socket, 1011, "the connection to reconnect to is gone").await;
                return;
            }
        }
    }
    let cfg = hub.config.clone();
    let rate = Rate { per_sec: cfg.messages_per_sec, burst: cfg.burst };
    let mut bucket = Bucket::full(rate, Instant::now());
    let mut strikes = 0u32;
    let mut last_seen = Instant::now();
    // The client pings every 2 s when idle; give a silent socket twice the heartbeat.
    let mut liveness = tokio::time::interval(cfg.heartbeat);
    liveness.tick().await;
    let limits = Limits::format_only(MAX_FRAME_BYTES);
    let end = loop {
        tokio::select! {
            incoming = shell.socket.recv() => {
                let bytes = match incoming {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => { last_seen = Instant::now(); continue; }
                    Some(Ok(Message::Text(_))) => {
                        strikes += 1;
                        if strikes >= cfg.max_strikes { break End::Abusive; }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) => break End::Goodbye,
                    Some(Err(e)) if crate::signal::ws::is_too_large(&e) => {
                        close(&mut shell.socket, 1009, &format!("message too big: frames are limited to {MAX_FRAME_BYTES} bytes")).await;
                        break End::Lost;
                    }
                    None | Some(Err(_)) => break End::Lost,
                };
                last_seen = Instant::now();
                if bucket.take(rate, Instant::now()).is_err() {
                    strikes += 1;
                    if strikes >= cfg.max_strikes { break End::Abusive; }
                    continue;
                }
                let frame = match RumorFrame::decode(&bytes, &limits) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "unreadable Rumor frame");
                        strikes += 1;
                        if strikes >= cfg.max_strikes { break End::Abusive; }
                        continue;
                    }
                };
                match frame.client_view() {
                    Ok(ClientFrame::Ping) => { if !shell.send_frame(RumorFrame::pong()).await { break End::Lost; } }
                    Ok(ClientFrame::Connect { unique_id, .. }) => {
                        if shell.joined.is_none() && crate::signal::room::is_client_id(unique_id) {
                            shell.unique_id = Some(unique_id.to_owned());
                        }
                    }
                    Ok(ClientFrame::Disconnect { reconnect: true }) => break End::Lost,
                    Ok(ClientFrame::Disconnect { reconnect: false }) => break End::Goodbye,
                    Ok(ClientFrame::Subscribe { .. } | ClientFrame::Unsubscribe { .. } | ClientFrame::Ack { .. }) => {}
                    Ok(ClientFrame::Message { transaction_id, .. }) => {
                        let txn = transaction_id.map(str::to_owned);
                        let reply = super::requests::handle(&mut shell, &frame).await;
                        let bad = reply.status == 400;
                        if !shell.reply(txn.as_deref(), reply).await { break End::Lost; }
                        for raptor in std::mem::take(&mut shell.pending) {
                            if !shell.send_from_media(raptor).await { break; }
                        }
                        if bad {
                            strikes += 1;
                            if strikes >= cfg.max_strikes { break End::Abusive; }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "Rumor frame of no known kind");
                        strikes += 1;
                        if strikes >= cfg.max_strikes { break End::Abusive; }
                    }
                }
            }
            out = recv(&mut rx) => match out {
                Some(Outbound::Message(m)) => {
                    let sent = tokio::select! {
                        ok = shell.outbound(m) => ok,
                        () = rx.overflow() => false,
                    };
                    if !sent { break End::Lost; }
                }
                Some(Outbound::Close(reason)) => break End::Closed(reason),
                Some(Outbound::Overflowed) => {
                    close(&mut shell.socket, 1008, "outbound queue overflow: reading too slowly").await;
                    return;
                }
                None => return,
            },
            _ = liveness.tick() => {
                if last_seen.elapsed() > cfg.heartbeat * 2 {
                    tracing::info!(%peer, "OpenTok.js socket silent too long");
                    break End::Lost;
                }
            }
        }
    };
    finish(shell, &tx, end).await;
}

async fn recv(rx: &mut OutboundRx) -> Option<Outbound> {
    rx.recv().await
}

enum End {
    /// DISCONNECT or a close frame: the client left.
    Goodbye,
    /// The socket broke (or a reconnecting client left its old socket): the reconnect grace.
    Lost,
    Abusive,
    /// The room closed this connection (kicked, session ended, draining).
    Closed(DisconnectReason),
}

async fn finish(mut shell: Shell, tx: &OutboundTx, end: End) {
    let Some(j) = shell.joined.take() else {
        close(&mut shell.socket, 1000, "").await;
        return;
    };
    match end {
        End::Goodbye => {
            shell.hub.leave(&j.conn, DisconnectReason::ClientDisconnected);
            close(&mut shell.socket, 1000, "").await;
        }
        End::Lost => shell.hub.socket_lost(&j.conn, tx),
        End::Abusive => {
            tracing::warn!(connection = %j.conn, "closing an OpenTok.js socket after repeated bad or excessive messages");
            shell.hub.leave(&j.conn, DisconnectReason::NetworkDisconnected);
            close(&mut shell.socket, 1008, "too many bad or excessive messages").await;
        }
        End::Closed(DisconnectReason::NetworkDisconnected) => {
            // Draining: the client reconnects, to this node once it is back or to another.
            close(&mut shell.socket, 1012, "server restarting").await;
        }
        End::Closed(reason) => {
            // Kicked or the session ended: the client learns it from its own connection's
            // `deleted` (a bare close would look like a network drop and make it retry), then
            // closes by itself; after 2 s the server closes anyway.
            let why = super::translate::connection_reason(reason);
            let bye = conclave_core::opentok::raptor::ServerRaptor::connection_deleted(&j.session, &j.conn, why);
            shell.joined = Some(j);
            if shell.send_all(vec![Outgoing { raptor: bye, from: String::new() }]).await {
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(m)) = shell.socket.recv().await {
                        if matches!(m, Message::Close(_)) {
                            break;
                        }
                    }
                })
                .await;
            }
            close(&mut shell.socket, 1000, "").await;
        }
    }
}
