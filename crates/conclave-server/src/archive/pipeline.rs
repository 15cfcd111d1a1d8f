//! What happens to a stopped archive: its streams become one file (individual ZIP or
//! composed MP4, age-encrypted to the project's key when it has one, without a plaintext
//! copy on disk), which is uploaded to the project's bucket (sha256 verified) or kept in the
//! fallback store. Failures raise an alert. Nothing is deleted before it is delivered or kept.
//!
//! Owns: building the artifact and choosing `uploaded` / `available` / `failed`. Must not
//! touch: the store (it returns an [`Outcome`] that the archiver records).

use super::Archiver;
use super::recording::{FinishedStream, StreamTags, read_journal};
use conclave_archive::compose::{ComposeInput, ComposeOutput, ComposeSource, ComposeSpec, Epoch, Layout, Quality, compose};
use conclave_archive::encrypt::{ArchiveRecipient, EncryptingWriter, EphemeralKey, open_decrypted};
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
        Outcome { status: ArchiveStatus::Failed, reason: reason.into(), size: 0, sha256: String::new(), duration_s: None, fallback_file: None, uploaded_key: None, keep_work: true }
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
        r.expires_at_ms = (self.status == ArchiveStatus::Available).then(|| r.created_at_ms + retention.as_millis() as u64);
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

pub async fn run(arch: &Arc<Archiver>, rec: &ArchiveRecord, streams: Vec<FinishedStream>, key: Option<(Arc<EphemeralKey>, String)>) -> Outcome {
    if streams.is_empty() {
        return Outcome { keep_work: false, ..Outcome::failed("nothing was recorded: no stream was published while the archive ran") };
    }
    if streams.iter().any(|s| s.encrypted) && key.is_none() {
        return Outcome::failed("the recording was interrupted by a restart; its per-stream files are encrypted to the project key and kept in the work directory for an operator");
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

fn build(rec: &ArchiveRecord, mut streams: Vec<FinishedStream>, work: &Path, key: Option<&(Arc<EphemeralKey>, String)>) -> Result<Artifact, String> {
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
                .map(|s| PackageInput { stream_id: s.stream_id.clone(), path: s.path.clone(), start_time_offset_ms: s.offset_ms, stop_time_offset_ms: s.offset_ms + s.duration_ms, has_audio: s.has_audio, has_video: s.has_video })
                .collect();
            match customer {
                None => {
                    let out = work.join(format!("{}.zip", rec.id));
                    let p = write_individual_zip(&out, &rec.id, &rec.session_id, rec.created_at_ms, &inputs).map_err(e)?;
                    Ok(Artifact { path: out, ext: "zip", object_ext: "zip", size: p.size, sha256: p.sha256, duration_ms })
                }
                Some(c) => {
                    let out = work.join(format!("{}.age", rec.id));
                    let w = EncryptingWriter::new(std::fs::File::create(&out).map_err(|e| e.to_string())?, &[c]).map_err(e)?;
                    let mut readers = Vec::new();
                    for (i, s) in inputs.into_iter().zip(streams.iter()) {
                        readers.push((i, open(s)?));
                    }
                    let (_, w) = write_individual_zip_to(w, &rec.id, &rec.session_id, rec.created_at_ms, readers).map_err(e)?;
                    let f = w.finish().map_err(e)?;
                    Ok(Artifact { path: out, ext: "age", object_ext: "zip.age", size: f.size, sha256: f.sha256, duration_ms })
                }
            }
        }
        OutputMode::Composed => {
            let (w, h) = rec.resolution.as_deref().and_then(parse_resolution).unwrap_or((640, 480));
            let changes = epochs_of(rec, &streams);
            let (layout, focus) = changes.first().map_or((Layout::BestFit, None), |e| (e.layout, e.focus));
            let changes = if changes.len() >= 2 { changes } else { Vec::new() };
            let spec = ComposeSpec { width: w, height: h, layout, changes, quality: quality_of(rec.max_bitrate, rec.quantization_parameter) };
            let mut inputs = Vec::new();
            for (i, s) in streams.iter().enumerate() {
                let source = if key.is_some() { ComposeSource::Reader(open(s)?) } else { ComposeSource::Path(s.path.clone()) };
                inputs.push(ComposeInput { source, offset_ms: s.offset_ms, duration_ms: s.duration_ms, has_audio: s.has_audio && rec.has_audio, has_video: s.has_video && rec.has_video, focus: focus == Some(i) });
            }
            match customer {
                None => {
                    let out = work.join(format!("{}.mp4", rec.id));
                    let c = compose(inputs, &spec, ComposeOutput::File(out.clone())).map_err(e)?;
                    Ok(Artifact { path: out, ext: "mp4", object_ext: "mp4", size: c.size, sha256: c.sha256, duration_ms: c.duration_ms })
                }
                Some(cust) => {
                    let out = work.join(format!("{}.age", rec.id));
                    let mut sink = EncryptingWriter::new(std::fs::File::create(&out).map_err(|e| e.to_string())?, &[cust]).map_err(e)?;
                    let c = compose(inputs, &spec, ComposeOutput::Writer(&mut sink)).map_err(e)?;
                    let f = sink.finish().map_err(e)?;
                    Ok(Artifact { path: out, ext: "age", object_ext: "mp4.age", size: f.size, sha256: f.sha256, duration_ms: c.duration_ms })
                }
            }
        }
    }
}

