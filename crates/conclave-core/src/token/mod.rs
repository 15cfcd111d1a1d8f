//! Client tokens: the per-participant credentials minted offline by the SDKs (compat doc 3).
//!
//! Owns: parsing, signature checks and claim limits for both the `T1==` and the JWT format,
//! plus minting both formats. Must not touch: secret storage or session lookups; the caller
//! resolves the API key to candidate secrets and checks the session binding against its store.
//!
//! Verification is two-phase so the caller can fetch secrets between the phases:
//! [`UnverifiedToken::parse`] → [`UnverifiedToken::signature_matches`] →
//! [`UnverifiedToken::into_claims`]. [`verify`] runs all three with a lookup closure.

mod jwt;
mod mint;
mod t1;

pub use jwt::StringOrNumber;
pub use mint::{TokenParams, mint_jwt, mint_t1};

use crate::CLOCK_SKEW_SECS;
use crate::role::Role;
use serde::Serialize;

/// Longest token lifetime accepted (`expire - issue`), as OpenTok documents: 30 days.
pub const MAX_LIFETIME_SECS: u64 = 30 * 24 * 3600;
/// Longest `connection_data`, in characters (compat doc 3.5; the issue fixes 1,000).
pub const MAX_CONNECTION_DATA_CHARS: usize = 1000;
/// Longest space-joined `initial_layout_class_list` (the Node SDK's limit).
pub const MAX_LAYOUT_CLASS_LIST_CHARS: usize = 1024;
/// Longest raw token we even try to decode.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    T1,
    Jwt,
}

/// Why a client token was refused. `code()` is stable and appears in signaling errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("token signature is invalid or the project is unknown")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (issued in the future)")]
    NotYetValid,
    #[error("token lifetime exceeds 30 days")]
    LifetimeTooLong,
    #[error("token role is not one of subscriber, publisher, publisheronly, moderator")]
    InvalidRole,
    #[error("token connection_data exceeds {MAX_CONNECTION_DATA_CHARS} characters")]
    DataTooLong,
    #[error("token initial_layout_class_list exceeds {MAX_LAYOUT_CLASS_LIST_CHARS} characters")]
    LayoutTooLong,
    #[error("not a client token (scope must be session.connect); REST credentials cannot join sessions")]
    WrongScope,
    #[error("token is for another session")]
    WrongSession,
    #[error("token is for another project")]
    WrongProject,
    #[error("session not found")]
    SessionNotFound,
    #[error("session has ended; its tokens no longer admit anyone")]
    SessionEnded,
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "token_malformed",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::LifetimeTooLong => "token_lifetime_too_long",
            TokenError::InvalidRole => "token_invalid_role",
            TokenError::DataTooLong => "token_data_too_long",
            TokenError::LayoutTooLong => "token_layout_too_long",
            TokenError::WrongScope => "token_wrong_scope",
            TokenError::WrongSession => "token_wrong_session",
            TokenError::WrongProject => "token_wrong_project",
            TokenError::SessionNotFound => "session_not_found",
            TokenError::SessionEnded => "session_ended",
        }
    }
}

/// The verified content of a client token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientClaims {
    pub format: TokenFormat,
    pub api_key: String,
    pub session_id: String,
    pub role: Role,
    pub issued_at: u64,
    pub expires_at: u64,
    pub connection_data: Option<String>,
    pub initial_layout_classes: Vec<String>,
    /// What revocation keys on: a digest of the signed content (see [`UnverifiedToken::revocation_id`]).
    /// Every encoding of one token shares it; no two minted tokens do.
    #[serde(skip)]
    pub revocation_id: [u8; 32],
}

impl ClientClaims {
    /// The token must be for exactly `session_id`, owned by `project_api_key` per the store.
    pub fn check_binding(&self, session_id: &str, project_api_key: &str) -> Result<(), TokenError> {
        if self.api_key != project_api_key {
            return Err(TokenError::WrongProject);
        }
        if self.session_id != session_id {
            return Err(TokenError::WrongSession);
        }
        Ok(())
    }
}

/// Claims as decoded, before the limits are applied. Shared by every format.
pub(crate) struct RawClaims {
    pub(crate) session_id: String,
    pub(crate) role: String,
    pub(crate) issued_at: u64,
    pub(crate) expires_at: u64,
    pub(crate) connection_data: Option<String>,
    pub(crate) layout: Option<String>,
}

// Lives for one verification on the stack; boxing the JWT claims would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Inner<'a> {
    T1(t1::UnverifiedT1),
    Jwt(jwt::UnverifiedJwt<'a>),
    /// A Vonage application's RS256 JWT (see `app_jwt`).
    App(crate::app_jwt::UnverifiedAppToken<'a>),
}

/// A token split into its signed part and signature; nothing in it is trusted yet.
pub struct UnverifiedToken<'a> {
    inner: Inner<'a>,
}

