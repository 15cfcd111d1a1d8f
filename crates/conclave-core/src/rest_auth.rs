//! REST credentials: the `X-OPENTOK-AUTH` JWT that server SDKs send on every call
//! (compat doc 5.1 and 5.2).
//!
//! Owns: the rules that tell a REST credential from a client token. Must not touch: secret
//! storage (the caller supplies candidate secrets) or HTTP.

use crate::CLOCK_SKEW_SECS;
use crate::jws::{JwsError, UnverifiedJws, sign_hs256};
use crate::token::StringOrNumber;
use serde::Deserialize;

/// Longest REST credential lifetime (`exp - iat`): the SDKs use 180 s or 300 s.
pub const MAX_REST_LIFETIME_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestAuthError {
    #[error("missing X-OPENTOK-AUTH header (or Authorization: Bearer for an application)")]
    Missing,
    #[error("X-OPENTOK-AUTH is not an HS256 JWT")]
    Malformed,
    #[error("client tokens cannot be used as REST credentials")]
    ClientToken,
    #[error("invalid credential signature or unknown project")]
    BadSignature,
    #[error("credential has expired")]
    Expired,
    #[error("credential is issued in the future")]
    NotYetValid,
    #[error("credential lifetime exceeds 300 seconds")]
    LifetimeTooLong,
    #[error("credential ist must be \"project\"")]
    WrongIssuerType,
    #[error("credential must carry iat and exp (unix seconds)")]
    MissingTimes,
    #[error("credential is for another project")]
    WrongProject,
    #[error(
        "Authorization: Bearer must be an RS256 JWT with an application_id, signed with the application's private key"
    )]
    NotRs256,
    #[error("credential lifetime exceeds 900 seconds")]
    AppLifetimeTooLong,
    #[error("give either X-OPENTOK-AUTH (a project) or Authorization: Bearer (an application), not both")]
    TwoCredentials,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<StringOrNumber>,
    ist: Option<String>,
    iat: Option<u64>,
    exp: Option<u64>,
    scope: Option<serde::de::IgnoredAny>,
    session_id: Option<serde::de::IgnoredAny>,
}

/// A verified REST credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestCredential {
    pub api_key: String,
    pub issued_at: u64,
    pub expires_at: u64,
}

pub struct UnverifiedRestCredential<'a> {
    jws: UnverifiedJws<'a>,
    api_key: String,
    claims: Claims,
}

impl<'a> UnverifiedRestCredential<'a> {
    pub fn parse(raw: &'a str) -> Result<Self, RestAuthError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(RestAuthError::Missing);
        }
        if raw.starts_with("T1==") {
            return Err(RestAuthError::ClientToken);
        }
        let jws = UnverifiedJws::split(raw).map_err(|e| match e {
            JwsError::Malformed | JwsError::TooLong | JwsError::UnsupportedAlgorithm => RestAuthError::Malformed,
        })?;
        let claims: Claims = serde_json::from_slice(&jws.payload).map_err(|_| RestAuthError::Malformed)?;
        // Rule 5.2.5: a client token carries scope/session_id; it is never a REST credential.
        if claims.scope.is_some() || claims.session_id.is_some() {
            return Err(RestAuthError::ClientToken);
        }
        let mut claims = claims;
        let api_key = claims.iss.take().map(StringOrNumber::into_string).filter(|k| !k.is_empty());
        let api_key = api_key.ok_or(RestAuthError::Malformed)?;
        Ok(UnverifiedRestCredential { jws, api_key, claims })
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    pub fn signature_matches(&self, secret: &[u8]) -> bool {
        self.jws.signature_matches(secret)
    }

    /// Applies the time and issuer rules. Call only after a signature matched.
    pub fn into_credential(self, now: u64) -> Result<RestCredential, RestAuthError> {
        let c = self.claims;
        if c.ist.as_deref() != Some("project") {
            return Err(RestAuthError::WrongIssuerType);
        }
        let (Some(iat), Some(exp)) = (c.iat, c.exp) else {
            return Err(RestAuthError::MissingTimes);
        };
        if exp < iat || exp - iat > MAX_REST_LIFETIME_SECS {
            return Err(RestAuthError::LifetimeTooLong);
        }
        if iat > now + CLOCK_SKEW_SECS {
            return Err(RestAuthError::NotYetValid);
        }
        if exp + CLOCK_SKEW_SECS <= now {
            return Err(RestAuthError::Expired);
        }
        Ok(RestCredential { api_key: self.api_key, issued_at: iat, expires_at: exp })
    }
}