/// The composed layout over time: an epoch from 0, and a new one wherever the layout, a
/// stream's classes or the presence of a screen share change what is drawn (consecutive
/// equal epochs merged).
pub(crate) fn epochs_of(rec: &ArchiveRecord, streams: &[FinishedStream]) -> Vec<Epoch> {
    let mut times = vec![0];
    times.extend(rec.layout_changes.iter().map(|(at, _)| *at));
    for s in streams {
        times.extend(s.tag_changes.iter().map(|(at, _)| *at));
        if s.tags.screen || s.tag_changes.iter().any(|(_, t)| t.screen) {
            times.extend([s.offset_ms, s.offset_ms + s.duration_ms]);
        }
    }
    times.sort_unstable();
    times.dedup();
    let mut epochs: Vec<Epoch> = Vec::new();
    for at in times {
        let layout = match rec.layout_changes.iter().take_while(|(t, _)| *t <= at).last() {
            Some((_, l)) => l.clone(),
            None => rec.layout.clone(),
        };
        let views: Vec<StreamView> = streams.iter().map(|s| StreamView { tags: s.tags_at(at), has_video: s.has_video, present: s.present_at(at) }).collect();
        let (layout, focus) = layout_of(layout.as_ref(), &views);
        // A grid has no focus: a class change alone does not change it.
        let focus = focus.filter(|_| layout != Layout::BestFit);
        if epochs.last().map(|e| (e.layout, e.focus)) != Some((layout, focus)) {
            epochs.push(Epoch { from_ms: at, layout, focus });
        }
    }
    epochs
}

/// What the layout rules look at in a stream at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamView {
    pub tags: StreamTags,
    pub has_video: bool,
    /// Being recorded at that moment (a screen share counts only while it is there).
    pub present: bool,
}

