//! Conclave's pure core: session IDs, client-token codecs (T1 and JWT), REST credentials
//! (`X-OPENTOK-AUTH`), the REST and archive wire types, the protocol v1 signaling messages
//! (`signal`), the OpenTok.js Rumor/Raptor codec (`opentok`), roles, the SSRF address policy
//! (`netpolicy`), the personal-data scan of connection data (`pii`) and the RS256 credentials
//! of Vonage applications (`app_jwt`).
//!
//! Owns: every byte-level format that the official OpenTok SDKs and clients, and Conclave's own
//! clients, produce or parse.
//! Must not touch: sockets, files, clocks or randomness. Callers pass the current time and
//! the random bytes in, so everything here is deterministic and testable.

pub mod app_jwt;
pub mod archive;
pub mod broadcast;
pub mod credentials;
pub mod ids;
pub mod jws;
pub mod netpolicy;
pub mod opentok;
pub mod pii;
pub mod rest_auth;
pub mod role;
pub mod signal;
pub mod token;
pub mod wire;

pub use ids::SessionId;
pub use role::Role;
pub use token::{ClientClaims, TokenError, TokenFormat};

/// Clock skew tolerated on every time check, in seconds (compat doc 3.5 and 5.2).
pub const CLOCK_SKEW_SECS: u64 = 60;
