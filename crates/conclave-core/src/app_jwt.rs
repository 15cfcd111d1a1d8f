//! Vonage Video application credentials: RS256 JWTs signed with an application's RSA private
//! key, both the REST credential (`Authorization: Bearer`) and the client token.
//!
//! Owns: the RS256 compact-JWS split (the header must say exactly `RS256`; `none`, `HS256`
//! and everything else are refused before any key is looked at, so an HS256 token "signed"
//! with the public key as its secret never reaches a MAC), parsing RSA public keys (PEM or
//! DER) into verifier-ready keys, and the claim rules that tell a REST credential from a
//! client token. Must not touch: key storage, key generation or signing (randomness lives
//! with the callers), HTTP.

use crate::CLOCK_SKEW_SECS;
use crate::rest_auth::{RestAuthError, RestCredential};
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;

/// Longest REST credential lifetime (`exp - iat`) of an application: the Vonage SDKs mint
/// theirs for 900 s (their `ttl` default).
pub const MAX_APP_REST_LIFETIME_SECS: u64 = 900;
/// Longest compact JWS we look at (an RS256 signature of an 8192-bit key is 1 KiB).
pub const MAX_APP_JWS_LEN: usize = 10 * 1024;
/// Smallest RSA modulus accepted for an application key, in bits.
pub const MIN_RSA_BITS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM public key (expected -----BEGIN PUBLIC KEY----- or -----BEGIN RSA PUBLIC KEY-----)")]
    NotPem,
    #[error("that is a private key: register the public key only (Conclave never stores private keys)")]
    PrivateKey,
    #[error("not an RSA public key")]
    NotRsa,
    #[error("RSA keys must have at least {MIN_RSA_BITS} bits")]
    TooSmall,
}

/// An application's public key, parsed once and ready to verify signatures.
pub struct AppPublicKey(ParsedPublicKey);

impl AppPublicKey {
    /// Parses a DER public key (SubjectPublicKeyInfo or PKCS#1 `RSAPublicKey`).
    pub fn from_der(der: &[u8]) -> Result<AppPublicKey, KeyError> {
        let rsa = aws_lc_rs::rsa::PublicKey::from_der(der).map_err(|_| KeyError::NotRsa)?;
        if rsa.modulus_len() * 8 < MIN_RSA_BITS {
            return Err(KeyError::TooSmall);
        }
        ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).map(AppPublicKey).map_err(|_| KeyError::NotRsa)
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.0.verify_sig(message, signature).is_ok()
    }
}

/// Decodes a PEM public key to the SubjectPublicKeyInfo DER that is stored, after checking
/// that it is an RSA key of at least 2048 bits.
pub fn public_key_der_from_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
    let pem = pem.trim();
    if pem.contains("PRIVATE KEY-----") {
        return Err(KeyError::PrivateKey);
    }
    let body = ["PUBLIC KEY", "RSA PUBLIC KEY"].iter().find_map(|label| {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let rest = pem.strip_prefix(begin.as_str())?;
        let (body, tail) = rest.split_once(end.as_str())?;
        tail.trim().is_empty().then_some(body)
    });
    let body: String = body.ok_or(KeyError::NotPem)?.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(body).map_err(|_| KeyError::NotPem)?;
    normalize_der(&der)
}

/// Checks a DER public key and returns it as SubjectPublicKeyInfo.
pub fn normalize_der(der: &[u8]) -> Result<Vec<u8>, KeyError> {
    use aws_lc_rs::encoding::AsDer;
    let rsa = aws_lc_rs::rsa::PublicKey::from_der(der).map_err(|_| KeyError::NotRsa)?;
    if rsa.modulus_len() * 8 < MIN_RSA_BITS {
        return Err(KeyError::TooSmall);
    }
    let spki = rsa.as_der().map_err(|_| KeyError::NotRsa)?;
    Ok(spki.as_ref().to_vec())
}

