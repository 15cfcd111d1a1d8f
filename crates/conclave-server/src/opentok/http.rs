//! OpenTok.js's HTTP calls: anvil (session info), the config service and the logging
//! endpoints (protocol reference §3, §4, §11), each under its own path and under the
//! `/{original host}/…` prefix that `OT.setProxyUrl` adds.
//!
//! Owns: the anvil answer (the token is verified here, and again when the socket joins), the
//! error nodes the client maps to its error codes, and CORS for any origin without
//! credentials (tokens are bearer credentials; there are no cookies). Logging bodies are
//! bounded by the router's body limit, rate-limited with every other request, never logged
//! (they carry tokens) and answered at once. Must not touch: the socket or the room.

use super::translate::SYMPHONY;
use crate::AppState;
use crate::auth::{AuthFailure, verify_client_token};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_core::token::TokenError;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Instant;

/// The path of the Rumor WebSocket named in anvil's `messaging_url`.
pub const MESSAGING_PATH: &str = "rumorwebsocketsv2";

const ALLOWED_HEADERS: &str =
    "x-opentok-auth, x-tb-version, x-tb-client-version, x-tb-connectionid, x-tb-token-auth, content-type, accept";

/// CORS for any origin, without credentials.
pub fn with_cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_HEADERS));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    r
}

/// The answer to every preflight.
pub async fn preflight() -> Response {
    with_cors(StatusCode::NO_CONTENT.into_response())
}

/// An anvil error node. It must come with a 2xx status, or the client never reads it (§4.3).
fn anvil_error(code: u16, message: &str) -> Response {
    with_cors(
        axum::Json(json!([{ "error": { "code": code, "errorMessage": { "message": message } } }])).into_response(),
    )
}

pub async fn anvil_proxied(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    Path((_host, session_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    anvil(state, peer, Path(session_id), headers).await
}

/// `GET …/session/{sessionId}?extended=true` with the token in `X-OPENTOK-AUTH`.
pub async fn anvil(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(wait) = state.limiters.connect_per_ip.check(&peer.ip().to_string(), Instant::now()) {
        crate::metrics::inc(&state.metrics.counters.rate_limited);
        return with_cors(crate::api::ApiError::too_many(wait, "source address").into_response());
    }
    let Some(token) = headers.get("x-opentok-auth").and_then(|v| v.to_str().ok()) else {
        return anvil_error(403, "missing token");
    };
    let verified = match verify_client_token(state.store.as_ref(), token, &session_id, crate::clock::unix_secs()).await
    {
        Ok(v) => v,
        Err(AuthFailure::Rejected(TokenError::SessionNotFound)) => return anvil_error(404, "session not found"),
        Err(AuthFailure::Rejected(e)) => {
            crate::metrics::inc(&state.metrics.counters.joins_refused);
            return anvil_error(403, &e.to_string());
        }
        Err(AuthFailure::Store(e)) => {
            tracing::error!(error = %e, "store failed while verifying a token at anvil");
            return anvil_error(500, "token check unavailable; try again");
        }
    };
    // A kicked participant's token is refused here already (the client reports 1004 at once).
    match state.hub.token_revoked(&verified.claims, token).await {
        Ok(false) => {}
        Ok(true) => return anvil_error(403, "this token was revoked when its participant was removed"),
        Err(e) => return anvil_error(500, &e.message),
    }
    let session = verified.session;
    // The socket goes to the node that hosts the session (cluster mode), else to this one.
    let base = match state.cluster.place(&session_id).await {
        Ok(crate::cluster::Owner::Remote(node)) if !node.url.is_empty() => node.url,
        _ => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            format!("{}://{host}", if state.tls { "https" } else { "http" })
        }
    };
    let ws_base = base.replacen("http", "ws", 1);
    let host = ws_base.split_once("://").map_or(ws_base.as_str(), |(_, h)| h).to_owned();
    let relayed = session.media_mode == conclave_core::wire::MediaMode::Relayed;
    let ice_servers: Vec<Value> = state
        .hub
        .ice_servers_for(&session_id)
        .into_iter()
        .map(|s| json!({"urls": s.urls, "username": s.username, "credential": s.credential}))
        .collect();
    let answer = json!([{
        "session_id": session.session_id,
        "partner_id": session.api_key,
        "messaging_url": format!("{ws_base}/{MESSAGING_PATH}"),
        "messaging_server_url": host,
        "symphony_address": SYMPHONY,
        "media_server_hostname": "conclave",
        "ice_servers": ice_servers,
        "properties": {
            "p2p": {"preference": {"value": if relayed { "enabled" } else { "disabled" }}},
            // Routed publishers send RID simulcast (layers q/h/f, which the SFU forwards by
            // receiver bandwidth and subscriber preference); SSRC-group simulcast it cannot.
            "simulcast": !relayed,
            "streamSimulcastRidEnabled": !relayed,
            "reconnection": true,
            "renegotiation": true,
            "e2ee": session.e2ee,
        },
    }]);
    with_cors(axum::Json(answer).into_response())
}

/// `GET …/project/{apiKey}/config.json`: nothing to override.
pub async fn config() -> Response {
    with_cors(axum::Json(json!({})).into_response())
}

/// `POST …/logging/ClientEvent` and `…/ClientQos`: accepted and dropped at once.
pub async fn logging() -> Response {
    with_cors(StatusCode::NO_CONTENT.into_response())
}
