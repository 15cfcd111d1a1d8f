//! Crash recovery for plaintext recordings: a WebM left behind by a killed recorder (unknown
//! sizes, no Duration, no Cues, maybe a torn last block) is remuxed by ffmpeg (`-c copy`, no
//! re-encoding) into a finished WebM with Duration and Cues. It owns only that remux; it
//! must not decide which files to recover, delete the input, or touch encrypted recordings
//! (those cannot be repaired without the recipient's key: see `recorder`'s `sink`).

use crate::error::{ArchiveError, Result};
use crate::ffmpeg::{count_packets, ffmpeg_bin, run};
use std::path::Path;

pub use crate::ffmpeg::probe_duration_ms;

/// Result of `finalize_crashed_webm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredFile {
    pub duration_ms: u64,
    pub size: u64,
    pub has_audio: bool,
    pub has_video: bool,
}

/// Remux the crash-truncated WebM (or Matroska, for H.264: name `output` `.mkv`) `input`
/// into `output` (overwritten; `input` is left alone). Fails, removing `output`, when ffmpeg cannot read the input or no audio or video
/// packet survived.
pub fn finalize_crashed_webm(input: &Path, output: &Path) -> Result<RecoveredFile> {
    let r = remux(input, output);
    if r.is_err() {
        let _ = std::fs::remove_file(output);
    }
    r
}

fn remux(input: &Path, output: &Path) -> Result<RecoveredFile> {
    run(
        &ffmpeg_bin(),
        &[
            "-hide_banner".as_ref(),
            "-nostdin".as_ref(),
            "-v".as_ref(),
            "error".as_ref(),
            "-y".as_ref(),
            "-i".as_ref(),
            input.as_os_str(),
            "-map".as_ref(),
            "0".as_ref(),
            "-c".as_ref(),
            "copy".as_ref(),
            "-f".as_ref(),
            // An H.264 recording is Matroska, which the webm muxer refuses.
            if output.extension().is_some_and(|e| e == "mkv") { "matroska" } else { "webm" }.as_ref(),
            output.as_os_str(),
        ],
    )?;
    let (audio, video) = count_packets(output)?;
    if audio + video == 0 {
        return Err(ArchiveError::Invalid(format!("{} holds no usable frames", input.display())));
    }
    std::fs::File::open(output)?.sync_all()?;
    Ok(RecoveredFile {
        duration_ms: probe_duration_ms(output)?,
        size: std::fs::metadata(output)?.len(),
        has_audio: audio > 0,
        has_video: video > 0,
    })
}