/// The `alg` a compact JWS claims, without verifying anything: how callers route a token
/// to the HS256 (project) or RS256 (application) verifier. `None` when it is not a JWS.
pub fn peek_alg(raw: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Header {
        alg: String,
    }
    let header = raw.split('.').next()?;
    if header.len() > 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    serde_json::from_slice::<Header>(&bytes).ok().map(|h| h.alg)
}

/// A compact JWS whose header says RS256, with its signature not checked yet.
pub struct UnverifiedRs256<'a> {
    signing_input: &'a str,
    signature: Vec<u8>,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rs256Error {
    #[error("not a compact JWS (three base64url segments)")]
    Malformed,
    #[error("only alg RS256 is accepted for application credentials")]
    WrongAlgorithm,
}

impl<'a> UnverifiedRs256<'a> {
    pub fn split(raw: &'a str) -> Result<Self, Rs256Error> {
        #[derive(Deserialize)]
        struct Header<'h> {
            alg: &'h str,
            #[serde(default)]
            crit: Option<serde::de::IgnoredAny>,
            #[serde(default, rename = "b64")]
            unencoded_payload: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            jwk: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            jku: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            x5u: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            x5c: Option<serde::de::IgnoredAny>,
        }
        if raw.len() > MAX_APP_JWS_LEN {
            return Err(Rs256Error::Malformed);
        }
        let mut parts = raw.splitn(3, '.');
        let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Rs256Error::Malformed);
        };
        if s.contains('.') || s.is_empty() {
            return Err(Rs256Error::Malformed);
        }
        let header = URL_SAFE_NO_PAD.decode(h).map_err(|_| Rs256Error::Malformed)?;
        let header: Header<'_> = serde_json::from_slice(&header).map_err(|_| Rs256Error::Malformed)?;
        // Exactly RS256. A key carried in the token itself (jwk, jku, x5u, x5c) is never
        // trusted: the only keys are the ones registered for the application.
        let embedded_key = header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some();
        if header.alg != "RS256" || header.crit.is_some() || header.unencoded_payload.is_some() || embedded_key {
            return Err(Rs256Error::WrongAlgorithm);
        }
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| Rs256Error::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| Rs256Error::Malformed)?;
        Ok(UnverifiedRs256 { signing_input: &raw[..h.len() + 1 + p.len()], signature, payload })
    }

    /// The exact text the signature covers: `header.payload` as received.
    pub fn signing_input(&self) -> &'a str {
        self.signing_input
    }

    pub fn signature_matches(&self, key: &AppPublicKey) -> bool {
        key.verifies(self.signing_input.as_bytes(), &self.signature)
    }
}

/// The claims of an application REST credential (the Vonage SDKs' `tokenGenerate`).
#[derive(Deserialize)]
struct RestClaims {
    application_id: Option<String>,
    iat: Option<u64>,
    exp: Option<u64>,
    scope: Option<serde::de::IgnoredAny>,
    session_id: Option<serde::de::IgnoredAny>,
}

/// An `Authorization: Bearer` credential, parsed but not verified.
pub struct UnverifiedAppCredential<'a> {
    jws: UnverifiedRs256<'a>,
    application_id: String,
    claims: RestClaims,
}

impl<'a> UnverifiedAppCredential<'a> {
    pub fn parse(raw: &'a str) -> Result<Self, RestAuthError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(RestAuthError::Missing);
        }
        let jws = UnverifiedRs256::split(raw).map_err(|_| RestAuthError::NotRs256)?;
        let mut claims: RestClaims = serde_json::from_slice(&jws.payload).map_err(|_| RestAuthError::NotRs256)?;
        // A client token (scope session.connect, session_id) is never a REST credential.
        if claims.scope.is_some() || claims.session_id.is_some() {
            return Err(RestAuthError::ClientToken);
        }
        let application_id = claims.application_id.take().filter(|a| !a.is_empty()).ok_or(RestAuthError::NotRs256)?;
        Ok(UnverifiedAppCredential { jws, application_id, claims })
    }

    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    pub fn signature_matches(&self, key: &AppPublicKey) -> bool {
        self.jws.signature_matches(key)
    }

    /// Applies the time rules. Call only after a signature matched.
    pub fn into_credential(self, now: u64) -> Result<RestCredential, RestAuthError> {
        let (Some(iat), Some(exp)) = (self.claims.iat, self.claims.exp) else {
            return Err(RestAuthError::MissingTimes);
        };
        if exp < iat || exp - iat > MAX_APP_REST_LIFETIME_SECS {
            return Err(RestAuthError::AppLifetimeTooLong);
        }
        if iat > now + CLOCK_SKEW_SECS {
            return Err(RestAuthError::NotYetValid);
        }
        if exp + CLOCK_SKEW_SECS <= now {
            return Err(RestAuthError::Expired);
        }
        Ok(RestCredential { api_key: self.application_id, issued_at: iat, expires_at: exp })
    }
}

