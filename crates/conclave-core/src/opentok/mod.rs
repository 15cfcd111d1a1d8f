//! The OpenTok.js browser-client wire protocol, as a pure codec (protocol reference
//! `opentokjs-protocol.md`, §5 to §9).
//!
//! Two layers:
//! - [`rumor`]: the binary framing of every WebSocket message (type, addresses, headers, body);
//! - [`raptor`]: the JSON messages inside Rumor MESSAGE bodies, with the URI grammar, typed
//!   client requests and builders for everything the server sends.
//!
//! Owns: bytes ↔ typed values, with bounds on every size so that hostile input is an error and
//! never a panic. Must not touch: sockets, files, clocks or randomness. Callers pass connection
//! IDs, transaction IDs, peer IDs and timestamps in; session state, permissions and relaying
//! decisions live in the server.

pub mod raptor;
pub mod rumor;

#[cfg(test)]
mod tests;

pub use raptor::{
    ClientMessage, ClientRaptor, ClientRequest, Method, RaptorError, RaptorUri, Resource, ServerRaptor, SessionPath,
};
pub use rumor::{ClientFrame, Headers, Limits, MessageType, RumorError, RumorFrame};
