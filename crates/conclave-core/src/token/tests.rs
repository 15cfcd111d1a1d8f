//! Golden vectors from the compat doc (Python and Node SDK output, opentok-token), forgery
//! cases and property-based round trips.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;

const KEY: &str = "47000001";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef01234567";
const SESSION: &str = "1_MX40NzAwMDAwMX5-MTcwMDAwMDAwMDAwMH5rUTNuVDh2WDJwTG05WnJZNHNXYzZIYkp-UH5-";
const NOW: u64 = 1_700_000_000;

const PY_T1: &str = "T1==cGFydG5lcl9pZD00NzAwMDAwMSZzaWc9YTk4ZGVmNDQ0YjgzMTA0YTRiZjM5NzE1YjdiN2U5MmNjNTI3YTBkNTpzZXNzaW9uX2lkPTFfTVg0ME56QXdNREF3TVg1LU1UY3dNREF3TURBd01EQXdNSDVyVVROdVZEaDJXREp3VEcwNVduSlpOSE5YWXpaSVlrcC1VSDUtJmNyZWF0ZV90aW1lPTE3MDAwMDAwMDAmZXhwaXJlX3RpbWU9MTcwMDAwMzYwMCZyb2xlPW1vZGVyYXRvciZub25jZT00MjQyNDImaW5pdGlhbF9sYXlvdXRfY2xhc3NfbGlzdD1mb2N1cytmdWxsJmNvbm5lY3Rpb25fZGF0YT1uYW1lJTNEQWxpY2UlMjZpZCUzRDc=";
const PY_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzZXNzaW9uX2lkIjoiMV9NWDQwTnpBd01EQXdNWDUtTVRjd01EQXdNREF3TURBd01INXJVVE51VkRoMldESndURzA1V25KWk5ITlhZelpJWWtwLVVINS0iLCJyb2xlIjoibW9kZXJhdG9yIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDM2MDAsInNjb3BlIjoic2Vzc2lvbi5jb25uZWN0IiwiaW5pdGlhbF9sYXlvdXRfY2xhc3NfbGlzdCI6ImZvY3VzIGZ1bGwiLCJjb25uZWN0aW9uX2RhdGEiOiJuYW1lPUFsaWNlJmlkPTciLCJpc3MiOiI0NzAwMDAwMSIsImlzdCI6InByb2plY3QiLCJub25jZSI6NDI0MjQyfQ.QclXjblHsdyAXYWgiX6edRv4_d0EO5FKtafMx3VL4sY";

fn lookup(key: &str) -> Option<Vec<&'static [u8]>> {
    (key == KEY).then(|| vec![SECRET])
}

fn expect_alice(c: &ClientClaims, format: TokenFormat) {
    assert_eq!(c.format, format);
    assert_eq!(c.api_key, KEY);
    assert_eq!(c.session_id, SESSION);
    assert_eq!(c.role, Role::Moderator);
    assert_eq!(c.issued_at, NOW);
    assert_eq!(c.expires_at, 1_700_003_600);
    assert_eq!(c.connection_data.as_deref(), Some("name=Alice&id=7"));
    assert_eq!(c.initial_layout_classes, ["focus", "full"]);
}

#[test]
fn golden_python_t1_verifies_byte_for_byte() {
    expect_alice(&verify(PY_T1, NOW, lookup).unwrap(), TokenFormat::T1);
}

#[test]
fn golden_python_jwt_verifies_byte_for_byte() {
    expect_alice(&verify(PY_JWT, NOW, lookup).unwrap(), TokenFormat::Jwt);
}

#[test]
fn golden_node_t1_with_percent20_and_scope_verifies() {
    let payload = format!(
        "session_id={SESSION}&create_time=1700000000&nonce=0.25&role=moderator&expire_time=1700003600&connection_data=name%3DAlice%26id%3D7&initial_layout_class_list=focus%20full&scope=session.connect"
    );
    let token = format!(
        "T1=={}",
        STANDARD.encode(format!("partner_id=47000001&sig=98713b575d9d0faedbbf214bd706a029bcd27819:{payload}"))
    );
    expect_alice(&verify(&token, NOW, lookup).unwrap(), TokenFormat::T1);
}

