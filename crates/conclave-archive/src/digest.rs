//! SHA-256 helpers for finished files (the `sha256sum` field of the Archive object). Owns
//! hashing only; must not open anything for writing.

use sha2::{Digest, Sha256};
use std::{fs::File, io::Read, path::Path};

/// Lowercase hex SHA-256 of a whole file, read in 64 KiB chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Lowercase hex SHA-256 of a byte slice.
pub fn sha256_bytes(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}
