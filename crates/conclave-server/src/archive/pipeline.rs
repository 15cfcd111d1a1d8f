//! What happens to a stopped archive: its streams become one file (individual ZIP or
//! composed MP4, age-encrypted to the project's key when it has one, without a plaintext
//! copy on disk), which is uploaded to the project's bucket (sha256 verified) or kept in the
//! local fallback store (files on disk, not the database). Failures raise an alert. Nothing is
//! deleted before it is delivered or kept.
//!
//! Owns: building the artifact and choosing `uploaded` / `available` / `failed`. Reads the
//! project's upload target from the store (`archive_storage`) and nothing else there; must not
//! write to the store: it returns an [`Outcome`] that the archiver records (`apply_outcome`).

use super::Archiver;
use super::recording::{FinishedStream, read_journal};
use conclave_archive::compose::{ComposeInput, ComposeOutput, ComposeSource, ComposeSpec, Quality, compose};
use conclave_archive::encrypt::{ArchiveRecipient, EncryptingWriter, EphemeralKey, open_decrypted};
use conclave_archive::finalize::finish_live;
use conclave_archive::package::{PackageInput, write_individual_zip, write_individual_zip_to};
use conclave_archive::upload::S3Target;
use conclave_core::archive::{ArchiveStatus, Fallback, OutputMode, parse_resolution};
use conclave_store::ArchiveRecord;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The end of the pipeline, applied to the record by the archiver.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: ArchiveStatus,
    pub reason: String,
    pub size: u64,
    pub sha256: String,
    pub duration_s: Option<u64>,
    pub fallback_file: Option<String>,
    pub uploaded_key: Option<String>,
    /// Leave the work directory alone (its files are the only copy).
    pub keep_work: bool,
}

impl Outcome {
    fn failed(reason: impl Into<String>) -> Outcome {
        Outcome {
            status: ArchiveStatus::Failed,
            reason: reason.into(),
            size: 0,
            sha256: String::new(),
            duration_s: None,
            fallback_file: None,
            uploaded_key: None,
            keep_work: true,
        }
    }

    pub fn apply(&self, r: &mut ArchiveRecord, retention: Duration) {
        r.status = self.status;
        if !self.reason.is_empty() {
            r.reason = self.reason.clone();
        }
        r.size = self.size;
        r.sha256 = self.sha256.clone();
        if let Some(d) = self.duration_s {
            r.duration_s = d;
        }
        r.fallback_file = self.fallback_file.clone();
        r.uploaded_key = self.uploaded_key.clone();
        r.expires_at_ms =
            (self.status == ArchiveStatus::Available).then(|| r.created_at_ms + retention.as_millis() as u64);
    }
}

/// The finished file, in the work directory.
#[derive(Debug)]
struct Artifact {
    path: PathBuf,
    /// Fallback-store extension: `zip`, `mp4`, or `age` when encrypted.
    ext: &'static str,
    /// Object name suffix in the customer's bucket.
    object_ext: &'static str,
    size: u64,
    sha256: String,
    duration_ms: u64,
}

pub async fn run(
    arch: &Arc<Archiver>,
    rec: &ArchiveRecord,
    streams: Vec<FinishedStream>,
    key: Option<(Arc<EphemeralKey>, String)>,
) -> Outcome {
    if streams.is_empty() {
        return Outcome {
            keep_work: false,
            ..Outcome::failed("nothing was recorded: no stream was published while the archive ran")
        };
    }
    if streams.iter().any(|s| s.encrypted) && key.is_none() {
        return Outcome::failed(
            "the recording was interrupted by a restart; its per-stream files are encrypted to the project key and kept in the work directory for an operator",
        );
    }
    let work = arch.work_dir(&rec.id);
    let r = rec.clone();
    let built = tokio::task::spawn_blocking(move || build(&r, streams, &work, key.as_ref())).await;
    let artifact = match built {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Outcome::failed(format!("processing failed: {e}")),
        Err(e) => return Outcome::failed(format!("processing crashed: {e}")),
    };
    deliver(arch, rec, artifact).await
}

