//! Streaming age encryption to a customer recipient: an X25519 `age1…` key, an `ssh-rsa …`
//! public key, or an RSA key given as PEM (`PUBLIC KEY`, `RSA PUBLIC KEY` or an X.509
//! `CERTIFICATE`, OpenTok's "partner certificate"), which is converted to `ssh-rsa` (age's
//! RSA-OAEP recipient). It owns recipient parsing, the encrypt streams (`stream`) and the
//! in-memory ephemeral key; it must not keep any plaintext copy on disk, nor persist any
//! identity or private key.

mod pem;
mod stream;

pub(crate) use stream::HashingWriter;
pub use stream::{EncryptingWriter, EphemeralKey, open_decrypted};

use crate::error::{ArchiveError, Result};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

/// A customer's public key.
#[derive(Clone)]
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
    /// Parse `age1…`, an OpenSSH public key line (`ssh-rsa AAAA… comment`; `ssh-ed25519`
    /// is accepted too) or a PEM RSA public key / X.509 certificate (RSA keys only).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.starts_with("-----BEGIN ") {
            let line = pem::rsa_pem_to_ssh(s)?;
            return Self::parse(&line);
        }
        if s.starts_with("age1") {
            return s.parse().map(Self::X25519).map_err(|e: &str| ArchiveError::Encrypt(e.to_string()));
        }
        if s.starts_with("ssh-") {
            return s.parse().map(Self::Ssh).map_err(|e| ArchiveError::Encrypt(format!("ssh recipient: {e:?}")));
        }
        Err(ArchiveError::Encrypt("recipient must be an age1… or ssh-… public key".into()))
    }

    /// An owned age recipient, for `StreamRecorder::create_encrypted` and
    /// `EncryptingWriter::new`.
    pub fn to_boxed(&self) -> Box<dyn age::Recipient + Send> {
        match self.clone() {
            Self::X25519(r) => Box::new(r),
            Self::Ssh(r) => Box::new(r),
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
pub fn encrypt_file(input: &Path, output: &Path, recipient: &ArchiveRecipient) -> Result<EncryptedFile> {
    let out = File::create_new(output)?; // refuse to overwrite, and never delete, an existing file
    let r = encrypt_inner(input, out, recipient);
    if r.is_err() {
        let _ = std::fs::remove_file(output);
    }
    r
}

fn encrypt_inner(input: &Path, out: File, recipient: &ArchiveRecipient) -> Result<EncryptedFile> {
    let mut src = BufReader::new(File::open(input)?);
    let out = BufWriter::new(out);
    let mut w = EncryptingWriter::new(out, &[recipient.to_boxed()])?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n])?;
    }
    let (info, out) = w.finish_into_inner()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(info)
}

/// Decrypt an archive for its owner (`conclave archive decrypt`): `identity` is the text of
/// an age identity file (`AGE-SECRET-KEY-1…`) or an unencrypted OpenSSH/PEM RSA private key.
/// Streams `input` to `output` (created fresh); returns the plaintext size.
pub fn decrypt_file(identity: &str, input: &Path, output: &Path) -> Result<u64> {
    let identities: Vec<Box<dyn age::Identity + Send + Sync>> = if identity.contains("AGE-SECRET-KEY-") {
        age::IdentityFile::from_buffer(identity.as_bytes())?
            .into_identities()
            .map_err(|e| ArchiveError::Encrypt(format!("identity file: {e}")))?
    } else {
        let ssh = age::ssh::Identity::from_buffer(identity.as_bytes(), None)?;
        if matches!(ssh, age::ssh::Identity::Encrypted(_)) {
            return Err(ArchiveError::Encrypt(
                "the private key is passphrase-protected; decrypt it first (ssh-keygen -p) or use the age CLI".into(),
            ));
        }
        vec![Box::new(ssh)]
    };
    let identities: Vec<&dyn age::Identity> = identities.iter().map(|i| i.as_ref() as &dyn age::Identity).collect();
    let src = std::io::BufReader::new(std::fs::File::open(input)?);
    let dec = age::Decryptor::new_buffered(src).map_err(|e| ArchiveError::Encrypt(e.to_string()))?;
    let mut reader = dec
        .decrypt(identities.into_iter())
        .map_err(|e| ArchiveError::Encrypt(format!("cannot decrypt with this identity: {e}")))?;
    let result = (|| -> Result<u64> {
        let mut out = std::io::BufWriter::new(std::fs::File::create_new(output)?);
        let n = std::io::copy(&mut reader, &mut out)?;
        out.flush()?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(output);
    }
    result
}
