//! A signaling client for Conclave (protocol v1, `docs/protocol.md`), plus the media bots
//! (`media`) and encoded test clips (`clip`) that integration tests and `conclave bench` use.
//!
//! Owns: one WebSocket, request/reply correlation by `id`, and an ordered event stream. Must
//! not touch: REST (see `conclave-sdk`) or the server's internals. The client itself carries no
//! media; the bots in `media` send theirs over their own UDP sockets.
//!
//! ```no_run
//! # async fn demo() -> Result<(), conclave_client::ClientError> {
//! let mut c = conclave_client::Client::connect("ws://127.0.0.1:4000/v1/signal", "1_MX4…", "T1==…").await?;
//! let stream = c.publish(conclave_client::PublishOptions::default()).await?;
//! c.signal(None, "chat", "hello").await?;
//! while let Some(event) = c.next_event().await { println!("{event:?}"); }
//! # Ok(()) }
//! ```

use conclave_core::signal::{
    ClientEnvelope, ClientMessage, ConnectionInfo, DisconnectReason, ErrorCode, PROTOCOL_VERSION, ServerMessage,
    StreamInfo, VideoType,
};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

pub use conclave_core::signal;

pub mod clip;
pub mod media;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("WebSocket error: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("refused ({code:?}): {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("the connection is closed")]
    Closed,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("unexpected reply: {0:?}")]
    Unexpected(Box<ServerMessage>),
    /// The node said the session lives elsewhere (followed by [`Client::connect`]).
    #[error("redirected to {0}")]
    Redirected(String),
}

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub name: Option<String>,
    pub has_audio: bool,
    pub has_video: bool,
    pub video_type: VideoType,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions { name: None, has_audio: true, has_video: true, video_type: VideoType::Camera }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<ServerMessage>>>>;

enum Command {
    Text(String),
    /// Drop the socket without a close frame, as a network failure would.
    Abort,
}

/// A connected participant.
pub struct Client {
    pub connection_id: String,
    pub resume_token: String,
    /// The server's `connected` (or `resumed`) reply, with the snapshot of others.
    pub welcome: ServerMessage,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<ServerMessage>,
    pending: Pending,
    next_id: AtomicU64,
    request_timeout: Duration,
    /// The signaling URL this client is connected to (after any redirect).
    pub url: String,
}

/// A redirect URL may be absolute (`ws://…`) or a base (`http://node-b:4000`), which becomes
/// that node's signaling endpoint.
fn resolve_redirect(_from: &str, to: &str) -> String {
    if to.starts_with("ws://") || to.starts_with("wss://") {
        return to.to_owned();
    }
    let ws = to.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
    format!("{}/v1/signal", ws.trim_end_matches('/'))
}

async fn open(url: &str, first: ClientMessage) -> Result<(Client, ServerMessage), ClientError> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await?;
    let (mut sink, mut stream) = ws.split();
    let hello = serde_json::to_string(&ClientEnvelope { id: Some(0), msg: first }).expect("serializes");
    sink.send(Message::Text(hello.into())).await?;
    let welcome = loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => {
                break serde_json::from_str::<ServerMessage>(&t).map_err(|_| ClientError::Closed)?;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(ClientError::Closed),
        }
    };
    let (connection_id, resume_token) = match &welcome {
        ServerMessage::Connected { connection_id, resume_token, .. } => (connection_id.clone(), resume_token.clone()),
        ServerMessage::Resumed { connection_id, .. } => (connection_id.clone(), String::new()),
        ServerMessage::Error { code, message, .. } => {
            return Err(ClientError::Refused { code: *code, message: message.clone() });
        }
        ServerMessage::Redirect { url: to, .. } => return Err(ClientError::Redirected(resolve_redirect(url, to))),
        other => return Err(ClientError::Unexpected(Box::new(other.clone()))),
    };
    let (commands, mut command_rx) = mpsc::unbounded_channel::<Command>();
    let (event_tx, events) = mpsc::unbounded_channel();
    let pending: Pending = Arc::default();
    let reader_pending = pending.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                cmd = command_rx.recv() => match cmd {
                    Some(Command::Text(t)) => { if sink.send(Message::Text(t.into())).await.is_err() { break; } }
                    Some(Command::Abort) | None => break,
                },
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        let Ok(msg) = serde_json::from_str::<ServerMessage>(&t) else { continue };
                        let reply_to = match &msg {
                            ServerMessage::Ack { id } => Some(*id),
                            ServerMessage::Published { id: Some(id), .. } | ServerMessage::Error { id: Some(id), .. } => Some(*id),
                            _ => None,
                        };
                        let waiter = reply_to.and_then(|id| reader_pending.lock().unwrap().remove(&id));
                        match waiter {
                            Some(w) => { let _ = w.send(msg); }
                            None => { let _ = event_tx.send(msg); }
                        }
                    }
                    Some(Ok(Message::Ping(p))) => { let _ = sink.send(Message::Pong(p)).await; }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
            }
        }
        reader_pending.lock().unwrap().clear();
    });
    let client = Client {
        connection_id,
        resume_token,
        welcome: welcome.clone(),
        commands,
        events,
        pending,
        next_id: AtomicU64::new(1),
        request_timeout: Duration::from_secs(10),
        url: url.to_owned(),
    };
    Ok((client, welcome))
}

