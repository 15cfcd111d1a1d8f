//! Error type shared by every module of this crate. It owns only the error enum; it must not
//! carry policy (retry, fallback) — callers decide what to do with each variant.

use std::io;

/// Errors returned by the archive library.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("webm muxer: {0}")]
    Mux(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("ffmpeg: {0}")]
    Ffmpeg(String),
    #[error("encryption: {0}")]
    Encrypt(String),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
}

pub type Result<T> = std::result::Result<T, ArchiveError>;