fn build(
    rec: &ArchiveRecord,
    mut streams: Vec<FinishedStream>,
    work: &Path,
    key: Option<&(Arc<EphemeralKey>, String)>,
) -> Result<Artifact, String> {
    let e = |e: conclave_archive::ArchiveError| e.to_string();
    // Recording order (the grid's order, and the focus when no stream has the class).
    streams.sort_by(|a, b| (a.offset_ms, &a.stream_id).cmp(&(b.offset_ms, &b.stream_id)));
    let duration_ms = streams.iter().map(|s| s.offset_ms + s.duration_ms).max().unwrap_or(0);
    let open = |s: &FinishedStream| -> Result<Box<dyn Read + Send>, String> {
        match key {
            Some((k, _)) => Ok(Box::new(open_decrypted(&s.path, k).map_err(e)?)),
            None => Ok(Box::new(std::fs::File::open(&s.path).map_err(|e| e.to_string())?)),
        }
    };
    let customer = match key {
        Some((_, r)) => Some(ArchiveRecipient::parse(r).map_err(e)?.to_boxed()),
        None => None,
    };
    match rec.output_mode {
        OutputMode::Individual => {
            let inputs: Vec<PackageInput> = streams
                .iter()
                .map(|s| PackageInput {
                    stream_id: s.stream_id.clone(),
                    path: s.path.clone(),
                    start_time_offset_ms: s.offset_ms,
                    stop_time_offset_ms: s.offset_ms + s.duration_ms,
                    has_audio: s.has_audio,
                    has_video: s.has_video,
                })
                .collect();
            match customer {
                None => {
                    let out = work.join(format!("{}.zip", rec.id));
                    let p =
                        write_individual_zip(&out, &rec.id, &rec.session_id, rec.created_at_ms, &inputs).map_err(e)?;
                    Ok(Artifact {
                        path: out,
                        ext: "zip",
                        object_ext: "zip",
                        size: p.size,
                        sha256: p.sha256,
                        duration_ms,
                    })
                }
                Some(c) => {
                    let out = work.join(format!("{}.age", rec.id));
                    let w = EncryptingWriter::new(std::fs::File::create(&out).map_err(|e| e.to_string())?, &[c])
                        .map_err(e)?;
                    let mut readers = Vec::new();
                    for (i, s) in inputs.into_iter().zip(streams.iter()) {
                        readers.push((i, finished(s, key).map_or_else(|| open(s), Ok)?));
                    }
                    let (_, w) =
                        write_individual_zip_to(w, &rec.id, &rec.session_id, rec.created_at_ms, readers).map_err(e)?;
                    let f = w.finish().map_err(e)?;
                    Ok(Artifact {
                        path: out,
                        ext: "age",
                        object_ext: "zip.age",
                        size: f.size,
                        sha256: f.sha256,
                        duration_ms,
                    })
                }
            }
        }
        OutputMode::Composed => {
            let (w, h) = rec.resolution.as_deref().and_then(parse_resolution).unwrap_or((640, 480));
            let spec = ComposeSpec {
                width: w,
                height: h,
                epochs: super::layout::epochs_of(rec, &streams),
                quality: quality_of(rec.max_bitrate, rec.quantization_parameter),
            };
            let mut inputs = Vec::new();
            for s in &streams {
                let source =
                    if key.is_some() { ComposeSource::Reader(open(s)?) } else { ComposeSource::Path(s.path.clone()) };
                inputs.push(ComposeInput {
                    source,
                    offset_ms: s.offset_ms,
                    duration_ms: s.duration_ms,
                    has_audio: s.has_audio && rec.has_audio,
                    has_video: s.has_video && rec.has_video,
                });
            }
            match customer {
                None => {
                    let out = work.join(format!("{}.mp4", rec.id));
                    let c = compose(inputs, &spec, ComposeOutput::File(out.clone())).map_err(e)?;
                    Ok(Artifact {
                        path: out,
                        ext: "mp4",
                        object_ext: "mp4",
                        size: c.size,
                        sha256: c.sha256,
                        duration_ms: c.duration_ms,
                    })
                }
                Some(cust) => {
                    let out = work.join(format!("{}.age", rec.id));
                    let mut sink =
                        EncryptingWriter::new(std::fs::File::create(&out).map_err(|e| e.to_string())?, &[cust])
                            .map_err(e)?;
                    let c = compose(inputs, &spec, ComposeOutput::Writer(&mut sink)).map_err(e)?;
                    let f = sink.finish().map_err(e)?;
                    Ok(Artifact {
                        path: out,
                        ext: "age",
                        object_ext: "mp4.age",
                        size: f.size,
                        sha256: f.sha256,
                        duration_ms: c.duration_ms,
                    })
                }
            }
        }
    }
}

/// An encrypted stream recording, decrypted in memory and given the Duration and Cues its
/// live (non-seekable) recording could not write, as a plain recording has them. `None` (the
/// stream is then packaged as recorded) when there is no key or the file cannot be finished.
fn finished(s: &FinishedStream, key: Option<&(Arc<EphemeralKey>, String)>) -> Option<Box<dyn Read + Send>> {
    let (k, _) = key?;
    match finish_live(|| open_decrypted(&s.path, k)) {
        Ok(r) => Some(Box::new(r)),
        Err(e) => {
            tracing::warn!(stream = %s.stream_id, error = %e, "packaging the stream without a Duration");
            None
        }
    }
}

/// `maxBitrate` / `quantizationParameter` (validated at start: exclusive, in range).
fn quality_of(max_bitrate: Option<i64>, quantization_parameter: Option<i64>) -> Quality {
    match (max_bitrate, quantization_parameter) {
        (Some(b), _) => Quality::MaxBitrate(u32::try_from(b).unwrap_or(u32::MAX)),
        (None, Some(q)) => Quality::Qp(u8::try_from(q).unwrap_or(40)),
        (None, None) => Quality::Default,
    }
}

