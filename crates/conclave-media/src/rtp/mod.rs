//! Forwarding policy as small pure pieces, one concern per module (issue 16, item 4).
//!
//! Everything here works on plain values (RTP header fields, payload bytes, estimates,
//! instants handed in by the caller): no I/O, no clock, no str0m `Rtc`. The SFU
//! (`forward`) owns the str0m side and applies what these pieces decide.
//!
//! - [`seq`]: wrapping counter arithmetic.
//! - [`munger`]: per-leg sequence number and timestamp rewriting.
//! - [`vp8`], [`vp9`], [`h264`]: payload descriptors (keyframes, layers, VP8 picture IDs).
//! - [`codec`]: the per-codec dispatch over those.
//! - [`temporal`]: the temporal-layer filter.
//! - [`gate`]: the keyframe gate after a start or a switch.
//! - [`layer`], [`selector`]: simulcast layer ranking and per-leg layer choice.
//! - [`cache`]: the per-publisher packet cache that answers NACKs.
//! - [`leg`]: one subscriber leg composed of the above.
//! - [`backlog`]: the bound on a leg's send queue, and what it sheds past it.
//! - [`depack`]: frames back from a tapped track's packets, for recording.

pub(crate) mod backlog;
pub(crate) mod cache;
pub(crate) mod codec;
pub(crate) mod depack;
pub(crate) mod gate;
pub(crate) mod h264;
pub(crate) mod layer;
pub(crate) mod leg;
pub(crate) mod munger;
pub(crate) mod selector;
pub(crate) mod seq;
pub(crate) mod temporal;
pub(crate) mod vp8;
pub(crate) mod vp9;

/// The RTP header fields forwarding reads and rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RtpHeader {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload_type: u8,
}
