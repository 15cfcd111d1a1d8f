//! Conclave's media layer: a sans-IO SFU core built on str0m.
//!
//! This crate owns the WebRTC state of every media peer (one str0m `Rtc`
//! each), the demultiplexing of datagrams to peers, and the forwarding of
//! media between publishers and subscribers. It owns no sockets, no clocks
//! and no tasks: the caller feeds datagrams and time in and sends what comes
//! out. It must not know about signaling, tokens, sessions or storage.
//!
//! The entry point is [`Sfu`]; see its docs for the run loop.

mod error;
mod fallback;
mod forward;
mod forward_rtp;
mod negotiate;
mod output;
mod overload;
mod peer;
#[cfg_attr(not(test), expect(dead_code, reason = "the RTP-mode pieces are wired into forwarding next (issue 16)"))]
mod rtp;
mod sfu;
mod stun;

pub use error::SfuError;
pub use output::{RecordedFrame, SfuEvent, SfuOutput, ShedStats};
pub use overload::OverloadGuard;
pub use rtp::backlog::Shed;
pub use sfu::Sfu;

/// str0m types that appear in this crate's API.
pub use str0m::media::{MediaKind, Mid};
