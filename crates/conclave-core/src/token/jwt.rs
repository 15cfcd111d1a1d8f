//! JWT client tokens (compat doc 3.3): HS256, `ist=project`, `scope=session.connect`.
//!
//! Owns: the claim set of a client JWT. Must not touch: REST credentials, which are JWTs
//! too but are told apart by the absence of `scope` (see `rest_auth`).

use super::{RawClaims, TokenError};
use crate::jws::{JwsError, UnverifiedJws};
use serde::Deserialize;

pub(super) struct UnverifiedJwt<'a> {
    jws: UnverifiedJws<'a>,
    pub iss: String,
    claims: Claims,
}

/// `iss` is a string in every SDK, but a numeric key is harmless to accept.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum StringOrNumber {
    S(String),
    N(u64),
}

impl StringOrNumber {
    pub fn into_string(self) -> String {
        match self {
            StringOrNumber::S(s) => s,
            StringOrNumber::N(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<StringOrNumber>,
    ist: Option<String>,
    scope: Option<String>,
    session_id: Option<String>,
    role: Option<String>,
    iat: Option<u64>,
    exp: Option<u64>,
    connection_data: Option<String>,
    initial_layout_class_list: Option<String>,
}

impl<'a> UnverifiedJwt<'a> {
    pub fn parse(raw: &'a str) -> Result<Self, TokenError> {
        let jws = UnverifiedJws::split(raw).map_err(|e| match e {
            JwsError::UnsupportedAlgorithm => TokenError::Malformed("only HS256 JWTs are accepted"),
            JwsError::TooLong => TokenError::Malformed("too long"),
            JwsError::Malformed => TokenError::Malformed("neither a T1 token nor a JWT"),
        })?;
        let mut claims: Claims = serde_json::from_slice(&jws.payload)
            .map_err(|_| TokenError::Malformed("JWT claims are not a JSON object of the expected types"))?;
        let iss = claims.iss.take().map(StringOrNumber::into_string).filter(|s| !s.is_empty());
        let iss = iss.ok_or(TokenError::Malformed("JWT has no iss"))?;
        Ok(UnverifiedJwt { jws, iss, claims })
    }

    pub fn signature_matches(&self, secret: &[u8]) -> bool {
        self.jws.signature_matches(secret)
    }

    /// The bytes the signature covers (`header.payload` as received).
    pub fn signed_bytes(&self) -> &[u8] {
        self.jws.signing_input().as_bytes()
    }

    pub fn into_raw(self) -> Result<(String, RawClaims), TokenError> {
        let c = self.claims;
        if c.scope.as_deref() != Some("session.connect") {
            return Err(TokenError::WrongScope);
        }
        if c.ist.as_deref() != Some("project") {
            return Err(TokenError::Malformed("JWT ist must be \"project\""));
        }
        let raw = RawClaims {
            session_id: c.session_id.ok_or(TokenError::Malformed("JWT has no session_id"))?,
            role: c.role.ok_or(TokenError::InvalidRole)?,
            issued_at: c.iat.ok_or(TokenError::Malformed("JWT has no iat"))?,
            expires_at: c.exp.ok_or(TokenError::Malformed("JWT has no exp"))?,
            connection_data: c.connection_data,
            layout: c.initial_layout_class_list,
        };
        Ok((self.iss, raw))
    }
}
