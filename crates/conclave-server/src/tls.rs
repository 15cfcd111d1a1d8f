//! TLS material: operator-supplied PEM files, or a self-signed development certificate kept
//! in the data directory (key file 0600) so that restarts present the same certificate.
//!
//! Owns: rustls configuration with the aws-lc-rs provider. Must not touch: listener policy.

use anyhow::{Context, Result};
use axum_server::tls_rustls::RustlsConfig;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Installs aws-lc-rs as the process-wide rustls provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub enum TlsSource {
    Files { cert: PathBuf, key: PathBuf },
    SelfSigned,
}

pub async fn rustls_config(source: &TlsSource, data_dir: &Path) -> Result<RustlsConfig> {
    install_crypto_provider();
    let (cert, key) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned => self_signed(data_dir)?,
    };
    RustlsConfig::from_pem_file(&cert, &key)
        .await
        .with_context(|| format!("loading TLS certificate {} and key {}", cert.display(), key.display()))
}

fn self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let dir = data_dir.join("tls");
    let (cert_path, key_path) = (dir.join("self-signed.crt"), dir.join("self-signed.key"));
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(&dir)?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
    std::fs::write(&cert_path, certified.cert.pem())?;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&key_path)?;
    f.write_all(certified.signing_key.serialize_pem().as_bytes())?;
    tracing::warn!(cert = %cert_path.display(), "generated a self-signed TLS certificate for development; use --tls-cert/--tls-key in production");
    Ok((cert_path, key_path))
}
