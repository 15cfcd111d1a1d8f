//! Minting client tokens in both formats, as the official SDKs do (used by the CLI and the
//! Rust SDK). Owns: the field layout of what we emit. Must not touch: verification.

use crate::jws::sign_hs256;
use crate::role::Role;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Everything a client token carries. `nonce` is opaque (the SDKs use a random number).
#[derive(Debug, Clone)]
pub struct TokenParams<'a> {
    pub session_id: &'a str,
    pub role: Role,
    pub create_time: u64,
    pub expire_time: u64,
    pub nonce: u32,
    pub connection_data: Option<&'a str>,
    pub initial_layout_classes: &'a [String],
}

/// A `T1==` token in the Python SDK's field order, with `scope` as Node ≥ 2.20 adds it.
pub fn mint_t1(api_key: &str, secret: &[u8], p: &TokenParams<'_>) -> String {
    let mut payload = form_urlencoded::Serializer::new(String::new());
    payload
        .append_pair("session_id", p.session_id)
        .append_pair("create_time", &p.create_time.to_string())
        .append_pair("expire_time", &p.expire_time.to_string())
        .append_pair("role", p.role.as_str())
        .append_pair("nonce", &p.nonce.to_string())
        .append_pair("initial_layout_class_list", &p.initial_layout_classes.join(" "));
    if let Some(data) = p.connection_data {
        payload.append_pair("connection_data", data);
    }
    payload.append_pair("scope", "session.connect");
    let payload = payload.finish();
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    let mut header = form_urlencoded::Serializer::new(String::new());
    header.append_pair("partner_id", api_key).append_pair("sig", &sig);
    format!("T1=={}", STANDARD.encode(format!("{}:{payload}", header.finish())))
}

/// A JWT client token with the Python SDK's claim set.
pub fn mint_jwt(api_key: &str, secret: &[u8], p: &TokenParams<'_>) -> String {
    let mut claims = serde_json::json!({
        "iss": api_key,
        "ist": "project",
        "iat": p.create_time,
        "exp": p.expire_time,
        "scope": "session.connect",
        "session_id": p.session_id,
        "role": p.role.as_str(),
        "nonce": p.nonce,
    });
    if !p.initial_layout_classes.is_empty() {
        claims["initial_layout_class_list"] = p.initial_layout_classes.join(" ").into();
    }
    if let Some(data) = p.connection_data {
        claims["connection_data"] = data.into();
    }
    sign_hs256(&claims, secret)
}
