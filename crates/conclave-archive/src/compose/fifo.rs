//! Feeding in-memory streams (e.g. decrypting readers) to ffmpeg without plaintext on disk:
//! a private (0700) temp directory holding one named pipe per reader, each filled by its own
//! thread; pipe contents live in kernel memory only. It owns the directory (removed on drop)
//! and the feeder threads; it must not run ffmpeg.

use crate::error::{ArchiveError, Result};
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// A private temp directory, removed with its contents on drop.
pub struct PrivateDir(PathBuf);

impl PrivateDir {
    pub fn new() -> Result<Self> {
        let p = std::env::temp_dir().join(format!("conclave-compose-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new().mode(0o700).create(&p)?;
        Ok(Self(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One named pipe being filled from a reader by a thread.
pub struct Feeder {
    path: PathBuf,
    thread: Option<JoinHandle<std::io::Result<u64>>>,
}

impl Feeder {
    /// Create the pipe at `path` (mode 0600) and start a thread that opens it for writing
    /// (blocking until ffmpeg opens it) and copies `src` into it.
    pub fn start(path: PathBuf, mut src: Box<dyn Read + Send>) -> Result<Self> {
        let c =
            CString::new(path.as_os_str().as_bytes()).map_err(|_| ArchiveError::Invalid("NUL in temp path".into()))?;
        // SAFETY: `c` is a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let p = path.clone();
        let thread = std::thread::Builder::new().name("compose-fifo".into()).spawn(move || {
            let mut w = std::fs::OpenOptions::new().write(true).open(&p)?;
            std::io::copy(&mut src, &mut w)
        })?;
        Ok(Self { path, thread: Some(thread) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wait for the thread once ffmpeg has exited. A thread still blocked opening the pipe
    /// (ffmpeg never opened it) is released by briefly opening the read side; its copy then
    /// fails with a broken pipe. Returns the bytes copied or the thread's error.
    pub fn join(mut self) -> std::io::Result<u64> {
        self.release_and_join()
    }

    fn release_and_join(&mut self) -> std::io::Result<u64> {
        let Some(t) = self.thread.take() else {
            return Ok(0);
        };
        while !t.is_finished() {
            if let Ok(r) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&self.path) {
                drop(r);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        t.join().unwrap_or_else(|_| Err(std::io::Error::other("fifo thread panicked")))
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        let _ = self.release_and_join();
    }
}
