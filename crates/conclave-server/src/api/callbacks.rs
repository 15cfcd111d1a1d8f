//! Callback registration (compat doc 6.9, the Node SDK's `registerCallback`):
//! `POST/GET /v2/project/{apiKey}/callback`, `DELETE …/callback/{id}`.
//!
//! Owns: validation of group, event and URL (SSRF policy). Must not touch: delivery.

use super::ApiError;
use super::extract::{RawBody, RestCaller};
use crate::webhook::check_callback_url;
use crate::{AppState, clock};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_store::CallbackRecord;
use serde::Deserialize;

/// Groups and events Conclave delivers.
pub const EVENTS: [(&str, &str); 6] = [
    ("connection", "created"),
    ("connection", "destroyed"),
    ("stream", "created"),
    ("stream", "destroyed"),
    ("archive", "status"),
    ("broadcast", "status"),
];

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewCallback {
    group: Option<String>,
    event: Option<String>,
    url: Option<String>,
}

/// Callbacks one project may register: every event is POSTed to each of them, so the count
/// bounds the work (and the outbound traffic) one project can cause per event.
pub const MAX_CALLBACKS_PER_PROJECT: usize = 20;

fn to_json(c: &CallbackRecord) -> serde_json::Value {
    serde_json::json!({"id": c.id, "group": c.group, "event": c.event, "url": c.url, "createdAt": c.created_at_ms})
}

/// Validates and builds a callback record; shared by REST and the CLI.
pub fn new_callback(
    api_key: &str,
    group: &str,
    event: &str,
    url: &str,
    policy: crate::webhook::CallbackPolicy,
) -> Result<CallbackRecord, String> {
    if !EVENTS.contains(&(group, event)) {
        return Err(format!(
            "unsupported group/event {group}/{event}; supported: {}",
            EVENTS.map(|(g, e)| format!("{g}/{e}")).join(", ")
        ));
    }
    let url = check_callback_url(url, policy)?;
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| e.to_string())?;
    Ok(CallbackRecord {
        id: hex::encode(id),
        api_key: api_key.to_owned(),
        group: group.to_owned(),
        event: event.to_owned(),
        url: url.to_string(),
        created_at_ms: clock::unix_ms(),
    })
}

#[utoipa::path(
    post, path = "/v2/project/{apiKey}/callback", tag = "callbacks",
    params(("apiKey" = String, Path)),
    request_body(content = NewCallback),
    responses(
        (status = 200, description = "{id, group, event, url, createdAt}"),
        (status = 400, description = "Unsupported group/event, or a URL refused by the SSRF policy", body = conclave_core::wire::ErrorBody),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn register(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(api_key): Path<String>,
    RawBody(body): RawBody,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    caller.require_project(&api_key)?;
    let b: NewCallback =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let (Some(group), Some(event), Some(url)) = (b.group, b.event, b.url) else {
        return Err(ApiError::bad_request("group, event and url are required"));
    };
    let record =
        new_callback(&caller.api_key, &group, &event, &url, state.callback_policy).map_err(ApiError::bad_request)?;
    let existing =
        state.store.callbacks(&caller.api_key).await.map_err(|e| ApiError::internal("listing callbacks failed", &e))?;
    if existing.len() >= MAX_CALLBACKS_PER_PROJECT {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a project has at most {MAX_CALLBACKS_PER_PROJECT} callbacks; remove one first"),
        ));
    }
    state.store.insert_callback(&record).await.map_err(|e| ApiError::internal("storing a callback failed", &e))?;
    let detail = serde_json::json!({"group": group, "event": event, "url": record.url});
    caller.audit(state.store.as_ref(), "callback.register", &record.id, detail).await;
    Ok(axum::Json(to_json(&record)))
}

#[utoipa::path(
    get, path = "/v2/project/{apiKey}/callback", tag = "callbacks",
    params(("apiKey" = String, Path)),
    responses(
        (status = 200, description = "[{id, group, event, url, createdAt}]"),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(api_key): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    caller.require_project(&api_key)?;
    let all =
        state.store.callbacks(&caller.api_key).await.map_err(|e| ApiError::internal("listing callbacks failed", &e))?;
    Ok(axum::Json(serde_json::Value::Array(all.iter().map(to_json).collect())))
}

#[utoipa::path(
    delete, path = "/v2/project/{apiKey}/callback/{callbackId}", tag = "callbacks",
    params(("apiKey" = String, Path), ("callbackId" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH, or another project", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session (or target) not found", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_project(&api_key)?;
    match state.store.delete_callback(&caller.api_key, &id).await {
        Ok(true) => {
            caller.audit(state.store.as_ref(), "callback.remove", &id, serde_json::json!({})).await;
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(false) => Err(ApiError::not_found("callback not found")),
        Err(e) => Err(ApiError::internal("deleting a callback failed", &e)),
    }
}
