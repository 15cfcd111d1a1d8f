//! The data directory's exclusive lock: one `conclave serve` per directory (per node ID in
//! cluster mode).
//!
//! Owns: `DATA_DIR/serve.lock` (`serve-{node}.lock` for a cluster node), held with an OS file
//! lock (`flock`) for the life of the process and carrying the holder's PID. A second server
//! on the same directory would run crash recovery on recordings the first is still writing
//! and delete them; it is refused instead, naming the holder. Cluster nodes on one host may
//! share a directory (each recovers only the archives recorded under its own node ID, and
//! archive work directories are named by archive ID), but never two processes with one ID. The lock goes with the process, `kill -9` included, so a
//! crashed server never blocks its own restart. Must not touch: the store or archives.
//! CLI commands other than `serve` (`project create`, …) do not take it: they may run beside
//! a server by design.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Held while the server runs; dropping it releases the directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the directory's lock (for `node`, in cluster mode), or explains who holds it.
pub fn lock(data_dir: &Path, node: Option<&str>) -> anyhow::Result<DataDirLock> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(n) = node {
        let ok = (1..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        anyhow::ensure!(ok, "--node-id must be 1-64 letters, digits, - or _");
    }
    let path = data_dir.join(node.map_or_else(|| "serve.lock".to_owned(), |n| format!("serve-{n}.lock")));
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() { "another process".to_owned() } else { format!("PID {holder}") };
            anyhow::bail!(
                "the data directory {} is in use by another conclave serve ({who}); two servers on one directory would destroy each other's recordings. Stop it first, or give this one its own --data-dir",
                data_dir.display()
            );
        }
        Err(TryLockError::Error(e)) => return Err(anyhow::anyhow!("cannot lock {}: {e}", path.display())),
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    file.sync_all()?;
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused_with_the_holders_pid() {
        let dir = std::env::temp_dir().join(format!("conclave-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = lock(&dir, None).unwrap();
        let err = lock(&dir, None).unwrap_err().to_string();
        assert!(err.contains(&format!("PID {}", std::process::id())), "{err}");
        drop(first);
        lock(&dir, None).expect("free again once the holder is gone");
        // Cluster nodes: one process per node ID, several IDs on one directory.
        let (_a, _b) = (lock(&dir, Some("node-a")).unwrap(), lock(&dir, Some("node-b")).unwrap());
        assert!(lock(&dir, Some("node-a")).is_err());
        assert!(lock(&dir, Some("../x")).is_err(), "a node ID never becomes a path");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