#[test]
fn golden_opentok_token_vector_checks_signature_then_expiry() {
    let secret: &[u8] = b"1234567890abcdef1234567890abcdef1234567890";
    let payload = "session_id=1_MX4xMjM0NTZ-flNhdCBNYXIgMTUgMTQ6NDI6MjMgUERUIDIwMTR-MC40OTAxMzAyNX4&create_time=1424221013&nonce=0.3942609881050885&role=moderator&expire_time=1424307413&connection_data=%7B%22name%22%3A%22value%22%7D";
    let token = format!(
        "T1=={}",
        STANDARD.encode(format!("partner_id=123456&sig=df94a64559acc061d7a3752a6fc69493e938c191:{payload}"))
    );
    let t = UnverifiedToken::parse(&token).unwrap();
    assert_eq!(t.api_key(), "123456");
    assert!(t.signature_matches(secret));
    assert!(!t.signature_matches(SECRET));
    assert_eq!(UnverifiedToken::parse(&token).unwrap().into_claims(NOW).unwrap_err(), TokenError::Expired);
    let c = UnverifiedToken::parse(&token).unwrap().into_claims(1_424_221_100).unwrap();
    assert_eq!(c.connection_data.as_deref(), Some(r#"{"name":"value"}"#));
    assert!(c.initial_layout_classes.is_empty());
}

#[test]
fn forged_t1_fields_break_the_signature() {
    let raw = String::from_utf8(STANDARD.decode(&PY_T1[4..]).unwrap()).unwrap();
    for (from, to) in [
        ("role=moderator", "role=publisher"),
        ("expire_time=1700003600", "expire_time=1700093600"),
        ("kQ3nT8", "kQ3nT9"),
    ] {
        let forged = raw.replace(from, to);
        if forged == raw {
            // the session ID is base64 inside the payload; tamper with its encoded text instead
            let forged = raw.replacen("MX40", "MX41", 2);
            assert_eq!(
                verify(&format!("T1=={}", STANDARD.encode(forged)), NOW, lookup).unwrap_err(),
                TokenError::BadSignature
            );
            continue;
        }
        assert_eq!(
            verify(&format!("T1=={}", STANDARD.encode(forged)), NOW, lookup).unwrap_err(),
            TokenError::BadSignature,
            "{from}"
        );
    }
}

fn resign_jwt_claims(edit: impl FnOnce(&mut serde_json::Value), secret: &[u8]) -> String {
    let payload = PY_JWT.split('.').nth(1).unwrap();
    let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    edit(&mut claims);
    crate::jws::sign_hs256(&claims, secret)
}

#[test]
fn forged_jwt_claims_are_refused() {
    let parts: Vec<&str> = PY_JWT.split('.').collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["role"] = "moderator".into();
    claims["session_id"] = "1_other".into();
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    assert_eq!(verify(&tampered, NOW, lookup).unwrap_err(), TokenError::BadSignature);
    // alg=none with the signature stripped
    let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    assert!(matches!(verify(&none, NOW, lookup).unwrap_err(), TokenError::Malformed(_)));
    // signed with another project's secret
    let other = resign_jwt_claims(|_| {}, b"ffffffffffffffffffffffffffffffffffffffff");
    assert_eq!(verify(&other, NOW, lookup).unwrap_err(), TokenError::BadSignature);
    // unknown project
    let foreign = resign_jwt_claims(|c| c["iss"] = "99999999".into(), SECRET);
    assert_eq!(verify(&foreign, NOW, lookup).unwrap_err(), TokenError::BadSignature);
}

#[test]
fn rest_credentials_are_not_client_tokens() {
    let rest = crate::rest_auth::mint(KEY, SECRET, NOW, 300);
    assert_eq!(verify(&rest, NOW, lookup).unwrap_err(), TokenError::WrongScope);
    let no_scope = resign_jwt_claims(|c| drop(c.as_object_mut().unwrap().remove("scope")), SECRET);
    assert_eq!(verify(&no_scope, NOW, lookup).unwrap_err(), TokenError::WrongScope);
}

#[test]
fn limits_are_enforced() {
    let t = |edit: fn(&mut serde_json::Value)| verify(&resign_jwt_claims(edit, SECRET), NOW, lookup);
    assert_eq!(t(|c| c["role"] = "admin".into()).unwrap_err(), TokenError::InvalidRole);
    assert_eq!(t(|c| c["exp"] = (NOW + MAX_LIFETIME_SECS + 1).into()).unwrap_err(), TokenError::LifetimeTooLong);
    assert_eq!(t(|c| c["connection_data"] = "x".repeat(1001).into()).unwrap_err(), TokenError::DataTooLong);
    assert!(t(|c| c["connection_data"] = "é".repeat(1000).into()).is_ok());
    assert_eq!(t(|c| c["initial_layout_class_list"] = "x".repeat(1025).into()).unwrap_err(), TokenError::LayoutTooLong);
    assert_eq!(
        t(|c| c["iat"] = (NOW + 7200).into()).unwrap_err(),
        TokenError::Malformed("expires before it was issued")
    );
    assert_eq!(
        t(|c| {
            c["iat"] = (NOW + 600).into();
            c["exp"] = (NOW + 900).into()
        })
        .unwrap_err(),
        TokenError::NotYetValid
    );
    assert_eq!(t(|c| c["ist"] = "account".into()).unwrap_err(), TokenError::Malformed("JWT ist must be \"project\""));
    assert_eq!(verify(PY_JWT, 1_700_003_600 + 61, lookup).unwrap_err(), TokenError::Expired);
    assert!(verify(PY_JWT, 1_700_003_600 + 60, lookup).is_ok());
}

#[test]
fn binding_checks_session_and_project() {
    let c = verify(PY_T1, NOW, lookup).unwrap();
    assert!(c.check_binding(SESSION, KEY).is_ok());
    assert_eq!(c.check_binding("1_other", KEY).unwrap_err(), TokenError::WrongSession);
    assert_eq!(c.check_binding(SESSION, "47000002").unwrap_err(), TokenError::WrongProject);
}

#[test]
fn rotation_accepts_any_candidate_secret() {
    let both = |_: &str| Some(vec![b"old-secret".as_slice(), SECRET]);
    assert!(verify(PY_T1, NOW, both).is_ok());
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    for t in ["", "T1==", "T1==!!!!", "T1==YWJj", "eyJ", "a.b.c", "T1==cGFydG5lcl9pZD0xOg=="] {
        assert!(verify(t, NOW, lookup).is_err(), "{t}");
    }
}

fn role_strategy() -> impl Strategy<Value = Role> {
    prop::sample::select(Role::ALL.to_vec())
}

proptest! {
    #[test]
    fn minted_tokens_round_trip(
        role in role_strategy(),
        data in proptest::option::of("\\PC{0,200}"),
        classes in prop::collection::vec("[a-z]{1,8}", 0..4),
        life in 1u64..MAX_LIFETIME_SECS,
        nonce: u32,
        jwt: bool,
    ) {
        let p = TokenParams { session_id: SESSION, role, create_time: NOW, expire_time: NOW + life, nonce, connection_data: data.as_deref(), initial_layout_classes: &classes };
        let token = if jwt { mint_jwt(KEY, SECRET, &p) } else { mint_t1(KEY, SECRET, &p) };
        let c = verify(&token, NOW, lookup).unwrap();
        prop_assert_eq!(c.format, if jwt { TokenFormat::Jwt } else { TokenFormat::T1 });
        prop_assert_eq!(c.role, role);
        prop_assert_eq!(c.session_id.as_str(), SESSION);
        prop_assert_eq!(c.expires_at, NOW + life);
        prop_assert_eq!(c.connection_data, data);
        prop_assert_eq!(c.initial_layout_classes, classes);
        prop_assert_eq!(verify(&token, NOW, |_| Some(vec![b"wrong".as_slice()])).unwrap_err(), TokenError::BadSignature);
    }

    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,400}") {
        let _ = verify(&s, NOW, lookup);
        let _ = verify(&format!("T1=={s}"), NOW, lookup);
    }
}

