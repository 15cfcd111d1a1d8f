//! RS256 application credentials: what verifies, and every forgery that must not.

use super::*;
use crate::token::UnverifiedToken;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};

const APP: &str = "29f760f8-7ce1-46c9-ade3-f2dedee4ed5f";
const NOW: u64 = 1_700_000_000;

struct Key {
    pair: KeyPair,
    public: AppPublicKey,
    spki: Vec<u8>,
}

fn key() -> Key {
    let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
    let public = AppPublicKey::from_der(&spki).unwrap();
    Key { pair, public, spki }
}

fn sign_with_header(header: &serde_json::Value, claims: &serde_json::Value, pair: &KeyPair) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let mut sig = vec![0; pair.public_modulus_len()];
    pair.sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn sign(claims: serde_json::Value, pair: &KeyPair) -> String {
    sign_with_header(&serde_json::json!({"alg": "RS256", "typ": "JWT"}), &claims, pair)
}

fn rest_claims() -> serde_json::Value {
    serde_json::json!({"application_id": APP, "iat": NOW, "exp": NOW + 900, "jti": "5b1c0b5e-2a44-4a4c-9a53-0d1f1f6c2a10"})
}

fn verify_rest(raw: &str, key: &AppPublicKey, now: u64) -> Result<RestCredential, RestAuthError> {
    let c = UnverifiedAppCredential::parse(raw)?;
    if c.application_id() != APP || !c.signature_matches(key) {
        return Err(RestAuthError::BadSignature);
    }
    c.into_credential(now)
}

#[test]
fn accepts_the_sdk_rest_credential() {
    let k = key();
    let cred = verify_rest(&sign(rest_claims(), &k.pair), &k.public, NOW).unwrap();
    assert_eq!(cred.api_key, APP);
    assert_eq!(cred.expires_at, NOW + 900);
}

#[test]
fn refuses_other_keys_tampering_and_times() {
    let (k, other) = (key(), key());
    let t = sign(rest_claims(), &k.pair);
    assert_eq!(verify_rest(&t, &other.public, NOW).unwrap_err(), RestAuthError::BadSignature);
    // Tampered claims: same signature, another payload.
    let parts: Vec<&str> = t.split('.').collect();
    let mut claims = rest_claims();
    claims["exp"] = (NOW + 600).into();
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()), parts[2]);
    assert_eq!(verify_rest(&forged, &k.public, NOW).unwrap_err(), RestAuthError::BadSignature);
    assert_eq!(verify_rest(&t, &k.public, NOW + 900 + 61).unwrap_err(), RestAuthError::Expired);
    let mut future = rest_claims();
    future["iat"] = (NOW + 3600).into();
    future["exp"] = (NOW + 3700).into();
    assert_eq!(verify_rest(&sign(future, &k.pair), &k.public, NOW).unwrap_err(), RestAuthError::NotYetValid);
    let mut long = rest_claims();
    long["exp"] = (NOW + 86_400).into();
    assert_eq!(verify_rest(&sign(long, &k.pair), &k.public, NOW).unwrap_err(), RestAuthError::AppLifetimeTooLong);
    let mut no_iat = rest_claims();
    no_iat.as_object_mut().unwrap().remove("iat");
    assert_eq!(verify_rest(&sign(no_iat, &k.pair), &k.public, NOW).unwrap_err(), RestAuthError::MissingTimes);
}

#[test]
fn refuses_algorithm_confusion_and_none() {
    let k = key();
    // HS256 with the public key (PEM or DER) as the HMAC secret.
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(&k.spki));
    for secret in [pem.as_bytes(), &k.spki[..]] {
        let t = crate::jws::sign_hs256(&rest_claims(), secret);
        assert_eq!(verify_rest(&t, &k.public, NOW).unwrap_err(), RestAuthError::NotRs256);
        let mut client = rest_claims();
        client["scope"] = "session.connect".into();
        client["session_id"] = "1_x".into();
        client["role"] = "publisher".into();
        client["iss"] = APP.into();
        let t = crate::jws::sign_hs256(&client, secret);
        // An HS256 token never meets a public key: it goes to the project verifier.
        let parsed = UnverifiedToken::parse(&t).unwrap();
        assert!(!parsed.is_application());
        assert!(!parsed.key_matches(&k.public));
    }
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&rest_claims()).unwrap())
    );
    assert_eq!(verify_rest(&none, &k.public, NOW).unwrap_err(), RestAuthError::NotRs256);
    for header in [
        serde_json::json!({"alg": "RS512"}),
        serde_json::json!({"alg": "PS256"}),
        serde_json::json!({"alg": "RS256", "jwk": {"kty": "RSA"}}),
        serde_json::json!({"alg": "RS256", "crit": ["b64"], "b64": false}),
    ] {
        let t = sign_with_header(&header, &rest_claims(), &k.pair);
        assert_eq!(verify_rest(&t, &k.public, NOW).unwrap_err(), RestAuthError::NotRs256, "{header}");
    }
}

#[test]
fn client_tokens_and_rest_credentials_do_not_cross() {
    let k = key();
    let client = serde_json::json!({
        "application_id": APP, "scope": "session.connect", "session_id": "1_abc", "role": "moderator",
        "initial_layout_class_list": "full focus", "iat": NOW, "exp": NOW + 86_400, "jti": "x",
        "sub": "video", "acl": {"paths": {"/session/**": {}}}, "connection_data": "user=7",
    });
    let token = sign(client, &k.pair);
    assert_eq!(verify_rest(&token, &k.public, NOW).unwrap_err(), RestAuthError::ClientToken);
    let parsed = UnverifiedToken::parse(&token).unwrap();
    assert!(parsed.is_application());
    assert_eq!(parsed.api_key(), APP);
    assert!(parsed.key_matches(&k.public));
    assert!(!parsed.signature_matches(&k.spki), "never verified as HMAC");
    let claims = parsed.into_claims(NOW).unwrap();
    assert_eq!(claims.session_id, "1_abc");
    assert_eq!(claims.role, crate::Role::Moderator);
    assert_eq!(claims.initial_layout_classes, ["full", "focus"]);
    assert_eq!(claims.connection_data.as_deref(), Some("user=7"));
    // The Python SDK sends the class list as a JSON list.
    let python = serde_json::json!({
        "application_id": APP, "scope": "session.connect", "session_id": "1_abc", "role": "publisher",
        "initial_layout_class_list": ["full", "focus"], "iat": NOW, "exp": NOW + 900, "jti": "x",
        "acl": {"paths": {"/session/**": {}}},
    });
    let python = sign(python, &k.pair);
    let claims = UnverifiedToken::parse(&python).unwrap().into_claims(NOW).unwrap();
    assert_eq!(claims.initial_layout_classes, ["full", "focus"]);
    // A REST credential is not a client token.
    let rest_token = sign(rest_claims(), &k.pair);
    let rest = UnverifiedToken::parse(&rest_token).unwrap();
    assert_eq!(rest.into_claims(NOW).unwrap_err(), crate::TokenError::WrongScope);
}

#[test]
fn parses_public_keys() {
    let k = key();
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(&k.spki));
    assert_eq!(public_key_der_from_pem(&pem).unwrap(), k.spki);
    let private = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k.pair).unwrap().as_ref())
    );
    assert_eq!(public_key_der_from_pem(&private).unwrap_err(), KeyError::PrivateKey);
    assert_eq!(public_key_der_from_pem("garbage").unwrap_err(), KeyError::NotPem);
    assert!(check_application_id(APP));
    assert!(!check_application_id("47000001"));
}
