//! `POST /session/create` (compat doc 6.1) and the Conclave extension
//! `GET /v2/project/{apiKey}/session/{sessionId}`.

use super::ApiError;
use super::extract::{RawBody, RestCaller};
use crate::{AppState, clock};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use conclave_core::ids::{SESSION_RANDOM_BYTES, SessionId, SessionIdParts};
use conclave_core::wire::{MediaMode, SessionCreateRequest, SessionCreated, SessionInfo};
use conclave_store::{SessionRecord, StoreError};

/// Mints a fresh session ID (192 CSPRNG bits) and stores the session for `api_key`.
/// Shared by the REST API and the demo app.
pub async fn create_session(
    store: &dyn conclave_store::Store,
    api_key: &str,
    req: &SessionCreateRequest,
) -> Result<SessionRecord, ApiError> {
    let created_ms = clock::unix_ms();
    let location = req.location.map(|l| l.to_string());
    loop {
        let mut random = [0u8; SESSION_RANDOM_BYTES];
        getrandom::fill(&mut random).map_err(|e| ApiError::internal("CSPRNG failed", &e))?;
        let id = SessionId::mint(&SessionIdParts {
            api_key,
            location: location.as_deref(),
            created_ms,
            random,
            relayed: req.media_mode == MediaMode::Relayed,
        });
        let record = SessionRecord {
            session_id: id.as_str().to_owned(),
            api_key: api_key.to_owned(),
            media_mode: req.media_mode,
            archive_mode: req.archive_mode,
            e2ee: req.e2ee,
            max_participants: req.max_participants,
            location: location.clone(),
            archive_name: req.archive_name.clone(),
            archive_resolution: req.archive_resolution.clone(),
            created_at_ms: created_ms,
            ended_at_ms: None,
        };
        match store.insert_session(&record).await {
            Ok(()) => return Ok(record),
            Err(StoreError::Conflict) => continue, // 192 random bits: practically unreachable
            Err(e) => return Err(ApiError::internal("storing a new session failed", &e)),
        }
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains("application/json"))
}

/// Creates a session. Answers a one-element JSON array with `Content-Type: application/json`
/// exactly (no charset: Python ≥ 3.11 compares the header), or XML for older SDKs.
#[utoipa::path(
    post, path = "/session/create", tag = "sessions",
    request_body(content_type = "application/x-www-form-urlencoded", description = "p2p.preference (enabled=relayed, disabled=routed), archiveMode (manual|always), archiveName, archiveResolution, location (IPv4), e2ee (true|false, routed only), maxParticipants (Conclave extension, 1..10000)"),
    responses(
        (status = 200, description = "Created; JSON when Accept has application/json, else XML", body = [SessionCreated]),
        (status = 400, description = "Invalid form", body = conclave_core::wire::ErrorBody),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH", body = conclave_core::wire::ErrorBody),
        (status = 413, description = "Body too large", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: RestCaller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let default_media = if caller.is_application { MediaMode::Routed } else { MediaMode::Relayed };
    let req =
        SessionCreateRequest::from_form_with_default(&body, default_media).map_err(|e| ApiError::bad_request(e.0))?;
    let record = create_session(state.store.as_ref(), &caller.api_key, &req).await?;
    let created_ms = record.created_at_ms;
    tracing::info!(api_key = %caller.api_key, media_mode = record.media_mode.as_str(), "session created");
    let created = SessionCreated::new(&record.session_id, &caller.api_key, created_ms);
    if wants_json(&headers) {
        Ok(axum::Json([created]).into_response())
    } else {
        let mut resp = created.to_xml().into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        Ok(resp)
    }
}

/// Conclave extension: a session's settings. A session of another project is reported
/// exactly like a missing one, so the answer never reveals that it exists.
#[utoipa::path(
    get, path = "/v2/project/{apiKey}/session/{sessionId}", tag = "sessions",
    params(("apiKey" = String, Path), ("sessionId" = String, Path)),
    responses(
        (status = 200, body = SessionInfo),
        (status = 403, body = conclave_core::wire::ErrorBody),
        (status = 404, body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, session_id)): Path<(String, String)>,
) -> Result<axum::Json<SessionInfo>, ApiError> {
    let record = super::moderation::owned_session(&state, &caller, &api_key, &session_id).await?;
    Ok(axum::Json(SessionInfo {
        session_id: record.session_id,
        project_id: record.api_key,
        media_mode: record.media_mode,
        archive_mode: record.archive_mode,
        e2ee: record.e2ee,
        max_participants: record.max_participants,
        location: record.location,
        created_at: record.created_at_ms,
        ended_at: record.ended_at_ms,
    }))
}
