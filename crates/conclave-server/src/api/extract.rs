//! Request extractors: the authenticated REST caller, and the raw body with JSON errors.

use super::ApiError;
use crate::AppState;
use crate::auth::{AuthFailure, verify_application_credential, verify_rest_credential};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use std::net::SocketAddr;

pub const AUTH_HEADER: &str = "x-opentok-auth";

/// A caller whose credential verified: a project's `X-OPENTOK-AUTH` (HS256) or a Vonage
/// application's `Authorization: Bearer` (RS256); `api_key` is its project or application ID.
pub struct RestCaller {
    pub api_key: String,
    /// Authenticated as a Vonage application (`Authorization: Bearer`, RS256).
    pub is_application: bool,
    /// The source address, for the audit log.
    pub ip: String,
}

impl RestCaller {
    /// Records an administrative action of this caller, on its own project.
    pub async fn audit(
        &self,
        store: &dyn conclave_store::Store,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        let actor = if self.is_application {
            crate::audit::Actor::application(&self.api_key, &self.ip)
        } else {
            crate::audit::Actor::rest(&self.api_key, &self.ip)
        };
        crate::audit::record(store, &actor, Some(&self.api_key), action, target, detail).await;
    }

    /// Path-scoped endpoints: the credential's project must be the one in the path.
    pub fn require_project(&self, path_key: &str) -> Result<(), ApiError> {
        if self.api_key == path_key { Ok(()) } else { Err(ApiError::forbidden("credential is for another project")) }
    }
}

impl FromRequestParts<AppState> for RestCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let raw = parts.headers.get(AUTH_HEADER).map(|v| v.to_str().unwrap_or("\u{0}"));
        let bearer = parts.headers.get(axum::http::header::AUTHORIZATION).map(|v| {
            let v = v.to_str().unwrap_or("\u{0}");
            match v.get(..7) {
                Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => &v[7..],
                _ => "\u{0}",
            }
        });
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default();
        let is_application = raw.is_none() && bearer.is_some();
        let result = match (raw, bearer) {
            (Some(_), Some(_)) => Err(AuthFailure::Rejected(conclave_core::rest_auth::RestAuthError::TwoCredentials)),
            (Some(raw), None) => verify_rest_credential(state.store.as_ref(), raw).await,
            (None, Some(bearer)) => verify_application_credential(state.store.as_ref(), bearer).await,
            (None, None) => Err(AuthFailure::Rejected(conclave_core::rest_auth::RestAuthError::Missing)),
        };
        match result {
            Ok(cred) => {
                if let Err(wait) = state.limiters.rest_per_key.check(&cred.api_key, std::time::Instant::now()) {
                    crate::metrics::inc(&state.metrics.counters.rate_limited);
                    tracing::warn!(api_key = %cred.api_key, "REST rate limit exceeded for an API key");
                    return Err(ApiError::too_many(wait, "API key"));
                }
                Ok(RestCaller { api_key: cred.api_key, is_application, ip: peer })
            }
            Err(AuthFailure::Rejected(reason)) => {
                crate::metrics::inc(&state.metrics.counters.rest_auth_failures);
                // The reason and peer only: never the credential itself.
                tracing::warn!(%peer, path = %parts.uri.path(), %reason, "REST authentication failed");
                Err(ApiError::forbidden(format!("authentication failed: {reason}")))
            }
            Err(AuthFailure::Store(e)) => Err(ApiError::internal("store failed during authentication", &e)),
        }
    }
}

/// The request body as bytes; an oversized or unreadable body becomes a JSON 413/400.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(e) => Err(ApiError::new(e.status(), e.body_text())),
        }
    }
}
