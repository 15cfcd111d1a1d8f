//! The REST API, OpenTok-compatible (compat doc 5 and 6) plus Conclave extensions.
//!
//! Owns: routing, the `X-OPENTOK-AUTH` extractor, and the rule that every error is JSON
//! `{code, message}`. Must not touch: credential formats (core) or SQL (store).

mod archives;
mod broadcasts;
mod callbacks;
mod error;
mod extract;
mod moderation;
mod openapi;
mod ops;
pub mod sessions;
mod unserved;

pub use callbacks::new_callback;
pub use error::ApiError;

use crate::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::middleware;
use axum::routing::{delete, get, patch, post, put};

/// The application router, before path normalisation (see [`service`]).
pub fn router(state: AppState) -> Router {
    let max_body = state.limits.max_body_bytes;
    let demo = match &state.demo {
        Some(d) => crate::demo::router(d.clone()),
        None => Router::new(),
    };
    Router::new()
        .merge(demo)
        .merge(crate::opentok::router())
        .merge(unserved::router())
        .route("/session/create", post(sessions::create))
        .route("/v2/project/{api_key}/session/{session_id}", get(sessions::get).delete(moderation::end_session))
        .route("/v2/project/{api_key}/session/{session_id}/connection", get(moderation::list_connections))
        .route(
            "/v2/project/{api_key}/session/{session_id}/connection/{connection_id}",
            delete(moderation::force_disconnect),
        )
        .route(
            "/v2/project/{api_key}/session/{session_id}/connection/{connection_id}/signal",
            post(moderation::signal_connection),
        )
        .route("/v2/project/{api_key}/session/{session_id}/signal", post(moderation::signal_session))
        .route("/v2/project/{api_key}/session/{session_id}/mute", post(moderation::mute_all))
        .route(
            "/v2/project/{api_key}/session/{session_id}/stream",
            get(moderation::list_streams).put(moderation::set_class_lists),
        )
        .route("/v2/project/{api_key}/session/{session_id}/stream/{stream_id}", get(moderation::get_stream))
        .route("/v2/project/{api_key}/session/{session_id}/stream/{stream_id}/mute", post(moderation::mute_stream))
        .route("/v2/project/{api_key}/archive", get(archives::list).post(archives::start))
        .route("/v2/project/{api_key}/archive/storage", put(archives::set_storage).delete(archives::delete_storage))
        .route(
            "/v2/project/{api_key}/archive/encryption",
            put(archives::set_encryption).delete(archives::delete_encryption),
        )
        .route("/v2/project/{api_key}/archive/{archive_id}", get(archives::get).delete(archives::delete))
        .route("/v2/project/{api_key}/archive/{archive_id}/stop", post(archives::stop))
        .route("/v2/project/{api_key}/archive/{archive_id}/streams", patch(archives::patch_streams))
        .route("/v2/project/{api_key}/archive/{archive_id}/layout", put(archives::set_layout))
        .route("/v2/project/{api_key}/archive/{archive_id}/download", get(archives::download))
        .route("/v2/project/{api_key}/broadcast", get(broadcasts::list).post(broadcasts::start))
        // @vonage/video starts and lists broadcasts at `…/broadcast/`, with the slash.
        .route("/v2/project/{api_key}/broadcast/", get(broadcasts::list).post(broadcasts::start))
        .route("/v2/project/{api_key}/broadcast/{broadcast_id}", get(broadcasts::get))
        .route("/v2/project/{api_key}/broadcast/{broadcast_id}/stop", post(broadcasts::stop))
        .route("/v2/project/{api_key}/broadcast/{broadcast_id}/layout", put(broadcasts::set_layout))
        .route("/v2/project/{api_key}/broadcast/{broadcast_id}/streams", patch(broadcasts::patch_streams))
        .route("/v2/project/{api_key}/connect", post(broadcasts::connect))
        .route("/v2/project/{api_key}/connect/{connect_id}/stop", post(broadcasts::disconnect))
        .route("/hls/{broadcast_id}/{secret}/{file}", get(broadcasts::hls))
        .route("/openapi.json", get(openapi::serve))
        .route("/v2/project/{api_key}/callback", get(callbacks::list).post(callbacks::register))
        .route("/v2/project/{api_key}/callback/{callback_id}", delete(callbacks::remove))
        .route("/v1/signal", get(crate::signal::ws::upgrade))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
        })
        .layer(middleware::from_fn_with_state(state.clone(), crate::cluster::proxy::forward_if_remote))
        .layer(middleware::from_fn_with_state(state.clone(), ops::refuse_writes_when_disk_full))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), error::limit_per_ip))
        .layer(middleware::from_fn(error::log_requests))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}

/// Collapses repeated slashes, since both SDKs build URLs by concatenation and a configured
/// base URL with a trailing slash yields `//session/create` (compat doc 2.2).
pub fn normalize_path<B>(mut req: Request<B>) -> Request<B> {
    let uri = req.uri();
    if !uri.path().contains("//") {
        return req;
    }
    let mut path = String::with_capacity(uri.path().len());
    for c in uri.path().chars() {
        if !(c == '/' && path.ends_with('/')) {
            path.push(c);
        }
    }
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = pq.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(new) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = new;
        }
    }
    req
}

/// The router behind path normalisation.
pub type Service<B> = tower::util::MapRequest<Router, fn(Request<B>) -> Request<B>>;

/// The whole HTTP service: path normalisation around the router.
/// Generic over the body type so it fits both hyper's `Incoming` and in-process tests.
pub fn service<B>(state: AppState) -> Service<B> {
    tower::util::MapRequest::new(router(state), normalize_path::<B> as fn(_) -> _)
}
