//! REST on any node: a session-scoped call (moderation, signals, streams, connections,
//! ending a session, starting or controlling an archive, starting a broadcast or an audio
//! connection) that reaches a node which does not
//! host the session is forwarded to the node that does, and its answer returned unchanged.
//! Forwarding (rather than pub/sub) keeps OpenTok's synchronous answers (404 for an unknown
//! connection, 409 for an archive conflict) exact.
//!
//! Owns: deciding where a request goes. Must not touch: authentication (the owner checks the
//! credential again; a forwarded request carries it unchanged) or the handlers.

use super::Owner;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const FORWARDED: &str = "x-conclave-forwarded";

/// What a path says about the session it concerns.
enum Target {
    Session(String),
    Archive(String),
    /// `POST …/archive`, `…/broadcast` and `…/connect`: the session is in the JSON body.
    StartInBody,
    /// A broadcast or an audio connection (its ID names its node), or a broadcast's HLS file.
    Node(String),
}

fn target(method: &axum::http::Method, path: &str) -> Option<Target> {
    if let Some(hls) = path.strip_prefix("/hls/") {
        return conclave_core::broadcast::node_of(hls.split('/').next()?).map(Target::Node);
    }
    let rest = path.strip_prefix("/v2/project/")?;
    let mut parts = rest.split('/');
    let _api_key = parts.next()?;
    match (parts.next()?, parts.next(), parts.next()) {
        ("session", Some(sid), _) => Some(Target::Session(sid.to_owned())),
        ("archive" | "broadcast" | "connect", None | Some(""), _) if method == axum::http::Method::POST => {
            Some(Target::StartInBody)
        }
        // The node that composes the broadcast or runs the connection answers for it.
        ("broadcast" | "connect", Some(id), _) => conclave_core::broadcast::node_of(id).map(Target::Node),
        // The archive's own node: it records it, and its fallback store holds the file.
        ("archive", Some(id), None | Some("stop" | "streams" | "layout" | "download"))
            if conclave_core::archive::is_archive_id(id) =>
        {
            Some(Target::Archive(id.to_owned()))
        }
        _ => None,
    }
}

pub async fn forward_if_remote(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.cluster.node_id().is_none() || req.headers().contains_key(FORWARDED) {
        return next.run(req).await;
    }
    let Some(t) = target(req.method(), req.uri().path()) else { return next.run(req).await };
    // Only a start needs its body to find the session; the others decide on the path
    // and leave the body to the handler unless the request is forwarded.
    let (parts, body, owner) = match t {
        Target::StartInBody => {
            let (parts, body) = req.into_parts();
            let Ok(body) = axum::body::to_bytes(body, state.limits.max_body_bytes).await else {
                return crate::api::ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
                    .into_response();
            };
            let owner = match serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["sessionId"].as_str().map(str::to_owned))
            {
                // Recording needs the session's media: place it now if nobody is there yet.
                Some(sid) => state.cluster.place(&sid).await,
                None => Ok(Owner::Local),
            };
            (parts, Body::from(body), owner)
        }
        Target::Session(sid) => {
            let owner = state.cluster.owner(&sid).await;
            let (parts, body) = req.into_parts();
            (parts, body, owner)
        }
        Target::Node(node) => {
            let owner = if Some(node.as_str()) == state.cluster.node_id() {
                Ok(Owner::Local)
            } else {
                match state.cluster.node(&node).await {
                    Some(info) => Ok(Owner::Remote(info)),
                    // Its node is gone, and the broadcast with it: answered here (404).
                    None => Ok(Owner::Local),
                }
            };
            let (parts, body) = req.into_parts();
            (parts, body, owner)
        }
        Target::Archive(id) => {
            let owner = match state.store.archive(&id).await {
                Ok(Some(r)) => match r.node {
                    Some(node) if Some(node.as_str()) != state.cluster.node_id() => {
                        match state.cluster.node(&node).await {
                            Some(info) => Ok(Owner::Remote(info)),
                            // Its node is gone: answer here from the store (status, reason).
                            None => Ok(Owner::Local),
                        }
                    }
                    _ => Ok(Owner::Local),
                },
                _ => Ok(Owner::Local),
            };
            let (parts, body) = req.into_parts();
            (parts, body, owner)
        }
    };
    match owner {
        Ok(Owner::Remote(node)) if !node.url.is_empty() => {
            match axum::body::to_bytes(body, state.limits.max_body_bytes).await {
                Ok(bytes) => forward(&state, node, parts, bytes).await,
                Err(_) => {
                    crate::api::ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response()
                }
            }
        }
        Ok(_) => next.run(Request::from_parts(parts, body)).await,
        Err(e) => crate::api::ApiError::internal("cluster lookup failed", &e).into_response(),
    }
}

async fn forward(state: &AppState, node: super::NodeInfo, parts: axum::http::request::Parts, body: Bytes) -> Response {
    let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{pq}", node.url);
    let mut req = state.http.request(parts.method.clone(), &url).body(body);
    for (k, v) in parts.headers.iter() {
        if k != axum::http::header::HOST && k != axum::http::header::CONTENT_LENGTH {
            req = req.header(k, v);
        }
    }
    req = req.header(HeaderName::from_static(FORWARDED), state.cluster.node_id().unwrap_or_default());
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut out = Response::new(Body::from(bytes));
            *out.status_mut() = status;
            for (k, v) in headers.iter() {
                if k != axum::http::header::TRANSFER_ENCODING && k != axum::http::header::CONNECTION {
                    out.headers_mut().insert(k, v.clone());
                }
            }
            out
        }
        Err(e) => {
            // Without the URL: its path may carry a capability (an HLS URL).
            tracing::warn!(node = %node.id, error = %e.without_url(), "forwarding to the session's node failed");
            crate::api::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the node hosting this session ({}) is unreachable; retry", node.id),
            )
            .into_response()
        }
    }
}