/// Upload (sha256 verified) or keep in the fallback store.
async fn deliver(arch: &Arc<Archiver>, rec: &ArchiveRecord, a: Artifact) -> Outcome {
    let duration_s = Some(a.duration_ms.div_ceil(1000));
    let target = match arch.store.archive_storage(&rec.api_key).await {
        Ok(t) => t.and_then(|json| super::storage::parse(&json)),
        Err(e) => {
            tracing::error!(error = %e, "reading the upload target failed; keeping the archive locally");
            None
        }
    };
    let upload_error = match &target {
        None => None,
        Some(t) => {
            let object = format!("{}/{}/archive.{}", rec.api_key, rec.id, a.object_ext);
            match upload(t, arch.config.outbound, &a.path, &object).await {
                Ok(res) if res.sha256 == a.sha256 && res.size == a.size => {
                    let _ = std::fs::remove_file(&a.path);
                    return Outcome {
                        status: ArchiveStatus::Uploaded,
                        reason: String::new(),
                        size: a.size,
                        sha256: a.sha256,
                        duration_s,
                        fallback_file: None,
                        uploaded_key: Some(res.key),
                        keep_work: false,
                    };
                }
                Ok(res) => Some(format!(
                    "the uploaded object does not match the archive (sha256 {} vs {})",
                    res.sha256, a.sha256
                )),
                Err(e) => Some(e),
            }
        }
    };
    let fallback = target.as_ref().map(|t| t.fallback).unwrap_or(Fallback::Conclave);
    let keep = || arch.fallback.put(&rec.id, a.ext, &a.path).map(|_| format!("{}.{}", rec.id, a.ext));
    if let Some(err) = &upload_error {
        crate::metrics::inc(&arch.metrics.counters.archive_upload_failures);
        super::alert::upload_failed(
            arch.config.smtp.as_ref(),
            &rec.api_key,
            &rec.id,
            &rec.session_id,
            err,
            fallback == Fallback::Conclave,
        )
        .await;
    }
    match keep() {
        Ok(file) => {
            let (status, reason) = match (&upload_error, fallback) {
                (None, _) => (ArchiveStatus::Available, String::new()),
                (Some(e), Fallback::Conclave) => {
                    (ArchiveStatus::Available, format!("upload failed: {e}; kept in the fallback store"))
                }
                (Some(e), Fallback::None) => (
                    ArchiveStatus::Failed,
                    format!(
                        "upload failed: {e}; fallback is none, so the file is not served and is kept for an operator"
                    ),
                ),
            };
            Outcome {
                status,
                reason,
                size: a.size,
                sha256: a.sha256,
                duration_s,
                fallback_file: Some(file),
                uploaded_key: None,
                keep_work: false,
            }
        }
        Err(e) => Outcome {
            duration_s,
            ..Outcome::failed(format!(
                "the archive could not be uploaded ({}) or stored locally ({e}); its files are kept in the work directory",
                upload_error.unwrap_or_else(|| "no target".into())
            ))
        },
    }
}

pub(super) async fn upload(
    t: &conclave_core::archive::StorageTarget,
    policy: crate::webhook::CallbackPolicy,
    path: &Path,
    object: &str,
) -> Result<conclave_archive::upload::UploadResult, String> {
    let target = S3Target::new(&super::storage::s3_config(t, policy)?).map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(15 * 60), target.upload_file(path, object)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("the upload did not finish within 15 minutes".into()),
    }
}

/// After a crash: each journaled stream, finalized from what reached the disk. Encrypted
/// streams cannot be remuxed (the key died with the process) and are returned as they are.
pub fn recover_streams(dir: &Path) -> Vec<FinishedStream> {
    let mut out = Vec::new();
    for j in read_journal(dir) {
        let path = dir.join(&j.file);
        if !path.exists() {
            continue;
        }
        if j.encrypted {
            out.push(FinishedStream {
                stream_id: j.stream_id,
                path,
                offset_ms: j.offset_ms,
                duration_ms: 0,
                has_audio: j.has_audio,
                has_video: j.has_video,
                encrypted: true,
                tags: j.tags,
                tag_changes: Vec::new(),
            });
            continue;
        }
        let container = if j.file.ends_with(".mkv") { "mkv" } else { "webm" };
        let fixed = dir.join(format!("{}.recovered.{container}", j.stream_id));
        match conclave_archive::recover::finalize_crashed_webm(&path, &fixed) {
            Ok(f) => out.push(FinishedStream {
                stream_id: j.stream_id,
                path: fixed,
                offset_ms: j.offset_ms,
                duration_ms: f.duration_ms,
                has_audio: f.has_audio,
                has_video: f.has_video,
                encrypted: false,
                tags: j.tags,
                tag_changes: Vec::new(),
            }),
            Err(e) => {
                tracing::warn!(stream = %j.stream_id, error = %e, "a crashed stream recording had nothing usable")
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_options_reach_the_encoder() {
        assert_eq!(quality_of(None, None), Quality::Default);
        assert_eq!(quality_of(Some(2_000_000), None), Quality::MaxBitrate(2_000_000));
        assert_eq!(quality_of(None, Some(28)), Quality::Qp(28));
    }
}
