//! Operations endpoints: `/healthz` (alive), `/readyz` (store reachable, disk not full, not
//! draining), the 507 guard on writes while the disk is full, and
//! `/metrics` (Prometheus text, only for allow-listed addresses; denied until configured).

use super::ApiError;
use crate::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    if state.hub.is_draining() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "draining: shutting down"));
    }
    if state.disk.is_full() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the data directory's disk is full"));
    }
    state.store.ping().await.map_err(|e| {
        tracing::error!(error = %e, "readiness: store unreachable");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store unreachable")
    })?;
    Ok(axum::Json(serde_json::json!({"status": "ready"})))
}

pub async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<Response, ApiError> {
    if !state.metrics.allowed(peer.ip()) {
        return Err(ApiError::forbidden("metrics are only served to addresses in --metrics-allow"));
    }
    let (sessions, connections, streams) = state.hub.stats();
    let recording = state.archiver.as_ref().map_or(0, |a| a.active_count() as u64);
    let broadcasting = state.broadcaster.as_ref().map_or(0, |b| b.active_count() as u64);
    let connectors = state.broadcaster.as_ref().map_or(0, |b| b.connectors.count() as u64);
    let media = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let c = &state.metrics.counters;
    let (shedding, overloaded) = (media(&c.media_legs_shedding), media(&c.media_workers_overloaded));
    let mut body = state.metrics.render(&[
        ("conclave_sessions_live", "Sessions with at least one connection", sessions),
        ("conclave_connections", "Signaling connections, suspended ones included", connections),
        ("conclave_streams", "Published streams", streams),
        ("conclave_archives_recording", "Archives recording on this node", recording),
        ("conclave_broadcasts_live", "Broadcasts composing on this node", broadcasting),
        ("conclave_audio_connections", "Audio Connector connections on this node", connectors),
        ("conclave_media_legs_shedding", "Subscriber tracks shedding for a long send queue now", shedding),
        ("conclave_media_workers_overloaded", "Media workers shedding video for overload now", overloaded),
    ]);
    match state.store.archive_status_counts().await {
        Ok(counts) => {
            body.push_str(
                "# HELP conclave_archives Archives by status (all projects)\n# TYPE conclave_archives gauge\n",
            );
            for (status, n) in counts {
                body.push_str(&format!("conclave_archives{{status=\"{}\"}} {n}\n", status.as_str()));
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: archive counts unavailable"),
    }
    // What a receiver that is down leaves behind: alert on the age, not only the count.
    match state.store.webhook_backlog().await {
        Ok((pending, oldest)) => {
            let age = oldest.map_or(0, |t| crate::clock::unix_ms().saturating_sub(t) / 1000);
            body.push_str(&format!(
                "# HELP conclave_webhooks_pending Webhooks not delivered yet (all nodes)\n# TYPE conclave_webhooks_pending gauge\nconclave_webhooks_pending {pending}\n\
                 # HELP conclave_webhooks_oldest_pending_seconds Age of the oldest undelivered webhook (0: none)\n# TYPE conclave_webhooks_oldest_pending_seconds gauge\nconclave_webhooks_oldest_pending_seconds {age}\n"
            ));
        }
        Err(e) => tracing::warn!(error = %e, "metrics: webhook backlog unavailable"),
    }
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    Ok(resp)
}

/// Writes (anything but GET, HEAD and OPTIONS) answer 507 while the data directory's disk is
/// below its floor: a clear refusal instead of a store failure halfway.
pub async fn refuse_writes_when_disk_full(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let reads = [axum::http::Method::GET, axum::http::Method::HEAD, axum::http::Method::OPTIONS];
    if !reads.contains(req.method()) && state.disk.is_full() {
        return ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "the server's disk is full; try again later")
            .into_response();
    }
    next.run(req).await
}
