//! The live-streaming REST API (OpenTok's `/broadcast`: start, get, list, stop, layout,
//! streams), the Audio Connector (`/connect` and its stop) and the HLS files a broadcast's
//! URL serves.
//!
//! Owns: request parsing, status codes (Python's SDK wants exactly 200 for stop, get and
//! layout) and the audit trail. Must not touch: the broadcasts themselves (the
//! broadcaster's). Only a project credential reaches the REST calls; the HLS files answer to
//! the capability in their URL alone, as OpenTok's do.

use super::ApiError;
use super::extract::{RawBody, RestCaller};
use crate::AppState;
use crate::broadcast::{BroadcastError, Broadcaster};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_core::archive::{ArchiveLayout, StreamPatchBody};
use conclave_core::broadcast::{BroadcastJson, BroadcastList, BroadcastStartBody, ConnectBody, ConnectJson};
use serde::Deserialize;
use std::sync::Arc;

fn broadcaster(state: &AppState) -> Result<&Arc<Broadcaster>, ApiError> {
    state.broadcaster.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "live streaming needs routed media, which this server does not run")
    })
}

impl From<BroadcastError> for ApiError {
    fn from(e: BroadcastError) -> Self {
        match e {
            BroadcastError::Invalid(m) => ApiError::bad_request(m),
            BroadcastError::NotFound(m) => ApiError::not_found(m),
            BroadcastError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            BroadcastError::NotAllowed(m) => ApiError::new(StatusCode::METHOD_NOT_ALLOWED, m),
            BroadcastError::TooMany(m) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, m),
            BroadcastError::Forbidden(m) => ApiError::forbidden(m),
            BroadcastError::Gateway(m) => ApiError::new(StatusCode::BAD_GATEWAY, m),
            BroadcastError::Store(e) => ApiError::internal("store failed", &e),
            BroadcastError::Internal(m) => ApiError::internal("live streaming failed", &m),
        }
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// `POST /v2/project/{apiKey}/broadcast` → 200 + Broadcast (`started`).
#[utoipa::path(
    post, path = "/v2/project/{apiKey}/broadcast", tag = "broadcasts",
    params(("apiKey" = String, Path)),
    request_body(content = BroadcastStartBody),
    responses(
        (status = 200, description = "Started", body = BroadcastJson),
        (status = 400, description = "Invalid options, or an RTMP target that the SSRF policy refuses", body = conclave_core::wire::ErrorBody),
        (status = 403, description = "Missing or invalid credential", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session not found", body = conclave_core::wire::ErrorBody),
        (status = 409, description = "Relayed, E2EE or ended session, or already broadcast without a distinct multiBroadcastTag", body = conclave_core::wire::ErrorBody),
        (status = 429, description = "This node composes as many broadcasts as it may", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn start(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(api_key): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    let req = parse_json::<BroadcastStartBody>(&body)?.validate().map_err(|e| ApiError::bad_request(e.0))?;
    let b = broadcaster(&state)?;
    let json = b.start(&api_key, req).await?;
    let outputs = serde_json::json!({"sessionId": json.session_id, "hls": json.broadcast_urls.hls.is_some(), "rtmp": json.broadcast_urls.rtmp.len()});
    caller.audit(state.store.as_ref(), "broadcast.start", &json.id, outputs).await;
    Ok(axum::Json(json).into_response())
}

/// `GET /v2/project/{apiKey}/broadcast/{broadcastId}` → 200 + Broadcast.
#[utoipa::path(
    get, path = "/v2/project/{apiKey}/broadcast/{broadcastId}", tag = "broadcasts",
    params(("apiKey" = String, Path), ("broadcastId" = String, Path)),
    responses((status = 200, description = "The broadcast", body = BroadcastJson), (status = 404, description = "Not found", body = conclave_core::wire::ErrorBody)),
    security(("opentok_auth" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    Ok(axum::Json(broadcaster(&state)?.get(&api_key, &id)?).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    offset: Option<String>,
    count: Option<String>,
    session_id: Option<String>,
}

/// `GET /v2/project/{apiKey}/broadcast?offset&count&sessionId` → `{count, items}`.
#[utoipa::path(
    get, path = "/v2/project/{apiKey}/broadcast", tag = "broadcasts",
    params(("apiKey" = String, Path), ListQuery),
    responses((status = 200, description = "Newest first; count is the total that matched", body = BroadcastList), (status = 400, description = "Invalid paging", body = conclave_core::wire::ErrorBody)),
    security(("opentok_auth" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(api_key): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    let num = |v: Option<String>, what: &str, default: usize| -> Result<usize, ApiError> {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(s) => s
                .parse::<u32>()
                .map(|n| n as usize)
                .map_err(|_| ApiError::bad_request(format!("{what} must be a non-negative integer"))),
        }
    };
    let offset = num(q.offset, "offset", 0)?;
    let count = num(q.count, "count", 50)?;
    if count > 1000 {
        return Err(ApiError::bad_request("count must be at most 1000"));
    }
    let session = q.session_id.filter(|s| !s.is_empty());
    let (total, items) = broadcaster(&state)?.list(&api_key, session.as_deref(), offset, count);
    Ok(axum::Json(BroadcastList { count: total, items }).into_response())
}

/// `POST /v2/project/{apiKey}/broadcast/{broadcastId}/stop` → 200 + Broadcast (`stopped`).
#[utoipa::path(
    post, path = "/v2/project/{apiKey}/broadcast/{broadcastId}/stop", tag = "broadcasts",
    params(("apiKey" = String, Path), ("broadcastId" = String, Path)),
    responses(
        (status = 200, description = "Stopped: the playlist has its end; without DVR its files are gone", body = BroadcastJson),
        (status = 404, description = "Not found", body = conclave_core::wire::ErrorBody),
        (status = 409, description = "Already stopped", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn stop(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    let json = broadcaster(&state)?.stop(Some(&api_key), &id, "user initiated").await?;
    caller.audit(state.store.as_ref(), "broadcast.stop", &id, serde_json::json!({"sessionId": json.session_id})).await;
    Ok(axum::Json(json).into_response())
}

/// `PUT /v2/project/{apiKey}/broadcast/{broadcastId}/layout` → 200.
#[utoipa::path(
    put, path = "/v2/project/{apiKey}/broadcast/{broadcastId}/layout", tag = "broadcasts",
    params(("apiKey" = String, Path), ("broadcastId" = String, Path)),
    request_body(content = ArchiveLayout),
    responses(
        (status = 200, description = "Applied from the next frame"),
        (status = 400, description = "Invalid layout", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Not found", body = conclave_core::wire::ErrorBody),
        (status = 409, description = "Stopped", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn set_layout(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    let layout: ArchiveLayout = parse_json(&body)?;
    layout.validate().map_err(|e| ApiError::bad_request(e.0))?;
    broadcaster(&state)?.set_layout(&api_key, &id, layout)?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{}").into_response())
}

/// `PATCH /v2/project/{apiKey}/broadcast/{broadcastId}/streams` → 204 (manual stream mode).
#[utoipa::path(
    patch, path = "/v2/project/{apiKey}/broadcast/{broadcastId}/streams", tag = "broadcasts",
    params(("apiKey" = String, Path), ("broadcastId" = String, Path)),
    request_body(content = StreamPatchBody),
    responses(
        (status = 204, description = "Added or removed"),
        (status = 400, description = "Give exactly one of addStream or removeStream", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Broadcast or stream not found", body = conclave_core::wire::ErrorBody),
        (status = 405, description = "The broadcast is in auto stream mode", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn patch_streams(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    let patch = parse_json::<StreamPatchBody>(&body)?.validate().map_err(|e| ApiError::bad_request(e.0))?;
    broadcaster(&state)?.patch_streams(&api_key, &id, patch)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v2/project/{apiKey}/connect` → 200 `{id, connectionId}` (the Audio Connector).
#[utoipa::path(
    post, path = "/v2/project/{apiKey}/connect", tag = "broadcasts",
    params(("apiKey" = String, Path)),
    request_body(content = ConnectBody),
    responses(
        (status = 200, description = "The WebSocket accepted; PCM flows", body = ConnectJson),
        (status = 400, description = "Invalid options, or a target the SSRF policy refuses", body = conclave_core::wire::ErrorBody),
        (status = 403, description = "Bad credential, or the token does not admit a connection to the session", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session not found", body = conclave_core::wire::ErrorBody),
        (status = 409, description = "Relayed, E2EE or ended session", body = conclave_core::wire::ErrorBody),
        (status = 502, description = "The WebSocket server did not accept within 6 s", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn connect(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(api_key): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    let req = parse_json::<ConnectBody>(&body)?.validate().map_err(|e| ApiError::bad_request(e.0))?;
    let session_id = req.session_id.clone();
    let json = broadcaster(&state)?.connect(&api_key, req).await?;
    caller.audit(state.store.as_ref(), "connect.start", &json.id, serde_json::json!({"sessionId": session_id})).await;
    Ok(axum::Json(json).into_response())
}

/// `POST /v2/project/{apiKey}/connect/{id}/stop` → 204; the socket closes.
#[utoipa::path(
    post, path = "/v2/project/{apiKey}/connect/{connectId}/stop", tag = "broadcasts",
    params(("apiKey" = String, Path), ("connectId" = String, Path)),
    responses((status = 204, description = "Stopping"), (status = 404, description = "Not found", body = conclave_core::wire::ErrorBody)),
    security(("opentok_auth" = []))
)]
pub async fn disconnect(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    broadcaster(&state)?.disconnect(&api_key, &id)?;
    caller.audit(state.store.as_ref(), "connect.stop", &id, serde_json::json!({})).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /hls/{broadcastId}/{secret}/{file}`: the playlist and its segments, for anyone who
/// holds the URL (players fetch it cross-origin).
pub async fn hls(State(state): State<AppState>, Path((id, secret, file)): Path<(String, String, String)>) -> Response {
    let not_found = || ApiError::not_found("no such broadcast file").into_response();
    let Some(b) = state.broadcaster.as_ref() else { return not_found() };
    let Some(path) = b.hls_file(&id, &secret, &file) else { return not_found() };
    let Ok(bytes) = tokio::fs::read(&path).await else { return not_found() };
    let (kind, cache) = if file.ends_with(".m3u8") {
        ("application/vnd.apple.mpegurl", "no-cache")
    } else {
        ("video/mp2t", "max-age=3600")
    };
    (
        [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        Body::from(bytes),
    )
        .into_response()
}
