//! Errors returned by the SFU's control API.
//!
//! Owns only the error type; datagram and timeout handling never return
//! errors (bad packets are dropped and logged instead).

/// What went wrong with a control call on [`crate::Sfu`].
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("a peer with id {0:?} already exists")]
    PeerExists(String),
    #[error("no peer with id {0:?}")]
    UnknownPeer(String),
    #[error("peer {peer:?} has no published track with mid {mid}")]
    UnknownTrack { peer: String, mid: String },
    #[error("peer {0:?} publishes no tracks yet")]
    NoTracks(String),
    #[error("a peer cannot subscribe to itself")]
    SelfSubscribe,
    #[error("invalid SDP: {0}")]
    Sdp(String),
    #[error("no server offer is awaiting an answer from peer {0:?}")]
    NoPendingOffer(String),
    #[error("invalid host candidate: {0}")]
    Candidate(String),
    #[error("webrtc error: {0}")]
    Rtc(#[from] str0m::RtcError),
}
