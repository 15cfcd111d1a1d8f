//! Secrets at rest: XChaCha20-Poly1305 under a master key.
//!
//! Owns: loading or creating the master key (`master.key`, 0600, or `CONCLAVE_MASTER_KEY`),
//! and the sealed format `version ‖ nonce(24) ‖ ciphertext`. Each sealed value is bound to
//! its context (associated data), so a ciphertext cannot be moved to another row.
//! Must not touch: the database.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
pub const MASTER_KEY_FILE: &str = "master.key";
pub const MASTER_KEY_ENV: &str = "CONCLAVE_MASTER_KEY";

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("{0} must be 64 hexadecimal characters (32 random bytes); generate one with `openssl rand -hex 32`")]
    BadFormat(String),
    #[error("{0} is a weak key (too few distinct bytes); generate one with `openssl rand -hex 32`")]
    Weak(String),
    #[error("{path} is readable by group or others (mode {mode:o}); fix it with `chmod 600 {path}`")]
    WorldReadable { path: String, mode: u32 },
    #[error("cannot read or create the master key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// A key for another purpose (e.g. signing archive download URLs), derived with
    /// HMAC-SHA256 under `context`: the same on every node that shares the master key, and
    /// revealing nothing about it.
    pub fn derive_subkey(&self, context: &str) -> Zeroizing<[u8; 32]> {
        use hmac::{Hmac, Mac};
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.0.as_slice()).expect("any key length");
        m.update(b"conclave subkey v1\n");
        m.update(context.as_bytes());
        Zeroizing::new(m.finalize().into_bytes().into())
    }

    /// `CONCLAVE_MASTER_KEY` when set, else `DATA_DIR/master.key`, created 0600 on first use.
    pub fn load_or_create(data_dir: &Path, env_value: Option<&str>) -> Result<MasterKey, MasterKeyError> {
        if let Some(v) = env_value {
            return MasterKey::from_hex(v, MASTER_KEY_ENV);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let shown = path.display().to_string();
        let io = |source| MasterKeyError::Io { path: shown.clone(), source };
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(MasterKeyError::WorldReadable { path: shown, mode });
                }
                let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(io)?);
                MasterKey::from_hex(text.trim(), &shown)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                getrandom::fill(key.as_mut()).map_err(|e| io(std::io::Error::other(e.to_string())))?;
                let mut f =
                    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
                let hex = Zeroizing::new(hex::encode(key.as_ref()));
                f.write_all(hex.as_bytes()).and_then(|_| f.write_all(b"\n")).and_then(|_| f.sync_all()).map_err(io)?;
                Ok(MasterKey(key))
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn from_hex(text: &str, origin: &str) -> Result<MasterKey, MasterKeyError> {
        let mut key = Zeroizing::new([0u8; 32]);
        if text.len() != 64 || hex::decode_to_slice(text, key.as_mut()).is_err() {
            return Err(MasterKeyError::BadFormat(origin.to_owned()));
        }
        let mut distinct = key.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 16 {
            return Err(MasterKeyError::Weak(origin.to_owned()));
        }
        Ok(MasterKey(key))
    }

    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).expect("the OS CSPRNG is available");
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(1 + 24 + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// `None` when the value was sealed under another key or context, or is corrupt.
    pub fn unseal(&self, context: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < 1 + 24 + 16 || sealed[0] != VERSION {
            return None;
        }
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        cipher
            .decrypt(XNonce::from_slice(&sealed[1..25]), Payload { msg: &sealed[25..], aad: context.as_bytes() })
            .ok()
            .map(Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_depend_on_key_and_context_only() {
        let a =
            MasterKey::from_hex("3b7e1f0c9a2d4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f", "test").unwrap();
        let b =
            MasterKey::from_hex("3b7e1f0c9a2d4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f", "test").unwrap();
        let c =
            MasterKey::from_hex("9c7e1f0c9a2d4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f", "test").unwrap();
        assert_eq!(*a.derive_subkey("urls"), *b.derive_subkey("urls"), "same key, same subkey (every node agrees)");
        assert_ne!(*b.derive_subkey("urls"), *b.derive_subkey("other"));
        assert_ne!(*b.derive_subkey("urls"), *c.derive_subkey("urls"));
    }

    #[test]
    fn seal_round_trip_is_bound_to_key_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let k = MasterKey::load_or_create(dir.path(), None).unwrap();
        let sealed = k.seal("project-secret:1", b"hello");
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        assert_eq!(k.unseal("project-secret:1", &sealed).unwrap().as_slice(), b"hello");
        assert!(k.unseal("project-secret:2", &sealed).is_none());
        let other = MasterKey::from_hex(&hex::encode((0u8..32).collect::<Vec<_>>()), "t").unwrap();
        assert!(other.unseal("project-secret:1", &sealed).is_none());
        // the same file is read back on the next start
        let again = MasterKey::load_or_create(dir.path(), None).unwrap();
        assert_eq!(again.unseal("project-secret:1", &sealed).unwrap().as_slice(), b"hello");
        let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn refuses_world_readable_and_weak_keys() {
        let dir = tempfile::tempdir().unwrap();
        MasterKey::load_or_create(dir.path(), None).unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(MasterKey::load_or_create(dir.path(), None), Err(MasterKeyError::WorldReadable { .. })));
        assert!(matches!(MasterKey::from_hex(&"00".repeat(32), "env"), Err(MasterKeyError::Weak(_))));
        assert!(matches!(MasterKey::from_hex("abc", "env"), Err(MasterKeyError::BadFormat(_))));
    }
}