impl Client {
    /// Connects to `url` (`ws://host:port/v1/signal` or `wss://…`) and joins the session.
    /// Joins `session_id`. In cluster mode a node may answer `redirect` to the node that
    /// hosts the session; the client follows up to three redirects. [`Client::url`] is where
    /// it ended up.
    pub async fn connect(url: &str, session_id: &str, token: &str) -> Result<Client, ClientError> {
        let mut url = url.to_owned();
        for _ in 0..4 {
            let first = ClientMessage::Connect {
                v: PROTOCOL_VERSION,
                session_id: session_id.to_owned(),
                token: token.to_owned(),
            };
            match open(&url, first).await {
                Err(ClientError::Redirected(to)) => url = to,
                Ok((mut c, _)) => {
                    c.url = url;
                    return Ok(c);
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Refused { code: ErrorCode::Draining, message: "too many redirects".into() })
    }

    /// The reconnection logic after a drop: first take the connection back on its node
    /// (`resume`, same connection ID); if that node is gone (cluster mode), join again through
    /// each entry URL in turn (a load balancer or any node; redirects are followed), retrying
    /// until `within` has passed. Returns the new client and whether it is a fresh join.
    pub async fn reconnect(
        old: &Client,
        entry_urls: &[String],
        session_id: &str,
        token: &str,
        within: Duration,
    ) -> Result<(Client, bool), ClientError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut last = ClientError::Closed;
        loop {
            if !old.resume_token.is_empty() {
                match Client::resume(&old.url, &old.connection_id, &old.resume_token).await {
                    Ok(c) => return Ok((c, false)),
                    Err(e) => last = e,
                }
            }
            for url in entry_urls {
                match Client::connect(url, session_id, token).await {
                    Ok(c) => return Ok((c, true)),
                    // A refusal for the token itself will not change by retrying.
                    Err(
                        e @ ClientError::Refused {
                            code:
                                ErrorCode::TokenRevoked
                                | ErrorCode::InvalidToken
                                | ErrorCode::TokenExpired
                                | ErrorCode::SessionEnded,
                            ..
                        },
                    ) => return Err(e),
                    Err(e) => last = e,
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Takes back a connection after a network drop, within the server's reconnect grace.
    pub async fn resume(url: &str, connection_id: &str, resume_token: &str) -> Result<Client, ClientError> {
        let first = ClientMessage::Resume {
            v: PROTOCOL_VERSION,
            connection_id: connection_id.to_owned(),
            resume_token: resume_token.to_owned(),
        };
        let (mut c, _) = open(url, first).await?;
        c.resume_token = resume_token.to_owned();
        Ok(c)
    }

    /// Everyone else who was connected when this client joined.
    pub fn initial_connections(&self) -> Vec<ConnectionInfo> {
        match &self.welcome {
            ServerMessage::Connected { connections, .. } | ServerMessage::Resumed { connections, .. } => {
                connections.clone()
            }
            _ => Vec::new(),
        }
    }

    pub fn initial_streams(&self) -> Vec<StreamInfo> {
        match &self.welcome {
            ServerMessage::Connected { streams, .. } | ServerMessage::Resumed { streams, .. } => streams.clone(),
            _ => Vec::new(),
        }
    }

    /// Sends a raw text frame (tests use it to send malformed input).
    pub fn send_raw(&self, text: impl Into<String>) -> Result<(), ClientError> {
        self.commands.send(Command::Text(text.into())).map_err(|_| ClientError::Closed)
    }

    /// Sends without waiting for a reply (SDP, ICE, ping).
    pub fn send(&self, msg: ClientMessage) -> Result<(), ClientError> {
        self.send_raw(serde_json::to_string(&ClientEnvelope { id: None, msg }).expect("serializes"))
    }

    /// Sends with a request ID and waits for its `ack`, `published` or `error`.
    pub async fn request(&self, msg: ClientMessage) -> Result<ServerMessage, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.send_raw(serde_json::to_string(&ClientEnvelope { id: Some(id), msg }).expect("serializes"))?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Err(_) => Err(ClientError::Timeout("a reply")),
            Ok(Err(_)) => Err(ClientError::Closed),
            Ok(Ok(ServerMessage::Error { code, message, .. })) => Err(ClientError::Refused { code, message }),
            Ok(Ok(reply)) => Ok(reply),
        }
    }

    pub async fn publish(&self, o: PublishOptions) -> Result<StreamInfo, ClientError> {
        match self
            .request(ClientMessage::Publish {
                name: o.name,
                has_audio: o.has_audio,
                has_video: o.has_video,
                video_type: o.video_type,
            })
            .await?
        {
            ServerMessage::Published { stream, .. } => Ok(stream),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    async fn acked(&self, msg: ClientMessage) -> Result<(), ClientError> {
        self.request(msg).await.map(|_| ())
    }

    pub async fn unpublish(&self, stream_id: &str) -> Result<(), ClientError> {
        self.acked(ClientMessage::Unpublish { stream_id: stream_id.into() }).await
    }
    pub async fn set_stream_property(
        &self,
        stream_id: &str,
        has_audio: Option<bool>,
        has_video: Option<bool>,
    ) -> Result<(), ClientError> {
        self.acked(ClientMessage::SetStreamProperty { stream_id: stream_id.into(), has_audio, has_video }).await
    }
    pub async fn subscribe(&self, stream_id: &str) -> Result<(), ClientError> {
        self.acked(ClientMessage::Subscribe { stream_id: stream_id.into() }).await
    }
    pub async fn unsubscribe(&self, stream_id: &str) -> Result<(), ClientError> {
        self.acked(ClientMessage::Unsubscribe { stream_id: stream_id.into() }).await
    }
    pub async fn signal(&self, to: Option<&str>, signal_type: &str, data: &str) -> Result<(), ClientError> {
        self.acked(ClientMessage::Signal { to: to.map(Into::into), signal_type: signal_type.into(), data: data.into() })
            .await
    }
    pub async fn force_disconnect(&self, connection_id: &str) -> Result<(), ClientError> {
        self.acked(ClientMessage::ForceDisconnect { connection_id: connection_id.into() }).await
    }
    pub async fn force_unpublish(&self, stream_id: &str) -> Result<(), ClientError> {
        self.acked(ClientMessage::ForceUnpublish { stream_id: stream_id.into() }).await
    }
    pub async fn force_mute(&self, stream_id: &str) -> Result<(), ClientError> {
        self.acked(ClientMessage::ForceMute { stream_id: stream_id.into() }).await
    }
    pub async fn force_mute_all(&self, excluded_stream_ids: Vec<String>) -> Result<(), ClientError> {
        self.acked(ClientMessage::ForceMuteAll { excluded_stream_ids }).await
    }
    pub async fn disable_force_mute(&self) -> Result<(), ClientError> {
        self.acked(ClientMessage::DisableForceMute).await
    }

    /// Leaves on purpose; the others see `clientDisconnected`.
    pub async fn disconnect(mut self) -> Result<(), ClientError> {
        self.send(ClientMessage::Disconnect)?;
        let _ = self.wait_for(|m| matches!(m, ServerMessage::SessionDisconnected { .. }), Duration::from_secs(5)).await;
        Ok(())
    }

    /// Drops the socket without a goodbye, as a network failure would (for tests).
    pub fn drop_network(self) {
        let _ = self.commands.send(Command::Abort);
    }

    /// The next event, or `None` once the socket is closed.
    pub async fn next_event(&mut self) -> Option<ServerMessage> {
        self.events.recv().await
    }

    /// Skips events until one matches, or fails after `timeout`.
    pub async fn wait_for(
        &mut self,
        pred: impl Fn(&ServerMessage) -> bool,
        timeout: Duration,
    ) -> Result<ServerMessage, ClientError> {
        tokio::time::timeout(timeout, async {
            while let Some(m) = self.events.recv().await {
                if pred(&m) {
                    return Ok(m);
                }
            }
            Err(ClientError::Closed)
        })
        .await
        .map_err(|_| ClientError::Timeout("an event"))?
    }

    /// Waits for this client to be disconnected by the server, returning the reason.
    pub async fn wait_disconnected(&mut self, timeout: Duration) -> Result<DisconnectReason, ClientError> {
        match self.wait_for(|m| matches!(m, ServerMessage::SessionDisconnected { .. }), timeout).await? {
            ServerMessage::SessionDisconnected { reason } => Ok(reason),
            _ => unreachable!("filtered above"),
        }
    }
}
