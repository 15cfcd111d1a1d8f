//! The hub: live rooms, the sockets attached to them, and delivery of room outputs.
//!
//! Owns: the map of live sessions, per-connection outbound queues, token revocation (in
//! memory for immediate effect, and in the store so it survives restarts), and the sweeper
//! that expires suspended connections. Must not touch: socket framing (`ws`) or the rules
//! inside a session (`room`).

use super::room::{ConnId, IdSource, JoinRequest, Output, Room, RoomError, SessionEvent, SessionMeta};
use crate::auth::{AuthFailure, verify_client_token};
use crate::clock;
use conclave_core::pii::PiiPolicy;
use conclave_core::signal::{ClientEnvelope, ConnectionInfo, DisconnectReason, ErrorCode, ServerMessage, StreamInfo};
use conclave_store::Store;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

pub use super::outbound::{Outbound, OutboundRx, OutboundTx};

#[derive(Debug, Clone)]
pub struct SignalConfig {
    pub heartbeat: Duration,
    pub reconnect_grace: Duration,
    pub connect_timeout: Duration,
    pub messages_per_sec: u32,
    pub burst: u32,
    pub max_strikes: u32,
    pub outbound_queue: usize,
    pub turn: Option<TurnConfig>,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            heartbeat: Duration::from_secs(15),
            reconnect_grace: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            messages_per_sec: 50,
            burst: 100,
            max_strikes: 20,
            outbound_queue: 512,
            turn: None,
        }
    }
}

