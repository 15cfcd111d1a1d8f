//! Session control over REST (compat doc 6.3 to 6.5): force disconnect, force mute, signals,
//! streams and class lists, plus the Conclave extensions "list connections" and "end session".
//!
//! Owns: request validation and the exact success codes the SDKs demand. Must not touch:
//! session rules, which the room applies exactly as for a moderator client.

use super::ApiError;
use super::extract::{RawBody, RestCaller};
use crate::AppState;
use crate::signal::room::RoomError;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_core::SessionId;
use conclave_core::signal::{ErrorCode, StreamInfo};
use conclave_store::SessionRecord;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The session must exist and belong to the caller's project; otherwise 404, the same
/// answer either way.
pub(super) async fn owned_session(
    state: &AppState,
    caller: &RestCaller,
    api_key: &str,
    session_id: &str,
) -> Result<SessionRecord, ApiError> {
    caller.require_project(api_key)?;
    let not_found = || ApiError::not_found("session not found");
    let id = SessionId::parse(session_id).map_err(|_| not_found())?;
    let record = state.store.session(id.as_str()).await.map_err(|e| ApiError::internal("session lookup failed", &e))?;
    record.filter(|r| r.api_key == caller.api_key).ok_or_else(not_found)
}

/// Parses a JSON body; an empty body (Python sends none on several POSTs) is the default.
pub(super) fn json_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn room_error(e: RoomError) -> ApiError {
    let status = match e.code {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MessageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.message)
}

/// Runs `f` on the live room; nobody connected means the target cannot exist.
fn on_room<T>(
    state: &AppState,
    session_id: &str,
    missing: &str,
    f: impl FnOnce(&mut crate::signal::room::Room) -> Result<(T, Vec<crate::signal::room::Output>), RoomError>,
) -> Result<T, ApiError> {
    match state.hub.with_room(session_id, f) {
        None => Err(ApiError::not_found(format!("{missing} not found"))),
        Some(r) => r.map_err(room_error),
    }
}