impl<'a> UnverifiedToken<'a> {
    pub fn parse(raw: &'a str) -> Result<Self, TokenError> {
        if raw.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long"));
        }
        let inner = match raw.strip_prefix("T1==") {
            Some(rest) => Inner::T1(t1::UnverifiedT1::parse(rest)?),
            // The header picks the verifier: RS256 only ever meets public keys, HS256 only
            // ever meets project secrets, so neither can be passed off as the other.
            None if crate::app_jwt::peek_alg(raw).as_deref() == Some("RS256") => {
                Inner::App(crate::app_jwt::UnverifiedAppToken::parse(raw)?)
            }
            None => Inner::Jwt(jwt::UnverifiedJwt::parse(raw)?),
        };
        Ok(UnverifiedToken { inner })
    }

    pub fn format(&self) -> TokenFormat {
        match self.inner {
            Inner::T1(_) => TokenFormat::T1,
            Inner::Jwt(_) | Inner::App(_) => TokenFormat::Jwt,
        }
    }

    /// The API key the token claims; use it only to look up candidate secrets.
    pub fn api_key(&self) -> &str {
        match &self.inner {
            Inner::T1(t) => &t.partner_id,
            Inner::Jwt(j) => &j.iss,
            Inner::App(a) => &a.application_id,
        }
    }

    /// Whether this is an application's RS256 token, verified with
    /// [`UnverifiedToken::key_matches`] and never with a secret.
    pub fn is_application(&self) -> bool {
        matches!(self.inner, Inner::App(_))
    }

    /// Checks an application token's RS256 signature; always false for project tokens.
    pub fn key_matches(&self, key: &crate::app_jwt::AppPublicKey) -> bool {
        match &self.inner {
            Inner::App(a) => a.signature_matches(key),
            _ => false,
        }
    }

    /// Constant-time check against one candidate secret (raw UTF-8 bytes, never hex-decoded).
    pub fn signature_matches(&self, secret: &[u8]) -> bool {
        match &self.inner {
            Inner::T1(t) => t.signature_matches(secret),
            Inner::Jwt(j) => j.signature_matches(secret),
            // Never with a secret: that would be the HS256/RS256 confusion.
            Inner::App(_) => false,
        }
    }

    /// The token's identity for revocation: SHA-256 over its format, its API key and the exact
    /// bytes its signature covers (the T1 payload; the JWS `header.payload`). Those bytes are
    /// fixed by the MAC, so every string that verifies as this token (another base64 alphabet,
    /// padding, header spelling) has the same ID, while two mints differ (nonce, `iat`).
    pub fn revocation_id(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        match &self.inner {
            Inner::T1(t) => {
                h.update(b"conclave-revocation-t1\0");
                h.update(t.partner_id.as_bytes());
                h.update(b"\0");
                h.update(t.signed_bytes());
            }
            Inner::Jwt(j) => {
                h.update(b"conclave-revocation-jwt\0");
                h.update(j.iss.as_bytes());
                h.update(b"\0");
                h.update(j.signed_bytes());
            }
            Inner::App(a) => {
                h.update(b"conclave-revocation-rs256\0");
                h.update(a.application_id.as_bytes());
                h.update(b"\0");
                h.update(a.signed_bytes());
            }
        }
        h.finalize().into()
    }

    /// Decodes the claims and applies every limit. Call only after a signature matched.
    pub fn into_claims(self, now: u64) -> Result<ClientClaims, TokenError> {
        let format = self.format();
        let revocation_id = self.revocation_id();
        let (api_key, raw) = match self.inner {
            Inner::T1(t) => t.into_raw()?,
            Inner::Jwt(j) => j.into_raw()?,
            Inner::App(a) => a.into_raw()?,
        };
        let role: Role = raw.role.parse().map_err(|_| TokenError::InvalidRole)?;
        if raw.expires_at < raw.issued_at {
            return Err(TokenError::Malformed("expires before it was issued"));
        }
        if raw.expires_at - raw.issued_at > MAX_LIFETIME_SECS {
            return Err(TokenError::LifetimeTooLong);
        }
        if raw.issued_at > now + CLOCK_SKEW_SECS {
            return Err(TokenError::NotYetValid);
        }
        if now > raw.expires_at + CLOCK_SKEW_SECS {
            return Err(TokenError::Expired);
        }
        if raw.connection_data.as_deref().is_some_and(|d| d.chars().count() > MAX_CONNECTION_DATA_CHARS) {
            return Err(TokenError::DataTooLong);
        }
        let layout = raw.layout.unwrap_or_default();
        if layout.chars().count() > MAX_LAYOUT_CLASS_LIST_CHARS {
            return Err(TokenError::LayoutTooLong);
        }
        Ok(ClientClaims {
            format,
            api_key,
            session_id: raw.session_id,
            role,
            issued_at: raw.issued_at,
            expires_at: raw.expires_at,
            connection_data: raw.connection_data,
            initial_layout_classes: layout.split(' ').filter(|c| !c.is_empty()).map(str::to_owned).collect(),
            revocation_id,
        })
    }
}

/// Parses `raw`, asks `lookup` for the candidate secrets of the claimed API key (current and,
/// during a rotation grace period, previous), and verifies against them.
pub fn verify<I, S>(raw: &str, now: u64, lookup: impl FnOnce(&str) -> Option<I>) -> Result<ClientClaims, TokenError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let token = UnverifiedToken::parse(raw)?;
    let secrets = lookup(token.api_key()).ok_or(TokenError::BadSignature)?;
    if !secrets.into_iter().any(|s| token.signature_matches(s.as_ref())) {
        return Err(TokenError::BadSignature);
    }
    token.into_claims(now)
}

#[cfg(test)]
mod tests;
