//! What the SFU hands back to its caller: [`SfuOutput`] (datagrams to send, the next
//! timeout, events, recorded frames), [`SfuEvent`] and [`RecordedFrame`].
//!
//! Owns these plain data types only, so that `peer`, `sfu` and `forward` can all produce
//! output without importing each other. It must not hold state or logic: no str0m `Rtc`,
//! no peer maps, no forwarding rules.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::media::{MediaKind, Mid};

#[cfg(doc)]
use crate::Sfu;

/// What the SFU wants the caller to do.
#[derive(Debug)]
pub enum SfuOutput {
    /// Send `bytes` from the local `source` address to `destination`.
    Transmit { source: SocketAddr, destination: SocketAddr, bytes: Vec<u8> },
    /// Call [`Sfu::handle_timeout`] at this instant (earliest over all peers).
    /// The queue is drained when this is returned.
    Timeout(Instant),
    /// Something the application may act on.
    Event(SfuEvent),
    /// A frame of a tapped publisher, for recording (see [`Sfu::set_tap`]). Simulcast
    /// publishers hand out their best layer only.
    Recorded(RecordedFrame),
}

/// One depacketized frame of a tapped publisher.
#[derive(Debug)]
pub struct RecordedFrame {
    pub publisher: String,
    pub mid: Mid,
    pub kind: MediaKind,
    pub keyframe: bool,
    /// False when frames were lost just before this one (the recorder waits for a keyframe).
    pub contiguous: bool,
    /// Lowercase codec name: `opus`, `vp8`, `vp9`, `h264`, `av1`.
    pub codec: &'static str,
    /// When its first packet arrived (a wall clock for muxing).
    pub arrival: Instant,
    /// Its capture time on the sender's media clock (the RTP timestamp, extended), in µs:
    /// frames that arrive in a burst keep their real spacing.
    pub media_time_us: u64,
    pub data: Vec<u8>,
}

/// Things that happened to peers and tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEvent {
    /// ICE and DTLS are up: media can flow.
    PeerConnected { peer_id: String },
    /// ICE timed out, or the peer's WebRTC state failed. The peer stays
    /// registered until [`Sfu::remove_peer`].
    PeerDisconnected { peer_id: String },
    /// The peer's offer carried a track it sends.
    TrackPublished { peer_id: String, mid: Mid, kind: MediaKind },
    /// The server asked a publisher for a keyframe (PLI, or FIR if only
    /// that was negotiated). `subscriber` is the peer that caused it, if any.
    KeyframeRequested { publisher: String, mid: Mid, subscriber: Option<String> },
    /// The bandwidth towards a peer with audio fallback on (see [`Sfu::set_audio_fallback`])
    /// stayed too low for video, so it gets audio only (`audio_only: true`), or came back
    /// and video resumes from a keyframe (`false`).
    AudioFallback { peer_id: String, audio_only: bool },
}

/// What the SFU has shed so far to keep its send queues bounded and its worker on time (see
/// [`Sfu::shed_stats`]). Counters only grow; `legs_shedding` is the number now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShedStats {
    /// Packets a subscriber leg did not send because its send queue was too long (a slow link).
    pub backlog_packets: u64,
    /// Packets not sent because the worker was overloaded (see [`Sfu::set_overload`]).
    pub overload_packets: u64,
    /// Subscriber legs shedding for their backlog now.
    pub legs_shedding: u64,
}
