//! The OpenTok.js wire adapter: the official `@opentok/client` (and the native SDKs, which
//! speak the same Rumor/Raptor protocol) against Conclave, unmodified, pointed here with
//! `OT.setProxyUrl(url)` or `window.OTProperties` (protocol reference §2).
//!
//! `http` answers anvil, the config service and logging; `socket` is the Rumor WebSocket;
//! `requests` maps each request onto the one room every protocol shares (through the hub's
//! adapter API); `translate` writes the room's messages in this protocol. Mixed sessions
//! (OpenTok.js beside protocol v1 clients) see each other's connections, streams and signals.
//! Must not touch: session rules (the room) or the SFU's internals.

pub mod http;
pub mod requests;
pub mod socket;
pub mod translate;

use crate::AppState;
use axum::Router;
use axum::routing::{get, post};

/// Every OpenTok.js path, bare (`OTProperties.apiURL` pointing here) and under the original
/// host that `OT.setProxyUrl` puts in front (`/anvil.opentok.com/session/…`).
pub fn router() -> Router<AppState> {
    let ws = format!("/{}", http::MESSAGING_PATH);
    let ws_proxied = format!("/{{host}}/{}", http::MESSAGING_PATH);
    Router::new()
        .route("/session/{session_id}", get(http::anvil).options(http::preflight))
        .route("/{host}/session/{session_id}", get(http::anvil_proxied).options(http::preflight))
        .route("/project/{api_key}/config.json", get(http::config).options(http::preflight))
        .route("/{host}/project/{api_key}/config.json", get(http::config).options(http::preflight))
        .route("/logging/{kind}", post(http::logging).options(http::preflight))
        .route("/{host}/logging/{kind}", post(http::logging).options(http::preflight))
        .route("/{host}/prod/logging/{kind}", post(http::logging).options(http::preflight))
        .route(&ws, get(socket::upgrade))
        .route(&ws_proxied, get(socket::upgrade))
}
