//! The archive REST API (compat doc 6.2): start, stop, get, list, delete, add/remove stream,
//! layout, the per-project upload target and encryption key, and the signed download.
//!
//! Owns: request parsing, status codes and the audit trail of these calls. Must not touch:
//! the lifecycle (the archiver's) or files. Only a project credential reaches here: a client
//! token of any role is refused by the `RestCaller` extractor (compat 5.2).

use super::ApiError;
use super::extract::{RawBody, RestCaller};
use crate::AppState;
use crate::archive::{ArchiveError, Archiver};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_core::archive::{
    ArchiveJson, ArchiveLayout, ArchiveList, ArchiveStartBody, DEFAULT_LIST_COUNT, MAX_LIST_COUNT, StorageBody,
    StreamPatchBody,
};
use serde::Deserialize;
use std::sync::Arc;

fn archiver(state: &AppState) -> Result<&Arc<Archiver>, ApiError> {
    state.archiver.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "archiving needs routed media, which this server does not run")
    })
}

impl From<ArchiveError> for ApiError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Invalid(m) => ApiError::bad_request(m),
            ArchiveError::NotFound(m) => ApiError::not_found(m),
            ArchiveError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            ArchiveError::NotAllowed(m) => ApiError::new(StatusCode::METHOD_NOT_ALLOWED, m),
            ArchiveError::Store(e) => ApiError::internal("store failed", &e),
            ArchiveError::Internal(m) => ApiError::internal("archiving failed", &m),
        }
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// `POST /v2/project/{apiKey}/archive` → 200 + Archive (`started`).
#[utoipa::path(
    post, path = "/v2/project/{apiKey}/archive", tag = "archives",
    params(("apiKey" = String, Path)),
    request_body(content = ArchiveStartBody),
    responses(
        (status = 200, description = "Started", body = ArchiveJson),
        (status = 400, description = "Invalid options", body = conclave_core::wire::ErrorBody),
        (status = 403, description = "Missing or invalid X-OPENTOK-AUTH (client tokens never work here)", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Session not found", body = conclave_core::wire::ErrorBody),
        (status = 409, description = "Relayed or E2EE session, or already recording without a distinct multiArchiveTag", body = conclave_core::wire::ErrorBody),
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
    let req = parse_json::<ArchiveStartBody>(&body)?.validate().map_err(|e| ApiError::bad_request(e.0))?;
    let a = archiver(&state)?;
    let r = a.start(&api_key, req).await?;
    caller
        .audit(
            state.store.as_ref(),
            "archive.start",
            &r.id,
            serde_json::json!({"sessionId": r.session_id, "outputMode": r.output_mode, "encrypted": r.encrypted}),
        )
        .await;
    Ok(axum::Json(a.to_json(&r)).into_response())
}

/// `POST /v2/project/{apiKey}/archive/{archiveId}/stop` → 200 + Archive (`stopped`).
#[utoipa::path(
    post, path = "/v2/project/{apiKey}/archive/{archiveId}/stop", tag = "archives",
    params(("apiKey" = String, Path), ("archiveId" = String, Path)),
    responses(
        (status = 200, description = "Stopped; processing and upload continue in the background", body = ArchiveJson),
        (status = 404, description = "Archive not found", body = conclave_core::wire::ErrorBody),
        (status = 409, description = "Not recording", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn stop(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    let a = archiver(&state)?;
    let r = a.stop(&api_key, &id, "user initiated").await?;
    caller.audit(state.store.as_ref(), "archive.stop", &r.id, serde_json::json!({"sessionId": r.session_id})).await;
    Ok(axum::Json(a.to_json(&r)).into_response())
}

/// `GET /v2/project/{apiKey}/archive/{archiveId}` → 200 + Archive.
#[utoipa::path(
    get, path = "/v2/project/{apiKey}/archive/{archiveId}", tag = "archives",
    params(("apiKey" = String, Path), ("archiveId" = String, Path)),
    responses((status = 200, description = "The archive (status `deleted` after DELETE)", body = ArchiveJson), (status = 404, description = "Archive not found", body = conclave_core::wire::ErrorBody)),
    security(("opentok_auth" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    let a = archiver(&state)?;
    let r = a.get(&api_key, &id).await?;
    Ok(axum::Json(a.to_json(&r)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    offset: Option<String>,
    count: Option<String>,
    session_id: Option<String>,
}

/// `GET /v2/project/{apiKey}/archive?offset&count&sessionId` → `{count, items}`.
#[utoipa::path(
    get, path = "/v2/project/{apiKey}/archive", tag = "archives",
    params(("apiKey" = String, Path), ListQuery),
    responses((status = 200, description = "Newest first; count is the total that matched", body = ArchiveList), (status = 400, description = "Invalid paging", body = conclave_core::wire::ErrorBody)),
    security(("opentok_auth" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(api_key): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    let num = |v: Option<String>, what: &str, default: u32| -> Result<u32, ApiError> {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(s) => {
                s.parse::<u32>().map_err(|_| ApiError::bad_request(format!("{what} must be a non-negative integer")))
            }
        }
    };
    let offset = num(q.offset, "offset", 0)?;
    let count = num(q.count, "count", DEFAULT_LIST_COUNT)?;
    if count > MAX_LIST_COUNT {
        return Err(ApiError::bad_request(format!("count must be at most {MAX_LIST_COUNT}")));
    }
    let a = archiver(&state)?;
    let session = q.session_id.filter(|s| !s.is_empty());
    let (total, items) = a.list(&api_key, session.as_deref(), offset, count).await?;
    Ok(axum::Json(ArchiveList { count: total, items: items.iter().map(|r| a.to_json(r)).collect() }).into_response())
}

/// `DELETE /v2/project/{apiKey}/archive/{archiveId}` → 204; the fallback copy goes at once.
#[utoipa::path(
    delete, path = "/v2/project/{apiKey}/archive/{archiveId}", tag = "archives",
    params(("apiKey" = String, Path), ("archiveId" = String, Path)),
    responses(
        (status = 204, description = "Deleted (file and metadata)"),
        (status = 404, description = "Archive not found", body = conclave_core::wire::ErrorBody),
        (status = 409, description = "Still recording or processing", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_project(&api_key)?;
    archiver(&state)?.delete(&api_key, &id).await?;
    caller.audit(state.store.as_ref(), "archive.delete", &id, serde_json::json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /v2/project/{apiKey}/archive/{archiveId}/streams` → 204.
#[utoipa::path(
    patch, path = "/v2/project/{apiKey}/archive/{archiveId}/streams", tag = "archives",
    params(("apiKey" = String, Path), ("archiveId" = String, Path)),
    request_body(content = StreamPatchBody),
    responses(
        (status = 204, description = "Stream added or removed"),
        (status = 400, description = "Neither or both of addStream/removeStream", body = conclave_core::wire::ErrorBody),
        (status = 404, description = "Archive or stream not found", body = conclave_core::wire::ErrorBody),
        (status = 405, description = "The archive's streamMode is auto", body = conclave_core::wire::ErrorBody),
        (status = 409, description = "Not recording", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn patch_streams(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((api_key, id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<StatusCode, ApiError> {
    caller.require_project(&api_key)?;
    let patch = parse_json::<StreamPatchBody>(&body)?.validate().map_err(|e| ApiError::bad_request(e.0))?;
    archiver(&state)?.patch_streams(&api_key, &id, patch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v2/project/{apiKey}/archive/{archiveId}/layout` → 200 with the archive (the Vonage
/// Python SDK's `change_archive_layout` returns it; the OpenTok SDKs ignore the body).
#[utoipa::path(
    put, path = "/v2/project/{apiKey}/archive/{archiveId}/layout", tag = "archives",
    params(("apiKey" = String, Path), ("archiveId" = String, Path)),
    request_body(content = ArchiveLayout),
    responses((status = 200, description = "Layout stored: the archive", body = ArchiveJson), (status = 400, description = "Invalid layout", body = conclave_core::wire::ErrorBody), (status = 404, description = "Archive not found", body = conclave_core::wire::ErrorBody)),
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
    let a = archiver(&state)?;
    a.set_layout(&api_key, &id, layout).await?;
    let r = a.get(&api_key, &id).await?;
    Ok(axum::Json(a.to_json(&r)).into_response())
}

/// `PUT /v2/project/{apiKey}/archive/storage` → 200: checked with a real PutObject first.
#[utoipa::path(
    put, path = "/v2/project/{apiKey}/archive/storage", tag = "archives",
    params(("apiKey" = String, Path)),
    request_body(content = StorageBody),
    responses(
        (status = 200, description = "Saved (the secret key is never returned)"),
        (status = 400, description = "Invalid target, or the test PutObject failed", body = conclave_core::wire::ErrorBody),
    ),
    security(("opentok_auth" = []))
)]
pub async fn set_storage(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(api_key): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    let target = parse_json::<StorageBody>(&body)?.validate().map_err(|e| ApiError::bad_request(e.0))?;
    // The save-time check makes this server send a request: the endpoint obeys the SSRF
    // policy of callbacks (public https unless --allow-private/http-callbacks).
    if let Some(ep) = &target.s3.endpoint {
        crate::webhook::check_outbound_url(ep, state.callback_policy)
            .await
            .map_err(|e| ApiError::bad_request(format!("config.endpoint refused: {e}")))?;
    }
    let marker = crate::archive::storage::check(&target, state.callback_policy).await.map_err(ApiError::bad_request)?;
    let json = serde_json::to_string(&target).expect("serializes");
    state
        .store
        .set_archive_storage(&api_key, Some(&json), crate::clock::unix_ms())
        .await
        .map_err(|e| ApiError::internal("saving the upload target failed", &e))?;
    let detail =
        serde_json::json!({"bucket": target.s3.bucket, "endpoint": target.s3.endpoint, "fallback": target.fallback});
    caller.audit(state.store.as_ref(), "archive.storage_set", &api_key, detail.clone()).await;
    Ok(axum::Json(serde_json::json!({"type": "s3", "config": {"bucket": target.s3.bucket, "endpoint": target.s3.endpoint, "region": target.s3.region, "prefix": target.s3.prefix}, "fallback": target.fallback, "checkedWith": marker})).into_response())
}

/// `DELETE /v2/project/{apiKey}/archive/storage` → 204: archives stay in the fallback store.
#[utoipa::path(delete, path = "/v2/project/{apiKey}/archive/storage", tag = "archives", params(("apiKey" = String, Path)), responses((status = 204, description = "Removed")), security(("opentok_auth" = [])))]
pub async fn delete_storage(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(api_key): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_project(&api_key)?;
    state
        .store
        .set_archive_storage(&api_key, None, crate::clock::unix_ms())
        .await
        .map_err(|e| ApiError::internal("removing the upload target failed", &e))?;
    caller.audit(state.store.as_ref(), "archive.storage_removed", &api_key, serde_json::json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionBody {
    /// `age1…`, `ssh-rsa …`, a PEM RSA public key or an X.509 certificate (PEM).
    public_key: Option<String>,
}

/// `PUT /v2/project/{apiKey}/archive/encryption` (extension) → 200: new archives are
/// encrypted to this key while they record.
#[utoipa::path(
    put, path = "/v2/project/{apiKey}/archive/encryption", tag = "archives",
    params(("apiKey" = String, Path)),
    request_body(content = EncryptionBody),
    responses((status = 200, description = "Saved"), (status = 400, description = "Not a usable public key", body = conclave_core::wire::ErrorBody)),
    security(("opentok_auth" = []))
)]
pub async fn set_encryption(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(api_key): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require_project(&api_key)?;
    let b: EncryptionBody = parse_json(&body)?;
    let key =
        b.public_key.filter(|k| !k.trim().is_empty()).ok_or_else(|| ApiError::bad_request("publicKey is required"))?;
    if key.len() > 16 * 1024 {
        return Err(ApiError::bad_request("publicKey is too long"));
    }
    conclave_archive::encrypt::ArchiveRecipient::parse(&key)
        .map_err(|e| ApiError::bad_request(format!("publicKey is not usable: {e}")))?;
    state
        .store
        .set_archive_recipient(&api_key, Some(key.trim()))
        .await
        .map_err(|e| ApiError::internal("saving the archive key failed", &e))?;
    caller.audit(state.store.as_ref(), "archive.encryption_set", &api_key, serde_json::json!({})).await;
    Ok(axum::Json(serde_json::json!({"encrypted": true})).into_response())
}

/// `DELETE /v2/project/{apiKey}/archive/encryption` → 204.
#[utoipa::path(delete, path = "/v2/project/{apiKey}/archive/encryption", tag = "archives", params(("apiKey" = String, Path)), responses((status = 204, description = "Removed")), security(("opentok_auth" = [])))]
pub async fn delete_encryption(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(api_key): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_project(&api_key)?;
    state
        .store
        .set_archive_recipient(&api_key, None)
        .await
        .map_err(|e| ApiError::internal("removing the archive key failed", &e))?;
    caller.audit(state.store.as_ref(), "archive.encryption_removed", &api_key, serde_json::json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DownloadQuery {
    expires: Option<u64>,
    signature: Option<String>,
}

/// The signed URL of an `available` archive (no credential: the signature is one, valid
/// 10 minutes).
#[utoipa::path(
    get, path = "/v2/project/{apiKey}/archive/{archiveId}/download", tag = "archives",
    params(("apiKey" = String, Path), ("archiveId" = String, Path), DownloadQuery),
    responses((status = 200, description = "The file"), (status = 403, description = "Missing, wrong or expired signature", body = conclave_core::wire::ErrorBody), (status = 404, description = "Not available", body = conclave_core::wire::ErrorBody)),
)]
pub async fn download(
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, String)>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let a = archiver(&state)?;
    let (Some(expires), Some(sig)) = (q.expires, q.signature) else {
        return Err(ApiError::forbidden("a signed URL is required (get one from the archive API)"));
    };
    if !conclave_core::archive::is_archive_id(&id) || !a.verify_download(&api_key, &id, expires, &sig) {
        return Err(ApiError::forbidden("the download URL is invalid or expired"));
    }
    let r = a.get(&api_key, &id).await?;
    let file = match (&r.status, &r.fallback_file) {
        (conclave_core::archive::ArchiveStatus::Available, Some(f)) => f.clone(),
        _ => return Err(ApiError::not_found(format!("the archive is {}, not available", r.status.as_str()))),
    };
    let ext = file.split_once('.').map(|(_, e)| e).unwrap_or("");
    let path = a.fallback().path_for(&id, ext).map_err(|e| ApiError::internal("bad stored file name", &e))?;
    let f = tokio::fs::File::open(&path).await.map_err(|_| ApiError::not_found("the archive file is gone"))?;
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let mime = match ext {
        "zip" => "application/zip",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    };
    let name = format!(
        "{id}.{}",
        if r.encrypted {
            format!(
                "{}.age",
                if r.output_mode == conclave_core::archive::OutputMode::Individual { "zip" } else { "mp4" }
            )
        } else {
            ext.to_owned()
        }
    );
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(f)),
    )
        .into_response())
}
