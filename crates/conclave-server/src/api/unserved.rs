//! OpenTok / Vonage Video REST features that Conclave does not serve (SIP dial and DTMF,
//! live captions, Experience Composer):
//! an authenticated caller gets 501 with a JSON `message` naming the feature, never a crash
//! or an HTML page; an unauthenticated one gets the usual 403 first.
//!
//! Owns: the list of those routes and their answer. Must not touch: anything that is served.

use super::ApiError;
use super::extract::RestCaller;
use crate::AppState;
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, any};
use std::collections::HashMap;

/// (path, feature) for every route answered 501.
const ROUTES: &[(&str, &str)] = &[
    ("/v2/project/{api_key}/dial", "SIP interconnect (dial)"),
    ("/v2/project/{api_key}/session/{session_id}/play-dtmf", "SIP DTMF (play-dtmf)"),
    ("/v2/project/{api_key}/session/{session_id}/connection/{connection_id}/play-dtmf", "SIP DTMF (play-dtmf)"),
    ("/v2/project/{api_key}/captions", "live captions"),
    ("/v2/project/{api_key}/captions/{id}", "live captions"),
    ("/v2/project/{api_key}/captions/{id}/{op}", "live captions"),
    ("/v2/project/{api_key}/render", "Experience Composer (render)"),
    ("/v2/project/{api_key}/render/{id}", "Experience Composer (render)"),
];

fn not_served(feature: &'static str) -> MethodRouter<AppState> {
    any(move |caller: RestCaller, Path(params): Path<HashMap<String, String>>| async move {
        let path_key = params.get("api_key").map(String::as_str).unwrap_or_default();
        caller.require_project(path_key)?;
        Err::<(), _>(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("Conclave does not serve {feature}; see docs/vonage.md for what is served"),
        ))
    })
}

/// The 501 routes, merged into the API router.
pub fn router() -> Router<AppState> {
    ROUTES.iter().fold(Router::new(), |r, (path, feature)| r.route(path, not_served(feature)))
}
