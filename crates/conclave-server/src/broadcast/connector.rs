//! The Audio Connector (OpenTok's `POST /connect`): the session's audio, decoded from the
//! SFU's taps and mixed, sent to a customer's WebSocket as 16-bit little-endian mono PCM in
//! 20 ms binary messages (640 bytes at 16 kHz, 320 at 8 kHz), after a first text message
//! `{"event":"websocket:connected","content-type":"audio/l16;rate=…", …headers}`. The
//! connection joins the session with the client token it was given, so it is a participant
//! others see, and a force-disconnect of it, the session's end or `…/connect/{id}/stop`
//! closes the socket.
//!
//! Owns: the running connections, their decoders, taps and sockets. Must not touch: URL
//! policy (`target`), REST parsing. Never logs the URI's query, the headers or the token.

use super::{BroadcastError, Broadcaster};
use crate::media::publisher_peer;
use crate::signal::outbound::{self, Outbound};
use conclave_archive::live::AudioDecoder;
use conclave_core::broadcast::{ConnectJson, ConnectRequest};
use conclave_core::signal::{DisconnectReason, StreamInfo};
use conclave_media::{MediaKind, RecordedFrame};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// OpenTok gives a WebSocket six seconds to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(6);
const FRAME: Duration = Duration::from_millis(20);

type Decoders = Arc<Mutex<HashMap<String, AudioDecoder>>>;

struct Connector {
    api_key: String,
    session_id: String,
    connection_id: String,
    /// `None`: every stream of the session.
    streams: Option<Vec<String>>,
    rate: u32,
    decoders: Decoders,
    stop: Arc<tokio::sync::Notify>,
    media: crate::media::MediaHandle,
}

/// The node's audio connections.
#[derive(Default)]
pub struct Connectors {
    all: Mutex<HashMap<String, Arc<Connector>>>,
}

impl Connectors {
    fn tap(c: &Connector, id: &str, stream_id: &str) {
        let Ok(dec) = AudioDecoder::start(c.rate) else { return };
        lock(&c.decoders).insert(stream_id.to_owned(), dec);
        let decoders = c.decoders.clone();
        let sid = stream_id.to_owned();
        let sink: crate::media::FrameSink = Arc::new(move |f: &Arc<RecordedFrame>| {
            if f.kind == MediaKind::Audio
                && let Some(d) = lock(&decoders).get(&sid)
            {
                d.push(&f.data);
            }
        });
        c.media.tap(publisher_peer(stream_id), id.to_owned(), Some(sink));
    }

    pub(super) fn on_stream_created(&self, s: &StreamInfo, session_id: &str) {
        let all: Vec<(String, Arc<Connector>)> =
            lock(&self.all).iter().map(|(id, c)| (id.clone(), c.clone())).collect();
        for (id, c) in all {
            let wanted = c.streams.as_ref().is_none_or(|l| l.contains(&s.stream_id));
            if c.session_id == session_id && wanted && s.has_audio && !lock(&c.decoders).contains_key(&s.stream_id) {
                Self::tap(&c, &id, &s.stream_id);
            }
        }
    }

    pub(super) fn on_stream_destroyed(&self, stream_id: &str, session_id: &str) {
        for (id, c) in lock(&self.all).iter().filter(|(_, c)| c.session_id == session_id) {
            if lock(&c.decoders).remove(stream_id).is_some() {
                c.media.tap(publisher_peer(stream_id), id.clone(), None);
            }
        }
    }

    /// Connections whose participant left (kicked, session ended) are stopped by their task;
    /// nothing to sweep but finished entries.
    pub(super) async fn sweep(&self) {}

    pub(super) async fn stop_all(&self) {
        let all: Vec<Arc<Connector>> = lock(&self.all).values().cloned().collect();
        for c in all {
            c.stop.notify_one();
        }
    }

    pub fn count(&self) -> usize {
        lock(&self.all).len()
    }
}

