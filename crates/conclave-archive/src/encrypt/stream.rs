//! Streaming age primitives: `EncryptingWriter` (age STREAM to one or more recipients,
//! hashing the ciphertext as it goes), `EphemeralKey` (an X25519 identity that lives only in
//! this process's memory) and `open_decrypted` (streaming decryption with that key). It must
//! not write plaintext anywhere, and `EphemeralKey` must never be serialized, logged or
//! written out.

use super::EncryptedFile;
use crate::error::{ArchiveError, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

/// Counts and hashes what passes through to `inner`.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self { inner, hash: Sha256::new(), n: 0 }
    }

    /// Flush and return the inner writer with the byte count and hash so far.
    pub(crate) fn finish(mut self) -> (W, EncryptedFile) {
        let _ = self.inner.flush();
        let info = EncryptedFile { size: self.n, sha256: hex::encode(self.hash.finalize()) };
        (self.inner, info)
    }
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

/// Plaintext in, binary age file out (to every recipient given), with the size and SHA-256
/// of the ciphertext. Call `finish` (or `finish_into_inner`): without it the age file is
/// truncated and will not decrypt to the end.
pub struct EncryptingWriter<W: Write> {
    inner: age::stream::StreamWriter<HashingWriter<W>>,
}

impl<W: Write> EncryptingWriter<W> {
    /// Write the age header for `recipients` to `out` and return the plaintext sink.
    pub fn new(out: W, recipients: &[Box<dyn age::Recipient + Send>]) -> Result<Self> {
        let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient))
            .map_err(|e| ArchiveError::Encrypt(e.to_string()))?;
        Ok(Self { inner: enc.wrap_output(HashingWriter::new(out))? })
    }

    /// Seal the last chunk, flush, and return the ciphertext summary.
    pub fn finish(self) -> Result<EncryptedFile> {
        Ok(self.finish_into_inner()?.0)
    }

    /// Like `finish`, also handing back the output (e.g. to fsync a file).
    pub fn finish_into_inner(self) -> Result<(EncryptedFile, W)> {
        let (w, info) = self.inner.finish()?.finish();
        Ok((info, w))
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A random X25519 identity held only in memory (no `Clone`, no serialization, redacted
/// `Debug`). The server encrypts its intermediate per-stream recordings to this key (plus
/// the customer's) so it can read them back while composing or packaging; once the process
/// exits the key is gone and only the customer can decrypt.
pub struct EphemeralKey {
    identity: age::x25519::Identity,
}

impl std::fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EphemeralKey(<redacted>)")
    }
}

impl Default for EphemeralKey {
    fn default() -> Self {
        Self::generate()
    }
}

impl EphemeralKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self { identity: age::x25519::Identity::generate() }
    }

    /// The public half.
    pub fn recipient(&self) -> age::x25519::Recipient {
        self.identity.to_public()
    }

    /// The public half as an owned age recipient.
    pub fn boxed_recipient(&self) -> Box<dyn age::Recipient + Send> {
        Box::new(self.recipient())
    }

    /// Decrypting reader over any age stream encrypted to this key.
    pub fn decrypt<R: Read>(&self, input: R) -> Result<age::stream::StreamReader<R>> {
        let dec = age::Decryptor::new(input).map_err(|e| ArchiveError::Encrypt(e.to_string()))?;
        dec.decrypt(std::iter::once(&self.identity as &dyn age::Identity))
            .map_err(|e| ArchiveError::Encrypt(e.to_string()))
    }
}

/// Stream-decrypt the age file at `path` with `key`. Reads fail with an I/O error when the
/// file is truncated (after returning every complete chunk) or tampered with.
pub fn open_decrypted(path: &Path, key: &EphemeralKey) -> Result<impl Read + Send + 'static> {
    key.decrypt(BufReader::new(File::open(path)?))
}
