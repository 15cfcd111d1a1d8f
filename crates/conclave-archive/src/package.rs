//! Individual-mode archive package: one ZIP holding each stream's WebM and a JSON manifest
//! shaped like OpenTok's individual archives. It owns the ZIP layout and the manifest schema;
//! it must not record, encrypt, upload or delete the input files. The ZIP is written as a
//! stream (local headers with data descriptors, no seeking), so it can be produced from
//! decrypting readers straight into an `EncryptingWriter`.

use crate::digest::sha256_file;
use crate::error::{ArchiveError, Result};
use crate::recorder::RecordedFile;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

/// One entry of the manifest's `files` array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFile {
    pub stream_id: String,
    pub filename: String,
    /// Milliseconds from archive start to the stream's first frame.
    pub start_time_offset: u64,
    /// Milliseconds from archive start to the stream's last frame.
    pub stop_time_offset: u64,
    pub size: u64,
    pub has_audio: bool,
    pub has_video: bool,
}

/// The manifest written as `<archiveId>.json` inside the ZIP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub id: String,
    pub session_id: String,
    /// Milliseconds since the epoch.
    pub created_at: u64,
    pub files: Vec<ManifestFile>,
}

/// One recorded stream to put into the package (`path` is only read by
/// `write_individual_zip`; `write_individual_zip_to` takes a reader instead).
#[derive(Debug, Clone)]
pub struct PackageInput {
    pub stream_id: String,
    pub path: PathBuf,
    pub start_time_offset_ms: u64,
    pub stop_time_offset_ms: u64,
    pub has_audio: bool,
    pub has_video: bool,
}

impl PackageInput {
    /// Input for a finished recording; offsets are taken relative to `archive_start_ns`
    /// (same clock as the timestamps given to the recorder).
    pub fn from_recorded(stream_id: &str, f: &RecordedFile, archive_start_ns: u64) -> Self {
        let start = f.first_timestamp_ns.unwrap_or(archive_start_ns).saturating_sub(archive_start_ns) / 1_000_000;
        Self {
            stream_id: stream_id.to_string(),
            path: f.path.clone(),
            start_time_offset_ms: start,
            stop_time_offset_ms: start + f.duration_ms,
            has_audio: f.has_audio,
            has_video: f.has_video,
        }
    }
}

/// The finished ZIP.
#[derive(Debug, Clone)]
pub struct Package {
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex SHA-256 of the ZIP file.
    pub sha256: String,
    pub manifest: Manifest,
}

/// Entry name for a stream: `<streamId>.webm`, with the stream id restricted to
/// `[A-Za-z0-9_-]` so that no entry can escape the extraction directory.
pub fn stream_filename(stream_id: &str) -> Result<String> {
    let ok = !stream_id.is_empty()
        && stream_id.len() <= 128
        && stream_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(ArchiveError::Invalid(format!("unsafe stream id {stream_id:?}")));
    }
    Ok(format!("{stream_id}.webm"))
}

/// A stream's entry in the ZIP: `<streamId>.webm`, or `<streamId>.mkv` for an H.264
/// recording (as OpenTok names them), going by the recorded file's name.
fn entry_name(s: &PackageInput) -> Result<String> {
    let webm = stream_filename(&s.stream_id)?;
    let name = s.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.ends_with(".mkv") || name.ends_with(".mkv.age") {
        return Ok(format!("{}.mkv", webm.trim_end_matches(".webm")));
    }
    Ok(webm)
}

/// Write `out` as a ZIP of `streams` (stored, since WebM is already compressed) plus a
/// deflated `<archive_id>.json` manifest, then fsync and hash it.
pub fn write_individual_zip(
    out: &Path,
    archive_id: &str,
    session_id: &str,
    created_at_ms: u64,
    streams: &[PackageInput],
) -> Result<Package> {
    let mut inputs: Vec<(PackageInput, Box<dyn Read + Send>)> = Vec::with_capacity(streams.len());
    for s in streams {
        inputs.push((s.clone(), Box::new(File::open(&s.path)?)));
    }
    let file = BufWriter::new(File::create(out)?);
    let (manifest, w) = write_individual_zip_to(file, archive_id, session_id, created_at_ms, inputs)?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let size = std::fs::metadata(out)?.len();
    Ok(Package { path: out.to_path_buf(), size, sha256: sha256_file(out)?, manifest })
}

/// Stream a ZIP of `inputs` (each entry's bytes read to the end from its reader; the
/// manifest `size` is the number of bytes read) plus the `<archive_id>.json` manifest into
/// `out`, without seeking. Returns the manifest and `out` (flushed, not closed).
pub fn write_individual_zip_to<W: Write>(
    out: W,
    archive_id: &str,
    session_id: &str,
    created_at_ms: u64,
    inputs: Vec<(PackageInput, Box<dyn Read + Send>)>,
) -> Result<(Manifest, W)> {
    let manifest_name = format!("{}.json", uuid_like(archive_id)?);
    let names = inputs.iter().map(|(s, _)| entry_name(s)).collect::<Result<Vec<_>>>()?;
    let mut zip = ZipWriter::new_stream(out);
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored).large_file(true);
    let mut files = Vec::with_capacity(inputs.len());
    for ((s, mut src), filename) in inputs.into_iter().zip(names) {
        zip.start_file(filename.as_str(), stored)?;
        let size = std::io::copy(&mut src, &mut zip)?;
        files.push(ManifestFile {
            stream_id: s.stream_id,
            filename,
            start_time_offset: s.start_time_offset_ms,
            stop_time_offset: s.stop_time_offset_ms,
            size,
            has_audio: s.has_audio,
            has_video: s.has_video,
        });
    }
    let manifest =
        Manifest { id: archive_id.to_string(), session_id: session_id.to_string(), created_at: created_at_ms, files };
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    zip.start_file(manifest_name.as_str(), deflated)?;
    zip.write_all(&serde_json::to_vec_pretty(&manifest)?)?;
    let mut w = zip.finish()?.into_inner();
    w.flush()?;
    Ok((manifest, w))
}

fn uuid_like(id: &str) -> Result<&str> {
    uuid::Uuid::parse_str(id).map_err(|_| ArchiveError::Invalid(format!("archive id {id:?} is not a UUID")))?;
    Ok(id)
}