/// The spellings a hostile tester used to rejoin after a kick: (name, token).
fn t1_respellings(token: &str) -> Vec<(&'static str, String)> {
    let body = STANDARD.decode(&token[4..]).unwrap();
    let text = String::from_utf8(body).unwrap();
    let (header, payload) = text.split_once(':').unwrap();
    let (key, sig) = header.strip_prefix("partner_id=").unwrap().split_once("&sig=").unwrap();
    let wrap = |h: String| format!("T1=={}", STANDARD.encode(format!("{h}:{payload}")));
    vec![
        ("padding stripped", token.trim_end_matches('=').to_owned()),
        ("url-safe alphabet", format!("T1=={}", URL_SAFE_NO_PAD.encode(&text))),
        ("extra header field", wrap(format!("partner_id={key}&sig={sig}&x=1"))),
        ("upper-case sig", wrap(format!("partner_id={key}&sig={}", sig.to_uppercase()))),
        ("reordered header", wrap(format!("sig={sig}&partner_id={key}"))),
        ("percent-encoded name", wrap(format!("partner%5Fid={key}&sig={sig}"))),
        ("duplicate field", wrap(format!("partner_id={key}&sig={sig}&sig={sig}"))),
    ]
}

#[test]
fn every_spelling_of_a_t1_token_is_refused_or_has_its_revocation_id() {
    let original = verify(PY_T1, NOW, lookup).unwrap();
    let mut accepted = 0;
    for (name, variant) in t1_respellings(PY_T1) {
        match verify(&variant, NOW, lookup) {
            Ok(c) => {
                accepted += 1;
                assert_eq!(c.revocation_id, original.revocation_id, "{name}: same token, same revocation ID");
            }
            Err(e) => assert!(matches!(e, TokenError::Malformed(_)), "{name}: {e:?}"),
        }
    }
    assert!(accepted >= 2, "the lenient body alphabets still decode (tokens travel through URLs)");
}

#[test]
fn the_t1_header_has_one_spelling() {
    for (name, variant) in t1_respellings(PY_T1).into_iter().skip_while(|(n, _)| *n != "extra header field") {
        assert!(matches!(verify(&variant, NOW, lookup), Err(TokenError::Malformed(_))), "{name} must be refused");
    }
}

#[test]
fn revocation_ids_differ_between_mints_and_formats() {
    let p = |nonce| TokenParams {
        session_id: SESSION,
        role: Role::Publisher,
        create_time: NOW,
        expire_time: NOW + 60,
        nonce,
        connection_data: None,
        initial_layout_classes: &[],
    };
    let id = |t: String| verify(&t, NOW, lookup).unwrap().revocation_id;
    let (a, b) = (id(mint_t1(KEY, SECRET, &p(1))), id(mint_t1(KEY, SECRET, &p(2))));
    assert_ne!(a, b, "two mints are two tokens");
    assert_ne!(id(mint_jwt(KEY, SECRET, &p(1))), a);
    assert_eq!(id(mint_jwt(KEY, SECRET, &p(1))), id(mint_jwt(KEY, SECRET, &p(1))), "a JWT is its signed bytes");
}
