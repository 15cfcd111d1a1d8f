//! Credential checks against the store: REST credentials (`X-OPENTOK-AUTH`) and client
//! tokens. This is the verification library that signaling uses.
//!
//! Owns: resolving API keys to candidate secrets and the session binding, which always comes
//! from the store, never from the decoded session ID. Must not touch: token byte formats (in
//! `conclave-core`). Never logs a token or a secret.

use crate::clock;
use conclave_core::pii::PiiPolicy;
use conclave_core::rest_auth::{RestAuthError, RestCredential, UnverifiedRestCredential};
use conclave_core::token::{ClientClaims, TokenError, UnverifiedToken};
use conclave_store::{SessionRecord, Store, StoreError};

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
    if !project.candidate_secrets(now).any(|s| token.signature_matches(s)) {
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
