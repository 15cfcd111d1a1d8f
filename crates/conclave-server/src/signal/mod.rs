//! Signaling: the WebSocket endpoint, the per-session rooms, and the hub that connects them.
//!
//! `room` is the pure state machine; `hub` holds the live rooms and delivers their outputs;
//! `ws` is the socket shell (framing, heartbeat, limits). Must not touch: REST routing or SQL.

pub mod adapter;
pub mod hub;
pub mod media_path;
pub mod outbound;
pub mod room;
pub mod ws;
