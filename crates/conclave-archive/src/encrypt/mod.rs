//! Streaming age encryption of a finished archive to one customer recipient: an X25519
//! `age1…` key or an `ssh-rsa …` public key (RSA-OAEP, so a key from an X.509 certificate
//! works once converted). It owns recipient parsing and the encrypt stream; it must not keep
//! any plaintext copy, identity or private key.

use crate::error::{ArchiveError, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

/// A customer's public key.
pub enum ArchiveRecipient {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

impl std::fmt::Debug for ArchiveRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::X25519(r) => write!(f, "X25519({r})"),
            Self::Ssh(_) => f.write_str("Ssh(..)"),
        }
    }
}

impl ArchiveRecipient {
    /// Parse `age1…` or an OpenSSH public key line (`ssh-rsa AAAA… comment`; `ssh-ed25519`
    /// is accepted too).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.starts_with("age1") {
            return s
                .parse()
                .map(Self::X25519)
                .map_err(|e: &str| ArchiveError::Encrypt(e.to_string()));
        }
        if s.starts_with("ssh-") {
            return s
                .parse()
                .map(Self::Ssh)
                .map_err(|e| ArchiveError::Encrypt(format!("ssh recipient: {e:?}")));
        }
        Err(ArchiveError::Encrypt(
            "recipient must be an age1… or ssh-… public key".into(),
        ))
    }

    fn as_dyn(&self) -> &dyn age::Recipient {
        match self {
            Self::X25519(r) => r,
            Self::Ssh(r) => r,
        }
    }
}

/// Summary of an encrypted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedFile {
    pub size: u64,
    /// Lowercase hex SHA-256 of the ciphertext (what the customer receives).
    pub sha256: String,
}

/// Encrypt `input` to `output` for `recipient`, streaming in 64 KiB chunks (binary age
/// format, no armor). The output is created fresh; on error it is removed.
pub fn encrypt_file(
    input: &Path,
    output: &Path,
    recipient: &ArchiveRecipient,
) -> Result<EncryptedFile> {
    let r = encrypt_inner(input, output, recipient);
    if r.is_err() {
        let _ = std::fs::remove_file(output);
    }
    r
}

fn encrypt_inner(
    input: &Path,
    output: &Path,
    recipient: &ArchiveRecipient,
) -> Result<EncryptedFile> {
    let mut src = BufReader::new(File::open(input)?);
    let out = HashingWriter {
        inner: BufWriter::new(File::create_new(output)?),
        hash: Sha256::new(),
        n: 0,
    };
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient.as_dyn()))
        .map_err(|e| ArchiveError::Encrypt(e.to_string()))?;
    let mut w = enc.wrap_output(out)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n])?;
    }
    let mut out = w.finish()?;
    out.inner.flush()?;
    out.inner.get_ref().sync_all()?;
    Ok(EncryptedFile {
        size: out.n,
        sha256: hex::encode(out.hash.finalize()),
    })
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
