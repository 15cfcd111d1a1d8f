//! Live composition for broadcasts (HLS and RTMP) and live audio for the Audio Connector:
//! streams decoded as they arrive (`decode`, one ffmpeg per stream and kind, fed through the
//! containers of `container`), composed on a canvas with the archive layouts (`picture`,
//! `compositor`), mixed (`mix`), encoded to H.264 + AAC (`encode`) and sent to each output
//! (`output`). It must not know about sessions, the SFU or REST: callers push frames and
//! pass checked targets.
//!
//! Why ffmpeg processes and not codec crates: the archive already depends on ffmpeg for
//! composition, its decoders cover VP8, VP9, H.264 and Opus, its x264/AAC encoders and HLS
//! and FLV muxers are the reference ones, and a crashed decoder is a process that restarts,
//! not a crashed server.

pub mod compositor;
pub mod container;
pub mod decode;
pub mod encode;
pub mod mix;
pub mod output;
pub mod picture;

pub use compositor::{LiveCompositor, LiveSpec};
pub use decode::{AudioDecoder, VideoDecoder};
pub use encode::EncodeSpec;
pub use output::{OutputKind, OutputState, OutputStatus, Target};
pub use picture::Picture;