/// TURN servers handed to clients, with coturn `use-auth-secret` credentials.
#[derive(Clone)]
pub struct TurnConfig {
    pub urls: Vec<String>,
    pub secret: zeroize::Zeroizing<String>,
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("secret", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A session-monitoring event with the project and session it belongs to.
#[derive(Debug, Clone)]
pub struct HubEvent {
    pub api_key: String,
    pub session_id: String,
    pub event: SessionEvent,
    pub at_ms: u64,
}

pub(super) struct LiveRoom {
    pub(super) room: Room,
    pub(super) senders: HashMap<ConnId, OutboundTx>,
}

pub struct Hub {
    store: Arc<dyn Store>,
    pub config: SignalConfig,
    rooms: Mutex<HashMap<String, Arc<Mutex<LiveRoom>>>>,
    conn_index: Mutex<HashMap<ConnId, String>>,
    /// Revoked token fingerprints with the unix time their token expires (then they go).
    revoked: Mutex<HashMap<[u8; 32], u64>>,
    events: Option<mpsc::UnboundedSender<HubEvent>>,
    draining: std::sync::atomic::AtomicBool,
    metrics: Arc<crate::metrics::Metrics>,
    pub(super) media: Option<crate::media::MediaPool>,
    /// Routed subscriptions waiting for both media peers to exist: (connection, stream).
    pub(super) pending_media: Mutex<HashSet<(String, String)>>,
    /// Connections whose receiving connection got its `mediaAnswer`: only then may the SFU
    /// send them offers (an offer before that answer would break the client's negotiation).
    pub(super) receivers_ready: Mutex<HashSet<String>>,
    /// Subscriptions with their own SFU peer (OpenTok.js) waiting for their publisher's peer:
    /// subscriber ID → (connection, stream, audio fallback on).
    pub(super) pending_peers: Mutex<HashMap<String, (ConnId, String, bool)>>,
    /// This hub, for the tasks that await the SFU's replies.
    pub(super) me: std::sync::Weak<Hub>,
    /// OpenTok.js `socketId` → the connection a reconnecting socket may take back.
    pub(super) socket_ids: Mutex<HashMap<String, ConnId>>,
}

struct RandomIds;

impl IdSource for RandomIds {
    fn next_id(&mut self) -> String {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).expect("the OS CSPRNG is available");
        conclave_core::ids::uuid_v4(b)
    }
}

/// Moderator actions go to the audit log: (action, target, detail).
fn moderation_audit(msg: &conclave_core::signal::ClientMessage) -> Option<(&'static str, String, serde_json::Value)> {
    use conclave_core::signal::ClientMessage as M;
    match msg {
        M::ForceDisconnect { connection_id } => {
            Some(("connection.force_disconnect", connection_id.clone(), serde_json::json!({})))
        }
        M::ForceUnpublish { stream_id } => Some(("stream.force_unpublish", stream_id.clone(), serde_json::json!({}))),
        M::ForceMute { stream_id } => Some(("stream.force_mute", stream_id.clone(), serde_json::json!({}))),
        M::ForceMuteAll { excluded_stream_ids } => Some((
            "session.mute_all",
            String::new(),
            serde_json::json!({"active": true, "excludedStreamIds": excluded_stream_ids}),
        )),
        M::DisableForceMute => Some(("session.mute_all", String::new(), serde_json::json!({"active": false}))),
        _ => None,
    }
}

/// How revocations were keyed before they keyed on the token's meaning (the SHA-256 of the
/// string as sent): still checked, so a kick made before an upgrade holds after it.
fn legacy_fingerprint(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn serialize(msg: &ServerMessage) -> Arc<str> {
    serde_json::to_string(msg).expect("server messages serialize").into()
}

/// Queues a message for one attached connection. A reader too slow to keep up is detached and
/// suspended in the same step (its socket closes; the reconnect grace runs, then it leaves),
/// so it can never hold a seat, keep a room alive or miss its `connectionDestroyed`.
fn push(live: &mut LiveRoom, conn: &str, msg: Arc<ServerMessage>) {
    let Some(tx) = live.senders.get(conn) else { return };
    if tx.send(msg).is_err() {
        tracing::warn!(connection = %conn, "outbound queue full: closing the socket, the reconnect grace starts");
        live.senders.remove(conn);
        live.room.suspend(conn, clock::unix_ms());
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    pub fn new(
        store: Arc<dyn Store>,
        config: SignalConfig,
        events: Option<mpsc::UnboundedSender<HubEvent>>,
        metrics: Arc<crate::metrics::Metrics>,
        media: Option<crate::media::MediaPool>,
    ) -> Arc<Hub> {
        Arc::new_cyclic(|me| Hub {
            me: me.clone(),
            store,
            config,
            rooms: Default::default(),
            conn_index: Default::default(),
            revoked: Default::default(),
            events,
            draining: Default::default(),
            metrics,
            media,
            pending_media: Default::default(),
            receivers_ready: Default::default(),
            pending_peers: Default::default(),
            socket_ids: Default::default(),
        })
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Live sessions, connections and streams, for `/metrics`.
    pub fn stats(&self) -> (u64, u64, u64) {
        let rooms: Vec<Arc<Mutex<LiveRoom>>> = lock(&self.rooms).values().cloned().collect();
        let (mut conns, mut streams) = (0, 0);
        for cell in &rooms {
            let live = lock(cell);
            conns += live.room.participant_count() as u64;
            streams += live.room.streams().len() as u64;
        }
        (rooms.len() as u64, conns, streams)
    }

    /// Starts the sweeper that expires suspended connections and drops empty rooms, and
    /// (every few minutes) purges stored revocations of tokens that have expired anyway.
    pub fn spawn_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut ticks: u64 = 0;
            loop {
                tick.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                hub.sweep();
                ticks += 1;
                if ticks % 600 == 1 {
                    let before = clock::unix_secs().saturating_sub(conclave_core::CLOCK_SKEW_SECS);
                    match hub.store.purge_revocations(before).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(purged = n, "expired token revocations purged"),
                        Err(e) => tracing::warn!(error = %e, "purging expired revocations failed"),
                    }
                }
            }
        })
    }

    /// The media worker of a session's peers.
    pub(super) fn media_of_session(&self, session_id: &str) -> Option<crate::media::MediaHandle> {
        Some(self.media.as_ref()?.for_session(session_id).clone())
    }

