//! Background upload retries from the fallback store. An archive that is `available` (its
//! upload failed, or it was kept while the project had no target) is uploaded again while its
//! project has an upload target, with back-off (30 s doubling to 30 min by default), across
//! restarts: the schedule is rebuilt from the store at start and on every rescan. A confirmed
//! upload (sha256 and size of the bytes sent equal the archive's) moves the archive to
//! `uploaded` through the archiver's compare-and-set `transition` (which sends the archive
//! callback), and only then is the local copy deleted.
//!
//! Owns: the retry schedule (in memory, per node) and the one lifecycle step it adds,
//! `available → uploaded` ([`may_become`]). Must not touch: archives recorded by another node
//! (their file is on that node's disk), archives in any other status (a deleted or expired
//! archive fails the compare-and-set and is left alone), or any file but the archive's own
//! fallback copy.

use super::Archiver;
use crate::clock;
use conclave_core::archive::{ArchiveStatus, OutputMode};
use conclave_store::ArchiveRecord;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many retried uploads run at once on a node.
const PARALLEL: usize = 2;

/// The environment variable that sets the back-off (`first[,max]`, e.g. `30s,30m` or `1s`),
/// until `serve` has a flag for it.
const ENV: &str = "CONCLAVE_ARCHIVE_UPLOAD_RETRY";

/// Back-off of the upload retries: the first retry comes `first` after the archive became
/// `available`, each later one twice as long after the previous, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadRetry {
    pub first: Duration,
    pub max: Duration,
}

impl Default for UploadRetry {
    fn default() -> Self {
        UploadRetry { first: Duration::from_secs(30), max: Duration::from_secs(30 * 60) }
    }
}

impl UploadRetry {
    /// `first` or `first,max`: durations such as `500ms`, `30s`, `30m`, `1h` (a bare number is
    /// seconds). Without `max`, the cap is 60 times `first` (30 s → 30 min).
    pub fn parse(s: &str) -> Result<UploadRetry, String> {
        let (first, max) = match s.split_once(',') {
            Some((a, b)) => (duration(a)?, Some(duration(b)?)),
            None => (duration(s)?, None),
        };
        if first.is_zero() {
            return Err(format!("{s:?}: the first retry delay must be above zero"));
        }
        let max = max.unwrap_or(first.saturating_mul(60));
        if max < first {
            return Err(format!("{s:?}: the longest delay is shorter than the first"));
        }
        Ok(UploadRetry { first, max })
    }

    /// From `CONCLAVE_ARCHIVE_UPLOAD_RETRY` when it is set and valid, else the default (30 s
    /// doubling to 30 min).
    pub fn from_env() -> UploadRetry {
        match std::env::var(ENV) {
            Ok(v) => UploadRetry::parse(&v).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "{ENV} is invalid; using the default upload retry back-off");
                UploadRetry::default()
            }),
            Err(_) => UploadRetry::default(),
        }
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a duration such as 30s"))?;
    let ms = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{s:?}: the unit must be ms, s, m or h")),
    };
    n.checked_mul(ms).map(Duration::from_millis).ok_or_else(|| format!("{s:?} is too long"))
}

/// The lifecycle of compat 7.2 plus one step: a kept archive whose upload succeeds later
/// goes `available → uploaded`. Every writer goes through the archiver's `transition`,
/// which checks this.
pub(super) fn may_become(from: ArchiveStatus, to: ArchiveStatus) -> bool {
    from.can_become(to) || (from == ArchiveStatus::Available && to == ArchiveStatus::Uploaded)
}

/// Whether this node may retry `r`'s upload now: it is `available`, recorded by this node
/// (`node`, `None` on a single node), has a fallback file and has not reached its expiry.
fn eligible(r: &ArchiveRecord, node: Option<&str>, now_ms: u64) -> bool {
    r.status == ArchiveStatus::Available
        && r.node.as_deref() == node
        && r.fallback_file.is_some()
        && r.expires_at_ms.is_none_or(|t| t > now_ms)
}

/// The fallback file's extension and the object's suffix in the customer's bucket (as the
/// pipeline names them).
fn extensions(r: &ArchiveRecord) -> Option<(&str, &'static str)> {
    let (_, ext) = r.fallback_file.as_deref()?.split_once('.')?;
    let object = match (ext, r.output_mode) {
        ("age", OutputMode::Individual) => "zip.age",
        ("age", OutputMode::Composed) => "mp4.age",
        ("zip", _) => "zip",
        ("mp4", _) => "mp4",
        ("webm", _) => "webm",
        _ => return None,
    };
    Some((ext, object))
}

/// One archive in the schedule.
struct Due {
    at: Instant,
    /// The wait after the next failure.
    delay: Duration,
    attempts: u32,
    running: bool,
}

enum Attempt {
    /// Uploaded, or nothing left to do (gone, expired, no file, no target, another node's).
    Done,
    Failed(String),
}

