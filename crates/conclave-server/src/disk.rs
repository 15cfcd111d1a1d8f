//! Free space on the data directory's disk: below a floor the node is not ready and refuses
//! writes with 507, instead of failing each one with a 500 while it still says it is ready.
//!
//! Owns: measuring free space (`statvfs`, at most once a second) and the floor. Must not
//! touch: the store or archives (they fail on their own when the disk is really full; this
//! stops traffic before that).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct DiskGuard {
    path: PathBuf,
    min_free_bytes: u64,
    last: Mutex<Option<(Instant, bool)>>,
}

impl DiskGuard {
    pub fn new(path: PathBuf, min_free_bytes: u64) -> DiskGuard {
        DiskGuard { path, min_free_bytes, last: Mutex::new(None) }
    }

    /// Bytes an unprivileged writer can still use on the data directory's filesystem.
    pub fn free_bytes(&self) -> Option<u64> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.path.as_os_str().as_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is a valid C string and `st` a valid out-parameter.
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return None;
        }
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Whether free space is below the floor (measured at most once a second).
    pub fn is_full(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, full)) = *last
            && at.elapsed() < Duration::from_secs(1)
        {
            return full;
        }
        let full = self.free_bytes().is_some_and(|free| free < self.min_free_bytes);
        if full {
            tracing::error!(dir = %self.path.display(), min_free_bytes = self.min_free_bytes, "data directory disk is full: not ready, writes refused");
        }
        *last = Some((Instant::now(), full));
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_decides() {
        let dir = std::env::temp_dir();
        assert!(DiskGuard::new(dir.clone(), 1).free_bytes().is_some_and(|b| b > 0));
        assert!(!DiskGuard::new(dir.clone(), 0).is_full());
        assert!(DiskGuard::new(dir, u64::MAX).is_full());
    }
}