/// The composed layout of an archive (OpenTok's rules) and which stream is its focus: the
/// layout's type, with the first stream that has the `focus` class as the focus; `bestFit`
/// with a `screenshareType` switches to that type, the screen share as the focus, while a
/// screen share is among the streams. `custom` stylesheets are rendered as `bestFit`.
pub(crate) fn layout_of(layout: Option<&conclave_core::archive::ArchiveLayout>, streams: &[StreamView]) -> (Layout, Option<usize>) {
    let by_name = |name: &str| match name {
        "pip" => Layout::Pip,
        "verticalPresentation" => Layout::VerticalPresentation,
        "horizontalPresentation" => Layout::HorizontalPresentation,
        _ => Layout::BestFit,
    };
    let focused = streams.iter().position(|s| s.tags.focus);
    let Some(layout) = layout else { return (Layout::BestFit, focused) };
    if layout.kind == "bestFit"
        && let Some(share) = layout.screenshare_type.as_deref()
        && let Some(screen) = streams.iter().position(|s| s.tags.screen && s.has_video && s.present)
    {
        return (by_name(share), Some(screen));
    }
    (by_name(&layout.kind), focused)
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
            match upload(t, &a.path, &object).await {
                Ok(res) if res.sha256 == a.sha256 && res.size == a.size => {
                    let _ = std::fs::remove_file(&a.path);
                    return Outcome { status: ArchiveStatus::Uploaded, reason: String::new(), size: a.size, sha256: a.sha256, duration_s, fallback_file: None, uploaded_key: Some(res.key), keep_work: false };
                }
                Ok(res) => Some(format!("the uploaded object does not match the archive (sha256 {} vs {})", res.sha256, a.sha256)),
                Err(e) => Some(e),
            }
        }
    };
    let fallback = target.as_ref().map(|t| t.fallback).unwrap_or(Fallback::Conclave);
    let keep = || arch.fallback.put(&rec.id, a.ext, &a.path).map(|_| format!("{}.{}", rec.id, a.ext));
    if let Some(err) = &upload_error {
        crate::metrics::inc(&arch.metrics.counters.archive_upload_failures);
        super::alert::upload_failed(arch.config.smtp.as_ref(), &rec.api_key, &rec.id, &rec.session_id, err, fallback == Fallback::Conclave).await;
    }
    match keep() {
        Ok(file) => {
            let (status, reason) = match (&upload_error, fallback) {
                (None, _) => (ArchiveStatus::Available, String::new()),
                (Some(e), Fallback::Conclave) => (ArchiveStatus::Available, format!("upload failed: {e}; kept in the fallback store")),
                (Some(e), Fallback::None) => (ArchiveStatus::Failed, format!("upload failed: {e}; fallback is none, so the file is not served and is kept for an operator")),
            };
            Outcome { status, reason, size: a.size, sha256: a.sha256, duration_s, fallback_file: Some(file), uploaded_key: None, keep_work: false }
        }
        Err(e) => Outcome { duration_s, ..Outcome::failed(format!("the archive could not be uploaded ({}) or stored locally ({e}); its files are kept in the work directory", upload_error.unwrap_or_else(|| "no target".into()))) },
    }
}

