//! Where a `StreamRecorder`'s WebM bytes go: a plain file, or an age STREAM encryptor in
//! front of the file, so that plaintext never reaches the disk. Either way bytes are pushed
//! to the OS at least once per `flush_interval`. It owns buffering, flushing and closing the
//! age stream; it must not know anything about WebM.
//!
//! Encrypted crash behaviour: age encrypts in 64 KiB plaintext chunks and can only emit a
//! chunk once it is full (the last chunk is sealed with a "last" flag by `finish`). A flush
//! therefore pushes every *complete* chunk to the OS; a crash loses the open chunk (< 64 KiB)
//! on top of what the plain recorder loses. Decrypting a crash-truncated file (Rust `age`
//! crate or the stock `age -d` CLI) yields every complete chunk and then fails with "age
//! file is truncated" (or a decryption error when the cut falls inside a chunk); the
//! plaintext delivered before the error is a valid live-mode WebM prefix. Nobody but the
//! recipients can repair that file, because sealing a last chunk needs the payload key.

use crate::encrypt::{EncryptedFile, HashingWriter};
use crate::error::{ArchiveError, Result};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

const BUF: usize = 256 * 1024;

enum Out {
    Plain(BufWriter<File>),
    Age(age::stream::StreamWriter<HashingWriter<BufWriter<File>>>),
}

/// A writer that flushes to the OS at least once per `every`.
pub(crate) struct Sink {
    out: Out,
    last_flush: Instant,
    every: Duration,
}

impl Sink {
    pub(crate) fn plain(file: File, every: Duration) -> Self {
        Self { out: Out::Plain(BufWriter::with_capacity(BUF, file)), last_flush: Instant::now(), every }
    }

    /// Writes the age header (binary format) for `recipients` to `file` at once.
    pub(crate) fn encrypted(
        file: File,
        every: Duration,
        recipients: &[Box<dyn age::Recipient + Send>],
    ) -> Result<Self> {
        let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient))
            .map_err(|e| ArchiveError::Encrypt(e.to_string()))?;
        let mut w = enc.wrap_output(HashingWriter::new(BufWriter::with_capacity(BUF, file)))?;
        w.flush()?;
        Ok(Self { out: Out::Age(w), last_flush: Instant::now(), every })
    }

    /// True when the sink cannot seek (the muxer must use live, non-seek mode).
    pub(crate) fn is_encrypted(&self) -> bool {
        matches!(self.out, Out::Age(_))
    }

    /// Close the age stream (if any), flush and fsync. Returns the file and, when
    /// encrypted, the ciphertext size and hash.
    pub(crate) fn finish(self) -> Result<(File, Option<EncryptedFile>)> {
        match self.out {
            Out::Plain(w) => Ok((w.into_inner().map_err(|e| e.into_error())?, None)),
            Out::Age(w) => {
                let (buf, info) = w.finish()?.finish();
                let file = buf.into_inner().map_err(|e| e.into_error())?;
                Ok((file, Some(info)))
            }
        }
        .and_then(|(f, info)| {
            f.sync_all()?;
            Ok((f, info))
        })
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.out {
            Out::Plain(w) => w.write(buf)?,
            Out::Age(w) => w.write(buf)?,
        };
        if self.last_flush.elapsed() >= self.every {
            self.flush()?;
            self.last_flush = Instant::now();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Out::Plain(w) => w.flush(),
            Out::Age(w) => w.flush(),
        }
    }
}

impl Seek for Sink {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        match &mut self.out {
            Out::Plain(w) => w.seek(pos),
            Out::Age(_) => Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "an age stream cannot seek")),
        }
    }
}