impl Broadcaster {
    /// `POST …/connect`: 200 with `{id, connectionId}` once the WebSocket accepted.
    pub async fn connect(self: &Arc<Self>, api_key: &str, req: ConnectRequest) -> Result<ConnectJson, BroadcastError> {
        self.routed_session(api_key, &req.session_id).await?;
        if self.connectors.count() >= self.config.max_connectors {
            return Err(BroadcastError::TooMany(
                "this node runs as many audio connections as it may; try later".into(),
            ));
        }
        let (url, addr) =
            super::target::check_websocket(&req.uri, self.config.outbound).await.map_err(BroadcastError::Invalid)?;
        // The token first: nothing goes out on behalf of a token that does not admit.
        let (tx, mut rx) = outbound::channel(256);
        let (conn, _) = self.hub.connect(&req.session_id, &req.token, None, tx).await.map_err(|e| {
            BroadcastError::Forbidden(format!("the token does not admit a connection to this session: {}", e.message))
        })?;
        let socket = match open_socket(&url, addr, &req.session_id, &conn).await {
            Ok(s) => s,
            Err(e) => {
                self.hub.leave(&conn, DisconnectReason::ClientDisconnected);
                return Err(BroadcastError::Gateway(format!("the WebSocket did not accept the connection: {e}")));
            }
        };
        let id = conclave_core::broadcast::make_id(
            self.config.node_id.as_deref(),
            &uuid::Uuid::new_v4().simple().to_string(),
        );
        let media = self.media.as_ref().map(|m| m.for_session(&req.session_id).clone());
        let Some(media) = media else { return Err(BroadcastError::Conflict("this server runs without media".into())) };
        let c = Arc::new(Connector {
            api_key: api_key.to_owned(),
            session_id: req.session_id.clone(),
            connection_id: conn.clone(),
            streams: req.streams.clone(),
            rate: req.audio_rate,
            decoders: Arc::default(),
            stop: Arc::new(tokio::sync::Notify::new()),
            media,
        });
        lock(&self.connectors.all).insert(id.clone(), c.clone());
        for s in self.hub.streams(&req.session_id) {
            if s.has_audio && c.streams.as_ref().is_none_or(|l| l.contains(&s.stream_id)) {
                Connectors::tap(&c, &id, &s.stream_id);
            }
        }
        let mut first = req.headers.clone();
        first.insert("event".into(), "websocket:connected".into());
        first.insert("content-type".into(), format!("audio/l16;rate={}", req.audio_rate).into());
        let me = self.clone();
        let task_id = id.clone();
        tokio::spawn(async move {
            let why = run(socket, &c, serde_json::Value::Object(first).to_string(), &mut rx).await;
            tracing::info!(connection = %c.connection_id, why, "audio connection ended");
            me.end_connector(&task_id, &c).await;
        });
        tracing::info!(session = %req.session_id, connection = %conn, rate = req.audio_rate, "audio connection started");
        Ok(ConnectJson { id, connection_id: conn })
    }

    /// `POST …/connect/{id}/stop`.
    pub fn disconnect(&self, api_key: &str, id: &str) -> Result<(), BroadcastError> {
        let c = lock(&self.connectors.all)
            .get(id)
            .filter(|c| c.api_key == api_key)
            .cloned()
            .ok_or_else(|| BroadcastError::NotFound("No audio connection with this ID".into()))?;
        c.stop.notify_one();
        Ok(())
    }

    async fn end_connector(&self, id: &str, c: &Connector) {
        lock(&self.connectors.all).remove(id);
        let streams: Vec<String> = lock(&c.decoders).drain().map(|(s, _)| s).collect();
        for s in streams {
            c.media.tap(publisher_peer(&s), id.to_owned(), None);
        }
        self.hub.leave(&c.connection_id, DisconnectReason::ClientDisconnected);
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to the checked address (not a second lookup) and upgrades, within the timeout.
async fn open_socket(
    url: &reqwest::Url,
    addr: std::net::SocketAddr,
    session_id: &str,
    conn: &str,
) -> Result<Socket, String> {
    let go = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect failed ({})", e.kind()))?;
        let mut request = url.as_str().into_client_request().map_err(|_| "bad websocket.uri".to_owned())?;
        let h = request.headers_mut();
        for (k, v) in [("x-opentok-ws-sessionid", session_id), ("x-opentok-ws-connectionid", conn)] {
            if let Ok(v) = v.parse() {
                h.insert(k, v);
            }
        }
        let (ws, _) =
            tokio_tungstenite::client_async_tls_with_config(request, tcp, None, None).await.map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(r) => format!("it answered HTTP {}", r.status()),
                e => format!("handshake failed ({})", short(&e)),
            })?;
        Ok::<_, String>(ws)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, go).await.map_err(|_| "no answer within 6 s".to_owned())?
}

fn short(e: &tokio_tungstenite::tungstenite::Error) -> &'static str {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Tls(_) => "TLS",
        E::Io(_) => "I/O",
        E::Protocol(_) => "protocol",
        _ => "other",
    }
}

/// Sends the first message, then a frame every 20 ms until stopped, the socket closes or
/// the participant is removed. Returns why it ended.
async fn run(mut ws: Socket, c: &Connector, first: String, rx: &mut outbound::OutboundRx) -> &'static str {
    if ws.send(Message::Text(first.into())).await.is_err() {
        return "the socket closed";
    }
    let samples = (c.rate / 50) as usize;
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let why = loop {
        tokio::select! {
            _ = tick.tick() => {
                let mut pcm = vec![0i16; samples];
                for d in lock(&c.decoders).values() {
                    d.mix_into(&mut pcm);
                }
                let bytes = conclave_archive::live::mix::to_le_bytes(&pcm);
                if ws.send(Message::Binary(bytes.into())).await.is_err() {
                    break "the socket closed";
                }
            }
            () = c.stop.notified() => break "stopped",
            msg = ws.next() => match msg {
                // Bidirectional audio is not played into the session (see docs/broadcast.md).
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break "the WebSocket server closed it",
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Outbound::Close(_)) | Some(Outbound::Overflowed) | None => break "its participant left the session",
                Some(Outbound::Message(_)) => {}
            },
        }
    };
    let _ = ws.close(None).await;
    why
}