/// The claims of an application client token (the Vonage SDKs' `generateClientToken`).
#[derive(Deserialize)]
pub(crate) struct ClientTokenClaims {
    application_id: Option<String>,
    scope: Option<String>,
    session_id: Option<String>,
    role: Option<String>,
    iat: Option<u64>,
    exp: Option<u64>,
    connection_data: Option<String>,
    initial_layout_class_list: Option<ClassList>,
}

/// `initial_layout_class_list`: a space-separated string (Node SDK) or a list of strings
/// (Python SDK).
#[derive(Deserialize)]
#[serde(untagged)]
enum ClassList {
    Joined(String),
    List(Vec<String>),
}

impl ClassList {
    fn joined(self) -> String {
        match self {
            ClassList::Joined(s) => s,
            ClassList::List(l) => l.join(" "),
        }
    }
}

/// An application client token, parsed but not verified (see `token::UnverifiedToken`).
pub(crate) struct UnverifiedAppToken<'a> {
    jws: UnverifiedRs256<'a>,
    pub application_id: String,
    claims: ClientTokenClaims,
}

impl<'a> UnverifiedAppToken<'a> {
    pub fn parse(raw: &'a str) -> Result<Self, crate::TokenError> {
        use crate::TokenError;
        let jws = UnverifiedRs256::split(raw).map_err(|e| match e {
            Rs256Error::WrongAlgorithm => TokenError::Malformed("unsupported JWT algorithm"),
            Rs256Error::Malformed => TokenError::Malformed("neither a T1 token nor a JWT"),
        })?;
        let mut claims: ClientTokenClaims = serde_json::from_slice(&jws.payload)
            .map_err(|_| TokenError::Malformed("JWT claims are not a JSON object of the expected types"))?;
        let application_id = claims.application_id.take().filter(|a| !a.is_empty());
        let application_id = application_id.ok_or(TokenError::Malformed("RS256 JWT has no application_id"))?;
        Ok(UnverifiedAppToken { jws, application_id, claims })
    }

    pub fn signature_matches(&self, key: &AppPublicKey) -> bool {
        self.jws.signature_matches(key)
    }

    pub fn signed_bytes(&self) -> &[u8] {
        self.jws.signing_input().as_bytes()
    }

    pub(crate) fn into_raw(self) -> Result<(String, crate::token::RawClaims), crate::TokenError> {
        use crate::TokenError;
        let c = self.claims;
        if c.scope.as_deref() != Some("session.connect") {
            return Err(TokenError::WrongScope);
        }
        let raw = crate::token::RawClaims {
            session_id: c.session_id.ok_or(TokenError::Malformed("JWT has no session_id"))?,
            role: c.role.unwrap_or_else(|| "publisher".to_owned()),
            issued_at: c.iat.ok_or(TokenError::Malformed("JWT has no iat"))?,
            expires_at: c.exp.ok_or(TokenError::Malformed("JWT has no exp"))?,
            connection_data: c.connection_data,
            layout: c.initial_layout_class_list.map(ClassList::joined),
        };
        Ok((self.application_id, raw))
    }
}

/// Checks the shape of an application ID: a UUID as Vonage issues them (lowercase hex).
pub fn check_application_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

#[cfg(test)]
mod tests;
