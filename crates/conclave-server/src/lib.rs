//! Conclave's server. Each capability is a module: `api` (REST), `signal` (the room and
//! protocol v1), `opentok` (the OpenTok.js wire adapter), `media` (the SFU task), `archive`,
//! `webhook` and `cluster`. Shared plumbing: `auth` (credential checks against the
//! store), `listen` (TLS policy and graceful shutdown), `provision` (projects and secrets).
//!
//! Must not touch: wire formats (those live in `conclave-core`) or SQL (in `conclave-store`).

pub mod api;
pub mod application;
pub mod archive;
pub mod audit;
pub mod auth;
pub mod broadcast;
pub mod clock;
pub mod cluster;
pub mod conn_limit;
pub mod datadir;
pub mod disk;
pub mod listen;
pub mod opentok;
pub mod provision;
pub mod ratelimit;
pub mod tls;
pub mod webhook;

use conclave_store::Store;
use std::sync::Arc;

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub hub: Arc<signal::hub::Hub>,
    pub limits: Limits,
    pub callback_policy: webhook::CallbackPolicy,
    pub limiters: Arc<ratelimit::Limiters>,
    pub metrics: Arc<metrics::Metrics>,
    /// The demo app, when `serve --demo` runs it.
    pub demo: Option<Arc<demo::Demo>>,
    /// Archiving (routed sessions); `None` when the server runs without media.
    pub archiver: Option<Arc<archive::Archiver>>,
    /// Live streaming and the Audio Connector (routed sessions); `None` without media.
    pub broadcaster: Option<Arc<broadcast::Broadcaster>>,
    /// Which node hosts which session ([`cluster::SingleNode`] unless clustered).
    pub cluster: Arc<dyn cluster::Coordinator>,
    /// Outbound HTTP (forwarding to other nodes).
    pub http: reqwest::Client,
    /// The listeners serve HTTPS (so sockets this server names are `wss:`).
    pub tls: bool,
    /// Free space on the data directory's disk (not ready and 507 below the floor).
    pub disk: Arc<disk::DiskGuard>,
}

/// Request-size limits, applied before any parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body_bytes: 64 * 1024 }
    }
}
pub mod demo;
pub mod media;
pub mod metrics;
pub mod signal;
