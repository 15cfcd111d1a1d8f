//! The legacy `T1==` token format (compat doc 3.2).
//!
//! Owns: decoding the outer base64 and the `partner_id`/`sig` header, and verifying the
//! HMAC-SHA1 over the exact payload bytes as received. Never re-serialises the payload:
//! the SDKs encode it differently (`+` vs `%20`, field order).
//!
//! The outer base64 is decoded leniently (standard or URL-safe alphabet, padded or not), as
//! tokens travel through URLs; that is safe because revocation keys on the signed payload,
//! not on the string (`UnverifiedToken::revocation_id`). The unsigned header is strict.

use super::{RawClaims, TokenError};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha1::Sha1;

pub(super) struct UnverifiedT1 {
    pub partner_id: String,
    sig: [u8; 20],
    payload: Vec<u8>,
}

fn decode_lenient(b64: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(b64)
        .or_else(|_| STANDARD_NO_PAD.decode(b64))
        .or_else(|_| URL_SAFE.decode(b64))
        .or_else(|_| URL_SAFE_NO_PAD.decode(b64))
        .ok()
}

/// The header in the one form every SDK writes: `partner_id=<key>&sig=<40 lowercase hex>`.
/// Nothing is percent-decoded, no other field, order or hex case is accepted: the header is
/// not covered by the signature, so any leniency here only makes more spellings of one token.
fn parse_header(header: &[u8]) -> Result<(String, [u8; 20]), TokenError> {
    let header = std::str::from_utf8(header).map_err(|_| TokenError::Malformed("T1 header is not ASCII"))?;
    let rest =
        header.strip_prefix("partner_id=").ok_or(TokenError::Malformed("T1 header must start with partner_id="))?;
    let (partner_id, sig_hex) =
        rest.split_once("&sig=").ok_or(TokenError::Malformed("T1 header must be partner_id=…&sig=…"))?;
    let key_ok = !partner_id.is_empty()
        && partner_id.len() <= 64
        && partner_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !key_ok {
        return Err(TokenError::Malformed("T1 partner_id is not an API key"));
    }
    let lower_hex = sig_hex.len() == 40 && sig_hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !lower_hex {
        return Err(TokenError::Malformed("T1 sig is not 40 lowercase hex characters"));
    }
    let mut sig = [0u8; 20];
    hex::decode_to_slice(sig_hex, &mut sig).map_err(|_| TokenError::Malformed("T1 sig is not hex"))?;
    Ok((partner_id.to_owned(), sig))
}

impl UnverifiedT1 {
    /// `rest` is everything after the literal `T1==` sentinel.
    pub fn parse(rest: &str) -> Result<Self, TokenError> {
        let decoded = decode_lenient(rest).ok_or(TokenError::Malformed("T1 body is not base64"))?;
        let colon = decoded.iter().position(|&b| b == b':').ok_or(TokenError::Malformed("T1 body has no ':'"))?;
        let (header, payload) = (&decoded[..colon], &decoded[colon + 1..]);
        let (partner_id, sig) = parse_header(header)?;
        Ok(UnverifiedT1 { partner_id, sig, payload: payload.to_vec() })
    }

    /// The bytes the signature covers (the payload as received).
    pub fn signed_bytes(&self) -> &[u8] {
        &self.payload
    }

    pub fn signature_matches(&self, secret: &[u8]) -> bool {
        let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(&self.payload);
        mac.verify_slice(&self.sig).is_ok()
    }

    pub fn into_raw(self) -> Result<(String, RawClaims), TokenError> {
        let mut session_id = None;
        let mut role = None;
        let mut create_time = None;
        let mut expire_time = None;
        let mut connection_data = None;
        let mut layout = None;
        let mut scope = None;
        for (k, v) in form_urlencoded::parse(&self.payload) {
            let slot = match k.as_ref() {
                "session_id" => &mut session_id,
                "role" => &mut role,
                "create_time" => &mut create_time,
                "expire_time" => &mut expire_time,
                "connection_data" => &mut connection_data,
                "initial_layout_class_list" => &mut layout,
                "scope" => &mut scope,
                _ => continue, // nonce and future fields
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err(TokenError::Malformed("T1 payload repeats a field"));
            }
        }
        if scope.is_some_and(|s| s != "session.connect") {
            return Err(TokenError::WrongScope);
        }
        let secs = |v: Option<String>, what: &'static str| -> Result<u64, TokenError> {
            v.and_then(|s| s.parse::<u64>().ok()).ok_or(TokenError::Malformed(what))
        };
        let raw = RawClaims {
            session_id: session_id.ok_or(TokenError::Malformed("T1 payload has no session_id"))?,
            role: role.ok_or(TokenError::InvalidRole)?,
            issued_at: secs(create_time, "T1 create_time is missing or not an integer")?,
            expires_at: secs(expire_time, "T1 expire_time is missing or not an integer")?,
            connection_data,
            layout,
        };
        Ok((self.partner_id, raw))
    }
}
