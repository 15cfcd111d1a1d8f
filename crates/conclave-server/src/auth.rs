//! Credential checks against the store: REST credentials (`X-OPENTOK-AUTH`) and client
//! tokens. This is the verification library that signaling uses.
//!
//! Owns: resolving API keys to candidate secrets, application IDs to their public keys (parsed
//! once and cached by the hash of their DER, so no request parses a key), and the session
//! binding, which always comes from the store, never from the decoded session ID. Must not
//! touch: token byte formats (in `conclave-core`). Never logs a token, a secret or a key.

use crate::clock;
use conclave_core::app_jwt::{AppPublicKey, UnverifiedAppCredential};
use conclave_core::pii::PiiPolicy;
use conclave_core::rest_auth::{RestAuthError, RestCredential, UnverifiedRestCredential};
use conclave_core::token::{ClientClaims, TokenError, UnverifiedToken};
use conclave_store::Project;
use conclave_store::{SessionRecord, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// A token that may join its session, with what the store says about both.
#[derive(Debug)]
pub struct VerifiedJoin {
    pub claims: ClientClaims,
    pub session: SessionRecord,
    pub pii_policy: PiiPolicy,
    /// The participant limit in force: the session's own, else the project's default.
    pub max_participants: Option<u32>,
}

/// Why a credential check did not succeed: a refusal, or the store failing underneath.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure<E> {
    #[error(transparent)]
    Rejected(E),
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
}

/// Parsed public keys by the SHA-256 of their DER. Keys are public and content-addressed, so a
/// rotation needs no invalidation: the store says which DERs are valid, the cache only saves
/// the parsing. Bounded: cleared when it grows past [`KEY_CACHE_MAX`] (many applications).
static KEY_CACHE: LazyLock<Mutex<HashMap<[u8; 32], Arc<AppPublicKey>>>> = LazyLock::new(Default::default);
const KEY_CACHE_MAX: usize = 10_000;

/// The verifier-ready form of a stored public key; `None` if it does not parse (it was
/// checked when registered, so only a corrupt row gets here).
pub fn parsed_public_key(der: &[u8]) -> Option<Arc<AppPublicKey>> {
    use sha2::{Digest, Sha256};
    let id: [u8; 32] = Sha256::digest(der).into();
    if let Some(k) = KEY_CACHE.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return Some(k.clone());
    }
    let key = Arc::new(AppPublicKey::from_der(der).ok()?);
    let mut cache = KEY_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= KEY_CACHE_MAX {
        cache.clear();
    }
    cache.insert(id, key.clone());
    Some(key)
}

/// Whether any public key of `project` valid at `now` verifies with `check`.
fn any_public_key(project: &Project, now: u64, check: impl Fn(&AppPublicKey) -> bool) -> bool {
    project.candidate_public_keys(now).any(|k| parsed_public_key(&k.der).is_some_and(|key| check(&key)))
}

/// Verifies an application's `Authorization: Bearer` credential (RS256) at the current time.
pub async fn verify_application_credential(
    store: &dyn Store,
    raw: &str,
) -> Result<RestCredential, AuthFailure<RestAuthError>> {
    let now = clock::unix_secs();
    let cred = UnverifiedAppCredential::parse(raw).map_err(AuthFailure::Rejected)?;
    let Some(project) = store.project(cred.application_id()).await? else {
        return Err(AuthFailure::Rejected(RestAuthError::BadSignature));
    };
    if !any_public_key(&project, now, |k| cred.signature_matches(k)) {
        return Err(AuthFailure::Rejected(RestAuthError::BadSignature));
    }
    cred.into_credential(now).map_err(AuthFailure::Rejected)
}

/// Verifies a REST credential at the current time.
pub async fn verify_rest_credential(
    store: &dyn Store,
    raw: &str,
) -> Result<RestCredential, AuthFailure<RestAuthError>> {
    let now = clock::unix_secs();
    let cred = UnverifiedRestCredential::parse(raw).map_err(AuthFailure::Rejected)?;
    let project = store.project(cred.api_key()).await?;
    let Some(project) = project else {
        return Err(AuthFailure::Rejected(RestAuthError::BadSignature));
    };
    if !project.candidate_secrets(now).any(|s| cred.signature_matches(s)) {
        return Err(AuthFailure::Rejected(RestAuthError::BadSignature));
    }
    cred.into_credential(now).map_err(AuthFailure::Rejected)
}

/// Verifies a client token for joining `session_id` at `now` (unix s): signature, expiry,
/// limits, role, and that the store says the session exists, is live, and belongs to the
/// token's project.
pub async fn verify_client_token(
    store: &dyn Store,
    raw: &str,
    session_id: &str,
    now: u64,
) -> Result<VerifiedJoin, AuthFailure<TokenError>> {
    let reject = AuthFailure::Rejected;
    let token = UnverifiedToken::parse(raw).map_err(reject)?;
    let Some(project) = store.project(token.api_key()).await? else {
        return Err(reject(TokenError::BadSignature));
    };
    // An application's RS256 token meets only its public keys, a project's token only its
    // secrets (an application has none, a project no public keys).
    let signed = if token.is_application() {
        any_public_key(&project, now, |k| token.key_matches(k))
    } else {
        project.candidate_secrets(now).any(|s| token.signature_matches(s))
    };
    if !signed {
        return Err(reject(TokenError::BadSignature));
    }
    let claims = token.into_claims(now).map_err(reject)?;
    if claims.session_id != session_id {
        return Err(reject(TokenError::WrongSession));
    }
    let Some(session) = store.session(session_id).await? else {
        return Err(reject(TokenError::SessionNotFound));
    };
    claims.check_binding(&session.session_id, &session.api_key).map_err(reject)?;
    if session.ended_at_ms.is_some() {
        return Err(reject(TokenError::SessionEnded));
    }
    let max_participants = session.max_participants.or(project.default_max_participants);
    Ok(VerifiedJoin { claims, session, pii_policy: project.pii_policy, max_participants })
}