    /// The media worker of a live connection's session (`None` once it left).
    pub(super) fn media_of_conn(&self, conn: &str) -> Option<crate::media::MediaHandle> {
        let session_id = lock(&self.conn_index).get(conn).cloned()?;
        self.media_of_session(&session_id)
    }

    /// Every live room, for the rare events that do not name their session.
    pub(super) fn live_rooms(&self) -> Vec<Arc<Mutex<LiveRoom>>> {
        lock(&self.rooms).values().cloned().collect()
    }

    fn sweep(&self) {
        // Revocations outlive nothing: an expired token is refused anyway.
        let now = clock::unix_secs();
        lock(&self.revoked).retain(|_, expires_at| *expires_at + conclave_core::CLOCK_SKEW_SECS >= now);
        let grace = self.config.reconnect_grace.as_millis() as u64;
        let rooms: Vec<(String, Arc<Mutex<LiveRoom>>)> =
            lock(&self.rooms).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (sid, cell) in rooms {
            let mut live = lock(&cell);
            let out = live.room.expire_suspended(clock::unix_ms(), grace);
            self.deliver(&mut live, out);
            if live.room.is_empty() {
                drop(live);
                let mut rooms = lock(&self.rooms);
                if rooms.get(&sid).is_some_and(|c| lock(c).room.is_empty()) {
                    rooms.remove(&sid);
                }
            }
        }
    }

    /// Delivers outputs in order, under the room lock, so every client sees one order.
    pub(super) fn deliver(&self, live: &mut LiveRoom, outputs: Vec<Output>) {
        let meta = live.room.meta().clone();
        for o in outputs {
            match o {
                Output::Send { to, msg } => {
                    let msg = Arc::new(msg);
                    for c in to {
                        push(live, &c, msg.clone());
                    }
                }
                Output::Close { conn, reason } => {
                    if let Some(tx) = live.senders.remove(&conn) {
                        tx.close(reason);
                    }
                    lock(&self.conn_index).remove(&conn);
                }
                Output::Media(intent) => self.apply_media(&meta.session_id, intent),
                Output::Revoke { fingerprint, expires_at } => {
                    lock(&self.revoked).insert(fingerprint, expires_at);
                    let store = self.store.clone();
                    let (api_key, session_id) = (meta.api_key.clone(), meta.session_id.clone());
                    tokio::spawn(async move {
                        if let Err(e) = store.revoke_token(&fingerprint, &api_key, &session_id, expires_at).await {
                            tracing::error!(error = %e, "persisting a token revocation failed (it holds in memory until restart)");
                        }
                    });
                }
                Output::Event(event) => {
                    if let SessionEvent::ConnectionDestroyed { connection, .. } = &event {
                        lock(&self.socket_ids).retain(|_, c| c != &connection.connection_id);
                    }
                    if let Some(events) = &self.events {
                        let _ = events.send(HubEvent {
                            api_key: meta.api_key.clone(),
                            session_id: meta.session_id.clone(),
                            event,
                            at_ms: clock::unix_ms(),
                        });
                    }
                }
            }
        }
    }

    /// Whether this verified token was revoked (its participant was kicked), under its
    /// meaning or under the string hash older revocations were stored with.
    pub async fn token_revoked(&self, claims: &conclave_core::ClientClaims, token: &str) -> Result<bool, RoomError> {
        Ok(self.is_revoked(&claims.revocation_id).await? || self.is_revoked(&legacy_fingerprint(token)).await?)
    }

    async fn is_revoked(&self, fingerprint: &[u8; 32]) -> Result<bool, RoomError> {
        if lock(&self.revoked).contains_key(fingerprint) {
            return Ok(true);
        }
        self.store.is_token_revoked(fingerprint).await.map_err(|e| {
            tracing::error!(error = %e, "revocation lookup failed");
            RoomError::new(ErrorCode::InvalidToken, "token check unavailable; try again")
        })
    }

