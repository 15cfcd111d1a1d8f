//! Locating and running the ffmpeg/ffprobe binaries (`$CONCLAVE_FFMPEG` / `$CONCLAVE_FFPROBE`
//! or `ffmpeg` / `ffprobe` on PATH) and turning their failures into errors that carry the last
//! lines of stderr. It owns process plumbing only; it must not decide what to run.

use crate::error::{ArchiveError, Result};
use std::path::Path;
use std::process::{Command, Stdio};

/// Lines of stderr kept in an error message.
const TAIL_LINES: usize = 12;

/// The ffmpeg binary to run.
pub fn ffmpeg_bin() -> String {
    std::env::var("CONCLAVE_FFMPEG").unwrap_or_else(|_| "ffmpeg".into())
}

/// The ffprobe binary to run.
pub fn ffprobe_bin() -> String {
    std::env::var("CONCLAVE_FFPROBE").unwrap_or_else(|_| "ffprobe".into())
}

/// The last `TAIL_LINES` non-empty lines of `stderr`.
pub(crate) fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// Run `bin args…` to completion with stdin closed; stdout on success, an error with the
/// stderr tail otherwise.
pub(crate) fn run(bin: &str, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>> {
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ArchiveError::Ffmpeg(format!("cannot run {bin}: {e}")))?;
    if !out.status.success() {
        return Err(ArchiveError::Ffmpeg(format!("{bin} exited with {}: {}", out.status, tail(&out.stderr))));
    }
    Ok(out.stdout)
}

/// Container duration of a media file in milliseconds (ffprobe `format=duration`); an error
/// when the container has none (e.g. a live-mode WebM).
pub fn probe_duration_ms(path: &Path) -> Result<u64> {
    let out = run(
        &ffprobe_bin(),
        &[
            "-v".as_ref(),
            "error".as_ref(),
            "-show_entries".as_ref(),
            "format=duration".as_ref(),
            "-of".as_ref(),
            "csv=p=0".as_ref(),
            path.as_os_str(),
        ],
    )?;
    let text = String::from_utf8_lossy(&out);
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| ArchiveError::Ffmpeg(format!("no duration for {}: {text:?}", path.display())))?;
    Ok((secs * 1000.0).round() as u64)
}

/// The video frame shown at `at_secs` of a media file, decoded to packed RGB (3 bytes a
/// pixel, rows of the video's width): what checks of a composed layout read pixels from.
pub fn frame_rgb24(path: &Path, at_secs: f64) -> Result<Vec<u8>> {
    let at = at_secs.to_string();
    let args = ["-v", "error", "-ss", &at, "-i"].map(std::ffi::OsStr::new);
    let tail = ["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"].map(std::ffi::OsStr::new);
    let all: Vec<&std::ffi::OsStr> = args.iter().copied().chain([path.as_os_str()]).chain(tail).collect();
    run(&ffmpeg_bin(), &all)
}

/// Packets per stream type: `(audio, video)` counted by ffprobe reading the whole file.
pub(crate) fn count_packets(path: &Path) -> Result<(u64, u64)> {
    let out = run(
        &ffprobe_bin(),
        &[
            "-v".as_ref(),
            "error".as_ref(),
            "-count_packets".as_ref(),
            "-show_entries".as_ref(),
            "stream=codec_type,nb_read_packets".as_ref(),
            "-of".as_ref(),
            "csv=p=0".as_ref(),
            path.as_os_str(),
        ],
    )?;
    let (mut a, mut v) = (0, 0);
    for line in String::from_utf8_lossy(&out).lines() {
        let mut it = line.trim().trim_end_matches(',').split(',');
        let kind = it.next().unwrap_or("");
        let n: u64 = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        match kind {
            "audio" => a += n,
            "video" => v += n,
            _ => {}
        }
    }
    Ok((a, v))
}
