//! Delivery of finished archive files: `S3Target` uploads to an S3-compatible bucket with
//! PutObject / multipart upload only (no GET, HEAD, LIST or DELETE, so a PutObject-only IAM
//! policy suffices), and `FallbackStore` keeps files on local disk when there is no target
//! or the upload fails. It must not decide archive status; callers map errors to
//! `uploaded` / `available` / `failed`.
//!
//! With an address policy set, the client's own resolver checks every address before any
//! connection (see `S3Config::address_allowed`), so the policy holds on every upload.

mod fallback;

pub use fallback::{FallbackStore, RemovedFile};

use crate::error::{ArchiveError, Result};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{DnsFuture, DnsResolver};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Parts of a multipart upload; S3's minimum part size is 5 MiB.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Customer upload target (OpenTok's "archive storage" settings).
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`; `None` for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Path-style requests (`endpoint/bucket/key`), needed by most S3-compatible servers.
    pub path_style: bool,
    /// Ask for SSE-S3 (`x-amz-server-side-encryption: AES256`).
    pub sse_s3: bool,
    /// Key prefix inside the bucket (no leading or trailing slash needed).
    pub prefix: String,
    /// Retries per request; keep small so a dead target falls back quickly.
    pub max_retries: usize,
    /// Overall time limit for one request including retries.
    pub retry_timeout: Duration,
    /// The SSRF address policy: every address the client would connect to must pass it,
    /// checked on every connection (names after each resolution, so DNS rebinding cannot
    /// slip past a check made at save time). `None` allows every address (on-premises).
    pub address_allowed: Option<fn(IpAddr) -> bool>,
}

impl S3Config {
    /// A config with no endpoint, no prefix, virtual-hosted style, no SSE, 3 retries / 60 s.
    pub fn new(bucket: &str, region: &str, access_key_id: &str, secret_access_key: &str) -> Self {
        Self {
            bucket: bucket.into(),
            endpoint: None,
            region: region.into(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            path_style: false,
            sse_s3: false,
            prefix: String::new(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(60),
            address_allowed: None,
        }
    }
}

/// The IP address an endpoint URL names literally, if it does (names go through the resolver).
fn literal_host(endpoint: &str) -> Option<IpAddr> {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next()?.parse().ok();
    }
    host.split(':').next()?.parse().ok()
}

/// Resolves with the system resolver and refuses the whole name when any address fails the
/// policy (a name that also points inside must not be half-trusted).
#[derive(Debug)]
struct CheckedResolver {
    allowed: fn(IpAddr) -> bool,
}

impl DnsResolver for CheckedResolver {
    fn resolve(&self, host: &str) -> DnsFuture {
        let (host, allowed) = (host.to_owned(), self.allowed);
        Box::pin(async move {
            let ips: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect();
            if ips.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            if let Some(bad) = ips.iter().find(|ip| !allowed(**ip)) {
                return Err(format!("{host} resolves to {bad}, which the address policy refuses").into());
            }
            Ok(ips)
        })
    }
}

/// What was uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadResult {
    pub key: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes sent.
    pub sha256: String,
    pub multipart: bool,
}

/// An S3-compatible upload target.
#[derive(Debug)]
pub struct S3Target {
    store: AmazonS3,
    prefix: String,
}

impl S3Target {
    /// Build the client (no network traffic).
    pub fn new(cfg: &S3Config) -> Result<Self> {
        let retry =
            RetryConfig { max_retries: cfg.max_retries, retry_timeout: cfg.retry_timeout, ..Default::default() };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(&cfg.access_key_id)
            .with_secret_access_key(&cfg.secret_access_key)
            .with_virtual_hosted_style_request(!cfg.path_style)
            .with_retry(retry);
        if let Some(ep) = &cfg.endpoint {
            b = b.with_endpoint(ep).with_allow_http(ep.starts_with("http://"));
        }
        if let Some(allowed) = cfg.address_allowed {
            if let Some(ip) = cfg.endpoint.as_deref().and_then(literal_host)
                && !allowed(ip)
            {
                return Err(ArchiveError::Invalid(format!(
                    "the endpoint's address {ip} is refused by the address policy"
                )));
            }
            b = b.with_client_options(ClientOptions::new().with_dns_resolver(Arc::new(CheckedResolver { allowed })));
        }
        if cfg.sse_s3 {
            // `S3EncryptionConfigKey` is not exported by object_store 0.14; parse its name.
            let key: AmazonS3ConfigKey = "aws_server_side_encryption".parse()?;
            b = b.with_config(key, "AES256");
        }
        Ok(Self { store: b.build()?, prefix: cfg.prefix.trim_matches('/').to_string() })
    }

    /// The object key for `name` under the configured prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}/{}", self.prefix, name) }
    }

    /// Upload a local file as `name` (under the prefix). Files up to `PART_SIZE` go in one
    /// PutObject, larger ones by multipart upload; the file is streamed, never read whole.
    pub async fn upload_file(&self, local: &Path, name: &str) -> Result<UploadResult> {
        let key = self.key(name);
        let location = ObjectPath::parse(&key).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        let mut f = tokio::fs::File::open(local).await?;
        let len = f.metadata().await?.len();
        let mut hash = Sha256::new();
        if len <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            f.read_to_end(&mut buf).await?;
            hash.update(&buf);
            let size = buf.len() as u64;
            self.store.put(&location, PutPayload::from(buf)).await?;
            return Ok(UploadResult { key, size, sha256: hex::encode(hash.finalize()), multipart: false });
        }
        let upload = self.store.put_multipart(&location).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1024 * 1024];
        let mut size = 0u64;
        let res: Result<()> = async {
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                size += n as u64;
                w.wait_for_capacity(4).await?;
                w.write(&buf[..n]);
            }
            Ok(())
        }
        .await;
        if let Err(e) = res {
            let _ = w.abort().await;
            return Err(e);
        }
        w.finish().await?;
        Ok(UploadResult { key, size, sha256: hex::encode(hash.finalize()), multipart: true })
    }

    /// Prove that the credentials can write: PUT a small marker object
    /// (`<prefix>/conclave-check-<uuid>.txt`). Returns its key. The marker is left in place
    /// because deleting would need a permission we do not ask for.
    pub async fn check_target(&self) -> Result<String> {
        let key = self.key(&format!("conclave-check-{}.txt", uuid::Uuid::new_v4()));
        let location = ObjectPath::parse(&key).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        let body = b"conclave archive upload target check\n".to_vec();
        self.store.put(&location, PutPayload::from(body)).await?;
        Ok(key)
    }

    /// The underlying store (tests read objects back with it).
    pub fn store(&self) -> &AmazonS3 {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_loopback(ip: IpAddr) -> bool {
        !ip.is_loopback()
    }

    #[test]
    fn literal_hosts_are_read_from_every_endpoint_form() {
        assert_eq!(literal_host("http://127.0.0.1:9000"), Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(literal_host("https://[::1]:9000/x"), Some("::1".parse().unwrap()));
        assert_eq!(literal_host("https://user@10.0.0.1/"), Some(IpAddr::from([10, 0, 0, 1])));
        assert_eq!(literal_host("https://s3.example.com"), None);
    }

    #[tokio::test]
    async fn the_address_policy_holds_on_every_connection() {
        let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = trap.local_addr().unwrap().port();
        let mut cfg = S3Config::new("bucket", "us-east-1", "AK", "SK");
        cfg.max_retries = 0;
        cfg.retry_timeout = Duration::from_secs(2);
        cfg.path_style = true;
        cfg.address_allowed = Some(not_loopback);
        // A literal address is refused before a client exists.
        cfg.endpoint = Some(format!("http://127.0.0.1:{port}"));
        assert!(S3Target::new(&cfg).is_err());
        // A name is resolved by the client's own resolver, which refuses loopback answers.
        cfg.endpoint = Some(format!("http://localhost:{port}"));
        let target = S3Target::new(&cfg).unwrap();
        assert!(target.check_target().await.is_err());
        let probe = tokio::time::timeout(Duration::from_millis(300), trap.accept()).await;
        assert!(probe.is_err(), "the client connected to a refused address");
        // Without the policy the same name is reached (the check above is what stopped it).
        cfg.address_allowed = None;
        let target = S3Target::new(&cfg).unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(3), target.check_target()).await;
        assert!(tokio::time::timeout(Duration::from_millis(500), trap.accept()).await.is_ok());
    }
}