/// `DELETE …/session/{sessionId}/connection/{connectionId}` → 204. The token is revoked.
#[utoipa::path(
    delete, path = "/v2/project/{apiKey}/session/{sessionId}/connection/{connectionId}", tag = "sessions",
    params(("apiKey" = String, Path), ("sessionId" = String, Path), ("connectionId" = String, Path)),
    responses(
        (status = 204, description = "Disconnected; the token is revoked until it expires"),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn force_disconnect(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, session_id, connection_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    owned_session(&state, &caller, &api_key, &session_id).await?;
    on_room(&state, &session_id, "connection", |room| Ok(((), room.force_disconnect(&connection_id)?)))?;
    let target = format!("{session_id}/{connection_id}");
    caller.audit(state.store.as_ref(), "connection.force_disconnect", &target, serde_json::json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/stream/{streamId}/mute` → 200.
#[utoipa::path(
    post, path = "/v2/project/{apiKey}/session/{sessionId}/stream/{streamId}/mute", tag = "sessions",
    params(("apiKey" = String, Path), ("sessionId" = String, Path), ("streamId" = String, Path)),
    responses(
        (status = 200, description = "Muted; the publisher is told"),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn mute_stream(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, session_id, stream_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    owned_session(&state, &caller, &api_key, &session_id).await?;
    on_room(&state, &session_id, "stream", |room| Ok(((), room.mute_stream(&stream_id)?)))?;
    let target = format!("{session_id}/{stream_id}");
    caller.audit(state.store.as_ref(), "stream.force_mute", &target, serde_json::json!({})).await;
    Ok(axum::Json(serde_json::json!({})).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MuteAllBody {
    active: Option<bool>,
    excluded_streams: Option<Vec<String>>,
    excluded_stream_ids: Option<Vec<String>>,
    /// The Node SDK's documented typo.
    excuded_stream_ids: Option<Vec<String>>,
}

/// `POST …/session/{sessionId}/mute` with `{"active": true|false, excluded…}` → 200.
#[utoipa::path(
    post, path = "/v2/project/{apiKey}/session/{sessionId}/mute", tag = "sessions",
    params(("apiKey" = String, Path), ("sessionId" = String, Path)),
    request_body(content = MuteAllBody),
    responses(
        (status = 200, description = "Force mute switched on (all but the excluded streams, also later ones) or off"),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn mute_all(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, session_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    owned_session(&state, &caller, &api_key, &session_id).await?;
    let b: MuteAllBody = json_or_default(&body)?;
    let active = b.active.unwrap_or(true);
    let excluded: Vec<String> =
        [b.excluded_streams, b.excluded_stream_ids, b.excuded_stream_ids].into_iter().flatten().flatten().collect();
    // With nobody connected there is nothing to mute now; the setting applies to the live room only.
    let detail = serde_json::json!({"active": active, "excludedStreamIds": excluded});
    state.hub.with_room(&session_id, |room| Ok(((), room.mute_all(active, excluded))));
    caller.audit(state.store.as_ref(), "session.mute_all", &session_id, detail).await;
    Ok(axum::Json(serde_json::json!({})).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct SignalBody {
    #[serde(rename = "type", default)]
    signal_type: Option<String>,
    #[serde(default)]
    data: Option<String>,
}

async fn send_signal(
    state: &AppState,
    session: &SessionRecord,
    to: Option<&str>,
    body: &[u8],
) -> Result<StatusCode, ApiError> {
    let b: SignalBody = json_or_default(body)?;
    let (t, d) = (b.signal_type.unwrap_or_default(), b.data.unwrap_or_default());
    // The limits hold whether or not anyone is connected; an ended session takes nothing.
    crate::signal::room::check_signal(&t, &d).map_err(room_error)?;
    if session.ended_at_ms.is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, "the session has ended"));
    }
    let session_id = session.session_id.as_str();
    match state.hub.with_room(session_id, |room| Ok(((), room.signal(None, to, t, d)?))) {
        None if to.is_some() => Err(ApiError::not_found("connection not found")),
        None => Ok(StatusCode::NO_CONTENT),
        Some(r) => r.map(|_| StatusCode::NO_CONTENT).map_err(room_error),
    }
}

/// `POST …/session/{sessionId}/signal` → 204.
#[utoipa::path(
    post, path = "/v2/project/{apiKey}/session/{sessionId}/signal", tag = "sessions",
    params(("apiKey" = String, Path), ("sessionId" = String, Path)),
    request_body(content = SignalBody),
    responses(
        (status = 204, description = "Delivered to every connection"),
        (status = 413, description = "type over 128 bytes or data over 8 KiB", body = conclave_core::wire::ErrorBody),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
        (status = 409, description = "The session has ended", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn signal_session(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, session_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<StatusCode, ApiError> {
    let session = owned_session(&state, &caller, &api_key, &session_id).await?;
    send_signal(&state, &session, None, &body).await
}

/// `POST …/connection/{connectionId}/signal` → 204.
#[utoipa::path(
    post, path = "/v2/project/{apiKey}/session/{sessionId}/connection/{connectionId}/signal", tag = "sessions",
    params(("apiKey" = String, Path), ("sessionId" = String, Path), ("connectionId" = String, Path)),
    request_body(content = SignalBody),
    responses(
        (status = 204, description = "Delivered to the connection"),
        (status = 413, description = "type over 128 bytes or data over 8 KiB", body = conclave_core::wire::ErrorBody),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
        (status = 409, description = "The session has ended", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn signal_connection(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, session_id, connection_id)): Path<(String, String, String)>,
    RawBody(body): RawBody,
) -> Result<StatusCode, ApiError> {
    let session = owned_session(&state, &caller, &api_key, &session_id).await?;
    send_signal(&state, &session, Some(&connection_id), &body).await
}

/// The REST shape of a stream: OpenTok's fields plus Conclave's extras.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestStream {
    id: String,
    #[schema(value_type = String, example = "camera")]
    video_type: conclave_core::signal::VideoType,
    name: String,
    layout_class_list: Vec<String>,
    connection_id: String,
    has_audio: bool,
    has_video: bool,
    subscriber_count: u32,
}

impl From<StreamInfo> for RestStream {
    fn from(s: StreamInfo) -> Self {
        RestStream {
            id: s.stream_id,
            video_type: s.video_type,
            name: s.name,
            layout_class_list: s.layout_class_list,
            connection_id: s.connection_id,
            has_audio: s.has_audio,
            has_video: s.has_video,
            subscriber_count: s.subscriber_count,
        }
    }
}

/// The `{count, items}` answer of the stream list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RestStreamList {
    count: usize,
    items: Vec<RestStream>,
}

/// `GET …/session/{sessionId}/stream` → `{count, items}`.
#[utoipa::path(
    get, path = "/v2/project/{apiKey}/session/{sessionId}/stream", tag = "sessions",
    params(("apiKey" = String, Path), ("sessionId" = String, Path)),
    responses(
        (status = 200, description = "{count, items: [stream]}", body = RestStreamList),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn list_streams(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, session_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    owned_session(&state, &caller, &api_key, &session_id).await?;
    let items: Vec<RestStream> = state.hub.streams(&session_id).into_iter().map(Into::into).collect();
    Ok(axum::Json(serde_json::json!({"count": items.len(), "items": items})).into_response())
}

/// `GET …/stream/{streamId}` → 200. Node ≥ 2.17 parses this response twice when it is
/// labelled JSON (compat doc 6.5), so its user agent gets `text/plain` with the same bytes.
#[utoipa::path(
    get, path = "/v2/project/{apiKey}/session/{sessionId}/stream/{streamId}", tag = "sessions",
    params(("apiKey" = String, Path), ("sessionId" = String, Path), ("streamId" = String, Path)),
    responses(
        (status = 200, description = "The stream (text/plain for the Node SDK, same bytes)", body = RestStream),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn get_stream(
    State(state): State<AppState>,
    caller: RestCaller,
    headers: HeaderMap,
    Path((api_key, session_id, stream_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    owned_session(&state, &caller, &api_key, &session_id).await?;
    let stream = state
        .hub
        .streams(&session_id)
        .into_iter()
        .find(|s| s.stream_id == stream_id)
        .ok_or_else(|| ApiError::not_found("stream not found"))?;
    let mut resp = axum::Json(RestStream::from(stream)).into_response();
    let node = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("OpenTok-Node-SDK/"));
    if node {
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    Ok(resp)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct ClassListBody {
    #[serde(default)]
    items: Vec<ClassListItem>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClassListItem {
    id: String,
    #[serde(default)]
    layout_class_list: Vec<String>,
}

/// `PUT …/session/{sessionId}/stream` → 200 (Python demands exactly 200) with `{count, items}`:
/// the streams whose class lists were set, as `GET …/stream` shows them (the Vonage Python
/// SDK's `change_stream_layout` reads `items`; the OpenTok SDKs ignore the body).
#[utoipa::path(
    put, path = "/v2/project/{apiKey}/session/{sessionId}/stream", tag = "sessions",
    params(("apiKey" = String, Path), ("sessionId" = String, Path)),
    request_body(content = ClassListBody),
    responses(
        (status = 200, description = "Class lists replaced, all or nothing: {count, items: [stream]} of the streams set"),
        (status = 400, body = conclave_core::wire::ErrorBody),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn set_class_lists(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, session_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    owned_session(&state, &caller, &api_key, &session_id).await?;
    let b: ClassListBody = json_or_default(&body)?;
    if b.items.is_empty() {
        return Err(ApiError::bad_request("items must list at least one stream"));
    }
    let items: Vec<(String, Vec<String>)> = b.items.into_iter().map(|i| (i.id, i.layout_class_list)).collect();
    let ids: Vec<String> = items.iter().map(|(id, _)| id.clone()).collect();
    on_room(&state, &session_id, "stream", |room| Ok(((), room.set_class_lists(items)?)))?;
    let set: Vec<RestStream> =
        state.hub.streams(&session_id).into_iter().filter(|s| ids.contains(&s.stream_id)).map(Into::into).collect();
    Ok(axum::Json(serde_json::json!({"count": set.len(), "items": set})).into_response())
}

/// Conclave extension: `GET …/session/{sessionId}/connection` → `{count, items}`.
#[utoipa::path(
    get, path = "/v2/project/{apiKey}/session/{sessionId}/connection", tag = "sessions",
    params(("apiKey" = String, Path), ("sessionId" = String, Path)),
    responses(
        (status = 200, description = "Conclave extension: {count, items: [connection]}"),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn list_connections(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, session_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    owned_session(&state, &caller, &api_key, &session_id).await?;
    let items = state.hub.connections(&session_id);
    Ok(axum::Json(serde_json::json!({"count": items.len(), "items": items})).into_response())
}

/// Conclave extension: `DELETE /v2/project/{apiKey}/session/{sessionId}` ends the session:
/// everyone is disconnected and no token for it works again. 204, also when already ended.
#[utoipa::path(
    delete, path = "/v2/project/{apiKey}/session/{sessionId}", tag = "sessions",
    params(("apiKey" = String, Path), ("sessionId" = String, Path)),
    responses(
        (status = 204, description = "Conclave extension: ended; everyone disconnected, every token for it refused"),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn end_session(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, session_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    owned_session(&state, &caller, &api_key, &session_id).await?;
    state.hub.end_session(&session_id).await.map_err(|e| ApiError::internal("ending a session failed", &e))?;
    caller.audit(state.store.as_ref(), "session.end", &session_id, serde_json::json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}
