//! Conclave archive library: everything that happens to an archive's bytes after the SFU
//! hands over depacketized frames. It owns the WebM recorder (`recorder`), crash recovery of
//! recordings (`recover`), finishing the headers of live (encrypted) recordings
//! (`finalize`), the individual-mode ZIP package (`package`), the composed-mode MP4
//! (`compose`, via ffmpeg), age encryption (`encrypt`), S3 upload and the local fallback
//! store (`upload`), and live composition and decoding for broadcasts and the Audio
//! Connector (`live`). It must not know about sessions, REST, the database or the SFU: callers pass
//! plain frames, paths, ids and configs, and map the results onto the Archive object.

pub mod compose;
pub mod digest;
pub mod encrypt;
pub mod error;
pub mod ffmpeg;
pub mod finalize;
pub mod live;
pub mod package;
pub mod recorder;
pub mod recover;
pub mod upload;

pub use error::ArchiveError;
pub use recorder::{GateDecision, KeyframeGate, RecordedFile, RecorderConfig, StreamRecorder, VideoCodec};
