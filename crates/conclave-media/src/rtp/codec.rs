//! Codec dispatch: one view of a packet's payload, whatever the codec, so the leg's policy
//! (gate, temporal filter) is written once.
//!
//! Owns the mapping from a codec to its payload reader (`vp8`, `vp9`, `h264`) and the
//! codec's RTP clock rate. It must not keep state or decide what to forward.

use super::vp8::{self, Vp8Descriptor};
use super::{h264, vp9};

/// The codecs the SFU forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Opus,
    Vp8,
    Vp9,
    H264,
    /// Anything else (AV1 today): forwarded, but never gated or filtered by its payload.
    Other {
        video: bool,
    },
}

impl Codec {
    /// The codec of a lowercase or uppercase name (`opus`, `VP8`, …); `video` says what an
    /// unknown one carries.
    pub fn from_name(name: &str, video: bool) -> Codec {
        match name.to_ascii_lowercase().as_str() {
            "opus" => Codec::Opus,
            "vp8" => Codec::Vp8,
            "vp9" => Codec::Vp9,
            "h264" => Codec::H264,
            _ => Codec::Other { video },
        }
    }

    pub fn is_video(self) -> bool {
        match self {
            Codec::Opus => false,
            Codec::Vp8 | Codec::Vp9 | Codec::H264 => true,
            Codec::Other { video } => video,
        }
    }

    /// The RTP clock rate (Hz) WebRTC uses for it.
    pub fn clock_rate(self) -> u32 {
        if self.is_video() { 90_000 } else { 48_000 }
    }
}

/// What forwarding needs to know about one packet's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PayloadInfo {
    /// A decoder can start here: the first packet of a keyframe, or any audio packet.
    pub keyframe: bool,
    pub temporal: Option<u8>,
    pub spatial: Option<u8>,
    /// A temporal switching-up point (VP8 Y bit, VP9 U bit).
    pub layer_sync: bool,
    /// The VP8 descriptor, for picture ID rewriting.
    pub vp8: Option<Vp8Descriptor>,
}

/// Reads a payload of `codec`. A payload that does not parse reads as a plain packet of the
/// base layer that is no keyframe.
pub(crate) fn inspect(codec: Codec, payload: &[u8]) -> PayloadInfo {
    match codec {
        Codec::Opus | Codec::Other { video: false } => PayloadInfo { keyframe: true, ..PayloadInfo::default() },
        Codec::Other { video: true } => PayloadInfo::default(),
        Codec::Vp8 => vp8::parse(payload).map_or_else(PayloadInfo::default, |d| PayloadInfo {
            keyframe: d.keyframe,
            temporal: d.temporal,
            spatial: None,
            layer_sync: d.layer_sync,
            vp8: Some(d),
        }),
        Codec::Vp9 => vp9::parse(payload).map_or_else(PayloadInfo::default, |d| PayloadInfo {
            keyframe: d.keyframe,
            temporal: d.temporal,
            spatial: d.spatial,
            layer_sync: d.switching_up,
            vp8: None,
        }),
        Codec::H264 => PayloadInfo {
            keyframe: h264::inspect(payload).is_some_and(|i| i.starts_keyframe),
            ..PayloadInfo::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::vp8::tests::vp8_packet;

    #[test]
    fn names_and_clock_rates() {
        assert_eq!(Codec::from_name("VP8", true), Codec::Vp8);
        assert_eq!(Codec::from_name("av1", true), Codec::Other { video: true });
        assert_eq!(Codec::Opus.clock_rate(), 48_000);
        assert_eq!(Codec::H264.clock_rate(), 90_000);
    }

    #[test]
    fn each_codec_reads_its_own_payload() {
        assert!(inspect(Codec::Opus, &[0xfc]).keyframe, "any audio packet is a starting point");
        let vp8 = inspect(Codec::Vp8, &vp8_packet(5, 1, 2, true, true, false));
        assert_eq!((vp8.keyframe, vp8.temporal, vp8.layer_sync), (false, Some(2), true));
        assert!(vp8.vp8.is_some());
        assert!(inspect(Codec::Vp8, &vp8_packet(5, 1, 0, false, true, true)).keyframe);
        let vp9 = inspect(Codec::Vp9, &[0xa8, 0x05, 0x40, 3, 0x00]);
        assert_eq!((vp9.keyframe, vp9.temporal, vp9.spatial), (true, Some(2), Some(0)));
        assert!(inspect(Codec::H264, &[0x65, 0x00]).keyframe);
        assert_eq!(inspect(Codec::Vp8, &[]), PayloadInfo::default(), "malformed: no keyframe, base layer");
        assert!(!inspect(Codec::Other { video: true }, &[0x00]).keyframe);
    }
}
