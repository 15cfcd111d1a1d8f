//! `FallbackStore`: archives kept on local disk (the provider-cloud copy of OpenTok, status
//! `available`, 72-hour retention). Files live flat in one directory and are named only by
//! the archive UUID plus a fixed extension, never by user input. It owns that directory;
//! it must not touch files outside it or files whose names are not `<uuid>.<ext>`.

use crate::error::{ArchiveError, Result};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// Extensions a stored archive may have.
const EXTENSIONS: &[&str] = &["webm", "zip", "mp4", "age"];

/// A file removed by `expire`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedFile {
    pub archive_id: Uuid,
    pub path: PathBuf,
    pub size: u64,
}

/// Local fallback storage rooted at one directory.
#[derive(Debug, Clone)]
pub struct FallbackStore {
    root: PathBuf,
}

impl FallbackStore {
    /// Use (and create) `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// Where `archive_id` with `ext` is stored. `archive_id` must be a UUID and `ext` one of
    /// the known extensions, so no name can leave the directory.
    pub fn path_for(&self, archive_id: &str, ext: &str) -> Result<PathBuf> {
        let id = Uuid::parse_str(archive_id)
            .map_err(|_| ArchiveError::Invalid(format!("archive id {archive_id:?} is not a UUID")))?;
        if !EXTENSIONS.contains(&ext) {
            return Err(ArchiveError::Invalid(format!("extension {ext:?} not allowed")));
        }
        Ok(self.root.join(format!("{}.{ext}", id.hyphenated())))
    }

    /// Move (or copy, across filesystems) `src` into the store; returns the stored path.
    pub fn put(&self, archive_id: &str, ext: &str, src: &Path) -> Result<PathBuf> {
        let dst = self.path_for(archive_id, ext)?;
        let tmp = dst.with_extension(format!("{ext}.part"));
        if fs::rename(src, &dst).is_err() {
            fs::copy(src, &tmp)?;
            File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &dst)?;
            fs::remove_file(src)?;
        }
        Ok(dst)
    }

    /// Open a stored archive for reading (for a download URL handler).
    pub fn open(&self, archive_id: &str, ext: &str) -> Result<File> {
        Ok(File::open(self.path_for(archive_id, ext)?)?)
    }

    /// Delete a stored archive; `Ok(false)` if it was not there.
    pub fn delete(&self, archive_id: &str, ext: &str) -> Result<bool> {
        match fs::remove_file(self.path_for(archive_id, ext)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Remove stored archives last modified more than `older_than` ago and return them.
    /// Files that are not `<uuid>.<known ext>` are left alone.
    pub fn expire(&self, older_than: Duration) -> Result<Vec<RemovedFile>> {
        self.expire_at(SystemTime::now(), older_than)
    }

    /// `expire` with an explicit "now" (for tests and for a scheduler with its own clock).
    pub fn expire_at(&self, now: SystemTime, older_than: Duration) -> Result<Vec<RemovedFile>> {
        let cutoff = now.checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removed = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let path = entry.path();
            let Some(id) = parse_name(&path) else {
                continue;
            };
            let meta = entry.metadata()?;
            if !meta.is_file() || meta.modified()? > cutoff {
                continue;
            }
            fs::remove_file(&path)?;
            removed.push(RemovedFile { archive_id: id, path, size: meta.len() });
        }
        removed.sort_by_key(|r| r.archive_id);
        Ok(removed)
    }
}

fn parse_name(path: &Path) -> Option<Uuid> {
    let stem = path.file_stem()?.to_str()?;
    let ext = path.extension()?.to_str()?;
    EXTENSIONS.contains(&ext).then_some(())?;
    Uuid::parse_str(stem).ok()
}
