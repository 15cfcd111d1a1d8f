//! Project provisioning: generating API keys and secrets, importing existing ones, and
//! rotating secrets with a grace period.
//!
//! Owns: the CSPRNG use for credentials and the rotation policy. Must not touch: HTTP.

use crate::clock;
use conclave_core::credentials::{CredentialError, check_api_key, check_secret};
use conclave_store::{NewProject, Store, StoreError};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long the previous secret keeps working after a rotation, unless told otherwise.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("a project with API key {0} already exists")]
    Exists(String),
    #[error("no project with API key {0}")]
    NoSuchProject(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct CreatedProject {
    pub api_key: String,
    pub api_secret: Zeroizing<String>,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS CSPRNG is available");
    b
}

/// 160 random bits as 40 lowercase hex characters (compat doc 2.1).
pub fn generate_secret() -> Zeroizing<String> {
    loop {
        let s = Zeroizing::new(hex::encode(random_bytes::<20>()));
        if check_secret(&s).is_ok() {
            return s;
        }
    }
}

/// An 8-digit key like OpenTok's, never starting with 0.
fn generate_api_key() -> String {
    let n = u32::from_le_bytes(random_bytes::<4>()) % 90_000_000 + 10_000_000;
    n.to_string()
}

/// Creates a project with fresh credentials, or imports `import` = (key, secret) after
/// checking that the secret is not weak (for teams migrating existing OpenTok credentials).
pub async fn create_project(
    store: &dyn Store,
    name: &str,
    import: Option<(String, Zeroizing<String>)>,
) -> Result<CreatedProject, ProvisionError> {
    if let Some((api_key, api_secret)) = import {
        check_api_key(&api_key)?;
        check_secret(&api_secret)?;
        let p = NewProject {
            api_key: api_key.clone(),
            name: name.to_owned(),
            secret: api_secret.clone(),
            created_at_ms: clock::unix_ms(),
        };
        return match store.insert_project(&p).await {
            Err(StoreError::Conflict) => Err(ProvisionError::Exists(api_key)),
            Err(e) => Err(e.into()),
            Ok(()) => {
                crate::audit::record(
                    store,
                    &crate::audit::Actor::cli(),
                    Some(&api_key),
                    "project.import",
                    &api_key,
                    serde_json::json!({"name": name}),
                )
                .await;
                Ok(CreatedProject { api_key, api_secret })
            }
        };
    }
    loop {
        let api_key = generate_api_key();
        let api_secret = generate_secret();
        let p = NewProject {
            api_key: api_key.clone(),
            name: name.to_owned(),
            secret: api_secret.clone(),
            created_at_ms: clock::unix_ms(),
        };
        match store.insert_project(&p).await {
            Ok(()) => {
                crate::audit::record(
                    store,
                    &crate::audit::Actor::cli(),
                    Some(&api_key),
                    "project.create",
                    &api_key,
                    serde_json::json!({"name": name}),
                )
                .await;
                return Ok(CreatedProject { api_key, api_secret });
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Rotates the secret; the old one keeps verifying for `grace`. Returns the new secret and
/// the unix time at which the old one stops working.
pub async fn rotate_secret(
    store: &dyn Store,
    api_key: &str,
    grace: Duration,
) -> Result<(Zeroizing<String>, u64), ProvisionError> {
    let secret = generate_secret();
    let until = clock::unix_secs() + grace.as_secs();
    match store.rotate_secret(api_key, &secret, until, clock::unix_ms()).await {
        Err(StoreError::NotFound) => Err(ProvisionError::NoSuchProject(api_key.to_owned())),
        Err(e) => Err(e.into()),
        Ok(()) => {
            let detail = serde_json::json!({"grace_secs": grace.as_secs(), "previous_valid_until": until});
            crate::audit::record(
                store,
                &crate::audit::Actor::cli(),
                Some(api_key),
                "project.rotate_secret",
                api_key,
                detail,
            )
            .await;
            Ok((secret, until))
        }
    }
}