async fn upload(t: &conclave_core::archive::StorageTarget, path: &Path, object: &str) -> Result<conclave_archive::upload::UploadResult, String> {
    let target = S3Target::new(&super::storage::s3_config(t)).map_err(|e| e.to_string())?;
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
            out.push(FinishedStream { stream_id: j.stream_id, path, offset_ms: j.offset_ms, duration_ms: 0, has_audio: j.has_audio, has_video: j.has_video, encrypted: true, tags: j.tags, tag_changes: Vec::new() });
            continue;
        }
        let container = if j.file.ends_with(".mkv") { "mkv" } else { "webm" };
        let fixed = dir.join(format!("{}.recovered.{container}", j.stream_id));
        match conclave_archive::recover::finalize_crashed_webm(&path, &fixed) {
            Ok(f) => out.push(FinishedStream { stream_id: j.stream_id, path: fixed, offset_ms: j.offset_ms, duration_ms: f.duration_ms, has_audio: f.has_audio, has_video: f.has_video, encrypted: false, tags: j.tags, tag_changes: Vec::new() }),
            Err(e) => tracing::warn!(stream = %j.stream_id, error = %e, "a crashed stream recording had nothing usable"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::archive::ArchiveLayout;

    fn view(focus: bool, screen: bool) -> StreamView {
        StreamView { tags: StreamTags { focus, screen }, has_video: true, present: true }
    }

    fn layout(kind: &str, screenshare: Option<&str>) -> ArchiveLayout {
        ArchiveLayout { kind: kind.into(), stylesheet: None, screenshare_type: screenshare.map(Into::into) }
    }

    #[test]
    fn layouts_follow_opentoks_rules() {
        let plain = [view(false, false), view(true, false), view(false, true)];
        assert_eq!(layout_of(None, &plain), (Layout::BestFit, Some(1)));
        assert_eq!(layout_of(Some(&layout("pip", None)), &plain), (Layout::Pip, Some(1)));
        assert_eq!(layout_of(Some(&layout("verticalPresentation", None)), &plain[..1]), (Layout::VerticalPresentation, None));
        assert_eq!(layout_of(Some(&layout("horizontalPresentation", None)), &plain), (Layout::HorizontalPresentation, Some(1)));
        // bestFit + screenshareType: the screen share becomes the focus of that layout...
        assert_eq!(layout_of(Some(&layout("bestFit", Some("pip"))), &plain), (Layout::Pip, Some(2)));
        // ...only while there is one.
        assert_eq!(layout_of(Some(&layout("bestFit", Some("pip"))), &plain[..2]), (Layout::BestFit, Some(1)));
        let gone = [view(false, false), StreamView { present: false, ..view(false, true) }];
        assert_eq!(layout_of(Some(&layout("bestFit", Some("pip"))), &gone), (Layout::BestFit, None));
        // Custom stylesheets are rendered as a grid.
        assert_eq!(layout_of(Some(&layout("custom", None)), &plain).0, Layout::BestFit);
    }

    fn stream(id: &str, offset_ms: u64, duration_ms: u64, tags: StreamTags, tag_changes: Vec<(u64, StreamTags)>) -> FinishedStream {
        FinishedStream { stream_id: id.into(), path: PathBuf::new(), offset_ms, duration_ms, has_audio: true, has_video: true, encrypted: false, tags, tag_changes }
    }

    #[test]
    fn the_layout_changes_when_the_layout_the_classes_or_a_screen_share_do() {
        let focus = StreamTags { focus: true, screen: false };
        let none = StreamTags::default();
        let screen = StreamTags { focus: false, screen: true };
        let mut rec: ArchiveRecord = serde_json::from_value(serde_json::json!({
            "id": "a", "api_key": "1", "session_id": "s", "status": "started", "reason": "", "created_at_ms": 0, "updated_at_ms": 0,
            "expires_at_ms": null, "name": null, "output_mode": "composed", "stream_mode": "auto", "has_audio": true, "has_video": true,
            "resolution": null, "layout": {"type": "bestFit", "screenshareType": "verticalPresentation"}, "multi_archive_tag": null,
            "max_bitrate": null, "quantization_parameter": null, "streams": [], "duration_s": 0, "size": 0, "sha256": "",
            "encrypted": false, "fallback_file": null, "uploaded_key": null, "node": null
        }))
        .unwrap();
        // a: focus from 2 s (no change in a grid); b: a screen share from 4 s to 6 s; the
        // layout becomes pip at 8 s, with a as its focus.
        let streams = [stream("a", 0, 10_000, none, vec![(2_000, focus)]), stream("b", 4_000, 2_000, screen, vec![])];
        rec.layout_changes = vec![(0, rec.layout.clone()), (8_000, Some(layout("pip", None)))];
        let e = epochs_of(&rec, &streams);
        let got: Vec<(u64, Layout, Option<usize>)> = e.iter().map(|e| (e.from_ms, e.layout, e.focus)).collect();
        assert_eq!(
            got,
            [
                (0, Layout::BestFit, None),
                (4_000, Layout::VerticalPresentation, Some(1)),
                (6_000, Layout::BestFit, None),
                (8_000, Layout::Pip, Some(0)),
            ]
        );
        // Nothing changes: one epoch.
        let rec1 = ArchiveRecord { layout_changes: Vec::new(), layout: None, ..rec };
        assert_eq!(epochs_of(&rec1, &streams[..1][..0]).len(), 1);
    }

    #[test]
    fn encoding_options_reach_the_encoder() {
        assert_eq!(quality_of(None, None), Quality::Default);
        assert_eq!(quality_of(Some(2_000_000), None), Quality::MaxBitrate(2_000_000));
        assert_eq!(quality_of(None, Some(28)), Quality::Qp(28));
    }
}
