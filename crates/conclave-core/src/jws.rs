//! Minimal HS256 compact JWS, the only algorithm OpenTok-flavour credentials use.
//!
//! Owns: splitting, header checks, signing and constant-time verification. Must not touch:
//! claim semantics (client tokens and REST credentials each check their own claims).
//! Hand-rolled on purpose: one algorithm, no `alg` negotiation to get wrong, no allocation
//! beyond the decoded parts, which keeps verification in the microsecond range.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Longest compact JWS we look at (client tokens carry up to ~1 KiB of data).
pub const MAX_JWS_LEN: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("not a compact JWS (three base64url segments)")]
    Malformed,
    #[error("only alg HS256 is accepted")]
    UnsupportedAlgorithm,
    #[error("token is too long")]
    TooLong,
}

/// A split JWS whose signature has not been checked yet.
pub struct UnverifiedJws<'a> {
    signing_input: &'a str,
    signature: [u8; 32],
    pub payload: Vec<u8>,
}

#[derive(Deserialize)]
struct Header<'a> {
    alg: &'a str,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "b64")]
    unencoded_payload: Option<serde::de::IgnoredAny>,
}

impl<'a> UnverifiedJws<'a> {
    pub fn split(raw: &'a str) -> Result<Self, JwsError> {
        if raw.len() > MAX_JWS_LEN {
            return Err(JwsError::TooLong);
        }
        let mut parts = raw.splitn(3, '.');
        let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(JwsError::Malformed);
        };
        if s.contains('.') {
            return Err(JwsError::Malformed);
        }
        let header = URL_SAFE_NO_PAD.decode(h).map_err(|_| JwsError::Malformed)?;
        let header: Header<'_> = serde_json::from_slice(&header).map_err(|_| JwsError::Malformed)?;
        // Extensions that change how the signature is computed are refused outright.
        if header.alg != "HS256" || header.crit.is_some() || header.unencoded_payload.is_some() {
            return Err(JwsError::UnsupportedAlgorithm);
        }
        let mut signature = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut signature) {
            Ok(32) => {}
            _ => return Err(JwsError::Malformed),
        }
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| JwsError::Malformed)?;
        Ok(UnverifiedJws { signing_input: &raw[..h.len() + 1 + p.len()], signature, payload })
    }

    /// The exact text the signature covers: `header.payload` as received.
    pub fn signing_input(&self) -> &'a str {
        self.signing_input
    }

    /// Constant-time HMAC-SHA256 check over `header.payload` with `secret` as raw bytes.
    pub fn signature_matches(&self, secret: &[u8]) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(self.signing_input.as_bytes());
        mac.verify_slice(&self.signature).is_ok()
    }
}

/// Signs `claims` (a JSON object) as `{"alg":"HS256","typ":"JWT"}`.
pub fn sign_hs256(claims: &serde_json::Value, secret: &[u8]) -> String {
    const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"; // {"alg":"HS256","typ":"JWT"}
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("JSON value serializes"));
    let signing_input = format!("{HEADER}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify() {
        let t = sign_hs256(&serde_json::json!({"a": 1}), b"k");
        let j = UnverifiedJws::split(&t).unwrap();
        assert!(j.signature_matches(b"k"));
        assert!(!j.signature_matches(b"other"));
        assert_eq!(j.payload, br#"{"a":1}"#);
    }

    #[test]
    fn refuses_alg_none_and_others() {
        // {"alg":"none"} . {} . (empty)
        assert_eq!(UnverifiedJws::split("eyJhbGciOiJub25lIn0.e30.").err(), Some(JwsError::UnsupportedAlgorithm));
        // {"alg":"RS256"}
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#);
        let t = format!("{h}.e30.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(UnverifiedJws::split(&t).err(), Some(JwsError::UnsupportedAlgorithm));
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#);
        let t = format!("{h}.e30.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(UnverifiedJws::split(&t).err(), Some(JwsError::UnsupportedAlgorithm));
    }

    #[test]
    fn refuses_malformed() {
        for t in ["", "a", "a.b", "a.b.c.d", "eyJhbGciOiJIUzI1NiJ9.e30.short", "T1==abc"] {
            assert!(UnverifiedJws::split(t).is_err(), "{t}");
        }
        assert_eq!(UnverifiedJws::split(&"a".repeat(MAX_JWS_LEN + 1)).err(), Some(JwsError::TooLong));
    }
}