/// Starts the retry loop (once, with the timers).
pub(super) fn spawn(arch: &Arc<Archiver>) {
    let me = Arc::downgrade(arch);
    let policy = arch.config.upload_retry;
    let tick = policy.first.min(Duration::from_secs(1));
    let rescan_every = arch.config.sweep_every.min(policy.first).max(tick);
    tokio::spawn(async move {
        let mut due: HashMap<String, Due> = HashMap::new();
        let mut running = tokio::task::JoinSet::new();
        // Which archive each running attempt is for (a panicked attempt names only its task).
        let mut tasks: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut next_scan = Instant::now();
        loop {
            let Some(arch) = me.upgrade() else { return };
            if Instant::now() >= next_scan {
                rescan(&arch, &mut due, policy).await;
                next_scan = Instant::now() + rescan_every;
            }
            let now = Instant::now();
            let mut ready: Vec<(&String, &mut Due)> =
                due.iter_mut().filter(|(_, d)| !d.running && d.at <= now).collect();
            ready.sort_by_key(|(_, d)| d.at);
            for (id, d) in ready.into_iter().take(PARALLEL.saturating_sub(running.len())) {
                d.running = true;
                d.attempts += 1;
                let (arch, archive) = (arch.clone(), id.clone());
                let task = running.spawn(async move { attempt(&arch, &archive).await });
                tasks.insert(task.id(), id.clone());
            }
            drop(arch);
            let finished = tokio::select! {
                _ = tokio::time::sleep(tick) => None,
                Some(joined) = running.join_next_with_id(), if !running.is_empty() => Some(match joined {
                    Ok((task, outcome)) => (task, outcome),
                    Err(e) => (e.id(), Attempt::Failed(format!("the attempt crashed: {e}"))),
                }),
            };
            if let Some((id, outcome)) = finished.and_then(|(task, o)| Some((tasks.remove(&task)?, o))) {
                match outcome {
                    Attempt::Done => {
                        due.remove(&id);
                    }
                    Attempt::Failed(error) => {
                        if let Some(d) = due.get_mut(&id) {
                            tracing::warn!(archive = %id, attempt = d.attempts, retry_in = ?d.delay, error = %error,
                                "retrying an archive upload from the fallback store failed");
                            d.at = Instant::now() + d.delay;
                            d.delay = d.delay.saturating_mul(2).min(policy.max);
                            d.running = false;
                        }
                    }
                }
            }
        }
    });
}

/// Adds every archive this node could upload (and does not schedule yet), due `first` after
/// it became `available` (at once for older ones, e.g. after a restart).
async fn rescan(arch: &Archiver, due: &mut HashMap<String, Due>, policy: UploadRetry) {
    let available = match arch.store.archives_in_status(&[ArchiveStatus::Available]).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "listing archives to retry their upload failed");
            return;
        }
    };
    let now_ms = clock::unix_ms();
    let node = arch.cluster.node_id();
    let mut has_target: HashMap<String, bool> = HashMap::new();
    for r in available {
        if due.contains_key(&r.id) || !eligible(&r, node, now_ms) || !fallback_file_exists(arch, &r) {
            continue;
        }
        let target = match has_target.get(&r.api_key) {
            Some(t) => *t,
            None => {
                let stored = arch.store.archive_storage(&r.api_key).await;
                let t = matches!(stored, Ok(Some(json)) if super::storage::parse(&json).is_some());
                has_target.insert(r.api_key.clone(), t);
                t
            }
        };
        if !target {
            continue;
        }
        let since = Duration::from_millis(now_ms.saturating_sub(r.updated_at_ms));
        let at = Instant::now() + policy.first.saturating_sub(since);
        due.insert(r.id, Due { at, delay: policy.first, attempts: 0, running: false });
    }
}

fn fallback_file_exists(arch: &Archiver, r: &ArchiveRecord) -> bool {
    extensions(r).and_then(|(ext, _)| arch.fallback.path_for(&r.id, ext).ok()).is_some_and(|p| p.is_file())
}