/// Verifies `raw` against the secrets `lookup` returns for its `iss`.
pub fn verify<I, S>(
    raw: &str,
    now: u64,
    lookup: impl FnOnce(&str) -> Option<I>,
) -> Result<RestCredential, RestAuthError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let cred = UnverifiedRestCredential::parse(raw)?;
    let secrets = lookup(cred.api_key()).ok_or(RestAuthError::BadSignature)?;
    if !secrets.into_iter().any(|s| cred.signature_matches(s.as_ref())) {
        return Err(RestAuthError::BadSignature);
    }
    cred.into_credential(now)
}

/// Mints a REST credential the way the Node SDK does (no `jti`).
pub fn mint(api_key: &str, secret: &[u8], now: u64, lifetime_secs: u64) -> String {
    sign_hs256(&serde_json::json!({"iss": api_key, "ist": "project", "iat": now, "exp": now + lifetime_secs}), secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "47000001";
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef01234567";
    const NOW: u64 = 1_700_000_000;

    fn lookup(key: &str) -> Option<Vec<&'static [u8]>> {
        (key == KEY).then(|| vec![SECRET])
    }

    fn signed(claims: serde_json::Value) -> String {
        sign_hs256(&claims, SECRET)
    }

    #[test]
    fn accepts_node_and_python_shapes() {
        assert_eq!(verify(&mint(KEY, SECRET, NOW, 300), NOW, lookup).unwrap().api_key, KEY);
        // Python <= 3.10: jti "0" every time; Python >= 3.11: random float string; 180 s.
        for jti in ["0", "0.7118119941612449"] {
            let t = signed(serde_json::json!({"ist":"project","iat":NOW,"exp":NOW+180,"iss":KEY,"jti":jti}));
            assert!(verify(&t, NOW, lookup).is_ok());
            assert!(verify(&t, NOW + 10, lookup).is_ok(), "repeated jti must be accepted");
        }
    }

    #[test]
    fn refuses_client_tokens() {
        let client = signed(
            serde_json::json!({"iss":KEY,"ist":"project","iat":NOW,"exp":NOW+200,"scope":"session.connect","session_id":"1_x","role":"moderator"}),
        );
        assert_eq!(verify(&client, NOW, lookup).unwrap_err(), RestAuthError::ClientToken);
        let only_session =
            signed(serde_json::json!({"iss":KEY,"ist":"project","iat":NOW,"exp":NOW+200,"session_id":"1_x"}));
        assert_eq!(verify(&only_session, NOW, lookup).unwrap_err(), RestAuthError::ClientToken);
        assert_eq!(verify("T1==abcd", NOW, lookup).unwrap_err(), RestAuthError::ClientToken);
    }

    #[test]
    fn refuses_expired_forged_and_foreign() {
        let t = mint(KEY, SECRET, NOW, 300);
        assert_eq!(verify(&t, NOW + 300 + 60, lookup).unwrap_err(), RestAuthError::Expired);
        assert_eq!(verify(&mint(KEY, b"wrong", NOW, 300), NOW, lookup).unwrap_err(), RestAuthError::BadSignature);
        assert_eq!(verify(&mint("1", SECRET, NOW, 300), NOW, lookup).unwrap_err(), RestAuthError::BadSignature);
        assert_eq!(verify(&mint(KEY, SECRET, NOW, 3600), NOW, lookup).unwrap_err(), RestAuthError::LifetimeTooLong);
        assert_eq!(verify(&mint(KEY, SECRET, NOW + 3600, 300), NOW, lookup).unwrap_err(), RestAuthError::NotYetValid);
        let account = signed(serde_json::json!({"iss":KEY,"ist":"account","iat":NOW,"exp":NOW+100}));
        assert_eq!(verify(&account, NOW, lookup).unwrap_err(), RestAuthError::WrongIssuerType);
        assert_eq!(verify("", NOW, lookup).unwrap_err(), RestAuthError::Missing);
        assert_eq!(verify("garbage", NOW, lookup).unwrap_err(), RestAuthError::Malformed);
        let no_iat = signed(serde_json::json!({"iss":KEY,"ist":"project","exp":NOW+100}));
        assert_eq!(verify(&no_iat, NOW, lookup).unwrap_err(), RestAuthError::MissingTimes);
    }
}
