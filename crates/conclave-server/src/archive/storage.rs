//! Upload targets (compat doc 6.2 "storage"): turning the stored, validated target into an
//! S3 client config, and the save-time check (a real PutObject of a marker object, the only
//! permission Conclave ever needs).
//!
//! Owns: the mapping of `S3ConfigBody` onto `conclave_archive::upload::S3Config`. Must not
//! touch: the sealing (the store does it) or archive status.

use crate::webhook::CallbackPolicy;
use conclave_archive::upload::{S3Config, S3Target};
use conclave_core::archive::StorageTarget;
use std::time::Duration;

/// The client config for a stored target under the server's outbound policy: the region is
/// checked again (targets saved before it was validated), and unless private targets are
/// allowed every address the client connects to must be public, checked at each connection.
pub fn s3_config(t: &StorageTarget, policy: CallbackPolicy) -> Result<S3Config, String> {
    let b = &t.s3;
    if let Some(region) = &b.region
        && !conclave_core::archive::is_s3_region(region)
    {
        return Err("the stored upload target has an invalid region".into());
    }
    let mut c = S3Config::new(&b.bucket, b.region.as_deref().unwrap_or("us-east-1"), &b.access_key, &b.secret_key);
    c.endpoint = b.endpoint.clone();
    // S3-compatible servers usually need path-style; AWS itself takes virtual-hosted style.
    c.path_style = b.path_style.unwrap_or(b.endpoint.is_some());
    c.sse_s3 = b.sse.as_deref() == Some("s3");
    c.prefix = b.prefix.clone().unwrap_or_default();
    c.max_retries = 3;
    c.retry_timeout = Duration::from_secs(30);
    if !policy.allow_private {
        c.address_allowed = Some(crate::webhook::is_public);
    }
    Ok(c)
}

/// Proves the credentials can write, with one small PutObject. Returns the marker's key.
pub async fn check(t: &StorageTarget, policy: CallbackPolicy) -> Result<String, String> {
    let mut cfg = s3_config(t, policy)?;
    cfg.max_retries = 1;
    cfg.retry_timeout = Duration::from_secs(10);
    let target = S3Target::new(&cfg).map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(20), target.check_target()).await {
        Ok(Ok(key)) => Ok(key),
        Ok(Err(e)) => Err(format!("the upload target refused a test PutObject: {e}")),
        Err(_) => Err("the upload target did not answer within 20 s".into()),
    }
}

/// The stored JSON back into a target (`None` when the row is unreadable).
pub fn parse(json: &str) -> Option<StorageTarget> {
    serde_json::from_str(json).ok()
}
