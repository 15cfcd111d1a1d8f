//! Signaling: the WebSocket endpoint, the per-session rooms, and the hub that connects them.
//!
//! `room` is the pure state machine, shared by every wire protocol; `hub` holds the live rooms
//! and delivers their outputs; `outbound` is each socket's bounded queue; `media_path` applies
//! the room's media intents to the SFU in order; `adapter` is the hub's API for wire adapters
//! other than protocol v1 (`crate::opentok`); `ws` is protocol v1's socket shell (framing,
//! heartbeat, limits). Must not touch: REST routing or SQL.

pub mod adapter;
pub mod hub;
pub mod media_path;
pub mod outbound;
pub mod room;
pub mod ws;