    /// The live room of a session, created on its first join.
    fn room_for(&self, meta: SessionMeta) -> Arc<Mutex<LiveRoom>> {
        let mut rooms = lock(&self.rooms);
        let cell = rooms.entry(meta.session_id.clone()).or_insert_with(|| {
            Arc::new(Mutex::new(LiveRoom { room: Room::new(meta, Box::new(RandomIds)), senders: HashMap::new() }))
        });
        cell.clone()
    }

    /// Shutting down: refuse new joins, and close every socket so clients reconnect once
    /// the server (or another node) is back.
    pub fn drain(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::SeqCst);
        let rooms: Vec<Arc<Mutex<LiveRoom>>> = lock(&self.rooms).values().cloned().collect();
        for cell in rooms {
            let mut live = lock(&cell);
            for (_, tx) in live.senders.drain() {
                tx.close(DisconnectReason::NetworkDisconnected);
            }
        }
        tracing::info!("signaling drained: new joins refused, sockets closed");
    }

    /// Verifies the token and joins. Returns the connection ID and the `connected` reply.
    pub async fn connect(
        &self,
        session_id: &str,
        token: &str,
        requested_id: Option<ConnId>,
        tx: OutboundTx,
    ) -> Result<(ConnId, ServerMessage), RoomError> {
        let result = self.try_connect(session_id, token, requested_id, tx).await;
        crate::metrics::inc(if result.is_ok() {
            &self.metrics.counters.joins
        } else {
            &self.metrics.counters.joins_refused
        });
        result
    }

    async fn try_connect(
        &self,
        session_id: &str,
        token: &str,
        requested_id: Option<ConnId>,
        tx: OutboundTx,
    ) -> Result<(ConnId, ServerMessage), RoomError> {
        if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(RoomError::new(ErrorCode::Draining, "the server is shutting down; reconnect shortly"));
        }
        let now = clock::unix_secs();
        let (claims, session, pii_policy, max_participants) =
            match verify_client_token(self.store.as_ref(), token, session_id, now).await {
                Ok(ok) => (ok.claims, ok.session, ok.pii_policy, ok.max_participants),
                Err(AuthFailure::Rejected(e)) => {
                    return Err(RoomError::new(ErrorCode::for_token_error(&e), e.to_string()));
                }
                Err(AuthFailure::Store(e)) => {
                    tracing::error!(error = %e, "store failed while verifying a token");
                    return Err(RoomError::new(ErrorCode::InvalidToken, "token check unavailable; try again"));
                }
            };
        let found = claims.connection_data.as_deref().map(conclave_core::pii::scan).unwrap_or_default();
        if !found.is_empty() {
            // The kinds only: the data itself is exactly what must not reach a log.
            match pii_policy {
                PiiPolicy::Off => {}
                PiiPolicy::Warn => crate::metrics::inc(&self.metrics.counters.personal_data_warnings),
                PiiPolicy::Reject => {}
            }
            match pii_policy {
                PiiPolicy::Off => {}
                PiiPolicy::Warn => {
                    tracing::warn!(session_id, api_key = %session.api_key, kinds = ?found, "connection data looks like personal data; use an opaque ID")
                }
                PiiPolicy::Reject => {
                    tracing::info!(session_id, kinds = ?found, "join refused: personal data in connection data");
                    return Err(RoomError::new(
                        ErrorCode::PersonalData,
                        format!(
                            "the token's connection data looks like personal data ({found:?}); put an opaque ID there instead"
                        ),
                    ));
                }
            }
        }
        let fingerprint = claims.revocation_id;
        if self.token_revoked(&claims, token).await? {
            return Err(RoomError::new(
                ErrorCode::TokenRevoked,
                "this token was revoked when its participant was removed; ask for a new one",
            ));
        }
        let cell = self.room_for(SessionMeta {
            session_id: session_id.to_owned(),
            api_key: session.api_key.clone(),
            media_mode: session.media_mode,
            max_participants,
        });
        let mut live = lock(&cell);
        // A client-chosen connection ID must be new on this node, not only in this room: it
        // names SFU peers and routes REST calls.
        if requested_id.as_ref().is_some_and(|id| lock(&self.conn_index).contains_key(id)) {
            return Err(RoomError::new(ErrorCode::InvalidArgument, "that connection ID is taken"));
        }
        let req = JoinRequest {
            role: claims.role,
            data: claims.connection_data.clone().unwrap_or_default(),
            layout_classes: claims.initial_layout_classes.clone(),
            token_fingerprint: fingerprint,
            token_expires_at: claims.expires_at,
            connection_id: requested_id,
        };
        let (conn, outputs) = live.room.join(req, clock::unix_ms())?;
        live.senders.insert(conn.clone(), tx);
        lock(&self.conn_index).insert(conn.clone(), session_id.to_owned());
        self.deliver(&mut live, outputs);
        let (connections, streams) = live.room.snapshot_for(&conn);
        let reply = ServerMessage::Connected {
            connection_id: conn.clone(),
            resume_token: live.room.resume_token(&conn).unwrap_or_default().to_owned(),
            session_id: session_id.to_owned(),
            role: claims.role,
            data: claims.connection_data.unwrap_or_default(),
            media_mode: session.media_mode,
            heartbeat_ms: self.config.heartbeat.as_millis() as u64,
            reconnect_grace_ms: self.config.reconnect_grace.as_millis() as u64,
            connections,
            streams,
            ice_servers: self.ice_servers(&conn),
            e2ee: session.e2ee,
            mute_all: live.room.mute_all_active(),
        };
        tracing::info!(session_id, connection = %conn, role = %claims.role, "connected");
        Ok((conn, reply))
    }

    /// TURN credentials for one connection, valid for the configured TTL.
    pub fn ice_servers_for(&self, conn: &str) -> Vec<conclave_core::signal::IceServer> {
        self.ice_servers(conn)
    }

    fn ice_servers(&self, conn: &str) -> Vec<conclave_core::signal::IceServer> {
        let Some(turn) = &self.config.turn else { return Vec::new() };
        let expires = clock::unix_secs() + turn.ttl.as_secs();
        let (username, credential) = conclave_core::signal::turn_credentials(turn.secret.as_bytes(), conn, expires);
        vec![conclave_core::signal::IceServer {
            urls: turn.urls.clone(),
            username: Some(username),
            credential: Some(credential),
        }]
    }

    pub(super) fn cell_of(&self, conn: &str) -> Option<Arc<Mutex<LiveRoom>>> {
        let sid = lock(&self.conn_index).get(conn).cloned()?;
        lock(&self.rooms).get(&sid).cloned()
    }

    /// Takes back a suspended connection on a new socket.
    pub fn resume(&self, conn: &str, resume_token: &str, tx: OutboundTx) -> Result<ServerMessage, RoomError> {
        let failed = || RoomError::new(ErrorCode::ResumeFailed, "unknown connection or resume token; connect again");
        let cell = self.cell_of(conn).ok_or_else(failed)?;
        let mut live = lock(&cell);
        let expected = live.room.resume_token(conn).ok_or_else(failed)?;
        if !bool::from(expected.as_bytes().ct_eq(resume_token.as_bytes())) {
            return Err(failed());
        }
        live.room.resume(conn)?;
        if let Some(old) = live.senders.insert(conn.to_owned(), tx) {
            old.close(DisconnectReason::NetworkDisconnected);
        }
        let (connections, streams) = live.room.snapshot_for(conn);
        Ok(ServerMessage::Resumed { connection_id: conn.to_owned(), connections, streams })
    }

    /// A message from a connected socket.
    pub fn handle(self: &Arc<Self>, conn: &str, env: ClientEnvelope) -> Result<(), RoomError> {
        use conclave_core::signal::ClientMessage as M;
        let cell = self.cell_of(conn).ok_or_else(|| RoomError::new(ErrorCode::NotConnected, "not connected"))?;
        let mut live = lock(&cell);
        if let M::MediaOffer { .. } | M::MediaAnswer { .. } = &env.msg {
            let stream = match &env.msg {
                M::MediaOffer { stream_id, .. } => stream_id.as_deref(),
                _ => None,
            };
            live.room.check_media(conn, stream)?;
            let media = self
                .media_of_conn(conn)
                .ok_or_else(|| RoomError::new(ErrorCode::RoutedOnly, "this server runs no SFU"))?;
            drop(live);
            self.negotiate(&media, conn, env.id, env.msg);
            return Ok(());
        }
        let audit = moderation_audit(&env.msg);
        let out = live.room.handle(conn, env.msg, env.id, clock::unix_ms())?;
        if let Some((action, target, detail)) = audit {
            let meta = live.room.meta().clone();
            let store = self.store.clone();
            let actor = crate::audit::Actor::moderator(conn);
            let target = format!("{}/{target}", meta.session_id);
            tokio::spawn(async move {
                crate::audit::record(store.as_ref(), &actor, Some(&meta.api_key), action, &target, detail).await
            });
        }
        self.deliver(&mut live, out);
        Ok(())
    }

    /// Sends one message to one connection, if it is attached.
    pub(super) fn send_to(&self, conn: &str, msg: &ServerMessage) {
        if let Some(cell) = self.cell_of(conn) {
            push(&mut lock(&cell), conn, Arc::new(msg.clone()));
        }
    }

    /// The socket is gone without a goodbye: start the reconnect grace period.
    pub fn socket_lost(&self, conn: &str, tx: &OutboundTx) {
        if let Some(cell) = self.cell_of(conn) {
            let mut live = lock(&cell);
            // Only if this socket is still the connection's current one.
            if live.senders.get(conn).is_some_and(|cur| cur.same_channel(tx)) {
                live.senders.remove(conn);
                live.room.suspend(conn, clock::unix_ms());
            }
        }
    }

    /// Removes a connection now (abuse, or a drop with no grace).
    pub fn leave(&self, conn: &str, reason: DisconnectReason) {
        if let Some(cell) = self.cell_of(conn) {
            let mut live = lock(&cell);
            let out = live.room.leave(conn, reason);
            self.deliver(&mut live, out);
        }
    }

    fn live_room(&self, session_id: &str) -> Option<Arc<Mutex<LiveRoom>>> {
        lock(&self.rooms).get(session_id).cloned()
    }

    /// Runs `f` on a live session's room and delivers its outputs. `None`: nobody is connected.
    pub fn with_room<T>(
        &self,
        session_id: &str,
        f: impl FnOnce(&mut Room) -> Result<(T, Vec<Output>), RoomError>,
    ) -> Option<Result<T, RoomError>> {
        let cell = self.live_room(session_id)?;
        let mut live = lock(&cell);
        Some(f(&mut live.room).map(|(t, out)| {
            self.deliver(&mut live, out);
            t
        }))
    }

    /// Sends a server-originated message to everyone connected to a session.
    pub fn broadcast(&self, session_id: &str, msg: ServerMessage) {
        self.with_room(session_id, |room| Ok(((), room.broadcast(msg))));
    }

    pub fn connections(&self, session_id: &str) -> Vec<ConnectionInfo> {
        self.live_room(session_id).map(|c| lock(&c).room.connections()).unwrap_or_default()
    }

    pub fn streams(&self, session_id: &str) -> Vec<StreamInfo> {
        self.live_room(session_id).map(|c| lock(&c).room.streams()).unwrap_or_default()
    }

    /// Ends a session everywhere: the store refuses its tokens from now on, and everyone
    /// connected is disconnected.
    pub async fn end_session(&self, session_id: &str) -> Result<bool, conclave_store::StoreError> {
        let changed = self.store.end_session(session_id, clock::unix_ms()).await?;
        self.with_room(session_id, |room| Ok(((), room.end())));
        Ok(changed)
    }
}
