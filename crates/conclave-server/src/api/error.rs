//! API errors and the two middlewares that keep every answer well-formed: one turns any
//! non-JSON error (for example axum's own 413 or 405 rejections) into `{code, message}`,
//! the other logs method, path and status (never headers, so never a credential).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_core::wire::ErrorBody;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: i64,
    pub message: String,
    /// Seconds, sent as `Retry-After` (429 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, code: i64::from(status.as_u16()), message: message.into(), retry_after: None }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 403 with OpenTok's `code: -1`, which both SDKs surface as an auth error.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::FORBIDDEN, code: -1, message: message.into(), retry_after: None }
    }
    /// 429 with `Retry-After` (whole seconds, rounded up).
    pub fn too_many(retry_after: std::time::Duration, what: &str) -> Self {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        ApiError {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("rate limit exceeded for this {what}; retry after {secs} s"),
            )
        }
    }

    pub fn internal(what: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{what}");
        // SQLite's SQLITE_FULL and the OS's ENOSPC: the request may be retried elsewhere.
        let text = err.to_string();
        if text.contains("database or disk is full") || text.contains("No space left on device") {
            return Self::new(StatusCode::INSUFFICIENT_STORAGE, "the server's disk is full; try again later");
        }
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(ErrorBody { code: self.code, message: self.message })).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&resp) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .unwrap_or_default();
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text.trim().to_owned()
    };
    let body = serde_json::to_vec(&ErrorBody { code: i64::from(status.as_u16()), message }).expect("serializes");
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Per-source-IP limit on every REST request, before any parsing or store access.
pub async fn limit_per_ip(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    // The signaling upgrade has its own per-IP connect limit.
    if req.uri().path() != "/v1/signal"
        && let Err(wait) = state.limiters.rest_per_ip.check(&ip, std::time::Instant::now())
    {
        crate::metrics::inc(&state.metrics.counters.rate_limited);
        tracing::warn!(%ip, "REST rate limit exceeded for a source address");
        return ApiError::too_many(wait, "source address").into_response();
    }
    next.run(req).await
}

pub async fn log_requests(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = loggable_path(req.uri().path());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::error!(%method, %path, status, micros, "request failed");
    } else {
        tracing::debug!(%method, %path, status, micros, "request");
    }
    resp
}

/// A request path as logged: a broadcast's HLS capability (the secret part of its URL) is
/// replaced by `<capability>`.
pub fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/hls/").and_then(|rest| rest.split_once('/')) {
        Some((id, rest)) => {
            let file = rest.split_once('/').map(|(_, f)| f).unwrap_or("");
            format!("/hls/{id}/<capability>/{file}")
        }
        None => path.to_owned(),
    }
}

/// A handler that panicked answers 500 JSON and logs one error line; the connection, the
/// server and every other request carry on (`CatchPanicLayer`). The panic payload is not
/// echoed to the client: it may quote internal values.
pub fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    tracing::error!(panic = %what, "a request handler panicked; answered 500");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; the request was not completed").into_response()
}

#[cfg(test)]
mod log_tests {
    #[test]
    fn hls_capabilities_never_reach_the_log() {
        assert_eq!(super::loggable_path("/hls/abc/s3cr3t/index.m3u8"), "/hls/abc/<capability>/index.m3u8");
        assert_eq!(super::loggable_path("/hls/abc/s3cr3t"), "/hls/abc/<capability>/");
        assert_eq!(super::loggable_path("/v2/project/1/broadcast"), "/v2/project/1/broadcast");
    }
}