/// One retry: re-read the archive, upload its fallback file, verify, record `uploaded`
/// (compare-and-set on `available`), then delete the local copy.
async fn attempt(arch: &Arc<Archiver>, id: &str) -> Attempt {
    let r = match arch.store.archive(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Attempt::Done,
        Err(e) => return Attempt::Failed(format!("reading the archive failed: {e}")),
    };
    if !eligible(&r, arch.cluster.node_id(), clock::unix_ms()) {
        return Attempt::Done;
    }
    let Some((ext, object_ext)) = extensions(&r) else { return Attempt::Done };
    let path = match arch.fallback.path_for(&r.id, ext) {
        Ok(p) if p.is_file() => p,
        _ => {
            tracing::warn!(archive = %r.id, "an available archive has no fallback file; not retrying its upload");
            return Attempt::Done;
        }
    };
    let target = match arch.store.archive_storage(&r.api_key).await {
        Ok(Some(json)) => match super::storage::parse(&json) {
            Some(t) => t,
            None => return Attempt::Done,
        },
        Ok(None) => return Attempt::Done,
        Err(e) => return Attempt::Failed(format!("reading the upload target failed: {e}")),
    };
    let object = format!("{}/{}/archive.{object_ext}", r.api_key, r.id);
    let sent = match super::pipeline::upload(&target, arch.config.outbound, &path, &object).await {
        Ok(sent) => sent,
        Err(e) => return Attempt::Failed(e),
    };
    if sent.sha256 != r.sha256 || sent.size != r.size {
        return Attempt::Failed(format!(
            "the uploaded object does not match the archive (sha256 {} vs {})",
            sent.sha256, r.sha256
        ));
    }
    let ext = ext.to_owned();
    let next = ArchiveRecord {
        status: ArchiveStatus::Uploaded,
        reason: "uploaded from the fallback store after an earlier upload failed or was not possible".into(),
        fallback_file: None,
        uploaded_key: Some(sent.key),
        expires_at_ms: None,
        ..r
    };
    match arch.transition(next, ArchiveStatus::Available).await {
        Ok(done) => {
            if let Err(e) = arch.fallback.delete(&done.id, &ext) {
                let what = "ALERT: an uploaded archive's fallback copy could not be deleted";
                tracing::error!(archive = %done.id, error = %e, "{what}");
            }
            Attempt::Done
        }
        // Deleted or expired meanwhile: that path removed (or removes) the file; the object
        // stays in the bucket (Conclave may only PutObject there).
        Err(super::ArchiveError::Conflict(e)) => {
            let what = "an archive changed while its upload was retried; the uploaded object stays in the bucket";
            tracing::warn!(archive = %id, error = %e, object = %object, "{what}");
            Attempt::Done
        }
        Err(e) => Attempt::Failed(format!("recording the upload failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ArchiveRecord {
        serde_json::from_value(serde_json::json!({
            "id": "5b0c2f1d-6e47-4d7a-9a8e-0b7f9a523c1e", "api_key": "1", "session_id": "s", "status": "available",
            "reason": "", "created_at_ms": 0, "updated_at_ms": 0, "expires_at_ms": 10_000, "name": null,
            "output_mode": "individual", "stream_mode": "auto", "has_audio": true, "has_video": true,
            "resolution": null, "layout": null, "multi_archive_tag": null, "max_bitrate": null,
            "quantization_parameter": null, "streams": [], "duration_s": 4, "size": 10, "sha256": "ab",
            "encrypted": false, "fallback_file": "5b0c2f1d-6e47-4d7a-9a8e-0b7f9a523c1e.zip",
            "uploaded_key": null, "node": "node-a"
        }))
        .unwrap()
    }

    #[test]
    fn only_the_holding_node_retries_an_available_unexpired_archive_with_a_file() {
        let r = record();
        assert!(eligible(&r, Some("node-a"), 5_000));
        assert!(!eligible(&r, Some("node-b"), 5_000), "another node's file");
        assert!(!eligible(&r, None, 5_000));
        assert!(!eligible(&r, Some("node-a"), 10_000), "expired");
        for status in [ArchiveStatus::Deleted, ArchiveStatus::Expired, ArchiveStatus::Failed, ArchiveStatus::Uploaded] {
            assert!(!eligible(&ArchiveRecord { status, ..record() }, Some("node-a"), 5_000));
        }
        assert!(!eligible(&ArchiveRecord { fallback_file: None, ..record() }, Some("node-a"), 5_000));
        let single = ArchiveRecord { node: None, ..record() };
        assert!(eligible(&single, None, 5_000), "a single node owns its archives");
    }

    #[test]
    fn object_names_follow_the_pipeline() {
        assert_eq!(extensions(&record()), Some(("zip", "zip")));
        let enc = |mode| ArchiveRecord { fallback_file: Some("x.age".into()), output_mode: mode, ..record() };
        assert_eq!(extensions(&enc(OutputMode::Individual)), Some(("age", "zip.age")));
        assert_eq!(extensions(&enc(OutputMode::Composed)), Some(("age", "mp4.age")));
        assert_eq!(extensions(&ArchiveRecord { fallback_file: Some("x.exe".into()), ..record() }), None);
    }

    #[test]
    fn the_lifecycle_gains_only_available_to_uploaded() {
        use ArchiveStatus::*;
        assert!(may_become(Available, Uploaded));
        assert!(may_become(Stopped, Uploaded) && may_become(Available, Expired));
        assert!(!may_become(Failed, Uploaded) && !may_become(Expired, Uploaded) && !may_become(Deleted, Uploaded));
        assert!(!may_become(Uploaded, Available));
    }

    #[test]
    fn back_off_settings_parse() {
        let d = UploadRetry::default();
        assert_eq!((d.first, d.max), (Duration::from_secs(30), Duration::from_secs(1800)));
        assert_eq!(UploadRetry::parse("30s").unwrap(), d);
        let fast = UploadRetry::parse("1s,2s").unwrap();
        assert_eq!((fast.first, fast.max), (Duration::from_secs(1), Duration::from_secs(2)));
        assert_eq!(UploadRetry::parse("500ms, 1m").unwrap().max, Duration::from_secs(60));
        for bad in ["", "0s", "2s,1s", "1x", "s", "1s,"] {
            assert!(UploadRetry::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
